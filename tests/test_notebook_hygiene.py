"""Stored lesson outputs hold no path of the machine they were made on."""

import os
import pathlib
import sys
import tempfile

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*/*.ipynb"))
HOME = os.path.expanduser("~")
MACHINE_PATHS = {str(ROOT), sys.prefix, sys.base_prefix, HOME + os.sep, tempfile.gettempdir() + os.sep}
# IPython shortens paths under the home folder to "~/..." in tracebacks
MACHINE_PATHS |= {"~" + p[len(HOME):] for p in list(MACHINE_PATHS) if p.startswith(HOME + os.sep)}


def output_texts(path):
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            yield output.get("text", "")
            yield "\n".join(output.get("traceback", []))
            yield output.get("evalue", "")
            for value in output.get("data", {}).values():
                if isinstance(value, str):
                    yield value


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_machine_path_in_outputs(path):
    found = {p for text in output_texts(path) for p in MACHINE_PATHS if p and p in text}
    assert found == set(), f"stored outputs mention {found}: run make execute"
