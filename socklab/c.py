"""Compile and run C programs from Python: in the foreground or as background servers.

The course shows every socket call in C as well as in Python, and runs both.  This
module is what the ``%%c`` cell magic (socklab.magic) stands on; it works just as
well from a script or a test:

    from socklab import c
    c.compile(source, "hello")            # gcc -std=gnu11 -Wall -Wextra -Werror
    c.compile(source, "tls", libs=["ssl", "crypto"])   # ... -lssl -lcrypto
    c.run("hello", args=["world"])        # waits, shows output as it comes
    srv = c.start("echo_server")          # background; waits for "LISTENING <port>"
    srv.address                           # ('127.0.0.1', <port>)
    srv.wait_for_output("accepted")       # until it prints that; no sleeping
    srv.stop()                            # SIGTERM, then SIGKILL

Why it is built this way:

* **A private build folder.**  Sources and binaries go to one temporary folder per
  Python process, created with mode 0700 and removed at exit: two notebooks (or two
  students on one machine) never overwrite each other's programs, and nothing is
  written into the course's folders.  A kernel that is killed (no exit handlers
  run) cannot remove its folder, so each folder holds a lock for as long as its
  process lives, and the next process that builds removes folders whose lock is
  free: a busy machine does not fill its temporary folder.
* **gcc is run in that folder on "NAME.c"**, so its messages say ``NAME.c:7:5:``
  -- the line number of the cell itself, and no path of the machine.
* **Warnings are errors** (-Werror): the course's C compiles cleanly, and a learner's
  warning is usually the bug they are looking for.
* **Foreground programs have a time limit** and are killed if the cell is
  interrupted.  A non-zero exit status or a deadly signal becomes a
  ProgramFailed error that names it ("killed by SIGPIPE") and says what it means.
* **Background programs announce themselves.**  A server prints ``LISTENING <port>``
  once it listens; start() waits for that line (with a time limit), so a client can
  connect at once -- no sleeping.  They run in their own session, so interrupting
  the kernel does not kill them; on Linux they get SIGTERM when the kernel process
  dies (PR_SET_PDEATHSIG); and they are registered with socklab.registry, so
  stop_all() and the kernel's exit end them too.  Their output is collected, never
  printed from a thread: read it with ``srv.output``.
"""

import atexit
import ctypes
import fcntl
import hashlib
import os
import pathlib
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import registry
from .background import Background

__all__ = [
    "CFLAGS",
    "SANITIZE",
    "CompileError",
    "GccMissing",
    "ProgramFailed",
    "CProgram",
    "build_dir",
    "compile",
    "run",
    "start",
    "handle",
    "sanitizer_report",
]

CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]
LIBS = ["-pthread"]  # harmless when unused; lesson 10's threaded servers need it
# compile(..., sanitize=True) and %%c NAME --sanitize: AddressSanitizer (bad
# pointers, overruns, use after free) and UBSan (overflow, bad shifts ...), with
# line numbers (-g).  The first error ends the program with a report.
SANITIZE = ["-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all"]
RUN_TIMEOUT = 10.0  # seconds a foreground program may run
READY_TIMEOUT = 5.0  # seconds a background program has to print LISTENING <port>
STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
HEADER = pathlib.Path(__file__).parent / "include" / "socklab.h"  # see its comment
LISTENING = re.compile(rb"^LISTENING (\d+)\s*$", re.MULTILINE)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
LIBRARY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")  # "ssl" for -lssl: no path, no option

# How to get gcc: said here once, by GccMissing and by `python -m socklab doctor`.
GCC_INSTALL = """\
  Debian / Ubuntu:   sudo apt-get install gcc
  Fedora:            sudo dnf install gcc
  conda:             conda install -c conda-forge c-compiler
  macOS:             xcode-select --install"""
GCC_FIX = f"""\
gcc was not found, so C cells cannot be compiled here.  Install a C compiler:
{GCC_INSTALL}
then restart the kernel.  `python -m socklab doctor` checks the result."""

# What a deadly signal usually means in this course's programs.
SIGNAL_MEANINGS = {
    "SIGPIPE": "it wrote to a socket whose peer had closed; in C the default action "
    "of SIGPIPE ends the program (ignore it, or pass MSG_NOSIGNAL to send())",
    "SIGSEGV": "it touched memory it does not own (a bad pointer or a buffer overrun)",
    "SIGALRM": "its alarm() watchdog went off: it ran longer than it allowed itself",
    "SIGKILL": "it was killed (by socklab after its time limit, or by the system)",
    "SIGTERM": "it was asked to stop",
    "SIGABRT": "it called abort() (an assert() failed?)",
}


