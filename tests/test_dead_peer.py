"""Lesson 08, "Detecting a dead peer": the claims its cells make, on real sockets.

socklab.explore.deafen() makes the far end of a loopback connection vanish (a
socket filter drops all it receives).  Keepalive (idle 1 s, interval 1 s, 2
probes) must then end the idle near end with ETIMEDOUT in 2 to 5 s, as the lesson
states, and TCP_USER_TIMEOUT (1 s) a sending one within 3 s; keepalive must not end
a connection to a program that merely hangs.  The same as user nobody, in the
socklab kernel's own kind of network (a user and network namespace of its own),
where a learner on a shared machine runs the lesson.

The times are limits on waiting for an event (the kernel's verdict), never sleeps.
"""

import errno
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest

from socklab import explore

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON_08 = ROOT / "notebooks" / "en" / "08-options-and-more.ipynb"

KEEPALIVE = ((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
             (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1),
             (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1),
             (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2))


def vanished_pair():
    """As in the lesson: a loopback connection whose far end is then deafened."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        near = socket.create_connection(listener.getsockname(), timeout=10)
        far, _ = listener.accept()
    explore.deafen(far)
    return near, far


def wait_for_the_end(near):
    """(the OSError recv() raised, or None; seconds it took)."""
    started = time.monotonic()
    try:
        near.recv(1024)
    except OSError as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_keepalive_ends_an_idle_connection_to_a_vanished_peer_in_2_to_5_s():
    near, far = vanished_pair()
    with near, far:
        for option in KEEPALIVE:
            near.setsockopt(*option)
        exc, took = wait_for_the_end(near)
    assert exc is not None and exc.errno == errno.ETIMEDOUT, exc
    assert 2 <= took < 5, took


def test_user_timeout_ends_a_sending_connection_to_a_vanished_peer_within_3_s():
    near, far = vanished_pair()
    with near, far:
        near.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
        near.sendall(b"anyone?")
        exc, took = wait_for_the_end(near)
    assert exc is not None and exc.errno == errno.ETIMEDOUT, exc
    assert took < 3, took


def test_without_keepalive_the_idle_connection_stays_established():
    near, far = vanished_pair()
    with near, far:
        near.settimeout(1.5)
        exc, _ = wait_for_the_end(near)
        state = near.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    assert isinstance(exc, TimeoutError) and exc.errno is None, exc
    assert explore.TCP_STATES[state] == "ESTAB"


def test_a_deafened_socket_acknowledges_nothing_and_other_sockets_are_untouched():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        near = socket.create_connection(listener.getsockname(), timeout=5)
        far, _ = listener.accept()
        explore.deafen(far)
        other = socket.create_connection(listener.getsockname(), timeout=5)
        other_far, _ = listener.accept()
        with near, far, other, other_far:
            near.sendall(b"lost")
            other.sendall(b"heard")
            assert other_far.recv(100) == b"heard"   # a new socket: no filter
            far.settimeout(0.5)
            with pytest.raises(TimeoutError):
                far.recv(100)                        # the filter dropped b"lost"
            # tcpi_unacked (struct tcp_info, <linux/tcp.h>: offset 24): the
            # segment is still unacknowledged, and is being sent again.
            info = near.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            assert int.from_bytes(info[24:28], sys.byteorder) == 1


def test_keepalive_does_not_end_a_connection_to_a_program_that_hangs():
    # A listener that never accepts: its kernel answers the probes.
    with socket.create_server(("127.0.0.1", 0)) as hung, \
            socket.create_connection(hung.getsockname(), timeout=4) as near:
        for option in KEEPALIVE:
            near.setsockopt(*option)
        exc, _ = wait_for_the_end(near)   # keepalive would have ended it in 3 s
    assert isinstance(exc, TimeoutError) and exc.errno is None, exc


AS_A_LEARNER = textwrap.dedent("""
    import errno, os, socket, time
    from socklab import explore
    with socket.create_server(("127.0.0.1", 0)) as listener:
        near = socket.create_connection(listener.getsockname(), timeout=10)
        far, _ = listener.accept()
    explore.deafen(far)
    for level, name, value in %r:
        near.setsockopt(level, name, value)
    started = time.monotonic()
    try:
        near.recv(1024)
    except OSError as exc:
        print(errno.errorcode.get(exc.errno), 2 <= time.monotonic() - started < 5)
""") % (KEEPALIVE,)


def run_as_nobody(argv, tmp_path, **options):
    import unprivileged  # tests/: root only, so imported here

    if not unprivileged.can_become_nobody():
        pytest.skip("this test runs as nobody; it needs to start as root")
    return unprivileged.run(argv, tmp_path, capture_output=True, text=True, timeout=60,
                            cwd=ROOT, **options)


def test_as_nobody_in_a_network_of_its_own_keepalive_finds_the_peer_in_2_to_5_s(tmp_path):
    """Where a learner's socklab kernel runs: root of a user namespace, own network."""
    code = ("from socklab import explore\n"
            f"print(explore.in_new_network({AS_A_LEARNER!r}), end='')\n")
    child = run_as_nobody([sys.executable, "-c", code], tmp_path)
    if "NoNewNetwork" in child.stderr:
        pytest.skip(child.stderr.strip().splitlines()[-1])
    assert child.returncode == 0, child.stderr
    assert child.stdout == "ETIMEDOUT True\n"


def lesson_08(*ids):
    cells = {cell.id: cell.source for cell in nbformat.read(LESSON_08, as_version=4).cells}
    return [cells[i] for i in ids]


PY_CELLS = ("83249fbb", "8389a436", "8f7d992a")  # wait, keepalive, user timeout
C_CELL = "7306f8e9"                               # %%c dead_peer


def test_as_nobody_in_this_network_the_lesson_shows_it_or_says_why(tmp_path):
    """Without CAP_NET_ADMIN (a socklab kernel refused its own network), recent
    kernels refuse a filter on a TCP socket: the cells must say so, not fail."""
    code = "import errno, socket, time\nimport socklab\n" + "\n".join(lesson_08(*PY_CELLS))
    (tmp_path / "py").mkdir()
    child = run_as_nobody([sys.executable, "-c", code], tmp_path / "py")
    assert child.returncode == 0, child.stderr
    refused = ("not shown live here: this Linux lets only a process with the "
               "capability CAP_NET_ADMIN put a filter on a TCP socket")
    if refused in child.stdout:
        assert child.stdout.count(refused) == 3, child.stdout
        assert "a network of its own, which it has not here" in child.stdout
    else:  # an older kernel: anyone may filter their own socket
        assert "after 2 to 5 s: True" in child.stdout, child.stdout
        assert "within 3 s: True" in child.stdout, child.stdout

    # The C program: its own words, and exit status 0.
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    build = tmp_path / "build"
    build.mkdir(mode=0o755)
    source = lesson_08(C_CELL)[0].split("\n", 1)[1]
    (build / "dead_peer.c").write_text(source)
    shutil.copy(ROOT / "socklab" / "include" / "socklab.h", build)
    subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o",
                    str(build / "dead_peer"), str(build / "dead_peer.c")], check=True)
    (tmp_path / "c").mkdir()
    child = run_as_nobody([str(build / "dead_peer")], tmp_path / "c", reach=[build])
    assert child.returncode == 0, child.stdout + child.stderr
    assert child.stdout in (
        "not shown live here: filtering a TCP socket needs the capability CAP_NET_ADMIN\n",
        "keepalive: recv() = -1, errno ETIMEDOUT; within 5 s: yes\n"
        "TCP_USER_TIMEOUT: recv() = -1, errno ETIMEDOUT; within 3 s: yes\n"), child.stdout
