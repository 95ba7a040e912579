"""Lesson 09's checks accept right answers and reject the classic wrong ones, in words.

Every check runs on real sockets on loopback, so these tests do too.
"""

import codecs
import socket
import struct
import time

from socklab import explore
from socklab.checks import lesson09

# ---------------------------------------------------------------- read_message


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise EOFError(f"the peer closed after {len(data)} of {n} bytes")
        data += piece
    return bytes(data)


def refuse_too_long(length):
    if length > lesson09.MAX_FRAME:
        raise ValueError(f"a frame of {length:,} bytes announced: too long")


def read_length(sock):
    """The length in the next header; None at a clean end."""
    header = bytearray()
    while len(header) < 4:
        piece = sock.recv(4 - len(header))
        if not piece:
            if not header:
                return None
            raise EOFError("the peer closed inside a header")
        header += piece
    (length,) = struct.unpack("!I", header)
    return length


def read_message_right(sock):
    length = read_length(sock)
    if length is None:
        return None
    refuse_too_long(length)
    return recv_exact(sock, length)


def read_message_waitall(sock):
    """Right too: MSG_WAITALL, checking what it returns."""
    header = sock.recv(4, socket.MSG_WAITALL)
    if not header:
        return None
    if len(header) < 4:
        raise ConnectionError("truncated header")
    (length,) = struct.unpack("!I", header)
    refuse_too_long(length)
    body = sock.recv(length, socket.MSG_WAITALL) if length else b""
    if len(body) < length:
        raise ConnectionError("truncated message")
    return body


def read_message_stub(sock):
    ...


def read_message_one_recv(sock):
    """The classic: one recv() for the header, one for the message."""
    header = sock.recv(4)
    if not header:
        return None
    (length,) = struct.unpack("!I", header)
    return sock.recv(length) if length else b""


def read_message_one_recv_body(sock):
    """Header read right, message with one recv()."""
    header = sock.recv(4, socket.MSG_WAITALL)
    if not header:
        return None
    (length,) = struct.unpack("!I", header)
    return sock.recv(length) if length else b""


def read_message_little_endian(sock):
    header = sock.recv(4, socket.MSG_WAITALL)
    if not header:
        return None
    (length,) = struct.unpack("<I", header)  # forgets network byte order
    return recv_exact(sock, length)


def read_message_ignores_eof(sock):
    """Loops on b'' forever when the peer closes inside a frame."""
    header = b""
    while len(header) < 4:
        header += sock.recv(4 - len(header))
        if not header:
            return None
    (length,) = struct.unpack("!I", header)
    refuse_too_long(length)
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return body


def read_message_returns_part(sock):
    """Returns what it has when the peer closes inside a message."""
    header = sock.recv(4, socket.MSG_WAITALL)
    if not header:
        return None
    (length,) = struct.unpack("!I", header)
    body = b""
    while len(body) < length:
        piece = sock.recv(length - len(body))
        if not piece:
            break
        body += piece
    return body


def read_message_over_reads(sock):
    """Reads a big block and keeps only its frame: the next frame's start is lost."""
    data = sock.recv(65536)
    if not data:
        return None
    (length,) = struct.unpack("!I", data[:4])
    while len(data) < 4 + length:
        data += sock.recv(65536)
    return data[4:4 + length]


def read_message_makefile_each_call(sock):
    """A buffered file made anew in each call: what it read ahead is lost."""
    with sock.makefile("rb") as stream:
        header = stream.read(4)
        if not header:
            return None
        (length,) = struct.unpack("!I", header)
        return stream.read(length)


def read_message_without_max_frame(sock):
    """Right for honest peers: it believes any length a header announces."""
    length = read_length(sock)
    return None if length is None else recv_exact(sock, length)


def read_message_in_chunks_without_max_frame(sock):
    """Believes any length too, but asks recv() for 64 KiB at most: it waits."""
    length = read_length(sock)
    if length is None:
        return None
    body = bytearray()
    while len(body) < length:
        piece = sock.recv(min(65536, length - len(body)))
        if not piece:
            raise EOFError("the peer closed inside a message")
        body += piece
    return bytes(body)


def read_message_refuses_max_frame_itself(sock):
    """>= instead of >: a frame of exactly MAX_FRAME bytes is refused."""
    length = read_length(sock)
    if length is None:
        return None
    if length >= lesson09.MAX_FRAME:
        raise ValueError("too long")
    return recv_exact(sock, length)


def read_message_refuses_after_reading(sock):
    """Refuses a long frame, but only once it has read it."""
    length = read_length(sock)
    if length is None:
        return None
    message = recv_exact(sock, min(length, lesson09.MAX_FRAME + 1))
    refuse_too_long(length)
    return message


