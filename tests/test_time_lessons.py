"""tools/time_lessons.py: the figures of the instructor guide's timing table."""

import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import time_lessons  # noqa: E402


def lesson(tmp_path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    path = tmp_path / "99-test.ipynb"
    nbformat.write(nb, path)
    return path


def test_class_estimate_counts_prose_code_and_exercises_by_the_stated_rule(tmp_path):
    prose = " ".join(["word"] * 1200)  # 10 minutes at 120 words a minute
    path = lesson(tmp_path, [
        nbformat.v4.new_markdown_cell("# 99 · Test\n\nIt takes about 30 minutes.\n"),
        nbformat.v4.new_markdown_cell(prose),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("def f():\n    ...  # your code here\n\ncheck_f(f)"),
        nbformat.v4.new_code_cell("check_f(f)"),  # a solution: no stub, no exercise
        nbformat.v4.new_code_cell("%%c my_server --compile-only\n/* your code here */"),
        nbformat.v4.new_code_cell("check_server_c('my_server')"),
    ])
    minutes, words, code_cells, exercises = time_lessons.class_minutes(path)
    assert (code_cells, exercises) == (5, 2)
    assert words > 1200
    assert minutes == 35  # 10.1 + 5 + 2 * 10, to the nearest 5
    assert time_lessons.stated_minutes(path) == "30 min"


def test_a_lesson_that_states_no_time_says_so(tmp_path):
    path = lesson(tmp_path, [nbformat.v4.new_markdown_cell("# 99 · Test")])
    assert time_lessons.stated_minutes(path) == "-"


def test_every_lesson_states_its_time():
    for path in sorted((ROOT / "notebooks" / "en").glob("[0-9]*.ipynb")):
        assert time_lessons.stated_minutes(path) != "-", path.name


def test_a_going_further_section_is_left_out_of_the_class_estimate(tmp_path):
    prose = " ".join(["word"] * 1200)  # 10 minutes at 120 words a minute
    path = lesson(tmp_path, [
        nbformat.v4.new_markdown_cell("# 99 · Test\n\nIt takes about 15 minutes.\n"),
        nbformat.v4.new_markdown_cell(f"## Core\n\n{prose}"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell(f"## Going further\n\n{prose}"),
        nbformat.v4.new_code_cell("y = 2"),
        nbformat.v4.new_markdown_cell("## Clean up"),
        nbformat.v4.new_code_cell("del x"),
    ])
    assert time_lessons.class_minutes(path)[2] == 2  # x = 1 and del x
    assert time_lessons.class_minutes(path)[0] == 10  # 10 + 2, to the nearest 5
    assert time_lessons.further_minutes(path) == 10  # 10 + 1


def test_every_lesson_states_an_honest_time():
    """What a lesson's opening says is within 25 % of the estimate for its core."""
    for path in sorted((ROOT / "notebooks" / "en").glob("[0-9]*.ipynb")):
        stated = int(time_lessons.stated_minutes(path).split()[0])
        estimate = time_lessons.class_minutes(path)[0]
        assert abs(stated - estimate) <= 0.25 * estimate, (path.name, stated, estimate)
        chinese = nbformat.read(ROOT / "notebooks" / "zh" / path.name, as_version=4)
        assert f"{stated} 分钟" in chinese.cells[0].source, f"zh/{path.name} says another time"


def test_every_going_further_section_is_collapsed_in_both_editions():
    """JupyterLab shows a heading collapsed when its cell says so; make execute keeps it."""
    found = 0
    for path in sorted(ROOT.glob("notebooks/*/[0-9]*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown" and cell.source.startswith(
                    ("## Going further", "## 深入一步")):
                found += 1
                assert cell.metadata.get("jp-MarkdownHeadingCollapsed") is True, path.name
    assert found >= 2  # lessons have such sections, in both editions
