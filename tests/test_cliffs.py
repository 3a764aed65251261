"""Cliff detection on synthetic sweeps: a planted cliff is found where it was planted, and nowhere else."""

import numpy as np
import pandas as pd
import pytest

from mlx_workbook.investigations.sdpa_cliff import cliffs

LENGTHS = [32, 64, 96, 116, 120, 124, 127, 128, 129, 132, 140, 192, 255, 256, 257, 384, 512]


def sweep(time_of, *, repeats=7, noise=0.02, seed=0) -> pd.DataFrame:
    """Trials of a synthetic timing curve with multiplicative noise; work = causal attention pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in LENGTHS:
        for t in range(repeats):
            rows.append(
                {
                    "length": n,
                    "trial": t,
                    "work": n * (n + 1) / 2,
                    "value": time_of(n) * float(np.exp(rng.normal(0, noise))),
                }
            )
    return pd.DataFrame(rows)


def quadratic(n):  # fixed overhead + attention work
    return 0.2 + 1e-5 * n * (n + 1) / 2


def test_smooth_sweep_has_no_cliff():
    df = sweep(quadratic)
    assert cliffs.find_cliffs(df, work="work") == []


def test_overhead_dominated_sweep_has_no_cliff():
    # All overhead: time flat while work grows 256-fold; the envelope's lower edge (1) covers it.
    df = sweep(lambda n: 0.5 + 1e-9 * n)
    assert cliffs.find_cliffs(df, work="work") == []


def test_planted_slow_region_below_128_is_a_down_step_at_128():
    df = sweep(lambda n: quadratic(n) * (1.5 if n < 128 else 1.0))
    (cliff,) = cliffs.find_cliffs(df, work="work")
    assert (cliff.before_length, cliff.length, cliff.verdict) == (127, 128, cliffs.DOWN)
    assert cliff.high < 1 and cliff.excess == pytest.approx(1 / 1.5, rel=0.05)


def test_planted_up_jump_after_a_kv_cache_boundary():
    df = sweep(lambda n: quadratic(n) * (1.4 if n > 256 else 1.0))
    (cliff,) = cliffs.find_cliffs(df, work="work")
    assert (cliff.before_length, cliff.length, cliff.verdict) == (256, 257, cliffs.UP)
    assert cliff.low > cliff.expected_high and cliff.excess == pytest.approx(1.4, rel=0.05)


def test_jump_smaller_than_the_tolerance_is_not_reported():
    df = sweep(lambda n: quadratic(n) * (1.05 if n < 128 else 1.0), noise=0.005)
    assert cliffs.find_cliffs(df, work="work", tolerance=0.1) == []
    assert len(cliffs.find_cliffs(df, work="work", tolerance=0.01)) == 1


def test_noisy_equal_samples_are_unclear_or_none_never_a_jump():
    df = sweep(lambda n: 1.0, noise=0.1, repeats=5)
    verdicts = {s.verdict for s in cliffs.steps(df)}
    assert verdicts <= {cliffs.NONE, cliffs.UNCLEAR}


def test_scan_groups_and_pair():
    a = sweep(quadratic).assign(mode="none")
    b = sweep(lambda n: quadratic(n) * (2.0 if n < 128 else 1.0), seed=1).assign(mode="causal")
    table = cliffs.scan(pd.concat([a, b]), ["mode"], work="work")
    assert list(table["mode"]) == ["causal"] and list(table["length"]) == [128]
    step = cliffs.pair(b, 127, 128, work="work")
    assert step.verdict == cliffs.DOWN and step.ratio == pytest.approx(0.5, rel=0.05)
    assert cliffs.pair(b, 127, 1000) is None
    assert "127 -> 128" in cliffs.describe(table, ["mode"])[0]
    every = cliffs.scan(a, ["mode"], work="work", jumps_only=False)
    assert len(every) == len(LENGTHS) - 1 and set(every.verdict) <= {cliffs.NONE, cliffs.UNCLEAR}


def test_scan_keeps_groups_whose_key_column_is_empty():
    # Stored tables mix sweeps: a column only the version sweep fills (probe_mlx) is empty for the others,
    # and re-reading the stored data must find the same cliffs as the run did.
    b = sweep(lambda n: quadratic(n) * (2.0 if n < 128 else 1.0)).assign(mode="causal", probe_mlx=None)
    table = cliffs.scan(b, ["mode", "probe_mlx"], work="work")
    assert list(table["length"]) == [128]
