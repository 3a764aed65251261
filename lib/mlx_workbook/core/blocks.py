"""Paired, interleaved blocks with adaptive stopping: how two or more variants are compared on a noisy host.

A comparison is many short blocks; each block runs every variant once, back to back, in a fresh random order
(Google Benchmark's random interleaving, asv's A B C A' B' C'), so a drift of the host's speed hits all variants
of a block alike and cancels in the per-block log-ratio log(variant / reference). The effect is the geometric
mean ratio with a t interval on the log-ratios (core.intervals; its coverage is checked by simulation in
tests/test_intervals.py).

Blocks are added until every claim's interval decides (wholly inside or wholly outside its Band), the time budget is
spent, or max_blocks is reached. A variant whose interval decides at a look leaves the comparison there (its own
sequential test has stopped, so its estimate is the one of that look), and the blocks after it hold only the
variants still undecided: shorter blocks, more of them in the budget, and the two variants of a pair adjacent in
every round (on the ea85dcf and 46cbb15 H200 twins, a three-variant block's log-ratio varied 0.54-0.71% where a two-
variant block's varied 0.37%, and the third variant, decided at the first look, took a third of every block). The
interval is looked at only at a few block counts (`looks`: min_blocks, then x1.5 each time) and the error rate is
split Haybittle-Peto style (Bonferroni, so stopping at the first decisive look does not inflate it): the interim
looks share a fifth of it, each at a strict level, and the final look (the budget spent or max_blocks reached, where
most comparisons on a noisy host end) keeps four fifths, so its interval is nearly the plain 95% one (before, each
of up to 7 looks got a seventh of the error rate; at 8 blocks the final interval is now about a third narrower). A
comparison still undecided when its budget is spent may go on for an extension (`Extension`, shared by a notebook's
comparisons) if its blocks project a decision within it (`promising`, a promising-zone rule); one whose effect sits
on its band's edge stops on its budget, and its row says about how many blocks a decision would take. A block's
variants run whole, one after the other (`back_to_back`), or, for decode loops on a host that changes speed within a
second, advanced in alternating chunks of tokens (`interleaved`); there a block's log-ratio is the median of its
rounds' paired log-ratios (`block_log_ratio`), and each round's chunk values are stored too (metric
`round_metric(metric)`), so `paired_log_ratios` recomputes it from a run's rows. Every row goes through run.record:
values with block, position and variant, host state per block (hoststate), and one "change_pct" row per variant
saying why it stopped, whether it was extended and, if undecided, the smallest effect the data could have resolved
(the interval's half-width) and the blocks a decision would take (`projected_blocks`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mlx_workbook.core import hoststate, intervals, measure

DECIDED, BUDGET, MAX_BLOCKS = "decided", "budget", "max_blocks"
CHANGE_METRIC = "change_pct"


def round_metric(metric: str) -> str:
    """The metric of an interleaved block's per-round rows: one variant's chunk in one round, in `metric`'s unit."""
    return f"round_{metric}"


