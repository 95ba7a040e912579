"""Hooks for the whole test run: socklab's tests and the notebooks alike."""

import os


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
