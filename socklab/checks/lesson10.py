"""Checks for lesson 10's exercises: echo_server(), its C twin, and connect_with_timeout().

* check_echo_server: the learner's ``echo_server(listener, stop)`` is an event loop
  (selectors or asyncio) in ONE thread.  The check hands it a listening socket and
  the reading end of a socketpair, starts it in a thread of its own, and sends
  the clients of socklab.checks.adversary at it, one kind after the other:

  - one polite client;
  - that client leaves and a new one comes: the new connection gets the descriptor
    number the server has just closed, which shows a selector that still holds
    the closed socket (close() without unregister());
  - 100 clients at once, each with its own message -- served from one thread;
  - 5 clients that send one byte at a time, taking turns;
  - 10 clients that send and then reset (RST), and a new client after them;
  - a client that sends up to 16 MiB and never reads: another client must still be
    served, and the server may hold only about 1 MiB of unsent echo for it, so the
    flood must stall after at most FLOOD_ALLOWED bytes (the kernels' buffers are
    kept small by the check: the listener's, inherited by accepted sockets, and
    the flooding client's);
  - 20 idle clients: in IDLE_WINDOW seconds the server's thread may be running, or
    ready to run, for at most IDLE_BUSY_ALLOWED of them -- no busy loop.  (Not its
    CPU time: on a loaded machine a spinning thread gets little CPU, yet it is
    always ready to run; where the kernel does not say, CPU time is the measure.)
  - then one byte on the other end of ``stop``: the function must return;
  - and no exception may escape from a thread or an asyncio task of the learner's
    (a client handler that lets ConnectionResetError out).  Python would print each
    as a traceback above the report; the check counts them instead (EscapedErrors)
    and says what they were.

* check_echo_server_c: the same server in C (a ``%%c NAME --compile-only`` cell),
  one process with poll() or epoll, built with the sanitizers and started in
  the background (socklab.checks.c_answer).  The very steps above play against
  it -- each step needs only a small interface, which _Harness (a Python
  function in a thread) and _CHarness (a C process) both offer -- except
  ``stop``: a C server runs until it is killed.  Its kernel buffers are its own
  (the check cannot shrink them), so a flood may get in up to C_FLOOD_ALLOWED.
  Then C's own failures: SIGPIPE when a client leaves before its echo, a reset
  before the server reads, descriptors never closed, CPU while idle, zombies.

* check_connect_with_timeout: the learner's ``connect_with_timeout(address,
  timeout)`` connects without blocking, waits in select/poll/selectors, and reads
  SO_ERROR: a listening server (a connected, blocking socket comes back), a port
  nobody listens on (ConnectionRefusedError), an address to which connect() fails
  at once (127.255.255.255, loopback's broadcast address: ENETUNREACH from
  connect_ex() itself, and SO_ERROR 0 afterwards -- nothing is sent anywhere),
  and a server whose accept queue is full, so that its kernel ignores the SYN
  (TimeoutError after about ``timeout``).
"""

import collections
import dataclasses
import errno
import logging
import os
import pathlib
import socket
import subprocess
import threading
import textwrap
import time

from . import adversary, c_answer
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_connect_with_timeout", "check_echo_server", "check_echo_server_c"]

MANY = 100  # clients at once
SLOW = 5  # clients sending a byte at a time
RESETTERS = 10  # clients that reset
IDLE = 20  # clients that say nothing
SMALL_BUFFER = 65536  # SO_RCVBUF / SO_SNDBUF of the listener, inherited by accepted sockets
HOLD_ALLOWED = 1024 * 1024  # unsent echo the server may keep for one client
FLOOD_ALLOWED = 4 * 1024 * 1024  # what a flooding client may get in, kernels included
# ... into a C server, whose kernel buffers keep their defaults: about 4.3 MiB get
# into a right one on Linux 6 (its receive buffer, the client's small ones, its
# 4 KiB), and up to 9.4 MiB were seen on a busy machine, where the receive buffer
# had grown while the server still read (tcp_rmem allows 32 MiB here).  One that
# reads on and stores takes all of FLOOD_LIMIT.
C_FLOOD_ALLOWED = 12 * 1024 * 1024
DEATH_GRACE = 0.1  # seconds a C server whose clients saw the end has to finish exiting
FLOOD_LIMIT = 16 * 1024 * 1024  # the flooding client sends no more than this
FLOOD_SECONDS = 3.0
IDLE_WINDOW = 1.0  # seconds the idle server is watched
IDLE_BUSY_ALLOWED = 0.5  # seconds in that window running or ready to run (a spinner: ~1)
IDLE_CPU_ALLOWED = 0.1  # seconds of CPU in that window, where schedstat is missing
STOP_WAIT = 2.0  # seconds the function has to return once stop is readable
START_WAIT = 0.3  # a stub returns at once: how long to watch for that
ECHO_WAIT = 2.0  # seconds clients wait for their echoes


# ----------------------------------------------------------------- echo_server

