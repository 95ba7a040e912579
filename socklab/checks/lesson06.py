"""Checks for lesson 06's exercises: classify() and fetch().

Both checks make real errors happen on loopback, the way a learner meets them:

* check_classify hands the learner's ``classify(exc)`` exceptions that were raised a
  moment ago by real sockets -- a refused connect(), a reset recv(), a send() into a
  broken pipe, a timeout, a non-blocking recv() with nothing to read, a bind() to a
  port in use, a send() on a closed socket, a str where bytes belong -- plus one
  InterruptedError made by hand (since Python 3.5, PEP 475, Python retries EINTR
  itself, so no socket call raises it any more).
* check_fetch runs the learner's ``fetch(address, data)`` against four peers: one
  that answers (with a reply too big for one recv()), a port where nobody listens, a
  server that resets the connection, and a server that never answers.
"""

import errno
import socket
import struct

from ..servers import serve
from .report import (
    NOT_WRITTEN,
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
)

__all__ = ["ANSWERS", "make_exceptions", "check_classify", "check_fetch",
           "reset_handler", "stall_handler", "answer_handler", "BIG_REPLY"]

# What classify() may answer, and what each answer tells the caller to do.
ANSWERS = {
    "retry": "make the same call again: now (EINTR) or a little later (EAGAIN, a timeout)",
    "peer closed": "the connection is over: close your socket; reconnect to go on",
    "refused": "nobody listens at that address: is the server running, is the port right?",
    "give up": "a bug or a setup problem that trying again will not fix: report it",
}

BIG_REPLY = bytes(range(256)) * 1200  # 307,200 bytes: far more than one recv() returns


