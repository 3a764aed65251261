"""Serving measurements with mlx-lm's own machinery: decode speed against model size, batched decoding
(BatchGenerator), prompt caching (make_prompt_cache) and generation lengths.

Every function takes a Run and stores each trial as soon as it finishes; warm-ups are never stored, except the
first generation of each preset, which is stored as its own cold-start rows. The prompt-cache comparison runs in
paired interleaved blocks (core.blocks).
"""

from __future__ import annotations

import time

import mlx.core as mx
import numpy as np

from mlx_workbook import models
from mlx_workbook.core import blocks, progress, results
from mlx_workbook.models import roofline as rl
from mlx_workbook.probes import decode, kernels, loops

# 2: cold-start rows, prompt cache and pre-quantized in paired blocks, batch trials paired; 3: pre-quantized
# loads each checkpoint once and compares decode in interleaved blocks of long trials; more warm runs beside a
# cold run; 4: a comparison's final look keeps four fifths of the error rate (core.blocks, Haybittle-Peto style);
# 5: an interleaved block's log-ratio is the median of its rounds' (core.blocks.block_log_ratio); 6: the
# pre-quantized comparison outside its band stops only once its interval clears no effect (core.blocks.Band); 7: the
# cold start is judged over fresh processes, one cold/warm ratio each, added until decided (coldstart)
METHOD_VERSION = 7
COLD = "cold_start"  # experiment of the first generation of each preset
CACHE_NO_EFFECT_PCT = 5.0  # the prompt-cache comparison stops once it can tell a TTFT change from +-5%


def validate(
    *,
    batch_sizes: list[int],
    lengths: list[int],
    prefix_tokens: int,
    suffix_tokens: int,
    serving_bits: int,
    prequant_bits: int,
    presets: list[str],
    dtype: str = "bfloat16",
    group_size: int = 64,
    projection_bits: int = 4,
    prompt_tokens: int = 1,
    gen_tokens: int = 2,
    batch_tokens: int = 2,
    repeats: list[int] = (1,),
    budgets_s: list[float] = (1.0,),
    min_blocks: list[int] = (3,),
    prequant_tokens: int = 2,
    prequant_chunk_tokens: int = 0,
    prequant_loads: int = 1,
    cold_warm_runs: int = 2,
) -> None:
    """One clear error for impossible parameters, before any model is built."""
    for name in presets:
        models.preset_config(name)
    models.validate(dtype, projection_bits, group_size)
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch_sizes must be positive integers, got {batch_sizes}")
    if not lengths or min(lengths) < 2:
        raise ValueError(f"lengths must be at least 2 tokens each (decode speed needs two), got {lengths}")
    if prefix_tokens < 1 or suffix_tokens < 1 or prompt_tokens < 1:
        raise ValueError(
            f"prefix_tokens, suffix_tokens and prompt_tokens must be >= 1, got {prefix_tokens}, "
            f"{suffix_tokens}, {prompt_tokens}"
        )
    if min(gen_tokens, batch_tokens) < 2 or min(repeats) < 1:
        raise ValueError(
            f"gen_tokens and batch_tokens must be >= 2 (got {gen_tokens}, {batch_tokens}) and every "
            f"repeat count >= 1 (got {list(repeats)})"
        )
    if min(budgets_s) <= 0 or min(min_blocks) < 3:
        raise ValueError(
            f"every comparison's budget must be > 0 s (got {list(budgets_s)}) and its min_blocks >= 3 (a t interval "
            f"on fewer paired blocks decides nothing; got {list(min_blocks)})"
        )
    if prequant_tokens < 2 or prequant_chunk_tokens < 0 or prequant_chunk_tokens == 1 or prequant_loads < 1:
        raise ValueError(
            f"prequant_tokens must be >= 2, prequant_chunk_tokens 0 (whole trials) or >= 2 and prequant_loads "
            f">= 1, got {prequant_tokens}, {prequant_chunk_tokens}, {prequant_loads}"
        )
    if cold_warm_runs < 2:
        raise ValueError(
            f"cold_warm_runs must be >= 2 (a prediction interval needs a spread), got {cold_warm_runs}"
        )
    for bits in (serving_bits, prequant_bits):
        models.check_bits(bits)
    if prequant_bits == 0:
        raise ValueError("prequant_bits must be a quantized width: the comparison is about quantized weights")


# --- decode speed against model size ------------------------------------------------------------------------


