"""Record the loopback capture the lessons show where live capture is impossible.

    sudo .venv/bin/python tools/record_capture.py        # writes socklab/data/recorded_handshake.json

A learner who is not root (and whose Python lacks CAP_NET_RAW) cannot open an
AF_PACKET socket, so lesson 11 shows them socklab.capture.load_recorded()
instead.  That recording must be a real capture, never one written by hand: this
script runs an echo server and a client on 127.0.0.1 under
socklab.capture.Capture -- connect, send "hello", read the echo, close, as the
lesson's talk_and_close() does -- checks that the capture holds the whole
exchange and the four-segment close, and writes it.  Run it as root (or
with CAP_NET_RAW) after changing how captures are stored.
"""

import argparse
import json
import pathlib
import socket
import sys
import threading
import time

import socklab
from socklab import capture

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT = 5  # seconds, for every socket call
MESSAGE = b"hello"


TCP_FIN_WAIT2 = 5  # enum in <netinet/tcp.h>


def handshake():
    """Connect, send MESSAGE, read the echo, close: the exchange lesson 11 shows.

    The same as the lesson's talk_and_close(): the server closes only once the
    client's FIN is acknowledged (the client's socket is in FIN-WAIT-2), so the
    close is four segments -- FIN, ACK, FIN, ACK -- and never three.
    """
    may_close = threading.Event()
    reply = bytearray()

    def echo_then_wait(conn):
        while data := conn.recv(1024):  # echo until the client's FIN
            conn.sendall(data)
        may_close.wait(TIMEOUT)  # ... then close only when told

    with socklab.serve(echo_then_wait, name="record-capture") as srv:
        with capture.Capture(servers=[srv]) as cap:
            with socket.create_connection(srv.address, timeout=TIMEOUT) as sock:
                sock.sendall(MESSAGE)
                while len(reply) < len(MESSAGE):
                    part = sock.recv(1024)
                    if not part:
                        break
                    reply += part
                sock.shutdown(socket.SHUT_WR)  # our FIN
                deadline = time.monotonic() + TIMEOUT
                while (sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
                       != TCP_FIN_WAIT2 and time.monotonic() < deadline):
                    time.sleep(0.005)  # until our FIN is acknowledged
                may_close.set()
                sock.recv(1024)  # b'': the server's FIN
            srv.events.wait_for("close", timeout=TIMEOUT)
    if bytes(reply) != MESSAGE:
        sys.exit(f"the echo server answered {bytes(reply)!r}, not {MESSAGE!r}")
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
    closing = [("client > server", "FIN,ACK"), ("server > client", "ACK"),
               ("server > client", "FIN,ACK"), ("client > server", "ACK")]
    if flags[-4:] != closing:
        problems.append(f"does not end with the four-segment close: {flags[-4:]}")
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
        "An echo server on 127.0.0.1 and a Python client: connect, send b'hello', "
        "read the echo, shut down, the server closes once our FIN is acknowledged "
        "(made by tools/record_capture.py)",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_json(data), encoding="utf-8")
    print(cap.text())
    print(f"wrote {len(cap.segments)} segments to {args.out}")


if __name__ == "__main__":
    main()
