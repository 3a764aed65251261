"""analysis.decode_loop on synthetic rows: planted effects come back as numbers and verdicts."""

import math

import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import blocks, measure, published, verdicts
from mlx_workbook.investigations.decode_loop import analysis, findings, plans, spread
from mlx_workbook.investigations.decode_loop import stats as loop_stats

DRIFT = [1.0, 1.4, 0.8, 1.2, 0.9]  # the host's speed per block, the same for every variant of a block
# tokens/s factors on the claims model: each planted effect sits inside its published range
FACTORS = {
    "mlx_lm": 1.0,
    "logprobs_always": 1.0,
    "eval_logits": 1 / 1.045,
    "pipelined": 1.015,
    "default_stream": 1.015,
    "take_logits": 1.013,
    "batched_10": 1.015 / 1.22,
    "sample_fast": 1.0,
    "sample_t1": 1 / 1.005,
    "sample_before_001": 1 / 1.085,
    "sample_chain": 1.015 / 1.04,  # the chain costs 4% of a greedy token in the loop: 3.85% of a chain token
    "sample_chain_compiled": 1.015 / 1.04 * 1.015,
    "rep_penalty": 1.0,
    "rep_penalty_loop": 1.0,
}
# the variability pass (whole generate_step runs back to back): 4 runs at 100 tok/s and 4 at 200, whose spread of
# 5 runs is worked out by hand in test_spread_of_five_runs_by_hand
VARIABILITY_TPS = [100.0, 200.0] * 4
SPREAD_OF_FIVE = (4 * 50 / 120 + 24 * 50 / 140 + 24 * 50 / 160 + 4 * 50 / 180) / 56
# per-repeat host speed of the samplers timed alone, the same for both samplers of a repeat
SAMPLER_DRIFT = [1.0, 1.5, 0.7, 1.2, 0.9]
SHARES = {"graph build": 3.0, "sampling": 1.5, "encode/launch": 90.0, "wait for device": 5.0, "other": 0.5}


H200 = {"backend": "cuda", "device": "NVIDIA H200"}
M4_MAX = {"backend": "metal", "device": "Apple M4 Max"}


class Recorder:
    """The part of results.Run that core.blocks uses."""

    def __init__(self):
        self.rows = []

    def record(self, experiment, metric, value, unit, *, trial=0, **fields):
        self.rows.append(
            dict(experiment=experiment, metric=metric, value=value, unit=unit, trial=trial, **fields)
        )


def block_values(factors: dict[str, float], effects_pct: dict[str, list[float]] | None = None):
    """Variants for blocks.compare: ms per token = 10 / factor at the block's host speed (DRIFT); a variant in
    `effects_pct` takes, per block, that % more time than the reference instead (noisy planted effects)."""
    calls = {"n": 0}
    names = list(factors)

    def make(name):
        def fn():
            block = calls["n"] // len(names)
            calls["n"] += 1
            drift = DRIFT[block % len(DRIFT)]
            if effects_pct and name in effects_pct:
                ref = names[0]
                return 10 / factors[ref] * drift * (1 + effects_pct[name][block] / 100)
            return 10 / factors[name] * drift

        return fn

    return {n: make(n) for n in names}


def comparisons(run, label: str, plan_names, effects_pct=None) -> None:
    for plan_name in plan_names:
        plan = plans.PLANS[plan_name]
        fields = dict(label=label, tokens_per_trial=256, window_tokens=1)
        blocks.compare(
            run,
            plan_name,
            block_values({n: FACTORS[n] for n in plan.names}, (effects_pct or {}).get(plan_name)),
            reference=plan.reference,
            metric=plans.TIME_METRIC,
            unit="ms",
            min_blocks=len(DRIFT),
            max_blocks=len(DRIFT),
            warmup=0,
            **fields,
        )


