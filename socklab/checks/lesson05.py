"""Checks for lesson 05's exercises: echo_handler(), ask_udp(), and the echo server in C.

* check_echo_handler: the learner's ``echo_handler(conn)`` -- the seed's echo loop,
  fixed -- is given one accepted connection at a time, each from a client that
  behaves the way real clients do: one that closes when it is done, one that sends
  a byte at a time and waits for each echo, one that sends 1 MiB while it reads,
  and one that resets the connection (SO_LINGER 0) with the echo still unread.
  The connection is a WatchedSocket (socklab.checks.watched): it notes what recv() returned, so that a
  loop spinning on b'' is stopped and named instead of burning a CPU forever.

* check_echo_server_c: the learner's whole echo server in C (a ``%%c NAME
  --compile-only`` cell) meets the same clients as echo_handler, as a running
  program built with the sanitizers; then C's own failures are looked for
  (socklab.checks.c_answer): SIGPIPE, a reset before the server reads, leaked
  descriptors, a busy loop, zombies.

* check_ask_udp: the learner's ``ask_udp(address, data, timeout, retries)`` talks
  to a UDP echo server through a socklab.LossyRelay with a fixed seed, so the same
  datagrams are lost on every run.  What the function did -- how many datagrams it
  sent, whether it returned the reply or raised TimeoutError -- is compared with
  the fate the relay gave each datagram.
"""

import contextlib
import os
import socket
import struct
import threading
import time

from ..relay import FATES, LossyRelay
from ..servers import UDPEchoServer
from .report import (
    TIME_LIMIT,
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
)
from . import adversary, c_answer
from .watched import CheckStopped, WatchedSocket

__all__ = ["check_ask_udp", "check_echo_handler", "check_echo_server_c"]

RETURN_WAIT = 2.0  # seconds a handler has to return after its client has gone
BYTE_WAIT = 1.0  # seconds the byte-at-a-time client waits for each echo
SMALL_BUFFER = 8192  # SO_SNDBUF of the 1 MiB case: send() takes part at a time
MIB = bytes(i % 251 for i in range(1024 * 1024))
UDP_SEED = 4  # with loss 0.5: the first two datagrams are dropped, the third passes
UDP_TIMEOUT = 0.2  # seconds ask_udp waits for each reply where every try is lost
REPLY_TIMEOUT = 1.0  # ... and where a reply comes: a busy machine may take a while


def _not_written(outcome):
    """A stub that raises NotImplementedError.  (Not report.not_written: a handler
    returning None is normal here, so only the explicit stub counts.)"""
    return isinstance(outcome.error, NotImplementedError)


# ------------------------------------------------------------ echo_handler

class _Case:
    """One client scenario: run(sock) plays the client on a socket connected to the
    server under test, and judges what it saw (a Verdict).  It needs nothing but
    the socket, so it can face any echo server, whatever it is written in."""

    def __init__(self, description, run, *, reset=False):
        self.description = description
        self.run = run
        self.reset = reset  # the client resets: the handler meets an error


def _read_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        part = sock.recv(min(65536, n - len(data)))
        if not part:
            break
        data += part
    return bytes(data)


def _client_closes(sock):
    """Judge the echo of b'hello, echo' to a client that then closes."""
    sock.settimeout(BYTE_WAIT * 2)
    sock.sendall(b"hello, echo")
    try:
        reply = _read_exactly(sock, len(b"hello, echo"))
    except TimeoutError:
        return Verdict.fail(
            f"the client sent b'hello, echo' and waited {BYTE_WAIT * 2:g} s for the echo in vain.\n"
            "Send back what each recv() returns at once, not when the client closes."
        )
    sock.close()
    if reply != b"hello, echo":
        return Verdict.fail(f"the client sent b'hello, echo' and got back {reply!r}.")
    return Verdict.ok()


