# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Memory bandwidth, model size and the roofline
#
# The original write-up (seed `004`, "Memory bandwidth is King", M4 Air vs M4 Max) says decode speed is
# memory bandwidth divided by the bytes each token reads: 0.5B..14B 4-bit models decoded at 71-94% of that
# ceiling, a hardware projection follows from it, and batching, prompt caching and the generation length
# change the picture only at the edges. Seed `002` adds mlx-lm's tok/s on MoE and dense models and a +41%
# for pre-quantized over load-time-quantized weights.
#
# This notebook re-measures all of it on the machine at hand. For every preset (shape-faithful copies of
# the real checkpoints at random weights: same bytes, same kernels) and bit width it decodes with mlx-lm's
# own `generate_step`, counts the bytes one token must move (weights read, with only the routed experts of
# an MoE; one embedding row but the whole output head; the KV cache read and written), and divides the
# measured memory bandwidth (from `00_machine`) by them: that is the roofline, and measured / roofline is
# the efficiency. Then batched decoding (mlx-lm's `BatchGenerator`), prompt caching, generation lengths,
# pre-quantized checkpoints, and a projection onto the original's hardware.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
presets: list = ["tiny", "tiny-moe"]  # presets of the size sweep, dense and MoE
bits: list = [0, 8, 4, 3]  # weight widths for dense presets; 0 means unquantized (dtype)
moe_bits: list = [0, 4]  # weight widths for MoE presets (unquantized MoE runs in float32 on the CPU)
preset_bits: dict = {}  # per-preset widths replacing bits or moe_bits, e.g. {mistral-7b: [4]}
dtype: str = "bfloat16"  # unquantized weight type, also what quantized models compute in
group_size: int = 64  # quantization group size
prompt_tokens: int = 64  # prompt length of every sweep generation
gen_tokens: int = 100  # tokens generated per sweep trial
warmup_tokens: int = (
    8  # tokens of the untimed warm-up generation (a preset's first configuration: its cold run)
)
repeats: int = 3  # timed generations per configuration
cold_warm_runs: int = 8  # at least this many warm generations beside a preset's one cold run
cold_min_processes: int = (
    3  # fresh processes that cold-start the claim's model before the ratio is first judged
)
cold_max_processes: int = 6  # at most this many (0: none, the claim is judged on the notebook's own cold run)
cold_budget_s: float = 12.0  # no new fresh process once this much time is spent on them
cold_process_warm_runs: int = 3  # warm generations after each fresh process's cold one
serving_preset: str = "tiny"  # model for batching, prompt caching and generation lengths
serving_bits: int = 4  # its weight width (0 means unquantized)
batch_sizes: list = [1, 2, 4]  # concurrent sequences in the batched decoding sweep
batch_tokens: int = 64  # tokens generated per sequence in the batch sweep
prefix_tokens: int = 1024  # shared prompt prefix held in the prompt cache
suffix_tokens: int = 32  # new prompt tokens after the cached prefix
cache_budget_s: float = 5.0  # time budget of the prompt-cache comparison (paired blocks, adaptive stopping)
cache_min_blocks: int = 5  # blocks before its first look
lengths: list = [50, 100, 200]  # short, medium and long generations (the original's sizes)
length_repeats: int = 3  # timed generations per length
prequant_preset: str = "tiny"  # preset saved as checkpoints for pre-quantized vs quantized at load time
prequant_bits: int = 4  # bit width of that comparison
prequant_tokens: int = 64  # tokens per decode trial of that comparison
prequant_chunk_tokens: int = 16  # tokens each trial advances before the other's turn (0: whole trials)
prequant_loads: int = 1  # loads of each checkpoint (their times are stored; the decode uses the last)
prequant_budget_s: float = 10.0  # time budget of that comparison's decode blocks
prequant_min_blocks: int = 5  # blocks before its first look
projection_presets: list = [
    "qwen2.5-0.5b",
    "qwen2.5-3b",
    "qwen2.5-7b",
    "qwen2.5-14b",
]  # dense presets of the projection table (bytes counted, not run)
projection_bits: int = 4  # weight width of the projected configurations (the original's 4-bit)
bandwidth_source: str = (
    "auto"  # auto takes 00_machine's latest run on this device, else probes now; measure always probes
)
probe_sizes_mb: list = [64, 256]  # buffer sizes of that probe
probe_kinds: list = [
    "read",
    "copy",
]  # its probes (kernels.bandwidth_probe); gemv is slow on a CPU, use it on GPUs
bound_threshold: float = 0.5  # efficiency from which a configuration counts as bandwidth-bound

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import results
from mlx_workbook.investigations.bandwidth import (
    analysis,
    coldstart,
    findings,
    measure,
    prequant,
    serving_analysis,
)
from mlx_workbook.models import roofline
from mlx_workbook.probes import kernels
from mlx_workbook.report import text

