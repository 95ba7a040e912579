"""Checks for lesson 04's exercises: recv_exact(), send_message(), and a client in C.

Both run the learner's function on a real TCP connection on loopback, against a
peer that behaves the way real peers do -- and naive code does not expect:

* check_recv_exact: a sender that cuts its bytes into pieces of random sizes
  (from a fixed seed, so that every run is the same) with small pauses between
  them; a sender that puts two messages into one send(); a sender that closes
  before it has sent everything.
* check_send_message: a slow reader behind small buffers, so that send() really
  takes only part of the data at a time.
* check_client_c: the learner's whole client in C (a ``%%c NAME --compile-only``
  cell: ``NAME HOST PORT SIZE`` sends SIZE bytes and reads their echo back),
  built with the sanitizers and run against servers that play the same tricks:
  the echo in pieces, the next message right behind it, a server that reads
  late (so that send() is interrupted and takes only part), one that closes
  early and one that resets.  Its exit status, its output and the sanitizer's
  report are judged; a run that does not end is named.

The learner's function gets a WatchedSocket: a thin wrapper that passes every call
to the real socket and notes what recv() and send() returned.  That is how a check
can say "your function returned after the first recv(): it got 612 of 5,000
bytes", and how it ends a loop that would never stop (recv() returning b'' again
and again) instead of leaving it spinning in a background thread.
"""

import fcntl
import os
import pathlib
import platform
import random
import select
import signal
import socket
import struct
import termios
import threading
import time

from .. import c
from ..servers import serve
from . import c_answer
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    describe_error,
)
from .watched import MAX_EMPTY_READS, CheckStopped, WatchedSocket, call_watched

__all__ = ["check_client_c", "check_recv_exact", "check_send_message"]

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


def _run_on_pieces(recv_exact, data, n, max_piece):
    """Call recv_exact(sock, n) while a sender sends ``data`` in pieces of at most
    ``max_piece`` bytes, then closes; return (run, wsock)."""
    go = threading.Event()
    with serve(_pieces_sender(data, go, max_piece), name="check-recv-exact") as srv:
        wsock = _connect(srv, go)
        with wsock.sock:
            run = _run(recv_exact, wsock, n)
            go.set()  # the sender must not wait for a read that never comes
    return run, wsock


def _case_pieces(recv_exact):
    """Judge recv_exact(sock, 5000) on bytes that arrive in pieces of random sizes."""
    n = 5000
    data = _random_bytes(n)
    run, wsock = _run_on_pieces(recv_exact, data, n, 1000)
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
    run, wsock = _run_on_pieces(recv_exact, data, n, 400)
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


# ---------------------------------------------------------- the client in C
#
# The learner's program NAME HOST PORT SIZE connects, sends SIZE bytes of the
# pattern abc...zabc... (byte i is 'a' + i % 26), reads SIZE bytes back, and
# prints "received SIZE bytes, all correct" -- or says what went wrong and
# exits with a status other than 0.  Each case is one run of the program
# (socklab.c.run) against a Python server on loopback, port 0.
#
# The servers wait for events, not for time.  They find the program's process
# among this process's children (its command line holds the server's port)
# and watch it in /proc: which system call it waits in (/proc/PID/syscall),
# and how many bytes its socket has not read yet (rx_queue in /proc/net/tcp).
# So "the program has read this piece" and "the program waits in recv()
# although it has not sent everything" are facts, the same on every run.

CLIENT_TIMEOUT = 5.0  # seconds one run of the program may take
CLIENT_SIZE = 5000
SLOW_SIZE = 8 * 1024 * 1024  # more than a client's send buffer can grow to (4 MiB)
EARLY_END = 1000  # bytes the closing and the resetting servers send back
NEXT_MESSAGE = 3000  # bytes after the echo, in the same send()
PIECE_MAX = 1000
POLL = 0.002  # seconds between two looks at /proc while waiting for an event
SERVER_WAIT = CLIENT_TIMEOUT + 5.0  # a server's own bound on any one wait

