"""Checks for lesson 12's exercises: extra_calls() and a fast ask().

* check_extra_calls: the learner counts the system calls a Python program makes
  more often than the C program that does the same.  The traces are strace
  output recorded once and parsed with socklab.trace.parse -- the same records a
  live trace gives, but the same on every machine, and no strace needed.  Each
  case has a trap: a call both make but Python twice (a set misses it), signals
  and the end of the process (not system calls), a call C makes more often
  (not an extra of Python's).
* check_ask: the learner's ask(sock, body) sends a request -- a 4-byte length
  and the body -- and reads the answer, against a server that delays its ACKs
  (socklab.measure.answer_with_late_acks).  Sent in two small writes with Nagle's
  algorithm on, each request waits ~40 ms for the delayed ACK; the check wants
  the median under FAST (25 ms).  Only the call to ask() is timed, in the thread
  that makes it (not the thread's start), and not the first request: Linux
  may acknowledge a new connection's first segments at once ("quick ACK" mode),
  and then even two writes are fast.  Right answers take well under 1 ms here, and
  under 20 ms on a machine loaded ten times over.
"""

import collections
import dataclasses
import socket
import struct
import time

from .. import measure, trace
from ..servers import serve
from .report import (
    Report,
    Verdict,
    call_with_time_limit,
    describe_error,
    not_written,
)

__all__ = ["check_extra_calls", "check_ask", "TRACES"]

FAST = 0.025  # seconds: the median request must take less (a stall takes >= 0.04)
REQUESTS = 8  # the first is not timed (see above)

# (description, C's strace output, Python's strace output, the right answer)
TRACES = [
    ("the echo program: Python accepts with accept4() and asks getsockname()",
     """\
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3
bind(3, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
listen(3, 1) = 0
getsockname(3, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 4
connect(4, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
accept(3, NULL, NULL) = 5
sendto(4, "hello", 5, 0, NULL, 0) = 5
recvfrom(5, "hello", 64, 0, NULL, NULL) = 5
sendto(5, "hello", 5, 0, NULL, 0) = 5
recvfrom(4, "hello", 64, 0, NULL, NULL) = 5
close(5) = 0
close(4) = 0
close(3) = 0
+++ exited with 0 +++
""",
     """\
socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
bind(3, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
listen(3, 1) = 0
getsockname(3, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0
socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 4
connect(4, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
accept4(3, {sa_family=AF_INET, sin_port=htons(50002), sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 5
getsockname(5, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, [16]) = 0
sendto(4, "hello", 5, 0, NULL, 0) = 5
recvfrom(5, "hello", 64, 0, NULL, NULL) = 5
sendto(5, "hello", 5, 0, NULL, 0) = 5
recvfrom(4, "hello", 64, 0, NULL, NULL) = 5
close(5) = 0
close(4) = 0
close(3) = 0
+++ exited with 0 +++
""",
     {"accept4": 1, "getsockname": 1}),
    ("a signal during recv(): Python calls again, C gives up",
     """\
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3
connect(3, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
recvfrom(3, 0x7ffc2a1b3c40, 64, 0, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
--- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL} ---
close(3) = 0
+++ exited with 1 +++
""",
     """\
socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
connect(3, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
recvfrom(3, 0x7f3a5c0b2e10, 64, 0, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
--- SIGALRM {si_signo=SIGALRM, si_code=SI_KERNEL} ---
recvfrom(3, "ping", 64, 0, NULL, NULL) = 4
close(3) = 0
+++ exited with 0 +++
""",
     {"recvfrom": 1}),
    ("send() to a peer that is gone: C dies of SIGPIPE, Python closes up",
     """\
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3
connect(3, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
sendto(3, "anyone?", 7, 0, NULL, 0) = -1 EPIPE (Broken pipe)
--- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER, si_pid=12, si_uid=0} ---
+++ killed by SIGPIPE +++
""",
     """\
socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
connect(3, {sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
sendto(3, "anyone?", 7, 0, NULL, 0) = -1 EPIPE (Broken pipe)
close(3) = 0
+++ exited with 0 +++
""",
     {"close": 1}),
    ("C does more: a C program that closes twice, a Python one that closes once",
     """\
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3
close(3) = 0
socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3
close(3) = 0
+++ exited with 0 +++
""",
     """\
socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
close(3) = 0
+++ exited with 0 +++
""",
     {}),
]


def _as_counts(value):
    """The learner's answer as {name: count} (no zeros); None for a non-mapping."""
    if not isinstance(value, collections.abc.Mapping):
        return None
    return {name: count for name, count in value.items() if count}


def _hint_for_calls(got, expected, c_trace, py_trace):
    not_calls = sorted(set(got) & ({r.call for r in (*c_trace, *py_trace)
                                    if r.kind != "syscall"}))
    if not_calls:
        return (f"{', '.join(not_calls)} {'is' if len(not_calls) == 1 else 'are'} not a "
                "system call: strace also records signals\n(kind 'signal') and how the "
                "process ended (kind 'exit').  Count records whose .kind is 'syscall'.")
    if any(count < 0 for count in got.values()):
        return ("a negative count: that is a call C makes more often.  Keep only "
                "the calls\nPython makes more often (Counter subtraction drops the "
                "rest by itself).")
    extra_c = {name for name in got if name not in expected}
    if extra_c:
        names = ", ".join(sorted(extra_c))
        return (f"Python does not make {names} more often than C here.\n"
                "Count how often each side makes each call, and subtract C's counts.")
    if set(got) == set(expected):
        return ("the right calls, but not how many more.  Count every record:\n"
                "collections.Counter(record.call for record in trace ...).")
    return ("some calls are missing: a call both programs make can still be an "
            "extra one\nif Python makes it more often -- count, do not compare sets.")


