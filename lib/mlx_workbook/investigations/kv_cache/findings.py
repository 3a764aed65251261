"""Notebook 01's findings (the KV-cache investigation), built from its stored measurements alone.

`findings(df, ...)` returns one Finding per published claim of the notebook plus the measured-only findings;
every statement is built from the numbers in `df` (see `kv_cache` for the statistics behind them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlx_workbook.core import published, scope, stats, verdicts
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.kv_cache import analysis as kv
from mlx_workbook.report.text import change_text, interval_text, span

# How fast a one-token write's time grows with the buffer, as a share of a copy's growth: a write in place grows
# not at all (0), one that copied the buffer like a copy (1); the claim is judged against the midpoint.
COPY_LIKE_SHARE = 0.5


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


def copy_ms(df, mib: float) -> float:
    """The slice_update probe's time to copy a buffer of `mib` MiB (concatenate: read and write every byte),
    interpolated between its sizes; outside them, at the nearest size's ms per MiB (bytes moved at that rate)."""
    su = df[(df.experiment == "slice_update") & (df.variant == "concatenate")]
    med = su.groupby("size_mb").value.median().sort_index()
    sizes, ms = med.index.to_numpy(float), med.to_numpy(float)
    if mib <= sizes[0] or mib >= sizes[-1]:
        end = 0 if mib <= sizes[0] else -1
        return float(ms[end] * mib / sizes[end])
    return float(np.interp(mib, sizes, ms))


def expected_copy_ratio(df, model, length) -> tuple[float, float, float] | None:
    """What copying the whole cache once per token should cost at `length`, from the bytes it moves: (concat over
    preallocated time per token, cache MiB, added ms), the added ms being the probe's copy of that many bytes."""
    if "slice_update" not in set(df.experiment):
        return None
    cache = kv.per_token_table(df, model, "cache_bytes", 2**-20).query("length == @length")
    mib = cache[cache.strategy == "concat"]["median"]
    if mib.empty:
        return None
    added = copy_ms(df, float(mib.iloc[0]))
    return 1 + added / kv.median_time(df, model, "preallocated", length), float(mib.iloc[0]), added


def _power_text(measured: Interval, expected: float) -> str:
    """What the ratio interval at the longest context can say against the ratio a copy per token would give."""
    has_none, has_copy = measured.low <= 1 <= measured.high, measured.low <= expected <= measured.high
    if has_none and has_copy:
        return "the interval holds both no cost and a full copy's cost, so it cannot tell them apart."
    if has_copy:
        return "the interval excludes no cost and holds a full copy's cost."
    if has_none:
        return "the interval excludes a full copy's cost and holds no cost."
    return "the interval holds neither no cost nor a full copy's cost."


def copy_claims(df, model, original_lengths, longest, tolerance) -> list[Finding]:
    """kv_copy_no_impact and kv_preallocated_buffers_no_impact: concat over preallocated, paired per trial and
    pooled over the original's lengths. Both claims are this one measurement, so it gets one verdict: the
    first claim holds it, the second refers to it (`same_as`) and the findings page counts it once."""
    first, last = min(original_lengths), max(original_lengths)
    times = kv.per_token_times(df, model, original_lengths)
    orig = stats.pooled_ratio(times, "strategy", "concat", "preallocated", ["length"], paired_on="trial")
    effect = Interval.change_pct(orig)
    at_longest = _row_interval(
        kv.strategy_ratios(df, model, "concat", "preallocated").set_index("length").loc[longest]
    )
    cid, other = "kv_copy_no_impact", "kv_preallocated_buffers_no_impact"
    v = verdicts.effect_matches(effect, *published.figure_range(cid), tolerance=100 * tolerance)
    expected = {n: expected_copy_ratio(df, model, n) for n in (last, longest)}
    power = (
        " From the bytes moved (the concat cache's size, copied at the speed this run's slice_update probe "
        "measured for that size) a copy per token should cost "
        + " and ".join(
            f"{100 * (e[0] - 1):+.2g}% at {n:g} tokens ({e[1]:.4g} MiB, {e[2]:.3g} ms)"
            for n, e in expected.items()
            if e is not None
        )
        + f", against measured {Interval.change_pct(at_longest).value:+.1f}% at {longest:g}: "
        + _power_text(at_longest, expected[longest][0])
        if all(e is not None for e in expected.values())
        else ""
    )
    measured = effect.measured(
        "%",
        lengths=list(original_lengths),
        pairs=orig.n,
        ratio_at_longest=at_longest.value,
        longest=longest,
        expected_ratio_at_longest=expected[longest][0] if expected[longest] else None,
    )
    statement = (
        f"{kv.model_label(df, model)} on {kv.where(df)}, contexts {first}..{last} tokens: copying the whole "
        f"cache every token (concat) instead of writing in place into pre-allocated buffers changes the time "
        f"per token by {interval_text(effect, '%')} against preallocated (median of {orig.n} paired trials; "
        f"no impact (published: {_published_figure(cid)}) within ±{tolerance:.0%}: {v}); at {longest} tokens the "
        f"ratio is {at_longest.value:.3f} [{at_longest.low:.3f}, {at_longest.high:.3f}].{power}"
    )
    return [
        Finding(
            id=cid,
            verdict=v,
            section="copy_cost",
            published=published.reference(cid),
            measured=measured,
            statement=statement,
        ),
        Finding(
            id=other,
            verdict=v,
            section="copy_cost",
            published=published.reference(other),
            measured={**measured, "same_as": cid},
            statement=f"The same measurement as {cid} (one comparison, counted once): {statement}",
        ),
    ]


