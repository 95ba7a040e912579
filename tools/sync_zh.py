"""Keep the Chinese lessons (notebooks/zh) in step with the English ones (notebooks/en).

    python tools/sync_zh.py                       # bring every Chinese lesson in line
    python tools/sync_zh.py 00-start-here.ipynb   # only this lesson (a name or a path)
    python tools/sync_zh.py --check               # change nothing: list problems, exit 1 if any
    python tools/sync_zh.py --mark-translated 00-start-here.ipynb 4 6
                                                  # cells 4 and 6 now translate the current English

Why a tool
----------
English is the source of truth.  Code comments and program output are English in both
editions, so a Chinese lesson has exactly the same code cells, with exactly the same
stored outputs, as its English original (nbval checks both editions against those
outputs); only the prose -- the markdown cells -- is translated.  Copying code by hand
drifts; so this script copies it, and a test (tests/test_editions.py) runs the check,
which makes `make test` fail as soon as the two editions disagree.

What a sync does
----------------
The Chinese notebook gets the same file name and the same cells, in the same order,
with the same cell ids (nbformat 4.5) as the English one.  Cells are matched by id, so
an edited, moved, added or deleted English cell finds its Chinese counterpart.

* Code and raw cells are copied from English exactly: source, outputs, execution
  count, metadata.  Notebook metadata is copied too.
* A markdown cell keeps its Chinese text and records which English text it
  translates: the first 12 hex digits of the SHA-256 of the English cell's source, in
  its metadata as ``socklab: {"en_sha": "..."}``.  Its other metadata (tags, ...) is
  copied from English.
* A new English markdown cell becomes a Chinese cell holding the English text under
  the line ``<!-- TODO 翻译 (translate) -->``, with ``en_sha`` "" (untranslated).  As long
  as such a cell contains no Chinese at all, later syncs refresh it from the current
  English text; sync never overwrites Chinese writing.
* When an English markdown cell changes, its hash no longer matches the recorded one:
  the translation is *stale*.  Sync keeps the Chinese text as it is (the mismatch
  itself is the mark) and the check reports it until the translation is updated.
* Cells deleted in English are dropped; a missing Chinese lesson is created.  A
  Chinese lesson without an English original is reported, never deleted.

Files are written with nbformat (indent 1, sorted keys), and only when they change,
so diffs stay small.

The check (--check)
-------------------
Reports, with the lesson, the cell (its index and first words) and what to do: a
missing or extra Chinese lesson, cells that are not the same or not in the same order,
a code or raw cell (or its output) that differs from English, different metadata,
and markdown cells that are untranslated (TODO) or stale.  Cells are counted from 0,
as in ``nb.cells``; the index is the same in both editions once they are in sync.

A translator's round
--------------------
1. ``python tools/sync_zh.py`` (after the English lesson changed)
2. ``python tools/sync_zh.py --check`` lists the cells to translate or update.
3. Edit the Chinese cell in notebooks/zh (remove the TODO line of a new cell), using
   the terms in docs/glossary.md.  For a stale cell, ``git log -p`` on the English
   lesson shows what changed.
4. ``python tools/sync_zh.py --mark-translated LESSON INDEX ...`` records that those
   cells now translate the current English text; the check passes again.

Standard library and nbformat only.
"""

import argparse
import copy
import hashlib
import pathlib
import re
import sys
from typing import NamedTuple, Optional

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
EN_DIR = ROOT / "notebooks" / "en"
ZH_DIR = ROOT / "notebooks" / "zh"
TODO_MARKER = "<!-- TODO 翻译 (translate) -->"
# CJK ideographs and full-width punctuation: "this text has Chinese in it".
CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
SYNC = "python tools/sync_zh.py"


class SyncError(Exception):
    """Something the maintainer must fix by hand; the message says what."""


class Problem(NamedTuple):
    lesson: str
    cell: Optional[int]  # index of the cell (English numbering), None: the whole lesson
    kind: str  # missing | extra | cells | metadata | copy | untranslated | stale
    message: str

    def __str__(self):
        return self.message


# -- small pieces ---------------------------------------------------------------


