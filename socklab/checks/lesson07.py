"""Checks for lesson 07's exercises: receive_numbered() and probe().

Both run the learner's function on real UDP sockets on loopback:

* check_receive_numbered: datagrams numbered 1, 2, 3 ... are sent through a
  socklab.LossyRelay with a fixed seed, so some are dropped, one comes twice, one
  is overtaken -- the same fates on every run.  The learner's socket is the
  relay's target; the check knows from ``relay.fates()`` what must have arrived,
  and in which order, and compares.
* check_probe: three UDP ports on 127.0.0.1 -- one that answers, one where
  nothing is bound (the kernel answers with ICMP "port unreachable"), one that
  receives but never answers.
* check_udp_echo_server_c: the learner's UDP echo server in C (a
  ``%%c NAME --compile-only`` cell), built with the sanitizers and started by
  socklab.checks.c_answer.  UDP's own hostile peers: binary data with NUL bytes,
  an empty datagram (recvfrom() returns 0: not an end), the largest datagram
  (65,507 bytes: a smaller buffer truncates it), ten clients interleaved (each
  reply to its own sender), and a client gone before its reply, whose ICMP "port
  unreachable" the server's socket is made to hear (IP_RECVERR): its next
  recvfrom() fails once with ECONNREFUSED, and it must go on.  Then
  c_answer.check_process without the TCP cases: CPU while idle, zombies.

The learner's code runs in a helper thread with a time limit.  A function that
waits forever in recv() is woken by a datagram sent straight to its socket, so no
thread is left behind.
"""

import contextlib
import dataclasses
import os
import random
import select
import socket
import time

from .. import explore
from ..relay import CLIENT_TO_SERVER, LossyRelay
from ..servers import UDPEchoServer, serve
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)
from . import c_answer
from .watched import CheckStopped, call_watched

__all__ = ["CheckStopped", "arrival_order", "check_receive_numbered", "check_probe",
           "check_udp_echo_server_c"]

QUIET = 0.5  # the timeout the check passes to receive_numbered()


def arrival_order(fates):
    """The numbers a receiver gets, in order, when datagrams 1, 2 ... meet ``fates``.

    This is what socklab.LossyRelay does with them (see its docstring): "drop"
    loses a datagram, "duplicate" sends it twice in a row, "reorder" holds it back
    until the next datagram that is not dropped has gone out.  (Were the sender to
    pause longer than the relay's reorder_hold, a held datagram would go out on its
    own; the check sends all its datagrams in one quick loop.)
    """
    order = []
    held = None
    for number, fate in enumerate(fates, 1):
        if fate == "drop":
            continue
        if fate == "reorder" and held is None:
            held = number
            continue
        order.extend([number] * (2 if fate == "duplicate" else 1))
        if held is not None:
            order.append(held)
            held = None
    if held is not None:
        order.append(held)
    return order


def expected_report(count, order):
    """(arrived, missing, duplicates, late) for datagrams 1..count arriving as ``order``."""
    missing = [n for n in range(1, count + 1) if n not in order]
    duplicates = sorted({n for n in order if order.count(n) > 1})
    late = sorted({n for i, n in enumerate(order) if any(m > n for m in order[:i])})
    return list(order), missing, duplicates, late


def _stoppable(name):
    """A receiving method of _WatchedUDPSocket: the real socket's ``name``, but
    CheckStopped if the check has stopped, before the call or while it waited."""

    def receive(self, *args):
        self._received(None)
        return self._received(getattr(self.sock, name)(*args))

    receive.__name__ = name
    receive.__qualname__ = f"_WatchedUDPSocket.{name}"
    return receive


