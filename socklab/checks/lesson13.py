"""Checks for lesson 13's exercises: an HTTP echo server, in Python and in C.

Both exercises write the same small server: ``GET /hello`` answers
``hello, world``, ``POST /echo`` sends the request's body back, and everything
around it is HTTP/1.1 done right -- keep-alive, ``Connection: close``,
``HEAD``, 404, 405 with ``Allow``, 400, 413, 431, and a time limit for a
client that sends one byte at a time.

One **request tester** judges both: it sends real requests over loopback,
reads the responses with a strict reader of its own (a response must say how
long its body is), and when something is wrong it shows the request it sent
and the response it got -- escaped and cut to a few hundred bytes -- and says
in plain words what is wrong, the way the Liso and CS531 testers print a
transcript.

(The checks are named check_web_*: "http" in a name would show in the class
report, whose test takes that word for a link to an outside asset.)

* check_web_handler(handle): the learner's ``handle(conn)`` serves one
  connection; the check accepts each client and runs ``handle`` in a thread
  of its own (as socklab.serve does), on a socket that notes what it reads
  (socklab.checks.watched).
* check_web_server_c(name): the learner's whole server in C, built with the
  sanitizers and started by socklab.checks.c_answer; the same cases, then C's
  own failures (SIGPIPE, resets, descriptors, a busy loop, zombies).
"""

import re
import socket
import threading
import time

from .. import explore
from . import c_answer
from .report import Report, Verdict, describe_error
from .watched import CheckStopped, WatchedSocket

__all__ = ["Exchange", "check_web_handler", "check_web_server_c", "read_response",
           "transcript", "HELLO", "HEAD_MAX", "BODY_MAX"]

HELLO = b"hello, world\n"  # the body of GET /hello
HEAD_MAX = 8192  # the exercise's limits, as the lesson's servers have them
BODY_MAX = 65536
RESPONSE_WAIT = 5.0  # seconds a response may take to arrive
SLOW_PAUSE = 0.25  # seconds between the slow client's bytes
SLOW_LIMIT = 10.0  # seconds within which the server must give up on it
CLOSE_WAIT = 1.5  # seconds to close after a last response: before the 2 s deadline would
SHOWN = 300  # bytes of a request or response shown in a hint
HOST = b"Host: localhost\r\n"


class Broken(Exception):
    """The response could not be read: the words say why."""


class Response:
    """A response as the tester read it: status, headers (lower-case names), body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        return values[0] if values else None


def shown(data, limit=SHOWN):
    """Bytes as Python writes them, cut to ``limit`` bytes: safe to print."""
    text = repr(bytes(data[:limit]))
    if len(data) > limit:
        text += f" ... ({len(data):,} bytes in all)"
    return text


def transcript(sent, got):
    """The request sent and the bytes that came back, for a hint."""
    return f"It sent:  {shown(sent)}\nIt got:   {shown(got) if got else '(nothing)'}"


def read_response(sock, pending, head_only=False):
    """One response from sock; ``pending`` (a bytearray) keeps what follows it.

    Strict on purpose: the head must end with a blank line, the status line
    must be ``HTTP/1.x NNN reason``, and the body's length must be stated with
    Content-Length -- a client has no other way to find where it ends (RFC 9112,
    6.3).  A response to HEAD has no body, whatever Content-Length says.
    Raises Broken.
    """

    def more(what):
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise Broken(f"no {what} within {RESPONSE_WAIT:g} s: the server waited for "
                         "something, or forgot to send") from None
        except ConnectionError as exc:
            raise Broken(f"the connection was reset ({type(exc).__name__}) "
                         f"before the {what} was complete") from None
        if not data:
            raise Broken(f"the server closed the connection before the {what} was complete")
        pending.extend(data)

    while (end := pending.find(b"\r\n\r\n")) < 0:
        if len(pending) > 65536:
            raise Broken("64 KiB and no blank line: the head of the response never ends")
        more("response" if not pending else "head of the response")
    head = bytes(pending[:end]).decode("latin-1")
    del pending[:end + 4]
    status_line, *lines = head.split("\r\n")
    match = re.fullmatch(r"HTTP/1\.[01] (\d{3}) [^\r\n]*", status_line)
    if not match:
        raise Broken(f"the first line {status_line[:80]!r} is not a status line "
                     "(HTTP/1.1 200 OK)")
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise Broken(f"the header line {line[:80]!r} has no name and colon")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    status = int(match[1])
    length = headers.get("content-length")
    if head_only or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif length is None:
        raise Broken("no Content-Length: the client cannot tell where the body ends")
    elif len(set(length)) != 1 or not re.fullmatch(r"[0-9]+", length[0]):  # not isdigit(): "²
        raise Broken(f"Content-Length {length!r} is not one number")
    else:
        size = int(length[0])
        while len(pending) < size:
            more("body")
        body = bytes(pending[:size])
        del pending[:size]
    return Response(status, headers, body)


class Exchange:
    """A client connection: send requests, read responses, keep the transcript."""

    def __init__(self, sock):
        self.sock = sock
        sock.settimeout(RESPONSE_WAIT)
        self.sent = bytearray()
        self.pending = bytearray()
        self.received = bytearray()

    def send(self, data):
        self.sent += data
        self.sock.sendall(data)

    def response(self, head_only=False):
        """The next response (a Response); raises Broken."""
        return read_response(_Recorder(self.sock, self.received), self.pending, head_only)

    def closed(self, within=RESPONSE_WAIT):
        """True if the server closes (or resets) the connection within ``within`` s;
        anything it sends meanwhile is kept in the transcript."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            if not data:
                return True
            self.received.extend(data)
            self.pending.extend(data)
        return False

    def fail(self, what):
        return Verdict.fail(f"{what}\n{transcript(self.sent, self.received)}")


