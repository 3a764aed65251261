"""Turns notebook 01's stored measurements (the KV-cache investigation) into its statistics, tables and charts.

Every function reads the long-format rows of `run.measurements` (experiments "per_length", "time_split",
"slice_update", "identity" and the claims' block comparisons written by `measure`); the findings built from
them are in `findings`. The sweep's strategy ratios are paired within a round (every strategy ran back to back
at the same length) and descriptive; the claims are judged on the block comparisons' stored outcome rows
(core.blocks: paired interleaved blocks, t interval on per-block log-ratios).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import blocks, measure, published, stats
from mlx_workbook.core.frames import rows
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.kv_cache.measure import (
    COPY_LONG,
    COPY_LONG_VECTOR_SDPA,
    COPY_ORIGINAL,
    FLAT_ORIGINAL,
    TIME_METRIC,
)
from mlx_workbook.probes.loops import PHASES
from mlx_workbook.report import plots
from mlx_workbook.report import text as labels
from mlx_workbook.report.text import slug, where  # noqa: F401  (part of this module's interface for the notebook)

PUBLISHED_TABLE = ("000_kv_cache_gap", "per_token_ms")  # the original's per-token times over 10..100 tokens
SPLIT_PARTS = [*PHASES, "other"]  # the synchronous step's host phases (probes.loops) and the loop's own rest
CLAIM_EXPERIMENTS = {  # the claims' block comparisons, as the chart names them
    COPY_ORIGINAL: "copy, short context",
    FLAT_ORIGINAL: "flat, longest/shortest",
    COPY_LONG: "copy, longest context",
    COPY_LONG_VECTOR_SDPA: "copy, longest context, cuDNN SDPA off",
}


# --- labels ------------------------------------------------------------------------------------------------------


def model_label(df: pd.DataFrame, model: str) -> str:
    return labels.model_label(df[df.model == model])


# --- statistics ----------------------------------------------------------------------------------------------------


def times(df: pd.DataFrame, model: str, strategy: str, length: int) -> np.ndarray:
    """Stored per-token times (ms) of one model, strategy and length."""
    sel = rows(df, "per_length", TIME_METRIC, model=model, strategy=strategy, length=length)
    return sel.value.to_numpy(float)


def median_time(df: pd.DataFrame, model: str, strategy: str, length: int) -> float:
    return float(np.median(times(df, model, strategy, length)))


def slopes(df: pd.DataFrame, lengths=None) -> pd.DataFrame:
    """Least-squares slope of ms/token on context length per (model, strategy), with its bootstrap interval,
    as ms per 1000 tokens of context (numerically µs per token)."""
    out = []
    sel = rows(df, "per_length", TIME_METRIC)
    if lengths is not None:
        sel = sel[sel.length.isin(lengths)]
    for (model, strategy), g in sel.groupby(["model", "strategy"], sort=False):
        f = measure.fit_slope(g.length, g.value)
        out.append(
            {
                "model": model,
                "strategy": strategy,
                "ms_per_1k_tokens": 1e3 * f["slope"],
                "low": 1e3 * f["low"],
                "high": 1e3 * f["high"],
                "intercept_ms": f["intercept"],
                "lengths": f"{g.length.min():g}..{g.length.max():g}",
            }
        )
    return pd.DataFrame(out)


def relative_change(df: pd.DataFrame, model: str, strategy: str, first: int, last: int) -> Interval:
    """Per-token time at `last` against that at `first` as a % change (0 = flat), with its bootstrap interval."""
    return Interval.change_pct(
        measure.ratio_interval(times(df, model, strategy, last), times(df, model, strategy, first))
    )


def per_token_times(df: pd.DataFrame, model: str, lengths=None) -> pd.DataFrame:
    """The stored per-token time rows of one model (at `lengths` only, when given)."""
    sel = rows(df, "per_length", TIME_METRIC, model=model)
    return sel if lengths is None else sel[sel.length.isin(lengths)]


def strategy_ratios(df: pd.DataFrame, model: str, numerator: str, denominator: str) -> pd.DataFrame:
    """Median per-trial ratio of two strategies' times at each length, with its bootstrap interval (trials of
    the same round and length ran back to back, so shared drifts cancel)."""
    out = []
    pairs = stats.paired_ratios(
        per_token_times(df, model), "strategy", numerator, denominator, ["length", "trial"]
    )
    for n, g in pairs.groupby("length"):
        s = measure.summarize(g.ratio)
        out.append({"length": int(n), "ratio": s.median, "low": s.low, "high": s.high, "pairs": s.n})
    return pd.DataFrame(out, columns=["length", "ratio", "low", "high", "pairs"])


def first_costly_length(ratios: pd.DataFrame, tolerance: float) -> int | None:
    """The shortest length from which on the ratio's whole interval stays above 1 + tolerance."""
    above = ratios.sort_values("length").assign(costly=lambda t: t.low > 1 + tolerance)
    for i, row in enumerate(above.itertuples()):
        if above.costly.iloc[i:].all():
            return int(row.length)
    return None


