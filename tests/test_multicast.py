"""Lesson 07, broadcast and multicast: the claims its cells make, on real sockets.

One datagram to a multicast group on lo reaches every member (a C program and
Python sockets), members share the group's port with SO_REUSEADDR, a sender picks
lo with IP_MULTICAST_IF; a broadcast to 127.255.255.255 needs SO_BROADCAST to be
sent, not to be received.  Also as user nobody, in this network and in a network
of its own (where a learner's socklab kernel runs).

Every socket sends through lo (IP_MULTICAST_IF 127.0.0.1, TTL 1) to a group of
the administratively scoped block (RFC 2365); every port is the kernel's choice.
"""

import errno
import os
import pathlib
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import textwrap

import nbformat
import pytest

from socklab import explore

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON_07 = ROOT / "notebooks" / "en" / "07-udp.ipynb"
GROUP = "239.255.0.7"  # the lesson's group
TIMEOUT = 5  # seconds a member waits for a datagram on loopback: an event, not a pause


def member(port=0):
    """A socket that joined GROUP on lo, bound to GROUP:port with SO_REUSEADDR."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((GROUP, port))
    mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sock.settimeout(TIMEOUT)
    return sock


def sender(loop=1):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, loop)
    return sock


def test_one_datagram_reaches_every_member_on_one_port():
    with member() as first:
        port = first.getsockname()[1]
        with member(port) as second, member(port) as third, sender() as tx:
            assert tx.sendto(b"to all", (GROUP, port)) == 6
            assert [m.recv(100) for m in (first, second, third)] == [b"to all"] * 3


def test_a_member_without_so_reuseaddr_cannot_share_the_port():
    with member() as first, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as late:
        with pytest.raises(OSError) as refused:
            late.bind((GROUP, first.getsockname()[1]))
    assert refused.value.errno == errno.EADDRINUSE


def test_a_new_socket_has_loop_and_ttl_1_and_loop_0_still_delivers_on_lo():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh:
        assert fresh.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 1
        assert fresh.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 1
    with member() as m, sender(loop=0) as tx:
        tx.sendto(b"loop is off", (GROUP, m.getsockname()[1]))
        assert m.recv(100) == b"loop is off"


def test_joining_a_unicast_address_is_refused_with_einval():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        mreq = struct.pack("4s4s", socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
        with pytest.raises(OSError) as refused:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    assert refused.value.errno == errno.EINVAL  # man 7 ip, IP_ADD_MEMBERSHIP


def test_broadcast_needs_so_broadcast_to_send_but_not_to_receive():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as everyone, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        everyone.bind(("127.255.255.255", 0))
        everyone.settimeout(TIMEOUT)
        with pytest.raises(PermissionError) as refused:
            tx.sendto(b"no flag", everyone.getsockname())
        assert refused.value.errno == errno.EACCES
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        tx.sendto(b"flag", everyone.getsockname())
        assert everyone.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
        assert everyone.recv(100) == b"flag"  # the refused one was never sent


def lesson_07_c(name):
    """The C source of the lesson's `%%c name` cell, without the magic line."""
    for cell in nbformat.read(LESSON_07, as_version=4).cells:
        first, _, source = cell.source.partition("\n")
        if first.startswith(f"%%c {name} "):
            return source
    raise LookupError(name)