# Parameters are checked before any model is built: unknown presets, bad widths, impossible sizes.
plan = measure.sweep_plan(presets, bits, moe_bits, preset_bits)
cold_plan = coldstart.Plan(cold_min_processes, cold_max_processes, cold_budget_s, cold_process_warm_runs)
cold_plan.validate()
measure.validate(
    batch_sizes=batch_sizes,
    lengths=lengths,
    prefix_tokens=prefix_tokens,
    suffix_tokens=suffix_tokens,
    serving_bits=serving_bits,
    prequant_bits=prequant_bits,
    dtype=dtype,
    group_size=group_size,
    presets=[serving_preset, prequant_preset, *projection_presets],
    projection_bits=projection_bits,
    prompt_tokens=prompt_tokens,
    gen_tokens=gen_tokens,
    batch_tokens=batch_tokens,
    repeats=[repeats, length_repeats],
    budgets_s=[cache_budget_s, prequant_budget_s],
    min_blocks=[cache_min_blocks, prequant_min_blocks],
    prequant_tokens=prequant_tokens,
    prequant_chunk_tokens=prequant_chunk_tokens,
    prequant_loads=prequant_loads,
    cold_warm_runs=cold_warm_runs,
)

run = results.start("04_bandwidth", globals(), method_version=measure.METHOD_VERSION)
env = run.environment
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## The ceiling: measured memory bandwidth <a id="ceiling"></a>
# The roofline divides a sustained bandwidth by bytes. It comes from `00_machine`'s latest finished run on this
# device (its `measured_bandwidth_gbs` finding); without one, a quick probe (`probe_kinds`, the best one
# counts) runs here and is stored with this run. The vendor's published peak, where the library knows the
# device, is a second, higher ceiling.

# %%
ceiling = kernels.measured_bandwidth(
    run, mode=bandwidth_source, sizes_mb=probe_sizes_mb, probes=probe_kinds, repeats=5
)
display(Markdown(f"**Bandwidth used for every roofline:** {ceiling.describe()}."))

# %% [markdown]
# ## Bytes per token <a id="bytes"></a>
# Exact byte accounting from the model's own arrays (built lazily: nothing is allocated). One decode step reads
# each used weight once: for an MoE only `num_experts_per_tok` of `num_experts` experts per layer; one row of
# the embedding, but the whole output head (the embedding matrix itself when the head is tied). It also reads
# the KV cache of every earlier token (at the mean context of a sweep generation, prompt + half the generated
# tokens) and writes the new token's K and V.

# %%
context = roofline.mean_context(prompt_tokens, gen_tokens)
acc = roofline.accounting(
    plan + [(p, [projection_bits]) for p in projection_presets], context, dtype=dtype, group_size=group_size
)
fig = analysis.bytes_chart(acc, context)
run.save_figure(fig, "bytes_per_token")
display(fig, analysis.bytes_table(acc).round(4))

# %% [markdown]
# ## Decode and prompt speed against model size <a id="sweep"></a>
# Each preset is built once unquantized; every bit width is quantized from that build with mlx-lm's
# `quantize_model` (the last one consumes it, so only one copy must fit). A configuration that does not fit
# this device or this backend is skipped with the library's reason. Per configuration: one short untimed
# warm-up generation, then `repeats` generations of `gen_tokens` tokens after a `prompt_tokens` prompt, clocked
# like `mlx_lm.stream_generate`. Efficiency uses the steady decode rate (one over the mean time per token). The
# first configuration of each preset makes its warm-up a full generation and stores it as the preset's cold
# start (next section). Intervals are of the median over the `repeats` trials (order statistics; below 6 trials
# that is the range, with its real coverage: the table's `n` and `interval` say which).

# %%
skipped = measure.size_sweep(
    run,
    plan,
    ceiling,
    dtype=dtype,
    group_size=group_size,
    prompt_tokens=prompt_tokens,
    gen_tokens=gen_tokens,
    repeats=repeats,
    warmup_tokens=warmup_tokens,
    cold_warm_runs=cold_warm_runs,
)
df = run.measurements
where = text.where(df)
display(Markdown(analysis.skipped_text(df)))
table = analysis.decode_table(df, bound_threshold, ceiling)
fig = analysis.decode_chart(table, acc, ceiling, where)
run.save_figure(fig, "decode_vs_bytes")
display(fig)
fig = analysis.prompt_chart(table, prompt_tokens, where)
run.save_figure(fig, "prompt_vs_size")
display(fig, analysis.sweep_view(table))

