"""Notebook 01's analysis on synthetic stored rows with planted effects: statistics, tables, charts, findings.

The claims' block comparisons run through the real measure.compare_claims and core.blocks.compare on the tiny
model, with each trial's per-token time planted (and a host speed that jumps from block to block)."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import blocks, stats, verdicts
from mlx_workbook.investigations.kv_cache import analysis as kv
from mlx_workbook.investigations.kv_cache import findings as kv_findings
from mlx_workbook.investigations.kv_cache import measure as kv_measure
from mlx_workbook.investigations.kv_cache.findings import findings
from mlx_workbook.investigations.kv_cache.measure import TIME_METRIC

BASE = dict(device="Test GPU", backend="cuda", mlx="0.0.1", dtype="float32", bits=np.nan)
LENGTHS = (10, 100, 1000, 4000)
KV_BYTES = 1000  # bytes of keys + values per token in the synthetic model
M = "tiny"  # the model of every synthetic row (the block comparisons run on the tiny preset)
CLAIM_TOKENS = 256


def _claim_rows(tiny, monkeypatch, slope: dict, *, max_blocks=12, jitter=0.002, seed=0) -> list[dict]:
    """The claims' comparisons through measure.compare_claims, each trial's per-token time planted: 2 ms +
    slope[strategy] x the trial's mean context (length + claim_tokens / 2), times a host speed that jumps by up
    to 1.5x from block to block (pairing must cancel it), with 0.2% jitter."""
    rng = np.random.default_rng(seed)
    host = {"speed": 1.0, "calls": 0}

    def planted(loaded, prompt, *, strategy, length, tokens, window_tokens=None, **_):
        span = window_tokens or tokens  # a fixed-context trial's context runs over its window only

        def trial():
            if host["calls"] % 2 == 0:  # two variants per block: a new host speed per block
                host["speed"] = rng.uniform(1.0, 1.5)
            host["calls"] += 1
            ms = 2.0 + slope[strategy] * (length + span / 2)
            return ms * host["speed"] * math.exp(rng.normal(0, jitter))

        return trial

    monkeypatch.setattr(kv_measure, "per_token_trial", planted)
    monkeypatch.setattr(kv_measure, "fixed_context_trial", planted)
    # planted values per trial, not generations: each block calls them back to back
    monkeypatch.setattr(kv_measure, "claim_block", lambda tokens, chunk_tokens: blocks.back_to_back)
    run = blocks.Rows()
    plans = kv_measure.claim_comparisons(
        list(slope),
        [10, 100],
        max(LENGTHS),
        flat_strategy="preallocated",
        flat_tolerance=0.05,
        copy_tolerance=0.03,
    )
    kv_measure.compare_claims(
        run,
        tiny,
        plans,
        tokens=CLAIM_TOKENS,
        budget_s=60,
        min_blocks=4,
        max_blocks=max_blocks,
        warmup=0,
        step=256,
        window=500,
        seed=seed,
    )
    return [dict(BASE, **row) for row in run.rows]


def copy_gbs(tiny) -> float:
    """The bandwidth at which a copy per token costs exactly a planted concat slope of 1e-4 ms per token of
    context (2 x the cache's bytes per token, at the long comparison's mean context)."""
    from mlx_workbook.models import roofline

    kv_bytes = roofline.kv_bytes_per_position(tiny.config, tiny.dtype)
    mean_context = max(LENGTHS) + CLAIM_TOKENS / 2
    return 2 * kv_bytes * mean_context / (1e-4 * mean_context * 1e-3) / 1e9


def _rows(slope_ms_per_token: dict, *, lengths=LENGTHS, repeats=6, drift=0.0, seed=0) -> list[dict]:
    """Per-token times 2 ms + slope x length; round t of every length and strategy is slowed by a shared
    factor (1 + drift for odd rounds), which paired ratios must cancel."""
    rng = np.random.default_rng(seed)
    return [
        dict(
            BASE,
            experiment="per_length",
            metric=TIME_METRIC,
            model=M,
            strategy=s,
            length=n,
            trial=t,
            value=(2.0 + k * n) * (1 + drift * (t % 2)) * (1 + rng.normal(0, 0.002)),
        )
        for t in range(repeats)
        for n in lengths
        for s, k in slope_ms_per_token.items()
    ]


def ideal_ms_per_mib(gbs: float) -> float:
    """A full copy of one MiB at gbs: 2 MiB moved (read and written), in ms."""
    return 2 * 2**20 / (gbs * 1e6)


def _slice_rows(
    write_share,
    concat_share=2.0,
    *,
    gbs=4000.0,
    bandwidth=True,
    sizes=(64, 256, 1024),
    trials=5,
    noise=0.0,
    overhead=0.05,
    seed=0,
    settled_share=None,
) -> list[dict]:
    """The slice_update probe's rows: each variant's time per write is a fixed overhead plus its share of a full
    copy of the buffer at gbs (concatenate at 2x: a copy at half the bandwidth, as MLX's on CUDA), times
    lognormal noise per trial; with the stored bandwidth row unless bandwidth=False; settled writes (each followed
    by a synchronize) at settled_share when given."""
    variants = [("slice_update", write_share), ("concatenate", concat_share)]
    variants += [] if settled_share is None else [(kv_measure.SETTLED, settled_share)]
    rng = np.random.default_rng(seed)
    rows = [
        dict(
            BASE,
            experiment="slice_update",
            metric="ms_per_update",
            variant=variant,
            size_mb=size,
            trial=t,
            value=(overhead + share * ideal_ms_per_mib(gbs) * size) * math.exp(rng.normal(0, noise)),
        )
        for size in sizes
        for variant, share in variants
        for t in range(trials)
    ]
    if bandwidth:
        rows.append(
            dict(
                BASE,
                experiment="bandwidth",
                metric="ceiling_gbs",
                value=gbs,
                unit="GB/s",
                trial=0,
                source="a probe",
            )
        )
    return rows


def _full(tiny, monkeypatch, slope_ms_per_token: dict, drift=0.0, slice_copies=False) -> pd.DataFrame:
    rows = _rows(slope_ms_per_token, drift=drift) + _claim_rows(tiny, monkeypatch, slope_ms_per_token)
    rows.append(
        dict(
            BASE,
            experiment="bandwidth",
            metric="ceiling_gbs",
            value=copy_gbs(tiny),
            unit="GB/s",
            trial=0,
            source="a test",
        )
    )
    for s in slope_ms_per_token:
        for n in LENGTHS:
            held = min(n, 500) if s == "rotating" else n
            rows += [
                dict(
                    BASE,
                    experiment="per_length",
                    metric="cache_bytes",
                    model=M,
                    strategy=s,
                    length=n,
                    trial=t,
                    value=held * KV_BYTES,
                )
                for t in range(3)
            ]
            rows += [
                dict(
                    BASE,
                    experiment="per_length",
                    metric="decode_peak_memory_gb",
                    model=M,
                    strategy=s,
                    length=n,
                    trial=t,
                    value=1 + held * KV_BYTES / 1e9,
                )
                for t in range(3)
            ]
        phases = [("graph build", 0.8), ("sampling", 0.2), ("encode/launch", 0.5), ("wait for device", 2.5)]
        rows += [
            dict(
                BASE,
                experiment="time_split",
                metric="phase_ms",
                phase=p,
                model=M,
                strategy=s,
                length=4000,
                trial=t,
                value=v,
            )
            for t in range(3)
            for p, v in [*phases, ("other", 0.0), ("total", 4.0)]
        ]
    rows += _slice_rows(1.0 if slice_copies else 0.0, gbs=copy_gbs(tiny), bandwidth=False)
    for s, same, prefix in [("preallocated", 1.0, 24), ("concat", 1.0, 24), ("rotating", 0.0, 20)]:
        rows.append(
            dict(BASE, experiment="identity", metric="tokens_identical", strategy=s, trial=0, value=same)
        )
        rows.append(
            dict(
                BASE,
                experiment="identity",
                metric="identical_prefix",
                strategy=s,
                trial=0,
                value=prefix,
                prompt_tokens=188,
                window=200,
            )
        )
    return pd.DataFrame(rows)


def test_statistics_find_a_known_slope_and_where_copying_starts_to_cost():
    df = pd.DataFrame(_rows({"concat": 1e-4, "preallocated": 0.0}))  # concat: +0.1 ms per 1000 tokens
    sl = kv.slopes(df).set_index("strategy")
    assert sl.loc["concat", "ms_per_1k_tokens"] == pytest.approx(0.1, abs=0.01)
    assert sl.loc["preallocated", "low"] < 0 < sl.loc["preallocated", "high"]
    flat = kv.relative_change(df, M, "preallocated", 10, 100)  # a % change
    assert flat.low < 1 and flat.high > -1
    assert kv.relative_change(df, M, "concat", 10, 100).value == pytest.approx(
        100 * (2.01 / 2.001 - 1), abs=0.2
    )
    ratios = kv.strategy_ratios(df, M, "concat", "preallocated")
    assert ratios.set_index("length").ratio[4000] == pytest.approx(2.4 / 2.0, rel=0.01)
    assert (ratios.pairs == 6).all()
    # 2.4/2.0 at 4000 and 2.1/2.0 at 1000: beyond a 3% tolerance from 1000 tokens on, not at 100
    assert kv.first_costly_length(ratios, 0.03) == 1000
    assert kv.first_costly_length(ratios, 0.5) is None
    times = kv.per_token_times(df, M, [10, 100])
    pooled = stats.pooled_ratio(times, "strategy", "concat", "preallocated", ["length"], paired_on="trial")
    assert pooled.median == pytest.approx(1.0, abs=0.01) and pooled.n == 12


def test_paired_ratios_cancel_a_drift_shared_by_the_strategies_of_a_round():
    df = pd.DataFrame(_rows({"concat": 0.0, "preallocated": 0.0}, drift=0.5))  # odd rounds 50% slower
    ratios = kv.strategy_ratios(df, M, "concat", "preallocated")
    assert (ratios.low > 0.98).all() and (ratios.high < 1.02).all()


def _findings(df, copy_tolerance=0.03) -> dict:
    return {
        f.id: f
        for f in findings(
            df,
            presets=[M],
            strategies=["concat", "preallocated", "rotating"],
            lengths=list(LENGTHS),
            original_lengths=[10, 100],
            flat_tolerance=0.05,
            copy_tolerance=copy_tolerance,
            step=256,
            window=500,
        )
    }


def test_findings_judge_planted_effects(tiny, monkeypatch):
    df = _full(tiny, monkeypatch, {"concat": 1e-4, "preallocated": 0.0, "rotating": 0.0}, drift=0.3)
    out = _findings(df)
    assert set(out) == {
        "per_token_time_flat",
        "per_token_full_range_tiny",
        "kv_copy_no_impact",
        "kv_preallocated_buffers_no_impact",
        "copy_cost_tiny",
        "slice_update_creates_new_arrays",
        "cache_bytes_tiny",
        "time_split",
        "strategies_identical_tokens",
    }
    # concat costs +0.7% from 10 tokens (mean context 138): no impact within 3%, despite the host's jumps
    copy = out["kv_copy_no_impact"]
    assert copy.verdict == verdicts.HOLDS and copy.measured["low"] < 0.69 < copy.measured["high"]
    assert copy.measured["stop_reason"] == blocks.DECIDED and copy.measured["n_blocks"] == 4
    assert "n=4 paired blocks" in copy.statement and "stopped: decided" in copy.statement
    # one measurement for the two copy claims: one verdict, the second refers to the first (counted once)
    same = out["kv_preallocated_buffers_no_impact"]
    assert same.verdict == verdicts.HOLDS and same.measured["same_as"] == "kv_copy_no_impact"
    assert "same_as" not in copy.measured
    # the expected cost of a copy per token, from the bytes moved at the stored bandwidth (planted so that a copy
    # costs the concat slope's 0.413 ms), beside the measured change at the longest context; as a % of the
    # reference's median ms per token over the blocks (host speed included: 2-3 ms)
    reference_ms = kv.block_ms(df, kv_measure.COPY_LONG, M)["preallocated"]
    assert copy.measured["expected_pct_at_longest"] == pytest.approx(100 * 0.4128 / reference_ms, rel=1e-3)
    assert "0.413 ms at 10 GB/s from a test" in copy.statement and "should cost +" in copy.statement
    cost = out["copy_cost_tiny"]
    assert (
        cost.headline
        and cost.verdict == "measured"
        and cost.measured["no_cost_within_tolerance"] == "does not hold"
    )
    assert cost.measured["value"] == pytest.approx(100 * 0.4128 / 2, rel=0.02)  # 2.4128 / 2.0 ms
    # the sweep, descriptively: +5% at 1000 and +20% at 4000 tokens: beyond 3% from 1000 tokens on
    assert cost.measured["onset"] == 1000 and "from 1000 tokens on" in cost.statement
    # flat: preallocated from 100 against from 10 tokens, planted equal
    flat = out["per_token_time_flat"]
    assert flat.verdict == verdicts.HOLDS and abs(flat.measured["value"]) < 0.5
    assert flat.measured["strategy"] == "preallocated" and flat.measured["claim_tokens"] == CLAIM_TOKENS
    assert (
        "Test GPU (cuda, mlx 0.0.1)" in flat.statement
        and "256-token trial trimmed back to its context every 16 tokens" in flat.statement
    )
    # the full range is descriptive (short trials): no verdict
    assert out["per_token_full_range_tiny"].verdict == "measured"
    assert re.search(r"concat \+(19|20)\.\d%", out["per_token_full_range_tiny"].statement)  # 2.4 / 2.0 ms
    assert out["slice_update_creates_new_arrays"].verdict == verdicts.DOES_NOT_HOLD
    assert "in place" in out["slice_update_creates_new_arrays"].statement
    assert out["slice_update_creates_new_arrays"].measured["value"] == pytest.approx(0.0, abs=0.05)
    assert out["cache_bytes_tiny"].measured["value"] == pytest.approx(4000 * KV_BYTES / 2**20)
    assert "rotating 0.477 MiB" in out["cache_bytes_tiny"].statement
    split = out["time_split"]
    assert split.measured["value"] == 4.0 and "4000 tokens" in split.statement
    assert split.measured["wait for device_ms"] == 2.5 and "wait for device 2.5 ms (62%)" in split.statement
    # rotating differs at token 20: the window (200) holds 188 + 13 tokens, so the first 13 must agree
    assert out["strategies_identical_tokens"].verdict == verdicts.HOLDS
    assert "rotating first differs at token 20 (context 208)" in out["strategies_identical_tokens"].statement


def test_with_a_fixed_kernel_comparison_the_copy_cost_is_judged_on_it_and_the_default_stands_beside(
    tiny, monkeypatch
):
    """MLX CUDA: the run's own long-context comparison (default kernels) planted at concat -5%, the one with
    cuDNN SDPA off (kv_cache.fixed_kernel's rows) at +20.6%; the copy's cost is judged on the second, the first
    is stated beside it, and the expected cost's reference is the fixed-kernel comparison's."""
    df = _full(tiny, monkeypatch, {"concat": -0.1 / 4128, "preallocated": 0.0, "rotating": 0.0})
    fixed = [
        dict(row, experiment=kv_measure.COPY_LONG_VECTOR_SDPA, cudnn_sdpa_setting="0")
        for row in _claim_rows(tiny, monkeypatch, {"concat": 1e-4, "preallocated": 0.0}, seed=1)
        if row["experiment"] == kv_measure.COPY_LONG
    ]
    df = pd.concat([df, pd.DataFrame(fixed)], ignore_index=True)
    cost = _findings(df)["copy_cost_tiny"]
    assert cost.measured["judged_on"] == kv_measure.COPY_LONG_VECTOR_SDPA
    assert cost.measured["value"] == pytest.approx(100 * 0.4128 / 2, rel=0.02)
    assert cost.measured["no_cost_within_tolerance"] == verdicts.DOES_NOT_HOLD
    assert cost.measured["change_pct_default_kernels"] == pytest.approx(-5.0, abs=0.3)
    assert "At 4000 tokens of context with cuDNN SDPA off concat measures +2" in cost.statement
    assert re.search(r"default kernel choice \(cuDNN SDPA on\), .* measured -5\.\d% \[", cost.statement)
    reference_ms = kv.block_ms(df, kv_measure.COPY_LONG_VECTOR_SDPA, M)["preallocated"]
    assert cost.measured["expected_pct_at_longest"] == pytest.approx(100 * 0.4128 / reference_ms, rel=1e-3)
    # both comparisons are in the claims' table and chart
    table = kv.block_outcomes(df)
    assert {kv_measure.COPY_LONG, kv_measure.COPY_LONG_VECTOR_SDPA} <= set(table.experiment)
    fig = kv.chart_blocks(df)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("cuDNN SDPA off" in label for label in labels)
    # the legend below the axes (it hid the last row inside them), naming the grey band for what it is here
    (legend,) = fig.legends
    assert "no-effect band (published 0 ± tolerance)" in [t.get_text() for t in legend.get_texts()]
    # without the fixed-kernel rows (Metal, the CPU) the run's own comparison decides, as before
    own = _findings(df[df.experiment != kv_measure.COPY_LONG_VECTOR_SDPA])["copy_cost_tiny"]
    assert "judged_on" not in own.measured and own.measured["value"] == pytest.approx(-5.0, abs=0.3)


def test_a_costly_copy_a_growing_time_and_a_copying_slice_update_are_reported_as_such(tiny, monkeypatch):
    # concat +41% from 10 tokens; preallocated at 100 tokens of context +41% over at 10 (each trial decodes at
    # its context, to 16 tokens past it: 2 + 1.08 vs 2 + 0.18 ms)
    df = _full(tiny, monkeypatch, {"concat": 2e-2, "preallocated": 1e-2, "rotating": 0.0}, slice_copies=True)
    out = _findings(df, copy_tolerance=0.02)
    assert out["kv_copy_no_impact"].verdict == verdicts.DOES_NOT_HOLD
    assert out["per_token_time_flat"].verdict == verdicts.DOES_NOT_HOLD
    assert out["per_token_time_flat"].measured["value"] == pytest.approx(100 * (3.08 / 2.18 - 1), rel=0.02)
    su = out["slice_update_creates_new_arrays"]
    assert su.verdict == verdicts.HOLDS and "like a copy of it" in su.statement
    assert su.measured["value"] == pytest.approx(1.0, rel=0.05)  # grows as a copy at the stored bandwidth


def test_an_undecided_comparison_states_the_smallest_effect_it_could_resolve(tiny, monkeypatch):
    """concat planted at +3.0% from 10 tokens, on the edge of the 3% band, with 5% jitter per trial: the interval
    straddles the edge, so the comparison runs to max_blocks; the stored row says so and the verdict states the
    resolvable effect. Without any block comparison a claim is inconclusive and says why."""
    edge = 0.06 / (10 + CLAIM_TOKENS / 2)  # concat: 2 + edge x 138 = 2.06 ms
    rows = _claim_rows(tiny, monkeypatch, {"concat": edge, "preallocated": 0.0}, max_blocks=6, jitter=0.05)
    df = pd.DataFrame(_rows({"concat": 0.0, "preallocated": 0.0}) + rows)
    (stop,) = blocks.stop_rows(df, kv_measure.COPY_ORIGINAL).itertuples()
    assert stop.stop_reason == blocks.MAX_BLOCKS and stop.n_blocks == 6 and not stop.decided
    assert stop.low < 3 < stop.high and stop.resolvable_pct == pytest.approx((stop.high - stop.low) / 2)
    assert len(kv.block_log_ratios(df, kv_measure.COPY_ORIGINAL, M)) == 6
    (copy, _) = kv_findings.copy_claims(df, M, [10, 100], 0.03)
    assert copy.verdict == verdicts.INCONCLUSIVE and copy.measured["resolvable_pct"] == stop.resolvable_pct
    assert f"the smallest effect these blocks could resolve is ±{stop.resolvable_pct:.2g}%" in copy.statement
    no_blocks = pd.DataFrame(_rows({"concat": 0.0, "preallocated": 0.0}))
    flat = kv_findings.flat_in_original_range(no_blocks, M, [10, 100], 0.05)
    assert flat.verdict == verdicts.INCONCLUSIVE and "did not reach two blocks" in flat.statement


def test_a_write_that_grows_like_a_copy_at_the_measured_bandwidth_holds_though_concatenate_is_slower():
    """The write grows as a full copy at the stored bandwidth; concatenate at half that bandwidth (2x, as on
    CUDA). Judged against the bytes a copy moves the claim holds; against concatenate's growth (the old rule)
    the write would sit at 0.5, exactly on the threshold."""
    df = pd.DataFrame(_slice_rows(1.0, 2.0, noise=0.02))
    f = kv_findings.slice_update_claim(df)
    assert f.verdict == verdicts.HOLDS and f.measured["value"] == pytest.approx(1.0, abs=0.05)
    assert f.measured["gbs"] == 4000 and f.measured["bandwidth_source"] == "a probe"
    assert f.measured["ms_per_mib"] == pytest.approx(ideal_ms_per_mib(4000), rel=0.05)
    assert f.measured["concat_share"]["value"] == pytest.approx(2.0, abs=0.1)
    assert "of a full copy of the buffer" in f.statement and "at 4000 GB/s from a probe" in f.statement
    assert "64->256 MiB: write" in f.statement and "like a copy of it" in f.statement
    old, _ = kv_findings.growth_share(df[df.experiment == "slice_update"])
    assert old.value == pytest.approx(0.5, abs=0.05)


def test_a_flat_write_does_not_hold_and_a_fixed_overhead_cancels():
    """A write whose time does not grow with the buffer is in place, however slow each call is; a write that
    copies keeps its share under a large fixed cost per call (the slope ignores it)."""
    f = kv_findings.slice_update_claim(pd.DataFrame(_slice_rows(0.0, noise=0.02)))
    assert f.verdict == verdicts.DOES_NOT_HOLD and "writes in place" in f.statement
    assert f.measured["low"] < 0 < f.measured["high"] < 0.1
    for share in (0.0, 1.0):
        slow = kv_findings.slice_update_claim(pd.DataFrame(_slice_rows(share, overhead=5.0)))
        assert slow.measured["value"] == pytest.approx(share, abs=1e-9)


def test_the_claim_is_judged_on_settled_writes_and_states_the_writes_issued_at_once():
    """As on MLX CUDA: a write after a synchronize is in place (0), one issued as soon as the previous write's eval
    returned copies (1). slice_update itself writes in place, so the claim does not hold; the statement says that
    the writes issued at once copied."""
    f = kv_findings.slice_update_claim(pd.DataFrame(_slice_rows(1.0, noise=0.02, settled_share=0.0)))
    assert f.verdict == verdicts.DOES_NOT_HOLD and f.measured["judged"] == kv_measure.SETTLED
    assert f.measured["value"] == pytest.approx(0.0, abs=0.05)
    assert f.measured["issued_at_once_share"]["value"] == pytest.approx(1.0, abs=0.05)
    assert "mx.synchronize()" in f.statement and "such writes copied" in f.statement
    both_in_place = kv_findings.slice_update_claim(
        pd.DataFrame(_slice_rows(0.0, noise=0.02, settled_share=0.0))
    )
    assert (
        both_in_place.verdict == verdicts.DOES_NOT_HOLD
        and "such writes copied" not in both_in_place.statement
    )
    stored_before = kv_findings.slice_update_claim(pd.DataFrame(_slice_rows(1.0, noise=0.02)))
    assert stored_before.verdict == verdicts.HOLDS and stored_before.measured["judged"] == "slice_update"


def test_without_a_stored_bandwidth_the_write_is_judged_against_concatenate_and_says_so():
    f = kv_findings.slice_update_claim(pd.DataFrame(_slice_rows(0.2, 2.0, bandwidth=False, noise=0.02)))
    assert f.measured["reference"].startswith("concatenate") and "gbs" not in f.measured
    assert f.measured["value"] == pytest.approx(0.1, abs=0.02)  # 0.2 / 2.0 of concatenate's growth
    assert f.verdict == verdicts.DOES_NOT_HOLD
    assert "stored no bandwidth" in f.statement and "of concatenate's growth" in f.statement
    assert f.measured["steps"] == pytest.approx([0.1, 0.1], abs=0.02)


def test_the_interval_brackets_the_planted_share_of_a_copy():
    """A write planted at 0.8 of a full copy, 5% noise per trial, 5 trials per size, over 30 simulated runs:
    the slope's share is unbiased, and its 95% interval holds 0.8 in most runs (a percentile bootstrap of
    medians of 5 trials covers about 90%, not 95%) and lies above 0.5 in every run."""
    found = []
    for seed in range(30):
        df = pd.DataFrame(_slice_rows(0.8, noise=0.05, sizes=(16, 64, 256, 1024), seed=seed))
        found.append(kv_findings.copy_share(df[df.experiment == "slice_update"], 4000.0, n_boot=500)[0])
    assert np.mean([x.value for x in found]) == pytest.approx(0.8, abs=0.01)
    assert np.mean([x.low < 0.8 < x.high for x in found]) >= 0.8
    assert all(verdicts.at_least(x, kv_findings.COPY_LIKE_SHARE) == verdicts.HOLDS for x in found)


def test_charts_and_tables_come_from_the_stored_rows(tiny, monkeypatch):
    df = _full(tiny, monkeypatch, {"concat": 1e-4, "preallocated": 0.0, "rotating": 0.0})
    assert kv.model_label(df, M) == "tiny fp32" and kv.slug("qwen3-0.6b") == "qwen3_0_6b"
    for fig in [
        kv.chart_per_token(df, M, 500),
        kv.chart_copy_ratio(df, M, 0.05),
        kv.chart_cache_bytes(df, M),
        kv.chart_peak_memory(df, M),
        kv.chart_time_split(df, M),
        kv.chart_slice_update(df),
    ]:
        assert "Test GPU" in fig.axes[0].get_title()
    assert list(kv.wide(kv.per_token_table(df, M)).columns) == ["concat", "preallocated", "rotating"]
    ident = kv.identity_table(df).set_index("strategy")
    assert ident.identical.tolist() == [True, True, False] and ident.context_at_divergence.rotating == 208
    split = kv.time_split_table(df, M)
    assert split.pipelined_ms.tolist() == pytest.approx([2.4, 2.0, 2.0], rel=0.01)