def _died_hint(outcome):
    """Why the learner's loop ended before it was told to stop, in plain words."""
    exc = outcome.error
    if exc is None:
        return (f"echo_server() returned ({outcome.value!r}) before `stop` was readable.\n"
                "The loop must run until the check sends a byte on `stop`.")
    text = describe_error(exc)
    if isinstance(exc, KeyError) and "already registered" in str(exc):
        text = "it raised KeyError: a new socket's descriptor \"is already registered\""
        return (f"{text}.\nA new connection got the descriptor number of one you closed, and the\n"
                "selector still had the old one: unregister() a socket BEFORE you close it.")
    if isinstance(exc, ValueError) and ("closed" in str(exc) or "-1" in str(exc)):
        return (f"{text}.\nA closed socket was still used (or still registered): when a client\n"
                "goes, unregister it from the selector, then close it, then forget it.")
    if isinstance(exc, ConnectionError):
        return (f"{text}.\nOne client resetting the connection ended the whole server.  Catch\n"
                "ConnectionError (reset, broken pipe) around recv()/send() and drop just\n"
                "that client.")
    if isinstance(exc, BlockingIOError):
        return (f"{text}.\nOn a non-blocking socket a call that cannot go on at once raises\n"
                "BlockingIOError -- send() too, when the client's send buffer is full (a\n"
                "client that does not read), and sendall().  Catch it: keep what send() did\n"
                "not take, and send it when the selector says EVENT_WRITE.")
    return text


def _gone_hint(server, hint):
    """A step's own hint -- unless the server has died, which says more (below)."""
    if server.running:
        return hint
    return "no answer: the server is no longer running (why: see below)."


# What the steps tell a learner, in the words of the language the server is in.
# The Python ones are stored in the lesson's outputs: change them only with those.
PY_WORDS = {
    "one client":
        "Register the listener for EVENT_READ, accept() when it is ready, register\n"
        "the new connection, and send back what recv() returns.",
    "leaves":
        "When recv() returns b'' the client has gone: unregister that\n"
        "socket, close it, and forget it.",
    "many":
        "Call each only when the selector says that socket is ready.",
    "one thread": "... served from one thread (no thread per client)",
    "threads":
        "{count} new threads appeared.  The exercise is an event loop: one\n"
        "thread waits in select() for every socket at once.",
    "blocked":
        "Make every accepted socket\n"
        "non-blocking (conn.setblocking(False)), and never use sendall() in the\n"
        "loop: send() what the kernel takes now and keep the rest for EVENT_WRITE.",
    "holds": f"... and the server holds at most about {HOLD_ALLOWED // 1024 // 1024} MiB"
             " of unsent echo for it",
    "stores":
        "Once a client's unsent echo is over 1 MiB, stop reading from it\n"
        "(register it for EVENT_WRITE only) until it has drained.  asyncio:\n"
        "`await writer.drain()` after each write() does exactly that.",
    "idle": f"{IDLE} idle clients: the server's thread sleeps (no busy loop)",
    "spins":
        "It spins: is every socket registered for EVENT_WRITE all the time (a socket\n"
        "is almost always writable), or select() called with timeout 0?  Ask for\n"
        "EVENT_WRITE only while there is echo to send.",
}
C_WORDS = {
    "one client":
        "Watch the listener for POLLIN (EPOLLIN), accept when it is ready, watch\n"
        "the new connection too, and send back what recv() returns.",
    "leaves":
        "When recv() returns 0 the client has gone: take it out of\n"
        "what poll() watches (epoll: EPOLL_CTL_DEL), close() it, and forget it.",
    "many":
        "Call each only when poll() or epoll_wait() says that socket is ready.",
    "one thread": "... served from one process (no thread or child per client)",
    "threads":
        "{count} new threads or child processes appeared.  The exercise is an event\n"
        "loop: one process waits in poll() or epoll_wait() for every socket at once.",
    "blocked":
        "Make every accepted socket\n"
        "non-blocking (fcntl O_NONBLOCK, or accept4(..., SOCK_NONBLOCK)), and never\n"
        "loop on send() until all is gone (send_all() is for blocking sockets): send()\n"
        "what the kernel takes now, keep the rest, and wait for POLLOUT (EPOLLOUT).",
    "holds": "... and the server stops reading from it: the flood stalls",
    "stores":
        "While a client has echo not sent yet, do not read from it: wait for\n"
        "POLLOUT (EPOLLOUT) only, until that echo has gone out.",
    "idle": f"{IDLE} idle clients: the server sleeps (no busy loop)",
    "spins":
        "It spins: is every socket watched for POLLOUT (EPOLLOUT) all the time (a\n"
        "socket is almost always writable), poll() called with timeout 0, or a closed\n"
        "descriptor still in the poll array (poll() reports POLLNVAL for it at once,\n"
        "every time)?  Ask for POLLOUT only while there is echo to send; remove a\n"
        "client from what poll() watches when you close it.",
}


