import math

import mlx.core as mx
import numpy as np
import pytest

from mlx_workbook.core import measure


def test_summarize_median_interval_and_cv():
    values = [10.0, 11.0, 9.0, 10.5, 9.5, 10.0, 10.2]
    s = measure.summarize(values)
    assert s.n == 7
    assert s.median == pytest.approx(float(np.median(values)))
    assert s.low <= s.median <= s.high
    assert 9.0 <= s.low and s.high <= 11.0
    assert s.cv == pytest.approx(np.std(values, ddof=1) / np.mean(values))


def test_summarize_drops_non_finite_and_rejects_empty():
    assert measure.summarize([1.0, float("nan"), 3.0]).n == 2
    with pytest.raises(ValueError):
        measure.summarize([float("nan")])


def test_bootstrap_interval_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    small = rng.normal(100, 5, 10)
    large = rng.normal(100, 5, 1000)
    lo_s, hi_s = measure.bootstrap_interval(small)
    lo_l, hi_l = measure.bootstrap_interval(large)
    assert hi_l - lo_l < hi_s - lo_s
    assert lo_l < 100 < hi_l


def test_ratio_interval_contains_true_ratio():
    rng = np.random.default_rng(2)
    r = measure.ratio_interval(rng.normal(110, 2, 50), rng.normal(100, 2, 50))
    assert r.low < 1.1 < r.high
    assert r.median == pytest.approx(1.1, rel=0.02)


def test_fit_slope_recovers_slope():
    rng = np.random.default_rng(3)
    x = np.arange(100.0)
    fit = measure.fit_slope(x, 0.5 * x + 3 + rng.normal(0, 0.1, x.size))
    assert fit["low"] < 0.5 < fit["high"]
    assert fit["intercept"] == pytest.approx(3, abs=0.1)
    with pytest.raises(ValueError):
        measure.fit_slope([1, 1], [2, 3])


def test_trials_keeps_warmup_out_and_forces_evaluation():
    calls = []

    def work():
        calls.append(1)
        return mx.ones((64, 64)) @ mx.ones((64, 64))

    seen = []
    out = measure.trials(work, repeats=4, warmup=2, on_trial=seen.append, keep_results=True)
    assert len(calls) == 6  # 2 warm-up + 4 timed
    assert [t.trial for t in out] == [0, 1, 2, 3] and seen == out
    assert all(t.seconds > 0 and math.isfinite(t.seconds) for t in out)
    # forced: the returned array is already evaluated, with the right values
    assert float(out[0].result[0, 0]) == 64.0
    assert measure.trials(work, repeats=2)[0].result is None  # dropped by default: nothing pinned in memory
    with pytest.raises(ValueError):
        measure.trials(work, repeats=0)


def test_time_per_call_divides_by_calls():
    per_call = measure.time_per_call(lambda: mx.zeros((8,)) + 1, calls=10, repeats=3)
    assert len(per_call) == 3 and all(p > 0 for p in per_call)
