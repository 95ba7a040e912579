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
  byte to the other end.  Threads of connections are woken by shutdown(SHUT_RDWR),
  which makes a blocked recv() return b'' and a blocked send() fail.  stop() then
  joins every thread within a time limit and raises if one is still alive.

* **Threads never print.**  They record Events (see socklab.events) that a cell
  displays with ``srv.events``.  An exception in a handler is recorded, kept, and
  raised again by stop(), so a bug is never lost in a background thread.  A peer
  that resets the connection is the network's doing, not a bug: it is recorded as a
  "reset" event and not raised.

* **Named servers replace their namesakes** and every server is registered with
  socklab.registry, so re-running a cell does not pile up servers, stop_all() ends
  them all, and nothing outlives the Python process.
"""

import selectors
import socket
import threading
import time
import warnings

from . import registry
from .events import EventLog

__all__ = [
    "Connection",
    "TCPServer",
    "UDPServer",
    "TCPEchoServer",
    "UDPEchoServer",
    "serve",
    "echo_handler",
    "udp_echo_handler",
]

WILDCARD_HOSTS = ("", "0.0.0.0", "::")
STOP_TIMEOUT = 5.0  # seconds stop() waits for all threads together
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
        self._record("shutdown", detail={0: "SHUT_RD", 1: "SHUT_WR"}.get(how, "SHUT_RDWR"))
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


def _family_for(host, port, socktype):
    """AF_INET or AF_INET6 and the address to bind, as getaddrinfo says."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host or None, port, type=socktype, flags=socket.AI_PASSIVE
    )[0]
    return family, sockaddr


class _Server:
    """What TCP and UDP servers share: naming, the registry, the event log, stop()."""

    kind = "?"
    default_name = "server"

    def __init__(self, handler, *, name=None, host="127.0.0.1", port=0):
        if host in WILDCARD_HOSTS:
            warnings.warn(
                f"binding to {host or 'all addresses'!r} makes this server reachable "
                "from other machines; the course only needs 127.0.0.1",
                stacklevel=3,
            )
        self.handler = handler
        self.name = name if name is not None else registry.unique_name(self.default_name)
        self.events = self._new_event_log()
        self._errors = []  # exceptions from handlers, raised again by stop()
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._threads = []
        # The socketpair wakes the serving thread out of its selector.
        self._wake_reader, self._wake_writer = socket.socketpair()
        family, sockaddr = _family_for(host, port, self._socktype)
        self.sock = socket.socket(family, self._socktype)
        try:
            self._bind_and_listen(sockaddr)
        except BaseException:
            self._close_sockets()
            raise
        self.address = self.sock.getsockname()[:2]  # (host, port) for connect()
        registry.register(self)  # stops a namesake before we start
        self._start_thread(self._serve, f"socklab {self.name}")

    # -- what subclasses provide ------------------------------------------
    _socktype = None

    def _new_event_log(self):
        return EventLog()

    def _bind_and_listen(self, sockaddr):
        raise NotImplementedError

    def _serve(self):
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------
    @property
    def host(self):
        return self.address[0]

    @property
    def port(self):
        return self.address[1]

    @property
    def alive(self):
        """True until stop() has been called."""
        return not self._stopped

    def _start_thread(self, target, name, *args):
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _keep_error(self, exc, conn=0):
        self.events.add("error", conn, detail=f"{type(exc).__name__}: {exc}")
        self._errors.append(exc)

    def _wait_readable(self, selector):
        """Block until the socket is readable; False once stop() has woken us."""
        ready = selector.select()
        return all(key.fileobj is not self._wake_reader for key, _ in ready)

    def _close_sockets(self):
        for sock in (self.sock, self._wake_reader, self._wake_writer):
            sock.close()

    def _wake_everyone(self):
        self._wake_writer.send(b"x")

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop serving, close every socket, join every thread.

        Safe to call more than once (later calls do nothing).  Raises
        RuntimeError if a thread is still alive after ``timeout`` seconds (a
        handler stuck outside socket calls), and raises again the first exception
        a handler raised while the server ran.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self.events.add("stop")
        self._wake_everyone()
        stuck = self._join(timeout)
        self._close_sockets()
        registry.unregister(self)
        if stuck:
            raise RuntimeError(
                f"{self.name}: thread(s) still running {timeout:g} s after stop(): "
                + ", ".join(stuck)
            )
        if self._errors:
            first = self._errors[0]
            if len(self._errors) > 1 and hasattr(first, "add_note"):
                first.add_note(f"({len(self._errors) - 1} more error(s) in srv.events)")
            raise first

    def _join(self, timeout):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        state = "running" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.name!r} {self.kind} on {self.host}, {state}>"


