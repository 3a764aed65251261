"""02_decode_loop: the stored measurements (loop_bench) turned into its tables and charts; its findings are in
findings.py (which reads these tables). Every function reads run.measurements only."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import blocks, published
from mlx_workbook.core.frames import rows
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.decode_loop import plans, spread
from mlx_workbook.investigations.decode_loop import stats as loop_stats
from mlx_workbook.probes.loops import PHASES, variant
from mlx_workbook.report import plots

PARTS = list(PHASES) + ["other"]
# The original's phase names (seed 001, timing_breakdown) -> ours (host time, as theirs: its "Async eval" is
# the host's time in the async_eval call, its "Token extract" the wait for the token).
PUBLISHED_PHASES = {
    "Forward pass": "graph build",
    "Sampling": "sampling",
    "Async eval": "encode/launch",
    "Token extract": "wait for device",
    "Other": "other",
}


@dataclass(frozen=True)
class Setup:
    """What the analysis needs besides the rows: which model judges which claim, where it ran, tolerances."""

    labels: dict  # model spec -> label, in model_specs order; the first model judges the claims
    where: str  # "device (backend, mlx version)", for titles and statements
    pipelining_spec: str = ""  # model spec the pipelining claim is judged on; empty: the last model
    minor_tolerance_pct: float = 2.0
    no_impact_tolerance_pct: float = 1.0
    share_tolerance_pts: float = 3.0
    variance_tolerance_pts: float = 4.0

    @property
    def tolerances(self) -> plans.Tolerances:
        return plans.Tolerances(
            self.minor_tolerance_pct,
            self.no_impact_tolerance_pct,
            self.share_tolerance_pts,
            self.variance_tolerance_pts,
        )

    @property
    def judged_loop(self) -> str:
        """The library loop judged against generate_step, named before measuring (the fastest of several would
        win by selection alone): the reference of the fastest-loop comparison."""
        return plans.PLANS[plans.FASTEST[0]].reference

    @property
    def claims_label(self) -> str:
        return next(iter(self.labels.values()))

    @property
    def pipelining_label(self) -> str:
        return self.labels[self.pipelining_spec] if self.pipelining_spec else list(self.labels.values())[-1]

    def judged_on(self, claim_id: str) -> str:
        return plans.judged_model(claim_id, self.claims_label, self.pipelining_label)


def variant_descriptions(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"variant": n, "family": variant(n).family, "what it does": variant(n).about} for n in names]
    ).set_index("variant")


# --- every variant and every comparison --------------------------------------------------------------------


def variant_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and variant, over all its trials in every comparison it ran in (information: unpaired, so
    host drift between comparisons is in it): median ms/token, tokens/s, CV of tokens/s, trials."""
    out = []
    t = rows(df, metric=plans.TIME_METRIC)
    for (label, name), g in t.groupby(["label", "variant"], sort=False):
        tps = 1e3 / g.value
        cv = loop_stats.cv_interval(tps).scaled(100) if len(g) >= 2 else Interval(*[float("nan")] * 3)
        out.append(
            {
                "label": label,
                "variant": name,
                "family": variant(name).family,
                "ms_per_token": float(g.value.median()),
                "tok_s": float(tps.median()),
                "cv_pct": cv.value,
                "cv_low": cv.low,
                "cv_high": cv.high,
                "n": len(g),
            }
        )
    return pd.DataFrame(out)


def variability_runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """The variability pass per model: its whole generate_step runs' tokens/s and, from MIN_SPREAD_RUNS runs,
    half the range over the mean of PUBLISHED_RUNS runs (spread.expected_half_range) with its interval."""
    out = []
    for label, g in rows(df, plans.VARIABILITY, plans.VARIABILITY_METRIC).groupby("label", sort=False):
        row = {"label": label, "runs": len(g), "tok_s_median": g.value.median()}
        row |= {"tok_s_min": g.value.min(), "tok_s_max": g.value.max()}
        if "after" in g:  # how many comparisons the runs were spread over (method 12)
            row["spread_over"] = g["after"].nunique()
        if len(g) >= spread.MIN_SPREAD_RUNS:
            e = spread.expected_half_range(g.value)
            row |= {"half_range_pct": 100 * e.value, "low": 100 * e.low, "high": 100 * e.high}
        out.append(row)
    return pd.DataFrame(out)


