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
run_dir: str = ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
presets: list = ["tiny", "tiny-moe"]  # presets of the size sweep, dense and MoE
bits: list = [0, 8, 4, 3]  # weight widths for dense presets; 0 means unquantized (dtype)
moe_bits: list = [0, 4]  # weight widths for MoE presets (unquantized MoE runs in float32 on the CPU)
preset_bits: dict = {}  # per-preset widths replacing bits or moe_bits, e.g. {mistral-7b: [4]}
dtype: str = "bfloat16"  # unquantized weight type, also what quantized models compute in
group_size: int = 64  # quantization group size
prompt_tokens: int = 64  # prompt length of every sweep generation
gen_tokens: int = 100  # tokens generated per sweep trial
warmup_tokens: int = 8  # tokens of the untimed warm-up generation per configuration
repeats: int = 3  # timed generations per configuration
serving_preset: str = "tiny"  # model for batching, prompt caching and generation lengths
serving_bits: int = 4  # its weight width (0 means unquantized)
batch_sizes: list = [1, 2, 4]  # concurrent sequences in the batched decoding sweep
batch_tokens: int = 64  # tokens generated per sequence in the batch sweep
prefix_tokens: int = 1024  # shared prompt prefix held in the prompt cache
suffix_tokens: int = 32  # new prompt tokens after the cached prefix
cache_repeats: int = 5  # timed trials per prompt-cache variant
lengths: list = [50, 100, 200]  # short, medium and long generations (the original's sizes)
length_repeats: int = 3  # timed generations per length
prequant_preset: str = "tiny"  # preset saved as checkpoints for pre-quantized vs quantized at load time
prequant_bits: int = 4  # bit width of that comparison
prequant_repeats: int = 3  # loads and generations per variant
projection_presets: list = ["qwen2.5-0.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b"]  # dense presets of the projection table (bytes counted, not run)
projection_bits: int = 4  # weight width of the projected configurations (the original's 4-bit)
bandwidth_source: str = "auto"  # auto takes 00_machine's latest run on this device, else probes now; measure always probes
probe_sizes_mb: list = [64, 256]  # buffer sizes of that probe
bound_threshold: float = 0.5  # efficiency from which a configuration counts as bandwidth-bound

# %%
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook import measure, models, plots, published, results, serving, verdicts
from mlx_workbook import roofline as rl
from mlx_workbook.results import Finding

# Parameters are checked before any model is built: unknown presets, bad widths, impossible sizes.
plan = serving.sweep_plan(presets, bits, moe_bits, preset_bits)
serving.validate(batch_sizes=batch_sizes, lengths=lengths, prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens,
                 serving_bits=serving_bits, prequant_bits=prequant_bits,
                 presets=[serving_preset, prequant_preset, *projection_presets])
if dtype not in models.DTYPES or group_size not in models.GROUP_SIZES or projection_bits not in models.QUANT_BITS:
    raise models.ModelError(f"dtype {dtype!r}, group_size {group_size} or projection_bits {projection_bits} is not "
                            f"supported: dtypes {list(models.DTYPES)}, group sizes {models.GROUP_SIZES}, bits {models.QUANT_BITS}")
if min(prompt_tokens, gen_tokens - 1, repeats, batch_tokens - 1, length_repeats, cache_repeats, prequant_repeats) < 1:
    raise ValueError("prompt_tokens, repeats must be >= 1 and gen_tokens, batch_tokens >= 2")

params = {k: v for k, v in dict(globals()).items() if k in (
    "profile", "presets", "bits", "moe_bits", "preset_bits", "dtype", "group_size", "prompt_tokens", "gen_tokens",
    "warmup_tokens", "repeats", "serving_preset", "serving_bits", "batch_sizes", "batch_tokens", "prefix_tokens",
    "suffix_tokens", "cache_repeats", "lengths", "length_repeats", "prequant_preset", "prequant_bits",
    "prequant_repeats", "projection_presets", "projection_bits", "bandwidth_source", "probe_sizes_mb",
    "bound_threshold")}
run = results.start_run("04_bandwidth", params, run_dir=run_dir)
env = run.environment
where = f"{env.device} ({env.backend}, mlx {env.mlx})"
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## The ceiling: measured memory bandwidth <a id="ceiling"></a>
# The roofline divides a sustained bandwidth by bytes. It comes from `00_machine`'s latest finished run on this
# device (its `measured_bandwidth_gbs` finding); without one, a quick probe runs here and is stored with this
# run. The vendor's published peak, where the library knows the device, is a second, higher ceiling.

# %%
roots = [Path(run_dir).resolve().parents[1]] if run_dir else []
ceiling = rl.measured_bandwidth(run, mode=bandwidth_source, roots=roots + [rl.REPORTS_DIR],
                                sizes_mb=probe_sizes_mb, repeats=5)
peak_text = (f"; published peak of the {ceiling.published_name}: {ceiling.published_gbs} GB/s"
             if ceiling.published_gbs else "; no published peak known for this device")
display(Markdown(f"**Bandwidth used for every roofline:** {ceiling.gbs:.1f} GB/s [{ceiling.low:.1f}, "
                 f"{ceiling.high:.1f}] from {ceiling.source}{peak_text}."))

