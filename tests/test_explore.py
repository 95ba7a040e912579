"""socklab.explore: the experiments behind the widgets, on real sockets, with no Jupyter."""

import select
import shutil
import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import socklab
from socklab import explore


def test_explore_needs_neither_widgets_nor_matplotlib():
    """A script may run the experiments with the standard library alone."""
    code = textwrap.dedent("""
        import sys
        sys.modules["ipywidgets"] = sys.modules["matplotlib"] = None  # "not installed"
        from socklab import explore
        print(explore.chunks_received(b"abcdef", 4))
        print(explore.udp_experiment(5, loss=0, duplicate=0, reorder=0))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stderr == ""
    assert done.stdout == "[b'abcd', b'ef']\n[1, 2, 3, 4, 5]\n"


def test_the_faces_still_offer_the_names_lessons_call():
    from socklab import ui, viz

    assert ui.chunks_received is explore.chunks_received  # lesson 09
    assert ui.udp_experiment is explore.udp_experiment  # lesson 07
    assert ui.describe_replies is explore.describe_replies  # lesson 07
    assert viz.watch is explore.watch  # lessons 00 and 03


def test_read_reply_waits_for_a_pause_and_tells_closed_from_silent():
    one, two = socket.socketpair()
    with one, two:
        assert explore.read_reply(two, first_timeout=0.05, quiet=0.05) is None  # nothing came
        one.sendall(b"he")
        one.sendall(b"llo")
        assert explore.read_reply(two, first_timeout=1, quiet=0.2) == b"hello"
        one.close()
        assert explore.read_reply(two, first_timeout=1) == b""  # the peer closed


def test_socket_chunks_follow_the_recv_size():
    data = "你好, socket!".encode()
    assert len(data) == 15  # two 3-byte characters and 9 ASCII ones
    chunks = explore.chunks_received(data, 4)
    assert chunks == [data[0:4], data[4:8], data[8:12], data[12:15]]
    assert explore.chunks_received(data, 64) == [data]
    assert explore.chunks_received(b"", 4) == []


def test_chunks_do_not_follow_the_send_calls():
    data = bytes(range(100))
    assert explore.chunks_received(data, 64, sends=10) == [data[:64], data[64:]]


def test_describe_chunks_shows_a_split_character_one_line_per_recv():
    text = explore.describe_chunks(explore.chunks_received("你好".encode(), 4))
    header, first, second = text.splitlines()  # a header, then one line per recv()
    assert header.split("  ")[0] == "recv" and "piece.decode()" in header
    assert first.startswith(r"#1    b'\xe4\xbd\xa0\xe5'")
    assert "UnicodeDecodeError: unexpected end of data" in first
    assert first.endswith("'你' + 1 byte kept")
    assert "UnicodeDecodeError: invalid start byte" in second
    assert second.endswith("'好'")
    # the columns line up: each starts at the same place on every line
    assert header.index("piece.decode()") == first.index("UnicodeDecodeError")


def test_describe_chunks_columns_line_up_with_chinese_text():
    lines = explore.describe_chunks([b"ab", "你好".encode(), b"c"]).splitlines()
    # '你好' takes 4 columns on screen: the last column starts at the same place
    width = explore._width
    assert lines[2].endswith("'你好'") and lines[1].endswith("'ab'")
    assert width(lines[1][:-len("'ab'")]) == width(lines[2][:-len("'你好'")])
    assert width(lines[3][:-len("'c'")]) == width(lines[1][:-len("'ab'")])


def test_udp_experiment_is_the_same_for_the_same_seed():
    first = explore.udp_experiment(30, loss=0.2, duplicate=0.1, reorder=0.1, seed=7)
    again = explore.udp_experiment(30, loss=0.2, duplicate=0.1, reorder=0.1, seed=7)
    assert first == again
    assert explore.udp_experiment(30, loss=0.2, duplicate=0.1, reorder=0.1, seed=8) != first
    assert set(first) <= set(range(1, 31))
    assert socklab.running() == []


def test_udp_experiment_without_impairments_returns_everything_in_order():
    assert explore.udp_experiment(25, loss=0, duplicate=0, reorder=0) == list(range(1, 26))


def test_describe_replies_names_lost_duplicated_and_late():
    text = explore.describe_replies(5, [1, 3, 2, 2, 5])
    assert text.splitlines()[2] == "lost: [4]   twice: [2]   out of order: [2, 2]"


CLOSED_UDP_PROBE = """
import json, socket
from socklab import explore
with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
    lowest = int(ports.read().split()[0])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:  # the first candidate
    taken.bind(("127.0.0.1", lowest - 1))
    host, port = explore.closed_udp_address()
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(5)
    sock.connect((host, port))
    sock.send(b"anyone?")
    try:
        sock.recv(1)
        refused = False
    except ConnectionRefusedError:
        refused = True
print(json.dumps({"lowest": lowest, "host": host, "port": port, "refused": refused}))
"""


def test_closed_udp_address_refuses_and_lies_below_the_ports_the_kernel_hands_out():
    # In a network namespace of its own (unshare -rn): the port the test takes
    # is then taken from nobody else -- on the machine's loopback it could be
    # the very port another test's closed_udp_address() found free.
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "sh", "-c",
                           'ip link set lo up && exec "$@"', "sh",
                           sys.executable, "-c", CLOSED_UDP_PROBE],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["host"] == "127.0.0.1" and found["port"] < found["lowest"] - 1
    assert found["refused"]


def ss_rows(*arguments):
    """ss's own lines for the same question, split into columns; skip without ss."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed: nothing to compare with")
    done = subprocess.run(["ss", "-tanH", *arguments], capture_output=True, text=True,
                          timeout=10, check=True)
    return [line.split() for line in done.stdout.splitlines()]


def test_a_listeners_queue_and_backlog_as_ss_shows_them():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(3)
        port = listener.getsockname()[1]
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=5)
                   for _ in range(2)]
        try:
            rows = [row for row in explore.tcp_sockets() if row.local == ("127.0.0.1", port)]
            listening = [row for row in rows if row.state == "LISTEN"]
            assert listening == [explore.TCPSocket("LISTEN", 2, 3, ("127.0.0.1", port),
                                                   ("0.0.0.0", 0))]
            # The two connections in the queue, the server's ends, are in the table too.
            assert sorted(row.peer for row in rows if row.state == "ESTAB") == sorted(
                client.getsockname() for client in waiting)
            ss = ss_rows("state", "listening", "sport", "=", f":{port}")
            assert [fields[:3] for fields in ss] == [["2", "3", f"127.0.0.1:{port}"]]  # Recv-Q, Send-Q
        finally:
            for client in waiting:
                client.close()


