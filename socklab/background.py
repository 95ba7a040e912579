"""One lifecycle for everything socklab runs in the background.

A lesson starts things that outlive the cell that started them: servers, the lossy
relay, packet captures, C programs.  Each of them is a ``Background`` object, and
they all start and stop the same way -- the way written down here, once:

1. **Claim the name.**  A namesake that is still running is stopped *before*
   anything new is opened, so re-running a cell that serves on a fixed port works:
   the old server has let go of the port when the new one binds it.
2. **Open** (the subclass's ``open()``): create and bind sockets, start a process.
   This runs in the caller, before any thread exists, so when the constructor
   returns the object is ready -- a client may connect at once, nobody sleeps.
   If anything fails here, everything opened so far is closed again and the name
   is free: a mistake leaks no socket.
3. **Serve** (the subclass's ``serve()``, optional): the loop, in a background
   thread.  It waits in a selector on its sockets *and* on ``self.wake_reader``,
   one end of a socketpair; it returns once that end is readable.  More threads
   (one per connection, say) are started with ``spawn()``; finished ones are
   dropped as new ones start, so serving a million short connections does not
   keep a million Thread objects.  An exception in any of these threads is kept
   (``keep_error()``), not printed: print from a thread lands in a random cell.
4. **Stop** (``stop()``, safe to call any number of times): ``wake()`` -- by
   default one byte into the socketpair -- then join the serving thread, then
   every thread it spawned, all within one time limit; then ``close()`` (the
   subclass closes its sockets) and forget the name.  If a thread is still alive
   after the limit, stop() says which one; otherwise it raises again the first
   error a thread kept, so a bug is never lost in the background.

Everything is registered with socklab.registry, so ``socklab.running()`` lists it,
``socklab.stop_all()`` stops it, and nothing outlives the Python process.

A new kind of background object therefore needs three methods::

    class Ticker(Background):
        default_name = "ticker"

        def open(self):                 # sockets, bound; runs before any thread
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))

        def serve(self):                # the loop; ends when woken
            with selectors.DefaultSelector() as selector:
                selector.register(self.sock, selectors.EVENT_READ)
                while self.wait_readable(selector):
                    self.sock.recv(2048)

        def close(self):                # after every thread has ended
            self.sock.close()

A subclass sets its own attributes first and calls ``super().__init__(name)`` last:
that call opens and starts the thread, which may use them at once.
"""

import socket
import threading
import time

from . import registry

__all__ = ["Background", "STOP_TIMEOUT"]

STOP_TIMEOUT = 5.0  # seconds stop() waits for all threads together


class Background:
    """Something socklab runs in the background: named, registered, stoppable."""

    default_name = "background"  # names are default_name-1, -2 ... unless given

    def __init__(self, name=None):
        self._errors = []  # exceptions kept by threads, raised again by stop()
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._threads = []  # every thread spawned and not yet seen finished
        self._threads_lock = threading.Lock()
        self._main_thread = None
        self.name = registry.claim(name, self.default_name)  # a namesake stops here
        self.wake_reader = self.wake_writer = None
        try:
            self.wake_reader, self.wake_writer = socket.socketpair()
            self.open()
        except BaseException:
            self._close_everything()  # the name was never registered: nothing to forget
            raise
        registry.register(self)
        if type(self).serve is not Background.serve:
            self._main_thread = self.spawn(self.serve, f"socklab {self.name}")

    # -- what a subclass provides ----------------------------------------------
    def open(self):
        """Create and bind what the object needs; runs before any thread."""

    def serve(self):
        """The loop, run in a background thread; return once woken."""

    def wake(self):
        """Make the serving thread return: by default a byte on the socketpair."""
        self.wake_writer.send(b"x")

    def close(self):
        """Close what open() opened; runs once, after the threads have ended."""

    # -- helpers for subclasses -------------------------------------------------
    def spawn(self, target, name, *args):
        """Run ``target(*args)`` in a new thread whose exceptions are kept."""
        thread = threading.Thread(
            target=self._run_keeping_errors, args=(target, *args), name=name, daemon=True
        )
        with self._threads_lock:
            # Drop the threads that have finished, as socketserver does since
            # Python 3.7 (bpo-37193): a long-running server must not grow.
            self._threads = [old for old in self._threads if old.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _run_keeping_errors(self, target, *args):
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001 -- kept, and raised by stop()
            self.keep_error(exc)

    def keep_error(self, exc):
        """Remember an exception from a thread; stop() raises the first one."""
        self._errors.append(exc)

    def wait_readable(self, selector, timeout=None):
        """Wait in ``selector``; the ready keys, or None once stop() has woken us.

        The selector must have ``self.wake_reader`` registered among its files.
        """
        ready = selector.select(timeout)
        if any(key.fileobj is self.wake_reader for key, _ in ready):
            return None
        return ready

    @property
    def threads(self):
        """The threads still running for this object (serving one first)."""
        with self._threads_lock:
            return [thread for thread in self._threads if thread.is_alive()]

    @property
    def alive(self):
        """True until stop() has been called."""
        return not self._stopped

    # -- stopping -----------------------------------------------------------------
    def stop(self, timeout=STOP_TIMEOUT):
        """Stop, join every thread, close everything, forget the name.

        Safe to call more than once (later calls do nothing).  Raises
        RuntimeError naming the threads still alive after ``timeout`` seconds,
        and otherwise raises again the first exception a thread kept.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        deadline = time.monotonic() + timeout
        try:
            self.wake()
            stuck = self._join_until(deadline)
        finally:
            self._close_everything()
            registry.release(self.name, self)
        if stuck:
            raise RuntimeError(
                f"{self.name}: thread(s) still running {timeout:g} s after stop(): "
                + ", ".join(stuck)
            )
        if self._errors:
            first = self._errors[0]
            if len(self._errors) > 1 and hasattr(first, "add_note"):
                first.add_note(f"({len(self._errors) - 1} more error(s) kept)")
            raise first

    def _join_until(self, deadline):
        """Join the serving thread, then the threads it spawned; names of the stuck."""
        if self._main_thread is not None:
            # Once it has ended it can spawn no more, so the list below is complete.
            self._main_thread.join(max(0.0, deadline - time.monotonic()))
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self.threads]

    def _close_everything(self):
        try:
            if self.wake_reader is not None:  # open() ran (or was tried)
                self.close()
        finally:
            for end in (self.wake_reader, self.wake_writer):
                if end is not None:
                    end.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def __repr__(self):
        state = "running" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.name!r}, {state}>"
