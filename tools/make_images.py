"""Draw the course's figures into images/ (SVG), the same bytes every time.

    python tools/make_images.py            # (re)write every figure
    python tools/make_images.py --check    # exit 1 if a figure differs from this script's

The call-flow diagrams the seed blog post refers to but never shows: which calls a
TCP (or UDP) server and client make, in which order, and where they wait for each
other.  tests/test_images.py runs --check, so a figure in images/ is always what
this script draws.  SVG is written with a fixed hash salt and no date, so that
unchanged figures are unchanged files.
"""

import argparse
import io
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

IMAGES = pathlib.Path(__file__).resolve().parent.parent / "images"
SERVER, CLIENT, WIRE = "#d62728", "#1f77b4", "#555555"
plt.rcParams["svg.hashsalt"] = "socklab"  # stable ids inside the SVG


def _box(axes, x, y, text, colour, note="", kernel=False):
    # A kernel's part (the accept queue) is drawn grey and dashed: no call makes it.
    axes.text(x, y, text, ha="center", va="center", family="monospace", fontsize=10,
              color=WIRE if kernel else "black",
              bbox={"boxstyle": "round,pad=0.35", "fc": "#f2f2f2" if kernel else "white",
                    "ec": WIRE if kernel else colour, "lw": 1.5, "ls": "--" if kernel else "-"})
    if note:
        axes.text(x + (0.62 if x > 0.5 else -0.62), y, note, ha="left" if x > 0.5 else "right",
                  va="center", fontsize=8, color="#444444", style="italic")


def _down(axes, x, y_from, y_to, colour):
    # y grows downwards here: leave each box at its bottom, enter the next at its top
    axes.annotate("", xy=(x, y_to - 0.3), xytext=(x, y_from + 0.3),
                  arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})


def _across(axes, x_from, y_from, x_to, y_to, label):
    axes.annotate("", xy=(x_to, y_to), xytext=(x_from, y_from),
                  arrowprops={"arrowstyle": "->", "color": WIRE, "lw": 1.0, "ls": "--"})
    axes.text((x_from + x_to) / 2, (y_from + y_to) / 2 - 0.15, label, ha="center", va="bottom",
              fontsize=8.5, color=WIRE)


def _flow(title, server_steps, client_steps, crossings, height):
    figure, axes = plt.subplots(figsize=(7.6, 0.62 * height + 0.8))
    for x, name, colour in ((1.9, "server", SERVER), (0.1, "client", CLIENT)):
        axes.text(x, -0.9, name, ha="center", fontsize=12, fontweight="bold", color=colour)
    for x, steps, colour in ((1.9, server_steps, SERVER), (0.1, client_steps, CLIENT)):
        for (y, text, note, *kernel), following in zip(steps, steps[1:] + [None]):
            _box(axes, x, y, text, colour, note, kernel=bool(kernel))
            if following is not None:
                _down(axes, x, y, following[0], colour)
    for (x_from, y_from, x_to, y_to, label) in crossings:
        _across(axes, x_from, y_from, x_to, y_to, label)
    axes.set_xlim(-1.5, 3.5)
    axes.set_ylim(height, -1.3)
    axes.axis("off")
    axes.set_title(title, fontsize=12)
    figure.tight_layout()
    return figure


def tcp_call_flow():
    # The handshake ends in the server kernel's accept queue, not in accept():
    # connect() returns once it is done, and accept() only takes the finished
    # connection out of the queue, later (lesson 03 shows both live).
    server = [
        (0, "socket()", ""), (1, "bind()", "127.0.0.1, port"), (2, "listen()", "backlog"),
        (3, "accept queue", "the kernel ends handshakes here", True),
        (4.2, "accept()", "takes one; waits if empty"), (5.4, "recv()", "waits for data"),
        (6.4, "send()", ""), (8.4, "recv() = 0", "the client closed"), (9.4, "close()", ""),
    ]
    client = [
        (0, "socket()", ""), (3, "connect()", "returns after the handshake"),
        (4.8, "send()", ""), (6.8, "recv()", ""), (7.8, "close()", "sends FIN"),
    ]
    crossings = [
        (0.55, 3, 1.3, 3, "handshake"),
        (0.5, 4.8, 1.5, 5.4, "request"),
        (1.5, 6.4, 0.5, 6.8, "reply"),
        (0.5, 7.8, 1.45, 8.4, "end of stream"),
    ]
    return _flow("TCP: the calls of a server and a client", server, client, crossings, 10)


def udp_call_flow():
    server = [(0, "socket()", ""), (1, "bind()", "127.0.0.1, port"),
              (3, "recvfrom()", "waits; returns data and sender"), (4.4, "sendto()", "to that sender")]
    client = [(0, "socket()", ""), (2.6, "sendto()", "no connection"),
              (4.8, "recvfrom()", "may wait forever: use a timeout"), (6, "close()", "")]
    crossings = [(0.5, 2.6, 1.45, 3, "datagram"), (1.45, 4.4, 0.55, 4.8, "datagram")]
    return _flow("UDP: no listen(), no accept(), no connection", server, client, crossings, 6.6)


FIGURES = {
    "03-tcp-call-flow.svg": tcp_call_flow,
    "07-udp-call-flow.svg": udp_call_flow,
}


def render(draw):
    buffer = io.BytesIO()
    figure = draw()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    different = []
    IMAGES.mkdir(exist_ok=True)
    for name, draw in FIGURES.items():
        path, drawn = IMAGES / name, render(draw)
        if args.check:
            if not path.exists() or path.read_bytes() != drawn:
                different.append(name)
        elif not path.exists() or path.read_bytes() != drawn:
            path.write_bytes(drawn)
            print(f"wrote images/{name}")
    for name in different:
        print(f"images/{name} is not what tools/make_images.py draws: run it and commit")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
