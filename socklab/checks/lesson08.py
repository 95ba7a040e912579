"""Checks for lesson 08's exercises: set_timeouts() and request_then_half_close().

* check_set_timeouts: the learner sets SO_RCVTIMEO and SO_SNDTIMEO with
  setsockopt() and a packed struct timeval -- the way C does it, not with
  settimeout().  The check reads both options back, then makes a real recv() on
  the socket, with a peer that never sends, and a real send() to a peer that never
  reads: each must fail with BlockingIOError (EAGAIN) after about the time asked.
  The peer is a bare listening socket that never calls accept(): the kernel
  completes the handshake on its own, and nothing ever reads or writes.
* check_request_then_half_close: the learner sends a request, half-closes with
  shutdown(SHUT_WR) and reads the reply until b''.  The check's server answers
  only after it has seen the end of the request (recv() returning b''), and its
  answer is long, so one recv() is not enough.  It notes whether it saw the end,
  which tells "you never sent a FIN" from "you stopped reading too early".
"""

import errno
import socket
import struct
import time

from ..servers import serve
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
)

__all__ = ["check_set_timeouts", "check_request_then_half_close", "reversed_reply"]

TIMEVAL = "ll"  # struct timeval on 64-bit Linux: two C longs, 16 bytes
ROUNDING = 0.011  # the kernel keeps timeouts in jiffies (1 to 10 ms)
SLACK = 0.5  # a real wait may run late by this much on a busy machine
SMALL_BUFFER = 4096  # SO_SNDBUF / SO_RCVBUF for the send test (the kernel doubles it)


# ------------------------------------------------------------ set_timeouts


def _read_timeval(sock, option):
    """The option's struct timeval, in seconds (a float)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize(TIMEVAL))
    seconds, micro = struct.unpack(TIMEVAL, raw)
    return seconds + micro / 1_000_000


def _silent_pair():
    """(client, listener): a connected blocking client whose peer never reads or writes.

    The listener never accepts; the connection waits in its queue, complete.
    Small buffers, so that a few sends fill them up.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    client.settimeout(TIME_LIMIT)
    client.connect(listener.getsockname())
    client.settimeout(None)  # blocking, with no Python timeout: the learner's turn
    return client, listener


def _looks_like_stub(function):
    """True for a body of only `...` (or `pass`): it refers to no name at all."""
    code = getattr(function, "__code__", None)
    return code is not None and not code.co_names


def _hint_for_error(exc):
    if isinstance(exc, OSError) and exc.errno == errno.EINVAL:
        return (f"{describe_error(exc)}\n"
                "The kernel rejected the value's size.  A struct timeval is two C longs,\n"
                "16 bytes on 64-bit Linux: struct.pack('ll', whole_seconds, microseconds).\n"
                "An int, or struct.pack('ii', ...), is only 4 or 8 bytes.")
    if isinstance(exc, OSError) and exc.errno == errno.EDOM:
        return (f"{describe_error(exc)}\n"
                "EDOM: the microseconds field must be below 1,000,000.  Put the whole\n"
                "seconds in the first field and only the rest, in microseconds, in the second.")
    if isinstance(exc, struct.error):
        return (f"{describe_error(exc)}\n"
                "struct.pack('ll', ...) wants two ints: whole seconds, and the rest in\n"
                "microseconds -- not a float.")
    return describe_error(exc)


def _judge_values(sock, seconds):
    """Judge the socket's options: both limits hold `seconds`, and no Python timeout is set."""
    if sock.gettimeout() is not None:
        return Verdict.fail(
            f"the socket has a Python timeout (gettimeout() = {sock.gettimeout()!r}).\n"
            "That is settimeout(): it makes the descriptor non-blocking and waits in\n"
            "poll().  This exercise asks for the kernel's own limits: setsockopt() with\n"
            "SO_RCVTIMEO and SO_SNDTIMEO, and no settimeout().")
    for name in ("SO_RCVTIMEO", "SO_SNDTIMEO"):
        value = _read_timeval(sock, getattr(socket, name))
        if value == 0:
            return Verdict.fail(
                f"{name} is still 0, which means no limit at all.  Either it was never\n"
                f"set -- sock.setsockopt(socket.SOL_SOCKET, socket.{name}, <packed timeval>)\n"
                "-- or the timeval you packed was 0 s and 0 microseconds: int(0.3) is 0, so\n"
                "the fraction must go into the second field, in microseconds.")
        if abs(value - seconds) > ROUNDING:
            return Verdict.fail(
                f"{name} holds {value:g} s, not {seconds:g} s.  Whole seconds go in the\n"
                "first field of the timeval, the rest *in microseconds* in the second.")
    return Verdict.ok()


