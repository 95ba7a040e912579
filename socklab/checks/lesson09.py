"""Checks for lesson 09's exercises: read_message(), read_lines(), and a frame server in C.

Both read messages from a TCP stream, so both are tried against a sender that
cuts the stream into pieces -- at every chunk size, and inside every multi-byte
UTF-8 character -- and sends them one at a time over a real connection on
loopback.  Two things make that fast and the same on every run:

* **One connection for many streams.**  read_message() is called again and
  again on one socket while the sender goes through every chunk size from 1 to
  4096: some 4,000 piece sizes cost one connection, not 4,000.
* **Lockstep.**  The sender sends the next piece only once the reader has taken
  the last one out of the kernel (FIONREAD, ``man 7 tcp``: SIOCINQ, is 0 again).
  So the pieces are not merged on the way: each recv() gets at most one piece,
  and every split really reaches the learner's code.  TCP_NODELAY makes the
  kernel send each piece at once.

The learner's function gets a WatchedSocket (socklab.checks.watched): it notes
what each recv() asked for and got, which tells the classic bugs apart -- a
length read in the wrong byte order asks recv() for 83,886,080 bytes; a reader
that takes too much read past the end of its frame; a loop that ignores b''
keeps calling recv().

* check_read_message: length-prefixed frames, a 4-byte length in network byte
  order ('!I') before each message; None at a clean end, an exception for a
  frame cut short, ValueError for a header announcing more than MAX_FRAME (one
  byte more, and 4 GB: a recv() that would allocate that much is stopped
  before Python allocates it).
* check_read_lines: a generator of UTF-8 lines (str, without the newline),
  newline-delimited, until the peer closes.
* check_frame_server_c: the learner's whole server in C (a ``%%c NAME
  --compile-only`` cell), which sends each frame back, meets the same streams
  as read_message -- in lockstep too: the next piece goes once the server's end
  of the connection has nothing unread, which the kernel tells through netlink
  (explore.UnreadBytes) -- then clients that close inside a frame, a frame
  longer than MAX_FRAME and a header announcing 4 GB (refused: the connection closed, the
  server going on), then C's own failures (socklab.checks.c_answer): SIGPIPE,
  a reset before the server reads, leaked descriptors, a busy loop, zombies.
"""

import dataclasses
import fcntl
import itertools
import select
import socket
import struct
import termios
import textwrap
import threading
import time
import types

from .. import explore
from . import c_answer
from .report import Report, Verdict, describe_error
from .watched import MAX_EMPTY_READS, CheckStopped, WatchedSocket

__all__ = ["check_read_message", "check_read_lines", "check_frame_server_c", "frame",
           "pieces_of", "every_split", "HEADER", "MAX_FRAME"]

HEADER = struct.Struct("!I")  # the length: 4 bytes, unsigned, network byte order
MAX_CHUNK = 4096  # chunk sizes 1 ... MAX_CHUNK are tried
CASE_LIMIT = 3.0  # seconds for one call in the small cases
RUN_LIMIT = 30.0  # seconds for the whole every-split run (it takes 1 to 3 s)
PIECE_WAIT = 3.0  # the sender waits this long for the reader to take a piece
POLL = 0.0001  # ... looking every 0.1 ms
HUGE = 1 << 24  # no message here is that long: asking for it is a wrong length
MAX_FRAME = 65_536  # exercises 1 and 3: a longer frame is refused

HINT_WIDTH = 82  # a hint's lines are wrapped here (an error's own message can be long)

TEXT = "naïve café\n你好, 世界\n\nemoji 😀 end\nno newline at the end: ü"


def frame(message):
    """A length-prefixed frame: 4 bytes of length in network byte order, then message."""
    return HEADER.pack(len(message)) + message


def _wrapped(verdict):
    """``verdict`` with every line of its hint longer than HINT_WIDTH wrapped (its own
    breaks kept)."""
    hint = "\n".join(wrapped for line in verdict.hint.splitlines()
                     for wrapped in textwrap.wrap(line, HINT_WIDTH, break_long_words=False,
                                                  break_on_hyphens=False) or [""])
    return dataclasses.replace(verdict, hint=hint)


def _bytes(count):
    return f"{count:,} byte" + ("" if count == 1 else "s")


def pieces_of(data, size):
    """data cut into pieces of ``size`` bytes (the last one may be shorter)."""
    return [data[i:i + size] for i in range(0, len(data), size)]


def multibyte_boundaries(data):
    """The offsets in UTF-8 ``data`` that fall inside a character (between its bytes)."""
    return [i for i in range(1, len(data)) if data[i] & 0xC0 == 0x80]


def every_split(data):
    """The ways to cut ``data`` that lesson 09's checks try, as (label, pieces).

    Every chunk size from 1 to len(data), then every cut inside a multi-byte
    character, as two pieces.
    """
    splits = [(f"pieces of {_bytes(size)}", pieces_of(data, size))
              for size in range(1, len(data) + 1)]
    for offset in multibyte_boundaries(data):
        splits.append((f"cut after byte {offset}, inside a character",
                       [data[:offset], data[offset:]]))
    return splits


# ------------------------------------------------------------ the sender


def _waiting_bytes(sock):
    """How many received bytes wait in the kernel for sock's reader (FIONREAD)."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", raw)[0]


def _connected_pair():
    """(writer, reader): the two ends of a new TCP connection on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        writer = socket.create_connection(listener.getsockname(), timeout=5)
        reader, _ = listener.accept()
    writer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pieces go at once
    reader.settimeout(None)  # blocking: the learner's code may use any recv() flags
    return writer, reader


