"""KV-cache strategies, and the cost of a decode step as the context grows under each of them.

Every strategy is a list of mlx-lm cache objects (one per layer), usable as `prompt_cache` of mlx-lm's
`generate_step`, hence of `decode.measure_generation(..., prompt_cache=make_cache(...))`:

- concat: mlx-lm's `ConcatenateKVCache`; every token concatenates the new key/value onto the whole cache,
  allocating a new array and copying every cached token (the "copy every token" pattern);
- preallocated: mlx-lm's `KVCache`; buffers grow `step` tokens at a time and each token is written in place
  with a slice update;
- rotating: mlx-lm's `RotatingKVCache` (`window` tokens, the first `keep` kept): the same in-place writes,
  but the cache never holds more than `window` tokens, so past the window the context (and the tokens) differ.

Two kinds of measurement: `sweep` (every strategy at every length, short trials: the descriptive chart of time
per token against context) and `compare_claims` (each comparison a published claim needs, as paired interleaved
blocks with adaptive stopping, core.blocks, on trials long enough for a steady-state per-token time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import mlx.core as mx
import numpy as np
import pandas as pd

from mlx_workbook.core import blocks, measure, progress
from mlx_workbook.models import random_prompt, roofline
from mlx_workbook.probes import decode, loops

STRATEGIES = ("concat", "preallocated", "rotating")
DEFAULT_STEP = 256  # mlx-lm's KVCache.step
# The per-token time the analysis uses: the median interval between a trial's tokens, which a stall of a shared
# machine in one interval does not move (mlx-lm's mean, "ms_per_token", is stored beside it).
TIME_METRIC = "ms_per_token_median"
# Tokens decoded by the warm-up pass at every length: its purpose is the first use of that length's prefill shapes
# and cache buffers (the prefill dominates its cost), and two tokens also run the decode step at that context.
WARMUP_DECODE_TOKENS = 2
# A steady-state decode claim is judged on per-token medians over trials of at least this many decoded tokens
# (issue 11): long enough that the median is the decode step's own time, not a start-up or a short stall.
STEADY_TOKENS = 256
# The block comparisons' experiments (one per claim comparison; core.blocks rows, one "change_pct" row each).
COPY_ORIGINAL = "blocks_copy_original"  # concat vs preallocated from the original's shortest context
SETTLED = "slice_update_settled"  # a slice_update write followed by mx.synchronize()
SLICE_VARIANTS = ("slice_update", SETTLED, "concatenate")
FIXED_CONTEXT_WINDOW = 16  # tokens a fixed-context trial decodes before trimming back, when trials are whole
FLAT_ORIGINAL = "blocks_flat_original"  # one strategy at the original's longest vs its shortest context
COPY_LONG = "blocks_copy_long"  # concat vs preallocated at the longest context of the sweep
# the same on MLX CUDA in a fresh process with cuDNN SDPA off, so both caches get one attention kernel (fixed_kernel)
COPY_LONG_VECTOR_SDPA = "blocks_copy_long_vector_sdpa"


def validate(
    strategies,
    lengths,
    *,
    decode_tokens: int,
    step: int,
    window: int,
    keep: int = 4,
    split_lengths=(),
    split_tokens: int = 0,
    max_length: int | None = None,
    original_lengths=None,
    repeats: int = 1,
    slice_sizes_mb=(1, 4),
    slice_updates: int = 1,
    slice_repeats: int = 2,
    identity_tokens: int = 2,
    identity_window: int = 512,
    claim_tokens: int = STEADY_TOKENS,
    chunk_tokens: int = 0,
    flat_strategy: str = "preallocated",
    budget_s: float = 1.0,
    min_blocks: int = 3,
    max_blocks: int = 3,
) -> None:
    """One clear error for impossible settings, before any model is built."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"unknown KV-cache strategies {unknown}; use some of {', '.join(STRATEGIES)}")
    if not lengths or any(int(n) < 2 for n in lengths):
        raise ValueError(f"lengths must be context lengths >= 2 tokens, got {lengths}")
    if decode_tokens < 2:
        raise ValueError(
            f"decode_tokens must be >= 2 (a per-token time needs two tokens), got {decode_tokens}"
        )
    if step < 1 or window < 1:
        raise ValueError(f"step and window must be positive, got step={step} window={window}")
    if not 0 <= keep < window:
        raise ValueError(f"keep must be in [0, window), got keep={keep} window={window}")
    if split_tokens < 0 or any(n not in lengths for n in split_lengths):
        raise ValueError(f"split_lengths {split_lengths} must be among lengths {lengths} (split_tokens >= 0)")
    if original_lengths is not None and (
        not set(original_lengths) <= set(lengths) or len(original_lengths) < 2
    ):
        raise ValueError(f"original_lengths {original_lengths} must be at least two of lengths {lengths}")
    if repeats < 1 or slice_updates < 1 or any(s <= 0 for s in slice_sizes_mb):
        raise ValueError("slice_sizes_mb must be positive and slice_updates, repeats at least 1")
    if slice_repeats < 2:  # the slice_update interval resamples trials within each size
        raise ValueError(f"slice_repeats must be at least 2, got {slice_repeats}")
    if len(set(slice_sizes_mb)) < 2:  # the slice_update claim is judged on the write's growth with the buffer
        raise ValueError(f"slice_sizes_mb must hold at least two sizes, got {slice_sizes_mb}")
    if not 2 <= identity_tokens < 2 * identity_window:
        raise ValueError(
            f"identity_tokens must be in [2, {2 * identity_window}): the prompt must fit before the window"
        )
    if claim_tokens < 2 or budget_s <= 0 or flat_strategy not in strategies:
        raise ValueError(
            f"claim_tokens must be >= 2, budget_s > 0 and flat_strategy ({flat_strategy!r}) one of {strategies}"
        )
    if chunk_tokens < 0 or chunk_tokens == 1:
        raise ValueError(f"chunk_tokens must be 0 (whole trials) or >= 2, got {chunk_tokens}")
    blocks.looks(min_blocks, max_blocks)  # raises on an impossible block range
    longest = max(lengths) + max(decode_tokens + split_tokens, claim_tokens)
    if max_length is not None and longest > max_length:
        raise ValueError(
            f"the longest sequence ({longest} tokens) exceeds the model's "
            f"max_position_embeddings ({max_length})"
        )


