"""A JupyterLab server started by a test: start it, learn its URL, stop it."""

import os
import re
import secrets
import subprocess
import sys
import time

import pytest


def wait_for_url(log, server, limit=60):
    """http://127.0.0.1:PORT of the lab ``server`` (a Popen) writing to ``log``.

    It was started with --ServerApp.port=0, so its port is known only once it
    prints its URL; a server that ends first fails the test with its log.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        log.seek(0)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/lab", log.read())
        if match:
            return f"http://127.0.0.1:{match[1]}"
        if server.poll() is not None:
            break
        time.sleep(0.2)
    log.seek(0)
    pytest.fail(f"JupyterLab did not start:\n{log.read()[-3000:]}")


def start(root_dir, home, extra=()):
    """A JupyterLab serving ``root_dir`` on 127.0.0.1, a free port, a token of its own.

    Its settings, runtime files and workspaces live in ``home``, not the
    tester's.  Returns (the Popen, its log file, the token); stop it with stop().
    """
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


def stop(server, log):
    """Stop a lab start() started, and everything it started (kernels)."""
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
        server.wait(10)
    log.close()
