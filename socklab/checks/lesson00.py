"""Checks for lesson 00's exercises: ask() and shout()."""

import socket
import threading

from ..servers import serve
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_ask", "check_shout"]


# More than loopback's socket buffers hold together -- the client's send and
# receive buffers and the server's -- so an ask() that sends everything before
# it reads deadlocks.  With Linux's defaults (net.ipv4.tcp_wmem max 4 MiB,
# tcp_rmem max 6 MiB) the four hold at most 20 MiB; a fixed size keeps the
# report the same on every machine.
LARGE = 32 * 1024 * 1024


def check_ask(ask):
    """Check ``ask(address, message) -> reply`` against a real echo server.

    ``ask`` must connect to ``address``, send ``message`` (bytes), and return the
    reply: the same bytes, since the peer is an echo server.
    """
    report = Report("Checking ask(address, message):")
    cases = [
        ("a short message", b"hello"),
        ("binary data with NUL bytes", b"\x00\x01binary\xff\x00"),
        ("200,000 bytes", (bytes(range(256)) * 782)[:199_996] + b"end!"),
        ("an empty message", b""),
        # A period of 251 bytes (a prime) does not line up with any buffer
        # size, so a piece of the reply in the wrong place shows.
        ("32 MiB, more than the socket buffers hold",
         (bytes(range(251)) * (LARGE // 251 + 1))[:LARGE]),
    ]
    echo = _CountingEcho()
    with serve(echo, name="check-ask") as srv:
        for description, message in cases:
            outcome, thread = call_with_time_limit(ask, srv.address, message)
            if not outcome.finished:
                # Asked before stop(), which unblocks everything: is ask() still
                # moving bytes (slow), or has nothing moved for a second (stuck)?
                stuck = not echo.wait_for_progress(timeout=1.0)
                srv.stop()  # closes the server's side, so the learner's recv() returns
                thread.join(TIME_LIMIT)
                hint = _hint_for_hang(message, echo.received, stuck)
                report.add(description, Verdict.fail(hint, final=True))
                return report
            if report.add(description, _judge_reply(outcome, message)).final:
                return report  # one hint is enough
    return report


class _CountingEcho:
    """An echo handler that counts what it moves, so that a check can tell an
    ask() that is stuck from one that is only slow."""

    def __init__(self):
        self.received = 0  # bytes received on the latest connection
        self.moved = 0  # bytes received or sent back, on any connection
        self._changed = threading.Condition()

    def __call__(self, conn):
        with self._changed:
            self.received = 0
        while True:
            data = conn.recv(65536)
            if not data:  # the client closed its side
                return
            self._count(len(data), received=True)
            conn.sendall(data)
            self._count(len(data))

    def _count(self, nbytes, received=False):
        with self._changed:
            if received:
                self.received += nbytes
            self.moved += nbytes
            self._changed.notify_all()

    def wait_for_progress(self, timeout):
        """True if the server receives or sends a byte within ``timeout`` seconds."""
        with self._changed:
            before = self.moved
            return self._changed.wait_for(lambda: self.moved != before, timeout)


def _hint_for_hang(message, received, stuck):
    """Why ask() did not return: ``received`` is how many bytes of ``message``
    reached the server; ``stuck``, whether no byte had moved for a second."""
    late = f"ask() did not return within {TIME_LIMIT:g} s.\n"
    if not message:
        return late + (
            "Nothing was sent, so nothing comes back: recv() waits until at least one\n"
            "byte arrives.  Stop reading once you have len(message) bytes -- here, 0."
        )
    so_far = f"the server has received {received:,} of {len(message):,} bytes"
    if not stuck:
        return late + (
            f"It is slow, not stuck: {so_far},\n"
            "and more keep moving.  reply += part on bytes copies the whole reply each\n"
            "time; a bytearray grows in place."
        )
    if received < len(message):
        return late + (
            f"It is stuck in a deadlock: {so_far},\n"
            "and no byte has moved for a second.  ask() sends the whole message before\n"
            "it reads the reply.  The echo server sends back what it reads; as you do\n"
            "not read, the reply fills your receive buffer and the server's send\n"
            "buffer, and the server blocks in send().  Then it stops reading, your bytes\n"
            "fill its receive buffer and your send buffer, and your send() blocks too:\n"
            "both sides wait in send() for the other to read.  Send a piece, read its\n"
            "echo, then send the next."
        )
    return late + (
        "It is probably waiting in recv() for bytes that will never come.  The reply\n"
        "is exactly len(message) bytes long; stop reading when you have them all."
    )


def _judge_reply(outcome, message):
    """Judge ask()'s reply to ``message``: the echo, every byte of it, as bytes."""
    reply = outcome.value
    if not_written(outcome):
        return Verdict.not_written()
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    if isinstance(reply, str):
        return Verdict.fail("it returned a str; sockets carry bytes (recv() returns bytes).")
    if not isinstance(reply, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(reply).__name__}, not bytes.")
    if len(reply) < len(message):
        return Verdict.fail(
            f"the reply has {len(reply):,} of {len(message):,} bytes.\n"
            "One recv() returns what has arrived so far, not the whole message:\n"
            "call it in a loop until you have len(message) bytes."
        )
    if reply != message:
        return Verdict.fail(
            f"the reply differs from what the echo server sent back ({len(reply):,} bytes).")
    return Verdict.ok()


def check_shout(shout):
    """Check a TCP handler ``shout(conn)`` that answers in capital letters.

    The handler reads from ``conn`` and sends back ``data.upper()`` until the
    client closes; then it must return.
    """
    report = Report("Checking shout(conn):")
    srv = serve(shout, name="check-shout")
    try:
        with socket.create_connection(srv.address, timeout=TIME_LIMIT) as sock:
            for message in (b"hello", b"socket programming"):
                verdict = _judge_shouted(_exchange(sock, message), message)
                if report.add(f"{message!r} comes back as {message.upper()!r}", verdict).final:
                    return report
        report.add("the handler returns when the client closes", _judge_close(srv))
    finally:
        try:
            srv.stop(timeout=TIME_LIMIT)
        except Exception as exc:
            report.add("the handler runs without errors", Verdict.fail(describe_error(exc)))
    return report


def _judge_shouted(reply, message):
    """Judge the handler's reply to ``message``: the same bytes in capitals.

    Every failure is final: the next message goes over the same connection, whose
    replies are out of step now.
    """
    if reply == message.upper():
        return Verdict.ok()
    if reply is None:
        return Verdict.fail("no reply within the time limit", final=True)
    if reply == b"":
        return Verdict.fail(
            "got b'': the handler closed the connection without answering (is it written yet?)",
            final=True)
    return Verdict.fail(f"got {reply!r}", final=True)


def _exchange(sock, message):
    """Send message, read as many bytes back; b'' if the server closed, None on timeout."""
    data = b""
    try:
        sock.sendall(message)
        while len(data) < len(message):
            part = sock.recv(len(message) - len(data))
            if not part:
                break
            data += part
    except socket.timeout:
        return None
    except (ConnectionResetError, BrokenPipeError):
        pass  # the handler closed with our bytes unread: the kernel sent RST
    return data


def _judge_close(srv):
    """Judge whether the handler of the server ``srv`` returned after the client closed."""
    try:
        srv.events.wait_for("close", timeout=2.0)
        return Verdict.ok()
    except TimeoutError:
        pass
    empty_reads = [e for e in srv.events.of_kind("recv") if e.nbytes == 0]
    if len(empty_reads) > 1:
        hint = (
            f"recv() returned b'' {len(empty_reads):,} times and the handler kept going.\n"
            "b'' means the client has closed its side: leave the loop (this is the\n"
            "seed's bug -- its server spins forever on a closed connection)."
        )
    else:
        hint = "the handler is still running 2 s after the client closed."
    return Verdict.fail(hint)
