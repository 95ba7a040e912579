"""socklab's background servers, tested with real sockets on loopback only."""

import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import socklab

TIMEOUT = 10  # seconds; every blocking call in these tests has one


def echo_through(address, data, chunk=65536):
    """Send ``data`` to an echo server and read until it closes; return the reply.

    A writer thread sends while this thread reads, so a reply larger than the
    socket buffers cannot deadlock the two.  The writer ends with shutdown(SHUT_WR):
    the server's recv() then returns b'', it closes, and our read loop ends.
    """
    reply = bytearray()
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        failure = []

        def write():
            try:
                view = memoryview(data)
                for start in range(0, len(view), chunk):
                    sock.sendall(view[start:start + chunk])
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                failure.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        while True:
            part = sock.recv(1 << 20)
            if not part:
                break
            reply += part
        writer.join(TIMEOUT)
        assert not failure, failure
    return bytes(reply)


def assert_still_answers(srv):
    assert echo_through(srv.address, b"still there?") == b"still there?"


# ---------------------------------------------------------------- TCP echo


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"x",
        bytes(range(256)) * 4,  # every byte value, NULs included
        b"\x00\xff\xfe\xc3\x28 invalid UTF-8 \xed\xa0\x80\x00",
    ],
    ids=["0B", "1B", "all-byte-values", "invalid-utf8"],
)
def test_tcp_echo_is_byte_exact(data):
    with socklab.TCPEchoServer() as srv:
        assert echo_through(srv.address, data) == data
        assert_still_answers(srv)


def test_tcp_echo_16_mib():
    data = os.urandom(16 << 20)
    with socklab.TCPEchoServer() as srv:
        reply = echo_through(srv.address, data)
        assert len(reply) == len(data)
        assert hashlib.sha256(reply).digest() == hashlib.sha256(data).digest()
        assert_still_answers(srv)


def test_one_byte_at_a_time():
    message = bytes(range(200)) * 2
    with socklab.TCPEchoServer() as srv:
        with socket.create_connection(srv.address, timeout=TIMEOUT) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(message)):
                sock.sendall(message[i:i + 1])
                assert sock.recv(1) == message[i:i + 1]
        assert_still_answers(srv)


def test_300_concurrent_clients():
    with socklab.TCPEchoServer() as srv:
        clients = [socket.create_connection(srv.address, timeout=TIMEOUT) for _ in range(300)]
        try:
            for i, sock in enumerate(clients):
                sock.sendall(b"client %d" % i)
            srv.events.wait_for("accept", count=300, timeout=TIMEOUT)
            assert srv.connections == 300
            for i, sock in enumerate(clients):
                expected = b"client %d" % i
                reply = b""
                while len(reply) < len(expected):
                    part = sock.recv(100)
                    assert part, "server closed early"
                    reply += part
                assert reply == expected
        finally:
            for sock in clients:
                sock.close()
        srv.events.wait_for("close", count=300, timeout=TIMEOUT)
        assert_still_answers(srv)


def reset(sock):
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_client_resets_mid_stream():
    with socklab.TCPEchoServer() as srv:
        sock = socket.create_connection(srv.address, timeout=TIMEOUT)
        sock.sendall(os.urandom(4 << 20))  # the server is still echoing this ...
        reset(sock)  # ... when the connection is torn down
        srv.events.wait_for("close", timeout=TIMEOUT)
        kinds = [event.kind for event in srv.events if event.conn == 1]
        assert "reset" in kinds, kinds
        assert srv.connections == 0
        assert_still_answers(srv)
    # stop() raised nothing: a reset by the peer is not a server error


def test_client_that_never_reads_does_not_stall_others():
    with socklab.TCPEchoServer() as srv:
        hog = socket.create_connection(srv.address, timeout=TIMEOUT)
        hog.setblocking(False)
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        # Fill both directions' buffers: the server's echo thread blocks in send().
        while sent < (64 << 20) and time.monotonic() < deadline:
            try:
                sent += hog.send(b"\x00" * 65536)
            except BlockingIOError:
                break
        assert sent >= 1 << 20, "expected megabytes to be queued"
        for _ in range(5):
            assert_still_answers(srv)
        hog_connection_open = srv.connections >= 1
        srv.stop()  # must wake the thread blocked in send() to the hog
        hog.close()
    assert hog_connection_open


