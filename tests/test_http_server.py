"""Lesson 13's web servers, in C and in Python, against real clients and real attacks.

The servers are the lesson's own: their source is read from the notebook (English
edition) -- the `%%c http_c` cell, built here with AddressSanitizer and UBSan, and
the Python cells that define serve_http() and its helpers -- and they serve the
folder the lesson's setup cell makes (a page, its PNG image, a text file; a secret
beside the folder).  Each test starts them afresh.

* Real clients: Python's http.client (keep-alive on one connection, HEAD, 404,
  405 with Allow), curl (a subprocess), and headless Chromium (Debian's, driven
  by Playwright, as tests/test_browser.py does) loading the page: the image
  must be drawn (naturalWidth > 0).
* The attacks the lesson shows: path traversal (plain, percent-encoded, through
  a symbolic link inside the folder), a head that never ends, a client sending
  one byte at a time, a thousand connections at once, and (C) no descriptor
  free.  Each is refused, and the server must then still answer an ordinary
  client; the C server must be alive with no sanitizer report.

Only a missing tool skips a test (no gcc, curl, chromium or Playwright); CI has
them all.
"""

import contextlib
import functools
import http.client
import os
import pathlib
import resource
import select
import shutil
import socket
import subprocess
import time

import nbformat
import pytest

import socklab
from socklab import c
from socklab.checks import adversary
from socklab.checks.c_answer import Answer
from socklab.checks.lesson13 import Broken, read_response

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "13-http-server.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [  # as tests/test_browser.py: no calls to Google's servers
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
CROWD = 1000
TIMEOUT = 5.0

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def lesson_cells():
    return [cell for cell in nbformat.read(LESSON, as_version=4).cells
            if cell.cell_type == "code"]


def python_server_code():
    """The lesson's setup cell and the cells that define serve_http(), as one program.

    IPython's `%load_ext` line is left out, and each cell is cut before the line
    that starts the lesson's own server.
    """
    parts = []
    for cell in lesson_cells():
        source = cell.source
        if "WORK = tempfile.TemporaryDirectory" in source:
            parts.append(source.replace("%load_ext socklab", ""))
        elif any(f"def {name}(" in source for name in
                 ("recv_until", "parse_head", "find_file", "response_head", "serve_http")):
            parts.append(source.split("\npy_server = ")[0])
    assert len(parts) == 6, "the lesson's Python server cells were not all found"
    return "\n\n".join(parts)


def c_server_source():
    sources = [cell.source for cell in lesson_cells() if cell.source.startswith("%%c http_c ")]
    assert len(sources) == 1
    return sources[0].partition("\n")[2]


@pytest.fixture(scope="module")
def lesson():
    """The lesson's namespace: its folder (SITE) and serve_http(); printing quiet."""
    namespace = {}
    with contextlib.redirect_stdout(None):
        exec(compile(python_server_code(), str(LESSON), "exec"), namespace)
    site = namespace["SITE"]
    # A symbolic link inside the folder that points outside it: resolving the
    # path, not reading its text, is what refuses it.
    (site / "link.txt").symlink_to(site.parent / "secret.txt")
    yield namespace
    namespace["WORK"].cleanup()


@pytest.fixture(scope="module")
def c_program():
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    c.compile(c_server_source(), "tested_13_http_c", sanitize=True)
    return "tested_13_http_c"


@pytest.fixture(params=["python", "c"])
def server(request, lesson):
    """(kind, address, answer): the lesson's server of that kind, running."""
    if request.param == "python":
        srv = socklab.serve(functools.partial(lesson["serve_http"], folder=lesson["SITE"]),
                            name="tested-http-py")
        try:
            yield "python", srv.address, None
        finally:
            srv.stop()  # raises what the server's threads raised, if anything
    else:
        name = request.getfixturevalue("c_program")
        with Answer(name, c.start(name, [str(lesson["SITE"])], ready_timeout=10)) as answer:
            yield "c", answer.address, answer
            assert answer.death() is None
            assert answer.program.sanitizer_report() is None


