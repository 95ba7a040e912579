"""Clients that make life hard for a server: lesson 10 shows them, its checks use them.

A server that works for one polite client may still fail the moment real clients
arrive: a hundred at once, one that resets the connection, one that sends and never
reads, one that trickles a byte at a time, many that connect and say nothing.  Each
function here plays one of those clients against a server's address, on real
loopback sockets, and reports what it saw -- never more than a fixed number of
sockets, never longer than a fixed time.

    socks = connect_many(address, 100)          # 100 connected clients
    echo_round(socks)                           # each sends its own line; who got it back?
    wait_until_readable(socks)                  # until the server has answered each
    reset(sock)                                 # close with RST (SO_LINGER 0)
    flood = Flood(address); flood.run(2.0)      # send, never read; how much got in?
    thread_cpu_seconds(thread)                  # CPU time of one thread so far
    thread_runnable_seconds(thread)             # ... and time it was ready to run
    accept_queue(listener)                      # connections not accept()ed yet

The functions never raise for what a bad server does (no answer, a reset); they
return it, so that a check can turn it into a hint.
"""

import selectors
import socket
import struct
import threading
import time

__all__ = [
    "Flood",
    "accept_queue",
    "close_all",
    "connect_many",
    "echo_round",
    "reset",
    "thread_cpu_seconds",
    "thread_runnable_seconds",
    "trickle",
    "wait_until_readable",
]

CONNECT_TIMEOUT = 5.0  # seconds for one connect() on loopback
PRESSING = 0.1  # seconds without progress after which a Flood is "pressing"


def connect_many(address, count, timeout=CONNECT_TIMEOUT):
    """``count`` clients connected to ``address``, blocking sockets with a timeout.

    connect() returns once the server's kernel has completed the handshake -- the
    server program need not have called accept() yet.
    """
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(address, timeout=timeout))
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for sock in socks:
        sock.close()


