"""Run a command as an ordinary user (nobody), from wherever the project lies.

Learners are not root; CI is.  A test that gives up root must still reach what
it needs: the interpreter (pyenv keeps it under /root, mode 0700) and the
project (a clone may sit in a 0700 temporary folder).  So the command runs in a
mount namespace of its own (``unshare --mount``: root only), where each folder
on the way that nobody may not pass is covered by a stand-in folder nobody may
pass, holding only the entries on the way: bind mounts of the real ones, whose
own permissions still apply.  Nothing changes outside that namespace.
"""

import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOBODY = 65534  # uid and gid (Debian's nobody and nogroup)


def _blocked(paths):
    """{folder nobody may not pass: {names of the entries on the way}}."""
    blocked = {}
    for path in paths:
        path = pathlib.Path(path).resolve()
        for folder in [*reversed(path.parents)]:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                entry = path.relative_to(folder).parts[0]
                blocked.setdefault(folder, set()).add(entry)
    return blocked


def command(argv, reach, stand_ins):
    """``argv`` as nobody, with every path in ``reach`` passable; a list for subprocess.

    The stand-in folders are made under ``stand_ins`` (a folder root may use).
    """
    mounts = []
    # Outer folders first; but the folder that holds the stand-ins last of all:
    # covered, it would hide the stand-ins still to be mounted.
    order = sorted(_blocked(reach).items(),
                   key=lambda item: (pathlib.Path(stand_ins).is_relative_to(item[0]), item[0]))
    for number, (folder, entries) in enumerate(order):
        stand_in = pathlib.Path(stand_ins) / f"stand-in-{number}"
        stand_in.mkdir(mode=0o755)
        stand_in.chmod(0o755)  # whatever the umask
        for entry in sorted(entries):
            real = folder / entry
            if real.is_dir():
                (stand_in / entry).mkdir()
            else:
                (stand_in / entry).touch()
            mounts.append(f"mount --rbind {shlex.quote(str(real))} {shlex.quote(str(stand_in / entry))}")
        mounts.append(f"mount --rbind {shlex.quote(str(stand_in))} {shlex.quote(str(folder))}")
    become_nobody = (f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
                     "--inh-caps=-all -- \"$@\"")
    script = " && ".join([*mounts, become_nobody])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def can_become_nobody():
    return os.geteuid() == 0 and all(map(shutil.which, ("unshare", "setpriv", "mount")))


def run(argv, tmp_path, reach=(), **kwargs):
    """Run ``argv`` as nobody (a CompletedProcess); HOME is a fresh folder of nobody's.

    The project and this interpreter are always within reach; ``reach`` adds paths.
    """
    if os.geteuid() != 0:
        raise RuntimeError("only root can become nobody")
    home = pathlib.Path(tmp_path) / "nobody-home"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    stand_ins = tempfile.mkdtemp(prefix="stand-ins-", dir=tmp_path)
    reach = [ROOT, sys.prefix, sys.base_prefix, pathlib.Path(sys.executable), home, *reach]
    env = {**kwargs.pop("env", os.environ), "HOME": str(home), "USER": "nobody",
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "TMPDIR": str(home)}
    return subprocess.run(command(argv, reach, stand_ins), env=env, **kwargs)
