"""Checks for lesson 03's exercises: make_listener(), serve_one(), queue_state().

Each check runs the learner's function against real sockets on loopback:

* check_make_listener -- is the socket it returns a TCP socket, bound to the
  host it was asked for (port 0: any free port), listening, with SO_REUSEADDR,
  and with the backlog it was asked for?  The backlog is read back from the
  kernel with ``ss`` (iproute2), the way the lesson reads it.
* check_serve_one -- does it accept one client, greet it with b"hello\\n", close
  that connection (and not the listener), return the client's address -- and
  survive a client that connected and reset before it was accepted?
* check_queue_state -- does it find a listener's (Recv-Q, Send-Q) in the text
  that ``ss -ltn`` prints, for the right port only?
"""

import errno
import select
import shutil
import socket
import struct
import subprocess

from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_make_listener", "check_serve_one", "check_queue_state", "listen_queue"]

PYTHON_DEFAULT_BACKLOG = 128  # socket.listen() without an argument: min(SOMAXCONN, 128)


# -- reading a listener's queue with ss ---------------------------------------------


def _ss_lines(*filters):
    """Lines of ``ss -ltnH [filters]``; None when ss is not installed."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    done = subprocess.run([ss, "-ltnH", *filters], capture_output=True, text=True,
                          timeout=5, stdin=subprocess.DEVNULL)
    return [line for line in done.stdout.splitlines() if line.strip()]


def _local_host_port(column):
    """("127.0.0.1", 8080) from "127.0.0.1:8080", "[::1]:8080", "127.0.0.53%lo:53"."""
    host, _, port = column.rpartition(":")
    host = host.split("%", 1)[0].strip("[]")
    return host, int(port) if port.isdigit() else None


def listen_queue(host, port):
    """(waiting, backlog) of the TCP listener at (host, port), as ``ss -ltn`` shows.

    Recv-Q of a listening socket is how many connections wait for accept();
    Send-Q is the backlog the queue is limited to.  None if ss is missing or
    nothing listens there.
    """
    lines = _ss_lines("sport", "=", f":{port}")
    for line in lines or ():
        fields = line.split()
        if len(fields) >= 4 and _local_host_port(fields[3]) == (host, port):
            return int(fields[1]), int(fields[2])
    return None


# -- Exercise 1: make_listener(host, backlog) ------------------------------------------

LISTENER_CASES = [("127.0.0.1", 5), ("127.0.0.2", 1), ("::1", 3)]


def _ipv6_loopback_works():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _sockets_in(value):
    if isinstance(value, socket.socket):
        return [value]
    if isinstance(value, (tuple, list)):
        return [item for item in value if isinstance(item, socket.socket)]
    return []


def check_make_listener(make_listener):
    """Check ``make_listener(host, backlog) -> socket`` for a few hosts and backlogs.

    The socket must be TCP, bound to (host, <a port the kernel chose>), have
    SO_REUSEADDR set, and listen with ``backlog``; a client must be able to
    connect to it.
    """
    report = Report("Checking make_listener(host, backlog):")
    for host, backlog in LISTENER_CASES:
        description = f"make_listener({host!r}, {backlog})"
        if ":" in host and not _ipv6_loopback_works():
            report.add(f"{description}: not checked, this machine has no IPv6 loopback",
                       Verdict.ok())
            continue
        outcome, thread = call_with_time_limit(make_listener, host, backlog)
        try:
            verdict = _judge_listener(outcome, host, backlog)
        finally:
            for sock in _sockets_in(outcome.value):
                sock.close()
        if verdict.passed and shutil.which("ss") is None:
            description += " (backlog not checked: `ss` is not installed)"
        if report.add(description, verdict).final:
            return report  # one hint is enough
    return report


def _judge_listener(outcome, host, backlog):
    """Judge make_listener(host, backlog)'s socket: TCP, bound to host, listening, reusable."""
    if not outcome.finished:
        return Verdict.fail(
            f"make_listener() did not return within {TIME_LIMIT:g} s.  It should only\n"
            "make the socket, bind and listen -- not accept(): taking clients is the\n"
            "caller's job (and serve_one's, in the next exercise).", final=True)
    if not_written(outcome):
        return Verdict.not_written()
    if outcome.error is not None:
        return Verdict.fail(_hint_for_listener_error(outcome.error, host))
    sock = outcome.value
    if not isinstance(sock, socket.socket):
        if _sockets_in(sock):
            return Verdict.fail(
                f"it returned a {type(sock).__name__}; return the listening socket itself.")
        return Verdict.fail(f"it returned {type(sock).__name__}, not a socket.")
    if sock.fileno() == -1:
        return Verdict.fail(
            "the socket it returned is closed.  A `with socket.socket() as s:` block\n"
            "closes s when the block ends: return the socket without a with block.")
    if sock.type != socket.SOCK_STREAM:
        return Verdict.fail("it is not a TCP socket: a listener is made with SOCK_STREAM.")
    bound_host, port = sock.getsockname()[:2]
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if port == 0:
        return Verdict.fail(f"it is not bound to an address: call bind(({host!r}, 0)).")
    if bound_host != host:
        if bound_host in ("0.0.0.0", "::"):
            return Verdict.fail(
                f"it is bound to {bound_host!r}, the wildcard (every address of the machine),\n"
                f"not to {host!r}.  Bind to ({host!r}, 0).  (listen() on a socket that was\n"
                "never bound binds it to the wildcard by itself: did you forget bind()?)")
        return Verdict.fail(
            f"it is bound to {bound_host!r}, not to {host!r}: bind to ({host!r}, 0).")
    if not listening:
        return Verdict.fail("it is bound but not listening: call listen(backlog).")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR):
        return Verdict.fail("SO_REUSEADDR is not set: call\n"
                            "setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) before bind().")
    verdict = _judge_backlog(host, port, backlog)
    if not verdict.passed:
        return verdict
    try:
        with socket.create_connection((host, port), timeout=TIME_LIMIT):
            pass
    except OSError as exc:
        return Verdict.fail(f"a client could not connect to it: {describe_error(exc)}")
    return Verdict.ok()


