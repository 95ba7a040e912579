"""The socklab kernel: a Python kernel with a network of its own.

Jupyter starts it as ``python -m socklab.kernel -f CONNECTION_FILE`` (the kernel
"Python 3 (socklab)", installed by ``python -m socklab.kernel install``).  Where
Linux allows it, the kernel lives in a network namespace of its own: a loopback
nobody else on the machine shares, so twenty learners on one hub can all listen
on 127.0.0.1:8080, nobody reaches another's servers, and a port found free stays
free.  Inside it the learner is root of a user namespace (mapped to their own
uid outside: no power over the machine), which is what raw sockets, packet
capture and the namespace's own sysctls ask for.  Everything the kernel starts
-- C programs, strace, captures -- is inside the same network.

How, in order (see man 7 user_namespaces, man 7 network_namespaces):

0. Try steps 1 and 3 in a forked child: a user namespace cannot be left, so
   the kernel enters one only where the network namespace will follow.
1. ``unshare(CLONE_NEWUSER)``, while the process has one thread (Linux asks
   that), and map the user to root inside.  Real root skips this step.
2. Start the kernel's channels (ZeroMQ sockets) as any kernel does, in the
   machine's network, where Jupyter's server connects to them -- over TCP or
   Unix sockets, whichever the connection file says.
3. ``unshare(CLONE_NEWNET)`` in the thread that runs the learner's code: every
   socket it opens from then on, every thread and process it starts, is in the
   new network.  The channels opened in step 2 stay where they are.
4. Bring ``lo`` up (a new network's loopback is down), and in a user
   namespace let the learner open ping sockets (the namespace's own
   net.ipv4.ping_group_range).

Where a step is refused (a container's seccomp profile, a distribution that
turns unprivileged user namespaces off) the kernel runs as a plain kernel and
says so once, in one line, when the first cell runs.  ``network()`` tells which.
"""

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

__all__ = ["network", "install", "private_network_refused", "enter_private_network",
           "shell_main"]

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CAP_SYS_ADMIN = 21  # linux/capability.h: what unshare() asks for a new network
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
STATE_VARIABLE = "SOCKLAB_NETWORK"  # "private", or "shared: <why>"; set by main()
KERNEL_NAME = "socklab"
DISPLAY_NAME = "Python 3 (socklab)"


def network():
    """("private", "") in a socklab kernel with a network of its own, else ("shared", why)."""
    state = os.environ.get(STATE_VARIABLE)
    if state is None:
        return "shared", "this is not a socklab kernel (choose the kernel \"Python 3 (socklab)\")"
    kind, _, why = state.partition(": ")
    return kind, why


def _unshare(flags):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _write(path, text):
    with open(path, "w") as file:
        file.write(text)


def enter_user_namespace():
    """Become root of a new user namespace, mapped to this user outside."""
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")  # Linux requires it before an unprivileged gid_map
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def enter_network_namespace(in_user_namespace):
    """A new network for this thread and all it starts, its loopback up."""
    _unshare(CLONE_NEWNET)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0).ljust(40, b"\0")  # a struct ifreq
        flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, request), 16)[0]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP).ljust(40, b"\0"))
    if in_user_namespace:
        # Ping sockets for the learner's group, as many distributions allow on
        # the host.  Linux's default, "1 0" (nobody), could not be written back
        # after lesson 11 changes it: from a user namespace that maps one group,
        # the range must be of mapped groups.  (Root keeps the default.)
        try:
            _write("/proc/sys/net/ipv4/ping_group_range", "0 0")
        except OSError:
            pass  # raw sockets work all the same; lesson 11 says what a ping socket needs


def _may_make_namespaces():
    """True if this process has CAP_SYS_ADMIN already (root, or root of a user namespace)."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    return False


def _why(exc):
    if exc.errno == 1:  # EPERM
        return ("this system does not allow unprivileged user namespaces "
                "(a container's seccomp profile, or a distribution setting such as "
                "Ubuntu's AppArmor restriction)")
    if exc.errno == 28:  # ENOSPC: a limit is 0, or reached
        return ("new namespaces are switched off here "
                "(sysctl user.max_user_namespaces or user.max_net_namespaces is 0)")
    return f"unshare() failed: {exc.strerror}"


def enter_private_network():
    """Give this process a network of its own (only lo, up): both of main()'s steps.

    As root of a new user namespace first where this process may not make a
    network namespace itself.  Call it before any thread starts.  Raises
    OSError whose text says, in words, why this system refused.
    """
    as_user = not _may_make_namespaces()
    try:
        if as_user:
            enter_user_namespace()
        enter_network_namespace(as_user)
    except OSError as exc:
        raise OSError(_why(exc)) from exc


def _refused_in_a_child():
    """None if main()'s namespace steps work here, else why not: tried in a child.

    A user namespace cannot be left again.  Where it can be made but the
    network cannot (Ubuntu's AppArmor lets the first step pass and takes the
    powers it gives), the kernel must not stay in one: it would be a root
    without powers.  So both steps are tried first in a forked child, which
    tells its parent through a pipe.  (The launcher has one thread: fork is safe.)
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: try, tell, end -- never return
        why = ""
        try:
            enter_private_network()
        except OSError as exc:
            why = str(exc)
        os.write(write_end, why.encode())
        os._exit(0)
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        why = pipe.read().decode()
    os.waitpid(child, 0)
    return why or None