# %% [markdown]
# ## Bytes per token <a id="bytes"></a>
# Exact byte accounting from the model's own arrays (built lazily: nothing is allocated). One decode step reads
# each used weight once: for an MoE only `num_experts_per_tok` of `num_experts` experts per layer; one row of
# the embedding, but the whole output head (the embedding matrix itself when the head is tied). It also reads
# the KV cache of every earlier token (at the mean context of a sweep generation, prompt + half the generated
# tokens) and writes the new token's K and V.

# %%
context = rl.mean_context(prompt_tokens, gen_tokens)


def lazy_model(name, b):
    config = models.preset_config(name)
    return models.build_preset(name, dtype=rl.base_dtype(config, dtype), bits=b or None, group_size=group_size,
                               materialize=False)


accounting = []
for name, widths in plan + [(p, [projection_bits]) for p in projection_presets]:
    for b in widths:
        lm = lazy_model(name, b)
        accounting.append({"label": lm.label, "model": name, "bits": b, "weight_bytes": lm.weight_bytes(),
                           **rl.bytes_per_step(lm, context)})
accounting = pd.DataFrame(accounting).drop_duplicates("label").reset_index(drop=True)
parts = ["embedding_rows", "lm_head", "dense_layers", "experts_active", "kv_read", "kv_written"]
gb = accounting.assign(**{p: accounting[p] / 1e9 for p in parts + ["weights", "total", "weight_bytes"]})
fig = plots.stacked_bars(gb, category="label", parts=parts, ylabel="GB moved per decoded token",
                         title=f"Bytes per token at context {context:g} (library accounting)")
run.save_figure(fig, "bytes_per_token")
display(fig, gb[["label", "weight_bytes", "weights", "kv_read", "total"]].rename(
    columns={"weight_bytes": "weights stored (GB)", "weights": "weights read (GB)", "kv_read": "KV read (GB)",
             "total": "moved per token (GB)"}).round(4))

# %% [markdown]
# ## Decode and prompt speed against model size <a id="sweep"></a>
# Each preset is built once unquantized; every bit width is quantized from that build with mlx-lm's
# `quantize_model` (the last one consumes it, so only one copy must fit). A configuration that does not fit
# this device or this backend is skipped with the library's reason. Per configuration: one short untimed
# warm-up generation, then `repeats` generations of `gen_tokens` tokens after a `prompt_tokens` prompt, clocked
# like `mlx_lm.stream_generate`. Efficiency uses the steady decode rate (one over the mean time per token).

# %%
skipped = serving.size_sweep(run, plan, ceiling, dtype=dtype, group_size=group_size, prompt_tokens=prompt_tokens,
                             gen_tokens=gen_tokens, repeats=repeats, warmup_tokens=warmup_tokens)
if skipped:
    display(Markdown("**Skipped configurations:**\n" + "\n".join(f"- {s['label']}: {s['reason']}" for s in skipped)))
df = run.measurements
table = rl.classify(rl.decode_table(df), bound_threshold)
table["series"] = table.quant + np.where(table.moe, " MoE", "")
lines = table.rename(columns={"decode_tps": "median", "decode_tps_low": "low", "decode_tps_high": "high"})
lines = lines.assign(bytes_gb=lines.bytes_per_token / 1e9)
fig = plots.lines_with_intervals(lines, x="bytes_gb", series="series", logy=True,
                                 title=f"Decode speed vs bytes per token, {where}",
                                 xlabel="GB moved per token (log scale)", ylabel="decode tok/s (median, 95% interval)")
fig.axes[0].set_xscale("log")
xs = np.geomspace(table.bytes_per_token.min() * 0.8, max(table.bytes_per_token.max(), gb.total.max() * 1e9) * 1.2, 50)
plots.add_curve(fig, xs / 1e9, ceiling.gbs * 1e9 / xs, f"roofline at measured {ceiling.gbs:.0f} GB/s")
if ceiling.published_gbs:
    plots.add_curve(fig, xs / 1e9, ceiling.published_gbs * 1e9 / xs,
                    f"roofline at published peak {ceiling.published_gbs:g} GB/s", style=":", color="#999999")
scaling = published.table("004_bandwidth", "model_size_scaling")
ref = gb[(gb.bits == 4) & gb.model.str.startswith("qwen2.5")].assign(size=lambda d: d.model.map(rl.size_label)).merge(scaling, left_on="size", right_on="model")
if not ref.empty:  # published Apple numbers at our byte count of the same-shaped 4-bit preset
    plots.add_curve(fig, ref.total, ref.tok_s, "published: M4 Max, 4-bit (other hardware)", style="none",
                    color="#9467bd", marker="s")
run.save_figure(fig, "decode_vs_bytes")
display(fig)
prompt_lines = table.rename(columns={"prompt_tps": "median", "prompt_tps_low": "low", "prompt_tps_high": "high"})
prompt_lines = prompt_lines.assign(weights_gb=prompt_lines.weight_bytes / 1e9)
fig = plots.lines_with_intervals(prompt_lines, x="weights_gb", series="series", logy=True,
                                 title=f"Prompt speed ({prompt_tokens}-token prompt) vs weight size, {where}",
                                 xlabel="GB of weights (log scale)", ylabel="prompt tok/s (median, 95% interval)")