def test_idle_clients_do_not_block_stop(no_leaks):
    srv = socklab.TCPEchoServer()
    idle = [socket.create_connection(srv.address, timeout=TIMEOUT) for _ in range(20)]
    srv.events.wait_for("accept", count=20, timeout=TIMEOUT)
    srv.stop(timeout=5)  # raises RuntimeError if any thread is still alive
    for sock in idle:
        assert sock.recv(10) == b""  # the server closed every connection
        sock.close()


def test_stop_leaves_no_threads_or_descriptors(no_leaks):
    srv = socklab.TCPEchoServer()
    for size in (0, 10, 100_000):
        echo_through(srv.address, b"a" * size)
    half_open = socket.create_connection(srv.address, timeout=TIMEOUT)
    srv.events.wait_for("accept", count=4, timeout=TIMEOUT)
    srv.stop()
    half_open.close()
    udp = socklab.UDPEchoServer()
    udp.stop()


def test_tcp_over_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        srv = socklab.TCPEchoServer(host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with srv:
        assert srv.host == "::1"
        assert echo_through(srv.address, b"over IPv6") == b"over IPv6"


# ---------------------------------------------------------------- UDP echo


def udp_client():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    return sock


def test_udp_empty_and_maximum_datagrams():
    with socklab.UDPEchoServer() as srv, udp_client() as sock:
        for data in (b"", b"\x00", os.urandom(65507)):
            sock.sendto(data, srv.address)
            reply, peer = sock.recvfrom(65536)
            assert reply == data
            assert peer == srv.address
        too_big = os.urandom(65508)
        with pytest.raises(OSError):  # EMSGSIZE: over the IPv4 UDP maximum
            sock.sendto(too_big, srv.address)
        sock.sendto(b"still there?", srv.address)
        assert sock.recvfrom(100)[0] == b"still there?"


def test_udp_stray_datagrams_from_another_socket():
    with socklab.UDPEchoServer() as srv, udp_client() as mine, udp_client() as stray:
        for i in range(50):
            stray.sendto(b"stray %d" % i, srv.address)
            mine.sendto(b"mine %d" % i, srv.address)
        mine_replies = sorted(mine.recvfrom(100)[0] for _ in range(50))
        stray_replies = sorted(stray.recvfrom(100)[0] for _ in range(50))
        assert mine_replies == sorted(b"mine %d" % i for i in range(50))
        assert stray_replies == sorted(b"stray %d" % i for i in range(50))
        peers = {event.conn for event in srv.events.of_kind("recvfrom")}
        assert peers == {1, 2}


def test_udp_handler_none_means_no_reply():
    def only_pings(data, peer):
        return b"pong" if data == b"ping" else None

    with socklab.serve(only_pings, kind="udp") as srv, udp_client() as sock:
        sock.sendto(b"hello", srv.address)
        sock.sendto(b"ping", srv.address)
        assert sock.recvfrom(100)[0] == b"pong"  # "hello" got no answer
        assert [e.kind for e in srv.events][-3:] == ["recvfrom", "recvfrom", "sendto"]


# ---------------------------------------------------------------- contract


def test_ready_when_constructor_returns_on_a_kernel_chosen_port():
    first, second = socklab.TCPEchoServer(), socklab.TCPEchoServer()
    try:
        assert first.host == "127.0.0.1" and first.port != 0
        assert first.port != second.port
        # No sleep: the socket was listening before the thread started.
        assert echo_through(first.address, b"now") == b"now"
    finally:
        assert socklab.stop_all() == 2


def test_wildcard_host_warns():
    with pytest.warns(UserWarning, match="reachable from other machines"):
        srv = socklab.TCPEchoServer(host="0.0.0.0")
    with srv:
        # Reach it on loopback only.
        assert echo_through(("127.0.0.1", srv.port), b"hi") == b"hi"


def test_named_server_replaces_its_namesake():
    old = socklab.TCPEchoServer(name="echo")
    new = socklab.TCPEchoServer(name="echo")
    assert not old.alive and new.alive
    assert socklab.running() == [new]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(old.address, timeout=TIMEOUT).close()
    new.stop()


def test_rerun_on_a_fixed_port_replaces_the_running_server():
    # The re-run of a cell that serves on a fixed port: the namesake must let go
    # of the port before the new server binds it.  Its connection is still open
    # when it stops, so the server closes first and the port's connection waits
    # in TIME_WAIT: binding again needs SO_REUSEADDR as well.
    old = socklab.serve(socklab.servers.echo_handler, name="fixed")
    port = old.port
    client = socket.create_connection(old.address, timeout=TIMEOUT)
    client.sendall(b"x")
    assert client.recv(1) == b"x"
    new = socklab.serve(socklab.servers.echo_handler, name="fixed", port=port)
    assert not old.alive and new.port == port
    assert client.recv(1) == b""  # the old server closed its side first
    client.close()
    assert _state_of_port(port, "TIME-WAIT"), "the old connection should be in TIME_WAIT"
    with socket.create_connection(new.address, timeout=TIMEOUT) as again:
        again.sendall(b"y")
        assert again.recv(1) == b"y"
    new.stop()


def _state_of_port(port, state):
    """True if a TCP socket on local port ``port`` is in ``state`` (named as ss does)."""
    return any(row.state == state and row.local[1] == port
               for row in socklab.explore.tcp_sockets())


def test_a_namesake_that_fails_to_stop_leaves_the_new_server_unopened(no_leaks):
    def broken(conn):
        conn.recv(10)
        raise ValueError("bug in handler")

    old = socklab.serve(broken, name="buggy")
    with socket.create_connection(old.address, timeout=TIMEOUT) as client:
        client.sendall(b"x")
        old.events.wait_for("error")
    with pytest.raises(ValueError, match="bug in handler"):
        socklab.serve(socklab.servers.echo_handler, name="buggy", port=old.port)
    # Nothing of the new server was opened: no listener is left on the port.
    assert not _state_of_port(old.port, "LISTEN")
    assert socklab.running() == []


def test_failing_to_bind_leaks_nothing(no_leaks):
    with socklab.TCPEchoServer() as holder:
        with pytest.raises(OSError):
            socklab.UDPEchoServer(port=-1)
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        try:
            with pytest.raises(OSError):  # EADDRINUSE: not the server's own port
                socklab.TCPEchoServer(port=blocker.getsockname()[1])
        finally:
            blocker.close()
        assert socklab.running() == [holder]


def test_finished_connection_threads_are_not_kept():
    with socklab.TCPEchoServer() as srv:
        for number in range(1, 501):
            with socket.create_connection(srv.address, timeout=TIMEOUT) as client:
                client.sendall(b"x")
                assert client.recv(1) == b"x"
            srv.events.wait_for("close", count=number)
        # A connection's thread ends a moment after its "close" event: wait for
        # them all, then one more connection starts a thread and drops the rest.
        serving = srv.threads[0]
        for thread in srv._threads[1:]:
            thread.join(TIMEOUT)
        with socket.create_connection(srv.address, timeout=TIMEOUT) as client:
            client.sendall(b"x")
            assert client.recv(1) == b"x"
        held = srv._threads
        # The accept thread and the last connection's thread: nothing else.
        assert len(held) == 2 and held[0] is serving, \
            f"{len(held)} Thread objects held after 501 connections"


def test_stop_is_idempotent_and_running_tracks_it():
    srv = socklab.UDPEchoServer(name="u")
    assert socklab.running() == [srv]
    srv.stop()
    srv.stop()
    assert socklab.running() == []
    assert repr(srv) == "<UDPEchoServer 'u' udp on 127.0.0.1, stopped>"
    assert socklab.stop_all() == 0


def test_handler_exception_is_kept_and_raised_by_stop():
    def broken(conn):
        conn.recv(10)
        raise ValueError("bug in the handler")

    srv = socklab.serve(broken, name="broken")
    with socket.create_connection(srv.address, timeout=TIMEOUT) as sock:
        sock.sendall(b"boom")
        assert sock.recv(10) == b""  # the connection was closed after the bug
    srv.events.wait_for("error", timeout=TIMEOUT)
    assert srv.alive  # other clients would still be served
    with pytest.raises(ValueError, match="bug in the handler"):
        srv.stop()
    srv.stop()  # the error is raised once; stopping again is quiet


def test_udp_handler_exception_is_raised_by_stop_all():
    def broken(data, peer):
        raise KeyError(data)

    srv = socklab.serve(broken, kind="udp")
    with udp_client() as sock:
        sock.sendto(b"k", srv.address)
    srv.events.wait_for("error", timeout=TIMEOUT)
    with pytest.raises(KeyError):
        socklab.stop_all()
    assert socklab.running() == []


def test_stuck_handler_makes_stop_raise():
    release = threading.Event()

    def stuck(conn):
        release.wait(30)  # not a socket call: shutdown() cannot wake it

    srv = socklab.serve(stuck)
    with socket.create_connection(srv.address, timeout=TIMEOUT):
        srv.events.wait_for("accept", timeout=TIMEOUT)
        with pytest.raises(RuntimeError, match="still running"):
            srv.stop(timeout=0.5)
    release.set()


def test_serve_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'tcp' or 'udp'"):
        socklab.serve(print, kind="sctp")


def test_events_render_without_port_numbers():
    with socklab.TCPEchoServer() as srv:
        echo_through(srv.address, b"hello")
        srv.events.wait_for("close", timeout=TIMEOUT)
        text = repr(srv.events)
    assert text.splitlines() == [
        "server   listen",
        "conn 1   accept",
        "conn 1   recv 5 bytes",
        "conn 1   send 5 bytes",
        "conn 1   recv 0 bytes (peer closed)",
        "conn 1   close",
    ]
    assert str(srv.port) not in text


def test_event_log_is_bounded_and_wait_for_times_out():
    log = socklab.EventLog(maxlen=3)
    for i in range(5):
        log.add("recv", 1, i)
    assert [event.nbytes for event in log] == [2, 3, 4]
    assert log.dropped == 2
    assert repr(log).startswith("... 2 older events dropped")
    with pytest.raises(TimeoutError, match="'close'"):
        log.wait_for("close", timeout=0.1)


def test_atexit_stops_servers_left_running(tmp_path):
    """A script that never calls stop(): exiting must still end its handlers."""
    script = tmp_path / "left_running.py"
    script.write_text(
        "import socket, socklab\n"
        "def handler(conn):\n"
        "    data = conn.recv(10)\n"
        "    print('handler ended, recv gave', data, flush=True)\n"
        "srv = socklab.serve(handler)\n"
        "client = socket.create_connection(srv.address, timeout=5)\n"
        "srv.events.wait_for('accept')\n"
        "print('exiting', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["exiting", "handler ended, recv gave b''"]


def test_event_text_is_grouped_by_connection_whatever_the_timing():
    log = socklab.EventLog()
    log.add("listen")
    log.add("accept", 1)
    log.add("accept", 2)  # connection 2 arrives before 1 is done ...
    log.add("recv", 1, 0, "peer closed")
    log.add("close", 2)
    log.add("close", 1)
    log.add("stop")
    assert repr(log).splitlines() == [
        "server   listen",
        "conn 1   accept",
        "conn 1   recv 0 bytes (peer closed)",
        "conn 1   close",
        "conn 2   accept",
        "conn 2   close",
        "server   stop",
    ]
    assert [event.conn for event in log] == [0, 1, 2, 1, 2, 1, 0]  # time order


def test_wait_for_counts_events_the_bounded_log_has_let_go():
    log = socklab.events.EventLog(maxlen=3)
    for _ in range(5):
        log.add("recv", 1, 10)
    assert log.dropped == 2
    assert len(log.wait_for("recv", count=5, timeout=0.5)) == 3  # the kept ones
