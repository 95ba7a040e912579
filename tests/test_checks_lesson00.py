"""Lesson 00's checks accept right answers and reject the classic wrong ones, in words.

Every check runs on real sockets on loopback, so these tests do too.
"""

import socket
import time

import socklab.checks as checks
from socklab.checks import lesson00

# ------------------------------------------------------------------------ ask

PIECE = 65536


def ask_right(address, message, pause=0.0):
    """The lesson's solution: a piece at a time, each piece's echo read before
    the next is sent, into a bytearray (``pause``: seconds slept after each)."""
    reply = bytearray()
    with socket.create_connection(address, timeout=30 if pause else 5) as sock:
        for start in range(0, len(message), PIECE):
            piece = message[start:start + PIECE]
            sock.sendall(piece)
            while len(reply) < start + len(piece):
                part = sock.recv(65536)
                if not part:
                    return bytes(reply)
                reply += part
            time.sleep(pause)  # the slowness under test, not a wait for an event
    return bytes(reply)


def ask_send_all_then_read(address, message):
    """Right until the message is larger than the socket buffers: everything is
    sent before a byte of the reply is read (issue 13, review D1)."""
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(message)
        reply = bytearray()
        while len(reply) < len(message):
            part = sock.recv(65536)
            if not part:
                break
            reply += part
        return bytes(reply)


def ask_too_slow(address, message):
    """Right, but a piece every 50 ms: 32 MiB would take 25 s."""
    return ask_right(address, message, pause=0.05)


def ask_one_recv(address, message):
    """The classic mistake: one recv() and hope it is all there."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(message)
        return sock.recv(1024) if message else b""


def ask_str(address, message):
    return ask_right(address, message).decode("latin-1")


def ask_forever(address, message):
    """Waits for a reply to an empty message: recv() blocks until the peer closes."""
    with socket.create_connection(address) as sock:
        sock.sendall(message)
        return sock.recv(1 << 20)


def ask_unwritten(address, message):
    raise NotImplementedError


def test_check_ask_accepts_a_right_answer():
    report = checks.check_ask(ask_right)
    assert report.ok, report
    assert repr(report).endswith("All 5 checks passed.")


def test_the_large_case_is_larger_than_linux_default_socket_buffers_hold():
    # Client and server, a send and a receive buffer each: tcp_wmem's and
    # tcp_rmem's default maxima (man 7 tcp) are 4 MiB and 6 MiB.
    assert lesson00.LARGE > 2 * (4 + 6) * 1024 * 1024


def test_check_ask_names_the_deadlock_of_sending_everything_before_reading():
    report = checks.check_ask(ask_send_all_then_read)
    assert not report.ok
    text = repr(report)
    assert "  PASS  200,000 bytes\n" in text  # it is the size that breaks it
    assert "  FAIL  32 MiB, more than the socket buffers hold\n" in text
    assert "stuck in a deadlock" in text
    assert "both sides wait in send() for the other to read" in text
    assert "  PASS  an empty message\n" in text
    assert text.endswith("1 of 5 checks failed.")


def test_check_ask_tells_slow_from_stuck():
    report = checks.check_ask(ask_too_slow)
    assert not report.ok
    text = repr(report)
    assert "  FAIL  32 MiB, more than the socket buffers hold\n" in text
    assert "slow, not stuck" in text
    assert "deadlock" not in text


def test_check_ask_explains_a_single_recv():
    report = checks.check_ask(ask_one_recv)
    assert not report.ok
    assert "call it in a loop" in repr(report)


def test_check_ask_rejects_str():
    report = checks.check_ask(ask_str)
    assert not report.ok
    assert "sockets carry bytes" in repr(report)


def test_check_ask_explains_a_hang_without_hanging():
    report = checks.check_ask(ask_forever)
    assert not report.ok
    assert "recv() waits until at least one" in repr(report)


def test_check_ask_says_not_written_yet():
    assert "is it written yet?" in repr(checks.check_ask(ask_unwritten))


# ---------------------------------------------------------------------- shout

def shout_right(conn):
    while True:
        data = conn.recv(1024)
        if not data:
            return
        conn.sendall(data.upper())


def shout_lower(conn):
    while data := conn.recv(1024):
        conn.sendall(data.lower())


def shout_spins_on_eof(conn):
    """The seed's bug: never leaves the loop when recv() returns b''.

    (Bounded to 4 s here, so that the test ends by itself.)
    """
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        data = conn.recv(1024)
        conn.sendall(data.upper())


def shout_crashes(conn):
    conn.recv(1024)
    raise RuntimeError("oops")


def test_check_shout_accepts_a_right_answer():
    report = checks.check_shout(shout_right)
    assert report.ok, report


def test_check_shout_rejects_wrong_replies():
    report = checks.check_shout(shout_lower)
    assert not report.ok
    assert "got b'hello'" in repr(report)


def test_check_shout_spots_the_seeds_eof_bug():
    report = checks.check_shout(shout_spins_on_eof)
    assert not report.ok
    assert "b'' means the client has closed" in repr(report)


def test_check_shout_reports_a_crash():
    report = checks.check_shout(shout_crashes)
    assert not report.ok
    assert "RuntimeError: oops" in repr(report)


def test_unwritten_stubs_get_a_friendly_word():
    def ask(address, message):
        ...

    def shout(conn):
        ...

    assert "is it written yet?" in repr(checks.check_ask(ask))
    assert "is it written yet?" in repr(checks.check_shout(shout))