fig.axes[0].set_xscale("log")
run.save_figure(fig, "prompt_vs_size")
display(fig, table[["label", "bytes_per_token", "decode_tps", "decode_tps_low", "decode_tps_high", "prompt_tps",
                    "roofline_tps", "efficiency", "regime", "peak_memory_gb"]].round(3))

# %% [markdown]
# ## Efficiency, and where decode stops being bandwidth-bound <a id="efficiency"></a>
# Efficiency = steady decode tok/s / roofline tok/s, per preset and bit width. A configuration counts as
# bandwidth-bound at `bound_threshold` or more. Below it, the library tells two causes apart from the data:
# *latency-bound* when its time per token is within 1.5x of the fastest step of the whole sweep (a fixed
# per-token cost, kernel launches and host work, dominates, so fewer bytes cannot help); *kernel-bound* when a
# quantized variant is also less efficient than its own unquantized twin (dequantizing, not memory, sets the pace).

# %%
eff = table.rename(columns={"efficiency": "median", "efficiency_low": "low", "efficiency_high": "high"})
fig = plots.bars_with_intervals(eff, category="model", group="quant", ylabel="measured / roofline",
                                ceilings={f"bandwidth-bound threshold {bound_threshold:g}": bound_threshold},
                                title=f"Decode efficiency against the {ceiling.gbs:.0f} GB/s roofline, {where}")
run.save_figure(fig, "efficiency")
display(fig)
regimes = table.groupby("regime").label.apply(lambda s: ", ".join(s)).to_dict()
floor_ms = float(table.floor_ms.iloc[0])
regime_text = "; ".join(f"{k}: {v}" for k, v in regimes.items())
display(Markdown(f"Fastest step of the sweep: {floor_ms:.2f} ms per token. {regime_text}."))

# %% [markdown]
# ## Mixture of experts: only the active experts count <a id="moe"></a>
# For an MoE a token reads the attention, router and shared weights plus `k` of `E` experts per layer. If the
# accounting is right, MoE efficiency sits near the dense models'; against a roofline that charged every
# expert the MoE would look impossibly fast.

# %%
moe = table[table.moe]
if moe.empty:
    display(Markdown("No MoE preset ran in this profile."))
else:
    moe_view = moe.assign(all_weights_roofline_tps=ceiling.gbs * 1e9 / moe.weight_bytes,
                          active_share=moe.weights_read_bytes / moe.weight_bytes)
    display(moe_view[["label", "weight_bytes", "weights_read_bytes", "active_share", "decode_tps", "roofline_tps",
                      "all_weights_roofline_tps", "efficiency", "regime"]].round(3))

# %% [markdown]
# ## Batched decoding <a id="batch"></a>
# mlx-lm's `BatchGenerator` decodes B sequences per step. One step reads the weights once for all of them (and
# each sequence's own KV cache), so the batched roofline is B x bandwidth / bytes per step: aggregate tok/s
# should climb almost linearly while the weights dominate the bytes. Aggregate tok/s is mlx-lm's
# `generation_tps` (generated tokens / generation time).

# %%
served = models.build_preset(serving_preset, dtype=rl.base_dtype(models.preset_config(serving_preset), dtype),
                             bits=serving_bits or None, group_size=group_size)
serving.batch_sweep(run, served, ceiling, batch_sizes=batch_sizes, prompt_tokens=prompt_tokens,
                    gen_tokens=batch_tokens, repeats=repeats)
df = run.measurements
bdf = df[df.experiment == "batch"]
btab = plots.summary_table(bdf[bdf.metric == "aggregate_tps"], ["batch"])
roof_b = bdf.groupby("batch").roofline_tps.first()
fig = plots.lines_with_intervals(btab.assign(series="measured"), x="batch", series="series", logx=True, logy=True,
                                 title=f"Batched decoding, {served.label}, {where}", xlabel="batch size",
                                 ylabel="aggregate tok/s (median, 95% interval)")
plots.add_curve(fig, roof_b.index, roof_b.values, f"batched roofline at {ceiling.gbs:.0f} GB/s")
run.save_figure(fig, "batch")
bview = btab.merge(roof_b.rename("roofline_tps"), left_on="batch", right_index=True)
bview["speedup_vs_1"] = bview["median"] / bview["median"].iloc[0]
bview["weights_read_per_token_mb"] = bdf.groupby("batch").weights_per_token_bytes.first().values / 1e6
display(fig, bview.round(3))

# %% [markdown]
# ## Prompt caching <a id="prompt-cache"></a>
# A shared prefix (a system prompt, a document) is prefilled once into an mlx-lm prompt cache
# (`make_prompt_cache`); each request then only processes its own suffix. Time to first token, from scratch
# (prefix + suffix) vs with the cached prefix; the cache is trimmed back to the prefix after every trial.

# %%
cache_info = serving.prompt_cache_ttft(run, served, prefix_tokens=prefix_tokens, suffix_tokens=suffix_tokens,
                                       repeats=cache_repeats)
