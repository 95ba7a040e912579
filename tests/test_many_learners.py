"""Twenty learners on one machine run lessons 03, 05 and 07 at the same moment.

A workshop on one laptop account, or a JupyterHub whose users share a host, has
many kernels running the same lesson at the same moment: same notebooks, same
working folder, same temporary folder, same user.  Nothing may collide -- ports,
build folders, temporary files, names -- and nothing may be left behind.

The test starts a separate process, the *orchestrator* (this file run as a
script), which plays the learners: all LEARNERS learners start at once, each
on one of the LESSONS in turn (seven or six on each, as a workshop whose groups
work on different lessons), in a fresh kernel started in notebooks/en: half of
them socklab kernels (a network of their own), half plain kernels sharing the
machine's loopback.  Six
kernels on one lesson meet every collision two would; twenty kernels load the
machine as a full room does.  The orchestrator then checks, as nbval does, that every cell's
output equals the stored one, and that nothing is left:

* after a lesson's last cell: the kernel has no child process and no socket
  other than its own Jupyter channels (a learner's kernel lives on);
* after the kernel has shut down (as JupyterLab does it, gracefully): its
  private build folder is gone and no process it started is still there;
* at the end: the temporary folder the kernels shared is empty.

Why a separate process: it makes itself a "child subreaper" (prctl, Linux), so
that a process a kernel leaves behind is re-parented to the orchestrator and is
found there, instead of disappearing under init.  It also gets a temporary folder
of its own (TMPDIR), shared by all its kernels, so that other tests running on
the same machine cannot be mistaken for leftovers.
"""

import asyncio
import collections
import copy
import ctypes
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time
import traceback

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import nbcompare  # tests/nbcompare.py: nbval's rules, stated once

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON_DIR = ROOT / "notebooks" / "en"
LESSONS = ["03-tcp-server", "05-echo", "07-udp"]
LEARNERS = 20

# Twenty kernels on two cores are slow: generous limits, but every one bounded.
CELL_TIMEOUT = 240  # seconds for one cell (a lesson's cells take < 10 s alone)
STARTUP_TIMEOUT = 240  # seconds for a kernel to answer after it was started
OUTPUT_TIMEOUT = 60  # seconds a cell's output may come after its reply
RUN_LIMIT = 720  # seconds for all learners together, then everything is stopped
ORCHESTRATOR_LIMIT = RUN_LIMIT + 120  # the orchestrator's cleanup included

PROBE = """\
import json as _json, os as _os, socklab as _socklab
print(_json.dumps({"pid": _os.getpid(), "build_dir": str(_socklab.c.build_dir())}))
"""


# -- the test ---------------------------------------------------------------------

@pytest.mark.timeout(ORCHESTRATOR_LIMIT + 60)
def test_twenty_learners_run_lessons_at_once(tmp_path):
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    report_file = tmp_path / "report.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, __file__, str(report_file)],
        env={**os.environ, "TMPDIR": str(shared_tmp)},
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=ORCHESTRATOR_LIMIT,
    )
    took = time.monotonic() - started
    assert report_file.exists(), f"the orchestrator wrote no report:\n{done.stderr[-3000:]}"
    report = json.loads(report_file.read_text())
    print(f"{LEARNERS} learners on {len(LESSONS)} lessons in {took:.0f} s; "
          f"slowest lesson run: {report['slowest']}")
    for restart in report.get("restarts", []):
        print(f"  a kernel did not start and was started again: {restart}")
    assert report["lesson_runs"] == LEARNERS
    problems = report["problems"]
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    assert done.returncode == 0, done.stderr[-3000:]


# -- comparing outputs, as nbval does --------------------------------------------

def output_differences(stored, executed):
    """nbval's verdict on each code cell (tests/nbcompare.py), in readable lines."""
    stored_cells = [cell for cell in stored.cells if cell.cell_type == "code"]
    run_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    problems = []
    for number, (want, got) in enumerate(zip(stored_cells, run_cells)):
        problem = nbcompare.problem(want, got.outputs)
        if problem:
            problems.append(f"code cell {number} {problem}")
    return problems


# -- what a process has: children, sockets ---------------------------------------

def children(pid):
    """The process ids of ``pid``'s children (all its threads'), [] once it is gone."""
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                kids += [int(kid) for kid in file.read().split()]
        except FileNotFoundError:
            pass
    return kids


def describe_process(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return f"pid {pid} (gone)"
    return f"pid {pid} state {state}: {command or '(no command line: a zombie)'}"


def inet_sockets(pid):
    """inode -> (protocol, local port, TCP state in hex) of every IP socket in the
    network of process ``pid`` (a socklab kernel's own, where it has one)."""
    table = {}
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/{pid}/net/{protocol}") as file:
            for line in list(file)[1:]:
                columns = line.split()
                port = int(columns[1].rpartition(":")[2], 16)
                table[columns[9]] = (protocol, port, columns[3])
    return table


def sockets_of(pid):
    """The IP sockets process ``pid`` has open: [(protocol, local port, state)]."""
    try:
        table = inet_sockets(pid)
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return []
    found = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        inode = target[len("socket:["):-1] if target.startswith("socket:[") else None
        if inode in table:
            found.append(table[inode])
    return found


TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "0A": "LISTEN"}


