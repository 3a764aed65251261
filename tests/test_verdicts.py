"""One verdict rule for every notebook: inside the published range, outside it, or too noisy to say."""

from mlx_workbook.core import published
from mlx_workbook.core import verdicts as v
from mlx_workbook.core.measure import summarize

Iv = v.Interval


def test_effect_matches_is_three_way():
    assert v.effect_matches(Iv(4.5, 4.2, 4.8), 4, 5) == v.HOLDS
    assert (
        v.effect_matches(Iv(4.5, -3, 12), 4, 5) == v.INCONCLUSIVE
    )  # a wide interval cannot confirm a 4-5% claim
    assert v.effect_matches(Iv(20, 18, 22), 4, 5, tolerance=2) == v.DOES_NOT_HOLD
    assert v.effect_matches(Iv(6.5, 6.1, 6.9), 4, 5, tolerance=2) == v.HOLDS  # the tolerance widens the range


def test_a_larger_or_smaller_effect_in_the_claimed_direction_is_not_a_refutation():
    # +54% against a published +22% (widened to 16.5-27.5): the direction holds, the size differs
    assert v.effect_matches(Iv(54, 38, 57), 22, tolerance=5.5, no_effect_at=0) == v.SIZE_DIFFERS
    assert v.effect_matches(Iv(2.2, 2.1, 2.3), 1.3, 1.5, tolerance=0.1, no_effect_at=1) == v.SIZE_DIFFERS
    assert v.effect_matches(Iv(1.0, 0.5, 1.5), 4, 5, tolerance=1, no_effect_at=0) == v.SIZE_DIFFERS  # smaller
    # the other direction, or an interval that reaches "no effect", refutes it
    assert v.effect_matches(Iv(-3, -4, -2), 4, 5, tolerance=1, no_effect_at=0) == v.DOES_NOT_HOLD
    assert v.effect_matches(Iv(1, -0.5, 2.5), 4, 5, tolerance=1, no_effect_at=0) == v.DOES_NOT_HOLD
    # a slower claim (published below no effect): a larger slowdown is the same direction
    assert v.effect_matches(Iv(0.5, 0.4, 0.6), 0.8, 0.9, tolerance=0.05, no_effect_at=1) == v.SIZE_DIFFERS
    # a magnitude (no direction) and a no-effect claim are only in or out
    assert v.effect_matches(Iv(54, 38, 57), 22, tolerance=5.5) == v.DOES_NOT_HOLD
    assert v.no_effect(Iv(5, 4, 6), 3) == v.DOES_NOT_HOLD


def test_categories_keep_data_and_its_absence_apart():
    assert set(v.FROM_DATA) < set(v.CATEGORIES)
    assert v.NOT_MEASURED not in v.FROM_DATA and v.NOT_APPLICABLE not in v.FROM_DATA
    assert v.normalize("does not apply on this backend") == v.NOT_APPLICABLE  # older runs' name
    assert v.normalize(v.HOLDS) == v.HOLDS


def test_no_effect_and_at_least():
    assert v.no_effect(Iv(0.5, -1, 2), 3) == v.HOLDS
    assert v.no_effect(Iv(5, 4, 6), 3) == v.DOES_NOT_HOLD
    assert v.no_effect(Iv(2, -1, 5), 3) == v.INCONCLUSIVE
    assert v.at_least(Iv(2, 1, 3), 0) == v.HOLDS and v.at_least(Iv(-2, -3, -1), 0) == v.DOES_NOT_HOLD


def test_interval_helpers():
    ratio = summarize([1.04, 1.05, 1.03, 1.04, 1.06])
    pct = Iv.change_pct(ratio)
    assert abs(pct.value - 4.0) < 1e-9 and pct.low <= pct.value <= pct.high
    assert Iv(1, -2, 3).scaled(-1) == Iv(-1, -3, 2)
    assert Iv(1, 0, 2).measured("%", model="m") == {
        "value": 1,
        "low": 0,
        "high": 2,
        "unit": "%",
        "model": "m",
    }


def test_published_figure_range_reads_the_data():
    assert published.figure_range("unused_logits_eval_cost") == (4.0, 5.0)
    lo, hi = published.figure_range("kv_copy_no_impact")
    assert lo == hi == 0.0
