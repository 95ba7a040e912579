"""Measure loopback speed from Python: a stream of messages, iperf3, Nagle's stall.

Lesson 12 and benchmarks/bulk_bench.py use these; a C program in the lesson does
the same as stream_python(), so the two can be compared:

    from socklab import measure
    measure.stream_python(256 << 20, 1 << 20)   # bytes per second, 1 MiB sends
    measure.stream_python(4 << 20, 64)          # ... 64-byte sends: per-call cost
    measure.iperf3(256 << 20, 1 << 20)          # iperf3's own figure (a reference)
    srv = socklab.serve(measure.answer_with_late_acks)
    measure.write_write_read(srv.address, nodelay=False)  # ~0.04 s a request

How it is built, and why:

* **Both ends in one process, two threads**, as the C program does it with
  pthreads: the sender sends ``total`` bytes in ``message`` sized send() calls,
  the receiver reads with recv_into() into one reused buffer.  sendall() and
  recv_into() release the GIL while they wait in the kernel, so the two threads
  run at once on two CPUs; with big messages Python does a few thousand calls
  per second and the kernel does the copying.
* **No new bytes per call**: the sender sends the same buffer again and again,
  the receiver fills one bytearray.  What is left is the cost of the call itself.
* **iperf3 is a separate program** (``iperf3 -s -1``: serve one test, then
  exit) on a free port of 127.0.0.1, read back in JSON (``-J``).  iperf3 needs a
  port number on its command line, so this module must find a free port first
  and hand it over: the one place in socklab that does so.  If another program
  takes the port in between, iperf3 says so and the next port is tried.
* Every wait has a time limit; iperf3 is killed if it overstays.  Even its
  start-up line is awaited in a selector, so an iperf3 that says nothing
  cannot hang the cell.
"""

import json
import os
import selectors
import shutil
import socket
import struct
import subprocess
import threading
import time
import typing

from .servers import recv_exactly

__all__ = ["BIG", "Run", "connected_pair", "stream_python", "IperfMissing", "iperf3",
           "answer_with_late_acks", "ask_in_two_writes", "write_write_read"]

BIG = 1 << 20  # 1 MiB: the receive buffer, and a "big" message
TIMEOUT = 60.0  # seconds any one measurement may take
START_TIMEOUT = 10.0  # seconds iperf3 -s may take to say that it listens


class Run(typing.NamedTuple):
    """What one measured transfer did: bytes, wall-clock seconds, CPU seconds."""

    bytes: int
    seconds: float
    cpu: float  # CPU time of sender, receiver and the kernel's work for them

    @property
    def rate(self):
        """Bytes per second."""
        return self.bytes / self.seconds

    @property
    def cpu_per_byte(self):
        return self.cpu / self.bytes


