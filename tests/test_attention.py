"""Attention sweeps and the SDPA probe on the CPU with real MLX: masks, GQA and decode-cache inputs compute the
same attention, sweeps store one row per trial, and the stored sweeps read back as pairs and ratios."""

import math
import sys

import mlx.core as mx
import numpy as np
import pandas as pd
import pytest
from mlx.utils import tree_flatten as mlx_flatten

from mlx_workbook import models
from mlx_workbook.core import intervals, results, stats
from mlx_workbook.investigations.sdpa_cliff import cliffs
from mlx_workbook.investigations.sdpa_cliff import measure as attention
from mlx_workbook.probes import ops, versions
from mlx_workbook.probes import sdpa_probe as probe


def case(**kw):
    base = dict(
        kind="prefill",
        variant="sdpa",
        mode="causal",
        dtype="float32",
        head_dim=16,
        n_q_heads=4,
        n_kv_heads=2,
        length=24,
    )
    return {**base, **kw}


def test_fine_lengths_around_boundaries():
    assert attention.around([128], [-12, -8, -4, -1, 0, 1, 4, 12]) == [116, 120, 124, 127, 128, 129, 132, 140]
    assert attention.sweep_lengths([32, 128], [64], [-1, 0, 1]) == [32, 63, 64, 65, 128]
    assert attention.around([4], [-8, 0]) == [4]  # no lengths below 1


def test_validate_rejects_bad_parameters():
    with pytest.raises(ValueError, match="mask mode"):
        attention.validate(modes=["sliding"])
    with pytest.raises(ValueError, match="dtype"):
        attention.validate(dtypes=["int8"])
    with pytest.raises(ValueError, match="multiple"):
        attention.validate(n_q_heads=6, n_kv_heads=4)
    with pytest.raises(ValueError, match="positive"):
        attention.validate(lengths=[0])


def test_masks_say_the_same_thing():
    boolean = probe.make_mask("bool", 3, 5, mx.float32)
    assert boolean.tolist() == [[True, True, True, False, False], [True, True, True, True, False], [True] * 5]
    additive = probe.make_mask("additive", 3, 5, mx.float32)
    assert (np.isneginf(np.array(additive)) == ~np.array(boolean)).all()
    assert (
        probe.make_mask("causal", 3, 5, mx.float32) == "causal"
        and probe.make_mask("none", 3, 5, None) is None
    )
    assert probe.attended_pairs("causal", 4, 4) == 10 and probe.attended_pairs("none", 4, 4) == 16
    assert probe.attended_pairs("bool", 1, 300) == 300


def test_every_mask_mode_and_variant_computes_the_same_causal_attention():
    reference = probe.make_call(case())()
    for c in [
        case(mode="additive"),
        case(mode="bool"),
        case(variant="repeat_kv"),
        case(variant="unfused"),
        case(variant="unfused", mode="bool"),
        case(variant="repeat_kv", mode="additive"),
    ]:
        assert mx.allclose(probe.make_call(c)(), reference, atol=1e-5).item(), c
    assert not mx.allclose(probe.make_call(case(mode="none"))(), reference, atol=1e-3).item()


def test_decode_reads_a_slice_of_a_step_grown_cache():
    c = case(kind="decode", mode="none", length=257)
    q, k, v, mask = probe.make_inputs(c)
    assert q.shape == (1, 4, 1, 16) and k.shape == (1, 2, 257, 16) and mask is None
    # The slice attends exactly like a contiguous copy of it would.
    scale = 1 / math.sqrt(16)
    contiguous = mx.fast.scaled_dot_product_attention(
        q, mx.array(np.array(k)), mx.array(np.array(v)), scale=scale
    )
    assert mx.allclose(probe.make_call(c)(), contiguous, atol=1e-5).item()


