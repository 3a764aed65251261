"""Notebook 01's findings (the KV-cache investigation), built from its stored measurements alone.

`findings(df, ...)` returns one Finding per published claim of the notebook plus the measured-only findings;
every statement is built from the numbers in `df` (see `analysis` for the statistics behind them). The claims
are judged on the stored outcome rows of their block comparisons (core.blocks), each stating n, why it stopped
and, when undecided, the smallest effect its blocks could resolve; the length sweep is descriptive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlx_workbook.core import published, scope, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.kv_cache import analysis as kv
from mlx_workbook.investigations.kv_cache.measure import (
    COPY_LONG,
    COPY_LONG_VECTOR_SDPA,
    COPY_ORIGINAL,
    FLAT_ORIGINAL,
    SETTLED,
    TIME_METRIC,
)
from mlx_workbook.report.text import blocks_text, change_text, span

# How fast a one-token write's time grows with the buffer, as a share of what a full copy of the buffer costs at
# the measured bandwidth: a write in place grows not at all (0), one that copied the buffer about 1; the claim
# is judged against the midpoint.
COPY_LIKE_SHARE = 0.5
MIB = 2**20


def _row_interval(row) -> Interval:
    """A row of kv.strategy_ratios (ratio, low, high) or a block outcome (value, low, high) as an Interval."""
    return Interval(float(getattr(row, "ratio", row["value"])), float(row.low), float(row.high))


def _reference(strategies) -> str:
    return "preallocated" if "preallocated" in strategies else strategies[0]


def _published_figure(claim_id: str) -> str:
    """A claim's published figure as the write-up gives it: '20 ms', '18-19 ms', '0%'."""
    low, high = published.figure_range(claim_id)
    unit = published.claim(claim_id).get("unit") or ""
    return f"{span(low, high)}{'' if unit in ('', '%') else ' '}{unit}"


def _block_text(row) -> str:
    """A block comparison's outcome in words: '+1.2% [-2.1, +4.5] (n=12 paired blocks, ..., stopped: ...)'."""
    return f"{change_text(_row_interval(row))} ({blocks_text(row)})"


def _block_measured(row, **extra) -> dict:
    """What a Finding stores of a block comparison: the % change with its interval, n and why it stopped."""
    return _row_interval(row).measured(
        "%",
        n_blocks=int(row.n_blocks),
        method=row["method"],
        stop_reason=row.stop_reason,
        decided=bool(row.decided),
        resolvable_pct=float(row.resolvable_pct),
        claim_tokens=int(row.claim_tokens),
        **extra,
    )


def _too_few_blocks(claim_id: str, experiment: str, model: str, **kwargs) -> Finding:
    """A claim whose comparison never reached two blocks (its budget ran out first): no interval, no verdict."""
    return Finding(
        id=claim_id,
        verdict=verdicts.INCONCLUSIVE,
        measured={"value": None, "unit": "%", "n_blocks": 0},
        statement=f"{model}: the comparison {experiment} did not reach two blocks within its time budget, so it "
        "has no interval; raise budget_s.",
        **kwargs,
    )


