"""Lesson 02's checks accept right answers and reject typical wrong ones, in words."""

import socket

import pytest

from socklab.checks import lesson02

ROOT = lesson02._may_make_raw_sockets()


# -- kind_of ---------------------------------------------------------------------------


def kind_of_right(sock):
    if sock.type == socket.SOCK_RAW:
        return "raw"
    if sock.family == socket.AF_UNIX:
        return "unix-stream" if sock.type == socket.SOCK_STREAM else "unix-dgram"
    return "tcp" if sock.type == socket.SOCK_STREAM else "udp"


def kind_of_type_only(sock):
    """Confuses type and protocol: every stream is TCP, every datagram UDP."""
    return {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}.get(sock.type, "raw")


def kind_of_family_only(sock):
    """Confuses family and type: every AF_UNIX socket is a stream."""
    if sock.type == socket.SOCK_RAW:
        return "raw"
    return "unix-stream" if sock.family == socket.AF_UNIX else "tcp"


def kind_of_ipv4_only(sock):
    if sock.type == socket.SOCK_RAW:
        return "raw"
    if sock.family == socket.AF_INET:
        return "tcp" if sock.type == socket.SOCK_STREAM else "udp"
    if sock.family == socket.AF_UNIX:
        return "unix-stream" if sock.type == socket.SOCK_STREAM else "unix-dgram"
    return None  # AF_INET6 falls through


def kind_of_by_proto(sock):
    """Trusts sock.proto, which is 0 unless a protocol was passed to socket()."""
    if sock.family == socket.AF_UNIX:
        return "unix-stream" if sock.type == socket.SOCK_STREAM else "unix-dgram"
    if sock.type == socket.SOCK_RAW:
        return "raw"
    return "tcp" if sock.proto == socket.IPPROTO_TCP else "udp"


def kind_of_upper(sock):
    return kind_of_right(sock).upper()


def kind_of_unix_first(sock):
    """Looks at the family first, so an AF_UNIX-like branch hides raw sockets."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        return "tcp" if sock.type == socket.SOCK_STREAM else "udp"
    return "unix-stream" if sock.type == socket.SOCK_STREAM else "unix-dgram"


def test_kind_of_accepts_a_right_answer():
    report = lesson02.check_kind_of(kind_of_right)
    assert report.ok, report
    assert len(report.results) == (10 if ROOT else 8)


def test_kind_of_rejects_type_only_with_a_family_hint():
    report = lesson02.check_kind_of(kind_of_type_only)
    assert not report.ok
    text = repr(report)
    assert "but sock.family is AF_UNIX" in text
    assert "look at sock.family as well" in text


def test_kind_of_rejects_family_only_with_a_type_hint():
    report = lesson02.check_kind_of(kind_of_family_only)
    assert not report.ok
    text = repr(report)
    assert "but sock.type is SOCK_DGRAM" in text
    assert "FAIL  socket(AF_INET, SOCK_DGRAM) is 'udp'" in text


def test_kind_of_points_at_ipv6():
    report = lesson02.check_kind_of(kind_of_ipv4_only)
    assert not report.ok
    text = repr(report)
    assert "FAIL  socket(AF_INET6, SOCK_STREAM) is 'tcp'" in text
    assert "AF_INET6 is IPv6" in text
    assert "is it written yet" not in text  # it is written; IPv6 is what is missing


def test_kind_of_explains_that_proto_is_usually_zero():
    report = lesson02.check_kind_of(kind_of_by_proto)
    assert not report.ok
    assert "sock.proto is no help" in repr(report)


def test_kind_of_wants_lower_case():
    report = lesson02.check_kind_of(kind_of_upper)
    assert not report.ok
    assert "lower-case words" in repr(report)


@pytest.mark.skipif(not ROOT, reason="raw sockets need root or CAP_NET_RAW")
def test_kind_of_checks_raw_sockets_as_root():
    report = lesson02.check_kind_of(kind_of_unix_first)
    assert not report.ok
    assert "sock.type is SOCK_RAW" in repr(report)


def test_kind_of_says_not_written_yet():
    def kind_of(sock):
        ...

    report = lesson02.check_kind_of(kind_of)
    assert "is it written yet?" in repr(report)
    assert len(report.results) == 1


def test_kind_of_reports_an_exception():
    def kind_of(sock):
        return sock.kind

    assert "AttributeError" in repr(lesson02.check_kind_of(kind_of))


# -- datagram_reads ---------------------------------------------------------------------


def datagram_reads_right(messages):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        for message in messages:
            a.send(message)
        return [b.recv(1024) for _ in messages]


def datagram_reads_on_a_stream(messages):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        for message in messages:
            a.send(message)
        a.close()
        reads = []
        while data := b.recv(1024):
            reads.append(data)
        return reads


def datagram_reads_until_empty(messages):
    """Stops at b'' as on a stream; the time limit keeps the test short."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.settimeout(lesson02.TIME_LIMIT + 1)  # the check gives up first
        for message in messages:
            a.send(message)
        a.close()
        reads = []
        while data := b.recv(1024):
            reads.append(data)
        return reads