def _hint_for_listener_error(exc, host):
    text = describe_error(exc)
    family_mismatch = isinstance(exc, socket.gaierror) or getattr(exc, "errno", None) in (
        errno.EAFNOSUPPORT, errno.EINVAL)
    if ":" in host and family_mismatch:
        return (f"{text}\n{host!r} is an IPv6 address: its socket must be made with AF_INET6.\n"
                "Choose the family from the host, e.g. AF_INET6 if ':' in host else AF_INET.")
    if getattr(exc, "errno", None) == errno.EADDRINUSE:
        return f"{text}\nBind to port 0, so that the kernel picks a free port."
    return text


def _judge_backlog(host, port, backlog):
    """Judge the backlog of the listener at (host, port), as ss shows it (passed without ss)."""
    queue = listen_queue(host, port)
    if queue is None:
        return Verdict.ok()  # no ss to read it with: the check's description says so
    _, actual = queue
    if actual == backlog:
        return Verdict.ok()
    if actual == PYTHON_DEFAULT_BACKLOG:
        return Verdict.fail(
            f"its backlog is {actual}, Python's default: listen() was called without an\n"
            f"argument.  Pass the backlog: listen(backlog).")
    return Verdict.fail(
        f"its backlog is {actual}, not {backlog}: call listen(backlog) with the argument.")


# -- Exercise 2: serve_one(listener) ----------------------------------------------------

GREETING = b"hello\n"
EOF_WAIT = 2.0  # seconds the check's client waits for the server's bytes and its close


def check_serve_one(serve_one):
    """Check ``serve_one(listener) -> address`` with real clients.

    serve_one must accept one client from ``listener``, send it b"hello\\n",
    close that connection (not the listener) and return the client's address;
    a client that resets before it is accepted must not make it raise.
    """
    report = Report("Checking serve_one(listener):")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        address = listener.getsockname()
        for description in ("greets a client with b'hello\\n', closes, returns its address",
                            "serves the next client through the same listener"):
            # Any failure ends the check: it leaves the listener in a state (a client
            # not accepted, the listener closed ...) where the next client tells nothing new.
            verdict = _serve_a_client(serve_one, listener, address).final_if_failed()
            if report.add(description, verdict).final:
                return report
        report.add("survives a client that resets before it is accepted",
                   _serve_a_reset_client(serve_one, listener, address))
    finally:
        _unblock(listener)
        listener.close()
    return report


def _unblock(listener):
    """Wake a learner's thread blocked in accept() on listener (Linux: EINVAL)."""
    if listener.fileno() != -1:
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _hint_for_hang():
    return (f"serve_one() did not return within {TIME_LIMIT:g} s.  It should accept one client,\n"
            "send, close and return.  A loop around accept() (serving forever), or a\n"
            "recv() that waits for the client to speak first, never returns here: this\n"
            "client only listens.")


def _pending(listener):
    """Is a connection still waiting in the listener's accept queue?"""
    readable, _, _ = select.select([listener], [], [], 0)
    return bool(readable)


def _drain(listener):
    """Accept and close what the learner's function left in the queue."""
    listener.setblocking(False)
    try:
        while True:
            conn, _ = listener.accept()
            conn.close()
    except OSError:
        pass
    finally:
        listener.setblocking(True)


