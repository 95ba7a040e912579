"""Run socklab.TCPEchoServer in a process of its own, for echo_bench.py.

The benchmark's client is a C program in another process, so the server must be
one too: a server thread inside the benchmark's own Python process would share
its GIL with the code that starts and times the runs.

Prints "LISTENING <port>" once the server listens (the constructor has already
bound and listened when it returns), then serves until its stdin is closed --
which the benchmark does when it is done, or the kernel does when the benchmark
dies.  A SIGALRM watchdog ends it in any case after WATCHDOG seconds.

Usage: python socklab_echo_server.py [watchdog_seconds]
"""

import pathlib
import signal
import sys

# Benchmark the socklab of this checkout, even if another copy is installed.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import socklab  # noqa: E402  (after the sys.path change above)

WATCHDOG = 600  # seconds


def main():
    # No handler is installed for SIGALRM, so its default action ends the process.
    signal.alarm(int(sys.argv[1]) if len(sys.argv) > 1 else WATCHDOG)
    server = socklab.TCPEchoServer(name="bench-echo")
    try:
        print(f"LISTENING {server.port}", flush=True)
        sys.stdin.buffer.read()  # returns at end-of-file: the benchmark closed our stdin
    finally:
        # stop() raises again any exception a handler raised: the exit status then
        # tells the benchmark that the server broke.
        server.stop()


if __name__ == "__main__":
    main()