class _WatchedUDPSocket:
    """A bound UDP socket handed to the learner; it can be stopped from outside.

    Calls go to the real socket (``.sock``).  Once ``stop()`` has been called, the
    next receiving call -- or the one waiting now, which stop() wakes with a
    datagram -- raises CheckStopped.
    """

    def __init__(self, sock):
        self.sock = sock
        self.stop_reason = None
        self.timeouts = []  # every value given to settimeout()

    def _received(self, result):
        if self.stop_reason is not None:
            raise CheckStopped(self.stop_reason)
        return result

    recv = _stoppable("recv")
    recvfrom = _stoppable("recvfrom")
    recv_into = _stoppable("recv_into")
    recvfrom_into = _stoppable("recvfrom_into")
    recvmsg = _stoppable("recvmsg")

    def settimeout(self, value):
        self.timeouts.append(value)
        self.sock.settimeout(value)

    def stop(self, reason):
        self.stop_reason = reason
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.sock.getsockname())

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def __repr__(self):
        return "<UDP socket watched by the check>"


# ------------------------------------------------------------ receive_numbered


def _as_numbers(value, what):
    """A hint if value is not a list of ints, else None."""
    if not isinstance(value, (list, tuple)):
        return f"{what} is a {type(value).__name__}; it should be a list of numbers."
    for item in value:
        if isinstance(item, (bytes, str)):
            return (
                f"{what} holds {item!r}: a datagram's bytes, not a number.\n"
                "Each datagram carries its number as text: int(data) gives the number."
            )
        if isinstance(item, bool) or not isinstance(item, int):
            return f"{what} holds {item!r} ({type(item).__name__}), not a number."
    return None


def _judge_numbered(outcome, timed_out, expected, count):
    """Judge receive_numbered()'s answer: ``expected`` (arrived, missing, duplicates, late)."""
    if timed_out:
        return Verdict.fail(
            f"receive_numbered() did not return within {TIME_LIMIT:g} s.\n"
            "Some datagrams never come, and nothing tells the receiver so: give every\n"
            "recv() a time limit (sock.settimeout(timeout)), and when it runs out,\n"
            "stop and return what you have.", final=True
        )
    if not_written(outcome):
        return Verdict.not_written()
    if isinstance(outcome.error, TimeoutError):
        return Verdict.fail(
            f"{describe_error(outcome.error)}\n"
            "The timeout is how the receiver learns that nothing more is coming:\n"
            "catch TimeoutError (socket.timeout), leave the loop and return the report."
        )
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    value = outcome.value
    if not isinstance(value, (tuple, list)) or len(value) != 4:
        return Verdict.fail(
            "it should return four lists: (arrived, missing, duplicates, late).")
    names = ("arrived", "missing", "duplicates", "late")
    for name, part in zip(names, value):
        hint = _as_numbers(part, name)
        if hint:
            return Verdict.fail(hint)
    arrived, missing, duplicates, late = (list(part) for part in value)
    want_arrived, want_missing, want_duplicates, want_late = expected
    if arrived != want_arrived:
        if sorted(arrived) == sorted(want_arrived):
            return Verdict.fail(
                f"arrived is {arrived}, but they came as {want_arrived}.\n"
                "Keep the numbers in the order the datagrams arrived: do not sort them."
            )
        if sorted(set(arrived)) == sorted(set(want_arrived)):
            return Verdict.fail(
                f"arrived is {arrived}, but {want_arrived} came in: keep every datagram,\n"
                "the second copy of a duplicate too."
            )
        if len(arrived) < len(want_arrived) and want_arrived[:len(arrived)] == arrived:
            return Verdict.fail(
                f"arrived is {arrived}: it stopped after {len(arrived)} of the "
                f"{len(want_arrived)} datagrams that came.\nStop only when nothing "
                "has arrived for `timeout` seconds (a duplicate can make more than "
                f"{count} arrive)."
            )
        return Verdict.fail(
            f"arrived is {arrived}, but the datagrams that came were {want_arrived}.")
    if missing != want_missing:
        return Verdict.fail(
            f"missing is {missing}, but {want_missing} never came.\n"
            f"missing lists the numbers from 1 to count ({count}) that are not in arrived."
        )
    if duplicates != want_duplicates:
        return Verdict.fail(
            f"duplicates is {duplicates}, but {want_duplicates} came more than once.\n"
            "List each number that arrived more than once, once, in increasing order."
        )
    if late != want_late:
        return Verdict.fail(
            f"late is {late}, but {want_late} arrived after a higher number.\n"
            "A number is late if a bigger number arrived before it; list each once, "
            "in increasing order."
        )
    return Verdict.ok()


