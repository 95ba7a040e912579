"""What works on this machine, and what to do about what does not.

Run it from a terminal::

    python -m socklab doctor

The course runs real code: C programs built with gcc, servers on the loopback
interface, system calls traced with strace, raw sockets that need privileges.  When one
of these is missing, a lesson cell fails far from the cause.  The doctor tries each
ingredient once, for real (it connects, compiles, traces; it does not just look for a
file), and prints one line per item with the fix in plain words.

Each check is a small function that returns a `Check`.  `run_all()` runs them all and
`report()` turns the results into a table.  A check that crashes becomes a warning that
carries the exception text: the doctor itself must never fail.

Where socklab itself uses an ingredient, the doctor tries it through socklab's own code:
gcc through socklab.c (the flags of a %%c cell), strace through socklab.trace, packet
capture through socklab.capture, the kernel settings and raw sockets through
socklab.icmp.  So "ok" means the lessons' code works here, and the advice on installing
a missing tool is the one the lesson's own error gives.  Those modules need only the
standard library, so the doctor runs even when the Jupyter packages are not installed.

The exit status is 0 when nothing is "missing" and 1 otherwise, so a script or a CI job
can call the doctor before the lessons.
"""

import dataclasses
import functools
import importlib.metadata
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys
import textwrap

from . import c, capture, icmp, measure, trace

OK, WARN, MISSING = "ok", "warn", "missing"
SUBPROCESS_TIMEOUT = 20  # seconds; a stuck tool must not hang the doctor
SOCKET_TIMEOUT = 5       # seconds; loopback answers in microseconds when it works
LAB_PACKAGES = ("jupyterlab", "ipykernel", "ipywidgets", "matplotlib", "nbval")
# The pinned packages install from 3.11 on (ipykernel 7.4 needs it; on 3.10 the install
# fails).  The exercise checks also catch a learner's socket timing out as TimeoutError,
# which socket.timeout is since 3.10.  pyproject.toml and the Makefile agree; `make
# test-pythons` installs and tests each version found.
MIN_PYTHON = (3, 11)

PRIVILEGE_FIX = """{lesson} will show recorded results instead.  To run it live, on a
private machine only: start the lab as root, or give the Python binary the capability:
  sudo setcap cap_net_raw+ep "$(readlink -f "$(command -v python3)")"
(this lets every user of that interpreter open raw sockets)."""


@dataclasses.dataclass
class Check:
    """The result of one check: what was found, and what to do about it."""
    name: str
    status: str        # OK, WARN or MISSING
    detail: str        # what was found
    fix: str = ""      # what to do; empty when status is OK


class ToolError(Exception):
    """A subprocess failed; the message is already fit for the learner."""


def run_tool(argv, cwd=None):
    """Run *argv* with a timeout and return its stdout, or raise ToolError."""
    program = os.path.basename(argv[0])
    try:
        finished = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                                  timeout=SUBPROCESS_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{program} did not finish within {SUBPROCESS_TIMEOUT} s") from None
    except OSError as exc:
        raise ToolError(f"could not start {program}: {exc.strerror}") from None
    if finished.returncode != 0:
        # The last line of stderr usually names the cause ("Operation not permitted").
        lines = (finished.stderr or finished.stdout).strip().splitlines() or ["no output"]
        # Keep the machine's paths out of the report: name programs, not their paths.
        last = lines[-1].replace(argv[0], program).replace(sys.executable, "<python>")
        last = last.replace(cwd, "<tmp>") if cwd else last
        raise ToolError(f"{program} exited with status {finished.returncode}: {last}")
    return finished.stdout


def first_line(text):
    return text.strip().splitlines()[0] if text.strip() else "(no version line)"


def last_line(error):
    """The last line of an error's message: where strace names the cause."""
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


# -- Python and socklab ---------------------------------------------------------------

def check_python():
    version = platform.python_version()
    detail = f"{version} ({platform.python_implementation()})"
    if sys.version_info < MIN_PYTHON:
        needed = ".".join(map(str, MIN_PYTHON))
        return Check("python", WARN, detail, f"install Python {needed} or newer; socklab needs it")
    return Check("python", OK, detail)


