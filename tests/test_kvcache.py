"""KV-cache strategies and their measurements, on real MLX (CPU): tokens, bytes, in-place writes, trial order."""

import math

import pytest

from mlx_workbook import models
from mlx_workbook.core import blocks, hoststate, results
from mlx_workbook.investigations.kv_cache import fixed_kernel
from mlx_workbook.investigations.kv_cache import measure as kvcache
from mlx_workbook.models import roofline
from mlx_workbook.probes import decode, loops


@pytest.fixture(scope="module")
def varied():
    # weights scaled up so greedy decoding emits varied tokens (the plain preset repeats one token)
    return kvcache.varied_model("tiny", scale=10.0)


def test_varied_model_emits_varied_tokens(varied):
    tokens = decode.measure_generation(varied.model, models.random_prompt(varied, 16, seed=1), 24).tokens
    assert len(set(tokens)) > 8


def test_strategies_emit_identical_tokens_within_the_window(varied):
    prompt = models.random_prompt(varied, 40, seed=1)
    reference = decode.measure_generation(varied.model, prompt, 40).tokens  # mlx-lm's default cache
    table = kvcache.compare_tokens(varied, prompt, 40, strategies=kvcache.STRATEGIES, step=16, window=128)
    assert table.identical.all() and set(table.strategy) == set(kvcache.STRATEGIES)
    for strategy in kvcache.STRATEGIES:
        cache = kvcache.make_cache(strategy, varied.model, step=16, window=128)
        assert decode.measure_generation(varied.model, prompt, 40, prompt_cache=cache).tokens == reference


def test_rotating_cache_past_its_window_drops_context_and_stays_bounded(varied):
    prompt_len, window, n = 40, 64, 60
    prompt = models.random_prompt(varied, prompt_len, seed=1)
    table = kvcache.compare_tokens(varied, prompt, n, strategies=["rotating"], step=16, window=window)
    table = table.set_index("strategy")
    # token i is sampled with i + prompt_len tokens of context: identical while that fits in the window
    first = table.loc["rotating", "first_divergence"]
    assert not table.loc["rotating", "identical"] and first >= window - prompt_len + 1
    cache = kvcache.make_cache("rotating", varied.model, window=window)
    decode.measure_generation(varied.model, prompt, n, prompt_cache=cache)
    assert cache[0].offset == prompt_len + n and kvcache.cache_tokens(cache) == window
    assert kvcache.cache_nbytes(cache) == window * roofline.kv_bytes_per_position(varied.config, varied.dtype)


@pytest.mark.parametrize("step", [16, 256])
def test_cache_bytes_follow_the_strategy(varied, step):
    prompt_len, n = 40, 30
    prompt = models.random_prompt(varied, prompt_len, seed=2)
    per_token = roofline.kv_bytes_per_position(varied.config, varied.dtype)
    assert per_token == 2 * 2 * 2 * 16 * 4  # 2 (k, v) x 2 layers x 2 kv heads x head dim 16 x float32
    total = prompt_len + n  # generate_step runs one step ahead of the last token it yields
    concat = kvcache.make_cache("concat", varied.model)
    decode.measure_generation(varied.model, prompt, n, prompt_cache=concat)
    assert kvcache.cache_nbytes(concat) == total * per_token and kvcache.cache_tokens(concat) == total
    pre = kvcache.make_cache("preallocated", varied.model, step=step)
    decode.measure_generation(varied.model, prompt, n, prompt_cache=pre)
    assert kvcache.cache_nbytes(pre) == math.ceil(total / step) * step * per_token
    assert kvcache.cache_tokens(pre) == total and pre[0].step == step


def test_split_per_token_continues_the_cache_with_the_reference_tokens(varied):
    prompt = models.random_prompt(varied, 20, seed=3)
    ref = decode.measure_generation(varied.model, prompt, 17).tokens
    cache = kvcache.make_cache("preallocated", varied.model)
    first = decode.measure_generation(varied.model, prompt, 2, prompt_cache=cache).tokens
    filled = cache[0].offset
    parts = kvcache.split_per_token(varied.model, cache, first[-1], 8)
    assert cache[0].offset == filled + 9  # 8 timed steps and the untimed first one, no second prefill
    assert set(parts) == {*loops.PHASES, "other", "total"} and parts["total"] > 0
    assert all(parts[p] > 0 for p in ("graph build", "encode/launch", "wait for device"))
    cont = list(loops.library_loop(varied.model, prompt, 17, schedule="sync", logprobs="always"))
    assert cont == ref  # the synchronous loop split per token emits the reference's tokens


