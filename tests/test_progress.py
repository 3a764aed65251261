"""Progress lines: what the measuring loops print, and what the runner echoes of them to the terminal."""

import io

from mlx_workbook.core import progress
from mlx_workbook.report import html, runner


def test_steps_yield_every_item_and_announce_each(capsys):
    assert list(progress.steps(["a", "b", "c"], "qwen 4-bit decode, config")) == ["a", "b", "c"]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{progress.MARK}qwen 4-bit decode, config 1/3"
    assert [line.split(" (")[0] for line in lines] == [
        f"{progress.MARK}qwen 4-bit decode, config {i}/3" for i in (1, 2, 3)
    ]


def test_runner_echoes_progress_only_first_last_and_throttled():
    out = io.StringIO()
    echo = runner.ProgressEcho("03_sdpa_cliff", out, every=3600)
    steps = "".join(f"\r{progress.MARK}prefill: round {i}/40 ({i} s)" for i in range(1, 41))
    echo.write("a warning the page keeps\n" + steps + f"\n{progress.MARK}decode: round 1/6\n")
    assert out.getvalue().splitlines() == [
        "[03_sdpa_cliff] prefill: round 1/40 (1 s)",
        "[03_sdpa_cliff] prefill: round 40/40 (40 s)",
        "[03_sdpa_cliff] decode: round 1/6",
    ]


def test_the_page_leaves_progress_out_and_keeps_other_stderr():
    import nbformat

    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output(
            "stream", name="stderr", text=f"\r{progress.MARK}round 1/2\r{progress.MARK}round 2/2\n"
        ),
        nbformat.v4.new_output("stream", name="stderr", text="real problem\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    html._drop_noise(nb)
    assert [o.text for o in nb.cells[0].outputs] == ["real problem\n"]
