"""The checked C exercises: each check passes the lesson's own solution, says "is it
written yet?" for the stub, and names the usual wrong answers in plain words.

The exercises and their typical mistakes are listed per lesson in
tests/c_exercises/lessonNN.py.  The solution and the stub are read from the
lesson (English edition), so what is
tested is what a learner sees.  Each wrong answer is the solution with one
typical mistake put in by a text substitution; the test first asserts that the
substitution applied, so a reworded solution cannot silently make it a no-op.
"""

import pathlib

import nbformat
import pytest

from c_exercises import collect
from socklab import c

ROOT = pathlib.Path(__file__).resolve().parent.parent


EXERCISES = collect()


def cells(exercise):
    """(stub source, solution source) of the exercise's %%c cells, magic line dropped."""
    nb = nbformat.read(ROOT / "notebooks" / "en" / f"{exercise.lesson}.ipynb", as_version=4)
    found = [cell for cell in nb.cells if cell.cell_type == "code"
             and cell.source.startswith(f"%%c {exercise.program} ")]
    assert len(found) == 2, f"want a stub and a solution for {exercise.program}"
    stub, solution = (cell.source.partition("\n")[2] for cell in found)
    assert found[1].metadata.get("jupyter", {}).get("source_hidden"), "solution collapsed"
    return stub, solution


def run_check(exercise, source):
    c.compile(source, exercise.program)  # what the learner's %%c cell does
    return exercise.check(exercise.program)


def hints(report):
    return "\n".join(hint for _, hint in report.failures)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.lesson)
def test_the_solution_passes(exercise):
    report = run_check(exercise, cells(exercise)[1])
    assert report.ok, repr(report)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.lesson)
def test_the_stub_is_not_written_yet(exercise):
    report = run_check(exercise, cells(exercise)[0])
    assert not report.ok and "is it written yet?" in hints(report)
    assert len(report.results) == 1


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.lesson)
def test_a_compile_error_shows_gccs_words(exercise):
    broken = cells(exercise)[1].replace("return", "retrun", 1)
    report = run_check_allowing_compile_error(exercise, broken)
    assert "gcc refused it" in hints(report) and f"{exercise.program}.c:" in hints(report)


def run_check_allowing_compile_error(exercise, source):
    try:
        c.compile(source, exercise.program)
    except c.CompileError:
        pass  # the learner's cell showed gcc's messages; the check says it again
    return exercise.check(exercise.program)


@pytest.mark.parametrize(
    "exercise, mistake",
    [pytest.param(e, m, id=f"{e.lesson}-{m.id}") for e in EXERCISES for m in e.mistakes],
)
def test_a_typical_wrong_answer_is_named(exercise, mistake):
    solution = cells(exercise)[1]
    assert mistake.old in solution, f"the solution no longer has {mistake.old!r}"
    report = run_check(exercise, solution.replace(mistake.old, mistake.new, 1))
    assert not report.ok, repr(report)
    expected = (mistake.expected,) if isinstance(mistake.expected, str) else mistake.expected
    assert any(words in hints(report) for words in expected), repr(report)
