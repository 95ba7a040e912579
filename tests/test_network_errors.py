"""socklab.explore.in_new_network(): lesson 06's network errors, in a network of their own.

Each test makes the namespace for real; where this machine refuses one, the test
says why and skips (the lesson then says the same in words).
"""

import errno
import shutil
import socket
import subprocess
import sys

import pytest

import socklab
from socklab import explore


def run_or_skip(code, **options):
    try:
        return explore.in_new_network(code, **options)
    except explore.NoNewNetwork as why:
        pytest.skip(str(why))


def test_the_new_network_has_only_a_loopback_and_no_route_out():
    printed = run_or_skip(
        "import socket\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
        "with socket.socket() as s:\n"
        "    try:\n"
        "        s.connect(('192.0.2.1', 80))\n"  # TEST-NET-1: no route, nothing sent
        "    except OSError as exc:\n"
        "        print(exc.errno)\n")
    assert printed == f"['lo']\n{errno.ENETUNREACH}\n"


def test_an_unreachable_route_gives_no_route_to_host():
    printed = run_or_skip(
        "import socket, subprocess\n"
        "subprocess.run(['ip', 'route', 'add', 'unreachable', '198.51.100.0/24'], check=True)\n"
        "with socket.socket() as s:\n"
        "    try:\n"
        "        s.connect(('198.51.100.1', 80))\n"
        "    except OSError as exc:\n"
        "        print(exc.errno)\n", needs=["ip"])
    assert printed == f"{errno.EHOSTUNREACH}\n"


def test_what_the_snippet_changes_stays_in_its_network():
    run_or_skip("import subprocess\n"
                "subprocess.run(['ip', 'link', 'set', 'lo', 'down'], check=True)\n",
                needs=["ip"])
    with socklab.TCPEchoServer() as srv, socket.create_connection(srv.address, timeout=5) as s:
        s.sendall(b"still here")  # this process's loopback is up as before
        assert s.recv(100) == b"still here"


def test_a_missing_program_is_named_before_anything_runs():
    with pytest.raises(explore.NoNewNetwork, match="no-such-program"):
        explore.in_new_network("raise SystemExit(3)", needs=["no-such-program"])


def test_a_failing_snippet_raises_with_its_error_output():
    try:
        explore.in_new_network("1 / 0")
    except explore.NoNewNetwork as why:
        pytest.skip(str(why))
    except RuntimeError as exc:
        assert "ZeroDivisionError" in str(exc)
    else:
        pytest.fail("no error for a failing snippet")


# A user namespace whose limit of network namespaces is 0, as a distribution
# that refuses them would have it: in_new_network() must say why, in words.
NO_NETWORKS = "echo 0 > /proc/sys/user/max_net_namespaces && exec \"$@\""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1) here")
def test_where_network_namespaces_are_refused_it_says_why():
    code = ("from socklab import explore\n"
            "try:\n"
            "    explore.in_new_network('print(1)')\n"
            "except explore.NoNewNetwork as why:\n"
            "    print(why)\n")
    done = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", NO_NETWORKS,
                           "sh", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and done.stderr.startswith(("unshare", "sh")):
        pytest.skip(f"no user namespace for the test here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no network namespace here:")
    assert "user.max_net_namespaces" in done.stdout
