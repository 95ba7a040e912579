"""Servers that run in the background of a notebook, on real sockets.

A lesson needs a peer to talk to: an echo server, a server that answers in capitals,
a server that closes too early.  This module runs such servers in background
threads, so the learner's cell stays free and no second terminal is needed:

    >>> import socket, socklab
    >>> with socklab.TCPEchoServer() as srv:
    ...     with socket.create_connection(srv.address, timeout=5) as s:
    ...         s.sendall(b"hi")
    ...         s.recv(1024)
    b'hi'

How it is built, and why:

* **Bind first, then start the thread.**  The constructor creates the socket, binds
  it and (for TCP) calls listen() before any thread exists.  When the constructor
  returns, the kernel already queues connections for it, so a client may connect at
  once -- nothing has to sleep and hope the server is ready.

* **Port 0, loopback.**  By default the server binds 127.0.0.1 port 0: the kernel
  picks a free port, read back with getsockname() into ``srv.address``.  No two
  servers, notebooks or learners on one machine can collide, and nothing is reachable
  from another machine.  A wildcard host ("0.0.0.0", "::") must be asked for and
  warns.

* **One thread per connection** (TCP), plus one thread that accepts.  A client that
  sends megabytes and never reads blocks only its own thread; everyone else is
  served.  The handler is plain blocking socket code, the kind the lessons teach.

* **Stopping wakes every thread.**  On Linux, closing a socket does not wake a
  thread blocked on it, in accept() or in recv().  So the accept thread waits in a
  selector on the listening socket *and* on one end of a socketpair; stop() writes a
  byte to the other end.  As the accept thread ends, it wakes the connections'
  threads with shutdown(SHUT_RDWR), which makes a blocked recv() return b'' and a
  blocked send() fail.  stop() then joins every thread within a time limit and
  raises if one is still alive.

* **Threads never print.**  They record Events (see socklab.events) that a cell
  displays with ``srv.events``.  An exception in a handler is recorded, kept, and
  raised again by stop(), so a bug is never lost in a background thread.  A peer
  that resets the connection is the network's doing, not a bug: it is recorded as a
  "reset" event and not raised.

* **One lifecycle** for every background object, in socklab.background: a named
  server stops its running namesake *before* it binds (so re-running a cell that
  serves on a fixed port works), closes what it opened if starting fails, drops
  finished connection threads, and is registered with socklab.registry, so
  re-running a cell does not pile up servers, stop_all() ends them all, and
  nothing outlives the Python process.
"""

import selectors
import socket
import threading
import warnings

from .background import Background
from .events import EventLog

__all__ = [
    "Connection",
    "Server",
    "TCPServer",
    "UDPServer",
    "TCPEchoServer",
    "UDPEchoServer",
    "serve",
    "bound_socket",
    "recv_exactly",
    "echo_handler",
    "udp_echo_handler",
]

WILDCARD_HOSTS = ("", "0.0.0.0", "::")
UDP_BUFSIZE = 65536  # more than the largest UDP payload (65,507 bytes on IPv4)


class Connection:
    """A connected TCP socket handed to a handler; it records what it does.

    It has the socket methods a handler needs -- recv, recv_into, send, sendall,
    shutdown -- and records each in the server's event log.  Every other socket
    method (getpeername, setsockopt, ...) is passed straight to the socket,
    which is also there as ``conn.sock``.
    """

    def __init__(self, sock, number, peer, events):
        self.sock = sock
        self.number = number  # 1 for the server's first connection, 2 ...
        self.peer = peer
        self._events = events
        self._lock = threading.Lock()  # close() and stop()'s shutdown() race
        self.stopping = False  # set by the server when it is being stopped

    def _record(self, kind, nbytes=None, detail=""):
        self._events.add(kind, self.number, nbytes, detail, self.peer)

    def recv(self, bufsize, flags=0):
        data = self.sock.recv(bufsize, flags)
        if data:  # the common case, recorded as cheaply as possible
            self._events.add("recv", self.number, len(data), "", self.peer)
        else:
            self._record_end_of_stream()
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        count = self.sock.recv_into(buffer, nbytes, flags)
        if count:
            self._events.add("recv", self.number, count, "", self.peer)
        else:
            self._record_end_of_stream()
        return count

    def _record_end_of_stream(self):
        why = "server stopping" if self.stopping else "peer closed"
        self._record("recv", 0, why)

    def send(self, data, flags=0):
        count = self.sock.send(data, flags)
        self._record("send", count)
        return count

    def sendall(self, data, flags=0):
        # Recorded before sending: once the peer has the bytes, the event is
        # already in the log, so a cell that shows the log after reading the
        # reply always sees it.
        self._events.add("send", self.number, len(data), "", self.peer)
        self.sock.sendall(data, flags)

    def shutdown(self, how):
        names = {socket.SHUT_RD: "SHUT_RD", socket.SHUT_WR: "SHUT_WR"}
        self._record("shutdown", detail=names.get(how, "SHUT_RDWR"))
        self.sock.shutdown(how)

    def _wake(self):
        """Make a thread blocked on this socket return (used by stop())."""
        with self._lock:
            self.stopping = True
            if self.sock.fileno() != -1:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # not connected any more: nothing is blocked on it

    def close(self):
        with self._lock:
            if self.sock.fileno() != -1:
                self.sock.close()

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def __repr__(self):
        return f"<Connection {self.number}>"


