"""Lesson 11's checks accept right answers and reject the usual wrong ones, in words.

The byte-level cases need no privileges.  As root (CI), the checks also send the
learner's request to 127.0.0.1 and hand the parser a real reply from the kernel:
those tests say which they expect.
"""

import os
import struct
import time

from socklab import icmp
from socklab.checks import lesson11
from socklab.checks.report import TIME_LIMIT

ROOT = os.geteuid() == 0


def hints(report):
    return "\n".join(hint for _, hint in report.failures)


def failed(report):
    return [description for description, _ in report.failures]


# ---------------------------------------------------------------- internet_checksum


def words(data):
    data = bytes(data) + b"\x00" * (len(data) % 2)
    return struct.unpack(f"!{len(data) // 2}H", data)


def checksum_right(data):
    total = sum(words(data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def checksum_by_bytes(data):
    """Right too: a different way to read the words, and bytearray input is fine."""
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | (data[i + 1] if i + 1 < len(data) else 0)
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def checksum_stub(data):
    ...


def checksum_forever(data):
    """Wrong: still running when the check's time limit is over (then it ends)."""
    time.sleep(TIME_LIMIT + 1)


def checksum_no_padding(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))  # struct.error when odd
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def checksum_pad_in_front(data):
    if len(data) % 2:
        data = b"\x00" + data
    return checksum_right(data)


def checksum_drops_carries(data):
    return ~sum(words(data)) & 0xFFFF


def checksum_folds_once(data):
    total = sum(words(data))
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF


def checksum_not_complemented(data):
    return ~checksum_right(data) & 0xFFFF


def checksum_unmasked(data):
    total = sum(words(data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total  # negative in Python


def checksum_little_endian(data):
    data = bytes(data) + b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f"<{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_checksum_right_answers_pass():
    for answer in (checksum_right, checksum_by_bytes, icmp.internet_checksum):
        report = lesson11.check_internet_checksum(answer)
        assert report.ok, repr(report)
        assert len(report.results) == 7


def test_checksum_stub_is_not_written_yet():
    report = lesson11.check_internet_checksum(checksum_stub)
    assert len(report.results) == 1 and not report.ok
    assert "is it written yet?" in hints(report)


def test_checksum_that_never_returns_is_a_hang_not_a_stub():
    report = lesson11.check_internet_checksum(checksum_forever)
    assert len(report.results) == 1 and not report.ok  # every case would hang again
    assert "did not return in time" in hints(report)
    assert "written yet" not in hints(report)


def test_checksum_without_padding_is_told_to_pad():
    report = lesson11.check_internet_checksum(checksum_no_padding)
    assert "odd lengths: 1, 3 and 17 bytes (pad with a zero byte)" in failed(report)
    assert "pad the\nmessage with one zero byte at the end" in hints(report)
    assert "for 1 byte b'\\x01':\nit raised struct.error: " in hints(report)
    assert report.results[0][1].passed  # even lengths pass


def test_checksum_padded_in_front():
    report = lesson11.check_internet_checksum(checksum_pad_in_front)
    assert "*after* it" in hints(report)


def test_checksum_that_drops_carries():
    report = lesson11.check_internet_checksum(checksum_drops_carries)
    assert "The carries were dropped" in hints(report)
    assert "sums that carry out of 16 bits" in failed(report)


def test_checksum_that_folds_once():
    report = lesson11.check_internet_checksum(checksum_folds_once)
    assert "sums that carry out of 16 bits" in failed(report)
    assert "One fold is not always enough" in hints(report)


def test_checksum_not_complemented():
    report = lesson11.check_internet_checksum(checksum_not_complemented)
    assert "one's complement,\n~sum & 0xFFFF" in hints(report)


def test_checksum_unmasked_is_told_to_mask():
    report = lesson11.check_internet_checksum(checksum_unmasked)
    assert "not a 16-bit number" in hints(report) and "~total & 0xFFFF" in hints(report)


def test_checksum_little_endian_is_told_about_byte_order():
    report = lesson11.check_internet_checksum(checksum_little_endian)
    assert "with its bytes\nswapped" in hints(report) and "'!H'" in hints(report)


def test_checksum_returning_bytes():
    report = lesson11.check_internet_checksum(lambda data: struct.pack("!H", checksum_right(data)))
    assert "return the checksum as an int" in hints(report)


# ---------------------------------------------------------------- echo_request


def request_right(identifier, sequence, payload):
    header = struct.pack("!BBHHH", 8, 0, 0, identifier, sequence)
    checksum = icmp.internet_checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, checksum, identifier, sequence) + payload


def request_stub(identifier, sequence, payload):
    ...


def request_type_0(identifier, sequence, payload):
    header = struct.pack("!BBHHH", 0, 0, 0, identifier, sequence)
    checksum = icmp.internet_checksum(header + payload)
    return struct.pack("!BBHHH", 0, 0, checksum, identifier, sequence) + payload


def request_native_order(identifier, sequence, payload):
    body = struct.pack("<HH", identifier, sequence) + payload  # little-endian
    checksum = icmp.internet_checksum(b"\x08\x00\x00\x00" + body)
    return struct.pack("!BBH", 8, 0, checksum) + body


def request_no_checksum(identifier, sequence, payload):
    return struct.pack("!BBHHH", 8, 0, 0, identifier, sequence) + payload


def request_header_only_checksum(identifier, sequence, payload):
    header = struct.pack("!BBHHH", 8, 0, 0, identifier, sequence)
    checksum = icmp.internet_checksum(header)
    return struct.pack("!BBHHH", 8, 0, checksum, identifier, sequence) + payload


def request_checksum_swapped(identifier, sequence, payload):
    right = request_right(identifier, sequence, payload)
    return right[:2] + right[3:4] + right[2:3] + right[4:]


def request_with_ip_header(identifier, sequence, payload):
    return bytes(20) + request_right(identifier, sequence, payload)


def test_request_right_answer_passes():
    report = lesson11.check_echo_request(request_right)
    assert report.ok, repr(report)
    assert len(report.results) == (5 if ROOT else 4)
    if ROOT:
        assert report.results[-1][0] == "sent to 127.0.0.1: the kernel answers it"
    else:
        assert "nothing was sent" in report.title


def test_request_stub_is_not_written_yet():
    report = lesson11.check_echo_request(request_stub)
    assert len(report.results) == 1 and "is it written yet?" in hints(report)


def test_request_wrong_type():
    report = lesson11.check_echo_request(request_type_0)
    assert "an echo request is type 8" in hints(report)
    assert not report.results[-1][1].passed


def test_request_in_native_byte_order():
    report = lesson11.check_echo_request(request_native_order)
    assert "identifier is 0x1111" not in hints(report)  # 0x1111 reads the same both ways
    assert "sequence is 0x0100, the right value 0x0001 with its bytes\nswapped" in hints(report)
    assert "Use '!' in\nthe struct format" in hints(report)


def test_request_without_checksum():
    report = lesson11.check_echo_request(request_no_checksum)
    assert "the checksum field is 0" in hints(report)


def test_request_checksum_over_the_header_only():
    report = lesson11.check_echo_request(request_header_only_checksum)
    assert "the checksum covers only the 8-byte header" in hints(report)


def test_request_checksum_byte_swapped():
    report = lesson11.check_echo_request(request_checksum_swapped)
    assert "pack it big-endian ('!H')" in hints(report)


def test_request_with_an_ip_header():
    report = lesson11.check_echo_request(request_with_ip_header)
    assert "Do not add an IP header" in hints(report)


def test_kernel_answers_only_a_right_checksum():
    if not ROOT:
        return  # the check itself sends nothing without root (see the test above)
    right = request_right(lesson11.IDENTIFIER, 21, b"right")
    assert lesson11._kernel_answers(right, lesson11.IDENTIFIER, 21) is not None
    wrong = request_checksum_swapped(lesson11.IDENTIFIER, 22, b"wrong!")
    assert lesson11._kernel_answers(wrong, lesson11.IDENTIFIER, 22) is None


# ---------------------------------------------------------------- parse_reply


def parse_right(packet):
    start = (packet[0] & 0x0F) * 4
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", packet, start)
    return kind, code, ident, seq, packet[start + 8:]


def parse_as_list(packet):
    return list(parse_right(bytearray(packet)))


def parse_stub(packet):
    ...


def parse_fixed_20(packet):
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", packet, 20)
    return kind, code, ident, seq, packet[28:]


def parse_without_skipping(packet):
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", packet)
    return kind, code, ident, seq, packet[8:]


def parse_little_endian(packet):
    start = (packet[0] & 0x0F) * 4
    kind, code, _, ident, seq = struct.unpack_from("<BBHHH", packet, start)
    return kind, code, ident, seq, packet[start + 8:]


def test_parse_right_answers_pass():
    for answer in (parse_right, parse_as_list, icmp.parse_reply):
        report = lesson11.check_parse_reply(answer)
        assert report.ok, repr(report)
        assert len(report.results) == (6 if ROOT else 5)
    if ROOT:
        assert report.results[0][0].startswith("a real echo reply from 127.0.0.1")


def test_parse_stub_is_not_written_yet():
    report = lesson11.check_parse_reply(parse_stub)
    assert len(report.results) == 1 and "is it written yet?" in hints(report)


def test_parse_with_a_fixed_20_bytes_is_told_about_ihl():
    report = lesson11.check_parse_reply(parse_fixed_20)
    assert failed(report) == ["IP options: a 24-byte IP header (IHL 6)",
                              "IP options: the longest header, 60 bytes (IHL 15)"]
    assert "IP header is 24 bytes (IHL 6), not 20" in hints(report)
    assert "(packet[0] & 0x0F) * 4" in hints(report)


def test_parse_without_skipping_the_ip_header():
    report = lesson11.check_parse_reply(parse_without_skipping)
    assert not report.ok
    assert "A raw socket hands over the IP\nheader first" in hints(report)


def test_parse_little_endian():
    report = lesson11.check_parse_reply(parse_little_endian)
    assert "bytes swapped: header fields are big-endian" in hints(report)


def test_parse_returning_a_dict():
    report = lesson11.check_parse_reply(lambda packet: {"type": 0})
    assert "return (type, code, identifier, sequence, payload)" in hints(report)
