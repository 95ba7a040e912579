"""How fast is socklab.TCPEchoServer next to a plain C echo server?

    python benchmarks/echo_bench.py            # full size: 10-20 seconds
    python benchmarks/echo_bench.py --quick    # a smoke run: about a second

Both servers get the same client, a small C program (c/echo_client.c), and the
runs alternate -- C, socklab, C, socklab ... -- so that a burst of load from
something else on the machine hits both servers alike.  Each figure is the
median of its rounds.  Client and servers all run on one CPU (see one_cpu()).
Two measurements:

* bulk throughput: the client sends many MiB in 64 KiB chunks from one thread
  and reads the echo back in another; MiB/s, higher is better;
* round trip: a 32-byte message, sent and read back, many times in a row
  (TCP_NODELAY on); mean microseconds per round trip, lower is better.

Goals: throughput socklab/C >= 0.9 and round trip socklab/C <= 1.3.  Missing a
goal is reported, not failed: on a shared machine speed is too noisy for a
pass/fail test.  The exit status is non-zero only when something broke -- a
compile error, a wrong byte count, a server that died, a timeout.

Everything stays on 127.0.0.1.  The C programs are compiled into a temporary
directory, never into the repository.  See benchmarks/README.md.
"""

import argparse
import contextlib
import dataclasses
import os
import pathlib
import platform
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
C_SOURCES = HERE / "c"
SOCKLAB_SERVER = HERE / "socklab_echo_server.py"

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"]

FULL = {"bulk_mib": 512, "round_trips": 20_000}
QUICK = {"bulk_mib": 32, "round_trips": 2_000}

THROUGHPUT_GOAL = 0.9  # socklab/C, at least
ROUND_TRIP_GOAL = 1.3  # socklab/C, at most

COMPILE_TIMEOUT = 120  # seconds, for each gcc run
READY_TIMEOUT = 30  # seconds for a server to print LISTENING (Python imports can be slow)
CLIENT_TIMEOUT = 180  # seconds for one client run
STOP_TIMEOUT = 10  # seconds for a server to exit once asked to
WATCHDOG = 900  # seconds after which the servers end themselves, whatever happens


class BenchError(Exception):
    """Something broke: the figures would mean nothing."""


def scrub(text, *paths):
    """Replace this machine's absolute paths in ``text`` (error messages only)."""
    for path, placeholder in paths:
        text = text.replace(str(path), placeholder)
    return text


# -- building ------------------------------------------------------------------


def compile_programs(build_dir):
    """Compile the C server and client into build_dir; return their paths."""
    if shutil.which("gcc") is None:
        raise BenchError("gcc not found: the benchmark compiles its C programs with gcc")
    programs = {}
    for name in ("echo_server", "echo_client"):
        output = pathlib.Path(build_dir) / name
        # cwd=C_SOURCES and a relative source name keep gcc's messages free of
        # absolute paths.
        command = ["gcc", *CFLAGS, "-o", str(output), f"{name}.c"]
        try:
            result = subprocess.run(
                command, cwd=C_SOURCES, capture_output=True, text=True,
                timeout=COMPILE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"gcc took more than {COMPILE_TIMEOUT} s on {name}.c") from None
        if result.returncode != 0:
            message = scrub(result.stderr, (build_dir, "<build>"), (C_SOURCES, "c"))
            raise BenchError(f"compiling {name}.c failed:\n{message}")
        programs[name] = output
    return programs


# -- servers -------------------------------------------------------------------