def get(address, target, method="GET"):
    """(status, headers, body) from a fresh http.client connection."""
    conn = http.client.HTTPConnection(*address, timeout=TIMEOUT)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def assert_still_serving(address, lesson):
    status, headers, body = get(address, "/notes.txt")
    assert (status, body) == (200, (lesson["SITE"] / "notes.txt").read_bytes())


# -- real clients -----------------------------------------------------------------

def test_http_client_fetches_page_image_and_text_on_one_connection(server, lesson):
    _, address, _ = server
    site = lesson["SITE"]
    conn = http.client.HTTPConnection(*address, timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        first = conn.sock
        seen = []
        for method, target in [("GET", "/"), ("GET", "/dot.png"), ("GET", "/notes.txt"),
                               ("HEAD", "/dot.png"), ("GET", "/missing"),
                               ("DELETE", "/notes.txt"), ("GET", "/index.html")]:
            if seen:
                conn.request(method, target)
            response = conn.getresponse()
            seen.append((method, target, response.status, response.getheader("Content-Type"),
                         response.getheader("Allow"), response.read()))
        assert conn.sock is first, "keep-alive: every request on the first connection"
    finally:
        conn.close()
    png = (site / "dot.png").read_bytes()
    assert seen[0][2:4] == (200, "text/html; charset=utf-8")
    assert seen[0][5] == (site / "index.html").read_bytes()
    assert seen[1][2:4] == (200, "image/png") and seen[1][5] == png
    assert seen[2][2:4] == (200, "text/plain; charset=utf-8")
    assert seen[2][5] == b"notes, served by HTTP.\n"
    assert seen[3][2] == 200 and seen[3][5] == b""  # HEAD: no body
    assert seen[4][2] == 404
    assert seen[5][2] == 405 and seen[5][4] == "GET, HEAD"
    assert seen[6][5] == seen[0][5]


def test_head_states_the_length_get_sends(server, lesson):
    _, address, _ = server
    status, headers, body = get(address, "/dot.png", "HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == (lesson["SITE"] / "dot.png").stat().st_size


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_fetches_two_files_on_one_connection(server, lesson, tmp_path):
    _, address, _ = server
    base = f"http://127.0.0.1:{address[1]}"
    done = subprocess.run(
        ["curl", "-sS", "--fail", "-o", str(tmp_path / "one"), f"{base}/dot.png",
         "-o", str(tmp_path / "two"), f"{base}/notes.txt",
         "-w", "%{http_code} %{content_type} %{num_connects}\n"],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == "200 image/png 1"
    assert lines[1] == "200 text/plain; charset=utf-8 0"  # 0 new connections: reused
    assert (tmp_path / "one").read_bytes() == (lesson["SITE"] / "dot.png").read_bytes()
    assert (tmp_path / "two").read_bytes() == (lesson["SITE"] / "notes.txt").read_bytes()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_path_as_is_traversal_is_refused(server, lesson):
    _, address, _ = server
    done = subprocess.run(
        ["curl", "-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
         f"http://127.0.0.1:{address[1]}/../secret.txt"],
        capture_output=True, text=True, timeout=30)
    assert done.stdout == "404", done.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_chromium_renders_the_page_and_its_image(server, lesson):
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is not installed")
    _, address, _ = server
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            response = page.goto(f"http://127.0.0.1:{address[1]}/", timeout=60_000)
            assert response.status == 200
            assert page.title() == "socklab"
            page.wait_for_function(
                "() => document.images.length === 1 && document.images[0].complete",
                timeout=60_000)
            assert page.evaluate("document.images[0].naturalWidth") == 64
            assert page.evaluate("document.images[0].naturalHeight") == 64
            assert page.inner_text("h1") == "Served by a server from scratch"
            page.click("text=notes")  # a link: the browser asks again
            page.wait_for_url("**/notes.txt", timeout=60_000)
            assert page.inner_text("body").strip() == "notes, served by HTTP."
        finally:
            browser.close()
    assert_still_serving(address, lesson)


# -- attacks --------------------------------------------------------------------------

TRAVERSALS = ["/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
              "/..%2fsecret.txt", "/./../secret.txt", "/../../../../../../etc/passwd",
              "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/link.txt",
              "/dot.png/../../secret.txt"]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_refused(server, lesson, target):
    _, address, _ = server
    status, _, body = get(address, target)
    assert status in (400, 403, 404), f"{target}: {status}"
    assert b"secret" not in body and b"root:" not in body
    assert_still_serving(address, lesson)


def raw(address, data, head_only=False):
    """Send raw bytes; (response, closed afterwards) read with the lesson's reader."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        with contextlib.suppress(ConnectionError):  # it may stop reading early
            sock.sendall(data)
        response = read_response(sock, bytearray(), head_only)
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
        return response, closed


@pytest.mark.parametrize("head, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),  # space before the colon
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"\x00\x01\x02 garbage\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000, 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: a\r\n" * 5000, 431),
])
def test_a_broken_request_is_refused_and_closed(server, lesson, head, status):
    _, address, _ = server
    response, closed = raw(address, head)
    assert response.status == status
    assert response.header("Connection") == "close" and closed
    assert_still_serving(address, lesson)


def test_a_body_is_skipped_and_the_next_request_read(server, lesson):
    _, address, _ = server
    body = b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"  # a request, as a body
    data = (b"POST /notes.txt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body + b"GET /notes.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(data)
        pending = bytearray()
        first = read_response(sock, pending)
        second = read_response(sock, pending)
        assert sock.recv(1) == b"" and pending == b""
    assert first.status == 405 and first.header("Allow") == "GET, HEAD"
    assert second.status == 200 and second.body == b"notes, served by HTTP.\n"


def test_a_client_sending_one_byte_at_a_time_is_cut_off(server, lesson):
    _, address, _ = server
    request = b"GET /notes.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        started = time.monotonic()
        for sent in range(1, len(request) + 1):
            sock.sendall(request[sent - 1:sent])
            readable, _, _ = select.select([sock], [], [], 0.3)
            if readable:
                break
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(4096):
                reply += data
        took = time.monotonic() - started
    assert sent < len(request), "the whole request went through: no deadline"
    assert reply.startswith(b"HTTP/1.1 408 ") or reply == b""
    assert took < 10
    assert_still_serving(address, lesson)


def test_an_idle_connection_is_closed_after_the_deadline(server, lesson):
    _, address, _ = server
    with socket.create_connection(address, timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed, with nothing said: no request had begun
        assert time.monotonic() - started < 10


@pytest.fixture
def many_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * CROWD + 300  # the crowd, the Python server's own sockets, more
    if hard < needed:
        pytest.skip(f"this process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_thousand_idle_connections_do_not_stop_an_ordinary_client(
        server, lesson, many_descriptors):
    _, address, _ = server
    crowd = adversary.connect_many(address, CROWD)
    try:
        assert_still_serving(address, lesson)
        # ... and each of them is still a client the server will serve
        crowd[0].sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        crowd[0].settimeout(TIMEOUT)
        try:
            assert read_response(crowd[0], bytearray()).status == 200
        except Broken:
            pass  # its 2 s deadline may have passed while the others connected
    finally:
        adversary.close_all(crowd)
    assert_still_serving(address, lesson)


def test_the_c_server_survives_running_out_of_descriptors(lesson, c_program):
    with Answer(c_program, c.start(c_program, [str(lesson["SITE"])], ready_timeout=10)) as answer:
        with answer.out_of_descriptors() as lowered:
            if not lowered:
                pytest.skip("the limit of another process cannot be changed here")
            client = socket.create_connection(answer.address, timeout=TIMEOUT)
            client.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            answer.program.wait_for_output("Too many open files")
            before = answer.runnable_seconds()
            # a measurement window: the server must wait, not spin, meanwhile
            time.sleep(1.0)
            assert answer.runnable_seconds() - before < 0.5, "it spins on EMFILE"
            assert answer.death() is None
        with client:
            assert read_response(client, bytearray()).status == 200
        assert answer.death() is None
        assert answer.program.sanitizer_report() is None
