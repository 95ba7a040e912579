"""socklab.capture: frames parsed by hand, then real captures on loopback.

Live captures need CAP_NET_RAW (root has it).  Without it those tests are skipped
with the reason; CI runs as root, so there they all run.  The "not permitted"
path is tested for real too: in a child process that runs as the user nobody,
and in one that is root but lacks CAP_NET_RAW.
"""

import json
import os
import pathlib
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import socklab
from socklab import capture
from socklab.capture import Capture, CaptureNotPermitted, Segment, parse_frame

TIMEOUT = 10  # seconds; every blocking call in these tests has one
NOBODY = 65534  # uid and gid of nobody / nogroup on Debian-like systems

live = pytest.mark.skipif(
    not capture.can_capture(),
    reason="live capture needs CAP_NET_RAW (run as root); socklab.capture says why",
)

OPENING = [
    ("client > server", "SYN"),
    ("server > client", "SYN,ACK"),
    ("client > server", "ACK"),
]


# ---------------------------------------------------------------- frames built by hand


def ethernet(ethertype, payload):
    """A loopback frame: both MAC addresses are zero."""
    return bytes(12) + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, options=b""):
    header_length = 20 + len(options)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | header_length // 4, 0, header_length + len(payload), 0x1234, 0x4000,  # DF
        64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst),
    )
    return header + options + payload


def ipv6(src, dst, next_header, payload):
    return struct.pack(
        "!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
        socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst),
    ) + payload


def tcp(sport, dport, seq, ack, flags, window=65495, options=b"", payload=b""):
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, flags, window, 0, 0)
    return header + options + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04
MSS_AND_WSCALE = bytes.fromhex("020405b4") + bytes.fromhex("01030307")  # 8 bytes of options


def test_parse_ipv4_tcp_syn_with_options():
    frame = ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 6,
                                  tcp(40000, 8080, 1000, 0, SYN, options=MSS_AND_WSCALE)))
    segment = parse_frame(frame, time=1.5)
    assert segment == Segment(1.5, "tcp", ("127.0.0.1", 40000), ("127.0.0.1", 8080),
                              "SYN", 1000, 0, 0, b"", 65495)


def test_parse_honours_ihl_and_data_offset():
    """IP options and TCP options both move the payload; lengths come from the headers."""
    payload = b"hello world"
    segment = tcp(1, 2, 5, 6, PSH | ACK, options=MSS_AND_WSCALE, payload=payload)
    frame = ethernet(0x0800, ipv4("127.0.0.2", "127.0.0.1", 6, segment, options=bytes(4)))
    parsed = parse_frame(frame)
    assert (parsed.src, parsed.dst) == (("127.0.0.2", 1), ("127.0.0.1", 2))
    assert (parsed.flags, parsed.length, parsed.payload) == ("PSH,ACK", len(payload), payload)


def test_parse_keeps_64_payload_bytes_but_counts_all():
    payload = bytes(range(200))
    frame = ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 6, tcp(1, 2, 0, 0, ACK, payload=payload)))
    parsed = parse_frame(frame)
    assert parsed.length == 200 and parsed.payload == payload[:64]
    # Cut after the headers, as a capture with a small snap length does: same answer.
    assert parse_frame(frame[:14 + 20 + 20 + 10]).length == 200


def test_parse_ipv4_udp():
    frame = ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 17, udp(5353, 9999, b"ping")))
    assert parse_frame(frame) == Segment(0.0, "udp", ("127.0.0.1", 5353), ("127.0.0.1", 9999),
                                         "", None, None, 4, b"ping", None)


def test_parse_ipv6_tcp():
    frame = ethernet(0x86DD, ipv6("::1", "::1", 6, tcp(50000, 80, 2**32 - 1, 7, FIN | PSH | ACK,
                                                       payload=b"bye")))
    parsed = parse_frame(frame)
    assert parsed.src == ("::1", 50000) and parsed.dst == ("::1", 80)
    assert (parsed.flags, parsed.seq, parsed.ack, parsed.length) == ("FIN,PSH,ACK", 2**32 - 1, 7, 3)


def test_parse_ipv6_udp():
    frame = ethernet(0x86DD, ipv6("::1", "::1", 17, udp(1, 2, b"")))
    assert parse_frame(frame)[1:8] == ("udp", ("::1", 1), ("::1", 2), "", None, None, 0)


