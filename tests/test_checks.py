"""The exercise checkers must accept right answers and reject wrong ones, in words."""

import socket
import time

import socklab.checks as checks


def ask_right(address, message):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(message)
        reply = b""
        while len(reply) < len(message):
            part = sock.recv(65536)
            if not part:
                break
            reply += part
        return reply


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
    assert repr(report).endswith("All 4 checks passed.")


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
