"""Checks for lesson 11's exercises: internet_checksum(), echo_request(), parse_reply().

* check_internet_checksum: the learner's RFC 1071 checksum against
  socklab.icmp.internet_checksum on the inputs that catch the usual mistakes --
  odd lengths, sums that carry out of 16 bits, all 0xFF, the empty message --
  and on 200 random messages (a fixed seed, so the same ones every run).
* check_echo_request: the learner's message is compared with the right one
  field by field (type, code, checksum, identifier, sequence, payload), so the
  hint names the field that is wrong.  Where this process may open a raw
  socket (root), the first request is also sent to 127.0.0.1: the kernel
  answers only an echo request whose checksum is right.
* check_parse_reply: packets as a raw ICMP socket reads them -- IP header first
  -- with and without IP options.  Where it may (root), the check first asks the
  kernel on 127.0.0.1 for a real reply and hands over that one too.

The byte-level cases need no privileges; the description of a report says when
the live cases were left out, and they never count as passed.
"""

import dataclasses
import random
import select
import socket
import struct
import time

from .. import icmp
from .report import (
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_internet_checksum", "check_echo_request", "check_parse_reply"]

IDENTIFIER = 0x0C11  # the checks' own ICMP identifier; the lesson uses 0x1111
REPLY_WAIT = 2.0  # seconds to wait for the kernel's echo reply on loopback
NOT_ROOT = " (bytes only: raw sockets need CAP_NET_RAW, so nothing was sent)"


def _raw_allowed():
    return icmp.privileges().raw_icmp is None


def _error_text(error):
    """describe_error(), but struct's exception by its full name: "struct.error"."""
    if isinstance(error, struct.error):
        return f"it raised struct.error: {error}"
    return describe_error(error)


def _swap16(value):
    return ((value & 0xFF) << 8) | (value >> 8)


# ------------------------------------------------------------ internet_checksum


def _wrong_checksums(data):
    """{hint: value} that the usual mistakes give for ``data``."""
    padded = bytes(data) + b"\x00" * (len(data) % 2)
    words = struct.unpack(f"!{len(padded) // 2}H", padded)
    total = sum(words)
    once = (total & 0xFFFF) + (total >> 16)
    folded = once
    while folded > 0xFFFF:
        folded = (folded & 0xFFFF) + (folded >> 16)
    wrong = {}
    if len(data) % 2:
        front = b"\x00" + bytes(data)
        wrong["An odd last byte is padded with a zero byte *after* it (it is the high\n"
              "byte of the last word), not before the message."] = icmp.internet_checksum(front)
        wrong["The last, odd byte was left out: pad it with a zero byte and add it\n"
              "as the high byte of a last word."] = icmp.internet_checksum(bytes(data[:-1]))
    wrong["The carries were dropped.  A sum that grows past 16 bits is folded back:\n"
          "add the part above 16 bits to the low 16 bits ('end-around carry'),\n"
          "until nothing is left above."] = ~total & 0xFFFF
    wrong["One fold is not always enough: folding can carry once more.  Repeat\n"
          "while the sum is above 0xFFFF."] = ~once & 0xFFFF
    wrong["That is the folded sum itself: the checksum is its one's complement,\n"
          "~sum & 0xFFFF."] = folded
    return wrong


def _judge_checksum(outcome, data):
    """Judge internet_checksum(data): the RFC 1071 checksum of ``data``."""
    if not outcome.finished:
        return Verdict.fail("it did not return in time: is there a loop that never ends?",
                            final=True)
    if outcome.error is not None:
        if isinstance(outcome.error, struct.error) and len(data) % 2:
            return Verdict.fail(
                f"{_error_text(outcome.error)}\n"
                "An odd number of bytes does not make whole 16-bit words: pad the\n"
                "message with one zero byte at the end (RFC 1071).")
        return Verdict.fail(_error_text(outcome.error))
    value = outcome.value
    if not isinstance(value, int) or isinstance(value, bool):
        return Verdict.fail(f"it returned {value!r}; return the checksum as an int, 0 to 0xFFFF.")
    right = icmp.internet_checksum(data)
    if value == right:
        return Verdict.ok()
    if value < 0 or value > 0xFFFF:
        return Verdict.fail(
            f"it returned {value}: not a 16-bit number.  In Python ~x is negative\n"
            "(Python's ints have no fixed width): use ~total & 0xFFFF.")
    for hint, wrong in _wrong_checksums(data).items():
        if value == wrong and wrong != right:
            return Verdict.fail(
                f"it returned 0x{value:04x}, the right answer is 0x{right:04x}.\n{hint}")
    if value == _swap16(right):
        return Verdict.fail(
            f"it returned 0x{value:04x}: the right answer 0x{right:04x} with its bytes\n"
            "swapped.  The words are big-endian (network order): struct's '!H', or\n"
            "data[i] << 8 | data[i + 1].")
    return Verdict.fail(f"it returned 0x{value:04x}; the right answer is 0x{right:04x}.")


def _checksum_cases():
    rng = random.Random(1071)  # the RFC's number: the same messages on every run
    randoms = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 101)))
               for _ in range(200)]
    lesson = icmp.echo_request(0x1111, 1, b"socklab!")
    unsummed = lesson[:2] + b"\x00\x00" + lesson[4:]
    return [
        ("the lesson's echo request, checksum field 0 (16 bytes)", [unsummed]),
        ("the same request with its checksum in: sums to 0", [lesson]),
        ("the empty message: 0xffff", [b""]),
        ("odd lengths: 1, 3 and 17 bytes (pad with a zero byte)",
         [b"\x01", b"\x12\x34\x56", b"socklab lesson 11"]),
        ("sums that carry out of 16 bits", [b"\xff\xff\x00\x01", b"\x80\x00" * 3,
                                            b"\xff\xfe" * 200 + b"\x00\x05",
                                            b"\xff\xff\xff\xff\x00\x01"]),
        ("all 0xff: 2, 64 and 1,501 bytes", [b"\xff" * 2, b"\xff" * 64, b"\xff" * 1501]),
        ("200 random messages of 0 to 100 bytes", randoms),
    ]


