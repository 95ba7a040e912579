"""The checked C exercises, one module per lesson (lessonNN.py, each defining
EXERCISES, a list of Exercise), collected here for tests/test_c_exercises.py."""

import importlib
import pkgutil
import typing


class Mistake(typing.NamedTuple):
    id: str
    old: str  # text in the solution ...
    new: str  # ... replaced by this
    # words the check's hints must contain; a tuple: any one of them (where the
    # same mistake shows in more than one way, depending on timing)
    expected: typing.Union[str, tuple]


class Exercise(typing.NamedTuple):
    lesson: str  # notebook stem
    program: str  # the name in `%%c NAME --compile-only`
    check: typing.Callable
    mistakes: list


def collect():
    """Every Exercise of every lessonNN module in this package, in lesson order."""
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        found += importlib.import_module(f"{__name__}.{module.name}").EXERCISES
    return found