df = run.measurements
pc = df[(df.experiment == "prompt_cache") & (df.metric == "ttft_ms")]
ptab = plots.summary_table(pc, ["variant"])
fig = plots.bars_with_intervals(ptab, category="variant", ylabel="time to first token, ms",
                                title=f"TTFT, {prefix_tokens}-token prefix + {suffix_tokens} new tokens, {served.label}, {env.device}")
run.save_figure(fig, "prompt_cache")
display(fig, ptab.round(3), Markdown(f"First token with and without the cache: {cache_info['first_tokens']}."))

# %% [markdown]
# ## Short, medium and long generations <a id="lengths"></a>
# The original's 50 / 100 / 200-token workloads. There is no HTTP server here, so the write-up's server
# overhead cannot be measured; what can is how much of a request is its fixed start (prefill and first
# token, `fixed_share`) and how the decode speed holds up as the context grows.

# %%
serving.generation_lengths(run, served, lengths=lengths, prompt_tokens=prompt_tokens, repeats=length_repeats)
df = run.measurements
ldf = df[df.experiment == "lengths"]
ltab = plots.summary_table(ldf[ldf.metric.isin(["decode_tps", "request_tps"])], ["metric", "length"])
fig = plots.lines_with_intervals(ltab, x="length", series="metric", title=f"Generation length, {served.label}, {where}",
                                 xlabel="generated tokens", ylabel="tok/s (median, 95% interval)")
run.save_figure(fig, "lengths")
share = plots.summary_table(ldf[ldf.metric == "fixed_share"], ["length"])
display(fig, share.round(4))
served_label = served.label
del served

# %% [markdown]
# ## Pre-quantized checkpoint vs quantizing at load time <a id="prequant"></a>
# The Rust write-up measured +41% for a pre-quantized Mistral-7B over quantizing on the fly. Here one preset
# is saved twice into a temporary folder, unquantized and quantized (from the same weights, with the same
# `quantize_model`), with an offline tokenizer so each is a complete `mlx_lm.load` folder. Both load through
# `models.load_checkpoint`: the unquantized one with `quantize_bits` (quantized at load time). Trials alternate
# the two; each trial loads, warms up and decodes.

# %%
pq_tokens = serving.prequantized_vs_load_time(run, prequant_preset, prequant_bits, prompt_tokens=prompt_tokens,
                                              gen_tokens=gen_tokens, repeats=prequant_repeats, group_size=group_size,
                                              dtype=dtype)
df = run.measurements
pq = df[df.experiment == "prequant"]
pqtab = plots.summary_table(pq[pq.metric.isin(["decode_tps", "load_s"])], ["metric", "variant"])
fig = plots.bars_with_intervals(pqtab[pqtab.metric == "decode_tps"], category="variant", ylabel="decode tok/s",
                                title=f"{prequant_preset} {prequant_bits}-bit: pre-quantized vs at load time, {where}")
run.save_figure(fig, "prequant")
same_tokens = len(set(map(tuple, pq_tokens.values()))) == 1
display(fig, pqtab.round(4), Markdown(f"Identical generated tokens: {same_tokens}."))

# %% [markdown]
# ## Projection onto the original's hardware <a id="projection"></a>
# Predicted tok/s = bandwidth x efficiency / bytes per token, with the efficiency measured here: the
# configuration's own where it ran, else that of the largest dense configuration of the same width that ran
# (named in `efficiency_from`). The original's chips use the bandwidths it published (the M4 Pro as its
# 200-250 GB/s range); this machine appears with its measured bandwidth and its published peak. Published
# tok/s (measured or estimated, as the write-up labels them) stand beside the prediction, never in it.

# %%
dense_run = table[~table.moe]
proj_configs = []
for name in projection_presets:
    row = accounting[(accounting.model == name) & (accounting.bits == projection_bits)].iloc[0]
    ran = dense_run[(dense_run.model == name) & (dense_run.bits == projection_bits)]
    same_width = dense_run[dense_run.bits == projection_bits].sort_values("bytes_per_token")
    source = ran if not ran.empty else (same_width.tail(1) if not same_width.empty else dense_run.sort_values("bytes_per_token").tail(1))
    proj_configs.append({"label": row.label, "model": name, "bytes_per_token": row.total,
                         "efficiency": float(source.efficiency.iloc[0]), "efficiency_from": source.label.iloc[0],
                         "decode_tps": float(ran.decode_tps.iloc[0]) if not ran.empty else np.nan})
proj_configs = pd.DataFrame(proj_configs)
machines = rl.original_machines()
here = [{"machine": f"{env.device} (measured)", "bandwidth_low": ceiling.gbs, "bandwidth_high": ceiling.gbs, "here": True}]
if ceiling.published_gbs:
    here.append({"machine": f"{env.device} (published peak)", "bandwidth_low": ceiling.published_gbs,
                 "bandwidth_high": ceiling.published_gbs, "here": True})
machines = pd.concat([machines, pd.DataFrame(here)], ignore_index=True)
proj = rl.projection(proj_configs, machines, rl.published_decode())
proj = proj.merge(proj_configs[["label", "efficiency_from"]], left_on="config", right_on="label").drop(columns="label")
display(proj.round(2))