class _Harness:
    """The learner's server running in a thread, and the check's view of it."""

    words = PY_WORDS
    flood_allowed = FLOOD_ALLOWED

    def __init__(self, echo_server):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Small buffers, inherited by every accepted socket: a server that stops
        # reading from a client it cannot answer stops that client soon.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.address = self.listener.getsockname()
        self.stop_reader, self.stop_writer = socket.socketpair()
        self.stop_reader.setblocking(False)  # asyncio's loop.sock_recv() wants that
        self.threads_before = set(threading.enumerate())
        self.outcome, self.thread = call_with_time_limit(
            echo_server, self.listener, self.stop_reader, limit=START_WAIT)
        self.clients = []

    @property
    def running(self):
        return not self.outcome.finished

    def died_hint(self):
        return _died_hint(self.outcome)

    def connect(self, count):
        socks = adversary.connect_many(self.address, count)
        self.clients += socks
        return socks

    def other_threads(self):
        now = set(threading.enumerate()) - self.threads_before - {self.thread}
        return [thread for thread in now if thread.is_alive()]

    def time_used(self):
        """(seconds running or ready to run, CPU seconds) of the server's thread."""
        try:
            cpu = adversary.thread_cpu_seconds(self.thread)
        except (OSError, TypeError):  # the thread has ended meanwhile
            return None
        return adversary.thread_runnable_seconds(self.thread), cpu

    def stop(self):
        """Ask the loop to end (a byte on `stop`); True if it returned in time."""
        try:
            self.stop_writer.send(b"x")
        except OSError:
            pass
        self.thread.join(STOP_WAIT)
        return self.outcome.finished

    def wait_until_accepted(self, timeout):
        """Wait until the server has accepted every client that has connected.

        The kernel says how many completed connections wait in the listener's
        queue (TCP_INFO's tcpi_unacked, for a listening socket); nothing tells
        when that reaches 0, so this looks every millisecond, for ``timeout`` s
        at most (a server that does not accept at all is judged elsewhere).
        """
        deadline = time.monotonic() + timeout
        while adversary.accept_queue(self.listener) and time.monotonic() < deadline:
            time.sleep(0.001)

    def wait_for_other_threads(self, seconds):
        deadline = time.monotonic() + seconds
        for thread in self.other_threads():
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self):
        adversary.close_all(self.clients)
        if self.running:
            # It did not stop: closing the listener makes accept() fail, at least.
            self.stop()
        for sock in (self.listener, self.stop_reader, self.stop_writer):
            sock.close()
        self.thread.join(0.5)


class EscapedErrors:
    """Exceptions that escape the learner's own threads and asyncio callbacks.

    Python prints each as a traceback ("Exception in thread ...", "Unhandled
    exception in client_connected_cb") the moment it happens: a wrong answer would
    flood the cell before the report.  Inside ``with EscapedErrors() as escaped``
    they are counted instead -- threading.excepthook for threads, a filter on the
    "asyncio" logger (where the loop's default exception handler writes) for
    tasks -- and everything is put back afterwards.  Only threads started inside
    the block count; the rest of the program's errors are printed as usual.
    """

    def __init__(self):
        self.threads = collections.Counter()  # exception class -> times, in threads
        self.tasks = collections.Counter()  # ... in asyncio tasks (or a message)

    def __enter__(self):
        self._threads_before = {thread.ident for thread in threading.enumerate()}
        self._excepthook = threading.excepthook
        threading.excepthook = self._thread_error
        logging.getLogger("asyncio").addFilter(self._asyncio_record)
        return self

    def __exit__(self, *exc_info):
        threading.excepthook = self._excepthook
        logging.getLogger("asyncio").removeFilter(self._asyncio_record)

    def _ours(self, ident):
        return ident not in self._threads_before

    def _thread_error(self, args):
        if args.thread is not None and self._ours(args.thread.ident):
            self.threads[args.exc_type] += 1
        else:
            self._excepthook(args)

    def _asyncio_record(self, record):
        """A logging filter: False keeps the record from being printed."""
        if not self._ours(record.thread) or record.levelno < logging.ERROR:
            return True
        if record.exc_info and record.exc_info[0] is not None:
            self.tasks[record.exc_info[0]] += 1
        else:
            self.tasks[record.getMessage().splitlines()[0]] += 1
        return False

    def summary(self):
        """"your threads raised ConnectionResetError 10 times", or ''."""
        parts = []
        for where, counts in (("threads", self.threads), ("asyncio tasks", self.tasks)):
            if counts:
                names = ", ".join(f"{getattr(kind, '__name__', kind)} {times} "
                                  f"time{'s' if times > 1 else ''}"
                                  for kind, times in counts.most_common())
                parts.append(f"your {where} raised {names}")
        return "; ".join(parts)

    def kinds(self):
        return set(self.threads) | set(self.tasks)