def flat_in_original_range(df, model, original_lengths, tolerance) -> Finding:
    """per_token_time_flat, from the block comparison of the original's longest context against its shortest
    (measure.claim_comparisons says why the two ends decide flatness)."""
    cid, first, last = "per_token_time_flat", min(original_lengths), max(original_lengths)
    row = kv.block_outcome(df, FLAT_ORIGINAL, model)
    where = dict(section="per_token", headline=True, published=published.reference(cid))
    if row is None:
        return _too_few_blocks(cid, FLAT_ORIGINAL, model, **where)
    verdict = verdicts.no_effect(_row_interval(row), 100 * tolerance)
    ms = kv.block_ms(df, FLAT_ORIGINAL, model)
    trials = rows(df, FLAT_ORIGINAL, model=model)
    strategy = trials.strategy.iloc[0]
    fixed = trials.get("fixed_context_tokens", pd.Series(dtype=float)).dropna()
    contexts = (  # rows stored before fixed-context trials decoded from each end onwards
        f"at {last} against at {first} tokens of context (each {int(row.claim_tokens)}-token trial trimmed back "
        f"to its context every {int(fixed.iloc[0])} tokens, so every token sees its end of the range"
        if len(fixed)
        else f"from {last} against from {first} tokens of context ({int(row.claim_tokens)}-token trials"
    )
    pub_tokens = published.table(*kv.PUBLISHED_TABLE).tokens
    pub = f"~{_published_figure(cid)}/token, flat over {pub_tokens.min()}..{pub_tokens.max()} tokens"
    return Finding(
        id=cid,
        verdict=verdict,
        measured=_block_measured(
            row, strategy=strategy, lengths=[first, last], ms_first=ms[row.reference], ms_last=ms[row.variant]
        ),
        statement=f"{kv.model_label(df, model)} on {kv.where(df)}, {strategy} cache: the time per token "
        f"decoding {contexts}; per-token medians {ms[row.reference]:.3g} -> {ms[row.variant]:.3g} ms) changes "
        f"{_block_text(row)}. Flat within ±{tolerance:.0%}: {verdict} (published: {pub}).",
        **where,
    )


def full_range(df, model, strategies, lengths) -> Finding:
    """The sweep from the shortest to the longest context, every strategy: descriptive (short trials, a few
    rounds), no verdict."""
    shortest, longest, ref = min(lengths), max(lengths), _reference(strategies)
    change = {s: kv.relative_change(df, model, s, shortest, longest) for s in strategies}
    sl = kv.slopes(df[df.model == model]).set_index("strategy")
    return Finding(
        id=f"per_token_full_range_{kv.slug(model)}",
        section="per_token",
        measured=change[ref].measured("%", strategy=ref, lengths=[shortest, longest]),
        statement=f"{kv.model_label(df, model)}: from {shortest} to {longest} tokens of context the time per token "
        f"(the sweep's short trials, descriptive) changes "
        + "; ".join(
            f"{s} {change_text(change[s])}, slope {sl.loc[s, 'ms_per_1k_tokens']:.3g} "
            f"[{sl.loc[s, 'low']:.3g}, {sl.loc[s, 'high']:.3g}] ms per 1000 tokens"
            for s in strategies
        )
        + ".",
    )


def stored_bandwidth(df) -> tuple[float, str] | None:
    """The bandwidth a copy's cost is computed with (measure.record_bandwidth: 00_machine's or a probe's), in GB/s,
    and where it came from; None when the run stored none."""
    bw = rows(df, "bandwidth", "ceiling_gbs")
    return None if bw.empty else (float(bw.value.iloc[0]), str(bw.source.iloc[0]))


def copy_cost_experiment(df, model) -> str:
    """The long-context comparison the copy's cost is judged on: the one with cuDNN SDPA off where the run has it
    (MLX CUDA, kv_cache.fixed_kernel: both caches on one attention kernel), else the run's own."""
    return (
        COPY_LONG_VECTOR_SDPA if kv.block_outcome(df, COPY_LONG_VECTOR_SDPA, model) is not None else COPY_LONG
    )


def expected_copy(df, model) -> dict | None:
    """What copying the whole concat cache once per token should cost in the long-context comparison, from the
    bytes it moves: each token reads the cache and writes it one token longer (2 x its bytes; a trial's cache
    holds on average length + claim_tokens / 2 tokens), at the stored bandwidth (00_machine's or a probe's).
    Returns the bytes per token, the added ms and the expected % change against preallocated; None without a
    stored bandwidth."""
    bw = stored_bandwidth(df)
    experiment = copy_cost_experiment(df, model)
    sel = rows(df, experiment, TIME_METRIC, model=model)
    if bw is None or sel.empty:
        return None
    first = sel.iloc[0]
    moved = 2 * first.kv_bytes_per_token * (first.length + first.claim_tokens / 2)
    gbs, source = bw
    added_ms = 1e3 * moved / (gbs * 1e9)
    reference_ms = float(kv.block_ms(df, experiment, model)["preallocated"])
    return {
        "bytes_per_token": float(moved),
        "gbs": gbs,
        "source": source,
        "added_ms": added_ms,
        "pct": 100 * added_ms / reference_ms,
        "length": int(first.length),
    }


