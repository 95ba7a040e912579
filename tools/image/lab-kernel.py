"""Run a cell in a kernel that the container's JupyterLab starts: for containers.

    python tools/image/lab-kernel.py TOKEN

make test-image runs it inside the container (docker exec), against the lab the
image started on port 8888.  It asks the lab for a "Python 3 (socklab)" kernel,
as opening a lesson does, runs one cell through the lab's websocket -- a TCP
echo through socklab -- and shuts the kernel down.  It prints what the cell
printed: the echoed word and the kernel's network ("private" or "shared: why").
Exit status 1 if the cell raised an error or did not echo.
"""

import json
import sys
import time
import urllib.request
import uuid

import websocket   # websocket-client: Jupyter Server depends on it

LAB = "127.0.0.1:8888"
TIMEOUT = 120   # seconds: a kernel's start and one cell, on a busy machine
CELL = """import os, socket, socklab
server = socklab.TCPEchoServer()
with socket.create_connection(server.address, timeout=5) as sock:
    sock.sendall(b"hello")
    print(sock.recv(5).decode(), os.environ.get("SOCKLAB_NETWORK"))
socklab.stop_all();"""


def api(token, method, path, body=None):
    request = urllib.request.Request(
        f"http://{LAB}/api/{path}", json.dumps(body).encode() if body else None,
        {"Authorization": f"token {token}", "Content-Type": "application/json"},
        method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or "null")


def run_cell(channel, code):
    """Send an execute_request; (stdout, errors) collected until the kernel is idle."""
    msg_id = uuid.uuid4().hex
    channel.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                   "username": "learner", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    stdout, errors = "", []
    deadline = time.monotonic() + TIMEOUT
    while True:
        channel.settimeout(max(deadline - time.monotonic(), 0.001))
        msg = json.loads(channel.recv())   # raises a timeout at the deadline
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            stdout += content["text"]
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return stdout, errors


def main(token):
    kernel = api(token, "POST", "kernels", {"name": "socklab"})
    try:
        channel = websocket.create_connection(
            f"ws://{LAB}/api/kernels/{kernel['id']}/channels",
            header=[f"Authorization: token {token}"], timeout=TIMEOUT)
        try:
            stdout, errors = run_cell(channel, CELL)
        finally:
            channel.close()
    finally:
        api(token, "DELETE", f"kernels/{kernel['id']}")
    print(stdout.strip())
    for error in errors:
        print(error)
    return 0 if stdout.startswith("hello ") and not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
