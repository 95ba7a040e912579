"""Checks for lesson 15 (DNS by hand): a strict name encoder, a name parser in C.

``check_wire_name(wire_name)`` calls the learner's Python function with names
and compares the bytes it returns with the wire form of RFC 1035, 3.1; the
names RFC 1035, 2.3.4 forbids must raise ValueError.

``check_answer_query(answer_query, zone)`` runs the learner's function as the
handler of a UDP server on loopback and sends it queries from a real socket; the
replies are read strictly (socklab.dns.read_message) and compared with what
RFC 1035, 4.1 and RFC 1034, 4.3.2 ask of an authoritative server.

``check_parse_name_c(NAME)`` builds the learner's C program (a ``%%c NAME
--compile-only`` cell) with AddressSanitizer and UBSan and runs it once per
case: a DNS message on its standard input, the offset of a name as its
argument.  It must print the name, or ``refused`` (exit status 1) for a name
that breaks the rules -- and never hang, crash, or read outside the message.
The messages are replies as the lesson's servers write them (socklab.dns's
own encoder, with compression) and traps made by hand.
"""

import socket
import struct
import threading

from .. import c
from .. import dns
from ..servers import UDPServer
from . import c_answer
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
)

__all__ = ["check_answer_query", "check_wire_name", "check_parse_name_c"]

RUN_LIMIT = 5.0  # seconds one run of the C program may take
HEADER = bytes(12)  # a header of zeros: the traps need nothing more


def _labels(*sizes):
    """A name with labels of these sizes: 'aaa.bbbb.' ..."""
    return "".join(chr(ord("a") + i % 26) * size + "." for i, size in enumerate(sizes))


# -- exercise 1: wire_name(name) -------------------------------------------------

GOOD_NAMES = [
    ("www.socklab.test.", b"\x03www\x07socklab\x04test\x00"),
    ("www.socklab.test", b"\x03www\x07socklab\x04test\x00"),
    (".", b"\x00"),
    ("test.", b"\x04test\x00"),
    ("WWW.SockLab.Test.", b"\x03WWW\x07SockLab\x04Test\x00"),
    ("a" * 63 + ".test.", b"\x3f" + b"a" * 63 + b"\x04test\x00"),
]
LONGEST = _labels(63, 63, 63, 61)  # 255 bytes in wire form: allowed
BAD_NAMES = [
    ("a" * 64 + ".test.", "a label of 64 bytes (63 at most, RFC 1035, 2.3.4)"),
    ("a..test.", "an empty label between two dots"),
    (".test.", "an empty label before the first dot"),
    ("test..", "two final dots: an empty label"),
    (_labels(63, 63, 63, 62), "a name of 256 bytes in wire form (255 at most)"),
]


def _expected_hint(name, got, want):
    """What is wrong with ``got`` (bytes), compared with ``want``."""
    if b"." in got:
        return ("the dots are still there.  On the wire a name has no dots: each label\n"
                "has its length in a byte in front of it.")
    if got == want[:-1]:
        return ("the final zero byte is missing: every name ends with the root's empty\n"
                "label, a 0 (RFC 1035, 3.1).")
    joined = b"".join(part[1:] for part in _split_wire(want))
    if got in (joined, joined + b"\0"):
        return "each label needs its length, one byte, in front of it."
    return None


