"""Checks for lesson 03's exercises: make_listener(), serve_one(), queue_state(), and
the same server in C.

Each check runs the learner's function against real sockets on loopback:

* check_make_listener -- is the socket it returns a TCP socket, bound to the
  host it was asked for (port 0: any free port), listening, with SO_REUSEADDR,
  and with the backlog it was asked for?  The backlog is read back from the
  kernel's socket table, as ``ss`` reads it (socklab.explore.tcp_sockets).
* check_serve_one -- does it accept one client, greet it with b"hello\\n", close
  that connection (and not the listener), return the client's address -- and
  survive a client that connected and reset before it was accepted?
* check_queue_state -- does it find a listener's (Recv-Q, Send-Q) in the text
  that ``ss -ltn`` prints, for the right port only?
* check_hello_server_c -- make_listener and serve_one in one C program that
  serves one client after another (a ``%%c NAME --compile-only`` cell).  Its
  listening socket, copied out of the running program, meets make_listener's
  judge; each client serve_one's (b"hello\\n", then the end of the stream), and
  the line the program prints for it must name the client's address, as
  serve_one returns it.  Then the clients that kill C servers: resets before
  the server gets to them (getpeername's ENOTCONN), one that closes and resets
  before it is greeted (SIGPIPE), a hundred in a row, a moment without free
  descriptors (accept's EMFILE); and C's own failures (socklab.checks.c_answer).
"""

import errno
import re
import select
import shutil
import socket
import struct
import subprocess
import time

from .. import explore
from . import adversary, c_answer
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_make_listener", "check_serve_one", "check_queue_state",
           "check_hello_server_c", "listen_queue"]

PYTHON_DEFAULT_BACKLOG = 128  # socket.listen() without an argument: min(SOMAXCONN, 128)


# -- reading a listener's queue ------------------------------------------------------


def listen_queue(host, port):
    """(waiting, backlog) of the TCP listener at (host, port), as ``ss -ltn`` shows.

    Recv-Q of a listening socket is how many connections wait for accept();
    Send-Q is the backlog the queue is limited to.  Read from the kernel's
    table as ss reads it (socklab.explore.tcp_sockets), so ss need not be
    installed.  None if nothing listens there.
    """
    for row in explore.tcp_sockets():
        if row.state == "LISTEN" and row.local == (host, port):
            return row.recv_q, row.send_q
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
            report.add(description, Verdict.skip("this machine has no IPv6 loopback"))
            continue
        outcome, thread = call_with_time_limit(make_listener, host, backlog)
        try:
            verdict = _judge_listener(outcome, host, backlog)
        finally:
            for sock in _sockets_in(outcome.value):
                sock.close()
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
    return _judge_listening_socket(sock, host, backlog)


def _judge_listening_socket(sock, host, backlog, c=False):
    """Judge a listening socket: TCP, bound to (host, any port), listening, with
    SO_REUSEADDR and ``backlog`` (None: any), reachable.  ``c``: hints for C."""
    if sock.type != socket.SOCK_STREAM:
        return Verdict.fail("it is not a TCP socket: a listener is made with SOCK_STREAM.")
    bound_host, port = sock.getsockname()[:2]
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if port == 0:
        return Verdict.fail(f"it is not bound to an address: call bind(({host!r}, 0)).")
    if bound_host != host:
        if bound_host in ("0.0.0.0", "::") and c:
            return Verdict.fail(
                f"it is bound to {bound_host!r}, the wildcard (every address of the machine),\n"
                f"not to {host!r}: addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK) before\n"
                "bind().  (INADDR_ANY is the wildcard; and listen() on a socket that was\n"
                "never bound binds the wildcard by itself: did you forget bind()?)")
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
        if c:
            return Verdict.fail("SO_REUSEADDR is not set: int on = 1;\n"
                                "setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) "
                                "before bind().")
        return Verdict.fail("SO_REUSEADDR is not set: call\n"
                            "setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) before bind().")
    if backlog is not None:
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
    """Judge the backlog of the listener at (host, port), as ss shows it."""
    queue = listen_queue(host, port)
    if queue is None:
        return Verdict.ok()  # not in this network's table: the other judges decide
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
    """Judge what the client received: exactly b"hello\\n", then the end of the stream.

    The same judge for serve_one() and for the C server: its hints fit both.
    """
    if data != GREETING:
        if data == b"" and not closed:
            return Verdict.fail(
                f"the client waited {EOF_WAIT:g} s and received nothing.  This client only\n"
                "listens: send b'hello\\n' to the connection accept() returned, first --\n"
                "a recv() before the send waits for ever.")
        if data == b"":
            return Verdict.fail("the client received nothing: send b'hello\\n' to the"
                                " connection accept() returned.")
        if data == GREETING + b"\0":
            return Verdict.fail(
                "the client received b'hello\\n\\x00': the '\\0' that ends a C string was\n"
                "sent too.  Send the six bytes of the text: strlen(greeting), not sizeof.")
        if data == b"hello":
            return Verdict.fail("the client received b'hello': the newline is part of the"
                                " greeting, b'hello\\n'.")
        if data.rstrip(b"\r\n") == GREETING.rstrip():
            return Verdict.fail(
                f"the client received {data!r}: the greeting is exactly b'hello\\n'.")
        return Verdict.fail(f"the client received {data[:40]!r}, not b'hello\\n'.")
    if not closed:
        return Verdict.fail(
            "the client got the greeting, but the connection stayed open: close the\n"
            "socket accept() returned once the greeting is sent (close() it, or in\n"
            "Python use a `with conn:` block).")
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
        report.add(description, Verdict.skip("`ss` is not installed"))
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


