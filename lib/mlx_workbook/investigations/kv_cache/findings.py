"""Notebook 01's findings (the KV-cache investigation), built from its stored measurements alone.

`findings(df, ...)` returns one Finding per published claim of the notebook plus the measured-only findings;
every statement is built from the numbers in `df` (see `kv_cache` for the statistics behind them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlx_workbook.core import measure, published, stats, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.kv_cache import analysis as kv
from mlx_workbook.report.text import change_text, interval_text, span

# A one-token write that copied its buffer would take at least about this share of a full copy's time (ours:
# the copy's own time at the same size, halved for the noise of one small write).
COPY_LIKE_RATIO = 0.5


def _row_interval(row) -> Interval:
    """A row of kv.strategy_ratios (ratio, low, high) as an Interval."""
    return Interval(float(row.ratio), float(row.low), float(row.high))


def _reference(strategies) -> str:
    return "preallocated" if "preallocated" in strategies else strategies[0]


def _published_figure(claim_id: str) -> str:
    """A claim's published figure as the write-up gives it: '20 ms', '18-19 ms', '0%'."""
    low, high = published.figure_range(claim_id)
    unit = published.claim(claim_id).get("unit") or ""
    return f"{span(low, high)}{'' if unit in ('', '%') else ' '}{unit}"


def every_part_holds(parts) -> str:
    """One verdict for a claim that needs every part to hold (e.g. flat under every strategy): does not hold
    when any part does not, holds when all do, inconclusive otherwise."""
    parts = set(parts)
    if verdicts.DOES_NOT_HOLD in parts:
        return verdicts.DOES_NOT_HOLD
    return verdicts.HOLDS if parts == {verdicts.HOLDS} else verdicts.INCONCLUSIVE


def flat_in_original_range(df, model, strategies, original_lengths, tolerance) -> Finding:
    """per_token_time_flat: the original's range, per strategy; the verdict needs every strategy flat."""
    first, last, ref = min(original_lengths), max(original_lengths), _reference(strategies)
    change = {s: kv.relative_change(df, model, s, first, last) for s in strategies}
    each = {s: verdicts.no_effect(c, 100 * tolerance) for s, c in change.items()}
    overall = every_part_holds(each.values())
    ms = {s: (kv.median_time(df, model, s, first), kv.median_time(df, model, s, last)) for s in strategies}
    pub_tokens = published.table(*kv.PUBLISHED_TABLE).tokens
    pub = f"~{_published_figure('per_token_time_flat')}/token, flat over {pub_tokens.min()}..{pub_tokens.max()} tokens"
    return Finding(
        id="per_token_time_flat",
        verdict=overall,
        section="per_token",
        headline=True,
        published=published.reference("per_token_time_flat"),
        measured=change[ref].measured(
            "%",
            strategy=ref,
            ms_per_token_first=ms[ref][0],
            ms_per_token_last=ms[ref][1],
            lengths=[first, last],
        ),
        statement=f"{kv.model_label(df, model)} on {kv.where(df)}: time per token from {first} to {last} tokens of "
        f"context changes "
        + "; ".join(
            f"{s} {change_text(change[s])} ({ms[s][0]:.3g} -> {ms[s][1]:.3g} ms, {each[s]})"
            for s in strategies
        )
        + f". Flat within ±{tolerance:.0%}: {overall} (published: {pub}).",
    )


def full_range(df, model, strategies, lengths, tolerance) -> Finding:
    shortest, longest, ref = min(lengths), max(lengths), _reference(strategies)
    change = {s: kv.relative_change(df, model, s, shortest, longest) for s in strategies}
    sl = kv.slopes(df[df.model == model]).set_index("strategy")
    v = verdicts.no_effect(change[ref], 100 * tolerance)
    return Finding(
        id=f"per_token_full_range_{kv.slug(model)}",
        verdict=v,
        section="per_token",
        measured=change[ref].measured("%", strategy=ref, lengths=[shortest, longest]),
        statement=f"{kv.model_label(df, model)}: from {shortest} to {longest} tokens of context the time per token "
        f"changes "
        + "; ".join(
            f"{s} {change_text(change[s])}, slope {sl.loc[s, 'ms_per_1k_tokens']:.3g} "
            f"[{sl.loc[s, 'low']:.3g}, {sl.loc[s, 'high']:.3g}] ms per 1000 tokens"
            for s in strategies
        )
        + f" ({ref} flat within ±{tolerance:.0%}: {v}).",
    )


