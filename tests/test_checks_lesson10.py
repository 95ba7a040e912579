"""Lesson 10's checks accept right answers and reject the usual wrong ones, in words.

The servers and clients here are real, on loopback.  The wrong echo servers are
one right server with one mistake switched on each, so that each test shows the
check catching exactly that mistake.
"""

import asyncio
import errno
import logging
import os
import select
import selectors
import socket
import threading

import pytest

from socklab.checks import lesson10
from socklab.checks.report import Verdict


def hints(report):
    return "\n".join(hint for _, hint in report.failures)


def hint_words(report):
    """The hints with every line break as a space: wrapping is not the point."""
    return " ".join(hints(report).split())


def failed(report):
    return [description for description, _ in report.failures]


# ------------------------------------------------------------------ echo_server

def make_server(*, unregister=True, close_on_eof=True, catch_reset=True, limit=1 << 20, nonblocking=True,
                write_always=False, honour_stop=True, catch_blocking=True):
    """A selectors echo server; each keyword argument can switch on one classic bug."""

    def echo_server(listener, stop):
        listener.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "accept")
        if honour_stop:
            sel.register(stop, selectors.EVENT_READ, "stop")
        pending = {}
        leaked = []

        def update(sock):
            events = selectors.EVENT_READ if len(pending[sock]) < limit else 0
            if pending[sock] or write_always:
                events |= selectors.EVENT_WRITE
            sel.modify(sock, events)

        def drop(sock):
            if unregister:
                sel.unregister(sock)
            del pending[sock]
            if close_on_eof:
                sock.close()
            else:
                leaked.append(sock)  # forgotten, still open

        try:
            while True:
                for key, mask in sel.select():
                    if key.data == "stop":
                        return
                    if key.data == "accept":
                        conn, _ = listener.accept()
                        if nonblocking:
                            conn.setblocking(False)
                        pending[conn] = bytearray()
                        sel.register(conn, selectors.EVENT_READ, "conn")
                        update(conn)
                        continue
                    sock = key.fileobj
                    try:
                        if mask & selectors.EVENT_READ:
                            data = sock.recv(65536)
                            if not data:
                                drop(sock)
                                continue
                            if nonblocking:
                                pending[sock] += data
                            else:
                                sock.sendall(data)
                        if pending[sock]:
                            del pending[sock][:sock.send(pending[sock])]
                    except BlockingIOError:
                        if not catch_blocking:
                            raise
                    except ConnectionError:
                        if not catch_reset:
                            raise
                        drop(sock)
                        continue
                    update(sock)
        finally:
            for sock in [*pending, *leaked]:
                sock.close()
            sel.close()

    return echo_server


