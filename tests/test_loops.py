"""Decode-loop variants against mlx-lm's generate_step, on the tiny preset (real MLX on the CPU)."""

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.generate import generate_step
from mlx_lm.sample_utils import make_logits_processors, make_sampler

from mlx_workbook import models
from mlx_workbook.core import blocks, results
from mlx_workbook.investigations.decode_loop import measure as loop_bench
from mlx_workbook.investigations.decode_loop import plans, spread
from mlx_workbook.investigations.decode_loop import stats as loop_stats
from mlx_workbook.investigations.kv_cache import measure as kvcache
from mlx_workbook.probes import decode, loops, sampling

N = 24


def lively(dtype: str):
    """The tiny preset with weights scaled up (kv_cache's varied_model): at the usual 0.02 init greedy decoding
    repeats one token, which would make 'identical tokens' a weak test; scaled, it emits varied tokens."""
    return kvcache.varied_model("tiny", scale=10.0, dtype=dtype)


@pytest.fixture(scope="module")
def lm():
    return lively("float32")


@pytest.fixture(scope="module")
def prompt(lm):
    return models.random_prompt(lm, 12, seed=3)


def run(lm, prompt, name, n=N, **kw):
    v = loops.variant(name)
    return decode.measure_generation(
        lm.model, prompt, n, loop=v.loop(), **({"seed": 7} | kw if v.options else kw)
    ).tokens


