"""Exercise results: what each check said, kept in the learner's own data folder.

The first time a check's Report is shown, one line is appended to
``results.jsonl`` in the learner's data folder::

    {"time": "2025-05-01T09:12:03+00:00", "lesson": "05",
     "exercise": "check_echo_handler", "passed": false,
     "hint": "it never returned after the client closed ...", "user": "ada"}

The folder is ``$SOCKLAB_DATA`` if set, else ``$XDG_DATA_HOME/socklab``, else
``~/.local/share/socklab``.  Nothing here sends anything anywhere.  A learner reads
their own table with ``python -m socklab progress``; an instructor who has been
given learners' folders (a hub admin can read them all) makes one HTML page with
``python -m socklab class-report FOLDER... -o class.html``.

Recording must never get in the way of a check: a folder that cannot be written
(a read-only home) loses the line, silently, and the check goes on as before.
"""

import argparse
import collections
import datetime
import getpass
import html
import importlib
import json
import os
import pathlib
import pkgutil
import re
import sys

FILE_NAME = "results.jsonl"
_CHECK_MODULE = re.compile(r"socklab\.checks\.lesson(\d\d)")


# -- Recording -------------------------------------------------------------------


def data_folder():
    """The learner's data folder (it may not exist yet)."""
    if os.environ.get("SOCKLAB_DATA"):
        return pathlib.Path(os.environ["SOCKLAB_DATA"])
    if os.environ.get("XDG_DATA_HOME"):
        return pathlib.Path(os.environ["XDG_DATA_HOME"]) / "socklab"
    return pathlib.Path.home() / ".local" / "share" / "socklab"


def exercise_of_caller():
    """("05", "check_echo_handler") for the lesson check that is running, or None.

    A Report calls this when it is made: the nearest check_* function of a
    socklab.checks.lessonNN module on the stack is the exercise, so that no
    check has to name itself.
    """
    frame = sys._getframe(1)
    while frame is not None:
        match = _CHECK_MODULE.fullmatch(frame.f_globals.get("__name__", ""))
        if match and frame.f_code.co_name.startswith("check_"):
            return match.group(1), frame.f_code.co_name
        frame = frame.f_back
    return None


def _user():
    # On a hub every learner may run as the same Unix user; JupyterHub names them.
    try:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    except Exception:  # no name in the environment nor in /etc/passwd (a container)
        return ""


def record(lesson, exercise, passed, hint=""):
    """Append one result line; never raises, never prints."""
    first_line = (hint.strip().splitlines() or [""])[0][:300]
    line = json.dumps({
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "lesson": lesson, "exercise": exercise, "passed": bool(passed),
        "hint": first_line, "user": _user(),
    }) + "\n"
    try:
        folder = data_folder()
        folder.mkdir(parents=True, exist_ok=True)
        # O_APPEND and one write(): two kernels of one learner appending at
        # once each land a whole line at the end, never one inside the other.
        fd = os.open(folder / FILE_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except Exception:  # no home, read-only, full: the report matters more than its line
        pass


# -- Reading ---------------------------------------------------------------------


def read(folder):
    """The records in ``folder``'s results file (or in that file), oldest first.

    A line that is not whole JSON (a disk that filled up mid-line) is skipped.
    """
    path = pathlib.Path(folder)
    if path.is_dir():
        path = path / FILE_NAME
    records = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            item = json.loads(line)
            records.append({"time": item["time"], "lesson": item["lesson"],
                            "exercise": item["exercise"], "passed": bool(item["passed"]),
                            "hint": item.get("hint", ""), "user": item.get("user", "")})
        except (ValueError, KeyError, TypeError):
            continue
    return records


def course_exercises():
    """Every exercise of the course, (lesson, check name), in the lessons' order."""
    import socklab.checks  # not at the top: socklab.checks imports this module
    exercises = []
    for found in sorted(pkgutil.iter_modules(socklab.checks.__path__), key=lambda m: m.name):
        match = _CHECK_MODULE.fullmatch(f"socklab.checks.{found.name}")
        if match:
            module = importlib.import_module(match.group(0))
            exercises += [(match.group(1), name) for name, value in vars(module).items()
                          if name.startswith("check_") and callable(value)
                          and value.__module__ == module.__name__]
    return exercises


Summary = collections.namedtuple("Summary", "attempts first_pass last_hint")


def summarize(records):
    """{(lesson, exercise): Summary(attempts, time of first pass or None, last hint)}."""
    attempts = collections.Counter()
    first_pass, last_hint = {}, {}
    for item in records:
        key = (item["lesson"], item["exercise"])
        attempts[key] += 1
        last_hint[key] = item["hint"]
        if item["passed"] and key not in first_pass:
            first_pass[key] = item["time"]
    return {key: Summary(count, first_pass.get(key), last_hint[key])
            for key, count in attempts.items()}


def _columns(summaries):
    """The course's exercises, then any others found in the records (an older course)."""
    course = course_exercises()
    seen = set(course)
    extra = sorted({key for summary in summaries for key in summary} - seen)
    return course + extra


def _local_time(iso):
    """"2025-05-01 11:12" in this machine's time zone, from an ISO time in UTC."""
    try:
        return datetime.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(iso)


def _state(summary):
    if summary is None:
        return "not tried"
    return "passed" if summary.first_pass else "tried"


# -- python -m socklab progress ----------------------------------------------------


def progress_table(records):
    """The learner's table: every exercise, passed / tried / not tried."""
    summary = summarize(records)
    rows = [("lesson", "exercise", "result", "attempts", "first passed")]
    for key in _columns([summary]):
        found = summary.get(key)
        rows.append((key[0], key[1].removeprefix("check_"), _state(found),
                     str(found.attempts if found else 0),
                     _local_time(found.first_pass) if found and found.first_pass else ""))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    passed = sum(1 for found in summary.values() if found.first_pass)
    lines.append(f"\n{passed} of {len(rows) - 1} exercises passed.")
    return "\n".join(lines)


def progress_main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m socklab progress",
        description="Show your exercise results, as recorded on this machine.")
    parser.parse_args(argv)
    path = data_folder() / FILE_NAME
    print(f"Your results, from {path}:\n")
    print(progress_table(read(path)))
    return 0