class _Recorder:
    """The socket, with every received byte noted in ``received``."""

    def __init__(self, sock, received):
        self.sock = sock
        self.received = received

    def recv(self, size):
        data = self.sock.recv(size)
        self.received.extend(data)
        return data


def request(method, target, body=None, headers=b"", version=b"HTTP/1.1"):
    """The bytes of a request; a body gets its Content-Length."""
    head = method + b" " + target + b" " + version + b"\r\n" + HOST + headers
    if body is not None:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + (body or b"")


# -- the cases: each takes a connected socket and returns a Verdict ----------

def _expect(ex, response, status, body=None, what=""):
    """The usual judgement of one response."""
    if response.status != status:
        return ex.fail(f"{what}: the status should be {status}, it was {response.status}.")
    if body is not None and response.body != body:
        return ex.fail(f"{what}: the body should be {shown(body, 60)}, "
                       f"it was {shown(response.body, 60)}.")
    return None


def _first_failure(*verdicts):
    """The first of these judgements that is not None (a failure); else a pass."""
    return next((v for v in verdicts if v is not None), Verdict.ok())


def _one(sock, data, status, body=None, what="", head_only=False, check=None):
    ex = Exchange(sock)
    try:
        ex.send(data)
        response = ex.response(head_only)
    except Broken as exc:
        return ex.fail(f"{what}: {exc}.")
    failed = _expect(ex, response, status, body, what)
    if failed is None and check is not None:
        problem = check(response)
        if problem:
            failed = ex.fail(f"{what}: {problem}")
    return _first_failure(failed)


def case_get_hello(sock):
    def typed(response):
        if not (response.header("content-type") or "").startswith("text/plain"):
            return (f"Content-Type should be text/plain, it was "
                    f"{response.header('content-type')!r}.")
        return None
    return _one(sock, request(b"GET", b"/hello"), 200, HELLO, "GET /hello", check=typed)


def case_head_hello(sock):
    ex = Exchange(sock)
    what = "HEAD /hello, then GET /hello on the same connection"
    no_body = ("A response to HEAD has a head and no body (RFC 9110, 9.3.2): a body "
               "sent after it\nis read as the start of the next response.")
    try:
        ex.send(request(b"HEAD", b"/hello") + request(b"GET", b"/hello"))
        head = ex.response(head_only=True)
    except Broken as exc:
        return ex.fail(f"{what}: {exc}.")
    if head.status != 200:
        return ex.fail(f"HEAD /hello: the status should be 200, it was {head.status}.")
    if head.header("content-length") != str(len(HELLO)):
        return ex.fail("HEAD /hello: Content-Length should be the length GET would "
                       f"send ({len(HELLO)}), it was {head.header('content-length')!r}.")
    try:
        after = ex.response()
    except Broken as exc:
        return ex.fail(f"{what}: the second response: {exc}.\n{no_body}")
    if after.status != 200 or after.body != HELLO:
        return ex.fail(f"{what}: the second response is wrong.\n{no_body}")
    return Verdict.ok()


def case_post_echo(sock):
    body = "a body, with 你好 in UTF-8".encode()
    return _one(sock, request(b"POST", b"/echo", body), 200, body, "POST /echo")


def case_empty_post(sock):
    return _one(sock, request(b"POST", b"/echo", b""), 200, b"",
                "POST /echo with Content-Length: 0")