def test_truncated_frames_give_none():
    frame = ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 6,
                                  tcp(1, 2, 0, 0, SYN, options=MSS_AND_WSCALE)))
    headers = 14 + 20 + 28
    for cut in range(headers):  # every cut inside a header, the empty frame included
        assert parse_frame(frame[:cut]) is None, cut
    assert parse_frame(frame[:headers]) is not None


def test_what_is_not_tcp_or_udp_gives_none():
    arp = ethernet(0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes(20))
    icmp = ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 1, bytes(8)))
    hop_by_hop = ethernet(0x86DD, ipv6("::1", "::1", 0, bytes([6, 0]) + bytes(6) + tcp(1, 2, 0, 0, SYN)))
    fragment = bytearray(ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 17, udp(1, 2, b"x"))))
    fragment[14 + 6:14 + 8] = struct.pack("!H", 0x2000)  # "more fragments"
    not_ipv4 = bytearray(ethernet(0x0800, ipv4("127.0.0.1", "127.0.0.1", 6, tcp(1, 2, 0, 0, SYN))))
    not_ipv4[14] = 0x65  # version 6 in an IPv4 frame
    for frame in (arp, icmp, hop_by_hop, bytes(fragment), bytes(not_ipv4), b"", bytes(14)):
        assert parse_frame(frame) is None


def test_tcp_flags_in_header_order():
    assert capture.tcp_flags(SYN | ACK) == "SYN,ACK"
    assert capture.tcp_flags(FIN | PSH | ACK) == "FIN,PSH,ACK"
    assert capture.tcp_flags(RST) == "RST"
    assert capture.tcp_flags(0) == ""


# ---------------------------------------------------------------- text from Segments


def seg(src, dst, flags, seq, ack, length=0, proto="tcp"):
    return Segment(0.0, proto, src, dst, flags, seq, ack, length, b"", 0)


def test_relative_numbers_wrap_around():
    c, s = ("127.0.0.1", 41000), ("127.0.0.1", 7)
    isn_c, isn_s = 2**32 - 2, 100
    segments = [
        seg(c, s, "SYN", isn_c, 0),
        seg(s, c, "SYN,ACK", isn_s, isn_c + 1),
        seg(c, s, "ACK", isn_c + 1, isn_s + 1),
        seg(c, s, "PSH,ACK", isn_c + 1, isn_s + 1, length=5),
        seg(s, c, "ACK", isn_s + 1, (isn_c + 6) % 2**32),
    ]
    assert capture.describe(segments) == [
        "client > server  SYN                  seq=0",
        "server > client  SYN,ACK              seq=0 ack=1",
        "client > server  ACK                  seq=1 ack=1",
        "client > server  PSH,ACK         5 B  seq=1 ack=1",
        "server > client  ACK                  seq=1 ack=6",
    ]


def test_several_clients_are_numbered_and_server_found_by_syn():
    srv, one, two = ("127.0.0.1", 9000), ("127.0.0.1", 50001), ("127.0.0.1", 50002)
    segments = [
        seg(one, srv, "SYN", 10, 0),
        seg(two, srv, "SYN", 20, 0),
        seg(srv, two, "SYN,ACK", 30, 21),
        seg(srv, one, "RST,ACK", 0, 11),
    ]
    assert [line.split("  ")[0] for line in capture.describe(segments)] == [
        "client 1 > server", "client 2 > server", "server > client 2", "server > client 1",
    ]


def test_text_of_nothing():
    assert capture.RecordedCapture([], "2024-01-01", "Linux 6.1").text().splitlines()[1] == \
        "(no packets captured)"


# ---------------------------------------------------------------- recorded capture