def synthetic(
    identity_equal: float = 1.0, where: dict = H200, effects_pct=None, drop=(), runs=VARIABILITY_TPS
) -> pd.DataFrame:
    run = Recorder()
    out = run.rows

    def row(**kw):
        base = {"unit": "", "family": None, "reference": None, "phase": None, "sampler": None}
        out.append(base | kw)

    claims_plans = [p for p in plans.PLANS if p != "pipelining"]
    for label, names in (("A", claims_plans), ("B", ["loop_overhead", "pipelining"])):
        comparisons(run, label, [p for p in names if p not in drop], effects_pct if label == "A" else None)
        for name in dict.fromkeys(n for p in names for n in plans.PLANS[p].names):
            row(experiment="first_use", metric="warmup_s", value=0.5, label=label, variant=name, trial=0)
            row(
                experiment="agreement",
                metric="tokens_equal_to_reference",
                value=0.5,
                label=label,
                variant=name,
                trial=0,
                reference="mlx_lm",
            )
        for trial in range(3):
            for name in ("logprobs_always", "pipelined"):
                for phase, share in SHARES.items():
                    row(
                        experiment="split",
                        metric="phase_share_pct",
                        value=share,
                        label=label,
                        variant=name,
                        trial=trial,
                        phase=phase,
                    )
                    row(
                        experiment="split",
                        metric="phase_ms_per_token",
                        value=share / 10,
                        label=label,
                        variant=name,
                        trial=trial,
                        phase=phase,
                    )
    for trial, tps in enumerate(runs):
        row(
            experiment="variability",
            metric="decode_tps",
            value=tps,
            label="A",
            variant="mlx_lm",
            trial=trial,
            generated_tokens=256,
        )
    for trial, drift in enumerate(SAMPLER_DRIFT):  # the samplers alone on the claims model: compiled 1.4x
        for sampler, ms in (
            ("mlx_lm_chain", 0.3),
            ("transfer", 0.05),
            ("chain", 0.7),
            ("chain_compiled", 0.5),
        ):
            if sampler in drop:
                continue
            row(
                experiment="sampling",
                metric="ms_per_call",
                value=ms * drift * (1 + 0.01 * (trial % 2) * (sampler == "chain")),
                label="A",
                sampler=sampler,
                trial=trial,
                variant=None,
            )
    for name in ("pipelined", "batched_10"):
        row(
            experiment="identity",
            metric="tokens_equal_to_reference",
            value=identity_equal,
            label="tiny fp32",
            variant=name,
            trial=0,
            reference="mlx_lm",
        )
        row(
            experiment="identity",
            metric="identical_prefix",
            value=32.0 * identity_equal,
            label="tiny fp32",
            variant=name,
            trial=0,
            reference="mlx_lm",
        )
    return pd.DataFrame([r | where for r in out])


SETUP = analysis.Setup(labels={"a:4": "A", "b:bfloat16": "B"}, where="test device")


def by_id(found):
    return {f.id: f for f in found}


def test_blocks_cancel_the_host_drift_and_store_why_they_stopped():
    df = synthetic()
    m = loop_stats.claim_effect(df, "A", "unused_logits_eval_cost")
    assert m.value == pytest.approx(4.5) and m.low == pytest.approx(4.5) and m.high == pytest.approx(4.5)
    assert m.n == len(DRIFT) and m.stop_reason == blocks.MAX_BLOCKS and m.tokens == 256
    # unpaired (ratio of medians over all trials), the same rows spread the ratio over the drift
    a, b = loop_stats.times(df, "A", "eval_logits"), loop_stats.times(df, "A", "logprobs_always")
    unpaired = measure.ratio_interval(a, b)
    assert unpaired.high - unpaired.low > 0.1
    # the judged loop's own comparison, and our copy of generate_step against it in the same blocks
    assert loop_stats.effect(df, "B", *plans.FASTEST).value == pytest.approx(1.5)
    assert loop_stats.paired_change(df, "A", *plans.COPY).value == pytest.approx(0.0, abs=1e-9)


