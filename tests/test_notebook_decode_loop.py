"""02_decode_loop executed through papermill on the test profile, then checked on its stored data: every claim's
comparison is stored as blocks with a stop reason, and the sampling share is computed from in-loop rows."""

from __future__ import annotations

import pytest

from mlx_workbook.core import blocks, results
from mlx_workbook.investigations.decode_loop import plans
from mlx_workbook.investigations.decode_loop import stats as loop_stats
from mlx_workbook.report import runner

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def run_02(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports-02_decode_loop")
    code = runner.run_notebooks(["02_decode_loop"], "test", {}, root=root)
    run_dir = results.find_runs(root)[0].path
    return code, results.read_measurements(run_dir), results.read_summary(run_dir)


def test_02_stores_block_comparisons_with_stop_reasons(run_02):
    code, df, summary = run_02
    assert code == 0 and summary["status"] == "ok", summary.get("error")
    assert summary["method_version"] == 14
    for name, plan in plans.PLANS.items():
        trials = df[(df.experiment == name) & (df.metric == plans.TIME_METRIC)]
        assert set(trials.variant) == set(plan.names), name  # only the variants the claim needs
        assert (trials.groupby("block").variant.nunique() == len(plan.names)).all()  # all of them per block
        assert (trials.chunk_tokens == 4).all()  # the test profile's trials advance alternately
        outcome = blocks.stop_rows(df, name)
        assert set(outcome.variant) == set(plan.variants), name
        assert outcome.stop_reason.isin([blocks.DECIDED, blocks.BUDGET, blocks.MAX_BLOCKS]).all()
        assert (outcome.n_blocks >= 2).all() and (outcome.reference == plan.reference).all()
        # the extension is recorded (the test profile has none), and an undecided claim's projected blocks
        assert outcome.extended.isin([True, False]).all()
        assert (outcome.decided | outcome.projected_blocks.notna() | ~outcome.band_low.notna()).all()
        # every round's chunk is stored, and the stored outcome is the median of the rounds per block
        rounds = df[(df.experiment == name) & (df.metric == blocks.round_metric(plans.TIME_METRIC))]
        assert set(rounds.variant) == set(plan.names), name  # (pipelining: one 20-token round here)
        for row in outcome.itertuples():
            lr = blocks.paired_log_ratios(df, name, row.variant, plan.reference, plans.TIME_METRIC)
            assert len(lr) == row.n_blocks
            assert blocks.change_pct(lr.to_numpy(), row.confidence).value == pytest.approx(row.value), name


def test_02_sampling_share_comes_from_the_loop(run_02):
    _, df, summary = run_02
    label = df[df.experiment == "sampling_in_loop"].label.iloc[0]
    loop = loop_stats.in_loop_sampling(df, label)
    found = {f["id"]: f for f in summary["findings"]}["sampling_ms_per_token_000"]
    assert found["measured"]["value"] == pytest.approx(loop["share"].value)
    assert found["measured"]["n"] == loop["effect"].n
    assert found["statement"].startswith("Measured inside the decode loop")


def test_02_variability_pass_below_eight_runs_is_not_measured(run_02):
    _, df, summary = run_02
    runs = df[(df.experiment == plans.VARIABILITY) & (df.metric == plans.VARIABILITY_METRIC)]
    assert len(runs) == 4 and (runs.value > 0).all() and (runs.variant == "mlx_lm").all()
    assert runs["after"].nunique() > 1  # spread over the comparisons (method 12), not back to back after them
    found = {f["id"]: f for f in summary["findings"]}
    assert found["mlxlm_variance_pct"]["verdict"] == "not measured"
    assert "at least 8" in found["mlxlm_variance_pct"]["statement"]
    n = found["compiled_sampling_speedup_expected"]["measured"]["n"]  # 3, or 6 where 3 left it undecided
    assert n in (3, 6) and f"n={n} repeats" in found["compiled_sampling_speedup_expected"]["statement"]


def test_02_compiled_sampler_goes_on_until_decided_and_says_why_it_stopped(run_02):
    _, df, summary = run_02
    found = {f["id"]: f for f in summary["findings"]}[plans.COMPILED_SAMPLING_CLAIM]
    chain = df[(df.experiment == "sampling") & (df.sampler == "chain")]
    assert 3 <= len(chain) <= 6 and chain.stop_reason.nunique() == 1  # the test profile: 3, up to 6 repeats
    reason = chain.stop_reason.iloc[0]
    assert found["measured"]["stop_reason"] == reason and found["measured"]["n"] == len(chain)
    assert (reason == "decided") == (len(chain) < 6 or found["verdict"] != "inconclusive")
    assert f"stopped: {reason}" in found["statement"]


def test_02_side_models_run_their_comparisons_and_nothing_of_the_claims_model(tmp_path):
    """The full profile's shape (a side model after the claims model) on tiny presets: the side model gets no
    variability pass and no samplers (with runs=0 the spread's pass once looped forever on the H200, 56afd16)."""
    params = {
        "model_specs": ["tiny:float32", "tiny:bfloat16"],
        "comparisons": ["loop_overhead"],
        "side_comparisons": ["loop_overhead"],
        "variability_runs": 8,
        "variability_max_runs": 16,
    }
    code = runner.run_notebooks(["02_decode_loop"], "test", params, root=tmp_path)
    run_dir = results.find_runs(tmp_path)[0].path
    df, summary = results.read_measurements(run_dir), results.read_summary(run_dir)
    assert code == 0 and summary["status"] == "ok", summary.get("error")
    labels = list(df[df.experiment == "loop_overhead"].label.unique())
    assert len(labels) == 2  # both models ran the comparison
    spread = df[df.experiment == plans.VARIABILITY]
    assert set(spread.label) == {labels[0]} and 8 <= len(spread) <= 16 and spread.stop_reason.nunique() == 1
    assert set(df[df.experiment == "sampling"].label) == {labels[0]}