def _numbered_case(receive_numbered, count, loss, duplicate, reorder, seed):
    """Judge receive_numbered() on 1..count, sent through a relay to a fresh socket."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver:
        receiver.bind(("127.0.0.1", 0))
        watched = _WatchedUDPSocket(receiver)
        with LossyRelay(receiver.getsockname(), loss=loss, duplicate=duplicate,
                        reorder=reorder, delay=0, seed=seed,
                        name="check-receive-numbered") as relay, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for number in range(1, count + 1):
                sender.sendto(b"%d" % number, relay.address)
            relay.wait_for_datagrams(count, CLIENT_TO_SERVER)
            expected = expected_report(count, arrival_order(relay.fates()))
            outcome, timed_out = call_watched(receive_numbered, watched, count, QUIET)
    return _judge_numbered(outcome, timed_out, expected, count)


def check_receive_numbered(receive_numbered):
    """Check ``receive_numbered(sock, count, timeout) -> (arrived, missing, duplicates, late)``.

    Datagrams b"1" ... b"count" reach ``sock`` through a seeded LossyRelay.  The
    function must read until nothing has arrived for ``timeout`` seconds, then
    report: the numbers in the order they arrived, the ones that never came, the
    ones that came more than once, and the ones that came after a higher number.
    """
    report = Report("Checking receive_numbered(sock, count, timeout):")
    cases = [
        ("10 datagrams over a perfect network", (10, 0.0, 0.0, 0.0, 1)),
        ("20 datagrams: some lost (the last one too), some twice, one overtaken",
         (20, 0.2, 0.1, 0.1, 1)),
        ("5 datagrams, all lost: it must give up after `timeout` seconds",
         (5, 1.0, 0.0, 0.0, 1)),
    ]
    for description, settings in cases:
        if report.add(description, _numbered_case(receive_numbered, *settings)).final:
            break  # one hint is enough
    return report


# ------------------------------------------------------------------- probe


class _Silent:
    """A UDP server that reads datagrams and never answers; it can wake the asker."""

    def __init__(self):
        self.peers = []
        self.server = serve(self._handler, kind="udp", name="check-probe-silent")

    def _handler(self, data, peer):
        self.peers.append(peer)
        return None

    def wake_everyone(self):
        for peer in self.peers:
            try:
                self.server.sock.sendto(b"", peer)
            except OSError:
                pass




ANSWERS = ("answered", "refused", "silent")


def _judge_probe(outcome, timed_out, want):
    """Judge probe(address, timeout): the answer ``want``, one of ANSWERS."""
    if timed_out:
        return Verdict.fail(
            f"probe() did not return within {TIME_LIMIT:g} s.  A server that never\n"
            "answers leaves recv() waiting forever: set a timeout on the socket\n"
            "(sock.settimeout(timeout)) and return 'silent' when it runs out.", final=True
        )
    if not_written(outcome):
        return Verdict.not_written()
    if outcome.error is not None:
        error = outcome.error
        if isinstance(error, ConnectionRefusedError):
            return Verdict.fail(
                f"{describe_error(error)}\n"
                "That is the answer, not a failure: catch ConnectionRefusedError and\n"
                "return 'refused'."
            )
        if isinstance(error, TimeoutError):
            return Verdict.fail(
                f"{describe_error(error)}\n"
                "No reply within the timeout is the answer 'silent': catch TimeoutError."
            )
        return Verdict.fail(describe_error(error))
    value = outcome.value
    if value not in ANSWERS:
        return Verdict.fail(
            f"it returned {value!r}; return one of {', '.join(map(repr, ANSWERS))}.")
    if value == want:
        return Verdict.ok()
    if want == "refused" and value == "silent":
        return Verdict.fail(
            "it returned 'silent', but nothing is bound to that port: the kernel\n"
            "answered with ICMP \"port unreachable\".  Linux tells only a *connected*\n"
            "UDP socket about it (as ECONNREFUSED): connect() to the address first,\n"
            "then send() and recv()."
        )
    return Verdict.fail(f"it returned {value!r}, but the port was {want!r}.")


def check_probe(probe):
    """Check ``probe(address, timeout) -> 'answered' | 'refused' | 'silent'``.

    Three ports on 127.0.0.1: a UDP echo server, a port where nothing is bound,
    and a server that reads but never answers.
    """
    report = Report("Checking probe(address, timeout):")
    silent = _Silent()
    try:
        with UDPEchoServer(name="check-probe-echo") as echo:
            cases = [
                ("an echo server: 'answered'", echo.address, "answered"),
                # 'silent' before 'refused': a probe without a timeout hangs on the
                # silent server, which knows its address and can wake it.
                ("a server that never answers: 'silent'", silent.server.address, "silent"),
                ("a port where nothing is bound: 'refused'", explore.closed_udp_address(), "refused"),
            ]
            for description, address, want in cases:
                outcome, thread = call_with_time_limit(probe, address, QUIET)
                timed_out = not outcome.finished
                if timed_out:
                    silent.wake_everyone()  # a recv() waiting for it returns
                    thread.join(TIME_LIMIT)
                if report.add(description, _judge_probe(outcome, timed_out, want)).final:
                    break
    finally:
        silent.server.stop()
    return report


# ------------------------------------------------------- the UDP echo server in C

REPLY_WAIT = 5.0  # seconds a reply has to come; a right answer comes at once
LARGEST = 65_507  # the largest UDP datagram over IPv4: 65,535 - 20 - 8
CLIENTS = 10  # the interleaved clients
ROUNDS = 3  # datagrams each of them sends
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # man 7 ip; 11 on Linux

BINARY = b"bin\x00ary\x00\xff\xfe\x00data"  # NUL bytes inside, none at the end
RANDOM_BYTES = random.Random(7).randbytes(LARGEST)  # the same every run

EMPTY_HINT = (
    "recvfrom() returned 0: a datagram of 0 bytes, not the end of anything (UDP\n"
    "has no connection to end).  Answer it like any other, with sendto(fd, buf,\n"
    "0, ...), and go on.")
STRLEN_HINT = (
    "A datagram's length is what recvfrom() returned (n), not strlen(buf): the\n"
    "data may hold NUL bytes, and nothing ends it with one.  Send n bytes back.")
ADDRESS_HINT = (
    "Each reply goes to the address recvfrom() gave for that datagram: a UDP\n"
    "server has one socket for all its clients, and the address is all that\n"
    "tells them apart.")
REFUSED_HINT = (
    "the datagram was refused: ICMP \"port unreachable\" came back, as if no\n"
    "socket were bound to the server's port for it.  A UDP socket that has\n"
    "connect()ed hears its one peer only: a server does not connect(); it\n"
    "answers with sendto() to the address recvfrom() gave.")
GONE_HINT = (
    "A client had gone before its reply; its kernel answered with ICMP \"port\n"
    "unreachable\".  The check had the server's socket told of it (IP_RECVERR, as\n"
    "a connected UDP socket is told): its next recvfrom() failed with\n"
    "ECONNREFUSED.  That error belongs to one datagram: print it and go on.")


def _show(data, limit=24):
    """A few bytes of ``data`` for a hint: short ones whole, long ones by size."""
    if len(data) <= limit:
        return repr(data)
    return f"{len(data):,} bytes"


def _udp_client(answer):
    """A client socket, connected: it hears only the server (and ECONNREFUSED)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.connect(answer.address)
    return sock