class TCPServer(_Server):
    """Accept TCP connections and run ``handler(conn)`` for each in its own thread.

    ``conn`` is a Connection: use it like a connected socket.  When the handler
    returns, the connection is closed.
    """

    kind = "tcp"
    default_name = "tcp"
    _socktype = socket.SOCK_STREAM

    def __init__(self, handler, *, name=None, host="127.0.0.1", port=0):
        self._connections = {}  # number -> Connection, open ones only
        self._connections_lock = threading.Lock()
        self._accepted = 0
        super().__init__(handler, name=name, host=host, port=port)

    def _bind_and_listen(self, sockaddr):
        # Restarting a lesson's server on a fixed port would otherwise fail with
        # "Address already in use" while old connections sit in TIME_WAIT.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(sockaddr)
        self.sock.listen(socket.SOMAXCONN)  # the kernel caps it at net.core.somaxconn

    @property
    def connections(self):
        """How many connections are open right now."""
        with self._connections_lock:
            return len(self._connections)

    def _serve(self):
        """The accept loop: runs in its own thread until stop()."""
        self.events.add("listen")
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while self._wait_readable(selector):
                try:
                    sock, peer = self.sock.accept()
                except OSError as exc:  # e.g. EMFILE: too many open files
                    self._keep_error(exc)
                    continue
                self._accepted += 1
                conn = Connection(sock, self._accepted, peer, self.events)
                with self._connections_lock:
                    self._connections[conn.number] = conn
                self.events.add("accept", conn.number, peer=peer)
                self._start_thread(
                    self._serve_connection, f"socklab {self.name} conn {conn.number}", conn
                )

    def _serve_connection(self, conn):
        try:
            self.handler(conn)
        except (ConnectionResetError, BrokenPipeError) as exc:
            if not conn.stopping:
                conn._record("reset", detail=type(exc).__name__)
        except OSError as exc:
            if not conn.stopping:  # a socket shut down by stop() is expected to fail
                self._keep_error(exc, conn.number)
        except Exception as exc:
            self._keep_error(exc, conn.number)
        finally:
            conn.close()
            with self._connections_lock:
                self._connections.pop(conn.number, None)
            conn._record("close")

    def _join(self, timeout):
        deadline = time.monotonic() + timeout
        accept_thread = self._threads[0]
        accept_thread.join(timeout)
        # The accept thread has ended, so no new connection can appear now.
        with self._connections_lock:
            open_connections = list(self._connections.values())
        for conn in open_connections:
            conn._wake()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self._threads if thread.is_alive()]


class UDPServer(_Server):
    """Receive datagrams; reply with whatever ``handler(data, peer)`` returns.

    The handler returns bytes to send back to ``peer``, or None for no reply.
    Peers are numbered in the event log in the order they first wrote.
    """

    kind = "udp"
    default_name = "udp"
    _socktype = socket.SOCK_DGRAM

    def __init__(self, handler, *, name=None, host="127.0.0.1", port=0):
        self._peers = {}  # peer address -> its number in the event log
        super().__init__(handler, name=name, host=host, port=port)

    def _bind_and_listen(self, sockaddr):
        self.sock.bind(sockaddr)

    def _serve(self):
        self.events.add("bound")
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while self._wait_readable(selector):
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
            self._keep_error(exc, number)
            return
        if reply is None:
            return
        self.events.add("sendto", number, len(reply), peer=peer, party="peer")
        try:
            self.sock.sendto(reply, peer)
        except OSError as exc:
            self.events.add("error", number, detail=f"{type(exc).__name__}: {exc}", party="peer")

    def _join(self, timeout):
        self._threads[0].join(timeout)
        return [thread.name for thread in self._threads if thread.is_alive()]


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