def test_load_recorded_is_a_full_exchange():
    recorded = capture.load_recorded()
    assert recorded.live is False
    assert all(isinstance(segment, Segment) for segment in recorded.segments)
    flags = recorded.flags_sequence()
    assert flags[:3] == OPENING
    data = [(direction, segment.length, segment.payload)
            for (direction, _), segment in zip(flags, recorded) if segment.length]
    assert data == [("client > server", 5, b"hello"), ("server > client", 5, b"hello")]
    # Lesson 11's text and state replay describe a four-segment close (FIN-WAIT-2).
    assert flags[-4:] == [("client > server", "FIN,ACK"), ("server > client", "ACK"),
                          ("server > client", "FIN,ACK"), ("client > server", "ACK")]
    first, *rest = recorded.text().splitlines()
    assert re.fullmatch(r"\(recorded on \d{4}-\d\d-\d\d on Linux \S+; not captured live\)", first)
    assert rest == capture.describe(recorded.segments)
    assert all(segment.src[0] == "127.0.0.1" for segment in recorded)  # loopback only


def test_unknown_recording_names_the_known_ones():
    with pytest.raises(ValueError, match="handshake"):
        capture.load_recorded("no-such-capture")


def test_recording_round_trips_through_json():
    segments = [
        Segment(0.25, "tcp", ("::1", 1), ("::1", 2), "PSH,ACK", 1, 2, 3, bytes([0, 200, 255]), 64),
        Segment(0.5, "udp", ("127.0.0.1", 3), ("127.0.0.1", 4), "", None, None, 2, b"hi", None),
    ]
    data = json.loads(json.dumps(capture.recording(segments, "test")))
    assert [capture._segment_from_json(fields) for fields in data["segments"]] == segments


# ---------------------------------------------------------------- not permitted


def test_message_when_not_root():
    message = capture._not_permitted_message(system="Linux", euid=1000)
    assert "AF_PACKET" in message and "CAP_NET_RAW" in message
    assert "you are not root (uid 1000)" in message
    assert f"sudo setcap cap_net_raw+ep {os.path.realpath(sys.executable)}" in message
    assert "private machine" in message and "recorded capture" in message


def test_message_when_root_without_the_capability():
    message = capture._not_permitted_message(system="Linux", euid=0)
    assert "you are root, but this process has no CAP_NET_RAW" in message
    assert "--cap-add=NET_RAW" in message and "recorded capture" in message


def test_message_when_not_linux():
    message = capture._not_permitted_message(system="Darwin")
    assert "only on Linux" in message and "Darwin" in message and "recorded capture" in message


def test_render_traceback_is_the_message():
    exc = CaptureNotPermitted("first line\nsecond line")
    assert exc._render_traceback_() == ["CaptureNotPermitted: first line", "second line"]
    assert isinstance(exc, RuntimeError)


CHILD = textwrap.dedent("""
    import json, os, threading
    from socklab import capture
    out = {"euid": os.geteuid()}
    try:
        capture.Capture()
    except capture.CaptureNotPermitted as exc:
        out["message"] = str(exc)
        out["rendered"] = exc._render_traceback_()
        out["cause"] = type(exc.__cause__).__name__
    out["can_capture"] = capture.can_capture()
    ran = []
    shown = capture.live_or_recorded(ran.append)
    out["live"], out["ran"] = shown.live, bool(ran)
    out["first_line"] = shown.text().splitlines()[0]
    out["threads"] = threading.active_count()
    print(json.dumps(out))
""")


def check_refused(out, who):
    assert out["cause"] == "PermissionError"  # a real EPERM from socket()
    assert who in out["message"] and "CAP_NET_RAW" in out["message"]
    assert out["rendered"][0].startswith("CaptureNotPermitted: packet capture needs")
    assert out["can_capture"] is False
    assert (out["live"], out["ran"]) == (False, False)
    assert out["first_line"].startswith("(recorded on ")
    assert out["threads"] == 1  # nothing started in the background


