"""Where the doctor says `warn`, the lessons still run: words, never a traceback.

A learner's machine may lack what CI has.  Each test runs this file as a
script, as user nobody (tests/unprivileged.py), and the script runs lessons in
the plain "python3" kernel -- no private network (socklab/kernel.py), so the
lessons see the machine's own network as an ordinary user:

* ``lessons``: every English lesson, not root, with ss, strace and iperf3
  off the PATH;
* ``no-ipv6``: the lessons whose code uses IPv6 (``::1``, ``AF_INET6``), in a
  network namespace of their own where IPv6 is switched off
  (net.ipv6.conf.all.disable_ipv6), as the root of a user namespace: the
  loopback has 127.0.0.1 and no ::1.

A run passes when no cell raised an error that it does not expect (only cells
tagged raises-exception may, as nbval allows; tests/nbcompare.py) and no output
holds a traceback -- a thread's or a child process's, printed rather than
raised.  The outputs are not compared: they differ from the stored ones on
purpose (recordings instead of live captures, "strace is not installed" ...).
"""

import json
import os
import pathlib
import shutil
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = sorted(path.stem for path in (ROOT / "notebooks" / "en").glob("*.ipynb"))
HIDDEN = ("ss", "strace", "iperf3")
CELL_TIMEOUT = 120  # seconds, as a lesson's longest cell takes a few
TIMEOUT = 600  # seconds for one lesson as a whole
PROBE = ("import json as _j, os as _o, shutil as _s, socket as _k\n"
         f"print(_j.dumps({{'uid': _o.geteuid(), 'found': [_s.which(n) for n in {HIDDEN!r}],"
         " 'ipv6': _k.has_ipv6 and _o.path.exists('/proc/net/if_inet6')"
         " and bool(open('/proc/net/if_inet6').read())}))")
# The loopback without IPv6: a network namespace of a user namespace (no root
# needed), its lo up, IPv6 off on every interface.
NO_IPV6 = ["unshare", "--user", "--map-root-user", "--net", "sh", "-c",
           "ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && exec \"$@\"",
           "sh"]


def uses_ipv6(lesson):
    nb = nbformat.read(ROOT / "notebooks" / "en" / f"{lesson}.ipynb", as_version=4)
    return any("::1" in cell.source or "AF_INET6" in cell.source
               for cell in nb.cells if cell.cell_type == "code")


def run_script(tmp_path, mode, lesson, wrap=()):
    """Run this file as nobody for one lesson; its JSON report."""
    import unprivileged  # tests/: root only, so imported here

    if not unprivileged.can_become_nobody():
        pytest.skip("becoming nobody needs root (CI runs as root)")
    report = tmp_path / "nobody-home" / "report.json"
    # Results of the lessons' checks go to nobody's own (fresh) home, as a
    # learner's would, not to the folder conftest.py made for root.
    env = {key: value for key, value in os.environ.items() if key != "SOCKLAB_DATA"}
    done = unprivileged.run([*wrap, sys.executable, __file__, mode, lesson, str(report)],
                            tmp_path, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    if wrap and done.returncode != 0 and done.stderr.startswith("unshare"):
        pytest.skip(f"no user and network namespace for nobody here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_without_root_ss_strace_iperf3(tmp_path, lesson):
    ran = run_script(tmp_path, "lessons", lesson)
    assert ran["probe"]["uid"] == 65534
    assert ran["probe"]["found"] == [None, None, None], "the kernel still finds " + str(HIDDEN)
    assert ran["problems"] == [], "\n".join(ran["problems"])


@pytest.mark.parametrize("lesson", [lesson for lesson in LESSONS if uses_ipv6(lesson)])
def test_lesson_runs_without_ipv6_on_loopback(tmp_path, lesson):
    ran = run_script(tmp_path, "no-ipv6", lesson, wrap=NO_IPV6)
    assert ran["probe"]["ipv6"] is False, "IPv6 is still on in the lesson's network"
    assert ran["problems"] == [], "\n".join(ran["problems"])


# -- the script, run as nobody ---------------------------------------------------------

def path_without(names, folder):
    """A PATH of one folder of links to every program on PATH except ``names``.

    ss, strace and iperf3 live in the same folder as gcc and python3 (/usr/bin),
    so leaving folders out of PATH would hide those too.  A link per program,
    the first of each name on PATH as a shell finds it, hides exactly these.
    """
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            program = os.path.join(directory, name)
            if name in names or os.path.lexists(folder / name):
                continue
            if os.path.isfile(program) and os.access(program, os.X_OK):
                (folder / name).symlink_to(program)
    return str(folder)


def run_lesson(name):
    import nbcompare

    stored, nb, probe = nbcompare.run_fresh(name, "python3", PROBE, timeout=CELL_TIMEOUT)
    return {"probe": probe, "problems": nbcompare.errors_and_tracebacks(stored, nb)}


def main(mode, lesson, report_path):
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    if mode == "lessons":
        os.environ["PATH"] = path_without(HIDDEN, pathlib.Path(tempfile.mkdtemp()) / "bin")
        assert not any(map(shutil.which, HIDDEN)), "a hidden program is still on PATH"
    pathlib.Path(report_path).write_text(json.dumps(run_lesson(lesson)))


if __name__ == "__main__":
    main(*sys.argv[1:])