def check_extra_calls(extra_calls):
    """Check ``extra_calls(c_trace, py_trace) -> {call: how many more}``.

    Every case is checked, so a report counts all of them whether they pass or
    fail ("1 of 4 checks failed"); only a stub or a function that never returns
    stops the check early.  A hint the case before gave already is not repeated.
    """
    report = Report("Checking extra_calls(c_trace, py_trace):")
    hints_given = set()
    for description, c_text, py_text, expected in TRACES:
        c_trace = trace.Trace(trace.parse(c_text))
        py_trace = trace.Trace(trace.parse(py_text))
        outcome, _ = call_with_time_limit(extra_calls, c_trace, py_trace)
        verdict = _judge_extra_calls(outcome, expected, c_trace, py_trace)
        if report.add(description, _said_once(verdict, hints_given)).final:
            return report
    return report


def _said_once(verdict, hints_given):
    """``verdict``, its hint "the same as above." if it is in ``hints_given`` (which
    it joins)."""
    if verdict.hint in hints_given:
        return dataclasses.replace(verdict, hint="the same as above.")
    if verdict.hint:
        hints_given.add(verdict.hint)
    return verdict


def _judge_call(outcome, hang_hint):
    """What both judges say first, or None: the call did not return (``hang_hint``,
    final), it is still the stub, or it raised."""
    if not outcome.finished:
        return Verdict.fail(hang_hint, final=True)
    if not_written(outcome):
        return Verdict.not_written()
    if outcome.error is not None:
        return Verdict.fail(describe_error(outcome.error))
    return None


def _judge_extra_calls(outcome, expected, c_trace, py_trace):
    """Judge extra_calls(c_trace, py_trace): ``expected``, {call: how many more in Python}."""
    verdict = _judge_call(outcome, "it did not return within the time limit: "
                                   "a loop that never ends?")
    if verdict is not None:
        return verdict
    got = _as_counts(outcome.value)
    if got is None:
        return Verdict.fail(
            f"it returned {type(outcome.value).__name__}, not a dict: return "
            "{call name: how many more times},\na collections.Counter for "
            "example, so that repeated calls count.")
    if got == expected:
        return Verdict.ok()
    return Verdict.fail(
        f"expected {expected}, got {got}.\n{_hint_for_calls(got, expected, c_trace, py_trace)}")


# ------------------------------------------------------------------ ask


def _judge_answer(outcome, body):
    """Judge ask(sock, body)'s answer: the server's, ``body`` in capitals."""
    verdict = _judge_call(outcome, "it did not return in time: does it wait for more bytes "
                                   "than the answer has?")
    if verdict is not None:
        return verdict
    if outcome.value != body.upper():
        return Verdict.fail(
            f"it returned {outcome.value!r:.60}, not the answer "
            f"{body.upper()!r:.60}: read the 4-byte length,\nthen exactly that "
            "many bytes (recv() may return less than you ask for).")
    return Verdict.ok()


def check_ask(ask):
    """Check ``ask(sock, body) -> answer`` against a server that delays ACKs: right
    answers, and no 40 ms stall."""
    report = Report("Checking ask(sock, body):")
    srv = serve(measure.answer_with_late_acks, name="check-late-acks")
    try:
        with socket.create_connection(srv.address, timeout=5) as sock:
            times = []

            def timed_ask(sock, body):
                started = time.perf_counter()
                try:
                    return ask(sock, body)
                finally:
                    times.append(time.perf_counter() - started)

            for number in range(REQUESTS):
                body = b"request %d " % number + b"x" * (number * 300)
                outcome, _ = call_with_time_limit(timed_ask, sock, body)
                verdict = _judge_answer(outcome, body)
                if verdict.final:  # the whole function: not written, or it never returns
                    report.add("the answers are right", verdict)
                    return report
                if not verdict.passed:  # the connection is out of step now: the check ends
                    report.add(f"the answer to request {number}", verdict.final_if_failed())
                    return report
            report.add(f"{REQUESTS} requests, {REQUESTS} right answers", Verdict.ok())
            report.add(f"a request takes less than {FAST * 1000:g} ms (median)",
                       _judge_speed(sorted(times[1:])[len(times[1:]) // 2]))
    finally:
        srv.stop()
    return report


def _judge_speed(median):
    """Judge the median time of a request (the first not counted): no delayed-ACK stall."""
    if median < FAST:
        return Verdict.ok()
    return Verdict.fail(f"about {median * 1000:.0f} ms a request: each one waits for the "
                        "server's delayed ACK.\nNagle's algorithm holds your second small "
                        "write until the first is acknowledged.\nSend the request in one "
                        "write, or turn on TCP_NODELAY.")
