"""Checks for lesson 14's exercise: fetch_echo(), a TLS client that verifies its server.

check_fetch_echo calls the learner's ``fetch_echo(host, port, cafile, message)``
against TLS echo servers on loopback, each a socklab server with a certificate
made for the occasion (socklab.certs):

* a good server: a certificate for localhost, 127.0.0.1 and ::1, signed by the CA
  whose certificate is ``cafile`` -- the echo must come back, whole, also when it
  is 100,000 bytes long (more than one TLS record: at most 16 KiB each, RFC 8446
  section 5.1);
* a server whose certificate, signed by the same CA, is for another name: the
  client must refuse it (ssl.SSLCertVerificationError);
* a server whose certificate comes from a CA the client was not given: refused too;
* a server that speaks plain text: an ssl.SSLError, not a hang.

A client that accepts a wrong certificate has turned verification off (or never
had it on): the hint names the usual ways -- check_hostname = False, CERT_NONE,
ssl._create_unverified_context(), the removed ssl.wrap_socket().  The servers
note why a handshake failed on their side, so a client that sent plain bytes is
told so.

check_read_ready calls the learner's ``read_ready(tls)`` on a non-blocking TLS
socket at a moment the check has prepared: it has read a few bytes itself, so
that OpenSSL holds the rest of a record (which select() cannot see), and it has
waited until the kernel holds the next records (FIONREAD, counting TLS 1.3's
22 bytes per record).  Every byte ready must come back, without waiting; a
reader that asks select() first, or calls recv() once, is named.
"""

import fcntl
import functools
import re
import socket
import ssl
import struct
import termios
import time

from .. import certs, explore
from ..servers import TCPServer
from . import c_answer
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_fetch_echo", "check_read_ready", "check_sniffer_c"]

OTHER_NAME = "www.example.com"  # reserved for examples (RFC 2606); only a name here
BIG = bytes(i % 251 for i in range(100_000))
PLAIN_GREETING = b"hello, this server speaks plain text\r\n"

NO_VERIFICATION = (
    "Verification is off.  The usual causes: check_hostname = False,\n"
    "verify_mode = ssl.CERT_NONE, ssl._create_unverified_context(), or the old\n"
    "ssl.wrap_socket() (removed in Python 3.12), which never verified.  Use\n"
    "ssl.create_default_context(cafile=cafile) and\n"
    "wrap_socket(sock, server_hostname=host): it checks both.")


@functools.cache
def _certificates():
    """(CA file, good, other name, untrusted) -- made once per process."""
    ca = certs.LocalCA("socklab check CA")
    stranger = certs.LocalCA("a CA nobody gave you")
    return (ca.cert_file, ca.issue(), ca.issue(OTHER_NAME),
            stranger.issue(name="untrusted localhost"))