def copy_claims(df, model, original_lengths, longest, tolerance) -> list[Finding]:
    """kv_copy_no_impact and kv_preallocated_buffers_no_impact: concat over preallocated, paired per trial and
    pooled over the original's lengths (both claims are measured by the same comparison)."""
    first, last = min(original_lengths), max(original_lengths)
    times = kv.per_token_times(df, model, original_lengths)
    orig = stats.pooled_ratio(times, "strategy", "concat", "preallocated", ["length"], paired_on="trial")
    effect = Interval.change_pct(orig)
    at_longest = _row_interval(
        kv.strategy_ratios(df, model, "concat", "preallocated").set_index("length").loc[longest]
    )
    out = []
    for cid, what in [
        ("kv_copy_no_impact", "copying the whole cache every token (concat)"),
        (
            "kv_preallocated_buffers_no_impact",
            "concatenating every token instead of writing in place into pre-allocated buffers",
        ),
    ]:
        v = verdicts.effect_matches(effect, *published.figure_range(cid), tolerance=100 * tolerance)
        out.append(
            Finding(
                id=cid,
                verdict=v,
                section="copy_cost",
                published=published.reference(cid),
                measured=effect.measured(
                    "%",
                    lengths=list(original_lengths),
                    pairs=orig.n,
                    ratio_at_longest=at_longest.value,
                    longest=longest,
                ),
                statement=f"{kv.model_label(df, model)} on {kv.where(df)}, contexts {first}..{last} tokens: "
                f"{what} changes "
                f"the time per token by {interval_text(effect, '%')} against preallocated (median of "
                f"{orig.n} paired trials; no impact (published: {_published_figure(cid)}) within "
                f"±{tolerance:.0%}: {v}); "
                f"at {longest} tokens the ratio is {at_longest.value:.3f} [{at_longest.low:.3f}, "
                f"{at_longest.high:.3f}].",
            )
        )
    return out


def copy_cost_onset(df, model, longest, tolerance, headline: bool) -> Finding:
    rt = kv.strategy_ratios(df, model, "concat", "preallocated")
    onset = kv.first_costly_length(rt, tolerance)
    judged = onset if onset is not None else longest
    at = _row_interval(rt.set_index("length").loc[judged])
    at_pct, last_pct = Interval.change_pct(at), Interval.change_pct(_row_interval(rt.iloc[-1]))
    label = kv.model_label(df, model)
    statement = (
        f"{label}: copying the cache every token (concat) costs more than {tolerance:.0%} per token from "
        f"{onset} tokens of context on: {change_text(at_pct)} there, {last_pct.value:+.1f}% at {longest} tokens."
        if onset is not None
        else f"{label}: at no measured length up to {longest} tokens does copying the cache every token "
        f"(concat) cost more than {tolerance:.0%} per token with confidence; at {longest} tokens the "
        f"per-trial ratio to preallocated is {interval_text(at, fmt='.3f')}."
    )
    # value is a length (no interval of its own); the ratio's interval at that length is stored beside it
    return Finding(
        id=f"copy_cost_onset_{kv.slug(model)}",
        section="copy_cost",
        headline=headline,
        measured={
            "value": onset,
            "unit": "tokens",
            "length": judged,
            "ratio": at.value,
            "ratio_low": at.low,
            "ratio_high": at.high,
        },
        statement=statement,
    )


def slice_update_claim(df) -> Finding:
    """slice_update_creates_new_arrays: at the largest buffer, a one-token write against a copy of the buffer;
    a write that copied would take at least COPY_LIKE_RATIO of a copy's time."""
    su = rows(df, "slice_update")
    big = su.size_mb.max()
    sel = su[su.size_mb == big]
    ratio = measure.ratio_interval(
        sel[sel.variant == "slice_update"].value, sel[sel.variant == "concatenate"].value
    )
    v = verdicts.at_least(Interval.of(ratio), COPY_LIKE_RATIO)
    writes = su[su.variant == "slice_update"]
    slope = measure.fit_slope(writes.size_mb, writes.value)
    meaning = {
        verdicts.DOES_NOT_HOLD: "MLX writes it in place (the old buffer is donated)",
        verdicts.HOLDS: "the write costs about as much as copying the buffer",
    }.get(v, "the write is neither clearly in place nor clearly a copy of the buffer")
    return Finding(
        id="slice_update_creates_new_arrays",
        verdict=v,
        section="slice_update",
        published=published.reference("slice_update_creates_new_arrays"),
        measured=Interval.of(ratio).measured(
            "x",
            what="slice_update time / concatenate (copy) time per write",
            size_mb=float(big),
            slice_update_ms_per_mb=slope["slope"],
        ),
        statement=f"On {kv.where(df)}, a one-token slice_update into a {big:g} MB buffer takes "
        f"{interval_text(ratio, 'x')} the time of copying the buffer, and its time grows "
        f"{1e3 * slope['slope']:.3g} µs per MB [{1e3 * slope['low']:.3g}, {1e3 * slope['high']:.3g}]: "
        f"{meaning}, so 'slice_update creates new arrays' as an explanation of a copy per token: {v}.",
    )


