"""socklab.checks.adversary: the hard clients see what a server really does.

Each test pairs a client with a small real server on loopback, once where the
client must succeed and once where it must report the failure.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import socklab
from socklab.checks import adversary


def test_echo_round_all_pass_against_an_echo_server():
    with socklab.TCPEchoServer(name="adv-echo") as srv:
        socks = adversary.connect_many(srv.address, 20)
        try:
            assert adversary.echo_round(socks) == []
        finally:
            adversary.close_all(socks)


def test_echo_round_names_the_clients_without_echo():
    def silent_for_odd(conn):
        if conn.number % 2 == 0:            # conn 2, 4, ... are clients 1, 3, ...
            while conn.recv(100):
                pass
            return
        while data := conn.recv(65536):
            conn.sendall(data)

    with socklab.serve(silent_for_odd, name="adv-half") as srv:
        socks = []
        for _ in range(6):                  # one at a time: numbers in order
            socks += adversary.connect_many(srv.address, 1)
            srv.events.wait_for("accept", count=len(socks))
        try:
            assert adversary.echo_round(socks, timeout=0.5) == [1, 3, 5]
        finally:
            adversary.close_all(socks)


def test_trickle_reports_the_first_byte_without_echo():
    with socklab.TCPEchoServer(name="adv-echo") as srv:
        socks = adversary.connect_many(srv.address, 3)
        try:
            assert adversary.trickle(socks, text=b"abc", pause=0) is None
        finally:
            adversary.close_all(socks)

    def echo_two_bytes(conn):
        for _ in range(2):
            conn.sendall(conn.recv(1))
        while conn.recv(100):
            pass

    with socklab.serve(echo_two_bytes, name="adv-two") as srv:
        socks = adversary.connect_many(srv.address, 1)
        try:
            assert adversary.trickle(socks, text=b"abcd", pause=0, timeout=0.3) == (0, 2)
        finally:
            adversary.close_all(socks)


def test_flood_stalls_when_nobody_reads_and_not_when_someone_does():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        flood = adversary.Flood(listener.getsockname(), limit=64 * 1024 * 1024)
        accepted, _ = listener.accept()      # accepted, never read
        try:
            sent = flood.run(3.0)
        finally:
            flood.close()
            accepted.close()
    assert 0 < sent < 32 * 1024 * 1024       # the kernels' buffers, no more

    def sink(conn):                          # reads everything, answers nothing
        while conn.recv(65536):
            pass

    with socklab.serve(sink, name="adv-sink") as srv:
        flood = adversary.Flood(srv.address, limit=4 * 1024 * 1024)
        try:
            assert flood.run(5.0) == 4 * 1024 * 1024
        finally:
            flood.close()


def test_reset_makes_the_server_see_a_reset():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
        with accepted:
            adversary.reset(client)
            accepted.settimeout(5)
            try:
                accepted.recv(10)
            except ConnectionResetError:
                pass
            else:
                raise AssertionError("recv() after a RST should raise ConnectionResetError")


@contextlib.contextmanager
def spinner_and_sleeper():
    """Two threads, until the block ends: one spins, one sleeps."""
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    sleeper = threading.Thread(target=stop.wait)
    spinner.start()
    sleeper.start()
    try:
        yield spinner, sleeper
    finally:
        stop.set()
        spinner.join()
        sleeper.join()


def test_thread_cpu_seconds_sees_a_spinning_thread_and_a_sleeping_one():
    with spinner_and_sleeper() as (spinner, sleeper):
        before = adversary.thread_cpu_seconds(spinner), adversary.thread_cpu_seconds(sleeper)
        time.sleep(0.5)
        spun = adversary.thread_cpu_seconds(spinner) - before[0]
        slept = adversary.thread_cpu_seconds(sleeper) - before[1]
    assert spun > 0.05 and slept < 0.01


def test_thread_runnable_seconds_counts_a_spinner_that_waits_for_a_cpu():
    """With every CPU taken by other processes, a spinning thread gets only a share
    of a CPU, yet it is running or ready to run all the time; a sleeping thread is
    neither.  (The lesson 10 check relies on that on a loaded machine.)"""
    hog = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2 * os.cpu_count())]
    try:
        with spinner_and_sleeper() as (spinner, sleeper):
            time.sleep(0.3)  # the hogs are running
            before = [adversary.thread_runnable_seconds(t) for t in (spinner, sleeper)]
            cpu_before = adversary.thread_cpu_seconds(spinner)
            time.sleep(1.0)
            after = [adversary.thread_runnable_seconds(t) for t in (spinner, sleeper)]
            cpu = adversary.thread_cpu_seconds(spinner) - cpu_before
    finally:
        for process in hogs:
            process.kill()
            process.wait()
    assert None not in before, "this kernel keeps no /proc/self/task/TID/schedstat"
    spun, slept = after[0] - before[0], after[1] - before[1]
    assert spun > 0.8 and slept < 0.01, (spun, slept)
    assert cpu < 0.8 * spun, (cpu, spun)  # the hogs took most of its CPU
