"""Progress for long cells and scripts: ``with socklab.Progress("measuring", 5) as step:``.

In a notebook it shows a progress bar (an ipywidgets IntProgress) that moves while
the cell runs; in a terminal it rewrites one line on stderr.  Call ``step()`` after
each unit of work, optionally with a short note (``step("C, round 2")``).

Why a widget and not printed lines: a stored notebook must look the same on every
run (nbval compares outputs), and the bar's movement travels as widget messages,
which are not outputs.  What the notebook stores is one display whose text form is
fixed -- ``[progress: measuring, 5 steps]`` -- whatever the timings were.
"""

import sys
import time

__all__ = ["Progress"]


def _in_kernel():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class Progress:
    """A bar with ``total`` steps; use as a context manager, call it once per step."""

    def __init__(self, title, total, stream=None):
        if total < 1:
            raise ValueError(f"total must be at least 1, not {total}")
        self.title, self.total, self.done = title, total, 0
        self._stream = stream if stream is not None else sys.stderr
        self._bar = None
        self._started = None

    # -- the notebook face -----------------------------------------------------------
    def _show_widget(self):
        import ipywidgets as widgets
        from IPython.display import display

        self._bar = widgets.IntProgress(
            value=0, min=0, max=self.total, description=self.title,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="60%"),
        )
        self._label = widgets.Label(f"0 of {self.total}")
        box = widgets.HBox([self._bar, self._label])
        bundle = box._repr_mimebundle_()
        # The fixed text form is what nbval compares and what a static page shows.
        bundle["text/plain"] = f"[progress: {self.title}, {self.total} steps]"
        display(bundle, raw=True)

    def __enter__(self):
        self._started = time.monotonic()
        if _in_kernel():
            self._show_widget()
        else:
            self._write(f"{self.title}: 0 of {self.total}")
        return self

    def __call__(self, note=""):
        """One more step done."""
        self.done = min(self.done + 1, self.total)
        text = f"{self.done} of {self.total}" + (f" ({note})" if note else "")
        if self._bar is not None:
            self._bar.value = self.done
            self._label.value = text
        else:
            self._write(f"{self.title}: {text}")

    def __exit__(self, exc_type, exc, tb):
        seconds = time.monotonic() - self._started
        if self._bar is not None:
            self._bar.bar_style = "danger" if exc_type else "success"
            self._label.value += f", {seconds:.1f} s"
        else:
            self._write(f"{self.title}: {self.done} of {self.total}, {seconds:.1f} s\n")
        return False

    def _write(self, text):
        # "\r" and padding: the next line overwrites this one in a terminal.
        end = "" if text.endswith("\n") else "\r"
        self._stream.write(f"\r{text.rstrip():<70}" + ("\n" if not end else end))
        self._stream.flush()

