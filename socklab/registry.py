"""Everything socklab has running in the background, in one place.

A lesson starts servers and C programs that outlive the cell that started them.
The registry remembers each of them by name, so that

* ``socklab.running()`` lists what is alive,
* ``socklab.stop_all()`` ends all of it (the last cell of every lesson calls it),
* starting a server under a name that is already taken stops the old one first --
  re-running a cell then replaces its server instead of piling up copies, and
* when the Python process exits (kernel restart or shutdown), ``atexit`` stops
  whatever is left, so no server thread or child process outlives its notebook.

Anything with a ``name`` attribute and an idempotent ``stop()`` method can be
registered.  The order is always the same (socklab.background does it for servers,
the relay, captures and C programs):

    name = registry.claim(name, "tcp")   # a running namesake is stopped HERE,
    ...open sockets, start a process...  # so the port it held is free again
    registry.register(thing)
    ...
    registry.release(name, thing)        # in thing.stop()
"""

import atexit
import itertools
import threading

__all__ = ["claim", "register", "release", "unregister", "running", "stop_all", "unique_name"]

_lock = threading.Lock()
_live = {}  # name -> object with .stop(), in the order they were started
_counter = itertools.count(1)


def unique_name(prefix):
    """A name no other live object has: "echo-tcp-1", "echo-tcp-2", ..."""
    while True:
        name = f"{prefix}-{next(_counter)}"
        with _lock:
            if name not in _live:
                return name


def claim(name, prefix):
    """The name to start under: ``name``, after stopping a namesake; or a new one.

    Call it before opening anything: the namesake's sockets and ports are free
    when it returns.  If the namesake's stop() raises (it kept an error), the
    error goes to the caller, who has opened nothing yet.
    """
    if name is None:
        return unique_name(prefix)
    with _lock:
        old = _live.pop(name, None)
    if old is not None:
        old.stop()
    return name


def register(thing):
    """Remember ``thing`` under ``thing.name``; stop a namesake first."""
    with _lock:
        old = _live.pop(thing.name, None)
    if old is not None and old is not thing:
        old.stop()
    with _lock:
        _live[thing.name] = thing


def release(name, thing=None):
    """Forget what is registered as ``name`` (only if it is ``thing``, when given)."""
    with _lock:
        if name in _live and (thing is None or _live[name] is thing):
            del _live[name]


def unregister(thing):
    """Forget ``thing`` (called by its own stop())."""
    release(thing.name, thing)


def running():
    """A list of every live server and background program, oldest first."""
    with _lock:
        return list(_live.values())


def stop_all():
    """Stop everything that is running; return how many things were stopped.

    Every object is stopped even if an earlier one raised; the first error is
    re-raised at the end so that a failing server is not hidden.
    """
    first_error = None
    things = running()
    for thing in reversed(things):  # newest first: clients before servers
        try:
            thing.stop()
        except Exception as exc:  # keep going: stop the rest before reporting
            if first_error is None:
                first_error = exc
    if first_error is not None:
        raise first_error
    return len(things)


@atexit.register
def _stop_at_exit():
    try:
        stop_all()
    except Exception as exc:  # at exit there is no cell to show it in
        import sys

        print(f"socklab: while stopping at exit: {exc!r}", file=sys.stderr)