class _LockstepSender:
    """A thread that sends pieces one at a time, each once the last one was read."""

    def __init__(self, writer, reader, pieces, close_at_end=True):
        self.writer, self.reader = writer, reader
        self.pieces, self.close_at_end = pieces, close_at_end
        self.stopping = threading.Event()
        self.sent = 0  # pieces
        self.stalled = threading.Event()  # the reader stopped taking pieces
        self.thread = threading.Thread(target=self._send, name="socklab check sender",
                                       daemon=True)
        self.thread.start()

    def _wait_until_read(self):
        deadline = time.monotonic() + PIECE_WAIT
        while _waiting_bytes(self.reader) and not self.stopping.is_set():
            if time.monotonic() > deadline:
                self.stalled.set()  # the reader stopped reading: the check will say why
                return
            time.sleep(POLL)

    def _send(self):
        try:
            for piece in self.pieces:
                if self.stopping.is_set():
                    return
                self.writer.sendall(piece)
                self.sent += 1
                self._wait_until_read()
            if self.close_at_end:
                self.writer.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the check closed the connection: it has its answer

    def stop(self):
        self.stopping.set()
        self.thread.join(PIECE_WAIT + 1)


class _Run:
    """What one run of the learner's code did: a value, an error, or no end."""

    def __init__(self, outcome, timed_out):
        self.timed_out = timed_out
        self.stopped = isinstance(outcome.value, CheckStopped)
        self.value = None if self.stopped else outcome.value
        self.error = outcome.error


def _run(code, wsock, limit, give_up=None):
    """Call code() in a thread, with a time limit; stop the learner's socket if it
    runs over, or as soon as ``give_up`` (an Event) is set."""
    outcome = types.SimpleNamespace(value=None, error=None)

    def guarded():
        try:
            outcome.value = code()
        except CheckStopped as stop:
            outcome.value = stop
        except Exception as exc:  # shown to the learner as a hint
            outcome.error = exc

    thread = threading.Thread(target=guarded, name="socklab check", daemon=True)
    thread.start()
    deadline = time.monotonic() + limit
    while thread.is_alive() and time.monotonic() < deadline:
        if give_up is not None and give_up.is_set():
            break
        thread.join(0.01)
    timed_out = thread.is_alive()
    if timed_out:
        wsock.stop("the check stopped it")
        thread.join(CASE_LIMIT)
    return _Run(outcome, timed_out)


# --------------------------------------------------------------- read_message

BYTE_ORDER_HINT = (
    "It asked recv() for {asked:,} bytes: that is a length read in the wrong byte\n"
    "order.  The header is in network byte order (big-endian):\n"
    "struct.unpack('!I', ...).  '<I', or 'I' on this little-endian machine, reads\n"
    "b'\\x00\\x00\\x00\\x05' as 83886080."
)


def _judge_reads(run, wsock):
    """Judge the reads alone: a loop the check stopped after b'' again and again, or a
    length read in the wrong byte order (final: every frame would say so); else None."""
    if run.stopped and wsock.empty_reads >= MAX_EMPTY_READS:
        return Verdict.fail(_empty_reads_hint(wsock))
    asked = max((asked for asked, _ in wsock.reads), default=0)
    if asked >= HUGE:
        return Verdict.fail(BYTE_ORDER_HINT.format(asked=asked), final=True)
    return None


def _empty_reads_hint(wsock):
    return (f"recv() returned b'' {wsock.empty_reads} times, and your function kept "
            "calling it.\nb'' means the peer has closed: no more bytes will ever come.  "
            "If that happens\nin the middle of a frame, raise EOFError.")


MAKEFILE_NOTE = (
    "\n(It never called sock.recv(): does it read through sock.makefile()?  A "
    "buffered file\nreads ahead, and a new one in each call loses what the last "
    "one read ahead.)")


def _judge_message(run, wsock, expected, first_call=False):
    """Judge one call of read_message(wsock): the message ``expected``."""
    verdict = _judge_one_message(run, wsock, expected, first_call)
    if not verdict.passed and verdict != Verdict.not_written() and not wsock.reads:
        return dataclasses.replace(verdict, hint=verdict.hint + MAKEFILE_NOTE)
    return verdict


def _judge_one_message(run, wsock, expected, first_call):
    """Judge one call of read_message(wsock), as _judge_message() does, before its note."""
    verdict = _judge_reads(run, wsock)
    if verdict is not None:
        return verdict
    if run.timed_out or run.stopped:
        return Verdict.fail(
            "it did not return: it was still waiting in recv() for bytes that the "
            "sender never sent.\nAsk only for the bytes the frame still needs: "
            "4 for the header, then its length.")
    error = run.error
    if error is not None:
        if isinstance(error, NotImplementedError):
            return Verdict.not_written()
        if isinstance(error, struct.error):
            return Verdict.fail(
                f"it raised struct.error: {error}\nrecv(4) returned fewer than "
                "4 bytes: the header, too, can arrive in pieces.\nRead it with a "
                "loop like lesson 04's recv_exact(sock, 4).")
        if isinstance(error, (EOFError, ConnectionError)):
            return Verdict.fail(
                f"{describe_error(error)}, although the whole frame was sent.\n"
                "Raise it only when recv() returns b'' before the frame is complete.")
        return Verdict.fail(describe_error(error))
    value = run.value
    if value is None or value is Ellipsis:
        if first_call and not wsock.reads:  # a stub: it returned without reading
            return Verdict.not_written()
        return Verdict.fail(
            f"it returned None instead of {_show(expected)}: None is only for a clean end.")
    if isinstance(value, str):  # the whole function: every message would say it again
        return Verdict.fail(
            "it returned a str: return the message as bytes, as recv() gives it.", final=True)
    if not isinstance(value, (bytes, bytearray)):
        return Verdict.fail(f"it returned {type(value).__name__}, not bytes.")
    if value == expected:
        return Verdict.ok()
    if expected.startswith(value):
        return Verdict.fail(
            f"it returned {len(value):,} of the message's {len(expected):,} bytes.\n"
            "One recv() returns what has arrived so far, at most what you asked "
            "for -- not a\nwhole message.  Call it in a loop until you have them all.")
    if value == frame(expected):
        return Verdict.fail(
            "it returned the header too: return only the message after the 4-byte length.")
    if value.startswith(expected) or len(value) > len(expected):
        return Verdict.fail(
            f"it returned {len(value):,} bytes for a {len(expected):,}-byte message: "
            "bytes of the next frame?\nAsk recv() for at most the bytes the frame "
            "still needs.")
    return Verdict.fail(f"it returned {_show(value)}, expected {_show(expected)}.")


def _show(data, limit=24):
    text = repr(bytes(data[:limit]))
    return text + (f"... ({len(data):,} bytes)" if len(data) > limit else "")


