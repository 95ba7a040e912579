"""Diagrams of what happened: a sequence diagram, and TCP states over time.

A sequence diagram has a lane for the client and one for the server, time running
down the page.  System calls (from socklab.trace) are boxes in their lane;
segments on the wire (from socklab.capture) are arrows between the lanes.  Both
come with wall-clock times -- strace's -ttt and the kernel's packet time stamps
use the same clock -- so one timeline holds both: connect() sits just above SYN,
SYN-ACK and ACK; close() just above FIN.

Rows are spaced evenly in time order, not by the microseconds between them: on
loopback a whole conversation takes a fraction of a millisecond, and a true scale
would pile every label on top of the other.

Everything is built in two steps, so tests check the first without pixels:
``sequence_rows()`` makes the list of rows (plain data), ``sequence_diagram()``
draws them with matplotlib.  Likewise ``tcp_states()`` and ``state_chart()``.
The same data prints as text, for a reader who cannot see the picture (a
screen reader, a terminal): ``sequence_table()`` and ``state_table()``.
"""

import textwrap
import typing

import matplotlib.pyplot as plt

from . import capture as capturing
from .explore import watch  # the old home of watch(): lessons 00 and 03 call socklab.viz.watch

__all__ = ["Row", "watch", "segment_rows", "sequence_rows", "sequence_diagram", "sequence_table",
           "tcp_states", "state_chart", "state_table"]

LANES = ("client", "server")
X = {"client": 0.0, "server": 1.0}
COLOURS = {"client": "#1f77b4", "server": "#d62728", "wire": "#555555"}
# The calls worth a box; the rest (getsockname, setsockopt ...) would crowd the lanes.
SHOWN_CALLS = {
    "socket", "bind", "listen", "accept", "accept4", "connect", "send", "sendto",
    "sendmsg", "recv", "recvfrom", "recvmsg", "shutdown", "close",
}


class Row(typing.NamedTuple):
    """One line of a sequence diagram.

    kind  -- "call" (a box in ``lane``) or "segment" (an arrow from ``lane``)
    lane  -- "client" or "server"; for a segment, the side that sent it
    label -- what to write: "connect() = 0", "SYN", "PSH,ACK 5 B"
    time  -- wall-clock seconds, used only to order the rows
    """

    kind: str
    lane: str
    label: str
    time: float


def _first_fd(record):
    head = record.args.split(",", 1)[0].strip()
    return int(head) if head.isdigit() else None


def _lanes_of(trace):
    """For each record, "client", "server" or None: whose socket it works on.

    A socket's role shows only later (listen() or accept(): server; connect():
    client), and one thread may play both parts, so each socket is followed from
    the call that made it.  A descriptor number can be reused after close(): the
    socket is "fd N made by record k".
    """
    made_by, roles, sockets = {}, {}, []  # fd -> record index; socket -> role
    for index, record in enumerate(trace):
        fd = _first_fd(record) if record.kind == "syscall" else None
        socket_id = (fd, made_by.get(fd)) if fd is not None else None
        if record.call == "socket" and record.result is not None and record.result >= 0:
            made_by[record.result] = index
            socket_id = (record.result, index)
        elif record.call in ("listen", "accept", "accept4"):
            roles[socket_id] = "server"
            if record.call != "listen" and record.result is not None and record.result >= 0:
                made_by[record.result] = index
                roles[(record.result, index)] = "server"
        elif record.call == "connect":
            roles[socket_id] = "client"
        sockets.append(socket_id)
    return [roles.get(socket_id) for socket_id in sockets]


def _call_label(record):
    result = "?" if record.result is None else str(record.result)
    if record.call in ("send", "sendto", "sendmsg", "recv", "recvfrom", "recvmsg"):
        if record.result is not None and record.result >= 0:
            result = f"{record.result} B"
    label = f"{record.call}() = {result}"
    return f"{label} {record.errno}" if record.errno else label


def _segment_label(segment):
    """ "SYN", "PSH,ACK 5 B", "UDP 3 B": what an arrow says, without numbers."""
    label = segment.flags if segment.proto == "tcp" else "UDP"
    return f"{label} {segment.length} B" if segment.length else label


def segment_rows(capture):
    """The rows of a diagram of ``capture`` alone: one arrow per segment.

    Any capture will do, live or recorded: the segments keep their own order.
    With no system calls to show, each label has room for the relative sequence
    and acknowledgment numbers, as in ``capture.text()``.
    """
    segments = capture.segments
    numbers = capturing.relative_numbers(segments)
    rows = []
    for segment, sender, (seq, ack) in zip(segments, capturing.roles(segments), numbers):
        label = _segment_label(segment)
        if seq is not None:
            label += f"  seq={seq}" + ("" if ack is None else f" ack={ack}")
        rows.append(Row("segment", sender, label, segment.time))
    return rows


