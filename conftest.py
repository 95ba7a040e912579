"""Hooks for the whole test run: socklab's tests and the notebooks alike."""

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest


# -- Exercise results go to a temporary folder, never the real home ----------
# Every check that runs records a line (socklab.results).  Set here, at import,
# so that nbval's kernels and every program a test starts inherit it.  Each
# xdist worker imports this file too and gets a folder of its own.

os.environ["SOCKLAB_DATA"] = tempfile.mkdtemp(prefix="socklab-test-data-")
atexit.register(shutil.rmtree, os.environ["SOCKLAB_DATA"], ignore_errors=True)


# -- In CI nothing may be skipped --------------------------------------------
# On a laptop a test that needs a missing tool (strace, root, ...) is skipped with
# its reason.  CI installs every tool (.ci/run), so there a skip means a broken
# install step: the run fails instead of reporting a green but partial result.

_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") == "true" and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("CI") == "true" and _skipped:
        terminalreporter.write_line(
            f"CI=true and {len(_skipped)} test(s) were skipped; CI must run them all:",
            red=True,
        )
        for nodeid in _skipped:
            terminalreporter.write_line(f"  {nodeid}")


# -- Kernels over Unix sockets ------------------------------------------------
# nbval's kernels talk over Unix sockets, at a path of their own (why: see
# tests/nbcompare.py, ipc_path).  nbval makes its KernelManager without any
# config, so its module gets one that asks for ipc.
import sys  # noqa: E402

import nbval.kernel  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "tests"))
from nbcompare import ipc_path  # noqa: E402


class KernelOverUnixSockets(KernelManager):
    def __init__(self, **kwargs):
        super().__init__(transport="ipc", ip=ipc_path(), **kwargs)


nbval.kernel.KernelManager = KernelOverUnixSockets


# -- Each lesson runs twice in one kernel --------------------------------------
# A learner re-runs cells all the time: servers must be replaced, not piled up,
# and the second pass must not trip over the first.  So after nbval's items for
# a lesson's cells come the same cells again, in the same kernel ("Cell N,
# again").  An error fails them as it fails the first pass (cells tagged
# raises-exception may raise); their outputs are not compared, but for the
# lesson's last cell -- socklab.stop_all(), socklab.running() -- which must
# print what it printed the first time: as many servers stopped, none left.
from nbval.plugin import IPyNbCell, IPyNbFile  # noqa: E402


class CellAgain(IPyNbCell):
    def reportinfo(self):
        path, line, description = super().reportinfo()
        return path, line, f"{description}, again"


_collect_once = IPyNbFile.collect


def _collect_twice(self):
    cells = list(_collect_once(self))
    yield from cells
    for cell in cells:
        options = cell.options.copy()
        options["check"] = cell is cells[-1] and cell.options["check"]
        yield CellAgain.from_parent(self, name=f"{cell.name}, again", cell_num=cell.cell_num,
                                    cell=cell.cell, options=options)


IPyNbFile.collect = _collect_twice


# -- Kinds of test and parallel workers ---------------------------------------
# `make test` runs everything at once on several pytest-xdist workers; `make
# test-workshop` runs the tests that load the whole machine (twenty kernels, a
# JupyterHub, a browser) alone, and `make test-fast` leaves them and the whole
# lessons out.  Which files are which is said here, once.

WORKSHOP = {"test_many_learners.py", "test_hub.py", "test_browser.py"}
NOTEBOOK_RUNS = {"test_kernel.py", "test_degraded.py"}  # whole lessons: not in `make test-fast`

# The Makefile's `--dist loadfile` sends each file to one worker: nbval's items
# are the cells of one notebook, run in order in one kernel, and a test file's
# module fixtures are set up once.  The items of the SPREAD files are
# independent and long (a whole lesson as another user, a C program attacked): each
# goes to a worker of its own, so that no worker gets them all.  (xdist's
# loadgroup would say this with marks, but its marks do nothing with pytest 9.2,
# whose node ids cannot be renamed.)
SPREAD = {"test_kernel.py", "test_degraded.py", "test_c_exercises.py", "test_c_servers.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = pathlib.Path(str(item.path)).name
        if name in WORKSHOP:
            item.add_marker(pytest.mark.workshop)
        if name in NOTEBOOK_RUNS or name.endswith(".ipynb"):
            item.add_marker(pytest.mark.notebooks)
    # The workers are handed units in this order, and the longest should not be
    # the last to start: the workshop tests first, then whole lessons.
    items.sort(key=lambda item: ("workshop" not in item.keywords,
                                 "notebooks" not in item.keywords))


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, except that each test of a SPREAD file is a unit of its own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LoadFileSpreadScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            if pathlib.PurePath(nodeid.split("::")[0]).name in SPREAD:
                return nodeid
            return super()._split_scope(nodeid)

    return LoadFileSpreadScheduling(config, log)