def datagram_reads_small_buffer(messages):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        for message in messages:
            a.send(message)
        return [b.recv(4) for _ in messages]


def test_datagram_reads_accepts_a_right_answer():
    report = lesson02.check_datagram_reads(datagram_reads_right)
    assert report.ok, report
    assert len(report.results) == 3


def test_datagram_reads_spots_a_stream():
    report = lesson02.check_datagram_reads(datagram_reads_on_a_stream)
    assert not report.ok
    assert "Did you make the pair with socket.SOCK_DGRAM?" in repr(report)


def test_datagram_reads_explains_the_hang_of_reading_until_empty():
    report = lesson02.check_datagram_reads(datagram_reads_until_empty)
    assert not report.ok
    assert "no end of stream" in repr(report)


def test_datagram_reads_explains_truncation():
    report = lesson02.check_datagram_reads(datagram_reads_small_buffer)
    assert not report.ok
    assert "cut short" in repr(report)


def test_datagram_reads_explains_an_empty_datagram():
    def reads(messages):
        got = datagram_reads_right(messages)
        return got[: got.index(b"")] if b"" in got else got

    report = lesson02.check_datagram_reads(reads)
    assert not report.ok
    assert "it stopped at the empty message" in repr(report)


def test_datagram_reads_wants_bytes_in_a_list():
    def as_text(messages):
        return [m.decode() for m in datagram_reads_right(messages)]

    def joined(messages):
        return b"".join(datagram_reads_right(messages))

    assert "recv() returns bytes" in repr(lesson02.check_datagram_reads(as_text))
    assert "Return a list" in repr(lesson02.check_datagram_reads(joined))


def test_datagram_reads_says_not_written_yet():
    def datagram_reads(messages):
        ...

    assert "is it written yet?" in repr(lesson02.check_datagram_reads(datagram_reads))


# -- stream_reads -----------------------------------------------------------------------


def stream_reads_right(messages):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        for message in messages:
            a.sendall(message)
        a.close()
        reads = []
        while data := b.recv(1024):
            reads.append(data)
        return reads


def stream_reads_exact_sizes(messages):
    """Asks recv() for exactly len(message) bytes: the boundaries look kept."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        for message in messages:
            a.sendall(message)
        return [b.recv(len(message)) for message in messages if message]


def stream_reads_without_close(messages):
    """Never closes the sender, so recv() never returns b''."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        b.settimeout(lesson02.TIME_LIMIT + 1)
        for message in messages:
            a.sendall(message)
        reads = []
        while data := b.recv(1024):
            reads.append(data)
        return reads


def stream_reads_once(messages):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        for message in messages:
            a.sendall(message)
        return [b.recv(1024)]


def test_stream_reads_accepts_a_right_answer():
    report = lesson02.check_stream_reads(stream_reads_right)
    assert report.ok, report
    assert len(report.results) == 3


def test_stream_reads_rejects_one_read_per_message():
    report = lesson02.check_stream_reads(stream_reads_exact_sizes)
    assert not report.ok
    assert "one read per message" in repr(report)


def test_stream_reads_rejects_datagrams():
    report = lesson02.check_stream_reads(datagram_reads_right)
    assert not report.ok
    assert "or use SOCK_DGRAM?" in repr(report)


def test_stream_reads_explains_the_hang_without_close():
    report = lesson02.check_stream_reads(stream_reads_without_close)
    assert not report.ok
    assert "close the sending socket" in repr(report)


def test_stream_reads_explains_a_single_recv():
    report = lesson02.check_stream_reads(stream_reads_once)
    assert not report.ok
    assert "keep calling it until it" in repr(report)


def test_stream_reads_wants_the_final_empty_read_left_out():
    def with_eof(messages):
        return stream_reads_right(messages) + [b""]

    report = lesson02.check_stream_reads(with_eof)
    assert not report.ok
    assert "Leave out that last read" in repr(report)


def test_stream_reads_says_not_written_yet():
    def stream_reads(messages):
        ...

    assert "is it written yet?" in repr(lesson02.check_stream_reads(stream_reads))


def test_checks_are_reachable_from_the_package():
    import socklab

    assert socklab.checks.lesson02.check_kind_of is lesson02.check_kind_of


def test_checks_leave_no_sockets_or_threads_behind(no_leaks):
    assert lesson02.check_kind_of(kind_of_right).ok
    assert lesson02.check_datagram_reads(datagram_reads_right).ok
    assert lesson02.check_stream_reads(stream_reads_right).ok
