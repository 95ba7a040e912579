"""Watch the system calls a program makes -- Python or C -- with strace.

Lesson 12 shows that Python's socket module is a thin layer over the kernel: it
makes the same socket(), bind(), listen() and accept() calls as a C program.  This
module runs a snippet (or a compiled program) under strace, parses what strace
wrote, and lays two traces side by side:

    from socklab import trace
    py = trace.trace_python('import socket; socket.socket().bind(("127.0.0.1", 0))')
    py                           # socket(AF_INET, ...) = 3 / bind(3, ...) = 0 / ...
    py[0].call, py[0].result     # ('socket', 3)
    print(trace.side_by_side(trace.trace_c("server"), py))

How it is built, and why:

* **The snippet runs in a new process**, because strace traces processes.  It does
  not see the notebook's variables: it makes its own sockets, or connects to an
  address the caller wrote into it with an f-string.
* **The traced process is the interpreter itself**: strace starts sys.executable
  directly, with no shell or launcher in between (Trace.executable shows what ran).
  A venv's ``python`` is a symbolic link, and the kernel runs the real interpreter
  through it; it is not resolved, because Python finds its venv by the name it was
  started under, and the snippet should import what the notebook imports.
* **Only network calls are traced** (NETWORK_CALLS; add WAIT_CALLS for poll() and
  its friends), and close() only for sockets: an interpreter closes dozens of files
  as it starts.  That start-up is cut off too: a trace (and its clock) begins at
  the first socket() or socketpair().
* **strace decodes the arguments** (AF_INET, SOCK_STREAM|SOCK_CLOEXEC, htons(5000)),
  so the listing reads like the C code that would make the same call.
* **Listings are stable**: ``Syscall.brief`` writes the ports the kernel chose as
  ``htons(PORT)``, and descriptor numbers are the same in every fresh process, so a
  notebook can store a listing and compare it when it runs again.
* **Nothing hangs**: strace and the program run in their own process group, which a
  time limit kills.  strace writes into a private temporary folder.
"""

import collections.abc
import contextlib
import difflib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import typing

from . import c

__all__ = ["NETWORK_CALLS", "WAIT_CALLS", "StraceMissing", "TraceNotPermitted",
           "TracedProgramFailed", "Syscall", "Trace", "parse", "trace_python",
           "trace_program", "trace_c", "side_by_side"]

NETWORK_CALLS = (
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "setsockopt", "getsockopt", "send", "sendto",
    "sendmsg", "recv", "recvfrom", "recvmsg", "shutdown", "close",
)
# How a program waits for several sockets, or for one with a time limit: a Python
# socket with a timeout is non-blocking underneath and waits in poll() before a call.
WAIT_CALLS = ("poll", "ppoll", "select", "pselect6",
              "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait")
TIMEOUT = 20.0  # seconds a traced program may run
# One call to a learner: Python's accept() asks the kernel for accept4() (to pass
# SOCK_CLOEXEC) where C's makes accept(); send() and recv() are sendto() and
# recvfrom() with no address, in C as in Python.
SAME_CALL = {"accept4": "accept", "sendto": "send", "recvfrom": "recv"}

STRACE_FIX = """\
strace was not found, so system calls cannot be traced here.  Install it:
  Debian / Ubuntu:   sudo apt-get install strace
  Fedora:            sudo dnf install strace
  conda:             conda install -c conda-forge strace
In Docker, strace also needs the container started with --cap-add=SYS_PTRACE.
Then restart the kernel.  `python -m socklab doctor` checks the result."""

PTRACE_FIX = """\
strace is installed but may not trace here: the kernel refused ptrace(2).
In Docker, start the container with --cap-add=SYS_PTRACE (older Docker versions
also need --security-opt seccomp=unconfined).  Elsewhere, a hardened kernel may
forbid it: see /proc/sys/kernel/yama/ptrace_scope.  strace said:"""


class _PlainError(RuntimeError):
    def _render_traceback_(self):
        # IPython shows these lines instead of a traceback: a fix, not a call stack.
        first, *rest = str(self).splitlines()
        return [f"{type(self).__name__}: {first}", *rest]