def check_internet_checksum(internet_checksum):
    """Check ``internet_checksum(data)`` on edge cases and 200 random messages."""
    report = Report("Checking internet_checksum(data):")
    for description, inputs in _checksum_cases():
        if report.add(description, _judge_checksums(internet_checksum, inputs)).final:
            return report
    return report


def _judge_checksums(internet_checksum, inputs):
    """Judge internet_checksum() on each of ``inputs``: the first wrong one is the verdict."""
    for data in inputs:
        outcome, _ = call_with_time_limit(internet_checksum, data)
        if not_written(outcome):
            return Verdict.not_written()
        verdict = _judge_checksum(outcome, data)
        if not verdict.passed:
            shown = data if len(data) <= 16 else data[:16] + b"..."
            size = "1 byte" if len(data) == 1 else f"{len(data)} bytes"
            return dataclasses.replace(verdict, hint=f"for {size} {shown!r}:\n{verdict.hint}")
    return Verdict.ok()


# ------------------------------------------------------------ echo_request

# The checksum last: a wrong field makes it wrong too, and the field is the news.
FIELDS = ("type", "code", "identifier", "sequence", "checksum")


def _field_hint(name, got, want, expected):
    """Words for one wrong field of an echo request."""
    if name == "type":
        return (f"the type is {got}; an echo request is type 8 (RFC 792).  Type 0 is the\n"
                "echo reply, which the kernel sends back.")
    if name == "code":
        return f"the code is {got}; for an echo request it is 0."
    if name in ("identifier", "sequence"):
        if got == _swap16(want):
            return (f"the {name} is 0x{got:04x}, the right value 0x{want:04x} with its bytes\n"
                    "swapped: header fields are big-endian (network order).  Use '!' in\n"
                    "the struct format, or socket.htons().")
        return f"the {name} field holds {got}, not {want}."
    # the checksum
    if got == 0:
        return ("the checksum field is 0: compute the internet checksum over the whole\n"
                "message (with the field 0), then write it in.")
    if got == _swap16(want):
        return (f"the checksum is 0x{got:04x}, the right value 0x{want:04x} with its bytes\n"
                "swapped: pack it big-endian ('!H'), like the other fields.")
    header_only = icmp.internet_checksum(expected[:2] + b"\x00\x00" + expected[4:8])
    if got == header_only and len(expected) > 8:
        return ("the checksum covers only the 8-byte header; RFC 792: it is computed over\n"
                "the whole ICMP message, the data included.")
    return (f"the checksum is 0x{got:04x}, not 0x{want:04x}.  Compute it over the message\n"
            "with the checksum field set to 0, then put it in.")