def comparisons_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every comparison's stored outcome: per model, how much faster the reference decodes than each variant
    (change_pct of ms/token), its interval, blocks, why it stopped and what it could resolve."""
    parts = [blocks.stop_rows(df, name).assign(comparison=name) for name in plans.PLANS]
    cols = ["label", "comparison", "reference", "variant", "value", "low", "high", "n_blocks", "stop_reason"]
    cols += ["decided", "resolvable_pct", "tokens_per_trial", "extended", "projected_blocks"]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True).reindex(columns=cols)  # older rows lack the last two: NaN


def comparisons_chart(table: pd.DataFrame, where: str) -> Figure:
    bars = table.assign(pair=table.reference + " over " + table.variant, median=table.value)
    return plots.bars_with_intervals(
        bars[["pair", "label", "median", "low", "high"]],
        category="pair",
        group="label",
        horizontal=True,
        title=f"Each comparison: how much faster the reference decodes, {where}",
        ylabel="% faster (tokens/s; paired blocks, t interval at the stopping look)",
    )


def first_use_table(df: pd.DataFrame) -> pd.DataFrame:
    """Seconds of each variant's first (warm-up) generation per model: first-use kernel compilation shows here."""
    return rows(df, "first_use").pivot_table(index="variant", columns="label", values="value", sort=False)


def agreement_table(df: pd.DataFrame) -> pd.DataFrame:
    """Benchmark presets: share of each variant's tokens equal to its family's reference (information)."""
    return rows(df, "agreement").pivot_table(index="variant", columns="label", values="value", sort=False)


def identity_table(df: pd.DataFrame) -> pd.DataFrame:
    """The identity check: per greedy variant, the share of generate_step's tokens it emitted, and from
    which position on it differs (= the token count when identical)."""
    return rows(df, "identity").pivot_table(
        index=["label", "variant"], columns="metric", values="value", sort=False
    )


# --- where the time per token goes ------------------------------------------------------------------------------


def split_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Median % of the time per token per phase, one row per (model, variant); `loop` names the bar."""
    split = rows(df, "split", "phase_share_pct")
    shares = (
        split.groupby(["label", "variant", "phase"], sort=False).value.median().unstack("phase").reset_index()
    )
    shares["loop"] = (
        shares.label + " · " + shares.variant.replace({"logprobs_always": "generate_step's steps"})
    )
    return shares.reindex(columns=["label", "variant", "loop"] + PARTS)


def published_split_row() -> dict:
    """The original's table (seed 001, mlx-node before its clean-up) in our phase names; '<1%' drawn as 0."""
    pub = published.table("001_logits_eval", "timing_breakdown")
    row = {
        PUBLISHED_PHASES[r.phase]: (0.0 if r.share_bound == "<" else r.share_pct) for r in pub.itertuples()
    }
    return {
        **row,
        "loop": f"published: mlx-node, {published.sources()['001_logits_eval']['hardware']} (before)",
    }


def split_chart(shares: pd.DataFrame, where: str) -> Figure:
    bars = pd.concat([shares, pd.DataFrame([published_split_row()])], ignore_index=True)
    bars[PARTS] = bars[PARTS].astype(float).fillna(0.0)
    return plots.stacked_bars(
        bars,
        category="loop",
        parts=PARTS,
        title=f"Per-token time by phase, {where}",
        ylabel="% of time per token (median)",
        horizontal=True,
    )


def split_ms_table(df: pd.DataFrame) -> pd.DataFrame:
    ms = rows(df, "split", "phase_ms_per_token")
    return ms.groupby(["label", "variant", "phase"], sort=False).value.median().unstack("phase")


def split_share(df: pd.DataFrame, label: str, name: str, phases: list[str]) -> pd.Series:
    """Per trial: the summed % share of `phases` in variant `name`'s time per token on one model."""
    s = rows(df, "split", "phase_share_pct")
    s = s[(s.label == label) & (s.variant == name) & s.phase.isin(phases)]
    return s.groupby("trial").value.sum()


# --- variability, sampling ---------------------------------------------------------------------------------------


# The published run-to-run variation drawn beside ours: claim id -> whose loop it measured.
PUBLISHED_VARIATION = {"mlxlm_variance_pct": "mlx-lm", "mlxnode_variance_pct": "mlx-node"}


def published_variation_marks() -> dict[str, float]:
    """Chart label -> published CV % (seed 001), e.g. 'published mlx-lm <CV>% (<its hardware>)'."""
    marks = {}
    for claim_id, who in PUBLISHED_VARIATION.items():
        c = published.claim(claim_id)
        marks[f"published {who} {c['published']:g}% ({c['hardware']})"] = float(c["published"])
    return marks


