"""Each English lesson runs top to bottom twice in one kernel and leaves nothing running.

A learner re-runs cells all the time: servers must be replaced, not piled up, and
the second pass must not trip over the first.  The lesson's cells are executed
twice over in one fresh kernel (cells tagged raises-exception may raise, as in
nbval); the lesson's last cell -- ``socklab.stop_all(), socklab.running()`` --
must then report an empty list.
"""

import copy
import pathlib

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

import nbcompare  # tests/nbcompare.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks" / "en").glob("*.ipynb"))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_twice_in_one_kernel(path):
    nb = nbformat.read(path, as_version=4)
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    nb.cells = [copy.deepcopy(cell) for cell in cells + cells]
    for cell in nb.cells:
        cell.outputs = []
    # Channels on Unix sockets: no port to race for (nbcompare.ipc_path)
    km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=nbcompare.ipc_path())
    NotebookClient(nb, km=km, timeout=60,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    last = nb.cells[-1]
    assert "socklab.running()" in last.source
    shown = "".join(out.get("data", {}).get("text/plain", "") for out in last.outputs)
    assert shown.endswith(", [])"), f"still running after the second pass: {shown}"
