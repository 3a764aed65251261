# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Does the KV cache cost more as the sequence grows?
#
# The "2x gap analysis" (seed `000_8106547a6e1af99a.txt`, a Node/Rust binding of MLX against mlx-lm on a
# 28-layer Qwen3-0.6B-class model) suspected its KV cache: 56 array copies per token (28 layers × keys and
# values), then concatenation every token. It reports that removing the copies and pre-allocating 256-token
# buffers written with `slice_update` had **no impact** (~47 tok/s either way), that "even `slice_update`
# creates new arrays", and that time per token was **flat at ~20 ms** over 10, 25, 50 and 100 tokens.
#
# This notebook re-measures those claims with mlx-lm's own caches on the machine at hand, and goes much
# further in length than 100 tokens, where an O(N) cost per token (copying an N-token cache) would show:
#
# | strategy | what it does per token | mlx-lm class |
# | --- | --- | --- |
# | `concat` | allocates a new cache one token longer and copies every cached token into it | `ConcatenateKVCache` |
# | `preallocated` | writes the token in place into a buffer grown `step` tokens at a time | `KVCache` (`step`) |
# | `rotating` | in-place writes into a buffer that never exceeds `window` tokens | `RotatingKVCache` |
#
# `concat` is mlx-lm's own `ConcatenateKVCache` (not a copy of our own): one full copy of every layer's keys
# and values per token, which is what both the original's `.copy()` calls and its concatenation cost. Its
# ratio to `preallocated` therefore measures both "copies" claims. Models are shape-faithful presets at random
# weights: the same bytes and kernels as the real checkpoints, so times carry over (text would not).
#
# Two kinds of measurement. The claims are answered by **paired interleaved blocks** (`core.blocks`): each block
# gives each compared variant one trial of `claim_tokens` decoded tokens, the variants' trials advanced
# alternately `chunk_tokens` tokens at a time in a fresh random order per round (so that a change of the host's
# speed, about once a second on the GPU machine, hits both; 0: whole trials back to back), every token timed and
# the first of each chunk (the switch) dropped; a variant's steady-state time per token is the geometric mean of
# its chunks' median intervals (`blocks.interleaved`); a block's log-ratio is the median of its rounds' paired
# log-ratios (robust to a round that straddles a change of the host's speed; `blocks.block_log_ratio`, method
# version 11); the verdict is judged on the per-block log-ratios with a t interval, and blocks are added until
# the interval decides the claim's no-effect band, `budget_s` runs out or `max_blocks` ran. A **length sweep**
# (every strategy at every length, short trials of `decode_tokens`) draws time per token against context:
# descriptive, no verdict.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
presets: list = [
    "tiny"
]  # model presets; the first is the model the claims are judged on (the original: qwen3-0.6b)
dtype: str = "float32"  # weight dtype: bfloat16, float16 or float32 (the CPU is fastest in float32)
bits: int = 0  # weight quantization bits (2, 3, 4, 5, 6 or 8); 0 keeps the weights unquantized
strategies: list = ["concat", "preallocated", "rotating"]  # KV-cache strategies to compare
lengths: list = [
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2000,
    4000,
]  # context lengths (prompt tokens) before decoding
original_lengths: list = [
    10,
    25,
    50,
    100,
]  # the original's lengths, a subset of lengths: the range its claim covers
decode_tokens: int = 16  # tokens decoded per sweep trial (their median interval: its time per token)
step: int = 256  # pre-allocation step of the preallocated cache, tokens (mlx-lm's default is 256)
window: int = 1000  # rotating cache size, tokens
keep: int = 4  # tokens the rotating cache always keeps from the start (as mlx-lm's max_kv_size does)
repeats: int = 5  # sweep rounds: timed trials per strategy and length
warmup: int = (
    1  # untimed generations per strategy at the shortest length (if above 0, a short pass at every length)
)
split_lengths: list = [100, 4000]  # lengths at which the synchronous loop splits the time per token
split_tokens: int = 16  # tokens the synchronous instrumented loop times at each of those lengths
flat_tolerance: float = 0.05  # relative change in time per token still called flat, as a fraction
copy_tolerance: float = 0.05  # relative extra time of concat over preallocated still called no impact
slice_sizes_mb: list = [1, 16, 64]  # buffer sizes of the slice_update probe, MB
slice_updates: int = 20  # one-token writes per slice_update trial
slice_repeats: int = 10  # slice_update trials per size and variant (a bootstrap within each size needs ~10)
identity_tokens: int = 48  # greedy tokens compared across strategies (the prompt stops short of the window)
claim_tokens: int = 256  # tokens decoded per trial of the claims' blocks (at least 256 for a steady state)
chunk_tokens: int = 16  # tokens a block's trial decodes before the other variant's turn (0: whole trials)
flat_strategy: str = "preallocated"  # cache whose flatness over the original's lengths decides the claim
budget_s: float = 20.0  # wall-time budget of each block comparison, s (one more block may finish after it)
extend_s: float = 0.0  # seconds more for a comparison undecided at its budget whose blocks project a decision
extend_total_s: float = 0.0  # seconds of such extensions over all the comparisons (caps the run time)
fixed_kernel_copy: bool = True  # on MLX CUDA, the longest-context copy comparison again with cuDNN SDPA off
min_blocks: int = 6  # blocks before a comparison's interval is first looked at
max_blocks: int = 16  # blocks at most per comparison
seed: int = 0  # seed of the random weights and prompts