# -- Exercise 4: make_listener and serve_one, in C ---------------------------------------

HOST = "127.0.0.1"
IN_A_ROW = 100
WITHOUT_DESCRIPTORS = 0.5  # seconds the C server spends with no descriptor free

RESET_BEFORE_ACCEPT = (
    "This client connected, then reset the connection before the server accepted\n"
    "it.  accept() still returns such a connection; getpeername() on it fails with\n"
    "ENOTCONN, send() with ECONNRESET.  Those are errors of this one client: close\n"
    "its socket and go on to the next.")
LEFT_BEFORE_GREETING = (
    "This client closed its side, then reset the connection, before it was greeted:\n"
    "send() to it fails with EPIPE -- and, unless it has MSG_NOSIGNAL (or SIGPIPE is\n"
    "ignored), also raises SIGPIPE, which ends the program.")
NO_DESCRIPTOR_LEFT = (
    "While it had no free descriptor, accept() failed with EMFILE.  That passes as\n"
    "soon as clients leave: print it, wait a moment (usleep) and call accept() again,\n"
    "as the lesson's hello_server does and accept_client() in socklab.h does.")


def check_hello_server_c(name):
    """Check the C server NAME, compiled by a ``%%c NAME --compile-only`` cell.

    It must listen on 127.0.0.1 (any port, SO_REUSEADDR), print LISTENING
    <port>, then do what serve_one() does for one client after another: accept,
    print a line naming the client's address, send b"hello\\n", close.  Its
    listening socket meets make_listener's judge, each client serve_one's; then
    come the clients that end careless C servers, and c_answer's process checks
    (descriptors, a busy loop, zombies).
    """
    report = Report(f"Checking the C server {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    with answer:
        description = f"its listening socket: TCP, bound to {HOST}, SO_REUSEADDR"
        listener = answer.listening_socket()
        if listener is None:
            report.add(description, Verdict.skip("this system does not let a check see"
                                                 " into a running program"))
        else:
            with listener:
                verdict = _judge_listening_socket(listener, HOST, None, c=True)
            report.add(description, answer.judged(verdict))
        for description, case in C_CASES:
            if report.add(description, case(answer)).final:
                return report
        description = "accept() fails with EMFILE for a while: it waits and goes on"
        verdict = _c_out_of_descriptors(answer)
        if verdict is None:
            report.add(description, Verdict.skip("its limit of open files cannot be"
                                                 " changed here"))
        elif report.add(description, verdict).final:
            return report
        c_answer.check_process(answer, report)
    return report


def _greeted(sock):
    """serve_one's judge, for a client of the C server: b"hello\\n", then the end."""
    return _judge_greeting(*_read_until_eof(sock, EOF_WAIT))


def _c_serves_a_client(answer):
    """A client that only listens: greeted, closed, and named in the program's output."""
    printed_before = answer.program.output.count("\n")

    def client(sock):
        verdict = _greeted(sock)
        if verdict.passed:
            verdict = _judge_printed_address(answer.program, sock.getsockname(), printed_before)
        return verdict

    # Any failure ends the check, as in check_serve_one: the next client would
    # meet the same server and tell nothing new.
    return answer.play(client).final_if_failed()


def _judge_printed_address(program, me, printed_before):
    """Judge the line the program printed for the client at ``me``: its IP and port."""
    host, port = me[:2]
    named = re.compile(rf"(?m)^(?=.*(?<![\d.]){re.escape(host)}(?![\d.]))"
                       rf"(?=.*(?<!\d){port}(?!\d)).*$")
    try:
        program.wait_for_output(named, timeout=EOF_WAIT)
        return Verdict.ok()
    except TimeoutError:
        pass
    new = [line for line in program.output.splitlines()[printed_before:] if line.strip()]
    swapped = (port & 0xFF) << 8 | port >> 8
    if any(host in line and re.search(rf"(?<!\d){swapped}(?!\d)", line) for line in new):
        return Verdict.fail(
            "the line it printed for this client has the port's two bytes swapped:\n"
            "sin_port is in network byte order; print ntohs(peer.sin_port).")
    if any(re.search(rf"(?<!\d){port}(?!\d)", line) for line in new):
        return Verdict.fail(
            f"the line it printed for this client has its port but not its address,\n"
            f"{host}: inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text) makes the text.")
    if new:
        return Verdict.fail(
            f"the line it printed for this client, {new[0]!r}, does not name its\n"
            f"address: {host} and the client's port.  Give getpeername() (or accept())\n"
            "the size of the address structure in its length argument, every time\n"
            "(value-result), then print inet_ntop() of sin_addr and ntohs(sin_port).")
    return Verdict.fail(
        f"it printed no line for this client within {EOF_WAIT:g} s.  Print one line\n"
        f"per client naming its address, e.g. 'client {host} <port>', then\n"
        "fflush(stdout): printf() into a pipe keeps the text in its buffer until the\n"
        "buffer is full.")


def _explained(answer, verdict, why):
    """``verdict``, with ``why`` added if the program died of the case's client."""
    if verdict.passed or answer.program.alive:
        return verdict
    return Verdict.fail(f"{verdict.hint}\n{why}", final=True)


def _c_reset_before_accept(answer):
    with answer.paused():  # the kernel completes the handshake; the program waits
        with answer.connect() as sock:
            adversary.reset(sock)
    return _explained(answer, answer.play(_greeted), RESET_BEFORE_ACCEPT)


def _c_leaves_before_greeting(answer):
    # A FIN, then a RST, both before the program gets to the connection: the
    # reset finds it in CLOSE_WAIT, and Linux makes the next send() fail with
    # EPIPE (tcp_reset()) -- the error that raises SIGPIPE.
    with answer.paused():
        with answer.connect() as sock:
            sock.shutdown(socket.SHUT_WR)
            adversary.reset(sock)
    return _explained(answer, answer.play(_greeted), LEFT_BEFORE_GREETING)


def _c_in_a_row(answer):
    for number in range(1, IN_A_ROW + 1):
        verdict = answer.play(_greeted)
        if not verdict.passed:
            return verdict if verdict.final else Verdict.fail(
                f"client {number} of {IN_A_ROW}: {verdict.hint}")
    return Verdict.ok()


def _c_out_of_descriptors(answer):
    """A while with no descriptor free, a client waiting through it, then another
    client; None where the program's limit cannot be changed."""
    first = None
    try:
        with answer.out_of_descriptors() as limited:
            if not limited:
                return None
            # A waiting accept() took its descriptor when it began: it gets this
            # client, and the accept() after it fails.  Either way, accept()
            # fails with EMFILE during the window, and this client is greeted
            # at the latest when there is room again.
            first = answer.connect()
            verdict = _judge_emfile_window(answer)
        if verdict.passed:
            verdict = answer.judged(_greeted(first))
        if verdict.passed:
            verdict = answer.play(_greeted)  # descriptors back: it goes on
    except OSError as exc:
        verdict = answer.judged(
            Verdict.fail(f"the client's socket failed: {type(exc).__name__}: {exc}"))
    finally:
        if first is not None:
            first.close()
    return _explained(answer, verdict, NO_DESCRIPTOR_LEFT)


def _judge_emfile_window(answer):
    before = answer.runnable_seconds()
    time.sleep(WITHOUT_DESCRIPTORS)  # a window: its next accept() fails meanwhile
    if (dead := answer.death()) is not None:
        return dead
    used = answer.runnable_seconds() - before
    if used > WITHOUT_DESCRIPTORS / 2:
        return Verdict.fail(
            f"while accept() failed with EMFILE it used the CPU for {used:.1f} of"
            f" {WITHOUT_DESCRIPTORS:g} s:\nit tries again and again.  Pause a moment"
            " (usleep(100000)) before the next\naccept().")
    return Verdict.ok()


C_CASES = [
    ("greets a client with b'hello\\n', closes, prints its address", _c_serves_a_client),
    ("serves the next client through the same listener", _c_serves_a_client),
    ("survives a client that resets before it is accepted", _c_reset_before_accept),
    ("survives a client that closes and resets before it is greeted", _c_leaves_before_greeting),
    (f"greets {IN_A_ROW} clients in a row", _c_in_a_row),
]
