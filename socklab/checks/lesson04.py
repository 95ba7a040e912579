"""Checks for lesson 04's exercises: recv_exact() and send_message().

Both run the learner's function on a real TCP connection on loopback, against a
peer that behaves the way real peers do -- and naive code does not expect:

* check_recv_exact: a sender that cuts its bytes into pieces of random sizes
  (from a fixed seed, so that every run is the same) with small pauses between
  them; a sender that puts two messages into one send(); a sender that closes
  before it has sent everything.
* check_send_message: a slow reader behind small buffers, so that send() really
  takes only part of the data at a time.

The learner's function gets a WatchedSocket: a thin wrapper that passes every call
to the real socket and notes what recv() and send() returned.  That is how a check
can say "your function returned after the first recv(): it got 612 of 5,000
bytes", and how it ends a loop that would never stop (recv() returning b'' again
and again) instead of leaving it spinning in a background thread.
"""

import random
import socket
import threading
import time

from ..servers import serve
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    describe_error,
)
from .watched import MAX_EMPTY_READS, CheckStopped, WatchedSocket, call_watched

__all__ = ["check_recv_exact", "check_send_message"]

SEED = 4  # the same pieces, pauses and bytes on every run
FIRST_READ_WAIT = 1.0  # seconds the sender waits for the learner's first recv()
SMALL_BUFFER = 8192  # SO_SNDBUF / SO_RCVBUF for send_message (the kernel doubles it)
READ_SIZE = 16384  # the slow reader's recv() size ...
READ_PAUSE = 0.001  # ... and its pause after each recv()


class _Run:
    """What one call of the learner's function did."""

    def __init__(self, outcome, timed_out):
        self.finished = outcome.finished
        self.timed_out = timed_out
        self.stopped = isinstance(outcome.value, CheckStopped)
        self.value = None if self.stopped else outcome.value
        self.error = outcome.error


def _run(function, wsock, *args):
    """Call function(wsock, *args) with the time limit; stop it if it runs over."""
    return _Run(*call_watched(function, wsock, *args))


def _random_bytes(count, seed=SEED):
    return random.Random(seed).randbytes(count)


# --------------------------------------------------------------- recv_exact