def en_sha(source):
    """The hash a Chinese cell records: SHA-256 of the English source, 12 hex digits."""
    if isinstance(source, list):
        source = "".join(source)
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def first_words(source, limit=40):
    """The first line of a cell, without markdown markup, short enough for a message."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    lines = [line for line in lines if line != TODO_MARKER]
    text = lines[0].replace("**", "").lstrip("#>-| ").strip() if lines else "(empty)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(path):
    """A path as messages show it: relative to the checkout when it is inside."""
    path = pathlib.Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def recorded_sha(cell):
    """The en_sha a Chinese markdown cell records, or None when it records none."""
    return cell.metadata.get("socklab", {}).get("en_sha")


def with_record(metadata, sha):
    """A copy of (English) cell metadata with socklab.en_sha set to sha."""
    metadata = copy.deepcopy(metadata)
    metadata["socklab"] = nbformat.from_dict({**metadata.get("socklab", {}), "en_sha": sha})
    return metadata


def without_record(metadata):
    """A copy of (Chinese) cell metadata without socklab.en_sha, to compare with English."""
    metadata = copy.deepcopy(metadata)
    socklab = metadata.pop("socklab", {})
    socklab.pop("en_sha", None)
    if socklab:
        metadata["socklab"] = socklab
    return metadata


def body_of_todo(source):
    """The text under the TODO line, or None when the cell does not start with it."""
    first, _, rest = source.partition("\n")
    return rest if first.strip() == TODO_MARKER else None


def is_untouched_todo(cell):
    """A TODO cell nobody has started translating: sync may refresh it from English."""
    body = body_of_todo(cell.source)
    return body is not None and not CHINESE.search(body)


def lesson_name(arg):
    """'notebooks/en/00-start-here.ipynb', '00-start-here.ipynb', '00-start-here' -> file name."""
    name = pathlib.Path(arg).name
    return name if name.endswith(".ipynb") else name + ".ipynb"


def lesson_names(lessons, en_dir):
    if not lessons:
        return sorted(path.name for path in pathlib.Path(en_dir).glob("*.ipynb"))
    names = [lesson_name(arg) for arg in lessons]
    for name in names:
        if not (pathlib.Path(en_dir) / name).exists():
            raise SyncError(f"there is no English lesson {shown(pathlib.Path(en_dir) / name)}")
    return names


def read(path):
    return nbformat.read(path, as_version=4)


def notebook_text(nb):
    """The file's text exactly as nbformat.write would write it."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_if_changed(nb, path):
    """Write nb to path unless the file already holds exactly that; True if written."""
    text = notebook_text(nb)
    path = pathlib.Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def id_trouble(nb):
    """Why the cells of nb cannot be matched by id, or None when they can."""
    ids = [cell.get("id") for cell in nb.cells]
    if None in ids:
        return "has cells without an id (nbformat before 4.5)"
    if len(set(ids)) != len(ids):
        return "has two cells with the same id"
    return None


def english(name, en_dir):
    """The English lesson, refused when its cells cannot be matched by id."""
    path = pathlib.Path(en_dir) / name
    nb = read(path)
    trouble = id_trouble(nb)
    if trouble:
        raise SyncError(
            f"{shown(path)} {trouble}: save it with nbformat 4.5 (JupyterLab 3 or newer) "
            f"so that every cell has its own id, then run `{SYNC}` again"
        )
    return nb


# -- sync -----------------------------------------------------------------------


def todo_cell(en_cell):
    """The Chinese cell for an English markdown cell nobody has translated yet."""
    cell = nbformat.v4.new_markdown_cell(
        source=f"{TODO_MARKER}\n{en_cell.source}",
        metadata=with_record(en_cell.metadata, ""),
    )
    cell.id = en_cell.id
    if "attachments" in en_cell:
        cell.attachments = copy.deepcopy(en_cell.attachments)
    return cell


def translated_cell(en_cell, zh_cell):
    """zh_cell's text (and attachments) and record, with metadata from English."""
    cell = nbformat.v4.new_markdown_cell(
        source=zh_cell.source,
        metadata=with_record(en_cell.metadata, recorded_sha(zh_cell) or ""),
    )
    cell.id = en_cell.id
    if "attachments" in zh_cell:
        cell.attachments = copy.deepcopy(zh_cell.attachments)
    return cell


def sync_cell(en_cell, zh_cell):
    """The Chinese cell for en_cell; zh_cell is the current one with its id, or None."""
    if en_cell.cell_type != "markdown":
        return copy.deepcopy(en_cell)
    if zh_cell is None or zh_cell.cell_type != "markdown" or is_untouched_todo(zh_cell):
        return todo_cell(en_cell)
    return translated_cell(en_cell, zh_cell)