def _with_reader(pieces, close_at_end=True, watched=WatchedSocket):
    """A new connection whose sender sends ``pieces`` in lockstep; (sender, wsock),
    ``wsock`` the reader's end as a ``watched`` socket."""
    writer, reader = _connected_pair()
    wsock = watched(reader)
    return _LockstepSender(writer, reader, pieces, close_at_end), wsock


def _finish(sender, wsock):
    sender.stop()
    sender.writer.close()
    wsock.sock.close()


def _calls(read_message, wsock, expected_messages, limit=CASE_LIMIT):
    """Judge read_message once per expected message.

    (Verdict, number of the call that failed, bytes read before it); the
    Verdict is the first failure's, or a pass with two Nones.
    """
    for number, expected in enumerate(expected_messages):
        before = wsock.received
        run = _run(lambda: read_message(wsock), wsock, limit)
        verdict = _judge_message(run, wsock, expected, first_call=number == 0)
        if not verdict.passed:
            return verdict, number, before
    return Verdict.ok(), None, None


def _case_whole(read_message):
    """Judge read_message() on one frame, b'hello', sent in one piece."""
    sender, wsock = _with_reader([frame(b"hello")], close_at_end=False)
    try:
        verdict, _, _ = _calls(read_message, wsock, [b"hello"])
    finally:
        _finish(sender, wsock)
    return verdict


def _case_two_in_one(read_message):
    """Judge two read_message() calls on two frames that came in one piece."""
    first, second = b"first message", "second: 你好".encode()
    sender, wsock = _with_reader([frame(first) + frame(second)], close_at_end=False)
    try:
        verdict, number, before = _calls(read_message, wsock, [first, second])
        if number == 1 and before > len(frame(first)):
            verdict = Verdict.fail(
                f"the first call read {before:,} bytes, but its frame has only "
                f"{len(frame(first))}:\nthe rest was the start of the next frame, "
                "and it is lost.  Ask recv() for at most\nthe bytes the frame still "
                "needs: 4 for the header, then exactly its length.")
    finally:
        _finish(sender, wsock)
    return verdict


def _case_clean_end(read_message):
    """Judge read_message() after the last frame, once the peer has closed: None."""
    sender, wsock = _with_reader([frame(b"last")], close_at_end=True)
    try:
        verdict, _, _ = _calls(read_message, wsock, [b"last"])
        if not verdict.passed:
            return verdict
        run = _run(lambda: read_message(wsock), wsock, CASE_LIMIT)
    finally:
        _finish(sender, wsock)
    if run.stopped and wsock.empty_reads >= MAX_EMPTY_READS:
        return Verdict.fail(_empty_reads_hint(wsock))
    if run.timed_out:
        return Verdict.fail(
            "it did not return after the peer had closed: recv() returned b''.")
    if run.error is not None:
        return Verdict.fail(
            f"{describe_error(run.error)}\nThe peer closed between two frames: that "
            "is the normal end of the stream.\nIf recv() returns b'' before the "
            "first byte of a header, return None.")
    if run.value == b"":
        return Verdict.fail(
            "it returned b'', but b'' is a message too (a frame of length 0).\n"
            "At a clean end return None, so the caller can tell the two apart.")
    if run.value is not None:
        return Verdict.fail(
            f"it returned {run.value!r} after the peer had closed; expected None.")
    return Verdict.ok()


def _plan():
    """The every-split run: (label, pieces, messages) for one long stream."""
    messages = [b"hello", b"", "你好, 世界".encode(), bytes(range(256))]
    plan = []
    for size in range(1, MAX_CHUNK + 1):
        # A long message for each size, so that every size splits a frame.
        long_one = bytes(i % 251 for i in range(size + 3))
        these = messages + [long_one]
        stream = b"".join(frame(m) for m in these)
        plan.append((f"pieces of {_bytes(size)}", pieces_of(stream, size), these))
    text = "ü, 你好, 😀".encode()
    data = frame(text)
    for offset in multibyte_boundaries(data):
        plan.append((f"a cut inside a character, after byte {offset} of its frame",
                     [data[:offset], data[offset:]], [text]))
    return plan


def plan_size():
    """(streams, pieces, frames) of the every-split run: for the report's line."""
    plan = _plan()
    return (len(plan), sum(len(p) for _, p, _ in plan),
            sum(len(m) for _, _, m in plan))


def _case_every_split(read_message):
    """Judge read_message() on one long stream, cut every way of _plan()."""
    plan = _plan()
    pieces = [piece for _, stream_pieces, _ in plan for piece in stream_pieces]
    sender, wsock = _with_reader(pieces, close_at_end=False)
    failure = {}

    def read_everything():
        for label, _, messages in plan:
            for number, expected in enumerate(messages, 1):
                value = read_message(wsock)
                if value != expected:
                    failure.update(label=label, number=number, expected=expected)
                    return value
        return None

    try:
        run = _run(read_everything, wsock, RUN_LIMIT, give_up=sender.stalled)
    finally:
        _finish(sender, wsock)
    if not failure and run.error is None and not (run.timed_out or run.stopped):
        return Verdict.ok()
    if not failure:  # it raised, or it did not return
        failure = _where_it_stopped(plan, wsock)
    verdict = _judge_message(run, wsock, failure["expected"])
    return Verdict.fail(f"with {failure['label']}, message {failure['number']}:\n"
                        + (verdict.hint or "it returned a wrong message."))


def _where_it_stopped(plan, wsock):
    """The stream and message the reader was in, from the bytes it read."""
    position = wsock.received
    for label, _, messages in plan:
        for number, message in enumerate(messages, 1):
            position -= len(frame(message))
            if position < 0:
                return dict(label=label, number=number, expected=message)
    label, _, messages = plan[-1]
    return dict(label=label, number=len(messages), expected=messages[-1])