def sweep_plan(presets: list[str], bits: list[int], moe_bits: list[int], preset_bits: dict) -> list[tuple]:
    """(preset, [bit widths]) per preset, checked before any model is built; 0 means unquantized."""
    plan = []
    for name in presets:
        config = models.preset_config(name)  # ModelError for an unknown preset
        widths = list(preset_bits.get(name, moe_bits if models.is_moe(config) else bits))
        for b in widths:
            models.check_bits(b, name)
        plan.append((name, widths))
    unknown = set(preset_bits) - set(presets)
    if unknown:
        raise models.ModelError(f"preset_bits names presets not in the sweep: {', '.join(sorted(unknown))}")
    return plan


def variants(name: str, widths: list[int], dtype: str, group_size: int):
    """Yield (bits, LoadedModel or the error that stopped it), building the unquantized model only once.

    Quantized variants are twins of that one build; the last one consumes it, so the unquantized weights
    are freed layer by layer and only the last twin must fit in memory.
    """
    config = models.preset_config(name)
    dtype = rl.base_dtype(config, dtype)
    base = models.build_preset(name, dtype=dtype, group_size=group_size, materialize=False)
    quantized = [b for b in widths if b]
    if 0 in widths:
        try:
            models.check_fits(base.weight_bytes(), base.label)
            for layer in base.model.layers:  # one layer at a time, as presets do
                mx.eval(layer.parameters())
            mx.eval(base.model.parameters())
            yield 0, base
        except (models.ModelError, RuntimeError) as exc:
            yield 0, exc
    for i, b in enumerate(quantized):
        if base is None or base.model is None:
            base = models.build_preset(name, dtype=dtype, group_size=group_size, materialize=False)
        last = i == len(quantized) - 1
        try:
            try:
                twin = models.quantize_copy(base, b, group_size, consume=last)
            except models.ModelError:  # no room beside its source: give the source up (rebuilt if needed)
                if last:
                    raise
                twin = models.quantize_copy(base, b, group_size, consume=True)
            yield b, twin
        except (ValueError, RuntimeError) as exc:  # ModelError is a ValueError; so is MLX's unsupported width
            yield b, exc
        twin = None
        mx.clear_cache()
    del base
    mx.clear_cache()


def build(name: str, bits: int, dtype: str = "bfloat16", group_size: int = 64) -> models.LoadedModel:
    """A preset at `bits` (0: unquantized), in float32 where the backend runs unquantized MoE only so."""
    return models.build_preset(
        name, dtype=rl.base_dtype(models.preset_config(name), dtype), bits=bits or None, group_size=group_size
    )


def measure_decode(
    run: results.Run,
    loaded: models.LoadedModel,
    ceiling: kernels.Ceiling,
    *,
    prompt_tokens: int,
    gen_tokens: int,
    repeats: int,
    warmup_tokens: int = 8,
    cold: bool = False,
    cold_warm_runs: int = 0,
    experiment: str = "decode",
    **fields,
) -> None:
    """Warm up once, then `repeats` generations; each trial stored with its bytes, roofline and efficiency.

    With `cold` the warm-up is a full `gen_tokens` generation stored as the model's cold start (`cold_run`), and
    at least `cold_warm_runs` warm trials follow: a process has one cold run, so its prediction interval's
    degrees of freedom come from the warm trials alone."""
    prompt = models.random_prompt(loaded, prompt_tokens, seed=1)
    step = rl.bytes_per_step(loaded, rl.mean_context(prompt_tokens, gen_tokens))
    roof = rl.roofline_tps(step["total"], ceiling.gbs)
    cols = {
        **loaded.describe(),
        "quant": rl.quant_label(loaded.bits or 0, loaded.dtype),
        "moe": models.is_moe(loaded.config),
        "params": rl.parameter_count(loaded),
        "bytes_per_token": step["total"],
        "weights_read_bytes": step["weights"],
        "kv_bytes": step["kv_read"] + step["kv_written"],
        "roofline_tps": roof,
        "bandwidth_gbs": ceiling.gbs,
        **fields,
    }
    if cold:
        cold_run(run, loaded, prompt, gen_tokens, **cols)
    else:
        decode.measure_generation(loaded.model, prompt, max(2, warmup_tokens))
    for trial in range(max(repeats, cold_warm_runs) if cold else repeats):
        gen = decode.measure_generation(loaded.model, prompt, gen_tokens)
        steady_tps = 1e3 / gen.ms_per_token  # per decode interval (mlx-lm's decode_tps counts one token more)
        decode.record_generation(run, experiment, gen, trial=trial, **cols)
        run.record_many(
            experiment,
            [
                dict(metric="steady_tps", value=steady_tps, unit="tokens/s", trial=trial, **cols),
                dict(metric="efficiency", value=steady_tps / roof, unit="ratio", trial=trial, **cols),
            ],
        )