def _timed(call, *args, limit):
    """Run call(*args) with a time limit; (outcome, seconds it took, finished)."""
    started = time.monotonic()
    outcome, thread = call_with_time_limit(call, *args, limit=limit)
    return outcome, time.monotonic() - started, outcome.finished


def _fill_until_blocked(sock):
    """send() until it fails; returns the exception (or None) and the last call's time."""
    chunk = bytes(65536)
    for _ in range(200):  # the buffers hold a few hundred KiB at most
        started = time.monotonic()
        try:
            sock.send(chunk)
        except OSError as exc:
            return exc, time.monotonic() - started
    return None, 0.0


def _judge_wait(kind, outcome, took, finished, seconds):
    """Judge a recv() or send() on the socket: it failed with EAGAIN after about `seconds`."""
    if not finished:
        return Verdict.fail(
            f"{kind} was still waiting after {seconds + SLACK + 1:g} s: the limit did\n"
            "not act.  Did you set the option on this very socket?")
    error = outcome.error
    if kind == "send()":
        error, took = outcome.value if outcome.value else (None, took)
    if error is None:
        return Verdict.fail(f"{kind} did not fail, but it should have: the peer never answers.")
    if not isinstance(error, BlockingIOError):
        return Verdict.fail(f"{kind} {describe_error(error)}; expected BlockingIOError (EAGAIN).")
    if took < seconds - ROUNDING - 0.05:
        return Verdict.fail(
            f"{kind} gave up after {took:.2f} s, before the limit of {seconds:g} s.\n"
            "Is the socket non-blocking (setblocking(False))?  It must stay blocking.")
    if took > seconds + SLACK:
        return Verdict.fail(f"{kind} gave up after {took:.2f} s; the limit was {seconds:g} s.")
    return Verdict.ok()


def check_set_timeouts(set_timeouts):
    """Check ``set_timeouts(sock, seconds)``: SO_RCVTIMEO and SO_SNDTIMEO via setsockopt."""
    report = Report("Checking set_timeouts(sock, seconds):")
    cases = [(0.3, True), (1.25, False), (2, False)]
    for seconds, wait_for_real in cases:
        client, listener = _silent_pair()
        try:
            # Any failure ends the check: each step builds on the one before.
            verdict = _judge_setting(set_timeouts, client, seconds)
            if report.add(f"set_timeouts(sock, {seconds!r}): both options hold {seconds:g} s",
                          verdict.final_if_failed()).final:
                return report
            if not wait_for_real:
                continue
            limit = seconds + SLACK + 1
            outcome, took, finished = _timed(client.recv, 100, limit=limit)
            verdict = _judge_wait("recv()", outcome, took, finished, seconds)
            if report.add(f"recv() from a silent peer: BlockingIOError after about {seconds:g} s",
                          verdict.final_if_failed()).final:
                return report
            outcome, took, finished = _timed(_fill_until_blocked, client, limit=limit + 1)
            verdict = _judge_wait("send()", outcome, took, finished, seconds)
            if report.add(f"send() to a peer that never reads: BlockingIOError after about "
                          f"{seconds:g} s", verdict.final_if_failed()).final:
                return report
        finally:
            client.close()
            listener.close()
    return report


def _judge_setting(set_timeouts, client, seconds):
    """Judge set_timeouts(client, seconds): it returns, and both options hold ``seconds``."""
    outcome, thread = call_with_time_limit(set_timeouts, client, seconds)
    if not outcome.finished:
        client.close()
        thread.join(TIME_LIMIT)
        return Verdict.fail(f"set_timeouts() did not return within {TIME_LIMIT:g} s: it only\n"
                            "has to set two options, not to receive anything.")
    if outcome.error is not None:
        return Verdict.fail(_hint_for_error(outcome.error))
    untouched = (client.gettimeout() is None
                 and _read_timeval(client, socket.SO_RCVTIMEO) == 0
                 and _read_timeval(client, socket.SO_SNDTIMEO) == 0)
    if untouched and _looks_like_stub(set_timeouts):
        return Verdict.not_written()
    return _judge_values(client, seconds)


