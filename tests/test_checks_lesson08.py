"""Lesson 08's checks accept right answers and reject the usual wrong ones, in words.

Every check runs on real sockets on loopback, so these tests do too.
"""

import socket
import struct

from socklab.checks import lesson08

# ---------------------------------------------------------------- set_timeouts


def set_timeouts_right(sock, seconds):
    whole = int(seconds)
    timeval = struct.pack("ll", whole, round((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def set_timeouts_divmod(sock, seconds):
    """Right too: divmod, and a different but equivalent packing (native longs)."""
    whole, rest = divmod(seconds, 1)
    timeval = struct.pack("@ll", int(whole), int(round(rest * 1e6)))
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        sock.setsockopt(socket.SOL_SOCKET, option, timeval)


def set_timeouts_stub(sock, seconds):
    ...


def set_timeouts_settimeout(sock, seconds):
    sock.settimeout(seconds)


def set_timeouts_ints(sock, seconds):
    """The classic: two C ints instead of two longs -- 8 bytes, EINVAL."""
    timeval = struct.pack("ii", int(seconds), 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


def set_timeouts_all_micro(sock, seconds):
    """Everything in the microseconds field: EDOM once seconds >= 1."""
    timeval = struct.pack("ll", 0, int(seconds * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def set_timeouts_float(sock, seconds):
    timeval = struct.pack("ll", seconds, 0)  # struct.error for a float
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


def set_timeouts_receive_only(sock, seconds):
    whole = int(seconds)
    timeval = struct.pack("ll", whole, round((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


def set_timeouts_whole_seconds(sock, seconds):
    """Drops the fraction: 0.3 becomes 0 -- no limit at all."""
    timeval = struct.pack("ll", int(seconds), 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def set_timeouts_nonblocking(sock, seconds):
    set_timeouts_right(sock, seconds)
    sock.setblocking(False)  # gettimeout() is then 0.0


def test_set_timeouts_right_answers_pass():
    for answer in (set_timeouts_right, set_timeouts_divmod):
        report = lesson08.check_set_timeouts(answer)
        assert report.ok, repr(report)
        assert len(report.results) == 5


def test_set_timeouts_stub_is_not_written_yet():
    text = repr(lesson08.check_set_timeouts(set_timeouts_stub))
    assert "is it written yet?" in text
    assert "1 of 1 checks failed" in text


def test_set_timeouts_wrong_answers_get_their_hint():
    expected = {
        set_timeouts_settimeout: "settimeout()",
        set_timeouts_ints: "16 bytes",
        set_timeouts_float: "not a float",
        set_timeouts_receive_only: "SO_SNDTIMEO is still 0",
        set_timeouts_whole_seconds: "SO_RCVTIMEO is still 0",
        set_timeouts_nonblocking: "Python timeout",
    }
    for answer, hint in expected.items():
        report = lesson08.check_set_timeouts(answer)
        assert not report.ok, answer.__name__
        assert hint in repr(report), (answer.__name__, repr(report))


def test_set_timeouts_microseconds_overflow_is_explained():
    report = lesson08.check_set_timeouts(set_timeouts_all_micro)
    text = repr(report)
    assert not report.ok
    assert "PASS  set_timeouts(sock, 0.3)" in text  # fine below one second ...
    assert "EDOM" in text                            # ... but not at 1.25


# ---------------------------------------------------- request_then_half_close


def half_close_right(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    return reply


def half_close_makefile(address, data):
    """Right too: read the rest through a file."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as f:
            return f.read()


def half_close_stub(address, data):
    ...


def half_close_no_shutdown(address, data):
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    return reply


def half_close_closes(address, data):
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(data)
    sock.close()
    return sock.recv(65536)


def half_close_rdwr(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_RDWR)
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    return reply


def half_close_one_recv(address, data):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(65536)


def half_close_str(address, data):
    return half_close_right(address, data).decode("latin-1")


def test_half_close_right_answers_pass():
    for answer in (half_close_right, half_close_makefile):
        report = lesson08.check_request_then_half_close(answer)
        assert report.ok, repr(report)
        assert len(report.results) == 3


def test_half_close_stub_is_not_written_yet():
    text = repr(lesson08.check_request_then_half_close(half_close_stub))
    assert "is it written yet?" in text
    assert "1 of 1 checks failed" in text


def test_half_close_wrong_answers_get_their_hint():
    expected = {
        half_close_no_shutdown: "shutdown(socket.SHUT_WR)",
        half_close_closes: "close() gives up",
        half_close_rdwr: "SHUT_RDWR",
        half_close_one_recv: "read until recv() returns b''",
        half_close_str: "str",
    }
    for answer, hint in expected.items():
        report = lesson08.check_request_then_half_close(answer)
        assert not report.ok, answer.__name__
        assert hint in repr(report), (answer.__name__, repr(report))


def test_reversed_reply():
    assert lesson08.reversed_reply(b"abc") == b"3 bytes\ncba"
    assert lesson08.reversed_reply(b"") == b"0 bytes\n"
