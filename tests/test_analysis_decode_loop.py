"""analysis.decode_loop on synthetic rows: planted effects come back as numbers and verdicts."""

import math

import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import measure, published, stats, verdicts
from mlx_workbook.investigations.decode_loop import analysis, findings
from mlx_workbook.investigations.decode_loop import stats as loop_stats
from mlx_workbook.probes.loops import variant

DRIFT = [1.0, 1.4, 0.8, 1.2, 0.9]  # a machine state that changes between rounds, the same for every variant
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
    "sample_chain": 0.9,
    "sample_chain_compiled": 0.915,
    "rep_penalty": 1.0,
    "rep_penalty_loop": 1.0,
}
SHARES = {"graph build": 3.0, "sampling": 1.5, "encode/launch": 90.0, "wait for device": 5.0, "other": 0.5}


H200 = {"backend": "cuda", "device": "NVIDIA H200"}
M4_MAX = {"backend": "metal", "device": "Apple M4 Max"}


def synthetic(identity_equal: float = 1.0, where: dict = H200) -> pd.DataFrame:
    out = []

    def row(**kw):
        base = {"unit": "", "family": None, "reference": None, "phase": None, "sampler": None}
        out.append(base | where | kw)

    for label, names in (
        ("A", list(FACTORS)),
        ("B", ["mlx_lm", "pipelined", "logprobs_always", "batched_10"]),
    ):
        for trial, drift in enumerate(DRIFT):
            for name in names:
                tps = 100.0 * FACTORS[name] * drift
                for metric, value in (("decode_tps", tps), ("ms_per_token", 1e3 / tps)):
                    row(
                        experiment="decode",
                        metric=metric,
                        value=value,
                        label=label,
                        variant=name,
                        trial=trial,
                        family=variant(name).family,
                    )
        for name in names:
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
    for trial in range(5):  # sampling on the claims model: 0.3 ms of a 10 ms token, the compiled chain 1.4x
        for sampler, ms in (
            ("mlx_lm_chain", 0.3),
            ("transfer", 0.5),
            ("chain", 0.7),
            ("chain_compiled", 0.5),
        ):
            row(
                experiment="sampling",
                metric="ms_per_call",
                value=ms * (1 + 0.01 * trial),
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
    return pd.DataFrame(out)


SETUP = analysis.Setup(labels={"a:4": "A", "b:bfloat16": "B"}, where="test device")


def by_id(found):
    return {f.id: f for f in found}


def test_paired_ratios_cancel_drift_between_rounds():
    df = synthetic()
    m = loop_stats.speedup_pct(df, "A", "logprobs_always", "eval_logits")
    assert m.value == pytest.approx(4.5) and m.low == pytest.approx(4.5) and m.high == pytest.approx(4.5)
    decoded = df[(df.experiment == "decode") & (df.metric == "decode_tps") & (df.label == "A")]
    assert len(stats.paired_ratios(decoded, "variant", "pipelined", "batched_10", ["trial"])) == len(DRIFT)
    # unpaired (ratio of medians), the same rows spread the ratio over the drift
    a, b = loop_stats.decode_tps(df, "A", "logprobs_always"), loop_stats.decode_tps(df, "A", "eval_logits")
    unpaired = measure.ratio_interval(a, b)
    assert unpaired.high - unpaired.low > 0.1


def test_tables_and_charts_from_rows():
    df = synthetic()
    summary = analysis.variant_table(df)
    assert set(summary.label) == {"A", "B"} and (summary.n == len(DRIFT)).all()
    assert summary.set_index(["label", "variant"]).loc[("A", "pipelined"), "vs_mlx_lm_pct"] == pytest.approx(
        1.5
    )
    effects = analysis.effects_table(df, SETUP)
    judged = effects[effects.judged].set_index("claim")
    assert judged.loc["async_pipelining_gain", "label"] == "B"  # the last model by default
    assert judged.loc["async_pipelining_gain", "median"] == pytest.approx(22.0)
    assert math.isnan(judged.loc["dedicated_stream_minor", "pub_low"])  # no published number: NaN, no error
    fastest = analysis.fastest_table(df, summary, SETUP).set_index("label")
    assert fastest.loc["A", "fastest"] == "pipelined" and fastest.loc["A", "judged"] == "pipelined"
    assert fastest.loc["A", "judged_vs_generate_step_pct"] == pytest.approx(1.5)
    shares = analysis.split_shares(df)
    assert shares.loc[0, "encode/launch"] == pytest.approx(90.0)
    for fig in (
        analysis.speed_chart(summary, "x"),
        analysis.split_chart(shares, "x"),
        analysis.variability_chart(summary, "x"),
        analysis.claims_chart(effects, SETUP),
        analysis.sampling_chart(analysis.sampling_table(df), "x"),
    ):
        assert fig.axes
    assert analysis.first_use_table(df).shape == (len(FACTORS), 2)


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
    # the published statistic (half the range over the mean) of the planted drift, all of mlx-lm's variation
    spread = 100 * (max(DRIFT) - min(DRIFT)) / 2 / np.mean(DRIFT)
    assert found["mlxlm_variance_pct"].measured["value"] == pytest.approx(spread)
    assert "cold first run" in found["mlxlm_variance_pct"].statement
    fastest = found["fastest_vs_generate_step_a_4"]
    assert fastest.headline and fastest.verdict == verdicts.HOLDS and fastest.measured["loop"] == "pipelined"
    # Apple-hardware figures do not apply on an H200; mlx-node never runs (not measured, not inconclusive)
    assert found["mlxlm_decode_tok_s_001"].verdict == verdicts.NOT_APPLICABLE
    assert "Apple silicon" in found["mlxlm_decode_tok_s_001"].statement
    assert found["python_mlx_faster_than_cpp"].verdict == verdicts.NOT_MEASURED
    for proxy in ("decode_gpu_bound_share", "sampling_ms_per_token_000", "forward_pass_ms_of_20"):
        assert found[proxy].statement.startswith("Proxy"), proxy
    assert "already evaluated array" in found["data_transfer_ms_per_token"].statement
    assert "emitted" in found["greedy_tokens_identical"].statement


def test_identity_verdict_comes_from_the_identity_check_not_the_presets():
    ok = by_id(findings.findings(synthetic(1.0), SETUP))["greedy_tokens_identical"]
    assert ok.verdict == verdicts.HOLDS and "exactly generate_step's 32 tokens" in ok.statement
    assert "50% on every one" in ok.statement and "information" in ok.statement  # presets quoted apart
    bad = by_id(findings.findings(synthetic(0.5), SETUP))["greedy_tokens_identical"]
    assert bad.verdict == verdicts.DOES_NOT_HOLD and "pipelined from token 16" in bad.statement
    assert "NOT exactly" not in bad.statement


def test_missing_pairs_and_samplers_are_said_not_guessed():
    df = synthetic()
    df = df[~df.variant.isin(["eval_logits"]) & ~df.sampler.isin(["chain_compiled"])]
    found = by_id(findings.findings(df, SETUP))
    assert found["unused_logits_eval_cost"].verdict == verdicts.NOT_MEASURED
    assert "Not measured" in found["unused_logits_eval_cost"].statement
    assert found["compiled_sampling_speedup_expected"].verdict == verdicts.NOT_MEASURED


def _with_noisy_pair(df: pd.DataFrame, ratios_pct: list[float]) -> pd.DataFrame:
    """logprobs_always against eval_logits on A: per-round % effects `ratios_pct` instead of the planted 4.5%."""
    df = df.copy()
    for trial, effect in enumerate(ratios_pct):
        sel = (
            (df.experiment == "decode")
            & (df.metric == "decode_tps")
            & (df.label == "A")
            & (df.trial == trial)
        )
        base = df.loc[sel & (df.variant == "eval_logits"), "value"].iloc[0]
        df.loc[sel & (df.variant == "logprobs_always"), "value"] = base * (1 + effect / 100)
    return df


def test_speedup_verdicts_follow_the_one_rule():
    # published 4-5%, widened by loop_stats.claim_tolerance: an interval straddling an edge cannot tell
    lo, hi = published.figure_range("unused_logits_eval_cost")
    tol = loop_stats.claim_tolerance(lo, hi)
    straddle = by_id(findings.findings(_with_noisy_pair(synthetic(), [4.5, 12.0, 0.5, 9.0, 4.5]), SETUP))
    m = straddle["unused_logits_eval_cost"].measured
    assert m["low"] < lo - tol or m["high"] > hi + tol
    assert straddle["unused_logits_eval_cost"].verdict == verdicts.INCONCLUSIVE
    # a larger effect in the claimed direction: the direction holds, the size differs
    above = by_id(findings.findings(_with_noisy_pair(synthetic(), [15.0, 16.0, 15.5, 15.0, 16.0]), SETUP))
    assert above["unused_logits_eval_cost"].verdict == verdicts.SIZE_DIFFERS
    below = by_id(findings.findings(_with_noisy_pair(synthetic(), [-3.0, -2.5, -3.5, -3.0, -2.0]), SETUP))
    assert below["unused_logits_eval_cost"].verdict == verdicts.DOES_NOT_HOLD


def test_scope_comes_from_the_run_not_the_code():
    """The same rows judged on an Apple M4 Max: Apple figures get a verdict from data, mlx-node stays unmeasured."""
    apple = by_id(findings.findings(synthetic(where=M4_MAX), SETUP))
    assert apple["mlxlm_decode_tok_s_001"].verdict in verdicts.FROM_DATA
    assert apple["mlxnode_decode_tok_s_001"].verdict == verdicts.NOT_MEASURED
    cpu = by_id(findings.findings(synthetic(where={"backend": "cpu", "device": "AMD EPYC"}), SETUP))
    assert cpu["mlxnode_decode_tok_s_001"].verdict == verdicts.NOT_APPLICABLE
    assert cpu["unused_logits_eval_cost"].verdict == verdicts.HOLDS  # no scope: judged everywhere


def test_fastest_loop_is_judged_on_the_loop_named_before_measuring():
    """A named loop slower than generate_step fails even when another loop happens to be fastest."""
    df = synthetic()
    sel = (df.experiment == "decode") & (df.metric == "decode_tps") & (df.label == "A")
    df.loc[sel & (df.variant == "pipelined"), "value"] *= 0.9
    f = by_id(findings.findings(df, SETUP))["fastest_vs_generate_step_a_4"]
    assert f.verdict == verdicts.DOES_NOT_HOLD and f.measured["loop"] == "pipelined"
    assert f.measured["fastest"] != "pipelined" and "picked after measuring" in f.statement


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