def _case_cut(read_message, pieces, where):
    """Judge read_message() on ``pieces``, a frame cut short by the peer closing: an exception."""
    sender, wsock = _with_reader(pieces, close_at_end=True)
    try:
        run = _run(lambda: read_message(wsock), wsock, CASE_LIMIT)
    finally:
        _finish(sender, wsock)
    verdict = _judge_reads(run, wsock)
    if verdict is not None:
        return verdict
    if run.timed_out or run.stopped:
        return Verdict.fail(
            "it did not return after the peer had closed: recv() returned b''.")
    if run.error is not None:
        if isinstance(run.error, struct.error):
            return Verdict.fail(
                f"it raised struct.error: {run.error}\nThe peer closed {where}: "
                "check what recv() returns,\nand raise EOFError when it is b'' "
                "before the frame is complete.")
        return Verdict.ok()  # any exception will do; EOFError is the usual one
    if run.value is None:
        return Verdict.fail(
            f"it returned None, but the peer closed {where}: that is a broken "
            "frame, not a clean end.\nReturn None only when b'' comes before the "
            "first byte of a header; else raise EOFError.")
    return Verdict.fail(
        f"it returned {_show(run.value)}, but the peer closed {where}.\nThe "
        "message is incomplete: raise EOFError instead of returning part of it.")


def _case_cut_header(read_message):
    """Judge read_message() when the peer closes inside a header."""
    return _case_cut(read_message, [HEADER.pack(10)[:2]], "after 2 bytes of a header")


def _case_cut_payload(read_message):
    """Judge read_message() when the peer closes inside a message."""
    return _case_cut(read_message, [HEADER.pack(10) + b"abc"],
                     "after 3 of a frame's 10 bytes")


class _GuardedSocket(WatchedSocket):
    """A WatchedSocket that does not pass on a recv() for HUGE bytes or more.

    Python's sock.recv(n) allocates n bytes before the kernel is even asked, so a
    reader that believes a header announcing 4 GB would make the check's own
    process take 4 GB.  Stopped instead; the call stays in ``reads``."""

    def recv(self, bufsize, flags=0):
        if bufsize >= HUGE:
            self.reads.append((bufsize, 0))
            self.stop(f"recv({bufsize:,}) would allocate {_bytes(bufsize)}")
            raise CheckStopped(self.stop_reason)
        return super().recv(bufsize, flags)


REFUSE_HINT = (
    "Check the length against MAX_FRAME ({max_frame:,}) as soon as the header is in,\n"
    "and raise ValueError before you read the message: a reader that takes whatever\n"
    "length a stranger announces can be made to wait, or to allocate 4 GB.")


def _case_max_frame(read_message):
    """Judge read_message() on a frame of exactly MAX_FRAME bytes: allowed."""
    message = bytes(i % 251 for i in range(MAX_FRAME))
    sender, wsock = _with_reader([frame(message)], close_at_end=False)
    try:
        verdict, _, _ = _calls(read_message, wsock, [message])
    finally:
        _finish(sender, wsock)
    if verdict.hint.startswith("it raised ValueError"):
        return Verdict.fail(
            f"{verdict.hint}\nA frame of exactly MAX_FRAME ({MAX_FRAME:,}) bytes is "
            "allowed: refuse only longer ones\n(length > MAX_FRAME).")
    return verdict


def _case_too_long(read_message, length, pieces):
    """Judge read_message() on a header announcing ``length`` > MAX_FRAME bytes, then
    ``pieces``: ValueError, raised before a byte of the message is read."""
    sender, wsock = _with_reader(pieces, close_at_end=False, watched=_GuardedSocket)
    try:
        run = _run(lambda: read_message(wsock), wsock, CASE_LIMIT)
    finally:
        _finish(sender, wsock)
    refuse = REFUSE_HINT.format(max_frame=MAX_FRAME)
    asked = max((asked for asked, _ in wsock.reads), default=0)
    if asked >= HUGE and length >= HUGE:  # else a length in the wrong byte order
        return Verdict.fail(
            f"it asked recv() for {asked:,} bytes, the length the header announced:\n"
            "Python allocates that much before recv() even starts (the check stopped it\n"
            "there).  " + refuse)
    verdict = _judge_reads(run, wsock)
    if verdict is not None:
        return verdict
    if run.timed_out or run.stopped:
        return Verdict.fail(
            f"it did not return: it was waiting for the {_bytes(length)} the header "
            "announced.\n" + refuse)
    if isinstance(run.error, ValueError):
        if wsock.received > HEADER.size:
            return Verdict.fail(
                f"it raised ValueError, but only after reading {_bytes(wsock.received)} "
                "of a frame it refuses.\n" + refuse)
        return Verdict.ok()
    if isinstance(run.error, NotImplementedError):
        return Verdict.not_written()
    if run.error is not None:
        return Verdict.fail(
            f"{describe_error(run.error)}\nA header that announces more than MAX_FRAME "
            "calls for the ValueError the\nexercise asks for.  " + refuse)
    if isinstance(run.value, (bytes, bytearray)):
        return Verdict.fail(
            f"it returned a message of {_bytes(len(run.value))}: more than MAX_FRAME "
            f"({MAX_FRAME:,}).\n" + refuse)
    return Verdict.fail(f"it returned {run.value!r}.\n" + refuse)


def _case_one_too_long(read_message):
    """A whole frame of MAX_FRAME + 1 bytes: refused."""
    message = bytes(i % 251 for i in range(MAX_FRAME + 1))
    return _case_too_long(read_message, len(message), [frame(message)])


def _case_four_gb(read_message):
    """A header announcing 4 GB (and a few bytes of message): refused at once."""
    return _case_too_long(read_message, 0xFFFFFFFF, [HEADER.pack(0xFFFFFFFF) + b"abc"])


def check_read_message(read_message):
    """Check ``read_message(sock)``: one length-prefixed message, None at a clean end."""
    report = Report("Checking read_message(sock):")
    streams, pieces, frames = plan_size()
    cases = [
        ("one frame, b'hello', sent in one piece", _case_whole),
        ("two frames sent with one sendall(): two calls, two messages", _case_two_in_one),
        ("the peer closes after a frame: then None", _case_clean_end),
        (f"{frames:,} frames in {pieces:,} pieces: every chunk size from 1 to "
         f"{MAX_CHUNK:,},\n        and every cut inside a multi-byte character",
         _case_every_split),
        ("the peer closes inside a header: an exception", _case_cut_header),
        ("the peer closes inside a message: an exception", _case_cut_payload),
        (f"a frame of {MAX_FRAME:,} bytes, MAX_FRAME: the message", _case_max_frame),
        (f"a frame of {MAX_FRAME + 1:,} bytes, one more than MAX_FRAME: ValueError",
         _case_one_too_long),
        (f"a header announcing {0xFFFFFFFF:,} bytes: ValueError at once", _case_four_gb),
    ]
    for description, case in cases:
        if report.add(description, _wrapped(case(read_message))).final:
            break
    return report


