"""Lesson 07's checks accept right answers and reject the usual wrong ones, in words.

Every check runs on real UDP sockets on loopback (and a LossyRelay), so these tests
do too.
"""

import os
import pathlib
import select
import socket
import threading
import types

import nbformat
import pytest

import socklab
from socklab import c
from socklab.checks import lesson07

ROOT = pathlib.Path(__file__).resolve().parent.parent

# ------------------------------------------------------------ arrival_order


def test_arrival_order_follows_the_relays_rules():
    fates = ["forward", "drop", "reorder", "forward", "duplicate", "reorder"]
    assert lesson07.arrival_order(fates) == [1, 4, 3, 5, 5, 6]


def test_a_reorder_while_one_is_held_is_a_forward():
    assert lesson07.arrival_order(["reorder", "reorder", "forward"]) == [2, 1, 3]


def test_expected_report():
    arrived, missing, duplicates, late = lesson07.expected_report(6, [1, 4, 3, 5, 5])
    assert (missing, duplicates, late) == ([2, 6], [5], [3])


# ------------------------------------------------------------ receive_numbered


def _read_until_quiet(sock, timeout):
    sock.settimeout(timeout)
    arrived = []
    while True:
        try:
            data = sock.recv(1500)
        except TimeoutError:
            return arrived
        arrived.append(int(data))


def _reports(arrived, count):
    missing = [n for n in range(1, count + 1) if n not in arrived]
    duplicates = sorted({n for n in arrived if arrived.count(n) > 1})
    late = sorted({n for i, n in enumerate(arrived) if any(m > n for m in arrived[:i])})
    return arrived, missing, duplicates, late


def numbered_right(sock, count, timeout):
    return _reports(_read_until_quiet(sock, timeout), count)


def numbered_recvfrom(sock, count, timeout):
    """Right too: recvfrom(), and a running maximum for `late`."""
    sock.settimeout(timeout)
    arrived, late, highest = [], set(), 0
    while True:
        try:
            data, _ = sock.recvfrom(100)
        except socket.timeout:
            break
        number = int(data.decode())
        if number < highest:
            late.add(number)
        highest = max(highest, number)
        arrived.append(number)
    missing = sorted(set(range(1, count + 1)) - set(arrived))
    duplicates = sorted({n for n in arrived if arrived.count(n) > 1})
    return arrived, missing, duplicates, sorted(late)


def numbered_stub(sock, count, timeout):
    ...


def numbered_reads_count(sock, count, timeout):
    """Reads exactly `count` datagrams, with no timeout: hangs when one is lost."""
    arrived = [int(sock.recv(100)) for _ in range(count)]
    return _reports(arrived, count)


def numbered_lets_timeout_escape(sock, count, timeout):
    sock.settimeout(timeout)
    arrived = []
    while True:
        arrived.append(int(sock.recv(100)))


def numbered_sorted(sock, count, timeout):
    arrived, missing, duplicates, late = numbered_right(sock, count, timeout)
    return sorted(arrived), missing, duplicates, late


def numbered_bytes(sock, count, timeout):
    sock.settimeout(timeout)
    arrived = []
    while True:
        try:
            arrived.append(sock.recv(100))
        except TimeoutError:
            return arrived, [], [], []


def numbered_no_copies(sock, count, timeout):
    arrived, missing, duplicates, late = numbered_right(sock, count, timeout)
    once = []
    for n in arrived:
        if n not in once:
            once.append(n)
    return once, missing, duplicates, late


def numbered_missing_off_by_one(sock, count, timeout):
    arrived, _, duplicates, late = numbered_right(sock, count, timeout)
    return arrived, [n for n in range(1, count) if n not in arrived], duplicates, late


def numbered_late_unsorted_with_copies(sock, count, timeout):
    arrived, missing, duplicates, _ = numbered_right(sock, count, timeout)
    late = [n for i, n in enumerate(arrived) if n < i]  # a wrong idea of "late"
    return arrived, missing, duplicates, late


def test_receive_numbered_accepts_right_answers():
    for answer in (numbered_right, numbered_recvfrom):
        report = lesson07.check_receive_numbered(answer)
        assert report.ok, repr(report)
        assert "All 3 checks passed." in repr(report)


def test_receive_numbered_stub():
    report = lesson07.check_receive_numbered(numbered_stub)
    assert not report.ok
    assert "is it written yet?" in repr(report)
    assert len(report.results) == 1


def test_receive_numbered_that_waits_for_count_datagrams_is_stopped():
    before = {thread.name for thread in threading.enumerate()}
    report = lesson07.check_receive_numbered(numbered_reads_count)
    text = repr(report)
    assert not report.ok
    assert "did not return within" in text and "settimeout" in text
    # The check woke the learner's thread: nothing is left running.
    after = {thread.name for thread in threading.enumerate()}
    assert "socklab check" not in after - before


def test_receive_numbered_rejects_a_timeout_that_escapes():
    text = repr(lesson07.check_receive_numbered(numbered_lets_timeout_escape))
    assert "catch TimeoutError" in text


def test_receive_numbered_rejects_sorted_arrivals():
    text = repr(lesson07.check_receive_numbered(numbered_sorted))
    assert "do not sort" in text


def test_receive_numbered_rejects_bytes():
    text = repr(lesson07.check_receive_numbered(numbered_bytes))
    assert "int(data)" in text


def test_receive_numbered_rejects_dropped_copies():
    text = repr(lesson07.check_receive_numbered(numbered_no_copies))
    assert "second copy of a duplicate" in text


def test_receive_numbered_rejects_wrong_missing():
    text = repr(lesson07.check_receive_numbered(numbered_missing_off_by_one))
    assert "missing is" in text and "never came" in text