# %% [markdown]
# ## Findings <a id="findings"></a>
# One finding per published claim of this notebook (seed 004, and seed 002's model tables), each with a
# verdict computed from the data above, or marked as not applicable where the claim is about Apple hardware,
# a server, Ollama or a Rust binding that this notebook cannot run, with our closest measurement beside it.

# %%
df = run.measurements
dec = df[df.experiment == "decode"]


def stats(label, metric, frame=dec):
    values = frame[(frame.label == label) & (frame.metric == metric)].value
    return measure.summarize(values) if len(values) else None


def m(s, unit, scale=1.0):
    return {"value": s.median * scale, "low": s.low * scale, "high": s.high * scale, "unit": unit} if s else None


def txt(s, unit="", scale=1.0, digits=3):
    return verdicts.describe(verdicts.Interval(s.median * scale, s.low * scale, s.high * scale), unit, digits) if s else "n/a"


def add(claim_id, verdict, statement, measured, section, headline=False):
    run.add_finding(Finding(id=claim_id, statement=statement, verdict=verdict, measured=measured,
                            published=published.reference(claim_id), section=section, headline=headline))


def first_ran(names, quant):
    return next((f"{n} {quant}" for n in names if f"{n} {quant}" in set(table.label)), None)


seven_bf16 = first_ran(["qwen2.5-7b", "llama-3-8b", "mistral-7b"], models._short_dtype(dtype))
seven_4bit = first_ran(["qwen2.5-7b", "llama-3-8b", "mistral-7b"], "4-bit")
dense4 = dense_run[dense_run.bits == 4].sort_values("bytes_per_token")
ref4 = seven_4bit or (dense4.label.iloc[-1] if not dense4.empty else None)  # the 7B-4bit stand-in when no 7B ran
ref4_note = "" if ref4 == seven_4bit else f" (no 7-8B 4-bit preset ran in this profile; stand-in: {ref4})"

# %%
for fid, label, quant in [("efficiency_7b_bf16", seven_bf16, models._short_dtype(dtype)), ("efficiency_7b_4bit", seven_4bit, "4-bit")]:
    s = stats(label, "efficiency") if label else None
    run.add_finding(Finding(
        id=fid, section="efficiency", verdict="measured" if s else verdicts.INCONCLUSIVE, headline=(fid == "efficiency_7b_4bit" and s is not None), measured=m(s, "%", 100),
        statement=(f"{label} decodes at {txt(s, '%', 100)} of the {ceiling.gbs:.0f} GB/s roofline "
                   f"({txt(stats(label, 'steady_tps'), ' tok/s')} vs {table.set_index('label').roofline_tps[label]:.1f} "
                   f"tok/s for {table.set_index('label').bytes_per_token[label] / 1e9:.2f} GB per token), {where}."
                   if s else f"No 7-8B {quant} preset ran in this profile ({profile}); see the full profile's run.")))

bw_dense = dense_run.assign(bound=dense_run.efficiency >= bound_threshold)
share_bound = bw_dense.bound.mean()
eff_all = measure.summarize(dense_run.efficiency) if len(dense_run) else None
slope = rl.loglog_slope(dense_run) if dense_run.bytes_per_token.nunique() > 1 else None
verdict = (verdicts.HOLDS if share_bound >= 0.75 else verdicts.DOES_NOT_HOLD if share_bound <= 0.25 else verdicts.INCONCLUSIVE)
add("decode_bandwidth_bound", verdict, headline=True, section="efficiency",
    measured={"value": float(np.median(dense_run.efficiency)) * 100, "low": float(dense_run.efficiency.min()) * 100,
              "high": float(dense_run.efficiency.max()) * 100, "unit": "% of roofline (median, min, max)"},
    statement=f"{bw_dense.bound.sum()} of {len(bw_dense)} dense configurations reach {bound_threshold:.0%} of the "
              f"{ceiling.gbs:.0f} GB/s roofline (efficiency {dense_run.efficiency.min():.0%} to {dense_run.efficiency.max():.0%}); "
              + (f"time per token grows as bytes^{slope['slope']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}] "
                 "(1 would be purely bandwidth-bound). " if slope else "")
              + f"Regimes: {regime_text}. On {where}.")
add("bandwidth_doubling_doubles_tok_s",
    verdicts.effect_matches(verdicts.Interval(2 ** slope["slope"], 2 ** slope["low"], 2 ** slope["high"]), 2, tolerance=0.25)
    if slope else verdicts.INCONCLUSIVE, section="efficiency",
    measured={"value": 2 ** slope["slope"], "low": 2 ** slope["low"], "high": 2 ** slope["high"], "unit": "x per 2x"} if slope else None,
    statement=(f"One machine cannot change its bandwidth; under the roofline halving the bytes per token is the same "
               f"lever. Across the dense sweep halving the bytes multiplies tok/s by {2 ** slope['slope']:.2f} "
               f"[{2 ** slope['low']:.2f}, {2 ** slope['high']:.2f}] (2 if decode were purely bandwidth-bound)."
               if slope else "Needs at least two dense configurations with different bytes per token."))
