"""Lesson 01's checks accept right answers and reject typical wrong ones, in words."""

import socket
import struct

import pytest

from socklab.checks import lesson01

# -- port_bytes -----------------------------------------------------------------


def port_bytes_right(port):
    return struct.pack("!H", port)


def port_bytes_to_bytes(port):
    return port.to_bytes(2, "big")


def port_bytes_little_endian(port):
    return struct.pack("<H", port)


def port_bytes_native(port):
    """Host byte order: right on a big-endian machine, wrong on x86 and ARM."""
    return struct.pack("=H", port)


def port_bytes_str(port):
    return f"{port:04x}"


def port_bytes_htons(port):
    return socket.htons(port)


def port_bytes_wraps(port):
    """What a C cast to uint16_t does: 65536 becomes port 0."""
    return struct.pack("!H", port & 0xFFFF)


def port_bytes_four(port):
    return struct.pack("!I", port)


def port_bytes_stub(port):
    ...  # your code here


@pytest.mark.parametrize("answer", [port_bytes_right, port_bytes_to_bytes])
def test_port_bytes_accepts_right_answers(answer, no_leaks):
    report = lesson01.check_port_bytes(answer)
    assert report.ok, report
    assert repr(report).endswith("All 9 checks passed.")


def test_port_bytes_explains_little_endian():
    text = repr(lesson01.check_port_bytes(port_bytes_little_endian))
    assert "FAIL  port 1 -> b'\\x00\\x01'" in text
    assert "little-endian" in text and "struct.pack('!H'" in text
    assert "PASS  port 0 ->" in text and "PASS  port 65535 ->" in text  # symmetric ones pass
    assert text.count("little-endian") == 1  # explained once, not six times
    assert "the low byte came first.  (see above)" in text


@pytest.mark.skipif(struct.pack("=H", 1) == b"\x00\x01", reason="a big-endian machine")
def test_port_bytes_rejects_host_order():
    assert not lesson01.check_port_bytes(port_bytes_native).ok


def test_port_bytes_rejects_str():
    text = repr(lesson01.check_port_bytes(port_bytes_str))
    assert "it returned a str" in text and "bytes" in text


def test_port_bytes_rejects_a_number_from_htons():
    text = repr(lesson01.check_port_bytes(port_bytes_htons))
    assert "it returned the number 34835, not bytes" in text


def test_port_bytes_rejects_wrapping_around():
    report = lesson01.check_port_bytes(port_bytes_wraps)
    assert not report.ok
    assert "port_bytes(65536) returned b'\\x00\\x00' instead of raising" in repr(report)


def test_port_bytes_rejects_the_wrong_length():
    assert "exactly 2 bytes" in repr(lesson01.check_port_bytes(port_bytes_four))


def test_port_bytes_says_not_written_yet():
    report = lesson01.check_port_bytes(port_bytes_stub)
    assert repr(report) == (
        "Checking port_bytes(port):\n"
        "  FAIL  port 0 -> b'\\x00\\x00'\n"
        "        is it written yet?  Replace the `...` with your code.\n"
        "1 of 1 checks failed."
    )


# -- five_tuple -----------------------------------------------------------------

PROTOCOLS = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}


def five_tuple_right(sock):
    local, remote = sock.getsockname()[:2], sock.getpeername()[:2]
    return (PROTOCOLS[sock.type], *local, *remote)


def five_tuple_always_tcp(sock):
    return ("tcp", *sock.getsockname()[:2], *sock.getpeername()[:2])


def five_tuple_swapped(sock):
    return (PROTOCOLS[sock.type], *sock.getpeername()[:2], *sock.getsockname()[:2])


def five_tuple_nested(sock):
    return (PROTOCOLS[sock.type], sock.getsockname(), sock.getpeername())


def five_tuple_ipv6_untrimmed(sock):
    return (PROTOCOLS[sock.type], *sock.getsockname(), *sock.getpeername())


def five_tuple_number(sock):
    return (sock.type, *sock.getsockname()[:2], *sock.getpeername()[:2])


def five_tuple_str_ports(sock):
    (lip, lport), (rip, rport) = sock.getsockname()[:2], sock.getpeername()[:2]
    return (PROTOCOLS[sock.type], lip, str(lport), rip, str(rport))


def five_tuple_stub(sock):
    ...  # your code here


def test_five_tuple_accepts_a_right_answer(no_leaks):
    report = lesson01.check_five_tuple(five_tuple_right)
    assert report.ok, report
    assert "the server's socket for that client" in repr(report)
    assert "a connected UDP socket" in repr(report)


def test_five_tuple_explains_udp():
    report = lesson01.check_five_tuple(five_tuple_always_tcp)
    assert not report.ok
    assert "this socket is UDP (sock.type is SOCK_DGRAM)" in repr(report)