def _power_text(measured: Interval, expected_pct: float) -> str:
    """What a % change interval can say against no cost and against the cost a copy per token should have."""
    has_none, has_copy = measured.low <= 0 <= measured.high, measured.low <= expected_pct <= measured.high
    if has_none and has_copy:
        return "the interval holds both no cost and a full copy's cost, so it cannot tell them apart."
    if has_copy:
        return "the interval excludes no cost and holds a full copy's cost."
    if has_none:
        return "the interval excludes a full copy's cost and holds no cost."
    return "the interval holds neither no cost nor a full copy's cost."


def _expected_text(df, model) -> tuple[str, dict]:
    """The long-context comparison against the cost expected from the bytes moved, in words and as fields."""
    experiment = copy_cost_experiment(df, model)
    row, e = kv.block_outcome(df, experiment, model), expected_copy(df, model)
    if row is None or e is None:
        return "", {}
    kernel = " with cuDNN SDPA off" if experiment == COPY_LONG_VECTOR_SDPA else ""
    text = (
        f" At {e['length']} tokens of context{kernel} concat measures {_block_text(row)}; from the bytes it moves "
        f"a copy per token should cost {e['pct']:+.2g}% ({e['bytes_per_token'] / 2**20:.4g} MiB read and "
        f"written per token, {e['added_ms']:.3g} ms at {e['gbs']:.0f} GB/s from {e['source']}): "
        + _power_text(_row_interval(row), e["pct"])
    )
    return text, {
        "expected_pct_at_longest": e["pct"],
        "longest": e["length"],
        "change_pct_at_longest": row.value,
    }


def copy_claims(df, model, original_lengths, tolerance) -> list[Finding]:
    """kv_copy_no_impact and kv_preallocated_buffers_no_impact: concat against preallocated in paired blocks from
    the original's shortest context. Both claims are this one measurement, so it gets one verdict: the first
    claim holds it, the second refers to it (`same_as`) and the findings page counts it once. Beside it, the
    long-context comparison and the cost a copy per token should have there (issue 12: at long context the
    verdict has to be read against what copying the bytes must cost)."""
    cid, other = "kv_copy_no_impact", "kv_preallocated_buffers_no_impact"
    row = kv.block_outcome(df, COPY_ORIGINAL, model)
    section = dict(section="copy_cost")
    if row is None:
        return [
            _too_few_blocks(c, COPY_ORIGINAL, model, published=published.reference(c), **section)
            for c in (cid, other)
        ]
    v = verdicts.effect_matches(_row_interval(row), *published.figure_range(cid), tolerance=100 * tolerance)
    power, extra = _expected_text(df, model)
    ms = kv.block_ms(df, COPY_ORIGINAL, model)
    start = int(rows(df, COPY_ORIGINAL, model=model).length.iloc[0])
    measured = _block_measured(row, length=start, **extra)
    statement = (
        f"{kv.model_label(df, model)} on {kv.where(df)}: copying the whole cache every token (concat) instead of "
        f"writing in place into pre-allocated buffers, decoding {int(row.claim_tokens)} tokens from {start} "
        f"tokens of context ({ms['preallocated']:.3g} vs {ms['concat']:.3g} ms per token), changes the time per "
        f"token by {_block_text(row)}; no impact (published: {_published_figure(cid)}) within "
        f"±{tolerance:.0%}: {v}.{power}"
    )
    return [
        Finding(
            id=cid,
            verdict=v,
            published=published.reference(cid),
            measured=measured,
            statement=statement,
            **section,
        ),
        Finding(
            id=other,
            verdict=v,
            published=published.reference(other),
            measured={**measured, "same_as": cid},
            statement=f"The same measurement as {cid} (one comparison, counted once): {statement}",
            **section,
        ),
    ]