def sync_notebook(en_nb, zh_nb=None):
    """A new Chinese notebook in line with en_nb, keeping the translations in zh_nb."""
    zh_by_id = {cell.id: cell for cell in (zh_nb.cells if zh_nb else []) if "id" in cell}
    nb = nbformat.v4.new_notebook()
    nb.nbformat, nb.nbformat_minor = en_nb.nbformat, en_nb.nbformat_minor
    nb.metadata = copy.deepcopy(en_nb.metadata)
    nb.cells = [sync_cell(cell, zh_by_id.get(cell.id)) for cell in en_nb.cells]
    return nb


def what_changed(old, new):
    """'2 cells added, 1 dropped, 3 changed' between two versions of a Chinese notebook."""
    old_cells = {cell.get("id"): cell for cell in old.cells}
    new_ids = {cell.id for cell in new.cells}
    added = sum(cell.id not in old_cells for cell in new.cells)
    dropped = sum(cell_id not in new_ids for cell_id in old_cells)
    changed = sum(cell.id in old_cells and old_cells[cell.id] != cell for cell in new.cells)
    parts = [f"{n} {what}" for n, what in ((added, "added"), (dropped, "dropped"), (changed, "changed")) if n]
    if [cell.get("id") for cell in old.cells] != [cell.id for cell in new.cells] and not (added or dropped):
        parts.append("reordered")
    return ", ".join(parts) or "notebook metadata"


def sync(lessons=None, en_dir=EN_DIR, zh_dir=ZH_DIR):
    """Bring the Chinese lessons in line with English; returns what it did, line by line."""
    report = []
    for name in lesson_names(lessons, en_dir):
        en_nb = english(name, en_dir)
        zh_path = pathlib.Path(zh_dir) / name
        old = read(zh_path) if zh_path.exists() else None
        new = sync_notebook(en_nb, old)
        if not write_if_changed(new, zh_path):
            report.append(f"{shown(zh_path)}: up to date")
        elif old is None:
            todo = sum(cell.cell_type == "markdown" for cell in new.cells)
            report.append(f"{shown(zh_path)}: created, {todo} markdown cells to translate")
        else:
            report.append(f"{shown(zh_path)}: updated ({what_changed(old, new)})")
    if not lessons:
        report += [str(p) for p in extra_lessons(en_dir, zh_dir)]
    return report


# -- check ----------------------------------------------------------------------


def extra_lessons(en_dir, zh_dir):
    english_names = {path.name for path in pathlib.Path(en_dir).glob("*.ipynb")}
    return [
        Problem(path.name, None, "extra",
                f"{shown(path)} has no English original in {shown(en_dir)}: "
                f"delete it (git rm) if the lesson was removed, or add the English lesson")
        for path in sorted(pathlib.Path(zh_dir).glob("*.ipynb"))
        if path.name not in english_names
    ]


def check_cells_match(name, en_nb, zh_nb):
    """Problems with which cells the Chinese lesson has, and in which order."""
    en_ids = [cell.id for cell in en_nb.cells]
    zh_ids = [cell.get("id") for cell in zh_nb.cells]
    if en_ids == zh_ids:
        return []
    problems = [Problem(name, None, "cells",
                        f"{name}: {len(en_ids)} cells in English, {len(zh_ids)} in Chinese, not the "
                        f"same cells in the same order: run `{SYNC} {name}`")]
    for index, cell in enumerate(en_nb.cells):
        if cell.id not in zh_ids:
            problems.append(Problem(name, index, "cells",
                                    f"{name}: cell {index} ({first_words(cell.source)}) is missing "
                                    f"in Chinese: run `{SYNC} {name}`"))
    for index, cell in enumerate(zh_nb.cells):
        if cell.get("id") not in en_ids:
            problems.append(Problem(name, None, "cells",
                                    f"{name}: Chinese cell {index} ({first_words(cell.source)}, id "
                                    f"{cell.get('id')}) has no English cell: run `{SYNC} {name}` "
                                    f"to drop it"))
    if len(problems) == 1:
        problems.append(Problem(name, None, "cells",
                                f"{name}: the cells are in another order than in English: "
                                f"run `{SYNC} {name}`"))
    return problems


