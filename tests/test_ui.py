"""Widget logic, driven as a learner would: set .value, call .click(); real sockets.

The experiments behind the widgets are tested in tests/test_explore.py.
"""

import socklab
from socklab import ui


def shown(output):
    """The text an Output widget shows (what append_stdout put there)."""
    return "".join(item["text"] for item in output.outputs if item["output_type"] == "stream")


def test_chat_console_sends_and_shows_both_ends():
    console = ui.chat()
    console.message.value = "hello, server"
    console.send_button.click()
    assert "sent     b'hello, server'" in shown(console.transcript)
    assert "received b'hello, server'" in shown(console.transcript)
    assert "conn 1   recv 13 bytes" in shown(console.server_log)
    console.close_button.click()
    assert "conn 1   recv 0 bytes (peer closed)" in shown(console.server_log)
    assert "(closed)" in shown(console.transcript)
    assert socklab.stop_all() == 2  # the console and its own echo server


def test_chat_console_with_a_given_server_leaves_it_running():
    def shout(conn):
        while data := conn.recv(1024):
            conn.sendall(data.upper())

    srv = socklab.serve(shout, name="shout")
    console = ui.ChatConsole(srv)
    assert console.send("abc") == b"ABC"
    console.stop()
    assert srv.alive
    srv.stop()


def test_chat_console_reports_a_server_that_closes():
    def rude(conn):
        conn.recv(100)

    srv = socklab.serve(rude, name="rude")
    console = ui.ChatConsole(srv)
    assert console.send("hi") == b""
    assert "the server closed the connection" in shown(console.transcript)
    assert console.sock is None
    socklab.stop_all()


def test_recv_explorer_updates_when_the_slider_moves():
    explorer = ui.RecvExplorer("你好", bufsize=4)
    assert "read with recv(4): 2 pieces" in shown(explorer.result)
    explorer.bufsize.value = 1
    assert "read with recv(1): 6 pieces" in shown(explorer.result)
    assert len(shown(explorer.result).splitlines()) == 1 + 1 + 6  # one line per recv()
    explorer.message.value = "abc"
    assert "3 bytes sent" in shown(explorer.result)
    explorer.bufsize.value = 32
    assert "read with recv(32): 1 piece\n" in shown(explorer.result)


def test_recv_explorer_box_scrolls_instead_of_growing():
    layout = ui.RecvExplorer("abc").result.layout
    assert layout.max_height and layout.overflow == "auto"


def test_udp_explorer_button():
    explorer = ui.UDPExplorer(count=10, loss=0.0, duplicate=0.0, reorder=0.0)
    explorer.send_button.click()
    assert "received 1 2 3 4 5 6 7 8 9 10" in shown(explorer.result)
    explorer.loss.value = 0.5
    explorer.duplicate.value = 0.5
    explorer.reorder.value = 0.5
    explorer.send_button.click()
    assert "may not exceed 1" in shown(explorer.result)


def test_widgets_have_a_readable_text_form():
    console = ui.chat()
    bundle = console._repr_mimebundle_()
    assert bundle["text/plain"] == "[chat console: run this cell to use it]"
    assert "application/vnd.jupyter.widget-view+json" in bundle
    socklab.stop_all()


def test_a_lessons_own_widget_can_have_a_readable_text_form():
    import ipywidgets as widgets

    bundle = ui.labelled(widgets.VBox([widgets.Text()]), "my explorer")._repr_mimebundle_()
    assert bundle["text/plain"] == "[my explorer: run this cell to use it]"
