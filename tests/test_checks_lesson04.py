"""Lesson 04's checks accept right answers and reject the usual wrong ones, in words.

Every check runs on real sockets on loopback, so these tests do too.
"""

import os
import pathlib
import socket

import socklab
from socklab.checks import lesson04

# ------------------------------------------------------------------ recv_exact


def recv_exact_right(sock, n):
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise EOFError(f"the peer closed after {len(data)} of {n} bytes")
        data += piece
    return data


def recv_exact_into(sock, n):
    """Right too: recv_into() a preallocated buffer, no copies."""
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        count = sock.recv_into(view[got:], n - got)
        if count == 0:
            raise ConnectionError("closed early")
        got += count
    return bytes(buffer)


def recv_exact_waitall(sock, n):
    """Right on a blocking socket: MSG_WAITALL, then check for an early end."""
    data = sock.recv(n, socket.MSG_WAITALL) if n else b""
    if len(data) < n:
        raise EOFError
    return data


def recv_exact_once(sock, n):
    return sock.recv(n)


def recv_exact_spins(sock, n):
    """The seed's mistake: b'' is not treated as the end."""
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def recv_exact_big_reads(sock, n):
    """Asks for 64 KiB each time, and returns all it got."""
    data = b""
    while len(data) < n:
        piece = sock.recv(65536)
        if not piece:
            raise EOFError
        data += piece
    return data


def recv_exact_big_reads_cut(sock, n):
    """Asks for 64 KiB each time, and drops what is beyond n."""
    return recv_exact_big_reads(sock, n)[:n]


def recv_exact_returns_partial(sock, n):
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            break
        data += piece
    return data


def recv_exact_wrong_error(sock, n):
    data = recv_exact_returns_partial(sock, n)
    if len(data) < n:
        raise ValueError("short")
    return data


def recv_exact_reversed(sock, n):
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise EOFError
        data = piece + data
    return data


def recv_exact_do_while(sock, n):
    """Calls recv() before looking at n: recv(0) returns b'' and it raises."""
    data = b""
    while True:
        piece = sock.recv(n - len(data))
        if not piece:
            raise EOFError
        data += piece
        if len(data) == n:
            return data


def recv_exact_str(sock, n):
    return recv_exact_right(sock, n).decode("latin-1")


def recv_exact_stub(sock, n):
    ...  # your code here


def report_text(report):
    return repr(report)


def test_recv_exact_accepts_right_answers():
    for answer in (recv_exact_right, recv_exact_into, recv_exact_waitall):
        report = lesson04.check_recv_exact(answer)
        assert report.ok, report
        assert report_text(report).endswith("All 4 checks passed.")


def test_recv_exact_stub_is_not_written_yet():
    text = report_text(lesson04.check_recv_exact(recv_exact_stub))
    assert "is it written yet?" in text
    assert text.endswith("1 of 1 checks failed.")


def test_recv_exact_explains_a_single_recv():
    report = lesson04.check_recv_exact(recv_exact_once)
    assert not report.ok
    assert "your function returned after the first recv(): it got" in report_text(report)
    assert "of 5,000 bytes" in report_text(report)


def test_recv_exact_stops_a_loop_that_spins_on_eof():
    report = lesson04.check_recv_exact(recv_exact_spins)
    text = report_text(report)
    assert not report.ok
    assert "recv() returned b'' 100 times" in text
    assert "raise EOFError" in text
    # and the first two cases, which it gets right, pass
    assert [verdict.passed for _, verdict in report.results][:2] == [True, True]


def test_recv_exact_rejects_reading_past_n():
    text = report_text(lesson04.check_recv_exact(recv_exact_big_reads))
    assert "it returned 8,000 bytes, but n was 5,000" in text


def test_recv_exact_explains_bytes_lost_by_reading_past_n():
    text = report_text(lesson04.check_recv_exact(recv_exact_big_reads_cut))
    assert "the first call read 8,000 bytes, 3,000 more than the 5,000 it returned" in text


def test_recv_exact_wants_an_exception_at_an_early_end():
    text = report_text(lesson04.check_recv_exact(recv_exact_returns_partial))
    assert "it returned 1,000 bytes after the peer closed" in text
    assert "raise EOFError" in text


def test_recv_exact_names_the_exceptions_to_raise():
    text = report_text(lesson04.check_recv_exact(recv_exact_wrong_error))
    assert "it raised ValueError: short" in text
    assert "Raise EOFError (or ConnectionError)" in text


def test_recv_exact_notices_bytes_out_of_order():
    text = report_text(lesson04.check_recv_exact(recv_exact_reversed))
    assert "not the ones that were sent, in their order" in text


def test_recv_exact_explains_recv_of_zero_bytes():
    report = lesson04.check_recv_exact(recv_exact_do_while)
    text = report_text(report)
    assert "With n = 0 there is nothing to read" in text
    assert [verdict.passed for _, verdict in report.results] == [True, True, True, False]