def cold_run(run: results.Run, loaded: models.LoadedModel, prompt: mx.array, gen_tokens: int, **cols) -> None:
    """The first generation of a model just built, like a warm trial but stored under COLD, with its wall time:
    it pays whatever is done once per process and shape (on MLX CUDA, compiling the kernels at first use)."""
    tic = time.perf_counter()
    gen = decode.measure_generation(loaded.model, prompt, gen_tokens)
    wall = time.perf_counter() - tic
    decode.record_generation(run, COLD, gen, trial=0, **cols)
    run.record(COLD, "wall_s", wall, "s", trial=0, generated_tokens=len(gen.tokens), **cols)


def size_sweep(
    run: results.Run,
    plan: list[tuple],
    ceiling: kernels.Ceiling,
    *,
    dtype: str = "bfloat16",
    group_size: int = 64,
    **decode_kwargs,
) -> list[dict]:
    """Every (preset, bits) of the plan; a configuration that cannot run is recorded as skipped, with why. The
    first configuration of each preset that runs stores its first generation as the preset's cold start."""
    skipped = []
    total, done, started = sum(len(widths) for _, widths in plan), 0, time.perf_counter()
    for name, widths in plan:
        tic, cold = time.perf_counter(), True
        for bits, loaded in variants(name, widths, dtype, group_size):
            label = f"{name} {rl.quant_label(bits, rl.base_dtype(models.preset_config(name), dtype))}"
            done += 1
            progress.step(f"{label} decode, config", done, total, started)
            if isinstance(loaded, Exception):
                skipped.append({"model": name, "bits": bits, "label": label, "reason": str(loaded)})
                run.record(
                    "skipped", "skipped", 1, "count", model=name, bits=bits, label=label, reason=str(loaded)
                )
                continue
            run.record("build", "build_s", time.perf_counter() - tic, "s", model=name, bits=bits, label=label)
            try:
                measure_decode(run, loaded, ceiling, label=label, cold=cold, **decode_kwargs)
                cold = False
            except (
                RuntimeError,
                ValueError,
            ) as exc:  # out of memory, a kernel this backend lacks: go on, say why
                skipped.append({"model": name, "bits": bits, "label": label, "reason": str(exc)})
                run.record(
                    "skipped", "skipped", 1, "count", model=name, bits=bits, label=label, reason=str(exc)
                )
            loaded = None
            mx.clear_cache()
            tic = time.perf_counter()
    return skipped


# --- batched decoding ----------------------------------------------------------------------------------------


def batch_generate_tokens(loaded: models.LoadedModel, prompts: list[list[int]], max_tokens: int):
    """Run mlx-lm's BatchGenerator over `prompts` (all at once, no early stop); returns (tokens, BatchStats)."""
    from mlx_lm.generate import BatchGenerator

    n = len(prompts)
    gen = BatchGenerator(loaded.model, max_tokens=max_tokens, completion_batch_size=n, prefill_batch_size=n)
    uids = gen.insert(prompts, [max_tokens] * n)
    out = {uid: [] for uid in uids}
    with gen.stats() as stats:
        while responses := gen.next_generated():
            for r in responses:
                out[r.uid].append(r.token)
    gen.close()
    return [out[u] for u in uids], stats


def batch_sweep(
    run: results.Run,
    loaded: models.LoadedModel,
    ceiling: kernels.Ceiling,
    *,
    batch_sizes: list[int],
    prompt_tokens: int,
    gen_tokens: int,
    repeats: int,
    seed: int = 0,
) -> None:
    """Aggregate decode tok/s per batch size against the batched roofline: B x bandwidth / bytes per step,
    where a step reads the weights once for all B sequences (plus each sequence's own KV cache).

    Each trial runs every batch size once, in a fresh random order, so a speedup over batch 1 is paired by
    trial (a drift of the host's speed hits both alike)."""
    cols = {**loaded.describe(), "label": loaded.label, "bandwidth_gbs": ceiling.gbs}
    setups = {}
    for b in batch_sizes:
        prompts = [models.random_prompt(loaded, prompt_tokens, seed=100 + i).tolist() for i in range(b)]
        step = rl.bytes_per_step(loaded, rl.mean_context(prompt_tokens, gen_tokens), batch=b)
        roof = rl.roofline_tps(step["total"], ceiling.gbs, batch=b)
        fields = {
            **cols,
            "batch": b,
            "step_bytes": step["total"],
            "roofline_tps": roof,
            "weights_per_token_bytes": step["weights"] / b,
        }
        setups[b] = (prompts, roof, fields)
        batch_generate_tokens(loaded, prompts, min(gen_tokens, 4))  # warm-up
    order = list(batch_sizes)
    rng = np.random.default_rng(seed)
    for trial in range(repeats):
        for b in rng.permutation(order):
            prompts, roof, fields = setups[int(b)]
            mx.reset_peak_memory()
            _, s = batch_generate_tokens(loaded, prompts, gen_tokens)
            agg, b = s.generation_tps, int(b)
            step_ms = 1e3 * s.generation_time / max(1, s.generation_steps)
            run.record_many(
                "batch",
                [
                    dict(metric=m, value=v, unit=u, trial=trial, **fields)
                    for m, v, u in (
                        ("aggregate_tps", agg, "tokens/s"),
                        ("per_sequence_tps", agg / b, "tokens/s"),
                        ("step_ms", step_ms, "ms"),
                        ("efficiency", agg / roof, "ratio"),
                        ("peak_memory_gb", mx.get_peak_memory() / 1e9, "GB"),
                    )
                ],
            )


