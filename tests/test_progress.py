"""socklab.Progress: a bar in a notebook, one rewritten line in a terminal."""

import io

import pytest

from socklab import Progress


def test_terminal_progress_counts_steps_and_ends_with_a_line():
    out = io.StringIO()
    with Progress("measuring", 3, stream=out) as step:
        step("C")
        step("Python")
        step()
    text = out.getvalue()
    assert "measuring: 0 of 3" in text
    assert "measuring: 1 of 3 (C)" in text
    assert "measuring: 2 of 3 (Python)" in text
    assert text.rstrip().splitlines()[-1].strip().startswith("measuring: 3 of 3, ")


def test_more_steps_than_total_do_not_overflow():
    out = io.StringIO()
    with Progress("x", 1, stream=out) as step:
        step()
        step()
    assert step.done == 1


def test_zero_total_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Progress("x", 0)


def test_an_exception_still_ends_the_line_and_propagates():
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress("x", 2, stream=out) as step:
            step()
            raise RuntimeError("boom")
    assert out.getvalue().endswith("\n")
    assert "x: 1 of 2, " in out.getvalue()


def test_in_a_kernel_it_is_a_bar_whose_stored_text_is_fixed():
    # A real kernel: what the notebook stores is one display with a fixed text
    # form, while the bar's value travels as widget state (not an output).
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import socklab\n"
        "with socklab.Progress('rounds', 3) as step:\n"
        "    for name in ('C', 'Python', 'iperf3'):\n"
        "        step(name)\n"
        "step.done")]
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   store_widget_state=True).execute()
    outputs = nb.cells[0].outputs
    assert outputs[0].output_type == "display_data"
    assert outputs[0].data["text/plain"] == "[progress: rounds, 3 steps]"
    assert "application/vnd.jupyter.widget-view+json" in outputs[0].data
    assert outputs[-1].data["text/plain"] == "3"
    states = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [s["state"] for s in states.values() if s["model_name"] == "IntProgressModel"]
    assert [(b["value"], b["max"], b["bar_style"]) for b in bars] == [(3, 3, "success")]
