"""Checks for lesson 02's exercises: kind_of(), datagram_reads(), stream_reads().

kind_of(sock) is run on real sockets of every kind the lesson shows, so an answer
that looks at the family alone, or the type alone, meets a socket it gets wrong.
datagram_reads() and stream_reads() make their own socket pairs; the checks
compare what they return with what the kernel really does with the same messages
(the expected reads are computed here with real sockets too, not written down).
"""

import socket

from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
)

__all__ = ["check_kind_of", "check_datagram_reads", "check_stream_reads", "KINDS"]

KINDS = ("tcp", "udp", "unix-stream", "unix-dgram", "raw")
BUFSIZE = 1024  # the recv() size the exercises ask for


# -- kind_of -----------------------------------------------------------------------


def _maker(*args):
    """A function that makes socket.socket(*args), named by its arguments."""
    return lambda: socket.socket(*args)


def _kind_cases():
    """(description, expected answer, how to make the socket); raw ones only as root."""
    cases = [
        ("socket(AF_INET, SOCK_STREAM)", "tcp", _maker(socket.AF_INET, socket.SOCK_STREAM)),
        ("socket(AF_INET, SOCK_DGRAM)", "udp", _maker(socket.AF_INET, socket.SOCK_DGRAM)),
        ("socket(AF_UNIX, SOCK_STREAM)", "unix-stream",
         _maker(socket.AF_UNIX, socket.SOCK_STREAM)),
        ("socket(AF_UNIX, SOCK_DGRAM)", "unix-dgram", _maker(socket.AF_UNIX, socket.SOCK_DGRAM)),
        ("socket(AF_INET6, SOCK_STREAM)", "tcp", _maker(socket.AF_INET6, socket.SOCK_STREAM)),
        ("socket(AF_INET6, SOCK_DGRAM)", "udp", _maker(socket.AF_INET6, socket.SOCK_DGRAM)),
        ("socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)", "tcp",
         _maker(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)),
        ("one end of socketpair(AF_UNIX, SOCK_STREAM)", "unix-stream", _one_of_a_pair),
    ]
    if _may_make_raw_sockets():
        cases += [
            ("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)", "raw",
             _maker(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
            ("socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)", "raw",
             _maker(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)),
        ]
    return cases


def _one_of_a_pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.close()
    return a


def _may_make_raw_sockets():
    """Whether this process may open raw sockets (root, or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except PermissionError:
        return False
    return True


def check_kind_of(kind_of):
    """Check ``kind_of(sock) -> "tcp" | "udp" | "unix-stream" | "unix-dgram" | "raw"``.

    Each case is a real socket, closed after the call.  Raw sockets are checked
    only where this process may make them (root, or CAP_NET_RAW).
    """
    report = Report("Checking kind_of(sock):")
    explained = set()  # each explanation once; later failures get the headline only
    for description, expected, make in _kind_cases():
        sock = make()
        try:
            outcome, _ = call_with_time_limit(kind_of, sock)
            family, kind = sock.family, sock.type
        finally:
            sock.close()
        verdict = _judge_kind(outcome, expected, family, kind, explained,
                              first=not report.results)
        if report.add(f"{description} is {expected!r}", verdict).final:
            return report
    if not _may_make_raw_sockets():
        report.title += "  (raw sockets need root here: not checked)"
    return report


def _explained_once(problem, explained):
    """The Verdict for ``problem``: None (right) or (what is wrong, why).

    The why is written out once; where it was given already (it is in
    ``explained``), "(see above)" stands in its place.
    """
    if problem is None:
        return Verdict.ok()
    headline, explanation = problem
    if explanation and explanation in explained:
        explanation = "(see above)"
    explained.add(explanation)
    return Verdict.fail(f"{headline}\n{explanation}".strip())


def _judge_kind(outcome, expected, family, kind, explained, first):
    """Judge kind_of() on a socket of ``family`` and ``kind``: it must say ``expected``.

    None is the stub's answer only in the ``first`` case; later it is a wrong answer.
    """
    if not outcome.finished:
        return Verdict.fail(f"kind_of() did not return within {TIME_LIMIT:g} s.  It only needs to\n"
                            "look at sock.family and sock.type; it should not send or receive.",
                            final=True)
    unwritten = first and outcome.error is None and outcome.value is None
    if unwritten or isinstance(outcome.error, NotImplementedError):
        return Verdict.not_written()
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    return _explained_once(_kind_problem(outcome.value, expected, family, kind), explained)


IPV6 = ("AF_INET6 is IPv6: TCP and UDP work over IPv6 just as over IPv4.\n"
        "Is AF_INET6 missing from your test?")
FAMILY_TOO = ("TCP and UDP exist only in the families AF_INET and AF_INET6.  The type\n"
              "alone does not name the protocol: look at sock.family as well.")
TYPE_TOO = ("Compare sock.type with socket.SOCK_STREAM and socket.SOCK_DGRAM.\n"
            "(sock.proto is no help: it is the number given to socket(), usually 0.)")
RAW_FIRST = ("A raw socket is raw whatever its family and protocol: check for\n"
             "SOCK_RAW before you look at the family.")


def _kind_problem(got, expected, family, kind):
    """None if ``got`` is right, else (what is wrong, why -- the same text each time)."""
    fam, typ = family.name, kind.name
    ipv6 = IPV6 if family == socket.AF_INET6 else ""
    if got is None:
        return f"it returned None for a socket of family {fam}, type {typ}.", ipv6
    if not isinstance(got, str):
        return f"it returned {got!r} ({type(got).__name__}).", f"Return one of {KINDS}."
    if got == expected:
        return None
    if got.strip().lower() == expected:
        return f"it returned {got!r}.", f"Use the exact, lower-case words: {', '.join(KINDS)}."
    if got not in KINDS:
        return f"it returned {got!r}, which is not one of {KINDS}.", ipv6
    if expected == "raw":
        return f"it returned {got!r}, but sock.type is SOCK_RAW.", RAW_FIRST
    if got == "raw":
        return f"it returned 'raw', but sock.type is {typ}, not SOCK_RAW.", ""
    network = family in (socket.AF_INET, socket.AF_INET6)
    if not network and got in ("tcp", "udp"):
        return (f"it returned {got!r}, but sock.family is {fam}: a local socket,\n"
                f"which with {typ} is {expected!r}."), FAMILY_TOO
    if network and got.startswith("unix"):
        return f"it returned {got!r}, but sock.family is {fam}: a network socket.", (
            ipv6 or "Look at sock.family as well as sock.type.")
    # the right family, the wrong type: stream and datagram swapped
    what = "a byte stream" if kind == socket.SOCK_STREAM else "datagrams"
    return (f"it returned {got!r}, but sock.type is {typ} ({what}),\n"
            f"which in this family is {expected!r}."), TYPE_TOO


# -- datagram_reads and stream_reads --------------------------------------------------


def _kernel_reads(sock_type, messages):
    """What recv(BUFSIZE) really returns for these messages: the reference answer.

    Datagrams: one recv() per message.  Stream: the sender closes, then recv()
    until b''.  Never blocks: every read waits at most TIME_LIMIT seconds.
    """
    a, b = socket.socketpair(socket.AF_UNIX, sock_type)
    with a, b:
        b.settimeout(TIME_LIMIT)
        for message in messages:
            a.send(message)
        if sock_type == socket.SOCK_DGRAM:
            return [b.recv(BUFSIZE) for _ in messages]
        a.close()
        reads = []
        while data := b.recv(BUFSIZE):
            reads.append(data)
        return reads


DATAGRAM_CASES = [
    ("two messages", [b"hello", b"world"]),
    ("an empty message in the middle", [b"one", b"", b"three"]),
    ("a long message (1,000 bytes) and a short one", [b"x" * 1000, b"y"]),
]
STREAM_CASES = [
    ("two messages", [b"hello", b"world"]),
    ("an empty message in the middle", [b"one", b"", b"three"]),
    ("2,100 bytes in two messages", [b"x" * 1500, b"y" * 600]),
]


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _returned_wrong_things(got):
    """(what is wrong, why) if ``got`` is not a list of bytes, else None."""
    if isinstance(got, (bytes, bytearray)):
        return ("it returned one bytes object.",
                "Return a list with one item per recv() call, e.g. [b'hello', b'world'].")
    if not isinstance(got, list):
        return f"it returned {type(got).__name__}.", "Return a list of what recv() returned."
    if any(isinstance(item, str) for item in got):
        return "the list holds str.", "recv() returns bytes: return them as they came."
    if not all(isinstance(item, (bytes, bytearray)) for item in got):
        return "the list holds something else than bytes.", "Put in it what recv() returned."
    return None


def _run_reads_check(title, function, cases, problem_with, hang_hint):
    report = Report(title)
    explained = set()
    for description, messages in cases:
        outcome, _ = call_with_time_limit(function, list(messages))
        verdict = _judge_reads(outcome, messages, problem_with, hang_hint, explained)
        if report.add(description, verdict).final:
            return report
    return report


def _judge_reads(outcome, messages, problem_with, hang_hint, explained):
    """Judge the reads that datagram_reads() or stream_reads() returned for ``messages``.

    ``problem_with(messages, reads)`` says what is wrong with a list of bytes.
    """
    if not outcome.finished:
        return Verdict.fail(hang_hint, final=True)
    unwritten = outcome.value is None and outcome.error is None
    if unwritten or isinstance(outcome.error, NotImplementedError):
        return Verdict.not_written()
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    got = _as_list(outcome.value)
    problem = _returned_wrong_things(got)
    if problem is None:
        problem = problem_with(messages, [bytes(item) for item in got])
    return _explained_once(problem, explained)


def _show(reads):
    """A list of reads, long ones abbreviated: [b'xxxxxxxx'... (1,000 bytes), b'y']."""
    shown = [repr(item) if len(item) <= 20 else f"{item[:8]!r}... ({len(item):,} bytes)"
             for item in reads]
    return "[" + ", ".join(shown) + "]"


def check_datagram_reads(datagram_reads):
    """Check ``datagram_reads(messages) -> list of bytes``.

    It must send every message over one end of socketpair(AF_UNIX, SOCK_DGRAM)
    and return what recv(1024) on the other end returns, once per message.
    """
    hang = (f"datagram_reads() did not return within {TIME_LIMIT:g} s: it is probably\n"
            "waiting in recv() for a datagram that never comes.  A datagram socket has\n"
            "no end of stream -- even when the other end closes, recv() just waits.\n"
            "Call recv() exactly len(messages) times.  (Restart the kernel to free the\n"
            "stuck thread.)")
    return _run_reads_check("Checking datagram_reads(messages):", datagram_reads,
                            DATAGRAM_CASES, _datagram_problem, hang)


def _datagram_problem(messages, got):
    """None if ``got`` is what recv() returns for these datagrams, else (what, why)."""
    expected = _kernel_reads(socket.SOCK_DGRAM, messages)
    if got == expected:
        return None
    headline = f"got {_show(got)}"
    if got == _kernel_reads(socket.SOCK_STREAM, messages):
        return headline + ": the bytes ran together, as on a stream.", (
            "Did you make the pair with socket.SOCK_DGRAM?  Datagrams keep their\n"
            "boundaries: one send(), one recv().")
    if b"" in messages and got == expected[: messages.index(b"")]:
        return headline + ": it stopped at the empty message.", (
            "On a datagram socket b'' is a datagram of 0 bytes, not the end: count\n"
            "the messages instead, and call recv() len(messages) times.")
    if len(got) == len(expected) and all(e.startswith(g) for e, g in zip(expected, got)):
        return headline + ": datagrams were cut short.", (
            "recv(n) returns at most n bytes of a datagram and throws the rest away\n"
            "(the datagram is truncated).  Use recv(1024).")
    return f"expected {_show(expected)},\n{headline}.", ""


def check_stream_reads(stream_reads):
    """Check ``stream_reads(messages) -> list of bytes``.

    It must send every message over one end of socketpair(AF_UNIX, SOCK_STREAM),
    close that end, and return what recv(1024) on the other end returns until it
    returns b'' (the final b'' left out).
    """
    hang = (f"stream_reads() did not return within {TIME_LIMIT:g} s: it is probably\n"
            "waiting in recv() for the end of the stream.  recv() returns b'' only once\n"
            "the other end is closed: close the sending socket after the last send().\n"
            "(On a SOCK_DGRAM pair it would never return b'': check the type too.)\n"
            "(Restart the kernel to free the stuck thread.)")
    return _run_reads_check("Checking stream_reads(messages):", stream_reads,
                            STREAM_CASES, _stream_problem, hang)


def _stream_problem(messages, got):
    """None if ``got`` is what recv() returns for this stream, else (what, why)."""
    expected = _kernel_reads(socket.SOCK_STREAM, messages)
    if got == expected:
        return None
    headline = f"got {_show(got)}"
    if got == expected + [b""]:
        return headline + ": it ends with b''.", (
            "Leave out that last read: it only says that the other end closed.")
    if len(got) == len(messages) or got == [m for m in messages if m]:
        return headline + ": one read per message.", (
            "A stream keeps no boundaries between messages.  Did you ask recv() for\n"
            "len(message) bytes, or use SOCK_DGRAM?  Use socket.SOCK_STREAM, send\n"
            "everything, close the sender, then call recv(1024) until it returns b''.")
    if got and expected[: len(got)] == got:
        return headline + f": only the first {len(got)} read(s).", (
            "One recv(1024) returns at most 1,024 bytes: keep calling it until it\n"
            "returns b''.")
    return f"expected {_show(expected)},\n{headline}.", ""
