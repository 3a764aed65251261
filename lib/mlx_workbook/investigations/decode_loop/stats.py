"""Reading 02_decode_loop's comparisons back from stored rows (plans.py says what was compared and against
which band): each claim's stored outcome, paired changes, trial times, sampling's cost inside the loop, and the
run-to-run spread statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlx_workbook.core import blocks, intervals, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.investigations.decode_loop.plans import (
    CLAIMS,
    PLANS,
    SAMPLING_SHARE,
    STEADY_TOKENS,
    TIME_METRIC,
    VARIABILITY,
    VARIABILITY_METRIC,
    share_of_token,
)
from mlx_workbook.report import text as text_

# --- reading stored comparisons back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """A comparison's stored outcome for one variant: % change with its interval and how it was reached."""

    value: float
    low: float
    high: float
    n: int
    stop_reason: str
    resolvable_pct: float
    tokens: int  # tokens per trial
    extended: bool = False  # went on past its budget: its blocks projected a decision (core.blocks.promising)
    projected_blocks: float = math.nan  # undecided: about how many blocks a decision would take

    @property
    def interval(self) -> verdicts.Interval:
        return verdicts.Interval(self.value, self.low, self.high)

    def evidence(self, verdict: str = "") -> str:
        """n, trial length, why it stopped; for an undecided verdict the smallest effect it could resolve."""
        steady = "" if self.tokens >= STEADY_TOKENS else f", fewer than the {STEADY_TOKENS} of steady state"
        stopped = text_.stop_text(self.stop_reason, self.extended)
        text = f"n={self.n} blocks of {self.tokens}-token trials{steady}, stopped: {stopped}"
        if verdict == verdicts.INCONCLUSIVE:
            text += "; " + text_.undecided_text(self.resolvable_pct, self.projected_blocks, self.n)
        return text


def model_rows(df: pd.DataFrame, label: str) -> pd.DataFrame:
    return df[df.label == label] if "label" in df else df.iloc[:0]


def effect(df: pd.DataFrame, label: str, plan_name: str, variant: str) -> Effect | None:
    """The stored change_pct row of `variant` in comparison `plan_name` on one model (None: not run)."""
    out = blocks.stop_rows(model_rows(df, label), plan_name)
    out = out[out.variant == variant]
    if out.empty:
        return None
    r = out.iloc[0]
    return Effect(
        float(r.value),
        float(r.low),
        float(r.high),
        int(r.n_blocks),
        str(r.stop_reason),
        float(r.resolvable_pct),
        int(r.tokens_per_trial),
        text_.stored_flag(r.get("extended", False)),
        float(r.get("projected_blocks", math.nan)),
    )


def claim_effect(df: pd.DataFrame, label: str, claim_id: str) -> Effect | None:
    return effect(df, label, *CLAIMS[claim_id])


def paired_change(df: pd.DataFrame, label: str, variant: str, reference: str) -> intervals.Estimate | None:
    """% change of `variant` over `reference` from the blocks where both ran in one comparison (t interval on
    the paired log-ratios): e.g. our copy of generate_step's steps against generate_step itself."""
    mine = model_rows(df, label)
    for name, plan in PLANS.items():
        if {variant, reference} <= set(plan.names):
            lr = blocks.paired_log_ratios(mine, name, variant, reference, TIME_METRIC)
            if len(lr) >= 2:
                return blocks.change_pct(lr.to_numpy(), intervals.CONFIDENCE)
    return None


def times(df: pd.DataFrame, label: str, variant: str) -> pd.Series:
    """Every stored per-trial median ms/token of one variant on one model, over all its comparisons."""
    t = rows(df, metric=TIME_METRIC)
    return t[(t.label == label) & (t.variant == variant)].value


def in_loop_sampling(df: pd.DataFrame, label: str) -> dict | None:
    """Sampling's cost inside the decode loop: per block, the full chain's ms/token minus the greedy fast
    path's (the same loop otherwise), as ms (t interval on the paired differences) and as a share of a
    chain token (from the comparison's stored change_pct)."""
    plan_name, chain = CLAIMS[SAMPLING_SHARE]
    e = effect(df, label, plan_name, chain)
    if e is None:
        return None
    sel = rows(model_rows(df, label), plan_name, TIME_METRIC)
    wide = sel.pivot_table(index="block", columns="variant", values="value", aggfunc="first").dropna()
    ref = PLANS[plan_name].reference
    diff = intervals.t_interval(wide[chain] - wide[ref]) if len(wide) >= 2 else None
    share = verdicts.Interval(share_of_token(e.value), share_of_token(e.low), share_of_token(e.high))
    return {
        "effect": e,
        "share": share,
        "ms": diff,
        "chain_ms": float(np.median(wide[chain])),
        "greedy_ms": float(np.median(wide[ref])),
    }


def sampler_pairs(df: pd.DataFrame, label: str, *names: str) -> pd.DataFrame:
    """ms per call of the samplers `names` timed alone, one row per repeat in which all of them ran."""
    samp = rows(model_rows(df, label), "sampling", "ms_per_call")
    if samp.empty:
        return pd.DataFrame(columns=list(names))
    wide = samp.pivot_table(index="trial", columns="sampler", values="value", aggfunc="first")
    return wide.reindex(columns=list(names)).dropna()


def cv_interval(values) -> verdicts.Interval:
    """Coefficient of variation (std / mean) with its chi-square 95% interval (core.intervals.cv_interval)."""
    e = intervals.cv_interval(values)
    return verdicts.Interval(e.value, e.low, e.high)


def variability_runs(df: pd.DataFrame, label: str) -> pd.Series:
    """Decode tokens/s of each whole mlx-lm generation of the variability pass on one model."""
    return rows(model_rows(df, label), VARIABILITY, VARIABILITY_METRIC).value