def test_bands_are_the_verdicts_edges():
    tol = plans.Tolerances()
    lo, hi = published.figure_range("unused_logits_eval_cost")
    band = plans.claim_band("unused_logits_eval_cost", tol)
    assert band == blocks.Band.widened(lo, hi, plans.claim_tolerance(lo, hi), no_effect_at=0.0)
    assert plans.bands("loop_overhead", tol)["mlx_lm"] == blocks.Band(-tol.minor_pct, math.inf)
    # the sampling share band, in change_pct: its edges map back onto the widened published share
    s_lo, s_hi, pts = plans.share_range("sampling_ms_per_token_000", tol)
    sb = plans.claim_band("sampling_ms_per_token_000", tol)
    assert plans.share_of_token(sb.low) == pytest.approx(s_lo - pts)
    assert plans.share_of_token(sb.high) == pytest.approx(s_hi + pts)
    assert set(plans.bands("sampler_path", tol)) == {"sample_t1", "sample_before_001"}
    # a model the claims are not judged on: the fastest-loop check alone
    assert plans.bands("loop_overhead", tol, claims=set()) == {
        "mlx_lm": blocks.Band(-tol.minor_pct, math.inf)
    }
    assert plans.bands("extract", tol, claims=set()) == {}


def test_side_models_stop_and_extend_on_the_fastest_loop_alone(monkeypatch):
    """On the H200 (82cdd8e) a side model's loop_overhead took 40 s of extension for the conditional-logprobs band,
    which only the claims model's comparison is judged on; the pipelining comparison keeps its band on the
    pipelining model."""
    from mlx_workbook import models
    from mlx_workbook.investigations.decode_loop import measure

    seen = {}
    monkeypatch.setattr(measure, "warm_up", lambda *args, **kwargs: {})
    monkeypatch.setattr(
        measure.blocks, "compare", lambda run, name, variants, **kw: seen.update({name: kw["bands"]})
    )
    loaded = models.build_preset("tiny", dtype="float32")
    common = dict(
        tolerances=plans.Tolerances(), prompt_tokens=4, max_tokens=21, budget_s=1, min_blocks=3, max_blocks=3
    )
    specs = ["claims:4", "side:bfloat16"]  # the side model is the pipelining model too (the last, by default)
    side = measure.judged_claims("side:bfloat16", specs, "")
    assert side == {plans.PIPELINING_CLAIM}
    measure.compare(None, loaded, ["loop_overhead", "extract", plans.PIPELINING], claims=side, **common)
    assert set(seen["loop_overhead"]) == {"mlx_lm"} and seen["extract"] == {}
    assert set(seen[plans.PIPELINING]) == {"batched_10"}
    first = measure.judged_claims("claims:4", specs, "")
    assert first == set(plans.CLAIMS) - {plans.PIPELINING_CLAIM}
    measure.compare(None, loaded, ["loop_overhead"], claims=first, **common)
    assert set(seen["loop_overhead"]) == {"mlx_lm", "logprobs_always"}