# System call numbers (man 2 syscall), for /proc/PID/syscall.
_SYSCALLS = {
    #            sendto, write, sendmsg, writev    recvfrom, read, recvmsg, readv, poll, select,
    #                                              ppoll, pselect6, epoll_wait, epoll_pwait
    "x86_64": ({44, 1, 46, 20}, {45, 0, 47, 19, 7, 23, 271, 270, 232, 281}),
    "aarch64": ({206, 64, 211, 66}, {207, 63, 212, 65, 73, 72, 22}),
}
_SENDS, _WAITS = _SYSCALLS.get(platform.machine(), (set(), set()))


def _pattern(size):
    return (b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]


def _client_pid(server_port):
    """The pid of the learner's program connected to server_port, or None."""
    for task in pathlib.Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                argv = pathlib.Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 3 and argv[2] == str(server_port).encode():
                return int(child)
    return None


def _waiting_in(pid):
    """What the process is doing: "send", "wait" (recv, poll ...), "stopped",
    "running", or None once it has ended."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        call = pathlib.Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return None
    if state in "ZX":
        return None
    if state in "tT":
        return "stopped"
    if state != "S" or not call.isdigit():
        return "running"
    number = int(call)
    return "send" if number in _SENDS else "wait" if number in _WAITS else "running"


def _client_queues(client_port, server_port):
    """(tx_queue, rx_queue) of the client's socket (/proc/net/tcp), or None if it is gone.

    rx_queue: bytes that have arrived and the program has not read yet;
    tx_queue: bytes it has sent that the server's kernel has not taken yet.
    """
    try:
        lines = pathlib.Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    local, remote = f":{client_port:04X}", f":{server_port:04X}"
    for line in lines:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote) and fields[3] != "06":
            tx_queue, rx_queue = fields[4].split(":")  # 06: TIME_WAIT, not it any more
            return int(tx_queue, 16), int(rx_queue, 16)
    return None


class _Peer:
    """What a server saw of the learner's program on its one connection."""

    def __init__(self, size):
        self.size = size
        self.received = bytearray()
        self.stopped_sending = False  # it waited for the reply before sending all
        self.interrupted = False  # it waited in send() and was made to return early
        self.delivered = 0  # bytes of the reply it has read (None: not known)
        self.pieces_read = 0
        self.connected = threading.Event()
        self.pid = None
        self.ports = None  # (client port, server port)

    def watch(self, conn):
        self.ports = (conn.getpeername()[1], conn.getsockname()[1])
        self.pid = _client_pid(self.ports[1])
        self.connected.set()

    def state(self):
        return None if self.pid is None else _waiting_in(self.pid)

    def take(self, conn):
        """Read the program's SIZE bytes -- or what it sends before it waits for the reply."""
        deadline = time.monotonic() + SERVER_WAIT
        while len(self.received) < self.size and time.monotonic() < deadline:
            readable, _, _ = select.select([conn.sock], [], [], POLL)
            if readable:
                piece = conn.recv(min(65536, self.size - len(self.received)))
                if not piece:
                    return
                self.received += piece
                continue
            # Nothing to read: has it sent all it will send before the reply?
            queues = _client_queues(*self.ports)
            if queues is None or self.state() is None:
                return  # it has gone
            if queues[0] == 0 and self.state() == "wait" and not _readable(conn):
                self.stopped_sending = True
                return

    def interrupt_send(self):
        """Once it waits in send() (the buffers are full), stop and continue it.

        A signal that comes while send() waits, after some bytes were taken,
        makes send() return that partial count (man 7 signal) -- what a loop
        must be ready for.  SIGSTOP, then SIGCONT once it has stopped: the
        program sees nothing else of it.
        """
        if not _SENDS:
            return  # a machine whose system call numbers this module does not know
        deadline = time.monotonic() + SERVER_WAIT
        while time.monotonic() < deadline:
            state = self.state()
            if state == "send":
                break
            if state in (None, "wait"):
                return  # it ended, or it sent everything without waiting
            time.sleep(POLL)  # it is still filling the buffers
        else:
            return
        os.kill(self.pid, signal.SIGSTOP)
        try:
            while time.monotonic() < deadline and self.state() not in (None, "stopped"):
                time.sleep(POLL)
        finally:
            os.kill(self.pid, signal.SIGCONT)
        self.interrupted = True

    def wait_read(self, conn):
        """Wait until the program has read all that was sent; False if it has gone."""
        deadline = time.monotonic() + SERVER_WAIT
        while time.monotonic() < deadline:
            # First the bytes must be in its kernel (acknowledged), then read.
            queues = _client_queues(*self.ports)
            if queues is None:
                return False  # it has gone (a reset, or it ended with bytes unread)
            unacked = struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ,
                                                     b"\0" * 4))[0]
            if unacked == 0 and queues[1] == 0:
                return True
            time.sleep(POLL)
        return False

    def send_pieces(self, conn, data, extra=b"", seed=SEED):
        """Send data in pieces of random sizes, each once the previous one was read.

        ``extra`` goes out with the last piece, in the same send().
        """
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pieces stay pieces
        rng = random.Random(seed)
        position = 0
        while position < len(data):
            size = rng.randint(1, PIECE_MAX)
            piece = data[position:position + size]
            last = position + size >= len(data)
            conn.sendall(piece + extra if last else piece)
            if not self.wait_read(conn):
                return
            position += len(piece)
            self.delivered = position
            self.pieces_read += 1


