"""mlx-lm's run-to-run spread as the write-ups state it (half the range over the mean of their 5 runs), estimated
from more runs with an interval: what 02's variability pass goes on until it decides (measure.variability), and
what its finding reports."""

from __future__ import annotations

import itertools
import math

import numpy as np

from mlx_workbook.core import intervals

# The run count behind the published "mlx-lm ~97 tokens/s (high variance: 81-109)", "14% variance": seed 001
# (001_24b6d651dffff56b.txt, line 172) "Includes warmup runs and 5 runs per prompt with statistics". A range
# grows with the number of runs, so the statistic is only comparable at this count.
PUBLISHED_RUNS = 5
# The fewest runs the spread's interval is given from: below it the jackknife interval's coverage falls far short
# (simulated: tests/test_analysis_decode_loop.py); fewer runs are reported as not measured.
MIN_SPREAD_RUNS = 8
MAX_SUBSETS = 20_000  # more k-subsets than this: a fixed random sample of them (the average barely moves)


def subsets(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Index rows of every k-subset of n runs, or MAX_SUBSETS random ones (each sorted, drawn with a fixed seed)."""
    if math.comb(n, k) <= MAX_SUBSETS:
        return np.array(list(itertools.combinations(range(n), k)))
    rng = np.random.default_rng(seed)
    return np.sort(rng.random((MAX_SUBSETS, n)).argsort(axis=1)[:, :k], axis=1)


def expected_half_range(values, k: int = PUBLISHED_RUNS) -> intervals.Estimate:
    """Half the range over the mean of k runs (the write-ups' "81-109 tok/s" -> 14%), as expected from k runs
    drawn from ours: its average over every k-subset of our n runs (unbiased for that expectation). Interval:
    jackknife t on the log scale, each leave-one-out value the average over the subsets without that run.

    Not a percentile bootstrap: resampled runs repeat, which shrinks every range, so in simulation it covered
    58-85% at n = 8-20; the jackknife covers about 92-93% for normal runs and 83-91% with a slow mode or heavy
    tails (less when a rare slow mode may not show in n runs at all)."""
    arr = intervals.clean(values)
    n, need = arr.size, max(MIN_SPREAD_RUNS, k + 1)
    if n < need:
        raise ValueError(f"the spread of {k} runs needs at least {need} runs, got {n}")
    idx = subsets(n, k)
    picked = arr[idx]
    per_subset = np.ptp(picked, axis=1) / 2 / picked.mean(axis=1)
    holds = np.zeros((len(idx), n), dtype=bool)
    holds[np.arange(len(idx))[:, None], idx] = True
    leave_one_out = [per_subset[~holds[:, i]].mean() for i in range(n)]
    return intervals.jackknife_log_interval(float(per_subset.mean()), leave_one_out)