def case_body_in_pieces(sock):
    """The head, then a body of 3,000 bytes in three pieces, in lockstep."""
    body = bytes(i % 251 for i in range(3000))
    head = request(b"POST", b"/echo", body)[:-len(body)]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ex = Exchange(sock)
    # Each piece is sent once the server has read the one before (its end of
    # the connection has nothing waiting, as lesson 09's check asks the kernel):
    # every piece reaches a recv() of its own, on a busy machine too.
    queue = explore.UnreadBytes(sock.getpeername(), sock.getsockname())
    try:
        for piece in [head] + [body[i:i + 1000] for i in range(0, len(body), 1000)]:
            ex.send(piece)
            deadline = time.monotonic() + RESPONSE_WAIT
            while queue.waiting() and time.monotonic() < deadline:
                time.sleep(0.001)
    except ConnectionError:
        pass  # it closed before the whole body came: what did it answer?
    finally:
        queue.close()
    try:
        response = ex.response()
    except Broken as exc:
        return ex.fail(f"POST /echo, its body sent in three pieces: {exc}.")
    if response.status == 200 and response.body != body:
        return ex.fail(f"POST /echo, its body sent in three pieces: {len(response.body):,} "
                       f"bytes came back, not {len(body):,}.\nOne recv() is not the body: "
                       "read until you have Content-Length bytes.")
    return _first_failure(
        _expect(ex, response, 200, body, "POST /echo, its body sent in three pieces"))


def case_keep_alive(sock):
    """Three requests, one after the other, on one connection."""
    ex = Exchange(sock)
    steps = [(request(b"GET", b"/hello"), HELLO), (request(b"POST", b"/echo", b"two"), b"two"),
             (request(b"GET", b"/hello"), HELLO)]
    for number, (data, body) in enumerate(steps, 1):
        try:
            ex.send(data)
            response = ex.response()
        except (Broken, OSError) as exc:
            hint = (f"request {number} of 3 on one connection: {exc}.")
            if number > 1:
                hint += ("\nHTTP/1.1 keeps the connection open by default (RFC 9112, 9.3): "
                         "serve request after\nrequest until the client closes or says "
                         "Connection: close.")
            return ex.fail(hint)
        failed = _expect(ex, response, 200, body, f"request {number} of 3 on one connection")
        if failed is not None:
            return failed
    return Verdict.ok()


def case_pipelined(sock):
    """Two requests in one segment: the bytes after the first are the second."""
    ex = Exchange(sock)
    ex.send(request(b"POST", b"/echo", b"first") + request(b"GET", b"/hello"))
    try:
        first, second = ex.response(), ex.response()
    except Broken as exc:
        return ex.fail(f"two requests sent in one piece: {exc}.\nWhat follows the first "
                       "request's body is the next request: keep it for the next round.")
    return _first_failure(
        _expect(ex, first, 200, b"first", "two requests in one piece, the first"),
        _expect(ex, second, 200, HELLO, "two requests in one piece, the second"))


def case_connection_close(sock):
    ex = Exchange(sock)
    ex.send(request(b"GET", b"/hello", headers=b"Connection: close\r\n"))
    try:
        response = ex.response()
    except Broken as exc:
        return ex.fail(f"GET /hello with Connection: close: {exc}.")
    failed = _expect(ex, response, 200, HELLO, "GET /hello with Connection: close")
    if failed is not None:
        return failed
    if not ex.closed(within=CLOSE_WAIT):
        return ex.fail("GET /hello with Connection: close: the server did not close the "
                       f"connection within {CLOSE_WAIT:g} s of its response.\nThe client "
                       "asked: close after this response (RFC 9112, 9.6).")
    return Verdict.ok()


def case_http10(sock):
    ex = Exchange(sock)
    ex.send(b"GET /hello HTTP/1.0\r\n\r\n")
    try:
        response = ex.response()
    except Broken as exc:
        return ex.fail(f"an HTTP/1.0 request (no Host): {exc}.")
    failed = _expect(ex, response, 200, HELLO, "an HTTP/1.0 request (no Host needed)")
    if failed is not None:
        return failed
    if not ex.closed(within=CLOSE_WAIT):
        return ex.fail(f"an HTTP/1.0 request: the server kept the connection open "
                       f"(for more than {CLOSE_WAIT:g} s after its response).\n"
                       "HTTP/1.0 closes after each response unless the client asks for "
                       "keep-alive (RFC 9112, 9.3).")
    return Verdict.ok()


def case_not_found(sock):
    return _one(sock, request(b"GET", b"/nowhere"), 404, what="GET /nowhere")