class _Session:
    """The program under check and its first client, who stays to the end.

    A server that sends every reply to the first address it saw sends them to
    this socket: ``replies()`` watches it, so that mistake is named at once
    instead of as a reply that never came.
    """

    def __init__(self, answer):
        self.answer = answer
        self.first = _udp_client(answer)
        self.stray = []  # replies the first client got that were not its own

    def close(self):
        self.first.close()

    def replies(self, expected, enough=None):
        """Read until each socket of ``expected`` (socket -> count) has its replies.

        Returns {socket: [bytes or OSError, ...]}.  Waits for events -- select()
        on the sockets, on the first client (a stray reply ends the wait) and on
        a pidfd of the server, readable when it ends -- at most REPLY_WAIT;
        or until ``enough(got)`` says the replies so far decide the case.
        """
        got = {sock: [] for sock in expected}
        try:
            pidfd = os.pidfd_open(self.answer.pid)
        except (AttributeError, OSError):
            pidfd = None  # no pidfd here (old Python, kernel): look now and then
        watched = list(expected) + [self.first] * (self.first not in expected)
        watched += [pidfd] if pidfd is not None else []
        try:
            deadline = time.monotonic() + REPLY_WAIT
            while any(len(got[sock]) < count for sock, count in expected.items()):
                left = deadline - time.monotonic()
                if left <= 0 or self.stray or (enough is not None and enough(got)):
                    break
                if pidfd is None and not self.answer.program.alive:
                    break
                ready, _, _ = select.select(watched, [], [],
                                            left if pidfd is not None else min(left, 0.1))
                if pidfd in ready:
                    break  # it ended: nothing more will come
                for sock in ready:
                    data = self._read(sock)
                    if sock in got:
                        got[sock].append(data)
                    elif data is not None:
                        self.stray.append(data)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        return got

    @staticmethod
    def _read(sock):
        try:
            return sock.recv(65_536)
        except OSError as exc:  # ECONNREFUSED on a connected socket: nobody there
            return exc

    def strayed(self):
        """A final Verdict if a reply went to the first client instead, else None."""
        if not self.stray:
            return None
        return Verdict.fail(
            f"the reply ({_show(self.stray[0])}) went to the check's first client,\n"
            "not to the socket that sent the datagram.\n" + ADDRESS_HINT, final=True)


