"""Run lessons in the learner's kernel and report any traceback: for containers.

    python tools/image/run-lessons.py [LESSON...]     (default: every English lesson)

make test-image runs it inside a container started with no extra flags, as the
image's user (uid 1000).  There the kernel "Python 3 (socklab)" is refused a
network of its own (the engine's seccomp profile), so the cells that need
privileges show recordings or say what is missing: their outputs differ from
the stored ones on purpose and are not compared.  What is checked is what a
learner would notice, by the rules of tests/test_degraded.py: no cell raised
an error it does not expect (only cells tagged raises-exception may), and no
output holds a traceback (a thread's or a child process's, printed).

Each lesson runs once, top to bottom, in a fresh kernel, in a process of its
own, a few at a time.  Prints one line per lesson; exit status 1 if any had a
problem.
"""

import concurrent.futures
import json
import pathlib
import resource
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
KERNEL = "socklab"          # the kernel the lessons ask for, as a learner gets it
CELL_TIMEOUT = 120          # seconds: a lesson's longest cell takes a few
LESSON_TIMEOUT = 900        # seconds for a lesson as a whole, on a busy machine
AT_ONCE = 3                 # lessons mostly wait on sockets and timeouts
# Who ran the lesson, in which network, and what it cost the kernel: its peak
# memory (ru_maxrss, KiB on Linux) and the CPU time of the kernel and of the
# programs it ran and waited for (gcc, the lessons' C programs): getrusage(2).
PROBE = ("import json as _j, os as _o, resource as _r\n"
         "_s, _c = _r.getrusage(_r.RUSAGE_SELF), _r.getrusage(_r.RUSAGE_CHILDREN)\n"
         "print(_j.dumps({'uid': _o.geteuid(),"
         " 'network': _o.environ.get('SOCKLAB_NETWORK', 'not a socklab kernel'),"
         " 'kernel_peak_mb': round(_s.ru_maxrss / 1024),"
         " 'cpu_s': round(_s.ru_utime + _s.ru_stime + _c.ru_utime + _c.ru_stime, 1)}))")


def problems_in(lesson):
    """Run one lesson; (probe's report, [problems]).  Runs in a process of its own."""
    sys.path.insert(0, str(ROOT / "tests"))
    import nbcompare

    stored, ran, probe = nbcompare.run_fresh(lesson, KERNEL, PROBE, timeout=CELL_TIMEOUT)
    problems = nbcompare.errors_and_tracebacks(stored, ran)
    # Not a problem, but worth knowing: cells that showed a recording instead.
    probe["recorded"] = sum("(recorded " in json.dumps(cell.outputs)
                            for cell in ran.cells if cell.cell_type == "code")
    return probe, problems


def run_one(lesson):
    """problems_in(lesson) in a child process: a lesson that hangs is stopped."""
    try:
        done = subprocess.run([sys.executable, __file__, "--one", lesson],
                              capture_output=True, text=True, timeout=LESSON_TIMEOUT)
    except subprocess.TimeoutExpired:
        return lesson, {}, [f"did not finish within {LESSON_TIMEOUT} s"]
    if done.returncode != 0:
        return lesson, {}, [f"the runner failed:\n{done.stderr[-3000:]}"]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return lesson, report["probe"], report["problems"]


def main(args):
    if args[:1] == ["--one"]:
        probe, problems = problems_in(args[1])
        # This process stands in for the learner's browser: its own peak memory,
        # to tell it apart from the kernel's when the container is measured.
        probe["runner_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps({"probe": probe, "problems": problems}))
        return 0
    lessons = args or sorted(p.stem for p in (ROOT / "notebooks" / "en").glob("*.ipynb"))
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
        for lesson, probe, problems in pool.map(run_one, lessons):
            network = probe["network"].split(":")[0]   # "private", or "shared" (and why)
            where = (f"uid {probe['uid']}, network: {network}, {probe['recorded']}"
                     f" cells recorded; kernel: peak"
                     f" {probe['kernel_peak_mb']} MB, {probe['cpu_s']} s of CPU; runner: peak"
                     f" {probe['runner_peak_mb']} MB" if probe else "")
            print(f"{'ok  ' if not problems else 'FAIL'} {lesson} ({where})", flush=True)
            for problem in problems:
                print("       " + problem.replace("\n", "\n       "), flush=True)
            failed += bool(problems)
    print(f"{len(lessons) - failed} of {len(lessons)} lessons ran without a traceback")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