def _linger_zero(sock):
    """SO_LINGER on, with a time of 0: close() then sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def reset_handler(conn):
    """Read the request, then reset the connection (close with SO_LINGER 0)."""
    conn.recv(65536)
    _linger_zero(conn)
    # Returning closes conn: with a linger time of 0 the kernel sends RST.


def stall_handler(conn):
    """Read whatever comes and never answer, until the client closes."""
    while conn.recv(65536):
        pass


def answer_handler(conn):
    """Answer one request, then close: b"big" gets BIG_REPLY, anything else an echo."""
    request = conn.recv(65536)
    conn.sendall(BIG_REPLY if request == b"big" else b"you said: " + request)


# -- Exercise 1: classify(exc) ----------------------------------------------------------

def _catch(action):
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("expected an error; none came")


def make_exceptions():
    """[(description, exception, expected answer)], each raised live on loopback."""
    cases = []
    nobody = socket.socket()  # bound, never listens: connect() is refused
    nobody.bind(("127.0.0.1", 0))
    resetter = serve(reset_handler, name="check-classify-reset")
    staller = serve(stall_handler, name="check-classify-stall")
    try:
        exc = _catch(lambda: socket.create_connection(nobody.getsockname(), timeout=TIME_LIMIT))
        cases.append(("connect() to a port where nobody listens", exc, "refused"))

        with socket.create_connection(resetter.address, timeout=TIME_LIMIT) as s:
            s.sendall(b"hello?")
            exc = _catch(lambda: s.recv(1024))
            cases.append(("recv() from a peer that reset the connection", exc, "peer closed"))
            exc = _catch(lambda: s.send(b"anyone?"))
            cases.append(("send() after the reset (broken pipe)", exc, "peer closed"))

        with socket.create_connection(staller.address, timeout=TIME_LIMIT) as s:
            s.settimeout(0.05)
            exc = _catch(lambda: s.recv(1024))
            cases.append(("recv() with a timeout, from a peer that never answers", exc, "retry"))
            s.setblocking(False)
            exc = _catch(lambda: s.recv(1024))
            cases.append(("recv() on a non-blocking socket, nothing arrived yet", exc, "retry"))

        exc = InterruptedError(errno.EINTR, "Interrupted system call")
        cases.append(("InterruptedError (EINTR; made by hand: Python retries it itself)",
                      exc, "retry"))

        with socket.socket() as s:
            exc = _catch(lambda: s.bind(staller.address))
        cases.append(("bind() to the port of a listening server (EADDRINUSE)", exc, "give up"))

        s = socket.create_connection(staller.address, timeout=TIME_LIMIT)
        s.close()
        exc = _catch(lambda: s.send(b"too late"))
        cases.append(("send() on a socket you already closed (EBADF)", exc, "give up"))

        with socket.create_connection(staller.address, timeout=TIME_LIMIT) as s:
            exc = _catch(lambda: s.send("text"))
        cases.append(("send() given a str instead of bytes (TypeError)", exc, "give up"))
    finally:
        nobody.close()
        resetter.stop()
        staller.stop()
    return cases


def _hint_for_answer(exc, expected, answer):
    name = type(exc).__name__
    if answer not in ANSWERS:
        allowed = ", ".join(repr(a) for a in ANSWERS)
        return f"it returned {answer!r}; the answer must be one of {allowed}."
    if expected == "peer closed" and answer == "give up":
        return (f"{name} is a subclass of OSError: test for the specific classes\n"
                "(ConnectionResetError, BrokenPipeError, ...) before the general OSError.")
    if expected == "refused" and answer == "peer closed":
        return ("ConnectionRefusedError is a ConnectionError, like reset and broken pipe,\n"
                "but there never was a connection: nobody listens at that address.\n"
                "Test for it before ConnectionError.")
    if expected == "refused":
        return ("connect() was refused: nobody listens at that address.  That is\n"
                "its own case: 'refused'.")
    if expected == "retry" and isinstance(exc, TimeoutError):
        return ("a timeout means the peer was slow, not that anything is broken:\n"
                "the same call may succeed if you try again ('retry').")
    if expected == "retry" and isinstance(exc, BlockingIOError):
        return ("BlockingIOError (EAGAIN) on a non-blocking socket means 'nothing yet':\n"
                "call again when the socket is ready ('retry').")
    if expected == "retry":
        return "EINTR only means a signal arrived meanwhile: call again ('retry')."
    if expected == "peer closed":
        return (f"{name}: the other side has gone, so this connection is over\n"
                "('peer closed').")
    if answer == "retry":
        return (f"retrying gives the same {name} again: the call itself is wrong,\n"
                "or the setup is ('give up').")
    return f"{name} here means a bug or a setup problem: {ANSWERS[expected]} ('{expected}')."


def check_classify(classify):
    """Check ``classify(exc) -> one of ANSWERS`` on exceptions raised live."""
    report = Report("Checking classify(exc):")
    for description, exc, expected in make_exceptions():
        outcome, thread = call_with_time_limit(classify, exc)
        verdict = _judge_classify(outcome, exc, expected)
        if outcome.value is not None:  # it answered: the case is named with the answer
            description = f"{description}: {expected!r}"
        if report.add(description, verdict).final:
            return report
    return report


def _judge_classify(outcome, exc, expected):
    """Judge classify(exc): the answer ``expected``, one of ANSWERS."""
    if not outcome.finished:
        return Verdict.fail(
            f"classify() did not return within {TIME_LIMIT:g} s; it only needs\n"
            "to look at the exception, not to use a socket.", final=True)
    if isinstance(outcome.error, NotImplementedError):
        return Verdict.not_written()
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    answer = outcome.value
    if answer is None:
        return Verdict.not_written()
    if answer == expected:
        return Verdict.ok()
    return Verdict.fail(_hint_for_answer(exc, expected, answer))


# -- Exercise 2: fetch(address, data) ---------------------------------------------------

def _judge_error_string(result, word, words):
    """Judge fetch()'s answer where the call fails: a str with one of ``words`` in it."""
    if result is None:
        return Verdict.not_written(f"it returned None: {NOT_WRITTEN}")
    if isinstance(result, (bytes, bytearray)):
        return Verdict.fail(
            f"it returned {bytes(result[:40])!r}, bytes, as if the server had answered.\n"
            f"Return a str that says what went wrong, e.g. 'error: connection {word}'.")
    if not isinstance(result, str):
        return Verdict.fail(
            f"it returned {type(result).__name__}; return a str such as 'error: {word}'.")
    if not any(w in result.lower() for w in words):
        return Verdict.fail(
            f"it returned {result!r}: say which error it was -- the string should\n"
            f"contain the word {word!r}, so a reader knows what happened.")
    return Verdict.ok()