@dataclass(frozen=True)
class Band:
    """The % change (variant over reference) a claim is judged against, already widened by its tolerance;
    one side may be infinite ("at least +5%": Band(5, inf); "no effect": Band(-tol, +tol)).

    `no_effect_at`: for an effect claim (verdicts.effect_matches with no_effect_at), where there is no effect (0 for a
    % change). Outside the band its verdict also says which side of that the effect lies (direction holds, size
    differs; or does not hold), so an interval outside the band that still straddles it has not decided the
    verdict: the 82cdd8e H200 twins stopped the pipelining comparison at +8.3% [+2.6, +14.3] and +4.6% [-0.4,
    +9.9], both below a 16.5-27.5% band, and called them "size differs" and "does not hold"."""

    low: float
    high: float
    no_effect_at: float | None = None

    @classmethod
    def widened(cls, low: float, high: float, tolerance: float, no_effect_at: float | None = None) -> Band:
        lo, hi = sorted((low, high))
        return cls(lo - tolerance, hi + tolerance, no_effect_at)

    @classmethod
    def no_effect(cls, tolerance: float) -> Band:
        return cls(-abs(tolerance), abs(tolerance))

    @classmethod
    def at_least(cls, threshold: float) -> Band:
        return cls(threshold, math.inf)

    def decides(self, low: float, high: float) -> bool:
        """Does an interval [low, high] (in %) lie wholly inside the band, or wholly outside it and (for an effect
        claim) wholly on one side of no_effect_at?"""
        inside = self.low <= low and high <= self.high
        outside = high < self.low or low > self.high
        if outside and self.no_effect_at is not None and low <= self.no_effect_at <= high:
            return False
        return inside or outside

    def edges(self) -> list[float]:
        """The values an interval must clear to decide: the band's finite edges, and no effect where it lies
        outside the band (inside it, the band's edges decide alone)."""
        outside = self.no_effect_at is not None and not self.low <= self.no_effect_at <= self.high
        return [x for x in (self.low, self.high) if math.isfinite(x)] + (
            [self.no_effect_at] if outside else []
        )


@dataclass
class Extension:
    """Time an undecided comparison may go on past its budget where its blocks project a decision (`promising`):
    up to `per_comparison_s` each, and `total_s` over all the comparisons that share this object (a notebook's),
    so that however many are promising, the run grows by at most total_s."""

    per_comparison_s: float
    total_s: float

    def __post_init__(self) -> None:
        if self.per_comparison_s < 0 or self.total_s < 0:
            raise ValueError(
                f"extension seconds must be >= 0, got {self.per_comparison_s} and {self.total_s}"
            )

    def available_s(self) -> float:
        return min(self.per_comparison_s, self.total_s)

    def spend(self, seconds: float) -> None:
        self.total_s = max(0.0, self.total_s - seconds)


def looks(min_blocks: int, max_blocks: int, growth: float = 1.5) -> list[int]:
    """Block counts at which the interval is looked at: min_blocks, x growth each time, max_blocks last."""
    if min_blocks < 3 or max_blocks < min_blocks:
        raise ValueError(f"need 3 <= min_blocks <= max_blocks, got {min_blocks} and {max_blocks}")
    out, n = [], min_blocks
    while n < max_blocks:
        out.append(n)
        n = max(n + 1, int(math.ceil(n * growth)))
    return out + [max_blocks]


INTERIM_SHARE = 0.2  # of the error rate, spent on the interim looks together; the final look keeps the rest


def interim_confidence(n_interim: int, confidence: float = intervals.CONFIDENCE) -> float:
    """Confidence of each of `n_interim` interim looks: together they spend INTERIM_SHARE of the error rate."""
    return 1 - INTERIM_SHARE * (1 - confidence) / max(1, n_interim)


def final_confidence(confidence: float = intervals.CONFIDENCE) -> float:
    """Confidence of the final look (budget spent or max_blocks reached): the error rate the interim looks left."""
    return 1 - (1 - INTERIM_SHARE) * (1 - confidence)


def change_pct(log_ratios, confidence: float) -> intervals.Estimate:
    """Per-block log-ratios -> % change with its t interval (made on the log scale)."""
    r = intervals.log_ratio_interval(log_ratios, confidence)
    return intervals.Estimate(
        100 * (r.value - 1), 100 * (r.low - 1), 100 * (r.high - 1), r.n, r.method, confidence
    )


def projected_blocks(e: intervals.Estimate, band: Band) -> float:
    """Blocks the interval `e` (a change_pct estimate) would need to decide `band` if the effect and the
    block-to-block spread stayed as they are: n x (half-width / distance from the estimate to the nearest of
    `band.edges()`)^2, on the log scale (inf when the estimate sits on an edge; rough, as it ignores the t
    quantile's shrinking with n)."""
    centre = math.log1p(e.value / 100)
    half = (math.log1p(e.high / 100) - math.log1p(e.low / 100)) / 2
    edges = [math.log1p(x / 100) for x in band.edges()]
    distance = min((abs(centre - x) for x in edges), default=math.inf)
    return e.n * (half / distance) ** 2 if distance > 0 else math.inf