# ----------------------------------------------------------------- read_lines


def _expected_lines(text):
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _judge_lines(run, wsock, lines, expected, in_time):
    """Judge what read_lines() yielded (``lines``): ``expected``, each as it came."""
    if run.stopped and wsock.empty_reads >= MAX_EMPTY_READS:
        return Verdict.fail(_empty_reads_hint(wsock).replace(
            "If that happens\nin the middle of a frame, raise EOFError.",
            "Stop the loop\nthen (after the last line)."))
    error = run.error
    if isinstance(error, UnicodeDecodeError):
        return Verdict.fail(
            f"{describe_error(error)}\nA character was cut between two recv() pieces, "
            "and a piece was decoded on its own.\nUse an incremental decoder "
            "(codecs.getincrementaldecoder('utf-8')()), or split\nthe bytes at "
            "b'\\n' first and decode whole lines.")
    if error is not None:
        if isinstance(error, NotImplementedError):
            return Verdict.not_written()
        return Verdict.fail(describe_error(error))
    if run.timed_out or run.stopped:
        return Verdict.fail(
            "it did not end after the peer had closed: when recv() returns b'', "
            "yield the last\nline (if any bytes are left) and return.")
    if lines == expected:
        if not in_time:
            return Verdict.fail(
                "it yielded the lines only at the end of the stream.  Yield each "
                "line as soon as\nits b'\\n' has arrived: a reader must not wait "
                "for the peer to close.")
        return Verdict.ok()
    if any(isinstance(line, bytes) for line in lines):
        return Verdict.fail("it yielded bytes: decode them, and yield str.")
    joined = "\n".join(map(str, lines))
    if "\ufffd" in joined:
        return Verdict.fail(
            "a line contains '\\ufffd', the replacement character: a character cut "
            "between two\npieces was decoded as broken.  Keep the incomplete bytes "
            "for the next piece:\ncodecs.getincrementaldecoder('utf-8')().")
    if any(isinstance(line, str) and line.endswith("\n") for line in lines):
        return Verdict.fail("a line still ends in '\\n': yield it without the newline.")
    if lines == expected[:-1]:
        return Verdict.fail(
            "the last line was missing.  It has no b'\\n' after it, but it ends "
            "where the stream\nends: yield it when recv() returns b''.")
    if joined == "\n".join(expected) or "".join(lines) == "".join(expected):
        return Verdict.fail(
            "a line came out in pieces: one recv() is not one line.  Collect bytes "
            "until a\nb'\\n' has arrived, then yield what comes before it.")
    return Verdict.fail(f"it yielded {lines!r}, expected {expected!r}.")


def _read_lines_once(read_lines, pieces, expected):
    """One connection: the sender sends pieces; the learner's generator reads lines.

    Returns (run, wsock, lines, in_time): in_time is False if the complete lines
    had not come out before the check closed the stream.
    """
    sender, wsock = _with_reader(pieces, close_at_end=False)
    lines, outcome = [], {"value": None, "error": None}
    returned = []  # the type of what read_lines() returned, if not an iterator

    def consume():
        try:
            result = read_lines(wsock)
            if result is not None and not _is_iterator(result):
                returned.append(type(result).__name__)  # a list, a str, ...
            if result is not None:
                for line in result:
                    lines.append(line)
                result = lines
            outcome["value"] = result
        except CheckStopped as stop:
            outcome["value"] = stop
        except Exception as exc:  # shown to the learner as a hint
            outcome["error"] = exc

    thread = threading.Thread(target=consume, name="socklab check", daemon=True)
    thread.start()
    try:
        in_time = _close_after_lines(sender, lines, expected, thread)
        thread.join(CASE_LIMIT)
        timed_out = thread.is_alive()
        if timed_out:
            wsock.stop(f"still running after {CASE_LIMIT:g} s")
            thread.join(CASE_LIMIT)
    finally:
        _finish(sender, wsock)
    run = _Run(types.SimpleNamespace(**outcome), timed_out)
    run.not_a_generator = returned[0] if returned else None
    return run, wsock, lines, in_time


def _is_iterator(value):
    """True for a generator (or any iterator); False for a list, a str, ..."""
    try:
        return iter(value) is value
    except TypeError:
        return False  # not even iterable


NOT_A_GENERATOR = (
    "it returned {what}, not a generator.  A function that returns gives all its\n"
    "lines at once, when it ends; a generator hands out each line as soon as it is\n"
    "complete.  Write `yield line` where a line is complete: a function with `yield`\n"
    "in it is a generator.")


def _close_after_lines(sender, lines, expected, reader_thread):
    """Wait until every piece is sent and every complete line yielded; then close.

    A reader that waits for the end of the stream never yields them: after a
    while the stream is closed anyway, and the check says so.  True if the
    lines came before the end (or the reader gave up by itself).
    """
    complete = len(expected) - 1  # the last line has no newline: it needs the end
    deadline = time.monotonic() + CASE_LIMIT
    in_time = False
    while time.monotonic() < deadline:
        if sender.sent == len(sender.pieces) and len(lines) >= complete:
            in_time = True
            break
        if not reader_thread.is_alive():
            in_time = True  # it ended early: judged by what it yielded
            break
        time.sleep(0.001)
    sender.stop()
    try:
        sender.writer.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # already closed
    return in_time


def _stub_result(run, lines):
    """A stub returns None instead of a generator (or raises NotImplementedError)."""
    if isinstance(run.error, NotImplementedError):
        return True
    return run.error is None and not run.stopped and run.value is None and not lines