def check_echo_server(echo_server):
    """Check ``echo_server(listener, stop)``: an event-loop echo server in one thread.

    ``listener`` is a listening TCP socket; ``stop`` a socket that becomes readable
    when the server must close its connections and return.  See the module's
    docstring for the clients it must survive.
    """
    report = Report("Checking echo_server(listener, stop):")
    with EscapedErrors() as escaped:
        server = _Harness(echo_server)
        try:
            ran_through = _check_echo_cases(report, server)
        finally:
            server.close()
            server.wait_for_other_threads(0.5)  # their last errors are counted too
    if server.thread.is_alive():
        _add_to_last_hint(report, "\nIt is still running, holding its sockets, and "
                          "socklab.stop_all() does not\nknow it: once it is fixed, "
                          "restart the kernel (Kernel > Restart Kernel).")
    if ran_through or escaped.summary():
        report.add("no exception escapes from a client's thread or task",
                   _judge_escaped_errors(escaped))
    return report


def _add_to_last_hint(report, text):
    description, verdict = report.results[-1]
    if not verdict.passed:
        report.results[-1] = (description, dataclasses.replace(verdict, hint=verdict.hint + text))


def _judge_escaped_errors(escaped):
    """Judge the exceptions that escaped the learner's threads and tasks: none may."""
    summary = escaped.summary()
    if not summary:
        return Verdict.ok()
    advice = [textwrap.fill(f"{summary} (the check kept their tracebacks out of "
                            "this cell).", 76)]
    kinds = escaped.kinds()
    if any(isinstance(kind, type) and issubclass(kind, ConnectionError) for kind in kinds):
        advice.append("Catch ConnectionError (reset, broken pipe) around recv()/send() --\n"
                      "in asyncio, around read()/drain() -- and end just that client.")
    if any(getattr(kind, "__name__", "") == "CancelledError" for kind in kinds):
        advice.append("CancelledError: handlers still running when asyncio.run() ended\n"
                      "were cancelled.  Before returning, close every client's writer and\n"
                      "wait for its handler (see the asyncio solution).")
    return Verdict.fail("\n".join(advice))


STEPS_IN_WORDS = [  # what each step tries, for "still to come"
    "one client",
    "a client leaving and a new one taking its descriptor number",
    "100 clients at once",
    "clients sending a byte at a time",
    "clients that reset",
    "a client that never reads (a blocking call shows there)",
    "idle clients",
    "`stop`",
]


def _check_echo_cases(report, server):
    """Run the steps; True if the server lived through all of them.

    Each step plays clients against ``server`` and yields (description, Verdict)
    for what it saw.  A step needs of ``server`` only what _Harness offers:
    its address, clients, words, flood_allowed, connect(), running, died_hint(),
    other_threads(), time_used(), wait_until_accepted() and stop() -- which
    _CHarness offers too (but for stop(): C's steps end before _stop).
    """
    if server.outcome.finished:
        if not_written(server.outcome):
            report.add("one client: its message comes back", Verdict.not_written())
        else:
            report.add("echo_server() keeps running until `stop`",
                       Verdict.fail(_died_hint(server.outcome), final=True))
        return False
    return _run_steps(report, server, PY_STEPS, STEPS_IN_WORDS)


def _run_steps(report, server, steps, in_words):
    """Play ``steps`` against ``server``; True if it lived through all of them."""
    for number, step in enumerate(steps):
        for description, verdict in step(server):
            report.add(description, verdict)
        if step is not _stop and not server.running:
            to_come = ", ".join(in_words[number + 1:])
            report.add("the server kept running through all of this", Verdict.fail(
                server.died_hint() + "\n" + textwrap.fill(
                    f"The check stops here; still to come: {to_come}.", 76), final=True))
            return False
    return True


def _one_client(server):
    """Judge the echo to one polite client."""
    (sock,) = server.connect(1)
    failed = adversary.echo_round([sock], timeout=ECHO_WAIT)
    yield ("one client: its message comes back",
           Verdict.ok() if not failed else Verdict.fail(_gone_hint(
               server,
               f"the client sent one line and got no echo within {ECHO_WAIT:g} s.\n"
               + server.words["one client"])))


