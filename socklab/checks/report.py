"""What every exercise check shares: Verdict, Report, and running the learner's code safely.

Each check_* function (one module per lesson: lesson00, lesson01, ...) takes the
learner's answer, runs it against real peers on loopback, and returns a Report:
one line per thing checked, PASS or FAIL, and for a FAIL what went wrong in plain
words -- the kind of hint a teacher gives, not a stack trace.

Every case is decided by a *judge*: a small function that looks at what the
learner's code did and returns a Verdict --

    Verdict.ok()                      # right
    Verdict.fail("the reply has 612 of 5,000 bytes ...")  # wrong, and why
    Verdict.fail(hint, final=True)    # wrong, and the other cases would only say it again
    Verdict.not_written()             # still the stub: final, with the NOT_WRITTEN hint

``report.add(description, verdict)`` records it and hands it back, so a check
reads ``if report.add(description, verdict).final: break``.  Whether the check
goes on is decided by ``final``, a yes or no the judge sets -- never by the
words of the hint, which can then be reworded freely.  A check that must stop
at any failure (the next case would reuse a connection the failure left out of
step, say) adds ``verdict.final_if_failed()``.

A judge takes what is under test -- the learner's function, or the address of
a server it runs -- and what the check's peers saw; not how the answer was
written.  So the same judges, and the same hostile peers, can check an answer
written in C.

The learner's code runs in a helper thread with a time limit, because the most
common mistake in socket code is a recv() that waits forever.  A check never hangs
the notebook: after the limit it says what the code was probably waiting for.

When a report made by a lesson's check is first shown, one line (lesson, check,
passed or not, the first hint's first line) goes to the learner's own results
file: see socklab.results.
"""

import dataclasses
import threading

from socklab import results as learner_results

__all__ = ["NOT_WRITTEN", "Report", "TIME_LIMIT", "Verdict", "call_with_time_limit",
           "describe_error", "not_written"]

TIME_LIMIT = 5.0  # seconds the learner's function may take for one case

NOT_WRITTEN = "is it written yet?  Replace the `...` with your code."


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A judge's decision about one case: passed or not, the hint, and whether to go on.

    ``passed``  -- the case is right.
    ``hint``    -- for a failed case, what is wrong, in plain words (shown under FAIL).
    ``final``   -- for a failed case: the remaining cases would only repeat this
                   failure (the function is not written yet, it returns a str, it
                   never returns ...), so the check stops here.
    ``skipped`` -- the case could not be checked on this machine (no IPv6
                   loopback, say); ``hint`` says why.  Not a failure, and not
                   shown as a pass either: the report says SKIP.

    A passed verdict has no hint and is never final.  ``if verdict:`` is an
    error: say which you mean, ``verdict.passed`` or ``verdict.final``.
    """

    passed: bool
    hint: str = ""
    final: bool = False
    skipped: bool = False

    def __post_init__(self):
        if self.passed and (self.hint or self.final):
            raise ValueError("a passed verdict has no hint and is not final")
        if self.skipped and (self.passed or self.final or not self.hint):
            raise ValueError("a skipped verdict says why, and is neither passed nor final")

    @classmethod
    def ok(cls):
        """The case is right."""
        return cls(True)

    @classmethod
    def fail(cls, hint, final=False):
        """The case is wrong: ``hint`` says why; ``final`` stops the check here."""
        return cls(False, hint, final)

    @classmethod
    def skip(cls, why):
        """The case cannot be checked here: ``why`` says what this machine lacks."""
        return cls(False, why, skipped=True)

    @classmethod
    def not_written(cls, hint=NOT_WRITTEN):
        """Still the stub: a final failure with the "is it written yet?" hint."""
        return cls(False, hint, final=True)

    def final_if_failed(self):
        """This verdict, made final if it failed: for a case after which the
        remaining ones would learn nothing new (the same connection, say)."""
        return self if self.passed else dataclasses.replace(self, final=True)

    def __bool__(self):
        raise TypeError("a Verdict is neither true nor false: "
                        "use verdict.passed or verdict.final")


class Report:
    """The outcome of one exercise check; shown as text in the notebook."""

    def __init__(self, title):
        self.title = title
        self.results = []  # (description, Verdict), in the order checked
        # (lesson, check name) of the check making this report, for the
        # learner's results file (socklab.results); None outside a lesson check.
        self._exercise = learner_results.exercise_of_caller()

    def add(self, description, verdict):
        """Record ``verdict`` for the case ``description``; return the verdict."""
        if not isinstance(verdict, Verdict):
            raise TypeError(f"report.add(description, verdict) takes a Verdict, not {verdict!r}")
        self.results.append((description, verdict))
        return verdict

    @property
    def ok(self):
        """Every case passed, or could not be checked here; at least one passed."""
        return (any(verdict.passed for _, verdict in self.results)
                and not self.failures)

    @property
    def failures(self):
        """(description, hint) of every failed case, in order."""
        return [(description, verdict.hint) for description, verdict in self.results
                if not verdict.passed and not verdict.skipped]

    def __repr__(self):
        if self._exercise is not None:
            # A check's report is shown once, when the check is done: that
            # showing is one attempt.  Recording here, in the one place every
            # check passes through, spares the ~35 checks a line each.
            lesson, exercise = self._exercise
            self._exercise = None
            learner_results.record(lesson, exercise, self.ok,
                                   self.failures[0][1] if self.failures else "")
        lines = [self.title]
        for description, verdict in self.results:
            label = "SKIP" if verdict.skipped else "PASS" if verdict.passed else "FAIL"
            lines.append(f"  {label}  {description}")
            if not verdict.passed:
                lines.extend(f"        {line}" for line in verdict.hint.splitlines())
        failed = len(self.failures)
        skipped = sum(verdict.skipped for _, verdict in self.results)
        checked = len(self.results) - skipped
        if failed:
            lines.append(f"{failed} of {checked} checks failed.")
        else:
            lines.append(f"All {checked} checks passed.")
        if skipped:
            lines[-1] += f"  {skipped} could not be checked on this machine."
        return "\n".join(lines)


class _Outcome:
    """What calling the learner's function produced: a value, an error, or nothing."""

    def __init__(self):
        self.value = None
        self.error = None
        self.finished = False


def call_with_time_limit(function, *args, limit=TIME_LIMIT):
    """Call ``function(*args)`` in a thread named "socklab check"; wait ``limit`` s.

    Returns (outcome, thread).  ``outcome.finished`` is False if it is still
    running: the thread is a daemon, and the check decides how to end it.
    """
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


def not_written(outcome):
    """A stub: the body is still `...` (returns None or Ellipsis) or raises NotImplementedError.

    A call that has not returned yet is not a stub: it is judged as a hang.
    """
    if not outcome.finished:
        return False
    if outcome.error is None:
        return outcome.value is None or outcome.value is Ellipsis
    return isinstance(outcome.error, NotImplementedError)
