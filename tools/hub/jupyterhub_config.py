# JupyterHub for a socklab workshop: one hub, every learner signs in with a
# shared password and gets a JupyterLab of their own with a copy of the course.
#
#   SOCKLAB_HUB_PASSWORD=a-long-shared-password \
#   .venv/bin/jupyterhub -f tools/hub/jupyterhub_config.py
#
# docs/hub.md explains each choice and what to change for a real workshop.
# Settings come from environment variables, so that the file needs no edits:
#
#   SOCKLAB_HUB_PASSWORD        the learners' shared password (8 characters or more)
#   SOCKLAB_HUB_STATE           folder for the hub's database, cookie secret and
#                               the learners' home folders (default: ./hub-state)
#   SOCKLAB_HUB_BIND_URL        where the hub answers (default http://127.0.0.1:8000/)
#   SOCKLAB_HUB_API_PORT        the hub's own API port, on 127.0.0.1 (default 8081)
#   SOCKLAB_PROXY_API_PORT      the proxy's control port, on 127.0.0.1 (default 8001)
#   SOCKLAB_HUB_ADMIN           optional: the instructor's user name, who signs in
#   SOCKLAB_HUB_ADMIN_PASSWORD  with this password (32 characters or more)

import os
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
COURSE = HERE.parent.parent  # the repository: notebooks/ and images/
STATE = pathlib.Path(os.environ.get("SOCKLAB_HUB_STATE", "hub-state")).resolve()
STATE.mkdir(parents=True, exist_ok=True)

c = get_config()  # noqa: F821 -- JupyterHub defines it when it reads this file

# -- Where the hub and its proxy listen --------------------------------------
# The proxy (configurable-http-proxy, from npm: make installs it into
# tools/hub/node_modules) is the one door learners use.  The hub's API and
# the proxy's control port stay on loopback.
c.JupyterHub.bind_url = os.environ.get("SOCKLAB_HUB_BIND_URL", "http://127.0.0.1:8000/")
c.JupyterHub.hub_bind_url = (
    f"http://127.0.0.1:{os.environ.get('SOCKLAB_HUB_API_PORT', '8081')}"
)
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{os.environ.get('SOCKLAB_PROXY_API_PORT', '8001')}"
)
PROXY = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [
    str(PROXY) if PROXY.exists() else "configurable-http-proxy"
]

# -- The hub's own files: one folder, nothing in the current directory --------
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")

# -- Who may sign in -----------------------------------------------------------
# One password shared by the whole class; any user name that fits the pattern
# makes a new account.  Anyone who knows the password can sign in as anyone.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ.get("SOCKLAB_HUB_PASSWORD")
c.Authenticator.allow_all = True
# Names become folder names: lower-case letters, digits, - and _ only.
c.Authenticator.username_pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$"
if os.environ.get("SOCKLAB_HUB_ADMIN"):
    c.Authenticator.admin_users = {os.environ["SOCKLAB_HUB_ADMIN"]}
    c.SharedPasswordAuthenticator.admin_password = os.environ.get(
        "SOCKLAB_HUB_ADMIN_PASSWORD"
    )

# -- Each learner's JupyterLab -------------------------------------------------
# SimpleLocalProcessSpawner runs every learner's server as the hub's own
# system user, in a home folder of its own: no system accounts to create, and
# no isolation between learners either (docs/hub.md says what that means).
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "home" / "{username}")
# This Python (the one with socklab, gcc's helpers and the kernel) runs them.
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.args = ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
if os.geteuid() == 0:  # Jupyter refuses to run as root unless told
    c.Spawner.args.append("--ServerApp.allow_root=True")
c.Spawner.default_url = "/lab/tree/notebooks/en/00-start-here.ipynb"
# A busy machine (30 learners signing in at once) starts servers slowly.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def copy_course(spawner):
    """Give a learner the lessons and figures the first time their server starts.

    The same layout as the repository, so that the lessons' links to
    ../../images work; a learner's own edits are never overwritten.
    """
    home = pathlib.Path(spawner.home_dir)
    for folder in ("notebooks", "images"):
        if not (home / folder).exists():
            shutil.copytree(COURSE / folder, home / folder)


c.Spawner.pre_spawn_hook = copy_course