def test_tables_and_charts_from_rows():
    df = synthetic()
    summary = analysis.variant_table(df)
    assert set(summary.label) == {"A", "B"}
    assert summary.set_index(["label", "variant"]).loc[("A", "mlx_lm"), "ms_per_token"] == pytest.approx(10.0)
    table = analysis.comparisons_table(df)
    assert set(table.comparison) == set(plans.PLANS) and table.stop_reason.eq(blocks.MAX_BLOCKS).all()
    effects = analysis.effects_table(df, SETUP)
    judged = effects[effects.judged].set_index("claim")
    assert judged.loc["async_pipelining_gain", "label"] == "B"  # the last model by default
    assert judged.loc["async_pipelining_gain", "median"] == pytest.approx(22.0)
    assert judged.loc["async_pipelining_gain", "n"] == len(DRIFT)
    assert math.isnan(judged.loc["dedicated_stream_minor", "pub_low"])  # no published number: NaN, no error
    fastest = analysis.fastest_table(df, SETUP).set_index("label")
    assert fastest.loc["A", "judged"] == "pipelined"
    assert fastest.loc["A", "judged_vs_generate_step_pct"] == pytest.approx(1.5)
    sampling = analysis.in_loop_sampling_table(df, SETUP).set_index("label")
    assert sampling.loc["A", "share_pct"] == pytest.approx(100 * 0.04 / 1.04)
    shares = analysis.split_shares(df)
    assert shares.loc[0, "encode/launch"] == pytest.approx(90.0)
    for fig in (
        analysis.comparisons_chart(table, "x"),
        analysis.split_chart(shares, "x"),
        analysis.variability_chart(summary, "x"),
        analysis.claims_chart(effects, SETUP),
        analysis.sampling_chart(analysis.sampling_table(df), "x"),
    ):
        assert fig.axes
    assert analysis.first_use_table(df).shape[1] == 2
    runs = analysis.variability_runs_table(df).set_index("label")
    assert runs.loc["A", "runs"] == 8 and runs.loc["A", "half_range_pct"] == pytest.approx(
        100 * SPREAD_OF_FIVE
    )


def test_findings_cover_every_claim_with_planted_verdicts():
    found = by_id(findings.findings(synthetic(), SETUP))
    assert {c["id"] for c in published.claims("02_decode_loop")} <= set(found)
    assert found["unused_logits_eval_cost"].verdict == verdicts.HOLDS
    assert found["unused_logits_eval_cost"].measured["value"] == pytest.approx(4.5)
    assert found["conditional_logprobs_gain"].verdict == verdicts.HOLDS
    assert (
        found["async_pipelining_gain"].verdict == verdicts.HOLDS
        and ", B, " in found["async_pipelining_gain"].statement
    )
    assert found["dedicated_stream_minor"].verdict == verdicts.HOLDS  # 0% within ±2%
    # the two repetition-penalty claims: one measurement, one verdict, the second refers to the first
    assert found["rep_penalty_vectorized_no_impact"].verdict == verdicts.HOLDS
    assert found["rep_penalty_scatter_potential"].verdict == verdicts.HOLDS
    assert found["rep_penalty_scatter_potential"].measured["same_as"] == "rep_penalty_vectorized_no_impact"
    assert "same_as" not in found["rep_penalty_vectorized_no_impact"].measured
    assert found["decode_gpu_bound_share"].measured["value"] == pytest.approx(95.0)
    assert found["decode_gpu_bound_share"].verdict == verdicts.HOLDS  # 95% against 96% within 3 points
    assert found["compiled_sampling_speedup_expected"].measured["value"] == pytest.approx(1.4, rel=0.02)
    assert found["compiled_sampling_speedup_expected"].verdict == verdicts.HOLDS
    # the published statistic (half the range over the mean of 5 runs) of the planted variability runs
    assert found["mlxlm_variance_pct"].measured["value"] == pytest.approx(100 * SPREAD_OF_FIVE)
    assert found["mlxlm_variance_pct"].measured["n"] == len(VARIABILITY_TPS)
    assert "cold first run" in found["mlxlm_variance_pct"].statement
    assert "n=8 runs" in found["mlxlm_variance_pct"].statement
    fastest = found["fastest_vs_generate_step_a_4"]
    assert fastest.headline and fastest.verdict == verdicts.HOLDS and fastest.measured["loop"] == "pipelined"
    # Apple-hardware figures do not apply on an H200; mlx-node never runs (not measured, not inconclusive)
    assert found["mlxlm_decode_tok_s_001"].verdict == verdicts.NOT_APPLICABLE
    assert "Apple silicon" in found["mlxlm_decode_tok_s_001"].statement
    assert found["python_mlx_faster_than_cpp"].verdict == verdicts.NOT_MEASURED
    assert found["decode_gpu_bound_share"].statement.startswith("Proxy")
    assert found["sampling_ms_per_token_000"].statement.startswith("Measured inside the decode loop")
    assert found["forward_pass_ms_of_20"].statement.startswith("A residual, in part of a proxy")
    assert "n=5 blocks of 256-token trials" in found["unused_logits_eval_cost"].statement
    assert "already evaluated array" in found["data_transfer_ms_per_token"].statement
    assert "emitted" in found["greedy_tokens_identical"].statement


