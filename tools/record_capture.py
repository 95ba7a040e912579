"""Record the loopback capture the lessons show where live capture is impossible.

    sudo .venv/bin/python tools/record_capture.py        # writes socklab/data/recorded_handshake.json

A learner who is not root (and whose Python lacks CAP_NET_RAW) cannot open an
AF_PACKET socket, so lesson 11 shows them socklab.capture.load_recorded()
instead.  That recording must be a real capture, never one written by hand: this
script runs a socklab.TCPEchoServer and a client on 127.0.0.1 under
socklab.capture.Capture -- connect, send "hello", read the echo, close -- checks
that the capture holds the whole exchange, and writes it.  Run it as root (or
with CAP_NET_RAW) after changing how captures are stored.
"""

import argparse
import json
import pathlib
import socket
import sys

import socklab
from socklab import capture

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT = 5  # seconds, for every socket call
MESSAGE = b"hello"


def handshake():
    """Connect, send MESSAGE, read the echo, close: the exchange lesson 11 shows."""
    with socklab.TCPEchoServer(name="record-capture") as srv:
        with capture.Capture(servers=[srv]) as cap:
            with socket.create_connection(srv.address, timeout=TIMEOUT) as sock:
                sock.sendall(MESSAGE)
                reply = b""
                while len(reply) < len(MESSAGE):
                    part = sock.recv(1024)
                    if not part:
                        break
                    reply += part
            # The server closes after our FIN: wait for that, so its FIN is captured.
            srv.events.wait_for("close", timeout=TIMEOUT)
    if reply != MESSAGE:
        sys.exit(f"the echo server answered {reply!r}, not {MESSAGE!r}")
    return cap


def check(cap):
    """Refuse to store a capture that is not handshake + data + close."""
    flags = cap.flags_sequence()
    opening = [("client > server", "SYN"), ("server > client", "SYN,ACK"),
               ("client > server", "ACK")]
    problems = []
    if flags[:3] != opening:
        problems.append(f"does not start with the three-way handshake: {flags[:3]}")
    if [segment.length for segment in cap.segments if segment.length] != [len(MESSAGE)] * 2:
        problems.append("the data segments are not one 'hello' each way")
    if not {"client > server", "server > client"} <= {d for d, f in flags if "FIN" in f}:
        problems.append("not both sides sent a FIN")
    if cap.dropped:
        problems.append(f"{cap.dropped} frames were lost")
    if problems:
        sys.exit("not writing this capture:\n  " + "\n  ".join(problems) + "\n" + cap.text())


def to_json(data):
    """JSON with one segment per line: a diff of two recordings stays readable."""
    head = {key: value for key, value in data.items() if key != "segments"}
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in head.items()]
    segments = ",\n".join(f"  {json.dumps(segment)}" for segment in data["segments"])
    return "{\n" + "\n".join(lines) + '\n "segments": [\n' + segments + "\n ]\n}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=pathlib.Path,
        default=ROOT / "socklab" / capture.RECORDED_DIR / "recorded_handshake.json",
    )
    args = parser.parse_args()
    try:
        cap = handshake()
    except capture.CaptureNotPermitted as exc:
        sys.exit(str(exc))
    check(cap)
    data = capture.recording(
        cap.segments,
        "TCPEchoServer on 127.0.0.1 and a Python client: connect, send b'hello', "
        "read the echo, close (made by tools/record_capture.py)",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_json(data), encoding="utf-8")
    print(cap.text())
    print(f"wrote {len(cap.segments)} segments to {args.out}")


if __name__ == "__main__":
    main()
