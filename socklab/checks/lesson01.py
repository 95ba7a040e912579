"""Checks for lesson 01's exercises: port_bytes(), five_tuple(), parse_sockaddr_in().

    socklab.checks.lesson01.check_port_bytes(port_bytes)
    socklab.checks.lesson01.check_five_tuple(five_tuple)
    socklab.checks.lesson01.check_parse_sockaddr_in(parse_sockaddr_in)

five_tuple() is checked on real connections over loopback, from both ends, and
parse_sockaddr_in() on the very bytes the kernel writes: raw_sockname() calls the C
library's getsockname() through ctypes, so Python sees the struct sockaddr_in a C
program would get.  The learner may call raw_sockname() too, to experiment.
"""

import contextlib
import ctypes
import dataclasses
import os
import socket
import struct

from .report import (
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = [
    "check_port_bytes",
    "check_five_tuple",
    "check_parse_sockaddr_in",
    "raw_sockname",
    "raw_peername",
]


class _Hints:
    """Adds verdicts to a report, writing a hint out in full only the first time.

    The same mistake usually fails every case; one explanation is enough.
    """

    def __init__(self, report):
        self.report = report
        self.seen = set()

    def add(self, description, verdict):
        if verdict.hint and not verdict.passed:
            # A hint's first line may name this case's values; the rest explains.
            first, _, rest = verdict.hint.partition("\n")
            key = rest or first
            if key in self.seen:
                shorter = f"{first}  (see above)" if rest else "(the same problem as above)"
                verdict = dataclasses.replace(verdict, hint=shorter)
            else:
                self.seen.add(key)
        return self.report.add(description, verdict)


HUNG = Verdict.fail("it did not return within the time limit (an endless loop?).", final=True)


def _call(function, *args):
    """Run the learner's function with a time limit; (outcome, HUNG or None)."""
    outcome, thread = call_with_time_limit(function, *args)
    return outcome, (None if outcome.finished else HUNG)


def _try_cases(report, function, cases, judge):
    """Call ``function(arg)`` for each (description, arg, expected); add verdicts.

    ``judge(outcome, arg, expected)`` returns a Verdict.  A call that hangs or
    is still the stub ends the check (a final verdict): every other case would
    say the same.  Returns False when it ended early.
    """
    hints = _Hints(report)
    for description, arg, expected in cases:
        outcome, hung = _call(function, arg)
        if hung is not None:
            verdict = hung
        elif not_written(outcome):
            verdict = Verdict.not_written()
        else:
            verdict = judge(outcome, arg, expected)
        if hints.add(description, verdict).final:
            return False
    return True


# -- exercise 1: port_bytes -------------------------------------------------------


def _judge_port_bytes(outcome, port, expected):
    """Judge port_bytes(port): ``expected``, the port's two bytes in network order."""
    value = outcome.value
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    if isinstance(value, str):
        return Verdict.fail(
            f"it returned a str, {value!r}.\n"
            "The answer is bytes -- what travels in a TCP header -- such as\n"
            "b'\\x13\\x88' for port 5000."
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return Verdict.fail(
            f"it returned the number {value}, not bytes.\n"
            "socket.htons() gives a number whose bytes in memory are in network order;\n"
            "the exercise wants the bytes themselves: struct.pack('!H', port) or\n"
            "port.to_bytes(2, 'big')."
        )
    if not isinstance(value, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(value).__name__}, not bytes.")
    value = bytes(value)
    if len(value) != 2:
        return Verdict.fail(
            f"it returned {len(value)} bytes, {value!r}.\n"
            "A port is a 16-bit number: exactly 2 bytes."
        )
    if value == expected:
        return Verdict.ok()
    if value == expected[::-1]:
        return Verdict.fail(
            f"got {value!r}, expected {expected!r}: the low byte came first.\n"
            "That is how a little-endian CPU keeps a number in memory; network byte\n"
            "order is big-endian, the most significant byte first.  struct.pack('!H',\n"
            "port) ('!' means network order) or port.to_bytes(2, 'big') give it on\n"
            "every machine."
        )
    return Verdict.fail(f"got {value!r}, expected {expected!r}.")


def check_port_bytes(port_bytes):
    """Check ``port_bytes(port) -> bytes``: the port's 2 bytes in network byte order.

    Tried on ports where byte order shows (1, 256, 5000 ...) and where it does not
    (0, 65535); ports that do not fit in 16 bits must raise an error rather than
    wrap around to another port.
    """
    report = Report("Checking port_bytes(port):")
    expected = {port: struct.pack("!H", port)
                for port in (0, 1, 255, 256, 5000, 8080, 32768, 65535)}
    cases = [(f"port {port} -> {value!r}", port, value)
             for port, value in expected.items()]
    if _try_cases(report, port_bytes, cases, _judge_port_bytes):
        report.add("ports that do not fit in 16 bits (65536, -1) raise an error",
                   _judge_out_of_range(port_bytes))
    return report


def _judge_out_of_range(port_bytes):
    """Judge port_bytes() on ports outside 0-65535: each call must raise."""
    for port in (65536, -1):
        outcome, hung = _call(port_bytes, port)
        if hung is not None:
            return hung
        if outcome.error is None:
            return Verdict.fail(
                f"port_bytes({port}) returned {outcome.value!r} instead of raising.\n"
                "No port is outside 0-65535; keeping only the low 16 bits silently\n"
                "turns 65536 into port 0 (a C program's htons() does exactly that).\n"
                "struct.pack('!H', port) and port.to_bytes(2, 'big') raise for you."
            )
    return Verdict.ok()


# -- exercise 2: five_tuple ---------------------------------------------------------


def _loopback6_available():
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:  # no IPv6 on this machine's loopback
        return False


def _ipv6_client(stack):
    """A TCP client on an AF_INET6 socket: to ::1, or where the loopback has no
    IPv6 address, to an IPv4 server through the IPv4-mapped address
    ::ffff:127.0.0.1 (the socket is still AF_INET6, with 4-tuple addresses)."""
    if _loopback6_available():
        listener = stack.enter_context(
            socket.create_server(("::1", 0), family=socket.AF_INET6))
        return stack.enter_context(
            socket.create_connection(listener.getsockname()[:2], timeout=5))
    listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
    client = stack.enter_context(socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
    client.settimeout(5)
    client.connect(("::ffff:127.0.0.1", listener.getsockname()[1]))
    return client


def check_five_tuple(five_tuple):
    """Check ``five_tuple(sock) -> (proto, local_ip, local_port, remote_ip, remote_port)``.

    Tried on real connected sockets: a TCP client and the server's socket for it
    (IPv4, the client on 127.0.0.2), a TCP client on an AF_INET6 socket (to ::1)
    and a connected UDP socket.
    """
    report = Report("Checking five_tuple(sock):")
    with contextlib.ExitStack() as stack:  # the sockets live until the check ends
        _try_cases(report, five_tuple, _live_sockets(stack), _judge_five_tuple)
    return report


def _live_sockets(stack):
    """(description, connected socket, its 5-tuple) for each case, opened in stack."""
    listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
    client = stack.enter_context(
        socket.create_connection(listener.getsockname(), timeout=5,
                                 source_address=("127.0.0.2", 0))
    )
    listener.settimeout(5)
    server_side, _ = listener.accept()
    stack.enter_context(server_side)
    client_end, server_end = client.getsockname(), client.getpeername()
    yield ("a TCP client's socket (IPv4, from 127.0.0.2)", client,
           ("tcp", *client_end, *server_end))
    yield ("the server's socket for that client (from accept())", server_side,
           ("tcp", *server_end, *client_end))

    client6 = _ipv6_client(stack)
    yield ("a TCP client's socket (AF_INET6)", client6,
           ("tcp", *client6.getsockname()[:2], *client6.getpeername()[:2]))

    receiver = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    receiver.bind(("127.0.0.1", 0))
    sender = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sender.bind(("127.0.0.2", 0))
    sender.connect(receiver.getsockname())
    yield ("a connected UDP socket (from 127.0.0.2)", sender,
           ("udp", *sender.getsockname(), *sender.getpeername()))


def _judge_five_tuple(outcome, sock, expected):
    """Judge five_tuple(sock): ``expected``, the socket's (proto, local, remote)."""
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    value = outcome.value
    if not isinstance(value, (tuple, list)):
        return Verdict.fail(
            f"it returned {type(value).__name__}; return a tuple of five values.")
    value = tuple(value)
    if len(value) != 5:
        return Verdict.fail(_hint_for_length(value, sock))
    if value == expected:
        return Verdict.ok()
    proto, local, remote = value[0], tuple(value[1:3]), tuple(value[3:5])
    want_proto, want_local, want_remote = expected[0], expected[1:3], expected[3:5]
    if proto != want_proto:
        return Verdict.fail(_hint_for_protocol(proto, want_proto))
    if (local, remote) == (want_remote, want_local):
        return Verdict.fail(
            "local and remote are swapped.\n"
            "getsockname() gives this socket's own end (local); getpeername() the\n"
            "other end (remote)."
        )
    if any(isinstance(v, str) for v in (value[2], value[4])):
        return Verdict.fail("the ports should be ints, as getsockname() returns them, not str.")
    return Verdict.fail(f"got {value!r},\nexpected {expected!r}.")


def _hint_for_length(value, sock):
    if any(isinstance(v, tuple) for v in value):
        return (
            f"it returned {len(value)} values, some of them tuples: {value!r}.\n"
            "Unpack the address tuples into one flat tuple of five:\n"
            "(proto, local_ip, local_port, remote_ip, remote_port)."
        )
    if sock.family == socket.AF_INET6:
        return (
            f"it returned {len(value)} values.\n"
            "On an AF_INET6 socket, getsockname() and getpeername() return four items:\n"
            "(host, port, flowinfo, scope_id).  Keep the first two of each."
        )
    return f"it returned {len(value)} values; a 5-tuple has five."


def _hint_for_protocol(proto, want):
    if isinstance(proto, str) and proto.lower() == want:
        return f"write the protocol in lower case: {want!r}."
    if want == "udp" and proto == "tcp":
        return (
            "this socket is UDP (sock.type is SOCK_DGRAM), not TCP.\n"
            "The protocol is part of the tuple: the same addresses and ports over TCP\n"
            "would be another connection.  Look at sock.type instead of always\n"
            "writing 'tcp'."
        )
    if not isinstance(proto, str):
        return (
            f"the first value is {proto!r}.\n"
            "Write the protocol as text: 'tcp' for a SOCK_STREAM socket, 'udp' for a\n"
            "SOCK_DGRAM one."
        )
    return f"the protocol is {want!r}, not {proto!r}."


# -- exercise 3: parse_sockaddr_in --------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _raw_name(call, sock):
    buffer = ctypes.create_string_buffer(128)  # larger than any sockaddr we meet
    size = ctypes.c_uint32(len(buffer))  # socklen_t
    if call(sock.fileno(), buffer, ctypes.byref(size)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return buffer.raw[: size.value]


def raw_sockname(sock):
    """The bytes the kernel writes for getsockname(): a struct sockaddr_in for IPv4.

    Python's sock.getsockname() decodes them into ('127.0.0.1', port); this calls
    the C library's getsockname() instead and returns them undecoded.
    """
    return _raw_name(_libc.getsockname, sock)


def raw_peername(sock):
    """Like raw_sockname(), for getpeername(): the other end's struct sockaddr_in."""
    return _raw_name(_libc.getpeername, sock)


def _sockaddr_in(ip, port):
    """A struct sockaddr_in as Linux lays it out: family (host order), port and
    address (network order), 8 zero bytes."""
    return (struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
            + socket.inet_pton(socket.AF_INET, ip) + bytes(8))


def _blobs(stack):
    """(description, 16 bytes, (ip, port)) for each case."""
    bound = stack.enter_context(socket.socket())
    bound.bind(("127.0.0.1", 0))
    yield ("getsockname() bytes of a socket on 127.0.0.1, port from the kernel",
           raw_sockname(bound), bound.getsockname())
    listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
    client = stack.enter_context(
        socket.create_connection(listener.getsockname(), timeout=5,
                                 source_address=("127.0.0.2", 0)))
    yield ("getsockname() bytes of a client on 127.0.0.2",
           raw_sockname(client), client.getsockname())
    yield ("getpeername() bytes of that client (the server's end)",
           raw_peername(client), client.getpeername())
    for ip, port in (("127.0.0.1", 1), ("127.0.0.1", 256), ("127.1.2.3", 5000),
                     ("127.0.0.1", 65535)):
        yield (f"{ip} port {port}", _sockaddr_in(ip, port), (ip, port))


def check_parse_sockaddr_in(parse_sockaddr_in):
    """Check ``parse_sockaddr_in(blob) -> (ip, port)`` on the bytes of a struct sockaddr_in.

    Real bytes from the kernel (getsockname() and getpeername() called through the
    C library) and a few made the same way for chosen ports and addresses.
    """
    report = Report("Checking parse_sockaddr_in(blob):")
    with contextlib.ExitStack() as stack:
        _try_cases(report, parse_sockaddr_in, _blobs(stack), _judge_sockaddr)
    return report


def _judge_sockaddr(outcome, blob, expected):
    """Judge parse_sockaddr_in(blob): ``expected``, the (ip, port) in those bytes."""
    expected = tuple(expected)
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    value = outcome.value
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return Verdict.fail(
            f"it returned {value!r}; return a pair (ip, port), e.g. ('127.0.0.1', 5000).")
    ip, port = value
    want_ip, want_port = expected
    if isinstance(ip, (bytes, bytearray)):
        return Verdict.fail(
            f"the address is {bytes(ip)!r}, raw bytes.\n"
            "Return it as text: socket.inet_ntop(socket.AF_INET, ...) turns 4 bytes\n"
            "into '127.0.0.1'."
        )
    if not isinstance(port, int) or isinstance(port, bool):
        return Verdict.fail(f"the port is {port!r}; return it as an int.")
    hints = []
    if ip != want_ip:
        if isinstance(ip, str) and ip == ".".join(reversed(want_ip.split("."))):
            hints.append(
                f"the address came out reversed, {ip!r}.\n"
                "Bytes 4-7 are sin_addr, already in network order: read them as they\n"
                "are, socket.inet_ntop(socket.AF_INET, blob[4:8])."
            )
        else:
            hints.append(
                f"the address is {ip!r}, expected {want_ip!r}.  It is in bytes 4-7 (sin_addr)."
            )
    if port != want_port:
        (swapped,) = struct.unpack("<H", blob[2:4])
        if port == swapped:
            hints.append(
                f"the port came out as {port}: its bytes were read low byte first.\n"
                "sin_port is in network byte order (big-endian): struct.unpack('!H',\n"
                "blob[2:4])[0], int.from_bytes(blob[2:4], 'big') or socket.ntohs(...)."
            )
        elif port == socket.AF_INET or port == struct.unpack("!H", blob[0:2])[0]:
            hints.append(
                f"the port came out as {port}: that is sin_family (AF_INET = 2).\n"
                "The family is in bytes 0-1; the port is the next two, blob[2:4]."
            )
        else:
            hints.append(f"the port is {port}, expected {want_port}.  It is in bytes 2-3.")
    return Verdict.fail("\n".join(hints)) if hints else Verdict.ok()