def _client_byte_at_a_time(sock):
    """Judge the echo of each byte to a client that sends one at a time and waits."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each byte its own segment
    sock.settimeout(BYTE_WAIT)
    for i, byte in enumerate(b"one byte at a time"):
        sock.sendall(bytes([byte]))
        try:
            echo = sock.recv(16)
        except TimeoutError:
            return Verdict.fail(
                f"the client sent byte {i + 1} and waited {BYTE_WAIT:g} s for its echo in vain.\n"
                "Send back what each recv() returns at once -- do not wait for 'a whole\n"
                "message' (the stream has no messages) or for the client to close."
            )
        if echo != bytes([byte]):
            return Verdict.fail(f"the client sent {bytes([byte])!r} and got back {echo!r}.")
    sock.close()
    return Verdict.ok()


def _client_one_mib(sock):
    """Judge the echo of 1 MiB, sent from a thread while this one reads; then SHUT_WR."""
    sock.settimeout(TIME_LIMIT)
    problems = []

    def send():
        try:
            sock.sendall(MIB)
            sock.shutdown(socket.SHUT_WR)  # "that is all": the handler sees b''
        except OSError as exc:
            problems.append(exc)

    sender = threading.Thread(target=send, name="socklab check sender", daemon=True)
    sender.start()
    received = bytearray()
    try:
        while part := sock.recv(65536):
            received += part
    except TimeoutError:
        pass
    except OSError as exc:
        problems.append(exc)
    sender.join(TIME_LIMIT)
    sock.close()
    if bytes(received) == MIB:
        return Verdict.ok()
    if any(isinstance(exc, ConnectionError) for exc in problems):
        return Verdict.fail(
            f"the connection broke after {len(received):,} of 1,048,576 bytes came back:\n"
            "the handler returned (so the connection was closed) before the client had\n"
            "finished.  Keep echoing until recv() returns b''."
        )
    if len(received) < len(MIB):
        return Verdict.fail(
            f"the client sent 1,048,576 bytes and got {len(received):,} back.\n"
            "send() may take only part of what you give it (it returns how much):\n"
            "use sendall(), which sends every byte."
        )
    return Verdict.fail(
        f"the client got {len(received):,} bytes back, not the 1,048,576 it sent.")


def _client_resets(sock):
    """Send 100 KB, then reset the connection without reading the echo (always passes:
    what counts is how the handler takes it)."""
    sock.settimeout(TIME_LIMIT)
    sock.sendall(MIB[:100_000])
    # SO_LINGER on with 0 seconds: close() drops the connection with a reset (RST)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return Verdict.ok()


ECHO_CASES = [
    _Case("a client that sends b'hello, echo', reads the echo and closes", _client_closes),
    _Case("a client that sends one byte at a time and waits for each echo",
          _client_byte_at_a_time),
    _Case("a client that sends 1 MiB while it reads the echo", _client_one_mib),
    _Case("a client that resets the connection (SO_LINGER 0) with the echo unread",
          _client_resets, reset=True),
]


def check_echo_handler(echo_handler):
    """Check ``echo_handler(conn)``: echo every byte until the client has gone.

    Each case gives the handler one accepted connection (with a timeout, and a small
    send buffer, like a busy server's) and a client that behaves differently.  The
    handler must echo exactly what it gets, as it gets it, and return -- without
    raising -- once the client has closed or reset the connection.
    """
    report = Report("Checking echo_handler(conn):")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIME_LIMIT)
        for case in ECHO_CASES:
            if report.add(case.description, _run_echo_case(echo_handler, listener, case)).final:
                break  # one hint is enough: the other cases would repeat it
    return report


def check_echo_server_c(name):
    """Check the C echo server NAME, compiled by a ``%%c NAME --compile-only`` cell.

    It must listen on 127.0.0.1 (any port), print LISTENING <port>, and echo every
    byte of each client back until that client has gone -- and outlive them all.
    The clients are check_echo_handler's; the program's death, descriptors, CPU
    and children are watched as well (socklab.checks.c_answer).
    """
    report = Report(f"Checking the C echo server {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    with answer:
        for case in ECHO_CASES:
            if report.add(case.description, answer.play(case.run)).final:
                return report
        c_answer.check_process(answer, report, probe=_client_closes)
    return report


def _run_echo_case(echo_handler, listener, case):
    """Judge echo_handler() on a connection accepted from ``listener``, with case's client."""
    client = socket.create_connection(listener.getsockname(), timeout=TIME_LIMIT)
    try:
        accepted, _ = listener.accept()
    except OSError:
        client.close()
        raise
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    accepted.settimeout(TIME_LIMIT)  # timeout mode: send() may take part of the data
    conn = WatchedSocket(accepted)

    def guarded():
        try:
            return echo_handler(conn)
        except CheckStopped as stop:
            return stop
        finally:
            conn.close()  # as with socklab.serve: the connection ends with the handler

    try:
        # limit=0: start the handler's thread and go on at once, to play the client
        outcome, thread = call_with_time_limit(guarded, limit=0)
        try:
            seen = case.run(client)
        except OSError as exc:
            seen = Verdict.fail(f"the client's socket failed: {describe_error(exc)}")
        finally:
            client.close()
        thread.join(RETURN_WAIT)  # the client has gone: the handler should return
        still_running = not outcome.finished
        if still_running:
            conn.stop("the check is over")
            thread.join(TIME_LIMIT)
        return _judge_echo(outcome, conn, seen, still_running, case)
    finally:
        accepted.close()


def _judge_echo(outcome, conn, seen, still_running, case):
    """Judge how the handler behaved on ``conn``, given ``seen``, its client's Verdict."""
    if _not_written(outcome):
        return Verdict.not_written()
    if isinstance(outcome.value, CheckStopped):
        return Verdict.fail(  # the seed's loop: every case would stop it the same way
            f"recv() returned b'' {conn.empty_reads} times and the handler kept calling it.\n"
            "b'' means the client has closed its side: it will never send again, and\n"
            "every later recv() returns b'' at once.  Leave the loop (`if not data:\n"
            "return`) -- the seed's server spins forever right here.", final=True
        )
    if outcome.finished and outcome.error is None and conn.received == 0:
        return Verdict.not_written(
            "is it written yet?  The handler returned without reading anything.")
    if not seen.passed:
        if conn.partial_sends:  # a fact from the handler's side that explains a short echo
            return Verdict.fail(f"{seen.hint}\n(Here {conn.partial_sends} send() call(s) took"
                                " only part of the data.)")
        return seen
    if outcome.error is not None:
        if case.reset and isinstance(outcome.error, (ConnectionResetError, BrokenPipeError)):
            return Verdict.fail(
                f"{describe_error(outcome.error)}.\n"
                "A client that resets the connection is normal life for a server, not a\n"
                "bug: catch ConnectionResetError and BrokenPipeError (both are\n"
                "ConnectionError) and return, so the server goes on with the next client."
            )
        if isinstance(outcome.error, TimeoutError):
            return Verdict.fail(
                f"{describe_error(outcome.error)}: the handler waited for bytes after the"
                " client had finished.")
        return Verdict.fail(describe_error(outcome.error))
    if still_running:
        return Verdict.fail(
            "the handler was still running after the client had gone.\n"
            "When recv() returns b'' (the client closed) or raises (it reset), return."
        )
    return Verdict.ok()


# ------------------------------------------------------------------ ask_udp

class _UDPCase:
    def __init__(self, description, loss, retries, data, timeout=UDP_TIMEOUT):
        self.description = description
        self.loss = loss
        self.retries = retries
        self.data = data
        # A reply slower than the timeout makes a right answer send again, and fail
        # "stop as soon as a reply arrives": where one comes, the wait is long.
        self.timeout = timeout


UDP_CASES = [
    _UDPCase("no loss: the reply to the first datagram", 0.0, 3, b"ping",
             timeout=REPLY_TIMEOUT),
    _UDPCase("the first two datagrams are lost: retry, then return the reply",
             0.5, 3, b"\x00binary\xffdata", timeout=REPLY_TIMEOUT),
    _UDPCase("retries=0 and the datagram is lost: one try, then TimeoutError",
             0.5, 0, b"ping"),
    _UDPCase("every datagram is lost: 1 + retries tries, then TimeoutError",
             1.0, 3, b"ping"),
]


def check_ask_udp(ask_udp):
    """Check ``ask_udp(address, data, timeout, retries)`` over a lossy relay.

    It must send ``data`` to ``address`` in a datagram, wait up to ``timeout``
    seconds for the reply, and try again -- at most ``retries`` more times -- when
    none comes; return the reply (bytes), or raise TimeoutError once every try is
    lost.  The relay has a fixed seed, so the same datagrams are lost on every run.
    """
    report = Report("Checking ask_udp(address, data, timeout, retries):")
    with UDPEchoServer(name="check-udp-echo") as srv:
        for case in UDP_CASES:
            if report.add(case.description, _run_udp_case(ask_udp, srv, case)).final:
                break  # one hint is enough: the other cases would repeat it
    return report


def _is_client_fate(event):
    return (event.kind in FATES and event.party.startswith("client")
            and event.party.endswith(">server"))


@contextlib.contextmanager
def _on_one_cpu():
    """The calling thread, and every thread it starts meanwhile, on one CPU.

    A datagram sent on loopback is queued on the sending CPU (its backlog) and
    handed to the receiving socket from there, in order -- at once, in the
    sender's own system call, unless a busy machine leaves that work to later
    (/proc/net/softnet_stat counts it, "time_squeeze").  Two CPUs' queues,
    though, keep no order between them: a datagram sent on one CPU can reach
    the relay after one sent later on another.  Where the learner's thread and
    the check's marker share one CPU, they share one queue.  (Unless the
    loopback device steers packets to CPUs by flow, RPS: off by default.)
    """
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})  # 0: this thread, not the process
    except OSError:  # not allowed here: the kernel's order, as without this
        allowed = None
    try:
        yield
    finally:
        if allowed is not None:
            os.sched_setaffinity(0, allowed)


