"""A thread-safe record of what a background server did.

Server threads in socklab never print: where a thread's print() lands in Jupyter
depends on the ipykernel version, and output that appears in whatever cell happens
to be running is confusing.  Instead every server keeps an EventLog.  Its threads
append Event records ("accept", "recv", "send", "close", ...), and a notebook cell
shows them when the learner asks -- ``srv.events`` as the last line of a cell.

The text form of a log names connections by number (conn 1, conn 2, ...) and never
shows a port number, because ports chosen by the kernel change from run to run and
lesson outputs are compared with stored ones.  The full details (peer address,
monotonic timestamps) are still in each Event for code that wants them.
"""

import collections
import threading
import time
import typing

__all__ = ["Event", "EventLog"]


class Event(typing.NamedTuple):
    """One thing a server did.

    kind   -- "listen", "accept", "recv", "send", "close", "reset", "error", ...
    conn   -- which connection (TCP) or which peer (UDP), numbered from 1 in order
              of arrival; 0 for events of the server as a whole
    nbytes -- bytes received or sent, or None where it does not apply
    detail -- a short human-readable remark ("peer closed", an exception, ...)
    peer   -- the peer's address tuple (not shown in the text form: ports change)
    party  -- "conn" for a TCP connection, "peer" for a UDP peer
    time   -- time.monotonic() when it was recorded

    A named tuple rather than a dataclass: a server records two events per
    message, and a tuple is the cheapest record Python can build (see
    benchmarks/README.md for what a slower one cost).
    """

    kind: str
    conn: int = 0
    nbytes: "int | None" = None
    detail: str = ""
    peer: "tuple | None" = None
    party: str = "conn"
    time: float = 0.0

    def __str__(self):
        who = f"{self.party} {self.conn}" if self.conn else "server"
        text = f"{who:<8} {self.kind}"
        if self.nbytes is not None:
            text += f" {self.nbytes} byte" + ("" if self.nbytes == 1 else "s")
        if self.detail:
            text += f" ({self.detail})"
        return text


def _display_order(event):
    if event.conn:
        return (1, event.conn)
    return (2, 0) if event.kind == "stop" else (0, 0)


class EventLog:
    """An append-only, thread-safe list of Events, bounded in length.

    A log keeps the most recent ``maxlen`` events; ``dropped`` counts the older
    ones it let go, so a server that echoes gigabytes does not eat the memory.
    """

    def __init__(self, maxlen=10_000):
        self._events = collections.deque(maxlen=maxlen)
        self._added = 0  # how many events were ever added (for `dropped`)
        self._kinds = collections.Counter()  # events ever added, by kind (wait_for)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # for wait_for() only
        self._waiting = 0  # how many threads are in wait_for(): add() wakes them

    def add(self, kind, conn=0, nbytes=None, detail="", peer=None, party="conn"):
        """Record an event.  Cheap on purpose: a busy server calls it twice per message.

        So: a plain Lock (its ``with`` runs in C), and notify_all() only when a
        thread is waiting in wait_for().
        """
        event = Event(kind, conn, nbytes, detail, peer, party, time.monotonic())
        with self._lock:
            self._events.append(event)
            self._added += 1
            self._kinds[kind] += 1
            if self._waiting:
                self._changed.notify_all()
        return event

    @property
    def dropped(self):
        """How many of the oldest events were let go to keep the log bounded."""
        with self._lock:
            return self._added - len(self._events)

    def snapshot(self):
        """A list copy of the events recorded so far."""
        with self._lock:
            return list(self._events)

    def of_kind(self, kind):
        return [event for event in self.snapshot() if event.kind == kind]

    def wait_for(self, kind, count=1, timeout=5.0):
        """Block until at least ``count`` events of ``kind`` have been recorded.

        Every event counts, also one the bounded log has let go since.

        A client sees its reply before the server thread has necessarily recorded
        what it did next (a "close", say); a cell that wants to show that event
        waits for it here rather than sleeping for a guessed time.  Raises
        TimeoutError after ``timeout`` seconds, so a cell never hangs.
        """
        deadline = time.monotonic() + timeout
        with self._changed:  # holds self._lock, except while in wait()
            self._waiting += 1
            try:
                while self._kinds[kind] < count:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"waited {timeout:g} s for {count} {kind!r} event(s); "
                            f"the log has {len(self._events)} events"
                        )
                    self._changed.wait(remaining)
            finally:
                self._waiting -= 1
        return self.of_kind(kind)

    def clear(self):
        with self._lock:
            self._events.clear()
            self._added = 0
            self._kinds.clear()

    def __len__(self):
        return len(self._events)

    def __iter__(self):
        return iter(self.snapshot())

    def __getitem__(self, index):
        return self.snapshot()[index]

    def __repr__(self):
        """The events connection by connection, so the text is the same every run.

        Threads of different connections record in whatever order the scheduler
        runs them, so a plain time-ordered list could differ between two runs of
        the same cell.  Here the server's own events come first (its final "stop"
        last), then each connection's events, in order, connection 1 first.
        Iterate over the log for the true order in time.
        """
        events = self.snapshot()
        if not events:
            return "(no events)"
        lines = [str(event) for event in sorted(events, key=_display_order)]
        if self.dropped:
            lines.insert(0, f"... {self.dropped} older events dropped")
        return "\n".join(lines)
