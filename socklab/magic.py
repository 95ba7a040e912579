"""The ``%%c`` cell magic: compile the cell with gcc and run it.

    %load_ext socklab

    %%c hello                    compile hello.c, run it, show its output
    %%c hello -- world 42        ... with arguments for the program
    %%c server --bg -- 5         options first, then the program's arguments
    %%c echo_server --bg         start it in the background; waits for LISTENING <port>
    %%c broken --compile-only    only compile (a listing that is not run)
    %%c slow --timeout 30        allow more than 10 s
    %%c buggy --sanitize         build with AddressSanitizer and UBSan: the first
                                 memory or undefined-behaviour error stops the
                                 program with a report naming the cell's lines
    %%c tls_client -l ssl -l crypto
                                 link libraries, as gcc's -l does (-lssl -lcrypto:
                                 OpenSSL, lesson 14); -lssl works too

This is the only socklab module that imports IPython; it is a thin face over
socklab.c, which does the work and can be used without Jupyter.
"""

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split

from . import c


@magics_class
class CMagics(Magics):
    @magic_arguments()
    @argument("name", help="program name: the cell is saved as NAME.c")
    @argument("--bg", action="store_true",
              help="run in the background (a server must print 'LISTENING <port>')")
    @argument("--compile-only", action="store_true", help="compile, do not run")
    @argument("--sanitize", action="store_true",
              help="build with -fsanitize=address,undefined -g: a bad pointer, an "
                   "overrun or undefined behaviour stops it with a short report")
    @argument("-l", dest="libs", action="append", default=[], metavar="LIB",
              help="link library LIB, as gcc's -l does (-l ssl -l crypto for OpenSSL)")
    @argument("--timeout", type=float, default=c.RUN_TIMEOUT,
              help="seconds the program may run in the foreground (default: %(default)s)")
    @argument("args", nargs="*", help="arguments for the program (after --)")
    @cell_magic("c")
    def c_cell(self, line, cell):
        """Compile this cell as C (gcc -std=gnu11 -Wall -Wextra -Werror) and run it."""
        options = parse_line(self.c_cell.parser, line)
        c.compile(cell, options.name, sanitize=options.sanitize, libs=options.libs)
        if options.compile_only:
            return None
        if options.bg:
            return c.start(options.name, options.args)
        c.run(options.name, options.args, timeout=options.timeout)
        return None


def parse_line(parser, line):
    """The magic's options, with every word after a lone ``--`` for the program.

    Plain argparse cannot take an option after a list of positionals
    ("%%c srv --bg -- 5" fails with "unrecognized arguments"), so the
    program's arguments are cut off first, and options and names may come in
    any order before them.
    """
    words = arg_split(line)
    program_args = []
    if "--" in words:
        cut = words.index("--")
        words, program_args = words[:cut], words[cut + 1:]
    if not [word for word in words if not word.startswith("-")]:
        raise UsageError("%%c needs a program name: %%c NAME [--bg] [-- ARGS]")
    options = parser.parse_intermixed_args(words)
    options.args = list(options.args) + program_args
    return options


def load_ipython_extension(ipython):
    ipython.register_magics(CMagics)