def variability_chart(summary: pd.DataFrame, where: str) -> Figure:
    table = summary[["label", "variant", "cv_pct", "cv_low", "cv_high"]].rename(
        columns={"cv_pct": "median", "cv_low": "low", "cv_high": "high"}
    )
    fig = plots.bars_with_intervals(
        table,
        category="variant",
        group="label",
        horizontal=True,
        ceilings=published_variation_marks(),
        title=f"Trial-to-trial variation of decode tokens/s, {where}",
        ylabel="coefficient of variation, % (95% interval)",
    )
    return plots.legend_below(fig)


def in_loop_sampling_table(df: pd.DataFrame, setup: Setup) -> pd.DataFrame:
    """Per model: the greedy fast path's and the full chain's ms/token in the same loop, the chain's extra
    ms per token (paired per block) and its share of a chain token."""
    out = []
    for label in setup.labels.values():
        m = loop_stats.in_loop_sampling(df, label)
        if m is None:
            continue
        out.append(
            {
                "label": label,
                "greedy_ms": m["greedy_ms"],
                "chain_ms": m["chain_ms"],
                "extra_ms": m["ms"].value if m["ms"] else float("nan"),
                "extra_low": m["ms"].low if m["ms"] else float("nan"),
                "extra_high": m["ms"].high if m["ms"] else float("nan"),
                "share_pct": m["share"].value,
                "share_low": m["share"].low,
                "share_high": m["share"].high,
                "n_blocks": m["effect"].n,
            }
        )
    return pd.DataFrame(out)


def sampling_table(df: pd.DataFrame) -> pd.DataFrame:
    return plots.summary_table(rows(df, "sampling"), ["sampler", "label"])


def sampling_chart(table: pd.DataFrame, where: str) -> Figure:
    return plots.bars_with_intervals(
        table,
        category="sampler",
        group="label",
        horizontal=True,
        title=f"One sampling step alone, {where}",
        ylabel="ms per call (median, 95% interval)",
    )


# --- the claims ----------------------------------------------------------------------------------------------------


def effects_table(df: pd.DataFrame, setup: Setup) -> pd.DataFrame:
    """Every claim's measured effect (% faster, paired blocks) on every model that ran its comparison;
    `judged` marks the model the claim is judged on."""
    out = []
    for claim_id, (plan_name, name) in plans.CLAIMS.items():
        lo, hi = published.figure_range(claim_id)
        if claim_id == plans.SAMPLING_SHARE:  # a share of the token, not a speed-up: its own table
            continue
        for label in setup.labels.values():
            m = loop_stats.claim_effect(df, label, claim_id)
            if m is not None:
                out.append(
                    {
                        "claim": claim_id,
                        "label": label,
                        "pair": f"{plans.PLANS[plan_name].reference} vs {name}",
                        "median": m.value,
                        "low": m.low,
                        "high": m.high,
                        "n": m.n,
                        "stop_reason": m.stop_reason,
                        "judged": label == setup.judged_on(claim_id),
                        "pub_low": lo,
                        "pub_high": hi,
                    }
                )
    cols = ["claim", "label", "pair", "median", "low", "high", "n", "stop_reason", "judged", "pub_low"]
    return pd.DataFrame(out, columns=cols + ["pub_high"])


def claims_chart(effects: pd.DataFrame, setup: Setup) -> Figure:
    return plots.effects_vs_published(
        effects[effects.judged],
        xlabel="% faster (paired blocks: geometric mean of per-block median ratios, t interval)",
        title=f"Claimed speed-ups on {setup.claims_label} (pipelining: {setup.pipelining_label}), {setup.where}",
    )


def fastest_table(df: pd.DataFrame, setup: Setup) -> pd.DataFrame:
    """Per model: the loop judged against generate_step (named before measuring), and our copy of
    generate_step's steps against generate_step (the same blocks), both % faster in tokens/s."""
    out, nan = [], float("nan")
    for label in setup.labels.values():
        judged = loop_stats.effect(df, label, *plans.FASTEST)
        copy = loop_stats.paired_change(df, label, *plans.COPY)
        out.append(
            {
                "label": label,
                "judged": setup.judged_loop,
                "judged_vs_generate_step_pct": judged.value if judged else nan,
                "judged_low": judged.low if judged else nan,
                "judged_high": judged.high if judged else nan,
                "n": judged.n if judged else 0,
                "stop_reason": judged.stop_reason if judged else "",
                "copy_vs_generate_step_pct": copy.value if copy else nan,
            }
        )
    return pd.DataFrame(out)