def make_cache(strategy: str, model, *, step: int = DEFAULT_STEP, window: int = 1024, keep: int = 4) -> list:
    """A fresh per-layer cache of the named strategy."""
    from mlx_lm.models.cache import ConcatenateKVCache, KVCache, RotatingKVCache

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown KV-cache strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    layers = len(model.layers)
    if strategy == "concat":
        return [ConcatenateKVCache() for _ in range(layers)]
    if strategy == "preallocated":
        caches = [KVCache() for _ in range(layers)]
        for c in caches:
            c.step = step  # a class attribute in mlx-lm; set per instance
        return caches
    return [RotatingKVCache(max_size=window, keep=keep) for _ in range(layers)]


def cache_nbytes(cache: list) -> int:
    """Bytes the cache's buffers hold (allocated, not only filled): the sum of every layer's keys and values."""
    return int(sum(c.nbytes for c in cache))


def cache_tokens(cache: list) -> int:
    """Tokens the cache holds (a rotating cache stops at its window; mlx-lm's ConcatenateKVCache has no size())."""
    c = cache[0]
    return int(min(c.offset, getattr(c, "max_size", None) or c.offset))


def _peak_split_loop(model, prompt, max_tokens, *, peaks: dict, **kwargs):
    """mlx-lm's loop, with peak memory read after the first token (prefill) and reset for the decode steps."""
    it = decode.mlx_lm_loop(model, prompt, max_tokens, **kwargs)
    yield next(it)
    peaks["prefill"] = mx.get_peak_memory()
    mx.reset_peak_memory()
    yield from it


