"""Diagrams: the rows and states they are drawn from, then the figures themselves."""

import shutil

import pytest

from socklab import capture, viz

ECHO = """
import socket, threading
server = socket.create_server(("127.0.0.1", 0))
def serve():
    conn, _ = server.accept()
    with conn:
        conn.sendall(conn.recv(1024))
threading.Thread(target=serve).start()
with socket.create_connection(server.getsockname()) as client:
    client.sendall(b"hello")
    client.recv(1024)
"""

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
needs_root = pytest.mark.skipif(
    not capture.can_capture(), reason="capturing packets needs root or CAP_NET_RAW"
)


def test_tcp_states_of_the_recorded_handshake():
    states = viz.tcp_states(capture.load_recorded())
    # the recording has the four-segment close: ACK and FIN of the server apart
    assert [state for _, state in states["client"]] == [
        "CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert [state for _, state in states["server"]] == [
        "LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_state_machine_steps():
    step = viz._next_state
    assert step("FIN-WAIT-1", False, {"FIN", "ACK"}, acks_our_fin=False) == "CLOSING"
    assert step("CLOSING", False, {"ACK"}, acks_our_fin=True) == "TIME-WAIT"
    assert step("FIN-WAIT-1", False, {"ACK"}, acks_our_fin=False) == "FIN-WAIT-1"  # data ACK
    assert step("FIN-WAIT-1", False, {"ACK"}, acks_our_fin=True) == "FIN-WAIT-2"
    assert step("ESTABLISHED", True, {"RST", "ACK"}, acks_our_fin=False) == "CLOSED"


@needs_strace
@needs_root
def test_sequence_rows_put_calls_and_segments_on_one_timeline():
    trace, cap = viz.watch(ECHO)
    rows = viz.sequence_rows(trace, cap)
    calls = [(row.lane, row.label) for row in rows if row.kind == "call"]
    segments = [(row.lane, row.label) for row in rows if row.kind == "segment"]
    assert ("client", "connect() = 0") in calls
    assert ("server", "accept4() = 4") in calls
    assert ("server", "listen() = 0") in calls
    assert segments[:3] == [("client", "SYN"), ("server", "SYN,ACK"), ("client", "ACK")]
    assert ("client", "PSH,ACK 5 B") in segments and ("server", "PSH,ACK 5 B") in segments
    labels = [row.label for row in rows]
    # connect() returns only after the SYN went out and the SYN-ACK came back.
    assert labels.index("SYN") < labels.index("SYN,ACK") < labels.index("connect() = 0")
    # The server's recv() returns after the client's data crossed the wire.
    assert labels.index("PSH,ACK 5 B") < labels.index("recvfrom() = 5 B")
    figure = viz.sequence_diagram(trace, cap, title="echo")
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"client", "server", "SYN", "connect() = 0"} <= texts
    # The same rows as text, for a reader who cannot see the picture.
    table = viz.sequence_table(trace, cap).splitlines()
    assert len(table) == len(rows)
    assert table[labels.index("connect() = 0")].startswith("client  connect() = 0")
    assert table[labels.index("SYN")].strip() == "client > server  SYN"
    assert table[labels.index("listen() = 0")].strip() == "server  listen() = 0"


@needs_strace
def test_a_recorded_capture_is_not_mixed_into_a_live_trace():
    trace, _ = viz.watch(ECHO)
    rows = viz.sequence_rows(trace, capture.load_recorded())
    assert {row.kind for row in rows} == {"call"}


def test_state_chart_labels_each_segment():
    figure = viz.state_chart(capture.load_recorded())
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert ticks[:3] == ["c→s SYN", "s→c SYN,ACK", "c→s ACK"]
    assert len(ticks) == len(capture.load_recorded()) == 11


def test_segment_rows_of_a_capture_alone():
    """No trace: one arrow per segment, with relative numbers; recorded captures too."""
    recorded = capture.load_recorded()
    rows = viz.sequence_rows(None, recorded)
    assert rows == viz.segment_rows(recorded)
    assert {row.kind for row in rows} == {"segment"}
    assert [(row.lane, row.label) for row in rows[:4]] == [
        ("client", "SYN  seq=0"),
        ("server", "SYN,ACK  seq=0 ack=1"),
        ("client", "ACK  seq=1 ack=1"),
        ("client", "PSH,ACK 5 B  seq=1 ack=1"),
    ]
    assert rows[-1] == viz.Row("segment", "client", "ACK  seq=7 ack=7", recorded[-1].time)
    assert viz.sequence_rows(None, None) == []


def test_sequence_diagram_of_a_capture_alone():
    recorded = capture.load_recorded()
    figure = viz.sequence_diagram(None, recorded, title="recorded")
    # Arrows are annotations without text; keep the words.
    texts = [text.get_text() for text in figure.axes[0].texts if text.get_text()]
    assert texts[:2] == ["client", "server"]
    assert texts[2:] == [row.label for row in viz.segment_rows(recorded)]


def recorded_with(segments):
    return capture.RecordedCapture(segments, "2026-01-01", "Linux")


def a_datagram_before(segments):
    """A UDP datagram (another conversation, another sender) put before ``segments``."""
    first = segments[0]
    datagram = capture.Segment(first.time - 0.001, "udp", ("127.0.0.1", 40000),
                               ("127.0.0.1", 53), "", None, None, 3, b"abc", 0)
    return [datagram, *segments]


def test_a_udp_datagram_before_the_handshake_changes_no_tcp_state():
    recorded = capture.load_recorded()
    mixed = recorded_with(a_datagram_before(recorded.segments))
    assert viz.tcp_states(mixed) == viz.tcp_states(recorded)
    ticks = [label.get_text() for label in viz.state_chart(mixed).axes[0].get_xticklabels()]
    assert ticks == [label.get_text()
                     for label in viz.state_chart(recorded).axes[0].get_xticklabels()]
    assert [row.lane for row in viz.segment_rows(mixed)][1:] == [
        row.lane for row in viz.segment_rows(recorded)]


def test_lanes_are_the_roles_capture_text_names():
    """Begun after the handshake (no SYN): the side that spoke first is the client."""
    late = recorded_with(capture.load_recorded().segments[3:])  # from the client's data on
    lanes = [row.lane for row in viz.segment_rows(late)]
    assert lanes == capture.roles(late.segments)
    assert lanes[:3] == ["client", "server", "server"]
    assert [line.split(" > ")[0] for line in late.text().splitlines()[1:]] == lanes


def test_a_capture_and_its_states_print_as_tables():
    """Issue 15: the data of a diagram, readable without sight."""
    recorded = capture.load_recorded()
    lines = viz.sequence_table(None, recorded).splitlines()
    assert lines[:3] == ["client > server  SYN  seq=0", "server > client  SYN,ACK  seq=0 ack=1",
                         "client > server  ACK  seq=1 ack=1"]
    assert len(lines) == len(recorded)
    states = viz.state_table(recorded).splitlines()
    assert states[0].split() == ["#", "segment", "client", "server"]
    assert states[1].split() == ["(before)", "CLOSED", "LISTEN"]
    assert states[4].split() == ["3", "c>s", "ACK", "ESTABLISHED", "ESTABLISHED"]
    assert states[-1].split() == ["11", "c>s", "ACK", "TIME-WAIT", "CLOSED"]
    assert len(states) == 2 + len(recorded)
