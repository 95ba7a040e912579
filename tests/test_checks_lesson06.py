"""Lesson 06's checks accept right answers and reject the usual wrong ones, in words.

Every check makes its errors happen on real sockets on loopback, so these tests do too.
"""

import errno
import socket

from socklab.checks import lesson06

# -------------------------------------------------------------------- classify


def classify_right(exc):
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "peer closed"
    if isinstance(exc, (InterruptedError, BlockingIOError, TimeoutError)):
        return "retry"
    return "give up"


def classify_by_errno(exc):
    """Right too: by errno number, with TimeoutError's errno None in mind."""
    if isinstance(exc, TimeoutError):
        return "retry"
    code = getattr(exc, "errno", None)
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "peer closed"
    if code in (errno.EINTR, errno.EAGAIN):
        return "retry"
    return "give up"


def classify_oserror_first(exc):
    """Wrong: the general class first, so every OSError is 'give up'."""
    if isinstance(exc, OSError):
        return "give up"
    return "retry"


def classify_connection_error_first(exc):
    """Wrong: ConnectionError swallows ConnectionRefusedError."""
    if isinstance(exc, ConnectionError):
        return "peer closed"
    if isinstance(exc, (InterruptedError, BlockingIOError, TimeoutError)):
        return "retry"
    return "give up"


def classify_timeout_gives_up(exc):
    """Wrong: a timeout is treated as fatal."""
    if isinstance(exc, TimeoutError):
        return "give up"
    return classify_right(exc)


def classify_made_up_word(exc):
    return "try again" if isinstance(exc, BlockingIOError) else classify_right(exc)


def classify_stub(exc):
    ...


def classify_raises(exc):
    return {"ConnectionRefusedError": "refused"}[type(exc).__name__]


def test_make_exceptions_are_the_real_classes():
    kinds = [type(exc) for _, exc, _ in lesson06.make_exceptions()]
    assert kinds == [ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                     TimeoutError, BlockingIOError, InterruptedError, OSError, OSError,
                     TypeError]


def test_classify_right_answers_pass():
    for classify in (classify_right, classify_by_errno):
        report = lesson06.check_classify(classify)
        assert report.ok, report


def test_classify_oserror_first_is_rejected_with_the_order_hint():
    report = lesson06.check_classify(classify_oserror_first)
    assert not report.ok
    assert "before the general OSError" in repr(report)


def test_classify_connection_error_first_is_rejected():
    report = lesson06.check_classify(classify_connection_error_first)
    assert not report.ok
    assert "Test for it before ConnectionError" in repr(report)


def test_classify_timeout_as_give_up_is_rejected():
    report = lesson06.check_classify(classify_timeout_gives_up)
    assert not report.ok
    assert "the peer was slow" in repr(report)


def test_classify_unknown_answer_names_the_allowed_ones():
    report = lesson06.check_classify(classify_made_up_word)
    assert not report.ok
    assert "'try again'" in repr(report) and "'peer closed'" in repr(report)


def test_classify_stub_says_not_written():
    report = lesson06.check_classify(classify_stub)
    assert not report.ok
    assert "is it written yet?" in repr(report)
    assert len(report.results) == 1


def test_classify_that_raises_is_reported():
    report = lesson06.check_classify(classify_raises)
    assert not report.ok
    assert "it raised KeyError" in repr(report)


# ----------------------------------------------------------------------- fetch


def fetch_right(address, data):
    try:
        with socket.create_connection(address, timeout=1) as s:
            s.sendall(data)
            reply = bytearray()
            while piece := s.recv(65536):
                reply += piece
            return bytes(reply)
    except ConnectionRefusedError:
        return "error: connection refused"
    except (ConnectionResetError, BrokenPipeError):
        return "error: connection reset"
    except TimeoutError:
        return "error: timed out"


def fetch_one_recv(address, data):
    """Wrong: a single recv() gets only part of a big reply."""
    try:
        with socket.create_connection(address, timeout=1) as s:
            s.sendall(data)
            return s.recv(65536)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"


def fetch_lets_errors_escape(address, data):
    with socket.create_connection(address, timeout=1) as s:
        s.sendall(data)
        reply = b""
        while piece := s.recv(65536):
            reply += piece
        return reply


def fetch_vague(address, data):
    """Wrong: one message for every error."""
    try:
        return fetch_lets_errors_escape(address, data)
    except OSError:
        return "error"


def fetch_no_timeout(address, data):
    """Wrong: no timeout, so a silent server makes it wait forever."""
    try:
        with socket.create_connection(address) as s:
            s.sendall(data)
            reply = b""
            while piece := s.recv(65536):
                reply += piece
            return reply
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"


def fetch_stub(address, data):
    ...


def test_fetch_right_answer_passes():
    report = lesson06.check_fetch(fetch_right)
    assert report.ok, report
    assert len(report.results) == 5


def test_fetch_one_recv_is_rejected():
    report = lesson06.check_fetch(fetch_one_recv)
    assert not report.ok
    assert "read until recv()" in repr(report)


def test_fetch_letting_errors_escape_is_rejected():
    report = lesson06.check_fetch(fetch_lets_errors_escape)
    assert not report.ok
    assert "it raised ConnectionRefusedError" in repr(report)
    assert "it raised ConnectionResetError" in repr(report)
    assert "it raised TimeoutError" in repr(report)


def test_fetch_vague_error_string_is_rejected():
    report = lesson06.check_fetch(fetch_vague)
    assert not report.ok
    assert "contain the word 'refused'" in repr(report)


def test_fetch_without_timeout_is_stopped_with_a_hint():
    report = lesson06.check_fetch(fetch_no_timeout)
    assert not report.ok
    assert "timeout=1" in repr(report)


def test_fetch_stub_says_not_written():
    report = lesson06.check_fetch(fetch_stub)
    assert not report.ok
    assert "is it written yet?" in repr(report)
    assert len(report.results) == 1
