"""Does socklab install and pass on each Python version it claims?  (make test-pythons)

    python tools/test_pythons.py                     # every version found, from the minimum up
    python tools/test_pythons.py /opt/py3.14/bin/python3 python3.10   # these ones

pyproject.toml's requires-python, the Makefile's version check and the doctor's
MIN_PYTHON must claim only versions that work.  For each interpreter this makes
a fresh virtual environment in a temporary folder, installs the pinned packages
and socklab into it (uv, as `make` does; PyPI is the only network it needs),
then runs socklab's own tests (as `make test-fast` does) and lessons 00 and 05
under nbval.  It prints one line per version and exits 1 if any failed.

Everything happens in a copy of the project (the files git knows, as they are
now) in that temporary folder: an install writes socklab.egg-info and build/
into the folder it installs from, and the copy keeps those out of this tree.
The temporary folder (pytest's temporary files too) is removed at the end.

Interpreters found, when none are named: Python 3.X (one per minor version, from
requires-python's minimum up) from pyenv's versions and from python3.X on PATH.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
UV = "uv==0.13.9"  # the Makefile's
LESSONS = ["notebooks/en/00-start-here.ipynb", "notebooks/en/05-echo.ipynb"]
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-cell-timeout=60",
         "--nbval-sanitize-with", "tools/nbval-sanitize.cfg"]
TESTS = ["-n", "4", "--dist", "loadfile", "-m", "not workshop and not notebooks", "tests"]
NEWEST_MINOR = 20  # looked for up to Python 3.20


def minimum():
    """(3, N) from pyproject.toml's requires-python = ">=3.N"."""
    text = (ROOT / "pyproject.toml").read_text()
    major, minor = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', text).groups()
    return int(major), int(minor)


def version_of(python):
    """(major, minor, micro) of an interpreter, or None if it does not run."""
    try:
        done = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:3])"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return tuple(map(int, done.stdout.split())) if done.returncode == 0 else None


def found_pythons():
    """{(3, minor): interpreter}: the newest of each minor version, from the minimum up."""
    candidates = [f"python3.{minor}" for minor in range(minimum()[1], NEWEST_MINOR + 1)]
    candidates = [shutil.which(name) for name in candidates]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(map(str, pathlib.Path(root).glob("versions/3.*/bin/python3")))
    newest = {}  # (3, minor): (version, interpreter)
    for python in filter(None, candidates):
        version = version_of(python)
        if version is None or version[:2] < minimum():
            continue
        if version[:2] not in newest or version > newest[version[:2]][0]:
            newest[version[:2]] = (version, python)
    return {minor: python for minor, (_, python) in sorted(newest.items())}


def copy_of_project(folder):
    """The files git knows (as they are in the working tree) copied to ``folder``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is left out
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    return folder


def summary(output):
    """pytest's last line: "123 passed, 2 skipped in 45.6s"."""
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def try_python(python, scratch):
    """Install into a new venv and run the tests; (passed, what happened)."""
    project = copy_of_project(scratch / "project")
    venv = scratch / "venv"
    py = str(venv / "bin" / "python")

    def run(*argv, cwd=project):
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True)

    steps = [("venv", [python, "-m", "venv", str(venv)]),
             ("uv", [py, "-m", "pip", "install", "--disable-pip-version-check", "-q", UV]),
             ("install", [py, "-m", "uv", "pip", "install", "--python", py, "-e", ".[test]"]),
             ("kernel", [py, "-m", "socklab.kernel", "install"])]
    for name, argv in steps:
        done = run(*argv)
        if done.returncode != 0:
            return False, f"{name} failed: {(done.stderr or done.stdout).strip()[-2000:]}"
    # pytest's own temporary folders go into the scratch folder too, so that
    # nothing is left behind in the system's temporary folder.
    options = ["-p", "no:cacheprovider", "-q", f"--basetemp={scratch / 'pytest'}"]
    tests = run(py, "-m", "pytest", *TESTS, *options)
    lessons = run(py, "-m", "pytest", *NBVAL, *LESSONS, *options)
    passed = tests.returncode == 0 and lessons.returncode == 0
    text = f"tests: {summary(tests.stdout)}; lessons 00 and 05: {summary(lessons.stdout)}"
    if not passed:
        failures = [line for line in (tests.stdout + lessons.stdout).splitlines()
                    if line.startswith(("FAILED", "ERROR"))]
        text += "\n    " + "\n    ".join(failures[:20])
    return passed, text


def main(names):
    pythons = ({version_of(name)[:2]: name for name in names if version_of(name)} if names
               else found_pythons())
    if not pythons:
        sys.exit("no Python interpreter found to test")
    results = {}
    for (major, minor), python in pythons.items():
        print(f"==> Python {major}.{minor} ({python}): installing and testing ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"socklab-python{major}.{minor}-") as scratch:
            results[major, minor] = try_python(python, pathlib.Path(scratch))
        print(f"    {'ok  ' if results[major, minor][0] else 'FAIL'} {results[major, minor][1]}",
              flush=True)
    print()
    for (major, minor), (passed, text) in results.items():
        print(f"Python {major}.{minor}: {'ok  ' if passed else 'FAIL'} {text.splitlines()[0]}")
    sys.exit(0 if all(passed for passed, _ in results.values()) else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
