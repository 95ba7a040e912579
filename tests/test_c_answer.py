"""socklab.checks.c_answer's scenes, on real programs and real sockets."""

import os
import signal
import socket
import time

import pytest

from socklab import c
from socklab.checks import c_answer
from socklab.checks.c_answer import Answer
from socklab.checks.report import Report, Verdict

pytestmark = pytest.mark.skipif(c.shutil.which("gcc") is None, reason="gcc is not installed")

# A server that takes no connection until it is sent SIGUSR1: its clients wait
# in the accept queue, as they do for a server that has fallen behind.
LATE_SERVER = r"""
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include "socklab.h"

int main(void)
{
    alarm(60); /* watchdog */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &usr1, NULL) < 0)
        return 1;
    int listener = listen_on("127.0.0.1", "0", 16);
    if (listener < 0 || announce_port(listener) < 0)
        return 1;
    int signal_number;
    if (sigwait(&usr1, &signal_number) != 0)
        return 1;
    if (getenv("END_ON_SIGUSR1"))
        return 3;
    for (;;) {
        int conn = accept_client(listener, NULL, NULL);
        if (conn < 0)
            return 1;
        close(conn);
    }
}
"""


def test_caught_up_waits_until_the_queue_is_taken():
    c.compile(LATE_SERVER, "late_server")
    with Answer("late_server", c.start("late_server")) as answer:
        clients = [socket.create_connection(answer.address, timeout=5) for _ in range(3)]
        try:
            assert answer.caught_up(timeout=0.2) is False  # three wait; nobody takes them
            os.kill(answer.pid, signal.SIGUSR1)
            assert answer.caught_up() is True
            with answer.paused():  # caught up: a new client gets its handshake
                socket.create_connection(answer.address, timeout=5).close()
        finally:
            for client in clients:
                client.close()


def test_a_server_that_ended_is_named_not_raised(monkeypatch):
    """check_process() on a program that ended after the lesson's last case: the
    clients it sends are refused, and the report says the program ended."""
    monkeypatch.setenv("END_ON_SIGUSR1", "1")
    c.compile(LATE_SERVER, "late_server")
    with Answer("late_server", c.start("late_server")) as answer:
        os.kill(answer.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while answer.program.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        report = Report("a check")
        c_answer.check_process(answer, report, probe=lambda sock: Verdict.ok())
    assert [hint for _, hint in report.failures] == [
        "late_server exited with status 3.\nA server must outlive every one of its clients."]


# A server that sleeps 1 ms at a time: hardly any CPU, yet a busy loop -- woken
# a thousand times a second, as one that spins while printing is (it sleeps each
# time its output pipe is full, until the check has read some).
NAPPING_SERVER = r"""
#include <poll.h>
#include <unistd.h>
#include "socklab.h"

int main(void)
{
    alarm(60); /* watchdog */
    int listener = listen_on("127.0.0.1", "0", 16);
    if (listener < 0 || announce_port(listener) < 0)
        return 1;
    for (;;)
        poll(NULL, 0, 1);
}
"""


def test_a_loop_woken_again_and_again_is_busy_one_asleep_is_not():
    c.compile(NAPPING_SERVER, "napping_server")
    with Answer("napping_server", c.start("napping_server")) as answer:
        report = Report("a check")
        c_answer.check_process(answer, report, closes_on_eof=False, spins_hint="Sleep longer.")
    (description, hint), = report.failures
    assert description == "nobody talks to it: it waits without using the CPU"
    assert hint.endswith(": a busy loop.\nSleep longer."), hint
    c.compile(LATE_SERVER, "late_server")  # asleep in sigwait(): woken by nothing
    with Answer("late_server", c.start("late_server")) as answer:
        report = Report("a check")
        c_answer.check_process(answer, report, closes_on_eof=False)
    assert report.ok, report