def _readable(conn):
    return bool(select.select([conn.sock], [], [], 0)[0])


def _client_server(peer, *, reads_late=False, reply="echo"):
    """A handler for one of check_client_c's servers; what it saw goes into ``peer``.

    reply: "echo" (in pieces), "next" (in pieces, the next message behind),
    "all" (one sendall()), "close" or "reset" (after EARLY_END bytes).
    """

    def handler(conn):
        try:
            peer.watch(conn)
            if reads_late:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
                peer.interrupt_send()
            peer.take(conn)
            if len(peer.received) < peer.size:
                return  # closed: the program must not wait for ever
            data = bytes(peer.received)
            if reply == "echo":
                peer.send_pieces(conn, data)
            elif reply == "next":
                peer.send_pieces(conn, data, extra=_pattern(NEXT_MESSAGE).upper())
            elif reply == "all":
                peer.delivered = None  # in one go: how much it read is not known
                conn.sendall(data)
            else:
                peer.send_pieces(conn, data[:EARLY_END])
                if reply == "reset":  # close() with SO_LINGER 0 sends RST
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # the program reset or left: what it did is judged from its run

    return handler


class _ClientRun:
    """One run of the program: its exit status and output, or None if it did not end."""

    def __init__(self, name, completed):
        self.name = name
        self.completed = completed
        self.sanitizer = completed and c.sanitizer_report(name, completed.stderr)

    @property
    def hung(self):
        return self.completed is None

    def said_correct(self, size):
        return (self.completed is not None
                and f"received {size} bytes, all correct" in self.completed.stdout)

    def output(self):
        """Its last lines of output (stdout, then stderr), for a hint."""
        lines = (self.completed.stdout + self.completed.stderr).strip().splitlines()[-3:]
        return ("\nIts last output:\n" + "\n".join(f"  {line}" for line in lines)
                if lines else "\nIt printed nothing.")


def _run_client(name, peer, size_arg, **server):
    """Run NAME HOST PORT SIZE against a _client_server(peer, **server)."""
    with serve(_client_server(peer, **server), name="check-client-c") as srv:
        if server.get("reads_late"):
            # Connections inherit the listening socket's buffer size: a small
            # window, so that the program's send() has to wait for room.
            srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        try:
            completed = c.run(name, [srv.host, srv.port, size_arg], timeout=CLIENT_TIMEOUT,
                              check=False, echo=False)
        except TimeoutError:
            completed = None
        if peer.connected.is_set():
            try:
                srv.events.wait_for("close", timeout=SERVER_WAIT)
            except TimeoutError:
                pass  # judged from what it saw so far
    return _ClientRun(name, completed)


def _judge_failure(run, size):
    """A Verdict for what every case judges first -- a crash, a signal -- or None."""
    if run.sanitizer:
        return Verdict.fail(f"{run.name} crashed.  The sanitizer's report (lines of "
                            f"{run.name}.c):\n{run.sanitizer}")
    if run.completed is not None and run.completed.returncode < 0:
        return Verdict.fail(c.describe_exit(run.name, run.completed.returncode) + "."
                            + run.output())
    return None