def read_message_eof_for_too_long(sock):
    """Refuses in time, but with the error of a broken frame."""
    length = read_length(sock)
    if length is None:
        return None
    if length > lesson09.MAX_FRAME:
        raise EOFError("too long")
    return recv_exact(sock, length)


def read_message_empty_at_end(sock):
    message = read_message_right(sock)
    return b"" if message is None else message


def read_message_str(sock):
    message = read_message_right(sock)
    return None if message is None else message.decode("utf-8", "replace")


def test_read_message_right_answers_pass_and_say_how_many_splits_were_tried():
    streams, pieces, frames = lesson09.plan_size()
    assert streams > 4096 and pieces > 9000 and frames > 20000
    for answer in (read_message_right, read_message_waitall):
        report = lesson09.check_read_message(answer)
        assert report.ok, repr(report)
        assert len(report.results) == 9
        assert f"{frames:,} frames in {pieces:,} pieces" in repr(report)
        assert "every chunk size from 1 to 4,096" in repr(report)


def test_read_message_stub_is_not_written_yet():
    report = lesson09.check_read_message(read_message_stub)
    assert not report.ok
    assert len(report.results) == 1
    assert "is it written yet?" in repr(report)


def test_one_recv_per_part_is_caught_with_the_right_hint():
    for answer in (read_message_one_recv, read_message_one_recv_body):
        report = lesson09.check_read_message(answer)
        assert not report.ok
        text = " ".join(repr(report).split())
        assert "every chunk size" in text
        assert ("not a whole message" in text
                or "the header, too, can arrive in pieces" in text), text


def test_the_wrong_byte_order_is_named():
    report = lesson09.check_read_message(read_message_little_endian)
    [(description, hint)] = report.failures  # it says it all: the check stops
    assert description == "one frame, b'hello', sent in one piece"
    assert "83,886,080" in hint and "network byte order" in hint


def test_ignoring_eof_inside_a_frame_is_caught():
    report = lesson09.check_read_message(read_message_ignores_eof)
    bad = dict(report.failures)
    assert set(bad) == {"the peer closes inside a header: an exception",
                        "the peer closes inside a message: an exception"}
    for hint in bad.values():
        assert "b'' means the peer has closed" in hint


def test_returning_part_of_a_frame_is_caught():
    report = lesson09.check_read_message(read_message_returns_part)
    bad = dict(report.failures)
    hint = bad["the peer closes inside a message: an exception"]
    assert "b'abc'" in hint and "raise EOFError" in hint


def test_reading_past_the_frame_is_caught():
    report = lesson09.check_read_message(read_message_over_reads)
    bad = dict(report.failures)
    hint = bad["two frames sent with one sendall(): two calls, two messages"]
    assert "the first call read 35 bytes, but its frame has only 17" in hint


def test_a_buffered_file_per_call_is_named():
    report = lesson09.check_read_message(read_message_makefile_each_call)
    bad = dict(report.failures)
    hint = bad["two frames sent with one sendall(): two calls, two messages"]
    assert "sock.makefile()" in hint and "reads ahead" in hint


ONE_TOO_LONG = "a frame of 65,537 bytes, one more than MAX_FRAME: ValueError"
FOUR_GB = "a header announcing 4,294,967,295 bytes: ValueError at once"


def failures_in_one_line(report):
    """{description: hint}, each hint with its line breaks as spaces."""
    return {description: " ".join(hint.split()) for description, hint in report.failures}


def test_a_reader_without_max_frame_is_named_and_never_allocates_4_gb():
    """Review 07-12 #21: the C check refused these lengths, the Python one did not."""
    report = lesson09.check_read_message(read_message_without_max_frame)
    bad = failures_in_one_line(report)
    assert set(bad) == {ONE_TOO_LONG, FOUR_GB}, repr(report)
    assert "it returned a message of 65,537 bytes: more than MAX_FRAME (65,536)" in (
        bad[ONE_TOO_LONG])
    assert "it asked recv() for 4,294,967,295 bytes" in bad[FOUR_GB]
    assert "the check stopped it there" in bad[FOUR_GB]  # the real recv() never ran
    for hint in bad.values():
        assert "raise ValueError before you read the message" in hint


def test_a_chunked_reader_without_max_frame_is_told_it_waits():
    report = lesson09.check_read_message(read_message_in_chunks_without_max_frame)
    bad = failures_in_one_line(report)
    assert set(bad) == {ONE_TOO_LONG, FOUR_GB}, repr(report)
    assert "waiting for the 4,294,967,295 bytes the header announced" in bad[FOUR_GB]


