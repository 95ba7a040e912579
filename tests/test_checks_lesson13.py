"""Lesson 13's request tester passes the lesson's solution, says "is it written yet?"
for the stub, and names the typical wrong answers in plain words, with a transcript.

The solution is read from the lesson (English edition) with the helpers it uses
(read_request, error_page, ...); each wrong answer is the solution with one typical
mistake put in by a text substitution, after asserting that the substitution applies
(a reworded solution cannot make a test a silent no-op).  Real sockets on loopback.
"""

import contextlib
import pathlib
import socket

import nbformat
import pytest

from socklab.checks import lesson13

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "13-http-server.ipynb"
HELPERS = ("recv_until", "parse_head", "find_file", "response_head")


def lesson_code():
    """(the helpers' source, the solution's source, the stub's source)."""
    cells = [cell.source for cell in nbformat.read(LESSON, as_version=4).cells
             if cell.cell_type == "code"]
    helpers = [source for source in cells if "WORK = tempfile.TemporaryDirectory" in source]
    helpers += [source for source in cells if any(f"def {name}(" in source for name in HELPERS)]
    solution, = [source for source in cells if "def solution_handle(" in source]
    stub, = [source for source in cells if "def handle(conn):" in source]
    cut = "\nsocklab.checks.lesson13"
    return ("\n\n".join(helpers).replace("%load_ext socklab", ""),
            solution.split(cut)[0], stub.split(cut)[0])


HELPER_CODE, SOLUTION, STUB = lesson_code()


@pytest.fixture(scope="module")
def namespace():
    names = {}
    with contextlib.redirect_stdout(None):
        exec(compile(HELPER_CODE, str(LESSON), "exec"), names)
    yield names
    names["WORK"].cleanup()


def handler(namespace, source, name):
    names = dict(namespace)
    exec(compile(source, str(LESSON), "exec"), names)
    return names[name]


def hints(report):
    return "\n".join(hint for _, hint in report.failures)


def test_the_solution_passes(namespace):
    report = lesson13.check_web_handler(handler(namespace, SOLUTION, "solution_handle"))
    assert report.ok, repr(report)
    assert len(report.results) == len(lesson13.CASES)


def test_the_stub_is_not_written_yet(namespace):
    report = lesson13.check_web_handler(handler(namespace, STUB, "handle"))
    assert not report.ok and "is it written yet?" in hints(report)
    assert len(report.results) == 1


MISTAKES = [
    ("no-keep-alive", "        if close:\n            return\n",
     "        return  # one request per connection\n",
     "HTTP/1.1 keeps the connection open by default"),
    ("head-with-a-body", '+ (b"" if method == "HEAD" else content))', "+ content)",
     "A response to HEAD has a head and no body"),
    ("no-deadline", "time.monotonic() + TIMEOUT)", "time.monotonic() + 3600)",
     "was still connected after"),
    ("a-new-buffer-for-each-request", "    buffer = bytearray()\n    while True:\n",
     "    while True:\n        buffer = bytearray()\n",
     "What follows the first request's body is the next request"),
    ("allow-always-get-head", 'raise HTTPError(405, "POST" if target == "/echo" else "GET, HEAD")',
     "raise HTTPError(405)", "Allow should list POST"),
    ("connection-close-ignored", "close = wants_close(version, headers)", "close = False",
     "The client asked: close after this response"),
    ("raises", "            conn.sendall(response)\n", "            conn.send_all(response)\n",
     "The handler raised AttributeError"),
]


@pytest.mark.parametrize("old, new, expected", [m[1:] for m in MISTAKES],
                         ids=[m[0] for m in MISTAKES])
def test_a_typical_wrong_answer_is_named_with_a_transcript(namespace, old, new, expected):
    assert old in SOLUTION, f"the solution no longer has {old!r}"
    wrong = SOLUTION.replace(old, new, 1)
    report = lesson13.check_web_handler(handler(namespace, wrong, "solution_handle"))
    assert not report.ok, repr(report)
    assert expected in hints(report), repr(report)
    assert "It sent:  b'" in hints(report) and "It got:" in hints(report), repr(report)


def one_recv_for_the_body(conn):
    """The classic: the head read right, the body taken from one recv()."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(4096)
        if not data:
            return
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    if b"POST" in head:
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        body = rest if len(rest) >= length else rest + conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 13\r\n\r\nhello, world\n")


def no_content_length(conn):
    """HTTP/1.0 style: the body ends when the connection does -- not in 1.1."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, world\n")


def test_one_recv_for_the_body_is_named(namespace):
    report = lesson13.check_web_handler(one_recv_for_the_body)
    pieces = [hint for description, hint in report.failures if "three pieces" in description]
    assert pieces and "One recv() is not the body" in pieces[0], repr(report)


def test_a_response_without_content_length_is_named(namespace):
    report = lesson13.check_web_handler(no_content_length)
    assert "no Content-Length: the client cannot tell where the body ends" in hints(report)


def test_a_transcript_is_escaped_and_bounded():
    text = lesson13.transcript(b"GET / HTTP/1.1\r\n\x00" + b"a" * 1000, b"\xff\r\n")
    sent, got = text.splitlines()
    assert sent.startswith("It sent:  b'GET / HTTP/1.1\\r\\n\\x00aaa")
    assert sent.endswith("... (1,017 bytes in all)") and len(sent) < 400
    assert got == "It got:   b'\\xff\\r\\n'"
    assert lesson13.transcript(b"x", b"").endswith("It got:   (nothing)")


@pytest.mark.parametrize("length", ["\u00b2", "-1", "1e3", "", "5, 6"])
def test_a_content_length_that_is_not_one_number_is_named_not_raised(length):
    """read_response() judges what a learner's server sends; str.isdigit() would
    take a superscript two (byte 0xB2 read as Latin-1) and int() then raise."""
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode("latin-1")
    server, client = socket.socketpair()
    with server, client:
        server.sendall(head + b"hello")
        with pytest.raises(lesson13.Broken, match="Content-Length"):
            lesson13.read_response(client, bytearray())
