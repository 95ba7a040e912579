"""Command line of socklab: ``python -m socklab <command>``.

Each command is a ``main(argv)`` function in a module of its own, imported only
when that command runs, so that ``--help`` stays instant.  A new command is one
line in COMMANDS.
"""

import importlib
import sys

# name: (module, function, what it does)
COMMANDS = {
    "doctor": ("socklab.doctor", "main",
               "check what works here: gcc, strace, privileges, kernel settings, versions"),
    "progress": ("socklab.results", "progress_main",
                 "your exercise results: passed, tried, not tried"),
    "class-report": ("socklab.results", "class_report_main",
                     "FOLDER... [-o FILE]: one HTML page of many learners' results"),
    "shell": ("socklab.kernel", "shell_main",
              "[KERNEL]: a shell inside the private network of a running socklab kernel"),
}

USAGE = "usage: python -m socklab <command>\n\ncommands:\n" + "".join(
    f"  {name:<13} {what}\n" for name, (_, _, what) in COMMANDS.items())


def main(argv):
    """Dispatch to a command; returns the exit status (2 for a bad command line)."""
    if argv[:1] and argv[0] in COMMANDS:
        module, function, _ = COMMANDS[argv[0]]
        return getattr(importlib.import_module(module), function)(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    print(USAGE, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