def test_cases_and_groups():
    cases = attention.prefill_cases(
        [64, 32, 32], modes=["causal", "none"], dtypes=["float32"], head_dims=[16], n_q_heads=4, n_kv_heads=2
    )
    assert len(cases) == 4 and [len(g) for g in probe.groups(cases)] == [2, 2]
    (dec,) = attention.decode_cases([8], dtypes=["float32"], head_dims=[16], n_q_heads=4, n_kv_heads=2)
    assert dec["mode"] == "none"
    assert len(attention.unique(cases + cases)) == 4
    gqa = attention.gqa_cases([16], [32], dtype="float32", head_dim=16, n_q_heads=4, n_kv_heads=2)
    assert {(c["kind"], c["variant"]) for c in gqa} == {
        ("prefill", "sdpa"),
        ("prefill", "repeat_kv"),
        ("decode", "sdpa"),
        ("decode", "repeat_kv"),
    }
    with pytest.raises(ValueError, match="fewer"):
        attention.gqa_cases([16], [32], dtype="float32", head_dim=16, n_q_heads=2, n_kv_heads=2)


@pytest.fixture
def run(tmp_path):
    return results.start_run("test_attention", {}, run_dir=tmp_path / "run")


def test_sweep_stores_one_row_per_trial_and_reports_broken_configurations(run):
    cases = [case(length=n) for n in (16, 32)] + [case(dtype="float32", head_dim=16, mode="bogus", length=16)]
    errors = attention.sweep(run, "prefill", cases, repeats=2, warmup=1, target_ms=0.5)
    assert len(errors) == 1 and "bogus" in errors[0]["error"]
    everything = results.read_measurements(run.run_dir)
    df = everything[everything.experiment == "prefill"]
    host = everything[everything.experiment == attention.HOST]
    assert len(host) == 2 and (host.metric == "host_probe_ms").all() and (host.sweep == "prefill").all()
    assert len(df) == 4 and set(df.trial) == {0, 1} and set(df.length) == {16, 32}
    assert (df.metric == "ms").all() and (df.value > 0).all() and (df.calls >= 1).all()
    assert set(attention.CASE_FIELDS) <= set(df.columns)
    assert attention.per_pair(df).unit.eq("ns/pair").all()
    step = attention.pair(df, 16, 32, tolerance=0.5, mode="causal")
    assert step is not None and step.expected_high == pytest.approx(
        probe.attended_pairs("causal", 32, 32) / 136
    )
    assert list(attention.at_lengths(df, [16, 32], ["mode"]).columns) == [
        "mode",
        "16 tokens (ms)",
        "32 tokens (ms)",
    ]


def test_pair_needs_one_configuration_and_pooled_ratio():
    rows = [
        dict(
            mode=m,
            variant=v,
            length=n,
            flops=float(n * n),
            value=t * (2.0 if v == "slow" else 1.0),
            kind="prefill",
            dtype="float32",
            head_dim=16,
            n_q_heads=4,
            n_kv_heads=2,
        )
        for m in ("causal", "none")
        for v in ("fast", "slow")
        for n in (16, 32)
        for t in (1.0, 1.01, 0.99)
    ]
    df = pd.DataFrame(rows)
    with pytest.raises(ValueError, match="more than one"):
        attention.pair(df, 16, 32, tolerance=0.1, mode="causal")
    assert attention.pair(df, 16, 32, tolerance=0.1, mode="causal", variant="fast").verdict == cliffs.NONE
    r = stats.pooled_ratio(df, "variant", "slow", "fast", ["mode", "length"])
    assert r.median == pytest.approx(2.0) and r.low > 1.9
    assert stats.pooled_ratio(df, "variant", "missing", "fast", ["mode"]) is None


def test_ops_run_at_decode_and_prefill_shapes(run):
    dense = ops.dense_shapes(models.preset_config("tiny"))
    moe = ops.moe_shapes(models.preset_config("tiny-moe"))
    with pytest.raises(models.ModelError):
        ops.moe_shapes(models.preset_config("tiny"))
    ops.run_ops(
        run,
        dense=dense,
        moe=moe,
        tokens=16,
        context=32,
        dtype="float32",
        bits=4,
        group_size=32,
        ops=list(ops.OPS),
        repeats=2,
        target_ms=0.5,
    )
    df = run.measurements
    assert set(df.op) == set(ops.OPS) and set(df.phase) == {"decode", "prefill"} and (df.value > 0).all()
    with pytest.raises(ValueError, match="unknown ops or phases"):
        ops.run_ops(
            run,
            dense=dense,
            moe=None,
            tokens=16,
            context=32,
            dtype="float32",
            bits=4,
            group_size=32,
            ops=["conv"],
            repeats=2,
        )
    with pytest.raises(ValueError, match="group_size"):
        ops.check_shapes(dense, 16, 32, 4, 128)


