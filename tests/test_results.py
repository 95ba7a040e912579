"""Exercise results: real checks record their outcome; a learner and an instructor read them.

The checks run on real sockets on loopback (lesson 03's make_listener); the
commands run as a learner or an instructor would run them, in a new process.
"""

import datetime
import html.parser
import json
import os
import socket
import subprocess
import sys
import time

from socklab import results
from test_checks_lesson03 import make_listener_right  # the lesson's right answer
from socklab.checks import lesson03
from socklab.checks.report import Report, Verdict

TIMEOUT = 60


def make_listener_no_listen(host, backlog):
    """A learner's answer that forgets listen() (IPv4 or IPv6, as the check asks)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


NO_LISTEN_HINT = "it is bound but not listening: call listen(backlog)."


def lines_in(folder):
    return (folder / "results.jsonl").read_text().splitlines()


def check_as(monkeypatch, folder, user, make_listener):
    """Run lesson 03's check as ``user`` with ``folder`` as their data folder; show it."""
    monkeypatch.setenv("SOCKLAB_DATA", str(folder))
    monkeypatch.setenv("JUPYTERHUB_USER", user)
    report = lesson03.check_make_listener(make_listener)
    repr(report)  # what the notebook does with the value a cell ends with
    return report


def run_socklab(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "socklab", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT)


# -- Recording ---------------------------------------------------------------------


def test_a_shown_check_appends_one_line(monkeypatch, tmp_path):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    wrong = check_as(monkeypatch, tmp_path, "ada", make_listener_no_listen)
    right = check_as(monkeypatch, tmp_path, "ada", make_listener_right)
    repr(right)  # shown again: still one attempt
    Report("made outside a lesson's check").add("a case", Verdict.fail("no"))

    assert not wrong.ok and right.ok
    first, second = [json.loads(line) for line in lines_in(tmp_path)]
    assert {key: first[key] for key in first if key != "time"} == {
        "lesson": "03", "exercise": "check_make_listener", "passed": False,
        "hint": NO_LISTEN_HINT, "user": "ada"}
    assert {key: second[key] for key in second if key != "time"} == {
        "lesson": "03", "exercise": "check_make_listener", "passed": True,
        "hint": "", "user": "ada"}
    for line in (first, second):
        when = datetime.datetime.fromisoformat(line["time"])
        assert when.utcoffset() == datetime.timedelta(0)
        assert before <= when <= datetime.datetime.now(datetime.timezone.utc)


def test_a_check_shown_by_ipython_records_once_and_prints_only_its_report(tmp_path):
    cells = [
        "import socket, socklab",
        "def make_listener(host, backlog):\n"
        "    sock = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)\n"
        "    sock.bind((host, 0))\n"
        "    return sock",
        "socklab.checks.lesson03.check_make_listener(make_listener)",
    ]
    script = ("from IPython.core.interactiveshell import InteractiveShell\n"
              "shell = InteractiveShell.instance()\n"
              f"for cell in {cells!r}:\n"
              "    shell.run_cell(cell)\n")
    env = {**os.environ, "SOCKLAB_DATA": str(tmp_path)}
    shown = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=TIMEOUT)
    assert shown.stderr == ""
    out, *report = shown.stdout.splitlines()  # "Out[0]: " and the report: nothing more
    assert out.startswith("Out[")
    assert report[0] == "Checking make_listener(host, backlog):"
    assert report[-1] == "3 of 3 checks failed."
    assert f"        {NO_LISTEN_HINT}" in report
    [line] = lines_in(tmp_path)
    assert json.loads(line)["hint"] == NO_LISTEN_HINT


CHILD = """\
import os, sys, time
from socklab import results
tag, count, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
open(os.path.join(folder, "ready-" + tag), "w").close()
while not os.path.exists(os.path.join(folder, "go")):
    time.sleep(0.001)
for i in range(count):
    results.record("05", "check_echo_handler", False, f"{tag} {i} " + "x" * 250)
"""


def test_two_processes_appending_at_once_keep_every_line_whole(tmp_path):
    count = 3000
    env = {**os.environ, "SOCKLAB_DATA": str(tmp_path)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, tag, str(count), str(tmp_path)],
                                 env=env) for tag in "AB"]
    deadline = time.monotonic() + TIMEOUT
    while not all((tmp_path / f"ready-{tag}").exists() for tag in "AB"):
        assert time.monotonic() < deadline, "the writers never got ready"
        time.sleep(0.01)
    (tmp_path / "go").touch()  # both start writing at the same moment
    assert [child.wait(timeout=TIMEOUT) for child in children] == [0, 0]

    tags = []
    numbers = {"A": [], "B": []}
    for line in lines_in(tmp_path):
        tag, number, _ = json.loads(line)["hint"].split(" ")
        tags.append(tag)
        numbers[tag].append(int(number))
    assert numbers == {"A": list(range(count)), "B": list(range(count))}
    switches = sum(1 for a, b in zip(tags, tags[1:]) if a != b)
    assert switches > 1, "the two writers did not overlap: this test proved nothing"