def _judge_reply(sent, replies):
    """One datagram ``sent``, ``replies`` what came back to its socket."""
    if not replies:
        return Verdict.fail(
            f"no reply to {_show(sent)} within {REPLY_WAIT:g} s.\n"
            "Send every datagram back with sendto(), to the address recvfrom() gave\n"
            "(and do not connect() the server's socket: then it hears one client only).",
            final=True)
    got = replies[0]
    if isinstance(got, ConnectionRefusedError):
        return Verdict.fail(REFUSED_HINT, final=True)
    if isinstance(got, OSError):
        return Verdict.fail(f"the reply did not come: {describe_error(got)}")
    if got == sent:
        return Verdict.ok()
    if len(got) < len(sent) and sent.startswith(got):
        if b"\0" in sent and len(got) == sent.index(b"\0"):
            return Verdict.fail(
                f"it sent {_show(sent)};\nthe reply stopped at the first NUL byte: "
                f"{_show(got)}.\n" + STRLEN_HINT, final=True)
        return Verdict.fail(
            f"{len(got):,} of the {len(sent):,} bytes came back: the datagram was "
            "truncated.\nrecvfrom() into a buffer of "
            f"{len(got):,} bytes takes that much of a longer datagram\nand the rest "
            f"is lost, silently.  The buffer must hold the largest datagram,\n"
            f"{LARGEST:,} bytes (65,535 minus the IP and UDP headers).")
    if len(got) > len(sent) and got.startswith(sent):
        return Verdict.fail(
            f"it sent {_show(sent)}; the reply had {len(got) - len(sent):,} bytes more:\n"
            "what the buffer held from before.\n" + STRLEN_HINT, final=True)
    return Verdict.fail(f"it sent {_show(sent)}; the reply was {_show(got)}.")