# --- the claims' block comparisons ------------------------------------------------------------------------------


def block_outcomes(df: pd.DataFrame) -> pd.DataFrame:
    """Every claim comparison's stored outcome (core.blocks' change_pct row): % change (value) of the variant
    over the reference with its t interval, n blocks, why it stopped, the band and the smallest resolvable effect."""
    out = pd.concat([blocks.stop_rows(df, e) for e in CLAIM_EXPERIMENTS], ignore_index=True)
    cols = ["experiment", "model", "variant", "reference", "value", "low", "high", "n_blocks", "stop_reason"]
    cols += ["method", "confidence", "decided", "band_low", "band_high", "resolvable_pct", "claim_tokens"]
    cols += ["extended", "projected_blocks"]  # absent from rows stored before the extension: NaN
    return out.reindex(columns=cols) if not out.empty else pd.DataFrame(columns=cols)


def block_outcome(df: pd.DataFrame, experiment: str, model: str) -> pd.Series | None:
    """The outcome row of one comparison on one model; None when it never reached two blocks."""
    sel = block_outcomes(df)
    sel = sel[(sel.experiment == experiment) & (sel.model == model)]
    return None if sel.empty else sel.iloc[0]


def block_ms(df: pd.DataFrame, experiment: str, model: str) -> pd.Series:
    """Median ms per token of each variant over a comparison's blocks (its absolute level, for the reader)."""
    sel = rows(df, experiment, TIME_METRIC, model=model)
    return sel.groupby("variant").value.median()


def block_log_ratios(df: pd.DataFrame, experiment: str, model: str) -> pd.Series:
    """Per-block log(variant / reference) of a comparison (core.blocks.paired_log_ratios), one model."""
    row = block_outcome(df, experiment, model)
    if row is None:
        return pd.Series(dtype=float)
    sel = df[df.model == model] if "model" in df.columns else df
    return blocks.paired_log_ratios(sel, experiment, row.variant, row.reference, TIME_METRIC)


def chart_blocks(df: pd.DataFrame) -> Figure:
    """Each claim comparison's % change with its interval, beside the no-effect band it was judged against."""
    t = block_outcomes(df)
    table = pd.DataFrame(
        {
            "claim": [
                f"{m}: {CLAIM_EXPERIMENTS[e]} (n={int(n)}, {r})"
                for e, m, n, r in zip(t.experiment, t.model, t.n_blocks, t.stop_reason)
            ],
            "median": t.value,
            "low": t.low,
            "high": t.high,
            "pub_low": t.band_low,
            "pub_high": t.band_high,
        }
    )
    return plots.effects_vs_published(
        table,
        title=f"Claims in paired blocks, {where(df)}",
        xlabel="% change in ms/token, variant over reference (t interval)",
        band_label="no-effect band (published 0 ± tolerance)",
    )


# --- tables --------------------------------------------------------------------------------------------------------


def identity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: tokens identical to the pre-allocated cache's, how many agree, at what context they part."""
    sel = rows(df, "identity").set_index(["strategy", "metric"])
    same = sel.xs("identical_prefix", level="metric")
    out = pd.DataFrame(
        {
            "identical": sel.xs("tokens_identical", level="metric").value.astype(bool),
            "identical_prefix": same.value.astype(int),
            "prompt_tokens": same.prompt_tokens.astype(int),
            "window": same.window.astype(int),
        }
    )
    out["context_at_divergence"] = np.where(out.identical, np.nan, out.identical_prefix + out.prompt_tokens)
    return out.reset_index()


def per_token_table(
    df: pd.DataFrame, model: str, metric: str = TIME_METRIC, scale: float = 1.0
) -> pd.DataFrame:
    """Median and interval of a per-length metric (times `scale`) per strategy and length."""
    sel = rows(df, "per_length", metric)
    sel = sel[sel.model == model].assign(value=lambda t: t.value * scale)
    return plots.summary_table(sel, ["strategy", "length"])