def reset(sock):
    """Close ``sock`` abortively: SO_LINGER {on, 0 s} makes close() send a RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def message_for(number, size=32):
    """A line of ``size`` bytes that no other client sends: b'client 7 ......\\n'."""
    head = f"client {number} ".encode()
    return head + b"." * max(0, size - len(head) - 1) + b"\n"


def echo_round(socks, size=32, timeout=2.0):
    """Every client sends its own message, then all wait for their echoes together.

    Returns the numbers (indexes in ``socks``) of the clients that did not get
    exactly their message back within ``timeout`` seconds in all.  The sends go
    out first, all of them, so the server has every client to serve at once.
    """
    expected = {}
    failed = set()
    for number, sock in enumerate(socks):
        expected[number] = message_for(number, size)
        try:
            sock.sendall(expected[number])
        except OSError:
            failed.add(number)
    received = {number: bytearray() for number in expected if number not in failed}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for number in received:
            selector.register(socks[number], selectors.EVENT_READ, number)
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                number = key.data
                try:
                    part = key.fileobj.recv(65536)
                except OSError:
                    part = b""
                received[number] += part
                if not part or len(received[number]) >= len(expected[number]):
                    selector.unregister(key.fileobj)
    for number, data in received.items():
        if bytes(data) != expected[number]:
            failed.add(number)
    return sorted(failed)


def wait_until_readable(socks, timeout=2.0):
    """Wait until each of ``socks`` can be read from -- the server has answered it,
    closed or reset it -- for ``timeout`` seconds at most.  Reads nothing.

    Returns the numbers (indexes in ``socks``) of those still silent at the end.
    """
    waiting = dict(enumerate(socks))
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for number, sock in waiting.items():
            selector.register(sock, selectors.EVENT_READ, number)
        while waiting and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                selector.unregister(key.fileobj)
                del waiting[key.data]
    return sorted(waiting)


def accept_queue(listener):
    """How many connections wait in ``listener``'s queue for accept() (Linux).

    For a listening socket, TCP_INFO's tcpi_unacked is the length of that queue
    (``ss -ltn`` shows it as Recv-Q).  The handshake of each is complete: the
    server program just has not taken it yet.
    """
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    return struct.unpack_from("I", info, 24)[0]  # after 8 one-byte fields and 4 u32s


def trickle(socks, text=b"slowly", pause=0.01, timeout=1.0):
    """Clients that send one byte at a time, taking turns, each waiting for its echo.

    Returns (client number, byte number) of the first byte whose echo did not come
    back within ``timeout`` seconds, or None if every byte came back.
    """
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a segment per byte
        sock.settimeout(timeout)
    for index, byte in enumerate(text):
        for number, sock in enumerate(socks):
            try:
                sock.sendall(bytes([byte]))
                echo = sock.recv(16)
            except OSError:
                return (number, index)
            if echo != bytes([byte]):
                return (number, index)
        time.sleep(pause)
    return None


class Flood:
    """A client that sends as fast as the server takes it and never reads.

    ``run(seconds)`` sends (non-blocking) until the kernel refuses more for a while,
    ``limit`` bytes have gone, or ``seconds`` are over; ``sent`` says how many bytes
    the connection took.  A server that stops reading when it cannot send the echo
    takes little: the buffers of the two kernels, and what it holds itself.  The
    client's own buffers are kept small, so that little is little.  ``pressing``
    is set once the kernel has taken nothing for PRESSING seconds (the server is
    behind: it has stopped reading, or is stuck, or dead) or when the flood ends.
    """

    def __init__(self, address, limit=16 * 1024 * 1024, buffer=65536):
        self.limit = limit
        self.sent = 0
        self.pressing = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect(): the receive window is set during the handshake.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
        self.sock.settimeout(CONNECT_TIMEOUT)
        self.sock.connect(address)
        self.sock.setblocking(False)

    def run(self, seconds, stalled=0.3):
        """Send for at most ``seconds``; stop early once nothing went in for ``stalled`` s."""
        chunk = bytes(65536)
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_WRITE)
            try:
                self._send_until(selector, chunk, deadline, stalled)
            finally:
                self.pressing.set()
        return self.sent

    def _send_until(self, selector, chunk, deadline, stalled):
        last_progress = time.monotonic()
        while self.sent < self.limit:
            now = time.monotonic()
            if now >= deadline or now - last_progress >= stalled:
                break
            if now - last_progress >= PRESSING:
                self.pressing.set()
            if not selector.select(min(deadline - now, PRESSING)):
                continue
            try:
                count = self.sock.send(chunk[: self.limit - self.sent])
            except BlockingIOError:
                continue
            except OSError:  # the server reset or closed the connection
                break
            self.sent += count
            last_progress = time.monotonic()

    def close(self):
        reset(self.sock)  # no FIN handshake to wait for, no unread data to send


def thread_cpu_seconds(thread):
    """CPU time a running thread has used so far (its own clock, not the process's).

    time.thread_time() measures only the calling thread; this reads another
    thread's clock: pthread_getcpuclockid() (``man 3 pthread_getcpuclockid``).
    """
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def thread_runnable_seconds(thread):
    """Time a running thread has spent on a CPU or waiting for one, so far.

    On a busy machine a spinning thread gets only its share of the CPUs, so its
    CPU time can be small; but it is ready to run all the time, and a thread that
    sleeps in select() is not.  The kernel counts both in
    /proc/self/task/TID/schedstat: nanoseconds on a CPU, nanoseconds waiting on
    a run queue, time slices (Documentation/scheduler/sched-stats.rst).  None if
    this kernel does not keep that file.
    """
    try:
        with open(f"/proc/self/task/{thread.native_id}/schedstat") as stats:
            on_cpu, waiting, _ = stats.read().split()
    except (OSError, ValueError):
        return None
    return (int(on_cpu) + int(waiting)) / 1e9