# -- python -m socklab class-report ------------------------------------------------

_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>socklab: class report</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #bbb; padding: 0.25em 0.4em; vertical-align: top; }}
thead th {{ background: #eee; position: sticky; top: 0; }}
tbody th {{ background: #fff; position: sticky; left: 0; text-align: left; }}
td {{ white-space: nowrap; }}
th[data-sortable] {{ cursor: pointer; }}
td.passed {{ background: #d7f5d7; }}
td.tried {{ background: #fde9c4; }}
td.not-tried {{ color: #888; }}
small {{ display: block; color: #555; }}
</style>
</head>
<body>
<h1>socklab: class report</h1>
<p>{learners} learners, {exercises} exercises, made {made}.
Each cell: <b>passed</b> (attempts, time of the first pass), <b>tried</b> (attempts,
never passed yet) or <b>not tried</b>. Times are this machine's local time.
With JavaScript, a click on a column header sorts by that column.</p>
<table id="report">
<thead>
<tr>{header}</tr>
</thead>
<tbody>
{rows}
</tbody>
</table>
<script>
// Progressive enhancement: the table reads the same without this.
document.querySelectorAll("#report th[data-sortable]").forEach(function (th, column) {{
  th.addEventListener("click", function () {{
    var body = document.querySelector("#report tbody");
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.getAttribute("data-down") !== "1";
    th.setAttribute("data-down", down ? "1" : "0");
    rows.sort(function (a, b) {{
      var x = a.cells[column].getAttribute("data-sort");
      var y = b.cells[column].getAttribute("data-sort");
      var order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
      return down ? -order : order;
    }});
    rows.forEach(function (row) {{ body.appendChild(row); }});
  }});
}});
</script>
</body>
</html>
"""


def _learner_name(folder, records):
    """The user name in the newest record; else the home folder's name."""
    for item in reversed(records):
        if item["user"]:
            return item["user"]
    parts = pathlib.Path(folder).parts
    if parts[-3:] == (".local", "share", "socklab") and len(parts) > 3:
        return parts[-4]
    return pathlib.Path(folder).name or str(folder)


def _attempts(summary):
    return "1 attempt" if summary.attempts == 1 else f"{summary.attempts} attempts"


def _cell(summary):
    """One <td>: the words say it all; the class only colours it."""
    state = _state(summary)
    if summary is None:
        return '<td class="not-tried" data-sort="0">not tried</td>'
    if state == "tried":
        hint = html.escape(summary.last_hint, quote=True)
        return (f'<td class="tried" data-sort="{summary.attempts}" title="{hint}">'
                f"tried<small>{_attempts(summary)}</small></td>")
    when = html.escape(_local_time(summary.first_pass))
    # Passed sorts above every "tried"; the earlier pass first when sorted down.
    stamp = datetime.datetime.fromisoformat(summary.first_pass).timestamp()
    return (f'<td class="passed" data-sort="{1e10 - stamp:.0f}">'
            f"passed<small>{_attempts(summary)}</small><small>{when}</small></td>")


def class_report_html(folders):
    """One static HTML page: a row per learner's folder, a column per exercise."""
    learners = []
    for folder in folders:
        records = read(folder)
        learners.append((_learner_name(folder, records), str(folder), summarize(records)))
    columns = _columns([summary for _, _, summary in learners])
    # data-down="1": the first click sorts names A to Z, numbers high to low.
    header = ['<th data-sortable data-down="1" scope="col">learner</th>',
              '<th data-sortable scope="col">passed</th>']
    header += [f'<th data-sortable scope="col">{html.escape(lesson)}'
               f"<small>{html.escape(exercise.removeprefix('check_'))}</small></th>"
               for lesson, exercise in columns]
    rows = []
    for name, folder, summary in learners:
        passed = sum(1 for found in summary.values() if found.first_pass)
        cells = [f'<th scope="row" data-sort="{html.escape(name, quote=True)}">'
                 f"{html.escape(name)}<small>{html.escape(folder)}</small></th>",
                 f'<td data-sort="{passed}">{passed}</td>']
        cells += [_cell(summary.get(key)) for key in columns]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    made = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    return _PAGE.format(learners=len(learners), exercises=len(columns), made=made,
                        header="".join(header), rows="\n".join(rows))


def class_report_main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m socklab class-report",
        description="One HTML page of many learners' results, for an instructor.")
    parser.add_argument("folders", nargs="+", metavar="FOLDER",
                        help="a learner's data folder, or a folder holding a results.jsonl")
    parser.add_argument("-o", "--output", default="class-report.html",
                        help="the page to write (default: %(default)s)")
    args = parser.parse_args(argv)
    folders = [folder for folder in args.folders if pathlib.Path(folder).exists()]
    for missing in sorted(set(args.folders) - set(folders)):
        print(f"no such folder, left out: {missing}", file=sys.stderr)
    if not folders:
        return 1
    pathlib.Path(args.output).write_text(class_report_html(folders), encoding="utf-8")
    print(f"wrote {args.output}: {len(folders)} learners")
    return 0
