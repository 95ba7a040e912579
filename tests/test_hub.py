"""A real JupyterHub serves the course to five learners, as in a workshop.

The hub is this environment's JupyterHub (PyPI) with its proxy,
configurable-http-proxy (npm, installed by make into tools/hub/node_modules),
set up by tools/hub/jupyterhub_config.py -- the file docs/hub.md tells admins
to use -- on 127.0.0.1 (the proxy's control API on a Unix socket), with a
temporary folder for its state and the learners' homes.  Everything goes
through the proxy, over HTTP and websockets, as a browser would:

- five learners sign in on the hub's login form (a wrong password is refused),
  start their servers and open JupyterLab (the hub's OAuth dance);
- each opens lesson 05 and runs every code cell in order in a socklab kernel
  of their own, all five at once; the outputs must match the stored ones as
  nbval compares them, errors only in raises-exception cells
  (tests/nbcompare.py); the checks the lesson runs are recorded in each
  learner's home, and `python -m socklab class-report` shows the five;
- a learner cannot use another learner's server through the hub, nor reach a
  server another learner starts on 127.0.0.1: each socklab kernel has a
  loopback of its own, where two learners may use the same port.

At the end every server is stopped, the hub shuts down, and no process it
started may be left (each carries a marker in its environment).
"""

import concurrent.futures
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

import nbformat
import pytest

pytest.importorskip("jupyterhub", reason="no JupyterHub: pip install -e '.[test]'")
requests = pytest.importorskip("requests")
websocket = pytest.importorskip("websocket")  # websocket-client, Jupyter Server's
from nbformat import NotebookNode  # noqa: E402

import nbcompare  # noqa: E402  -- tests/nbcompare.py: nbval's rules, stated once

ROOT = pathlib.Path(__file__).resolve().parent.parent
HUB_CONFIG = ROOT / "tools" / "hub" / "jupyterhub_config.py"
PROXY = ROOT / "tools" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
LESSON = "notebooks/en/05-echo.ipynb"
LEARNERS = ["ada", "alan", "grace", "dennis", "radia"]
PASSWORD = "socklab-" + secrets.token_hex(8)
MARKER = "SOCKLAB_HUB_TEST"  # in the environment of every process the hub starts
CELL_TIMEOUT = 120  # five lessons share two cores here: more than nbval's 60 s

pytestmark = [
    pytest.mark.skipif(shutil.which("gcc") is None, reason="lesson 05 needs gcc"),
    pytest.mark.skipif(
        not PROXY.exists(),
        reason="configurable-http-proxy is missing: `make test` installs it with npm "
        "(or run `npm ci` in tools/hub)",
    ),
    pytest.mark.timeout(600),
]


# -- the hub ----------------------------------------------------------------------

def free_ports(count):
    """Ports nobody listens on right now, for the hub's public and API listeners.

    Probing a port, letting it go and having another process bind it later is a
    race, which DESIGN forbids.  It is here because these two listeners cannot
    do without it: configurable-http-proxy takes `--port 0` for "no port given"
    and listens on 8000, and the hub must know its API port before it binds it,
    to tell the proxy and the learners' servers where it is.  (JupyterHub picks
    the learners' servers' ports the same way itself: jupyterhub.utils.random_port.)
    The proxy's control API needs no port: it listens on a Unix socket.

    When another process takes one of these ports in between, the hub's log
    says "address already in use": the hub exits (its API port), or the proxy
    lives on without its public listener, and the port answers for someone
    else.  `start_hub` then stops the hub and starts it once more, on new ports.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def marked_processes(token):
    """Pids of the processes whose environment carries this run's marker."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone already, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def direct_session():
    """An HTTP client that ignores any http_proxy setting: loopback only."""
    session = requests.Session()
    session.trust_env = False
    return session


PORT_TAKEN = "address already in use"  # what the hub and the proxy log, lower-cased


def wait_for_hub(url, server, log, limit=90):
    """"up" once the hub answers at url; "port taken" as soon as the log says a
    port was taken; "failed" if the hub exits or does not answer in time."""
    probe = direct_session()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and server.poll() is None:
        if PORT_TAKEN in log.read_text().lower():
            return "port taken"
        try:
            if probe.get(url + "hub/api/", timeout=5).ok:
                return "up"
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.5)
    return "port taken" if PORT_TAKEN in log.read_text().lower() else "failed"


