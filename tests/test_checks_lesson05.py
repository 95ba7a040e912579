"""Lesson 05's checks accept right answers and reject the usual wrong ones, in words.

Every check runs on real sockets on loopback, so these tests do too.
"""

import os
import socket
import threading
import time

import pytest

import socklab
from socklab.checks import lesson05


def hints(report):
    return "\n".join(hint for _, hint in report.failures)


def check_threads():
    """The threads a check starts (each named "socklab check ...") that are alive."""
    return {thread for thread in threading.enumerate()
            if thread.name.startswith("socklab check")}


def open_fds():
    return set(os.listdir("/proc/self/fd"))


# ---------------------------------------------------------------- echo_handler


def handler_right(conn):
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)
    except ConnectionError:
        return


def handler_right_recv_into(conn):
    """Right too: recv_into() one buffer, sendall() a view of what came."""
    buffer = bytearray(4096)
    view = memoryview(buffer)
    try:
        while count := conn.recv_into(buffer):
            conn.sendall(view[:count])
    except (ConnectionResetError, BrokenPipeError):
        pass


def handler_seed(conn):
    """The seed's loop: never leaves on b''."""
    while True:
        data = conn.recv(1024)
        conn.sendall(data)


def handler_no_catch(conn):
    """Right loop, but a reset raises out of it."""
    while data := conn.recv(65536):
        conn.sendall(data)


def handler_send(conn):
    """send() instead of sendall(): the part send() did not take is lost."""
    try:
        while data := conn.recv(65536):
            conn.send(data)
    except ConnectionError:
        pass


def handler_waits_for_end(conn):
    """Collects everything and answers when the client closes."""
    try:
        everything = b""
        while data := conn.recv(65536):
            everything += data
        conn.sendall(everything)
    except ConnectionError:
        pass


def handler_stub(conn):
    ...


def handler_naps_on_eof(conn):
    """Never leaves: on b'' or a reset it naps and reads again.  Still running after
    the client has gone, so the check has to stop it (conn.stop()) and wait for it."""
    while True:
        try:
            data = conn.recv(65536)
            conn.sendall(data)
        except ConnectionError:
            data = b""
        if not data:
            time.sleep(0.1)  # so slowly that MAX_EMPTY_READS is never reached


def test_echo_handler_right_answers_pass():
    for handler in (handler_right, handler_right_recv_into):
        report = lesson05.check_echo_handler(handler)
        assert report.ok, report


def test_echo_handler_stub_is_not_written_yet():
    report = lesson05.check_echo_handler(handler_stub)
    assert not report.ok
    assert len(report.results) == 1
    assert "is it written yet?" in hints(report)


def test_echo_handler_seed_loop_is_named_spinning():
    report = lesson05.check_echo_handler(handler_seed)
    assert not report.ok
    assert len(report.results) == 1  # one hint is enough
    assert "returned b''" in hints(report)
    assert "seed" in hints(report)


def test_echo_handler_that_raises_on_reset_is_rejected():
    for _ in range(3):  # the reset must be seen every time, whatever the timing
        report = lesson05.check_echo_handler(handler_no_catch)
        passed = [verdict.passed for _, verdict in report.results]
        assert passed == [True, True, True, False], report
        assert "ConnectionResetError and BrokenPipeError" in hints(report)


def test_echo_handler_with_send_loses_bytes():
    report = lesson05.check_echo_handler(handler_send)
    assert not report.ok
    assert "sendall()" in hints(report)
    assert "1 MiB" in report.results[2][0] and not report.results[2][1].passed


def test_echo_handler_that_waits_for_the_end_is_rejected():
    report = lesson05.check_echo_handler(handler_waits_for_end)
    assert not report.ok
    assert "at once" in hints(report)
    assert not report.results[1][1].passed  # the byte-at-a-time client


def test_echo_handler_check_leaves_no_thread_or_descriptor(no_leaks):
    """What could be left behind: the learner's handler, which runs in a thread of
    the check's, and the sockets the check opens (the listener, both ends of each
    connection) -- looked at the moment the check returns.  (`no_leaks` compares
    every thread and /proc/self/fd before and after the test as well.)"""
    before = check_threads()
    for handler in (handler_right, handler_seed, handler_naps_on_eof, handler_no_catch):
        fds = open_fds()
        lesson05.check_echo_handler(handler)
        assert check_threads() - before == set(), handler.__name__
        assert open_fds() - fds == set(), handler.__name__


# ---------------------------------------------------------------- ask_udp


def ask_right(address, data, timeout, retries):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        for _ in range(1 + retries):
            sock.send(data)
            try:
                return sock.recv(65535)
            except TimeoutError:
                continue
    raise TimeoutError


def ask_new_socket_each_try(address, data, timeout, retries):
    """Right too, if wasteful: each try from a new socket (a new client for the relay)."""
    for _ in range(1 + retries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(data, address)
            try:
                return sock.recvfrom(65535)[0]
            except socket.timeout:
                pass
    raise socket.timeout("no reply")


def ask_no_retry(address, data, timeout, retries):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, address)
        return sock.recvfrom(65535)[0]