class StraceMissing(_PlainError):
    """strace cannot be used here: not installed (or, as TraceNotPermitted, not allowed)."""

    def __init__(self, message=STRACE_FIX):
        super().__init__(message)


class TraceNotPermitted(StraceMissing):
    """strace is there, but ptrace(2) is forbidden (a container, a hardened kernel)."""

    def __init__(self, strace_said):
        super().__init__(f"{PTRACE_FIX}\n  {strace_said}")


class TracedProgramFailed(_PlainError):
    """The traced program failed; ``.trace`` still holds what it did."""

    def __init__(self, trace):
        self.trace = trace
        tail = "\n".join(trace.stderr.strip().splitlines()[-8:])
        super().__init__(f"{c.describe_exit('the traced program', trace.returncode)}.  "
                         f"Its trace is in this error's .trace; its error output:\n{tail}")


class Syscall(typing.NamedTuple):
    """One record of strace's output: a system call, a signal, or the end of a process."""

    pid: int  # the thread or process; 0 when strace did not say
    time: float  # seconds since the first record
    call: str  # "accept4"; the signal ("SIGPIPE"); "exited" or "killed"
    args: str  # strace's text between the parentheses, as it was
    result: typing.Optional[int]  # None for "= ?": the call did not return
    errno: typing.Optional[str] = None  # "ECONNREFUSED"
    errno_text: typing.Optional[str] = None  # "Connection refused"
    kind: str = "syscall"  # "syscall" | "signal" | "exit"
    duration: typing.Optional[float] = None  # seconds inside the call (strace -T)

    @property
    def end(self):
        """When the call returned (seconds, same clock as ``time``)."""
        return self.time + (self.duration or 0.0)

    @property
    def brief(self):
        """Short text, the same on every run: a port the kernel chose becomes PORT,
        a memory address (a buffer strace did not show) 0x..."""
        if self.kind == "signal":
            return f"--- {self.call} ---"
        if self.kind == "exit":
            return (f"+++ exited with {self.result} +++" if self.call == "exited"
                    else f"+++ killed by {self.args} +++")
        # htons(0) stays: "let the kernel choose" is part of the lesson, and stable
        args = re.sub(r"htons\([1-9]\d*\)", "htons(PORT)", self.args)
        # A buffer's address has 5 hex digits or more: heaps, stacks and mappings
        # lie far above 0x10000 (a program built without PIE starts at 0x400000,
        # its heap soon after: Debian's python3 showed 0x9597080, 7 digits).
        args = re.sub(r"\b0x[0-9a-f]{5,}\b", "0x...", args)
        errno = f" {self.errno}" if self.errno else ""
        return f"{self.call}({args}) = {'?' if self.result is None else self.result}{errno}"


# A line: a pid ("12 " with -o, "[pid 12] " on a terminal), a -ttt time, the rest.
LINE = re.compile(r"^(?:\[pid\s+)?(?:(?P<pid>\d+)\]?\s+)?(?:(?P<time>\d+\.\d+)\s+)?(?P<rest>.*)$")
# args is greedy: a ") = " inside a string argument does not end the call.
CALL = re.compile(r"^(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<result>0x[0-9a-f]+|-?\d+|\?)"
                  r"(?:\s+(?P<errno>E[A-Z0-9_]+)\s+\((?P<errno_text>[^)]*)\))?")
SIGNAL = re.compile(r"^--- (?P<name>SIG\w+) \{?(?P<info>.*?)\}? ---$")
EXIT = re.compile(r"^\+\+\+ (?:exited with (?P<status>\d+)|killed by (?P<signal>.+?)) \+\+\+$")
UNFINISHED = " <unfinished ...>"
RESUMED = re.compile(r"^<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)$")


DURATION = re.compile(r"\s+<(\d+\.\d+)>$")  # -T: " <0.000012>" ends a call's line