# ------------------------------------------------------- request_then_half_close


def reversed_reply(data):
    """What the check's server answers to a request: a count line, then the bytes reversed."""
    return f"{len(data)} bytes\n".encode() + bytes(data[::-1])


def _answer_after_eof(seen):
    """A handler: read until b'', note it in `seen`, answer with reversed_reply()."""

    def handler(conn):
        chunks = []
        while data := conn.recv(65536):
            chunks.append(data)
        if conn.stopping:
            return  # the check is over: b'' came from stop(), not from the client
        seen.append("eof")
        conn.sendall(reversed_reply(b"".join(chunks)))
        seen.append("answered")

    return handler


def _judge_reply(outcome, data, seen):
    """Judge request_then_half_close()'s reply to ``data``: all of reversed_reply(data)."""
    expected = reversed_reply(data)
    reply = outcome.value
    if outcome.error is not None:
        exc = outcome.error
        if isinstance(exc, OSError) and exc.errno == errno.EBADF:
            return Verdict.fail(
                f"{describe_error(exc)}\n"
                "The socket was closed before you read the reply.  close() gives up the\n"
                "socket in both directions; shutdown(socket.SHUT_WR) ends only your sending.")
        if isinstance(exc, ConnectionResetError):
            return Verdict.fail(
                f"{describe_error(exc)}\n"
                "The server's answer met a socket that no longer reads.  Did you shut down\n"
                "both directions (SHUT_RDWR)?  Only SHUT_WR: you still have to read.")
        return Verdict.fail(describe_error(exc))
    if reply is None:
        return Verdict.not_written()
    if isinstance(reply, str):
        return Verdict.fail("it returned a str; sockets carry bytes.")
    if not isinstance(reply, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(reply).__name__}, not bytes.")
    if reply == expected:
        return Verdict.ok()
    if not reply:
        return Verdict.fail(
            "the reply is empty.  Did you shut down both directions (SHUT_RDWR), or stop\n"
            "reading before the answer came?  Shut down only SHUT_WR, then read until\n"
            "recv() returns b''.")
    if expected.startswith(reply):
        return Verdict.fail(
            f"got the first {len(reply):,} of {len(expected):,} bytes of the reply.\n"
            "One recv() returns what has arrived so far: read until recv() returns b''\n"
            "-- the server closes once it has answered.")
    return Verdict.fail(f"the reply differs from the server's answer ({len(reply):,} bytes,"
                        f" expected {len(expected):,}).")


def _hint_for_hang(seen):
    if "eof" not in seen:
        return (f"request_then_half_close() did not return within {TIME_LIMIT:g} s, and the\n"
                "server never saw the end of your request: it answers only after recv()\n"
                "returns b''.  Tell it you are done sending: sock.shutdown(socket.SHUT_WR).")
    return (f"request_then_half_close() did not return within {TIME_LIMIT:g} s, although the\n"
            "server got the end of your request and answered.  Stop reading when recv()\n"
            "returns b''.")


def check_request_then_half_close(request_then_half_close):
    """Check ``request_then_half_close(address, data) -> reply`` against a server that
    answers only after the end of the request."""
    report = Report("Checking request_then_half_close(address, data):")
    cases = [
        ("a short request", b"hello, server"),
        ("about 300,000 bytes: a long request, and a long reply", bytes(range(256)) * 1171 + b"end!"),
        ("an empty request", b""),
    ]
    for description, data in cases:
        seen = []
        srv = serve(_answer_after_eof(seen), name="check-half-close")
        try:
            outcome, thread = call_with_time_limit(request_then_half_close, srv.address, data)
            if not outcome.finished:
                srv.stop(timeout=TIME_LIMIT)  # shuts the server's side: a blocked recv() returns
                thread.join(TIME_LIMIT)
                report.add(description, Verdict.fail(_hint_for_hang(seen), final=True))
                return report
            # Any failure ends the check: a longer request would fail the same way.
            verdict = _judge_reply(outcome, data, seen).final_if_failed()
            if report.add(description, verdict).final:
                return report
        finally:
            try:
                srv.stop(timeout=TIME_LIMIT)
            except Exception:
                pass  # e.g. the server's answer met a closed socket: the hint said why
    return report
