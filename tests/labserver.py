"""A JupyterLab server started by a test: started, answering, then stopped."""

import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ATTEMPTS = 3  # starts, when another program took the server's port (see start)


def start(root_dir, home, extra=(), limit=60):
    """A JupyterLab serving ``root_dir`` on 127.0.0.1, answering its API.

    Its settings, runtime files and workspaces live in ``home``, not the
    tester's.  Returns (the Popen, its log file, its token, its URL); stop it
    with stop().  With --ServerApp.port=0 the server finds a free port, lets it
    go, prints its URL and only then binds it again: on a busy machine another
    program can take the port meanwhile, and the server ends with "The port ...
    is already in use".  Then it is started again, up to ATTEMPTS times.
    """
    for _ in range(ATTEMPTS):
        server, log, token = _launch(root_dir, home, extra)
        url = _url(server, log, limit)
        if url and _answers(server, url, token, limit):
            return server, log, token, url
        stop(server, log)
        said = (home / "lab.log").read_text()
        if "is already in use" not in said:
            pytest.fail(f"JupyterLab did not start:\n{said[-3000:]}")
    pytest.fail(f"JupyterLab lost its port {ATTEMPTS} times:\n{said[-3000:]}")


def stop(server, log):
    """Stop a lab start() started, and everything it started (kernels)."""
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
        server.wait(10)
    log.close()


def _launch(root_dir, home, extra):
    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
    }
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *extra]
    if os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root unless told; CI is root
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "lab.log", "w+")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    return server, log, token


def _url(server, log, limit):
    """http://127.0.0.1:PORT once the server prints it; None if it ends first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and server.poll() is None:
        log.seek(0)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/lab", log.read())
        if match:
            return f"http://127.0.0.1:{match[1]}"
        time.sleep(0.2)
    return None


def _answers(server, url, token, limit):
    """True once the server answers its API with our token; False if it ends."""
    request = urllib.request.Request(f"{url}/api/status",
                                     headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # not bound yet
    return False