def reference(lm, prompt, n=N, seed=7, **kw):
    mx.random.seed(seed)
    return [int(t) for t, _ in generate_step(prompt, lm.model, max_tokens=n, **kw)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_every_greedy_variant_emits_generate_step_tokens(dtype, lm, prompt):
    model = lm if dtype == "float32" else lively(dtype)
    ref = reference(model, prompt)
    assert len(set(ref)) > N // 3, "the test model must emit varied tokens"
    greedy = [n for n, v in loops.VARIANTS.items() if v.family == "greedy"]
    assert {
        "mlx_lm",
        "sync",
        "pipelined",
        "batched_10",
        "logprobs_always",
        "eval_logits",
        "default_stream",
    } <= set(greedy)
    for name in greedy:
        assert run(model, prompt, name) == ref, name


@pytest.mark.parametrize("n", [1, 9, 10, 23])
def test_batched_schedule_yields_exactly_max_tokens(lm, prompt, n):
    toks = list(loops.library_loop(lm.model, prompt, n, schedule="batched", eval_every=10))
    assert toks == reference(lm, prompt, n)


def test_sampled_variants_same_seed_same_tokens(lm, prompt):
    # temperature 1 without filters: the fast path, mlx-lm's sampler (x * 1/1) and generate_step agree
    ref = reference(lm, prompt, sampler=make_sampler(temp=1.0))
    assert ref != reference(lm, prompt)  # really sampled, not greedy
    for name in ("sample_fast", "sample_t1", "sample_before_001"):
        assert run(lm, prompt, name) == ref, name
    assert run(lm, prompt, "sample_fast") == run(lm, prompt, "sample_fast")  # deterministic under the seed
    assert run(lm, prompt, "sample_fast", seed=8) != ref  # and the seed matters
    # the filter chain: uncompiled, compiled as one function, and mlx-lm's per-filter compiled sampler
    chain = reference(lm, prompt, sampler=make_sampler(**loops.CHAIN))
    assert run(lm, prompt, "sample_chain") == chain
    assert run(lm, prompt, "sample_chain_compiled") == chain


def test_sampled_identity_in_bfloat16():
    # Samplers reading the same bf16 logits agree under the same seed (x * 1/1 is exact); the compiled chain
    # agrees with the uncompiled one. Drawing from bf16 logprobs instead (sample_before_001) may not: they are
    # the logits minus logsumexp rounded to bf16, the same distribution only up to that rounding.
    lm16 = lively("bfloat16")
    p = models.random_prompt(lm16, 12, seed=3)
    assert run(lm16, p, "sample_fast") == run(lm16, p, "sample_t1")
    assert run(lm16, p, "sample_chain") == run(lm16, p, "sample_chain_compiled")


def test_repetition_penalty_loop_equals_vectorized_and_mlx_lm(lm, prompt):
    ref = reference(lm, prompt, logits_processors=make_logits_processors(repetition_penalty=1.1))
    assert ref != reference(lm, prompt)  # the penalty changes this model's tokens
    assert run(lm, prompt, "rep_penalty") == ref
    assert run(lm, prompt, "rep_penalty_loop") == ref


def test_logprobs_returned_when_asked_match_generate_step(lm, prompt):
    ours = list(loops.steps(lm.model, prompt, 6, return_logprobs=True))
    theirs = list(generate_step(prompt, lm.model, max_tokens=6))
    for (t, lp), (t2, lp2) in zip(ours, theirs):
        assert t == int(t2)
        np.testing.assert_allclose(np.array(lp), np.array(lp2), rtol=1e-5, atol=1e-5)
    assert all(lp is None for _, lp in loops.steps(lm.model, prompt, 3))


def test_compiled_chain_samples_like_uncompiled():
    logits = mx.random.normal((1, 512), key=mx.random.key(0)) * 3
    draws = []
    for compiled in (False, True):
        mx.random.seed(5)
        s = sampling.chain_sampler(**loops.CHAIN, compiled=compiled)
        draws.append([s(logits).item() for _ in range(20)])
    assert draws[0] == draws[1] and len(set(draws[0])) > 1
    assert sampling.top_k_filter(logits, 5).__ge__(-1e30).sum().item() == 5


@pytest.mark.parametrize("schedule", ["sync", "pipelined", "batched"])
def test_clocks_split_host_time_without_changing_the_tokens(lm, prompt, schedule):
    plain = list(loops.library_loop(lm.model, prompt, 8, schedule=schedule, eval_every=3))
    phase, per_token = loops.PhaseClock(), loops.PerTokenClock()
    for clock in (phase, per_token):
        timed = list(loops.library_loop(lm.model, prompt, 8, schedule=schedule, eval_every=3, clock=clock))
        assert timed == plain
        assert clock.tokens == 8 and clock.wall_s > 0 and set(clock.totals) == set(loops.PHASES)
        assert clock.other_s >= -1e-9  # the phases lie inside the first-to-last-token interval
    assert len(per_token.splits) == 7  # one per interval between consecutive tokens
    for s in per_token.splits:
        assert s["total"] == pytest.approx(sum(s[p] for p in loops.PHASES) + s["other"])
    assert sum(s["total"] for s in per_token.splits) == pytest.approx(per_token.wall_s)
    assert per_token.totals == pytest.approx({p: sum(s[p] for s in per_token.splits) for p in loops.PHASES})
    assert per_token.totals["graph build"] > 0 and per_token.totals["encode/launch"] > 0
    if schedule != "batched":  # batched: most intervals only hand over an already computed token
        assert all(s["wait for device"] > 0 for s in per_token.splits)


def test_prefill_in_chunks_fills_the_cache_like_one_pass(lm, prompt):
    from mlx_lm.models.cache import make_prompt_cache

    one, chunked = make_prompt_cache(lm.model), make_prompt_cache(lm.model)
    loops.prefill(lm.model, prompt, one)
    loops.prefill(lm.model, prompt, chunked, step=5)  # 12 tokens: 5 + 5 + 2
    assert one[0].offset == chunked[0].offset == prompt.size
    k1, k2 = one[0].state[0][..., : prompt.size, :], chunked[0].state[0][..., : prompt.size, :]
    assert np.allclose(np.array(k1), np.array(k2), atol=1e-5)
    short = list(loops.library_loop(lm.model, prompt, 6, prefill_step_size=4))
    assert short == list(loops.library_loop(lm.model, prompt, 6))  # chunking does not change the tokens


def test_compare_runs_each_plan_in_blocks_and_records_why_it_stopped(tmp_path, lm):
    run_ = results.start_run("99_test", {}, run_dir=tmp_path / "r")
    toks = loop_bench.compare(
        run_,
        lm,
        ["loop_overhead", "pipelining"],
        tolerances=plans.Tolerances(),
        prompt_tokens=8,
        max_tokens=21,
        budget_s=60,
        min_blocks=3,
        max_blocks=3,
    )
    loop_bench.record_agreement(run_, lm, toks)
    loop_bench.time_split(run_, lm, ["logprobs_always", "sync"], prompt_tokens=8, max_tokens=6, repeats=2)
    sampling.time_sampling(run_, lm, ["greedy", "chain", "chain_compiled"], calls=3, repeats=4)
    df = run_.measurements
    trials = df[df.metric == plans.TIME_METRIC]
    # each plan only its own variants, every variant once per block, in a random order
    assert set(trials[trials.experiment == "loop_overhead"].variant) == {
        "pipelined",
        "mlx_lm",
        "logprobs_always",
    }
    assert set(trials[trials.experiment == "pipelining"].variant) == {"pipelined", "batched_10"}
    assert len(trials) == 3 * 3 + 3 * 2 and (trials.value > 0).all() and (trials.tokens_per_trial == 21).all()
    assert set(trials[trials.experiment == "pipelining"].window_tokens) == {10}  # one batched eval per window
    first_use = df[df.experiment == "first_use"]  # one warm-up per variant, shared by the plans
    assert sorted(first_use.variant) == sorted(["pipelined", "mlx_lm", "logprobs_always", "batched_10"])
    outcome = blocks.stop_rows(df, "loop_overhead")
    assert set(outcome.variant) == {"mlx_lm", "logprobs_always"} and (outcome.n_blocks == 3).all()
    assert outcome.stop_reason.isin([blocks.DECIDED, blocks.MAX_BLOCKS]).all()
    assert loop_stats.effect(df, lm.label, *plans.FASTEST) is not None
    agree = df[df.experiment == "agreement"]
    assert (agree[agree.reference == "mlx_lm"].value == 1.0).all()
    split = df[(df.experiment == "split") & (df.metric == "phase_share_pct")]
    sums = split.groupby(["variant", "trial"]).value.sum()
    assert np.allclose(sums, 100, atol=1e-6) or (sums <= 100 + 1e-6).all()
    assert set(split.phase) == set(loops.PHASES) | {"other"}
    samp = df[df.experiment == "sampling"]
    assert set(samp.sampler) == {"greedy", "chain", "chain_compiled", "transfer"} and (samp.value > 0).all()
    # paired: every repeat ran each sampler once, back to back, in its own order (positions 0, 1, 2)
    timed = samp[samp.sampler != "transfer"]
    assert (timed.groupby("trial").position.apply(sorted).map(tuple) == (0, 1, 2)).all()
    assert len(timed) == 3 * 4


def test_median_ms_per_token_windows_a_batched_loop():
    """Per-token intervals of a loop that evaluates every 10 tokens are 9 near-zero and one long: a median of
    single intervals would say ~0 ms, a median of 10-interval windows gives the real time per token."""
    stamps = [0.0]
    for i in range(40):
        stamps.append(stamps[-1] + (0.010 if i % 10 == 0 else 0.0001))
    gen = decode.Generation(1, list(range(41)), ttft_s=0.0, decode_s=stamps[-1], token_times_s=stamps)
    assert gen.median_ms_per_token() == pytest.approx(0.1)
    assert gen.median_ms_per_token(10) == pytest.approx((10 + 9 * 0.1) / 10)
    assert loop_bench.window(["pipelined", "batched_10"]) == 10 and loop_bench.window(["pipelined"]) == 1


def test_identity_check_on_a_model_with_clear_margins(tmp_path):
    run_ = results.start_run("99_test", {}, run_dir=tmp_path / "r")
    varied = kvcache.varied_model("tiny", dtype="float32")
    table = loop_bench.check_identity(
        run_, varied, ["mlx_lm", "pipelined", "batched_10", "sample_fast"], prompt_tokens=8, max_tokens=16
    )
    assert list(table.variant) == ["pipelined", "batched_10"]  # greedy library loops only
    assert (table.equal_share == 1.0).all() and (table.identical_prefix == 16).all()
    assert (table.distinct_tokens > 4).all()  # varied tokens: the comparison means something
    ident = run_.measurements
    assert set(ident.metric) == {"tokens_equal_to_reference", "identical_prefix"} and len(ident) == 4


def test_collector_paused_restores_state():
    import gc

    with loop_bench.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_bad_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown decode-loop variant"):
        loops.variant("warp_speed")
    with pytest.raises(models.ModelError):
        loops.parse_model("no-such-model:4")
    with pytest.raises(models.ModelError):
        loops.parse_model("tiny:7")
    assert loops.parse_model("tiny:4") == {"name": "tiny", "dtype": "bfloat16", "bits": 4}
    assert loops.parse_model("tiny:float32")["bits"] is None
    with pytest.raises(ValueError):
        list(loops.steps(None, mx.array([1]), 2, schedule="sometimes"))
    with pytest.raises(ValueError, match="unknown comparisons"):
        loop_bench.validate(["tiny:float32"], ["loop_overhead", "nope"], [], [], "")
    with pytest.raises(ValueError, match="at least one comparison"):
        loop_bench.validate(["tiny:float32"], [], ["loop_overhead"], [], "")
    with pytest.raises(ValueError, match="pipelining_model"):
        loop_bench.validate(["tiny:float32"], ["loop_overhead"], [], [], "tiny:4")
    with pytest.raises(models.ModelError):
        loop_bench.validate(["tiny:3.5"], ["loop_overhead"], [], [], "")


def test_the_samplers_go_on_until_told_decided_and_no_further_than_max_repeats():
    samplers = {name: sampling.make(name) for name in ("greedy", "fast")}
    looked = []

    def decided_at_12(so_far):
        looked.append(len(so_far))
        return len(so_far) >= 12

    timed = sampling.time_samplers(samplers, 64, calls=2, repeats=4, max_repeats=40, until=decided_at_12)
    assert len(timed) == 12 and looked == [4, 8, 12] and all(set(t) == set(samplers) for t in timed)
    never = sampling.time_samplers(
        samplers, 64, calls=2, repeats=4, max_repeats=10, until=lambda so_far: False
    )
    assert len(never) == 10  # 4 + 4 + the 2 left under the limit
    assert len(sampling.time_samplers(samplers, 64, calls=2, repeats=4)) == 4  # no `until`: the fixed count


def test_the_compiled_sampler_rows_say_why_they_stopped(tmp_path, lm, monkeypatch):
    run_ = results.start_run("99_test", {}, run_dir=tmp_path / "r")
    monkeypatch.setattr(loop_bench, "compiled_sampling_decided", lambda so_far: len(so_far) >= 6)
    sampling.time_sampling(
        run_,
        lm,
        ["chain", "chain_compiled"],
        calls=2,
        repeats=3,
        max_repeats=30,
        until=loop_bench.compiled_sampling_decided,
    )
    rows_ = run_.measurements
    chain = rows_[(rows_.experiment == "sampling") & (rows_.sampler == "chain")]
    assert len(chain) == 6 and set(chain.stop_reason) == {"decided"}


def test_the_variability_pass_goes_on_until_the_spread_decides(tmp_path, lm, monkeypatch):
    # about 8% spread: its interval straddles the band's 10% edge at 8 runs and lies below it at 16 (this seed)
    speeds = iter(np.random.default_rng(2).uniform(100, 130, 64))

    class Generation:
        def __init__(self):
            self.decode_tps, self.tokens = float(next(speeds)), [0] * 8

    monkeypatch.setattr(loop_bench.decode, "measure_generation", lambda *a, **kw: Generation())
    band = blocks.Band(10.0, 18.0)
    run_ = results.start_run("99_test", {}, run_dir=tmp_path / "r")
    loop_bench.variability(run_, lm, runs=8, prompt_tokens=4, max_tokens=8, max_runs=64, band=band)
    generations = run_.measurements[run_.measurements.experiment == plans.VARIABILITY]
    e = spread.expected_half_range(generations.value)
    assert 8 < len(generations) < 64 and set(generations.stop_reason) == {"decided"}
    assert band.decides(100 * e.low, 100 * e.high) and sorted(generations.trial) == list(
        range(len(generations))
    )

    class Undecided:  # an interval that never settles: the cap ends the pass
        def decides(self, low, high):
            return False

    capped = results.start_run("99_test", {}, run_dir=tmp_path / "c")
    loop_bench.variability(capped, lm, runs=8, prompt_tokens=4, max_tokens=8, max_runs=12, band=Undecided())
    generations = capped.measurements[capped.measurements.experiment == plans.VARIABILITY]
    assert len(generations) == 12 and set(generations.stop_reason) == {"max_runs"}


def test_the_variability_runs_are_spread_over_the_comparisons_and_the_rest_run_at_the_end(
    tmp_path, lm, monkeypatch
):
    class Generation:
        decode_tps, tokens = 100.0, [0] * 8

    monkeypatch.setattr(loop_bench.decode, "measure_generation", lambda *a, **kw: Generation())
    run_ = results.start_run("99_test", {}, run_dir=tmp_path / "r")
    spread_pass = loop_bench.Variability(run_, lm, runs=8, prompt_tokens=4, max_tokens=8)
    for name in ("first", "second", "third"):
        spread_pass.take(3, after=name)  # the third share is cut at the 8 runs asked for
    spread_pass.finish()
    generations = run_.measurements[run_.measurements.experiment == plans.VARIABILITY]
    assert list(generations["after"]) == ["first"] * 3 + ["second"] * 3 + ["third"] * 2
    assert list(generations.trial) == list(range(8)) and "stop_reason" not in generations.dropna(axis=1)


def test_the_compiled_chain_is_decided_once_its_paired_interval_leaves_the_band_edges():
    rng = np.random.default_rng(0)

    def repeats(speedup, n, noise):
        base = rng.uniform(1.0, 2.0, n)  # the host's speed moves both samplers of a repeat alike
        return [{"chain": b * speedup * np.exp(rng.normal(0, noise)), "chain_compiled": b} for b in base]

    assert loop_bench.compiled_sampling_decided(repeats(1.4, 10, 0.01))  # inside 1.2-1.6x
    assert loop_bench.compiled_sampling_decided(repeats(1.05, 10, 0.01))  # below it, above no effect
    assert not loop_bench.compiled_sampling_decided(repeats(1.2, 10, 0.05))  # on the band's edge
    assert not loop_bench.compiled_sampling_decided(repeats(1.4, 1, 0.01))  # one repeat: no interval


def test_a_skipped_variability_pass_returns_at_once_whatever_its_band(tmp_path, lm):
    # the side models get runs=0: with a band the pass once looped forever there (the H200 run at 56afd16 hung)
    run_ = results.start_run("99_test", {}, run_dir=tmp_path / "r")
    loop_bench.variability(
        run_, lm, runs=0, prompt_tokens=4, max_tokens=8, max_runs=50, band=blocks.Band(10, 18)
    )
    assert run_.measurements.empty or (run_.measurements.experiment != plans.VARIABILITY).all()