def python_for_nobody():
    """An interpreter the user nobody may run (the venv's may live under /root)."""
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"]
    for python in dict.fromkeys(candidates):
        try:
            probe = subprocess.run(
                [python, "-c", "import sys; assert sys.version_info >= (3, 10)"],
                user=NOBODY, group=NOBODY, extra_groups=[], cwd="/",
                capture_output=True, timeout=TIMEOUT,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return python
    return None


@pytest.fixture
def socklab_copy_for_nobody():
    """A copy of the socklab package that nobody can read, in a fresh folder of /tmp."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="socklab-capture-"))
    try:
        shutil.copytree(pathlib.Path(socklab.__file__).parent, folder / "socklab",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder)


def test_not_permitted_for_real(socklab_copy_for_nobody):
    """Not root and no CAP_NET_RAW: socket() fails with EPERM and we say why.

    Run by an unprivileged user, this process is the test; run as root (CI), a
    child process started as the user nobody is.
    """
    if not capture.can_capture():
        with pytest.raises(CaptureNotPermitted, match="CAP_NET_RAW") as caught:
            Capture()
        assert isinstance(caught.value.__cause__, PermissionError)
        assert capture.live_or_recorded(lambda cap: None).live is False
        return
    if os.geteuid() != 0:
        pytest.skip("this Python has CAP_NET_RAW (setcap) and cannot start a process as nobody")
    python = python_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter that the user nobody may run")
    child = subprocess.run(
        [python, "-c", CHILD],
        user=NOBODY, group=NOBODY, extra_groups=[], cwd=socklab_copy_for_nobody,
        env={"PYTHONPATH": str(socklab_copy_for_nobody), "PYTHONDONTWRITEBYTECODE": "1",
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    assert out["euid"] == NOBODY
    check_refused(out, f"you are not root (uid {NOBODY})")
    assert "sudo setcap cap_net_raw+ep" in out["message"]


def test_not_permitted_as_root_without_cap_net_raw():
    """Root in a container started with --cap-drop=NET_RAW, made with setpriv."""
    if os.geteuid() != 0:
        pytest.skip("this test drops CAP_NET_RAW from root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    # Without CAP_NET_RAW in the bounding set, root's execve() does not get it.
    child = subprocess.run(
        [setpriv, "--bounding-set=-net_raw", "--", sys.executable, "-c", CHILD],
        capture_output=True, text=True, timeout=60,
    )
    if child.returncode != 0 and child.stderr.startswith("setpriv"):
        pytest.skip(f"setpriv cannot drop the capability here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout)
    check_refused(out, "you are root, but this process has no CAP_NET_RAW")


# ---------------------------------------------------------------- live captures


def talk(address, message):
    """Connect, send ``message``, read the echo, close; return our (client) port."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(message)
        reply = b""
        while len(reply) < len(message):
            part = sock.recv(1024)
            assert part, "the echo server closed early"
            reply += part
    assert reply == message
    return client_port


def line_for(cap, direction, flags, length=None):
    """The text line of the first segment sent in ``direction`` with ``flags``."""
    for (where, what), segment, line in zip(cap.flags_sequence(), cap.segments,
                                            cap.text().splitlines()):
        if (where, what) == (direction, flags) and length in (None, segment.length):
            return line
    raise AssertionError(f"no {direction} {flags} in\n{cap.text()}")


def assert_counted_once(cap):
    """On lo the kernel hands each frame over twice; the capture must keep one."""
    keys = [(s.src, s.dst, s.flags, s.seq, s.ack, s.length) for s in cap.segments]
    assert len(keys) == len(set(keys)), cap.text()


def own_loopback_address():
    """An address of one test's own: all of 127.0.0.0/8 is loopback.

    A capture that keeps one port can still see another worker's traffic: a
    UDP port and a TCP port of the same number are different ports.  Kept to
    an address nobody else uses, it sees only the test's own.
    """
    return f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@live
def test_tcp_handshake_data_and_close(no_leaks):
    host = own_loopback_address()
    with socklab.TCPEchoServer(host=host) as srv, socklab.TCPEchoServer() as other:
        with Capture(servers=[srv], host=host) as cap:
            assert cap in socklab.running()
            client_port = talk(srv.address, b"hello")
            talk(other.address, b"not watched")  # another port: filtered out
            srv.events.wait_for("close", timeout=TIMEOUT)  # its FIN is on the wire
        assert cap not in socklab.running()
    flags = cap.flags_sequence()
    assert flags[:3] == OPENING, cap.text()
    assert all(srv.port in (s.src[1], s.dst[1]) for s in cap.segments)
    assert [f for _, f in flags].count("SYN") == 1
    assert_counted_once(cap)
    data = [(direction, s.length, s.payload) for (direction, _), s in zip(flags, cap) if s.length]
    assert data == [("client > server", 5, b"hello"), ("server > client", 5, b"hello")]
    assert {d for d, f in flags if "FIN" in f} == {"client > server", "server > client"}
    assert flags[-1] == ("client > server", "ACK")

    # Relative sequence numbers, as Wireshark shows them.
    text = cap.text()
    lines = text.splitlines()
    assert re.fullmatch(r"client > server +SYN +seq=0", lines[0])
    assert re.fullmatch(r"server > client +SYN,ACK +seq=0 ack=1", lines[1])
    assert re.fullmatch(r"client > server +ACK +seq=1 ack=1", lines[2])
    assert re.fullmatch(r"client > server +PSH,ACK +5 B +seq=1 ack=1",
                        line_for(cap, "client > server", "PSH,ACK", 5))
    assert re.fullmatch(r"server > client +PSH,ACK +5 B +seq=1 ack=6",
                        line_for(cap, "server > client", "PSH,ACK", 5))
    assert re.fullmatch(r"client > server +FIN,ACK +seq=6 ack=6",
                        line_for(cap, "client > server", "FIN,ACK"))
    assert re.fullmatch(r"server > client +FIN,ACK +seq=6 ack=7",
                        line_for(cap, "server > client", "FIN,ACK"))
    assert re.fullmatch(r"client > server +ACK +seq=7 ack=7", lines[-1])
    assert repr(cap) == text
    for port in (srv.port, client_port):
        assert not re.search(rf"\b{port}\b", text)
    times = [s.time for s in cap]
    assert times == sorted(times) and 0 <= times[0] < TIMEOUT
    assert cap.dropped == 0


@live
def test_the_drain_catches_what_the_server_sends_after_the_block():
    with socklab.TCPEchoServer() as srv:
        with Capture(servers=[srv]) as cap:
            talk(srv.address, b"hi")
            # No waiting for the server: its FIN comes after the block has ended.
        srv.events.wait_for("close", timeout=TIMEOUT)
    assert ("server > client", "FIN,ACK") in cap.flags_sequence(), cap.text()


@live
def test_udp_datagrams(no_leaks):
    messages = [b"a", b"hello", bytes(100)]
    host = own_loopback_address()
    with Capture(host=host) as cap:
        with socklab.UDPEchoServer(host=host) as srv:
            cap.ports.add(srv.port)  # a port may be added once the server exists
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.connect(srv.address)
                for message in messages:
                    sock.send(message)
                    assert sock.recv(1024) == message
    segments = cap.segments
    assert [s.proto for s in segments] == ["udp"] * 6
    assert [s.length for s in segments] == [1, 1, 5, 5, 100, 100]
    assert cap.flags_sequence() == [("client > server", ""), ("server > client", "")] * 3
    assert segments[2].payload == b"hello" and segments[4].payload == bytes(64)
    assert cap.text().splitlines()[:2] == [
        "client > server  UDP             1 B",
        "server > client  UDP             1 B",
    ]


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@live
@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_tcp_over_ipv6():
    with socklab.TCPEchoServer(host="::1") as srv:
        with Capture(servers=[srv], host="::1") as cap:
            talk(srv.address, b"over six")
            srv.events.wait_for("close", timeout=TIMEOUT)
    assert cap.flags_sequence()[:3] == OPENING
    assert {s.src[0] for s in cap} == {"::1"}
    assert [s.length for s in cap if s.length] == [8, 8]
    assert_counted_once(cap)


@live
def test_so_linger_zero_resets_the_connection():
    with socklab.TCPEchoServer() as srv:
        with Capture(servers=[srv]) as cap:
            sock = socket.create_connection(srv.address, timeout=TIMEOUT)
            srv.events.wait_for("accept", timeout=TIMEOUT)
            # Linger on, for 0 seconds: close() throws the connection away with RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            srv.events.wait_for("close", timeout=TIMEOUT)
    flags = cap.flags_sequence()
    assert flags[:3] == OPENING
    direction, last = flags[-1]
    assert direction == "client > server" and "RST" in last.split(","), cap.text()
    assert not any("FIN" in f for _, f in flags)


@live
def test_stop_is_bounded_idempotent_and_leaves_nothing(no_leaks):
    cap = Capture(ports=[9])  # port 9 (discard): nothing on this machine uses it
    assert cap.alive and cap in socklab.running()
    started = time.monotonic()
    cap.stop()
    assert time.monotonic() - started < capture.DRAIN_LIMIT + 1.0
    cap.stop()  # a second stop does nothing
    assert not cap.alive and cap not in socklab.running()
    assert cap.segments == [] and cap.text() == "(no packets captured)"


@live
def test_stop_all_ends_a_forgotten_capture(no_leaks):
    cap = Capture(ports=[9])
    assert socklab.stop_all() == 1
    assert not cap.alive


@live
def test_live_or_recorded_captures_live_when_it_can():
    def exchange(cap):
        with socklab.TCPEchoServer() as srv:
            cap.ports.add(srv.port)
            talk(srv.address, b"hello")
            srv.events.wait_for("close", timeout=TIMEOUT)

    shown = capture.live_or_recorded(exchange)
    assert shown.live is True
    assert shown.flags_sequence()[:3] == OPENING
    assert not shown.text().startswith("(recorded")


@live
def test_the_socket_really_is_bound_to_lo_only(no_leaks):
    """What the capture reads comes from lo: every address in it is a loopback one."""
    with socklab.TCPEchoServer() as srv, Capture() as cap:  # no filter at all
        talk(srv.address, b"x")
        srv.events.wait_for("close", timeout=TIMEOUT)
    addresses = {s.src[0] for s in cap} | {s.dst[0] for s in cap}
    assert addresses and all(a == "::1" or a.startswith("127.") for a in addresses), addresses


# ---------------------------------------------------------------- the kernel filter


def test_port_filter_keeps_everything_without_ports():
    assert capture.port_filter([]) == [(capture.BPF_RET, 0, 0, capture.KEEP_ALL)]
    too_many = range(1000, 1001 + capture.MAX_FILTERED_PORTS)
    assert capture.port_filter(too_many) == capture.port_filter([])


def test_port_filter_jumps_land_inside_the_program():
    program = capture.port_filter([5000, 6000])
    assert program[-2:] == [(capture.BPF_RET, 0, 0, 0), (capture.BPF_RET, 0, 0, capture.KEEP_ALL)]
    for index, (code, jt, jf, k) in enumerate(program):
        if code in (capture.BPF_JEQ, capture.BPF_JSET):
            assert index + 1 + max(jt, jf) < len(program)
    jeq_ports = [k for code, _, _, k in program if code == capture.BPF_JEQ and k in (5000, 6000)]
    assert jeq_ports == [5000, 6000] * 4  # source and destination, IPv4 and IPv6


@live
def test_the_kernel_queues_only_the_ports_asked_for(no_leaks):
    """Frames of other ports never reach the reader, from the first one on."""
    with socklab.TCPEchoServer() as srv, socklab.TCPEchoServer() as other, \
            socklab.UDPEchoServer() as later:
        with Capture(servers=[srv]) as cap:
            talk(other.address, b"not for us")
            talk(srv.address, b"for us")
            srv.events.wait_for("close", timeout=TIMEOUT)
            cap.ports.add(later.port)  # the kernel's filter follows the set
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendto(b"late", later.address)
                assert sock.recv(100) == b"late"
            other.events.wait_for("close", timeout=TIMEOUT)
    found = {port for s in cap._found for port in (s.src[1], s.dst[1])}
    assert other.port not in found and {srv.port, later.port} <= found
    assert [s.length for s in cap.segments if s.proto == "udp"] == [4, 4]
    assert [flags for _, flags in cap.flags_sequence()][:3] == ["SYN", "SYN,ACK", "ACK"]


@live
def test_a_queue_flooded_before_the_ports_were_known_still_gets_the_handshake():
    """Another learner's bulk transfer fills the capture's queue before
    cap.ports.add() (the reader thread, starved on a busy machine, is held here
    by the capture's own lock): adding the port empties the queue, so the
    handshake that follows still finds room."""
    with Capture() as cap:
        with cap._lock:  # the reader thread stops at the first frame it would keep
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bulk:
                sink.bind(("127.0.0.1", 0))  # never read: lo carries the frames anyway
                for _ in range(600):  # 36 MB: more than the capture's queue
                    bulk.sendto(bytes(60_000), sink.getsockname())
            with socklab.TCPEchoServer() as other:
                cap.ports.add(other.port)
                talk(other.address, b"hello")
                other.events.wait_for("close", timeout=TIMEOUT)
        cap.stop()
    assert cap.flags_sequence()[:3] == OPENING