# %%
import mlx.core as mx
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook import models
from mlx_workbook.core import blocks, hoststate, results
from mlx_workbook.investigations.kv_cache import analysis, findings, fixed_kernel, measure
from mlx_workbook.models import roofline
from mlx_workbook.probes import kernels
from mlx_workbook.report import plots

# Parameters are checked before anything heavy runs: unknown preset, dtype or bits, a model too large for this
# device, or impossible lengths are one clear error now.
quant_bits = bits or None
for name in presets:
    lazy = models.build_preset(name, dtype=dtype, bits=quant_bits, seed=seed, materialize=False)
    models.check_fits(lazy.weight_bytes(), lazy.label)
    del lazy
check_window = min(
    window, 512
)  # the tiny preset's context is short; the window's behaviour does not depend on size
measure.validate(
    strategies,
    lengths,
    decode_tokens=decode_tokens,
    step=step,
    window=window,
    keep=keep,
    split_lengths=split_lengths,
    split_tokens=split_tokens,
    original_lengths=original_lengths,
    repeats=repeats,
    slice_sizes_mb=slice_sizes_mb,
    slice_updates=slice_updates,
    slice_repeats=slice_repeats,
    identity_tokens=identity_tokens,
    identity_window=check_window,
    claim_tokens=claim_tokens,
    chunk_tokens=chunk_tokens,
    flat_strategy=flat_strategy,
    budget_s=budget_s,
    min_blocks=min_blocks,
    max_blocks=max_blocks,
    max_length=min(models.preset_config(p).get("max_position_embeddings", 10**9) for p in presets),
)
extension = blocks.Extension(extend_s, extend_total_s)  # shared by every comparison below
block_params = dict(  # the claims' block comparisons, here and in the fixed-kernel process below
    tokens=claim_tokens,
    budget_s=budget_s,
    min_blocks=min_blocks,
    max_blocks=max_blocks,
    warmup=warmup,
    step=step,
    window=window,
    keep=keep,
    chunk_tokens=chunk_tokens,
)

