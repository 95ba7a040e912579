"""Re-execute lessons and store their outputs, normalized.

    python tools/execute.py notebooks/en/00-start-here.ipynb [more.ipynb ...]
    make execute                       # every English lesson
    make execute NB=notebooks/en/03-tcp-server.ipynb

Stored outputs are what nbval compares a fresh run with, so they must come from a
real run -- never edited by hand.  This script runs each notebook top to bottom in
a fresh kernel of this environment (the same one `make test` uses), in the
notebook's own folder, with a 60 s limit per cell.  A cell that raises fails the
run unless it is tagged ``raises-exception``; nothing is written then.

Before writing, it normalizes the notebook so that a re-run changes only what
really changed:
  * outputs and execution counts are kept (nbval needs both);
  * saved widget state, per-cell timing and other volatile metadata are dropped;
  * paths of this machine (the checkout, the Python installation, the home and
    temporary folders) are replaced in outputs by short stand-ins.
"""

import argparse
import os
import pathlib
import sys
import tempfile

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 60  # seconds, the same limit as nbval's in `make test`
# jp-MarkdownHeadingCollapsed: a "Going further" heading shown collapsed (docs/authoring.md)
KEEP_CELL_METADATA = ("tags", "jupyter", "editable", "deletable", "socklab",
                      "jp-MarkdownHeadingCollapsed")
KERNELSPEC = {"name": "socklab", "display_name": "Python 3 (socklab)", "language": "python"}


def machine_paths():
    """(path, stand-in) pairs, longest path first so that nested ones win.

    IPython writes paths under the home folder as "~/..." in tracebacks, so each
    such path is also looked for in that form.
    """
    home = os.path.expanduser("~")
    pairs = {
        str(ROOT): "<course>",
        sys.prefix: "<venv>",
        sys.base_prefix: "<python>",
        home: "~",
        tempfile.gettempdir(): "<tmp>",
    }
    for path, stand_in in list(pairs.items()):
        if path != home and path.startswith(home + os.sep):
            pairs["~" + path[len(home):]] = stand_in
    return sorted(((p, s) for p, s in pairs.items() if len(p) > 1), key=lambda ps: -len(ps[0]))


def scrub(text, pairs):
    for path, stand_in in pairs:
        text = text.replace(path, stand_in)
    return text


def normalize(nb):
    pairs = machine_paths()
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict(
            {key: cell.metadata[key] for key in KEEP_CELL_METADATA if key in cell.metadata}
        )
        for output in cell.get("outputs", []):
            output.pop("transient", None)
            if "text" in output:
                output.text = scrub(output.text, pairs)
            if "traceback" in output:
                output.traceback = [scrub(line, pairs) for line in output.traceback]
            if "evalue" in output:
                output.evalue = scrub(output.evalue, pairs)
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") and isinstance(value, str):
                    output.data[mime] = scrub(value, pairs)
    return nb


def execute(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNELSPEC["name"],  # socklab.kernel: a network of its own
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.validate(nb)
    nbformat.write(normalize(nb), path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    failed = 0
    # The lessons' checks record their results (socklab.results): a maintainer
    # storing outputs is no learner, so those records go to a folder that vanishes.
    results = tempfile.TemporaryDirectory(prefix="socklab-execute-")
    os.environ["SOCKLAB_DATA"] = results.name
    for path in args.notebooks:
        print(f"executing {path} ...", flush=True)
        try:
            execute(path)
        except CellExecutionError as exc:
            failed += 1
            print(f"FAILED {path}: a cell not tagged raises-exception raised:\n{exc}")
        else:
            print(f"  stored outputs of {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
