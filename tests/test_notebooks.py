"""Every notebook executed through papermill on the smallest profile, asserting on the stored data."""

import math

import numpy as np
import pytest

from mlx_workbook.core import results
from mlx_workbook.report import runner

pytestmark = pytest.mark.notebook

REQUIRED = [
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
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Execute a notebook once (test profile) into its own scratch reports folder; cached per notebook."""
    done = {}

    def run(name):
        if name not in done:
            root = tmp_path_factory.mktemp(f"reports-{name}")
            done[name] = root, runner.run_notebooks([name], "test", {}, root=root)
        return done[name]

    return run


@pytest.mark.parametrize("name", runner.notebook_names())
def test_notebook_runs_and_stores_valid_data(executed, name):
    root, code = executed(name)
    (record,) = results.find_runs(root)
    run_dir, summary = record.path, record.as_dict()
    assert code == 0 and summary["status"] == "ok", summary.get("error")
    assert name in (root / "index.html").read_text()
    df = results.read_measurements(run_dir)
    assert not df.empty
    assert set(REQUIRED) <= set(df.columns)
    assert (df.notebook == name).all() and df.run_id.nunique() == 1
    assert np.isfinite(df.value.to_numpy(dtype=float)).all()
    positive_units = {"GB/s", "TFLOP/s", "ms", "s", "tokens/s", "GB"}
    assert (df[df.unit.isin(positive_units)].value > 0).all()
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
    (summary,) = results.find_runs(tmp_path)
    run_dir = summary.path
    assert summary.status == "failed" and "bogus" in summary.error
    df = results.read_measurements(run_dir)
    assert len(df) > 0 and set(df.variant) == {"read"}
    index = (tmp_path / "index.html").read_text()
    assert "papermill-error-cell" in index and "failed" in index
    assert "papermill-error-cell" in (run_dir / "00_machine.html").read_text()


def test_kv_cache_judges_its_claims_on_stored_block_comparisons(executed):
    """01's test-profile run stores each claim's comparison as paired blocks (both variants in every block,
    host state per block) with an outcome row saying why it stopped, and its findings read those rows."""
    from mlx_workbook.core import blocks, hoststate
    from mlx_workbook.investigations.kv_cache import measure

    root, code = executed("01_kv_cache")
    (record,) = results.find_runs(root)
    df = results.read_measurements(record.path)
    summary = record.as_dict()
    for experiment in (measure.COPY_ORIGINAL, measure.FLAT_ORIGINAL, measure.COPY_LONG):
        (stop,) = blocks.stop_rows(df, experiment).itertuples()
        assert stop.stop_reason in (blocks.DECIDED, blocks.BUDGET, blocks.MAX_BLOCKS)
        assert stop.n_blocks >= 2 and stop.low <= stop.value <= stop.high and stop.resolvable_pct > 0
        values = df[(df.experiment == experiment) & (df.metric == measure.TIME_METRIC)]
        assert (
            values.groupby("block").variant.nunique() == 2
        ).all() and values.block.nunique() == stop.n_blocks
        assert (df[df.experiment == experiment].metric == hoststate.PROBE_METRIC).sum() == stop.n_blocks
    claims = {f["id"]: f for f in summary["findings"]}
    flat = claims["per_token_time_flat"]["measured"]
    (stop,) = blocks.stop_rows(df, measure.FLAT_ORIGINAL).itertuples()
    assert flat["n_blocks"] == stop.n_blocks and flat["stop_reason"] == stop.stop_reason
    assert f"n={int(stop.n_blocks)} paired blocks" in claims["per_token_time_flat"]["statement"]
    assert claims["kv_copy_no_impact"]["measured"]["n_blocks"] >= 2 and "host_stability" in claims


def test_sdpa_cliff_saves_its_cliffs_and_its_undecided_steps_for_make_compare(executed):
    root, code = executed("03_sdpa_cliff")
    (record,) = results.find_runs(root)
    tables = record.path / results.TABLES
    for name in ("cliffs", "undecided_steps"):
        assert (tables / f"{name}.csv").exists() and (tables / f"{name}.key").exists()
    assert "verdict" not in (tables / "undecided_steps.key").read_text().split()  # an undecided step has none
    # method 7: every re-measured step, flat or not, again in a fresh process; a third only where two left it open
    df = results.read_measurements(record.path)
    confirm = df[df.experiment == "prefill_confirm"]
    steps = confirm.groupby(confirm.process.fillna(0).astype(int)).apply(
        lambda g: set(zip(g["mode"], g["dtype"], g["head_dim"], g["before_length"], g["after_length"]))
    )
    assert steps[1] == steps[0] and steps.get(2, set()) <= steps[1] and len(steps[0]) > 1


def test_bandwidth_judges_the_cold_start_on_fresh_processes(executed):
    """04's test-profile run cold-starts its MoE stand-in in fresh processes (3 of them, each with its own start,
    build, cold and warm runs) and judges the cold-start claim on them, the notebook's own cold run beside."""
    from mlx_workbook.investigations.bandwidth import coldstart

    root, code = executed("04_bandwidth")
    (record,) = results.find_runs(root)
    df = results.read_measurements(record.path)
    table = coldstart.table(df)
    assert list(table.process) == [1, 2, 3] and table.label.nunique() == 1 and "tiny-moe" in table.label[0]
    assert (table.start_s > 0).all() and (table.cold_decode_tps > 0).all()
    fresh = coldstart.result(df)
    assert fresh.estimate.n == 3 and fresh.stop_reason in ("decided", "max_blocks")
    (claim,) = [f for f in record.as_dict()["findings"] if f["id"] == coldstart.CLAIM]
    assert "3 fresh processes" in claim["statement"] and "notebook's own process" in claim["statement"]
    assert claim["measured"]["value"] == pytest.approx(fresh.estimate.value)
