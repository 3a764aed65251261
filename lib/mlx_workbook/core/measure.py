"""Timing and statistics: warm-up, repeated trials, forced evaluation, peak memory, medians with intervals.

MLX is lazy: a clock stopped before `mx.eval` (or a synchronize) measures graph building, not work.
Every timer here evaluates what the timed function returns, then synchronizes, before reading the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import mlx.core as mx
import numpy as np

from mlx_workbook.core import intervals

CONFIDENCE = 0.95
N_BOOTSTRAP = 2000


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    low: float  # interval of the median (see `method`; order statistics, exact for any continuous values)
    high: float
    mean: float
    std: float
    cv: float  # coefficient of variation, std / mean
    method: str = ""  # how the interval was made, e.g. "order statistics" or "range (93.8% coverage at n=5)"
    confidence: float = CONFIDENCE  # the interval's coverage at this n (below nominal where the method says)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.median:.4g} [{self.low:.4g}, {self.high:.4g}] (n={self.n}, {self.method}, cv={self.cv:.1%})"


def _clean(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValueError("no finite values to summarize")
    return arr


def bootstrap_interval(
    values: Iterable[float],
    statistic: Callable = np.median,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float]:
    """Interval of `statistic` (the median by default): a percentile bootstrap from intervals.MIN_BOOTSTRAP_N values.

    Below that a percentile bootstrap under-covers (at n=5 it is exactly [min, max]): the median then gets the
    order-statistic interval (intervals.median_interval, exact coverage, [min, max] only below n=6 and labelled so
    by summarize), and any other statistic is refused with a pointer to a method that holds at small n."""
    arr = _clean(values)
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    if arr.size < intervals.MIN_BOOTSTRAP_N:
        if statistic is np.median:
            e = intervals.median_interval(arr, confidence)
            return e.low, e.high
        raise ValueError(
            f"{arr.size} values are too few for a bootstrap interval of {getattr(statistic, '__name__', statistic)}"
            f" (needs {intervals.MIN_BOOTSTRAP_N}); use core.intervals (t_interval, cv_interval, median_interval)"
        )
    e = intervals.percentile_bootstrap(arr, statistic, confidence, n_boot, seed)
    return e.low, e.high


def summarize(values: Iterable[float]) -> Stats:
    """Median with its order-statistic interval (method and true coverage stated), mean, std and CV."""
    arr = _clean(values)
    med = intervals.median_interval(arr)
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return Stats(
        n=int(arr.size),
        median=float(np.median(arr)),
        low=med.low,
        high=med.high,
        mean=mean,
        std=std,
        cv=std / mean if mean else float("nan"),
        method=med.method,
        confidence=med.confidence,
    )


def ratio_interval(
    numerator: Iterable[float],
    denominator: Iterable[float],
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> Stats:
    """Median(numerator) / median(denominator) with a bootstrap interval (the two samples resampled independently)."""
    a, b = _clean(numerator), _clean(denominator)
    rng = np.random.default_rng(seed)
    ra = np.median(rng.choice(a, size=(n_boot, a.size)), axis=1)
    rb = np.median(rng.choice(b, size=(n_boot, b.size)), axis=1)
    alpha = (1 - confidence) / 2
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero denominator (0 failed requests): inf or nan
        ratios = ra / rb
        return Stats(
            n=int(min(a.size, b.size)),
            median=float(np.median(a) / np.median(b)),
            low=float(np.quantile(ratios, alpha)),
            high=float(np.quantile(ratios, 1 - alpha)),
            mean=float(ratios.mean()),
            std=float(ratios.std()),
            cv=float(ratios.std() / ratios.mean()),
        )


def fit_slope(x: Iterable[float], y: Iterable[float], n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """Least-squares slope of y on x with a pairs-bootstrap 95% interval."""
    xs, ys = np.asarray(list(x), float), np.asarray(list(y), float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    if xs.size < 2 or np.ptp(xs) == 0:
        raise ValueError("need at least two distinct x values to fit a slope")
    slope, intercept = np.polyfit(xs, ys, 1)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, xs.size, xs.size)
        if np.ptp(xs[idx]) > 0:
            boots.append(np.polyfit(xs[idx], ys[idx], 1)[0])
    alpha = (1 - CONFIDENCE) / 2
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "low": float(np.quantile(boots, alpha)),
        "high": float(np.quantile(boots, 1 - alpha)),
    }


# --- clocks -------------------------------------------------------------------------------------------------


def force(result: Any) -> None:
    """Evaluate whatever a timed function returned and wait for the device to finish it."""
    if result is not None:
        arrays = [x for x in _flatten(result) if isinstance(x, mx.array)]
        if arrays:
            mx.eval(arrays)
    mx.synchronize()


def _flatten(obj: Any) -> Iterator[Any]:
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _flatten(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _flatten(item)
    else:
        yield obj


@dataclass(frozen=True)
class Trial:
    trial: int
    seconds: float
    peak_memory_bytes: int
    result: Any = None


def trials(
    fn: Callable[[], Any],
    *,
    repeats: int,
    warmup: int = 1,
    on_trial: Callable[[Trial], None] | None = None,
    keep_results: bool = False,
) -> list[Trial]:
    """Run `fn` `warmup` times untimed, then `repeats` timed trials, each forced to completion.

    Peak memory is reset before each trial, so each trial reports its own peak.
    `on_trial` sees each trial as soon as it finishes (to store it before the next one starts).
    Outputs are dropped after each trial unless `keep_results`: holding them would pin memory (a 4 GB probe
    output per trial) and force fresh allocations inside later timed trials.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        force(fn())
    out = []
    for i in range(repeats):
        mx.synchronize()
        mx.reset_peak_memory()
        tic = time.perf_counter()
        result = fn()
        force(result)
        seconds = time.perf_counter() - tic
        trial = Trial(
            trial=i,
            seconds=seconds,
            peak_memory_bytes=int(mx.get_peak_memory()),
            result=result if keep_results else None,
        )
        del result
        out.append(trial)
        if on_trial is not None:
            on_trial(trial)
    return out


def time_per_call(
    fn: Callable[[], Any],
    *,
    calls: int,
    repeats: int,
    warmup: int = 1,
    on_trial: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Seconds per call of a short function: each trial launches `calls` calls back to back, then waits for all.

    Each call is queued with `async_eval` and only the latest output is kept alive, so outputs of earlier calls
    go back to MLX's buffer cache and are reused: a trial measures the kernels, not fresh allocations.
    `on_trial(i, seconds_per_call)` sees each trial as soon as it finishes.
    """

    def batch():
        out = None
        for _ in range(calls):
            out = fn()
            mx.async_eval([x for x in _flatten(out) if isinstance(x, mx.array)])
        return out

    def report(t: Trial) -> None:
        if on_trial is not None:
            on_trial(t.trial, t.seconds / calls)

    return [t.seconds / calls for t in trials(batch, repeats=repeats, warmup=warmup, on_trial=report)]