run.add_finding(Finding(id="decode_regimes", section="efficiency", verdict="measured",
                        measured={"value": floor_ms, "low": floor_ms, "high": floor_ms, "unit": "ms per token (fastest step)"},
                        statement=f"Where decode stops being bandwidth-bound (threshold {bound_threshold:.0%} of the roofline, "
                                  f"fastest step {floor_ms:.2f} ms): {regime_text}."))

# %%
s_ref = stats(ref4, "efficiency") if ref4 else None
add("bandwidth_efficiency_observed_range",
    verdicts.effect_matches(verdicts.Interval(s_ref.median * 100, s_ref.low * 100, s_ref.high * 100), 70, 90) if s_ref else verdicts.INCONCLUSIVE,
    f"{ref4}{ref4_note} decodes at {txt(s_ref, '%', 100)} of the measured-bandwidth roofline on {where} "
    f"(published: 70-90%)." if s_ref else "No 4-bit dense configuration ran.", m(s_ref, "%", 100), "efficiency")
for cid, hw in [("bandwidth_efficiency_m4_air", "the M4 Air"), ("bandwidth_efficiency_m4_max", "the M4 Max"),
                ("m4_max_bandwidth_utilization", "the M4 Max")]:
    add(cid, verdicts.NOT_APPLICABLE, f"A claim about {hw}, which this run is not. Here {ref4}{ref4_note} reaches "
        f"{txt(s_ref, '%', 100)} of its roofline on {where}."
        + (" (The published 94% does not follow from its own row: 94 / 80 tok/s is 118%.)" if cid.endswith("m4_max") else ""),
        m(s_ref, "%", 100), "efficiency")
row7 = accounting[(accounting.model == "qwen2.5-7b") & (accounting.bits == 4)]
b7 = float(row7.total.iloc[0]) / 1e9 if not row7.empty else None
add("data_per_token_7b_4bit", verdicts.effect_matches(verdicts.Interval(b7, b7, b7), 4, 5, tolerance=0.4) if b7 else verdicts.INCONCLUSIVE,
    f"The library's accounting gives {b7:.2f} GB per token for qwen2.5-7b 4-bit (group {group_size}) at context "
    f"{context:g}: {float(row7.weights.iloc[0]) / 1e9:.2f} GB of weights read, {float(row7.kv_read.iloc[0]) / 1e6:.1f} MB of KV cache "
    "(published ~4-5 GB; the ~ read as a 0.4 GB tolerance)."
    if b7 else "qwen2.5-7b is not in projection_presets.", {"value": b7, "low": b7, "high": b7, "unit": "GB"} if b7 else None, "bytes")
s_py = s_ref
py_bound = verdicts.Interval((1 - s_py.median) * 100, (1 - s_py.high) * 100, (1 - s_py.low) * 100) if s_py else None
add("python_overhead_lt_1pct", (verdicts.HOLDS if py_bound.high < 1 else verdicts.INCONCLUSIVE) if py_bound else verdicts.INCONCLUSIVE,
    f"Everything that is not the roofline's memory time is {verdicts.describe(py_bound, '%')} of a {ref4} step on {where}: an "
    "upper bound on the Python share, " + ("below 1%, so the claim holds." if py_bound and py_bound.high < 1 else
                                           "too large to confirm <1% (the host share itself is measured in 02_decode_loop).")
    if py_bound else "No 4-bit dense configuration ran.",
    {"value": py_bound.value, "low": py_bound.low, "high": py_bound.high, "unit": "% (upper bound)"} if py_bound else None, "efficiency")

# %%
d4 = dense_run[dense_run.bits == (4 if (dense_run.bits == 4).sum() >= 2 else dense_run.bits.mode().iloc[0])].sort_values("params")
if d4.model.nunique() >= 2:
    small, large = d4.iloc[0], d4.iloc[-1]
    slow = measure.ratio_interval(dec[(dec.label == small.label) & (dec.metric == "decode_tps")].value,
                                  dec[(dec.label == large.label) & (dec.metric == "decode_tps")].value)
    pratio = large.params / small.params
    add("tok_s_sublinear_in_params", verdicts.HOLDS if slow.high < pratio else verdicts.DOES_NOT_HOLD if slow.low > pratio else verdicts.INCONCLUSIVE,
        f"{large.label} is {txt(slow, 'x')} slower than {small.label} for {pratio:.1f}x the parameters and "
        f"{large.bytes_per_token / small.bytes_per_token:.1f}x the bytes per token on {where}: sub-linear when the "
        "slowdown is below the parameter ratio (small models pay a fixed per-token cost).", m(slow, "x"), "sweep")
else:
    add("tok_s_sublinear_in_params", verdicts.INCONCLUSIVE, "Needs two dense presets of different size at one width; "
        f"this profile ran {sorted(dense_run.model.unique())}.", None, "sweep")

# %%
claim_ids = {c["id"] for c in published.claims("04_bandwidth")}
same_shape = {"qwen3_30b_a3b": ("qwen3-30b-a3b", "4-bit"), "mixtral_8x7b": ("mixtral-8x7b", "4-bit"),
              "mistral_7b": ("mistral-7b", "4-bit"), "glm45_air": (None, "3-bit")}