def measure_length(
    run,
    loaded,
    prompt: mx.array,
    *,
    strategy: str,
    length: int,
    decode_tokens: int,
    trial: int,
    step: int,
    window: int,
    keep: int = 4,
    split_tokens: int = 0,
    record: bool = True,
) -> decode.Generation:
    """Prefill `length` prompt tokens into a fresh cache, then decode `decode_tokens` with mlx-lm's loop.

    Records (experiment "per_length") the decode time per token at this context length, the peak memory of
    the prefill and of the decode steps, and the cache's bytes. With `split_tokens`, continues with the
    synchronous loop on the same cache, timed per token (experiment "time_split", `split_per_token`).
    """
    cache = make_cache(strategy, loaded.model, step=step, window=window, keep=keep)
    peaks: dict = {}
    gen = decode.measure_generation(
        loaded.model, prompt[:length], decode_tokens, loop=_peak_split_loop, peaks=peaks, prompt_cache=cache
    )
    mx.eval([c.state for c in cache])
    fields = dict(
        trial=trial,
        strategy=strategy,
        length=length,
        decode_tokens=decode_tokens,
        step=step,
        window=window,
        **loaded.describe(),
    )
    if record:
        run.record_many(
            "per_length",
            [
                dict(metric="ms_per_token", value=gen.ms_per_token, unit="ms", **fields),
                dict(
                    metric=TIME_METRIC,
                    value=1e3 * float(np.median(np.diff(gen.token_times_s))),
                    unit="ms",
                    **fields,
                ),
                dict(metric="decode_peak_memory_gb", value=gen.peak_memory_bytes / 1e9, unit="GB", **fields),
                dict(metric="prefill_peak_memory_gb", value=peaks["prefill"] / 1e9, unit="GB", **fields),
                dict(metric="cache_bytes", value=cache_nbytes(cache), unit="bytes", **fields),
                dict(metric="cache_tokens", value=cache_tokens(cache), unit="tokens", **fields),
            ],
        )
    if split_tokens and record:
        parts = split_per_token(loaded.model, cache, gen.tokens[-1], split_tokens)
        run.record_many(
            "time_split",
            [dict(metric="phase_ms", value=v, unit="ms", phase=p, **fields) for p, v in parts.items()],
        )
    return gen


def split_per_token(model, cache: list, last_token: int, tokens: int) -> dict[str, float]:
    """Continue decoding `tokens` steps from a filled cache with the synchronous loop (eval, then item(), every
    step: nothing overlaps), timed per token (loops.PerTokenClock): the median ms of each host phase, of the
    rest ("other") and of the whole step ("total"). Greedy on logprobs, as generate_step's step. Intervals run
    from token to token, so the first step (its graph may be new to the allocator) is in none of them."""
    mx.eval([c.state for c in cache])
    mx.synchronize()
    clock = loops.PerTokenClock()
    prompt = mx.array([last_token], dtype=mx.uint32)
    for _ in loops.steps(
        model, prompt, tokens + 1, schedule="sync", logprobs="always", prompt_cache=cache, clock=clock
    ):
        pass
    return {p: 1e3 * float(np.median([s[p] for s in clock.splits])) for p in clock.splits[0]}


def sweep(
    run,
    loaded,
    *,
    strategies,
    lengths,
    decode_tokens: int,
    repeats: int,
    warmup: int,
    step: int,
    window: int,
    keep: int = 4,
    split_lengths=(),
    split_tokens: int = 0,
    seed: int = 0,
) -> None:
    """Every strategy at every length, `repeats` rounds. A round visits every length and, at each, every
    strategy back to back (their order rotated from round to round), so that slow drifts of the machine hit
    all lengths and strategies alike and a strategy's trial can be paired with another's of the same round and
    length. Each trial is stored as it finishes.

    Warm-up, nothing recorded: `warmup` full generations per strategy at the shortest length (kernels compiled,
    allocator primed), then, when `warmup` > 0, one short pass of every strategy at every length, so that the
    first use of a length's larger prefill shapes and cache buffers is not paid by round 0's first strategy."""
    prompt = random_prompt(loaded, max(lengths), seed=seed)
    common = dict(step=step, window=window, keep=keep)
    for strategy in strategies:
        for _ in range(warmup):
            measure_length(
                run,
                loaded,
                prompt,
                strategy=strategy,
                length=min(lengths),
                trial=-1,
                record=False,
                decode_tokens=decode_tokens,
                **common,
            )
    for length in sorted(lengths) if warmup else ():
        for strategy in strategies:
            measure_length(
                run,
                loaded,
                prompt,
                strategy=strategy,
                length=length,
                trial=-1,
                record=False,
                decode_tokens=min(WARMUP_DECODE_TOKENS, decode_tokens),
                **common,
            )
    for trial in progress.steps(range(repeats), f"{loaded.label}: round"):
        order = list(strategies[trial % len(strategies) :]) + list(strategies[: trial % len(strategies)])
        for length in sorted(lengths):
            for strategy in order:
                measure_length(
                    run,
                    loaded,
                    prompt,
                    strategy=strategy,
                    length=length,
                    trial=trial,
                    decode_tokens=decode_tokens,
                    split_tokens=split_tokens if length in split_lengths else 0,
                    **common,
                )


# --- the claims' comparisons, in paired interleaved blocks ------------------------------------------------