def cache_bytes(df, model, strategies, longest, step, window) -> Finding:
    ref = _reference(strategies)
    mib = (
        kv.per_token_table(df, model, "cache_bytes", 2**-20).query("length == @longest").set_index("strategy")
    )
    return Finding(
        id=f"cache_bytes_{kv.slug(model)}",
        section="memory",
        measured={
            "value": float(mib["median"].get(ref, np.nan)),
            "unit": "MiB",
            "strategy": ref,
            "length": longest,
        },
        statement=f"{kv.model_label(df, model)}, {longest} tokens of context: the cache holds "
        + ", ".join(f"{s} {mib.loc[s, 'median']:.3g} MiB" for s in strategies)
        + f" (preallocated rounds up to steps of {step} tokens; rotating stops at {window} tokens).",
    )


def time_split(df, model, strategies) -> Finding | None:
    ref = _reference(strategies)
    table = kv.time_split_table(df, model)
    if table.empty or ref not in set(table.strategy):
        return None
    p = table[table.strategy == ref].sort_values("length").iloc[-1]
    total = float(p["total"])
    return Finding(
        id="time_split",
        section="time_split",
        measured={
            "value": total,
            "unit": "ms",
            **{f"{part}_ms": float(p[part]) for part in kv.SPLIT_PARTS},
            "length": int(p.length),
        },
        statement=f"{kv.model_label(df, model)}, {ref} cache, {int(p.length)} tokens: a synchronous step takes "
        f"{total:.3g} ms of host time: "
        + ", ".join(f"{part} {p[part]:.3g} ms ({p[part] / total:.0%})" for part in kv.SPLIT_PARTS)
        + f"; mlx-lm's pipelined loop: {p.pipelined_ms:.3g} ms per token.",
    )


def identical_tokens(df) -> Finding:
    """Equal tokens everywhere, except the rotating cache once the context exceeds its window."""
    t = kv.identity_table(df).set_index("strategy")
    prompt, window = int(t.prompt_tokens.iloc[0]), int(t.window.iloc[0])
    tokens = int(t.identical_prefix.max())  # the reference (preallocated) agrees with itself on every token
    fits = window - prompt + 1  # tokens generated while the context still fits in the window
    agree = all(r.identical or (s == "rotating" and r.identical_prefix >= fits) for s, r in t.iterrows())
    said = [
        f"{s} identical"
        if r.identical
        else f"{s} first differs at token {r.identical_prefix} (context {int(r.context_at_divergence)})"
        for s, r in t.iterrows()
    ]
    return Finding(
        id="strategies_identical_tokens",
        section="strategies",
        verdict=verdicts.HOLDS if agree else verdicts.DOES_NOT_HOLD,
        measured={"value": float(t.identical.mean()), "unit": "share identical"},
        statement=f"Greedy tokens ({tokens} from a {prompt}-token prompt, tiny preset, scaled weights) against "
        f"preallocated: {', '.join(said)}; the rotating window is {window} tokens, so the first {fits} "
        f"tokens must agree.",
    )


def findings(
    df: pd.DataFrame,
    *,
    presets,
    strategies,
    lengths,
    original_lengths,
    flat_tolerance: float,
    copy_tolerance: float,
    step: int,
    window: int,
) -> list[Finding]:
    """Every finding of notebook 01; the claims are judged on the first preset (the original's model shape)."""
    claim_model, longest = presets[0], max(lengths)
    out = [flat_in_original_range(df, claim_model, strategies, original_lengths, flat_tolerance)]
    out += [full_range(df, name, strategies, lengths, flat_tolerance) for name in presets]
    if {"concat", "preallocated"} <= set(strategies):
        out += copy_claims(df, claim_model, original_lengths, longest, copy_tolerance)
        out += [
            copy_cost_onset(df, name, longest, copy_tolerance, headline=name == claim_model)
            for name in presets
        ]
    out.append(slice_update_claim(df))
    out += [cache_bytes(df, name, strategies, longest, step, window) for name in presets]
    out += [f for f in [time_split(df, claim_model, strategies)] if f is not None]
    out.append(identical_tokens(df))
    return out