def _default_kernels_text(df, model) -> tuple[str, dict]:
    """The run's own long-context comparison beside the fixed-kernel one it was judged on, in words and as fields
    (empty when the copy's cost was judged on the run's own)."""
    row = kv.block_outcome(df, COPY_LONG, model)
    if copy_cost_experiment(df, model) == COPY_LONG or row is None:
        return "", {}
    text = (
        f" With MLX CUDA's default kernel choice (cuDNN SDPA on), the same comparison in the notebook's process "
        f"measured {_block_text(row)}. The two differ in MLX's kernel switch alone (and in the process they ran "
        f"in), so a gap between them is the attention kernel's, not the copy's."
    )
    fields = {"change_pct_default_kernels": float(row.value), "default_kernels_low": float(row.low)}
    return text, fields | {"default_kernels_high": float(row.high), "judged_on": COPY_LONG_VECTOR_SDPA}


def copy_cost(df, model, tolerance, headline: bool) -> Finding | None:
    """Per model: concat against preallocated at the longest context in paired blocks, with the cost expected
    from the bytes moved, and where the sweep's short trials (descriptive) first show it beyond the tolerance.
    On MLX CUDA the cost is judged on the comparison with cuDNN SDPA off (copy_cost_experiment), and the run's
    own comparison, with the default kernels, stands beside it."""
    row = kv.block_outcome(df, copy_cost_experiment(df, model), model)
    if row is None:
        return None
    rt = kv.strategy_ratios(df, model, "concat", "preallocated")
    onset = kv.first_costly_length(rt, tolerance)
    v = verdicts.no_effect(_row_interval(row), 100 * tolerance)
    power, extra = _expected_text(df, model)
    default, default_fields = _default_kernels_text(df, model)
    sweep = (
        f"the sweep's short trials first show more than {tolerance:.0%} from {onset} tokens on"
        if onset is not None
        else f"the sweep's short trials show more than {tolerance:.0%} at no length with confidence"
    )
    return Finding(
        id=f"copy_cost_{kv.slug(model)}",
        section="copy_cost",
        headline=headline,
        measured=_block_measured(row, onset=onset, no_cost_within_tolerance=v, **extra, **default_fields),
        statement=f"{kv.model_label(df, model)}: copying the cache every token (concat) against writing in place "
        f"(preallocated); no cost within ±{tolerance:.0%} at the longest context: {v}.{power}{default} "
        f"Descriptively (the sweep runs with the default kernels), {sweep}.",
    )


def _size_groups(su: pd.DataFrame, variants) -> tuple[list[float], dict]:
    """The probe's buffer sizes (MiB) and its trials' times per (variant, size)."""
    sizes = sorted(su.size_mb.unique())
    return sizes, {
        (v, x): su[(su.variant == v) & (su.size_mb == x)].value.to_numpy(float)
        for v in variants
        for x in sizes
    }


def _bootstrap(groups: dict, stat, n_boot: int, seed: int) -> Interval:
    """stat of the groups' medians, with a 95% percentile bootstrap interval (trials resampled within each group,
    so a size's spread carries into the statistic)."""
    rng = np.random.default_rng(seed)
    boots = [
        stat({k: float(np.median(rng.choice(v, v.size))) for k, v in groups.items()}) for _ in range(n_boot)
    ]
    low, high = np.quantile(boots, [0.025, 0.975])
    return Interval(stat({k: float(np.median(v)) for k, v in groups.items()}), float(low), float(high))


def ideal_copy_ms_per_mib(gbs: float) -> float:
    """What copying a buffer costs per MiB of it at `gbs`: every byte read and written once (2 bytes moved)."""
    return 1e3 * 2 * MIB / (gbs * 1e9)


def copy_share(
    su: pd.DataFrame, gbs: float, variant: str = "slice_update", n_boot: int = 2000, seed: int = 0
) -> tuple[Interval, float]:
    """How much of a full copy of the buffer one write of `variant` costs: the growth of its time with the buffer
    (least-squares slope of the sizes' medians, ms per MiB: the largest sizes dominate and a fixed per-call
    overhead cancels) over ideal_copy_ms_per_mib(gbs). About 0: in place; about 1: a full copy at `gbs`. With a
    95% bootstrap interval (trials resampled within each size) and the slope itself."""
    sizes, groups = _size_groups(su, [variant])
    x = np.asarray(sizes) - np.mean(sizes)

    def slope(med) -> float:
        return float(x @ np.array([med[variant, s] for s in sizes]) / (x @ x))

    share = _bootstrap(groups, lambda med: slope(med) / ideal_copy_ms_per_mib(gbs), n_boot, seed)
    return share, share.value * ideal_copy_ms_per_mib(gbs)