def test_five_tuple_explains_swapped_ends():
    text = repr(lesson01.check_five_tuple(five_tuple_swapped))
    assert "local and remote are swapped." in text
    assert text.count("getsockname() gives") == 1  # explained once


def test_five_tuple_explains_nested_tuples():
    assert "Unpack the address tuples" in repr(lesson01.check_five_tuple(five_tuple_nested))


def test_five_tuple_explains_ipv6_addresses():
    text = repr(lesson01.check_five_tuple(five_tuple_ipv6_untrimmed))
    assert "PASS  a TCP client's socket (IPv4" in text
    assert "(host, port, flowinfo, scope_id)" in text


def test_five_tuple_without_ipv6_on_loopback(monkeypatch, no_leaks):
    """No ::1 here: the AF_INET6 case uses an IPv4-mapped address instead."""
    monkeypatch.setattr(lesson01, "_loopback6_available", lambda: False)
    assert lesson01.check_five_tuple(five_tuple_right).ok
    text = repr(lesson01.check_five_tuple(five_tuple_ipv6_untrimmed))
    assert "FAIL  a TCP client's socket (AF_INET6)" in text


def test_five_tuple_wants_the_protocol_as_text():
    assert "Write the protocol as text" in repr(lesson01.check_five_tuple(five_tuple_number))


def test_five_tuple_wants_int_ports():
    assert "the ports should be ints" in repr(lesson01.check_five_tuple(five_tuple_str_ports))


def test_five_tuple_says_not_written_yet():
    report = lesson01.check_five_tuple(five_tuple_stub)
    assert repr(report) == (
        "Checking five_tuple(sock):\n"
        "  FAIL  a TCP client's socket (IPv4, from 127.0.0.2)\n"
        "        is it written yet?  Replace the `...` with your code.\n"
        "1 of 1 checks failed."
    )


# -- parse_sockaddr_in ----------------------------------------------------------


def parse_right(blob):
    (port,) = struct.unpack("!H", blob[2:4])
    return socket.inet_ntop(socket.AF_INET, blob[4:8]), port


def parse_with_ntohs(blob):
    (raw_port,) = struct.unpack("=H", blob[2:4])
    return socket.inet_ntoa(blob[4:8]), socket.ntohs(raw_port)


def parse_little_endian_port(blob):
    return socket.inet_ntop(socket.AF_INET, blob[4:8]), int.from_bytes(blob[2:4], "little")


def parse_family_as_port(blob):
    return socket.inet_ntop(socket.AF_INET, blob[4:8]), int.from_bytes(blob[0:2], "big")


def parse_reversed_address(blob):
    (port,) = struct.unpack("!H", blob[2:4])
    return socket.inet_ntop(socket.AF_INET, blob[4:8][::-1]), port


def parse_address_bytes(blob):
    (port,) = struct.unpack("!H", blob[2:4])
    return blob[4:8], port


def parse_stub(blob):
    ...  # your code here


@pytest.mark.parametrize("answer", [parse_right, parse_with_ntohs])
def test_parse_accepts_right_answers(answer, no_leaks):
    report = lesson01.check_parse_sockaddr_in(answer)
    assert report.ok, report


def test_parse_explains_the_port_byte_order():
    text = repr(lesson01.check_parse_sockaddr_in(parse_little_endian_port))
    assert "network byte order (big-endian)" in text
    assert "PASS  127.0.0.1 port 65535" in text


def test_parse_explains_the_family_field():
    text = repr(lesson01.check_parse_sockaddr_in(parse_family_as_port))
    assert "that is sin_family (AF_INET = 2)" in text


def test_parse_explains_a_reversed_address():
    text = repr(lesson01.check_parse_sockaddr_in(parse_reversed_address))
    assert "the address came out reversed, '1.0.0.127'" in text


def test_parse_wants_the_address_as_text():
    text = repr(lesson01.check_parse_sockaddr_in(parse_address_bytes))
    assert "Return it as text" in text


def test_parse_says_not_written_yet():
    assert "is it written yet?" in repr(lesson01.check_parse_sockaddr_in(parse_stub))


# -- raw_sockname ---------------------------------------------------------------


def test_raw_sockname_gives_the_kernels_bytes(no_leaks):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        blob = lesson01.raw_sockname(listener)
    assert len(blob) == 16
    assert blob[2:4] == struct.pack("!H", port)
    assert blob[4:8] == bytes([127, 0, 0, 1])
    assert blob[8:] == bytes(8)


def test_raw_peername_raises_enotconn(no_leaks):
    with socket.socket() as sock, pytest.raises(OSError) as info:
        lesson01.raw_peername(sock)
    assert info.value.errno == 107  # ENOTCONN