def asyncio_server(drain=True, catch_reset=True):
    def echo_server(listener, stop):
        async def handle(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    if drain:
                        await writer.drain()
            except ConnectionError:
                if not catch_reset:
                    raise
            finally:
                writer.close()

        async def main():
            clients = {}

            async def serve(reader, writer):
                clients[asyncio.current_task()] = writer
                try:
                    await handle(reader, writer)
                finally:
                    del clients[asyncio.current_task()]

            server = await asyncio.start_server(serve, sock=listener)
            await asyncio.get_running_loop().sock_recv(stop, 1)
            server.close()
            for writer in clients.values():
                writer.close()
            await asyncio.gather(*clients)
            await server.wait_closed()

        asyncio.run(main())

    return echo_server


def thread_per_client(listener, stop, catch_reset=True):
    def serve(conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                if not catch_reset:
                    raise

    while True:
        ready, _, _ = select.select([listener, stop], [], [])
        if stop in ready:
            return
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def echo_server_stub(listener, stop):
    ...


@pytest.mark.parametrize("server", [make_server(), asyncio_server()],
                         ids=["selectors", "asyncio"])
def test_right_echo_servers_pass(server):
    report = lesson10.check_echo_server(server)
    assert report.ok, report
    assert len(report.results) == 12


def test_stub_is_not_written_yet():
    report = lesson10.check_echo_server(echo_server_stub)
    assert len(report.results) == 1 and not report.ok
    assert "is it written yet?" in hints(report)


def test_closing_without_unregister_is_named():
    # Every time, not when descriptor numbers happen to line up: run it 5 times.
    for _ in range(5):
        report = lesson10.check_echo_server(make_server(unregister=False))
        assert not report.ok
        assert "unregister() a socket BEFORE you close it" in hints(report)


def test_a_server_that_never_closes_a_leaving_client_fails():
    report = lesson10.check_echo_server(make_server(close_on_eof=False))
    assert not report.ok
    assert "When recv() returns b'' the client has gone" in hints(report)


def test_not_catching_reset_is_named():
    report = lesson10.check_echo_server(make_server(catch_reset=False))
    assert not report.ok
    assert "Catch\nConnectionError" in hints(report)


def test_blocking_sendall_in_the_loop_is_named():
    report = lesson10.check_echo_server(make_server(nonblocking=False))
    assert failed(report) == ["a client sends and never reads: another client is still served"]
    assert "setblocking(False)" in hints(report)


def test_unbounded_buffer_is_rejected():
    report = lesson10.check_echo_server(make_server(limit=1 << 40))
    assert len(failed(report)) == 1 and "holds at most" in failed(report)[0], report
    assert "stop reading from it" in hints(report)


def test_asyncio_without_drain_is_rejected():
    report = lesson10.check_echo_server(asyncio_server(drain=False))
    assert len(failed(report)) == 1 and "holds at most" in failed(report)[0], report
    assert "writer.drain()" in hints(report)


def test_always_writable_registration_is_a_busy_loop():
    report = lesson10.check_echo_server(make_server(write_always=True))
    assert len(failed(report)) == 1 and "no busy loop" in failed(report)[0], report
    assert "EVENT_WRITE" in hints(report)


def test_thread_per_client_is_not_an_event_loop():
    report = lesson10.check_echo_server(thread_per_client)
    assert failed(report) == ["... served from one thread (no thread per client)"], report


def test_ignoring_stop_is_named():
    report = lesson10.check_echo_server(make_server(honour_stop=False))
    assert failed(report) == ["a byte on `stop`: echo_server() returns"], report
    assert "Register `stop`" in hints(report)
    assert "restart the kernel (Kernel > Restart Kernel)" in hint_words(report)


def test_plain_send_without_blocking_io_error_is_not_blamed_on_blocking(capsys):
    report = lesson10.check_echo_server(make_server(catch_blocking=False))
    assert failed(report) == ["a client sends and never reads: another client is still served",
                              "the server kept running through all of this"], report
    assert "the server is no longer running" in hints(report)
    assert "a call in the loop is blocking" not in hints(report)
    assert "send() too, when the client's send buffer is full" in hint_words(report)
    assert "still to come: idle clients, `stop`." in hint_words(report)


def test_a_blocking_server_that_dies_on_a_reset_hears_what_is_left():
    report = lesson10.check_echo_server(make_server(nonblocking=False, catch_reset=False))
    assert failed(report) == ["the server kept running through all of this"], report
    assert "Catch\nConnectionError" in hints(report)
    assert "a client that never reads (a blocking call shows there)" in hint_words(report)


def test_errors_in_client_threads_are_summed_up_not_printed(capsys):
    hook = threading.excepthook
    report = lesson10.check_echo_server(
        lambda listener, stop: thread_per_client(listener, stop, catch_reset=False))
    assert threading.excepthook is hook
    assert "no exception escapes from a client's thread or task" in failed(report), report
    assert "your threads raised ConnectionResetError" in hints(report)
    assert "Catch ConnectionError" in hints(report)
    assert "Exception in thread" not in capsys.readouterr().err


def test_errors_in_asyncio_handlers_are_summed_up_not_logged(capsys, caplog):
    report = lesson10.check_echo_server(asyncio_server(catch_reset=False))
    assert failed(report) == ["no exception escapes from a client's thread or task"], report
    assert "your asyncio tasks raised ConnectionResetError" in hints(report)
    assert not [record for record in caplog.records if record.name == "asyncio"]
    assert "client_connected_cb" not in capsys.readouterr().err
    assert not logging.getLogger("asyncio").filters


def test_a_server_that_runs_through_cleanly_escapes_nothing():
    report = lesson10.check_echo_server(make_server())
    assert report.results[-1] == ("no exception escapes from a client's thread or task",
                                  Verdict.ok())


def test_echo_server_check_leaves_no_thread_or_descriptor(no_leaks):
    """What could be left behind: the learner's server, which runs in a thread of
    the check's, the check's flood thread, and the ~140 sockets the check opens
    (its clients, the listener, the `stop` pair) -- looked at the moment the check
    returns, after a server that runs through and after one that dies half-way.
    (`no_leaks` compares every thread and /proc/self/fd before and after as well.)"""
    before = {thread for thread in threading.enumerate()
              if thread.name.startswith("socklab check")}
    for server in (make_server(), make_server(catch_reset=False)):
        fds = set(os.listdir("/proc/self/fd"))
        lesson10.check_echo_server(server)
        assert {thread.name for thread in threading.enumerate()
                if thread.name.startswith("socklab check") and thread not in before} == set()
        assert set(os.listdir("/proc/self/fd")) - fds == set()


# --------------------------------------------------------- connect_with_timeout

def connect_right(address, timeout, *, check_connect_ex=True):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex(address)
        if check_connect_ex and err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))  # failed at once
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_WRITE)
            if not sel.select(timeout):
                raise TimeoutError(f"no answer within {timeout} s")
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        sock.setblocking(True)
        return sock
    except BaseException:
        sock.close()
        raise


