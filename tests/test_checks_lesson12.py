"""Lesson 12's checks accept right answers and reject the usual wrong ones, in words.

The ask() check runs against a real server on loopback that delays its ACKs.
"""

import collections
import socket
import struct
import time

import socklab
from socklab.checks import lesson12
from socklab.checks.report import TIME_LIMIT


def never_returns(*args):
    """Wrong: still running when the check's time limit is over (then it ends)."""
    time.sleep(TIME_LIMIT + 1)

# ------------------------------------------------------------------ extra_calls


def extra_calls_right(c_trace, py_trace):
    def count(trace):
        return collections.Counter(r.call for r in trace if r.kind == "syscall")
    return count(py_trace) - count(c_trace)


def extra_calls_dict(c_trace, py_trace):
    """Right too: a plain dict, zero counts left in."""
    c_calls = [r.call for r in c_trace if r.kind == "syscall"]
    py_calls = [r.call for r in py_trace if r.kind == "syscall"]
    return {name: max(0, py_calls.count(name) - c_calls.count(name)) for name in py_calls}


def extra_calls_stub(c_trace, py_trace):
    ...


def extra_calls_set(c_trace, py_trace):
    return set(py_trace.calls) - set(c_trace.calls)


def extra_calls_set_as_dict(c_trace, py_trace):
    return {name: 1 for name in set(py_trace.calls) - set(c_trace.calls)}


def extra_calls_every_record(c_trace, py_trace):
    return collections.Counter(py_trace.calls) - collections.Counter(c_trace.calls)


def extra_calls_negative(c_trace, py_trace):
    counts = collections.Counter(r.call for r in py_trace if r.kind == "syscall")
    counts.subtract(r.call for r in c_trace if r.kind == "syscall")
    return dict(counts)


def test_extra_calls_right_answers_pass():
    for answer in (extra_calls_right, extra_calls_dict):
        report = lesson12.check_extra_calls(answer)
        assert report.ok, report
        assert len(report.results) == len(lesson12.TRACES)


def test_extra_calls_stub_is_not_written():
    report = lesson12.check_extra_calls(extra_calls_stub)
    assert not report.ok
    assert "is it written yet?" in repr(report)


def test_extra_calls_a_set_is_refused():
    text = repr(lesson12.check_extra_calls(extra_calls_set))
    assert "returned set, not a dict" in text
    # Every case is reported, the long hint only once.
    assert text.count("returned set, not a dict") == 1
    assert "the same as above." in text
    assert f"{len(lesson12.TRACES)} of {len(lesson12.TRACES)} checks failed." in text


def test_extra_calls_a_wrong_answer_is_counted_against_every_case():
    """A failure does not stop the check: the count is out of all the cases, as
    when they pass (not "1 of 1 checks failed" for a wrong first answer)."""
    report = lesson12.check_extra_calls(extra_calls_set_as_dict)
    assert len(report.results) == len(lesson12.TRACES)
    failed = len(report.failures)
    assert 0 < failed < len(lesson12.TRACES)
    assert f"{failed} of {len(lesson12.TRACES)} checks failed." in repr(report)


def test_extra_calls_set_difference_misses_a_repeated_call():
    text = repr(lesson12.check_extra_calls(extra_calls_set_as_dict))
    assert "FAIL  the echo program" in text
    assert "count, do not compare sets" in text


def test_extra_calls_signals_and_exits_are_not_calls():
    text = repr(lesson12.check_extra_calls(extra_calls_every_record))
    assert "PASS  the echo program" in text
    assert "FAIL  a signal during recv()" in text or "FAIL  send() to a peer" in text
    assert "is not a system call" in text or "are not a system call" in text


def test_extra_calls_negative_counts_are_refused():
    text = repr(lesson12.check_extra_calls(extra_calls_negative))
    assert "negative count" in text


def test_extra_calls_that_never_returns_is_a_hang_not_a_stub():
    report = lesson12.check_extra_calls(never_returns)
    assert len(report.results) == 1, report
    assert "did not return within the time limit" in repr(report)
    assert "written yet" not in repr(report)


def test_the_recorded_traces_parse_into_the_expected_records():
    description, c_text, py_text, expected = lesson12.TRACES[1]
    py = socklab.trace.Trace(socklab.trace.parse(py_text))
    assert py.calls == ["socket", "connect", "recvfrom", "SIGALRM", "recvfrom", "close",
                        "exited"]
    assert py[2].errno == "ERESTARTSYS" and py[2].result is None


# ------------------------------------------------------------------ ask


def _receive(sock, size):
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def ask_nodelay(sock, body):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(struct.pack("!I", len(body)))
    sock.sendall(body)
    (size,) = struct.unpack("!I", _receive(sock, 4))
    return _receive(sock, size)


def ask_one_write(sock, body):
    sock.sendall(struct.pack("!I", len(body)) + body)
    (size,) = struct.unpack("!I", _receive(sock, 4))
    return _receive(sock, size)


def ask_two_writes(sock, body):
    sock.sendall(struct.pack("!I", len(body)))
    sock.sendall(body)
    (size,) = struct.unpack("!I", _receive(sock, 4))
    return _receive(sock, size)


def ask_stub(sock, body):
    ...


def test_ask_right_answers_pass():
    for answer in (ask_nodelay, ask_one_write):
        report = lesson12.check_ask(answer)
        assert report.ok, report


def test_ask_in_two_writes_stalls_and_is_told_why():
    report = lesson12.check_ask(ask_two_writes)
    text = repr(report)
    assert "PASS  8 requests, 8 right answers" in text
    assert "FAIL  a request takes less than 25 ms" in text
    assert "TCP_NODELAY" in text and "delayed ACK" in text


def test_ask_stub_is_not_written():
    assert "is it written yet?" in repr(lesson12.check_ask(ask_stub))


def test_ask_that_never_returns_is_a_hang_not_a_stub():
    report = lesson12.check_ask(never_returns)
    assert [description for description, _ in report.failures] == ["the answers are right"]
    assert "did not return in time" in repr(report) and "written yet" not in repr(report)


def test_ask_wrong_answer_is_refused_and_nothing_is_left_running():
    report = lesson12.check_ask(lambda sock, body: body)
    assert "not the answer" in repr(report)
    assert socklab.running() == []
