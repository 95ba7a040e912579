"""socklab.explore: the experiments behind the widgets, on real sockets, with no Jupyter."""

import socket
import subprocess
import sys
import textwrap

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


def test_closed_udp_address_refuses_and_lies_below_the_ports_the_kernel_hands_out():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        lowest = int(ports.read().split()[0])
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the first candidate, taken
    try:
        try:
            taken.bind(("127.0.0.1", lowest - 1))
        except OSError:
            pass  # someone else holds it: taken all the same
        host, port = explore.closed_udp_address()
    finally:
        taken.close()
    assert host == "127.0.0.1" and port < lowest - 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        sock.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            sock.recv(1)