def test_recv_exact_rejects_str():
    assert "it returned a str" in report_text(lesson04.check_recv_exact(recv_exact_str))


# ---------------------------------------------------------------- send_message


def send_message_right(sock, data):
    view = memoryview(data)
    while view:
        sent = sock.send(view)
        view = view[sent:]


def send_message_once(sock, data):
    sock.send(data)


def send_message_sendall(sock, data):
    sock.sendall(data)


def send_message_from_the_start(sock, data):
    """Counts right, but sends data from its first byte each time."""
    sent = 0
    while sent < len(data):
        sent += sock.send(data)


def send_message_forever(sock, data):
    """Never adds up what send() took: the loop never ends."""
    sent = 0
    while sent < len(data):
        sock.send(data[sent:])


def send_message_stub(sock, data):
    ...  # your code here


def test_send_message_accepts_a_right_answer():
    report = lesson04.check_send_message(send_message_right)
    assert report.ok, report
    assert report_text(report).endswith("All 3 checks passed.")


def test_send_message_really_makes_partial_sends():
    calls = []

    def counting(sock, data):
        while data:
            sent = sock.send(data)
            calls.append((len(data), sent))
            data = data[sent:]

    assert lesson04.check_send_message(counting).ok
    big = [(offered, sent) for offered, sent in calls if offered > 100_000]
    assert len(big) > 1
    assert big[0][1] < big[0][0]  # the first send() took only part of it


def test_send_message_stub_is_not_written_yet():
    text = report_text(lesson04.check_send_message(send_message_stub))
    assert "is it written yet?" in text
    assert text.endswith("1 of 1 checks failed.")


def test_send_message_explains_a_single_send():
    report = lesson04.check_send_message(send_message_once)
    text = report_text(report)
    assert not report.ok
    assert "your function returned after the first send(): it sent" in text
    assert "of 1,000,000 bytes" in text
    assert report.results[0][1].passed  # the short message fits in one send()


def test_send_message_refuses_sendall():
    text = report_text(lesson04.check_send_message(send_message_sendall))
    assert "it called sendall()" in text


def test_send_message_notices_data_sent_again_from_the_start():
    text = report_text(lesson04.check_send_message(send_message_from_the_start))
    assert "not the ones given" in text


def test_send_message_stops_a_loop_that_never_ends():
    text = report_text(lesson04.check_send_message(send_message_forever))
    assert f"did not return within {lesson04.TIME_LIMIT:g} s" in text
    assert "Does the loop add what send()" in text


def test_the_checks_leave_nothing_running():
    lesson04.check_recv_exact(recv_exact_right)
    lesson04.check_send_message(send_message_right)
    names = [thing.name for thing in socklab.running()]
    assert not [name for name in names if name.startswith("check-")]


def test_the_checks_module_is_reachable_from_socklab_checks():
    assert socklab.checks.lesson04.check_recv_exact is lesson04.check_recv_exact


# ------------------------------------------------------------- the client in C
# The solution and the typical wrong answers are in tests/c_exercises/lesson04.py
# (tests/test_c_exercises.py); these look at what the check's servers really do.


def c_solution():
    import nbformat

    nb = nbformat.read(pathlib.Path(__file__).parent.parent / "notebooks" / "en"
                       / "04-tcp-client.ipynb", as_version=4)
    cells = [cell.source for cell in nb.cells
             if cell.source.startswith("%%c my_client --compile-only")]
    return cells[-1].partition("\n")[2]


def test_client_check_really_interrupts_a_send():
    socklab.c.compile(c_solution(), "my_client", sanitize=True)
    peer = lesson04._Peer(lesson04.SLOW_SIZE)
    run = lesson04._run_client("my_client", peer, lesson04.SLOW_SIZE, reads_late=True,
                               reply="all")
    assert peer.interrupted  # it waited in send(), and was made to return early
    assert run.said_correct(lesson04.SLOW_SIZE)
    assert bytes(peer.received) == lesson04._pattern(lesson04.SLOW_SIZE)


def test_client_check_sends_the_echo_in_pieces_read_one_by_one():
    socklab.c.compile(c_solution(), "my_client", sanitize=True)
    peer = lesson04._Peer(lesson04.CLIENT_SIZE)
    run = lesson04._run_client("my_client", peer, lesson04.CLIENT_SIZE, reply="echo")
    assert run.said_correct(lesson04.CLIENT_SIZE)
    assert peer.pieces_read > 1 and peer.delivered == lesson04.CLIENT_SIZE


def test_client_check_leaves_nothing_running():
    socklab.c.compile(c_solution(), "my_client")
    assert lesson04.check_client_c("my_client").ok
    names = [thing.name for thing in socklab.running()]
    assert not [name for name in names if name.startswith("check-")]
    children = pathlib.Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
    assert not [pid for pid in children.split()
                if b"my_client" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()]
