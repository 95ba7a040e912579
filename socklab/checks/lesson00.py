"""Checks for lesson 00's exercises: ask() and shout()."""

import socket

from ..servers import TCPEchoServer, serve
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
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
        ("200,000 bytes", (bytes(range(256)) * 782)[:199_996] + b"end!"),
        ("an empty message", b""),
    ]
    with TCPEchoServer(name="check-ask") as srv:
        for description, message in cases:
            outcome, thread = call_with_time_limit(ask, srv.address, message)
            if not outcome.finished:
                srv.stop()  # closes the server's side, so the learner's recv() returns
                thread.join(TIME_LIMIT)
                report.add(description, Verdict.fail(_hint_for_hang(message), final=True))
                return report
            if report.add(description, _judge_reply(outcome, message)).final:
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