def check_copied_cell(name, index, en_cell, zh_cell):
    """A code or raw cell must be the English one, exactly."""
    if zh_cell == en_cell:
        return []
    parts = [key for key in ("source", "outputs", "execution_count", "metadata", "attachments")
             if en_cell.get(key) != zh_cell.get(key)] or ["cell"]
    return [Problem(name, index, "copy",
                    f"{name}: {en_cell.cell_type} cell {index} ({first_words(en_cell.source)}): "
                    f"{', '.join(parts)} differ from English: run `{SYNC} {name}` to copy it")]


def check_translated_cell(name, index, en_cell, zh_cell, en_path, zh_path):
    """A markdown cell must translate the current English text (and say so)."""
    where = f"{name}: cell {index} ({first_words(en_cell.source)})"
    mark = f"`{SYNC} --mark-translated {name} {index}`"
    problems = []
    if without_record(zh_cell.metadata) != en_cell.metadata:
        problems.append(Problem(name, index, "metadata",
                                f"{where}: metadata differs from English: run `{SYNC} {name}`"))
    sha = recorded_sha(zh_cell)
    if not sha:
        problems.append(Problem(name, index, "untranslated",
                                f"{where} is not translated yet: translate cell {index} in "
                                f"{shown(zh_path)} (drop the TODO line), then run {mark}"))
    elif body_of_todo(zh_cell.source) is not None:
        problems.append(Problem(name, index, "untranslated",
                                f"{where} still starts with the TODO line: finish the translation, "
                                f"remove that line, then run {mark}"))
    elif sha != en_sha(en_cell.source):
        problems.append(Problem(name, index, "stale",
                                f"{where} is stale: the English text changed since it was "
                                f"translated (`git log -p {shown(en_path)}` shows how); "
                                f"update cell {index} in {shown(zh_path)}, then run {mark}"))
    return problems


def check_notebook(name, en_nb, zh_nb, en_dir=EN_DIR, zh_dir=ZH_DIR):
    """Every way the Chinese lesson zh_nb differs from what English en_nb asks for."""
    en_path, zh_path = pathlib.Path(en_dir) / name, pathlib.Path(zh_dir) / name
    problems = check_cells_match(name, en_nb, zh_nb)
    if (en_nb.metadata, en_nb.nbformat, en_nb.nbformat_minor) != (
        zh_nb.metadata, zh_nb.nbformat, zh_nb.nbformat_minor
    ):
        problems.append(Problem(name, None, "metadata",
                                f"{name}: notebook metadata differs from English: run `{SYNC} {name}`"))
    zh_by_id = {cell.get("id"): cell for cell in zh_nb.cells}
    for index, en_cell in enumerate(en_nb.cells):
        zh_cell = zh_by_id.get(en_cell.id)
        if zh_cell is None:
            continue  # reported above
        if zh_cell.cell_type != en_cell.cell_type:
            problems.append(Problem(name, index, "cells",
                                    f"{name}: cell {index} ({first_words(en_cell.source)}) is a "
                                    f"{en_cell.cell_type} cell in English but a {zh_cell.cell_type} "
                                    f"cell in Chinese: run `{SYNC} {name}`"))
        elif en_cell.cell_type == "markdown":
            problems += check_translated_cell(name, index, en_cell, zh_cell, en_path, zh_path)
        else:
            problems += check_copied_cell(name, index, en_cell, zh_cell)
    return problems


def check(lessons=None, en_dir=EN_DIR, zh_dir=ZH_DIR):
    """Every problem between the two editions (of the given lessons; default: all)."""
    problems = []
    for name in lesson_names(lessons, en_dir):
        zh_path = pathlib.Path(zh_dir) / name
        if not zh_path.exists():
            problems.append(Problem(name, None, "missing",
                                    f"{name}: {shown(zh_path)} is missing: run `{SYNC} {name}`, "
                                    f"then translate its markdown cells"))
            continue
        en_nb = read(pathlib.Path(en_dir) / name)
        trouble = id_trouble(en_nb)
        if trouble:
            problems.append(Problem(name, None, "cells",
                                    f"{name}: {shown(pathlib.Path(en_dir) / name)} {trouble}: save "
                                    f"it with nbformat 4.5 so that every cell has an id"))
            continue
        problems += check_notebook(name, en_nb, read(zh_path), en_dir, zh_dir)
    if not lessons:
        problems += extra_lessons(en_dir, zh_dir)
    return problems


# -- mark translated ------------------------------------------------------------