def growth_share(
    su: pd.DataFrame, variant: str = "slice_update", n_boot: int = 2000, seed: int = 0
) -> tuple[Interval, list[float]]:
    """The fallback when no bandwidth is stored: how much of concatenate's growth a one-token write shows, step
    by step between neighbouring buffer sizes (write's growth / copy's growth, from the medians at each size);
    the median step, with a 95% bootstrap interval (trials resampled within each size and variant). Also the
    steps. Read with care: a concatenate that moves bytes below the device's bandwidth makes a real copy's
    write look like a fraction of it."""
    sizes, groups = _size_groups(su, (variant, "concatenate"))

    def steps(med) -> list[float]:
        return [
            (med[variant, b] - med[variant, a]) / (med["concatenate", b] - med["concatenate", a])
            for a, b in zip(sizes, sizes[1:])
        ]

    share = _bootstrap(groups, lambda med: float(np.median(steps(med))), n_boot, seed)
    return share, steps({k: float(np.median(v)) for k, v in groups.items()})


def _steps_text(su: pd.DataFrame, variant: str) -> str:
    """The medians at each step between neighbouring sizes: '64->256 MiB: write 0.09->0.16 ms, copy ...'."""
    med = su.groupby(["variant", "size_mb"]).value.median()
    sizes = sorted(su.size_mb.unique())
    return "; ".join(
        f"{a:g}->{b:g} MiB: write {med[variant, a]:.3g}->{med[variant, b]:.3g} ms, copy "
        f"{med['concatenate', a]:.3g}->{med['concatenate', b]:.3g} ms"
        for a, b in zip(sizes, sizes[1:])
    )


def _against_bandwidth(su: pd.DataFrame, variant: str, gbs: float, source: str) -> tuple[Interval, dict, str]:
    """The write's share of a full copy at the stored bandwidth, with concatenate's beside it (descriptive)."""
    share, ms_per_mib = copy_share(su, gbs, variant)
    concat, concat_ms_per_mib = copy_share(su, gbs, "concatenate")
    ideal = ideal_copy_ms_per_mib(gbs)
    measured = dict(
        what="growth of slice_update time with the buffer (least-squares slope over the sizes' medians) / a full "
        "copy's cost per MiB at the measured bandwidth (2 bytes read and written per buffer byte)",
        reference="ideal copy at the measured bandwidth",
        gbs=gbs,
        bandwidth_source=source,
        ms_per_mib=ms_per_mib,
        ideal_ms_per_mib=ideal,
        concat_share=concat.measured("x"),
    )
    text = (
        f"grows {1e3 * ms_per_mib:.3g} µs per MiB of buffer (least-squares slope over the sizes' medians): "
        f"{describe_share(share)} of a full copy of the buffer ({1e3 * ideal:.3g} µs per MiB, every byte read "
        f"and written once at {gbs:.4g} GB/s from {source}; a write in place would show about 0). For comparison, "
        f"concatenate (which copies) grows {1e3 * concat_ms_per_mib:.3g} µs per MiB, {describe_share(concat)} "
        f"of a full copy (medians per step: {_steps_text(su, variant)})"
    )
    return share, measured, text


def _against_concatenate(su: pd.DataFrame, variant: str) -> tuple[Interval, dict, str]:
    """The fallback without a stored bandwidth: the write's growth as a share of concatenate's."""
    share, steps = growth_share(su, variant)
    measured = dict(
        what="growth of slice_update time with the buffer / growth of a copy's (concatenate), median step",
        reference="concatenate (no bandwidth stored)",
        steps=steps,
    )
    text = (
        f"shows {describe_share(share)} of a buffer copy's (concatenate's) growth with the size (median of the "
        f"steps between neighbouring sizes: {_steps_text(su, variant)}; per step "
        f"{', '.join(f'{x:.2f}' for x in steps)}); this run stored no bandwidth, so the write is judged against "
        "concatenate's growth, which understates a copy wherever concatenate moves bytes below the device's "
        "bandwidth"
    )
    return share, measured, text