class _TLSEchoServer(TCPServer):
    """A TLS echo server for one case; ``failures`` notes failed handshakes."""

    def __init__(self, cert, name):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert.cert_file, cert.key_file)
        self.failures = []  # the reason of each failed handshake, as ssl names it
        super().__init__(self._echo, name=name)

    def _echo(self, conn):
        try:
            tls = self.context.wrap_socket(conn.sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.failures.append(getattr(exc, "reason", None) or type(exc).__name__)
            return
        conn.sock = tls  # so that stop() wakes and closes the TLS socket
        try:
            while data := tls.recv(65536):
                tls.sendall(data)
        except (ssl.SSLError, OSError):
            pass  # a client that leaves without close_notify: its business


def _plain_text(conn):
    """A server that is not TLS: it greets in plain text and reads until the end."""
    conn.sendall(PLAIN_GREETING)
    while conn.recv(65536):
        pass


def _call(fetch_echo, server, cafile, message, host="localhost"):
    outcome, _ = call_with_time_limit(fetch_echo, host, server.port, str(cafile), message)
    if outcome.finished:
        # The server's side of each connection has ended (and noted why a
        # handshake failed) before anyone judges: a client reset by the server
        # can be back before the server's thread has written its note.
        try:
            server.events.wait_for("close", len(server.events.of_kind("accept")))
        except TimeoutError:
            pass  # a connection the learner's code left open: judged as it is
    return outcome


def _judge_echo(outcome, message, server):
    if not_written(outcome):
        return Verdict.not_written()
    if not outcome.finished:
        return Verdict.fail(
            "it did not return within 5 s.  Does it wait for more bytes than the echo\n"
            "has (read until you have len(message) bytes, then stop)?", final=True)
    error = outcome.error
    if error is not None:
        if "WRONG_VERSION_NUMBER" in server.failures or "HTTP_REQUEST" in server.failures:
            return Verdict.fail(
                f"{describe_error(error)}\nThe server received plain bytes, not TLS: "
                "wrap the socket first,\ncontext.wrap_socket(sock, server_hostname=host), "
                "and send through what it returns.", final=True)
        if isinstance(error, ssl.SSLCertVerificationError):
            return Verdict.fail(
                f"{describe_error(error)}\nThe server's certificate is good, but your "
                "client does not trust its CA:\nload the file you were given, "
                "ssl.create_default_context(cafile=cafile).", final=True)
        return Verdict.fail(describe_error(error), final=True)
    value = outcome.value
    if isinstance(value, str):
        return Verdict.fail("it returned a str: return the bytes the server sent back.")
    if value == message:
        return Verdict.ok()
    if isinstance(value, (bytes, bytearray)) and message.startswith(bytes(value)):
        return Verdict.fail(
            f"it returned {len(value):,} of {len(message):,} bytes.  One recv() gives "
            "what has arrived -- over TLS\nat most one record, 16 KiB: read until you "
            "have len(message) bytes.")
    return Verdict.fail(f"it returned {_short(value)}, not the message it sent "
                        f"({len(message):,} bytes).")


SWALLOWED = ("it returned None instead of raising.  Do not catch the handshake's "
             "error:\nthe caller must learn that the server was refused.")


def _judge_refusal(outcome, what, fix):
    # (A stub never gets here: the good server's cases stop the check first.)
    if not outcome.finished:
        return Verdict.fail("it did not return or raise within 5 s: a TLS client that "
                            "is refused\nraises at once.  Did it catch the error "
                            "and wait, or retry?")
    error = outcome.error
    if isinstance(error, ssl.SSLCertVerificationError):
        return Verdict.ok()
    if error is None and outcome.value is None:
        return Verdict.fail(SWALLOWED)
    if error is None:
        return Verdict.fail(f"it returned {_short(outcome.value)}: it {what}.\n{fix}")
    return Verdict.fail(
        f"{describe_error(error)}\nIt should raise ssl.SSLCertVerificationError: let "
        "the handshake's error\nreach the caller (do not catch it and raise another).")


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fetch_echo(fetch_echo):
    """Check ``fetch_echo(host, port, cafile, message)``: TLS, verified, the echo whole."""
    report = Report("Checking fetch_echo(host, port, cafile, message):")
    cafile, good, other_name, untrusted = _certificates()

    with _TLSEchoServer(good, "check14 good") as server:
        for description, host, message in [
            ("a good server (a certificate for localhost): the echo", "localhost",
             b"hello, TLS"),
            ("the same server by address: 127.0.0.1 is in its certificate too",
             "127.0.0.1", b"by address"),
            (f"a message of {len(BIG):,} bytes: more than one TLS record", "localhost",
             BIG),
        ]:
            outcome = _call(fetch_echo, server, cafile, message, host)
            if report.add(description, _judge_echo(outcome, message, server)).final:
                return report

    with _TLSEchoServer(other_name, "check14 other name") as server:
        outcome = _call(fetch_echo, server, cafile, b"hello?")
        report.add(
            f"a certificate for {OTHER_NAME}, asked for localhost: refused",
            _judge_refusal(outcome, f"accepted a certificate for {OTHER_NAME} when it "
                           "asked for localhost",
                           "The host name was not checked.  " + NO_VERIFICATION))

    with _TLSEchoServer(untrusted, "check14 untrusted") as server:
        outcome = _call(fetch_echo, server, cafile, b"hello?")
        report.add(
            "a certificate from a CA you were not given: refused",
            _judge_refusal(outcome, "accepted a certificate that no CA it trusts signed",
                           NO_VERIFICATION))

    with TCPServer(_plain_text, name="check14 plain") as server:
        outcome = _call(fetch_echo, server, cafile, b"hello?")
        report.add("a server that speaks plain text: ssl.SSLError", _judge_plain(outcome))
    return report


def _judge_plain(outcome):
    if not outcome.finished:
        return Verdict.fail("it waited more than 5 s on a server that does not speak "
                            "TLS.  The handshake\nfails at once on its reply: did "
                            "your code catch the error and wait?")
    if isinstance(outcome.error, ssl.SSLError):
        return Verdict.ok()
    if outcome.error is not None:
        return Verdict.fail(f"{describe_error(outcome.error)}\nThe handshake's "
                            "ssl.SSLError should reach the caller.")
    if outcome.value is None:
        return Verdict.fail(SWALLOWED)
    if isinstance(outcome.value, (bytes, bytearray)) and PLAIN_GREETING[:10] in outcome.value:
        return Verdict.fail("it returned the server's plain text: it did not speak TLS.")
    return Verdict.fail(f"it returned {_short(outcome.value)} from a server that does "
                        "not speak TLS:\nit should raise ssl.SSLError.")


# ----------------------------------------------------------------- read_ready

TLS13_OVERHEAD = 5 + 1 + 16  # a record's header, inner content type, AEAD tag
CLOSE_NOTIFY = 2 + TLS13_OVERHEAD  # the alert of unwrap(): 2 bytes of data


class _RecordServer(TCPServer):
    """Sends each of ``payloads`` as one TLS record, then waits for the client to
    leave (or, with ``close``, ends the session itself)."""

    def __init__(self, cert, payloads, close=False):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_3  # known overheads
        self.context.load_cert_chain(cert.cert_file, cert.key_file)
        self.payloads, self.end_session = payloads, close
        super().__init__(self._send, name="check14 records")

    def _send(self, conn):
        try:
            tls = self.context.wrap_socket(conn.sock, server_side=True)
            conn.sock = tls
            for payload in self.payloads:
                tls.sendall(payload)  # at most 16 KiB: one record each
            if self.end_session:
                tls.unwrap()
            else:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass  # the check has gone: nothing to report


def _bytes_in_kernel(sock):
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", raw)[0]


def _wait_in_kernel(sock, count, limit=TIME_LIMIT):
    """Wait until ``count`` bytes wait in the kernel for ``sock``: on loopback they
    are there almost at once; this asks the kernel, it does not guess a time."""
    deadline = time.monotonic() + limit
    while _bytes_in_kernel(sock) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} bytes did not arrive within {limit:g} s")
        time.sleep(0.001)


