"""The lessons that need privileges, run live as the learner: for containers.

    python tools/image/run-live.py LESSON...

make test-image runs it inside a container started with the README's flags, as
the image's user (uid 1000).  It runs tests/test_kernel.py's "lessons" mode:
each lesson top to bottom in the kernel "Python 3 (socklab)", judged by
nbval's rules against the stored outputs (made by root), but for the cells that
say who the learner is (its WHO_YOU_ARE: root of a user namespace, the ping
range of their group).  Exit status 1 unless every lesson ran in a network of
its own, with no cell showing a recording and every other output as stored.
"""

import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
TIMEOUT = 900   # seconds for all of them, on a busy machine


def main(lessons):
    with tempfile.TemporaryDirectory() as folder:
        report_path = pathlib.Path(folder) / "report.json"
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "test_kernel.py"),
                               "lessons", str(report_path), *lessons],
                              capture_output=True, text=True, timeout=TIMEOUT)
        if done.returncode != 0:
            print(done.stderr[-3000:])
            return 1
        report = json.loads(report_path.read_text())
    failed = False
    for lesson in lessons:
        ran = report[lesson]
        network, recorded, problems = ran["probe"]["network"], ran["recorded"], ran["problems"]
        print(f"{lesson}: network {network[0]}, cells showing a recording {recorded},"
              f" other cells not as stored: {len(problems)}")
        for problem in problems:
            print("    " + problem.replace("\n", "\n    "))
        failed |= network != ["private", ""] or bool(recorded or problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