@dataclass(frozen=True)
class ClaimComparison:
    """One comparison a claim needs: each variant a (strategy, context length), judged against `reference`
    with a no-effect band of ±tolerance (a fraction)."""

    experiment: str
    variants: dict[str, tuple[str, int]]
    reference: str
    tolerance: float
    fields: dict = field(default_factory=dict)  # stored on every row, e.g. the fixed length or strategy
    fixed_context: bool = False  # every token decoded at its variant's context (fixed_context_trial)


def claim_comparisons(
    strategies,
    original_lengths,
    longest: int,
    *,
    flat_strategy: str,
    flat_tolerance: float,
    copy_tolerance: float,
    claim_model: bool = True,
) -> list[ClaimComparison]:
    """The comparisons the published claims need (on the claim model; another model gets the long-context copy
    alone, which is about the bytes a copy moves, so it matters most on larger models).

    - copy claims (kv_copy_no_impact, kv_preallocated_buffers_no_impact, one measurement): concat against
      preallocated from the original's shortest context; and at the sweep's longest context, where a copy per
      token moves the most bytes (the expected cost is stated beside it).
    - per_token_time_flat: `flat_strategy` at the original's longest context against its shortest, every token
      decoded at its end's context (`fixed_context_trial`): a 256-token trial started at 100 tokens would
      otherwise run to 356 and one started at 10 to 266, so the comparison would be of the tokens past 256
      (where MLX CUDA's decode attention changes kernel step, +4% per token on the H200) rather than of the
      original's range. A per-token cost that grows with context (a copy of the cache, attention reading it)
      grows monotonically, so the two ends show the largest change the claim denies. Two variants per block
      keep blocks short, so more of them fit the budget; the lengths between stay in the descriptive sweep.
      The original's cache at that point (after its attempt 2) was pre-allocated 256-token buffers, hence
      preallocated by default.
    The rotating cache answers no claim (it differs from preallocated only past its window), so it is in the
    sweep alone."""
    first, last = min(original_lengths), max(original_lengths)
    out = []
    if {"concat", "preallocated"} <= set(strategies):
        for experiment, n in ((COPY_ORIGINAL, first), (COPY_LONG, longest)):
            pair = {"concat": ("concat", n), "preallocated": ("preallocated", n)}
            out.append(ClaimComparison(experiment, pair, "preallocated", copy_tolerance, {"length": n}))
    ends = {f"{n} tokens": (flat_strategy, n) for n in (last, first)}
    out.append(
        ClaimComparison(
            FLAT_ORIGINAL,
            ends,
            f"{first} tokens",
            flat_tolerance,
            {"strategy": flat_strategy},
            fixed_context=True,
        )
    )
    return out if claim_model else [c for c in out if c.experiment == COPY_LONG]


def per_token_trial(loaded, prompt: mx.array, *, strategy: str, length: int, tokens: int, **cache_kwargs):
    """A block variant: a factory of generations that prefill `length` prompt tokens into a fresh `strategy`
    cache and decode `tokens` with mlx-lm's loop (claim_block times them token by token)."""

    def generation():
        cache = make_cache(strategy, loaded.model, **cache_kwargs)
        return decode.mlx_lm_loop(loaded.model, prompt[:length], tokens, prompt_cache=cache)

    return generation


def fixed_context_trial(
    loaded, prompt: mx.array, *, strategy: str, length: int, tokens: int, window_tokens: int, **cache_kwargs
):
    """A block variant that decodes every token at a context of `length` (to `length + window_tokens`): mlx-lm's
    loop decodes `window_tokens` tokens, then the cache is trimmed back to the prompt and the loop starts again
    from the prompt's last token, until `tokens` tokens. With window_tokens = the block's chunk the restart
    falls in each chunk's first interval, which blocks.interleaved drops with the switch; so a long trial (a
    steady state) measures one context instead of a range 256 tokens wide. Needs a cache mlx-lm can trim (a
    rotating one only before its window fills)."""
    if window_tokens < 2 or length < 2:
        raise ValueError(f"need window_tokens >= 2 and length >= 2, got {window_tokens} and {length}")

    def generation():
        from mlx_lm.models.cache import can_trim_prompt_cache

        cache = make_cache(strategy, loaded.model, **cache_kwargs)
        if not can_trim_prompt_cache(cache):
            raise ValueError(
                f"the {strategy} cache cannot be trimmed, so it cannot decode at a fixed context"
            )
        produced, start = 0, prompt[:length]
        while produced < tokens:
            loop = decode.mlx_lm_loop(loaded.model, start, window_tokens, prompt_cache=cache)
            for token in loop:
                yield token
                produced += 1
                if produced % window_tokens == 0 or produced == tokens:
                    break
            loop.close()
            for c in cache:  # back to the prompt minus its last token, which the next window feeds again
                c.trim(c.offset - (length - 1))
            start = prompt[length - 1 : length]

    return generation