def _record(pid, time, rest):
    """The Syscall in the text after the pid and time, or None if there is none."""
    duration = None
    if found := DURATION.search(rest):
        duration, rest = float(found[1]), rest[: found.start()]
    if match := CALL.match(rest):
        result = None if match["result"] == "?" else int(match["result"], 0)
        return Syscall(pid, time, match["call"], match["args"], result,
                       match["errno"], match["errno_text"], duration=duration)
    if match := SIGNAL.match(rest):
        return Syscall(pid, time, match["name"], match["info"], None, kind="signal")
    if match := EXIT.match(rest):
        if match["status"] is not None:
            return Syscall(pid, time, "exited", "", int(match["status"]), kind="exit")
        return Syscall(pid, time, "killed", match["signal"], None, kind="exit")
    return None


def parse(text):
    """strace's output (with or without -f pids and -ttt times) as a list of Syscall.

    A call that blocks while another thread runs is split by strace into
    ``NAME(args <unfinished ...>`` and ``<... NAME resumed>rest``; the halves
    become one record, in the place and at the time the call began.  A call that
    never resumed (its process was killed) keeps its place, with no result.
    Other lines ("strace: Process 12 attached") are skipped.
    """
    records, started, first_time = [], {}, None  # started: pid -> (index, head, time)
    for line in text.splitlines():
        parts = LINE.match(line.rstrip())
        pid, rest, time = int(parts["pid"] or 0), parts["rest"], 0.0
        if parts["time"]:
            first_time = float(parts["time"]) if first_time is None else first_time
            time = round(float(parts["time"]) - first_time, 6)
        if rest.endswith(UNFINISHED):
            head = rest[: -len(UNFINISHED)]
            started[pid] = (len(records), head, time)
            records.append(_record(pid, time, head.rstrip(", ") + ") = ?"))
        elif resumed := RESUMED.match(rest):
            index, head, began = started.pop(pid, (None, f"{resumed['call']}(", time))
            record = _record(pid, began, head + resumed["rest"])
            if index is None:
                records.append(record)
            else:
                records[index] = record
        else:
            records.append(_record(pid, time, rest))
    return [record for record in records if record is not None]


def _sockets_only_closes(records):
    """Drop the close() calls of descriptors that are not sockets.

    Sockets are followed from the call that made them (socket, socketpair, accept,
    accept4) to their close().  One set serves every thread and process: threads
    share descriptors, and a lesson's program does not fork and reuse a number.
    """
    sockets, kept = set(), []
    for record in records:
        if record.kind == "syscall" and record.call == "close":
            fd = int(record.args) if record.args.strip().isdigit() else None
            if fd not in sockets:
                continue
            sockets.discard(fd)
        elif record.kind == "syscall" and record.result is not None and record.result >= 0:
            if record.call in ("socket", "accept", "accept4"):
                sockets.add(record.result)
            elif record.call == "socketpair":  # its result is 0; the pair is "[3, 4]"
                sockets.update(map(int, re.findall(r"\d+", record.args.rpartition("[")[2])))
        kept.append(record)
    return kept