def connected_pair():
    """(client, server): the two ends of one TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        server, _ = listener.accept()
    server.settimeout(TIMEOUT)
    return client, server


def stream_python(total, message):
    """Send ``total`` bytes in send() calls of ``message`` bytes; returns a Run.

    The sender is a thread; this thread receives.  The clock runs from the first
    send() to the receiver's end-of-file, so it counts every byte delivered.
    The CPU time is the whole process's (time.process_time()).
    """
    client, server = connected_pair()
    count = total // message
    failure = []

    def sender():
        data = bytes(message)  # one buffer, sent again and again
        try:
            for _ in range(count):
                client.sendall(data)
            client.shutdown(socket.SHUT_WR)  # the receiver's recv_into() returns 0
        except OSError as exc:  # kept, and raised by the receiver's side
            failure.append(exc)

    buffer = memoryview(bytearray(BIG))
    received = 0
    with client, server:
        thread = threading.Thread(target=sender, name="stream sender")
        started, cpu_started = time.perf_counter(), time.process_time()
        thread.start()
        while n := server.recv_into(buffer):
            received += n
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        thread.join(TIMEOUT)
    if failure:
        raise failure[0]
    if received != count * message:
        raise RuntimeError(f"received {received} bytes of {count * message}")
    return Run(received, elapsed, cpu)


# -- iperf3 ----------------------------------------------------------------------


class IperfMissing(RuntimeError):
    """iperf3 is not installed here."""

    def __init__(self):
        super().__init__("iperf3 was not found; install it (Debian / Ubuntu: "
                         "sudo apt-get install iperf3) to compare with it")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _first_word(stream, words, timeout):
    """The first of ``words`` (bytes) that a line of ``stream`` holds; None at its end.

    The pipe is read in a selector, so a program that says nothing cannot keep
    us waiting: after ``timeout`` seconds it is TimeoutError (as in socklab.c.run).
    """
    deadline = time.monotonic() + timeout
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                continue  # nothing came: the loop's test sees the deadline
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                return None
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                found = [word for word in words if word in line.lower()]
                if found:
                    return found[0]
    raise TimeoutError(f"no line with {b' or '.join(words).decode()} within {timeout:g} s")


def _start_iperf3_server(binary, port):
    """iperf3 -s for one test on 127.0.0.1:port; returns it once it listens.

    None if it reports an error (another program took the port) or ends; a
    TimeoutError if it says nothing for START_TIMEOUT seconds.
    """
    server = subprocess.Popen(
        [binary, "-s", "-1", "-B", "127.0.0.1", "-p", str(port), "--forceflush"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    word = None
    try:
        # "Server listening on PORT" (a line of dashes before it) says it is ready.
        word = _first_word(server.stdout, (b"listening", b"error"), START_TIMEOUT)
    except TimeoutError:
        raise TimeoutError(f"iperf3 -s did not say that it listens within {START_TIMEOUT:g} s; "
                           "it was stopped") from None
    finally:
        if word != b"listening":
            _end(server)
    return server if word == b"listening" else None


def _end(server):
    """Kill ``server`` if it still runs (-1 ends it after one test), and reap it."""
    if server.poll() is None:
        server.kill()
    server.wait()
    server.stdout.close()


def iperf3(total, message=None, attempts=3):
    """iperf3 sends ``total`` bytes over 127.0.0.1, ``message`` bytes per write
    (its -l; by default 128 KiB); returns a Run.

    The figures are iperf3's own: bytes and seconds at the receiving end (in a
    short test its count may end well short of ``total``: use 64 MiB or more), and the CPU time
    of its client and server (from their CPU use in percent).
    """
    binary = shutil.which("iperf3")
    if binary is None:
        raise IperfMissing()
    for _ in range(attempts):
        port = _free_port()
        server = _start_iperf3_server(binary, port)
        if server is None:  # the port was taken in between: try another
            continue
        try:
            length = [] if message is None else ["-l", str(message)]
            done = subprocess.run(
                [binary, "-c", "127.0.0.1", "-p", str(port), "-n", str(total), *length,
                 "-J"], capture_output=True, text=True, timeout=TIMEOUT)
            report = json.loads(done.stdout)
            if "error" in report:
                raise RuntimeError(f"iperf3: {report['error']}")
            received = report["end"]["sum_received"]
            cpu = report["end"]["cpu_utilization_percent"]
            seconds = received["seconds"]
            return Run(received["bytes"], seconds,
                       (cpu["host_total"] + cpu["remote_total"]) / 100 * seconds)
        finally:
            _end(server)
    raise RuntimeError("iperf3's server could not listen on a free port")


# -- Nagle's algorithm and delayed ACKs -----------------------------------------------


def _receive_late_acks(conn, size):
    """Exactly ``size`` bytes from a socklab Connection, ACKs delayed; None at EOF."""
    data = bytearray()
    while len(data) < size:
        # Quick ACKs off before each recv(): the kernel may turn them back on
        # by itself (man 7 tcp, TCP_QUICKACK: "not permanent").
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
        piece = conn.recv(size - len(data))
        if not piece:
            return None
        data += piece
    return bytes(data)


def answer_with_late_acks(conn):
    """A handler for socklab.serve(): a server that acknowledges late.

    Its protocol: a request is a 4-byte length (network order) and a body; the
    answer is the same length and the body in capitals.  It turns TCP_QUICKACK
    off before each recv(), so the kernel *delays* its ACKs (about 40 ms on
    Linux) unless an answer goes out first and carries the ACK -- what a busy
    peer's TCP does.  Against it a write-write-read client stalls.
    """
    while (head := _receive_late_acks(conn, 4)) is not None:
        body = _receive_late_acks(conn, struct.unpack("!I", head)[0])
        if body is None:
            return
        conn.sendall(head + body.upper())


def ask_in_two_writes(sock, body):
    """Write the length, write the body, read the answer: write-write-read."""
    sock.sendall(struct.pack("!I", len(body)))
    sock.sendall(body)
    head = recv_exactly(sock, 4)
    return recv_exactly(sock, struct.unpack("!I", head)[0])


def write_write_read(address, nodelay, requests=5):
    """Seconds per request (the median) of ask_in_two_writes() to ``address``,
    with TCP_NODELAY on or off: a server running answer_with_late_acks."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        times = []
        for number in range(requests):
            started = time.perf_counter()
            answer = ask_in_two_writes(sock, b"request %d" % number)
            times.append(time.perf_counter() - started)
            if answer != b"REQUEST %d" % number:
                raise RuntimeError(f"wrong answer {answer!r}")
    return sorted(times)[len(times) // 2]