def _judge_sent(run, peer):
    """Did the server get exactly the SIZE bytes of the pattern?  A Verdict or None."""
    size = peer.size
    if len(peer.received) < size and (peer.stopped_sending or peer.interrupted):
        how = ("send() was interrupted while it waited for room, and returned the\n"
               "count of the bytes it had taken so far" if peer.interrupted else
               "send() returns how many bytes it took")
        return Verdict.fail(
            f"the server received only part of the {size:,} bytes, and then {run.name} "
            f"waited for the reply.\n{how}: call it again with the rest, in a loop, "
            "until all is sent\n(send_all() in socklab.h).")
    if len(peer.received) == size and bytes(peer.received) != _pattern(size):
        return Verdict.fail(
            f"the server received {size:,} bytes, but not the pattern abcdefghijklmnopqrstuvwxyzabc...\n"
            "(byte i is 'a' + i % 26).  After a partial send, go on with the bytes not sent "
            "yet\n(buf + sent, len - sent), not with the buffer from the start.")
    if len(peer.received) < size and not run.hung:
        return Verdict.fail(
            f"the server received {len(peer.received):,} of the {size:,} bytes before "
            f"{run.name} ended:\nsend all SIZE bytes first.{run.output()}")
    return None


def _judge_failure_or_sent(run, peer):
    """What the echo and the early-end cases judge first: a crash or a signal
    (_judge_failure), then the bytes the server got (_judge_sent).  A Verdict or None."""
    verdict = _judge_failure(run, peer.size)
    if verdict is None:
        verdict = _judge_sent(run, peer)
    return verdict


def _judge_echo(run, peer):
    """The server sent back all SIZE bytes: the program must say so, with status 0."""
    size = peer.size
    verdict = _judge_failure_or_sent(run, peer)
    if verdict is not None:
        return verdict
    if run.hung:
        if len(peer.received) < size:
            return Verdict.fail(
                f"it was still running after {CLIENT_TIMEOUT:g} s, and the server had "
                f"received {len(peer.received):,} of {size:,} bytes:\nis it waiting for "
                "the reply before it has sent everything?")
        return Verdict.fail(
            f"it was still waiting after {CLIENT_TIMEOUT:g} s, although the server had sent "
            f"back all {size:,} bytes:\ndoes the loop stop once it has SIZE bytes?  Ask "
            "recv() for at most SIZE - got bytes.")
    if run.said_correct(size) and run.completed.returncode == 0:
        return Verdict.ok()
    if peer.delivered is None and run.completed.returncode != 0:
        return Verdict.fail(
            f"{c.describe_exit(run.name, run.completed.returncode)}, although the server "
            f"sent back all {size:,} bytes:\ndid it stop reading before it had SIZE bytes?  "
            "One recv() returns what has arrived\nso far: call it in a loop." + run.output())
    if peer.delivered is not None and peer.delivered < size and peer.pieces_read == 1:
        return Verdict.fail(
            f"it read the first piece ({peer.delivered:,} of {size:,} bytes), then stopped "
            "reading.\nOne recv() returns what has arrived so far: call it in a loop until "
            "you have SIZE bytes." + run.output())
    if peer.delivered is not None and peer.delivered < size:
        return Verdict.fail(
            f"it read {peer.delivered:,} of the {size:,} bytes, then stopped reading: keep "
            "calling recv()\nuntil you have SIZE bytes." + run.output())
    if run.completed.returncode != 0:
        return Verdict.fail(
            f"{c.describe_exit(run.name, run.completed.returncode)}, although the server "
            f"sent back all {size:,} bytes." + run.output())
    return Verdict.fail(
        f"it exited with status 0 but did not print `received {size} bytes, all correct`."
        + run.output())


