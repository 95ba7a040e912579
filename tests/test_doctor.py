"""Tests for `python -m socklab doctor`.

The doctor's checks are real (they connect, compile, trace), so these tests are real
too: no socket or subprocess is mocked.  Where the answer depends on the machine (is
gcc installed? are we root?), the test says so and skips with the reason.
"""

import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys

import pytest

from socklab import c, capture, doctor, icmp, measure, trace

EXPECTED_NAMES = [
    "python", "socklab", "container", "loopback IPv4", "loopback IPv6", "gcc", "OpenSSL",
    "strace",
    "private network", "raw sockets", "AF_PACKET capture", "somaxconn", "ping_group_range",
    "ip_local_port_range", "ss", "iperf3",
    "jupyterlab", "ipykernel", "ipywidgets", "matplotlib", "nbval",
]
SUBPROCESS_TIMEOUT = 120  # the doctor compiles and traces; generous for a slow CI box
IS_LINUX = sys.platform.startswith("linux")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checks():
    """Run the doctor once for the whole module: it compiles and traces, which takes time."""
    return {check.name: check for check in doctor.run_all()}


def run_doctor_command(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "socklab", *args], capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT, env=env, cwd=cwd)


# -- The records ----------------------------------------------------------------------

def test_run_all_returns_every_check_in_order(checks):
    assert list(checks) == EXPECTED_NAMES
    assert [name for name, _ in doctor.CHECKS] == EXPECTED_NAMES


def test_every_check_is_a_well_formed_record(checks):
    for check in checks.values():
        assert isinstance(check, doctor.Check)
        assert check.status in (doctor.OK, doctor.WARN, doctor.MISSING), check
        assert check.detail, f"{check.name} says nothing about what it found"


def test_a_failing_check_always_says_how_to_fix_it(checks):
    for check in checks.values():
        if check.status == doctor.OK:
            assert check.fix == "", f"{check.name} is ok but has a fix: {check.fix!r}"
        else:
            assert check.fix.strip(), f"{check.name} is {check.status} with no fix"


def test_a_crashing_check_becomes_a_warning(monkeypatch):
    def broken_check():
        raise ValueError("something unexpected")

    monkeypatch.setattr(doctor, "CHECKS", [("broken", broken_check)])
    [check] = doctor.run_all()
    assert check.name == "broken"
    assert check.status == doctor.WARN
    assert "ValueError: something unexpected" in check.detail
    assert check.fix


# -- What must work on this machine ---------------------------------------------------

def test_python_and_socklab_are_ok(checks):
    assert checks["python"].status == doctor.OK
    assert checks["socklab"].status == doctor.OK


def test_loopback_ipv4_echo_works(checks):
    assert checks["loopback IPv4"].status == doctor.OK, checks["loopback IPv4"]


def test_loopback_ipv6_is_ok_or_explains_why_not(checks):
    check = checks["loopback IPv6"]
    assert check.status in (doctor.OK, doctor.WARN)
    if check.status == doctor.WARN:
        assert "::1" in check.detail or "IPv6" in check.detail


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed on this machine")
def test_gcc_compiles_and_runs(checks):
    check = checks["gcc"]
    assert check.status == doctor.OK, check
    assert "gcc" in check.detail.lower()


@pytest.mark.skipif(shutil.which("strace") is None,
                    reason="strace is not installed on this machine")
def test_strace_can_trace(checks):
    check = checks["strace"]
    assert check.status == doctor.OK, check
    assert "strace" in check.detail


@pytest.mark.skipif(not IS_ROOT, reason="raw sockets need root; this test is not root")
def test_raw_sockets_are_permitted_for_root(checks):
    assert checks["raw sockets"].status == doctor.OK, checks["raw sockets"]
    assert "root" in checks["raw sockets"].detail


@pytest.mark.skipif(not IS_ROOT or not IS_LINUX,
                    reason="AF_PACKET needs Linux and root; one of them is missing here")
def test_packet_capture_is_permitted_for_root(checks):
    assert checks["AF_PACKET capture"].status == doctor.OK, checks["AF_PACKET capture"]