def _judge_request(outcome, args):
    """Judge echo_request(*args): the ICMP echo request for them, byte for byte."""
    identifier, sequence, payload = args
    if not outcome.finished:
        return Verdict.fail("it did not return in time.", final=True)
    if outcome.error is not None:
        return Verdict.fail(_error_text(outcome.error))
    message = outcome.value
    if isinstance(message, (bytearray, memoryview)):
        message = bytes(message)
    if not isinstance(message, bytes):
        return Verdict.fail(f"it returned {type(message).__name__}; return the message as bytes.")
    expected = icmp.echo_request(identifier, sequence, payload)
    if message == expected:
        return Verdict.ok()
    if len(message) != len(expected):
        why = ""
        if len(message) == len(expected) + 20:
            why = "\nDo not add an IP header: with IPPROTO_ICMP the kernel writes it."
        elif len(message) == 8:
            why = "\nThe payload goes after the 8-byte header."
        return Verdict.fail(
            f"it is {len(message)} bytes long, the request is {len(expected)}: 8 bytes of\n"
            f"header (type, code, checksum, identifier, sequence) and the payload.{why}")
    got, want = icmp.parse_echo(message), icmp.parse_echo(expected)
    for name in FIELDS:
        if getattr(got, name) != getattr(want, name):
            return Verdict.fail(
                _field_hint(name, getattr(got, name), getattr(want, name), expected))
    return Verdict.fail(f"the payload is {got.payload!r}, not {want.payload!r}.")


def _kernel_answers(message, identifier, sequence):
    """Send ``message`` to 127.0.0.1 on a raw socket: did an echo reply come back?"""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        raw.sendto(message, ("127.0.0.1", 0))
        deadline = time.monotonic() + REPLY_WAIT
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([raw], [], [], left)[0]:
                break
            packet = raw.recv(65535)
            try:
                kind, _, ident, seq, _ = icmp.parse_reply(packet)
            except ValueError:
                continue
            if (kind, ident, seq) == (icmp.ECHO_REPLY, identifier, sequence):
                return packet
    return None


def check_echo_request(echo_request):
    """Check ``echo_request(identifier, sequence, payload)`` field by field."""
    live = _raw_allowed()
    report = Report("Checking echo_request(identifier, sequence, payload):"
                    + ("" if live else NOT_ROOT))
    cases = [
        ("identifier 0x1111, sequence 1, payload b'socklab!'", (0x1111, 1, b"socklab!")),
        ("identifier 0, sequence 0, no payload", (0, 0, b"")),
        ("identifier 0xabcd, sequence 513, 17 bytes of payload (odd)",
         (0xABCD, 513, b"socklab lesson 11")),
        ("identifier 0x0102, sequence 65535, 56 bytes (ping's default size)",
         (0x0102, 65535, bytes(range(56)))),
    ]
    for description, args in cases:
        outcome, _ = call_with_time_limit(echo_request, *args)
        verdict = Verdict.not_written() if not_written(outcome) else _judge_request(outcome, args)
        if report.add(description, verdict).final:
            return report
    if live:
        report.add("sent to 127.0.0.1: the kernel answers it", _judge_sent(echo_request))
    return report


def _judge_sent(echo_request):
    """Judge an echo request of echo_request()'s, sent on a raw socket: the kernel answers."""
    args = (IDENTIFIER, 7, b"from the check")
    outcome, _ = call_with_time_limit(echo_request, *args)
    verdict = _judge_request(outcome, args)
    if verdict.passed and _kernel_answers(bytes(outcome.value), *args[:2]) is None:
        return Verdict.fail(f"no echo reply came from 127.0.0.1 within {REPLY_WAIT:g} s.")
    return verdict


# ------------------------------------------------------------ parse_reply


def _ipv4_packet(message, options=b"", ident=0x1234):
    """An IPv4 packet 127.0.0.1 -> 127.0.0.1 carrying ``message``, header checksum right."""
    if len(options) % 4:
        raise ValueError("IP options come in whole 32-bit words")
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(message), ident, 0,
                         64, socket.IPPROTO_ICMP, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    header += options
    checksum = icmp.internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + message


