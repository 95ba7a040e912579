"""Widgets for trying things by hand: a chat console, a recv() explorer, a UDP explorer.

Each widget is a thin face (ipywidgets) over plain functions of socklab.explore
that do the work with real sockets, so that tests drive them without a browser
-- by setting ``.value`` and calling ``.click()`` -- and a learner can read what
a button really does.

Callbacks of buttons and sliders run in the kernel's main thread, one at a time,
so they may update the widgets directly.  Nothing here writes to an Output widget
from another thread; where text is added to one, ``Output.append_stdout`` is used,
which works from any thread and needs no ``with out:`` block.
"""

import socket

import ipywidgets as widgets

from .background import Background
from .explore import (
    REPLY_TIMEOUT,
    chunks_received,
    describe_chunks,
    describe_replies,
    read_reply,
    split_evenly,
    udp_experiment,
)
from .servers import TCPEchoServer

__all__ = [
    "ChatConsole", "chat", "RecvExplorer", "UDPExplorer", "labelled",
    # At home in socklab.explore; lessons 07 and 09 call them as socklab.ui.NAME.
    "chunks_received", "split_evenly", "udp_experiment", "describe_replies",
]


def _mimebundle(widget, title, **kwargs):
    """The widget's own display data, with a text form a reader can use.

    A stored notebook keeps no widget state, so before its cells run JupyterLab
    (and a static page of the lesson) shows the text form instead of the widget:
    by default "VBox(children=(HBox(...", here a sentence that says what to do.
    """
    bundle = widget._repr_mimebundle_(**kwargs)
    bundle["text/plain"] = f"[{title}: run this cell to use it]"
    return bundle


class labelled:
    """Show ``widget`` as it is, with a readable text form: ``labelled(box, "explorer")``.

    For widgets a lesson builds itself; the consoles and explorers here do the same.
    """

    def __init__(self, widget, title):
        self.widget, self.title = widget, title

    def _repr_mimebundle_(self, **kwargs):
        return _mimebundle(self.widget, self.title, **kwargs)


def _replace_text(output, text):
    """Show ``text`` in an Output widget instead of what it showed before."""
    output.outputs = ()
    output.append_stdout(text if text.endswith("\n") else text + "\n")