# %% [markdown]
# ## The first run: cold start <a id="cold"></a>
# The Rust write-up's first Qwen3-30B-A3B run decoded at 69.3 tok/s against 98.1-98.5 warm: a warm-up run
# matters. That is not about Rust, so it is measured here with Python mlx-lm. Each preset's first generation
# after its build in this process (same prompt and length as a warm trial) is stored on its own, with its TTFT,
# decode tok/s and wall time, beside at least `cold_warm_runs` warm trials: one cold run against n warm ones has a
# t prediction interval (n - 1 degrees of freedom), too wide to decide on a host whose speed wanders, and presets
# run before it have already compiled the kernels they share.
#
# So the claim is judged on fresh processes: the claim's model (else an MoE stand-in) is built in a new
# interpreter, which runs one cold generation and then `cold_process_warm_runs` warm ones right after it. Each
# process gives one paired cold/warm ratio (a host drift cancels within it); the ratio over the processes has a t
# interval on their log-ratios, and processes are added (from `cold_min_processes` to `cold_max_processes`, within
# `cold_budget_s`) until it decides against the published ratio widened by ±0.1. What a fresh process does not
# pay again is what the machine keeps: files, and on MLX CUDA the kernels it caches on disk.

# %%
display(analysis.cold_table(run.measurements).round(3))
cold_config = coldstart.pick(plan, dtype, skipped)
if cold_config and cold_max_processes:
    why = coldstart.measure_processes(
        run,
        *cold_config,
        cold_plan,
        dtype=dtype,
        group_size=group_size,
        prompt_tokens=prompt_tokens,
        gen_tokens=gen_tokens,
    )
    fresh = coldstart.result(run.measurements)
    display(
        Markdown(
            f"**Cold starts in fresh processes** (stopped: {why}): {fresh.estimate if fresh else 'fewer than 2'}"
        ),
        coldstart.table(run.measurements).round(3),
    )

# ## Efficiency, and where decode stops being bandwidth-bound <a id="efficiency"></a>
# Efficiency = steady decode tok/s / roofline tok/s, per preset and bit width. A configuration counts as
# bandwidth-bound at `bound_threshold` or more. Below it, the library tells two causes apart from the data:
# *latency-bound* when its time per token is within 1.5x of the fastest step of the whole sweep (a fixed
# per-token cost, kernel launches and host work, dominates, so fewer bytes cannot help); *kernel-bound* when a
# quantized variant is also less efficient than its own unquantized twin (dequantizing, not memory, sets the pace).
# Efficiencies are never clipped: above 1 means decoding moved bytes faster than the bandwidth probe did, so the
# probe underestimates this device's sustained bandwidth (the note under the chart says so, and the table gives
# `efficiency_vs_peak`, the same rate against the vendor's published peak, where the library knows it).

# %%
fig = analysis.efficiency_chart(table, ceiling, bound_threshold, where)
run.save_figure(fig, "efficiency")
display(fig, Markdown(analysis.efficiency_note(table, ceiling)))

# %% [markdown]
# ## Mixture of experts: only the active experts count <a id="moe"></a>
# For an MoE a token reads the attention, router and shared weights plus `k` of `E` experts per layer. If the
# accounting is right, MoE efficiency sits near the dense models'; against a roofline that charged every
# expert the MoE would look impossibly fast.

# %%
display(
    analysis.moe_view(table, ceiling) if table.moe.any() else Markdown("No MoE preset ran in this profile.")
)

# %% [markdown]
# ## Batched decoding <a id="batch"></a>
# mlx-lm's `BatchGenerator` decodes B sequences per step. One step reads the weights once for all of them (and
# each sequence's own KV cache), so the batched roofline is B x bandwidth / bytes per step: aggregate tok/s
# should climb almost linearly while the weights dominate the bytes. Aggregate tok/s is mlx-lm's
# `generation_tps` (generated tokens / generation time). Each trial runs every batch size once in a random
# order, so the speedup over batch 1 is paired by trial (t interval on the per-trial log-ratios, n = trials).

# %%
served = measure.build(serving_preset, serving_bits, dtype, group_size)
measure.batch_sweep(
    run,
    served,
    ceiling,
    batch_sizes=batch_sizes,
    prompt_tokens=prompt_tokens,
    gen_tokens=batch_tokens,
    repeats=repeats,
)
fig = serving_analysis.batch_chart(run.measurements, ceiling, where)
run.save_figure(fig, "batch")
display(fig, serving_analysis.batch_table(run.measurements).round(3))

# %% [markdown]
# ## Prompt caching <a id="prompt-cache"></a>
# A shared prefix (a system prompt, a document) is prefilled once into an mlx-lm prompt cache
# (`make_prompt_cache`); each request then only processes its own suffix. Time to first token, from scratch
# (prefix + suffix) vs with the cached prefix; the cache is trimmed back to the prefix after every trial. The two
# run back to back in random order per block (core.blocks), judged on per-block paired log-ratios; blocks are
# added until the change is told apart from ±5% or `cache_budget_s` is spent (the stored row says why it stopped).