class GccMissing(RuntimeError):
    """There is no gcc on PATH."""

    def __init__(self):
        super().__init__(GCC_FIX)


class CompileError(Exception):
    """gcc refused the program; the message is gcc's own, line numbers and all."""

    def __init__(self, name, messages):
        self.name = name
        self.messages = messages
        super().__init__(f"{name}.c did not compile; nothing was run.\n{messages}")

    def _render_traceback_(self):
        # IPython shows this instead of a Python traceback: the learner needs
        # gcc's messages, not socklab's call stack.
        return [f"{self.name}.c did not compile; nothing was run.", "", *self.messages.splitlines()]


class ProgramFailed(Exception):
    """A C program exited with a non-zero status or was killed by a signal."""

    def __init__(self, name, returncode, stdout="", stderr="", report=None):
        self.name = name
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.report = report  # a sanitizer's report (see sanitizer_report), or None
        message = describe_exit(name, returncode)
        super().__init__(f"{message}\n{report}" if report else message)

    def _render_traceback_(self):
        return [f"ProgramFailed: {self}"]


def describe_exit(name, returncode):
    """Plain words for an exit status: "exited with status 1", "killed by SIGPIPE"."""
    if returncode is None:
        return f"{name} is still running"
    if returncode >= 0:
        return f"{name} exited with status {returncode}"
    signame = signal.Signals(-returncode).name
    meaning = SIGNAL_MEANINGS.get(signame)
    text = f"{name} was killed by {signame} (signal {-returncode})"
    return f"{text}: {meaning}" if meaning else text


def _sanitizer_env(name):
    """AddressSanitizer's long reports go to a file NAME.sanitizer.PID in the
    build folder, not to stderr, so the program's own output stays readable;
    sanitizer_report() reads it back in a few lines.  (UBSan's are short and
    stay on stderr: beside ASan, gcc's UBSan does not honour log_path.)  Leak
    checking is off: it needs ptrace, which containers often refuse."""
    for old in build_dir().glob(f"{name}.sanitizer.*"):
        old.unlink(missing_ok=True)  # a report belongs to this run only
    return {"ASAN_OPTIONS": f"detect_leaks=0:log_path={name}.sanitizer",
            "UBSAN_OPTIONS": "print_stacktrace=0"}  # one line, the cell's own


_ASAN_ERROR = re.compile(r"ERROR: AddressSanitizer: ([\w-]+)")
_ACCESS = re.compile(r"^(READ|WRITE) of size (\d+)")
_UBSAN_ERROR = re.compile(r"(?:\S*/)?([\w-]+\.c):(\d+):(\d+): runtime error: (.*)")
_VARIABLE = re.compile(r"^\s*\[\d+, \d+\) '(\w+)' \(line (\d+)\) <== (.*)")


def sanitizer_report(name, output=""):
    """The first sanitizer report of program NAME's last run, in a few lines; or None.

    ``output`` is what the program wrote to stderr (UBSan reports there).
    Kept: what went wrong, and the lines of NAME.c on the way there (the cell's
    own line numbers), innermost first.  Dropped: addresses, the process id,
    frames in the C library, shadow bytes.  None unless NAME was last compiled
    with sanitize=True.
    """
    if name not in _sanitized:
        return None
    files = sorted(build_dir().glob(f"{name}.sanitizer.*"))
    text = files[0].read_text(errors="replace") if files else output
    frame = re.compile(rf"#\d+ 0x[0-9a-f]+ in (\w+) (?:\S*/)?({re.escape(name)}\.c):(\d+)")
    lines, stack_done = [], False
    for line in text.splitlines():
        if match := _ASAN_ERROR.search(line):
            lines.append(f"AddressSanitizer: {match[1]}")
        elif match := _UBSAN_ERROR.search(line):
            if lines:
                break  # a second report: the first is the one that matters
            lines.append(f"UBSan: {match[1]}:{match[2]}: {match[4]}")
        elif match := _ACCESS.search(line):
            lines.append(f"  a {match[1].lower()} of {match[2]} byte(s)")
        elif (match := frame.search(line)) and not stack_done:
            lines.append(f"  in {match[1]}() at {match[2]}:{match[3]}")
        elif not line.strip() and lines and lines[-1].startswith("  in "):
            stack_done = True  # the next frames say where a variable lives
        elif match := _VARIABLE.search(line):
            lines.append(f"  variable '{match[1]}' (line {match[2]}): {match[3].strip()}")
        elif line.startswith("SUMMARY:"):
            break  # the rest is shadow memory, for the sanitizer's authors
    return "\n".join(lines) or None