def leftovers_in_kernel(pid, sockets_at_start):
    """What a kernel has now and did not have when it started, in words.

    The kernel's own sockets (its Jupyter channels over TCP, and a listener
    ipykernel keeps for output from forked processes) are there from the start.
    """
    found = [f"child process {describe_process(kid)}" for kid in children(pid)]
    new = collections.Counter(sockets_of(pid)) - sockets_at_start
    for (protocol, port, state), count in sorted(new.items()):
        what = TCP_STATES.get(state, state) if protocol.startswith("tcp") else "bound"
        found.append(f"{count} {protocol} socket(s), {what} on port {port}")
    return found


# -- the orchestrator --------------------------------------------------------------

class Workshop:
    """What the learners share: the findings, and what to clean up and check."""

    def __init__(self, logs):
        self.logs = logs  # a folder for the kernels' own output
        self.problems = []
        self.restarts = []  # kernels that did not start, and were started again
        self.kernels = []  # every kernel manager, for the final cleanup
        self.build_dirs = []  # every kernel's build folder


class Learner:
    """One learner: runs one lesson (learner 1 the first, 2 the second, ...) in a fresh kernel."""

    def __init__(self, number, workshop):
        self.number = number
        self.workshop = workshop
        self.durations = {}
        self.attempts = 0  # kernels started, for their socket files' names
        # Half in socklab kernels (a network each), half in plain ones sharing
        # the machine's loopback, as where user namespaces are refused: the
        # shared half is where ports, if anything, would collide.
        self.kernel_name = "socklab" if number % 2 else "python3"

    def problem(self, lesson, text):
        self.workshop.problems.append(f"learner {self.number}, {lesson}: {text}")

    async def run(self):
        lesson = LESSONS[(self.number - 1) % len(LESSONS)]
        started = time.monotonic()
        await self.run_lesson(lesson)
        self.durations[lesson] = time.monotonic() - started

    async def run_lesson(self, lesson):
        stored = nbformat.read(LESSON_DIR / f"{lesson}.ipynb", as_version=4)
        log_path = self.workshop.logs / f"kernel-{self.number}-{lesson}.log"
        ran = await self.execute(lesson, stored, log_path, may_retry=True)
        if ran is None:
            # A kernel that did not start (twenty start at once on two cores): a
            # learner would restart it, so do we.
            ran = await self.execute(lesson, stored, log_path, may_retry=False)
        nb, probe = ran
        nb.cells.pop()  # the probe
        for difference in output_differences(stored, nb)[:3]:
            self.problem(lesson, difference)
        if probe is not None:
            self.check_after_shutdown(lesson, probe)
        messages = [line for line in log_path.read_text().splitlines()
                    if line.startswith("socklab:") or "Exception ignored" in line]
        for line in messages:
            self.problem(lesson, f"the kernel wrote on its way out: {line}")

    async def execute(self, lesson, stored, log_path, may_retry):
        """Run the lesson and the probe in a fresh kernel: (notebook, probe).

        None when the kernel did not start and ``may_retry``.
        """
        nb = copy.deepcopy(stored)
        for cell in nb.cells:
            cell.outputs = []
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT, startup_timeout=STARTUP_TIMEOUT,
            # Output may come well after the cell's reply when twenty kernels
            # share two cores; nbclient waits 4 s for it unless told otherwise.
            iopub_timeout=OUTPUT_TIMEOUT, raise_on_iopub_timeout=True,
            kernel_name=self.kernel_name, resources={"metadata": {"path": str(LESSON_DIR)}},
        )
        client.km = client.create_kernel_manager()
        # The kernel's channels on Unix sockets, not TCP ports.  Over TCP,
        # jupyter_client picks free ports, closes them, and the kernel binds them
        # later; twenty lessons binding ports meanwhile took one now and then.
        # Once it was a lesson's echo server: it answered the channel, and a
        # blocking zmq send() hung the whole orchestrator.  Jupyter's race, not
        # socklab's (a learner's lone kernel does not meet it); docs/hub.md says
        # how a hub avoids it the same way.
        client.km.transport = "ipc"
        self.attempts += 1
        client.km.ip = str(self.workshop.logs / f"ipc-{self.number}-{self.attempts}")
        self.workshop.kernels.append(client.km)
        probe, started = None, False
        with open(log_path, "w") as log:
            try:
                async with client.async_setup_kernel(stdout=log, stderr=log,
                                                     preexec_fn=_die_with_orchestrator):
                    started = True
                    kernel_pid = client.km.provisioner.pid
                    sockets_at_start = collections.Counter(sockets_of(kernel_pid))
                    for index, cell in enumerate(nb.cells):
                        await client.async_execute_cell(cell, index)
                    probe = self.read_probe(lesson, nb.cells[-1], kernel_pid)
                    if probe is not None:
                        self.check_before_shutdown(lesson, probe, sockets_at_start)
            except CellExecutionError as exc:  # a cell raised: keep the others going
                self.problem(lesson, f"{type(exc).__name__}: {str(exc)[-1500:]}")
            except Exception as exc:  # a timeout, a kernel that died ...
                if may_retry and not started:
                    self.workshop.restarts.append(f"learner {self.number}, {lesson}: {exc}")
                    return None
                self.problem(lesson, traceback.format_exc()[-1500:])
        return nb, probe

    def read_probe(self, lesson, cell, kernel_pid):
        """The kernel's pid and build folder, as the probe cell printed them."""
        text = "".join(out.get("text", "") for out in cell.outputs)
        try:
            probe = json.loads(text)
        except ValueError:
            self.problem(lesson, f"the probe cell's output is not its JSON: {cell.outputs}")
            return None
        if probe["pid"] != kernel_pid:
            self.problem(lesson, "the kernel is not the process jupyter started")
        return probe

    def check_before_shutdown(self, lesson, probe, sockets_at_start):
        """The lesson is over, the kernel lives on: nothing may be running in it."""
        for thing in leftovers_in_kernel(probe["pid"], sockets_at_start):
            self.problem(lesson, f"after the last cell the kernel still has {thing}")
        folder = pathlib.Path(probe["build_dir"])
        self.workshop.build_dirs.append(folder)
        if pathlib.Path(os.environ["TMPDIR"]) not in folder.parents:
            self.problem(lesson, f"build folder {folder} is not in the temporary folder")
        elif stat.S_IMODE(folder.stat().st_mode) != 0o700:
            self.problem(lesson, f"build folder mode {folder.stat().st_mode:o}, not 0700")

    def check_after_shutdown(self, lesson, probe):
        folder = pathlib.Path(probe["build_dir"])
        if folder.exists():
            self.problem(lesson, "the build folder is still there after the kernel shut down")
        if os.path.exists(f"/proc/{probe['pid']}"):
            self.problem(lesson, "the kernel process is still there after shutting down")


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork


def _die_with_orchestrator():
    """In a kernel, before exec: SIGKILL when the orchestrator dies (test timeout)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def left_behind():
    """Processes re-parented to us: started by a kernel, alive after it."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                parent = file.read().rpartition(")")[2].split()[1]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if parent == me:
            found.append(int(entry))
    return found


async def orchestrate(report, logs):
    workshop = Workshop(logs)
    learners = [Learner(number, workshop) for number in range(1, LEARNERS + 1)]
    problems = workshop.problems
    try:
        await asyncio.wait_for(asyncio.gather(*(learner.run() for learner in learners)),
                               RUN_LIMIT)
    except asyncio.TimeoutError:
        problems.append(f"the learners were not done within {RUN_LIMIT} s")
    except Exception as exc:  # a bug here: report it, and still clean up
        problems.append(f"the orchestrator failed: {exc!r}")
    finally:
        for km in workshop.kernels:  # kernels still running after a failure: stop them
            try:
                if km.has_kernel:
                    await km.shutdown_kernel(now=True)
            except Exception as exc:
                problems.append(f"stopping a kernel: {exc!r}")
        problems += final_checks(workshop.build_dirs)
    runs = [(took, learner.number, lesson) for learner in learners
            for lesson, took in learner.durations.items()]
    slowest = max(runs, default=(0, 0, "-"))
    report.update(problems=problems, lesson_runs=len(runs), restarts=workshop.restarts,
                  slowest=f"{slowest[2]} of learner {slowest[1]}, {slowest[0]:.0f} s")


def final_checks(build_dirs):
    """Once every kernel is gone: no process of theirs, no file of theirs."""
    problems = []
    if len(set(build_dirs)) != len(build_dirs):
        problems.append("two kernels shared a build folder")
    for pid in left_behind():
        problems.append(f"a process outlived its kernel: {describe_process(pid)}")
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    for entry in sorted(pathlib.Path(os.environ["TMPDIR"]).iterdir()):
        problems.append(f"left in the shared temporary folder: {entry.name}")
    return problems


def main(report_path):
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    report = {"problems": ["the orchestrator did not finish"], "lesson_runs": 0, "slowest": "-"}
    try:
        asyncio.run(orchestrate(report, pathlib.Path(report_path).parent))
    finally:
        pathlib.Path(report_path).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
