import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlx_workbook import ROOT
from mlx_workbook.core import parameters, results
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
    assert results.latest_run("99_test", root=tmp_path).path == tmp_path / "runs" / "b"  # newest finished run
    assert [r.run_id for r in results.find_runs(tmp_path)] == ["c", "b", "a"]  # newest first
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


def test_run_summary_is_typed_and_round_trips(tmp_path):
    run = results.start_run("99_test", {"n": 3, "profile": "quick"}, run_dir=tmp_path / "typed")
    run.add_finding(Finding(id="f1", statement="x is 2", verdict="holds", headline=True))
    run.finish()
    summary = results.RunSummary.read(run.run_dir)
    assert isinstance(summary.findings[0], Finding) and summary.finding("f1").verdict == "holds"
    assert summary.status == summary.state == "ok" and summary.profile == "quick"
    assert summary.pid == os.getpid() and summary.host and summary.path == run.run_dir
    assert summary.finished and summary.duration_s is not None
    summary.overrides = {"n": 3}
    summary.write_atomic()
    again = results.RunSummary.read(run.run_dir / results.SUMMARY)
    assert again == summary and not list(run.run_dir.glob("*.tmp"))


def test_reference_summaries_read():
    """Every committed reference run reads as a record; the finished ones state findings."""
    runs = results.find_runs(ROOT / "reports" / "reference")
    assert runs and all(r.findings for r in runs if r.status == "ok")
    assert all(r.profile != "?" and r.device != "?" for r in runs)


def test_a_summary_written_before_the_typed_record_still_reads(tmp_path):
    """A summary.json of the first wave (a plain dict, kept in tests/data) reads, findings included."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / results.SUMMARY).write_text(
        (Path(__file__).parent / "data" / "summary_before_runsummary.json").read_text()
    )
    (run,) = results.find_runs(tmp_path)
    assert run.status == "ok" and run.findings and run.profile == "full" and run.device == "NVIDIA H200"


def test_unknown_keys_survive_a_rewrite(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / results.SUMMARY).write_text(json.dumps({"run_id": "old", "notebook": "99_x", "someday": 1}))
    summary = results.RunSummary.read(folder)
    summary.write_atomic()
    assert json.loads((folder / results.SUMMARY).read_text())["someday"] == 1


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"run_id": "x", "notebook": "99_te', "not valid JSON"),
        ("[]", "JSON list, not an object"),
        ("", "JSON"),
    ],
)
def test_unreadable_summary_is_skipped_and_named_once(tmp_path, capsys, content, reason):
    good = results.start_run("99_test", {}, run_dir=tmp_path / "runs" / "good")
    good.record("exp", "x", 1.0, "s")
    good.finish()
    bad = tmp_path / "runs" / "bad"
    bad.mkdir()
    (bad / results.SUMMARY).write_text(content)
    skipped = []
    assert [r.run_id for r in results.find_runs(tmp_path, skipped=skipped)] == ["good"]
    assert len(skipped) == 1 and "bad" in skipped[0] and reason in skipped[0]
    assert len(results.load(tmp_path)) == 1  # results.load skips it too
    results.find_runs(tmp_path)
    err = capsys.readouterr().err
    assert err.count("bad/summary.json") == 1 and reason in err  # named once, however often it is met
    with pytest.raises(results.SummaryError, match="bad"):
        results.RunSummary.read(bad)


def test_a_running_run_whose_process_is_gone_is_abandoned(tmp_path):
    run = results.start_run("99_test", {}, run_dir=tmp_path / "left")
    summary = results.RunSummary.read(run.run_dir)
    assert summary.state == "running"  # this process is alive
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    summary.pid = int(proc.stdout)  # a process that has exited
    summary.write_atomic()
    assert results.RunSummary.read(run.run_dir).state == "abandoned"


def test_runs_started_in_the_same_second_get_distinct_folders(tmp_path):
    from mlx_workbook.core import env

    environment = env.capture()
    folders = {results.new_run_dir(tmp_path, "99_test", environment) for _ in range(3)}
    assert len(folders) == 3 and all(f.is_dir() for f in folders)


def test_start_records_the_declared_parameters(tmp_path):
    namespace = {"profile": "test", "run_dir": str(tmp_path / "nb"), "repeats": 2, "unrelated": 1}
    namespace.update(
        {k: p.default for k, p in parameters.declared("00_machine").items() if k not in namespace}
    )
    run = results.start("00_machine", namespace)
    assert run.run_dir == tmp_path / "nb" and run.params["repeats"] == 2 and run.params["profile"] == "test"
    assert "run_dir" not in run.params and "unrelated" not in run.params
    assert set(run.params) == set(parameters.declared("00_machine")) - {"run_dir"}