def test_the_limit_itself_is_allowed():
    report = lesson09.check_read_message(read_message_refuses_max_frame_itself)
    bad = failures_in_one_line(report)
    assert set(bad) == {"a frame of 65,536 bytes, MAX_FRAME: the message"}, repr(report)
    assert "refuse only longer ones" in bad.popitem()[1]


def test_refusing_after_reading_the_message_is_caught():
    report = lesson09.check_read_message(read_message_refuses_after_reading)
    bad = failures_in_one_line(report)
    assert set(bad) == {ONE_TOO_LONG, FOUR_GB}, repr(report)
    assert "only after reading 65,541 bytes" in bad[ONE_TOO_LONG]
    assert "waiting for the 4,294,967,295 bytes" in bad[FOUR_GB]


def test_a_frame_too_long_asks_for_value_error():
    report = lesson09.check_read_message(read_message_eof_for_too_long)
    bad = failures_in_one_line(report)
    assert set(bad) == {ONE_TOO_LONG, FOUR_GB}, repr(report)
    for hint in bad.values():
        assert "it raised EOFError: too long" in hint
        assert "calls for the ValueError the exercise asks for" in hint


def test_b_empty_at_a_clean_end_is_caught():
    report = lesson09.check_read_message(read_message_empty_at_end)
    bad = dict(report.failures)
    assert "b'' is a message too" in bad["the peer closes after a frame: then None"]


def test_a_str_says_it_all():
    report = lesson09.check_read_message(read_message_str)
    assert len(report.results) == 1
    assert "return the message as bytes" in repr(report)


# ------------------------------------------------------------------ read_lines


def read_lines_right(sock):
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    while True:
        data = sock.recv(4096)
        pending += decoder.decode(data, final=not data)
        *complete, pending = pending.split("\n")
        yield from complete
        if not data:
            break
    if pending:
        yield pending


def read_lines_bytes_first(sock):
    """Right too: split bytes at b'\\n' (never inside a character), decode lines."""
    pending = b""
    while data := sock.recv(4096):
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode("utf-8")
    if pending:
        yield pending.decode("utf-8")


def read_lines_makefile(sock):
    """Right too: a text file over the socket does all of it."""
    with sock.makefile("r", encoding="utf-8", newline="\n") as lines:
        for line in lines:
            yield line.removesuffix("\n")


def read_lines_stub(sock):
    ...


def read_lines_per_chunk(sock):
    """The classic: decode every recv() piece on its own."""
    pending = ""
    while data := sock.recv(4096):
        pending += data.decode("utf-8")
        *complete, pending = pending.split("\n")
        yield from complete
    if pending:
        yield pending


def read_lines_replace(sock):
    pending = ""
    while data := sock.recv(4096):
        pending += data.decode("utf-8", errors="replace")
        *complete, pending = pending.split("\n")
        yield from complete
    if pending:
        yield pending


