"""04_bandwidth's serving analysis: batched decoding, prompt caching, generation lengths and pre-quantized
checkpoints, from the stored trials to tables and charts."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import blocks, intervals, measure, published, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.investigations.bandwidth import prequant
from mlx_workbook.investigations.bandwidth.analysis import interval
from mlx_workbook.probes.kernels import Ceiling
from mlx_workbook.report import plots
from mlx_workbook.report.text import blocks_text, change_text, interval_text

SRC = "004_bandwidth"  # the write-up whose server-overhead table these findings quote
PREQUANT_TOLERANCE_PTS = 10  # percentage points around the published gain: run-to-run decode noise is a few %
PREQUANT = prequant.PREQUANT  # the variant whose change over quantizing at load time the claim is about


def prequant_band() -> blocks.Band:
    """The published pre-quantized gain widened by our tolerance: the comparison runs until it decides this."""
    lo, hi = published.figure_range("prequantized_vs_otf_quant_gain")
    return blocks.Band.widened(lo, hi, PREQUANT_TOLERANCE_PTS, no_effect_at=0.0)  # judged as an effect


def served_label(df: pd.DataFrame) -> str:
    """The serving model's label, as the batch / cache / lengths rows carry it."""
    return str(df[df.experiment.isin(["batch", "prompt_cache", "lengths"])].label.dropna().iloc[0])


# --- batching ------------------------------------------------------------------------------------------------


def batch_table(df: pd.DataFrame) -> pd.DataFrame:
    """Aggregate tok/s per batch size with the batched roofline, the speedup over batch 1 and the weight bytes
    each generated token costs."""
    b = rows(df, "batch")
    tab = plots.summary_table(b[b.metric == "aggregate_tps"], ["batch"]).sort_values("batch")
    per_batch = b.groupby("batch")
    tab = tab.merge(per_batch.roofline_tps.first().rename("roofline_tps"), left_on="batch", right_index=True)
    tab["speedup_vs_1"] = tab["median"] / tab["median"].iloc[0]
    tab["weights_read_per_token_mb"] = (
        per_batch.weights_per_token_bytes.first().reindex(tab.batch).values / 1e6
    )
    return tab.reset_index(drop=True)


def batch_chart(df: pd.DataFrame, ceiling: Ceiling, where: str) -> Figure:
    tab = batch_table(df)
    fig = plots.lines_with_intervals(
        tab.assign(series="measured"),
        x="batch",
        series="series",
        logx=True,
        logy=True,
        title=f"Batched decoding, {served_label(df)}, {where}",
        xlabel="batch size",
        ylabel="aggregate tok/s (median, 95% interval)",
    )
    return plots.add_curve(fig, tab.batch, tab.roofline_tps, f"batched roofline at {ceiling.gbs:.0f} GB/s")


# --- prompt caching ------------------------------------------------------------------------------------------


def prompt_cache_table(df: pd.DataFrame) -> pd.DataFrame:
    return plots.summary_table(rows(df, "prompt_cache", "ttft_ms"), ["variant"])


def prompt_cache_chart(df: pd.DataFrame, where: str) -> Figure:
    r = rows(df, "prompt_cache", "ttft_ms").iloc[0]
    return plots.bars_with_intervals(
        prompt_cache_table(df),
        category="variant",
        ylabel="time to first token, ms",
        title=f"TTFT, {int(r.prefix_tokens)}-token prefix + {int(r.suffix_tokens)} new "
        f"tokens, {r.label}, {where}",
    )


def same_first_token(df: pd.DataFrame) -> bool:
    """With and without the cached prefix, every trial produced the same first token (one stored row says so)."""
    return bool(rows(df, "prompt_cache", "same_first_token").value.all())


# --- generation lengths --------------------------------------------------------------------------------------


def lengths_chart(df: pd.DataFrame, where: str) -> Figure:
    d = rows(df, "lengths")
    tab = plots.summary_table(d[d.metric.isin(["decode_tps", "request_tps"])], ["metric", "length"])
    return plots.lines_with_intervals(
        tab,
        x="length",
        series="metric",
        title=f"Generation length, {served_label(df)}, {where}",
        xlabel="generated tokens",
        ylabel="tok/s (median, 95% interval)",
    )


