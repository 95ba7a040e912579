"""socklab.measure: right byte counts, iperf3 read back, the Nagle stall and its cure.

Speed is never asserted (a shared machine is too noisy), with one exception:
the delayed-ACK stall, whose floor is a kernel timer of about 40 ms, against a
request with TCP_NODELAY, which takes well under a millisecond.  The margin
checked is far wider than any noise.
"""

import os
import pathlib
import shutil
import signal
import socket
import threading
import time

import pytest

import socklab
from socklab import measure


def test_connected_pair_is_one_connection_on_loopback():
    client, server = measure.connected_pair()
    with client, server:
        assert client.getpeername() == server.getsockname()
        assert client.getsockname()[0] == "127.0.0.1"
        client.sendall(b"hi")
        assert server.recv(2) == b"hi"


@pytest.mark.parametrize("message", [64, 1000, measure.BIG])
def test_stream_python_delivers_every_byte(message):
    run = measure.stream_python(4 * measure.BIG, message)
    assert run.bytes == (4 * measure.BIG // message) * message
    assert run.seconds > 0 and run.cpu >= 0
    assert run.rate == run.bytes / run.seconds


def test_stream_python_leaves_no_thread_behind():
    import threading
    measure.stream_python(1 << 20, 4096)
    assert not [t for t in threading.enumerate() if t.name == "stream sender"]


def test_run_figures():
    run = measure.Run(bytes=2000, seconds=2.0, cpu=1.0)
    assert run.rate == 1000 and run.cpu_per_byte == 0.0005


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed")
def test_iperf3_reports_the_bytes_asked_for_and_ends():
    before = _children("iperf3")
    total = 64 << 20
    run = measure.iperf3(total, 1 << 20)
    # The receiver's count, over its own interval: iperf3's server may stop
    # counting before the last bytes of a test arrive (half of an 8 MiB test,
    # seen here; a few per cent of 64 MiB), and may count a little more.
    assert 0.5 * total <= run.bytes <= 1.1 * total
    assert run.seconds > 0 and run.cpu > 0
    assert before == set() and _children("iperf3") == set()  # the server is gone


def _children(command):
    """Our own children running ``command`` (other programs on the machine may run theirs)."""
    children = set()
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name, ppid = fields[0].split("(", 1)[1], int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):  # it ended while we looked
            continue
        if name == command and ppid == os.getpid():
            children.add(int(stat.parent.name))
    return children


def test_an_iperf3_server_that_says_nothing_is_stopped_in_time(tmp_path, monkeypatch):
    silent = tmp_path / "iperf3"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")  # never says "listening"
    silent.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(silent))
    monkeypatch.setattr(measure, "START_TIMEOUT", 0.5)
    outcome = []

    def measure_in_a_thread():
        try:
            outcome.append(measure.iperf3(1 << 20, attempts=1))
        except Exception as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=measure_in_a_thread)
    thread.start()
    thread.join(10)
    hung = thread.is_alive()
    for pid in _children("sleep"):  # so that a hung wait ends, and the test with it
        os.kill(pid, signal.SIGKILL)
    thread.join(10)
    assert not hung, "still waiting for the silent server after 10 s"
    assert isinstance(outcome[0], TimeoutError)
    assert "did not say that it listens within 0.5 s" in str(outcome[0])
    assert time.monotonic() - started < 5
    assert _children("sleep") == set()  # stopped and reaped


def test_iperf3_missing_is_said_plainly(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(measure.IperfMissing, match="apt-get install iperf3"):
        measure.iperf3(1 << 20)


def test_late_acks_stall_two_small_writes_and_nodelay_cures_it():
    srv = socklab.serve(measure.answer_with_late_acks, name="test-late-acks")
    try:
        stalled = measure.write_write_read(srv.address, nodelay=False, requests=3)
        quick = measure.write_write_read(srv.address, nodelay=True, requests=3)
    finally:
        srv.stop()
    assert stalled >= 0.030  # the delayed-ACK timer: about 40 ms
    assert quick < stalled / 4


def test_late_ack_server_answers_in_capitals_and_counts_lengths():
    srv = socklab.serve(measure.answer_with_late_acks, name="test-late-acks")
    try:
        with socket.create_connection(srv.address, timeout=5) as sock:
            assert measure.ask_in_two_writes(sock, b"abc") == b"ABC"
            assert measure.ask_in_two_writes(sock, b"x" * 70000) == b"X" * 70000
            assert measure.ask_in_two_writes(sock, b"") == b""
    finally:
        srv.stop()