def check_read_lines(read_lines):
    """Check ``read_lines(sock)``: a generator of str lines, decoded from UTF-8."""
    report = Report("Checking read_lines(sock):")
    data = TEXT.encode()
    expected = _expected_lines(TEXT)
    verdict = _judge_whole_text(read_lines, data, expected)
    if report.add("the text in one piece: 5 lines, the last one without '\\n'",
                  _wrapped(verdict)).final:
        return report
    splits = every_split(data)
    report.add(f"the same text cut {len(splits)} ways: pieces of every size from 1 to "
               f"{len(data)},\n        and {len(multibyte_boundaries(data))} cuts inside"
               " multi-byte characters",
               _wrapped(_judge_splits(read_lines, splits, expected)))
    return report


def _judge_whole_text(read_lines, data, expected):
    """Judge read_lines() on ``data`` in one piece: a generator of the ``expected`` lines."""
    run, wsock, lines, in_time = _read_lines_once(read_lines, [data], expected)
    if _stub_result(run, lines):
        return Verdict.not_written()
    if run.not_a_generator is not None:  # a list of lines: say that first, and stop
        what = run.not_a_generator
        article = "an" if what[0] in "aeiou" else "a"
        return Verdict.fail(NOT_A_GENERATOR.format(what=f"{article} {what}"), final=True)
    return _judge_lines(run, wsock, lines, expected, in_time)


def _judge_splits(read_lines, splits, expected):
    """Judge read_lines() on the same text cut each way of ``splits``: the first failure."""
    for label, pieces in splits:
        run, wsock, lines, in_time = _read_lines_once(read_lines, pieces, expected)
        verdict = _judge_lines(run, wsock, lines, expected, in_time)
        if not verdict.passed:
            return Verdict.fail(f"with {label}:\n{verdict.hint}")
    return Verdict.ok()


# ------------------------------------------------- the frame server, in C

ANSWER_WAIT = 5.0  # seconds the C server has to answer a frame, or to close
RECV_SIZE = 1 << 16


@dataclasses.dataclass
class _Exchange:
    """What one connection to the C server saw."""

    received: bytearray
    ending: str = "open"  # "closed" (it closed: b''), "reset", or "open" (still open)
    stalled: bool = False  # the server stopped reading what was sent
    waited: float = 0.0  # seconds the check waited for the server at the end ...
    busy: float = 0.0  # ... and CPU seconds the server used meanwhile

    @property
    def spinning(self):
        return self.ending == "open" and self.busy > self.waited / 2


def _exchange(answer, sock, pieces, messages, *, shutdown=False, until_close=False,
              limit=ANSWER_WAIT, run_limit=None):
    """Send ``pieces`` to the C server in lockstep on ``sock``, reading its answers.

    Each piece goes once the server has read the last one (explore.UnreadBytes): every
    cut reaches its recv().  Then the check waits for the frames of
    ``messages`` to come back; with ``shutdown`` it closes its side (SHUT_WR)
    and, with ``until_close`` too, waits for the server to close.  It stops at
    the first byte that is not the expected one (with the rest of that frame's
    answer, if it comes), and never waits for more than ``limit`` seconds at a
    time (``run_limit`` in all).
    """
    expected = b"".join(frame(m) for m in messages)
    ends = list(itertools.accumulate(len(frame(m)) for m in messages))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    ex = _Exchange(bytearray())
    queue = explore.UnreadBytes(answer.address, sock.getsockname())
    stop_at = time.monotonic() + (run_limit or float("inf"))
    wrong = []  # the offset of the first wrong byte, once there is one

    def take(timeout):
        """Read what has come within ``timeout`` s; False once the exchange is over."""
        if ex.ending != "open":
            return False
        readable, _, _ = select.select([sock], [], [], max(0.0, timeout))
        if readable:
            try:
                data = sock.recv(RECV_SIZE)
            except ConnectionResetError:
                ex.ending = "reset"
                return False
            except BlockingIOError:
                return True
            if not data:
                ex.ending = "closed"
                return False
            at = len(ex.received)
            ex.received += data
            if not wrong and ex.received[at:] != expected[at:at + len(data)]:
                wrong.append(next(i for i in range(at, len(ex.received))
                                  if i >= len(expected) or ex.received[i] != expected[i]))
        return True

    def answered():
        if wrong:  # that frame's answer, as far as it goes: for the hint
            frame_end = next((end for end in ends if end > wrong[0]), wrong[0] + 4)
            return len(ex.received) >= frame_end
        return len(ex.received) >= len(expected)

    def give(piece):
        view = memoryview(piece)
        deadline = min(time.monotonic() + limit, stop_at)
        while view and ex.ending == "open":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ex.stalled = True
                return False
            readable, writable, _ = select.select([sock], [sock], [], remaining)
            if readable and not take(0):  # its answers: read them while sending
                return False
            if not writable:
                continue
            try:
                count = sock.send(view)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                ex.ending = "reset"
                return False
            view = view[count:]
        # Lockstep: the next piece goes once the server has taken this one.
        deadline = min(time.monotonic() + PIECE_WAIT, stop_at)
        while queue.waiting() and take(POLL):
            if time.monotonic() > deadline:
                ex.stalled = True
                return False
        return ex.ending == "open" and not wrong

    def cpu():
        try:
            return answer.runnable_seconds()
        except OSError:  # it has ended: judged() says how
            return 0.0

    try:
        for piece in pieces:
            if not give(piece) or time.monotonic() > stop_at:
                break
        started, used = time.monotonic(), cpu()
        deadline = min(started + limit, stop_at)
        while not answered() and take(deadline - time.monotonic()):
            if time.monotonic() >= deadline:
                break
        if not wrong and answered() and (shutdown or until_close) and ex.ending == "open":
            if shutdown:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:  # it reset the connection meanwhile
                    ex.ending = "reset"
            started, used = time.monotonic(), cpu()
            deadline = started + limit
            while take(deadline - time.monotonic()) and time.monotonic() < deadline:
                pass
        ex.waited = time.monotonic() - started
        ex.busy = cpu() - used if ex.ending == "open" else 0.0
    finally:
        queue.close()
    return ex


C_SPIN_HINT = (
    "it used the CPU for {busy:.1f} of the {waited:.1f} s the check waited: a loop "
    "that spins.\nrecv() returned 0 -- a client has closed, no more bytes will ever "
    "come -- and the\nloop called it again.  Stop reading on 0, and close the connection.")