def test_spread_of_five_runs_by_hand():
    """4 runs at 100 tok/s and 4 at 200: every 5 of them hold both speeds (range 100), j at 200 tok/s in
    C(4, j) * C(4, 5 - j) of the 56 subsets, mean 100 + 20 j; the average of 50 / mean is SPREAD_OF_FIVE."""
    e = spread.expected_half_range(VARIABILITY_TPS)
    assert e.value == pytest.approx(SPREAD_OF_FIVE) and e.n == 8
    assert e.low < e.value < e.high and "jackknife" in e.method
    # the same from every subset written out, and a larger n drawn from random subsets lands close to it
    assert len(spread.subsets(8, 5)) == 56
    many = spread.expected_half_range(VARIABILITY_TPS * 4)  # C(32, 5) > MAX_SUBSETS: a random sample
    assert many.value == pytest.approx(SPREAD_OF_FIVE, rel=0.05)


def test_spread_interval_covers_at_the_sizes_used():
    """Normal runs (CV 7%): the jackknife interval of the spread of 5 runs covers the true expected value in
    at least 90% of simulated samples at n = 8 and 20 (a percentile bootstrap covers 65% and 85% here)."""
    rng = np.random.default_rng(0)
    five = 100 * (1 + 0.07 * rng.standard_normal((200_000, 5)))
    truth = float(np.mean(np.ptp(five, axis=1) / 2 / five.mean(axis=1)))
    for n in (8, 20):
        hits = 0
        for _ in range(200):
            e = spread.expected_half_range(100 * (1 + 0.07 * rng.standard_normal(n)))
            hits += e.low <= truth <= e.high
        assert hits / 200 >= 0.9, (n, hits)


def test_too_few_variability_runs_are_not_measured():
    four = by_id(findings.findings(synthetic(runs=VARIABILITY_TPS[:4]), SETUP))["mlxlm_variance_pct"]
    assert (
        four.verdict == verdicts.NOT_MEASURED
        and "at least 8" in four.statement
        and "only 4 runs" in four.statement
    )
    none = by_id(findings.findings(synthetic(runs=[]), SETUP))["mlxlm_variance_pct"]
    assert none.verdict == verdicts.NOT_MEASURED and "skipped" in none.statement
    with pytest.raises(ValueError, match="at least 8"):
        spread.expected_half_range(VARIABILITY_TPS[:7])


def test_compiled_sampling_is_judged_on_paired_repeats():
    """Each repeat's host speed (SAMPLER_DRIFT) hits both samplers: the paired ratio is the planted 1.4x with a
    narrow interval, where the ratio of the unpaired medians spreads over the drift."""
    df = synthetic()
    f = by_id(findings.findings(df, SETUP))["compiled_sampling_speedup_expected"]
    assert f.measured["value"] == pytest.approx(1.4 * 1.01**0.4, rel=1e-6)  # 2 of 5 repeats 1% slower
    assert f.measured["high"] - f.measured["low"] < 0.02 and f.measured["n"] == len(SAMPLER_DRIFT)
    assert f.verdict == verdicts.HOLDS and "n=5 repeats" in f.statement
    samp = df[df.experiment == "sampling"]
    unpaired = measure.ratio_interval(
        samp[samp.sampler == "chain"].value, samp[samp.sampler == "chain_compiled"].value
    )
    assert unpaired.high - unpaired.low > 0.2


