"""Automatic checks for the lessons' exercises, one module per lesson.

    socklab.checks.check_ask(ask)              # lesson 00 (also socklab.checks.lesson00)
    socklab.checks.lesson03.check_...(...)     # the other lessons: by module

See socklab.checks.report for what every check shares.
"""

import importlib

from .lesson00 import check_ask, check_shout
from .report import Report

__all__ = ["Report", "check_ask", "check_shout"]


def __getattr__(name):
    """``socklab.checks.lesson05`` imports that lesson's checks on first use."""
    if name.startswith("lesson") and name[6:].isdigit():
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'socklab.checks' has no attribute {name!r}")
