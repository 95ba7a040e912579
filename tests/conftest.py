"""Shared fixtures: every test must leave nothing of socklab running."""

import os
import threading

import pytest

import socklab


def open_fds():
    """The file descriptors this process has open right now."""
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def nothing_left_running():
    yield
    left = socklab.running()
    socklab.stop_all()
    assert left == [], f"test left these running: {left}"


@pytest.fixture
def no_leaks():
    """Fail the test if it leaves extra threads or file descriptors behind."""
    threads_before = set(threading.enumerate())
    fds_before = open_fds()
    yield
    extra_threads = [t.name for t in set(threading.enumerate()) - threads_before]
    # listdir() sees its own descriptor too; it is the lowest free number, the
    # same in both readings unless something leaked (and then the test fails anyway)
    extra_fds = open_fds() - fds_before
    assert extra_threads == [], f"threads left behind: {extra_threads}"
    assert extra_fds == set(), f"file descriptors left behind: {extra_fds}"