def mark_translated(lesson, indices, en_dir=EN_DIR, zh_dir=ZH_DIR):
    """Record that these Chinese cells translate the current English text."""
    name = lesson_names([lesson], en_dir)[0]
    en_nb = english(name, en_dir)
    zh_path = pathlib.Path(zh_dir) / name
    if not zh_path.exists():
        raise SyncError(f"{shown(zh_path)} does not exist: run `{SYNC} {name}` first")
    zh_nb = read(zh_path)
    if [cell.id for cell in en_nb.cells] != [cell.get("id") for cell in zh_nb.cells]:
        raise SyncError(f"{name}: the Chinese cells are not those of English: run `{SYNC} {name}` "
                        f"first, then check the cell numbers with `{SYNC} --check {name}`")
    report = []
    for index in indices:
        if not 0 <= index < len(en_nb.cells):
            raise SyncError(f"{name}: there is no cell {index} (cells are 0 to {len(en_nb.cells) - 1})")
        en_cell, zh_cell = en_nb.cells[index], zh_nb.cells[index]
        if en_cell.cell_type != "markdown" or zh_cell.cell_type != "markdown":
            raise SyncError(f"{name}: cell {index} is a {en_cell.cell_type} cell; only markdown is "
                            f"translated (code is copied by `{SYNC}`)")
        if body_of_todo(zh_cell.source) is not None:
            raise SyncError(f"{name}: cell {index} ({first_words(en_cell.source)}) still starts with "
                            f"the TODO line: translate it and remove that line first")
        zh_cell.metadata = with_record(zh_cell.metadata, en_sha(en_cell.source))
        report.append(f"{name}: cell {index} ({first_words(en_cell.source)}) marked as translating "
                      f"the current English text")
    write_if_changed(zh_nb, zh_path)
    return report


# -- command line ---------------------------------------------------------------


def to_translate(problems):
    """The --mark-translated command for each lesson's untranslated or stale cells."""
    cells = {}
    for problem in problems:
        if problem.kind in ("untranslated", "stale"):
            cells.setdefault(problem.lesson, []).append(str(problem.cell))
    return [f"  {SYNC} --mark-translated {name} {' '.join(found)}" for name, found in cells.items()]


def run_check(lessons, en_dir, zh_dir):
    problems = check(lessons, en_dir, zh_dir)
    for problem in problems:
        print(problem)
    if not problems:
        count = len(lesson_names(lessons, en_dir))
        print(f"{shown(zh_dir)} is in step with {shown(en_dir)} ({count} lessons)")
        return 0
    print(f"\n{len(problems)} problem(s).")
    commands = to_translate(problems)
    if commands:
        print("Once those cells are translated, record it with:")
        print("\n".join(commands))
    return 1


def run_sync(lessons, en_dir, zh_dir):
    for line in sync(lessons, en_dir, zh_dir):
        print(line)
    left = [p for p in check(lessons, en_dir, zh_dir) if p.kind in ("untranslated", "stale")]
    if left:
        print(f"{len(left)} markdown cell(s) to translate or update: `{SYNC} --check` lists them")
    return 0


def run_mark_translated(args, en_dir, zh_dir):
    if len(args) < 2:
        raise SyncError("--mark-translated needs a lesson and at least one cell number, "
                        f"e.g. `{SYNC} --mark-translated 00-start-here.ipynb 4 6`")
    try:
        indices = [int(arg) for arg in args[1:]]
    except ValueError:
        raise SyncError(f"cell numbers must be whole numbers, not {' '.join(args[1:])}") from None
    for line in mark_translated(args[0], indices, en_dir, zh_dir):
        print(line)
    return 0


def main(argv=None, en_dir=EN_DIR, zh_dir=ZH_DIR):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Cells are counted from 0. More in the module docstring (tools/sync_zh.py).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="change nothing; print every problem and exit 1 if there is one")
    mode.add_argument("--mark-translated", action="store_true",
                      help="arguments LESSON INDEX...: those Chinese cells now translate the "
                           "current English text")
    parser.add_argument("args", nargs="*", metavar="LESSON",
                        help="lesson file names or paths (default: every English lesson)")
    options = parser.parse_args(argv)
    try:
        if options.mark_translated:
            return run_mark_translated(options.args, en_dir, zh_dir)
        if options.check:
            return run_check(options.args, en_dir, zh_dir)
        return run_sync(options.args, en_dir, zh_dir)
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