def fixed_share_table(df: pd.DataFrame) -> pd.DataFrame:
    """Share of a request spent before its first token (prefill + first token), per generation length."""
    return plots.summary_table(rows(df, "lengths", "fixed_share"), ["length"])


def request_tps(df: pd.DataFrame) -> pd.Series:
    return plots.summary_table(rows(df, "lengths", "request_tps"), ["length"]).set_index("length")["median"]


# --- pre-quantized vs quantized at load time -------------------------------------------------------------------


def prequant_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the blocks' steady decode tok/s and the load times."""
    pq = rows(df, "prequant")
    return plots.summary_table(pq[pq.metric.isin([prequant.METRIC, "load_s"])], ["metric", "variant"])


def prequant_chart(df: pd.DataFrame, where: str) -> Figure:
    tab = prequant_table(df)
    return plots.bars_with_intervals(
        tab[tab.metric == prequant.METRIC],
        category="variant",
        ylabel="steady decode tok/s",
        title=f"{rows(df, 'prequant').label.iloc[0]}: pre-quantized vs at load time, {where}",
    )


def prequant_same_tokens(df: pd.DataFrame) -> bool:
    """Both checkpoints generated the same tokens (the fingerprints stored beside the generations agree)."""
    return rows(df, "prequant").tokens_digest.dropna().nunique() == 1


def batch_speedup(df: pd.DataFrame, top: int) -> intervals.Estimate | None:
    """Aggregate tok/s of batch `top` over batch 1, paired by trial (every trial ran every batch size): geometric
    mean ratio with a t interval on the per-trial log-ratios; None without batch 1 or with fewer than 2 trials."""
    b = rows(df, "batch", "aggregate_tps").pivot_table(index="trial", columns="batch", values="value")
    if 1 not in b.columns or top == 1 or len(b) < 2:
        return None
    both = b[[top, 1]].dropna()
    return intervals.paired_ratio(both[top], both[1])


STOP_COLUMNS = [
    "variant", "reference", "value", "low", "high", "n_blocks", "method", "confidence", "stop_reason",
    "decided", "band_low", "band_high", "resolvable_pct",
]  # fmt: skip


