"""Every notebook executed through papermill on the smallest profile, asserting on the stored data."""

import math

import numpy as np
import pytest

from mlx_workbook import results, runner

pytestmark = pytest.mark.notebook

REQUIRED = ["run_id", "notebook", "method_version", "backend", "device", "mlx", "mlx_lm", "experiment",
            "metric", "value", "unit", "trial", "timestamp"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Run every notebook once with the test profile into a scratch reports folder."""
    root = tmp_path_factory.mktemp("reports")
    code = runner.run_notebooks(runner.notebook_names(), "test", {}, root=root)
    return root, code


def test_all_notebooks_succeed_and_index_lists_them(reports):
    root, code = reports
    summaries = [results.read_summary(d) for d in results.find_runs(root)]
    failed = [(s["notebook"], s.get("error")) for s in summaries if s["status"] != "ok"]
    assert code == 0 and not failed, failed
    assert {s["notebook"] for s in summaries} == set(runner.notebook_names())
    index = (root / "index.html").read_text()
    for name in runner.notebook_names():
        assert name in index


@pytest.mark.parametrize("name", runner.notebook_names())
def test_notebook_stored_data(reports, name):
    root, _ = reports
    run_dir = results.latest_run(name, root=root)
    assert run_dir is not None
    df = results.read_measurements(run_dir)
    assert not df.empty
    assert set(REQUIRED) <= set(df.columns)
    assert (df.notebook == name).all() and df.run_id.nunique() == 1
    values = df.value.to_numpy(dtype=float)
    assert np.isfinite(values).all()
    positive_units = {"GB/s", "TFLOP/s", "ms", "s", "tokens/s", "GB"}
    assert (df[df.unit.isin(positive_units)].value > 0).all()
    summary = results.read_summary(run_dir)
    assert summary["findings"], "a notebook must state findings computed from its data"
    for f in summary["findings"]:
        assert f["statement"]
        if f.get("measured") and isinstance(f["measured"].get("value"), float):
            assert math.isfinite(f["measured"]["value"])
    assert (run_dir / f"{name}.html").exists()
    assert list((run_dir / "figures").glob("*.svg"))


def test_failure_is_marked_keeps_finished_trials_and_exits_non_zero(tmp_path):
    # The second probe name is bogus: the first probe's trials finish, then the notebook raises.
    code = runner.run_notebooks(["00_machine"], "test", {"probes": ["read", "bogus"]}, root=tmp_path)
    assert code == 1
    (run_dir,) = results.find_runs(tmp_path)
    summary = results.read_summary(run_dir)
    assert summary["status"] == "failed" and "bogus" in summary["error"]
    df = results.read_measurements(run_dir)
    assert len(df) > 0 and set(df.variant) == {"read"}
    index = (tmp_path / "index.html").read_text()
    assert "papermill-error-cell" in index and "failed" in index
    assert "papermill-error-cell" in (run_dir / "00_machine.html").read_text()
