"""socklab: the helper package of an interactive socket-programming course.

Background servers on real loopback sockets, so a notebook cell never needs a
second terminal and never hangs:

    import socklab
    with socklab.TCPEchoServer() as srv:   # bound and listening when this returns
        srv.address                        # ('127.0.0.1', <port the kernel chose>)
        srv.events                         # what the server did: accept, recv, send ...

    socklab.serve(handler, kind="tcp")     # your own handler, in the background
    socklab.running()                      # everything socklab has running
    socklab.stop_all()                     # stop it all; returns how many

C from a notebook: ``%load_ext socklab`` gives the ``%%c NAME`` cell magic, which
compiles the cell with gcc and runs it (see socklab.c and socklab.magic).

Run ``python -m socklab doctor`` to see what works on this machine.
"""

from . import c, capture, checks, doctor, explore, trace
from .events import Event, EventLog
from .progress import Progress
from .registry import running, stop_all
from .relay import LossyRelay
from .servers import (
    Connection,
    TCPEchoServer,
    TCPServer,
    UDPEchoServer,
    UDPServer,
    serve,
)

__all__ = [
    "Connection",
    "Event",
    "EventLog",
    "LossyRelay",
    "Progress",
    "TCPEchoServer",
    "TCPServer",
    "UDPEchoServer",
    "UDPServer",
    "c",
    "capture",
    "checks",
    "doctor",
    "explore",
    "trace",
    "running",
    "serve",
    "stop_all",
]


def load_ipython_extension(ipython):
    """``%load_ext socklab``: register the %%c cell magic."""
    from .magic import load_ipython_extension as load  # IPython only when asked

    load(ipython)


def __getattr__(name):
    """Import the faces (widgets, diagrams) on first use: ``socklab.ui.chat()``.

    They need ipywidgets or matplotlib; the core above needs only the standard
    library, so scripts and tests that use servers alone never import those.
    """
    if name in ("ui", "viz"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'socklab' has no attribute {name!r}")