def _allow(expected):
    def check(response):
        allow = response.header("allow")
        if allow is None:
            return "a 405 response must say which methods are allowed: Allow (RFC 9110, 15.5.6)."
        methods = {m.strip().upper() for m in allow.split(",")}
        if methods != expected:
            return f"Allow should list {', '.join(sorted(expected))}; it was {allow!r}."
        return None
    return check


def case_delete_hello(sock):
    return _one(sock, request(b"DELETE", b"/hello"), 405, what="DELETE /hello",
                check=_allow({"GET", "HEAD"}))


def case_get_echo(sock):
    return _one(sock, request(b"GET", b"/echo"), 405, what="GET /echo",
                check=_allow({"POST"}))


def case_not_http(sock):
    return _then_closed(sock, b"hello\r\n\r\n", 400, "a request line that is not HTTP")


def case_no_host(sock):
    return _then_closed(sock, b"GET /hello HTTP/1.1\r\n\r\n", 400,
                        "an HTTP/1.1 request without Host (RFC 9112, 3.2)")


def case_head_too_long(sock):
    endless = b"GET /hello HTTP/1.1\r\n" + HOST + b"X-Long: " + b"a" * (2 * HEAD_MAX)
    return _then_closed(sock, endless, 431,
                        f"a header line of {2 * HEAD_MAX:,} bytes, with no end")


def case_body_too_long(sock):
    data = request(b"POST", b"/echo", headers=b"Content-Length: %d\r\n" % (BODY_MAX + 1))
    return _then_closed(sock, data, 413, f"Content-Length: {BODY_MAX + 1:,}")


def case_bad_length(sock):
    data = request(b"POST", b"/echo", headers=b"Content-Length: -5\r\n")
    return _then_closed(sock, data, 400, "Content-Length: -5")


def _then_closed(sock, data, status, what):
    """A request the server must refuse with ``status``, then close: the framing is lost."""
    ex = Exchange(sock)
    try:
        ex.send(data)
    except ConnectionError:
        pass  # it may close before the last bytes arrive: its answer is what counts
    endless = (f"\nA head longer than HEAD_MAX ({HEAD_MAX:,} bytes) is refused at once: "
               "do not wait for its end." if status == 431 else "")
    try:
        response = ex.response()
    except Broken as exc:
        return ex.fail(f"{what}: {exc}.{endless}")
    if response.status != status:
        return ex.fail(f"{what}: the status should be {status}, it was "
                       f"{response.status}.{endless}")
    if not ex.closed(within=CLOSE_WAIT):
        return ex.fail(f"{what}: {status} is right, but the connection stayed open.\n"
                       "After a request whose end cannot be found, close it: the next "
                       "bytes are no request.")
    return Verdict.ok()


def case_slow_client(sock):
    """One byte every SLOW_PAUSE s: the server must give up on it."""
    ex = Exchange(sock)
    data = request(b"GET", b"/hello")
    started = time.monotonic()
    for number, byte in enumerate(data, 1):
        try:
            ex.send(bytes([byte]))
        except ConnectionError:
            return Verdict.ok()
        if ex.closed(within=SLOW_PAUSE):
            return Verdict.ok()  # closed (a 408 first is welcome)
        if time.monotonic() - started > SLOW_LIMIT:
            break
    return ex.fail(
        f"a client sending one byte every {SLOW_PAUSE:g} s was still connected after "
        f"{time.monotonic() - started:.0f} s.\nGive each request a deadline (the lesson's "
        "TIMEOUT, 2 s) that later bytes do not move:\na slow client otherwise holds a "
        "connection (a thread, a slot) as long as it likes.")


CASES = [
    ("GET /hello: 200, text/plain, hello, world", case_get_hello),
    ("HEAD /hello: the same head, no body", case_head_hello),
    ("POST /echo: the body back", case_post_echo),
    ("POST /echo with an empty body", case_empty_post),
    ("POST /echo, the body in three pieces", case_body_in_pieces),
    ("three requests on one connection (keep-alive)", case_keep_alive),
    ("two requests in one piece (pipelined)", case_pipelined),
    ("Connection: close: answered, then closed", case_connection_close),
    ("an HTTP/1.0 request: answered, then closed", case_http10),
    ("GET /nowhere: 404", case_not_found),
    ("DELETE /hello: 405, Allow: GET, HEAD", case_delete_hello),
    ("GET /echo: 405, Allow: POST", case_get_echo),
    ("a line that is not HTTP: 400, closed", case_not_http),
    ("HTTP/1.1 without Host: 400, closed", case_no_host),
    (f"a head that never ends: 431 after {HEAD_MAX:,} bytes, closed", case_head_too_long),
    (f"Content-Length over {BODY_MAX:,}: 413, closed", case_body_too_long),
    ("Content-Length: -5: 400, closed", case_bad_length),
    (f"a client sending one byte every {SLOW_PAUSE:g} s: cut off", case_slow_client),
]


