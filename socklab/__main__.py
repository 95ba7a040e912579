"""Command line of socklab: ``python -m socklab <command>``.

There is one command today, ``doctor``, which tells you what works on this machine.
"""

import sys

USAGE = """\
usage: python -m socklab <command>

commands:
  doctor   check what works here: gcc, strace, privileges, kernel settings, versions
"""


def main(argv):
    """Dispatch to a command; returns the exit status (2 for a bad command line)."""
    if argv[:1] == ["doctor"]:
        from socklab import doctor   # imported here so `--help` stays instant
        return doctor.main(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    print(USAGE, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