C_ONE_RECV_HINT = (
    "One recv() returns what has arrived so far, at most what you asked for -- not "
    "a\nwhole header or message.  Call it in a loop until you have them all.")


def _swapped(length):
    """``length`` as a 4-byte header read in host byte order (little-endian here)."""
    return struct.unpack("<I", HEADER.pack(length))[0]


def _byte_order_note(message):
    header = HEADER.pack(len(message))
    return (f"Read without ntohl(), on this little-endian machine, the header\n{header!r} "
            f"is {_swapped(len(message)):,}: more than MAX_FRAME ({MAX_FRAME:,}).  Put the "
            "4 bytes\nthrough ntohl() first.")


def _judge_frames(ex, messages, limit=ANSWER_WAIT, cut=False):
    """Judge the answers the C server sent: one frame back for each frame, the same.

    A pass, or what went wrong with the first frame that did not come back
    whole and right.  ``cut``: the frames came in pieces, after frames in one
    piece had passed -- so the byte order is not what went wrong.
    """
    got = bytes(ex.received)
    start = 0
    for number, message in enumerate(messages, 1):
        want = frame(message)
        if got[start:start + len(want)] != want:
            break
        start += len(want)
    else:
        if len(got) > start:
            return Verdict.fail(f"it sent back more than the frames it got: "
                                f"{_show(got[start:])} after the last answer.")
        return Verdict.ok()
    reply = got[start:]
    what = f"frame {number} (a {len(message):,}-byte message)"
    if want.startswith(reply):
        return _judge_missing(ex, message, what, reply, limit, cut)
    return _judge_wrong(message, what, reply)


def _judge_missing(ex, message, what, reply, limit, cut):
    """The answer to ``what`` did not come (``reply``: as much of it as came)."""
    size = len(frame(message))
    if ex.ending != "open":
        if reply:
            return Verdict.fail(
                f"it closed the connection after {len(reply):,} of the {size:,} bytes of "
                f"its answer to {what}.\nsend() may take fewer bytes than asked: "
                "send_all() sends them all.")
        hint = f"it closed the connection without answering {what}.\n"
        if _swapped(len(message)) > MAX_FRAME and not cut:  # every frame would say it
            return Verdict.fail(hint + "Did it take the length for more than MAX_FRAME?\n"
                                + _byte_order_note(message), final=True)
        if len(message) == MAX_FRAME:
            hint += ("A frame of exactly MAX_FRAME bytes is allowed: refuse only longer "
                     "ones (>, not >=).\nOr did a recv() return fewer bytes than it asked "
                     "for?\n")
        else:
            hint += "Did a recv() return fewer bytes than it asked for?\n"
        return Verdict.fail(hint + C_ONE_RECV_HINT)
    if ex.spinning:
        return Verdict.fail(C_SPIN_HINT.format(busy=ex.busy, waited=ex.waited), final=True)
    if ex.stalled:
        return Verdict.fail(
            f"it stopped reading in the middle of {what}: the bytes sent to it wait, "
            f"unread,\nin its socket.  Read each frame to its end, then send the answer.")
    hint = f"it did not answer {what} within {limit:g} s"
    if reply:
        return Verdict.fail(hint + f": {_bytes(len(reply))} of the {size:,} came.\n"
                            "Send the whole answer: the length, then all of the message.")
    hint += ": is it still waiting in recv() for bytes the client never sent?"
    if _swapped(len(message)) > MAX_FRAME and not cut:
        hint += "\n" + _byte_order_note(message)
    else:
        hint += ("\nAsk only for what the frame still needs: 4 bytes for the header, "
                 "then its length.")
    return Verdict.fail(hint)


def _judge_wrong(message, what, reply):
    """The answer to ``what`` is ``reply`` (as much of it as came): not the same frame."""
    if len(reply) >= 4:
        (length,) = HEADER.unpack(reply[:4])
        if length == len(message):
            return Verdict.fail(
                f"its answer to {what} has the right length but other bytes:\n"
                f"{_show(reply[4:])}, expected {_show(message)}.")
        if length == _swapped(len(message)):  # every answer would say it: final
            return Verdict.fail(
                f"its answer to {what} starts with {reply[:4]!r}:\nin network byte order, "
                f"a length of {length:,}.  The length went out in host\nbyte order: put it "
                "through htonl() before sending it.", final=True)
    if message and reply.startswith(message):
        return Verdict.fail(
            f"it sent back {what} without its 4-byte length: answer with a whole frame, "
            "the length\nfirst (htonl()), then the message.")
    return Verdict.fail(f"it answered {what} with {_show(reply)}, expected "
                        f"{_show(frame(message))}.")


def _echo_case(answer, messages, pieces=None):
    """A client for answer.play(): it sends the frames of ``messages`` (in ``pieces``)
    and judges what comes back."""
    sent = b"".join(frame(m) for m in messages)

    def client(sock):
        ex = _exchange(answer, sock, pieces or [sent], messages)
        return _judge_frames(ex, messages)
    return client


def _clean_end_case(answer):
    def client(sock):
        ex = _exchange(answer, sock, [frame(b"last")], [b"last"], shutdown=True,
                       until_close=True)
        verdict = _judge_frames(ex, [b"last"])
        if not verdict.passed or ex.ending != "open":
            return verdict
        if ex.spinning:
            return Verdict.fail(C_SPIN_HINT.format(busy=ex.busy, waited=ex.waited), final=True)
        return Verdict.fail(
            f"it did not close the connection within {ANSWER_WAIT:g} s of the client "
            "closing its side.\nrecv() returns 0 before the first byte of a header: "
            "that is the clean end of this\nclient.  Close its socket, and serve the next "
            "one.", final=True)
    return client