def _short(value, most=60):
    """repr(value), its middle cut out when it is long."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most // 2]}...{text[-most // 2:]}"


def _split_wire(wire):
    parts, i = [], 0
    while i < len(wire) and wire[i]:
        parts.append(wire[i:i + 1 + wire[i]])
        i += 1 + wire[i]
    return parts


def _judge_good(function, name, want):
    outcome, _ = call_with_time_limit(function, name)
    if not outcome.finished:
        return Verdict.fail("it did not return within 5 s.", final=True)
    if outcome.error is not None:
        return Verdict.fail(f"for {_short(name)}, {describe_error(outcome.error)};\n"
                            "this name is allowed.")
    got = outcome.value
    if got is None:
        return Verdict.not_written()
    if not isinstance(got, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(got).__name__} {got!r}: return bytes.",
                            final=True)
    if bytes(got) == want:
        return Verdict.ok()
    hint = _expected_hint(name, bytes(got), want)
    shown = (f"wire_name({_short(name)})\n  returned {_short(bytes(got))}\n"
             f"  expected {_short(want)}")
    return Verdict.fail(shown + ("\n" + hint if hint else ""))


def _judge_bad(function, name, why):
    outcome, _ = call_with_time_limit(function, name)
    if not outcome.finished:
        return Verdict.fail("it did not return within 5 s.", final=True)
    if outcome.error is None:
        return Verdict.fail(f"it returned {_short(outcome.value)} for {why};\n"
                            "raise ValueError instead.")
    if not isinstance(outcome.error, ValueError):
        return Verdict.fail(f"{describe_error(outcome.error)}; raise ValueError, "
                            "the exception Python uses for a value that is wrong.")
    return Verdict.ok()


def check_wire_name(wire_name):
    """Check ``wire_name(name)``: the wire form of a name, or ValueError."""
    report = Report("Checking wire_name(name):")
    for name, want in GOOD_NAMES:
        shown = name if len(name) < 30 else "a label of 63 bytes, then test."
        size = f"{len(want)} byte{'s' if len(want) > 1 else ''}"
        if report.add(f"{shown!r} -> {size}",
                      _judge_good(wire_name, name, want)).final:
            return report
    if report.add("a name of exactly 255 bytes in wire form is allowed",
                  _judge_good(wire_name, LONGEST, _wire(LONGEST))).final:
        return report
    for name, why in BAD_NAMES:
        report.add(f"refused: {why}", _judge_bad(wire_name, name, why))
    return report


def _wire(name):
    labels = [label for label in name.split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"


# -- exercise 2: parse_name() in C -------------------------------------------------

def _reply_with_records(question, records):
    """A reply as socklab.dns's servers write it, and the offset of each record."""
    writer = dns._Writer()
    writer.data += struct.pack("!6H", 0x1D2C, 0x8400, 1, len(records), 0, 0)
    writer.name(question)
    writer.data += struct.pack("!HH", 1, 1)
    offsets = []
    for record in records:
        offsets.append(len(writer.data))
        writer.record(*record)
    return bytes(writer.data), offsets


def _far_pointer_message():
    """A name at offset 300, and a pointer to it (c1 2c) at the end."""
    message = bytearray(HEADER + bytes(300 - 12))
    message += _wire("far.socklab.test.")
    pointer_at = len(message)
    message += b"\x03www" + struct.pack("!H", 0xC000 | 300)
    return bytes(message), pointer_at


def _cases():
    """(description, message, offset, the name printed, or None: refused)."""
    referral, (ns_at, glue_at) = _reply_with_records(
        "www.socklab.test.", [("test.", "NS", "ns.test."), ("ns.test.", "A", "127.0.53.2")])
    answer, (answer_at,) = _reply_with_records(
        "www.socklab.test.", [("www.socklab.test.", "A", "127.0.0.1")])
    far, far_at = _far_pointer_message()
    return [
        ("the question's name, labels only", answer, 12, "www.socklab.test."),
        ("the root: a single zero byte", HEADER + b"\x00", 12, "."),
        ("an answer's name: a pointer to the question's (c0 0c)", answer, answer_at,
         "www.socklab.test."),
        ("an NS record's name: a pointer into the question's name", referral, ns_at,
         "test."),
        ("the NS record's data: a label, then a pointer", referral, ns_at + 12, "ns.test."),
        ("the glue's name: a pointer to a label and a pointer", referral, glue_at,
         "ns.test."),
        ("a pointer to offset 300 (both bytes of the offset count)", far, far_at,
         "www.far.socklab.test."),
        ("a name of 255 bytes, the longest allowed", HEADER + _wire(LONGEST), 12, LONGEST),
        ("refused: a pointer to itself", HEADER + b"\xc0\x0c", 12, None),
        ("refused: two pointers that point at each other", HEADER + b"\xc0\x0e\xc0\x0c",
         14, None),
        ("refused: a label, then a pointer back to that label", HEADER + b"\x01a\xc0\x0c",
         12, None),
        ("refused: a pointer past the end of the message", HEADER + b"\x01a\x00\xc0\xff",
         15, None),
        ("refused: a label that runs past the end", HEADER + b"\x05ab", 12, None),
        ("refused: half a pointer at the end", HEADER + b"\x01a\x00\xc0", 15, None),
        ("refused: no final zero, the message ends", HEADER + b"\x01a", 12, None),
        ("refused: label type 01 (reserved)", HEADER + b"\x41" + b"a" * 65 + b"\x00",
         12, None),
        ("refused: a name of 256 bytes", HEADER + _wire(_labels(63, 63, 63, 62)), 12, None),
        ("refused: 256 bytes made with pointers", _long_by_pointers(), 12 + 64 * 3 + 2,
         None),
    ]


