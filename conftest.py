"""Hooks for the whole test run: socklab's tests and the notebooks alike."""

import os
import pathlib

import pytest


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


# -- Stages and parallel workers ---------------------------------------------
# `make test` runs the suite in two stages (see the Makefile):
#   1. everything but the workshop tests, on several pytest-xdist workers;
#   2. the workshop tests alone, because each of them loads the whole machine
#      (twenty kernels, a JupyterHub, a browser) and would slow every timing-
#      sensitive check running beside it.
# The files of each stage are named here, once.

WORKSHOP = {"test_many_learners.py", "test_hub.py", "test_browser.py"}
NOTEBOOK_RUNS = {"test_rerun.py"}  # execute whole lessons: not in `make test-fast`


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = pathlib.Path(str(item.path)).name
        if name in WORKSHOP:
            item.add_marker(pytest.mark.workshop)
        if name in NOTEBOOK_RUNS:
            item.add_marker(pytest.mark.notebooks)
        if name.endswith(".ipynb"):
            # nbval's items are the cells of one notebook, run in order in one
            # kernel: the Makefile's --dist loadfile keeps a file on one worker.
            item.add_marker(pytest.mark.notebooks)
