"""Lesson 03's checks accept right answers and reject the typical wrong ones, in words."""

import shutil
import socket

import pytest

from socklab.checks import lesson03


# -- make_listener ------------------------------------------------------------------------


def make_listener_right(host, backlog):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock


def make_listener_ipv4_only(host, backlog):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    sock.listen(backlog)
    return sock


def make_listener_no_listen(host, backlog):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def make_listener_no_bind(host, backlog):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.listen(backlog)  # the kernel binds it to 0.0.0.0 by itself
    return sock


def make_listener_wildcard(host, backlog):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    sock.listen(backlog)
    return sock


def make_listener_no_reuse(host, backlog):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock


def make_listener_default_backlog(host, backlog):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen()
    return sock


def make_listener_seeds_backlog(host, backlog):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(5)  # "most programs can use 5"
    return sock


def make_listener_with_block(host, backlog):
    with make_listener_right(host, backlog) as sock:
        return sock  # closed on the way out


def make_listener_tuple(host, backlog):
    sock = make_listener_right(host, backlog)
    return sock, sock.getsockname()


def test_make_listener_accepts_a_right_answer():
    report = lesson03.check_make_listener(make_listener_right)
    assert report.ok, report
    assert repr(report).endswith("All 3 checks passed.")


def test_make_listener_says_not_written_yet():
    def make_listener(host, backlog):
        ...

    report = lesson03.check_make_listener(make_listener)
    assert not report.ok
    assert "is it written yet?" in repr(report)
    assert len(report.results) == 1


def test_make_listener_explains_ipv6():
    report = lesson03.check_make_listener(make_listener_ipv4_only)
    assert not report.ok
    assert [verdict.passed for _, verdict in report.results] == [True, True, False]
    assert "AF_INET6" in repr(report)


def test_make_listener_spots_a_missing_listen():
    report = lesson03.check_make_listener(make_listener_no_listen)
    assert not report.ok
    assert "bound but not listening" in repr(report)


def test_make_listener_spots_a_missing_bind():
    report = lesson03.check_make_listener(make_listener_no_bind)
    assert not report.ok
    assert "did you forget bind()?" in repr(report)


def test_make_listener_rejects_the_wildcard():
    report = lesson03.check_make_listener(make_listener_wildcard)
    assert not report.ok
    assert "the wildcard" in repr(report)


def test_make_listener_wants_so_reuseaddr():
    report = lesson03.check_make_listener(make_listener_no_reuse)
    assert not report.ok
    assert "SO_REUSEADDR is not set" in repr(report)


def test_make_listener_reads_the_backlog():
    report = lesson03.check_make_listener(make_listener_default_backlog)
    assert not report.ok
    assert "Python's default" in repr(report)
    report = lesson03.check_make_listener(make_listener_seeds_backlog)
    assert not report.ok
    # right for backlog 5, wrong for backlog 1
    assert [verdict.passed for _, verdict in report.results][:2] == [True, False]
    assert "its backlog is 5, not 1" in repr(report)


def test_make_listener_spots_a_closed_socket():
    report = lesson03.check_make_listener(make_listener_with_block)
    assert not report.ok
    assert "closed" in repr(report)


def test_make_listener_wants_the_socket_itself():
    report = lesson03.check_make_listener(make_listener_tuple)
    assert not report.ok
    assert "return the listening socket itself" in repr(report)


def test_listen_queue_reads_the_kernels_table():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(7)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            assert lesson03.listen_queue("127.0.0.1", port) == (1, 7)
    assert lesson03.listen_queue("127.0.0.1", port) is None


# -- serve_one ---------------------------------------------------------------------------


