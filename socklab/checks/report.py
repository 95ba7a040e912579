"""What every exercise check shares: the Report, and running the learner's code safely.

Each check_* function (one module per lesson: lesson00, lesson01, ...) takes the
learner's answer, runs it against real peers on loopback, and returns a Report:
one line per thing checked, PASS or FAIL, and for a FAIL what went wrong in plain
words -- the kind of hint a teacher gives, not a stack trace.

The learner's code runs in a helper thread with a time limit, because the most
common mistake in socket code is a recv() that waits forever.  A check never hangs
the notebook: after the limit it says what the code was probably waiting for.
"""

import threading

__all__ = ["Report", "TIME_LIMIT", "call_with_time_limit", "describe_error", "not_written"]

TIME_LIMIT = 5.0  # seconds the learner's function may take for one case


class Report:
    """The outcome of one exercise check; shown as text in the notebook."""

    def __init__(self, title):
        self.title = title
        self.results = []  # (passed, description, hint)

    def add(self, passed, description, hint=""):
        self.results.append((passed, description, hint))
        return passed

    @property
    def ok(self):
        return bool(self.results) and all(passed for passed, _, _ in self.results)

    def __repr__(self):
        lines = [self.title]
        for passed, description, hint in self.results:
            lines.append(f"  {'PASS' if passed else 'FAIL'}  {description}")
            if hint and not passed:
                lines.extend(f"        {line}" for line in hint.splitlines())
        failed = sum(not passed for passed, _, _ in self.results)
        if failed:
            lines.append(f"{failed} of {len(self.results)} checks failed.")
        else:
            lines.append(f"All {len(self.results)} checks passed.")
        return "\n".join(lines)


class _Outcome:
    """What calling the learner's function produced: a value, an error, or nothing."""

    def __init__(self):
        self.value = None
        self.error = None
        self.finished = False


def call_with_time_limit(function, *args, limit=TIME_LIMIT):
    outcome = _Outcome()

    def call():
        try:
            outcome.value = function(*args)
        except Exception as exc:  # shown to the learner, not raised in their face
            outcome.error = exc
        outcome.finished = True

    thread = threading.Thread(target=call, name="socklab check", daemon=True)
    thread.start()
    thread.join(limit)
    return outcome, thread


def describe_error(exc):
    """"it raised ValueError: bad value" -- without a dangling colon when there is no message."""
    return f"it raised {type(exc).__name__}: {exc}" if str(exc) else f"it raised {type(exc).__name__}"


NOT_WRITTEN = "is it written yet?  Replace the `...` with your code."


def not_written(outcome):
    """A stub: the body is still `...` (returns None or Ellipsis) or raises NotImplementedError."""
    if outcome.error is None:
        return outcome.value is None or outcome.value is Ellipsis
    return isinstance(outcome.error, NotImplementedError)