def check_socklab():
    try:
        return Check("socklab", OK, importlib.metadata.version("socklab"))
    except importlib.metadata.PackageNotFoundError:
        return Check("socklab", OK, "source tree (not installed as a package)")


# -- The container, if any ------------------------------------------------------------

# In a container, what is missing is seldom a package: it is a permission the
# container was started without, and the fix is a flag of `docker run` (measured
# in docs/hub.md, "What works in a container").  Engines leave marks: Docker the
# file /.dockerenv, Podman /run/.containerenv and the variable `container`,
# Kubernetes the variable KUBERNETES_SERVICE_HOST in every pod; and under cgroup v1
# the cgroup paths in /proc/1/cgroup name the engine ("/docker/<id>").
CGROUP_MARKS = (("kubepods", "Kubernetes"), ("libpod", "Podman"), ("docker", "Docker"),
                ("containerd", "containerd"), ("lxc", "LXC"))
SECCOMP_FLAG = "--security-opt seccomp=unconfined"
SYSTEMPATHS_FLAG = "--security-opt systempaths=unconfined"   # /proc/sys writable
NET_RAW_FLAG = "--cap-add NET_RAW"
KUBERNETES_FIELDS = {   # the same, in a container's securityContext
    SECCOMP_FLAG: "seccompProfile: {type: Unconfined}",
    SYSTEMPATHS_FLAG: "procMount: Unmasked",
    NET_RAW_FLAG: "capabilities: {add: [NET_RAW]}",
}


def container(root="/", environ=None):
    """(engine, evidence) for the container this process runs in, or None.

    *root* and *environ* stand for "/" and os.environ: the tests give a folder
    laid out as a root file system, and a dict.
    """
    root = pathlib.Path(root)
    environ = os.environ if environ is None else environ
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "Kubernetes", "KUBERNETES_SERVICE_HOST is set"
    if (root / ".dockerenv").exists():
        return "Docker", "/.dockerenv"
    if (root / "run" / ".containerenv").exists():
        return "Podman", "/run/.containerenv"
    if environ.get("container"):
        return environ["container"], f"container={environ['container']} is set"
    try:
        cgroups = (root / "proc" / "1" / "cgroup").read_text()
    except OSError:
        cgroups = ""
    for line in cgroups.splitlines():
        path = line.split(":", 2)[-1]
        for mark, engine in CGROUP_MARKS:
            if mark in path:
                return engine, f"/proc/1/cgroup says {path}"
    return None


def container_fix(engine, *flags):
    """How to start a container of *engine* with *flags*, in the words of a fix."""
    if engine == "Kubernetes":
        return ("add to the securityContext of the pod's container: "
                + ", ".join(KUBERNETES_FIELDS[flag] for flag in flags))
    command = "podman run" if engine.lower() == "podman" else "docker run"
    return f"start the container with `{command} {' '.join(flags)} ...`"


def check_container():
    found = container()
    if found is None:
        return Check("container", OK, "not in a container (no mark of Docker, Podman,"
                     " Kubernetes)")
    engine, evidence = found
    return Check("container", OK, f"{engine} ({evidence}): a warning below may be a"
                 " flag the container was started without")


# -- Loopback -------------------------------------------------------------------------