def test_measure_length_records_time_memory_bytes_and_split(tmp_path, tiny):
    run = results.start_run("99_test", {}, run_dir=tmp_path / "kv")
    prompt = models.random_prompt(tiny, 64, seed=0)
    kvcache.measure_length(
        run,
        tiny,
        prompt,
        strategy="concat",
        length=50,
        decode_tokens=6,
        trial=0,
        step=256,
        window=128,
        split_tokens=4,
    )
    df = run.measurements
    per = df[df.experiment == "per_length"].set_index("metric").value
    assert set(per.index) == {
        "ms_per_token",
        kvcache.TIME_METRIC,
        "decode_peak_memory_gb",
        "prefill_peak_memory_gb",
        "cache_bytes",
        "cache_tokens",
    }
    assert per.cache_tokens == 56 and per.cache_bytes == 56 * roofline.kv_bytes_per_position(
        tiny.config, tiny.dtype
    )
    assert per.ms_per_token > 0 and per[kvcache.TIME_METRIC] > 0
    assert per.decode_peak_memory_gb * 1e9 >= tiny.weight_bytes()
    split = df[df.experiment == "time_split"].set_index("phase").value
    assert set(df[df.experiment == "time_split"].metric) == {"phase_ms"}
    assert set(split.index) == {*loops.PHASES, "other", "total"} and split.total > 0
    assert (df.model == "tiny").all() and (df.strategy == "concat").all() and (df.length == 50).all()


def test_slice_update_writes_in_place_while_concatenate_copies(tmp_path):
    run = results.start_run("99_test", {}, run_dir=tmp_path / "su")
    kvcache.slice_update_probe(run, sizes_mb=[32], updates=4, repeats=3, warmup=1, dtype="float32")
    med = run.measurements.groupby("variant").value.median()
    assert set(med.index) == set(kvcache.SLICE_VARIANTS)
    assert med.slice_update < 0.25 * med.concatenate and med[kvcache.SETTLED] < 0.25 * med.concatenate


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strategies=["bogus"]),
        dict(lengths=[1, 10]),
        dict(decode_tokens=1),
        dict(step=0),
        dict(keep=64),
        dict(split_lengths=[33]),
        dict(max_length=100),
        dict(original_lengths=[10, 25]),
        dict(original_lengths=[10]),
        dict(repeats=0),
        dict(slice_sizes_mb=[0]),
        dict(slice_sizes_mb=[4, 4]),  # one size: no growth with the buffer to judge
        dict(slice_repeats=1),  # the interval resamples trials within each size
        dict(identity_tokens=200, identity_window=64),
        dict(claim_tokens=1),
        dict(chunk_tokens=1),
        dict(chunk_tokens=-4),
        dict(budget_s=0),
        dict(flat_strategy="rotating"),
        dict(min_blocks=2, max_blocks=8),
        dict(min_blocks=8, max_blocks=4),
        dict(claim_tokens=400, max_length=300),
    ],
)
def test_impossible_settings_are_one_clear_error(kwargs):
    args = dict(strategies=["concat"], lengths=[10, 100], decode_tokens=4, step=16, window=64) | kwargs
    with pytest.raises(ValueError):
        kvcache.validate(args.pop("strategies"), args.pop("lengths"), **args)
    with pytest.raises(ValueError):
        kvcache.make_cache("bogus", None)


def test_sweep_runs_rounds_over_every_length_with_strategies_back_to_back(tmp_path, tiny):
    run = results.start_run("test_kv", {}, run_dir=tmp_path / "sweep")
    kvcache.sweep(
        run,
        tiny,
        strategies=["concat", "preallocated"],
        lengths=[12, 6],
        decode_tokens=3,
        repeats=2,
        warmup=0,
        step=8,
        window=32,
    )
    rows = run.measurements
    rows = rows[rows.metric == kvcache.TIME_METRIC].reset_index(drop=True)
    # stored in time order: round 0 (both lengths, both strategies) before round 1, lengths ascending
    assert rows.trial.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert rows.length.tolist() == [6, 6, 12, 12] * 2
    # the strategies' order rotates from round to round, so neither always runs first
    assert rows.strategy.tolist()[:2] == ["concat", "preallocated"]
    assert rows.strategy.tolist()[4:6] == ["preallocated", "concat"]


