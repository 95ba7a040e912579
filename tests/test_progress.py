"""socklab.Progress: a bar in a notebook, one rewritten line in a terminal."""

import io

import pytest

from socklab import Progress


def test_terminal_progress_counts_steps_and_ends_with_a_line():
    out = io.StringIO()
    with Progress("measuring", 3, stream=out) as step:
        step("C")
        step("Python")
        step()
    text = out.getvalue()
    assert "measuring: 0 of 3" in text
    assert "measuring: 1 of 3 (C)" in text
    assert "measuring: 2 of 3 (Python)" in text
    assert text.rstrip().splitlines()[-1].strip().startswith("measuring: 3 of 3, ")


def test_more_steps_than_total_do_not_overflow():
    out = io.StringIO()
    with Progress("x", 1, stream=out) as step:
        step()
        step()
    assert step.done == 1


def test_zero_total_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Progress("x", 0)


def test_an_exception_still_ends_the_line_and_propagates():
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress("x", 2, stream=out) as step:
            step()
            raise RuntimeError("boom")
    assert out.getvalue().endswith("\n")
    assert "x: 1 of 2, " in out.getvalue()
