"""Checking a learner's C program: the same hostile peers, and C's own failures.

A C exercise is a whole program, written in a ``%%c NAME --compile-only`` cell
of the lesson's Exercises section.  The check in the next cell takes NAME and

1. reads the cell's source back (the %%c cell saved it as NAME.c; a source that
   still says "your code here" is the stub: "is it written yet?");
2. builds it again with AddressSanitizer and UBSan (socklab.c.SANITIZE);
3. starts it in the background: a server must print ``LISTENING <port>``;
4. plays the lesson's clients against it -- the very cases, the very judges,
   that check the Python answer (resets, a client that sends and leaves without
   reading, a flood, one byte at a time, a hundred at once, half-close);
5. and after each case looks at the process, so that C's own failures are said
   in plain words: killed by SIGPIPE, a crash with the sanitizer's report on
   the cell's own lines, descriptors that pile up as clients come and go, a loop
   that spins while nobody talks to it, children left as zombies.

The judging of *what the program says* is the lesson's; this module only runs
the program, watches it, and sets scenes for a lesson's clients -- the program
stopped for a while (paused), with no descriptor free (out_of_descriptors), and
a copy of its listening socket, to judge as the program set it up:

    answer = c_answer.start("echo_server", report)   # None: it did not start
    with answer:
        report.add("a client that closes", answer.judged(case.run(sock)))
        c_answer.check_process(answer, report, ...)    # descriptors, idle, zombies
"""

import contextlib
import ctypes
import os
import pathlib
import resource
import signal
import socket
import struct
import subprocess
import time

from .. import c
from . import adversary
from .report import NOT_WRITTEN, Verdict

__all__ = ["Answer", "STUB_MARKER", "build", "start", "check_process"]

STUB_MARKER = "your code here"  # every C exercise's stub says it; an answer does not
READY_TIMEOUT = 10.0  # seconds to print LISTENING: sanitized programs start slower
IDLE_WINDOW = 1.0  # seconds of silence in which a server should not need the CPU
# ... and times it may be woken in it: a right one is woken 0 times (a timer
# 10 times a second is no busy loop either); a loop that prints at every turn
# was woken 78 times or more on two CPUs with six busy processes beside it.
WAKEUPS_ALLOWED = 30
SETTLE = 2.0  # seconds a server has to close the sockets of clients that left
CLIENTS_THAT_LEAVE = 20
CATCH_UP = 10.0  # seconds a server has to take the connections waiting for it
EXIT_WAIT = 1.0  # seconds a program whose client saw a failure has to finish dying
SYS_PIDFD_GETFD = 438  # pidfd_getfd(2), Linux 5.6: one number on every architecture