def _read_until_eof(sock, timeout):
    """(bytes received, whether the peer closed) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            part = sock.recv(1024)
            if not part:
                return data, True
            data += part
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def _closed_by_learner(listener):
    return listener.fileno() == -1 or not listener.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


LISTENER_CLOSED = (
    "the listener was closed.  serve_one must close only the connection that\n"
    "accept() returned, never the listener: a server goes on to the next client.")


NOT_ACCEPTED = "serve_one() returned without accepting the client: call listener.accept()."


def _serve_a_client(serve_one, listener, address):
    """Judge serve_one(listener) with one client at ``address`` that only listens."""
    try:
        client = socket.create_connection(address, timeout=TIME_LIMIT)
    except OSError:
        return Verdict.fail(LISTENER_CLOSED)
    with client:
        me = client.getsockname()
        outcome, thread = call_with_time_limit(serve_one, listener)
        if not outcome.finished:
            client.close()  # a recv() in serve_one returns b'' now
            thread.join(1.0)
            if thread.is_alive():
                _unblock(listener)  # an accept() in serve_one fails now
                thread.join(TIME_LIMIT)
            return Verdict.fail(_hint_for_hang())
        if outcome.error is not None:
            hint = describe_error(outcome.error)
            if isinstance(outcome.error, TypeError) and "bytes-like" in str(outcome.error):
                hint += "\nSockets carry bytes: send b'hello\\n', not 'hello\\n'."
            return Verdict.fail(hint)
        if listener.fileno() != -1 and _pending(listener):
            _drain(listener)
            return Verdict.not_written() if outcome.value is None else Verdict.fail(NOT_ACCEPTED)
        data, closed = _read_until_eof(client, EOF_WAIT)
    verdict = _judge_greeting(data, closed)
    if verdict.passed:
        verdict = _judge_address(outcome.value, me)
    if verdict.passed and _closed_by_learner(listener):
        verdict = Verdict.fail(LISTENER_CLOSED)
    return verdict


def _judge_greeting(data, closed):
    """Judge what the client received: exactly b"hello\\n", then the end of the stream."""
    if data != GREETING:
        if data == b"":
            return Verdict.fail("the client received nothing: send b'hello\\n' to the"
                                " connection accept() returned.")
        if data == b"hello":
            return Verdict.fail("the client received b'hello': the newline is part of the"
                                " greeting, b'hello\\n'.")
        if data.rstrip(b"\r\n") == GREETING.rstrip():
            return Verdict.fail(
                f"the client received {data!r}: the greeting is exactly b'hello\\n'.")
        return Verdict.fail(f"the client received {data[:40]!r}, not b'hello\\n'.")
    if not closed:
        return Verdict.fail(
            "the client got the greeting, but the connection stayed open: close it\n"
            "(conn.close(), or a `with conn:` block) before returning.")
    return Verdict.ok()


def _judge_address(value, me):
    """Judge serve_one()'s return value: the client's address ``me``."""
    if value is None:
        return Verdict.fail(
            "it returned None: return the client's address -- accept() returns a pair\n"
            "(conn, address).")
    if _sockets_in(value):
        return Verdict.fail(
            "it returned a socket too: return only the address, the second item of\n"
            "what accept() returned.")
    if value != me:
        return Verdict.fail(
            f"it returned a {type(value).__name__} that is not the client's address.")
    return Verdict.ok()


def _serve_a_reset_client(serve_one, listener, address):
    """Judge serve_one(listener) with a client that reset before it was accepted."""
    try:
        client = socket.create_connection(address, timeout=TIME_LIMIT)
    except OSError:
        return Verdict.fail(LISTENER_CLOSED)
    # Linger on, time 0: close() sends RST and discards the connection at once.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    outcome, thread = call_with_time_limit(serve_one, listener)
    if not outcome.finished:
        _unblock(listener)
        thread.join(TIME_LIMIT)
        return Verdict.fail(_hint_for_hang())
    if isinstance(outcome.error, (ConnectionResetError, BrokenPipeError)):
        return Verdict.fail(
            f"it raised {type(outcome.error).__name__}.  This client connected, then reset the\n"
            "connection before serve_one accepted it.  accept() still returns such a\n"
            "connection, and the first send reports the reset.  A server must not stop\n"
            "because one client left: catch ConnectionResetError and BrokenPipeError\n"
            "around the send, and return as usual (the connection still gets closed).")
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    if listener.fileno() != -1 and _pending(listener):
        _drain(listener)
        return Verdict.fail(NOT_ACCEPTED)
    return Verdict.ok()


# -- Exercise 3: queue_state(ss_output, port) -------------------------------------------

SS_TABLE = """\
State  Recv-Q Send-Q      Local Address:Port    Peer Address:Port Process
LISTEN 0      4096            127.0.0.1:8080         0.0.0.0:*
LISTEN 0      128             127.0.0.1:80           0.0.0.0:*
LISTEN 5      511               0.0.0.0:18080        0.0.0.0:*
LISTEN 0      4096        127.0.0.53%lo:53           0.0.0.0:*
LISTEN 1      10                  [::1]:8081            [::]:*
LISTEN 0      64                      *:9000               *:*
"""

# (description, port, expected answer)
TABLE_CASES = [
    ("port 80 (ports 8080 and 18080 are listed too)", 80, (0, 128)),
    ("port 18080, on 0.0.0.0", 18080, (5, 511)),
    ("port 53, on 127.0.0.53%lo", 53, (0, 4096)),
    ("port 8081, on [::1]", 8081, (1, 10)),
    ("port 9000, on *", 9000, (0, 64)),
    ("port 9999: nobody listens there, so None", 9999, None),
]
REAL_BACKLOG = 3
REAL_WAITING = 2


def check_queue_state(queue_state):
    """Check ``queue_state(ss_output, port) -> (waiting, backlog) or None``.

    First on the real ``ss -ltn`` table of this machine, with a listener the
    check made (backlog 3, two connections waiting); then on a fixed table with
    the traps: ports that contain each other, IPv6, wildcards.
    """
    report = Report("Checking queue_state(ss_output, port):")
    description = (f"a real `ss -ltn` table: a listener with backlog {REAL_BACKLOG} "
                   f"and {REAL_WAITING} connections waiting")
    if shutil.which("ss") is None:
        report.add(f"{description}: not checked, `ss` is not installed", Verdict.ok())
    elif report.add(description, _check_real_table(queue_state)).final:
        return report
    for description, port, expected in TABLE_CASES:
        outcome, thread = call_with_time_limit(queue_state, SS_TABLE, port)
        if report.add(description, _judge_queue(outcome, expected, port)).final:
            break
    return report


def _check_real_table(queue_state):
    """Judge queue_state() on this machine's real ``ss -ltn`` table."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(REAL_BACKLOG)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=TIME_LIMIT)
                   for _ in range(REAL_WAITING)]
        try:
            done = subprocess.run(["ss", "-ltn"], capture_output=True, text=True, timeout=5,
                                  stdin=subprocess.DEVNULL)
        finally:
            for client in clients:
                client.close()
    outcome, _ = call_with_time_limit(queue_state, done.stdout, port)
    return _judge_queue(outcome, (REAL_WAITING, REAL_BACKLOG), port)