def stop_view(df: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """A paired-block comparison's stored outcome, for display: % change, interval, n, why it stopped."""
    return (
        blocks.stop_rows(df, experiment).reindex(columns=STOP_COLUMNS).rename(columns={"value": "change_pct"})
    )


def comparison(df: pd.DataFrame, experiment: str, variant: str) -> pd.Series | None:
    """The stored outcome row (core.blocks.stop_rows) of one variant of a paired-block comparison; None when
    the budget ended before two blocks (no interval, so no row)."""
    stop = blocks.stop_rows(df, experiment)
    stop = stop[stop.variant == variant]
    return stop.iloc[0] if len(stop) else None


def _too_short(experiment: str) -> str:
    return f"the {experiment} comparison's time budget ended before two paired blocks: raise its budget_s."


# --- findings ------------------------------------------------------------------------------------------------


def findings(df: pd.DataFrame, where: str, params: dict) -> list[Finding]:
    """Batching, prompt caching and pre-quantized checkpoints, in process. The server-overhead claims are
    measured over HTTP by 07_serving."""
    return _batch_and_cache(df, where, params, served_label(df)) + [_prequant(df, where)]


def _batch_and_cache(df: pd.DataFrame, where: str, params: dict, label: str) -> list[Finding]:
    b, tab = rows(df, "batch", "aggregate_tps"), batch_table(df).set_index("batch")
    top = int(b.batch.max())
    speed = batch_speedup(df, top)
    eff = rows(df, "batch", "efficiency")
    beff = measure.summarize(eff[eff.batch == top].value)
    out = [
        Finding(
            id="batch32_speedup" if top == 32 else "batch_speedup",
            section="batch",
            measured=interval(speed).measured("x") if speed else None,
            statement=f"Batch {top} decodes {interval_text(speed, 'x')} the aggregate tok/s of batch 1 (paired by "
            f"trial, n={speed.n}, {speed.method}) with mlx-lm's "
            f"BatchGenerator ({b[b.batch == 1].value.median():.1f} -> {b[b.batch == top].value.median():.1f} "
            f"tok/s, {top} sequences of {params['batch_tokens']} tokens, {label}, {where}); the batched "
            f"roofline allows {tab.roofline_tps[top] / tab.roofline_tps[1]:.1f}x, and batch {top} reaches "
            f"{beff.median:.1%} of it."
            if speed
            else "Batch 1 not measured.",
        )
    ]
    if top != 32:
        out.append(
            Finding(
                id="batch32_speedup",
                section="batch",
                verdict=verdicts.NOT_MEASURED,
                statement=f"Batch 32 is not in this profile (largest batch: {top}); see batch_speedup.",
            )
        )
    pc, r = rows(df, "prompt_cache", "ttft_ms"), comparison(df, "prompt_cache", "cached prefix")
    if r is None:
        return out + [
            Finding(
                id="prompt_cache_ttft_speedup", section="prompt-cache", statement=_too_short("prompt-cache")
            )
        ]
    # The comparison stores the cached TTFT's % change; a speedup is its inverse ratio (the interval flips).
    speed = verdicts.Interval(*(100 / (100 + x) for x in (r.value, r.high, r.low)))
    med = prompt_cache_table(df).set_index("variant")["median"]
    out.append(
        Finding(
            id="prompt_cache_ttft_speedup",
            section="prompt-cache",
            measured=speed.measured("x", n=int(r.n_blocks), stop_reason=r.stop_reason),
            statement=f"A cached {int(pc.prefix_tokens.iloc[0])}-token prefix cuts time to first token "
            f"{interval_text(speed, 'x')} ({med['no cache']:.1f} -> {med['cached prefix']:.1f} ms; "
            f"{blocks_text(r)}) for "
            f"{int(pc.suffix_tokens.iloc[0])} new tokens on {label}, {where}; same first token: "
            f"{same_first_token(df)}.",
        )
    )
    return out


def _prequant(df: pd.DataFrame, where: str) -> Finding:
    """Pre-quantized vs quantized while loading: the same weights, so decode speed should not differ. Judged on
    the paired-block comparison's stored outcome against the widened published gain (prequant_band)."""
    r = comparison(df, "prequant", PREQUANT)
    if r is None:
        cid = "prequantized_vs_otf_quant_gain"
        return Finding.for_claim(
            cid, verdicts.NOT_MEASURED, f"Not measured: {_too_short('pre-quantized')}", None, "prequant"
        )
    pct = verdicts.Interval(r.value, r.low, r.high)
    tab = prequant_table(df).set_index(["metric", "variant"])["median"]
    loads = rows(df, "prequant", "load_s")
    lo, hi = published.figure_range("prequantized_vs_otf_quant_gain")
    return Finding.for_claim(
        "prequantized_vs_otf_quant_gain",
        verdicts.effect_matches(pct, lo, hi, PREQUANT_TOLERANCE_PTS, no_effect_at=0.0),
        f"Pre-quantized vs quantized at load time ({r.label}, both through mlx_lm.load, then both kept "
        f"resident): steady decode {change_text(pct)} ({tab[prequant.METRIC, prequant.REFERENCE]:.1f} -> "
        f"{tab[prequant.METRIC, PREQUANT]:.1f} tok/s; {blocks_text(r)}; in each block both variants' "
        f"{int(r.tokens_per_trial)}-token trials advanced alternately {int(r.chunk_tokens)} tokens at a time; "
        f"published +{hi:g}%, tolerance {PREQUANT_TOLERANCE_PTS:g} points); identical tokens: "
        f"{prequant_same_tokens(df)}; load {tab['load_s', PREQUANT]:.2f} s vs "
        f"{tab['load_s', prequant.REFERENCE]:.2f} s (medians of {loads.trial.nunique()} load(s) each), {where}. "
        "With the same quantization code both paths end with the same weights, so decode speed cannot differ; "
        "load time can.",
        pct.measured(
            "%", n=int(r.n_blocks), stop_reason=r.stop_reason, resolvable_pct=float(r.resolvable_pct)
        ),
        "prequant",
    )
