"""Reading the decode-loop comparison (experiment 'decode' of measure.compare) back from stored rows.

Effects are paired by round: compare() runs every variant once per round, so the ratio of two variants'
tokens/s within one round cancels whatever drifted between rounds (clocks, other load); the effect is the
median of those per-round ratios with a 95% bootstrap interval over rounds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlx_workbook.core import intervals, measure, stats, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.probes.loops import variant

# Published claim -> (variant, variant it is set against): the one-factor pair whose tokens/s ratio measures it.
CLAIM_PAIRS = {
    "unused_logits_eval_cost": ("logprobs_always", "eval_logits"),
    "conditional_logprobs_gain": ("pipelined", "logprobs_always"),
    "sampling_fast_path_gain": ("sample_fast", "sample_t1"),
    "logits_optimizations_total_gain": ("sample_fast", "sample_before_001"),
    "async_pipelining_gain": ("pipelined", "batched_10"),
    "compiled_sampling_potential_001": ("sample_chain_compiled", "sample_chain"),
    "rep_penalty_scatter_potential": ("rep_penalty", "rep_penalty_loop"),
    "slice_vs_take_potential": ("pipelined", "take_logits"),
    "dedicated_stream_minor": ("pipelined", "default_stream"),
    "rep_penalty_vectorized_no_impact": ("rep_penalty_loop", "rep_penalty"),
}


def decode_tps(df: pd.DataFrame, label: str, name: str) -> pd.Series:
    """Decode tokens/s of one variant on one model, one value per round (index: trial = round)."""
    return rows(df, "decode", "decode_tps", label=label, variant=name).set_index("trial").value


def speedup_pct(df: pd.DataFrame, label: str, a: str, b: str) -> verdicts.Interval | None:
    """How much faster `a` decodes than `b`, in %: median of the per-round ratios - 1, bootstrap interval."""
    r = stats.pooled_ratio(
        rows(df, "decode", "decode_tps", label=label), "variant", a, b, [], paired_on="trial"
    )
    return verdicts.Interval.change_pct(r) if r else None


# A published speed-up ("4-5%") is approximate ('~' in the write-ups) and of other hardware: it is widened by a
# share of its size, and by a floor for the sub-1% claims, which no run-to-run noise could otherwise resolve.
SPEEDUP_TOLERANCE_SHARE = 0.25
SPEEDUP_TOLERANCE_MIN_PCT = 0.5


def claim_tolerance(low: float, high: float) -> float:
    """Points a published speed-up range is widened by (see SPEEDUP_TOLERANCE_SHARE / _MIN_PCT)."""
    return max(SPEEDUP_TOLERANCE_MIN_PCT, SPEEDUP_TOLERANCE_SHARE * max(abs(low), abs(high)))


def cv_interval(values) -> verdicts.Interval:
    """Coefficient of variation (std / mean) with its chi-square 95% interval (core.intervals.cv_interval)."""
    e = intervals.cv_interval(values)
    return verdicts.Interval(e.value, e.low, e.high)


def _half_range(x, axis=None):
    return (np.max(x, axis=axis) - np.min(x, axis=axis)) / 2 / np.mean(x, axis=axis)


def _expected_range(n: int) -> float:
    """E[max - min] of n standard normal values (the control-chart constant d2), from a fixed simulation."""
    draws = np.random.default_rng(0).standard_normal((200_000, n))
    return float(np.mean(draws.max(axis=1) - draws.min(axis=1)))


def spread_interval(values) -> verdicts.Interval:
    """Half the range over the mean ("81-109 tok/s" -> 14%), the way the write-ups state run-to-run variation.

    Its interval is the chi-square CV interval scaled by d2(n)/2 (half the expected range of n normal values in
    standard deviations): a resampled range cannot grow, so a bootstrap would lean low, and at small n it would
    only return the sample's own extremes."""
    arr = np.asarray(values, dtype=float)
    cv, half_d2 = intervals.cv_interval(arr), _expected_range(len(arr)) / 2
    return verdicts.Interval(float(_half_range(arr)), cv.low * half_d2, cv.high * half_d2)


def variant_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and variant: median tokens/s with interval, CV with interval, % against mlx-lm (paired)."""
    out = []
    dec = rows(df, "decode", "decode_tps")
    for (label, name), g in dec.groupby(["label", "variant"], sort=False):
        s, cv = measure.summarize(g.value), cv_interval(g.value).scaled(100)
        vs = speedup_pct(df, label, name, "mlx_lm")
        out.append(
            {
                "label": label,
                "variant": name,
                "family": variant(name).family,
                "tok_s": s.median,
                "low": s.low,
                "high": s.high,
                "cv_pct": cv.value,
                "cv_low": cv.low,
                "cv_high": cv.high,
                "vs_mlx_lm_pct": vs.value if vs else np.nan,
                "vs_low": vs.low if vs else np.nan,
                "vs_high": vs.high if vs else np.nan,
                "n": s.n,
            }
        )
    return pd.DataFrame(out)


def fastest_library_loop(summary: pd.DataFrame, label: str) -> str:
    """The library's greedy variant with the highest median tokens/s on a model (generate_step excluded)."""
    g = summary[(summary.label == label) & (summary.family == "greedy") & (summary.variant != "mlx_lm")]
    return str(g.sort_values("tok_s").variant.iloc[-1])
