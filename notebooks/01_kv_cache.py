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

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
presets: list = ["tiny"]  # model presets; the first is the model the claims are judged on (the original: qwen3-0.6b)
dtype: str = "float32"  # weight dtype: bfloat16, float16 or float32 (the CPU is fastest in float32)
bits: int = 0  # weight quantization bits (2, 3, 4, 5, 6 or 8); 0 keeps the weights unquantized
strategies: list = ["concat", "preallocated", "rotating"]  # KV-cache strategies to compare
lengths: list = [10, 25, 50, 100, 250, 500, 1000, 2000, 4000]  # context lengths (prompt tokens) before decoding
original_lengths: list = [10, 25, 50, 100]  # the original's lengths, a subset of lengths: the range its claim covers
decode_tokens: int = 16  # tokens decoded at each length (their mean interval is the per-token time)
step: int = 256  # pre-allocation step of the preallocated cache, tokens (mlx-lm's default is 256)
window: int = 1000  # rotating cache size, tokens
keep: int = 4  # tokens the rotating cache always keeps from the start (as mlx-lm's max_kv_size does)
repeats: int = 5  # timed trials per strategy and length
warmup: int = 1  # untimed generations per strategy before the trials
split_lengths: list = [100, 4000]  # lengths at which the synchronous loop splits the time per token
split_tokens: int = 16  # tokens the synchronous instrumented loop times at each of those lengths
flat_tolerance: float = 0.05  # relative change in time per token still called flat, as a fraction
copy_tolerance: float = 0.05  # relative extra time of concat over preallocated still called no impact
slice_sizes_mb: list = [1, 16, 64]  # buffer sizes of the slice_update probe, MB
slice_updates: int = 20  # one-token writes per slice_update trial
identity_tokens: int = 48  # greedy tokens compared across strategies (the prompt stops short of the window)
seed: int = 0  # seed of the random weights and prompts

# %%
import mlx.core as mx
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook import kvcache, measure, models, plots, published, results, verdicts
from mlx_workbook.results import Finding
from mlx_workbook.verdicts import Interval

# Parameters are checked before anything heavy runs.
quant_bits = bits or None
for name in presets:  # unknown preset, dtype or bits, or a model too large for this device: a ModelError now
    lazy = models.build_preset(name, dtype=dtype, bits=quant_bits, seed=seed, materialize=False)
    models.check_fits(lazy.weight_bytes(), lazy.label)
    del lazy
if not set(original_lengths) <= set(lengths) or len(original_lengths) < 2:
    raise ValueError(f"original_lengths {original_lengths} must be at least two of lengths {lengths}")
if any(s <= 0 for s in slice_sizes_mb) or slice_updates < 1 or repeats < 1:
    raise ValueError("slice_sizes_mb must be positive and slice_updates, repeats at least 1")
if not 2 <= identity_tokens < 2 * min(window, 512):
    raise ValueError(f"identity_tokens must be in [2, {2 * min(window, 512)}): the prompt must fit before the window")
kvcache.validate(strategies, lengths, decode_tokens=decode_tokens, step=step, window=window, keep=keep,
                 split_lengths=split_lengths, split_tokens=split_tokens,
                 max_length=min(models.preset_config(p).get("max_position_embeddings", 10**9) for p in presets))

run = results.start_run("01_kv_cache", {k: v for k, v in dict(globals()).items() if k in (
    "profile", "presets", "dtype", "bits", "strategies", "lengths", "original_lengths", "decode_tokens", "step",
    "window", "keep", "repeats", "warmup", "split_lengths", "split_tokens", "flat_tolerance", "copy_tolerance",
    "slice_sizes_mb", "slice_updates", "identity_tokens", "seed")}, run_dir=run_dir)
env = run.environment
claim_model = presets[0]
slug = {name: "".join(c if c.isalnum() else "_" for c in name) for name in presets}  # for ids and file names
where = f"{env.device} ({env.backend}, mlx {env.mlx})"
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## The strategies emit the same tokens <a id="strategies"></a>
# Under greedy decoding the three caches must produce the same tokens as long as the sequence fits in the
# rotating window; past it the rotating cache has dropped the oldest tokens (all but `keep`), so the context,
# and soon the tokens, differ. Checked here on the tiny preset with its weights scaled up (at the presets'
# small random weights greedy decoding repeats one token, and a comparison would prove nothing); the prompt
# stops `identity_tokens / 2` tokens short of the window, so the generation crosses it.
# `tests/test_kvcache.py` asserts the same.

