"""How long each lesson takes: measured run time, and a class-time estimate.

    python tools/time_lessons.py [notebooks/en/*.ipynb]

For each lesson it runs every cell in a fresh kernel (nothing is stored: the
notebooks are not changed) and prints a Markdown table for docs/instructor.md:

- run time: "Run All" on this machine, measured, in seconds;
- the longest cell, so an instructor knows where a class will wait;
- what the lesson's opening says it takes (a learner alone, at their own pace);
- a class-time estimate, from the size of the lesson's core, by a rule stated in
  the table's footnote (prose read at 120 words a minute, one minute per code cell
  to run and look at, ten minutes per exercise). It is a planning figure, not a
  measurement of learners;
- the same estimate for its optional, collapsed "Going further" section.
"""

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

WORDS_PER_MINUTE = 120
MINUTES_PER_CODE_CELL = 1
MINUTES_PER_EXERCISE = 10


def run_time(path):
    """(total seconds, (seconds, first line) of the slowest cell) for one lesson."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(Path(path).parent)}})
    slowest = (0.0, "")
    with client.setup_kernel():
        started = time.monotonic()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            t = time.monotonic()
            client.execute_cell(cell, index)
            took = time.monotonic() - t
            if took > slowest[0]:
                slowest = (took, (cell.source.splitlines() or [""])[0])
        total = time.monotonic() - started
    return total, slowest


GOING_FURTHER = "## Going further"  # a lesson's optional section, collapsed


def core_and_further(nb):
    """The lesson's cells split in two: its core, and its Going further section.

    The section starts at a Markdown cell whose first line is GOING_FURTHER and
    ends at the next heading of its level (or the end); JupyterLab shows it
    collapsed (metadata jp-MarkdownHeadingCollapsed), and a learner may skip it.
    """
    core, further, inside = [], [], False
    for cell in nb.cells:
        first = (cell.source.splitlines() or [""])[0]
        if cell.cell_type == "markdown" and first.startswith("## "):
            inside = first.startswith(GOING_FURTHER)
        (further if inside else core).append(cell)
    return core, further


def minutes_of(cells):
    """(minutes to the nearest 5, prose words, code cells, exercises) of some cells."""
    words = sum(len(re.findall(r"\w+", c.source)) for c in cells if c.cell_type == "markdown")
    code_cells = sum(c.cell_type == "code" for c in cells)
    # An exercise is a stub cell ("your code here") that calls a checker, or a
    # C stub (a %%c cell) whose check is the next cell.
    exercises = sum("your code here" in c.source
                    and (bool(re.search(r"\bcheck_\w+\(", c.source))
                         or c.source.startswith("%%c "))
                    for c in cells if c.cell_type == "code")
    minutes = (words / WORDS_PER_MINUTE + code_cells * MINUTES_PER_CODE_CELL
               + exercises * MINUTES_PER_EXERCISE)
    return round(minutes / 5) * 5, words, code_cells, exercises


def class_minutes(path):
    """The planning estimate of the lesson's core: reading, running and exercises."""
    core, _ = core_and_further(nbformat.read(path, as_version=4))
    return minutes_of(core)


def further_minutes(path):
    """The same estimate for the lesson's Going further section (0 if it has none)."""
    _, further = core_and_further(nbformat.read(path, as_version=4))
    return minutes_of(further)[0]


def stated_minutes(path):
    """What the lesson's opening says it takes ("It takes about 45 minutes")."""
    nb = nbformat.read(path, as_version=4)
    match = re.search(r"takes about (\d+) minutes", nb.cells[0].source)
    return f"{match[1]} min" if match else "-"


def main(paths):
    # The lessons' checks record their results (socklab.results): timing a lesson
    # is no learner's attempt, so the records go to a folder that vanishes.
    results = tempfile.TemporaryDirectory(prefix="socklab-timing-")
    os.environ["SOCKLAB_DATA"] = results.name
    print("| lesson | run time (Run All) | longest cell | prose words | code cells "
          "| exercises | the lesson says | class time (estimate) | going further |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        total, (slow_s, slow_line) = run_time(path)
        minutes, words, cells, exercises = class_minutes(path)
        name = Path(path).stem
        print(f"| {name} | {total:.0f} s | {slow_s:.0f} s `{slow_line[:40]}` | {words} "
              f"| {cells} | {exercises} | {stated_minutes(path)} | {minutes} min "
              f"| {further_minutes(path)} min |",
              flush=True)


if __name__ == "__main__":
    if any(arg.startswith("-") for arg in sys.argv[1:]):
        sys.exit(__doc__)  # --help, or an option it does not have: say how to call it
    main(sys.argv[1:] or sorted(str(p) for p in Path("notebooks/en").glob("*.ipynb")))