def _long_by_pointers():
    """Three labels of 63 bytes, then a name that adds 63 more and points to them."""
    first = _wire(_labels(63, 63, 63))
    return HEADER + first + b"\x3e" + b"z" * 62 + b"\xc0\x0c"


def _judge_run(name, message, offset, want):
    try:
        run = c.run(name, [str(offset)], input=message, timeout=RUN_LIMIT, check=False,
                    echo=False)
    except TimeoutError:
        return Verdict.fail(
            f"it ran for more than {RUN_LIMIT:g} s: a pointer it follows for ever?\n"
            "Each pointer must go back, before the labels it ends (or count the jumps).")
    sanitizer = c.sanitizer_report(name, run.stderr)
    if sanitizer:
        return Verdict.fail(f"{name} crashed.  The sanitizer's report (lines of "
                            f"{name}.c):\n{sanitizer}")
    if run.returncode < 0 or run.returncode > 1:
        return Verdict.fail(c.describe_exit(name, run.returncode) + ".\n"
                            + (run.stdout + run.stderr).strip()[-300:])
    said = run.stdout.strip()
    if want is None:
        if run.returncode == 1:
            return Verdict.ok()
        return Verdict.fail(f"it printed {said[:80]!r}{'...' if len(said) > 80 else ''}; "
                            "this name must be refused.")
    if run.returncode == 0 and said == want:
        return Verdict.ok()
    shown = want if len(want) < 60 else f"{want[:20]}...{want[-20:]}"
    got = said if len(said) < 60 else f"{said[:20]}...{said[-20:]}"
    return Verdict.fail(f"it printed {got!r}; want {shown!r}.")


def check_parse_name_c(name):
    """Check the C program NAME: parse_name() with pointers, refusing the traps."""
    report = Report(f"Checking the C name parser {name}.c:")
    if not c_answer.build(name, report):
        return report
    for description, message, offset, want in _cases():
        report.add(description, _judge_run(name, message, offset, want))
    return report


# -- exercise 3: answer_query(query), an authoritative server ---------------------

ORIGIN = "socklab.test."
REPLY_WAIT = 2.0  # seconds the check waits for a reply it expects
QR, AA, RD = 0x8000, 0x0400, 0x0100
RCODES = {0: "0 (no error)", 1: "1 (FORMERR)", 3: "3 (NXDOMAIN)", 5: "5 (REFUSED)"}


def _query(qid, name, qtype=1, flags=0):
    return struct.pack("!6H", qid, flags, 1, 0, 0, 0) + _wire(name) + struct.pack(
        "!HH", qtype, 1)


class _Handler:
    """The learner's function as a UDP handler: with a time limit, errors kept."""

    def __init__(self, function):
        self.function = function
        self.errors = []
        self._busy = 0  # calls not yet returned (or cut off)
        self._idle = threading.Condition()

    def wait_idle(self, timeout=TIME_LIMIT + 1.0):
        """Wait until no call is running: a slow one ends, or is cut off."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout)

    def __call__(self, data, peer):
        with self._idle:
            self._busy += 1
        try:
            return self._call(data)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _call(self, data):
        outcome, _ = call_with_time_limit(self.function, bytes(data))
        if not outcome.finished:
            self.errors.append("it did not return within 5 s")
            return None
        if outcome.error is not None:
            self.errors.append(describe_error(outcome.error))
            return None
        value = outcome.value
        if value is not None and not isinstance(value, (bytes, bytearray)):
            self.errors.append(f"it returned {type(value).__name__}, not bytes or None")
            return None
        return value


def _exchange(address, *queries):
    """Send the queries from a new socket; the first datagram back, or None.

    A socket per case: a reply the learner's server sent too many dies with it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.settimeout(REPLY_WAIT)
        for query in queries:
            sock.send(query)
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def _judge_reply(reply, handler, query, *, rcode, answers=(), name_asked):
    if handler.errors:
        error = handler.errors.pop()
        return Verdict.fail(error, final=error.startswith("it did not return"))
    if reply is None:
        return Verdict.fail(f"no reply within {REPLY_WAIT:g} s.")
    try:
        got = dns.read_message(reply)
    except ValueError as exc:
        return Verdict.fail(f"the reply is not a DNS message: {exc}.\n"
                            f"  reply: {reply[:64].hex(' ')}{' ...' if len(reply) > 64 else ''}")
    qid, flags = struct.unpack_from("!HH", query)
    problems = []
    if got["id"] != qid:
        problems.append(f"its ID is {got['id']:#06x}; copy the query's ({qid:#06x}).")
    if not got["qr"]:
        problems.append("QR is 0: a reply has QR (the top bit of the flags) set.")
    if got["rd"] != bool(flags & RD):
        problems.append("RD is not the query's: copy it (RFC 1035, 4.1.1).")
    if rcode != 5 and not got["aa"]:
        problems.append("AA is 0: this server is the authority for its zone; set AA.")
    if got["question"] != [(name_asked, struct.unpack_from("!H", query, len(query) - 4)[0], 1)]:
        problems.append(f"the question is {got['question']}; copy the query's, "
                        f"as it came ({name_asked!r}).")
    if got["rcode"] != rcode:
        problems.append(f"RCODE is {RCODES.get(got['rcode'], got['rcode'])}; want "
                        f"{RCODES[rcode]}.")
    have = [(n.lower(), t, data) for n, t, _, data in got["answers"]]
    want = [(name_asked.lower(), 1, address) for address in answers]
    if have != want:
        problems.append(f"the answer section holds {have or 'nothing'}; want "
                        f"{want or 'nothing'}.")
    if got["authority"] or got["additional"]:
        problems.append("the authority and additional sections should be empty here.")
    return Verdict.fail("\n".join(problems)) if problems else Verdict.ok()