def _judge_queue(outcome, expected, port):
    """Judge queue_state(table, port): ``expected``, the listener's (Recv-Q, Send-Q) or None."""
    if not outcome.finished:
        return Verdict.fail(f"queue_state() did not return within {TIME_LIMIT:g} s.", final=True)
    if expected is not None and not_written(outcome):
        return Verdict.not_written()
    if outcome.error is not None:
        hint = describe_error(outcome.error)
        if isinstance(outcome.error, ValueError):
            hint += ("\nNot every line is a listener: skip the header line and blank lines,\n"
                     "and take the port after the last ':' of the Local Address column.")
        return Verdict.fail(hint)
    value = outcome.value
    if value == expected:
        return Verdict.ok()
    if expected is None:
        return Verdict.fail(
            f"it returned {value!r}, but no listener in this table has port {port}:\n"
            "return None.  (Does `str(port) in line` match another port?)")
    if isinstance(value, (tuple, list)) and tuple(value) == expected:
        return Verdict.fail(
            f"it returned a {type(value).__name__}; return a tuple: (waiting, backlog).")
    if isinstance(value, tuple) and len(value) == 2 and tuple(map(str, expected)) == value:
        return Verdict.fail("it returned strings: convert them with int().")
    if value == expected[::-1]:
        return Verdict.fail(
            "the two numbers are swapped.  For a listener, Recv-Q is how many connections\n"
            "wait for accept(), Send-Q is the backlog: return (Recv-Q, Send-Q).")
    if port == 80 and value in ((0, 4096), (5, 511)):
        return Verdict.fail(
            "it found the listener on port 8080 or 18080: a test like `':80' in line`\n"
            "matches those too.  Compare the port exactly: the number after the last\n"
            "':' of the Local Address column.")
    if value is None:
        return Verdict.fail(
            f"it returned None, but a listener with port {port} is in the table.")
    return Verdict.fail(f"it returned {value!r}; expected {expected!r} (Recv-Q, Send-Q).")