# --- prompt caching ------------------------------------------------------------------------------------------


def prompt_cache_ttft(
    run: results.Run,
    loaded: models.LoadedModel,
    *,
    prefix_tokens: int,
    suffix_tokens: int,
    budget_s: float,
    min_blocks: int = 5,
    max_blocks: int = 32,
) -> dict:
    """Time to first token for prefix + suffix, from scratch vs with the prefix's KV cache already computed, in
    paired interleaved blocks (core.blocks) until the change is told apart from +-CACHE_NO_EFFECT_PCT or the
    budget is spent.

    The cached prefix is computed once (untimed: a single cold prefill says nothing); after each trial the cache
    is trimmed back to the prefix (or a deep copy is used where a cache cannot be trimmed), so every trial starts
    equal. One row says whether every trial's first token was the same with and without the cache."""
    import copy

    from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

    prefix = models.random_prompt(loaded, prefix_tokens, seed=7)
    suffix = models.random_prompt(loaded, suffix_tokens, seed=8)
    full = mx.concatenate([prefix, suffix])
    cols = {
        **loaded.describe(),
        "label": loaded.label,
        "prefix_tokens": prefix_tokens,
        "suffix_tokens": suffix_tokens,
    }
    cache = make_prompt_cache(loaded.model)
    loops.prefill(loaded.model, prefix, cache)  # in generate_step's chunks, as the uncached request
    trimmable = can_trim_prompt_cache(cache)
    firsts: set[int] = set()

    def ttft_ms(gen: decode.Generation) -> float:
        firsts.add(gen.tokens[0])
        return 1e3 * gen.ttft_s

    def cached():
        work = cache if trimmable else copy.deepcopy(cache)
        gen = decode.measure_generation(loaded.model, suffix, 2, prompt_cache=work)
        if trimmable:  # generate_step may have run one step ahead: trim back to exactly the prefix
            trim_prompt_cache(cache, cache[0].offset - prefix_tokens)
        return ttft_ms(gen)

    out = blocks.compare(
        run,
        "prompt_cache",
        {
            "no cache": lambda: ttft_ms(decode.measure_generation(loaded.model, full, 2)),
            "cached prefix": cached,
        },
        reference="no cache",
        bands={"cached prefix": blocks.Band.no_effect(CACHE_NO_EFFECT_PCT)},
        metric="ttft_ms",
        unit="ms",
        budget_s=budget_s,
        min_blocks=min_blocks,
        max_blocks=max(min_blocks, max_blocks),
        **cols,
    )
    run.record("prompt_cache", "same_first_token", float(len(firsts) == 1), "bool", trial=0, **cols)
    return {"first_tokens": firsts, "trimmed": trimmable, "comparison": out}


# --- generation lengths --------------------------------------------------------------------------------------


def generation_lengths(
    run: results.Run, loaded: models.LoadedModel, *, lengths: list[int], prompt_tokens: int, repeats: int
) -> None:
    """Short / medium / long generations: decode speed, and how much of a request is its fixed start-up."""
    prompt = models.random_prompt(loaded, prompt_tokens, seed=11)
    cols = {**loaded.describe(), "label": loaded.label}
    decode.measure_generation(loaded.model, prompt, min(lengths))  # warm-up
    for trial in range(repeats):
        for n in lengths:
            gen = decode.measure_generation(loaded.model, prompt, n)
            request_s = gen.ttft_s + gen.decode_s
            decode.record_generation(run, "lengths", gen, trial=trial, length=n, **cols)
            run.record_many(
                "lengths",
                [
                    dict(
                        metric="request_tps",
                        value=n / request_s,
                        unit="tokens/s",
                        trial=trial,
                        length=n,
                        **cols,
                    ),
                    dict(
                        metric="fixed_share",
                        value=gen.ttft_s / request_s,
                        unit="ratio",
                        trial=trial,
                        length=n,
                        **cols,
                    ),
                ],
            )