def _judge_reply(result, expected):
    """Judge fetch()'s answer where the server answers: its reply, ``expected``, whole."""
    if result is None:
        return Verdict.not_written(f"it returned None: {NOT_WRITTEN}")
    if isinstance(result, str):
        return Verdict.fail(
            f"it returned the error string {result!r}, but this server answers.\n"
            "Catch only the errors named in the exercise, and let the reply through.")
    if not isinstance(result, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(result).__name__}, not bytes.")
    if len(result) < len(expected):
        return Verdict.fail(
            f"it returned {len(result):,} of the reply's {len(expected):,} bytes.\n"
            "One recv() returns what has arrived so far: read until recv()\n"
            "returns b'' (the server closes after its reply).")
    if result != expected:
        return Verdict.fail(
            f"the reply differs from what the server sent ({len(result):,} bytes).")
    return Verdict.ok()


def _raised_hint(exc, word):
    return (f"it raised {type(exc).__name__}: {exc}\n"
            f"Catch it and return a str instead, e.g. 'error: {word}'.")


def check_fetch(fetch):
    """Check ``fetch(address, data) -> reply bytes | error str`` against four peers."""
    report = Report("Checking fetch(address, data):")
    answerer = serve(answer_handler, name="check-fetch-answer")
    resetter = serve(reset_handler, name="check-fetch-reset")
    staller = serve(stall_handler, name="check-fetch-stall")
    nobody = socket.socket()
    nobody.bind(("127.0.0.1", 0))
    try:
        cases = [
            ("a server that answers: the reply", answerer, b"hello", b"you said: hello"),
            ("a server that answers with 307,200 bytes", answerer, b"big", BIG_REPLY),
            ("nobody listens: a string that says 'refused'", None, b"hello", "refused"),
            ("the server resets the connection: a string that says 'reset'",
             resetter, b"hello", "reset"),
            ("the server never answers: a string that says 'timeout', within 5 s",
             staller, b"hello", "timeout"),
        ]
        for description, server, data, expected in cases:
            address = nobody.getsockname() if server is None else server.address
            outcome, thread = call_with_time_limit(fetch, address, data)
            hung = not outcome.finished
            if hung:
                if server is not None:
                    server.stop()  # its socket closes: the learner's recv() returns
                thread.join(TIME_LIMIT)
            if report.add(description, _judge_fetch(outcome, hung, expected)).final:
                return report
    finally:
        nobody.close()
        for server in (answerer, resetter, staller):
            try:
                server.stop(timeout=TIME_LIMIT)
            except Exception as exc:
                report.add("the check's servers stop cleanly", Verdict.fail(describe_error(exc)))
    return report


def _judge_fetch(outcome, hung, expected):
    """Judge one fetch(): the reply (bytes ``expected``) or a str naming the error ``expected``."""
    if hung:
        return Verdict.fail(
            f"fetch() did not return within {TIME_LIMIT:g} s.  Without a timeout,\n"
            "recv() waits forever for a server that never answers: connect\n"
            "with socket.create_connection(address, timeout=1).", final=True)
    if isinstance(outcome.error, NotImplementedError):
        return Verdict.not_written()
    if isinstance(expected, bytes):
        if outcome.error is not None:
            return Verdict.fail(describe_error(outcome.error))
        return _judge_reply(outcome.value, expected)
    if outcome.error is not None:
        return Verdict.fail(_raised_hint(outcome.error, expected))
    words = ("timeout", "timed out") if expected == "timeout" else (expected,)
    return _judge_error_string(outcome.value, expected, words)