def test_sweep_warms_every_strategy_at_every_length_before_the_timed_rounds(tmp_path, tiny, monkeypatch):
    calls = []
    measure_length = kvcache.measure_length

    def spy(run, loaded, prompt, **kw):  # the real measurement, its arguments noted
        calls.append(
            (kw["length"], kw["strategy"], kw["record"] if "record" in kw else True, kw["decode_tokens"])
        )
        return measure_length(run, loaded, prompt, **kw)

    monkeypatch.setattr(kvcache, "measure_length", spy)
    run = results.start_run("test_kv", {}, run_dir=tmp_path / "warm")
    kvcache.sweep(
        run,
        tiny,
        strategies=["concat", "preallocated"],
        lengths=[12, 6, 20],
        decode_tokens=4,
        repeats=1,
        warmup=1,
        step=8,
        window=32,
    )
    first_timed = next(i for i, c in enumerate(calls) if c[2])
    warm, timed = calls[:first_timed], calls[first_timed:]
    assert not any(c[2] for c in warm) and all(c[2] for c in timed)
    # every (length, strategy) pair of the timed rounds was run once before them, nothing of it recorded
    assert {(n, s) for n, s, _, _ in timed} <= {(n, s) for n, s, _, _ in warm}
    assert [c[3] for c in warm if c[0] != 6] == [kvcache.WARMUP_DECODE_TOKENS] * 4
    assert (run.measurements.trial >= 0).all() and len(
        run.measurements.query("metric == @kvcache.TIME_METRIC")
    ) == 6


def test_claim_comparisons_pair_what_each_claim_needs():
    plans = {
        c.experiment: c
        for c in kvcache.claim_comparisons(
            kvcache.STRATEGIES,
            [10, 25, 100],
            4000,
            flat_strategy="preallocated",
            flat_tolerance=0.05,
            copy_tolerance=0.03,
        )
    }
    assert set(plans) == {kvcache.COPY_ORIGINAL, kvcache.COPY_LONG, kvcache.FLAT_ORIGINAL}
    copy = plans[kvcache.COPY_ORIGINAL]
    assert copy.variants == {"concat": ("concat", 10), "preallocated": ("preallocated", 10)}
    assert copy.reference == "preallocated" and copy.tolerance == 0.03
    assert plans[kvcache.COPY_LONG].variants["concat"] == ("concat", 4000)
    flat = plans[kvcache.FLAT_ORIGINAL]  # the two ends of the original's range, one strategy
    assert flat.variants == {"100 tokens": ("preallocated", 100), "10 tokens": ("preallocated", 10)}
    assert flat.reference == "10 tokens" and flat.tolerance == 0.05
    without_concat = kvcache.claim_comparisons(
        ["preallocated"],
        [10, 100],
        400,
        flat_strategy="preallocated",
        flat_tolerance=0.05,
        copy_tolerance=0.03,
    )
    assert [c.experiment for c in without_concat] == [kvcache.FLAT_ORIGINAL]
    other_model = kvcache.claim_comparisons(
        kvcache.STRATEGIES,
        [10, 100],
        4000,
        flat_strategy="preallocated",
        flat_tolerance=0.05,
        copy_tolerance=0.03,
        claim_model=False,
    )
    assert [c.experiment for c in other_model] == [kvcache.COPY_LONG]  # the claims are judged on the first


def test_a_fixed_context_trial_decodes_every_token_at_its_context(tiny, monkeypatch):
    """The flatness comparison's variant: `tokens` greedy tokens, the cache trimmed back to the prompt every
    `window_tokens`, so the context never runs past length + window (a plain trial's would reach length + tokens);
    every window repeats the first one's tokens (same context, greedy)."""
    caches = []
    real = kvcache.make_cache
    monkeypatch.setattr(kvcache, "make_cache", lambda *a, **k: caches.append(real(*a, **k)) or caches[-1])
    prompt = kvcache.random_prompt(tiny, 12, seed=0)
    make = kvcache.fixed_context_trial(
        tiny, prompt, strategy="preallocated", length=12, tokens=20, window_tokens=4, step=8
    )
    offsets, tokens = [], []
    for token in make():
        tokens.append(token)
        offsets.append(caches[0][0].offset)
    assert len(tokens) == 20 and tokens[4:8] == tokens[:4] == tokens[16:20]
    assert 12 <= min(offsets) and max(offsets) <= 12 + 4 + 1
    plan = {
        c.experiment: c
        for c in kvcache.claim_comparisons(
            ["concat", "preallocated"],
            [8, 16],
            24,
            flat_strategy="preallocated",
            flat_tolerance=0.05,
            copy_tolerance=0.05,
        )
    }
    assert plan[kvcache.FLAT_ORIGINAL].fixed_context and not plan[kvcache.COPY_ORIGINAL].fixed_context