def _read_ready_case(read_ready, payloads, first, close, held):
    """Connect, read ``first`` bytes, wait for the rest in the kernel, call
    read_ready(tls) and judge it -- before the socket is closed: a function
    still running would then fail, and look as if it had returned."""
    cafile, good, _, _ = _certificates()
    context = ssl.create_default_context(cafile=cafile)
    with _RecordServer(good, payloads, close) as server:
        with socket.create_connection(server.address, timeout=TIME_LIMIT) as sock:
            with context.wrap_socket(sock, server_hostname="localhost") as tls:
                got = b""
                while len(got) < first:
                    got += tls.recv(first - len(got))
                rest = sum(len(p) + TLS13_OVERHEAD for p in payloads)
                rest -= len(payloads[0]) + TLS13_OVERHEAD  # the first is read
                _wait_in_kernel(tls, rest + (CLOSE_NOTIFY if close else 0))
                tls.setblocking(False)
                outcome, _ = call_with_time_limit(read_ready, tls)
                return _judge_ready(outcome, b"".join(payloads)[first:], held)


def _judge_ready(outcome, expected, held):
    if not_written(outcome):
        return Verdict.not_written()
    if not outcome.finished:
        return Verdict.fail(
            "it did not return within 5 s.  Does it loop on b'' (the peer closed: "
            "stop), or make\nthe socket blocking again?", final=True)
    error = outcome.error
    if isinstance(error, ssl.SSLWantReadError):
        return Verdict.fail(
            f"{describe_error(error)}\nThat is how a non-blocking TLS socket says "
            "'nothing more now': catch it\nand return what you have.")
    if error is not None:
        return Verdict.fail(describe_error(error))
    value = outcome.value
    if not isinstance(value, (bytes, bytearray)):
        return Verdict.fail(f"it returned {_short(value)}: return the bytes, b'' "
                            "when nothing is ready.")
    if value == expected:
        return Verdict.ok()
    if not value and held:
        return Verdict.fail(
            f"it returned b'', but OpenSSL held {held} decrypted bytes (pending() = "
            f"{held}).\nselect() cannot see them: they have left the kernel.  Call "
            "recv() until it\nraises ssl.SSLWantReadError instead of asking select().")
    if expected.startswith(value):
        return Verdict.fail(
            f"it returned {len(value):,} of the {len(expected):,} bytes ready.  One "
            "recv() returns the data of\none record at most: call it again until it "
            "raises ssl.SSLWantReadError.")
    return Verdict.fail(f"it returned {_short(bytes(value))}, not the "
                        f"{len(expected):,} bytes ready ({_short(expected)}).")