def _client_leaves(server):
    """Judge a client leaving, and a newcomer that gets the server's freed descriptor.

    A process's next descriptor is the lowest free number, and the check's clients
    live in the same process as the server.  So the newcomer's socket is made
    first, and the leaver stays open until the end: when the server close()s the
    leaver's connection, the next descriptor made in this process is the one
    accept() gives the newcomer -- the number just closed.  A server that closed it
    without unregister() meets "is already registered" there, every time, instead
    of whenever the numbers happen to line up.  (Nothing else here may make a
    descriptor meanwhile, so the newcomer's echo is read without a selector.)
    """
    leaver = server.clients[-1]
    newcomer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.clients.append(newcomer)
    newcomer.settimeout(ECHO_WAIT)
    leaver.shutdown(socket.SHUT_WR)  # the server's recv() returns b''
    try:
        closed = leaver.recv(1) == b""  # ... and its close() reaches us as EOF
    except OSError:  # a timeout or a reset
        closed = False
    yield ("a client that leaves: the server closes its connection",
           Verdict.ok() if closed else Verdict.fail(_gone_hint(
               server,
               f"the client shut down its sending side and its connection was not closed\n"
               f"within {ECHO_WAIT:g} s.  " + server.words["leaves"])))
    if not (closed and server.running):
        return
    message = adversary.message_for(0)
    echo = b""
    try:
        newcomer.connect(server.address)
        newcomer.sendall(message)
        while len(echo) < len(message) and (part := newcomer.recv(65536)):
            echo += part
    except OSError:  # a timeout, a reset or a refusal
        pass
    yield ("... and a new client that takes its place is served",
           Verdict.ok() if echo == message else Verdict.fail(_gone_hint(
               server, f"the next client got no echo within {ECHO_WAIT:g} s.")))


def _many_clients(server):
    """Judge the echo to 100 clients at once, and how many threads served them."""
    socks = server.connect(MANY)
    failed = adversary.echo_round(socks, timeout=ECHO_WAIT)
    yield (f"{MANY} clients at once: each gets its own message back",
           Verdict.ok() if not failed else Verdict.fail(_gone_hint(
               server,
               f"{len(failed)} of {MANY} clients did not get their message back within "
               f"{ECHO_WAIT:g} s.\nDoes a recv() or an accept() wait for one client while "
               "others are ready?\n" + server.words["many"])))
    threads = server.other_threads()
    yield (server.words["one thread"],
           Verdict.ok() if len(threads) < 10 else Verdict.fail(
               server.words["threads"].format(count=len(threads))))


def _slow_clients(server):
    """Judge the echo to clients that send one byte at a time, taking turns."""
    socks = server.connect(SLOW)
    stuck = adversary.trickle(socks, timeout=1.0)
    yield (f"{SLOW} clients sending one byte at a time, taking turns",
           Verdict.ok() if stuck is None else Verdict.fail(_gone_hint(
               server,
               f"client {stuck[0] + 1} sent byte {stuck[1] + 1} and got no echo within 1 s.\n"
               "Echo whatever one recv() returns, even a single byte: there are no\n"
               "messages in a stream, and the next byte may come much later.")))


def _resetting_clients(server):
    """Judge the server after clients reset mid-echo: a new client is still served."""
    socks = server.connect(RESETTERS)
    for number, sock in enumerate(socks):
        sock.sendall(adversary.message_for(number, 1000))
    # Reset only once the echo has begun to come back: the server has read the
    # data, and meets the RST in the middle of an exchange.
    adversary.wait_until_readable(socks, timeout=ECHO_WAIT)
    for sock in socks:
        adversary.reset(sock)
    if not server.running:
        return
    # No wait for the server to see the resets: they reached its kernel when
    # close() returned, before the new client connects, so an event loop meets
    # them before it can serve the new one (and dies first, if a reset kills it).
    (after,) = server.connect(1)
    failed = adversary.echo_round([after], timeout=ECHO_WAIT)
    if failed and not server.running:
        return  # a reset killed it: "kept running" below says so
    yield (f"{RESETTERS} clients reset (RST); a new client is still served",
           Verdict.ok() if not failed else Verdict.fail(
               f"after the resets a new client got no echo within {ECHO_WAIT:g} s."))


def _flooding_client(server):
    """Judge the server with a client that sends and never reads: others are served,
    and the server holds only so much unsent echo."""
    flood = adversary.Flood(server.address, limit=FLOOD_LIMIT)
    try:
        sender = threading.Thread(target=flood.run, args=(FLOOD_SECONDS,),
                                  name="socklab check flood", daemon=True)
        sender.start()
        # Until the flood is over: the server took nothing for a while (it stopped
        # reading, or is stuck in a blocking send()), or took all, or time is up.
        # Not at the first pause (flood.pressing): on a busy machine a server that
        # will block soon may only be slow for a moment, and still serve the other.
        sender.join(FLOOD_SECONDS + 1.0)
        (other,) = server.connect(1)
        failed = adversary.echo_round([other], timeout=1.0)
        yield ("a client sends and never reads: another client is still served",
               Verdict.ok() if not failed else Verdict.fail(_gone_hint(
                   server,
                   "while one client sent without reading, another client got no echo\n"
                   "within 1 s: a call in the loop is blocking.  "
                   + server.words["blocked"])))
        if not server.running:
            return
        mib = flood.sent / (1024 * 1024)
        yield (server.words["holds"],
               Verdict.ok() if flood.sent <= server.flood_allowed else Verdict.fail(
                   f"the client got {mib:.1f} MiB in without reading a byte of the echo: the\n"
                   "server keeps reading from a client it cannot answer, and stores it all.\n"
                   + server.words["stores"]))
    finally:
        flood.close()