def stop_hub(server):
    """SIGTERM: the hub stops every learner's server, then its proxy."""
    server.terminate()
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def start_hub(state, config, token):
    """Start the hub and wait for it; returns (process, its url).

    At most two starts: a second, on new ports, only when the first met a port
    another process took after free_ports() saw it free.
    """
    for attempt in (1, 2):
        log = state / f"hub-{attempt}.log"
        public, hub_api = free_ports(2)
        url = f"http://127.0.0.1:{public}/"
        env = {
            **os.environ,
            MARKER: token,  # the hub and its proxy
            "SOCKLAB_HUB_STATE": str(state),
            "SOCKLAB_HUB_PASSWORD": PASSWORD,
            "SOCKLAB_HUB_BIND_URL": url,
            "SOCKLAB_HUB_API_PORT": str(hub_api),
        }
        with open(log, "w") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=state, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        outcome = "failed"
        try:
            outcome = wait_for_hub(url, server, log)
        finally:
            if outcome != "up":  # stopped also when the wait itself fails
                stop_hub(server)
        if outcome == "up":
            return server, url
        if attempt == 2 or outcome != "port taken":
            pytest.fail(f"JupyterHub did not start:\n{log.read_text()[-4000:]}")


class Hub:
    def __init__(self, url, token, state):
        self.url, self.token, self.state = url, token, state

    def processes(self):
        """The processes this hub started (and the hub), alive now."""
        return marked_processes(self.token)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A running hub (its url, its processes).  Ends with nothing left running."""
    state = tmp_path_factory.mktemp("hub")
    token = secrets.token_hex(8)
    # The admin's config file, plus a marker for every process the hub starts,
    # and the proxy's control API on a Unix socket in the hub's folder.
    proxy_api = "http+unix://" + urllib.parse.quote(str(state / "proxy-api.sock"), safe="")
    test_config = state / "test_config.py"
    test_config.write_text(
        f"load_subconfig({str(HUB_CONFIG)!r})\n"
        f"c.Spawner.environment = {{{MARKER!r}: {token!r}}}\n"
        f"c.ConfigurableHTTPProxy.api_url = {proxy_api!r}\n"
    )
    server = None
    try:
        server, url = start_hub(state, test_config, token)
        yield Hub(url, token, state)
    finally:
        if server is not None:
            stop_hub(server)
        left = marked_processes(token)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert left == [], f"the hub left processes running: {left}"


# -- a learner, as a browser sees the hub ------------------------------------------

class Learner:
    """One learner's browser: cookies, the login form, their server's REST API."""

    def __init__(self, url, name):
        self.url, self.name = url, name
        self.http = direct_session()

    def sign_in(self, password):
        """Fill in the hub's login form; returns the hub's answer."""
        form = self.http.get(self.url + "hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
        assert xsrf, f"no _xsrf field in the login form:\n{form.text[:2000]}"
        return self.http.post(
            self.url + "hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf[1]},
            allow_redirects=False, timeout=30,
        )

    def hub_api(self, method, path, **kwargs):
        # A signed-in browser sends the hub's _xsrf cookie back as a header.
        xsrf = self.http.cookies.get("_xsrf", path="/hub/")
        return self.http.request(method, f"{self.url}hub/api/{path}",
                                 headers={"X-XSRFToken": xsrf}, timeout=CELL_TIMEOUT, **kwargs)

    def start_server(self):
        reply = self.hub_api("POST", f"users/{self.name}/server")
        assert reply.status_code in (201, 202), reply.text

    def server_ready(self):
        model = self.hub_api("GET", f"users/{self.name}").json()
        return model["servers"].get("", {}).get("ready", False)

    def stop_server(self):
        reply = self.hub_api("DELETE", f"users/{self.name}/server")
        assert reply.status_code in (202, 204), reply.text

    def open_lab(self):
        """Open JupyterLab: the hub's OAuth redirects give us its cookie."""
        return self.http.get(f"{self.url}user/{self.name}/lab", timeout=CELL_TIMEOUT)

    def server_api(self, method, path, owner=None, **kwargs):
        prefix = f"/user/{owner or self.name}/"
        xsrf = self.http.cookies.get("_xsrf", path=prefix) or ""
        return self.http.request(method, f"{self.url}{prefix[1:]}api/{path}",
                                 headers={"X-XSRFToken": xsrf}, timeout=CELL_TIMEOUT, **kwargs)

    def open_notebook(self, path):
        """Open a notebook as JupyterLab does: a session, and its kernel's websocket."""
        reply = self.server_api("POST", "sessions", json={
            "path": path, "name": "", "type": "notebook", "kernel": {"name": "socklab"},
        })
        assert reply.status_code == 201, reply.text
        session = reply.json()
        prefix = f"/user/{self.name}/"
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies
                            if c.path in ("/", prefix))
        ws_url = (f"ws{self.url[4:]}{prefix[1:]}api/kernels/"
                  f"{session['kernel']['id']}/channels?session_id={uuid.uuid4().hex}")
        # The server answers the upgrade once the new kernel is up: beside
        # twenty other learners' kernels starting on two cores, that took
        # more than 30 s once, hence the cell's limit.
        channel = websocket.create_connection(
            ws_url, timeout=CELL_TIMEOUT, header=[f"Cookie: {cookies}"])
        return Kernel(self, session["id"], channel)