def recv_exactly(sock, size):
    """Read *size* bytes: TCP is a stream, so they may arrive in several pieces."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:   # the peer closed early
            break
        data += chunk
    return data


def echo_over_loopback(family, host):
    """Connect to ourselves on *host*, send a few bytes and read them back."""
    message = b"socklab doctor"
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.settimeout(SOCKET_TIMEOUT)
        listener.bind((host, 0))   # port 0: the kernel picks a free port
        listener.listen(1)
        port = listener.getsockname()[1]
        # connect() completes in the kernel before accept() is called (the connection
        # waits in the listen queue), so one thread is enough.
        with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT) as client:
            server_side, _ = listener.accept()
            with server_side:
                server_side.settimeout(SOCKET_TIMEOUT)
                client.sendall(message)
                server_side.sendall(recv_exactly(server_side, len(message)))
            echoed = recv_exactly(client, len(message))
    if echoed != message:
        raise OSError(f"sent {message!r} but got back {echoed!r}")


def check_loopback_ipv4():
    try:
        echo_over_loopback(socket.AF_INET, "127.0.0.1")
    except OSError as exc:
        return Check("loopback IPv4", MISSING, f"TCP echo on 127.0.0.1 failed: {exc}",
                     "every lesson talks over 127.0.0.1; bring the loopback interface up:"
                     " sudo ip link set lo up")
    return Check("loopback IPv4", OK, "TCP connect and echo on 127.0.0.1 work")


def check_loopback_ipv6():
    fix = ("the IPv6 examples will not run; the IPv4 ones are unaffected.  To enable IPv6"
           " on loopback: sudo sysctl -w net.ipv6.conf.lo.disable_ipv6=0\n(in Docker:"
           " docker run --sysctl net.ipv6.conf.lo.disable_ipv6=0 ...)")
    if not socket.has_ipv6:
        return Check("loopback IPv6", WARN, "this Python was built without IPv6", fix)
    try:
        echo_over_loopback(socket.AF_INET6, "::1")
    except OSError as exc:
        return Check("loopback IPv6", WARN, f"TCP echo on ::1 failed: {exc}", fix)
    return Check("loopback IPv6", OK, "TCP connect and echo on ::1 work")


# -- Tools: gcc, OpenSSL, strace, iperf3 -------------------------------------------------------

# It opens a socket, which proves that the C library's socket headers are there too.
TINY_C_PROGRAM = r"""#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 1;
    close(fd);
    printf("compiled and ran\n");
    return 0;
}
"""


def check_gcc():
    install = "install a C compiler:\n" + c.GCC_INSTALL
    broken = "the compiler or the C library headers are incomplete; " + install
    gcc = shutil.which("gcc")
    if gcc is None:
        return Check("gcc", MISSING, "gcc not found on PATH", install)
    try:
        version = first_line(run_tool([gcc, "--version"]))
        # Built and run by socklab.c, as a %%c cell is: the same flags, the same folder.
        c.compile(TINY_C_PROGRAM, "socklab_doctor")
        output = c.run("socklab_doctor", timeout=SUBPROCESS_TIMEOUT, echo=False).stdout
    except c.CompileError as exc:   # its last line ("compilation terminated.") says little
        return Check("gcc", MISSING, "gcc is there but cannot build a program",
                     "gcc said:\n" + textwrap.indent(exc.messages, "  ") + "\n" + broken)
    except (ToolError, c.ProgramFailed, TimeoutError, subprocess.TimeoutExpired) as exc:
        return Check("gcc", MISSING, f"gcc is there but cannot build a program: {exc}", broken)
    if "compiled and ran" not in output:
        return Check("gcc", MISSING, "the test program printed something unexpected", install)
    return Check("gcc", OK, f"{version}; compiles and runs C (-std=gnu11 -Werror)")


# Lesson 14's C links OpenSSL: the headers (libssl-dev) and both libraries, as a
# `%%c NAME -l ssl -l crypto` cell is built.
TINY_TLS_PROGRAM = r"""#include <stdio.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

int main(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return 1;
    SSL_CTX_free(ctx);
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    return 0;
}
"""
OPENSSL_INSTALL = """install OpenSSL's headers (lesson 14's C links OpenSSL):
  Debian / Ubuntu:   sudo apt-get install libssl-dev
  Fedora:            sudo dnf install openssl-devel