def wide(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A strategy x length summary as one row per length, one column of medians per strategy."""
    return table.pivot(index="length", columns="strategy", values="median").round(digits)


def time_split_table(df: pd.DataFrame, model: str) -> pd.DataFrame:
    """Median ms of each host phase (SPLIT_PARTS) and of the whole synchronous step ("total") per strategy
    and length, with the pipelined loop's median time per token at the same length beside it."""
    sel = rows(df, "time_split", model=model)
    if sel.empty:
        return pd.DataFrame()
    parts = sel.groupby(["strategy", "length", "phase"]).value.median().unstack("phase").reset_index()
    parts["length"] = parts.length.astype(int)  # a float column: rows of other experiments have no length
    parts["pipelined_ms"] = [median_time(df, model, s, n) for s, n in zip(parts.strategy, parts.length)]
    return parts


def slice_update_table(df: pd.DataFrame) -> pd.DataFrame:
    return plots.summary_table(rows(df, "slice_update"), ["variant", "size_mb"])


# --- charts --------------------------------------------------------------------------------------------------------


def chart_per_token(df: pd.DataFrame, model: str, window: int) -> Figure:
    """Median time per token vs context per strategy; the published mlx-node series dashed beside it; the
    rotating window dotted."""
    fig = plots.lines_with_intervals(
        per_token_table(df, model),
        x="length",
        series="strategy",
        logx=True,
        logy=True,
        title=f"Time per token vs context, {model_label(df, model)}, {where(df)}",
        xlabel="context length (tokens)",
        ylabel="ms per token (median, 95% interval)",
    )
    pub = published.table(*PUBLISHED_TABLE)
    fig.axes[0].axvline(window, ls=":", lw=1, color="#999999", label=f"rotating window ({window})")
    return plots.add_curve(
        fig, pub.tokens, pub.ms_per_token, "published: mlx-node, hardware unspecified", marker="s"
    )


def chart_copy_ratio(
    df: pd.DataFrame,
    model: str,
    copy_tolerance: float,
    numerator: str = "concat",
    denominator: str = "preallocated",
) -> Figure:
    table = strategy_ratios(df, model, numerator, denominator).rename(columns={"ratio": "median"})
    return plots.lines_with_intervals(
        table,
        x="length",
        series=None,
        logx=True,
        ceilings={"no difference": 1.0, f"1 + tolerance ({copy_tolerance:g})": 1 + copy_tolerance},
        title=f"{numerator} / {denominator} time per token, {model_label(df, model)}, {where(df)}",
        xlabel="context length (tokens)",
        ylabel="per-trial ratio (median, 95% interval)",
    )


def chart_cache_bytes(df: pd.DataFrame, model: str) -> Figure:
    return plots.lines_with_intervals(
        per_token_table(df, model, "cache_bytes", 2**-20),
        x="length",
        series="strategy",
        logx=True,
        logy=True,
        title=f"KV-cache bytes vs context, {model_label(df, model)}, {where(df)}",
        xlabel="context length (tokens)",
        ylabel="cache MiB (all layers)",
    )


def chart_peak_memory(df: pd.DataFrame, model: str) -> Figure:
    return plots.lines_with_intervals(
        per_token_table(df, model, "decode_peak_memory_gb"),
        x="length",
        series="strategy",
        logx=True,
        title=f"Peak memory while decoding, {model_label(df, model)}, {where(df)}",
        xlabel="context length (tokens)",
        ylabel="GB (median, 95% interval)",
    )


def chart_time_split(df: pd.DataFrame, model: str) -> Figure:
    """Stacked medians of the synchronous step's parts; black ticks: the pipelined loop at the same length."""
    parts = time_split_table(df, model)
    parts["config"] = parts.strategy + " @ " + parts.length.astype(str)
    fig = plots.stacked_bars(
        parts,
        category="config",
        parts=SPLIT_PARTS,
        title=f"Time per token, synchronous step, {model_label(df, model)}, {where(df)}",
        ylabel="ms per token (median)",
    )
    fig.axes[0].plot(
        parts.config,
        parts.pipelined_ms,
        ls="none",
        marker="_",
        ms=18,
        mew=2,
        color="black",
        label="pipelined mlx-lm loop",
    )
    fig.axes[0].legend(fontsize=8)
    return fig


def chart_slice_update(df: pd.DataFrame) -> Figure:
    return plots.lines_with_intervals(
        slice_update_table(df),
        x="size_mb",
        series="variant",
        logx=True,
        logy=True,
        title=f"One-token write into a cache buffer, {where(df)}",
        xlabel="buffer size (MB)",
        ylabel="ms per write (median, 95% interval)",
    )
