"""The ``%%c`` cell magic: compile the cell with gcc and run it.

    %load_ext socklab

    %%c hello                    compile hello.c, run it, show its output
    %%c hello -- world 42        ... with arguments for the program
    %%c echo_server --bg         start it in the background; waits for LISTENING <port>
    %%c broken --compile-only    only compile (a listing that is not run)
    %%c slow --timeout 30        allow more than 10 s

This is the only socklab module that imports IPython; it is a thin face over
socklab.c, which does the work and can be used without Jupyter.
"""

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import c


@magics_class
class CMagics(Magics):
    @magic_arguments()
    @argument("name", help="program name: the cell is saved as NAME.c")
    @argument("--bg", action="store_true",
              help="run in the background (a server must print 'LISTENING <port>')")
    @argument("--compile-only", action="store_true", help="compile, do not run")
    @argument("--timeout", type=float, default=c.RUN_TIMEOUT,
              help="seconds the program may run in the foreground (default: %(default)s)")
    @argument("args", nargs="*", help="arguments for the program (after --)")
    @cell_magic("c")
    def c_cell(self, line, cell):
        """Compile this cell as C (gcc -std=gnu11 -Wall -Wextra -Werror) and run it."""
        options = parse_argstring(self.c_cell, line)
        c.compile(cell, options.name)
        if options.compile_only:
            return None
        if options.bg:
            return c.start(options.name, options.args)
        c.run(options.name, options.args, timeout=options.timeout)
        return None


def load_ipython_extension(ipython):
    ipython.register_magics(CMagics)