def _judge_early_end(run, peer, how):
    """The server ended the connection after EARLY_END bytes: an error, and no hang."""
    size = peer.size
    verdict = _judge_failure_or_sent(run, peer)
    if verdict is not None:
        return verdict
    if run.hung:
        if how == "closed":
            return Verdict.fail(
                f"it was still waiting after {CLIENT_TIMEOUT:g} s, after the server had closed: "
                "a recv() loop that never sees 0?\nOnce the peer has closed, recv() returns 0 "
                "at once, every time: leave the loop\nand report that the reply is incomplete.")
        return Verdict.fail(
            f"it was still waiting after {CLIENT_TIMEOUT:g} s, after the server had reset the "
            "connection:\nrecv() returned -1 (ECONNRESET), and then 0: leave the loop on -1 "
            "and on 0.")
    if run.said_correct(size):
        return Verdict.fail(
            f"it printed `received {size} bytes, all correct`, but the server {how} after "
            f"{EARLY_END:,} of {size:,} bytes." + run.output())
    if run.completed.returncode == 0:
        return Verdict.fail(
            f"it exited with status 0, but the server {how} after {EARLY_END:,} of {size:,} "
            "bytes:\na program that did not get what it asked for exits with another "
            "status (1), so\nthat a script running it knows." + run.output())
    return Verdict.ok()


def _case_echo(name, reply="echo"):
    peer = _Peer(CLIENT_SIZE)
    return _judge_echo(_run_client(name, peer, CLIENT_SIZE, reply=reply), peer)


def _case_slow(name):
    peer = _Peer(SLOW_SIZE)
    return _judge_echo(_run_client(name, peer, SLOW_SIZE, reads_late=True, reply="all"), peer)


def _case_early_end(name, reply):
    peer = _Peer(CLIENT_SIZE)
    how = {"close": "closed", "reset": "reset the connection"}[reply]
    run = _run_client(name, peer, CLIENT_SIZE, reply=reply)
    return _judge_early_end(run, peer, how)


def _case_bad_size(name):
    peer = _Peer(CLIENT_SIZE)
    run = _run_client(name, peer, f"{CLIENT_SIZE}x", reply="all")
    verdict = _judge_failure(run, CLIENT_SIZE)
    if verdict is not None:
        return verdict
    if run.hung:
        return Verdict.fail(f"it was still running after {CLIENT_TIMEOUT:g} s.")
    if run.completed.returncode == 0:
        return Verdict.fail(
            f"it took SIZE '{CLIENT_SIZE}x' for {CLIENT_SIZE:,} and exited with status 0.\n"
            "atoi() and strtol() without a look at the end pointer stop at the 'x'; check\n"
            "that strtol() read the whole string (*end == '\\0'), as parse_port() does, and\n"
            "refuse it: print a usage line and exit with status 2.")
    return Verdict.ok()


def check_client_c(name):
    """Check the C client NAME, compiled by a ``%%c NAME --compile-only`` cell.

    ``NAME HOST PORT SIZE`` connects (connect_to()), sends SIZE bytes of the
    pattern abc...zabc..., reads exactly SIZE bytes back and prints
    "received SIZE bytes, all correct"; if the server ends the connection
    first, it says so and exits with a status other than 0.  Each case runs it
    once, built with the sanitizers, against a server of its own.
    """
    report = Report(f"Checking the C client {name}.c:")
    if not c_answer.build(name, report):
        return report
    cases = [
        (f"the echo of {CLIENT_SIZE:,} bytes comes back in pieces of random sizes",
         lambda: _case_echo(name)),
        (f"the echo is followed at once by {NEXT_MESSAGE:,} bytes more: read only SIZE bytes",
         lambda: _case_echo(name, reply="next")),
        (f"{SLOW_SIZE:,} bytes to a server that reads late: send() takes only part",
         lambda: _case_slow(name)),
        (f"the server closes after {EARLY_END:,} of {CLIENT_SIZE:,} bytes: an error, "
         "not a hang", lambda: _case_early_end(name, "close")),
        (f"the server resets the connection after {EARLY_END:,} of {CLIENT_SIZE:,} bytes: "
         "an error, not a hang", lambda: _case_early_end(name, "reset")),
        (f"SIZE '{CLIENT_SIZE}x' is refused, not read as {CLIENT_SIZE:,}",
         lambda: _case_bad_size(name)),
    ]
    for description, case in cases:
        if report.add(description, case()).final:
            break
    return report