def test_receive_numbered_rejects_wrong_late():
    text = repr(lesson07.check_receive_numbered(numbered_late_unsorted_with_copies))
    assert "late is" in text


# ------------------------------------------------------------------- probe


def probe_right(address, timeout):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        s.send(b"")
        try:
            s.recv(1500)
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "silent"
        return "answered"


def probe_unconnected(address, timeout):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"", address)
        try:
            s.recvfrom(1500)
        except TimeoutError:
            return "silent"
        return "answered"


def probe_no_timeout(address, timeout):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.send(b"")
        try:
            s.recv(1500)
        except ConnectionRefusedError:
            return "refused"
        return "answered"


def probe_refusal_escapes(address, timeout):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        s.send(b"")
        try:
            s.recv(1500)
        except TimeoutError:
            return "silent"
        return "answered"


def probe_bool(address, timeout):
    return probe_right(address, timeout) == "answered"


def probe_stub(address, timeout):
    ...


def test_probe_accepts_the_right_answer():
    report = lesson07.check_probe(probe_right)
    assert report.ok, repr(report)


def test_probe_stub():
    report = lesson07.check_probe(probe_stub)
    assert "is it written yet?" in repr(report)
    assert len(report.results) == 1


def test_probe_without_connect_misses_the_refusal():
    report = lesson07.check_probe(probe_unconnected)
    text = repr(report)
    assert not report.ok
    assert "connected" in text and "connect() to the address first" in text


def test_probe_without_a_timeout_is_stopped_and_woken():
    report = lesson07.check_probe(probe_no_timeout)
    text = repr(report)
    assert not report.ok
    assert "did not return within" in text and "settimeout" in text
    assert "socklab check" not in {thread.name for thread in threading.enumerate()}


def test_probe_must_catch_the_refusal():
    text = repr(lesson07.check_probe(probe_refusal_escapes))
    assert "catch ConnectionRefusedError" in text


def test_probe_must_return_a_word():
    text = repr(lesson07.check_probe(probe_bool))
    assert "return one of 'answered', 'refused', 'silent'" in text


# ------------------------------------------------------- the UDP echo server in C
# The check on C programs (the solution and typical mistakes) is tested in
# tests/test_c_exercises.py; here, its parts.


def _closed_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()


def test_an_unconnected_socket_hears_no_refusal_until_told():
    # What the lesson says, and why the check turns IP_RECVERR on.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        sock.sendto(b"anyone?", _closed_udp_port())
        try:
            sock.recvfrom(1500)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a datagram came from a closed port")


def test_icmp_errors_heard_sets_ip_recverr_on_the_programs_very_socket():
    # This process plays the program: pidfd_getfd() copies its own socket.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        program = types.SimpleNamespace(pid=os.getpid(), address=sock.getsockname())
        with lesson07.icmp_errors_heard(program) as copy:
            if copy is None:
                pytest.skip("pidfd_getfd() is not allowed here")
            assert sock.getsockopt(socket.IPPROTO_IP, lesson07.IP_RECVERR) == 1
            sock.sendto(b"a reply for nobody", _closed_udp_port())
            lesson07._wait_for_error(copy, program)
            with pytest.raises(ConnectionRefusedError):
                sock.recvfrom(1500)
            # once: the error belongs to that datagram, and the socket goes on
            sock.sendto(b"me", sock.getsockname())
            assert sock.recvfrom(1500)[0] == b"me"
        # afterwards: the option is off, the error queue empty (no POLLERR)
        assert sock.getsockopt(socket.IPPROTO_IP, lesson07.IP_RECVERR) == 0
        waiting = select.poll()
        waiting.register(sock, 0)
        assert waiting.poll(0) == []


def test_icmp_errors_heard_without_a_program_changes_nothing():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = types.SimpleNamespace(pid=os.getpid(), address=("127.0.0.1", port))
    with lesson07.icmp_errors_heard(gone) as copy:  # no socket at that port
        assert copy is None


def _hint(verdict):
    assert not verdict.passed
    return verdict.hint


def test_judge_reply_the_same_bytes():
    assert lesson07._judge_reply(b"a\x00b", [b"a\x00b"]).passed


def test_judge_reply_names_truncation():
    sent = bytes(lesson07.LARGEST)
    hint = _hint(lesson07._judge_reply(sent, [sent[:1024]]))
    assert "1,024 of the 65,507 bytes came back: the datagram was truncated" in hint


def test_judge_reply_names_strlen_both_ways():
    stopped = lesson07._judge_reply(lesson07.BINARY, [b"bin"])
    assert "stopped at the first NUL byte" in _hint(stopped) and stopped.final
    longer = lesson07._judge_reply(b"hi", [b"hi there, from before"])
    assert "19 bytes more" in _hint(longer) and "not strlen(buf)" in _hint(longer)


def test_judge_reply_no_reply_and_a_refusal():
    assert "no reply to b'hi' within" in _hint(lesson07._judge_reply(b"hi", []))
    refused = lesson07._judge_reply(b"hi", [ConnectionRefusedError(111, "refused")])
    assert "a server does not connect()" in _hint(refused) and refused.final


def test_the_c_check_leaves_no_program_behind():
    nb = nbformat.read(ROOT / "notebooks" / "en" / "07-udp.ipynb", as_version=4)
    solution = [cell.source for cell in nb.cells
                if cell.source.startswith("%%c my_udp_echo ")][-1]
    c.compile(solution.partition("\n")[2], "my_udp_echo")
    report = lesson07.check_udp_echo_server_c("my_udp_echo")
    assert report.ok, repr(report)
    assert not [thing for thing in socklab.running() if "my_udp_echo" in repr(thing)]