def main(argv):
    in_user_namespace = not _may_make_namespaces()
    why_not = _refused_in_a_child()
    if why_not is None and in_user_namespace:
        try:
            enter_user_namespace()  # before any thread starts: Linux asks for one thread
        except OSError as exc:
            why_not = _why(exc)
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)  # the channels: in the machine's network
    if why_not is None:
        try:
            enter_network_namespace(in_user_namespace)
        except OSError as exc:
            why_not = _why(exc)
    os.environ[STATE_VARIABLE] = "private" if why_not is None else f"shared: {why_not}"
    if why_not is not None:
        _say_once(app.shell, f"socklab: no private network for this kernel: {why_not}; "
                             "it shares the machine's loopback with every other user.")
    app.start()


def _say_once(shell, line):
    """Print ``line`` on stderr when the first cell runs (then forget it)."""
    def say(*_):
        print(line, file=sys.stderr)
        shell.events.unregister("pre_run_cell", say)
    shell.events.register("pre_run_cell", say)


def private_network_refused():
    """None if a socklab kernel here gets a network of its own, else why not.

    Tried for real, in a child process: the steps are those of main(), and
    they change the process that takes them.
    """
    try:
        child = subprocess.run([sys.executable, "-m", "socklab.kernel", "try"],
                               capture_output=True, text=True, timeout=20,
                               stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the test could not run: {exc}"
    return None if child.returncode == 0 else (child.stdout.strip() or child.stderr.strip())


def _try():
    """main()'s test, then exit: status 0, or 1 with why not on stdout."""
    why_not = _refused_in_a_child()
    if why_not is not None:
        print(why_not)
        return 1
    return 0


# -- a terminal in a kernel's network -------------------------------------------------

def running_kernels():
    """{pid: connection file} of this user's running socklab kernels."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                argv = file.read().decode(errors="replace").split("\0")
        except OSError:
            continue  # ended meanwhile
        if "socklab.kernel" in argv and "-f" in argv[:-1]:
            found[int(entry)] = argv[argv.index("-f") + 1]
    return found


def shell_main(argv):
    """``python -m socklab shell [KERNEL]``: a shell in a socklab kernel's network.

    KERNEL is a kernel's process id or (a part of) its id, as JupyterLab's
    connection file names it; without it, the only running kernel.  Inside,
    ``ss``, ``nc``, ``curl`` see what the kernel's code sees.
    """
    kernels = running_kernels()
    wanted = argv[0] if argv else ""
    chosen = [pid for pid, connection in kernels.items()
              if not wanted or wanted == str(pid) or wanted in os.path.basename(connection)]
    if len(chosen) != 1:
        print("no running socklab kernel" + (f" matches {wanted!r}" if wanted else "") + "."
              if not chosen else "several socklab kernels run; name one:", file=sys.stderr)
        for pid, connection in sorted(kernels.items()):
            print(f"  python -m socklab shell {pid}    ({os.path.basename(connection)})",
                  file=sys.stderr)
        return 2
    pid = chosen[0]
    if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        print(f"kernel {pid} has no network of its own: a shell here shares it already.",
              file=sys.stderr)
        return 1
    if shutil.which("nsenter") is None:
        print("nsenter is missing (util-linux): sudo apt-get install util-linux", file=sys.stderr)
        return 1
    command = ["nsenter", f"--target={pid}", "--net"]
    if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
        # Its owner may enter it, and is root inside, as in the kernel: the uid
        # is already mapped, and setgroups() is denied there (enter_user_namespace).
        command[2:2] = ["--user", "--preserve-credentials"]
    shell = os.environ.get("SHELL", "/bin/sh")
    print(f"a shell in the network of kernel {pid}; leave it with exit", file=sys.stderr)
    os.execvp(command[0], [*command, shell])


def install(prefix=sys.prefix):
    """Install the kernelspec "socklab" under ``prefix`` (the project's environment)."""
    import json
    import tempfile

    from jupyter_client.kernelspec import KernelSpecManager

    spec = {
        # "python": Jupyter runs it with the interpreter it runs on itself.
        "argv": ["python", "-m", "socklab.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "kernel.json"), "w") as file:
            json.dump(spec, file, indent=1)
        os.chmod(folder, 0o755)  # copied with its mode: every user of the environment reads it
        return KernelSpecManager().install_kernel_spec(folder, KERNEL_NAME, prefix=prefix)


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        print(f"installed the kernel {DISPLAY_NAME!r} in {install()}")
    elif sys.argv[1:] == ["try"]:
        sys.exit(_try())
    else:
        main(sys.argv[1:])