def reachable_blocks(blocks_run: int, elapsed_s: float, trials: int, running: int, more_s: float) -> int:
    """Blocks a comparison could have run after `more_s` more seconds: those it ran, plus more_s over the time a
    block of the `running` variants now takes, at the pace of the `trials` (variant runs) its `blocks_run` blocks
    held in `elapsed_s`. Per trial, not per block: once a decided variant has left, a block is shorter than the
    ones that made the pace (the 4ab0381 H200 twins' sampler comparison, 6 blocks of three variants and 3 of two,
    projected its decision at 31.6 blocks and was not extended, at 31 reachable by the blocks' mean pace and 39 by
    the pairs' own)."""
    per_block_s = running * elapsed_s / max(1, trials)
    return blocks_run + (int(more_s / per_block_s) if per_block_s > 0 else 0)


def promising(log_ratios, band: Band | None, confidence: float, reachable: int) -> bool:
    """Should an undecided comparison whose budget is spent go on (the extension)? Only if its blocks project a
    decision within the `reachable` blocks the extension holds (a promising-zone rule: an effect sitting on its
    band's edge would need hundreds of blocks, so it stops on its budget and says what it could resolve)."""
    if band is None or len(log_ratios) < 2:
        return False
    e = change_pct(log_ratios, final_confidence(confidence))
    return not band.decides(e.low, e.high) and projected_blocks(e, band) <= reachable


def sequential(
    log_ratios: np.ndarray,
    band: Band | None,
    schedule: list[int],
    confidence: float,
    *,
    stop_at: int | None = None,
    extend_to: int | None = None,
) -> tuple[int, str, intervals.Estimate]:
    """The stopping rule on given per-block log-ratios (as `compare` applies it; the simulation tests replay it):
    (blocks used, why it stopped, the estimate at that point). `stop_at`: the blocks the budget allowed;
    `extend_to`: the blocks the extension allows, taken only where `promising` at `stop_at`."""
    interim = interim_confidence(len(schedule) - 1, confidence)
    last = min(len(log_ratios), schedule[-1])
    available = last if stop_at is None else min(stop_at, last)

    def first_decisive(start: int, stop: int):  # the interim looks at start <= n < stop
        for n in schedule[:-1]:
            if start <= n < stop:
                e = change_pct(log_ratios[:n], interim)
                if band is not None and band.decides(e.low, e.high):
                    return n, DECIDED, e
        return None

    found = first_decisive(0, available)
    if found:
        return found
    if (
        extend_to is not None
        and available < last
        and promising(log_ratios[:available], band, confidence, extend_to)
    ):
        start, available = available, min(extend_to, last)
        found = first_decisive(start, available)
        if found:
            return found
    return (
        available,
        (MAX_BLOCKS if available >= schedule[-1] else BUDGET),
        change_pct(log_ratios[:available], final_confidence(confidence)),
    )


class Outcome(NamedTuple):
    """How one variant of a comparison stopped: its estimate, after how many blocks, why, and whether the
    comparison had been extended by then."""

    estimate: intervals.Estimate
    blocks: int
    reason: str
    extended: bool


@dataclass
class Comparison:
    """What `compare` found: per-variant estimates against the reference, and why it stopped."""

    reference: str
    blocks: int
    stop_reason: str
    estimates: dict[str, intervals.Estimate] = field(
        default_factory=dict
    )  # % change of each variant vs reference
    # block x variant table of the measured values (NaN after a variant was decided and left)
    values: pd.DataFrame = field(default_factory=pd.DataFrame)

    def resolvable_pct(self, variant: str) -> float:
        """The smallest effect (in %) these blocks could have resolved: the interval's half-width."""
        return self.estimates[variant].half_width