for key, (preset, quant) in same_shape.items():
    label = f"{preset} {quant}" if preset else None
    s_tps = stats(label, "decode_tps") if label else None
    s_mem = stats(label, "peak_memory_gb") if label else None
    why_missing = ("no GLM-4.5-Air preset in the library" if not preset else f"{label} did not run in this profile"
                   + (f" ({next(s['reason'] for s in skipped if s['label'] == label)})" if any(s["label"] == label for s in skipped) else ""))
    ours = f"our mlx-lm decode of the same-shaped {label} is {txt(s_tps, ' tok/s')} on {where}" if s_tps else why_missing
    rust = next(c["id"] for c in published.claims("04_bandwidth") if c["id"].startswith(key) and c["id"].endswith("rust_vs_mlxlm"))
    add(rust, verdicts.NOT_APPLICABLE, f"Rust binding vs mlx-lm: no Rust binding runs here; {ours}.", m(s_tps, "tok/s"), "sweep")
    add(f"mlxlm_tok_s_{key}_{quant[0]}bit", verdicts.NOT_APPLICABLE,
        f"Apple-silicon tok/s, hardware-specific; {ours}.", m(s_tps, "tok/s"), "sweep")
    pub_mem = published.claim(f"mlxlm_peak_mem_{key}_{quant[0]}bit")["published"]
    add(f"mlxlm_peak_mem_{key}_{quant[0]}bit",
        verdicts.effect_matches(verdicts.Interval.of(s_mem), pub_mem, tolerance=0.15 * pub_mem) if s_mem else verdicts.INCONCLUSIVE,
        f"Peak memory (weights + cache + activations) follows from the weights, not the hardware: {label} peaks at "
        f"{txt(s_mem, ' GB')} here vs {pub_mem} GB published (tolerance 15%)." if s_mem else f"Not measured: {why_missing}.",
        m(s_mem, "GB"), "sweep")
    if f"mlxlm_prompt_tok_s_{key}_{quant[0]}bit" in claim_ids:
        s_p = stats(label, "prompt_tps") if label else None
        add(f"mlxlm_prompt_tok_s_{key}_{quant[0]}bit", verdicts.NOT_APPLICABLE,
            f"Prompt tok/s of a short prompt on Apple silicon, hardware-specific; " +
            (f"our {prompt_tokens}-token prompt on {label} runs at {txt(s_p, ' tok/s')} on {where}." if s_p else why_missing + "."),
            m(s_p, "tok/s"), "sweep")
add("rust_cold_start_qwen3_moe", verdicts.NOT_APPLICABLE,
    "A cold start of the Rust binding; no Rust binding runs here, and this notebook excludes its warm-up runs by design.",
    None, "sweep")

# %%
for size, cid in [("0.5b", "mlx_tok_s_qwen25_0_5b_4bit_m4max"), ("3b", "mlx_tok_s_qwen25_3b_4bit_m4max"),
                  ("7b", "mlx_tok_s_qwen25_7b_4bit_m4max"), ("14b", "mlx_tok_s_qwen25_14b_4bit_m4max"),
                  ("7b", "m4_air_7b_tok_s")]:
    label = f"qwen2.5-{size} 4-bit"
    s_tps = stats(label, "decode_tps")
    chip = "M4 Max" if cid.endswith("m4max") else "M4 (Air/Mini)"
    pr = proj[(proj.machine == chip) & (proj.config == label)]
    pred = (f" At the efficiency measured here ({pr.efficiency_used.iloc[0]:.1%}, from {pr.efficiency_from.iloc[0]}), the "
            f"roofline projects {pr.predicted_tps_low.iloc[0]:.3g}"
            + (f"-{pr.predicted_tps_high.iloc[0]:.3g}" if pr.predicted_tps_high.iloc[0] != pr.predicted_tps_low.iloc[0] else "")
            + f" tok/s for the {chip} (projection table)." if not pr.empty else "")
    add(cid, verdicts.NOT_APPLICABLE, f"A measurement on Apple hardware. Here {label} decodes at "
        + (f"{txt(s_tps, ' tok/s')} on {where}." if s_tps else "(not run in this profile).") + pred, m(s_tps, "tok/s"), "sweep")
for cid in ["mlx_vs_ollama_advantage_m4max", "m4_air_frameworks_converge"]:
    add(cid, verdicts.NOT_APPLICABLE, "Compares MLX with Ollama on Apple hardware; Ollama is not part of this workbook.",
        None, "sweep")
air, mx_ = rl.original_machines().set_index("machine").bandwidth_low[["M4 (Air/Mini)", "M4 Max"]]
add("air_to_max_7b_speedup", verdicts.NOT_APPLICABLE,
    f"An expectation for Apple hardware. At equal efficiency the roofline predicts {mx_ / air:.2f}x from "
    f"{air:g} to {mx_:g} GB/s; the published 4.7-5.5x would need the M4 Max to be {4.7 / (mx_ / air):.1f}-"
    f"{5.5 / (mx_ / air):.1f}x more efficient than the Air.", None, "projection")
add("speculative_decoding_potential", verdicts.NOT_APPLICABLE,
    "Speculative decoding's gain depends on how often the draft's tokens are accepted, which random-weight presets "
    "cannot show; not measured here.", None, "sweep")

