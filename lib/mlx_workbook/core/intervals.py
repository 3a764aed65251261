"""Intervals whose coverage holds at the sample sizes the workbook uses, each saying its method and n.

- Paired comparisons: per-block log-ratios, Student t interval on their mean, reported back as a ratio
  (geometric mean). The t interval is robust to symmetric heavy tails (host noise hits both variants alike, so
  the log-ratio's noise is symmetric); tests/test_intervals.py checks its coverage by simulation with bimodal,
  persistent and Student-t(3) noise.
- Medians: the distribution-free order-statistic interval (binomial), exact for any continuous distribution;
  below n = 6 no pair of order statistics reaches 95%, so [min, max] is returned with its true coverage
  (93.8% at n = 5, 75% at n = 3) and the method says so.
- Percentile bootstrap only from n >= MIN_BOOTSTRAP_N: below that its coverage falls short (at n = 5 it is
  [min, max]).
- Coefficient of variation: chi-square interval of the standard deviation (assumes roughly normal values).
- A positive statistic of one sample with no interval of its own (e.g. an average over subsets): t on the log
  scale with the jackknife's standard error (`jackknife_log_interval`).

No scipy: the t and chi-square quantiles come from the regularized incomplete beta and gamma functions below.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
MIN_BOOTSTRAP_N = 30  # a percentile bootstrap covers about its nominal level only from here on
MIN_ORDER_N = 6  # the smallest n whose order statistics give a 95% interval of the median (1 - 2 * 0.5**6)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval, the number of samples and how the interval was made."""

    value: float
    low: float
    high: float
    n: int
    method: str  # e.g. "t on log-ratios", "order statistics", "range (93.8% coverage)"
    confidence: float  # the coverage the method gives at this n (nominal, or exact where it falls short)

    @property
    def median(self) -> float:  # so verdicts.Interval.of / change_pct accept an Estimate like a Stats
        return self.value

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}] (n={self.n}, {self.method})"