@pytest.mark.parametrize("chunk_tokens", [0, 3])
def test_compare_claims_times_real_trials_in_paired_blocks(tmp_path, tiny, chunk_tokens):
    """Real decode trials on the tiny model, whole or advanced alternately in chunks: each variant's value is
    its steady-state ms per token, every block holds both variants, host state is stored per block and the
    outcome row says why it stopped."""
    run = results.start_run("test_kv", {}, run_dir=tmp_path / "blocks")
    plan = kvcache.claim_comparisons(
        ["concat", "preallocated"],
        [8, 16],
        24,
        flat_strategy="preallocated",
        flat_tolerance=0.05,
        copy_tolerance=0.05,
    )[:1]
    out = kvcache.compare_claims(
        run,
        tiny,
        plan,
        tokens=6,
        budget_s=60,
        min_blocks=3,
        max_blocks=3,
        warmup=0,
        step=8,
        window=32,
        chunk_tokens=chunk_tokens,
    )
    df = run.measurements
    values = df[(df.experiment == kvcache.COPY_ORIGINAL) & (df.metric == kvcache.TIME_METRIC)]
    assert len(values) == 6 and (values.value > 0).all() and (values.length == 8).all()
    assert (
        sorted(values.groupby("block").variant.apply(sorted).sum()) == ["concat"] * 3 + ["preallocated"] * 3
    )
    assert (values.claim_tokens == 6).all() and (values.kv_bytes_per_token == 512).all()
    assert (values.chunk_tokens == chunk_tokens).all()
    host = df[(df.experiment == kvcache.COPY_ORIGINAL) & (df.metric == hoststate.PROBE_METRIC)]
    assert len(host) == 3 and (host.value > 0).all()
    (stop,) = blocks.stop_rows(df, kvcache.COPY_ORIGINAL).itertuples()
    assert stop.n_blocks == 3 and stop.stop_reason in (blocks.DECIDED, blocks.MAX_BLOCKS)
    assert out[kvcache.COPY_ORIGINAL].blocks == 3


# kv_cache.fixed_kernel.compare's arguments on the tiny model, short enough for a child process on the CPU
FIXED_KERNEL = dict(dtype="float32", bits=None, seed=0, length=24, tolerance=0.05, tokens=6, min_blocks=3)
FIXED_KERNEL |= dict(max_blocks=3, warmup=0, step=8, window=32, keep=4, chunk_tokens=0)


def test_the_fixed_kernel_comparison_runs_in_a_fresh_process_with_cudnn_sdpa_off(tmp_path):
    """kv_cache.fixed_kernel: the long-context comparison in a child process with MLX_CUDA_USE_CUDNN_SDPA=0 (on the
    CPU the variable changes nothing, but the process, the setting and the rows' way back are the same); its rows
    land in the notebook's run, each saying the setting the child ran under."""
    run = results.start_run("test_kv", {}, run_dir=tmp_path / "fixed")
    extension = blocks.Extension(10.0, 10.0)
    fixed_kernel.compare(run, "tiny", extension=extension, budget_s=60, **FIXED_KERNEL)
    df = run.measurements
    values = df[(df.experiment == kvcache.COPY_LONG_VECTOR_SDPA) & (df.metric == kvcache.TIME_METRIC)]
    assert len(values) == 6 and (values.value > 0).all() and (values.length == 24).all()
    assert (df.cudnn_sdpa_setting == "0").all() and (df.run_id == run.run_id).all()
    (stop,) = blocks.stop_rows(df, kvcache.COPY_LONG_VECTOR_SDPA).itertuples()
    assert stop.n_blocks == 3 and stop.variant == "concat" and stop.reference == "preallocated"
    assert extension.total_s == 10.0  # three blocks within the budget: no extension spent
    assert len(results.read_measurements(run.run_dir)) == len(df)  # in the run's journal too
    assert (
        fixed_kernel.applies("cuda") and not fixed_kernel.applies("metal") and not fixed_kernel.applies("cpu")
    )


def test_a_failing_fixed_kernel_process_is_one_clear_error(tmp_path):
    run = results.start_run("test_kv", {}, run_dir=tmp_path / "fails")
    with pytest.raises(
        RuntimeError, match=r"copy comparison with cuDNN SDPA off \(no-such-preset\) failed: .*"
    ):
        fixed_kernel.compare(
            run, "no-such-preset", extension=blocks.Extension(0.0, 0.0), budget_s=5, **FIXED_KERNEL
        )
    assert run.measurements.empty