def echo_handler(conn):
    """Send back every byte received, until the peer closes its side."""
    while True:
        data = conn.recv(65536)
        if not data:  # b'' means the peer has closed: the only end-of-stream signal
            return
        conn.sendall(data)


def udp_echo_handler(data, peer):
    """Reply to every datagram with the same bytes (an empty one included)."""
    return data


def recv_exactly(sock, size):
    """Exactly ``size`` bytes from a stream socket, however they arrive;
    ConnectionError if the peer closes first (a length prefix promised more)."""
    data = bytearray()
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            raise ConnectionError(f"the peer closed after {len(data)} of {size} bytes")
        data += piece
    return bytes(data)


def bound_socket(host, port, socktype):
    """A new socket of ``socktype`` bound to (host, port), IPv4 or IPv6 as
    getaddrinfo says; it warns when ``host`` is a wildcard (reachable from
    other machines)."""
    if host in WILDCARD_HOSTS:
        warnings.warn(
            f"binding to {host or 'all addresses'!r} makes this server reachable "
            "from other machines; the course only needs 127.0.0.1",
            stacklevel=4,
        )
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host or None, port, type=socktype, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socktype)
    try:
        if socktype == socket.SOCK_STREAM:
            # Restarting a lesson's server on a fixed port would otherwise fail
            # with "Address already in use" while old connections sit in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class Server(Background):
    """A background object with one bound socket, an event log and an address.

    The lifecycle (claim the name, open, serve in a thread, stop) is
    socklab.background's.  A server adds its socket, bound in open() to
    ``host`` and ``port`` (0: the kernel picks one), and what it does with it.
    TCPServer, UDPServer and socklab.LossyRelay are servers.
    """

    kind = "?"
    socktype = None  # socket.SOCK_STREAM or socket.SOCK_DGRAM
    log_class = EventLog

    def __init__(self, *, name=None, host="127.0.0.1", port=0):
        self.events = self.log_class()
        self.sock = None
        self._host, self._port = host, port
        super().__init__(name)  # claims the name, calls open(), starts serve()

    def open(self):
        self.sock = bound_socket(self._host, self._port, self.socktype)
        self.address = self.sock.getsockname()[:2]  # (host, port) for connect()

    @property
    def host(self):
        return self.address[0]

    @property
    def port(self):
        return self.address[1]

    def keep_error(self, exc, conn=0):
        self.events.add("error", conn, detail=f"{type(exc).__name__}: {exc}")
        super().keep_error(exc)

    def wake(self):
        self.events.add("stop")  # stop() calls wake() once, first
        super().wake()

    def close(self):
        if self.sock is not None:
            self.sock.close()

    def __repr__(self):
        state = "running" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.name!r} {self.kind} on {self.host}, {state}>"