def test_prompt_latency_and_graph_build(run, tiny):
    ops.prompt_latency(run, tiny, [8, 16], repeats=2)
    ops.graph_build(run, tiny, context=8, repeats=3, warmup=1)
    df = run.measurements
    prompt, graph = df[df.experiment == "prompt"], df[df.experiment == "graph"]
    assert sorted(prompt.length.unique()) == [8, 16] and len(prompt) == 4 and (prompt.model == "tiny").all()
    # 2 flops per weight per token (tied embeddings: the logits reuse the embedding) plus causal attention.
    matmul_weights = sum(v.size for k, v in mlx_flatten(tiny.model.parameters()) if v.ndim == 2)
    assert ops.prompt_flops(tiny.config, 8) == 2.0 * 8 * matmul_weights + 2.0 * 2 * 64 * 4 * 16
    assert set(graph.metric) == {"build_ms", "eval_ms"} and len(graph) == 6 and (graph.value > 0).all()
    assert list(graph[graph.metric == "build_ms"].context) == [9, 10, 11]


def test_moe_experts_only_in_their_phases(run):
    moe = ops.moe_shapes(models.preset_config("tiny-moe"))
    dense = ops.dense_shapes(models.preset_config("tiny"))
    ops.run_ops(
        run,
        dense=dense,
        moe=moe,
        tokens=16,
        context=32,
        dtype="float32",
        bits=4,
        group_size=32,
        ops=["moe_routing", "moe_experts"],
        repeats=2,
        target_ms=0.5,
        expert_phases=["decode"],
    )
    df = run.measurements
    assert set(df[df.op == "moe_experts"].phase) == {"decode"} and set(df[df.op == "moe_routing"].phase) == {
        "decode",
        "prefill",
    }
    with pytest.raises(models.ModelError):
        ops.shapes("no-such-preset", "", tokens=16, context=32, bits=4, group_size=32)


def test_plan_builds_every_sweep_and_rejects_bad_parameters():
    p = dict(
        n_q_heads=4,
        n_kv_heads=2,
        wide_lengths=[32, 64],
        boundaries=[128],
        offsets=[-1, 0, 1],
        modes=["causal", "none"],
        variants=["sdpa", "unfused"],
        main_dtype="float32",
        main_head_dim=16,
        dtypes=["float32", "bfloat16"],
        head_dims=[16, 32],
        variant_modes=["causal"],
        variant_wide=[64],
        variant_boundaries=[128],
        decode_lengths=[64],
        decode_boundaries=[256],
        decode_offsets=[0],
        gqa_prefill_lengths=[64],
        gqa_decode_lengths=[256],
        version_lengths=[127, 128],
        version_causal_lengths=[64],
        version_decode_lengths=[256],
        tolerance=0.1,
        repeats=3,
    )
    plan = attention.plan(p)
    assert plan.prefill_lengths == [32, 64, 127, 128, 129] and plan.variant_lengths == [64, 127, 128, 129]
    # 2 modes x 2 kernels x 5 lengths, plus 2 dtypes x 2 head dims x 4 lengths less the 4 float32 d16 shared ones
    assert len(plan.prefill) == 20 + 16 - 4 and len(plan.decode) == 2 * 2 * 2
    assert len(plan.gqa) == 4 and len(plan.versions) == 2 * 2 + 1 + 1
    for bad in (dict(n_kv_heads=4), dict(tolerance=1.5), dict(modes=["sliding"]), dict(variants=["flash"])):
        with pytest.raises(ValueError):
            attention.plan({**p, **bad})