def probe(sock):
    """An ordinary exchange, after the hard ones: is the server still serving?"""
    return case_get_hello(sock)


# -- the Python answer: handle(conn) in a thread per connection ---------------

class _PythonAnswer:
    """The learner's handle(conn), served on 127.0.0.1 like socklab.serve does it."""

    def __init__(self, handle):
        self.handle = handle
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.errors = []  # (connection number, exception) the handler raised
        self.conns = []
        self.threads = []
        self.reads = 0
        self.accepting = threading.Thread(target=self._accept, name="socklab check accept",
                                          daemon=True)
        self.accepting.start()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # closed: the check is over
            conn = WatchedSocket(sock)
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, len(self.conns)),
                                      name="socklab check", daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn, number):
        try:
            self.handle(conn)
        except CheckStopped:
            pass
        except (ConnectionError, TimeoutError):
            pass  # the client's doing, or the handler's own time limit: not a bug
        except Exception as exc:
            self.errors.append((number, exc))
        finally:
            conn.sock.close()

    def play(self, client):
        errors_before, threads_before = len(self.errors), len(self.threads)
        try:
            with socket.create_connection(self.address, timeout=RESPONSE_WAIT) as sock:
                verdict = client(sock)
        except OSError as exc:
            verdict = Verdict.fail(f"the client's socket failed: {describe_error(exc)}")
        for thread in self.threads[threads_before:]:
            thread.join(1.0)  # the client has gone: the handler should return
        if not verdict.passed and len(self.errors) > errors_before:
            _, exc = self.errors[-1]
            if isinstance(exc, NotImplementedError):
                return Verdict.not_written()
            raised = describe_error(exc).removeprefix("it ")
            return Verdict.fail(f"{verdict.hint}\nThe handler {raised}.")
        if not verdict.passed and self.conns and not any(c.received for c in self.conns) \
                and all(not t.is_alive() for t in self.threads):
            return Verdict.not_written()  # it returned at once, having read nothing
        return verdict

    def stop(self):
        self.listener.close()
        for conn in self.conns:
            conn.stop("the check is over")
        for thread in self.threads:
            thread.join(2.0)


def check_web_handler(handle):
    """Check ``handle(conn)``: serve one client's HTTP/1.1 requests until it is done.

    ``GET``/``HEAD /hello`` -> ``hello, world\\n`` (text/plain); ``POST /echo``
    -> the body back; keep-alive, ``Connection: close``, 404, 405 with Allow,
    400, 413, 431, and a deadline for a slow client.
    """
    report = Report("Checking handle(conn), the HTTP echo server:")
    answer = _PythonAnswer(handle)
    try:
        for description, case in CASES:
            if report.add(description, answer.play(case).final_if_failed()
                          if description == CASES[0][0] else answer.play(case)).final:
                break
    finally:
        answer.stop()
    return report


def check_web_server_c(name):
    """Check the C HTTP echo server NAME, compiled by a ``%%c NAME --compile-only`` cell.

    The same cases as check_web_handler, played against the running program
    (built with the sanitizers); after the ones that must close, it must still
    answer GET /hello; then C's own failures (c_answer.check_process).
    """
    report = Report(f"Checking the C HTTP server {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    with answer:
        for description, case in CASES:
            verdict = answer.play(case)
            if verdict.passed:
                after = answer.play(probe)  # still serving?
                if not after.passed:
                    verdict = Verdict.fail(f"then an ordinary GET /hello got this:\n{after.hint}",
                                           final=after.final)
            if report.add(description, verdict.final_if_failed()
                          if description == CASES[0][0] else verdict).final:
                return report
        if report.add("a client sends 100 requests in one piece and leaves before the "
                      "answers: the server goes on", _leaves_before_the_answers(answer)).final:
            return report
        c_answer.check_process(answer, report, probe=probe)
    return report


def _leaves_before_the_answers(answer):
    # While the server is stopped, a client sends 100 requests and closes.  The
    # server then answers the first, the client's kernel replies with a reset,
    # and one of the next send()s fails with EPIPE -- which, without
    # MSG_NOSIGNAL (send_all() has it), raises SIGPIPE and ends the program.
    try:
        with answer.paused():
            with answer.connect() as sock:
                sock.sendall(request(b"GET", b"/hello") * 100)
    except OSError as exc:
        return answer.judged(Verdict.fail(f"a client could not connect: {exc}"))
    return answer.play(probe)  # still there?  A dead server is named by play()
