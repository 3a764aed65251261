import json

import pandas as pd

from mlx_workbook.core import results
from mlx_workbook.core.results import Finding


def test_rows_are_on_disk_after_each_record(tmp_path):
    run = results.start_run("99_test", {"n": 3}, run_dir=tmp_path / "r1")
    assert results.read_summary(run.run_dir)["status"] == "running"
    for i in range(3):
        run.record("exp", "latency_ms", 1.0 + i, "ms", trial=i, variant="a")
        assert len(results.read_measurements(run.run_dir)) == i + 1  # flushed per trial, not at the end
    df = results.read_measurements(run.run_dir)
    for col in [
        "run_id",
        "notebook",
        "method_version",
        "backend",
        "device",
        "mlx",
        "mlx_lm",
        "experiment",
        "metric",
        "value",
        "unit",
        "trial",
        "timestamp",
        "variant",
    ]:
        assert col in df.columns
    assert df.value.tolist() == [1.0, 2.0, 3.0]


def test_summary_round_trip_with_findings(tmp_path):
    run = results.start_run("99_test", {"n": 3}, run_dir=tmp_path / "r2")
    run.record("exp", "x", 2.0, "s")
    run.add_finding(Finding(id="f1", statement="x is 2", measured={"value": 2.0}, headline=True))
    run.finish()
    s = results.read_summary(run.run_dir)
    assert s["status"] == "ok" and s["params"] == {"n": 3} and s["rows"] == 1
    assert s["findings"][0]["id"] == "f1" and s["environment"]["backend"] == "cpu"
    json.dumps(s)  # plain JSON


def test_load_finds_runs_and_latest(tmp_path):
    for i, name in enumerate(("a", "b")):
        run = results.start_run("99_test", {}, run_dir=tmp_path / "runs" / name)
        run.started -= 60 * (2 - i)  # "a" started before "b" (start times have one-second resolution)
        run.record("exp", "x", 1.0, "s")
        run.finish()
    crashed = results.start_run("99_test", {}, run_dir=tmp_path / "runs" / "c")
    crashed.record("exp", "x", 5.0, "s")  # never finished: status stays "running"
    assert len(results.find_runs(tmp_path)) == 3
    assert len(results.load(tmp_path, "99_test")) == 2  # finished runs only by default
    assert len(results.load(tmp_path, "99_test", status=None)) == 3
    assert results.latest_run("99_test", root=tmp_path) == tmp_path / "runs" / "b"  # the newest finished run
    assert [d.name for d in results.find_runs(tmp_path)] == ["c", "b", "a"]  # newest first
    assert results.latest_run("00_other", root=tmp_path) is None
    assert results.load(tmp_path, "nothing").empty


def test_figures_saved_as_svg_and_png(tmp_path):
    from mlx_workbook.report import plots

    run = results.start_run("99_test", {}, run_dir=tmp_path / "r3")
    table = pd.DataFrame({"x": [1, 2], "median": [1.0, 2.0], "low": [0.9, 1.9], "high": [1.1, 2.1]})
    fig = plots.lines_with_intervals(
        table, x="x", series=None, title="t", xlabel="x", ylabel="y", ceilings={"peak": 3.0}
    )
    path = run.save_figure(fig, "line")
    assert path.exists() and path.with_suffix(".png").exists()
    assert path.read_text().lstrip().startswith("<?xml")


def test_journal_keeps_rows_of_a_crashed_run_and_consolidates(tmp_path):
    run = results.start_run("99_test", {}, run_dir=tmp_path / "crash")
    run.record_many("exp", [dict(metric="x", value=float(i), unit="s", trial=i) for i in range(5)])
    # the process dies here: no finish(); the journal still holds every row, a torn last line included
    with open(run.run_dir / results.JOURNAL, "a") as f:
        f.write('{"metric": "x", "val')
    assert len(results.read_measurements(run.run_dir)) == 5
    assert results.consolidate(run.run_dir).name == results.MEASUREMENTS
    assert not (run.run_dir / results.JOURNAL).exists()
    assert results.read_measurements(run.run_dir).value.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