def test_sweep_uses_one_call_count_per_band_and_random_order(run):
    cases = [case(length=n) for n in (8, 16, 32, 64, 128)]
    attention.sweep(
        run, "prefill", cases, repeats=4, warmup=1, target_ms=2, min_calls=3, max_calls=50, band_ratio=2.0
    )
    df = run.measurements
    df = df[df.experiment == "prefill"]
    assert df.groupby("band").calls.nunique().eq(1).all() and df.calls.min() >= 3  # one count per band
    assert np.allclose(df.sample_ms, df.value * df.calls)
    lengths = sorted(df.length.unique())
    in_bands = df.groupby("band").length.apply(lambda n: set(n))
    for a, b in zip(lengths[:-1], lengths[1:]):  # every neighbouring pair timed together, at one count
        assert sum({a, b} <= band for band in in_bands) == 1
    assert df.groupby(["band", "length"]).size().eq(4).all()  # every (band, length) once per round
    orders = df.sort_values(["trial", "position"]).groupby("trial").length.apply(tuple)
    assert orders.nunique() > 1  # lengths visited in a fresh random order per round


def test_bands_keep_each_band_within_the_ratio_and_share_their_edges():
    per_call = [0.010, 0.011, 0.015, 0.019, 0.030, 0.031, 0.200, 0.210, 0.120]
    split = probe.bands(per_call, 2.0)
    assert split == [[0, 1, 2, 3], [3, 4, 5], [5, 6], [6, 7, 8]]
    for band in split:  # within the ratio, except a pair that alone exceeds it (30 us -> 200 us)
        times = [per_call[i] for i in band]
        assert len(band) == 2 or max(times) <= 2.0 * min(times)
    pairs = [(i, i + 1) for i in range(len(per_call) - 1)]
    assert all(sum(i in band and j in band for band in split) == 1 for i, j in pairs)
    assert probe.bands([0.01], 2.0) == [[0]] and probe.bands([], 2.0) == [[]]


def test_a_flat_sweep_timed_in_bands_has_no_step_where_the_count_changes():
    # a flat 0.05 ms curve in bands of 2 and 50 calls: each sample holds a 0.1 ms sync divided over its calls, so
    # 128 at 2 calls reads 0.10 ms and at 50 calls 0.052 ms; compared across the bands it is a 1.9x "cliff". Two
    # passes (another MLX version's two processes), bands split differently, rounds numbered on across passes.
    splits = [
        ((0, 2, [100, 110, 128]), (1, 50, [128, 140, 160])),
        ((0, 2, [100, 110]), (1, 20, [110, 128, 140, 160])),
    ]
    rows = []
    for p, split in enumerate(splits):
        for t in range(5 * p, 5 * p + 5):
            for band, calls, lengths in split:
                rows += [
                    {
                        **case(length=n),
                        "flops": float(n * n),
                        "band": band,
                        "calls": calls,
                        "trial": t,
                        "value": 0.05 + 0.1 / calls,
                    }
                    for n in lengths
                ]
    df = pd.DataFrame(rows)
    every = attention.scan(df, tolerance=0.1, family_wise=False, jumps_only=False)
    assert sorted(zip(every.before_length, every.length)) == [(100, 110), (110, 128), (128, 140), (140, 160)]
    assert (
        np.allclose(every.ratio, 1.0) and every.n.eq(10).all()
    )  # each pair from its one band in every round
    assert attention.scan(df, tolerance=0.1, family_wise=False).empty  # no candidate at all
    unbanded = attention.scan(df.drop(columns="band"), tolerance=0.1, family_wise=False)
    assert len(unbanded)  # the same samples read without their bands make steps of the count change
    step = attention.pair(df, 128, 140, tolerance=0.1)
    assert step is not None and abs(step.ratio - 1.0) < 1e-9


def test_confirmation_pass_alternates_the_two_lengths(run):
    candidates = pd.DataFrame(
        [
            {
                **{k: case()[k] for k in attention.GROUP},
                "before_length": 16,
                "length": 32,
                "excess": 1.3,
                "verdict": cliffs.UP,
            }
        ]
    )
    errors = attention.confirm(run, "prefill", candidates, pairs=4, target_ms=1, min_calls=2, max_calls=20)
    assert errors == []
    rows = run.measurements
    rows = rows[rows.experiment == "prefill_confirm"]
    assert len(rows) == 8 and rows.calls.nunique() == 1 and set(rows.pair) == {0, 1, 2, 3}
    firsts = rows[rows.position == 0].sort_values("pair").length.tolist()
    assert firsts == [16, 32, 16, 32]  # A B, B A, ...
    from mlx_workbook.investigations.sdpa_cliff import analysis as an

    real, transient, _ = an.outcomes(rows, "prefill", candidates, {"tolerance": 0.25})
    assert len(real) + len(transient) == 1 and (transient.confirm_n.tolist() == [4] or len(real) == 1)