def _pieces_sender(data, go, max_piece, seed=SEED):
    """A handler: send data in pieces of random sizes with small pauses, then close.

    It sends the first piece, then waits until the learner's first recv() (``go``),
    so that a single recv() can only ever get the start of the data.
    """

    def handler(conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pieces stay pieces
        rng = random.Random(seed)
        position = 0
        while position < len(data):
            size = rng.randint(1, max_piece)
            conn.sendall(data[position:position + size])
            if position == 0:
                go.wait(FIRST_READ_WAIT)
            elif rng.random() < 0.3:
                time.sleep(0.002)
            position += size

    return handler


def _one_send(data):
    """A handler: send data with one sendall(), then close."""

    def handler(conn):
        conn.sendall(data)

    return handler


def _connect(srv, go=None):
    sock = socket.create_connection(srv.address)  # blocking: MSG_WAITALL works too
    return WatchedSocket(sock, go)


def _judge_bytes(value):
    """Judge the type of what recv_exact() returned: bytes (a str is a final failure)."""
    if isinstance(value, str):  # about the whole function: every case would say it again
        return Verdict.fail(
            "it returned a str; recv() returns bytes, and so should recv_exact().", final=True)
    if not isinstance(value, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(value).__name__}, not bytes.")
    return Verdict.ok()


def _hint_for_stop(wsock, n):
    if wsock.empty_reads >= MAX_EMPTY_READS:
        return (
            f"recv() returned b'' {wsock.empty_reads} times, and your function kept calling it.\n"
            "b'' means the peer has closed; from then on recv() returns b'' at once,\n"
            "forever.  If that happens before you have n bytes, raise EOFError."
        )
    return (
        f"recv_exact() did not return within {TIME_LIMIT:g} s (it had {wsock.received:,} "
        f"of {n:,} bytes).\nIs it waiting in recv() for more bytes than the sender sends?"
    )


def _judge_exact(run, wsock, expected, n):
    """Judge one recv_exact(sock, n) call: exactly ``expected``, read from wsock."""
    if run.timed_out or run.stopped:
        return Verdict.fail(_hint_for_stop(wsock, n))
    if run.error is not None:
        if isinstance(run.error, NotImplementedError):
            return Verdict.not_written()
        if isinstance(run.error, (EOFError, ConnectionError)) and n == 0:
            return Verdict.fail(
                f"{describe_error(run.error)}\n"
                "With n = 0 there is nothing to read: return b'' without calling recv()\n"
                "(recv(0) returns b'' even on an open connection -- man 2 recv)."
            )
        if isinstance(run.error, (EOFError, ConnectionError)):
            return Verdict.fail(
                f"{describe_error(run.error)}, although the sender sent all {n:,} bytes.\n"
                "Raise it only when recv() returns b'' before you have n bytes."
            )
        return Verdict.fail(describe_error(run.error))
    value = run.value
    if value is None:
        return Verdict.not_written()
    verdict = _judge_bytes(value)
    if not verdict.passed:
        return verdict
    if len(value) < n:
        if len(wsock.reads) == 1:
            return Verdict.fail(
                f"your function returned after the first recv(): it got {len(value):,} "
                f"of {n:,} bytes.\nOne recv() returns what has arrived so far: call it "
                "in a loop until you have n bytes."
            )
        return Verdict.fail(
            f"it returned {len(value):,} of {n:,} bytes: keep calling recv() until "
            "you have n bytes."
        )
    if len(value) > n:
        return Verdict.fail(
            f"it returned {len(value):,} bytes, but n was {n:,}.  Ask recv() for at most\n"
            "n - len(data) bytes: the bytes after the first n belong to the next message."
        )
    if value != expected:
        return Verdict.fail(
            f"it returned {n:,} bytes, but not the ones that were sent, in their order:\n"
            "add each piece at the end of what you have (data += piece)."
        )
    return Verdict.ok()


def _case_pieces(recv_exact):
    """Judge recv_exact(sock, 5000) on bytes that arrive in pieces of random sizes."""
    n = 5000
    data = _random_bytes(n)
    go = threading.Event()
    with serve(_pieces_sender(data, go, 1000), name="check-recv-exact") as srv:
        wsock = _connect(srv, go)
        with wsock.sock:
            run = _run(recv_exact, wsock, n)
            go.set()  # the sender must not wait for a read that never comes
    return _judge_exact(run, wsock, data, n)


def _case_two_messages(recv_exact):
    """Judge two recv_exact() calls on two messages that came in one send()."""
    first, second = 5000, 3000
    data = _random_bytes(first + second)
    with serve(_one_send(data), name="check-recv-exact") as srv:
        wsock = _connect(srv)
        with wsock.sock:
            run = _run(recv_exact, wsock, first)
            verdict = _judge_exact(run, wsock, data[:first], first)
            if not verdict.passed:
                return verdict
            read_by_first = wsock.received
            run = _run(recv_exact, wsock, second)
            verdict = _judge_exact(run, wsock, data[first:], second)
    if not verdict.passed and read_by_first > first:
        return Verdict.fail(
            f"the first call read {read_by_first:,} bytes, {read_by_first - first:,} more "
            f"than the {first:,} it returned:\nthey were the start of the next message, "
            "and they are lost.\nAsk recv() for at most n - len(data) bytes."
        )
    return verdict


def _case_early_close(recv_exact):
    """Judge recv_exact(sock, 5000) on a peer that closes after 1,000 bytes: EOFError."""
    n, sent = 5000, 1000
    data = _random_bytes(sent)
    go = threading.Event()
    with serve(_pieces_sender(data, go, 400), name="check-recv-exact") as srv:
        wsock = _connect(srv, go)
        with wsock.sock:
            run = _run(recv_exact, wsock, n)
            go.set()
    if run.timed_out or run.stopped:
        return Verdict.fail(_hint_for_stop(wsock, n))
    if run.error is not None:
        if isinstance(run.error, (EOFError, ConnectionError)):
            return Verdict.ok()
        return Verdict.fail(
            f"{describe_error(run.error)}\n"
            "Raise EOFError (or ConnectionError): what a caller expects when the\n"
            "connection ends too early."
        )
    if run.value is None or not _judge_bytes(run.value).passed or len(run.value) < sent:
        # It returned before the end, or not bytes: judged like any other answer.
        return _judge_exact(run, wsock, data, n)
    got = len(run.value)
    return Verdict.fail(
        f"it returned {got:,} bytes after the peer closed with {sent:,} of {n:,} sent.\n"
        f"The caller asked for exactly {n:,}: when recv() returns b'' before you have\n"
        "n bytes, raise EOFError."
    )


def _case_zero(recv_exact):
    """Judge recv_exact(sock, 0): b'', and nothing read."""
    with serve(_one_send(b"the next message"), name="check-recv-exact") as srv:
        wsock = _connect(srv)
        with wsock.sock:
            run = _run(recv_exact, wsock, 0)
    verdict = _judge_exact(run, wsock, b"", 0)
    if verdict.passed and wsock.received:
        return Verdict.fail(
            f"it read {wsock.received:,} bytes although n was 0: they belonged to the next "
            "message.\nWith n = 0, return b'' without calling recv()."
        )
    return verdict


def check_recv_exact(recv_exact):
    """Check ``recv_exact(sock, n)``: exactly n bytes from sock, or EOFError.

    It must call recv() until it has n bytes, never read past them, and raise
    EOFError (or ConnectionError) if the peer closes first.
    """
    report = Report("Checking recv_exact(sock, n):")
    cases = [
        ("5,000 bytes that arrive in pieces of random sizes", _case_pieces),
        ("two messages in one send(): recv_exact(sock, 5,000), then recv_exact(sock, 3,000)",
         _case_two_messages),
        ("the peer closes after 1,000 of 5,000 bytes: EOFError", _case_early_close),
        ("n = 0 returns b'' and reads nothing", _case_zero),
    ]
    for description, case in cases:
        if report.add(description, case(recv_exact)).final:
            break
    return report


# ------------------------------------------------------------- send_message


def _slow_reader(result):
    """A handler: read everything, slowly, until the peer closes; keep it in result."""

    def handler(conn):
        received = bytearray()
        while True:
            piece = conn.recv(READ_SIZE)
            if not piece:
                break
            received += piece
            time.sleep(READ_PAUSE)
        result["data"] = bytes(received)

    return handler


def _judge_message(run, wsock, data, received):
    """Judge one send_message(sock, data) call: the reader ``received`` exactly data."""
    taken = sum(count for _, count in wsock.sends)
    if run.timed_out or run.stopped:
        return Verdict.fail(
            f"send_message() did not return within {TIME_LIMIT:g} s.  It had called send() "
            f"{len(wsock.sends):,} times,\nwhich took {taken:,} bytes in all, for a "
            f"{len(data):,}-byte message.  Does the loop add what send()\nreturns to the "
            "bytes sent so far, and stop when it reaches len(data)?"
        )
    if wsock.sendall_calls:
        return Verdict.fail(  # about the whole function: every case would say it again
            "it called sendall().  It works, but the exercise is to write sendall()'s loop\n"
            "yourself, with send().", final=True
        )
    if run.error is not None:
        if isinstance(run.error, NotImplementedError):
            return Verdict.not_written()
        return Verdict.fail(describe_error(run.error))
    if data and not wsock.sends:
        return Verdict.not_written()
    if received is None:
        return Verdict.fail("the reader did not finish within the time limit.")
    if received == data:
        return Verdict.ok()
    if data.startswith(received):
        if len(wsock.sends) == 1:
            return Verdict.fail(
                f"your function returned after the first send(): it sent {taken:,} of "
                f"{len(data):,} bytes.\nsend() returns how many bytes it took: call it "
                "again with the rest (data[sent:])\nuntil everything is sent."
            )
        return Verdict.fail(
            f"the reader got {len(received):,} of {len(data):,} bytes: the loop stopped "
            "before everything was sent."
        )
    return Verdict.fail(
        f"the reader got {len(received):,} bytes, but not the ones given: after a partial "
        "send, go on\nwith the bytes not sent yet (data[sent:]), not with data from the start."
    )


def _send_case(send_message, data):
    """Judge send_message(sock, data) with a slow reader behind small buffers."""
    result = {}
    with serve(_slow_reader(result), name="check-send-message") as srv:
        # Small buffers at both ends: the kernel cannot take a big message at once.
        srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            # A timeout: Python's send() then takes what fits, like a non-blocking one.
            sock.settimeout(2 * TIME_LIMIT)
            sock.connect(srv.address)
            wsock = WatchedSocket(sock)
            run = _run(send_message, wsock, data)
        try:
            srv.events.wait_for("close", timeout=TIME_LIMIT)
        except TimeoutError:
            pass  # judged below: received is None
    return _judge_message(run, wsock, data, result.get("data"))


def check_send_message(send_message):
    """Check ``send_message(sock, data)``: every byte sent, with send() and no sendall().

    The reader is slow and the buffers small, so send() takes only part of a large
    message at a time; the reader must get exactly ``data``.
    """
    report = Report("Checking send_message(sock, data):")
    cases = [
        ("a short message", b"hello, server"),
        ("1,000,000 bytes to a slow reader (send() takes only part at a time)",
         _random_bytes(1_000_000)),
        ("an empty message", b""),
    ]
    for description, data in cases:
        if report.add(description, _send_case(send_message, data)).final:
            break
    return report