def _closing_case(answer, pieces, where, refused=False):
    """A client that sends ``pieces`` -- a broken frame, or one too long -- and waits for
    the server to close the connection (``refused``: a frame too long, and the
    client keeps its side open)."""

    def client(sock):
        ex = _exchange(answer, sock, pieces, [], shutdown=not refused, until_close=True)
        (length,) = HEADER.unpack(pieces[0][:4].ljust(4, b"\0"))
        if ex.received:
            if refused and bytes(ex.received) == pieces[0][:len(ex.received)]:
                return Verdict.fail(
                    f"it answered a frame of {_bytes(length)}, more than MAX_FRAME "
                    f"({MAX_FRAME:,}).\nRefuse such a frame: check the length as soon as "
                    "the header is in, and close the\nconnection without reading the "
                    "message.")
            return Verdict.fail(f"it sent back {_show(ex.received)} when the client "
                                f"{where}: a frame never came whole.\nSend an answer only "
                                "once all of its frame has come.")
        if ex.ending != "open":
            return Verdict.ok()
        if ex.spinning:
            return Verdict.fail(C_SPIN_HINT.format(busy=ex.busy, waited=ex.waited), final=True)
        if not refused:
            return Verdict.fail(
                f"it did not close the connection within {ANSWER_WAIT:g} s after the "
                f"client {where}.\nrecv() returned 0 in the middle of a frame: the frame "
                "is broken and no more\nbytes will come.  Close that connection, and serve "
                "the next client.", final=True)
        return Verdict.fail(
            f"it neither answered nor closed the connection within {ANSWER_WAIT:g} s: is it "
            f"waiting for the\n{_bytes(length)} the header announced?  Check the length "
            f"against MAX_FRAME ({MAX_FRAME:,})\nas soon as the header is in, and close the "
            "connection if it is longer: a server\nthat reads (or mallocs) whatever length "
            "a client announces can be made to wait,\nor to take 4 GB, by anyone.")
    return client


def _then_goes_on(answer, verdict, probe):
    """After a connection the server had to close: it must still serve the next client
    (a server that died closing it is named here, with its sanitizer's report)."""
    if not verdict.passed:
        return verdict
    after = answer.play(probe)
    if after.passed or after.final:
        return after
    return Verdict.fail(f"it closed that connection; then a client with one frame "
                        f"got this:\n{after.hint}")


def _split_run(answer):
    """A client for answer.play(): _plan()'s every-split stream, frames echoed back."""
    plan = _plan()
    pieces = [piece for _, stream_pieces, _ in plan for piece in stream_pieces]
    where = [(label, number) for label, _, messages in plan
             for number, _ in enumerate(messages, 1)]
    messages = [message for _, _, stream_messages in plan for message in stream_messages]

    def client(sock):
        ex = _exchange(answer, sock, pieces, messages, run_limit=RUN_LIMIT)
        verdict = _judge_frames(ex, messages, cut=True)
        if verdict.passed:
            return verdict
        position = done = 0  # the frames echoed whole and right, before the failure
        for message in messages:
            if ex.received[position:position + len(frame(message))] != frame(message):
                break
            position += len(frame(message))
            done += 1
        label, number = where[min(done, len(where) - 1)]
        hint = verdict.hint.replace(f"frame {done + 1} (", f"frame {number} (", 1)
        return dataclasses.replace(verdict, hint=f"with {label}, message {number}:\n{hint}")
    return client


def check_frame_server_c(name):
    """Check the C frame server NAME, compiled by a ``%%c NAME --compile-only`` cell.

    It listens on 127.0.0.1 (any port), prints LISTENING <port>, and sends each
    client's length-prefixed frames back, one frame for each, until the client
    closes; a broken frame, or one longer than MAX_FRAME, ends that client's
    connection.  It meets check_read_message's streams -- one frame, two in one
    segment, every chunk size and every cut inside a character -- played in
    lockstep with its recv() (explore.UnreadBytes); clients that close inside a
    frame; frames too long; then C's own failures (c_answer.check_process).
    """
    report = Report(f"Checking the C frame server {name}.c:")
    answer = c_answer.start(name, report)
    if answer is None:
        return report
    probe = _echo_case(answer, [b"one more frame"])
    two = [b"first message", "second: 你好".encode()]
    streams, pieces, frames = plan_size()
    too_long = bytes(i % 251 for i in range(MAX_FRAME + 1))
    cases = [
        ("one frame, b'hello', sent in one piece: the same frame back",
         lambda: answer.play(_echo_case(answer, [b"hello"]))),
        ("two frames sent with one sendall(): two frames back",
         lambda: answer.play(_echo_case(answer, two, [frame(two[0]) + frame(two[1])]))),
        ("a frame of 0 bytes: a frame of 0 bytes back",
         lambda: answer.play(_echo_case(answer, [b""]))),
        (f"a frame of {MAX_FRAME:,} bytes, MAX_FRAME: the same frame back",
         lambda: answer.play(_echo_case(answer, [too_long[:MAX_FRAME]]))),
        ("the client closes after a frame: the server closes that connection too",
         lambda: answer.play(_clean_end_case(answer))),
        (f"{frames:,} frames in {pieces:,} pieces: every chunk size from 1 to "
         f"{MAX_CHUNK:,},\n        and every cut inside a multi-byte character",
         lambda: answer.play(_split_run(answer))),
        ("the client closes inside a header: the server closes that connection and goes on",
         lambda: _then_goes_on(answer, answer.play(_closing_case(
             answer, [HEADER.pack(10)[:2]], "closed after 2 bytes of a header")), probe)),
        ("the client closes inside a message: the server closes that connection and goes on",
         lambda: _then_goes_on(answer, answer.play(_closing_case(
             answer, [HEADER.pack(10) + b"abc"], "closed after 3 of a frame's 10 bytes")),
             probe)),
        (f"a frame of {MAX_FRAME + 1:,} bytes, one more than MAX_FRAME: refused (the "
         "connection closed)",
         lambda: _then_goes_on(answer, answer.play(_closing_case(
             answer, [frame(too_long)], "sent too long a frame", refused=True)), probe)),
        (f"a header announcing {0xFFFFFFFF:,} bytes: refused at once",
         lambda: _then_goes_on(answer, answer.play(_closing_case(
             answer, [HEADER.pack(0xFFFFFFFF)], "announced 4 GB", refused=True)), probe)),
    ]
    with answer:
        for description, case in cases:
            if report.add(description, case()).final:
                return report
        c_answer.check_process(answer, report, probe=probe)
    return report