def test_prompt_confirm_alternates_two_prompt_lengths(run, tiny):
    ops.prompt_confirm(run, tiny, [(8, 16)], pairs=3)
    rows = run.measurements
    rows = rows[rows.experiment == "prompt_confirm"]
    assert len(rows) == 6 and set(rows.pair) == {0, 1, 2} and (rows.model == "tiny").all()
    assert rows[rows.position == 0].sort_values("pair").length.tolist() == [8, 16, 8]
    assert (rows.before_length == 8).all() and (rows.after_length == 16).all() and (rows.value > 0).all()


def test_prompt_confirm_takes_lengths_read_from_a_table(run, tiny):
    # 03 hands it the steps of a candidates table, whose lengths are floats (the H200 run failed on 16.0)
    steps = pd.DataFrame({"before_length": [8.0], "length": [16.0]})
    ops.prompt_confirm(run, tiny, list(zip(steps.before_length, steps.length)), pairs=1)
    rows = run.measurements
    assert set(rows[rows.experiment == "prompt_confirm"].length) == {8, 16}


def two_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {**{k: case()[k] for k in attention.GROUP}, "before_length": a, "length": b, "excess": 1.3}
            for a, b in ((16, 32), (32, 48))
        ]
    ).assign(verdict=cliffs.UP)


def test_an_unclear_confirmation_gets_another_pass_of_pairs_and_only_it(run, monkeypatch):
    seen = []

    def first_step_open(step_rows, edges, t):
        seen.append((step_rows[0]["before_length"], len(step_rows), round(t, 6)))
        return step_rows[0]["before_length"] == 16

    monkeypatch.setattr(probe, "still_open", first_step_open)
    attention.confirm(
        run, "prefill", two_candidates(), pairs=3, passes=3, target_ms=1, min_calls=2, max_calls=20
    )
    rows = run.measurements
    rows = rows[rows.experiment == "prefill_confirm"]
    pairs = rows.groupby("before_length").pair.apply(lambda p: sorted(set(p)))
    assert pairs[16] == list(range(9)) and pairs[32] == [0, 1, 2]  # three passes of 3 pairs, numbered on
    assert sorted(set(rows.confirm_pass)) == [0, 1, 2] and (rows.process == 0).all()
    # looked at after the first two passes (not after the last), with the t value of 3 and 6 pairs at the
    # confidence `judge` uses: Bonferroni over the 2 steps and the 3 looks
    t = [round(intervals.t_quantile(1 - 0.05 / 2 / 6, n - 1), 6) for n in (3, 6)]
    assert seen == [(16, 6, t[0]), (32, 6, t[0]), (16, 12, t[1])]


def test_a_pass_times_its_steps_in_rounds_one_pair_of_each_in_a_fresh_order():
    steps = [[case(length=a), case(length=b)] for a, b in ((8, 16), (16, 24), (24, 32))]
    config = {"confirm": steps, "pairs": 6, "target_ms": 1, "min_calls": 1, "max_calls": 5}
    rounds = []
    out = probe.run(config, on_round=rounds.append)
    assert out["errors"] == [] and len(rounds) == 6
    for pair, done in enumerate(rounds):  # every step's pair `pair`, both lengths, in this round
        assert {r["pair"] for r in done} == {pair} and len(done) == 2 * len(steps)
        assert sorted({r["before_length"] for r in done}) == [8, 16, 24]
    visits = [tuple(r["before_length"] for r in done[::2]) for done in rounds]
    assert len(set(visits)) > 1  # the order of the steps changes from round to round
    firsts = [done[0]["length"] == done[0]["before_length"] for done in rounds]
    assert firsts == [True, False] * 3  # A B, then B A, ... within each step