# %%
lshare = {int(r.length): r for r in share.itertuples()}
req = plots.summary_table(ldf[ldf.metric == "request_tps"], ["length"]).set_index("length")["median"]
for n, cid in [(50, "server_overhead_50_tokens"), (100, "server_overhead_100_tokens"), (200, "server_overhead_200_tokens")]:
    r = lshare.get(n)
    add(cid, verdicts.NOT_APPLICABLE,
        "No HTTP server or IPC runs here. " + (f"In process, the fixed start of a {n}-token request (prefill + first "
        f"token) is {r.median:.1%} [{r.low:.1%}, {r.high:.1%}] of it on {served_label}, {where}; "
        "any per-request cost shrinks with the length the same way." if r else f"{n} tokens is not in lengths."),
        {"value": r.median * 100, "low": r.low * 100, "high": r.high * 100, "unit": "% fixed share"} if r else None, "lengths")
mid = int(min(req.index, key=lambda n: abs(n - 100)))
req_ms = mid / req[mid] * 1e3
add("server_overhead_ms_per_request", verdicts.NOT_APPLICABLE,
    f"No server runs here. For scale: 3-7 ms would be {3 / req_ms:.1%}-{7 / req_ms:.1%} of a {mid}-token request "
    f"({req_ms:.0f} ms) with {served_label} on {where}.", None, "lengths")

# %%
b = df[(df.experiment == "batch") & (df.metric == "aggregate_tps")]
top = int(b.batch.max())
speed = measure.ratio_interval(b[b.batch == top].value, b[b.batch == 1].value) if 1 in set(b.batch) else None
beff = measure.summarize(df[(df.experiment == "batch") & (df.metric == "efficiency") & (df.batch == top)].value)
statement = (f"Batch {top} decodes {txt(speed, 'x')} the aggregate tok/s of batch 1 with mlx-lm's BatchGenerator "
             f"({b[b.batch == 1].value.median():.1f} -> {b[b.batch == top].value.median():.1f} tok/s, {top} sequences of "
             f"{batch_tokens} tokens, {served_label}, {where}); the batched roofline allows "
             f"{roof_b[top] / roof_b[1]:.1f}x, and batch {top} reaches {beff.median:.1%} of it.") if speed else "Batch 1 not measured."
run.add_finding(Finding(id="batch32_speedup" if top == 32 else "batch_speedup", section="batch", measured=m(speed, "x"),
                        statement=statement))
if top != 32:
    run.add_finding(Finding(id="batch32_speedup", section="batch", verdict=verdicts.INCONCLUSIVE,
                            statement=f"Batch 32 is not in this profile (largest batch: {top}); see batch_speedup."))
cache_speed = measure.ratio_interval(pc[pc.variant == "no cache"].value, pc[pc.variant == "cached prefix"].value)
run.add_finding(Finding(id="prompt_cache_ttft_speedup", section="prompt-cache", measured=m(cache_speed, "x"),
                        statement=f"A cached {prefix_tokens}-token prefix cuts time to first token {txt(cache_speed, 'x')} "
                                  f"({ptab.set_index('variant')['median']['no cache']:.1f} -> "
                                  f"{ptab.set_index('variant')['median']['cached prefix']:.1f} ms) for {suffix_tokens} new tokens "
                                  f"on {served_label}, {where}; same first token: {len(set(cache_info['first_tokens'].values())) == 1}."))

# %%
gain = measure.ratio_interval(pq[(pq.variant == "pre-quantized") & (pq.metric == "decode_tps")].value,
                              pq[(pq.variant == "quantized at load time") & (pq.metric == "decode_tps")].value)
gain_pct = verdicts.Interval((gain.median - 1) * 100, (gain.low - 1) * 100, (gain.high - 1) * 100)
loads = pqtab[pqtab.metric == "load_s"].set_index("variant")["median"]
add("prequantized_vs_otf_quant_gain", verdicts.effect_matches(gain_pct, 41, tolerance=10),
    f"Pre-quantized vs quantized at load time ({prequant_preset} {prequant_bits}-bit, both through mlx_lm.load): "
    f"decode {verdicts.describe(gain_pct, '%')} (published +41%, tolerance 10 points); identical tokens: {same_tokens}; "
    f"load {loads['pre-quantized']:.2f} s vs {loads['quantized at load time']:.2f} s, {where}. With the same "
    "quantization code both paths end with the same weights, so decode speed cannot differ; load time can.",
    {"value": gain_pct.value, "low": gain_pct.low, "high": gain_pct.high, "unit": "%"}, "prequant")
run.add_finding(Finding(id="bandwidth_ceiling", section="ceiling",
                        measured={"value": ceiling.gbs, "low": ceiling.low, "high": ceiling.high, "unit": "GB/s"},
                        statement=f"Rooflines use {ceiling.gbs:.1f} GB/s from {ceiling.source}{peak_text}."))

# %%
missing = {c["id"] for c in published.claims("04_bandwidth")} - {f.id for f in run.findings}
assert not missing, f"claims without a finding: {sorted(missing)}"
run.finish()
display(pd.DataFrame([{"id": f.id, "verdict": f.verdict, "statement": f.statement} for f in run.findings]))
