"""Every call of the seed blog post appears in a C cell and a Python cell of lessons 01-08.

The seed pairs each Linux C call with Python's; the course promises to show both,
running.  Where C has no single call (sendall, settimeout, makefile ...), the C side
is what C does instead: a send loop, SO_RCVTIMEO, O_NONBLOCK, fdopen().
"""

import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = [ROOT / "notebooks" / "en" / f"{name}.ipynb" for name in (
    "01-sockets-addresses-ports", "02-socket-types", "03-tcp-server", "04-tcp-client",
    "05-echo", "06-errors", "07-udp", "08-options-and-more",
)]

# call -> (what a C cell must contain, what a Python cell must contain)
CALLS = {
    "socket": (r"\bsocket\(", r"socket\.socket\("),
    "bind": (r"\bbind\(", r"\.bind\("),
    "listen": (r"\blisten\(", r"\.listen\("),
    "accept": (r"\baccept4?\(", r"\.accept\("),
    "connect": (r"\bconnect\(", r"\.connect\(|create_connection\("),
    "recv": (r"\brecv\(", r"\.recv\("),
    "send": (r"\bsend\(", r"\.send\("),
    "sendall": (r"send_all\(", r"\.sendall\("),
    "close": (r"\bclose\(", r"\.close\("),
    "sendto": (r"\bsendto\(", r"\.sendto\("),
    "recvfrom": (r"\brecvfrom\(", r"\.recvfrom\("),
    "getpeername": (r"\bgetpeername\(", r"\.getpeername\("),
    "getsockname": (r"\bgetsockname\(", r"\.getsockname\("),
    "setsockopt": (r"\bsetsockopt\(", r"\.setsockopt\("),
    "getsockopt": (r"\bgetsockopt\(", r"\.getsockopt\("),
    "settimeout": (r"SO_RCVTIMEO", r"\.settimeout\("),
    "gettimeout": (r"SO_RCVTIMEO", r"\.gettimeout\("),
    "setblocking": (r"O_NONBLOCK", r"\.setblocking\("),
    "fileno": (r"\bint\s+\w*fd\b", r"\.fileno\("),
    "makefile": (r"\bfdopen\(", r"\.makefile\("),
    "SOCK_STREAM": (r"SOCK_STREAM", r"SOCK_STREAM"),
    "SOCK_DGRAM": (r"SOCK_DGRAM", r"SOCK_DGRAM"),
    "SOCK_RAW": (r"SOCK_RAW", r"SOCK_RAW"),
}


def cells_of(language):
    sources = []
    for path in LESSONS:
        if not path.exists():
            continue
        for cell in nbformat.read(path, as_version=4).cells:
            tags = cell.metadata.get("tags", [])
            if cell.cell_type == "code" and f"lang-{language}" in tags and cell.outputs is not None:
                sources.append(cell.source)
    return "\n".join(sources)


def test_all_lessons_exist():
    missing = [path.name for path in LESSONS if not path.exists()]
    assert missing == []


@pytest.mark.parametrize("call", CALLS)
def test_call_is_shown_in_c_and_python(call):
    c_pattern, py_pattern = CALLS[call]
    assert re.search(c_pattern, cells_of("c")), f"no C cell shows {call}"
    assert re.search(py_pattern, cells_of("py")), f"no Python cell shows {call}"