def test_an_unwritable_folder_does_not_break_a_check(monkeypatch, tmp_path, capfd):
    # A file where the folder should be: mkdir fails even for root, whom a
    # read-only mode (chmod) would not stop.
    (tmp_path / "not-a-folder").write_text("")
    report = check_as(monkeypatch, tmp_path / "not-a-folder", "ada", make_listener_right)
    assert report.ok
    assert repr(report).endswith("All 3 checks passed.")
    assert capfd.readouterr() == ("", "")


# -- python -m socklab progress ------------------------------------------------------


def test_progress_shows_the_learners_table(monkeypatch, tmp_path):
    check_as(monkeypatch, tmp_path, "ada", make_listener_no_listen)
    check_as(monkeypatch, tmp_path, "ada", make_listener_right)
    check_as(monkeypatch, tmp_path, "ada", make_listener_right)
    results.record("05", "check_echo_handler", False, "it never returned")
    passed_at = json.loads(lines_in(tmp_path)[1])["time"]
    local = datetime.datetime.fromisoformat(passed_at).astimezone().strftime("%Y-%m-%d %H:%M")

    shown = run_socklab("progress", env={**os.environ, "SOCKLAB_DATA": str(tmp_path)},
                        cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {tuple(line.split(None, 2)[:2]): line.split()[2:]
            for line in shown.stdout.splitlines() if line[:2].isdigit()}
    assert rows[("03", "make_listener")] == ["passed", "3", *local.split()]
    assert rows[("05", "echo_handler")] == ["tried", "1"]
    assert rows[("05", "ask_udp")] == ["not", "tried", "0"]
    assert rows[("00", "ask")] == rows[("12", "ask")] == ["not", "tried", "0"]
    assert len(rows) == len(results.course_exercises())
    assert f"1 of {len(rows)} exercises passed." in shown.stdout


# -- python -m socklab class-report --------------------------------------------------


class Table(html.parser.HTMLParser):
    """The text of every table cell, row by row, as a browser without JavaScript shows it."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell, self.skip = [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1
        elif tag in ("td", "th"):
            self.rows[-1].append(" ".join(" ".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None and not self.skip:
            self.cell.append(data)


def test_class_report_shows_passed_tried_and_not_tried(monkeypatch, tmp_path):
    homes = tmp_path / "home"
    folders = {name: homes / name / ".local" / "share" / "socklab"
               for name in ("ada", "bob", "eve")}
    check_as(monkeypatch, folders["ada"], "<b>Ada</b> & co", make_listener_no_listen)
    check_as(monkeypatch, folders["ada"], "<b>Ada</b> & co", make_listener_right)
    check_as(monkeypatch, folders["bob"], "bob", make_listener_no_listen)
    check_as(monkeypatch, folders["bob"], "bob", make_listener_no_listen)
    folders["eve"].mkdir(parents=True)  # eve has not run a check yet
    passed_at = json.loads(lines_in(folders["ada"])[1])["time"]
    local = datetime.datetime.fromisoformat(passed_at).astimezone().strftime("%Y-%m-%d %H:%M")

    made = run_socklab("class-report", *map(str, folders.values()), str(homes / "nobody"),
                       "-o", "class.html", env=os.environ, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "left out" in made.stderr and "nobody" in made.stderr
    page = (tmp_path / "class.html").read_text()

    assert "<b>Ada</b>" not in page and "&lt;b&gt;Ada&lt;/b&gt; &amp; co" in page
    # No external assets: no address to load from (a check's name may say "http").
    assert "http://" not in page and "https://" not in page and " src=" not in page

    table = Table()
    table.feed(page)
    header, *rows = table.rows
    assert header[:2] == ["learner", "passed"]
    column = header.index("03 make_listener")
    by_name = {row[0].split(" /")[0]: row for row in rows}
    assert set(by_name) == {"<b>Ada</b> & co", "bob", "eve"}
    assert by_name["<b>Ada</b> & co"][column] == f"passed 2 attempts {local}"
    assert by_name["bob"][column] == "tried 2 attempts"
    assert by_name["eve"][column] == "not tried"
    assert [by_name[name][1] for name in ("<b>Ada</b> & co", "bob", "eve")] == ["1", "0", "0"]
    assert by_name["eve"][0] == f"eve {folders['eve']}"
    assert len(header) == 2 + len(results.course_exercises())
    assert {len(row) for row in rows} == {len(header)}