def test_the_probe_stops_a_step_as_cliffs_would_judge_it():
    # the probe's restated rule and the workbook's verdict on the same pairs: open exactly where unclear
    rng = np.random.default_rng(3)
    for _ in range(300):
        n, work = int(rng.integers(3, 30)), float(rng.choice([1.0, 1.5, 4.0]))
        logs = rng.normal(math.log(rng.uniform(0.6, 6.0)), rng.uniform(0.001, 0.3), n)
        step_rows = [
            {"pair": i, "length": length, "ms": ms, "before_length": 16, "after_length": 32}
            for i, x in enumerate(logs)
            for length, ms in ((16, 1.0), (32, math.exp(x)))
        ]
        confidence = 1 - 0.05 / int(rng.integers(1, 200))
        t = intervals.t_quantile(1 - (1 - confidence) / 2, n - 1)
        _, verdict = cliffs.judge_paired(logs, work, 0.25, confidence)
        assert probe.still_open(step_rows, list(cliffs.envelope(work, 0.25)), t) == (
            verdict == cliffs.UNCLEAR
        )


def test_every_step_is_re_measured_in_a_fresh_process_and_a_third_takes_only_the_open_ones(run, monkeypatch):
    # what each process finds: 16 -> 32 a jump here and none in the first fresh process (open), 32 -> 48 none twice
    found = {16: [cliffs.UP, cliffs.NONE, cliffs.UP], 32: [cliffs.NONE, cliffs.NONE]}

    def scripted(chosen, confirmations, by, **kw):
        measured = [
            ", ".join(found[a][: confirmations[confirmations.before_length == a].process.fillna(0).nunique()])
            for a in chosen.before_length
        ]
        return chosen.assign(
            process_verdicts=measured, confirm_verdict=[cliffs.majority(v.split(", ")) for v in measured]
        )

    monkeypatch.setattr(attention.cliffs, "confirm", scripted)
    # every interval wide open: each process takes every pass, a fresh one too (before method 9 it had one)
    monkeypatch.setattr(
        attention, "stopping", lambda pairs, passes, family: {"passes": passes, "t": [1e9] * passes}
    )
    started = []
    real_run_probe = versions.run_probe
    monkeypatch.setattr(
        versions, "run_probe", lambda *a, **kw: started.append((a[1], kw)) or real_run_probe(*a, **kw)
    )
    errors = attention.confirm(
        run,
        "prefill",
        two_candidates(),
        pairs=3,
        passes=2,
        processes=3,
        target_ms=1,
        min_calls=2,
        max_calls=20,
    )
    assert errors == [] and [kw["fresh"] for _, kw in started] == [True, True]
    assert [len(config["edges"]) for config, _ in started] == [2, 1]  # each step's envelope goes with it
    rows = run.measurements
    rows = rows[rows.experiment == "prefill_confirm"]
    steps = rows.groupby("process").before_length.apply(lambda b: sorted(set(b)))
    assert steps[0] == [16, 32] and steps[1] == [16, 32]  # a step found flat is re-measured too
    assert steps[2] == [16]  # the third process only where the first two disagreed
    fresh = rows[rows.process > 0]
    assert sorted(set(fresh.pair)) == list(range(6)) and sorted(set(fresh.confirm_pass)) == [0, 1]
    assert "probe_mlx" not in fresh.dropna(axis=1) and (fresh.value > 0).all()


def test_run_probe_fresh_runs_this_mlx_in_another_process(monkeypatch):
    started = []
    real_subprocess_run = versions.subprocess.run
    monkeypatch.setattr(
        versions.subprocess, "run", lambda cmd, **kw: started.append(cmd) or real_subprocess_run(cmd, **kw)
    )
    config = {"confirm": [[case(length=16), case(length=32)]], "pairs": 3, "target_ms": 1, "max_calls": 5}
    result = versions.run_probe("current", config, fresh=True)
    assert result.ok, result.message
    assert result.data["mlx"] == mx.__version__ and len(result.data["rows"]) == 6
    assert [cmd[0] for cmd in started] == [sys.executable] and str(versions.PROBE) in started[0]