def claim_block(tokens: int, chunk_tokens: int) -> blocks.BlockFn:
    """One block of a claim comparison: every variant's `tokens`-token trial, advanced alternately in chunks of
    `chunk_tokens` (0: whole trials back to back); each variant's value is its steady-state median ms per
    token (blocks.interleaved)."""
    return partial(blocks.interleaved, tokens=tokens, chunk=chunk_tokens)


def compare_claims(
    run,
    loaded,
    comparisons: list[ClaimComparison],
    *,
    tokens: int,
    budget_s: float,
    extension: blocks.Extension | None = None,
    min_blocks: int,
    max_blocks: int,
    warmup: int,
    step: int,
    window: int,
    keep: int = 4,
    chunk_tokens: int = 0,
    seed: int = 0,
) -> dict[str, blocks.Comparison]:
    """Each comparison as paired interleaved blocks (core.blocks.compare): in each block every variant decodes
    one trial, the trials advanced alternately `chunk_tokens` at a time in a random order per round (0: whole
    trials back to back in a random order), judged on per-block log-ratios, stopped when the interval decides
    the no-effect band, after `budget_s` seconds, or at `max_blocks`. Rows carry the model, the cache's bytes
    per token (for the expected cost of a copy) and chunk_tokens."""
    if not comparisons:  # e.g. a second model when concat is not among the strategies
        return {}
    prompt = random_prompt(loaded, max(n for c in comparisons for _, n in c.variants.values()), seed=seed)
    model_fields = loaded.describe() | {
        "kv_bytes_per_token": roofline.kv_bytes_per_position(loaded.config, loaded.dtype),
        "claim_tokens": tokens,
        "chunk_tokens": chunk_tokens,
    }
    out = {}
    fixed_window = chunk_tokens or FIXED_CONTEXT_WINDOW  # a fixed-context trial restarts with each chunk
    for i, c in enumerate(comparisons):
        trial_of = (
            partial(fixed_context_trial, window_tokens=fixed_window) if c.fixed_context else per_token_trial
        )
        variants = {
            name: trial_of(
                loaded, prompt, strategy=s, length=n, tokens=tokens, step=step, window=window, keep=keep
            )
            for name, (s, n) in c.variants.items()
        }
        fixed = {"fixed_context_tokens": fixed_window} if c.fixed_context else {}
        others = [v for v in variants if v != c.reference]
        out[c.experiment] = blocks.compare(
            run,
            c.experiment,
            variants,
            reference=c.reference,
            bands={v: blocks.Band.no_effect(100 * c.tolerance) for v in others},
            metric=TIME_METRIC,
            unit="ms",
            budget_s=budget_s,
            extension=extension,
            min_blocks=min_blocks,
            max_blocks=max_blocks,
            # one warm-up (each variant once) before the first comparison: it meets the long decode's shapes;
            # the sweep ran every length before, so the later comparisons start warm
            warmup=warmup if i == 0 else 0,
            seed=seed,
            block_fn=claim_block(tokens, chunk_tokens),
            **model_fields,
            **c.fields,
            **fixed,
        )
    return out


def record_bandwidth(run, ceiling) -> None:
    """Store the bandwidth a copy's expected cost is computed with (kernels.Ceiling), so findings read it."""
    run.record(
        "bandwidth",
        "ceiling_gbs",
        ceiling.gbs,
        "GB/s",
        low=ceiling.low,
        high=ceiling.high,
        source=ceiling.source,
    )


# --- token identity -----------------------------------------------------------------------------------------


def varied_model(preset: str = "tiny", scale: float = 10.0, dtype: str = "float32", seed: int = 0):
    """A preset with its matrices scaled up, so that greedy decoding emits varied tokens: at the presets' small
    random weights greedy decoding repeats one token, which would make any token comparison vacuous."""
    from mlx.utils import tree_map

    from mlx_workbook.models import build_preset

    loaded = build_preset(preset, dtype=dtype, seed=seed)
    loaded.model.update(tree_map(lambda v: v * scale if v.ndim >= 2 else v, loaded.model.parameters()))
    mx.eval(loaded.model.parameters())
    return loaded