class Trace(collections.abc.Sequence):
    """What one traced run did: a list of Syscall, and views of it.

    ``trace[0]``, ``len(trace)`` and ``for call in trace`` work as on a list (a
    slice is a Trace); ``calls`` is the list of names; ``text()`` -- also what a
    notebook shows -- is one line per record.  ``executable``, ``returncode``,
    ``stdout`` and ``stderr`` tell what ran, how it ended and what it printed.
    """

    def __init__(self, records, *, executable=None, returncode=None, stdout="", stderr="",
                 epoch=None):
        self.records = list(records)
        self.executable = executable
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        # Wall-clock time (time.time()) of the trace's time 0, or None: lets a
        # diagram put these calls and a packet capture on one clock.
        self.epoch = epoch

    def _like(self, records, epoch=None):
        return Trace(records, executable=self.executable, returncode=self.returncode,
                     stdout=self.stdout, stderr=self.stderr,
                     epoch=self.epoch if epoch is None else epoch)

    def __getitem__(self, index):
        return self._like(self.records[index]) if isinstance(index, slice) else self.records[index]

    def __len__(self):
        return len(self.records)

    @property
    def calls(self):
        return [record.call for record in self.records]

    def only(self, *calls):
        """The records of these calls only: ``trace.only("connect")``."""
        return self._like(record for record in self.records if record.call in calls)

    def from_first_socket(self):
        """The trace from the first socket() or socketpair() on, its clock reset there.

        What comes before is the interpreter (or the C library) starting up.
        """
        for index, record in enumerate(self.records):
            if record.kind == "syscall" and record.call in ("socket", "socketpair"):
                epoch = None if self.epoch is None else self.epoch + record.time
                return self._like((later._replace(time=round(later.time - record.time, 6))
                                   for later in self.records[index:]), epoch)
        return self._like([])

    def by_pid(self):
        """{pid: Trace}, one for each thread or process, in the order they appear."""
        groups = {}
        for record in self.records:
            groups.setdefault(record.pid, []).append(record)
        return {pid: self._like(records) for pid, records in groups.items()}

    def text(self):
        """One line per record, "= result" in column 41 as strace does.

        With several threads each line starts with [1], [2] ... in the order they
        appear: pids change from run to run, and the listing must not.
        """
        numbers = {pid: n for n, pid in enumerate(self.by_pid(), start=1)}
        lines = []
        for record in self.records:
            label = f"[{numbers[record.pid]}] " if len(numbers) > 1 else ""
            call, equals, result = record.brief.rpartition(" = ")
            lines.append(f"{label}{call:<39} = {result}" if equals else label + record.brief)
        return "\n".join(lines)

    def __repr__(self):
        return self.text() if self.records else "<Trace: no network calls>"


# -- Running strace --------------------------------------------------------------------

# What strace says when the kernel forbids tracing (Docker without SYS_PTRACE):
# "strace: ptrace(PTRACE_TRACEME, ...): Operation not permitted" or
# "strace: attach: ptrace(PTRACE_SEIZE, 12): Operation not permitted".
PTRACE_REFUSED = re.compile(r"^strace: .*PTRACE_\w+.*(Operation not permitted|Permission denied)",
                            re.MULTILINE)


def check_strace_errors(stderr):
    """Raise TraceNotPermitted if strace's messages say that ptrace(2) was refused."""
    if match := PTRACE_REFUSED.search(stderr):
        raise TraceNotPermitted(match.group(0))


def _strace_command(argv, calls, output):
    strace = shutil.which("strace")
    if strace is None:
        raise StraceMissing()
    # execve too, to record what really ran.  "?name": no error for a call this
    # machine does not have (x86-64 has no send(); libc's send() makes sendto()).
    wanted = ",".join(f"?{call}" for call in ("execve", *calls))
    # -ttt: wall-clock times, the clock of packet captures; -T: time in each call.
    return [strace, "-f", "-q", "-ttt", "-T", "-s", "64", "-e", f"trace={wanted}",
            "-o", output, "--", *map(str, argv)]


def _run_strace(command, cwd, timeout):
    """Run strace; return (returncode, stdout, stderr).  The time limit kills it all."""
    with subprocess.Popen(
        command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, errors="replace",
        env={**os.environ, "LC_ALL": "C"},  # strace's messages in English, to be recognized
        start_new_session=True,  # strace and the program in one group, to be killed together
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"the traced program ran for more than {timeout:g} s and was stopped; "
                "is it waiting for something (accept(), recv()) that never comes?"
            ) from None
        finally:
            if process.poll() is None:  # time is up, or the cell was interrupted
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return process.returncode, stdout, stderr


