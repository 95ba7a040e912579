"""A lesson's stored outputs against a fresh run's, judged as nbval judges them.

`make test` runs every lesson under nbval (--nbval, no nbdime, sanitized with
tools/nbval-sanitize.cfg).  Three tests run lessons another way -- through
JupyterHub's proxy (test_hub), in twenty kernels at once (test_many_learners),
in a real browser (test_browser) -- and judge them by the same rules, stated
here once:

- `options(cell)`: what nbval's tags and comment markers say of a code cell
  (skip it; check its outputs or not; expect an error);
- `unexpected_error(cell, outputs)`: an error is allowed only in a cell that
  expects one (raises-exception);
- `difference(cell, outputs)`: streams merged per name (\\r and \\b applied),
  every output flattened to {key: [values, in order]} without the keys nbval
  leaves out, strings sanitized; equal means passed.  Cells nbval does not
  compare (nbval-skip, nbval-ignore-output, unrun in the stored notebook) pass.

`run_fresh(name, kernel_name, probe, timeout)` runs a lesson the way the
tests that run it as another user do (test_kernel, test_degraded).
"""

import copy
import pathlib
import re
from collections import defaultdict

import nbval
# nbval has no public API for judging outputs it did not produce itself: its
# comparison is a method of its pytest item (IPyNbCell.compare_outputs), built on
# the module-level helpers below.  These are its rules for the parts that are easy
# to get subtly wrong, so they are imported -- here, and nowhere else in the tests
# -- rather than copied: which tag or comment means what, how stream outputs are
# merged, and how the sanitize file is read.
from nbval.plugin import (coalesce_streams, find_comment_markers, find_metadata_tags,
                          get_sanitize_patterns)

ROOT = pathlib.Path(__file__).resolve().parent.parent
SANITIZE = get_sanitize_patterns((ROOT / "tools" / "nbval-sanitize.cfg").read_text())

# The keys nbval leaves out of the comparison.  nbval sets them in
# IPyNbFile.__init__, on a pytest collector, so they cannot be imported: this is
# its list in the version pyproject.toml pins, with the two image types it adds
# when run without --nbdime, as `make test` runs it.
NBVAL_VERSION = "0.11.0"
SKIP_COMPARE = frozenset({
    "metadata", "traceback", "prompt_number", "output_type", "name",
    "execution_count", "application/vnd.jupyter.widget-view+json",
    "image/png", "image/jpeg",
})
if nbval.__version__ != NBVAL_VERSION:
    raise ImportError(
        f"tests/nbcompare.py holds nbval {NBVAL_VERSION}'s list of keys it does not "
        f"compare, but nbval {nbval.__version__} is installed: check "
        "IPyNbFile.skip_compare in nbval/plugin.py, then update SKIP_COMPARE "
        "and NBVAL_VERSION"
    )


def options(cell):
    """nbval's options for a code cell: "skip", "check", "check_exception".

    From its tags, then its comment markers (which win, as in nbval); an option
    nobody set is False, except "check", which --nbval turns on.
    """
    found = defaultdict(bool, find_metadata_tags(cell.metadata))
    found.update(find_comment_markers(cell.source))
    found.setdefault("check", True)
    return found


def unexpected_error(cell, outputs):
    """'ename: evalue' of the first error in outputs, unless the cell expects one."""
    if options(cell)["check_exception"]:
        return None
    for output in outputs:
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"
    return None


def comparable(outputs):
    """Outputs as nbval compares them: {key: [sanitized values, in order]}.

    A stream's key is its name (stdout, stderr), a display's keys are its MIME
    types, an error's are ename and evalue.
    """
    flat = defaultdict(list)
    for output in coalesce_streams(copy.deepcopy(list(outputs))):  # it edits in place
        if output.output_type == "stream":
            items = [(output.name, output.text)]
        else:
            items = [(key, value) for key, value in output.items() if key != "data"]
            items += output.get("data", {}).items()
        for key, value in items:
            if key not in SKIP_COMPARE:
                flat[key].append(sanitize(value))
    return dict(flat)


def sanitize(value):
    if isinstance(value, str):
        for regex, replace in SANITIZE:
            value = re.sub(regex, replace, value)
    return value


def difference(cell, outputs):
    """What differs between a stored code cell's outputs and fresh ones, or None."""
    chosen = options(cell)
    if chosen["skip"] or not chosen["check"] or cell.execution_count is None:
        return None
    stored, fresh = comparable(cell.outputs), comparable(outputs)
    differing = [key for key in sorted(stored.keys() | fresh.keys())
                 if stored.get(key) != fresh.get(key)]
    if not differing:
        return None
    return "outputs differ\n" + "\n".join(
        f"  {key}: stored {stored.get(key)!r:.600}\n"
        f"  {' ' * len(key)}  got    {fresh.get(key)!r:.600}" for key in differing
    )


def problem(cell, outputs):
    """nbval's verdict on fresh outputs of a stored code cell: None when it passes."""
    error = unexpected_error(cell, outputs)
    return f"raised {error}" if error else difference(cell, outputs)


def errors_and_tracebacks(stored, ran):
    """What a degraded run may not show: for each code cell of ``ran`` (run_fresh()),
    an error the stored cell does not expect, or a traceback printed as text."""
    import json

    found = []
    for number, (old, new) in enumerate(zip(stored.cells, ran.cells)):
        if old.cell_type != "code":
            continue
        error = unexpected_error(old, new.outputs)
        if error:
            found.append(f"cell {number} raised {error}")
        for output in new.outputs:
            if output.output_type != "error" and "Traceback" in json.dumps(output):
                found.append(f"cell {number} printed a traceback:\n"
                             f"{json.dumps(output)[-1500:]}")
    return found


def run_fresh(name, kernel_name, probe, timeout):
    """Lesson ``name`` (English) run top to bottom in a fresh kernel, errors allowed,
    then ``probe`` (code that prints one JSON line): (stored, ran, probe's value).

    ``ran`` has the stored notebook's cells with fresh outputs; compare them with
    problem() or unexpected_error().
    """
    import json

    import nbformat
    from nbclient import NotebookClient

    folder = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "en"
    stored = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    ran = copy.deepcopy(stored)
    for cell in ran.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    ran.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(ran, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return stored, ran, json.loads(ran.cells.pop().outputs[0]["text"])


def ipc_path():
    """A path of its own for a kernel's five Unix sockets (PATH-1 ... PATH-5).

    Over TCP, jupyter_client finds five ports free, lets them go, and the kernel
    binds them a moment later; with six workers opening sockets, one was taken
    meanwhile now and then, and the kernel died before it answered.  Over ipc
    there is no port to take; jupyter_client's default path is the same for
    every kernel started in one folder, hence one of its own.
    """
    import os
    import uuid

    from jupyter_core.paths import jupyter_runtime_dir

    os.makedirs(jupyter_runtime_dir(), exist_ok=True)
    return os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4().hex}")