def test_identity_verdict_comes_from_the_identity_check_not_the_presets():
    ok = by_id(findings.findings(synthetic(1.0), SETUP))["greedy_tokens_identical"]
    assert ok.verdict == verdicts.HOLDS and "exactly generate_step's 32 tokens" in ok.statement
    assert "50% on every one" in ok.statement and "information" in ok.statement  # presets quoted apart
    bad = by_id(findings.findings(synthetic(0.5), SETUP))["greedy_tokens_identical"]
    assert bad.verdict == verdicts.DOES_NOT_HOLD and "pipelined from token 16" in bad.statement
    assert "NOT exactly" not in bad.statement


def test_missing_pairs_and_samplers_are_said_not_guessed():
    found = by_id(findings.findings(synthetic(drop=("unused_logits", "chain_compiled")), SETUP))
    assert found["unused_logits_eval_cost"].verdict == verdicts.NOT_MEASURED
    assert "Not measured" in found["unused_logits_eval_cost"].statement
    assert found["compiled_sampling_speedup_expected"].verdict == verdicts.NOT_MEASURED


def noisy(effects: list[float]) -> pd.DataFrame:
    """eval_logits against logprobs_always on A with per-block % effects `effects` instead of the planted 4.5%."""
    return synthetic(effects_pct={"unused_logits": {"eval_logits": effects}})


def test_speedup_verdicts_follow_the_one_rule():
    # published 4-5%, widened by plans.claim_tolerance: an interval straddling an edge cannot tell
    lo, hi = published.figure_range("unused_logits_eval_cost")
    tol = plans.claim_tolerance(lo, hi)
    straddle = by_id(findings.findings(noisy([4.5, 12.0, 0.5, 9.0, 4.5]), SETUP))["unused_logits_eval_cost"]
    m = straddle.measured
    assert m["low"] < lo - tol or m["high"] > hi + tol
    assert straddle.verdict == verdicts.INCONCLUSIVE and m["n"] == len(DRIFT)
    # an inconclusive verdict states the smallest effect its blocks could resolve (the interval's half-width)
    assert f"could resolve is ±{(m['high'] - m['low']) / 2:.2g}%" in straddle.statement
    # a larger effect in the claimed direction: the direction holds, the size differs
    above = by_id(findings.findings(noisy([15.0, 16.0, 15.5, 15.0, 16.0]), SETUP))
    assert above["unused_logits_eval_cost"].verdict == verdicts.SIZE_DIFFERS
    below = by_id(findings.findings(noisy([-3.0, -2.5, -3.5, -3.0, -2.0]), SETUP))
    assert below["unused_logits_eval_cost"].verdict == verdicts.DOES_NOT_HOLD


def test_sampling_share_is_measured_inside_the_loop_not_alone():
    """The chain's planted in-loop cost (4% of a greedy token) is the share judged; the sampler timed alone
    (0.3 ms of a ~10 ms token here, 3%) is only quoted, so changing it leaves the verdict's figure alone."""
    df = synthetic()
    found = by_id(findings.findings(df, SETUP))["sampling_ms_per_token_000"]
    assert found.measured["value"] == pytest.approx(100 * 0.04 / 1.04)
    assert found.measured["n"] == len(DRIFT) and "paired per block" in found.statement
    assert "side table, not this verdict" in found.statement
    alone = df.copy()
    alone.loc[alone.sampler == "mlx_lm_chain", "value"] *= 10
    again = by_id(findings.findings(alone, SETUP))["sampling_ms_per_token_000"]
    assert again.measured["value"] == found.measured["value"] and again.verdict == found.verdict


