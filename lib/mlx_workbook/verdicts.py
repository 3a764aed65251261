"""Verdicts computed from measured intervals and the published figures they are set against."""

from __future__ import annotations

from dataclasses import dataclass

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "does not apply on this backend"


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    @classmethod
    def of(cls, stats) -> "Interval":
        return cls(stats.median, stats.low, stats.high)


def effect_matches(measured: Interval, published_low: float, published_high: float | None = None,
                   tolerance: float = 0.0) -> str:
    """A claimed effect size (e.g. "+4 to 5%"): does the measured interval meet the published range?

    holds: the intervals overlap (after widening the published range by `tolerance`);
    does not hold: the measured interval lies entirely outside it.
    """
    hi = published_low if published_high is None else published_high
    lo, hi = min(published_low, hi) - tolerance, max(published_low, hi) + tolerance
    if measured.high < lo or measured.low > hi:
        return DOES_NOT_HOLD
    return HOLDS


def no_effect(measured: Interval, tolerance: float) -> str:
    """A claim of "no impact" / "flat": holds when the whole interval sits within ±tolerance of zero,
    does not hold when the whole interval is beyond it, else inconclusive (too noisy to say)."""
    if -tolerance <= measured.low and measured.high <= tolerance:
        return HOLDS
    if measured.low > tolerance or measured.high < -tolerance:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def at_least(measured: Interval, threshold: float) -> str:
    """A claim that an effect is at least `threshold` (e.g. "faster", threshold 0)."""
    if measured.low > threshold:
        return HOLDS
    if measured.high < threshold:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def describe(measured: Interval, unit: str = "", digits: int = 3) -> str:
    fmt = f"{{:.{digits}g}}"
    return f"{fmt.format(measured.value)}{unit} [{fmt.format(measured.low)}, {fmt.format(measured.high)}]"
