"""02_decode_loop: the stored measurements (loop_bench) turned into its tables and charts; its findings are in
findings.py (which reads these tables). Every function reads run.measurements only."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import published
from mlx_workbook.core.frames import rows
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
    # The library loop judged against generate_step, named before measuring (the fastest of several would win
    # by selection alone); the fastest is reported beside it as information.
    judged_loop: str = "pipelined"

    @property
    def claims_label(self) -> str:
        return next(iter(self.labels.values()))

    @property
    def pipelining_label(self) -> str:
        return self.labels[self.pipelining_spec] if self.pipelining_spec else list(self.labels.values())[-1]

    def judged_on(self, claim_id: str) -> str:
        return self.pipelining_label if claim_id == "async_pipelining_gain" else self.claims_label


def variant_descriptions(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"variant": n, "family": variant(n).family, "what it does": variant(n).about} for n in names]
    ).set_index("variant")


# --- tokens/s of every variant --------------------------------------------------------------------------------


def variant_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and variant: tokens/s, % against generate_step (paired by round), CV, rounds."""
    return loop_stats.variant_summary(df)


def speed_chart(summary: pd.DataFrame, where: str) -> Figure:
    table = summary[["label", "variant", "vs_mlx_lm_pct", "vs_low", "vs_high"]].rename(
        columns={"vs_mlx_lm_pct": "median", "vs_low": "low", "vs_high": "high"}
    )
    return plots.bars_with_intervals(
        table[table.variant != "mlx_lm"],
        category="variant",
        group="label",
        horizontal=True,
        title=f"Decode speed against mlx-lm's generate_step, {where}",
        ylabel="% faster than generate_step (median of per-round ratios, 95% interval)",
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
        title=f"Run-to-run variation of decode tokens/s, {where}",
        ylabel="coefficient of variation, % (95% interval)",
    )
    return plots.legend_below(fig)


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
    """Every claim pair's measured effect (% faster, paired by round) on every model that ran both variants;
    `judged` marks the model the claim is judged on."""
    out = []
    for claim_id, (a, b) in loop_stats.CLAIM_PAIRS.items():
        lo, hi = published.figure_range(claim_id)
        for label in setup.labels.values():
            m = loop_stats.speedup_pct(df, label, a, b)
            if m is not None:
                out.append(
                    {
                        "claim": claim_id,
                        "label": label,
                        "pair": f"{a} vs {b}",
                        "median": m.value,
                        "low": m.low,
                        "high": m.high,
                        "judged": label == setup.judged_on(claim_id),
                        "pub_low": lo,
                        "pub_high": hi,
                    }
                )
    return pd.DataFrame(
        out, columns=["claim", "label", "pair", "median", "low", "high", "judged", "pub_low", "pub_high"]
    )


def claims_chart(effects: pd.DataFrame, setup: Setup) -> Figure:
    return plots.effects_vs_published(
        effects[effects.judged],
        xlabel="% faster (median of per-round tokens/s ratios, 95% interval)",
        title=f"Claimed speed-ups on {setup.claims_label} (pipelining: {setup.pipelining_label}), {setup.where}",
    )


def fastest_table(df: pd.DataFrame, summary: pd.DataFrame, setup: Setup) -> pd.DataFrame:
    """Per model: the loop judged against generate_step (setup.judged_loop, named before measuring) and the
    fastest greedy library loop (picked after measuring: information), each paired by round."""
    out = []
    nan = float("nan")
    for label in setup.labels.values():
        best = loop_stats.fastest_library_loop(summary, label)
        judged = loop_stats.speedup_pct(df, label, setup.judged_loop, "mlx_lm")
        m = loop_stats.speedup_pct(df, label, best, "mlx_lm")
        copy = loop_stats.speedup_pct(df, label, "logprobs_always", "mlx_lm")
        out.append(
            {
                "label": label,
                "judged": setup.judged_loop,
                "judged_vs_generate_step_pct": judged.value if judged else nan,
                "judged_low": judged.low if judged else nan,
                "judged_high": judged.high if judged else nan,
                "fastest": best,
                "vs_generate_step_pct": m.value,
                "low": m.low,
                "high": m.high,
                "copy_vs_generate_step_pct": copy.value if copy else nan,
            }
        )
    return pd.DataFrame(out)