def test_scope_comes_from_the_run_not_the_code():
    """The same rows judged on an Apple M4 Max: Apple figures get a verdict from data, mlx-node stays unmeasured."""
    apple = by_id(findings.findings(synthetic(where=M4_MAX), SETUP))
    assert apple["mlxlm_decode_tok_s_001"].verdict in verdicts.FROM_DATA
    assert apple["mlxnode_decode_tok_s_001"].verdict == verdicts.NOT_MEASURED
    cpu = by_id(findings.findings(synthetic(where={"backend": "cpu", "device": "AMD EPYC"}), SETUP))
    assert cpu["mlxnode_decode_tok_s_001"].verdict == verdicts.NOT_APPLICABLE
    assert cpu["unused_logits_eval_cost"].verdict == verdicts.HOLDS  # no scope: judged everywhere


def test_fastest_loop_is_judged_on_the_loop_named_before_measuring():
    """The named loop slower than generate_step fails; no other loop is picked after measuring."""
    df = synthetic(effects_pct={"loop_overhead": {"mlx_lm": [-10.0] * len(DRIFT)}})
    f = by_id(findings.findings(df, SETUP))["fastest_vs_generate_step_a_4"]
    assert f.verdict == verdicts.DOES_NOT_HOLD and f.measured["loop"] == "pipelined"
    assert f.measured["value"] == pytest.approx(-10.0) and "named before measuring" in f.statement


def test_statements_quote_the_published_figures():
    found = by_id(findings.findings(synthetic(), SETUP))
    lm, node = published.claim("mlxlm_variance_pct"), published.claim("mlxnode_variance_pct")
    assert f"published {lm['published']:g}%" in found["mlxlm_variance_pct"].statement
    assert f"{node['published']:g}% vs {lm['published']:g}%" in found["mlxnode_variance_pct"].statement
    lo, hi = published.figure_range("compiled_sampling_speedup_expected")
    assert f"expected {lo:g}-{hi:g}x" in found["compiled_sampling_speedup_expected"].statement
    token_ms = published.claim("per_token_time_flat")["published"]
    lo, hi = published.figure_range("forward_pass_ms_of_20")
    assert (
        f"({100 * lo / token_ms:.0f}-{100 * hi / token_ms:.0f}%)" in found["forward_pass_ms_of_20"].statement
    )
    marks = analysis.published_variation_marks()
    assert sorted(marks.values()) == sorted([lm["published"], node["published"]])


def test_a_claims_model_without_the_loop_comparison_is_not_measured_not_an_error():
    """comparisons without loop_overhead (a targeted pass on the H200 ran ["extract"] alone and its findings cell
    failed on no generate_step trials): the absolute and mlx-node claims say why they are not measured."""
    df = synthetic()
    df = df[~((df.label == "A") & (df.experiment == "loop_overhead"))]
    found = by_id(findings.findings(df, SETUP))
    for claim_id, _ in findings.ABSOLUTE_CLAIMS:  # the Apple figures: out of scope on an H200 all the same
        assert found[claim_id].verdict in (verdicts.NOT_MEASURED, verdicts.NOT_APPLICABLE)
        assert "did not run on A" in found[claim_id].statement
    assert found["python_mlx_faster_than_cpp"].verdict == verdicts.NOT_MEASURED
    assert (
        found["slice_vs_take_potential"].verdict in verdicts.FROM_DATA
    )  # the comparisons that ran still judge


def test_a_model_without_the_loop_comparison_is_not_measured_not_an_error():
    """side_comparisons=[] leaves a second model with the pipelining comparison alone: its fastest-loop finding
    says the comparison did not run there, and the copy-of-generate_step numbers are simply absent."""
    df = synthetic()
    df = df[~((df.label == "B") & (df.experiment == "loop_overhead"))]
    assert loop_stats.paired_change(df, "B", *plans.COPY) is None
    found = by_id(findings.findings(df, SETUP))
    assert found["fastest_vs_generate_step_b_bfloat16"].verdict == verdicts.NOT_MEASURED
    assert "did not run on B" in found["fastest_vs_generate_step_b_bfloat16"].statement