# 12: on MLX CUDA the long-context copy cost judged with cuDNN SDPA off; 11: a block's log-ratio the median of its
# rounds'; 10: slice_update judged on settled writes; 9: flatness at fixed contexts, undecided comparisons extended
run = results.start("01_kv_cache", globals(), method_version=12)
display(pd.Series(run.environment.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## The strategies emit the same tokens <a id="strategies"></a>
# Under greedy decoding the three caches must produce the same tokens as long as the sequence fits in the
# rotating window; past it the rotating cache has dropped the oldest tokens (all but `keep`), so the context,
# and soon the tokens, differ. Checked here on the tiny preset with its weights scaled up (at the presets'
# small random weights greedy decoding repeats one token, and a comparison would prove nothing); the prompt
# stops `identity_tokens / 2` tokens short of the window, so the generation crosses it.
# `tests/test_kvcache.py` asserts the same.

# %%
varied = measure.varied_model("tiny", seed=seed)
check_prompt = models.random_prompt(varied, check_window - identity_tokens // 2, seed=seed)
measure.record_identity(
    run,
    varied,
    check_prompt,
    identity_tokens,
    strategies=strategies,
    step=step,
    window=check_window,
    keep=keep,
)
display(analysis.identity_table(run.measurements))
del varied

# %% [markdown]
# ## Measuring: the sweep and the claims' blocks, model by model <a id="measure"></a>
# Each model is built once; its length sweep runs first, then the claims' block comparisons
# (`measure.claim_comparisons`: concat against preallocated from the original's shortest context and at the
# longest length, and `flat_strategy` at the original's longest against its shortest context), each with its
# own `budget_s`. The sections below read the stored rows.
#
# **The sweep.** At each length L the prompt (random token ids) is prefilled into a fresh cache by mlx-lm's
# `generate_step`, which then decodes `decode_tokens` tokens greedily; the time per token is the median
# interval between their host timestamps (`Generation.token_times_s`, mlx-lm's own loop with its pipelining;
# the median so that one stall of a shared machine does not move it, mlx-lm's mean is stored beside it as
# `ms_per_token`), so the context during decoding runs from L to L + `decode_tokens`. This separates the
# length from the count of decoded tokens: decoding thousands of tokens to reach a long context would cost
# minutes per trial, while prefilling it is cheap. (The original decoded 10..100 tokens from a short prompt:
# the same contexts for its range.) The trials run in `repeats` rounds; each round visits every length, and at
# each length every strategy back to back (in an order rotated from round to round), so that slow drifts of
# the machine (on a GPU the time per token of a small model can sit in a slow mode for seconds) hit every
# length and strategy alike instead of one length. Warm-up, not recorded: `warmup` generations per strategy at
# the shortest length, then one short pass (2 decoded tokens) of every strategy at every length, so that the
# first use of a length's larger prefill shapes and cache buffers is not paid by whichever strategy runs first
# in round 0.
#
# **The claims' blocks.** A trial prefills L tokens and decodes `claim_tokens` (at least 256 for a steady-state
# time per token). For the copy claims both strategies start at the same L, so their contexts match token by
# token. For flatness the two trials are at the original's ends, 10 and 100 tokens, and each decodes every
# token at its own context: the cache is trimmed back to the prompt every `chunk_tokens` tokens
# (`measure.fixed_context_trial`; the restart falls in the chunk's first interval, which is dropped with the
# switch). A plain 256-token trial from 100 tokens would run to 356 and one from 10 to 266, so the comparison
# would weigh the tokens past 256, where MLX CUDA's decode attention steps up (on the H200 the 8c63f4e runs
# measured +3.7% and +4.0% that way), rather than the original's range. A comparison still undecided when its
# `budget_s` is spent goes on for up to `extend_s` more (`extend_total_s` over the notebook) where its blocks
# project a decision within that; its row says whether it was extended.
#
# **One attention kernel for both caches (MLX CUDA).** MLX CUDA sends a decode query to cuDNN's attention instead of
# its own vector kernel when K and V fill the buffer behind their view exactly in rows of a multiple of 256, as the
# preallocated cache's do and concat's fresh arrays do not. At a long context the copy comparison would then weigh
# two kernels as much as the copy (on one H200 at 7936 tokens: concat -10.3% and -7.1% against preallocated with
# cuDNN, +3.9% and +4.5% without; `reports/reference/bench/kv_cache_cudnn_abba_9953cea/`). MLX reads the switch once
# per process, so with `fixed_kernel_copy` the long-context comparison runs again in a fresh process with
# `MLX_CUDA_USE_CUDNN_SDPA=0` (`kv_cache.fixed_kernel`), after this process freed its model: the copy's cost is
# judged there, and the default comparison is what a user of mlx-lm's defaults gets. Other backends have no such
# switch, and the comparison runs once.

# %%
for name in presets:
    loaded = models.build_preset(name, dtype=dtype, bits=quant_bits, seed=seed)
    kv_bytes = roofline.kv_bytes_per_position(loaded.config, loaded.dtype)
    display(pd.Series(loaded.describe() | {"kv_bytes_per_token": kv_bytes}, name=loaded.label).to_frame())
    measure.sweep(
        run,
        loaded,
        strategies=strategies,
        lengths=lengths,
        decode_tokens=decode_tokens,
        repeats=repeats,
        warmup=warmup,
        step=step,
        window=window,
        keep=keep,
        split_lengths=split_lengths,
        split_tokens=split_tokens,
        seed=seed,
    )
    plans = measure.claim_comparisons(
        strategies,
        original_lengths,
        max(lengths),
        flat_strategy=flat_strategy,
        flat_tolerance=flat_tolerance,
        copy_tolerance=copy_tolerance,
        claim_model=name == presets[0],
    )
    measure.compare_claims(run, loaded, plans, extension=extension, seed=seed, **block_params)
    del loaded
    mx.clear_cache()
    if (
        fixed_kernel_copy
        and fixed_kernel.applies(run.environment.backend)
        and {"concat", "preallocated"} <= set(strategies)
    ):
        fixed_kernel.compare(
            run,
            name,
            dtype=dtype,
            bits=quant_bits,
            seed=seed,
            length=max(lengths),
            tolerance=copy_tolerance,
            extension=extension,
            **block_params,
        )

# %% [markdown]
# ## Time per token as the context grows <a id="per_token"></a>
# The sweep (descriptive): median time per token with its 95% interval, per strategy. The published mlx-node figures
# (per_token_ms table: x = tokens generated, on hardware the write-up does not name) are drawn as a dashed
# series beside them, never mixed in; the dotted vertical line is the rotating window.

# %%
df = run.measurements
for name in presets:
    fig = analysis.chart_per_token(df, name, window)
    run.save_figure(fig, f"per_token_{analysis.slug(name)}")
    display(fig, analysis.wide(analysis.per_token_table(df, name)))

# %% [markdown]
# The slope of a least-squares line through every trial (time per token against context length) is the cost
# of one more token of context; the interval is a pairs bootstrap. It is given as ms per 1000 tokens of
# context (numerically, µs per token). Attention has to read the whole cache every token under every strategy,
# so some slope is expected everywhere; what the strategies add on top of it is the question.

# %%
display(analysis.slopes(df).round(4))

# %% [markdown]
# ## The claims in paired blocks <a id="blocks"></a>
# One row per comparison (`core.blocks`' stored outcome row): the % change of the variant's time per token over
# the reference's (geometric mean of the per-block ratios, each the median of its rounds', t interval on their
# logs at the per-look confidence that keeps 95% over every look), n blocks, why it stopped (`decided`: the
# interval lies wholly inside or outside the no-effect band; `budget` or `max_blocks` otherwise), and the
# smallest effect the blocks could resolve (the interval's half-width). The chart draws each against its band (grey).

# %%
display(analysis.block_outcomes(run.measurements).round(3))
fig = analysis.chart_blocks(run.measurements)
run.save_figure(fig, "claim_blocks")
display(fig)

# %% [markdown]
# ## When does copying start to cost? <a id="copy_cost"></a>
# What a copy per token must cost follows from the bytes it moves: concat reads the whole cache and writes it
# one token longer, every token, so at the long-context comparison about 2 x the cache's bytes per token, at
# the machine's measured bandwidth (`00_machine`'s latest run on this device, else a quick copy probe here). It
# stands beside the measured change in the copy findings, so a verdict of "no cost" can be read against the cost
# the data would have had to show.

# %%
ceiling = kernels.measured_bandwidth(run, sizes_mb=[256], probes=["copy"], repeats=3)
measure.record_bandwidth(run, ceiling)
display(Markdown(f"**Bandwidth for the expected copy cost:** {ceiling.describe()}."))

# %% [markdown]
# The sweep, descriptively: per-token time of `concat` over `preallocated` at each length, paired: each
# `concat` trial is divided by the `preallocated` trial of the same round and length (they ran back to back, so
# a drift of the machine cancels), and the chart shows the median of these ratios with its interval. Its short
# trials show from which length on the whole interval stays above 1 + `copy_tolerance` (dashed line).

# %%
for name in presets:
    if {"concat", "preallocated"} <= set(strategies):
        fig = analysis.chart_copy_ratio(df, name, copy_tolerance)
        run.save_figure(fig, f"copy_ratio_{analysis.slug(name)}")
        display(fig, analysis.strategy_ratios(df, name, "concat", "preallocated").round(3))

# %% [markdown]
# ## Memory <a id="memory"></a>
# Bytes of cache: the sum of every layer's key and value buffers (`nbytes`, allocated, not only filled) after
# the decode at each length. Peak memory: the device allocator's peak over the decode steps only (reset after
# the first token; the prefill's own peak is stored as `prefill_peak_memory_gb`), weights included.

# %%
for name in presets:
    fig, fig2 = analysis.chart_cache_bytes(df, name), analysis.chart_peak_memory(df, name)
    run.save_figure(fig, f"cache_bytes_{analysis.slug(name)}")
    run.save_figure(fig2, f"peak_memory_{analysis.slug(name)}")
    display(fig, fig2, analysis.wide(analysis.per_token_table(df, name, "cache_bytes", 2**-20)))

# %% [markdown]
# ## Where the time of a token goes <a id="time_split"></a>
# mlx-lm's loop pipelines: it builds and submits the next token's graph (`mx.async_eval`) before it waits for
# the current token, so a host clock cannot tell graph building from the device's work. At the lengths in
# `split_lengths`, after the pipelined decode, the same cache is decoded `split_tokens` more tokens by the
# workbook's one decode loop (`loops.steps`) run synchronously with mlx-lm's step (logprobs, greedy) and a
# per-token clock. Each step's host time splits into *graph build* (the forward pass's lazy graph), *sampling*
# (the logprobs and sampler graph), *encode/launch* (inside `async_eval`: the graph handed to the device),
# *wait for device* (blocked until the token is computed, then `item()`), *other* (the loop's own Python).
# All are host time; on a synchronous step the device's work shows as the wait. Bars: medians per step; black
# ticks: the pipelined loop's time per token at the same length, for comparison. Method version 4: the split
# was build / eval / item before (eval counted launch and wait together, and build included sampling).

# %%
for name in presets:
    if not analysis.time_split_table(df, name).empty:
        fig = analysis.chart_time_split(df, name)
        run.save_figure(fig, f"time_split_{analysis.slug(name)}")
        display(fig, analysis.time_split_table(df, name).round(3))

# %% [markdown]
# ## Does `slice_update` copy? <a id="slice_update"></a>
# The original explains the lack of effect by "MLX arrays are immutable; even `slice_update` creates new
# arrays". At the API level that is true: `buf[..., i, :] = x` gives a new array node. Whether it copies the
# buffer is measurable: one one-token write into a cache-shaped buffer `(1, 8, n, 128)`, evaluated per write,
# against `concatenate([buf[..., 1:, :], x])`, which allocates and copies. If `slice_update` copied, its time
# would grow with the buffer as a copy must: every byte read and written once at the bandwidth measured above.
# The finding fits the write's growth (least-squares slope over the sizes' medians, ms per MiB) and states it as
# a share of that ideal copy: about 0 in place, about 1 a full copy; the claim holds above 0.5. concatenate's
# own share is shown beside it (on CUDA it moves bytes at about half the device's bandwidth, so it is no
# yardstick for a copy). Method version 7: the write was judged against concatenate's growth before.
#
# Each write runs two ways. `slice_update` issues it as soon as the previous write's eval returns, as a decode
# loop writes its cache; `slice_update_settled` calls `mx.synchronize()` after each write, so nothing of the
# previous write still holds the buffer. MLX can donate a buffer only when nothing else holds it, and on MLX CUDA
# a write issued at once often finds it held: the 8c63f4e twins on one H200 disagreed (0.03x and 0.77x of a copy),
# and a targeted pass in four fresh processes (`bench/slice_update_donation.py`) found 53-96% of 1 GiB writes
# issued at once copying and none after a synchronize. The claim is about `slice_update` itself, so it is judged
# on the settled writes (since method version 10); the writes issued at once are stated beside it.

# %%
measure.slice_update_probe(
    run,
    sizes_mb=slice_sizes_mb,
    updates=slice_updates,
    repeats=slice_repeats,
    warmup=warmup,
    dtype="float32" if dtype == "float32" else "bfloat16",
)
df = run.measurements
fig = analysis.chart_slice_update(df)
run.save_figure(fig, "slice_update")
display(fig, analysis.slice_update_table(df).round(4))

# %% [markdown]
# ## Host speed during the run <a id="host"></a>
# A fixed pure-Python loop timed before every block (`core/hoststate.py`): where it slowed, the host did, and a
# host-bound decode with it (a small model on a GPU is host-bound). Paired ratios within a block cancel such a
# drift; absolute times (ms per token) describe this run's host state. The run is flagged unstable (as pyperf
# does) when the probe's CV exceeds 10% or its max/min 1.5x.

# %%
host = hoststate.report(run)
fig = plots.host_speed(run.measurements)
run.save_figure(fig, "host_speed")
display(fig, Markdown(hoststate.describe(host)))

# %% [markdown]
# ## Findings <a id="findings"></a>
# Verdicts come from the block comparisons' intervals: "flat" and "no impact" hold when the whole interval of
# the change lies within ± the tolerance, do not hold when it lies wholly outside, and are inconclusive
# otherwise (then the statement gives the smallest effect the blocks could resolve).

# %%
for finding in findings.findings(
    run.measurements,
    presets=presets,
    strategies=strategies,
    lengths=lengths,
    original_lengths=original_lengths,
    flat_tolerance=flat_tolerance,
    copy_tolerance=copy_tolerance,
    step=step,
    window=window,
):
    run.add_finding(finding)
run.finish()
display(Markdown("\n".join(f"- **{f.id}** ({f.verdict}): {f.statement}" for f in run.findings)))