def _judge_silence(reply, handler, what, allow_formerr):
    if handler.errors:
        return Verdict.fail(f"for {what}, {handler.errors.pop()}; a server must not fail "
                            "because of one bad datagram: return None.")
    if reply is None:
        return Verdict.fail(f"no reply within {REPLY_WAIT:g} s, not even to the good query "
                            f"sent after {what}.")
    try:
        got = dns.read_message(reply)
    except ValueError:
        got = None
    if got is not None and got["id"] == 0x600D:
        return Verdict.ok()  # the good query's reply: the bad one got none
    if allow_formerr and got is not None and got["rcode"] == 1:
        return Verdict.ok()
    return Verdict.fail(f"it answered {what}: " + (
        "never answer a reply (two servers would answer each other for ever)."
        if not allow_formerr else "return None (or a FORMERR reply)."))


def check_answer_query(answer_query, zone):
    """Check ``answer_query(query)``: the reply (bytes) of an authoritative
    server for ``zone`` ({name: IPv4 address}, names under socklab.test.), or None."""
    report = Report("Checking answer_query(query), an authoritative server:")
    handler = _Handler(answer_query)
    names = sorted(zone)
    first, second = names[0], names[-1]
    cases = [
        (f"{first} A", _query(0x1D2C, first), dict(rcode=0, answers=[zone[first]])),
        (f"{second} A, RD set (copy it)", _query(0x2B1D, second, flags=RD),
         dict(rcode=0, answers=[zone[second]])),
        (f"{first.upper()} A: names compare without case", _query(0x3A4F, first.upper()),
         dict(rcode=0, answers=[zone[first]])),
        ("nothing." + ORIGIN + " A: NXDOMAIN", _query(0x4E11, "nothing." + ORIGIN),
         dict(rcode=3)),
        (f"{first} AAAA: no such record, no error", _query(0x5AAA, first, qtype=28),
         dict(rcode=0)),
        ("www.example.com. A: not this zone, REFUSED", _query(0x6B0B, "www.example.com."),
         dict(rcode=5)),
    ]
    good = _query(0x600D, first)
    bad = [
        ("5 bytes of garbage", b"\x01\x02\x03\x04\x05", True),
        ("a name that runs past the end", struct.pack("!6H", 7, 0, 1, 0, 0, 0) + b"\x09ab",
         True),
        ("a reply (QR set) instead of a query", _query(0x7E7E, first, flags=QR), False),
    ]
    with UDPServer(handler, name="check-answer-query") as server:
        for number, (description, query, want) in enumerate(cases):
            reply = _exchange(server.address, query)
            if reply is None:
                handler.wait_idle()  # a call still running: its error comes
            if number == 0 and reply is None and not handler.errors:
                report.add(description, Verdict.not_written())  # None: the stub
                return report
            name_asked = dns._read_question(query)[2]
            verdict = _judge_reply(reply, handler, query, name_asked=name_asked, **want)
            if report.add(description, verdict).final:
                return report
        for what, query, allow_formerr in bad:
            reply = _exchange(server.address, query, good)
            if reply is None:
                handler.wait_idle()
            report.add(f"{what}: no reply" + (" (or FORMERR)" if allow_formerr else ""),
                       _judge_silence(reply, handler, what, allow_formerr))
    return report
