"""Record what lesson 11's raw-socket cells print as root, for learners who are not.

    sudo .venv/bin/python tools/record_lesson11.py          # (re)writes the recording
    sudo .venv/bin/python tools/record_lesson11.py --check  # compares a fresh run with it

The recording is socklab/data/lesson11_root_outputs.json.

Without CAP_NET_RAW those cells cannot open their sockets; they print
socklab.icmp.show_recorded(cell) instead: what the same cell printed as root,
labelled with the date and kernel of the recording.  That text must be a real
run, never written by hand: this script takes the cells' code from the English
notebook, runs it here as root -- as IPython would, in one namespace, the
setup cell first -- and stores what each printed.  The C program the ping cell
runs is compiled from its own cell.  Run it as root after changing one of
these cells; tests/test_icmp.py checks that a fresh run still prints the same.

Like the lesson, the ping cell widens net.ipv4.ping_group_range for a moment
and puts it back.  To leave this machine's setting alone, run the script in a
network namespace of its own:
    sudo unshare --net -- sh -c 'ip link set lo up && .venv/bin/python tools/record_lesson11.py'
"""

import argparse
import ast
import contextlib
import datetime
import io
import json
import os
import pathlib
import platform
import sys

import nbformat

from socklab import c, icmp

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "11-raw-sockets.ipynb"
OUT = ROOT / "socklab" / "data" / icmp.RECORDED_OUTPUTS

# The cells to run, in the lesson's order: each may use what the ones before made.
RUN = ["setup", "privileges-others-py", "echo-py-code", "reply-apart-py", "filter-py",
       "ping-range-py", "ping-c-code", "ping-change-py", "ping-py-code", "packet-py"]
# ... and those whose output is stored: the ones that show a recording without root.
RECORD = ["privileges-others-py", "echo-py-code", "reply-apart-py", "filter-py",
          "ping-change-py", "ping-py-code", "packet-py"]


def run_cell(source, names):
    """Run one cell's Python as IPython does; return what it printed.

    The body runs, then a last bare expression is shown with repr() unless it
    is None.  A ``%%c NAME`` cell is compiled only (the ping cell runs it).
    """
    if source.startswith("%%c "):
        first_line, _, program = source.partition("\n")
        c.compile(program, first_line.split()[1])
        return ""
    source = "\n".join(line for line in source.splitlines() if not line.startswith("%"))
    tree = ast.parse(source)
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    body = ast.Module(tree.body[:-1] if last else tree.body, [])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(body, "cell", "exec"), names)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "cell", "eval"), names)
            if value is not None:
                print(repr(value))
    return out.getvalue()


def run_lesson_cells():
    """{cell id: what it printed} for the cells in RECORD, run live here."""
    cells = {cell.id: cell.source for cell in nbformat.read(LESSON, as_version=4).cells}
    names = {}
    printed = {cell_id: run_cell(cells[cell_id], names) for cell_id in RUN}
    return {cell_id: printed[cell_id] for cell_id in RECORD}


def problems_with(outputs):
    """Reasons not to store these outputs: they must be what root sees."""
    problems = []
    for cell_id, text in outputs.items():
        if not text.strip():
            problems.append(f"{cell_id} printed nothing")
        for sign in ("recorded as root", "refused", "Not root", "Traceback"):
            if sign in text:
                problems.append(f"{cell_id} printed {sign!r}: not a root run")
    if "-> '0 0'" not in outputs.get("ping-change-py", ""):
        problems.append("the ping cell did not widen the range (already open here?)")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a fresh run differs from --out")
    args = parser.parse_args()
    if os.geteuid() != 0 or not icmp.has_cap_net_raw():
        sys.exit("run this as root with CAP_NET_RAW: it records what root sees")
    outputs = run_lesson_cells()
    problems = problems_with(outputs)
    if problems:
        sys.exit("not writing this recording:\n  " + "\n  ".join(problems))
    if args.check:
        stored = json.loads(args.out.read_text(encoding="utf-8"))["outputs"]
        differ = [cell_id for cell_id in RECORD if stored.get(cell_id) != outputs[cell_id]]
        for cell_id in differ:
            print(f"--- {cell_id}, recorded:\n{stored.get(cell_id)}--- live:\n{outputs[cell_id]}")
        sys.exit(1 if differ else 0)
    recording = {
        "made_by": "tools/record_lesson11.py: the cells of notebooks/en/11-raw-sockets.ipynb, "
                   "run as root",
        "recorded_on": datetime.date.today().isoformat(),
        "system": f"{platform.system()} {platform.release()}",
        "outputs": outputs,
    }
    args.out.write_text(json.dumps(recording, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    for cell_id, text in outputs.items():
        print(f"--- {cell_id}\n{text}", end="")
    print(f"wrote {len(outputs)} cells' outputs to {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