def _idle_clients(server):
    """Judge the server's thread with 20 idle clients: it sleeps, no busy loop."""
    server.connect(IDLE)
    server.wait_until_accepted(timeout=ECHO_WAIT)
    before = server.time_used()
    time.sleep(IDLE_WINDOW)  # not a wait for something: the window the thread is watched
    after = server.time_used()
    if before is None or after is None:
        return
    used = after[1] - before[1]
    if after[0] is not None and before[0] is not None:
        busy = after[0] - before[0]
        spins = busy > IDLE_BUSY_ALLOWED
        measured = (f"was running, or ready to run, for {busy:.2f} s of {IDLE_WINDOW:g} s\n"
                    f"({used:.2f} s on a CPU)")
    else:
        spins = used > IDLE_CPU_ALLOWED
        measured = f"used {used:.2f} s of CPU in {IDLE_WINDOW:g} s"
    yield (server.words["idle"],
           Verdict.ok() if not spins else Verdict.fail(
               f"with nothing to do the server's thread {measured}.\n"
               + server.words["spins"]))


def _stop(server):
    """Judge what echo_server() does once `stop` is readable: it returns, without error."""
    stopped = server.stop()
    verdict = Verdict.ok()
    if not stopped:
        verdict = Verdict.fail(
            f"it was still running {STOP_WAIT:g} s after a byte arrived on `stop`.\n"
            "Register `stop` for EVENT_READ with the rest; when it is ready, close\n"
            "your sockets and return.")
    elif server.outcome.error is not None:
        verdict = Verdict.fail(describe_error(server.outcome.error))
    yield "a byte on `stop`: echo_server() returns", verdict


PY_STEPS = [_one_client, _client_leaves, _many_clients, _slow_clients, _resetting_clients,
            _flooding_client, _idle_clients, _stop]
C_STEPS = PY_STEPS[:-1]  # a C server has no `stop`: it runs until it is killed
C_STEPS_IN_WORDS = [*STEPS_IN_WORDS[:-1],
                    "C's own failures (SIGPIPE, descriptors, CPU while idle, zombies)"]


# ------------------------------------------------------------ echo server in C

