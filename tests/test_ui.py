"""Widget logic, driven as a learner would: set .value, call .click(); real sockets."""

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


def test_socket_chunks_follow_the_recv_size():
    data = "你好, socket!".encode()
    assert len(data) == 15  # two 3-byte characters and 9 ASCII ones
    chunks = ui.chunks_received(data, 4)
    assert chunks == [data[0:4], data[4:8], data[8:12], data[12:15]]
    assert ui.chunks_received(data, 64) == [data]


def test_describe_chunks_shows_a_split_character_one_line_per_recv():
    text = ui.describe_chunks(ui.chunks_received("你好".encode(), 4))
    header, first, second = text.splitlines()  # a header, then one line per recv()
    assert header.split("  ")[0] == "recv" and "piece.decode()" in header
    assert first.startswith(r"#1    b'\xe4\xbd\xa0\xe5'")
    assert "UnicodeDecodeError: unexpected end of data" in first
    assert first.endswith("'你' + 1 byte kept")
    assert "UnicodeDecodeError: invalid start byte" in second
    assert second.endswith("'好'")
    # the columns line up: each starts at the same place on every line
    assert header.index("piece.decode()") == first.index("UnicodeDecodeError")


def test_describe_chunks_columns_line_up_with_chinese_text():
    lines = ui.describe_chunks([b"ab", "你好".encode(), b"c"]).splitlines()
    # '你好' takes 4 columns on screen: the last column starts at the same place
    assert lines[2].endswith("'你好'") and lines[1].endswith("'ab'")
    assert ui._width(lines[1][:-len("'ab'")]) == ui._width(lines[2][:-len("'你好'")])
    assert ui._width(lines[3][:-len("'c'")]) == ui._width(lines[1][:-len("'ab'")])


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


def test_udp_experiment_is_the_same_for_the_same_seed():
    first = ui.udp_experiment(30, loss=0.2, duplicate=0.1, reorder=0.1, seed=7)
    again = ui.udp_experiment(30, loss=0.2, duplicate=0.1, reorder=0.1, seed=7)
    assert first == again
    assert ui.udp_experiment(30, loss=0.2, duplicate=0.1, reorder=0.1, seed=8) != first
    assert set(first) <= set(range(1, 31))
    assert socklab.running() == []


def test_udp_experiment_without_impairments_returns_everything_in_order():
    assert ui.udp_experiment(25, loss=0, duplicate=0, reorder=0) == list(range(1, 26))


def test_describe_replies_names_lost_duplicated_and_late():
    text = ui.describe_replies(5, [1, 3, 2, 2, 5])
    assert text.splitlines()[2] == "lost: [4]   twice: [2]   out of order: [2, 2]"


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