def sequence_rows(trace, capture=None):
    """The rows of a sequence diagram: calls of ``trace``, segments of ``capture``.

    Sockets of the trace become lanes by what they do (connect: client; listen or
    accept: server).  A capture is used only if it was live and both have a wall
    clock; a recorded capture cannot be put on this run's timeline.  With no
    trace (None), the rows are the capture's segments alone (segment_rows).
    """
    if trace is None:
        return [] if capture is None else segment_rows(capture)
    rows = []
    for record, lane in zip(trace, _lanes_of(trace)):
        if lane and record.kind == "syscall" and record.call in SHOWN_CALLS:
            # Placed where the call returned: a blocked accept() or recv() shows up
            # after the segments it waited for, a send() after the data left.
            rows.append(Row("call", lane, _call_label(record), (trace.epoch or 0.0) + record.end))
    if capture is not None and getattr(capture, "live", False) and trace.epoch is not None:
        segments = capture.segments
        for segment, sender in zip(segments, capturing.roles(segments)):
            rows.append(Row("segment", sender, _segment_label(segment),
                            capture.started + segment.time))
    return sorted(rows, key=lambda row: row.time)


def sequence_diagram(trace, capture=None, title=None):
    """Draw the sequence diagram of ``trace`` (and ``capture``); returns the Figure.

    ``sequence_diagram(None, capture)`` draws the segments of a capture alone.
    """
    rows = sequence_rows(trace, capture)
    height = 1.2 + 0.32 * max(len(rows), 1)
    figure, axes = plt.subplots(figsize=(7.5, height))
    for lane in LANES:
        axes.plot([X[lane], X[lane]], [-0.5, len(rows)], color=COLOURS[lane], lw=1.2, alpha=0.4)
        axes.text(X[lane], -0.9, lane, ha="center", va="bottom", fontsize=11,
                  fontweight="bold", color=COLOURS[lane])
    for y, row in enumerate(rows):
        if row.kind == "call":
            toward_middle = "left" if row.lane == "client" else "right"
            offset = -0.03 if row.lane == "client" else 0.03
            axes.text(X[row.lane] + offset, y, row.label, ha="right" if toward_middle == "left"
                      else "left", va="center", fontsize=9, family="monospace",
                      bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": COLOURS[row.lane]})
        else:
            start, end = X[row.lane], X["server" if row.lane == "client" else "client"]
            axes.annotate("", xy=(end, y + 0.35), xytext=(start, y - 0.15),
                          arrowprops={"arrowstyle": "->", "color": COLOURS["wire"], "lw": 1.2})
            # Above the arrow's higher end, so that no arrow crosses a long label.
            axes.text(0.5, y - 0.17, row.label, ha="center", va="bottom", fontsize=8.5,
                      family="monospace", color=COLOURS["wire"])
    axes.set_xlim(-0.9, 1.9)
    axes.set_ylim(len(rows), -1.2)
    axes.axis("off")
    if title:
        axes.set_title(title, fontsize=11)
    figure.tight_layout()
    plt.close(figure)  # the notebook shows the returned figure once, not twice
    return figure


def sequence_table(trace, capture=None):
    """The rows of sequence_diagram(trace, capture) as text, one line each, in order.

    A call is written in its lane's column; a segment as "client > server" (or
    the other way) with its flags, as the arrow would be drawn.
    """
    lines = []
    for row in sequence_rows(trace, capture):
        if row.kind == "call":
            lines.append(f"{row.lane:<8}{row.label}" if row.lane == "client"
                         else f"{'':<8}{'':<26}server  {row.label}")
        else:
            other = "server" if row.lane == "client" else "client"
            lines.append(f"{'':<8}{row.lane} > {other}  {row.label}")
    return textwrap.dedent("\n".join(lines))  # no empty client column without calls


# -- TCP states --------------------------------------------------------------------

STATE_ORDER = ["CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
               "FIN-WAIT-2", "CLOSING", "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK"]


def _next_state(state, sent, flags, acks_our_fin):
    """One step of a simplified RFC 9293 state machine, for one side.

    ``sent``: this side sent the segment (else it received it); ``flags``: a set;
    ``acks_our_fin``: the segment acknowledges the FIN this side sent.
    Enough for a handshake, data, either side closing first, and resets.
    """
    if "RST" in flags:
        return "CLOSED"
    if sent:
        if state == "CLOSED" and flags == {"SYN"}:
            return "SYN-SENT"
        if "FIN" in flags:
            return {"ESTABLISHED": "FIN-WAIT-1", "CLOSE-WAIT": "LAST-ACK"}.get(state, state)
        return state
    if state == "LISTEN" and flags == {"SYN"}:
        return "SYN-RECEIVED"
    if state == "SYN-SENT" and flags == {"SYN", "ACK"}:
        return "ESTABLISHED"
    if state == "SYN-RECEIVED" and "ACK" in flags:
        state = "ESTABLISHED"  # and the same segment may carry a FIN: go on
    if "FIN" in flags:
        if state == "ESTABLISHED":
            return "CLOSE-WAIT"
        if state == "FIN-WAIT-1":
            return "TIME-WAIT" if acks_our_fin else "CLOSING"
        if state == "FIN-WAIT-2":
            return "TIME-WAIT"
        return state
    if acks_our_fin:
        return {"FIN-WAIT-1": "FIN-WAIT-2", "CLOSING": "TIME-WAIT", "LAST-ACK": "CLOSED"}.get(
            state, state)
    return state


def _tcp_segments(capture):
    """[(segment, sender), ...] for the TCP segments of ``capture``, sender by capture.roles().

    The one place where the TCP states leave out UDP: the senders are found
    before the filtering, so each segment keeps its own.
    """
    segments = capture.segments
    return [(segment, sender) for segment, sender in zip(segments, capturing.roles(segments))
            if segment.proto == "tcp"]


def tcp_states(capture):
    """{"client": [(time, state), ...], "server": [...]} from a capture's TCP segments.

    The client starts CLOSED, the server LISTEN; every segment one side sends and
    the other receives moves both along _next_state().  Which side sent a FIN, and
    at what sequence number, decides whether an ACK acknowledges it.
    """
    states = {"client": [(0.0, "CLOSED")], "server": [(0.0, "LISTEN")]}
    fin_end = {}  # side -> the sequence number just after its FIN
    for segment, sender in _tcp_segments(capture):
        flags = set(segment.flags.split(","))
        if "FIN" in flags:
            fin_end[sender] = (segment.seq + segment.length + 1) % 2**32
        for side in LANES:
            sent = side == sender
            acks_our_fin = (not sent and "ACK" in flags and side in fin_end
                            and segment.ack == fin_end[side])
            now = states[side][-1][1]
            new = _next_state(now, sent, flags, acks_our_fin)
            if new != now:
                states[side].append((segment.time, new))
    return states


def state_chart(capture, title="TCP states, segment by segment"):
    """Step chart of each side's TCP state, one step per segment; returns the Figure.

    The x axis counts segments rather than milliseconds: on loopback a whole
    connection lasts well under a millisecond, after whatever came before it.
    """
    tcp = _tcp_segments(capture)
    segments = [segment for segment, _ in tcp]
    states = tcp_states(capture)
    used = [s for s in STATE_ORDER if any(s == state for side in states.values() for _, state in side)]
    level = {state: i for i, state in enumerate(used)}
    step_of = {segment.time: number for number, segment in enumerate(segments, 1)}
    figure, axes = plt.subplots(figsize=(7.5, 0.4 * len(used) + 2.2))
    for side, changes in states.items():
        xs = [0] + [step_of.get(t, 0) for t, _ in changes[1:]] + [len(segments) + 0.5]
        ys = [level[state] for _, state in changes]
        axes.step(xs, ys + ys[-1:], where="post", lw=2, label=side, color=COLOURS[side])
    arrows = {"client": "c→s", "server": "s→c"}
    axes.set_xticks(range(1, len(segments) + 1),
                    [f"{arrows[sender]} {segment.flags}" for segment, sender in tcp],
                    rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(used)), used)
    axes.set_xlim(0, len(segments) + 0.5)
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    axes.set_title(title, fontsize=11)
    figure.tight_layout()
    plt.close(figure)
    return figure


def state_table(capture):
    """The data of state_chart(capture) as text: each TCP segment, then both sides' states.

    One line per segment: its number, who sent it and its flags, and the state
    of the client and of the server once it has arrived.
    """
    tcp = _tcp_segments(capture)
    states = tcp_states(capture)
    lines = [f"{'#':>3}  {'segment':<22}{'client':<14}server",
             f"{'':>3}  {'(before)':<22}{states['client'][0][1]:<14}{states['server'][0][1]}"]
    for number, (segment, sender) in enumerate(tcp, 1):
        after = {side: [state for time, state in changes if time <= segment.time][-1]
                 for side, changes in states.items()}
        arrow = "c>s" if sender == "client" else "s>c"
        lines.append(f"{number:>3}  {arrow + ' ' + segment.flags:<22}"
                     f"{after['client']:<14}{after['server']}")
    return "\n".join(lines)