class _CHarness:
    """The learner's C server, a process (a c_answer.Answer), seen as the steps see
    a _Harness: they cannot tell the two apart (see _check_echo_cases)."""

    words = C_WORDS
    flood_allowed = C_FLOOD_ALLOWED

    def __init__(self, answer):
        self.answer = answer
        self.address = answer.address
        self.clients = []

    @property
    def running(self):
        """False once the program has ended.  A client may see its connection end
        an instant before the program's exit is complete (its sockets close
        first): so this waits for that exit, DEATH_GRACE s at most."""
        try:
            self.answer.program._process.wait(DEATH_GRACE)
        except subprocess.TimeoutExpired:
            return True
        return False

    def died_hint(self):
        dead = self.answer.death()  # its exit, signal or sanitizer report, in words
        return dead.hint if dead is not None else "it is still running."

    def connect(self, count):
        socks = adversary.connect_many(self.address, count)
        self.clients += socks
        return socks

    def other_threads(self):
        """The program's threads but its first, and its child processes: what serves
        clients besides the one event loop."""
        tasks = pathlib.Path(f"/proc/{self.answer.pid}/task")
        found = []
        try:
            for task in sorted(tasks.iterdir(), key=lambda t: int(t.name))[1:]:
                found.append(f"thread {task.name}")
            for task in tasks.iterdir():
                found += [f"process {child}"
                          for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass  # it ended meanwhile: running says so
        return found

    def time_used(self):
        """(seconds running or ready to run, CPU seconds) of the process, or None."""
        try:
            stat = pathlib.Path(f"/proc/{self.answer.pid}/stat").read_text()
            runnable = self.answer.runnable_seconds()
        except (FileNotFoundError, ProcessLookupError):
            return None
        utime, stime = stat.rpartition(")")[2].split()[11:13]  # fields 14 and 15
        return runnable, (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def wait_until_accepted(self, timeout):
        """Like _Harness's: the queue of a listener in another process is read from
        /proc/net/tcp, where a LISTEN socket's rx_queue is its accept queue."""
        deadline = time.monotonic() + timeout
        while _accept_queue_of_port(self.address[1]) and time.monotonic() < deadline:
            time.sleep(0.001)

    def close(self):
        adversary.close_all(self.clients)


def _accept_queue_of_port(port):
    """Connections waiting for accept() on the listener of 127.0.0.1:``port``."""
    local = f"0100007F:{port:04X}"  # /proc/net/tcp: the address in host order, hex
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":  # 0A: TCP_LISTEN
                return int(fields[4].partition(":")[2], 16)
    return 0


def check_echo_server_c(name):
    """Check the C echo server NAME, compiled by a ``%%c NAME --compile-only`` cell.

    One process, one thread, poll() or epoll: it listens on 127.0.0.1 (any
    port), prints LISTENING <port> and echoes to every client until it leaves.
    It meets the steps of check_echo_server (all but `stop`), then C's own
    failures (socklab.checks.c_answer.check_process).
    """
    report = Report(f"Checking the C echo server {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    with answer:
        server = _CHarness(answer)
        try:
            ran_through = _run_steps(report, server, C_STEPS, C_STEPS_IN_WORDS)
        finally:
            server.close()
        if ran_through:
            c_answer.check_process(answer, report, probe=_echo_probe,
                                   spins_hint=C_WORDS["spins"])
    return report


def _echo_probe(sock):
    """One ordinary exchange, judged: a client's line comes back."""
    failed = adversary.echo_round([sock], timeout=ECHO_WAIT)
    return Verdict.ok() if not failed else Verdict.fail(
        f"a client sent one line and got no echo within {ECHO_WAIT:g} s.")


# -------------------------------------------------------- connect_with_timeout

CONNECT_TIMEOUT = 0.5  # seconds given to the learner's function in the timeout case


def check_connect_with_timeout(connect_with_timeout):
    """Check ``connect_with_timeout(address, timeout) -> socket``.

    It must return a connected socket in blocking mode, raise
    ConnectionRefusedError when nobody listens, raise the error with which
    connect_ex() itself failed (not EINPROGRESS), and raise TimeoutError once
    ``timeout`` seconds have passed without an answer.
    """
    report = Report("Checking connect_with_timeout(address, timeout):")
    for description, case in (
        ("a listening server: a connected, blocking socket comes back", _connect_listening),
        ("nobody listens: ConnectionRefusedError", _connect_refused),
        ("connect() fails at once (127.255.255.255, loopback's broadcast address): "
         "that error", _connect_fails_at_once),
        (f"the server's queue is full: TimeoutError after about {CONNECT_TIMEOUT} s",
         _connect_full_queue),
    ):
        if report.add(description, case(connect_with_timeout)).final:
            break
    return report


def _close_result(outcome):
    if isinstance(outcome.value, socket.socket):
        outcome.value.close()


def _connect_listening(connect_with_timeout):
    """Judge connect_with_timeout() to a listening server: a connected, blocking socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIME_LIMIT)
        outcome, _ = call_with_time_limit(connect_with_timeout, listener.getsockname(), 2.0)
        try:
            if not outcome.finished:
                return Verdict.fail(
                    f"it did not return within {TIME_LIMIT:g} s although the server listens.\n"
                    "Once select/poll says the socket is writable, the handshake is over.")
            if not_written(outcome):
                return Verdict.not_written()
            if outcome.error is not None:
                return Verdict.fail(describe_error(outcome.error))
            sock = outcome.value
            if not isinstance(sock, socket.socket):
                return Verdict.fail(f"it returned {sock!r}: return the connected socket.")
            try:
                peer = sock.getpeername()
            except OSError:
                return Verdict.fail(
                    "the socket it returned is not connected.  connect_ex() on a non-blocking\n"
                    "socket only STARTS the handshake (EINPROGRESS): wait until it is writable.")
            if peer != listener.getsockname():
                return Verdict.fail(
                    f"it is connected to {peer}, not to the address it was given.")
            if sock.gettimeout():  # a timeout: settimeout() or create_connection(timeout=)
                return Verdict.fail(
                    f"the socket comes back with gettimeout() = {sock.gettimeout()!r}: was it"
                    " made with\nsettimeout() or create_connection(timeout=...)?  The "
                    "exercise asks for\nsetblocking(False), connect_ex(), a wait in "
                    "select/poll/selectors, and SO_ERROR;\nthen hand the socket back in "
                    "blocking mode: sock.setblocking(True).")
            if not sock.getblocking():
                return Verdict.fail(
                    "the socket comes back non-blocking (gettimeout() = 0.0).  Hand it back"
                    " in\nblocking mode, as create_connection() would: "
                    "sock.setblocking(True).")
            accepted, _ = listener.accept()
            with accepted:
                accepted.sendall(b"hi")
                sock.settimeout(TIME_LIMIT)
                if sock.recv(10) != b"hi":
                    return Verdict.fail(
                        "bytes sent by the server did not arrive on the socket it returned.")
            return Verdict.ok()
        finally:
            _close_result(outcome)


def _connect_refused(connect_with_timeout):
    """Judge connect_with_timeout() where nobody listens: ConnectionRefusedError, at once."""
    with socket.socket() as closed_door:  # bound, never listening: the kernel refuses
        closed_door.bind(("127.0.0.1", 0))
        started = time.monotonic()
        outcome, _ = call_with_time_limit(connect_with_timeout, closed_door.getsockname(), 2.0)
        elapsed = time.monotonic() - started
        try:
            if not outcome.finished:
                return Verdict.fail(f"it did not return within {TIME_LIMIT:g} s, though the"
                                    " refusal comes at once.")
            if not_written(outcome):
                return Verdict.not_written()
            if isinstance(outcome.error, ConnectionRefusedError):
                if elapsed > 1.5:
                    return Verdict.fail(
                        f"right error, but after {elapsed:.1f} s: a refusal is over as soon as"
                        " the socket is writable.")
                return Verdict.ok()
            if outcome.error is None:
                return Verdict.fail(
                    "it returned a socket, but nobody listens there.  'Writable' means the\n"
                    "attempt is OVER, not that it worked: read SO_ERROR (getsockopt) and, if\n"
                    "it is not 0, raise OSError(err, os.strerror(err)).")
            if isinstance(outcome.error, TimeoutError):
                return Verdict.fail(
                    "it raised TimeoutError, but the server's kernel refused at once: the socket\n"
                    "became writable with SO_ERROR = ECONNREFUSED.  Read SO_ERROR.")
            if isinstance(outcome.error, OSError) and outcome.error.errno == errno.ECONNREFUSED:
                return Verdict.ok()
            return Verdict.fail(describe_error(outcome.error))
        finally:
            _close_result(outcome)


UNREACHABLE = ("127.255.255.255", 9)  # loopback's broadcast: TCP's connect() says ENETUNREACH


def _connect_fails_at_once(connect_with_timeout):
    """Judge connect_with_timeout() where connect_ex() itself fails: that error, at once.

    A TCP connect() to a broadcast address fails before anything is sent
    (ENETUNREACH); the socket is then writable at once, with SO_ERROR 0, as if
    connected -- so only connect_ex()'s own result tells.
    """
    with socket.socket() as probe:  # what this kernel says, to name it in the hint
        probe.setblocking(False)
        err = probe.connect_ex(UNREACHABLE)
    if err in (0, errno.EINPROGRESS):
        return Verdict.ok()  # a kernel that would try: nothing to judge here
    name = errno.errorcode.get(err, str(err))
    outcome, _ = call_with_time_limit(connect_with_timeout, UNREACHABLE, 2.0)
    try:
        if not outcome.finished:
            return Verdict.fail(f"it did not return within {TIME_LIMIT:g} s, though connect_ex()"
                                f" fails at once ({name}).")
        if not_written(outcome):
            return Verdict.not_written()
        if outcome.error is None:
            return Verdict.fail(
                f"it returned a socket that is not connected.  connect_ex() returned {name}\n"
                "at once: the attempt is over before it began.  The socket is writable\n"
                "and SO_ERROR is 0 (the error was already given), so only connect_ex()'s\n"
                "result tells: anything but 0 and EINPROGRESS, raise OSError(err,\n"
                "os.strerror(err)).")
        if isinstance(outcome.error, TimeoutError):
            return Verdict.fail(f"it raised TimeoutError, but connect_ex() had failed at once"
                                f" ({name}): raise that error.")
        if isinstance(outcome.error, OSError) and outcome.error.errno == err:
            return Verdict.ok()
        return Verdict.fail(f"{describe_error(outcome.error)}; connect_ex() had returned {name}:"
                            " raise OSError(err, os.strerror(err)).")
    finally:
        _close_result(outcome)


def _connect_full_queue(connect_with_timeout):
    """Judge connect_with_timeout() to a full accept queue: TimeoutError after the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # room for one connection; Linux drops the SYNs after it
        with socket.create_connection(listener.getsockname(), timeout=TIME_LIMIT):
            started = time.monotonic()
            outcome, thread = call_with_time_limit(
                connect_with_timeout, listener.getsockname(), CONNECT_TIMEOUT)
            elapsed = time.monotonic() - started
            try:
                if not outcome.finished:
                    return Verdict.fail(
                        f"it did not return within {TIME_LIMIT:g} s: the wait has no limit.\n"
                        "Pass the timeout to select()/poll()/selector.select(); when it\n"
                        "returns nothing, raise TimeoutError.")
                if not_written(outcome):
                    return Verdict.not_written()
                if outcome.error is None:
                    return Verdict.fail(
                        f"it returned {outcome.value!r}, but no handshake could complete: the\n"
                        "server's queue is full and its kernel ignores the SYN.  Raise\n"
                        "TimeoutError when the wait ends without the socket being writable.")
                if not isinstance(outcome.error, TimeoutError):
                    return Verdict.fail(
                        f"{describe_error(outcome.error)}; raise TimeoutError when the time is up"
                        " (socket.timeout is the same class).")
                if elapsed < CONNECT_TIMEOUT * 0.8:
                    return Verdict.fail(
                        f"it gave up after {elapsed:.2f} s; wait the whole timeout "
                        f"({CONNECT_TIMEOUT} s) for the socket to become writable.")
                if elapsed > CONNECT_TIMEOUT + 1.0:
                    return Verdict.fail(
                        f"it raised TimeoutError, but only after {elapsed:.1f} s; the timeout "
                        f"was {CONNECT_TIMEOUT} s.")
                return Verdict.ok()
            finally:
                _close_result(outcome)
        # Leaving: the listener closes, so a connect() still waiting is refused and ends.
