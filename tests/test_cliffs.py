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


# --- the call-count artifact and the confirmation pass (review 2026-11-30) -----------------------------------

FINE = list(range(100, 160))
SYNC_MS = 0.1  # a sample's fixed cost (synchronization), divided by the calls in the sample


def host_noise(rng, n):
    """30% of samples 1.3-1.7x slower, in stretches, and 3% jitter (the GPU host's shape)."""
    slow = np.repeat(rng.random(n // 4 + 1) < 0.3, 4)[:n]
    return np.where(slow, rng.uniform(1.3, 1.7, n), 1.0) * np.exp(rng.normal(0, 0.03, n))


def per_call_sweep(true_ms, calls_of, *, repeats=5, seed=0) -> pd.DataFrame:
    """Measured ms per call = (calls x true time + one sync) / calls, with host noise, `repeats` rounds."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(repeats):
        noise = host_noise(rng, len(FINE))
        for n, f in zip(FINE, noise):
            c = calls_of(n)
            rows.append(
                {"cfg": "a", "length": n, "trial": t, "calls": c, "value": f * (true_ms(n) + SYNC_MS / c)}
            )
    return pd.DataFrame(rows)


def confirmation_rows(candidates, true_ms, *, calls=50, pairs=20, seed=1) -> pd.DataFrame:
    """What the confirmation pass stores: each candidate's two lengths alternated for `pairs` pairs, one call
    count for both, the same host noise (a sample's host state is shared within a pair half the time)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _, c in candidates.iterrows():
        a, b = int(c.before_length), int(c.length)
        noise = host_noise(rng, 2 * pairs)
        for p in range(pairs):
            for k, n in enumerate((a, b) if p % 2 == 0 else (b, a)):
                value = noise[2 * p + k] * (true_ms(n) + SYNC_MS / calls)
                rows.append(
                    {
                        "cfg": "a",
                        "length": n,
                        "pair": p,
                        "before_length": a,
                        "after_length": b,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows)


def flat(n):
    return 0.05


def test_flat_curve_with_varying_call_counts_has_candidates_but_no_confirmed_cliff():
    rng = np.random.default_rng(5)
    counts = {n: int(rng.integers(1, 4)) for n in FINE}  # the old method: 1-3 calls, chosen per length
    old = per_call_sweep(flat, counts.get)
    candidates = cliffs.scan(old, ["cfg"], tolerance=0.1, family_wise=False)
    assert len(candidates) >= 3  # the artifact: steps wherever the call count changes
    changed = [counts[int(a)] != counts[int(b)] for a, b in zip(candidates.before_length, candidates.length)]
    assert (
        np.mean(changed) >= 0.8
    )  # most where the count changed (a few are plain noise: the screen is liberal)
    judged = cliffs.confirm(candidates, confirmation_rows(candidates, flat), ["cfg"], tolerance=0.1)
    assert len(judged) == len(candidates) and not judged.confirmed.any()
    assert judged.confirm_n.eq(20).all()


def test_flat_curve_with_one_call_count_per_sweep_confirms_nothing():
    for seed in range(5):
        sweep_rows = per_call_sweep(flat, lambda n: 50, seed=seed)
        candidates = cliffs.scan(sweep_rows, ["cfg"], tolerance=0.1, family_wise=False)
        judged = cliffs.confirm(
            candidates, confirmation_rows(candidates, flat, seed=seed), ["cfg"], tolerance=0.1
        )
        assert not judged.confirmed.any()


def test_a_planted_step_is_confirmed_and_nothing_else():
    def step(n):  # the published shape: lengths below 128 slow, 128 and above fast
        return 0.08 if n < 128 else 0.05

    sweep_rows = per_call_sweep(step, lambda n: 50, repeats=7)
    candidates = cliffs.scan(sweep_rows, ["cfg"], tolerance=0.1, family_wise=False)  # the liberal screen
    assert (127, 128) in set(zip(candidates.before_length, candidates.length))
    judged = cliffs.confirm(candidates, confirmation_rows(candidates, step), ["cfg"], tolerance=0.1)
    real = judged[judged.confirmed]
    assert list(zip(real.before_length, real.length)) == [(127, 128)]
    assert real.iloc[0].confirm_verdict == cliffs.DOWN and real.iloc[0].confirm_high < 0.7


def test_a_candidate_without_confirmation_rows_stays_unconfirmed():
    candidates = cliffs.scan(
        per_call_sweep(lambda n: 0.08 if n < 128 else 0.05, lambda n: 50), ["cfg"], tolerance=0.1
    )
    judged = cliffs.confirm(candidates, pd.DataFrame(), ["cfg"], tolerance=0.1)
    assert len(judged) == len(candidates) and not judged.confirmed.any()


def test_the_screen_nominates_a_step_whose_median_lies_beyond_the_envelope_despite_one_slow_trial():
    # 2.3x where the work allows 1.78x (the H200's unfused 1536 -> 2047 step); one round of five caught the
    # shorter length slow and the longer fast, which widens the paired interval across the envelope's edge
    rows = [
        {"cfg": "a", "length": n, "trial": t, "work": n * n, "value": v}
        for n, values in ((1536, [0.90, 0.91, 0.93, 0.93, 1.19]), (2047, [2.09, 2.11, 2.13, 2.14, 1.60]))
        for t, v in enumerate(values)
    ]
    df = pd.DataFrame(rows)
    (step,) = cliffs.steps(df, work="work", tolerance=0.1, family_wise=False)
    assert step.verdict == cliffs.UNCLEAR and step.n == 5  # its interval alone would not nominate it
    (candidate,) = cliffs.scan(df, ["cfg"], work="work", tolerance=0.1, family_wise=False).itertuples()
    assert candidate.verdict == cliffs.UP and candidate.ratio > 2.0
    flat = pd.DataFrame([{**r, "value": 0.1 * r["work"] / 1536**2} for r in rows])  # time follows the work
    assert cliffs.scan(flat, ["cfg"], work="work", tolerance=0.1, family_wise=False).empty


def test_the_screen_margin_nominates_a_step_just_inside_the_edge_and_nothing_farther():
    # A's sweep of the 3362327 twins: unfused bool 1536 -> 2047 at 2.207x against an edge of 1.776 x 1.25 = 2.22x
    def sweep_at(ratio):
        values = {
            1536: [0.90, 0.91, 0.92, 0.93, 0.94],
            2047: [0.92 * ratio * f for f in (0.98, 0.99, 1, 1.01, 1.02)],
        }
        return pd.DataFrame(
            [
                {"cfg": "a", "length": n, "trial": t, "work": n * n, "value": v}
                for n, vs in values.items()
                for t, v in enumerate(vs)
            ]
        )

    def nominated(ratio, margin):
        return cliffs.scan(
            sweep_at(ratio), ["cfg"], work="work", tolerance=0.25, family_wise=False, margin=margin
        )

    assert nominated(2.207, 0.0).empty
    (candidate,) = nominated(2.207, 0.05).itertuples()
    assert candidate.verdict == cliffs.UP
    assert nominated(2.0, 0.05).empty  # 10% inside the edge: no candidate
    assert nominated(1.0, 0.05).empty  # time that follows the work


def test_more_looks_widen_the_confirmation_interval():
    def step(n):
        return 0.08 if n < 128 else 0.05

    candidates = cliffs.scan(
        per_call_sweep(step, lambda n: 50, repeats=7), ["cfg"], tolerance=0.1, family_wise=False
    )
    confirmations = confirmation_rows(candidates, step)
    one = cliffs.confirm(candidates, confirmations, ["cfg"], tolerance=0.1)
    three = cliffs.confirm(candidates, confirmations, ["cfg"], tolerance=0.1, looks=3)
    width = lambda t: (t.confirm_high.astype(float) / t.confirm_low.astype(float)).to_numpy()  # noqa: E731
    assert (width(three) > width(one)).all()  # each of three looks at a Bonferroni share of the error rate


def test_a_step_is_what_most_of_its_processes_found():
    up, down, none, unclear = cliffs.UP, cliffs.DOWN, cliffs.NONE, cliffs.UNCLEAR
    assert cliffs.majority([up]) == up and cliffs.majority([up, up]) == up
    assert cliffs.majority([none, up, up]) == up  # one odd process, the notebook's own included, is outvoted
    assert cliffs.majority([up, none, none]) == none
    assert cliffs.majority([down, none]) == cliffs.VARIES and cliffs.majority([down, up]) == cliffs.VARIES
    assert cliffs.majority([up, unclear, none]) == cliffs.VARIES  # a jump and a contradiction, no majority
    assert cliffs.majority([up, unclear]) == unclear  # an unsure process counts against every verdict
    assert cliffs.majority([up, unclear, unclear]) == unclear and cliffs.majority([unclear, none]) == unclear


def test_a_step_is_settled_when_more_processes_could_not_change_its_majority():
    up, none, unclear = cliffs.UP, cliffs.NONE, cliffs.UNCLEAR
    assert not cliffs.settled([up], 3) and not cliffs.settled([none], 3)  # a first process never settles it
    assert cliffs.settled([up, up], 3) and cliffs.settled([none, none], 3)  # two of three agree
    assert not cliffs.settled([up, none], 3) and not cliffs.settled([up, unclear], 3)  # the third decides
    assert cliffs.settled([unclear, unclear], 3)  # no verdict can reach two of three
    assert cliffs.settled([up, none, up], 3) and cliffs.settled([up], 1)
    assert not cliffs.settled([up, up], 4) and cliffs.settled([up, up, up], 4)  # more than half of all four


def slow_below_128(n):
    return 0.08 if n < 128 else 0.05


def test_a_step_another_process_does_not_find_varies_and_is_no_cliff():
    # the H200's process-dependent steps: the same step 1.61x in one process and 1.07x in another
    candidates = cliffs.scan(
        per_call_sweep(slow_below_128, lambda n: 50, repeats=7), ["cfg"], tolerance=0.1, family_wise=False
    )
    here = confirmation_rows(candidates, slow_below_128).assign(process=0)
    same = confirmation_rows(candidates, slow_below_128, seed=2).assign(process=1)
    flat_there = confirmation_rows(candidates, flat, seed=2).assign(process=1)

    both = cliffs.confirm(candidates, pd.concat([here, same]), ["cfg"], tolerance=0.1)
    (cliff,) = both[both.confirmed].itertuples()
    assert (cliff.before_length, cliff.length, cliff.confirm_verdict) == (127, 128, cliffs.DOWN)
    assert cliff.other_processes.endswith("(down)") and float(cliff.other_processes.split()[0]) < 0.7

    varies = cliffs.confirm(candidates, pd.concat([here, flat_there]), ["cfg"], tolerance=0.1)
    step = varies[(varies.before_length == 127) & (varies.length == 128)].iloc[0]
    assert not varies.confirmed.any() and step.confirm_verdict == cliffs.VARIES
    assert (
        step.confirm_ratio < 0.7
    )  # without a majority the ratio and interval stay the notebook process's own
    assert step.other_processes.endswith("(none)") and step.process_verdicts == "down, none"


def test_a_step_the_notebook_process_found_flat_is_a_cliff_where_most_processes_find_it():
    # ea85dcf: one run's process found 512 -> 513 flat where ten fresh processes found a jump
    candidates = cliffs.scan(
        per_call_sweep(slow_below_128, lambda n: 50, repeats=7), ["cfg"], tolerance=0.1, family_wise=False
    )
    flat_here = confirmation_rows(candidates, flat).assign(process=0)
    jumps = [confirmation_rows(candidates, slow_below_128, seed=s).assign(process=s) for s in (1, 2)]
    table = cliffs.confirm(candidates, pd.concat([flat_here, *jumps]), ["cfg"], tolerance=0.1)
    step = table[(table.before_length == 127) & (table.length == 128)].iloc[0]
    assert (
        step.confirmed and step.confirm_verdict == cliffs.DOWN and step.process_verdicts == "none, down, down"
    )
    assert step.confirm_ratio < 0.7  # the ratio of the first process that found the majority's verdict
    assert "(none)" in step.other_processes and "(down)" in step.other_processes


def test_paired_step_reads_the_notebook_process_where_several_measured():
    candidates = cliffs.scan(
        per_call_sweep(slow_below_128, lambda n: 50, repeats=7), ["cfg"], tolerance=0.1, family_wise=False
    )
    here = confirmation_rows(candidates, slow_below_128).assign(process=0)
    there = confirmation_rows(candidates, flat, seed=2).assign(process=1)
    alone = cliffs.paired_step(here, 127, 128, tolerance=0.1)
    mixed = cliffs.paired_step(pd.concat([there, here]), 127, 128, tolerance=0.1)
    assert mixed == alone and mixed.verdict == cliffs.DOWN


def test_the_sweep_judges_a_step_on_its_rounds_paired_ratios_so_a_slow_round_cancels():
    # every round at its own host speed (0.7x to 1.6x), the same for all its lengths; 1% jitter within a round
    rng = np.random.default_rng(3)
    speed = [1.0, 1.6, 0.7, 1.4, 0.8]
    rows = [
        {"cfg": "a", "length": n, "trial": t, "value": 0.05 * f * np.exp(rng.normal(0, 0.01))}
        for t, f in enumerate(speed)
        for n in FINE[:10]
    ]
    paired = cliffs.steps(pd.DataFrame(rows), tolerance=0.1, family_wise=False)
    assert all(s.high / s.low < 1.1 and s.verdict == cliffs.NONE for s in paired)
    assert all("paired ratios" in s.method and s.n == 5 for s in paired)
    unpaired = cliffs.steps(pd.DataFrame(rows).drop(columns="trial"), tolerance=0.1, family_wise=False)
    assert all(s.high / s.low > 1.3 for s in unpaired)  # the rounds' speeds land in both lengths' samples
    assert all("unpaired medians" in s.method for s in unpaired)