class TCPServer(Server):
    """Accept TCP connections and run ``handler(conn)`` for each in its own thread.

    ``conn`` is a Connection: use it like a connected socket.  When the handler
    returns, the connection is closed.
    """

    kind = "tcp"
    default_name = "tcp"
    socktype = socket.SOCK_STREAM

    def __init__(self, handler, *, name=None, host="127.0.0.1", port=0):
        self.handler = handler
        self._connections = {}  # number -> Connection, open ones only
        self._connections_lock = threading.Lock()
        self._accepted = 0
        super().__init__(name=name, host=host, port=port)

    def open(self):
        super().open()
        self.sock.listen(socket.SOMAXCONN)  # the kernel caps it at net.core.somaxconn

    @property
    def connections(self):
        """How many connections are open right now."""
        with self._connections_lock:
            return len(self._connections)

    def serve(self):
        """The accept loop: runs in its own thread until stop()."""
        self.events.add("listen")
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.sock, selectors.EVENT_READ)
                selector.register(self.wake_reader, selectors.EVENT_READ)
                while self.wait_readable(selector):
                    self._accept()
        finally:
            # No connection can appear any more: wake the ones still open.
            with self._connections_lock:
                still_open = list(self._connections.values())
            for conn in still_open:
                conn._wake()

    def _accept(self):
        try:
            sock, peer = self.sock.accept()
        except OSError as exc:  # e.g. EMFILE: too many open files
            self.keep_error(exc)
            return
        self._accepted += 1
        conn = Connection(sock, self._accepted, peer, self.events)
        with self._connections_lock:
            self._connections[conn.number] = conn
        self.events.add("accept", conn.number, peer=peer)
        self.spawn(self._serve_connection, f"socklab {self.name} conn {conn.number}", conn)

    def _serve_connection(self, conn):
        try:
            self.handler(conn)
        except (ConnectionResetError, BrokenPipeError) as exc:
            if not conn.stopping:
                conn._record("reset", detail=type(exc).__name__)
        except OSError as exc:
            if not conn.stopping:  # a socket shut down by stop() is expected to fail
                self.keep_error(exc, conn.number)
        except Exception as exc:
            self.keep_error(exc, conn.number)
        finally:
            conn.close()
            with self._connections_lock:
                self._connections.pop(conn.number, None)
            conn._record("close")


class UDPServer(Server):
    """Receive datagrams; reply with whatever ``handler(data, peer)`` returns.

    The handler returns bytes to send back to ``peer``, or None for no reply.
    Peers are numbered in the event log in the order they first wrote.
    """

    kind = "udp"
    default_name = "udp"
    socktype = socket.SOCK_DGRAM

    def __init__(self, handler, *, name=None, host="127.0.0.1", port=0):
        self.handler = handler
        self._peers = {}  # peer address -> its number in the event log
        super().__init__(name=name, host=host, port=port)

    def serve(self):
        self.events.add("bound")
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self.wake_reader, selectors.EVENT_READ)
            while self.wait_readable(selector):
                self._serve_datagram()

    def _serve_datagram(self):
        try:
            data, peer = self.sock.recvfrom(UDP_BUFSIZE)
        except OSError as exc:  # an ICMP error reported late; the server goes on
            self.events.add("error", detail=f"{type(exc).__name__}: {exc}")
            return
        number = self._peers.setdefault(peer, len(self._peers) + 1)
        self.events.add("recvfrom", number, len(data), peer=peer, party="peer")
        try:
            reply = self.handler(data, peer)
        except Exception as exc:
            self.keep_error(exc, number)
            return
        if reply is None:
            return
        self.events.add("sendto", number, len(reply), peer=peer, party="peer")
        try:
            self.sock.sendto(reply, peer)
        except OSError as exc:
            self.events.add("error", number, detail=f"{type(exc).__name__}: {exc}", party="peer")


class TCPEchoServer(TCPServer):
    """A TCP server that sends back every byte it receives."""

    default_name = "tcp-echo"

    def __init__(self, *, name=None, host="127.0.0.1", port=0):
        super().__init__(echo_handler, name=name, host=host, port=port)


class UDPEchoServer(UDPServer):
    """A UDP server that answers every datagram with the same datagram."""

    default_name = "udp-echo"

    def __init__(self, *, name=None, host="127.0.0.1", port=0):
        super().__init__(udp_echo_handler, name=name, host=host, port=port)


def serve(handler, kind="tcp", name=None, host="127.0.0.1", port=0):
    """Start a server running ``handler`` in the background and return it.

    kind="tcp": ``handler(conn)`` is called in a new thread for each connection.
    kind="udp": ``reply = handler(data, peer)`` is called for each datagram.
    """
    classes = {"tcp": TCPServer, "udp": UDPServer}
    if kind not in classes:
        raise ValueError(f"kind must be 'tcp' or 'udp', not {kind!r}")
    return classes[kind](handler, name=name, host=host, port=port)