class Answer:
    """The learner's program, built with sanitizers and running in the background."""

    def __init__(self, name, program):
        self.name = name
        self.program = program

    @property
    def address(self):
        return self.program.address

    @property
    def pid(self):
        return self.program.pid

    def connect(self, timeout=5.0):
        return socket.create_connection(self.address, timeout=timeout)

    def death(self):
        """A final Verdict if the program has ended (it must not), else None."""
        if self.program.alive:
            return None
        self.program.stop(quiet=True)  # collects the exit status and all output
        report = self.program.sanitizer_report()
        if report:
            why = f"{self.name} crashed.  The sanitizer's report (lines of {self.name}.c):\n{report}"
        else:
            why = c.describe_exit(self.name, self.program.returncode) + "."
            last = [line for line in self.program.output.strip().splitlines()
                    if not line.startswith("LISTENING ")][-3:]  # no port: stable text
            if last:
                why += "\nIts last output:\n" + "\n".join(f"  {line}" for line in last)
        return Verdict.fail(why + "\nA server must outlive every one of its clients.", final=True)

    def judged(self, verdict):
        """``verdict`` -- unless the program died meanwhile: then why it died."""
        if not verdict.passed:
            # A client that saw the connection end may have seen the program
            # dying: its sockets close before its exit is complete.  Wait for it.
            try:
                self.program._process.wait(EXIT_WAIT)
            except subprocess.TimeoutExpired:
                pass  # alive: the verdict is about what it said
        dead = self.death()
        return verdict if dead is None else dead

    def play(self, client):
        """Connect, let ``client(sock)`` play its part and judge it; a Verdict.

        The same client functions judge a Python answer; here the program's
        death, if it died, is the verdict that matters.
        """
        if (dead := self.death()) is not None:
            return dead
        try:
            with self.connect() as sock:
                verdict = client(sock)
        except OSError as exc:
            verdict = Verdict.fail(f"the client's socket failed: {type(exc).__name__}: {exc}")
        return self.judged(verdict)

    @contextlib.contextmanager
    def paused(self):
        """The program stopped (SIGSTOP) for a while: a server busy elsewhere.

        What a client does meanwhile reaches the server all at once, when it
        goes on (SIGCONT) -- the same order of events every run, which a race
        with a running server would not give.  It is stopped once it has taken
        every connection already waiting (caught_up): with a full queue, a new
        client's handshake would wait for a program that cannot take it.
        """
        self.caught_up()
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)

    def caught_up(self, timeout=CATCH_UP):
        """Wait until no connection waits in the program's accept queue; True if so.

        On a busy machine a sanitized server can fall behind clients that come
        and go fast.  Where there is no listening socket (UDP) or no copy of it,
        there is nothing to wait for.
        """
        listener = self.listening_socket()
        if listener is None:
            return True
        deadline = time.monotonic() + timeout
        with listener:
            while adversary.accept_queue(listener):
                if time.monotonic() > deadline or not self.program.alive:
                    return False
                time.sleep(0.01)
        return True

    @contextlib.contextmanager
    def out_of_descriptors(self):
        """The program with no free file descriptor for a while: a busy server's day.

        Its limit (RLIMIT_NOFILE, changed from outside with prlimit) is lowered to
        the descriptors it has open, so its next accept() fails with EMFILE.  An
        accept() that is already waiting took its descriptor when it began: the
        first client still gets in, and the accept() after it fails.  Yields
        False, changing nothing, where the limit cannot be changed; the old
        limit is back when the block ends.
        """
        limit = resource.RLIMIT_NOFILE
        try:
            soft, hard = resource.prlimit(self.pid, limit)
            taken = {int(fd) for fd in os.listdir(f"/proc/{self.pid}/fd")}
            lowest_free = min(set(range(len(taken) + 1)) - taken)
            resource.prlimit(self.pid, limit, (lowest_free, hard))
        except OSError:  # not allowed here, or it has ended
            old = None
        else:
            old = (soft, hard)
        try:
            yield old is not None
        finally:
            if old is not None:
                with contextlib.suppress(OSError):  # it may have ended meanwhile
                    resource.prlimit(self.pid, limit, old)

    def listening_socket(self):
        """A copy of the program's listening socket; None where Linux gives none."""
        return self.own_socket(
            lambda sock: sock.family in (socket.AF_INET, socket.AF_INET6)
            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))

    def own_socket(self, wanted):
        """A copy of the program's socket at its port for which ``wanted(sock)``
        is true; None where there is none, or Linux gives none.

        pidfd_getfd() (Linux 5.6) copies a descriptor out of another process --
        allowed here, the program being this process's child.  The copy is the
        program's very socket: its address and options are what the program set.
        The caller closes the copy; the program's own descriptor stays open.
        """
        try:
            pidfd = os.pidfd_open(self.pid)
            entries = os.listdir(f"/proc/{self.pid}/fd")
        except (AttributeError, OSError):  # no pidfd_open (Python, kernel), or it ended
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            for entry in entries:
                try:
                    if not os.readlink(f"/proc/{self.pid}/fd/{entry}").startswith("socket:"):
                        continue
                except OSError:
                    continue  # closed meanwhile
                copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(entry), 0)
                if copy < 0:
                    return None  # not allowed here (an older kernel, a sandbox)
                sock = socket.socket(fileno=copy)
                if wanted(sock) and sock.getsockname()[1] == self.address[1]:
                    return sock
                sock.close()
        finally:
            os.close(pidfd)
        return None

    def descriptors(self):
        """How many file descriptors the program has open now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def runnable_seconds(self):
        """Seconds its threads have run or waited for a CPU (schedstat), all together."""
        total = 0
        for task in pathlib.Path(f"/proc/{self.pid}/task").iterdir():
            try:
                running, waiting, _ = (task / "schedstat").read_text().split()
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue  # a thread that ended while we looked
            total += int(running) + int(waiting)
        return total / 1e9

    def wakeups(self):
        """How often its threads have left a CPU so far, all together: to sleep
        (voluntary_ctxt_switches; each is woken again before it runs again), or
        made to wait while they could still run (nonvoluntary_ctxt_switches).
        A server asleep in poll() with nothing to do adds none, however busy
        the machine is."""
        total = 0
        for task in pathlib.Path(f"/proc/{self.pid}/task").iterdir():
            try:
                status = (task / "status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended while we looked
            for line in status.splitlines():
                field, _, value = line.partition(":")
                if field.endswith("ctxt_switches"):  # voluntary_ and nonvoluntary_
                    total += int(value)
        return total

    def zombies(self):
        """Children that have ended and were never waited for."""
        found = []
        for task in pathlib.Path(f"/proc/{self.pid}/task").iterdir():
            try:
                children = (task / "children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in children:
                try:
                    stat = pathlib.Path(f"/proc/{child}/stat").read_text()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if stat.rpartition(")")[2].split()[0] == "Z":
                    found.append(int(child))
        return found

    def stop(self):
        self.program.stop(quiet=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def build(name, report, description="it compiles (with the sanitizers)"):
    """Build the learner's program NAME with the sanitizers; False after a final FAIL.

    Adds one line to ``report`` only when something is wrong: the cell was not
    run, it is still the stub, or gcc refused it.
    """
    source_path = c.build_dir() / f"{name}.c"
    if not source_path.exists():
        verdict = Verdict.fail(f"there is no {name}.c yet: run the `%%c {name} --compile-only`"
                               " cell above first, then this one.", final=True)
    else:
        source = source_path.read_text()
        if STUB_MARKER in source:
            description = f"the program in the `%%c {name}` cell"
            verdict = Verdict.not_written(NOT_WRITTEN.replace("`...`", "comment"))
        else:
            try:
                c.compile(source, name, sanitize=True)
                return True
            except c.CompileError as exc:
                verdict = Verdict.fail(f"gcc refused it:\n{exc.messages}", final=True)
    report.add(description, verdict)
    return False


def start(name, report, description="it compiles (with the sanitizers) and prints LISTENING <port>"):
    """Build and start the learner's server NAME; an Answer, or None after a final FAIL.

    Adds one line to ``report`` only when something is wrong: the cell was not
    run, it is still the stub, gcc refused it, or it did not start.
    """
    if not build(name, report, description):
        return None
    try:
        return Answer(name, c.start(name, ready_timeout=READY_TIMEOUT))
    except c.ProgramFailed as exc:
        shown = exc.report or "\n".join(exc.stdout.strip().splitlines()[-3:])
        verdict = Verdict.fail(f"{exc}: it ended before printing LISTENING <port>."
                               + (f"\n{shown}" if shown else ""), final=True)
    except TimeoutError:
        verdict = Verdict.fail(
            f"it did not print LISTENING <port> within {READY_TIMEOUT:g} s.\n"
            "After listen(), call announce_port(listener) (socklab.h): it prints the\n"
            "line and flushes stdout, which a pipe would otherwise hold back.", final=True)
    report.add(description, verdict)
    return None


def check_process(answer, report, *, closes_on_eof=True, probe=None, spins_hint=None):
    """The checks every C server gets after its lesson's cases: C's own failures.

    ``closes_on_eof``: the server closes a client's socket once the client has
    closed its side (an echo server does; one that keeps talking may not).
    ``probe(sock)``: one ordinary exchange with the server, judged (a Verdict);
    with it, a client that leaves before the server answers must not kill it.
    ``spins_hint``: the lesson's words for the busy loops its servers fall into,
    said when one spins while nobody talks to it (else general advice).
    """
    if probe is not None:
        if report.add("a client sends 100 KB and leaves before the server answers: "
                      "the server goes on", _client_leaves_early(answer, probe)).final:
            return
        if report.add("a client connects and resets before the server gets to it: "
                      "the server goes on", _client_resets_early(answer, probe)).final:
            return
    if closes_on_eof:
        if report.add(f"{CLIENTS_THAT_LEAVE} clients come and go: their sockets are closed",
                      answer.judged(_descriptors_come_back(answer))).final:
            return
    if report.add("nobody talks to it: it waits without using the CPU",
                  answer.judged(_idle(answer, spins_hint))).final:
        return
    report.add("no child is left a zombie", answer.judged(_no_zombies(answer)))


def _client_leaves_early(answer, probe):
    # While the server is paused, the client sends and closes with nothing unread
    # (a FIN).  The server then reads, answers, and the client's kernel replies
    # with a reset: the server's next send() fails with EPIPE -- and, in C,
    # raises SIGPIPE, whose default action ends the program.
    try:
        with answer.paused():
            with answer.connect() as sock:
                sock.sendall(bytes(100_000))
    except OSError as exc:  # refused: it ended after the case before this one
        return answer.judged(Verdict.fail(f"a client could not connect: {exc}"))
    return answer.play(probe)  # still there?  A dead server is named by play()


def _client_resets_early(answer, probe):
    # The reset arrives before the server has read anything: its recv() (or
    # getpeername(), or send()) fails with ECONNRESET -- an error of this one
    # connection, which a server closes and forgets.
    try:
        with answer.paused():
            with answer.connect() as sock:  # accepted later: the kernel did the handshake
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as exc:
        return answer.judged(Verdict.fail(f"a client could not connect: {exc}"))
    return answer.play(probe)


def _descriptors_come_back(answer):
    before = answer.descriptors()
    socks = []
    try:
        for _ in range(CLIENTS_THAT_LEAVE):  # one after another: a server may serve
            socks.append(answer.connect())   # one client at a time
            socks[-1].shutdown(socket.SHUT_WR)  # "that is all": the server reads b''
        # A server that closes a client's socket sends its FIN as it does:
        # the b'' we read is the event that says the descriptor is gone.
        deadline = time.monotonic() + SETTLE
        for sock in socks:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                while sock.recv(4096):
                    pass
            except OSError:  # TimeoutError (it keeps the socket), a reset
                pass
    finally:
        for sock in socks:
            sock.close()
    extra = answer.descriptors() - before
    if extra >= CLIENTS_THAT_LEAVE // 2:
        return Verdict.fail(
            f"after {CLIENTS_THAT_LEAVE} clients connected and left, it holds {extra} more "
            "file descriptors than before.\nclose() a client's socket when recv() returns 0 "
            "(or fails): a server that forgets\nruns out of descriptors (EMFILE) after about "
            "a thousand clients.")
    return Verdict.ok()


def _idle(answer, spins_hint=None):
    # Two measures, because a busy loop may also wait: one that prints at each
    # turn (perror() on a closed descriptor poll() keeps reporting) sleeps
    # whenever its output pipe is full, until the check has read some -- on a
    # loaded machine, most of the window.  So: time running or ready to run
    # (a loop that never sleeps), and times woken (one that sleeps and is woken
    # again and again).  Asleep in poll() with nothing to do, a server has neither.
    before, woken_before = answer.runnable_seconds(), answer.wakeups()
    time.sleep(IDLE_WINDOW)  # a measurement window: nothing happens on purpose
    used = answer.runnable_seconds() - before
    woken = answer.wakeups() - woken_before
    if used > IDLE_WINDOW / 2:
        measured = f"used the CPU for {used:.1f} of {IDLE_WINDOW:g} s"
    elif woken > WAKEUPS_ALLOWED:
        measured = f"was woken {woken} times in {IDLE_WINDOW:g} s"
    else:
        return Verdict.ok()
    return Verdict.fail(
        f"with no client talking it {measured}: a busy loop.\n" + (spins_hint or (
            "Block in accept(), recv(), poll() or epoll_wait() instead of trying again and "
            "again\n(on a non-blocking socket, EAGAIN means: wait for poll, do not spin).")))


def _no_zombies(answer):
    zombies = answer.zombies()
    if zombies:
        return Verdict.fail(
            f"{len(zombies)} child process(es) ended and were never waited for (zombies).\n"
            "A forking server reaps its children: waitpid(-1, NULL, WNOHANG) in a loop,\n"
            "from a SIGCHLD handler that saves and restores errno, or before each accept().")
    return Verdict.ok()