def slice_update_claim(df) -> Finding:
    """slice_update_creates_new_arrays, over every buffer size: how much of a full copy of the buffer a one-token
    write costs, from the growth of its time with the buffer against the bytes a copy must move at the stored
    bandwidth (copy_share). A write that copied moves every byte of the buffer (share about 1); one in place
    moves none (about 0). The claim is about slice_update itself, so it is judged on the settled writes (nothing
    of the previous write holds the buffer; runs stored before them: the writes issued at once): it holds when
    the whole interval lies above COPY_LIKE_SHARE, midway between the two, and does not hold when it lies below.
    The writes issued as soon as the previous one's eval returned, as a decode loop does, are stated beside it:
    on MLX CUDA they can find the buffer still held and copy. Without a stored bandwidth the write is judged
    against concatenate's growth instead (growth_share), and the statement says so."""
    su = df[df.experiment == "slice_update"]
    sizes = sorted(su.size_mb.unique())
    judged = SETTLED if SETTLED in set(su.variant) else "slice_update"
    bw = stored_bandwidth(df)

    def judge(variant: str):
        return _against_bandwidth(su, variant, *bw) if bw else _against_concatenate(su, variant)

    share, measured, text = judge(judged)
    v = verdicts.at_least(share, COPY_LIKE_SHARE)
    meaning = {
        verdicts.DOES_NOT_HOLD: "the write's time grows far less than a copy of the buffer would: MLX writes in "
        "place (the old buffer is donated)",
        verdicts.HOLDS: "the write's time grows with the buffer like a copy of it",
    }.get(v, "the data cannot tell a write in place from a copy")
    reference = "a full copy" if bw else "concatenate's growth"
    written = (
        "each write followed by mx.synchronize(), so nothing else holds the buffer, "
        if judged == SETTLED
        else ""
    )
    statement = (
        f"On {kv.where(df)}, over buffers of {sizes[0]:g} to {sizes[-1]:g} MiB a one-token slice_update "
        f"({written}n={su[su.variant == judged].groupby('size_mb').size().min()} trials per size) {text}. "
        f"{meaning[0].upper() + meaning[1:]}, so 'slice_update creates new arrays' (above {COPY_LIKE_SHARE:g} of "
        f"{reference}, midway between in place and a copy): {v}."
    )
    if judged == SETTLED:
        at_once, _, _ = judge("slice_update")
        measured["issued_at_once_share"] = at_once.measured("x")
        copies = verdicts.at_least(at_once, COPY_LIKE_SHARE) == verdicts.HOLDS and v != verdicts.HOLDS
        statement += (
            f" Issued as soon as the previous write's eval returned (as a decode loop writes its cache), the write "
            f"shows {describe_share(at_once)} of {reference}"
            + (
                ": such writes copied, since the previous write still held the buffer when the next one ran, "
                "so MLX could not donate it."
                if copies
                else "."
            )
        )
    return Finding(
        id="slice_update_creates_new_arrays",
        verdict=v,
        section="slice_update",
        published=published.reference("slice_update_creates_new_arrays"),
        measured=share.measured("x", sizes_mb=[float(x) for x in sizes], judged=judged, **measured),
        statement=statement,
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
    out = [flat_in_original_range(df, claim_model, original_lengths, flat_tolerance)]
    out += [full_range(df, name, strategies, lengths) for name in presets]
    if {"concat", "preallocated"} <= set(strategies):
        out += copy_claims(df, claim_model, original_lengths, copy_tolerance)
        out += [copy_cost(df, name, copy_tolerance, headline=name == claim_model) for name in presets]
    out.append(slice_update_claim(df))
    out += [cache_bytes(df, name, strategies, longest, step, window) for name in presets]
    out += [time_split(df, claim_model, strategies)]
    out.append(identical_tokens(df))
    return scope.settle([f for f in out if f is not None], df)