_build_dir = None
_build_lock = threading.Lock()
_sanitized = set()  # names of programs last compiled with sanitize=True
_owner_lock = None  # a file descriptor, open as long as this process lives
BUILD_PREFIX = "socklab-c-"
OWNER_LOCK = "owner.lock"


def build_dir():
    """This process's private build folder (mode 0700), made on first use."""
    global _build_dir, _owner_lock
    with _build_lock:
        if _build_dir is None:
            _remove_abandoned_build_dirs()
            folder = pathlib.Path(tempfile.mkdtemp(prefix=BUILD_PREFIX))
            _owner_lock = _hold_owner_lock(folder)
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _build_dir = folder
        return _build_dir


def _hold_owner_lock(folder):
    """Lock ``folder/owner.lock`` until this process ends; return the descriptor.

    Linux releases an flock() when the process holding it dies, however it dies.
    The file is locked under another name and then renamed, so nobody can find
    it unlocked while its owner lives.
    """
    fd = os.open(folder / f"{OWNER_LOCK}.new", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(folder / f"{OWNER_LOCK}.new", folder / OWNER_LOCK)
    return fd


def _remove_abandoned_build_dirs():
    """Remove the build folders of processes that died without cleaning up."""
    for folder in pathlib.Path(tempfile.gettempdir()).glob(f"{BUILD_PREFIX}*"):
        try:
            fd = os.open(folder / OWNER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # another user's folder, or one still being made
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner is alive
            continue
        else:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def _check_name(name):
    if not NAME.match(name):
        raise ValueError(
            f"{name!r} is not a usable program name: use letters, digits, _ and -, "
            "starting with a letter (it becomes NAME.c)"
        )


def compile(source, name, flags=(), sanitize=False, libs=()):
    """Compile C ``source`` as ``NAME.c``; return the path of the program.

    Raises CompileError with gcc's messages for any error or warning, and
    GccMissing when there is no gcc.  An unchanged source is not compiled again.
    With ``sanitize`` the program is built with SANITIZE, and run() and start()
    then turn its first sanitizer report into a few lines naming NAME.c's lines.
    ``libs`` are libraries to link, named as gcc's -l takes them: ``["ssl",
    "crypto"]`` adds ``-lssl -lcrypto`` after the source, where gcc looks for
    the functions the source still needs.
    """
    _check_name(name)
    for lib in libs:
        if not isinstance(lib, str) or not LIBRARY.match(lib):
            raise ValueError(f"{lib!r} is not a library name as gcc's -l takes it "
                             "(e.g. 'ssl' for -lssl)")
    gcc = shutil.which("gcc")
    if gcc is None:
        raise GccMissing()
    folder = build_dir()
    flags = [*flags, *(SANITIZE if sanitize else ())]
    with _build_lock:
        (_sanitized.add if sanitize else _sanitized.discard)(name)
    # Libraries after the source: the linker takes from a library only what the
    # files before it still need.
    command = ["gcc", *CFLAGS, *flags, "-o", name, f"{name}.c",
               *(f"-l{lib}" for lib in libs), *LIBS]
    # The course's helpers sit beside the source, so `#include "socklab.h"`
    # works and gcc's messages name it without a path of this machine.
    header = HEADER.read_text()
    (folder / HEADER.name).write_text(header)
    fingerprint = hashlib.sha256(repr((source, header, command)).encode()).hexdigest()
    binary, stamp = folder / name, folder / f"{name}.sha256"
    if binary.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return binary
    (folder / f"{name}.c").write_text(source)
    stamp.unlink(missing_ok=True)
    binary.unlink(missing_ok=True)  # a failed build must not leave the old program runnable
    done = subprocess.run(
        [gcc, *command[1:]], cwd=folder, capture_output=True, text=True, timeout=60,
        env={**os.environ, "LC_ALL": "C"},  # plain ASCII quotes: the same text everywhere
    )
    if done.returncode != 0:
        raise CompileError(name, (done.stderr + done.stdout).strip())
    stamp.write_text(fingerprint)
    return binary


def _program_path(name):
    _check_name(name)
    path = build_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"no program {name!r} has been compiled in this kernel yet")
    return path


# Looked up once here, not in the child: between fork() and exec() the child
# should do as little as possible (another thread may have held a lock at fork).
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _prctl = None
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child, before exec: get SIGTERM when the parent (the kernel) dies.

    Without it, a kernel killed hard (no atexit) would leave its C servers
    running.  (Linux ties this to the thread that started the child; socklab
    starts programs from the caller's thread, the kernel's main thread.)
    """
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _popen(name, args, stdin, env=None):
    _program_path(name)  # raises if it was never compiled
    if name in _sanitized:
        env = {**(env or {}), **_sanitizer_env(name)}
    return subprocess.Popen(
        # "./NAME" run in the build folder: argv[0] holds no path of the machine
        [f"./{name}", *map(str, args)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=build_dir(),
        env=None if env is None else {**os.environ, **env},
        start_new_session=True,  # a kernel interrupt (SIGINT) is not for it
        preexec_fn=_die_with_parent if _prctl is not None else None,
    )


def _end(process):
    """SIGTERM, a grace period, then SIGKILL; returns the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


class Completed:
    """What a foreground run produced: exit status, and output as text and as bytes."""

    def __init__(self, name, returncode, stdout_bytes, stderr_bytes):
        self.name = name
        self.returncode = returncode
        self.stdout_bytes = bytes(stdout_bytes)
        self.stderr_bytes = bytes(stderr_bytes)
        self.stdout = self.stdout_bytes.decode(errors="replace")
        self.stderr = self.stderr_bytes.decode(errors="replace")

    def __repr__(self):
        return f"<Completed {self.name!r}: {describe_exit(self.name, self.returncode)}>"


def run(name, args=(), timeout=RUN_TIMEOUT, input=None, echo=True, check=True):
    """Run a compiled program and wait for it (at most ``timeout`` seconds).

    With ``echo`` its stdout and stderr are written to ours as they come, so a
    notebook shows the output line by line.  ``input`` (bytes or text) is fed to
    its stdin.  Returns a Completed record; with ``check`` a non-zero exit or a
    signal raises ProgramFailed instead.
    """
    if isinstance(input, str):
        input = input.encode()
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    process = _popen(name, args, subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, (out, sys.stdout))
            selector.register(process.stderr, selectors.EVENT_READ, (err, sys.stderr))
            if input is not None:
                # Fed in the same loop that reads its output, as Popen.communicate()
                # does: a filter that writes while it reads fills its stdout pipe and
                # waits for us, so one blocking write of everything would wait for it
                # in turn, for ever.  Non-blocking: a write takes what fits, never waits.
                os.set_blocking(process.stdin.fileno(), False)
                selector.register(process.stdin, selectors.EVENT_WRITE, memoryview(input))
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _end(process)
                    raise TimeoutError(
                        f"{name} ran for more than {timeout:g} s and was stopped; "
                        "is it waiting for something (accept(), recv()) that never comes?"
                    )
                for key, _ in selector.select(remaining):
                    if key.fileobj is process.stdin:
                        _feed(selector, key)
                        continue
                    chunk = os.read(key.fileobj.fileno(), 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffer, stream = key.data
                    buffer += chunk
                    if echo:
                        stream.write(chunk.decode(errors="replace"))
                        stream.flush()
        returncode = process.wait(max(0.1, deadline - time.monotonic()))
    finally:
        _end(process)  # on an interrupt (KeyboardInterrupt) too: no orphan
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    result = Completed(name, returncode, out, err)
    report = sanitizer_report(name, result.stderr)
    if check and returncode != 0:
        raise ProgramFailed(name, returncode, result.stdout, result.stderr, report)
    return result


def _feed(selector, key):
    """Write to a program's stdin what its pipe takes now; close it after the last byte."""
    try:
        written = os.write(key.fd, key.data[:65536])
    except BlockingIOError:  # full again already: wait for the next turn
        return
    except BrokenPipeError:  # it ended (or closed stdin) without reading it all
        written = len(key.data)
    rest = key.data[written:]
    if rest:
        selector.modify(key.fileobj, selectors.EVENT_WRITE, rest)
    else:
        selector.unregister(key.fileobj)
        key.fileobj.close()  # end of file: the program's read() returns 0


class CProgram(Background):
    """A C program running in the background, e.g. a server.

    ``address`` is ("127.0.0.1", port) from its ``LISTENING <port>`` line,
    ``output`` what it printed so far (stdout and stderr, in order), ``pid`` its
    process id.  ``wait_for_output(text)`` waits until it has printed ``text``.
    ``stop()`` ends it: safe to call more than once.  It follows the lifecycle
    of socklab.background: a program already running under the same name is
    stopped *before* this one starts, so a server on a fixed port can restart.
    """

    def __init__(self, name, args=(), ready_timeout=READY_TIMEOUT, host="127.0.0.1",
                 env=None):
        self.args = list(args)
        self.host = host
        self.port = None
        self.returncode = None
        self._env = env
        self._output = bytearray()
        self._open_pipes = 2  # stdout and stderr; 0 once it can print nothing more
        # Guards port, _output and _open_pipes; the readers notify it at each line
        # and when a pipe closes, which wakes wait_for_output().
        self._changed = threading.Condition()
        self._ready = threading.Event()
        super().__init__(name)  # claims the name, open(), then serve() in a thread
        if not self._ready.wait(ready_timeout):
            output = self.output
            self.stop(quiet=True)
            raise TimeoutError(
                f"{name} did not print 'LISTENING <port>' within {ready_timeout:g} s "
                f"({describe_exit(name, self.returncode)}).  Its output:\n{output}"
            )
        if self.port is None:  # woken because it exited before listening
            output = self.output
            self.stop(quiet=True)
            raise ProgramFailed(name, self.returncode, output,
                                report=sanitizer_report(name, output))

    def open(self):
        self._process = _popen(self.name, self.args, subprocess.DEVNULL, self._env)
        self.pid = self._process.pid

    def serve(self):
        """Collect stdout here and stderr in a second thread, until the program ends."""
        self.spawn(self._collect, f"socklab {self.name} stderr", self._process.stderr)
        self._collect(self._process.stdout)

    def wake(self):
        self.returncode = _end(self._process)  # its pipes close: the readers end

    def _collect(self, pipe):
        """Reader thread: keep what the program prints; notice LISTENING <port>."""
        for line in iter(pipe.readline, b""):
            with self._changed:
                self._output += line
                match = self.port is None and LISTENING.match(line)
                if match:
                    self.port = int(match[1])
                self._changed.notify_all()
            if match:
                self._ready.set()
        pipe.close()
        with self._changed:
            self._open_pipes -= 1
            self._changed.notify_all()
        if pipe is self._process.stdout:
            self._ready.set()  # stdout closed (it exited): start() must not wait on

    @property
    def address(self):
        return (self.host, self.port)

    @property
    def output(self):
        with self._changed:
            return self._output.decode(errors="replace")

    def wait_for_output(self, pattern, timeout=5.0):
        r"""Wait until the output so far contains ``pattern``; return the re.Match.

        ``pattern`` is plain text, or a compiled regular expression such as
        ``re.compile(r"(.*\n){7}")`` (seven lines).  The readers wake this wait at
        each line the program prints (whole lines only: a line shows once it
        ends), so a cell needs no loop that sleeps and looks again.  Raises
        TimeoutError, with the output seen, after ``timeout`` seconds -- or at
        once if the program has ended without printing it.
        """
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))

        def seen():
            return regex.search(self._output.decode(errors="replace"))

        with self._changed:
            self._changed.wait_for(lambda: seen() or not self._open_pipes, timeout)
            match, ended, output = seen(), not self._open_pipes, self.output
        if match:
            return match
        why = "it ended without printing it" if ended else f"not within {timeout:g} s"
        shown = pattern.pattern if regex is pattern else pattern
        raise TimeoutError(f"{self.name} did not print {shown!r} ({why}).  Its output:\n{output}")

    @property
    def alive(self):
        return self._process.poll() is None

    def sanitizer_report(self):
        """Its first sanitizer report in a few lines (built with sanitize=True), or None."""
        return sanitizer_report(self.name, self.output)

    def stop(self, quiet=False):
        """End the program (SIGTERM, then SIGKILL); return a description of its exit."""
        super().stop(timeout=STOP_GRACE * 2)
        return None if quiet else describe_exit(self.name, self.returncode)

    def __repr__(self):
        state = "running" if self.alive else describe_exit(self.name, self._process.poll())
        return f"<CProgram {self.name!r}: {state}>"


def start(name, args=(), ready_timeout=READY_TIMEOUT):
    """Start a compiled program in the background; return its CProgram handle.

    The program must print ``LISTENING <port>`` (and flush) once it listens.
    Starting a program under a name that is running stops the old one first.
    """
    return CProgram(name, args, ready_timeout)


def handle(name):
    """The running CProgram called ``name`` (started by start() or ``%%c --bg``)."""
    for thing in registry.running():
        if isinstance(thing, CProgram) and thing.name == name:
            return thing
    raise LookupError(f"no C program {name!r} is running")