class Server:
    """A server in a child process that announces "LISTENING <port>" on stdout.

    Readiness is read from that line, with a deadline, rather than guessed with a
    sleep: the line is printed after listen(), so a connect() that follows it
    cannot be refused.

    Both servers stop when their stdin, a pipe from this process, is closed:
    by stop(), or by the kernel if this process dies, however it dies.  The
    socklab server's exit status then says whether a handler raised an error.
    """

    def __init__(self, label, command):
        self.label = label
        self.stderr = ""
        # stdin is a pipe nobody writes to, only closes.  bufsize=0 so that
        # select() on stdout sees exactly what os.read() will get.
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, bufsize=0,
        )
        try:
            self.port = self._read_port()
        except BaseException:  # the caller gets no Server to stop: stop it here
            self.stop()
            raise

    def _read_port(self):
        line = b""
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise BenchError(f"{self.label} server: no LISTENING line within "
                                     f"{READY_TIMEOUT} s")
                chunk = os.read(self.proc.stdout.fileno(), 100)
                if not chunk:  # end-of-file: the server exited before listening
                    self.stop()  # to collect its stderr
                    raise BenchError(f"{self.label} server exited before listening:\n"
                                     + self.stderr)
                line += chunk
        words = line.split()
        if len(words) != 2 or words[0] != b"LISTENING" or not words[1].isdigit():
            raise BenchError(f"{self.label} server said {line!r}, not LISTENING <port>")
        return int(words[1])

    def check_alive(self):
        if self.proc.poll() is not None:
            self.stop()
            raise BenchError(f"{self.label} server died (exit status "
                             f"{self.proc.returncode}):\n{self.stderr}")

    def stop(self):
        """Ask the server to stop; terminate it, then kill it, if it does not.

        Safe to call more than once.  Returns True if it ended the normal way.
        """
        if self.proc.returncode is None:
            for escalate in (self.proc.terminate, self.proc.kill, None):
                try:
                    # communicate() closes stdin -- the signal to stop -- then
                    # waits for the exit and collects stderr.
                    self.stderr = self.proc.communicate(timeout=STOP_TIMEOUT)[1].decode(
                        errors="replace")
                    break
                except subprocess.TimeoutExpired:
                    if escalate is None:
                        raise BenchError(f"{self.label} server survived SIGKILL") from None
                    escalate()
        return self.proc.returncode == 0


def start_c_server(programs):
    return Server("C", [str(programs["echo_server"]), str(WATCHDOG)])


def start_socklab_server():
    # sys.executable: the same Python, so the same socklab, as the benchmark.
    return Server("socklab", [sys.executable, str(SOCKLAB_SERVER), str(WATCHDOG)])


# -- the client ----------------------------------------------------------------


def run_client(programs, server, mode, amount):
    """Run one client against ``server``; return its RESULT line as a dict."""
    command = [str(programs["echo_client"]), str(server.port), mode, str(amount)]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{mode} client against the {server.label} server took more "
                         f"than {CLIENT_TIMEOUT} s") from None
    if result.returncode != 0:
        raise BenchError(f"{mode} client against the {server.label} server failed "
                         f"(status {result.returncode}):\n{result.stderr}")
    server.check_alive()
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(field.split("=", 1) for field in line.split()[1:])
    raise BenchError(f"the client printed no RESULT line:\n{result.stdout}")


# -- placement -------------------------------------------------------------------


@contextlib.contextmanager
def one_cpu(servers):
    """While the block runs, the servers and every client started run on one CPU.

    Left to the scheduler, *where* client and server run decides more than their
    code does.  A round trip is two wake-ups, and waking a thread on another, idle
    CPU can cost more than all the work of the round trip: on the 2-CPU virtual
    machine this was written on, a C round trip took 19 us with client and server
    on one CPU and 70 us on two, and the scheduler picked one or the other from
    run to run.  Bulk throughput swung as well (socklab "beat" C in some runs).
    On one CPU each figure is the work done per message or per byte by client,
    kernel and server together; client and kernel are the same for both servers,
    so what differs is the server's code -- the thing measured.
    """
    if not hasattr(os, "sched_setaffinity"):  # not Linux: measure unpinned
        yield
        return
    allowed = os.sched_getaffinity(0)
    cpu = {max(allowed)}  # the last one: CPU 0 tends to take more interrupts
    try:
        _set_affinity(servers, cpu)
        yield
    finally:
        _set_affinity(servers, allowed)


def _set_affinity(servers, cpus):
    # Our own thread: the clients started from it inherit its affinity.
    os.sched_setaffinity(0, cpus)
    # Every thread of each server: a thread inherits the affinity of the thread
    # that creates it, and socklab creates connection threads in its accept thread,
    # not in the main thread.
    for server in servers:
        try:
            for task in pathlib.Path(f"/proc/{server.proc.pid}/task").iterdir():
                try:
                    os.sched_setaffinity(int(task.name), cpus)
                except ProcessLookupError:  # a connection thread that has just ended
                    pass
        except FileNotFoundError:  # the server has died; the caller reports that
            pass