class ChatConsole(Background):
    """Type a message, send it over a real TCP connection, see the reply.

    Beside the conversation it shows the server's event log, so the learner sees
    both ends at once: what the client sent, and what the server's recv() got.
    Without a ``server`` it starts a TCPEchoServer of its own (and stops it again
    in stop()).  It is a socklab.background object with no thread of its own:
    re-running the cell replaces the console, and stop_all() closes it.
    """

    def __init__(self, server=None, name="chat"):
        self._own_server = server is None
        self.server = server
        self.sock = None
        self.message = widgets.Text(
            value="hello", placeholder="a message", description="message:"
        )
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.close_button = widgets.Button(description="Close connection")
        self.transcript = widgets.Output(layout={"border": "1px solid #ccc", "min_height": "6em"})
        self.server_log = widgets.Output(layout={"border": "1px solid #ccc", "min_height": "6em"})
        self.send_button.on_click(lambda _: self.send())
        self.close_button.on_click(lambda _: self.close_connection())
        self.widget = widgets.VBox([
            widgets.HBox([self.message, self.send_button, self.close_button]),
            widgets.HBox([
                widgets.VBox([widgets.HTML("<b>client</b>"), self.transcript],
                             layout={"width": "50%"}),
                widgets.VBox([widgets.HTML("<b>server events</b>"), self.server_log],
                             layout={"width": "50%"}),
            ]),
        ])
        super().__init__(name)  # claims the name: a console of that name stops first

    def open(self):
        if self._own_server:
            self.server = TCPEchoServer(name=f"{self.name}-echo")

    def _say(self, line):
        self.transcript.append_stdout(line + "\n")

    def _show_server_log(self):
        _replace_text(self.server_log, repr(self.server.events))

    def send(self, text=None):
        """Send ``text`` (default: what is typed) and return the reply (bytes)."""
        text = self.message.value if text is None else text
        if self.sock is None:
            self.sock = socket.create_connection(self.server.address, timeout=REPLY_TIMEOUT)
            self._say("(connected)")
        data = text.encode("utf-8")
        self.sock.sendall(data)
        self._say(f"sent     {data!r}")
        reply = read_reply(self.sock)
        if reply is None:
            self._say(f"received nothing within {REPLY_TIMEOUT:g} s")
        elif reply == b"":
            self._say("received b'' -- the server closed the connection")
            self._drop_connection()
        else:
            self._say(f"received {reply!r}")
        self._show_server_log()
        return reply

    def _drop_connection(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def close_connection(self):
        """Close the client's connection; the server's log then shows its close."""
        if self.sock is None:
            return
        self._drop_connection()
        self._say("(closed)")
        try:
            self.server.events.wait_for("close", count=len(self.server.events.of_kind("accept")))
        except TimeoutError:
            pass  # a server that keeps the connection open: show the log as it is
        self._show_server_log()

    def close(self):
        """When stopped: close the connection, and the server if the console started it."""
        self._drop_connection()
        if self._own_server and self.server is not None:
            self.server.stop()

    def _repr_mimebundle_(self, **kwargs):
        return _mimebundle(self.widget, "chat console", **kwargs)

    def __repr__(self):
        return f"<ChatConsole {self.name!r}>"


def chat(server=None):
    """A ChatConsole to ``server`` (or to an echo server of its own)."""
    return ChatConsole(server)


# -------------------------------------------------------------- recv() explorer


class RecvExplorer:
    """A message, how many send() calls carry it, a recv() size; the pieces the reader gets."""

    def __init__(self, message="你好, socket!", bufsize=4, sends=1):
        self.message = widgets.Text(value=message, description="message:")
        self.sends = widgets.IntSlider(value=sends, min=1, max=8, description="send() calls:",
                                       style={"description_width": "initial"})
        self.bufsize = widgets.IntSlider(value=bufsize, min=1, max=32, description="recv size:")
        # One line per recv(); a long table scrolls inside the box instead of growing.
        self.result = widgets.Output(layout={"border": "1px solid #ccc",
                                             "max_height": "24em", "overflow": "auto"})
        for control in (self.message, self.sends, self.bufsize):
            control.observe(lambda _: self.update(), names="value")
        self.widget = widgets.VBox([self.message, self.sends, self.bufsize, self.result])
        self.update()

    def describe(self):
        """The text the explorer shows: what was sent, and what each recv() got."""
        data = self.message.value.encode("utf-8")
        sent = split_evenly(data, self.sends.value)
        chunks = chunks_received(data, self.bufsize.value, self.sends.value)
        if len(sent) == 1:
            how = "one sendall()"
        else:
            how = f"{len(sent)} send() calls ({' + '.join(str(len(p)) for p in sent)})"
        lines = [f"{len(data)} bytes sent with {how}; "
                 f"read with recv({self.bufsize.value}): {len(chunks)} "
                 + ("piece" if len(chunks) == 1 else "pieces")]
        if len(sent) > 1:
            lines += [f"send #{number}: {piece!r}" for number, piece in enumerate(sent, 1)]
        return "\n".join(lines) + "\n" + describe_chunks(chunks), chunks

    def update(self):
        text, chunks = self.describe()
        _replace_text(self.result, text)
        return chunks

    def __repr__(self):
        return self.describe()[0]

    def _repr_mimebundle_(self, **kwargs):
        return _mimebundle(self.widget, "recv() explorer", **kwargs)


# -------------------------------------------------------------- UDP explorer


class UDPExplorer:
    """Sliders for a bad network; a button that sends datagrams through it."""

    def __init__(self, count=20, loss=0.2, duplicate=0.05, reorder=0.1, seed=1):
        slider = {"min": 0.0, "max": 0.5, "step": 0.05, "readout_format": ".2f"}
        self.count = widgets.IntSlider(value=count, min=1, max=50, description="datagrams:")
        self.loss = widgets.FloatSlider(value=loss, description="loss:", **slider)
        self.duplicate = widgets.FloatSlider(value=duplicate, description="duplicate:", **slider)
        self.reorder = widgets.FloatSlider(value=reorder, description="reorder:", **slider)
        self.seed = widgets.IntText(value=seed, description="seed:")
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.result = widgets.Output(layout={"border": "1px solid #ccc", "min_height": "4em"})
        self.send_button.on_click(lambda _: self.run())
        self.widget = widgets.VBox([
            widgets.HBox([self.count, self.seed]),
            widgets.HBox([self.loss, self.duplicate, self.reorder]),
            self.send_button, self.result,
        ])

    def run(self):
        if self.loss.value + self.duplicate.value + self.reorder.value > 1:
            _replace_text(self.result, "loss + duplicate + reorder may not exceed 1")
            return None
        replies = udp_experiment(self.count.value, self.loss.value, self.duplicate.value,
                                 self.reorder.value, self.seed.value)
        _replace_text(self.result, describe_replies(self.count.value, replies))
        return replies

    def _repr_mimebundle_(self, **kwargs):
        return _mimebundle(self.widget, "UDP explorer", **kwargs)