# %%
check_window = min(window, 512)  # the tiny preset's context is short; the window's behaviour does not depend on size
varied = kvcache.varied_model("tiny", seed=seed)
check_prompt = models.random_prompt(varied, check_window - identity_tokens // 2, seed=seed)
identity = kvcache.compare_tokens(varied, check_prompt, identity_tokens, strategies=strategies, step=step,
                                  window=check_window, keep=keep)
for row in identity.itertuples():
    same = row.tokens if row.identical else row.first_divergence
    run.record_many("identity", [
        dict(metric="tokens_identical", value=float(row.identical), unit="bool", strategy=row.strategy, trial=0),
        dict(metric="identical_prefix", value=same, unit="tokens", strategy=row.strategy, trial=0,
             prompt_tokens=check_prompt.size, window=check_window)])
identity["context_at_divergence"] = identity.first_divergence + check_prompt.size
display(identity)
del varied

# %% [markdown]
# ## Time per token as the context grows <a id="per_token"></a>
# At each length L the prompt (random token ids) is prefilled into a fresh cache by mlx-lm's `generate_step`,
# which then decodes `decode_tokens` tokens greedily; the time per token is the median interval between their
# host timestamps (`Generation.token_times_s`, mlx-lm's own loop with its pipelining; the median so that one
# stall of a shared machine does not move it, mlx-lm's mean is stored beside it as `ms_per_token`), so the
# context during decoding runs from L to L + `decode_tokens`. This separates the length from the count of
# decoded tokens: decoding thousands of tokens to reach a long context would cost minutes per trial, while
# prefilling it is cheap. (The original decoded 10..100 tokens from a short prompt: the same contexts for its range.)
# Strategies are interleaved within each trial so that drifts of the machine hit them alike; a warm-up
# generation per strategy comes first and is not recorded.

# %%
for name in presets:
    loaded = models.build_preset(name, dtype=dtype, bits=quant_bits, seed=seed)
    display(pd.Series(loaded.describe() | {"kv_bytes_per_token": kvcache.kv_bytes_per_token(loaded)},
                      name=loaded.label).to_frame())
    kvcache.sweep(run, loaded, strategies=strategies, lengths=lengths, decode_tokens=decode_tokens,
                  repeats=repeats, warmup=warmup, step=step, window=window, keep=keep,
                  split_lengths=split_lengths, split_tokens=split_tokens, seed=seed)
    del loaded
    mx.clear_cache()

# %% [markdown]
# Median time per token with its 95% bootstrap interval, per strategy. The published mlx-node figures
# (per_token_ms table: x = tokens generated, on hardware the write-up does not name) are drawn as a dashed
# series beside them, never mixed in; the dotted vertical line is the rotating window.

# %%
df = run.measurements
per_len = df[df.experiment == "per_length"]
pub = published.table("000_kv_cache_gap", "per_token_ms")
labels = {}
for name in presets:
    sub = per_len[(per_len.model == name) & (per_len.metric == kvcache.TIME_METRIC)]
    labels[name] = f"{name} {'%d-bit' % bits if bits else dtype}"
    table = plots.summary_table(sub, ["strategy", "length"])
    fig = plots.lines_with_intervals(table, x="length", series="strategy", logx=True, logy=True,
                                     title=f"Time per token vs context, {labels[name]}, {where}",
                                     xlabel="context length (tokens)", ylabel="ms per token (median, 95% interval)")
    ax = fig.axes[0]
    ax.plot(pub.tokens, pub.ms_per_token, ls="--", marker="s", ms=3, color="#444444",
            label="published: mlx-node, hardware unspecified")
    ax.axvline(window, ls=":", lw=1, color="#999999", label=f"rotating window ({window})")
    ax.legend(fontsize=8)
    run.save_figure(fig, f"per_token_{slug[name]}")
    display(fig, table.pivot(index="length", columns="strategy", values="median").round(3))

# %% [markdown]
# The slope of a least-squares line through every trial (time per token against context length) is the cost
# of one more token of context; the interval is a pairs bootstrap. It is given as ms per 1000 tokens of
# context (numerically, µs per token). Attention has to read the whole cache every token under every strategy,
# so some slope is expected everywhere; what the strategies add on top of it is the question.

# %%
slope_table = kvcache.slopes(df)
display(slope_table.round(4))

# %% [markdown]
# ## When does copying start to cost? <a id="copy_cost"></a>
# Per-token time of `concat` over `preallocated` at each length, with a bootstrap interval of the ratio of
# medians. Copying is called costly from the shortest length from which on the whole interval stays above
# 1 + `copy_tolerance` (dashed line).

# %%
ratio_tables = {}
for name in presets:
    ratio_tables[name] = kvcache.strategy_ratios(df, name, "concat", "preallocated")
    if ratio_tables[name].empty:
        continue
    fig = plots.lines_with_intervals(ratio_tables[name].rename(columns={"ratio": "median"}), x="length", series=None,
                                     logx=True, ceilings={"no difference": 1.0,
                                                          f"1 + tolerance ({copy_tolerance:g})": 1 + copy_tolerance},
                                     title=f"concat / preallocated time per token, {labels[name]}, {where}",
                                     xlabel="context length (tokens)", ylabel="ratio (median, 95% interval)")
    run.save_figure(fig, f"copy_ratio_{slug[name]}")
    display(fig, ratio_tables[name].round(3))

# %% [markdown]
# ## Memory <a id="memory"></a>
# Bytes of cache: the sum of every layer's key and value buffers (`nbytes`, allocated, not only filled) after
# the decode at each length. Peak memory: the device allocator's peak over the decode steps only (reset after
# the first token; the prefill's own peak is stored as `prefill_peak_memory_gb`), weights included.

# %%
for name in presets:
    sub = per_len[per_len.model == name]
    mem = plots.summary_table(sub[sub.metric == "cache_bytes"].assign(value=lambda t: t.value / 2**20),
                              ["strategy", "length"])
    fig = plots.lines_with_intervals(mem, x="length", series="strategy", logx=True, logy=True,
                                     title=f"KV-cache bytes vs context, {labels[name]}, {where}",
                                     xlabel="context length (tokens)", ylabel="cache MiB (all layers)")
    run.save_figure(fig, f"cache_bytes_{slug[name]}")
    peak = plots.summary_table(sub[sub.metric == "decode_peak_memory_gb"], ["strategy", "length"])
    fig2 = plots.lines_with_intervals(peak, x="length", series="strategy", logx=True,
                                      title=f"Peak memory while decoding, {labels[name]}, {where}",
                                      xlabel="context length (tokens)", ylabel="GB (median, 95% interval)")
    run.save_figure(fig2, f"peak_memory_{slug[name]}")
    display(fig, fig2, mem.pivot(index="length", columns="strategy", values="median").round(3))

# %% [markdown]
# ## Where the time of a token goes <a id="time_split"></a>
# mlx-lm's loop pipelines: it builds and submits the next token's graph (`mx.async_eval`) before it waits for
# the current token, so a host clock cannot tell graph building from the device's work. At the lengths in
# `split_lengths`, after the pipelined decode, the same cache is decoded `split_tokens` more tokens by a
# synchronous copy of mlx-lm's step (`tokentime.instrumented_loop`): build the lazy graph of the forward pass
# and the greedy sample (Python), `mx.eval` it (dispatch, the device's execution, waiting for it), then
# `item()` (copy the token id to the host). Bars: medians per step; black ticks: the pipelined loop's time
# per token at the same length, for comparison.

# %%
split = df[df.experiment == "time_split"]
for name in presets:
    sub = split[split.model == name]
    if sub.empty:
        continue
    parts = sub.groupby(["strategy", "length", "metric"]).value.median().unstack("metric").reset_index()
    parts["length"] = parts.length.astype(int)  # a float column: rows of other experiments have no length
    parts["config"] = parts.strategy + " @ " + parts.length.astype(str)
    fig = plots.stacked_bars(parts, category="config", parts=["build_ms", "eval_ms", "item_ms"],
                             title=f"Time per token, synchronous step, {labels[name]}, {where}",
                             ylabel="ms per token (median)")
    piped = (per_len[(per_len.model == name) & (per_len.metric == kvcache.TIME_METRIC)]
             .groupby(["strategy", "length"]).value.median())
    ax = fig.axes[0]
    ax.plot(parts.config, [piped[(s, n)] for s, n in zip(parts.strategy, parts.length)], ls="none",
            marker="_", ms=18, mew=2, color="black", label="pipelined mlx-lm loop")
    ax.legend(fontsize=8)
    run.save_figure(fig, f"time_split_{slug[name]}")
    display(fig, parts.drop(columns="config").round(3))

# %% [markdown]
# ## Does `slice_update` copy? <a id="slice_update"></a>
# The original explains the lack of effect by "MLX arrays are immutable; even `slice_update` creates new
# arrays". At the API level that is true: `buf[..., i, :] = x` gives a new array node. Whether it copies the
# buffer is measurable: one one-token write into a cache-shaped buffer `(1, 8, n, 128)`, evaluated per write,
# against `concatenate([buf[..., 1:, :], x])`, which allocates and copies. If `slice_update` copied, its time
# would grow with the buffer like the copy's.

# %%
kvcache.slice_update_probe(run, sizes_mb=slice_sizes_mb, updates=slice_updates, repeats=repeats, warmup=warmup,
                           dtype="float32" if dtype == "float32" else "bfloat16")
df = run.measurements
su = plots.summary_table(df[df.experiment == "slice_update"], ["variant", "size_mb"])
fig = plots.lines_with_intervals(su, x="size_mb", series="variant", logx=True, logy=True,
                                 title=f"One-token write into a cache buffer, {where}",
                                 xlabel="buffer size (MB)", ylabel="ms per write (median, 95% interval)")
run.save_figure(fig, "slice_update")
display(fig, su.round(4))

# %% [markdown]
# ## Findings <a id="findings"></a>
# Verdicts come from the intervals: "flat" and "no impact" hold when the whole interval of the relative
# change lies within ± the tolerance, do not hold when it lies wholly outside, and are inconclusive otherwise.

# %%
df = run.measurements
first, last = min(original_lengths), max(original_lengths)
shortest, longest = min(lengths), max(lengths)
pct = lambda s: f"{100 * s.median:+.1f}% [{100 * s.low:+.1f}, {100 * s.high:+.1f}]"
med = lambda name, s, n: float(np.median(kvcache.times(df, name, s, n)))

# per_token_time_flat: the original's range, on the claims' model, per strategy
flat = {s: kvcache.relative_change(df, claim_model, s, first, last) for s in strategies}
flat_verdicts = {s: verdicts.no_effect(Interval.of(r), flat_tolerance) for s, r in flat.items()}
overall = (verdicts.DOES_NOT_HOLD if verdicts.DOES_NOT_HOLD in flat_verdicts.values() else
           verdicts.HOLDS if set(flat_verdicts.values()) == {verdicts.HOLDS} else verdicts.INCONCLUSIVE)
ref = "preallocated" if "preallocated" in strategies else strategies[0]
run.add_finding(Finding(
    id="per_token_time_flat", verdict=overall, section="per_token", headline=True,
    published=published.reference("per_token_time_flat"),
    measured={"value": 100 * flat[ref].median, "low": 100 * flat[ref].low, "high": 100 * flat[ref].high,
              "unit": "%", "strategy": ref, "ms_per_token_first": med(claim_model, ref, first),
              "ms_per_token_last": med(claim_model, ref, last), "lengths": [first, last]},
    statement=f"{labels[claim_model]} on {where}: time per token from {first} to {last} tokens of context changes "
              + "; ".join(f"{s} {pct(flat[s])} ({med(claim_model, s, first):.3g} -> {med(claim_model, s, last):.3g}"
                          f" ms, {flat_verdicts[s]})" for s in strategies)
              + f". Flat within ±{flat_tolerance:.0%}: {overall} (published: ~20 ms/token, flat over 10..100)."))

# the full range, per model and strategy
for name in presets:
    full = {s: kvcache.relative_change(df, name, s, shortest, longest) for s in strategies}
    sl = slope_table[slope_table.model == name].set_index("strategy")
    v = verdicts.no_effect(Interval.of(full[ref]), flat_tolerance)
    run.add_finding(Finding(
        id=f"per_token_full_range_{slug[name]}", verdict=v, section="per_token",
        measured={"value": 100 * full[ref].median, "low": 100 * full[ref].low, "high": 100 * full[ref].high,
                  "unit": "%", "strategy": ref, "lengths": [shortest, longest]},
        statement=f"{labels[name]}: from {shortest} to {longest} tokens of context the time per token changes "
                  + "; ".join(f"{s} {pct(full[s])}, slope {sl.loc[s, 'ms_per_1k_tokens']:.3g} "
                              f"[{sl.loc[s, 'low']:.3g}, {sl.loc[s, 'high']:.3g}] ms per 1000 tokens"
                              for s in strategies) + f" ({ref} flat within ±{flat_tolerance:.0%}: {v})."))

# kv copies and pre-allocated buffers: concat over preallocated over the original's range
if {"concat", "preallocated"} <= set(strategies):
    orig = kvcache.pooled_ratio(df, claim_model, "concat", "preallocated", original_lengths)
    effect = Interval(100 * (orig.median - 1), 100 * (orig.low - 1), 100 * (orig.high - 1))
    v = verdicts.no_effect(effect, 100 * copy_tolerance)
    long_ratio = ratio_tables[claim_model].set_index("length").loc[longest]
    for cid, what in [("kv_copy_no_impact", "copying the whole cache every token (concat)"),
                      ("kv_preallocated_buffers_no_impact", "concatenating every token instead of writing "
                                                            "in place into pre-allocated buffers")]:
        run.add_finding(Finding(
            id=cid, verdict=v, section="copy_cost", published=published.reference(cid),
            measured={"value": effect.value, "low": effect.low, "high": effect.high, "unit": "%",
                      "lengths": list(original_lengths), "ratio_at_longest": float(long_ratio.ratio),
                      "longest": longest},
            statement=f"{labels[claim_model]} on {where}, contexts {first}..{last} tokens: {what} changes the time "
                      f"per token by {verdicts.describe(effect, '%')} against preallocated (no impact within "
                      f"±{copy_tolerance:.0%}: {v}); at {longest} tokens the ratio is {long_ratio.ratio:.3f} "
                      f"[{long_ratio.low:.3f}, {long_ratio.high:.3f}]."))
    for name in presets:
        rt = ratio_tables[name]
        onset = kvcache.first_costly_length(rt, copy_tolerance)
        at = rt.set_index("length").loc[onset if onset is not None else longest]
        statement = (f"{labels[name]}: copying the cache every token (concat) costs more than "
                     f"{copy_tolerance:.0%} per token from {onset} tokens of context on: "
                     f"{100 * (at.ratio - 1):+.1f}% [{100 * (at.low - 1):+.1f}, {100 * (at.high - 1):+.1f}] there, "
                     f"{100 * (rt.ratio.iloc[-1] - 1):+.1f}% at {longest} tokens." if onset is not None else
                     f"{labels[name]}: at no measured length up to {longest} tokens does copying the cache every "
                     f"token (concat) cost more than {copy_tolerance:.0%} per token with confidence; at {longest} "
                     f"tokens the ratio to preallocated is {at.ratio:.3f} [{at.low:.3f}, {at.high:.3f}].")
        run.add_finding(Finding(
            id=f"copy_cost_onset_{slug[name]}", section="copy_cost", headline=(name == claim_model),
            measured={"value": onset, "unit": "tokens",
                      "ratio": float(at.ratio), "low": float(at.low), "high": float(at.high)},
            statement=statement))

# slice_update: in place, or a copy of the buffer?
big = max(slice_sizes_mb)
sel = df[(df.experiment == "slice_update") & (df.size_mb == big)]
su_ratio = measure.ratio_interval(sel[sel.variant == "slice_update"].value,
                                                  sel[sel.variant == "concatenate"].value)
v = verdicts.at_least(Interval.of(su_ratio), 0.5)  # a copy would take at least about a copy's time
su_slope = measure.fit_slope(df[(df.experiment == "slice_update") & (df.variant == "slice_update")].size_mb,
                             df[(df.experiment == "slice_update") & (df.variant == "slice_update")].value)
run.add_finding(Finding(
    id="slice_update_creates_new_arrays", verdict=v, section="slice_update",
    published=published.reference("slice_update_creates_new_arrays"),
    measured={"value": su_ratio.median, "low": su_ratio.low, "high": su_ratio.high, "unit": "x",
              "what": "slice_update time / concatenate (copy) time per write", "size_mb": big,
              "slice_update_ms_per_mb": su_slope["slope"]},
    statement=f"On {where}, a one-token slice_update into a {big:g} MB buffer takes {su_ratio.median:.3g}x "
              f"[{su_ratio.low:.3g}, {su_ratio.high:.3g}] the time of copying the buffer, and its time grows "
              f"{1e3 * su_slope['slope']:.3g} µs per MB [{1e3 * su_slope['low']:.3g}, {1e3 * su_slope['high']:.3g}]: "
              f"MLX writes it in place (the old buffer is donated), so 'slice_update creates new arrays' as an "
              f"explanation of a copy per token: {v}."))

# cache bytes at the longest length
for name in presets:
    cb = per_len[(per_len.model == name) & (per_len.metric == "cache_bytes") & (per_len.length == longest)]
    mib = cb.groupby("strategy").value.median() / 2**20
    run.add_finding(Finding(
        id=f"cache_bytes_{slug[name]}", section="memory",
        measured={"value": float(mib.get(ref, np.nan)), "unit": "MiB", "strategy": ref, "length": longest},
        statement=f"{labels[name]}, {longest} tokens of context: the cache holds "
                  + ", ".join(f"{s} {mib[s]:.3g} MiB" for s in strategies)
                  + f" (preallocated rounds up to steps of {step} tokens; rotating stops at {window} tokens)."))

# where the time of a token goes, on the claims' model at the longest split length
sp = df[(df.experiment == "time_split") & (df.model == claim_model) & (df.strategy == ref)]
if not sp.empty:
    n_split = int(sp.length.max())
    parts = sp[sp.length == n_split].groupby("metric").value.median()
    run.add_finding(Finding(
        id="time_split", section="time_split",
        measured={"value": float(parts.total_ms), "unit": "ms", "build_ms": float(parts.build_ms),
                  "eval_ms": float(parts.eval_ms), "item_ms": float(parts.item_ms), "length": n_split},
        statement=f"{labels[claim_model]}, {ref} cache, {n_split} tokens: a synchronous step takes "
                  f"{parts.total_ms:.3g} ms: graph building {parts.build_ms:.3g} ms "
                  f"({parts.build_ms / parts.total_ms:.0%}), mx.eval {parts.eval_ms:.3g} ms "
                  f"({parts.eval_ms / parts.total_ms:.0%}), item() {parts.item_ms:.3g} ms; mlx-lm's pipelined "
                  f"loop: {med(claim_model, ref, n_split):.3g} ms per token."))

# identity: equal tokens everywhere, except the rotating cache once the context exceeds its window
rot = identity.set_index("strategy")
fits = check_window - check_prompt.size + 1  # tokens generated while the context still fits in the window
agree = all(r.identical or (s == "rotating" and r.first_divergence >= fits) for s, r in rot.iterrows())
said = [f"{s} identical" if r.identical else
        f"{s} first differs at token {int(r.first_divergence)} (context {int(r.context_at_divergence)})"
        for s, r in rot.iterrows()]
run.add_finding(Finding(
    id="strategies_identical_tokens", section="strategies", verdict=verdicts.HOLDS if agree else verdicts.DOES_NOT_HOLD,
    measured={"value": float(rot.identical.mean()), "unit": "share identical"},
    statement=f"Greedy tokens ({identity_tokens} from a {check_prompt.size}-token prompt, tiny preset, scaled "
              f"weights) against preallocated: {', '.join(said)}; the rotating window is {check_window} tokens, "
              f"so the first {fits} tokens must agree."))

run.finish()
display(Markdown("\n".join(f"- **{f.id}** ({f.verdict}): {f.statement}" for f in run.findings)))