def connect_no_so_error(address, timeout):
    sock = socket.socket()
    sock.setblocking(False)
    if (err := sock.connect_ex(address)) not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(err, os.strerror(err))
    if not select.select([], [sock], [], timeout)[1]:
        sock.close()
        raise TimeoutError
    sock.setblocking(True)
    return sock


def connect_no_limit(address, timeout):
    sock = socket.socket()
    sock.setblocking(False)
    if (err := sock.connect_ex(address)) not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(err, os.strerror(err))
    select.select([], [sock], [])
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        sock.close()
        raise OSError(err, os.strerror(err))
    sock.setblocking(True)
    return sock


def connect_with_settimeout(address, timeout):
    return socket.create_connection(address, timeout=timeout)


def connect_stub(address, timeout):
    ...


def test_connect_right_passes():
    report = lesson10.check_connect_with_timeout(connect_right)
    assert report.ok, report


def test_connect_stub_is_not_written_yet():
    report = lesson10.check_connect_with_timeout(connect_stub)
    assert len(report.results) == 1 and "is it written yet?" in hints(report)


def test_connect_without_so_error_returns_a_refused_socket():
    report = lesson10.check_connect_with_timeout(connect_no_so_error)
    assert failed(report) == ["nobody listens: ConnectionRefusedError"], report
    assert "read SO_ERROR" in hints(report)


def test_connect_without_a_limit_is_named():
    report = lesson10.check_connect_with_timeout(connect_no_limit)
    assert len(failed(report)) == 1 and "queue is full" in failed(report)[0], report
    assert "the wait has no limit" in hints(report)


def test_connect_that_keeps_a_timeout_is_told_to_hand_back_blocking():
    report = lesson10.check_connect_with_timeout(connect_with_settimeout)
    assert failed(report)[0].startswith("a listening server"), report
    assert "setblocking(True)" in hints(report)
    assert "The exercise asks for setblocking(False), connect_ex()" in hint_words(report)


def connect_left_non_blocking(address, timeout):
    sock = connect_right(address, timeout)
    sock.setblocking(False)
    return sock


def test_connect_that_hands_back_non_blocking_is_told_to_hand_back_blocking():
    report = lesson10.check_connect_with_timeout(connect_left_non_blocking)
    assert failed(report) == ["a listening server: a connected, blocking socket comes back"]
    assert "comes back non-blocking" in hints(report)


def connect_ignoring_connect_ex(address, timeout):
    """The lesson's solution before 3dc3adf: connect_ex()'s result thrown away."""
    return connect_right(address, timeout, check_connect_ex=False)


def test_connect_that_ignores_connect_ex_failing_at_once_is_named():
    report = lesson10.check_connect_with_timeout(connect_ignoring_connect_ex)
    assert failed(report) == ["connect() fails at once (127.255.255.255, loopback's broadcast "
                              "address): that error"], report
    assert "connect_ex() returned ENETUNREACH" in hint_words(report)
    assert "only connect_ex()'s result tells" in hint_words(report)


def test_a_connect_failing_at_once_is_a_loopback_address_and_fails_at_once():
    host, _ = lesson10.UNREACHABLE
    assert host.startswith("127.")
    with socket.socket() as sock:
        sock.setblocking(False)
        assert sock.connect_ex(lesson10.UNREACHABLE) == errno.ENETUNREACH