@pytest.mark.skipif(not IS_LINUX, reason="the kernel settings are read from Linux's /proc")
def test_somaxconn_shows_the_kernel_value(checks):
    with open("/proc/sys/net/core/somaxconn") as f:
        value = f.read().strip()
    assert checks["somaxconn"].status == doctor.OK
    assert checks["somaxconn"].detail.startswith(value + ":")
    assert "capped" in checks["somaxconn"].detail


@pytest.mark.skipif(not IS_LINUX, reason="ICMP ping sockets are a Linux feature")
def test_ping_group_range_agrees_with_a_real_ping_socket(checks):
    # The doctor decides from the groups; the kernel decides when we open the socket.
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        kernel_allows = True
    except PermissionError:
        kernel_allows = False
    expected = doctor.OK if kernel_allows else doctor.WARN
    assert checks["ping_group_range"].status == expected, checks["ping_group_range"]


def test_jupyter_packages_show_a_version_or_not_installed(checks):
    for package in doctor.LAB_PACKAGES:
        check = checks[package]
        if check.status == doctor.OK:
            assert re.match(r"\d+\.\d+", check.detail), check
        else:
            assert check.detail == "not installed" and "pip install" in check.fix


# -- The doctor asks socklab's own code -----------------------------------------------

@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed on this machine")
def test_the_gcc_check_builds_with_the_flags_of_a_c_cell(monkeypatch):
    # A %%c cell links with c.LIBS (-pthread): a doctor with its own copy of the
    # flags said "ok" for a command the cells do not run.
    monkeypatch.setattr(c, "LIBS", [*c.LIBS, "-lsocklab_no_such_library"])
    check = doctor.check_gcc()
    assert check.status == doctor.MISSING, check
    assert "cannot find -lsocklab_no_such_library" in check.fix  # gcc's own words


@pytest.mark.skipif(not IS_LINUX, reason="packet capture and /proc/sys are Linux only")
def test_privileges_and_settings_are_socklabs_own_answers(monkeypatch):
    monkeypatch.setattr(capture, "can_capture", lambda: False)
    assert doctor.check_packet_capture().status == doctor.WARN
    monkeypatch.setattr(capture, "can_capture", lambda: True)
    assert doctor.check_packet_capture().status == doctor.OK
    refused = icmp.privileges()._replace(raw_icmp="EPERM")
    monkeypatch.setattr(icmp, "privileges", lambda: refused)
    assert doctor.check_raw_socket().status == doctor.WARN
    monkeypatch.setattr(icmp, "read_sysctl", {"net.core.somaxconn": "7"}.get)
    assert doctor.check_somaxconn().detail.startswith("7: ")


@pytest.mark.skipif(not IS_ROOT, reason="the case of root without CAP_NET_RAW needs root")
def test_root_without_cap_net_raw_is_told_apart(monkeypatch):
    monkeypatch.setattr(icmp, "has_cap_net_raw", lambda: False)
    assert doctor.why_allowed() == "running as root, but without CAP_NET_RAW"