def _case_first(session):
    session.first.send(b"hello, UDP")
    return _judge_reply(b"hello, UDP", session.replies({session.first: 1})[session.first])


def _case_one(session, data):
    with _udp_client(session.answer) as sock:
        sock.send(data)
        got = session.replies({sock: 1})[sock]
    strayed = session.strayed()
    return _judge_reply(data, got) if strayed is None else strayed


def _case_empty(session):
    # The empty datagram, then one with bytes: the second reply tells at once
    # whether the first was skipped, without waiting for a reply that never comes.
    after = b"and one after it"
    with _udp_client(session.answer) as sock:
        with session.answer.paused():  # both wait in its queue: one recvfrom() each
            sock.send(b"")
            sock.send(after)
        got = session.replies({sock: 2}, enough=lambda got: got[sock][:1] == [after])[sock]
    if (strayed := session.strayed()) is not None:
        return strayed
    if not got:
        return Verdict.fail(
            f"no reply to the empty datagram within {REPLY_WAIT:g} s.\n{EMPTY_HINT}")
    if got[0] == after:
        return Verdict.fail(
            f"no reply to the empty datagram; the one after it got its reply.\n{EMPTY_HINT}")
    if isinstance(got[0], OSError):
        return _judge_reply(b"", got)
    if got[0] != b"":
        return Verdict.fail(
            f"the reply to an empty datagram was {_show(got[0])}: it must be empty too.\n"
            + STRLEN_HINT, final=True)
    return _judge_reply(after, got[1:])


def _case_many(session):
    answer = session.answer
    socks = [_udp_client(answer) for _ in range(CLIENTS)]
    try:
        sent = {sock: [b"client %d, datagram %d" % (i, r) for r in range(1, ROUNDS + 1)]
                for i, sock in enumerate(socks, 1)}
        with answer.paused():  # all of them wait in its queue, interleaved
            for r in range(ROUNDS):
                for sock in socks:
                    sock.send(sent[sock][r])
        got = session.replies({sock: ROUNDS for sock in socks})
    finally:
        for sock in socks:
            sock.close()
    if (strayed := session.strayed()) is not None:
        return strayed
    owner = {data: i for i, sock in enumerate(socks, 1) for data in sent[sock]}
    for i, sock in enumerate(socks, 1):
        for data in got[sock]:
            if owner.get(data, i) != i:
                return Verdict.fail(
                    f"client {i} got the reply to client {owner[data]}'s datagram "
                    f"{data!r}.\n" + ADDRESS_HINT, final=True)
    for i, sock in enumerate(socks, 1):
        for r, data in enumerate(sent[sock]):
            verdict = _judge_reply(data, got[sock][r:r + 1])
            if not verdict.passed:
                return dataclasses.replace(verdict, hint=(
                    f"{CLIENTS} clients sent {ROUNDS} datagrams each; to client {i}:\n"
                    + verdict.hint))
    return Verdict.ok()


def _copy_of_udp_socket(answer):
    """A copy (pidfd_getfd) of the program's UDP socket at its port; None where none."""
    return c_answer.Answer.own_socket(  # any object with .pid and .address will do
        answer, lambda sock: sock.family == socket.AF_INET and sock.type == socket.SOCK_DGRAM)


