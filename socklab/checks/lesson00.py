"""Checks for lesson 00's exercises: ask() and shout()."""

import socket

from ..servers import TCPEchoServer, serve
from .report import (
    NOT_WRITTEN,
    TIME_LIMIT,
    Report,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_ask", "check_shout"]


def check_ask(ask):
    """Check ``ask(address, message) -> reply`` against a real echo server.

    ``ask`` must connect to ``address``, send ``message`` (bytes), and return the
    reply: the same bytes, since the peer is an echo server.
    """
    report = Report("Checking ask(address, message):")
    cases = [
        ("a short message", b"hello"),
        ("binary data with NUL bytes", b"\x00\x01binary\xff\x00"),
        ("200,000 bytes", bytes(range(256)) * 781 + b"end!"),
        ("an empty message", b""),
    ]
    with TCPEchoServer(name="check-ask") as srv:
        for description, message in cases:
            outcome, thread = call_with_time_limit(ask, srv.address, message)
            if not outcome.finished:
                srv.stop()  # closes the server's side, so the learner's recv() returns
                thread.join(TIME_LIMIT)
                report.add(False, description, _hint_for_hang(message))
                return report
            hint = _judge_reply(outcome, message)
            report.add(hint is None, description, hint or "")
            if not_written(outcome):
                return report  # one hint is enough
    return report


def _hint_for_hang(message):
    if not message:
        return (
            f"ask() did not return within {TIME_LIMIT:g} s.\n"
            "Nothing was sent, so nothing comes back: recv() waits until at least one\n"
            "byte arrives.  Stop reading once you have len(message) bytes -- here, 0."
        )
    return (
        f"ask() did not return within {TIME_LIMIT:g} s.\n"
        "It is probably waiting in recv() for bytes that will never come.  The reply\n"
        "is exactly len(message) bytes long; stop reading when you have them all."
    )


def _judge_reply(outcome, message):
    """None if the reply is right, else a hint explaining what is wrong."""
    reply = outcome.value
    if not_written(outcome):
        return NOT_WRITTEN
    if outcome.error is not None:
        return describe_error(outcome.error)
    if isinstance(reply, str):
        return "it returned a str; sockets carry bytes (recv() returns bytes)."
    if not isinstance(reply, (bytes, bytearray)):
        return f"it returned {type(reply).__name__}, not bytes."
    if len(reply) < len(message):
        return (
            f"the reply has {len(reply):,} of {len(message):,} bytes.\n"
            "One recv() returns what has arrived so far, not the whole message:\n"
            "call it in a loop until you have len(message) bytes."
        )
    if reply != message:
        return f"the reply differs from what the echo server sent back ({len(reply):,} bytes)."
    return None


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
                reply = _exchange(sock, message)
                if not report.add(
                    reply == message.upper(),
                    f"{message!r} comes back as {message.upper()!r}",
                    _hint_for_reply(reply),
                ):
                    return report
        report.add(*_judge_close(srv))
    finally:
        try:
            srv.stop(timeout=TIME_LIMIT)
        except Exception as exc:
            report.add(False, "the handler runs without errors", describe_error(exc))
    return report


def _hint_for_reply(reply):
    if reply is None:
        return "no reply within the time limit"
    if reply == b"":
        return "got b'': the handler closed the connection without answering (is it written yet?)"
    return f"got {reply!r}"


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
    """Did the handler return after the client closed?  (description, hint)"""
    description = "the handler returns when the client closes"
    try:
        srv.events.wait_for("close", timeout=2.0)
        return True, description, ""
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
    return False, description, hint