def trace_program(argv, *, timeout=TIMEOUT, calls=NETWORK_CALLS, cwd=None,
                  from_first_socket=True, check=True):
    """Run ``argv`` under strace, for at most ``timeout`` seconds; return its Trace.

    When time runs out the program is killed and TimeoutError raised.  With
    ``check``, a program that fails raises TracedProgramFailed (which holds the
    trace); pass check=False to trace a crash.  ``from_first_socket=False``
    keeps the start-up calls and the execve() that started the program.
    """
    with tempfile.TemporaryDirectory(prefix="socklab-trace-") as folder:
        output = os.path.join(folder, "trace.txt")
        command = _strace_command(argv, calls, output)
        returncode, stdout, stderr = _run_strace(command, cwd, timeout)
        check_strace_errors(stderr)
        with open(output, errors="replace") as file:
            text = file.read()
        records = parse(text)
        first_time = re.search(r"^(?:\[pid\s+)?(?:\d+\]?\s+)?(\d+\.\d+)\s", text, re.MULTILINE)
    started = [r for r in records if r.call == "execve" and r.result == 0]
    if not started:
        raise RuntimeError(f"strace could not start {argv[0]}:\n{stderr.strip()}")
    trace = Trace(_sockets_only_closes(records), returncode=returncode, stdout=stdout,
                  stderr=stderr, executable=re.match(r'"(.*?)"', started[0].args)[1],
                  epoch=float(first_time[1]) if first_time else None)
    if from_first_socket:
        trace = trace.from_first_socket()
    if check and returncode != 0:
        raise TracedProgramFailed(trace)
    return trace


def trace_python(code, *, timeout=TIMEOUT, calls=NETWORK_CALLS, from_first_socket=True,
                 check=True):
    """Run Python ``code`` in a new interpreter under strace; return its Trace.

    The code sees none of the notebook's variables: it makes its own sockets, or
    takes an address the caller wrote into it (an f-string).
    """
    if not sys.executable:
        raise RuntimeError("this Python does not know where its interpreter is (sys.executable)")
    return trace_program([sys.executable, "-c", code], timeout=timeout, calls=calls,
                         from_first_socket=from_first_socket, check=check)


def trace_c(name, args=(), *, timeout=TIMEOUT, calls=NETWORK_CALLS, from_first_socket=True,
            check=True):
    """Trace a program built by socklab.c.compile(source, name): ``./name args``."""
    if not (c.build_dir() / name).is_file():
        raise FileNotFoundError(f"no program {name!r} has been compiled in this kernel yet")
    return trace_program([f"./{name}", *args], timeout=timeout, calls=calls, cwd=c.build_dir(),
                         from_first_socket=from_first_socket, check=check)


# -- Two traces side by side -----------------------------------------------------------

def _alignment_key(record):
    """What two records must share to stand on one row: accept4 counts as accept."""
    if record.kind == "syscall":
        return SAME_CALL.get(record.call, record.call)
    return f"{record.kind} {record.call}"


def _squeezed(record, width):
    """A record's brief with each {structure} as {...}, cut to ``width`` characters."""
    text = record.brief
    while (shorter := re.sub(r"\{[^{}]*\}", "\x00", text)) != text:  # innermost first
        text = shorter
    text = text.replace("\x00", "{...}")
    return text if len(text) <= width else text[: width - 3] + "..."


def side_by_side(left, right, titles=("C", "Python"), width=60):
    """Two traces in two columns, the same calls on the same rows; returns the text.

    Rows are matched by call name (difflib), counting accept/accept4, send/sendto
    and recv/recvfrom as one call, so a C program and the Python that does the same
    line up; a call made on one side only has a blank beside it.  Structures are
    shown as {...} to keep rows short (``Trace.text()`` has them in full).
    """
    keys = [[_alignment_key(record) for record in trace] for trace in (left, right)]
    rows = []
    for _, i1, i2, j1, j2 in difflib.SequenceMatcher(None, *keys, autojunk=False).get_opcodes():
        for a, b in itertools.zip_longest(left[i1:i2], right[j1:j2]):
            rows.append((_squeezed(a, width) if a else "", _squeezed(b, width) if b else ""))
    wide, wide_right = (max(len(row[side]) for row in [titles, *rows]) for side in (0, 1))
    lines = [f"{titles[0]:<{wide}} | {titles[1]}", f"{'-' * wide}-+-{'-' * wide_right}"]
    return "\n".join(lines + [f"{a:<{wide}} | {b}".rstrip() for a, b in rows])