@contextlib.contextmanager
def icmp_errors_heard(answer):
    """The program's socket told of ICMP errors (IP_RECVERR) for a while.

    An unconnected UDP socket is not told that a datagram it sent found nobody
    (man 7 udp); a connected one is, and so is one with IP_RECVERR (man 7 ip):
    its next call fails with ECONNREFUSED.  The option is set on the program's
    very socket, through a copy (pidfd_getfd).  Yields the copy, on which
    ``poll()`` says POLLERR once an error has come (it also waits in the
    socket's error queue, which recvfrom() does not read); or None, changing
    nothing, where the copy cannot be had.  At the end the error queue is
    emptied (a server that poll()s would see POLLERR for ever) and the option
    is off again.
    """
    sock = _copy_of_udp_socket(answer)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        except OSError:
            sock.close()
            sock = None
    try:
        yield sock
    finally:
        if sock is not None:
            with sock:
                with contextlib.suppress(OSError):
                    while True:  # BlockingIOError once it is empty
                        sock.recvmsg(1, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 0)


def _wait_for_error(sock, answer):
    """Wait until ``sock`` (the program's socket) has an error, or the program ends."""
    waiting = select.poll()
    waiting.register(sock, 0)  # POLLERR is reported whatever is asked for
    try:
        pidfd = os.pidfd_open(answer.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        if pidfd is not None:
            waiting.register(pidfd, select.POLLIN)
        waiting.poll(REPLY_WAIT * 1000)  # bounded: a server that never answered
    finally:                            # the gone client causes no error
        if pidfd is not None:
            os.close(pidfd)


def _case_gone(session):
    # The gone client's datagram goes while the server is stopped, so its reply
    # surely finds nobody; the probe goes once the ICMP error has reached the
    # server's socket, so the error comes before the probe.
    answer = session.answer
    probe = b"still there?"
    with _udp_client(answer) as sock, icmp_errors_heard(answer) as copy:
        with answer.paused():
            with _udp_client(answer) as gone:
                gone.send(b"a reply for nobody")
        if copy is not None:  # where it is None, the case is the gone client alone
            _wait_for_error(copy, answer)
        sock.send(probe)
        got = session.replies({sock: 1})[sock]
    strayed = session.strayed()
    return _judge_reply(probe, got) if strayed is None else strayed


def _judged(answer, verdict, hint=None):
    """``verdict`` -- or, if the program died meanwhile, why; with ``hint`` added."""
    judged = answer.judged(verdict)
    if hint and judged is not verdict:
        return Verdict.fail(f"{judged.hint}\n{hint}", final=True)
    return judged


def check_udp_echo_server_c(name):
    """Check the C UDP echo server NAME, compiled by a ``%%c NAME --compile-only`` cell.

    It must bind 127.0.0.1 (any port, SOCK_DGRAM), print LISTENING <port>, and
    send every datagram back, the same bytes, to the address it came from -- and
    outlive every client.  Its CPU while idle and its children are watched as
    well (socklab.checks.c_answer.check_process, without the TCP cases).
    """
    report = Report(f"Checking the C UDP echo server {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    with answer:
        session = _Session(answer)
        try:
            cases = [
                ("a datagram: the same bytes come back", _case_first, None),
                ("binary data with NUL bytes: every byte comes back",
                 lambda s: _case_one(s, BINARY), STRLEN_HINT),
                ("an empty datagram: an empty reply, and the server goes on",
                 _case_empty, EMPTY_HINT),
                (f"the largest datagram, {LARGEST:,} bytes: all of it comes back",
                 lambda s: _case_one(s, RANDOM_BYTES), None),
                (f"{CLIENTS} clients, their datagrams interleaved: each gets its own "
                 "replies", _case_many, None),
                ("a client gone before its reply (then ECONNREFUSED): the server "
                 "goes on", _case_gone, GONE_HINT),
            ]
            for description, case, hint in cases:
                try:
                    verdict = case(session)
                except ConnectionRefusedError:  # from an earlier datagram's ICMP
                    verdict = Verdict.fail(REFUSED_HINT, final=True)
                except OSError as exc:
                    verdict = Verdict.fail(
                        f"the client's socket failed: {type(exc).__name__}: {exc}")
                if report.add(description, _judged(answer, verdict, hint)).final:
                    return report
        finally:
            session.close()
        c_answer.check_process(answer, report, closes_on_eof=False)
    return report
