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

The learner's code runs in a helper thread with a time limit.  A function that
waits forever in recv() is woken by a datagram sent straight to its socket, so no
thread is left behind.
"""

import socket

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
from .watched import CheckStopped, call_watched

__all__ = ["CheckStopped", "arrival_order", "check_receive_numbered", "check_probe"]

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

    def recv(self, *args):
        self._received(None)
        return self._received(self.sock.recv(*args))

    def recvfrom(self, *args):
        self._received(None)
        return self._received(self.sock.recvfrom(*args))

    def recv_into(self, *args):
        self._received(None)
        return self._received(self.sock.recv_into(*args))

    def recvfrom_into(self, *args):
        self._received(None)
        return self._received(self.sock.recvfrom_into(*args))

    def recvmsg(self, *args):
        self._received(None)
        return self._received(self.sock.recvmsg(*args))

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


def _closed_port():
    """A UDP port on 127.0.0.1 where nothing is bound (it was a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()


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
                ("a port where nothing is bound: 'refused'", _closed_port(), "refused"),
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