def test_unread_bytes_and_time_wait_as_ss_shows_them():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        conn, _ = listener.accept()
        ends = {conn.getsockname(), client.getsockname()}
        with conn:
            client.sendall(b"12345")
            select.select([conn], [], [], 5)  # one segment: readable once it is all there
            server_end = [row for row in explore.tcp_sockets()
                          if (row.local, row.peer) == (conn.getsockname(), client.getsockname())]
            assert [(row.state, row.recv_q) for row in server_end] == [("ESTAB", 5)]
            client.close()  # the client closes first: its end will wait in TIME_WAIT
            assert conn.recv(100) == b"12345" and conn.recv(100) == b""
    # The server's FIN reaches the client's end a moment after close(): wait for it.
    deadline = time.monotonic() + 5
    while True:
        rows = [row for row in explore.tcp_sockets() if {row.local, row.peer} == ends]
        if [row.state for row in rows] == ["TIME-WAIT"] or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert [row.state for row in rows] == ["TIME-WAIT"]
    (host, port), (peer_host, peer_port) = rows[0].local, rows[0].peer
    # Both ends: the same local port may also wait with another peer.
    ss = ss_rows("state", "time-wait", "src", f"{host}:{port}",
                 "dst", f"{peer_host}:{peer_port}")
    assert [fields[2:4] for fields in ss] == [[f"{host}:{port}", f"{peer_host}:{peer_port}"]]


def test_ipv6_sockets_are_in_the_table_too():
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6, backlog=7)
    except OSError as exc:
        pytest.skip(f"no IPv6 on loopback here: {exc}")
    with listener:
        port = listener.getsockname()[1]
        rows = [row for row in explore.tcp_sockets() if row.local == ("::1", port)]
    assert rows == [explore.TCPSocket("LISTEN", 0, 7, ("::1", port), ("::", 0))]


def test_proc_net_tcp_shows_the_accept_queue_but_not_the_backlog():
    """Why tcp_sockets() asks over netlink, as ss does, and not /proc/net/tcp."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(3)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            with open("/proc/net/tcp") as table:
                rows = [line.split() for line in table][1:]
            listening = [row for row in rows if row[3] == "0A" and row[1] == f"0100007F:{port:04X}"]
    assert [row[4] for row in listening] == ["00000000:00000001"]  # tx_queue:rx_queue