# %%
measure.prompt_cache_ttft(
    run,
    served,
    prefix_tokens=prefix_tokens,
    suffix_tokens=suffix_tokens,
    budget_s=cache_budget_s,
    min_blocks=cache_min_blocks,
)
fig = serving_analysis.prompt_cache_chart(run.measurements, where)
run.save_figure(fig, "prompt_cache")
display(
    fig,
    serving_analysis.prompt_cache_table(run.measurements).round(3),
    serving_analysis.stop_view(run.measurements, "prompt_cache").round(3),
    Markdown(
        f"Same first token with and without the cache: {serving_analysis.same_first_token(run.measurements)}."
    ),
)

# %% [markdown]
# ## Short, medium and long generations <a id="lengths"></a>
# The original's 50 / 100 / 200-token workloads. There is no HTTP server here, so the write-up's server
# overhead cannot be measured; what can is how much of a request is its fixed start (prefill and first
# token, `fixed_share`) and how the decode speed holds up as the context grows.

# %%
measure.generation_lengths(run, served, lengths=lengths, prompt_tokens=prompt_tokens, repeats=length_repeats)
del served
fig = serving_analysis.lengths_chart(run.measurements, where)
run.save_figure(fig, "lengths")
display(fig, serving_analysis.fixed_share_table(run.measurements).round(4))

# %% [markdown]
# ## Pre-quantized checkpoint vs quantizing at load time <a id="prequant"></a>
# The Rust write-up measured +41% for a pre-quantized Mistral-7B over quantizing on the fly. Here one preset
# is saved twice into a temporary folder, unquantized and quantized (from the same weights, with the same
# `quantize_model`), with an offline tokenizer so each is a complete `mlx_lm.load` folder. Both load through
# `models.load_checkpoint`: the unquantized one with `quantize_bits` (quantized at load time). Each is loaded
# `prequant_loads` times (every load's time is stored) and then both stay resident; one untimed generation of
# each warms it up and fingerprints its tokens. The claim is about decode speed, so the comparison is on decode
# alone: each block decodes a `prequant_tokens`-token trial of both, advanced alternately
# `prequant_chunk_tokens` tokens at a time in random order (core.blocks.interleaved), so a change of the host's
# speed hits both within a fraction of a second; a trial's value is its steady-state tok/s (per-token medians),
# and a block's log-ratio the median of its rounds' (core.blocks.block_log_ratio). Blocks are added until the
# paired change lies wholly inside or outside the published +41% widened by 10 points (outside it, also wholly
# above or below no change: that decides "size differs" against "does not hold"), or `prequant_budget_s` is spent.

# %%
prequant.prequantized_vs_load_time(
    run,
    prequant_preset,
    prequant_bits,
    prompt_tokens=prompt_tokens,
    tokens=prequant_tokens,
    chunk_tokens=prequant_chunk_tokens,
    loads=prequant_loads,
    budget_s=prequant_budget_s,
    min_blocks=prequant_min_blocks,
    band=serving_analysis.prequant_band(),
    group_size=group_size,
    dtype=dtype,
)
fig = serving_analysis.prequant_chart(run.measurements, where)
run.save_figure(fig, "prequant")
display(
    fig,
    serving_analysis.prequant_table(run.measurements).round(4),
    serving_analysis.stop_view(run.measurements, "prequant").round(3),
    Markdown(f"Identical generated tokens: {serving_analysis.prequant_same_tokens(run.measurements)}."),
)

# %% [markdown]
# ## Projection onto the original's hardware <a id="projection"></a>
# Predicted tok/s = bandwidth x efficiency / bytes per token, with the efficiency measured here: the
# configuration's own where it ran, else that of the largest dense configuration of the same width that ran
# (named in `efficiency_from`). The original's chips use the bandwidths it published (the M4 Pro as its
# 200-250 GB/s range); this machine appears with its measured bandwidth and its published peak. Published
# tok/s (measured or estimated, as the write-up labels them) stand beside the prediction, never in it.

# %%
display(
    analysis.projection_table(table, acc, ceiling, env.device, projection_presets, projection_bits).round(2)
)

# %% [markdown]
# ## Findings <a id="findings"></a>
# One finding per published claim of this notebook (seed 004, and seed 002's model tables), each with a
# verdict computed from the data above, or marked as not applicable where the claim is about Apple hardware,
# a server, Ollama or a Rust binding that this notebook cannot run, with our closest measurement beside it.

# %%
for finding in findings.findings(run.measurements, acc, ceiling, run.params):
    run.add_finding(finding)
run.finish()
display(Markdown("\n".join(f"- **{f.id}** ({f.verdict}): {f.statement}" for f in run.findings)))