def _fates_in_order(relay):
    """The fates of the datagrams clients sent, in the order they reached the relay.

    Every datagram sent before this call -- on this thread's CPU, _on_one_cpu --
    is counted, the last one too.  Those datagrams are in the relay's queue
    before a datagram of the check's own sent now, the marker (see _on_one_cpu),
    and the relay thread takes its queue in order, each datagram to the end.  So
    once the relay has seen the marker's socket -- a "new client" in its log --
    every datagram before it has its fate.  (Not "once there is one more new
    client than now": on a busy machine the relay thread may not yet have taken
    the learner's own datagrams, and its new client would pass for the marker.)
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:
        marker.bind(("127.0.0.1", 0))
        marker.sendto(b"", relay.address)
        number = _client_number(relay, marker.getsockname())
    fates = []
    new_clients = 0
    for event in relay.events:
        if event.kind == "new client":
            new_clients += 1
            if new_clients == number:
                break  # the marker: what comes after it is its own
        elif _is_client_fate(event):
            fates.append(event.kind)
    return fates


def _client_number(relay, address):
    """The relay's number for the client at ``address``, once the relay has seen it
    (its table of clients is filled before the "new client" event is logged);
    None after TIME_LIMIT s, e.g. when it has no room for another client."""
    deadline = time.monotonic() + TIME_LIMIT
    seen = len(relay.events.of_kind("new client"))
    while (number := relay.client_number(address)) is None:
        try:
            relay.events.wait_for("new client", seen + 1,
                                  timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return None
        seen += 1
    return number


def _run_udp_case(ask_udp, srv, case):
    """Judge ask_udp(address, ...) through a relay to ``srv`` (a UDP echo server)."""
    with LossyRelay(srv.address, loss=case.loss, duplicate=0.0, reorder=0.0, delay=0.0,
                    seed=UDP_SEED, both_ways=False, name="check-udp-relay") as relay, \
            _on_one_cpu():  # the learner's sends and the check's marker: one queue
        slept = []
        outcome, thread = call_with_time_limit(
            _noting_sleep(ask_udp, slept), relay.address, case.data, case.timeout,
            case.retries)
        if not outcome.finished:
            relay.stop()  # nothing more will come; the learner's thread ends with its timeout
            return Verdict.fail(
                f"ask_udp() did not return within {TIME_LIMIT:g} s.\n"
                "A lost datagram gets no reply: without a timeout, recvfrom() waits\n"
                "forever.  Call settimeout(timeout) on the socket before you wait.", final=True
            )
        fates = _fates_in_order(relay)
    if not fates:
        if _not_written(outcome) or (outcome.error is None and outcome.value is None):
            return Verdict.not_written()
        if case.retries == 0:
            return Verdict.fail("with retries=0 it sent nothing: the first try is not a retry.\n"
                                "Send 1 + retries datagrams at most.")
        return Verdict.fail("the relay received no datagram at all: send data to `address`.")
    return _judge_udp(outcome, case, fates, slept[0])


def _noting_sleep(ask_udp, slept):
    """ask_udp, which also appends to ``slept`` the seconds its thread slept in it.

    That is how long it waited for replies -- not the time it took, which on a
    busy machine is mostly time spent waiting for a CPU, whatever it does: tries
    that wait 1 ms can take 0.2 s.  The kernel counts the time a thread ran or
    was ready to run (schedstat, adversary.thread_runnable_seconds); the rest of
    the call it slept (or waited for Python's GIL: briefly here, where the
    check's other threads have little to do).  Where the kernel does not say,
    the time the call took.
    """
    def call(*args):
        me = threading.current_thread()
        started, busy = time.monotonic(), adversary.thread_runnable_seconds(me)
        try:
            return ask_udp(*args)
        finally:
            took, busy_after = time.monotonic() - started, adversary.thread_runnable_seconds(me)
            slept.append(took if None in (busy, busy_after) else took - (busy_after - busy))
    return call


def _judge_udp(outcome, case, fates, slept):
    """Judge what ask_udp() did (sent, returned, raised, waited) given its datagrams' fates."""
    tries_allowed = case.retries + 1
    sent = len(fates)
    first_forward = fates.index("forward") + 1 if "forward" in fates else None
    # What a right answer does with these fates:
    expected_sent = min(first_forward or tries_allowed, tries_allowed)
    expect_reply = first_forward is not None and first_forward <= tries_allowed
    shown = ", ".join(fates)
    if sent > expected_sent:
        if first_forward is not None and first_forward < sent:
            return Verdict.fail(
                f"it sent {sent} datagrams ({shown}).  Datagram {first_forward} got through\n"
                "and its reply came back: stop as soon as a reply arrives."
            )
        return Verdict.fail(
            f"it sent {sent} datagrams; with retries={case.retries} send at most "
            f"{tries_allowed}\n(the first try, then {case.retries} more)."
        )
    if sent < expected_sent:
        return Verdict.fail(
            f"it gave up after {sent} datagram(s) ({shown}), but retries={case.retries}"
            f" allows {tries_allowed}.\nWhen the wait times out, send again."
        )
    if expect_reply:
        if outcome.error is not None:
            return Verdict.fail(describe_error(outcome.error))
        reply = outcome.value
        if isinstance(reply, tuple):
            return Verdict.fail("it returned a tuple: return just the reply's bytes"
                                " (recvfrom() gives (data, address)).")
        if isinstance(reply, str):
            return Verdict.fail("it returned a str; sockets carry bytes.")
        if reply != case.data:
            return Verdict.fail(f"it returned {reply!r}, not the echo {case.data!r}.")
        return Verdict.ok()
    # Every try was lost: it must raise TimeoutError, after waiting.
    if outcome.error is None:
        return Verdict.fail(
            f"all {sent} datagrams were lost, and it returned {outcome.value!r}.\n"
            "Raise TimeoutError instead: the caller must know that no reply came."
        )
    if not isinstance(outcome.error, TimeoutError):
        return Verdict.fail(
            f"{describe_error(outcome.error)}; after the last lost try raise TimeoutError"
            " (socket.timeout is the same class).")
    least = tries_allowed * case.timeout * 0.8
    if slept < least:
        return Verdict.fail(
            f"it waited {slept:.2f} s in all; each of the {tries_allowed} tries should wait\n"
            f"timeout={case.timeout:g} s for a reply (settimeout(timeout)), about "
            f"{tries_allowed * case.timeout:.1f} s in all."
        )
    return Verdict.ok()