def serve_one_right(listener):
    conn, address = listener.accept()
    with conn:
        try:
            conn.sendall(b"hello\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
    return address


def serve_one_no_catch(listener):
    conn, address = listener.accept()
    with conn:
        conn.sendall(b"hello\n")
    return address


def serve_one_closes_listener(listener):
    with listener:
        return serve_one_right(listener)


def serve_one_no_newline(listener):
    conn, address = listener.accept()
    with conn:
        conn.sendall(b"hello")
    return address


def serve_one_str(listener):
    conn, address = listener.accept()
    with conn:
        conn.sendall("hello\n")
    return address


def serve_one_waits_for_the_client(listener):
    conn, address = listener.accept()
    with conn:
        conn.recv(1024)  # the check's client says nothing: waits until it closes
        conn.sendall(b"hello\n")
    return address


def serve_one_forever(listener):
    while True:
        serve_one_right(listener)


KEPT = []


def serve_one_keeps_it_open(listener):
    conn, address = listener.accept()
    conn.sendall(b"hello\n")
    KEPT.append(conn)  # never closed
    return address


def serve_one_returns_the_pair(listener):
    conn, address = listener.accept()
    with conn:
        conn.sendall(b"hello\n")
    return conn, address


def serve_one_returns_nothing(listener):
    serve_one_right(listener)


def test_serve_one_accepts_a_right_answer():
    report = lesson03.check_serve_one(serve_one_right)
    assert report.ok, report
    assert repr(report).endswith("All 3 checks passed.")


def test_serve_one_says_not_written_yet():
    def serve_one(listener):
        ...

    report = lesson03.check_serve_one(serve_one)
    assert not report.ok
    assert "is it written yet?" in repr(report)


def test_serve_one_must_survive_a_reset():
    report = lesson03.check_serve_one(serve_one_no_catch)
    assert not report.ok
    assert [verdict.passed for _, verdict in report.results] == [True, True, False]
    assert "catch ConnectionResetError" in repr(report)


def test_serve_one_must_keep_the_listener():
    report = lesson03.check_serve_one(serve_one_closes_listener)
    assert not report.ok
    assert "the listener was closed" in repr(report)


def test_serve_one_wants_the_exact_greeting():
    report = lesson03.check_serve_one(serve_one_no_newline)
    assert not report.ok
    assert "the newline is part of the greeting" in repr(report)


def test_serve_one_wants_bytes():
    report = lesson03.check_serve_one(serve_one_str)
    assert not report.ok
    assert "Sockets carry bytes" in repr(report)


def test_serve_one_explains_a_hang_without_hanging():
    for serve_one in (serve_one_waits_for_the_client, serve_one_forever):
        report = lesson03.check_serve_one(serve_one)
        assert not report.ok
        assert "did not return within" in repr(report)


def test_serve_one_must_close_the_connection():
    try:
        report = lesson03.check_serve_one(serve_one_keeps_it_open)
    finally:
        for conn in KEPT:
            conn.close()
        KEPT.clear()
    assert not report.ok
    assert "the connection stayed open" in repr(report)


def test_serve_one_returns_the_address_only():
    report = lesson03.check_serve_one(serve_one_returns_the_pair)
    assert not report.ok
    assert "return only the address" in repr(report)
    report = lesson03.check_serve_one(serve_one_returns_nothing)
    assert not report.ok
    assert "it returned None" in repr(report)


# -- queue_state ---------------------------------------------------------------------------


def queue_state_right(ss_output, port):
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "LISTEN":
            continue
        if fields[3].rpartition(":")[2] == str(port):
            return int(fields[1]), int(fields[2])
    return None


def queue_state_substring(ss_output, port):
    for line in ss_output.splitlines():
        if line.startswith("LISTEN") and f":{port}" in line:
            fields = line.split()
            return int(fields[1]), int(fields[2])
    return None


def queue_state_swapped(ss_output, port):
    found = queue_state_right(ss_output, port)
    return found and found[::-1]


def queue_state_strings(ss_output, port):
    found = queue_state_right(ss_output, port)
    return found and tuple(map(str, found))


def queue_state_header_crash(ss_output, port):
    for line in ss_output.splitlines():
        fields = line.split()
        if int(fields[3].rpartition(":")[2]) == port:  # the header has no port
            return int(fields[1]), int(fields[2])
    return None


def test_queue_state_accepts_a_right_answer():
    report = lesson03.check_queue_state(queue_state_right)
    assert report.ok, report
    assert repr(report).endswith("All 7 checks passed.")


def test_queue_state_says_not_written_yet():
    def queue_state(ss_output, port):
        ...

    report = lesson03.check_queue_state(queue_state)
    assert not report.ok
    assert "is it written yet?" in repr(report)
    # The first case it meets says so, and is the last; without ss, the real
    # table's case is passed over first ("not checked").
    assert len(report.results) == (1 if shutil.which("ss") else 2)


def test_queue_state_spots_a_substring_match():
    report = lesson03.check_queue_state(queue_state_substring)
    assert not report.ok
    assert "matches those" in repr(report)


def test_queue_state_spots_swapped_numbers():
    report = lesson03.check_queue_state(queue_state_swapped)
    assert not report.ok
    assert "swapped" in repr(report)


def test_queue_state_wants_integers():
    report = lesson03.check_queue_state(queue_state_strings)
    assert not report.ok
    assert "convert them with int()" in repr(report)


def test_queue_state_explains_the_header():
    report = lesson03.check_queue_state(queue_state_header_crash)
    assert not report.ok
    assert "skip the header line" in repr(report)