# -- the benchmark ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measurement:
    name: str
    mode: str  # the client's mode
    size_key: str  # its amount, from FULL or QUICK
    field: str  # the figure, in the client's RESULT line
    unit: str
    goal: float  # for the ratio socklab/C
    higher_is_better: bool  # the goal is a minimum (else a maximum)

    def goal_text(self):
        return (">= " if self.higher_is_better else "<= ") + f"{self.goal}"

    def meets_goal(self, ratio):
        return ratio >= self.goal if self.higher_is_better else ratio <= self.goal


BULK = Measurement("bulk throughput", "bulk", "bulk_mib", "mib_per_s", "MiB/s",
                   THROUGHPUT_GOAL, higher_is_better=True)
ROUND_TRIP = Measurement("round trip", "rtt", "round_trips", "mean_us", "us",
                         ROUND_TRIP_GOAL, higher_is_better=False)


def run_rounds(programs, servers, sizes, rounds):
    """Alternate the servers, round after round; return {(name, label): [figures]}."""
    figures = {}

    def measure(measurement, round_number):
        for server in servers:
            result = run_client(programs, server, measurement.mode,
                                sizes[measurement.size_key])
            value = float(result[measurement.field])
            figures.setdefault((measurement.name, server.label), []).append(value)
            print(f"  round {round_number}/{rounds}  {measurement.name:<16} "
                  f"{server.label:<8} {value:9.1f} {measurement.unit}", flush=True)

    with one_cpu(servers):
        for round_number in range(1, rounds + 1):
            measure(BULK, round_number)
            measure(ROUND_TRIP, round_number)
    return figures


def report(figures, labels):
    """Print the medians, the ratios socklab/C, and whether each goal is met."""
    print()
    print(f"{'median':<26}{labels[0]:>10}{labels[1]:>10}   socklab/C   goal")
    for measurement in (BULK, ROUND_TRIP):
        c, py = (statistics.median(figures[measurement.name, label]) for label in labels)
        ratio = py / c
        verdict = "meets goal" if measurement.meets_goal(ratio) else "misses goal"
        name = f"{measurement.name} ({measurement.unit})"
        print(f"{name:<26}{c:>10.1f}{py:>10.1f}   {ratio:>9.2f}   "
              f"{measurement.goal_text():<7} {verdict}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes ({QUICK['bulk_mib']} MiB, "
                             f"{QUICK['round_trips']} round trips): a smoke run")
    parser.add_argument("--rounds", type=int, default=5,
                        help="runs of each measurement on each server (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sizes = QUICK if args.quick else FULL

    print("echo benchmark: socklab.TCPEchoServer vs a C echo server, on 127.0.0.1")
    print(f"  Python {platform.python_version()}, {os.cpu_count()} CPUs (all runs on one), "
          f"{sizes['bulk_mib']} MiB bulk, {sizes['round_trips']} round trips of 32 bytes, "
          f"{args.rounds} rounds")
    # SIGTERM (from `timeout`, say) ends us through the finally below, which stops
    # the servers and removes the build directory, rather than on the spot.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    servers = []
    with tempfile.TemporaryDirectory(prefix="socklab-bench-") as build_dir:
        try:
            programs = compile_programs(build_dir)
            servers.append(start_c_server(programs))
            servers.append(start_socklab_server())
            figures = run_rounds(programs, servers, sizes, args.rounds)
            # Stopping cleanly is part of working: the socklab server's exit status
            # says whether a handler raised.
            for server in servers:
                if not server.stop():
                    raise BenchError(f"{server.label} server exited with status "
                                     f"{server.proc.returncode}:\n{server.stderr}")
        except (BenchError, OSError) as exc:  # OSError: a program failed to start
            message = scrub(str(exc), (build_dir, "<build>"), (HERE, "benchmarks"))
            print(f"\nbenchmark broken: {message}", file=sys.stderr)
            return 1
        finally:
            for server in servers:  # a no-op for servers already stopped
                server.stop()
    report(figures, [server.label for server in servers])
    print(f"\n{time.monotonic() - started:.1f} s in all.  A ratio that misses its goal "
          "is a finding, not a failure: see benchmarks/README.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
