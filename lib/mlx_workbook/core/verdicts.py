"""Verdicts computed from measured intervals and the published figures they are set against.

Six categories. Four come from data: holds; direction holds, size differs (an effect in the claimed direction,
larger or smaller than the widened published range); does not hold; inconclusive (the interval straddles an
edge). Two say why there is no verdict from data: not measured (something the claim needs is missing here: an
MLX version, a model, a binding) and does not apply (the run is outside the claim's stated scope, computed by
`core.scope` from the run's backend, device and model).
"""

from __future__ import annotations

from dataclasses import dataclass

HOLDS = "holds"
SIZE_DIFFERS = "direction holds, size differs"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
NOT_APPLICABLE = "does not apply"
# Every category, in the order pages list them; FROM_DATA are those a measurement decided.
CATEGORIES = [HOLDS, SIZE_DIFFERS, DOES_NOT_HOLD, INCONCLUSIVE, NOT_MEASURED, NOT_APPLICABLE]
FROM_DATA = (HOLDS, SIZE_DIFFERS, DOES_NOT_HOLD, INCONCLUSIVE)
# Names older runs stored (read back by the findings page).
LEGACY = {"does not apply on this backend": NOT_APPLICABLE}


def normalize(verdict: str) -> str:
    return LEGACY.get(verdict, verdict)


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
    measured: Interval,
    published_low: float,
    published_high: float | None = None,
    tolerance: float = 0.0,
    no_effect_at: float | None = None,
) -> str:
    """Does a measured interval meet a published figure or range (e.g. "+4 to 5%"), widened by `tolerance`?

    holds: the whole measured interval lies inside the widened range; inconclusive: it straddles an edge, so the
    data cannot tell. Outside the range: when the claim is an effect (`no_effect_at` is where there is none: 0
    for a % change, 1 for a ratio) and the whole interval lies on the claimed side of it, the direction holds
    and only the size differs; otherwise the claim does not hold. A magnitude (a time, a share, a rate) has
    no direction: leave `no_effect_at` out.
    """
    hi = published_low if published_high is None else published_high
    pub_lo, pub_hi = min(published_low, hi), max(published_low, hi)
    lo, hi = pub_lo - tolerance, pub_hi + tolerance
    if lo <= measured.low and measured.high <= hi:
        return HOLDS
    if not (measured.high < lo or measured.low > hi):
        return INCONCLUSIVE
    if no_effect_at is not None:
        up = pub_lo > no_effect_at and measured.low > no_effect_at
        down = pub_hi < no_effect_at and measured.high < no_effect_at
        if up or down:
            return SIZE_DIFFERS
    return DOES_NOT_HOLD


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