def clean(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    return arr[np.isfinite(arr)]


# --- distribution functions (no scipy) -------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz), as in Numerical Recipes."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def beta_inc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def gamma_inc(a: float, x: float) -> float:
    """Regularized lower incomplete gamma function P(a, x)."""
    if x <= 0:
        return 0.0
    if x < a + 1:  # series
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return total * math.exp(-x + a * math.log(x) - math.lgamma(a))
    # continued fraction for Q(a, x) (Lentz)
    tiny = 1e-300
    b, c, d = x + 1 - a, 1 / tiny, 1 / (x + 1 - a)
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return 1.0 - math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def t_cdf(t: float, df: float) -> float:
    p = 0.5 * beta_inc(df / 2, 0.5, df / (df + t * t))
    return 1 - p if t > 0 else p


def chi2_cdf(x: float, df: float) -> float:
    return gamma_inc(df / 2, x / 2)


def _invert(cdf, p: float, low: float, high: float) -> float:
    while cdf(high) < p:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
        if high - low < 1e-12 * max(1.0, abs(mid)):
            break
    return (low + high) / 2


@functools.lru_cache(maxsize=4096)  # the same few (p, df) come back at every look of a comparison
def t_quantile(p: float, df: float) -> float:
    if p < 0.5:
        return -t_quantile(1 - p, df)
    return _invert(lambda t: t_cdf(t, df), p, 0.0, 10.0)


@functools.lru_cache(maxsize=4096)
def chi2_quantile(p: float, df: float) -> float:
    return _invert(lambda x: chi2_cdf(x, df), p, 0.0, max(10.0, 4.0 * df))


# --- intervals -----------------------------------------------------------------------------------------------


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean with a Student t interval (n >= 2)."""
    arr = clean(values)
    n = arr.size
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    mean, sd = float(arr.mean()), float(arr.std(ddof=1))
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, "t", confidence)


def log_ratio_interval(log_ratios: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """Paired per-block log-ratios -> the ratio (geometric mean) with a t interval made on the log scale."""
    e = t_interval(log_ratios, confidence)
    return Estimate(
        math.exp(e.value), math.exp(e.low), math.exp(e.high), e.n, "t on paired log-ratios", confidence
    )


def paired_ratio(a: Iterable[float], b: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """a / b from paired samples (a[i] and b[i] from one block): geometric mean ratio with a t interval."""
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need the same length, got {a.size} and {b.size}")
    return log_ratio_interval(np.log(a / b), confidence)


def binomial_cdf(k: int, n: int, p: float = 0.5) -> float:
    return float(_binomial_cdfs(n, p)[k])


def _binomial_cdfs(n: int, p: float = 0.5) -> np.ndarray:
    """P(Bin(n, p) <= k) for k = 0..n, from log-pmfs (exact integer binomials overflow a float past n ~ 1000)."""
    k = np.arange(n + 1)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    return np.cumsum(np.exp(log_comb + k * math.log(p) + (n - k) * math.log1p(-p)))


def order_statistic_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float]:
    """0-based ranks (lo, hi) of the sorted sample bracketing the median, and their exact coverage.

    The narrowest symmetric pair whose coverage 1 - 2 * P(Bin(n, 1/2) <= lo) reaches `confidence`; below
    MIN_ORDER_N none does, and (0, n - 1), [min, max], comes back with the coverage it really has."""
    best = (0, n - 1, 1 - 2 * 0.5**n)
    cdfs = _binomial_cdfs(n)
    for lo in range(n // 2):
        coverage = 1 - 2 * float(cdfs[lo])
        if coverage < confidence:
            break
        best = (lo, n - 1 - lo, coverage)
    return best


def median_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """Median with the distribution-free order-statistic interval (exact coverage for continuous values)."""
    arr = np.sort(clean(values))
    n = arr.size
    if n == 0:
        raise ValueError("no finite values")
    med = float(np.median(arr))
    if n == 1:
        return Estimate(med, med, med, 1, "single value (no interval)", 0.0)
    lo, hi, coverage = order_statistic_ranks(n, confidence)
    method = "order statistics" if coverage >= confidence else f"range ({coverage:.1%} coverage at n={n})"
    return Estimate(med, float(arr[lo]), float(arr[hi]), n, method, min(coverage, 1.0))


def percentile_bootstrap(
    values: Iterable[float],
    statistic=np.median,
    confidence: float = CONFIDENCE,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap of `statistic`; only from MIN_BOOTSTRAP_N values (below that it under-covers)."""
    arr = clean(values)
    if arr.size < MIN_BOOTSTRAP_N:
        raise ValueError(
            f"a percentile bootstrap needs at least {MIN_BOOTSTRAP_N} values to cover {confidence:.0%}, got "
            f"{arr.size}; use median_interval (order statistics) or t_interval"
        )
    rng = np.random.default_rng(seed)
    boots = statistic(rng.choice(arr, size=(n_boot, arr.size), replace=True), axis=1)
    alpha = (1 - confidence) / 2
    return Estimate(
        float(statistic(arr)),
        float(np.quantile(boots, alpha)),
        float(np.quantile(boots, 1 - alpha)),
        int(arr.size),
        "percentile bootstrap",
        confidence,
    )


def cv_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """Coefficient of variation (sd / mean) with the chi-square interval of the sd: (n-1) s^2 / sigma^2 is
    chi-square with n-1 degrees of freedom for normal values (heavy tails make it too narrow: say so)."""
    arr = clean(values)
    n = arr.size
    if n < 2:
        raise ValueError(f"a CV interval needs at least 2 values, got {n}")
    mean, sd = float(arr.mean()), float(arr.std(ddof=1))
    alpha = (1 - confidence) / 2
    low = sd * math.sqrt((n - 1) / chi2_quantile(1 - alpha, n - 1)) / mean
    high = sd * math.sqrt((n - 1) / chi2_quantile(alpha, n - 1)) / mean
    return Estimate(sd / mean, low, high, n, "chi-square (normal values)", confidence)


def jackknife_log_interval(
    value: float, leave_one_out: Iterable[float], confidence: float = CONFIDENCE
) -> Estimate:
    """A positive statistic `value` of n values, given its n leave-one-out values: a Student t interval (n - 1
    degrees of freedom) on the log scale with the jackknife standard error, sqrt((n-1)/n * sum (l_i - mean)^2)
    of the log leave-one-out values. The log keeps the interval positive and its sides unequal, as a spread's
    sampling distribution is (n >= 3)."""
    logs = np.log(clean(leave_one_out))
    n = logs.size
    if n < 3 or not value > 0:
        raise ValueError(
            f"a jackknife interval needs a positive value and >= 3 leave-one-out values, got {n}"
        )
    se = math.sqrt((n - 1) / n * float(((logs - logs.mean()) ** 2).sum()))
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * se
    centre = math.log(value)
    return Estimate(
        value, math.exp(centre - half), math.exp(centre + half), n, "jackknife t on the log scale", confidence
    )


def one_vs_sample(single: float, sample: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """One observation over a sample's geometric mean (a lone first run against warm repeats), with a Student t
    prediction interval on the log scale: the single value's own noise is taken to be the sample's, so the
    half-width is t * sd * sqrt(1 + 1/n). n is the sample's size (n >= 2)."""
    logs = np.log(clean(sample))
    n = logs.size
    if n < 2 or not single > 0:
        raise ValueError(f"one positive value against at least 2 others, got {single} and {n} values")
    d = math.log(single) - float(logs.mean())
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * float(logs.std(ddof=1)) * math.sqrt(1 + 1 / n)
    return Estimate(
        math.exp(d), math.exp(d - half), math.exp(d + half), n, "t prediction interval, one vs n", confidence
    )