class Rows:
    """An in-memory stand-in for results.Run with the one method `compare` calls (record), for a script or a
    test that compares variants outside a notebook run; `measurements` gives the rows as a table."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def record(
        self, experiment: str, metric: str, value: float, unit: str, *, trial: int = 0, **fields
    ) -> None:
        self.rows.append(
            dict(experiment=experiment, metric=metric, value=value, unit=unit, trial=trial, **fields)
        )

    @property
    def measurements(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    """A workload as a variant: its value is the seconds one call takes, forced to completion (MLX is lazy)."""

    def run_once() -> float:
        measure.force(None)
        tic = time.perf_counter()
        measure.force(fn())
        return time.perf_counter() - tic

    return run_once


BlockFn = Callable[[dict[str, Any], random.Random], dict[str, float]]


def back_to_back(variants: dict[str, Callable[[], float]], rng: random.Random) -> dict[str, float]:
    """One block: every variant called once, back to back in a fresh random order; values in running order."""
    order = list(variants)
    rng.shuffle(order)
    return {name: float(variants[name]()) for name in order}


def interleaved(
    variants: dict[str, Callable[[], Iterator]],
    rng: random.Random,
    *,
    tokens: int,
    chunk: int,
    window: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """One block of decode trials advanced alternately: each variant's generation (a fresh iterator from its
    factory, its state kept across chunks) yields `tokens` tokens, pulled `chunk` at a time, the variants'
    chunks in a fresh random order per round. A change of the host's speed then hits every variant within a
    round (a fraction of a second) instead of one whole trial. Each token is timed on the host, from the
    previous yield to its own; the first interval of every chunk is dropped: it holds the switch from the
    other variant (and the prefill, in the first chunk). Under pipelining the second interval may still wait
    on the other variant's one queued step; the chunk's median does not move for one interval.

    A chunk's time per token is the median over its kept intervals, in windows of `window` intervals (a loop
    that evaluates every N tokens needs window N: each window holds one evaluation; a chunk is rounded up to
    whole windows, at least two, as its first is cut by the dropped interval). The variant's value is the
    geometric mean over its chunks (ms per token; one median pooled over all chunks would jump between the
    host's two speeds when about half the tokens ran in each). The block's log-ratio (`block_log_ratio`) is the
    median of the rounds' paired log-ratios, not their mean: on the H200 host about a tenth of the rounds
    straddle a change of the host's speed, their two chunks 10-45% apart, and the mean moved with them (a
    targeted pass, bench/round_noise.py: a block's log-ratio varied 2.0-3.0% as the mean, 0.7-1.0% as the
    median). chunk 0 or >= tokens: one chunk, whole trials back to back (the trial's median ms per token, as
    decode.Generation.median_ms_per_token). Values in the first round's order (a `Rounds`, which also holds
    every round's chunk times)."""
    if tokens < 2 or chunk == 1 or chunk < 0 or window < 1:
        raise ValueError(
            f"need tokens >= 2, chunk 0 (whole trials) or >= 2 and window >= 1, got {tokens}, {chunk}, {window}"
        )
    chunk = max(2 * window, -(-chunk // window) * window) if 0 < chunk < tokens else tokens
    first_order, chunks = interleaved_intervals(variants, rng, tokens=tokens, chunk=chunk, clock=clock)
    rounds = {name: [chunk_ms(gaps[1:], window) for gaps in per_chunk] for name, per_chunk in chunks.items()}
    if not all(np.isfinite(ms).any() for ms in rounds.values()):
        raise ValueError(
            f"no whole window of {window} token intervals in a chunk of {chunk} ({tokens} tokens)"
        )
    values = {name: float(np.exp(np.nanmean(np.log(rounds[name])))) for name in first_order}
    return Rounds(values, rounds=rounds)


class Rounds(dict):
    """An interleaved block's values (variant -> ms per token, or a caller's conversion of it such as tokens/s)
    that also holds each round's chunk value per variant, in the same unit (`rounds`, NaN where a chunk held no
    whole window), for `block_log_ratio` and the stored rows."""

    def __init__(self, values: dict[str, float], rounds: dict[str, list[float]]):
        super().__init__(values)
        self.rounds = rounds


def chunk_ms(kept: list[float], window: int = 1) -> float:
    """A chunk's ms per token: the median over its windows' mean intervals (NaN without a whole window); the
    chunk's first interval, the switch from the other variant, is already dropped."""
    n = len(kept) // window * window
    if not n:
        return float("nan")
    return 1e3 * float(np.median(np.asarray(kept[:n]).reshape(-1, window).mean(axis=1)))


def interleaved_intervals(
    variants: dict[str, Callable[[], Iterator]],
    rng: random.Random,
    *,
    tokens: int,
    chunk: int,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[str], dict[str, list[list[float]]]]:
    """The timing under `interleaved`, for a caller that reduces the token intervals its own way: each
    variant's fresh generation pulled `chunk` tokens at a time (the last chunk may be shorter), the variants'
    chunks in a fresh random order per round. Returns the first round's order and, per variant, per chunk,
    the seconds from the chunk's start to its first token (the switch from the other variant; the prefill in
    the first chunk), then between consecutive tokens."""
    if tokens < 1 or chunk < 1:
        raise ValueError(f"need tokens >= 1 and chunk >= 1, got {tokens}, {chunk}")
    generations = {name: make() for name, make in variants.items()}
    chunks: dict[str, list[list[float]]] = {name: [] for name in variants}
    first_order: list[str] = []
    try:
        for start in range(0, tokens, chunk):
            order = list(variants)
            rng.shuffle(order)
            first_order = first_order or order
            for name in order:
                chunks[name].append(_pull(generations[name], min(chunk, tokens - start), clock))
    finally:
        # a generator's cache is freed now, not at the next collection
        for gen in generations.values():
            getattr(gen, "close", lambda: None)()
    return first_order, chunks


def _pull(generation: Iterator, n: int, clock: Callable[[], float]) -> list[float]:
    """Seconds from the call to the first token, then between consecutive tokens, for the next n tokens."""
    stamps = [clock()]
    for _ in range(n):
        next(generation)
        stamps.append(clock())
    return np.diff(stamps).tolist()


def compare(
    run,
    experiment: str,
    variants: dict[str, Callable[[], float]],
    *,
    reference: str,
    bands: dict[str, Band] | None = None,
    metric: str = "seconds",
    unit: str = "s",
    budget_s: float = 60.0,
    extension: Extension | None = None,
    min_blocks: int = 8,
    max_blocks: int = 64,
    warmup: int = 1,
    confidence: float = intervals.CONFIDENCE,
    seed: int = 0,
    block_fn: BlockFn = back_to_back,
    **fields: Any,
) -> Comparison:
    """Run `variants` (callables returning one positive value each: seconds, ms/token, tokens/s) in blocks.

    `block_fn(variants, rng)` runs one block and returns every variant's value, in running order (that order
    is stored as `position`): `back_to_back` by default; `functools.partial(interleaved, tokens=..., chunk=...)`
    for variants that are generation factories. Warm-up: `warmup` blocks, nothing recorded.

    Each variant's effect is its per-block ratio to `reference`; blocks are added until every variant with a
    band is decided, `budget_s` of wall time is spent, or `max_blocks` ran (never fewer than min_blocks, unless
    the budget runs out first). A banded variant decided at an interim look is not run in later blocks (its row
    gives the look's n and estimate); variants without a band run to the end. An undecided comparison whose
    budget is spent goes on for what `extension` allows where its blocks project a decision within it
    (`promising`); one whose effect sits on its band's edge stops. `fields` go into every row (e.g. model=...,
    dtype=...)."""
    if reference not in variants or len(variants) < 2:
        raise ValueError(
            f"need the reference {reference!r} and at least one other variant, got {list(variants)}"
        )
    bands = bands or {}
    unknown = set(bands) - set(variants) | ({reference} & set(bands))
    if unknown:
        raise ValueError(f"bands for variants that are not compared against {reference!r}: {sorted(unknown)}")
    schedule = looks(min_blocks, max_blocks)
    interim, final = interim_confidence(len(schedule) - 1, confidence), final_confidence(confidence)
    names = list(variants)
    others = [n for n in names if n != reference]
    rng = random.Random(seed)
    warmup_rng = random.Random(seed - 1)  # the timed blocks' orders do not depend on the warm-up
    for _ in range(warmup):
        block_fn(variants, warmup_rng)

    table: list[dict[str, float]] = []  # per block: variant -> value (a variant decided earlier is left out)
    ratios: dict[str, list[float]] = {v: [] for v in others}  # per-block log(variant / reference)
    running = list(names)  # variants still measured: a banded variant leaves once an interim look decides it
    left: dict[str, Outcome] = {}  # the variants an interim look decided, each as it stopped
    start = time.perf_counter()
    deadline, extended = budget_s, False
    reason = MAX_BLOCKS
    estimates: dict[str, intervals.Estimate] = {}
    for block in range(max_blocks):
        probe = hoststate.probe_ms()
        cpu0, wall0 = hoststate.cpu_seconds(), time.perf_counter()
        values = block_fn({name: variants[name] for name in running}, rng)
        if set(values) != set(running):
            raise ValueError(f"block_fn returned values for {sorted(values)}, not for {sorted(running)}")
        table.append({name: float(value) for name, value in values.items()})
        for position, (name, value) in enumerate(values.items()):
            run.record(
                experiment,
                metric,
                float(value),
                unit,
                trial=block,
                block=block,
                position=position,
                variant=name,
                **fields,
            )
        for v in others:
            if v in running:
                ratios[v].append(block_log_ratio(values, v, reference))
        _record_rounds(run, experiment, block, values, round_metric(metric), unit, fields)
        wall = time.perf_counter() - wall0
        for host_metric, value, host_unit in (
            (hoststate.PROBE_METRIC, probe, "ms"),
            (hoststate.CPU_METRIC, hoststate.cpu_seconds() - cpu0, "s"),
            (hoststate.WALL_METRIC, wall, "s"),
        ):
            run.record(experiment, host_metric, value, host_unit, trial=block, block=block, **fields)
        n = block + 1
        if n in schedule[:-1]:  # an interim look
            estimates = {v: change_pct(ratios[v], interim) for v in others if v in running}
            for v, band in bands.items():
                # decided: its own sequential test stops here, and the blocks left get shorter for the others
                if v in running and band.decides(estimates[v].low, estimates[v].high):
                    left[v] = Outcome(estimates[v], n, DECIDED, extended)
                    running.remove(v)
            if bands and set(bands) <= set(left):
                reason = DECIDED
                break
        elapsed = time.perf_counter() - start
        if elapsed >= deadline and n < max_blocks:
            more_s = extension.available_s() if extension and not extended else 0.0
            trials = sum(map(len, table))  # variant runs so far (a block holds one value per variant it ran)
            reachable = min(max_blocks, reachable_blocks(n, elapsed, trials, len(running), more_s))
            if more_s > 0 and any(
                promising(ratios[v], band, confidence, reachable) for v, band in bands.items() if v in running
            ):
                deadline, extended = elapsed + more_s, True
            else:
                reason = BUDGET
                break
    if extended:
        extension.spend(time.perf_counter() - start - budget_s)
    n = len(table)
    if reason != DECIDED and n >= 2:  # the final look: the budget spent or max_blocks reached
        estimates = {v: change_pct(ratios[v], final) for v in others if v in running}
    stopped = {**{v: Outcome(e, n, reason, extended) for v, e in estimates.items() if v in running}, **left}
    outcome = {v: stopped[v] for v in others if v in stopped}  # in the variants' order
    for v, (e, blocks_used, why, went_on) in outcome.items():
        band = bands.get(v)
        decided = bool(band and band.decides(e.low, e.high))
        projected = projected_blocks(e, band) if band and not decided else float("nan")
        run.record(
            experiment,
            CHANGE_METRIC,
            e.value,
            "%",
            trial=0,
            variant=v,
            reference=reference,
            low=e.low,
            high=e.high,
            n_blocks=blocks_used,
            method=e.method,
            confidence=e.confidence,
            stop_reason=why,
            decided=decided,
            band_low=band.low if band else float("nan"),
            band_high=band.high if band else float("nan"),
            resolvable_pct=e.half_width,
            extended=went_on,
            projected_blocks=projected,
            **fields,
        )
    estimates = {v: o.estimate for v, o in outcome.items()}
    return Comparison(reference, n, reason, estimates, pd.DataFrame(table, columns=names))


def block_log_ratio(values: dict[str, float], variant: str, reference: str) -> float:
    """One block's log(variant / reference): from an interleaved block (`Rounds`), the median over its rounds
    of the two variants' paired chunk log-ratios (rounds where both have a chunk value); else from the values."""
    rounds = getattr(values, "rounds", None)
    if rounds:
        return _median_log_ratio(rounds[variant], rounds[reference])
    return math.log(values[variant] / values[reference])


def _median_log_ratio(variant_values, reference_values) -> float:
    lr = np.log(np.asarray(variant_values, float) / np.asarray(reference_values, float))
    return float(np.median(lr[np.isfinite(lr)]))


def _record_rounds(
    run, experiment: str, block: int, values: dict[str, float], metric: str, unit: str, fields: dict
) -> None:
    """An interleaved block's chunk values, one row per variant and round (trial: a running round number)."""
    rounds = getattr(values, "rounds", None) or {}
    n = max((len(r) for r in rounds.values()), default=0)
    for name, per_round in rounds.items():
        for i, x in enumerate(per_round):
            if math.isfinite(x):
                run.record(
                    experiment,
                    metric,
                    x,
                    unit,
                    trial=block * n + i,
                    block=block,
                    round=i,
                    variant=name,
                    **fields,
                )


# --- reading stored blocks back --------------------------------------------------------------------------


def paired_log_ratios(
    df: pd.DataFrame, experiment: str, variant: str, reference: str, metric: str
) -> pd.Series:
    """Per-block log(variant / reference) from stored rows (blocks where both ran), indexed by block: from the
    rounds' chunk values where the run stored them (interleaved blocks, as `compare` judged them), else from the
    blocks' `metric` values; empty where the two never ran in that comparison."""
    rounds = df[(df.experiment == experiment) & (df.metric == round_metric(metric))]
    if {variant, reference} <= set(rounds.variant):
        wide = rounds.pivot_table(
            index=["block", "round"], columns="variant", values="value", aggfunc="first"
        )
        both = wide[[variant, reference]].dropna()
        return both.groupby(level="block").apply(lambda g: _median_log_ratio(g[variant], g[reference]))
    sel = df[(df.experiment == experiment) & (df.metric == metric)]
    if not {variant, reference} <= set(sel.variant):
        return pd.Series(dtype=float)
    wide = sel.pivot_table(index="block", columns="variant", values="value", aggfunc="first")
    both = wide[[variant, reference]].dropna()
    return np.log(both[variant] / both[reference])


def stop_rows(df: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The stored outcome rows of a comparison: % change, interval, n, method, why it stopped."""
    return df[(df.experiment == experiment) & (df.metric == CHANGE_METRIC)]