def check_read_ready(read_ready):
    """Check ``read_ready(tls)``: every byte readable now, what OpenSSL holds included."""
    report = Report("Checking read_ready(tls):")
    cases = [
        ("one record of 16 bytes, 5 read already: the 11 that OpenSSL holds",
         [b"hello, pending!\n"], 5, False, 11),
        ("three records (10, 1,000 and 5 bytes), 3 read already: all the rest",
         [b"0123456789", bytes(i % 251 for i in range(1000)), b"tail\n"], 3, False, 7),
        ("records of 16,384 and 3,616 bytes, 1 read already: 19,999 bytes",
         [b"a" * 16384, b"b" * 3616], 1, False, 16383),
        ("nothing ready (the only record already read): b'' at once",
         [b"all read\n"], 9, False, 0),
        ("a record, then the peer ends the session: the data, then stop",
         [b"x" * 4, b"last words\n"], 4, True, 0),
    ]
    for description, payloads, first, close, held in cases:
        verdict = _read_ready_case(read_ready, payloads, first, close, held)
        if report.add(description, verdict).final:
            break
    return report


# ----------------------------------------------------------- the C sniffer

TLS_LINE = re.compile(r"^TLS record: type (\d+), version 0x([0-9a-f]{4}), length (\d+)$")
PIECE_WAIT = 2.0  # seconds the server has to read a piece before the next is sent
LINE_WAIT = 5.0   # seconds it has to answer once the header is in


def _header_line(data):
    """The line a right sniffer answers for a stream that begins with ``data``."""
    kind, version, length = struct.unpack("!BHH", data[:5])
    if kind in (20, 21, 22, 23) and version >> 8 == 3:
        return f"TLS record: type {kind}, version 0x{version:04x}, length {length}"
    return "not TLS"


def _client_hello():
    """The bytes of a real ClientHello, made without a socket (ssl.MemoryBIO)."""
    cafile = _certificates()[0]
    context = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    handshake = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        handshake.do_handshake()
    except ssl.SSLWantReadError:  # it waits for the ServerHello: the hello is out
        pass
    return outgoing.read()


def _read_line(sock):
    """The server's answer up to its b"\\n": (line or None, how it ended)."""
    sock.settimeout(LINE_WAIT)
    data = b""
    try:
        while b"\n" not in data:
            more = sock.recv(4096)
            if not more:
                return (data.decode(errors="replace") or None), "closed"
            data += more
    except TimeoutError:
        return (data.decode(errors="replace") or None), "timeout"
    except ConnectionResetError:
        return (data.decode(errors="replace") or None), "reset"
    return data.split(b"\n")[0].decode(errors="replace"), "line"


def _send_in_lockstep(answer, sock, pieces):
    """Send each piece once the server has read the one before
    (explore.UnreadBytes asks the kernel); a Verdict if the server never reads it."""

    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    queue = explore.UnreadBytes(answer.address, sock.getsockname())
    try:
        sent = 0
        for number, piece in enumerate(pieces):
            sock.sendall(piece)
            sent += len(piece)
            if number == len(pieces) - 1:
                break
            deadline = time.monotonic() + PIECE_WAIT
            while queue.waiting():
                if time.monotonic() > deadline:
                    return Verdict.fail(f"it did not read the first {sent} byte(s) within "
                                        f"{PIECE_WAIT:g} s: is it waiting for something else?")
                time.sleep(0.001)
    finally:
        queue.close()
    return None


def _sniff_case(answer, pieces):
    """A client for answer.play(): sends ``pieces``, reads the answer line, closes."""
    data = b"".join(pieces)
    expected = _header_line(data)

    def client(sock):
        stuck = _send_in_lockstep(answer, sock, pieces)
        if stuck is not None:
            return stuck
        line, ended = _read_line(sock)
        if line != expected:
            return _sniff_hint(line, ended, expected, data, pieces)
        return _ends_cleanly(sock)

    return client