then run the doctor again."""


def check_openssl():
    if shutil.which("gcc") is None:
        return Check("OpenSSL", WARN, "not checked: it needs gcc (above)",
                     "install gcc first, then run the doctor again")
    try:
        c.compile(TINY_TLS_PROGRAM, "socklab_doctor_tls", libs=["ssl", "crypto"])
        output = c.run("socklab_doctor_tls", timeout=SUBPROCESS_TIMEOUT, echo=False).stdout
    except c.CompileError as exc:   # "openssl/ssl.h: No such file or directory"
        return Check("OpenSSL", MISSING, "C programs cannot use OpenSSL here: "
                     + first_line(exc.messages.split("error: ", 1)[-1]), OPENSSL_INSTALL)
    except (c.ProgramFailed, TimeoutError, subprocess.TimeoutExpired) as exc:
        return Check("OpenSSL", MISSING, f"a program linked with OpenSSL fails: {exc}",
                     OPENSSL_INSTALL)
    return Check("OpenSSL", OK, f"{first_line(output)}; C links it (-l ssl -l crypto)")


def check_strace():
    strace = shutil.which("strace")
    if strace is None:
        return Check("strace", MISSING, "strace not found on PATH", trace.STRACE_FIX)
    try:
        version = first_line(run_tool([strace, "-V"]))
        # Traced by socklab.trace, as lesson 12 traces: the same options, the same checks.
        calls = trace.trace_python("import socket; socket.socket().close()").calls
    except trace.TraceNotPermitted as exc:   # ptrace(2) forbidden: a container, say
        found = container()
        return Check("strace", MISSING, "strace cannot trace here: ptrace(2) is refused",
                     container_fix(found[0], SECCOMP_FLAG) if found else str(exc))
    except (ToolError, RuntimeError, TimeoutError) as exc:
        return Check("strace", MISSING, f"strace cannot trace here: {last_line(exc)}",
                     "update strace: sudo apt-get install strace")
    if "socket" not in calls:
        return Check("strace", MISSING, "strace ran but recorded no socket() call",
                     "update strace: sudo apt-get install strace")
    return Check("strace", OK, f"{version}; traces a socket() call")


def check_iperf3():
    iperf3 = shutil.which("iperf3")
    if iperf3 is None:
        return Check("iperf3", WARN,
                     "not found (optional: the reference figure in lesson 12 and benchmarks/)",
                     str(measure.IperfMissing()))   # the advice measure's error gives
    try:
        return Check("iperf3", OK, first_line(run_tool([iperf3, "--version"])))
    except ToolError as exc:
        return Check("iperf3", WARN, str(exc), "reinstall it: sudo apt-get install iperf3")


def check_ss():
    """ss (iproute2) lists the kernel's sockets in a terminal; the lessons do not need it.

    They read the same table as ss does (socklab.explore.tcp_sockets); only lesson
    03's exercise 3, which parses ss's text, checks one case fewer without it.
    """
    ss = shutil.which("ss")
    if ss is None:
        return Check("ss", WARN, "not found (optional: the lessons read the socket table "
                     "without it; in a terminal, ss shows it)",
                     "install iproute2: sudo apt-get install iproute2 (Fedora: sudo dnf install iproute)")
    try:
        return Check("ss", OK, first_line(run_tool([ss, "--version"])))
    except ToolError as exc:
        return Check("ss", WARN, str(exc), "reinstall it: sudo apt-get install iproute2")


def proc_sys_read_only():
    """True where /proc/sys is mounted read-only, as container engines mount it."""
    try:
        return bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    except OSError:   # no /proc/sys: not Linux
        return False


def check_private_network():
    """Can a "Python 3 (socklab)" kernel have a network of its own here? Tried for real."""
    # Imported here: `import socklab` imports the doctor, and Python warns when a
    # package has imported the module it is asked to run (python -m socklab.kernel).
    from . import kernel

    why_not = kernel.private_network_refused()
    found = container()
    if why_not is None and found and proc_sys_read_only():
        # The kernel cannot set its network's ping_group_range (socklab/kernel.py).
        return Check("private network", WARN, "each socklab kernel gets a loopback of its"
                     " own, but /proc/sys is read-only: no ping sockets in it",
                     container_fix(found[0], SYSTEMPATHS_FLAG) + ": then the kernel"
                     " allows them, and lesson 11's ping cells run live too.")
    if why_not is None:
        return Check("private network", OK, "each socklab kernel gets a loopback of its own")
    if found and "switched off" not in why_not:   # refused by the seccomp profile
        # With /proc/sys read-only too, the kernel's network would lack ping sockets.
        flags = [SECCOMP_FLAG] + [SYSTEMPATHS_FLAG] * proc_sys_read_only()
        return Check("private network", WARN, f"refused: {why_not}",
                     container_fix(found[0], *flags) + ":\nthe engine's default"
                     " seccomp profile refuses unshare(); without that profile the\n"
                     "lessons' kernel gets a network of its own, and raw sockets,"
                     " capture and ping sockets in it.")
    return Check("private network", WARN, f"refused: {why_not}",
                 "the lessons run on the machine's shared loopback; the cells that need root\n"
                 "show recordings.  On your own machine, `make lab` as root runs them live.")


# -- Privileges: raw sockets and packet capture ---------------------------------------

def why_allowed():
    """Why this process may (or may not) open raw sockets, in a few words.

    The kernel asks for CAP_NET_RAW, not for root: root in a container often lacks it.
    """
    root = os.geteuid() == 0
    if icmp.has_cap_net_raw():
        return "running as root" if root else "CAP_NET_RAW is granted"
    return "running as root, but without CAP_NET_RAW" if root else "not root, and no CAP_NET_RAW"


def privilege_check(name, permitted, lesson):
    """Opening the socket, not reading ids and capabilities, is the sure test."""
    if permitted:
        return Check(name, OK, f"permitted ({why_allowed()})")
    found = container()
    if found is None:
        fix = PRIVILEGE_FIX.format(lesson=lesson)
    else:
        from . import kernel   # imported here: see check_private_network
        fix = privilege_fix_in_container(lesson, found[0], os.geteuid(),
                                         kernel.private_network_refused() is None)
    return Check(name, WARN, f"not permitted ({why_allowed()})", fix)


def privilege_fix_in_container(lesson, engine, uid, private_network):
    """The fix for raw and packet sockets refused in a container of *engine*.

    Root lacks CAP_NET_RAW only where the engine dropped it: add it back.  Any
    other user gets no capability from the engine (Docker gives them to root
    only: measured, docs/hub.md), but the lessons' kernel opens these sockets
    in its network of its own, where the learner is root of a user namespace.
    """
    if uid == 0:
        return f"{lesson} shows recordings.  To run it live, {container_fix(engine, NET_RAW_FLAG)}."
    where = ("that works here (private network: ok), so the lesson runs live in it;"
             " this process is outside it" if private_network else
             container_fix(engine, SECCOMP_FLAG) + " to allow it (see 'private network')")
    return (f"{lesson} runs live in the lessons' kernel, \"Python 3 (socklab)\", in a network"
            f" of its own:\n{where}.\n{NET_RAW_FLAG} does not help: the engine gives"
            f" capabilities to root only, not to uid {uid}.")


def check_raw_socket():
    refused = icmp.privileges().raw_icmp   # None, or the errno name that refused it
    return privilege_check("raw sockets", refused is None, "Lesson 11 (raw sockets, ICMP echo)")


def check_packet_capture():
    if not hasattr(socket, "AF_PACKET"):
        return Check("AF_PACKET capture", MISSING, f"not Linux ({platform.system()}):"
                     " AF_PACKET exists only on Linux",
                     "use a Linux machine or a Linux container for lesson 11's capture")
    # The socket Capture itself opens, bound to lo: what the lesson will do.
    return privilege_check("AF_PACKET capture", capture.can_capture(),
                           "Lesson 11 (watching a handshake)")


# -- Kernel settings ------------------------------------------------------------------

NOT_LINUX = ("not Linux", "nothing to do: the lessons read this setting only on Linux")


def read_sysctl(name):
    """A kernel setting such as "net.core.somaxconn" as one line; None if not Linux.

    An unreadable setting raises OSError, which run_all() turns into a warning.
    """
    return icmp.read_sysctl(name) if sys.platform.startswith("linux") else None


def check_somaxconn():
    value = read_sysctl("net.core.somaxconn")
    if value is None:
        return Check("somaxconn", WARN, *NOT_LINUX)
    return Check("somaxconn", OK, f"{value}: a listen() backlog above {value} is silently"
                 f" capped to {value} by the kernel, with no error (lesson 03 shows it)")


def check_ping_group_range():
    value = read_sysctl("net.ipv4.ping_group_range")
    if value is None:
        return Check("ping_group_range", WARN, *NOT_LINUX)
    low, high = (int(n) for n in value.split())
    groups = sorted(set(os.getgroups()) | {os.getegid()})
    inside = [g for g in groups if low <= g <= high]
    if inside:
        return Check("ping_group_range", OK, f"{value}: your group {inside[0]} is inside,"
                     " so unprivileged ICMP ping sockets work")
    # The kernel checks the range even for root: no capability bypasses it.
    return Check("ping_group_range", WARN, f"{value}: none of your groups {groups} is"
                 " inside, so ICMP ping sockets (SOCK_DGRAM) are refused (even to root)",
                 "ICMP echo then needs a raw socket (see 'raw sockets').\nTo allow ping"
                 " sockets for every group, on a private machine:\n"
                 "  sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"")


def check_ip_local_port_range():
    value = read_sysctl("net.ipv4.ip_local_port_range")
    if value is None:
        return Check("ip_local_port_range", WARN, *NOT_LINUX)
    return Check("ip_local_port_range", OK, f"{value}: the ephemeral ports the kernel"
                 " picks for bind() to port 0 and for connect()")


# -- The Jupyter side -----------------------------------------------------------------

def check_package(package):
    try:
        return Check(package, OK, importlib.metadata.version(package))
    except importlib.metadata.PackageNotFoundError:
        # nbval is a test dependency, the others belong to the lab itself.
        fix = ("pip install -e '.[test]'" if package == "nbval"
               else "run `make lab`, or `pip install -e .` in the course folder")
        return Check(package, WARN, "not installed", fix)


# -- Running and reporting ------------------------------------------------------------

# (name, function) in the order of the report; the name is used if the function crashes.
CHECKS = [
    ("python", check_python),
    ("socklab", check_socklab),
    ("container", check_container),
    ("loopback IPv4", check_loopback_ipv4),
    ("loopback IPv6", check_loopback_ipv6),
    ("gcc", check_gcc),
    ("OpenSSL", check_openssl),
    ("strace", check_strace),
    ("private network", check_private_network),
    ("raw sockets", check_raw_socket),
    ("AF_PACKET capture", check_packet_capture),
    ("somaxconn", check_somaxconn),
    ("ping_group_range", check_ping_group_range),
    ("ip_local_port_range", check_ip_local_port_range),
    ("ss", check_ss),
    ("iperf3", check_iperf3),
] + [(package, functools.partial(check_package, package)) for package in LAB_PACKAGES]


class Diagnosis(list):
    """The list of Check records run_all() returns.

    In a notebook it shows itself as the same table `python -m socklab doctor`
    prints, so ``socklab.doctor.run_all()`` as a cell's last line is enough.
    """

    def __repr__(self):
        return report(self)

    @property
    def missing(self):
        """Names of the checks whose status is "missing"."""
        return [c.name for c in self if c.status == MISSING]


def run_all():
    """Run every check and return them as a Diagnosis; never raises."""
    results = Diagnosis()
    for name, function in CHECKS:
        try:
            results.append(function())
        except Exception as exc:   # a bug in one check must not hide the others
            results.append(Check(name, WARN, f"the check itself failed:"
                                 f" {type(exc).__name__}: {exc}",
                                 "please report this to the course authors"))
    return results


def summary_line(checks):
    counts = {status: sum(c.status == status for c in checks)
              for status in (OK, WARN, MISSING)}
    return f"{counts[OK]} ok, {counts[WARN]} warn, {counts[MISSING]} missing"


def report(checks):
    """An aligned plain-text table, then the fixes for every item that is not ok."""
    name_width = max((len(c.name) for c in checks), default=0)
    status_width = max((len(c.status) for c in checks), default=0)
    lines = [f"{c.name:<{name_width}}  {c.status:<{status_width}}  {c.detail}" for c in checks]
    problems = [c for c in checks if c.status != OK]
    if problems:
        lines += ["", "How to fix:"]
        for c in problems:
            lines.append(f"- {c.name} ({c.status}):")
            lines += ["    " + line for line in c.fix.splitlines()]
    lines += ["", summary_line(checks)]
    return "\n".join(lines)


def main(argv=()):
    """Entry point of `python -m socklab doctor`; returns the exit status."""
    if argv:
        print("usage: python -m socklab doctor   (it takes no options)", file=sys.stderr)
        return 2
    checks = run_all()
    print(report(checks))
    return 1 if any(c.status == MISSING for c in checks) else 0