def _reply(identifier, sequence, payload):
    """An echo reply as the kernel builds it: the request with type 0."""
    request = icmp.echo_request(identifier, sequence, payload)
    unsummed = bytes([icmp.ECHO_REPLY, 0, 0, 0]) + request[4:]
    return unsummed[:2] + struct.pack("!H", icmp.internet_checksum(unsummed)) + unsummed[4:]


NOP, END = b"\x01", b"\x00"  # IP options: "no operation", "end of options list"


def _judge_parse(outcome, packet):
    """Judge parse_reply(packet): the fields of the ICMP message after the IP header."""
    if not outcome.finished:
        return Verdict.fail("it did not return in time.", final=True)
    if outcome.error is not None:
        return Verdict.fail(_error_text(outcome.error))
    value = outcome.value
    expected = icmp.parse_reply(packet)
    if not isinstance(value, (tuple, list)) or len(value) != 5:
        return Verdict.fail(
            f"it returned {value!r}; return (type, code, identifier, sequence, payload).")
    value = tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in value)
    if value == expected:
        return Verdict.ok()
    fixed_20 = icmp.parse_echo(packet[20:])
    if value == tuple(fixed_20[:2] + fixed_20[3:]) and packet[0] & 0x0F != 5:
        return Verdict.fail(
            f"this packet's IP header is {(packet[0] & 0x0F) * 4} bytes (IHL "
            f"{packet[0] & 0x0F}), not 20:\nit carries IP options.  Read the length from "
            "the header: (packet[0] & 0x0F) * 4.")
    if value == tuple(icmp.parse_echo(packet)[:2] + icmp.parse_echo(packet)[3:]):
        return Verdict.fail(
            "it read the IP header as if it were ICMP.  A raw socket hands over the IP\n"
            "header first (man 7 raw): skip it -- its length is (packet[0] & 0x0F) * 4.")
    names = ("type", "code", "identifier", "sequence", "payload")
    for name, got, want in zip(names, value, expected):
        if got != want:
            if name in ("identifier", "sequence") and got == _swap16(want):
                return Verdict.fail(
                    f"the {name} is 0x{got:04x}, the right value 0x{want:04x} with its\n"
                    "bytes swapped: header fields are big-endian ('!H').")
            return Verdict.fail(f"the {name} is {got!r}, not {want!r}.")
    return Verdict.fail(f"it returned {value!r}, not {expected!r}.")


def _real_reply():
    """A reply from the kernel on 127.0.0.1, as a raw socket reads it; None if none came."""
    return _kernel_answers(icmp.echo_request(IDENTIFIER, 11, b"a real one"), IDENTIFIER, 11)


def check_parse_reply(parse_reply):
    """Check ``parse_reply(packet)`` on packets with and without IP options."""
    live = _raw_allowed()
    report = Report("Checking parse_reply(packet):" + ("" if live else NOT_ROOT))
    cases = []
    if live:
        real = _real_reply()
        if real is None:
            report.add("a real reply from 127.0.0.1", Verdict.fail(
                f"the check got no echo reply from 127.0.0.1 within {REPLY_WAIT:g} s "
                "(is net.ipv4.icmp_echo_ignore_all 1?)"))
        else:
            cases.append(("a real echo reply from 127.0.0.1 (20-byte IP header)", real))
    cases += [
        ("an echo reply, no IP options", _ipv4_packet(_reply(0x1111, 1, b"socklab!"))),
        ("an echo request (type 8) seen coming in",
         _ipv4_packet(icmp.echo_request(0x0203, 4, b"ping"))),
        ("a reply with no payload", _ipv4_packet(_reply(0xFFFF, 0x0100, b""))),
        ("IP options: a 24-byte IP header (IHL 6)",
         _ipv4_packet(_reply(0x1111, 2, b"options!"), options=NOP * 3 + END)),
        ("IP options: the longest header, 60 bytes (IHL 15)",
         _ipv4_packet(_reply(0x0A0B, 3, b"sixty"), options=NOP * 39 + END)),
    ]
    for description, packet in cases:
        outcome, _ = call_with_time_limit(parse_reply, packet)
        verdict = Verdict.not_written() if not_written(outcome) else _judge_parse(outcome, packet)
        if report.add(description, verdict).final:
            return report
    return report