def _ends_cleanly(sock):
    """After the answer: the client closes its side; the server must then close
    with a FIN.  A reset means it closed with the client's bytes unread."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
    except TimeoutError:
        return Verdict.fail(f"after its answer, it did not close the connection within "
                            f"{LINE_WAIT:g} s of the client\nclosing: when recv() returns "
                            "0, close the socket.", final=True)  # so would every case
    except OSError:  # ECONNRESET, or ENOTCONN from shutdown() after a reset
        return Verdict.fail(
            "it answered, then reset the connection: closing a socket with bytes\nstill "
            "unread sends a reset (lesson 04), and a client may lose the answer.\nRead "
            "until the client closes (recv() returns 0), then close.", final=True)
    return Verdict.ok()


def _sniff_hint(line, ended, expected, data, pieces):
    said = f"it answered {line!r}" if line is not None else {
        "closed": "it closed the connection without answering",
        "reset": "it reset the connection without answering (closing a socket with "
                 "bytes\nstill unread sends a reset, lesson 04: read until the client "
                 "closes, then close)",
        "timeout": f"it did not answer within {LINE_WAIT:g} s",
    }[ended]
    said += f", not {expected!r}."
    if line is not None and ended != "line":
        said += "  End the line with '\\n'."
    if len(pieces) > 1 and len(pieces[0]) < 5:
        return Verdict.fail(
            f"{said}\nThe header came in pieces ({', '.join(str(len(p)) for p in pieces)} "
            "bytes), each read before the next was\nsent.  One recv() returns what has "
            "arrived: loop until you have all 5 bytes\n(lesson 09's recv_all).")
    got, want = TLS_LINE.match(line or ""), TLS_LINE.match(expected)
    if got and want and got.group(1, 2) == want.group(1, 2):
        length = int(want.group(3))
        if int(got.group(3)) == ((length & 0xFF) << 8) | (length >> 8):
            return Verdict.fail(f"{said}\nThe length's two bytes are in network byte order "
                                "(big-endian): put them\nthrough ntohs(), or compute "
                                "(b[3] << 8) | b[4].")
    if got and not want:
        return Verdict.fail(
            f"{said}\nThe stream begins {data[:5]!r}: its first byte, {data[0]}, is no "
            "record type\n(20-23), or its version's first byte is not 3.  Check both "
            "before saying TLS.")
    return Verdict.fail(said)


def _early_close_case(answer):
    """A client that sends 2 bytes of a header and closes: no answer, the end."""

    def client(sock):
        sock.sendall(b"\x16\x03")
        sock.shutdown(socket.SHUT_WR)
        line, ended = _read_line(sock)
        if line is None and ended in ("closed", "reset"):
            return Verdict.ok()
        if line is not None:
            return Verdict.fail(f"it answered {line!r} to a client that sent 2 bytes and "
                                "closed: a header needs\n5 bytes; when recv() returns 0 "
                                "before that, close without answering.")
        return Verdict.fail(f"it did not close the connection within {LINE_WAIT:g} s "
                            "after the client closed:\nrecv() returns 0 then; close the "
                            "socket and take the next client.")

    return client


def check_sniffer_c(name):
    """Check the C sniffer NAME, compiled by a ``%%c NAME --compile-only`` cell.

    For each client it reads the first 5 bytes, answers one line -- "TLS record:
    type T, version 0xVVVV, length L" when they look like a TLS record header,
    else "not TLS" -- then reads until the client closes, and closes.  A client
    that closes before 5 bytes gets no answer.  The header also comes in pieces,
    each sent once the server has read the one before.  Then C's own failures
    (c_answer.check_process).
    """
    report = Report(f"Checking the C sniffer {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    hello = _client_hello()
    data_record = b"\x17\x03\x03\x00\x20" + bytes(32)
    probe = _sniff_case(answer, [hello])
    cases = [
        ("a real ClientHello (Python's ssl), in one piece", [hello]),
        ("plain text, b'hello, plain text\\n': not TLS", [b"hello, plain text\n"]),
        ("an HTTP request: not TLS", [b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"]),
        ("a TLS 1.2 application-data record of 32 bytes", [data_record]),
        ("a header whose version does not begin with 3: not TLS",
         [b"\x16\x0a\x01\x00\x10" + bytes(16)]),
        ("the ClientHello's header in two pieces, 3 bytes then the rest",
         [hello[:3], hello[3:]]),
        ("the ClientHello's header one byte at a time",
         [hello[:1], hello[1:2], hello[2:3], hello[3:4], hello[4:]]),
    ]
    with answer:
        for description, pieces in cases:
            verdict = answer.play(_sniff_case(answer, pieces))
            if report.add(description, verdict).final:
                return report
        verdict = answer.play(_early_close_case(answer))
        if verdict.passed:
            verdict = answer.play(probe)  # and it goes on
        if report.add("a client sends 2 bytes and closes: no answer, and the server "
                      "goes on", verdict).final:
            return report
        c_answer.check_process(answer, report, probe=probe)
    return report