def copy_cost_onset(df, model, longest, tolerance, headline: bool) -> Finding:
    rt = kv.strategy_ratios(df, model, "concat", "preallocated")
    onset = kv.first_costly_length(rt, tolerance)
    judged = onset if onset is not None else longest
    at = _row_interval(rt.set_index("length").loc[judged])
    at_pct, last_pct = Interval.change_pct(at), Interval.change_pct(_row_interval(rt.iloc[-1]))
    label = kv.model_label(df, model)
    expected = expected_copy_ratio(df, model, longest)
    power = (
        f" From the bytes moved a copy per token should cost {100 * (expected[0] - 1):+.2g}% at {longest} tokens "
        f"({expected[1]:.4g} MiB at the copy speed this run measured): "
        + _power_text(_row_interval(rt.iloc[-1]), expected[0])
        if expected
        else ""
    )
    statement = (
        f"{label}: copying the cache every token (concat) costs more than {tolerance:.0%} per token from "
        f"{onset} tokens of context on: {change_text(at_pct)} there, {last_pct.value:+.1f}% at {longest} tokens."
        if onset is not None
        else f"{label}: at no measured length up to {longest} tokens does copying the cache every token "
        f"(concat) cost more than {tolerance:.0%} per token with confidence; at {longest} tokens the "
        f"per-trial ratio to preallocated is {at.value:.3f} [{at.low:.3f}, {at.high:.3f}]."
    ) + power
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


def growth_share(su: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> tuple[Interval, list[float]]:
    """How much of a copy's growth a one-token write shows, step by step between neighbouring buffer sizes
    (write's growth / copy's growth, from the medians at each size); the median step, so that no one size
    decides, with a 95% bootstrap interval (trials resampled within each size and variant). Also the steps."""
    sizes = sorted(su.size_mb.unique())
    groups = {
        (v, x): su[(su.variant == v) & (su.size_mb == x)].value.to_numpy(float)
        for v in ("slice_update", "concatenate")
        for x in sizes
    }

    def share(pick) -> tuple[float, list[float]]:
        med = {k: float(np.median(pick(vals))) for k, vals in groups.items()}
        steps = [
            (med["slice_update", b] - med["slice_update", a])
            / (med["concatenate", b] - med["concatenate", a])
            for a, b in zip(sizes, sizes[1:])
        ]
        return float(np.median(steps)), steps

    value, steps = share(lambda vals: vals)
    rng = np.random.default_rng(seed)
    boots = [share(lambda vals: rng.choice(vals, vals.size))[0] for _ in range(n_boot)]
    low, high = np.quantile(boots, [0.025, 0.975])
    return Interval(value, float(low), float(high)), steps


def slice_update_claim(df) -> Finding:
    """slice_update_creates_new_arrays, over every buffer size: how much of a copy's growth with the buffer
    (concatenate) a one-token write shows (growth_share). A write that copied would move the same bytes as the
    copy (share about 1); one in place moves none (about 0). The claim holds when the whole interval lies above
    COPY_LIKE_SHARE, midway between the two, and does not hold when it lies below."""
    su = df[df.experiment == "slice_update"]
    share, steps = growth_share(su)
    v = verdicts.at_least(share, COPY_LIKE_SHARE)
    med = su.groupby(["variant", "size_mb"]).value.median()
    sizes = sorted(su.size_mb.unique())
    each = "; ".join(
        f"{a:g}->{b:g} MiB: write {med['slice_update', a]:.3g}->{med['slice_update', b]:.3g} ms, copy "
        f"{med['concatenate', a]:.3g}->{med['concatenate', b]:.3g} ms ({x:.2f})"
        for a, b, x in zip(sizes, sizes[1:], steps)
    )
    meaning = {
        verdicts.DOES_NOT_HOLD: "the write's time grows much less than a copy's: MLX writes in place (the old "
        "buffer is donated)",
        verdicts.HOLDS: "the write's time grows with the buffer like a copy's",
    }.get(v, "the data cannot tell a write in place from a copy")
    return Finding(
        id="slice_update_creates_new_arrays",
        verdict=v,
        section="slice_update",
        published=published.reference("slice_update_creates_new_arrays"),
        measured=share.measured(
            "x",
            what="growth of slice_update time with the buffer / growth of a copy's (concatenate), median step",
            sizes_mb=[float(x) for x in sizes],
            steps=steps,
        ),
        statement=f"On {kv.where(df)}, over buffers of {sizes[0]:g} to {sizes[-1]:g} MiB a one-token slice_update "
        f"shows {describe_share(share)} of a buffer copy's growth with the size (median of the steps between "
        f"neighbouring sizes: {each}). {meaning[0].upper() + meaning[1:]}, so 'slice_update creates new "
        f"arrays' (above {COPY_LIKE_SHARE:g}, midway between in place and a copy): {v}.",
    )


def describe_share(share: Interval) -> str:
    return f"{share.value:.2f}x [{share.low:.2f}, {share.high:.2f}]"


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
    return scope.settle(out, df)