def test_the_python_version_socklab_needs_is_the_same_everywhere(monkeypatch):
    """The checks catch socket timeouts as TimeoutError: one class only from 3.10."""
    assert doctor.MIN_PYTHON >= (3, 10)
    major, minor = doctor.MIN_PYTHON
    assert f'requires-python = ">={major}.{minor}"' in (ROOT / "pyproject.toml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert f"sys.version_info < ({major}, {minor})" in makefile
    assert f"socklab needs Python {major}.{minor} or newer" in makefile
    monkeypatch.setattr(doctor, "MIN_PYTHON", (99, 0))
    check = doctor.check_python()
    assert check.status == doctor.WARN and "Python 99.0 or newer" in check.fix


# -- Containers: the engine's marks, and the flag each fix names ----------------------
# Each case is a folder laid out as a root file system with the marks an engine
# leaves (files, /proc/1/cgroup), and the environment a process there would see.
# Measured in real containers by `make test-image` (tools/image/test-image.sh).

CGROUP_V1_DOCKER = "12:pids:/docker/0123abcd\n0::/docker/0123abcd\n"
CGROUP_V1_KUBE = "11:memory:/kubepods/burstable/pod0123/abcd\n"
CGROUP_V2_PRIVATE = "0::/\n"   # a cgroup namespace of its own: nothing to tell


def fake_root(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("files, environ, expected", [
    ({"proc/1/cgroup": CGROUP_V2_PRIVATE}, {}, None),
    ({}, {}, None),   # no /proc at all
    ({".dockerenv": ""}, {}, ("Docker", "/.dockerenv")),
    ({"run/.containerenv": ""}, {}, ("Podman", "/run/.containerenv")),
    ({"proc/1/cgroup": CGROUP_V2_PRIVATE}, {"container": "podman"},
     ("podman", "container=podman is set")),
    ({"proc/1/cgroup": CGROUP_V1_DOCKER}, {},
     ("Docker", "/proc/1/cgroup says /docker/0123abcd")),
    ({"proc/1/cgroup": CGROUP_V1_KUBE}, {},
     ("Kubernetes", "/proc/1/cgroup says /kubepods/burstable/pod0123/abcd")),
    ({".dockerenv": ""}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
     ("Kubernetes", "KUBERNETES_SERVICE_HOST is set")),
])
def test_a_container_is_told_by_the_marks_its_engine_leaves(tmp_path, files, environ,
                                                             expected):
    assert doctor.container(fake_root(tmp_path, files), environ) == expected


def test_the_container_row_names_the_engine_or_says_none():
    check = doctor.check_container()
    found = doctor.container()
    assert check.status == doctor.OK
    if found is None:
        assert check.detail.startswith("not in a container")
    else:
        assert check.detail.startswith(f"{found[0]} ({found[1]})")


def test_each_engine_is_told_its_own_words_for_a_flag():
    assert doctor.container_fix("Docker", doctor.SECCOMP_FLAG) == (
        "start the container with `docker run --security-opt seccomp=unconfined ...`")
    assert doctor.container_fix("Podman", doctor.NET_RAW_FLAG) == (
        "start the container with `podman run --cap-add NET_RAW ...`")
    assert doctor.container_fix("Docker", doctor.SYSTEMPATHS_FLAG) == (
        "start the container with `docker run --security-opt systempaths=unconfined ...`")
    assert doctor.container_fix("Docker", doctor.SECCOMP_FLAG, doctor.SYSTEMPATHS_FLAG) == (
        "start the container with `docker run --security-opt seccomp=unconfined"
        " --security-opt systempaths=unconfined ...`")
    assert doctor.container_fix("Kubernetes", doctor.SECCOMP_FLAG, doctor.SYSTEMPATHS_FLAG) == (
        "add to the securityContext of the pod's container:"
        " seccompProfile: {type: Unconfined}, procMount: Unmasked")
    assert "add: [NET_RAW]" in doctor.container_fix("Kubernetes", doctor.NET_RAW_FLAG)


@pytest.mark.skipif(not IS_LINUX, reason="/proc/sys is Linux only")
def test_a_read_only_proc_sys_is_told_as_its_mount_says():
    # Container engines mount /proc/sys read-only, on its own; elsewhere it is part
    # of /proc, read-write.  The last mount on a path is the one that counts.
    mounts = [line.split() for line in open("/proc/self/mounts")]
    options = [fields[3].split(",") for fields in mounts if fields[1] == "/proc/sys"]
    assert doctor.proc_sys_read_only() is (bool(options) and "ro" in options[-1])


def test_raw_sockets_in_a_container_get_the_flag_that_helps_that_user():
    lesson = "Lesson 11 (raw sockets, ICMP echo)"
    # Root without CAP_NET_RAW: the engine dropped it; adding it back is the fix.
    fix = doctor.privilege_fix_in_container(lesson, "Docker", 0, private_network=False)
    assert "docker run --cap-add NET_RAW" in fix
    # uid 1000: capabilities never reach it; the kernel's own network does.
    fix = doctor.privilege_fix_in_container(lesson, "Docker", 1000, private_network=False)
    assert "docker run --security-opt seccomp=unconfined" in fix
    assert "--cap-add NET_RAW does not help" in fix and "uid 1000" in fix
    fix = doctor.privilege_fix_in_container(lesson, "Docker", 1000, private_network=True)
    assert "runs live in the lessons' kernel" in fix and "seccomp" not in fix
    # Outside a container the fix stays the one for a machine of one's own.
    assert "setcap" in doctor.PRIVILEGE_FIX


# -- The report -----------------------------------------------------------------------

def test_report_closing_line_counts_match(checks):
    text = doctor.report(list(checks.values()))
    last_line = text.splitlines()[-1]
    match = re.fullmatch(r"(\d+) ok, (\d+) warn, (\d+) missing", last_line)
    assert match, last_line
    counted = [sum(c.status == s for c in checks.values())
               for s in (doctor.OK, doctor.WARN, doctor.MISSING)]
    assert [int(n) for n in match.groups()] == counted


def test_report_is_an_aligned_table_with_fixes_below(checks):
    text = doctor.report(list(checks.values()))
    rows = text.splitlines()[:len(checks)]
    status_columns = {row.index(f" {c.status} ") for row, c in zip(rows, checks.values())}
    assert len(status_columns) == 1, "the status column is not aligned"
    for check in checks.values():
        if check.status != doctor.OK:
            assert f"- {check.name} ({check.status}):" in text
            assert check.fix.splitlines()[0] in text
    assert "\x1b[" not in text, "no colour codes"


def test_report_shows_no_temporary_path(checks):
    text = doctor.report(list(checks.values()))
    assert c.BUILD_PREFIX not in text and "socklab-trace-" not in text
    assert sys.executable not in text


def test_report_counts_a_made_up_set_of_checks():
    made_up = [doctor.Check("a", doctor.OK, "fine"),
               doctor.Check("bb", doctor.WARN, "hmm", "do this"),
               doctor.Check("ccc", doctor.MISSING, "gone", "install it\n  step two")]
    text = doctor.report(made_up)
    assert text.splitlines()[-1] == "1 ok, 1 warn, 1 missing"
    assert "    install it\n      step two" in text


# -- The command line -----------------------------------------------------------------

def test_main_returns_the_exit_status(checks, capsys):
    status = doctor.main([])
    missing = int(re.search(r"(\d+) missing$", capsys.readouterr().out.rstrip()).group(1))
    assert status == (1 if missing else 0)
    assert doctor.main(["--bogus"]) == 2
    assert "usage" in capsys.readouterr().err


def test_python_m_socklab_doctor_prints_the_table(checks, tmp_path):
    finished = run_doctor_command("doctor", cwd=tmp_path)
    anything_missing = any(c.status == doctor.MISSING for c in checks.values())
    assert finished.returncode == (1 if anything_missing else 0), finished.stdout
    assert "Traceback" not in finished.stderr
    for name in EXPECTED_NAMES:
        assert name in finished.stdout
    assert re.search(r"\d+ ok, \d+ warn, \d+ missing\n?$", finished.stdout)


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("strace") is None
                    or not IS_ROOT,
                    reason="exit status 0 needs gcc, strace and root (as on the CI box)")
def test_python_m_socklab_doctor_exits_0_when_everything_is_here(tmp_path):
    finished = run_doctor_command("doctor", cwd=tmp_path)
    assert finished.returncode == 0, finished.stdout
    assert finished.stdout.rstrip().endswith(" 0 missing")


@pytest.mark.parametrize("args", [["bogus"], []], ids=["unknown-command", "no-command"])
def test_python_m_socklab_without_a_known_command_prints_usage(args, tmp_path):
    finished = run_doctor_command(*args, cwd=tmp_path)
    assert finished.returncode == 2
    assert "usage: python -m socklab" in finished.stderr
    assert "doctor" in finished.stderr


def test_missing_gcc_is_reported_with_the_ways_to_install_it(tmp_path):
    # An empty folder as PATH: no gcc (nor strace) can be found.  sys.executable is an
    # absolute path, so Python itself still starts.
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = dict(os.environ, PATH=str(empty_bin))
    finished = run_doctor_command("doctor", env=env, cwd=tmp_path)
    assert finished.returncode == 1
    gcc_row = next(line for line in finished.stdout.splitlines() if line.startswith("gcc "))
    assert "missing" in gcc_row and "not found" in gcc_row
    # The same advice as the error a lesson's cell gives, from the same place.
    advice = [c.GCC_INSTALL, trace.STRACE_FIX, str(measure.IperfMissing())]
    for line in "\n".join(advice).splitlines():
        assert line.strip() in finished.stdout
    assert "xcode-select --install" in finished.stdout
    assert "Traceback" not in finished.stderr