def compare_tokens(
    loaded, prompt: mx.array, tokens: int, *, strategies, step: int, window: int, keep: int = 4
) -> pd.DataFrame:
    """Greedy tokens of each strategy against the pre-allocated cache's, from the same prompt."""
    out = {
        s: decode.measure_generation(
            loaded.model,
            prompt,
            tokens,
            prompt_cache=make_cache(s, loaded.model, step=step, window=window, keep=keep),
        ).tokens
        for s in dict.fromkeys(["preallocated", *strategies])
    }
    ref = out["preallocated"]
    return pd.DataFrame(
        [
            {
                "strategy": s,
                "tokens": len(t),
                "first_divergence": decode.first_divergence(t, ref),
                "identical": t == ref,
            }
            for s, t in out.items()
        ]
    )


def record_identity(
    run, loaded, prompt: mx.array, tokens: int, *, strategies, step: int, window: int, keep: int = 4
) -> pd.DataFrame:
    """compare_tokens, stored (experiment "identity"): whether each strategy's tokens equal the pre-allocated
    cache's, and how many agree (all of them, or up to the first difference)."""
    table = compare_tokens(loaded, prompt, tokens, strategies=strategies, step=step, window=window, keep=keep)
    for row in table.itertuples():
        same = row.tokens if row.identical else row.first_divergence
        run.record_many(
            "identity",
            [
                dict(
                    metric="tokens_identical",
                    value=float(row.identical),
                    unit="bool",
                    strategy=row.strategy,
                    trial=0,
                ),
                dict(
                    metric="identical_prefix",
                    value=same,
                    unit="tokens",
                    strategy=row.strategy,
                    trial=0,
                    prompt_tokens=prompt.size,
                    window=window,
                ),
            ],
        )
    return table.assign(context_at_divergence=table.first_divergence + prompt.size)


# --- slice_update: in place or a copy? ------------------------------------------------------------------------


def slice_update_probe(
    run, *, sizes_mb, updates: int, repeats: int, warmup: int = 1, dtype: str = "bfloat16"
) -> None:
    """Time one one-token write into a cache-shaped buffer (1, 8, n, 128) of each size, evaluated per write.

    slice_update: `buf[..., i, :] = x`, what mlx-lm's KVCache does (MLX can donate the old buffer and write in
    place), each write issued as soon as the previous one's eval returns, as a decode loop does;
    slice_update_settled: the same with mx.synchronize() after each write, so nothing of the previous write
    still holds the buffer (on MLX CUDA a write issued at once often finds it held and copies: 53-96% of 1 GiB
    writes in a targeted pass on an H200, none after a synchronize); concatenate: `concatenate([buf[..., 1:, :],
    x])`, a new buffer holding a copy of the old one. If a write copied, its time would grow with the buffer as
    a copy of it must at the machine's bandwidth (findings.copy_share); concatenate shows how fast MLX's own
    copy grows. The synchronize is timed with the write: a fixed cost per write, which the slope ignores.
    """
    dt = getattr(mx, dtype)
    for size in sizes_mb:
        n = max(2, int(size * 2**20) // (8 * 128 * dt.size))
        for variant in SLICE_VARIANTS:
            state = {"buf": mx.zeros((1, 8, n, 128), dt), "i": 0}
            x = mx.ones((1, 8, 1, 128), dt)
            mx.eval(state["buf"], x)

            def writes():
                for _ in range(updates):
                    if variant == "concatenate":
                        state["buf"] = mx.concatenate([state["buf"][..., 1:, :], x], axis=2)
                    else:
                        i = state["i"] = (state["i"] + 1) % n
                        state["buf"][..., i : i + 1, :] = x
                    mx.eval(state["buf"])
                    if variant == SETTLED:
                        mx.synchronize()
                return state["buf"]

            def store(t, variant=variant, size=size, n=n):
                run.record(
                    "slice_update",
                    "ms_per_update",
                    1e3 * t.seconds / updates,
                    "ms",
                    trial=t.trial,
                    variant=variant,
                    size_mb=size,
                    buffer_tokens=n,
                    dtype=dtype,
                )

            measure.trials(writes, repeats=repeats, warmup=warmup, on_trial=store)
            state.clear()  # frees the buffer before the next variant (the closure holds the dict)