@pytest.fixture
def built(tmp_path):
    """The lesson's C receiver and sender, compiled as the course compiles them."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    build = tmp_path / "build"
    build.mkdir(mode=0o755)
    shutil.copy(ROOT / "socklab" / "include" / "socklab.h", build)
    for name in ("mcast_receiver", "mcast_sender"):
        (build / f"{name}.c").write_text(lesson_07_c(name))
        subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o",
                        str(build / name), str(build / f"{name}.c")], check=True)
    return build


def next_line(pipe, timeout=TIMEOUT):
    """The next line a program prints, waiting at most `timeout` s for it."""
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([pipe], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no whole line within {timeout} s: {line!r}")
        byte = os.read(pipe.fileno(), 1)  # one byte: nothing of the next line
        if not byte:
            break
        line += byte
    return line.decode()


def test_the_lessons_c_member_and_a_python_member_get_one_datagram_from_c(built):
    receiver = subprocess.Popen([str(built / "mcast_receiver"), GROUP],
                                stdout=subprocess.PIPE)
    try:
        port = int(re.fullmatch(r"LISTENING (\d+)\n", next_line(receiver.stdout))[1])
        with member(port) as py_member:
            sent = subprocess.run([str(built / "mcast_sender"), GROUP, str(port)],
                                  capture_output=True, text=True, timeout=TIMEOUT)
            assert sent.stdout == "sendto() = 21: one datagram to the group\n", sent.stderr
            assert py_member.recv(100) == b"hello, group (from C)"
            assert next_line(receiver.stdout) == 'C receiver got 21 bytes: "hello, group (from C)"\n'
    finally:
        receiver.kill()
        receiver.wait(timeout=TIMEOUT)


AS_A_LEARNER = textwrap.dedent("""
    import socket, struct
    GROUP = "239.255.0.7"
    def member(port=0):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((GROUP, port))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     struct.pack("4s4s", socket.inet_aton(GROUP),
                                 socket.inet_aton("127.0.0.1")))
        s.settimeout(5)
        return s
    first = member()
    port = first.getsockname()[1]
    second = member(port)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    tx.sendto(b"hello", (GROUP, port))
    print(first.recv(100), second.recv(100))
    everyone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    everyone.bind(("127.255.255.255", 0))
    everyone.settimeout(5)
    try:
        tx.sendto(b"x", everyone.getsockname())
    except PermissionError:
        print("EACCES")
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.sendto(b"all", everyone.getsockname())
    print(everyone.recv(100))
""")


@pytest.mark.parametrize("where", ["this network", "a network of its own"])
def test_as_nobody_multicast_and_broadcast_work_on_lo(tmp_path, where):
    import unprivileged  # tests/: root only, so imported here

    if not unprivileged.can_become_nobody():
        pytest.skip("this test runs as nobody; it needs to start as root")
    code = AS_A_LEARNER
    if where == "a network of its own":  # as in the socklab kernel of a learner
        code = ("from socklab import explore\n"
                f"print(explore.in_new_network({AS_A_LEARNER!r}), end='')\n")
    child = unprivileged.run([sys.executable, "-c", code], tmp_path, capture_output=True,
                             text=True, timeout=60, cwd=ROOT)
    if "NoNewNetwork" in child.stderr:
        pytest.skip(child.stderr.strip().splitlines()[-1])
    assert child.returncode == 0, child.stderr
    assert child.stdout == "b'hello' b'hello'\nEACCES\nb'all'\n"


def test_the_private_network_has_no_route_for_the_group_and_needs_none():
    """In a fresh network (only lo, no route): IP_MULTICAST_IF alone makes it work."""
    try:
        printed = explore.in_new_network(AS_A_LEARNER + textwrap.dedent("""
            bare = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                bare.sendto(b"x", (GROUP, port))   # no IP_MULTICAST_IF, no route
            except OSError as exc:
                print(exc.errno)
        """))
    except explore.NoNewNetwork as why:
        pytest.skip(str(why))
    assert printed == f"b'hello' b'hello'\nEACCES\nb'all'\n{errno.ENETUNREACH}\n"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_the_lessons_c_member_survives_hostile_datagrams():
    """tests/test_c_servers.py attacks servers at 127.0.0.1; this member listens on
    its group: the same kind of attack (empty, the largest, binary, many senders),
    sent to the group, with AddressSanitizer and UBSan watching."""
    from socklab import c

    c.compile(lesson_07_c("mcast_receiver"), "attacked_07_mcast_receiver", sanitize=True)
    program = c.start("attacked_07_mcast_receiver", [GROUP], ready_timeout=10)
    try:
        with sender() as tx:
            for datagram in (b"", bytes(65507), b"\xff\x00" * 50):
                tx.sendto(datagram, (GROUP, program.port))
            for _ in range(50):  # senders gone at once
                with sender() as gone:
                    gone.sendto(b"bye", (GROUP, program.port))
            tx.sendto(b"still there?", (GROUP, program.port))
        program.wait_for_output('got 12 bytes: "still there?"', timeout=TIMEOUT)
        assert program.alive
        assert program.sanitizer_report() is None
        assert "got 0 bytes" in program.output      # the empty datagram, printed
        assert "got 1500 bytes" in program.output   # the largest, cut to the buffer
    finally:
        program.stop(quiet=True)
