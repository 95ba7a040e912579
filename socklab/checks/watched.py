"""A socket that notes what the learner's code does with it, for the checks' hints.

Checks of lessons 04, 05 and 09 hand the learner's function a WatchedSocket
instead of the bare socket: every call still reaches the real socket, but recv()
and send() leave a record ("your function returned after the first recv(): it
got 553 of 5,000 bytes"), and a loop that can never end is stopped from inside.
call_watched() runs the learner's function on such a socket with the time limit,
and stops it there if it runs over (lesson 07 watches its UDP socket that way).
"""

import socket
import threading

from .report import TIME_LIMIT, call_with_time_limit

__all__ = ["CheckStopped", "WatchedSocket", "MAX_EMPTY_READS", "call_watched"]

MAX_EMPTY_READS = 100  # recv() returning b'' this often: the loop will never end


class CheckStopped(BaseException):
    """Raised inside the learner's code by a WatchedSocket, to end a loop that cannot end.

    A BaseException, like KeyboardInterrupt, so that an ``except Exception:`` in the
    learner's code does not swallow it.
    """


def call_watched(function, sock, *args):
    """Call ``function(sock, *args)`` with the time limit; if it runs over, stop it.

    ``sock`` is a socket the check watches (a WatchedSocket, say): its stop(reason)
    makes the learner's next call on it raise CheckStopped, and wakes a call that
    waits.  Returns (outcome, timed_out); a CheckStopped that ended the function is
    ``outcome.value``.
    """

    def guarded():
        try:
            return function(sock, *args)
        except CheckStopped as stop:
            return stop

    outcome, thread = call_with_time_limit(guarded)
    timed_out = not outcome.finished
    if timed_out:
        sock.stop(f"still running after {TIME_LIMIT:g} s")
        thread.join(TIME_LIMIT)
    return outcome, timed_out


class WatchedSocket:
    """A connected socket handed to the learner's function by a check.

    Every call goes to the real socket (``.sock``).  recv(), recv_into(), send()
    and sendall() also note what happened, for the check's hints:

    * ``reads``  -- (bytes asked for, bytes returned) for each recv()/recv_into()
    * ``sends``  -- (bytes offered, bytes taken) for each send()
    * ``sendall_calls`` -- how many times sendall() was called

    After MAX_EMPTY_READS reads that returned b'', or once the check has set
    ``stop_reason`` (its time limit is over), the next call raises CheckStopped.
    """

    def __init__(self, sock, first_read=None):
        self.sock = sock
        self.reads = []
        self.sends = []
        self.sendall_calls = 0
        self.empty_reads = 0
        self.first_read = first_read if first_read is not None else threading.Event()
        self.stop_reason = None

    def _go_on(self):
        if self.stop_reason is not None:
            raise CheckStopped(self.stop_reason)

    def _note_read(self, asked, got):
        self.reads.append((asked, got))
        if asked and not got:
            self.empty_reads += 1
            if self.empty_reads >= MAX_EMPTY_READS:
                self.stop_reason = "recv() returned b'' again and again"
                raise CheckStopped(self.stop_reason)

    @property
    def received(self):
        """Bytes read through this socket so far."""
        return sum(got for _, got in self.reads)

    def recv(self, bufsize, flags=0):
        self._go_on()
        self.first_read.set()
        data = self.sock.recv(bufsize, flags)
        self._note_read(bufsize, len(data))
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._go_on()
        self.first_read.set()
        count = self.sock.recv_into(buffer, nbytes, flags)
        self._note_read(nbytes or memoryview(buffer).nbytes, count)
        return count

    def send(self, data, flags=0):
        self._go_on()
        count = self.sock.send(data, flags)
        self.sends.append((memoryview(data).nbytes, count))
        return count

    def sendall(self, data, flags=0):
        self._go_on()
        self.sendall_calls += 1
        return self.sock.sendall(data, flags)

    def stop(self, reason):
        """End the learner's use of this socket: later calls raise, a blocked one returns."""
        self.stop_reason = reason
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed, or not connected any more

    @property
    def partial_sends(self):
        """How many send() calls took fewer bytes than they were offered."""
        return sum(taken < offered for offered, taken in self.sends)

    def __getattr__(self, name):
        return getattr(self.sock, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.sock.close()

    def __repr__(self):
        return "<socket watched by the check>"