class Kernel:
    """A kernel reached through the proxy: run code, collect outputs as nbval does."""

    def __init__(self, learner, session_id, channel):
        self.learner, self.session_id, self.channel = learner, session_id, channel
        self.session = uuid.uuid4().hex
        reply = self._request("kernel_info_request", {}, timeout=CELL_TIMEOUT)
        assert reply["content"]["status"] == "ok", reply

    def _send(self, msg_type, content):
        msg_id = uuid.uuid4().hex
        self.channel.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "session": self.session,
                       "username": self.learner.name, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "content": content,
            "channel": "shell", "buffers": [],
        }))
        return msg_id

    def _messages(self, msg_id, timeout):
        """The messages answering msg_id, until the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from {self.learner.name}'s kernel "
                                   f"within {timeout} s")
            self.channel.settimeout(left)
            msg = json.loads(self.channel.recv())
            if msg["parent_header"].get("msg_id") == msg_id:
                yield msg

    def _request(self, msg_type, content, timeout):
        msg_id = self._send(msg_type, content)
        for msg in self._messages(msg_id, timeout):
            if msg["channel"] == "shell":
                return msg

    def run(self, code, timeout=CELL_TIMEOUT):
        """Execute code; returns its outputs (NotebookNodes, as nbval collects them)."""
        msg_id = self._send("execute_request", {
            "code": code, "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
        })
        outputs = []
        for msg in self._messages(msg_id, timeout):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "stream":
                outputs.append(NotebookNode(output_type=kind, name=content["name"],
                                            text=content["text"]))
            elif kind in ("display_data", "execute_result"):
                outputs.append(NotebookNode(output_type=kind, data=content["data"],
                                            metadata=content["metadata"]))
            elif kind == "error":
                outputs.append(NotebookNode(output_type=kind, ename=content["ename"],
                                            evalue=content["evalue"],
                                            traceback=content["traceback"]))
        return outputs

    def close(self):
        self.channel.close()
        reply = self.learner.server_api("DELETE", f"sessions/{self.session_id}")
        assert reply.status_code == 204, reply.text


# -- a lesson, cell by cell ----------------------------------------------------------

def run_lesson(learner, path):
    """Run every code cell of the learner's copy of a lesson in order.

    Returns the problems found: outputs that differ from the stored ones, or an
    error in a cell not tagged raises-exception (which ends the run, as Run All).
    """
    stored = nbformat.read(ROOT / path, as_version=4)
    kernel = learner.open_notebook(path)
    problems = []
    try:
        for number, cell in enumerate(stored.cells):
            if cell.cell_type != "code" or nbcompare.options(cell)["skip"]:
                continue
            outputs = kernel.run(cell.source)
            problem = nbcompare.problem(cell, outputs)
            if problem:
                first_line = (cell.source.splitlines() or [""])[0]
                problems.append(f"{learner.name}, cell {number} ({first_line!r}): {problem}")
            if nbcompare.unexpected_error(cell, outputs):
                break  # as Run All stops
    finally:
        kernel.close()
    return problems


# -- the tests -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def learners(hub):
    """Five learners signed in, each with a running server and JupyterLab open."""
    signed_in = [Learner(hub.url, name) for name in LEARNERS]
    for learner in signed_in:
        reply = learner.sign_in(PASSWORD)
        assert reply.status_code == 302, f"{learner.name} not signed in: {reply.text}"
        assert "jupyterhub-session-id" in learner.http.cookies
    try:
        for learner in signed_in:  # all at once, as a class does at 9 o'clock
            learner.start_server()
        deadline = time.monotonic() + 180
        waiting = list(signed_in)
        while waiting and time.monotonic() < deadline:
            waiting = [learner for learner in waiting if not learner.server_ready()]
            time.sleep(0.5)
        late = [learner.name for learner in waiting]
        assert late == [], f"servers not ready within 180 s: {late}"
        # The hub, its proxy and five servers: the marker finds them all, so the
        # check that nothing is left at the end can see what it looks for.
        assert len(hub.processes()) >= 2 + len(signed_in), hub.processes()
        for learner in signed_in:
            lab = learner.open_lab()
            assert lab.status_code == 200, lab.text[:2000]
            assert lab.url == f"{hub.url}user/{learner.name}/lab"
            assert "JupyterLab" in lab.text
        yield signed_in
    finally:
        for learner in signed_in:
            if learner.hub_api("GET", f"users/{learner.name}").json()["servers"]:
                learner.stop_server()


def test_a_wrong_password_is_refused(hub):
    stranger = Learner(hub.url, "mallory")
    reply = stranger.sign_in("not-the-password")
    assert reply.status_code == 403
    assert "Invalid username or password" in reply.text
    assert "jupyterhub-session-id" not in stranger.http.cookies


def test_five_learners_run_lesson_05_through_the_hub(hub, learners, tmp_path):
    with concurrent.futures.ThreadPoolExecutor(len(learners)) as pool:
        results = pool.map(lambda learner: run_lesson(learner, LESSON), learners)
        problems = [problem for result in results for problem in result]
    assert problems == [], "\n".join(problems)
    # Each learner's checks recorded in their own home; the instructor gathers them.
    page = tmp_path / "class.html"
    folders = sorted((hub.state / "home").glob("*/.local/share/socklab"))
    done = subprocess.run([sys.executable, "-m", "socklab", "class-report",
                           *map(str, folders), "-o", str(page)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"<tr[^>]*>\s*<t[hd][^>]*>([^<]+)<", page.read_text())
    assert sorted(set(rows) & set(LEARNERS)) == sorted(LEARNERS), rows


def test_each_learner_has_a_network_of_their_own(hub, learners):
    """The hub keeps learners out of each other's servers; the socklab kernel, out of
    each other's sockets: each has a loopback of their own."""
    ada, alan = learners[0], learners[1]
    # Through the hub, Alan can neither open Ada's JupyterLab nor use its API...
    assert alan.http.get(f"{hub.url}user/{ada.name}/lab", timeout=60).status_code == 403
    assert alan.server_api("GET", "sessions", owner=ada.name).status_code == 403
    # ...and a server Ada starts on 127.0.0.1 in her kernel is not on Alan's loopback.
    before = len(hub.processes())
    ada_kernel = ada.open_notebook(LESSON)
    alan_kernel = alan.open_notebook(LESSON)
    try:
        assert len(hub.processes()) >= before + 2, "the kernels lack the marker"
        shown = ada_kernel.run(
            "import socklab\n"
            "adas = socklab.TCPEchoServer(name='adas-echo')\n"
            "adas.address[1]"
        )
        port = int(shown[0].data["text/plain"])
        answer = alan_kernel.run(
            "import socket, socklab\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
            "except ConnectionRefusedError:\n"
            "    print('refused')\n"
            f"alans = socklab.TCPEchoServer(port={port}, name='alans-echo')\n"
            f"with socket.create_connection(('127.0.0.1', {port}), timeout=5) as s:\n"
            "    s.sendall(b'hello from alan')\n"
            "    print(s.recv(100))\n"
            "alans.stop()"
        )
        assert all(out.output_type == "stream" for out in answer), answer
        assert "".join(out.text for out in answer) == "refused\nb'hello from alan'\n", answer
        stopped = ada_kernel.run("socklab.stop_all(), socklab.running()")
        assert stopped[0].data["text/plain"] == "(1, [])", stopped
    finally:
        ada_kernel.close()
        alan_kernel.close()