def read_lines_one_recv_one_line(sock):
    """Takes every recv() for lines of its own."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    while data := sock.recv(4096):
        yield from decoder.decode(data).removesuffix("\n").split("\n")


def read_lines_drops_the_last(sock):
    pending = b""
    while data := sock.recv(4096):
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode("utf-8")


def read_lines_at_the_end(sock):
    everything = b""
    while data := sock.recv(4096):
        everything += data
    yield from everything.decode("utf-8").split("\n")


def read_lines_keeps_newlines(sock):
    with sock.makefile("r", encoding="utf-8", newline="\n") as lines:
        yield from lines


def read_lines_ignores_eof(sock):
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    while True:
        pending += decoder.decode(sock.recv(4096))
        *complete, pending = pending.split("\n")
        yield from complete


def test_read_lines_right_answers_pass():
    for answer in (read_lines_right, read_lines_bytes_first, read_lines_makefile):
        report = lesson09.check_read_lines(answer)
        assert report.ok, (answer.__name__, repr(report))
        assert len(report.results) == 2


def test_read_lines_stub_is_not_written_yet():
    report = lesson09.check_read_lines(read_lines_stub)
    assert len(report.results) == 1
    assert "is it written yet?" in repr(report)


def hint_of(answer):
    report = lesson09.check_read_lines(answer)
    assert not report.ok
    return "\n".join(hint for _, hint in report.failures)


def test_decoding_each_piece_is_caught():
    hint = hint_of(read_lines_per_chunk)
    assert "UnicodeDecodeError" in hint and "incremental decoder" in hint
    assert "with pieces of 1 byte:" in repr(lesson09.check_read_lines(read_lines_per_chunk))
    assert "replacement character" in hint_of(read_lines_replace)


def read_lines_returns_a_list(sock):
    """Reads everything, then returns a list: no line before the end."""
    pending = b""
    lines = []
    while data := sock.recv(4096):
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            lines.append(line.decode("utf-8"))
    return lines  # (and it forgets the last line, without a newline)


def test_a_list_instead_of_a_generator_is_named_first():
    report = lesson09.check_read_lines(read_lines_returns_a_list)
    assert len(report.results) == 1  # it says it all: the check stops
    hint = report.results[0][1].hint
    assert hint.startswith("it returned a list, not a generator.")
    assert "yield" in hint and "last line" not in hint
    report = lesson09.check_read_lines(lambda sock: "".join(read_lines_right(sock)))
    assert "it returned a str, not a generator." in repr(report)


def test_every_line_of_a_report_fits_the_same_width():
    """A hint's lines are wrapped alike, even an exception's long message."""
    width = 8 + lesson09.HINT_WIDTH  # 8: the indent of a hint under FAIL
    for report in (lesson09.check_read_lines(read_lines_per_chunk),
                   lesson09.check_read_lines(read_lines_returns_a_list),
                   lesson09.check_read_message(read_message_little_endian),
                   lesson09.check_read_message(read_message_returns_part)):
        text = repr(report)
        assert "FAIL" in text
        assert max(len(line) for line in text.splitlines()) <= width, text


def test_the_other_line_bugs_are_named():
    assert "one recv() is not one line" in hint_of(read_lines_one_recv_one_line)
    assert "the last line was missing" in hint_of(read_lines_drops_the_last)
    assert "only at the end of the stream" in hint_of(read_lines_at_the_end)
    assert "without the newline" in hint_of(read_lines_keeps_newlines)
    assert "b'' means the peer has closed" in hint_of(read_lines_ignores_eof)


# ------------------------------------- the lesson's recv() explorer (socklab.ui)
# (Here rather than in tests/test_ui.py, which another author owns.)


def test_recv_explorer_sends_in_several_calls_and_recv_ignores_them():
    from socklab import ui

    explorer = ui.RecvExplorer("onetwothree", bufsize=32, sends=3)
    text = repr(explorer)
    assert text.startswith("11 bytes sent with 3 send() calls (4 + 4 + 3); "
                           "read with recv(32): 1 piece\n")
    assert "send #1: b'onet'" in text
    assert "#1    b'onetwothree'  'onetwothree'" in text
    explorer.bufsize.value = 2
    assert "read with recv(2): 6 pieces" in repr(explorer)


def test_split_evenly():
    from socklab import ui

    assert ui.split_evenly(b"abcdefg", 3) == [b"abc", b"de", b"fg"]
    assert ui.split_evenly(b"ab", 5) == [b"a", b"b"]
    assert ui.split_evenly(b"", 3) == [b""]


# ------------------------------------------------------ the frame server, in C


def test_the_server_queue_reads_the_same_from_netlink_and_from_proc():
    """explore.UnreadBytes says what FIONREAD says of the server's socket, by either road."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=5) as client:
            server, _ = listener.accept()
            ends = (server.getsockname(), client.getsockname())
            netlink, proc = explore.UnreadBytes(*ends), explore.UnreadBytes(*ends)
            proc.close()  # without netlink: /proc/net/tcp
            try:
                assert netlink.netlink is not None
                assert (netlink.waiting(), proc.waiting()) == (0, 0)
                client.sendall(b"12345")
                deadline = time.monotonic() + 5
                while lesson09._waiting_bytes(server) < 5:  # loopback: at once, or nearly
                    assert time.monotonic() < deadline
                    time.sleep(0.001)
                assert (netlink.waiting(), proc.waiting()) == (5, 5)
                server.recv(2)
                assert (netlink.waiting(), proc.waiting()) == (3, 3)
                server.close()  # closed: nothing waits to be read
                assert (netlink.waiting(), proc.waiting()) == (0, 0)
            finally:
                netlink.close()


def test_the_judge_of_the_frames_sent_back():
    ex = lesson09._Exchange(bytearray(lesson09.frame(b"hello")), ending="closed")
    assert lesson09._judge_frames(ex, [b"hello"]).passed
    swapped = lesson09._Exchange(bytearray(struct.pack("<I", 5) + b"hello"))
    verdict = lesson09._judge_frames(swapped, [b"hello"])
    assert verdict.final and "htonl()" in verdict.hint
    refused = lesson09._Exchange(bytearray(), ending="closed")
    verdict = lesson09._judge_frames(refused, [b"hello"])
    assert verdict.final and "ntohl()" in verdict.hint
    cut = lesson09._judge_frames(refused, [b"hello"], cut=True)
    assert not cut.final and "what has arrived so far" in cut.hint
    spinning = lesson09._Exchange(bytearray(), waited=5.0, busy=4.9)
    assert "spins" in lesson09._judge_frames(spinning, [b"hello"]).hint