def ask_retries_once_too_few(address, data, timeout, retries):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(retries):
            sock.sendto(data, address)
            try:
                return sock.recvfrom(65535)[0]
            except TimeoutError:
                pass
    raise TimeoutError


def ask_returns_none(address, data, timeout, retries):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(1 + retries):
            sock.sendto(data, address)
            try:
                return sock.recvfrom(65535)[0]
            except TimeoutError:
                pass
    return None


def ask_sprays(address, data, timeout, retries):
    """Sends every try at once, then waits."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout * (1 + retries))
        for _ in range(1 + retries):
            sock.sendto(data, address)
        return sock.recvfrom(65535)[0]


def ask_returns_tuple(address, data, timeout, retries):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(1 + retries):
            sock.sendto(data, address)
            try:
                return sock.recvfrom(65535)
            except TimeoutError:
                pass
    raise TimeoutError


def ask_raises_other(address, data, timeout, retries):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(1 + retries):
            sock.sendto(data, address)
            try:
                return sock.recvfrom(65535)[0]
            except TimeoutError:
                pass
    raise RuntimeError("gave up")


def ask_gives_up_at_once(address, data, timeout, retries):
    """Tries 1 + retries times, but hardly waits for a reply: a timeout of its own,
    1 ms, instead of the one it was given."""
    return ask_right(address, data, 0.001, retries)


def ask_stub(address, data, timeout, retries):
    ...


def ask_no_timeout(address, data, timeout, retries):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)  # the check's 5 s limit ends first; the socket dies with the test
    sock.sendto(data, address)
    return sock.recvfrom(65535)[0]


def test_ask_udp_right_answers_pass():
    for ask in (ask_right, ask_new_socket_each_try):
        report = lesson05.check_ask_udp(ask)
        assert report.ok, report


def test_ask_udp_stub_is_not_written_yet():
    report = lesson05.check_ask_udp(ask_stub)
    assert len(report.results) == 1
    assert "is it written yet?" in hints(report)


@pytest.mark.parametrize("ask, failing, words", [
    (ask_no_retry, [1, 3], "send again"),
    (ask_retries_once_too_few, [2, 3], "the first try is not a retry"),
    (ask_returns_none, [2, 3], "Raise TimeoutError instead"),
    (ask_sprays, [0, 1], "stop as soon as a reply arrives"),
    (ask_returns_tuple, [0, 1], "returned a tuple"),
    (ask_raises_other, [2, 3], "raise TimeoutError"),
])
def test_ask_udp_wrong_answers_are_rejected(ask, failing, words):
    report = lesson05.check_ask_udp(ask)
    failed = [index for index, (_, verdict) in enumerate(report.results)
              if not verdict.passed]
    assert failed == failing, report
    assert words in hints(report)


def test_ask_udp_that_does_not_wait_is_told_to_wait():
    # Where every try is lost it sends as many datagrams as it should, and raises
    # TimeoutError: only how long it waited shows the mistake -- the time its
    # thread slept, which the load does not stretch, as it does the time taken.
    # (Where a reply comes, it may come within 1 ms or not: those cases are not
    # asserted.)  On a busy machine a reply can take more than 1 ms, so a case
    # where replies come may be the first to fail; the check then stops there,
    # saying either what it saw (a reply came, and it sent again) or that it
    # should wait.
    report = lesson05.check_ask_udp(ask_gives_up_at_once)
    assert report.failures, "giving up after 1 ms passed every case"
    tries = {case.description: 1 + case.retries for case in lesson05.UDP_CASES}
    lost = {case.description for case in lesson05.UDP_CASES[2:]}  # every try lost
    for description, hint in report.failures:
        wait = f"each of the {tries[description]} tries should wait\ntimeout=0.2 s" in hint
        assert wait or (description not in lost
                        and "stop as soon as a reply arrives" in hint), hint
    reached = {description for description, _ in report.results}
    assert reached & lost <= {description for description, _ in report.failures}, report


def test_the_learners_thread_shares_the_cpu_of_the_checks_marker():
    """check_ask_udp counts a learner's datagrams by sending its own marker after
    them: on one CPU the kernel hands both to the relay in the order they were
    sent, on two it may not (one queue per CPU).  So the learner's thread -- started
    inside _on_one_cpu -- must run on the check's one CPU, and the check's thread
    get all its CPUs back afterwards."""
    allowed = os.sched_getaffinity(0)
    seen = {}
    with lesson05._on_one_cpu():
        inside = os.sched_getaffinity(0)
        thread = threading.Thread(target=lambda: seen.update(cpus=os.sched_getaffinity(0)))
        thread.start()
        thread.join()
    assert len(inside) == 1 and inside <= allowed
    assert seen["cpus"] == inside
    assert os.sched_getaffinity(0) == allowed


def test_ask_udp_without_timeout_is_stopped_with_a_hint():
    report = lesson05.check_ask_udp(ask_no_timeout)
    assert [verdict.passed for _, verdict in report.results] == [True, False]
    assert "settimeout(timeout)" in hints(report)


def test_ask_udp_check_leaves_nothing_running():
    before = socklab.running()
    lesson05.check_ask_udp(ask_right)
    assert socklab.running() == before
