"""Lesson 12's measurements, bigger and repeated: C vs Python vs iperf3 on loopback.

    python benchmarks/bulk_bench.py            # about 5-20 seconds
    python benchmarks/bulk_bench.py --quick    # a smoke run: a few seconds
    python benchmarks/bulk_bench.py --rounds 9

Three measurements, each over one TCP connection on 127.0.0.1:

* bulk: 512 MiB sent in 1 MiB send() calls (iperf3: -l 1M), received with
  recv() / recv_into() into a 1 MiB buffer -- C (c/stream.c, gcc -O2), Python
  (socklab.measure.stream_python) and iperf3 (its own client and server: a
  reference, what a C tool built for the job reaches; not a ceiling -- C and
  Python may come out ahead of it).  Goal: Python >= 0.9 x iperf3.
* small messages: 4 MiB in 64-byte send() calls, C and Python: the cost of a
  call, where Python's work around each call shows.
* Nagle: write-write-read requests against a server that delays its ACKs
  (socklab.measure.answer_with_late_acks), with and without TCP_NODELAY.

The runs alternate -- C, Python, iperf3, C, Python, iperf3 ... -- so that a burst
of load from something else on the machine hits all of them alike; the table
gives the median and the best of the rounds.  Nothing is pinned: both ends run
at once, as in the lesson, so two CPUs or more give steadier figures.

The exit status is non-zero only when something broke (a compile error, a
wrong byte count, iperf3 failing); a missed goal is a finding, reported.
"""

import argparse
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the socklab of this checkout

from socklab import measure  # noqa: E402  (after the path is set)
from socklab.servers import serve  # noqa: E402

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"]
FULL = {"bulk": 512 << 20, "small": 4 << 20, "requests": 9}
QUICK = {"bulk": 64 << 20, "small": 1 << 20, "requests": 5}
BULK_MESSAGE, SMALL_MESSAGE = 1 << 20, 64
GOAL = 0.9  # Python bulk / iperf3, at least
MIB = 1 << 20


class BenchError(Exception):
    """Something broke: the figures would mean nothing."""


def compile_stream(build_dir):
    if shutil.which("gcc") is None:
        raise BenchError("gcc not found")
    output = pathlib.Path(build_dir) / "stream"
    done = subprocess.run(["gcc", *CFLAGS, "-o", str(output), "stream.c"],
                          cwd=HERE / "c", capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"compiling stream.c failed:\n{done.stderr}")
    return output


def stream_c(program, total, message):
    done = subprocess.run([str(program), str(total), str(message)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not done.stdout.startswith("RESULT "):
        raise BenchError(f"stream {total} {message} failed:\n{done.stderr}")
    fields = dict(word.split("=") for word in done.stdout.split()[1:])
    return measure.Run(int(fields["bytes"]), float(fields["seconds"]), float(fields["cpu"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sizes = QUICK if args.quick else FULL
    have_iperf3 = shutil.which("iperf3") is not None

    print("bulk benchmark: C vs Python vs iperf3, one TCP connection on 127.0.0.1")
    print(f"  Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"bulk {sizes['bulk'] // MIB} MiB in 1 MiB sends, small "
          f"{sizes['small'] // MIB} MiB in 64-byte sends, {args.rounds} rounds"
          + ("" if have_iperf3 else "; iperf3 not found: skipped"))
    started = time.monotonic()
    runs = {}

    def record(key, run):
        runs.setdefault(key, []).append(run)
        print(f"  {key[0]:<7} {key[1]:<6} {run.rate / MIB:9.1f} MiB/s  "
              f"{run.cpu / run.bytes * 2**30:6.2f} CPU s/GiB", flush=True)

    with tempfile.TemporaryDirectory(prefix="socklab-bench-") as build_dir:
        try:
            program = compile_stream(build_dir)
            for round_number in range(1, args.rounds + 1):
                print(f" round {round_number}/{args.rounds}")
                record(("C", "bulk"), stream_c(program, sizes["bulk"], BULK_MESSAGE))
                record(("Python", "bulk"),
                       measure.stream_python(sizes["bulk"], BULK_MESSAGE))
                if have_iperf3:
                    record(("iperf3", "bulk"), measure.iperf3(sizes["bulk"], BULK_MESSAGE))
                record(("C", "small"), stream_c(program, sizes["small"], SMALL_MESSAGE))
                record(("Python", "small"),
                       measure.stream_python(sizes["small"], SMALL_MESSAGE))
        except (BenchError, OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"\nbenchmark broken: {exc}", file=sys.stderr)
            return 1

    late = serve(measure.answer_with_late_acks, name="bench-late-acks")
    try:
        stalled = measure.write_write_read(late.address, False, sizes["requests"])
        quick = measure.write_write_read(late.address, True, sizes["requests"])
    finally:
        late.stop()

    def median(who, what):
        return statistics.median(run.rate for run in runs[who, what]) / MIB

    def best(who, what):
        return max(run.rate for run in runs[who, what]) / MIB

    print()
    print(f"{'MiB/s':<22}{'median':>10}{'best':>10}")
    for who, what in runs:
        print(f"{who + ' ' + what:<22}{median(who, what):>10.1f}{best(who, what):>10.1f}")
    print()
    print(f"{'ratio':<34}{'median':>8}{'best':>8}")
    ratios = [("Python / C, bulk", "Python", "C", "bulk"),
              ("C / Python, 64-byte sends", "C", "Python", "small")]
    if have_iperf3:
        ratios.insert(0, ("Python / iperf3, bulk", "Python", "iperf3", "bulk"))
        ratios.insert(1, ("C / iperf3, bulk", "C", "iperf3", "bulk"))
    for label, top, bottom, what in ratios:
        print(f"{label:<34}{median(top, what) / median(bottom, what):>8.2f}"
              f"{best(top, what) / best(bottom, what):>8.2f}")
    if have_iperf3:
        ratio = median("Python", "bulk") / median("iperf3", "bulk")
        print(f"goal: Python bulk >= {GOAL} x iperf3 (medians): "
              + ("met" if ratio >= GOAL else "missed"))
    print(f"Nagle + delayed ACK, write-write-read: {stalled * 1000:.1f} ms a request; "
          f"with TCP_NODELAY: {quick * 1000:.3f} ms")
    print(f"\n{time.monotonic() - started:.1f} s in all.  See benchmarks/README.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
