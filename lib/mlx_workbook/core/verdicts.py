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
    def of(cls, stats) -> Interval:
        return cls(stats.median, stats.low, stats.high)

    @classmethod
    def change_pct(cls, ratio) -> Interval:
        """A ratio (Stats or Interval, e.g. B/A = 1.04 [1.01, 1.07]) as a % change: +4% [+1, +7]."""
        value = getattr(ratio, "median", getattr(ratio, "value", None))
        return cls(100 * (value - 1), 100 * (ratio.low - 1), 100 * (ratio.high - 1))

    def scaled(self, factor: float) -> Interval:
        lo, hi = sorted((self.low * factor, self.high * factor))
        return Interval(self.value * factor, lo, hi)

    def measured(self, unit: str, **extra) -> dict:
        """The dict a Finding stores as `measured`."""
        return {"value": self.value, "low": self.low, "high": self.high, "unit": unit, **extra}


def effect_matches(
    measured: Interval, published_low: float, published_high: float | None = None, tolerance: float = 0.0
) -> str:
    """Does a measured interval meet a published figure or range (e.g. "+4 to 5%"), widened by `tolerance`?

    holds: the whole measured interval lies inside the widened range; does not hold: the whole interval lies
    outside it; inconclusive: it straddles an edge, so the data cannot tell (one rule for every notebook).
    """
    hi = published_low if published_high is None else published_high
    lo, hi = min(published_low, hi) - tolerance, max(published_low, hi) + tolerance
    if measured.high < lo or measured.low > hi:
        return DOES_NOT_HOLD
    if lo <= measured.low and measured.high <= hi:
        return HOLDS
    return INCONCLUSIVE


def no_effect(measured: Interval, tolerance: float) -> str:
    """A claim of "no impact" / "flat": a published effect of zero, within ±tolerance."""
    return effect_matches(measured, 0.0, 0.0, tolerance)


def at_least(measured: Interval, threshold: float) -> str:
    """A claim that an effect is at least `threshold` (e.g. "faster", threshold 0)."""
    if measured.low > threshold:
        return HOLDS
    if measured.high < threshold:
        return DOES_NOT_HOLD
    return INCONCLUSIVE
