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
# # 03 · Attention-kernel cliffs: is there a 128-token cliff, and where are the others?
#
# The original write-up (seed 003, Rust bindings vs Python on a GLM-4.5 MoE model, Apple silicon) found a
# prompt of 127 tokens taking 958 ms and one of 128 tokens 600 ms under MLX 0.29.1, and blamed
# `scaled_dot_product_attention` with a causal mask below 128 tokens, fixed in MLX 0.30.0 ("fix copies in
# sdpa"). It also timed single ops (SwiGLU, RMSNorm, SDPA, matmul, MoE routing) and graph building (1.5 ms).
# Seed 002 adds that SDPA handles grouped-query attention itself: repeating K/V heads by hand only costs.
#
# This notebook looks for every length at which attention changes speed sharply, on this backend, under this and
# other MLX versions:
# - **prefill** attention (queries = keys = the prompt) over a wide sweep and fine sweeps around powers of two
#   and tile sizes (for 128: 116, 120, 124, 127, 128, 129, 132, 140), for every mask mode MLX offers (the
#   `"causal"` string mlx-lm passes, an explicit additive mask, an explicit boolean mask, none), dtypes and
#   head dims;
# - **decode** attention (one query) over the length of a pre-allocated KV cache, keys and values passed as
#   slices of the buffer the way mlx-lm's `KVCache` passes them, fine around its 256-position steps;
# - **GQA**: native grouped-query SDPA vs K/V heads repeated by hand;
# - the same SDPA probe under **other MLX versions** (each in its own cached virtual env);
# - a model's **prompt latency** over the original table's lengths, **per-op** timings at decode and prefill
#   shapes, and the **graph-building** time of one decode step.
#
# **How a cliff is found** (`cliffs.py`): neighbouring lengths a < b are compared by the ratio of their median
# times, with a bootstrap interval (family-wise over the sweep). If time is an overhead plus a part proportional
# to the attention work, that ratio lies between 1 and the work ratio w_b / w_a; a *jump* is a pair whose whole
# interval lies outside that envelope widened by `tolerance`: **up** (b slower than its extra work explains) or
# **down** (b faster although it does more: the lengths up to a were slow, the shape of the published cliff).

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
n_q_heads: int = 2  # query heads of every SDPA sweep
n_kv_heads: int = 1  # key/value heads (fewer than the query heads: grouped-query attention)
wide_lengths: list = [32, 64, 96, 192, 256, 512]  # wide prefill sweep, tokens
boundaries: list = [64, 128, 256]  # powers of two and tile sizes to sweep finely around (prefill)
offsets: list = [-12, -8, -4, -1, 0, 1, 4, 12]  # fine sweep around each boundary (128 gives 116 ... 140)
modes: list = ["causal", "additive", "bool", "none"]  # mask modes: causal string, additive array, boolean array, none
variants: list = ["sdpa"]  # kernels of the mask-mode sweep: sdpa (mx.fast) and/or unfused (matmul, softmax, matmul)
main_dtype: str = "float32"  # dtype of the mask-mode sweep, the GQA and the version comparison
main_head_dim: int = 64  # head dim of the mask-mode sweep, the GQA and the version comparison
dtypes: list = ["float32", "bfloat16", "float16"]  # dtypes of the dtype x head-dim sweeps (prefill and decode)
head_dims: list = [64, 128, 80]  # head dims of the dtype x head-dim sweeps (prefill and decode)
variant_modes: list = ["causal"]  # mask modes of the dtype x head-dim prefill sweep
variant_wide: list = [64, 256]  # wide lengths of the dtype x head-dim prefill sweep
variant_boundaries: list = [128]  # boundaries of the dtype x head-dim prefill sweep
decode_lengths: list = [64, 128, 512, 1024]  # wide decode sweep, cached positions
decode_boundaries: list = [256, 512, 768, 1024]  # KV-cache steps (multiples of 256) and powers of two (decode)
decode_offsets: list = [-1, 0, 1]  # fine decode sweep around each boundary
gqa_prefill_lengths: list = [64, 128, 256]  # prompt lengths of the GQA comparison
gqa_decode_lengths: list = [256, 1024]  # cache lengths of the GQA comparison
mlx_versions: list = ["0.29.1", "0.30.0", "0.30.1", "current"]  # MLX versions to run the SDPA probe under
version_passes: int = 2  # runs of every version in alternating order, so load drift weighs on all alike
wheels_dir: str = ""  # folder of MLX wheels for offline installs (empty: the package index, or MLX_WHEELS_DIR)
version_lengths: list = [64, 116, 120, 124, 127, 128, 129, 132, 140]  # version probe prefill lengths, every mask mode
version_causal_lengths: list = [32, 256, 512]  # more prefill lengths of the version probe, causal string only
version_decode_lengths: list = [255, 256, 257, 1024]  # decode lengths of the version probe
model: str = "tiny"  # preset for prompt latency, graph building and the dense op shapes
model_dtype: str = "float32"  # the preset's weight dtype
model_bits: int = 0  # weight quantization bits (0 means unquantized)
prompt_lengths: list = [32, 64, 96, 116, 120, 124, 127, 128, 129, 132, 140, 256, 512]  # prompt lengths, tokens
moe_model: str = "tiny-moe"  # preset whose MoE shapes the routing and expert ops use (empty: no MoE ops)
op_tokens: int = 128  # tokens of the prefill op shapes
op_context: int = 512  # cached positions of the decode op shapes
op_dtype: str = "float32"  # dtype of the op inputs
op_bits: int = 4  # bits of the quantized matmul and the quantized experts
group_size: int = 64  # quantization group size
graph_context: int = 128  # cached positions before the decode steps whose graph building is timed
repeats: int = 5  # timed trials per configuration
warmup: int = 1  # untimed runs before the trials
target_ms: float = 3  # calls per trial are batched up to about this many ms
tolerance: float = 0.25  # a cliff must exceed the work envelope by this fraction (CPU timings are noisy)

# %%
from mlx_workbook import attention, models, ops

prefill_lengths = attention.sweep_lengths(wide_lengths, boundaries, offsets)
variant_lengths = attention.sweep_lengths(variant_wide, variant_boundaries, offsets)
decode_sweep = attention.sweep_lengths(decode_lengths, decode_boundaries, decode_offsets)
attention.validate(modes=modes + variant_modes, dtypes=[main_dtype, op_dtype] + dtypes,
                   head_dims=[main_head_dim] + head_dims,
                   lengths=prefill_lengths + variant_lengths + decode_sweep + gqa_prefill_lengths + gqa_decode_lengths
                   + version_lengths + version_causal_lengths + version_decode_lengths + prompt_lengths,
                   n_q_heads=n_q_heads, n_kv_heads=n_kv_heads)
if n_q_heads == n_kv_heads:
    raise ValueError("n_q_heads must exceed n_kv_heads: the GQA comparison needs grouped-query heads")
if not 0 < tolerance < 1 or repeats < 2:
    raise ValueError(f"tolerance must be in (0, 1) and repeats >= 2, got {tolerance} and {repeats}")
model_config = models.preset_config(model)  # unknown preset: one clear error, before any work
dense_shapes = ops.dense_shapes(model_config)
moe_shapes = ops.moe_shapes(models.preset_config(moe_model)) if moe_model else None
ops.check_shapes(dense_shapes, op_tokens, op_context, op_bits, group_size)
models.validate(model_dtype, model_bits or None, group_size)
models.check_backend_support(model_config, model_dtype, model_bits or None, model)

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook import cliffs, measure, plots, published, results, versions
from mlx_workbook.results import Finding
from mlx_workbook.verdicts import HOLDS, INCONCLUSIVE, NOT_APPLICABLE, Interval, at_least, effect_matches

PARAMS = ["profile", "n_q_heads", "n_kv_heads", "wide_lengths", "boundaries", "offsets", "modes", "variants",
          "main_dtype", "main_head_dim", "dtypes", "head_dims", "variant_modes", "variant_wide", "variant_boundaries",
          "decode_lengths", "decode_boundaries", "decode_offsets", "gqa_prefill_lengths", "gqa_decode_lengths",
          "mlx_versions", "version_passes", "wheels_dir", "version_lengths", "version_causal_lengths",
          "version_decode_lengths", "model", "model_dtype", "model_bits", "prompt_lengths", "moe_model", "op_tokens",
          "op_context", "op_dtype", "op_bits", "group_size", "graph_context", "repeats", "warmup", "target_ms",
          "tolerance"]
run = results.start_run("03_sdpa_cliff", {k: globals()[k] for k in PARAMS}, run_dir=run_dir)
env = run.environment
where = f"{env.device} ({env.backend}, mlx {env.mlx})"
heads = f"{n_q_heads}/{n_kv_heads} heads"
timing = dict(repeats=repeats, warmup=warmup, target_ms=target_ms)
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())


def mark(fig, xs, label, color="#b00020"):
    """Dotted vertical lines at detected cliffs (or cache steps) on a chart's axes."""
    ax = fig.axes[0]
    for i, x in enumerate(sorted(set(xs))):
        ax.axvline(x, ls=":", lw=1.2, color=color, label=label if i == 0 else None)
    if len(xs):
        ax.legend(fontsize=8)
    return fig


# %% [markdown]
# ## Prefill attention across lengths and mask modes <a id="prefill"></a>
# Queries = keys = the prompt length, batch 1. Each configuration's lengths are timed in interleaved rounds, so
# load from other processes hits all lengths alike. The chart shows time per unit of work (nanoseconds per
# query-key pair of the length x length score matrix and query head, whatever the mask): flat where time grows
# with the work, a step where it does not.
# Dotted red lines: detected cliffs.

# %%
prefill = attention.prefill_cases(prefill_lengths, modes=modes, dtypes=[main_dtype], head_dims=[main_head_dim],
                                  n_q_heads=n_q_heads, n_kv_heads=n_kv_heads, variants=variants)
prefill += attention.prefill_cases(variant_lengths, modes=variant_modes, dtypes=dtypes, head_dims=head_dims,
                                   n_q_heads=n_q_heads, n_kv_heads=n_kv_heads)
prefill_errors = attention.sweep(run, "prefill", prefill, **timing)
if prefill_errors:
    display(Markdown("**Configurations that failed on this backend:**"), pd.DataFrame(prefill_errors))

df = run.measurements
pre = df[df.experiment == "prefill"]
prefill_cliffs = attention.scan(pre, tolerance=tolerance)
main = attention.select(pre, dtype=main_dtype, head_dim=main_head_dim).assign(
    series=lambda d: d["mode"] + (" (" + d.variant + ")" if len(variants) > 1 else ""))
table = plots.summary_table(attention.per_pair(main), ["series", "length"])
fig = plots.lines_with_intervals(
    table, x="length", series="series", logx=True, logy=True,
    title=f"Prefill SDPA by mask mode, {main_dtype}, head dim {main_head_dim}, {heads}\n{where}",
    xlabel="prompt length (tokens; queries = keys)", ylabel="ns per query-key pair and head (median, 95%)")
mark(fig, attention.select(prefill_cliffs, dtype=main_dtype, head_dim=main_head_dim).length, "cliff detected")
run.save_figure(fig, "prefill_modes")
display(fig)

# %% [markdown]
# ### Dtypes and head dims <a id="variants"></a>
# The same probe for every dtype and head dim in the parameters (mask modes `variant_modes`), fine around
# `variant_boundaries`: a kernel path that depends on dtype or head dim shows up as a cliff in one line only.

# %%
var = attention.select(pre, mode=variant_modes[0], variant="sdpa").assign(
    config=lambda d: d.dtype + " d" + d.head_dim.astype(str))
var = var[var.length.isin(variant_lengths)]
table = plots.summary_table(attention.per_pair(var), ["config", "length"])
fig = plots.lines_with_intervals(
    table, x="length", series="config", logx=True, logy=True,
    title=f"Prefill SDPA, mask {variant_modes[0]!r}, by dtype and head dim, {heads}\n{where}",
    xlabel="prompt length (tokens)", ylabel="ns per query-key pair and head (median, 95%)")
mark(fig, attention.select(prefill_cliffs, mode=variant_modes[0]).query("length in @variant_lengths").length,
     "cliff detected")
run.save_figure(fig, "prefill_dtypes_head_dims")
display(fig)
display(Markdown("**Prefill cliffs (this MLX version):** " + (
    f"{len(prefill_cliffs)} found." if len(prefill_cliffs) else "none found.")), prefill_cliffs.round(3))

# %% [markdown]
# ## Decode attention over a pre-allocated KV cache <a id="decode"></a>
# One query over `length` cached positions, keys and values passed as `cache[..., :length, :]` of a buffer grown
# in steps of 256 positions (mlx-lm's `KVCache`), so their rows are strided by the buffer length. No mask (mlx-lm
# passes none for a single token). Grey dotted lines: the cache's 256-position steps.

# %%
decode = attention.decode_cases(decode_sweep, dtypes=dtypes, head_dims=head_dims, n_q_heads=n_q_heads,
                                n_kv_heads=n_kv_heads)
decode_errors = attention.sweep(run, "decode", decode, **timing)
if decode_errors:
    display(pd.DataFrame(decode_errors))
df = run.measurements
dec = df[df.experiment == "decode"].assign(config=lambda d: d.dtype + " d" + d.head_dim.astype(str))
decode_cliffs = attention.scan(dec, tolerance=tolerance)
table = plots.summary_table(attention.per_pair(dec), ["config", "length"])
fig = plots.lines_with_intervals(
    table, x="length", series="config", logx=True, logy=True,
    title=f"Decode SDPA (1 query, KV-cache slices), {heads}\n{where}",
    xlabel="cached positions (keys)", ylabel="ns per key and head (median, 95%)")
mark(fig, [n for n in range(256, max(decode_sweep) + 1, 256)], "KV-cache step (256)", color="#999999")
mark(fig, decode_cliffs.length, "cliff detected")
run.save_figure(fig, "decode")
display(fig, decode_cliffs.round(3))

# %% [markdown]
# ## GQA: native grouped-query SDPA vs repeating K/V heads <a id="gqa"></a>
# Seed 002: "MLX `scaled_dot_product_attention` handles GQA internally. Manual K/V repetition is unnecessary and
# harmful to performance." Both variants below get the same unrepeated K/V; `repeat_kv` repeats them to the query
# head count (`mx.repeat`) inside the timed call, as the Rust code did every forward pass.

# %%
gqa_errors = attention.sweep(run, "gqa", attention.gqa_cases(
    gqa_prefill_lengths, gqa_decode_lengths, dtype=main_dtype, head_dim=main_head_dim, n_q_heads=n_q_heads,
    n_kv_heads=n_kv_heads), **timing)
df = run.measurements
gqa = df[df.experiment == "gqa"].assign(case=lambda d: d.kind + " " + d.length.astype(str))
table = plots.summary_table(gqa, ["case", "variant"])
fig = plots.bars_with_intervals(
    table, category="case", group="variant", ylabel="ms per call (median, 95%)",
    title=f"GQA: native SDPA vs repeated K/V, {main_dtype}, d{main_head_dim}, {heads}\n{where}")
run.save_figure(fig, "gqa")
gqa_ratio = attention.pooled_ratio(gqa, "variant", "repeat_kv", "sdpa", ["kind", "length"])
gqa_by_kind = {k: attention.pooled_ratio(g, "variant", "repeat_kv", "sdpa", ["length"]) for k, g in gqa.groupby("kind")}
display(fig, table.round(4))

# %% [markdown]
# ## Across MLX versions <a id="versions"></a>
# The same self-contained probe (`probes/sdpa_probe.py`, only `mlx` and the standard library) runs under each
# version in `mlx_versions`, each installed once into `.cache/mlx-versions/<version>-<backend>/` with this
# backend's MLX package, as a subprocess returning JSON. Versions run one after another, so `version_passes`
# passes in alternating order keep a machine whose load changes over time from favouring one version (on a
# shared CPU, differences between versions smaller than that load noise mean nothing). A version that cannot be
# installed here (no network, no wheel for this platform) gets one message below; the rest of the notebook does
# not depend on it.

# %%
vcases = attention.prefill_cases(version_lengths, modes=modes, dtypes=[main_dtype], head_dims=[main_head_dim],
                                 n_q_heads=n_q_heads, n_kv_heads=n_kv_heads)
vcases += attention.prefill_cases(version_causal_lengths, modes=["causal"], dtypes=[main_dtype],
                                  head_dims=[main_head_dim], n_q_heads=n_q_heads, n_kv_heads=n_kv_heads)
vcases += attention.decode_cases(version_decode_lengths, dtypes=[main_dtype], head_dims=[main_head_dim],
                                 n_q_heads=n_q_heads, n_kv_heads=n_kv_heads)
version_results = versions.compare(mlx_versions, {"cases": attention.unique(vcases), **timing},
                                   passes=version_passes, wheels_dir=wheels_dir or None,
                                   on_result=lambda r: attention.record_version(run, r))
version_status = pd.DataFrame([{"version": r.version, "status": r.status, "seconds": round(r.seconds, 1),
                                "message": r.message} for r in version_results])
ran = [r.version for r in version_results if r.ok and r.data["rows"]]
display(version_status)

# %%
df = run.measurements
ver = df[df.experiment == "versions"] if "probe_mlx" in df.columns else df.iloc[0:0]
version_cliffs = attention.scan(ver, tolerance=tolerance) if len(ver) else pd.DataFrame()
if len(ver):
    causal = attention.select(ver, kind="prefill", mode="causal")
    table = plots.summary_table(attention.per_pair(causal), ["probe_mlx", "length"])
    fig = plots.lines_with_intervals(
        table, x="length", series="probe_mlx", logx=True,
        title=f"Prefill SDPA, mask 'causal', {main_dtype}, d{main_head_dim}, {heads}, by MLX version\n"
              f"{env.device} ({env.backend})",
        xlabel="prompt length (tokens)", ylabel="ns per query-key pair and head (median, 95%)")
    mark(fig, [128], "128 tokens", color="#999999")
    run.save_figure(fig, "versions")
    at128 = attention.at_lengths(attention.select(ver, kind="prefill"), [127, 128], ["probe_mlx", "mode"])
    steps = [attention.pair(ver, 127, 128, tolerance=tolerance, kind="prefill", probe_mlx=v, mode=m)
             for v, m in zip(at128.probe_mlx, at128["mode"])]
    at128["128 / 127"] = [s.ratio if s else float("nan") for s in steps]
    at128["interval"] = [f"[{s.low:.2f}, {s.high:.2f}]" if s else "" for s in steps]
    at128["step"] = [s.verdict if s else "not measured" for s in steps]
    display(fig, at128.round(3))
published_before = published.table("003_sdpa_cliff", "cliff_127_vs_128")
published_after = published.table("003_sdpa_cliff", "latency_after_fix")
display(Markdown("**Published (Apple silicon, chip unspecified; whole runs of a GLM-4.5 MoE model, ms):** before "
                 "the fix (Rust on MLX 0.29.1, Python on 0.30.0) and after it (Rust on 0.30.1)."),
        published_before, published_after)

# %% [markdown]
# ## Prompt latency of a model <a id="prompt"></a>
# The model's forward pass over a prompt of each length with a fresh KV cache, the last position's logits
# evaluated (mlx-lm's prefill; mlx-lm passes the `"causal"` mask string for prompts longer than one token).
# Times are shown relative to the 128-token prompt, so the published tables (other hardware, other model,
# whole runs) can be drawn beside them as dashed lines: a cliff shows as a step at the same place in either.
# Cliffs are judged against the forward pass's flops (weights x tokens plus the quadratic attention part).

# %%
loaded = models.build_preset(model, dtype=model_dtype, bits=model_bits or None, group_size=group_size)
ops.prompt_latency(run, loaded, prompt_lengths, repeats=repeats, warmup=warmup)
df = run.measurements
prompt = df[df.experiment == "prompt"]
table = plots.summary_table(prompt, ["length"])
ref = table.iloc[(table.length - 128).abs().argmin()]
rel = table.assign(**{c: table[c] / ref["median"] for c in ("median", "low", "high")})
fig = plots.lines_with_intervals(
    rel, x="length", series=None, logx=True,
    title=f"Prompt latency relative to {ref.length:g} tokens, {loaded.label}\n{where}",
    xlabel="prompt length (tokens)", ylabel=f"time / time at {ref.length:g} tokens")
ax = fig.axes[0]
for col, label in (("python_ms", "published: Python, MLX 0.30.0"), ("rust_ms", "published: Rust, MLX 0.30.1")):
    pub = published_after.set_index("seq_len")[col]
    ax.plot(pub.index, pub / pub[128], ls="--", marker="x", lw=1, label=f"{label} (Apple silicon)")
before = published_before.set_index("seq_len")["rust_ms"]
ax.plot(before.index, before / before[128], ls="--", marker="v", lw=1, color="#b00020",
        label="published: Rust, MLX 0.29.1, 127 vs 128 (Apple silicon)")
ax.legend(fontsize=7)
run.save_figure(fig, "prompt_latency")
prompt_cliffs = cliffs.scan(prompt, ["model"], work="flops", tolerance=tolerance)
display(fig, table.round(3), prompt_cliffs.round(3))

# %% [markdown]
# ## Per-op timings and graph building <a id="ops"></a>
# Each op at the shapes one decode step (1 token, `op_context` cached positions) and one prefill (`op_tokens`
# tokens) of the model would run: dense shapes from `model`, MoE routing and quantized experts (`gather_qmm`
# through mlx-lm's `SwitchGLU`) from `moe_model`. The published per-op table (shapes unstated) is shown beside.
# Graph building: the time of the model call for one decode step before anything is evaluated, then the
# evaluation itself; with mlx-lm's pipelined loop, building the next step overlaps the device computing this one.

# %%
ops.run_ops(run, dense=dense_shapes, moe=moe_shapes, tokens=op_tokens, context=op_context, dtype=op_dtype,
            bits=op_bits, group_size=group_size, ops=list(ops.OPS), **timing)
ops.graph_build(run, loaded, context=graph_context, repeats=max(repeats, 5), warmup=max(warmup, 2))
df = run.measurements
op_df = df[df.experiment == "ops"]
op_table = plots.summary_table(op_df, ["op", "phase"])
fig = plots.bars_with_intervals(op_table, category="op", group="phase", horizontal=True,
                                title=f"Per-op time, {model} shapes (MoE: {moe_model or 'none'}), {op_dtype}\n{where}",
                                ylabel="ms per call (median, 95%)")
names = {"SwiGLU": "swiglu", "RMSNorm": "rmsnorm", "SDPA": "sdpa", "Matmul": "matmul", "MoE Routing": "moe_routing"}
per_op = published.table("003_sdpa_cliff", "per_op_ms").assign(op_here=lambda t: t.op.map(names))
ax = fig.axes[0]
rows = {op: i for i, op in enumerate(dict.fromkeys(op_table.op))}
shown = per_op[per_op.op_here.isin(rows)]
ax.scatter(shown.python_ms, shown.op_here.map(rows), marker="x", color="black", zorder=3,
           label="published: Python, MLX 0.30.0 (Apple silicon, shapes unstated)")
ax.set_xscale("log")
ax.legend(fontsize=7, loc="lower right")
run.save_figure(fig, "ops")
for phase in ("decode", "prefill"):
    med = attention.select(op_table, phase=phase).set_index("op")["median"]
    per_op[f"measured {phase} ms"] = per_op.op_here.map(med)
graph = df[df.experiment == "graph"]
build, evaluate = (measure.summarize(graph[graph.metric == m].value) for m in ("build_ms", "eval_ms"))
hidden = measure.ratio_interval(graph[graph.metric == "eval_ms"].value, graph[graph.metric == "build_ms"].value)
display(fig, per_op, Markdown(f"Graph building of one decode step ({loaded.label}, {loaded.num_layers} layers, "
                              f"{graph_context} cached positions): {build} ms; evaluating it: {evaluate} ms."))

# %% [markdown]
# ## Every cliff found <a id="cliffs"></a>
# All jumps of every sweep in this run (prefill, decode, versions, prompt latency), largest first. `excess` is the
# ratio beyond the work envelope: 0.6 means the later length took 0.6x the time its extra work allows, i.e. the
# lengths before it ran in a slow regime; 1.4 means a slowdown 1.4x beyond the work.

# %%
found = pd.concat([prefill_cliffs.assign(sweep="prefill"), decode_cliffs.assign(sweep="decode"),
                   version_cliffs.assign(sweep="versions") if len(version_cliffs) else None,
                   prompt_cliffs.assign(sweep="prompt")], ignore_index=True)
if "probe_mlx" not in found.columns:
    found["probe_mlx"] = None
found["probe_mlx"] = found["probe_mlx"].fillna(env.mlx)
found = found.assign(away=lambda t: t["excess"].apply(lambda x: max(x, 1 / x))).sort_values("away", ascending=False)
display(found.drop(columns="away").round(3))
LABELS = ["sweep", "probe_mlx", "kind", "variant", "mode", "dtype", "head_dim"]
cliff_lines = cliffs.describe(found, LABELS) if len(found) else []
display(Markdown("\n".join(f"- {line}" for line in cliff_lines) or "No cliff found in any sweep."))

# %% [markdown]
# ## Findings <a id="findings"></a>
# One finding per published claim of seeds 003 and 002 that belongs here, each computed from the data above.
# Claims comparing Rust with Python cannot be re-run (this workbook drives MLX from Python only); where the
# write-up attributes the difference to the MLX version, the version comparison measures that part.

# %%
def pct(stats):
    return Interval((stats.median - 1) * 100, (stats.low - 1) * 100, (stats.high - 1) * 100)


def matches(iv, value, tol):
    """effect_matches, but an interval too wide to tell the published effect from others is inconclusive."""
    verdict = effect_matches(iv, value, tolerance=tol)
    return INCONCLUSIVE if verdict == HOLDS and iv.high - iv.low > 4 * tol else verdict


def measured(iv, unit, **extra):
    return {"value": iv.value, "low": iv.low, "high": iv.high, "unit": unit, **extra}


def version_step(version, mode="causal"):
    return attention.pair(ver, 127, 128, tolerance=tolerance, kind="prefill", probe_mlx=version, mode=mode) \
        if version in ran else None


def version_gap(new, old, **filters):
    if new not in ran or old not in ran:
        return None
    return attention.pooled_ratio(attention.select(ver, **filters), "probe_mlx", new, old, ["kind", "mode", "length"])


def why_missing(*needed):
    missing = [v for v in needed if v not in ran]
    return "; ".join(r.message for r in version_results if r.version in missing) or \
        f"MLX {', '.join(missing)} not in mlx_versions ({mlx_versions})"


def step_text(step):
    return (f"128 vs 127 tokens: {step.after:.3g} vs {step.before:.3g} ms, ratio {step.ratio:.3f} "
            f"[{step.low:.3f}, {step.high:.3f}] against {step.expected_high:.3f} from the extra work ({step.verdict})")


# Where the cliffs are, on this version and backend.
cur = found[found.probe_mlx == env.mlx]
by_mode = ({f"{m} ({v})": n for (m, v), n in cur[cur.sweep == "prefill"].groupby(["mode", "variant"]).size().items()}
           if len(cur) else {})
biggest = cur.iloc[0] if len(cur) else None
run.add_finding(Finding(
    id="cliffs_found", headline=True, section="cliffs",
    measured=measured(Interval(biggest["excess"], biggest["excess"], biggest["excess"]), "x beyond the work",
                      count=len(cur)) if biggest is not None else {"value": 0.0, "low": 0.0, "high": 0.0,
                                                                   "unit": "cliffs"},
    statement=(f"MLX {env.mlx} on {env.device} ({env.backend}): {len(cur)} cliff(s) beyond a {tolerance:.0%} "
               f"tolerance across the prefill ({len(prefill_lengths)} lengths x {len(modes)} mask modes, plus "
               f"dtypes x head dims), decode ({len(decode_sweep)} cache lengths) and prompt sweeps"
               + (f"; prefill cliffs by mask mode (kernel): {by_mode or 'none'}; decode cliffs: "
                  f"{(cur.sweep == 'decode').sum()}; the largest: {cliffs.describe(cur.head(1), LABELS)[0]}."
                  if len(cur) else ".")
               )))

step_now = attention.pair(pre, 127, 128, tolerance=tolerance, mode="causal", variant="sdpa", dtype=main_dtype,
                          head_dim=main_head_dim)
if step_now is not None:
    run.add_finding(Finding(
        id="cliff_128_this_version", section="prefill",
        measured=measured(Interval(step_now.ratio, step_now.low, step_now.high), "x (128 over 127 tokens)"),
        statement=f"MLX {env.mlx} ({env.backend}), causal prefill SDPA, {main_dtype}, d{main_head_dim}: "
                  f"{step_text(step_now)}: " + ("a cliff at 128." if step_now.verdict == cliffs.DOWN else
                                               "no cliff at 128." if step_now.verdict == cliffs.NONE else
                                               f"the step is {step_now.verdict}.")))

# %%
# sdpa_cliff_at_128_tokens: under MLX 0.29.1, 127 tokens slow and 128 fast (a "down" step).
step_old = version_step("0.29.1")
run.add_finding(Finding(
    id="sdpa_cliff_at_128_tokens", headline=True, section="versions",
    verdict=cliffs.verdict(step_old, cliffs.DOWN),
    measured=measured(Interval(step_old.ratio, step_old.low, step_old.high), "x (128 over 127 tokens)")
    if step_old else None, published=published.reference("sdpa_cliff_at_128_tokens"),
    statement=(f"MLX 0.29.1 on {env.device} ({env.backend}), causal prefill SDPA: {step_text(step_old)}; published "
               f"(Rust, whole run): 600 vs 958 ms, ratio 0.626." if step_old else
               f"MLX 0.29.1 could not run here ({why_missing('0.29.1')}); on MLX {env.mlx}: "
               + (step_text(step_now) if step_now else "127 / 128 not measured") + ".")))

# sdpa_cliff_127_gap_vs_python: 0.29.1 vs 0.30.0 at 127 tokens, 56% slower (parity at 128).
g127 = version_gap("0.29.1", "0.30.0", kind="prefill", mode="causal", length=127)
g128 = version_gap("0.29.1", "0.30.0", kind="prefill", mode="causal", length=128)
run.add_finding(Finding(
    id="sdpa_cliff_127_gap_vs_python", section="versions",
    verdict=matches(pct(g127), 56, 10) if g127 else INCONCLUSIVE,
    measured=measured(pct(g127), "% (0.29.1 over 0.30.0 at 127)") if g127 else None,
    published=published.reference("sdpa_cliff_127_gap_vs_python"),
    statement=(f"Causal prefill SDPA at 127 tokens takes {pct(g127).value:+.1f}% [{pct(g127).low:+.1f}, "
               f"{pct(g127).high:+.1f}] under MLX 0.29.1 vs 0.30.0 here ({pct(g128).value:+.1f}% at 128); "
               f"published: +56% at 127 (Rust on 0.29.1 vs Python on 0.30.0, whole runs), parity at 128."
               if g127 and g128 else f"Not measured: {why_missing('0.29.1', '0.30.0')}.")))

# sdpa_cliff_cause_causal_lt128: the version effect should sit in causal mode below 128 tokens only.
lt = [n for n in version_lengths if n < 128]
cause = {m: version_gap("0.29.1", "0.30.0", kind="prefill", mode=m) for m in modes}
cause_lt = (attention.pooled_ratio(attention.select(ver, kind="prefill", mode="causal").query("length < 128"),
                                   "probe_mlx", "0.29.1", "0.30.0", ["length"])
            if {"0.29.1", "0.30.0"} <= set(ran) else None)
run.add_finding(Finding(
    id="sdpa_cliff_cause_causal_lt128", section="versions",
    verdict=at_least(Interval.of(cause_lt), 1 + tolerance) if cause_lt else INCONCLUSIVE,
    measured=measured(Interval.of(cause_lt), "x (0.29.1 over 0.30.0, causal, < 128 tokens)") if cause_lt else None,
    published=published.reference("sdpa_cliff_cause_causal_lt128"),
    statement=(f"Causal prefill SDPA below 128 tokens ({lt}) takes {cause_lt.median:.3f}x [{cause_lt.low:.3f}, "
               f"{cause_lt.high:.3f}] under MLX 0.29.1 vs 0.30.0 here; all lengths by mask mode: "
               + ", ".join(f"{m} {s.median:.3f}x [{s.low:.3f}, {s.high:.3f}]" for m, s in cause.items() if s)
               + f" (a bug of 0.29.1 in causal SDPA below 128 would show as > {1 + tolerance:.2f}x in causal only)."
               if cause_lt else f"Not measured: {why_missing('0.29.1', '0.30.0')}.")))

# No cliff after the fix: MLX 0.30.1 (Rust after the update) and 0.30.0 (Python).
for claim_id, version in (("sdpa_cliff_gone_after_upgrade", "0.30.1"), ("python_0300_no_cliff", "0.30.0")):
    s = version_step(version)
    run.add_finding(Finding(
        id=claim_id, section="versions", verdict=cliffs.verdict(s, cliffs.NONE),
        measured=measured(Interval(s.ratio, s.low, s.high), "x (128 over 127 tokens)") if s else None,
        published=published.reference(claim_id),
        statement=(f"MLX {version} on {env.device} ({env.backend}), causal prefill SDPA: {step_text(s)}."
                   if s else f"Not measured: {why_missing(version)}.")))

# initial_rust_python_gap_3_24x: can the MLX version alone (0.29.1 vs 0.30.0) explain 3.24x per token?
per_token = version_gap("0.29.1", "0.30.0", kind="decode")
run.add_finding(Finding(
    id="initial_rust_python_gap_3_24x", section="versions",
    verdict=matches(Interval.of(per_token), 3.24, 0.3) if per_token else INCONCLUSIVE,
    measured=measured(Interval.of(per_token), "x (0.29.1 over 0.30.0, decode SDPA)") if per_token else None,
    published=published.reference("initial_rust_python_gap_3_24x"),
    statement=(f"Decode SDPA (the per-token attention) takes {per_token.median:.3f}x [{per_token.low:.3f}, "
               f"{per_token.high:.3f}] under MLX 0.29.1 vs 0.30.0 on {env.device} ({env.backend}); the published "
               f"3.24x per token (Rust on 0.29.1 vs Python on 0.30.0) is not a version effect of attention here "
               f"unless this interval reaches it. Rust itself is not measured." if per_token else
               f"Not measured: {why_missing('0.29.1', '0.30.0')}.")))

# post_fix_worst_case_256 / post_fix_best_case_512: 0.30.1 vs 0.30.0 at 256 (0.7% slower) and 512 (6.3% faster).
for claim_id, n, sign, value in (("post_fix_worst_case_256", 256, 1, 0.7), ("post_fix_best_case_512", 512, -1, 6.3)):
    g = version_gap("0.30.1", "0.30.0", kind="prefill", mode="causal", length=n)
    iv = Interval(sign * pct(g).value, min(sign * pct(g).low, sign * pct(g).high),
                  max(sign * pct(g).low, sign * pct(g).high)) if g else None
    word = "slower" if sign > 0 else "faster"
    run.add_finding(Finding(
        id=claim_id, section="versions", verdict=matches(iv, value, 3.0) if g else INCONCLUSIVE,
        measured=measured(iv, f"% {word} (0.30.1 vs 0.30.0 at {n})") if g else None,
        published=published.reference(claim_id),
        statement=(f"Causal prefill SDPA at {n} tokens is {iv.value:.1f}% [{iv.low:.1f}, {iv.high:.1f}] {word} under "
                   f"MLX 0.30.1 than 0.30.0 here (published: Rust on 0.30.1 {value}% {word} than Python on 0.30.0, "
                   f"whole runs; the version part of that difference is what is measured here)." if g else
                   f"Not measured: {why_missing('0.30.1', '0.30.0')}.")))

# %%
# gqa_let_sdpa_handle: repeating K/V by hand costs more than native GQA.
gqa_pct = pct(gqa_ratio)
run.add_finding(Finding(
    id="gqa_let_sdpa_handle", headline=False, section="gqa", verdict=at_least(gqa_pct, 0.0),
    measured=measured(gqa_pct, "% slower with repeated K/V"), published=published.reference("gqa_let_sdpa_handle"),
    statement=f"Repeating K/V heads by hand before SDPA ({heads}, {main_dtype}, d{main_head_dim}) takes "
              f"{gqa_pct.value:+.1f}% [{gqa_pct.low:+.1f}, {gqa_pct.high:+.1f}] vs native GQA over all cases; "
              + ", ".join(f"{k} {pct(s).value:+.1f}% [{pct(s).low:+.1f}, {pct(s).high:+.1f}]"
                          for k, s in gqa_by_kind.items()) + f" ({where})."))

# per_op_rust_python_parity: Rust is not measured; the per-op times are.
sdpa_dec = measure.summarize(attention.select(op_df, op="sdpa", phase="decode").value)
run.add_finding(Finding(
    id="per_op_rust_python_parity", section="ops", verdict=NOT_APPLICABLE,
    measured=measured(Interval.of(sdpa_dec), "ms (SDPA op at decode)"),
    published=published.reference("per_op_rust_python_parity"),
    statement="Rust vs Python parity cannot be measured here (the workbook drives MLX from Python only). Per-op "
              f"medians at decode / prefill shapes ({model}, MoE {moe_model or 'none'}, {op_dtype}, {where}): "
              + "; ".join(f"{op} {attention.select(op_table, op=op, phase='decode')['median'].iloc[0]:.3g} / "
                          f"{attention.select(op_table, op=op, phase='prefill')['median'].iloc[0]:.3g} ms"
                          for op in op_table.op.unique()) + "."))

# graph_build_parity: ~1.6 ms, "not the problem": building must take less than evaluating (pipelining hides it).
run.add_finding(Finding(
    id="graph_build_parity", section="ops", verdict=at_least(Interval.of(hidden), 1.0),
    measured=measured(Interval.of(build), "ms (graph build, one decode step)"),
    published=published.reference("graph_build_parity"),
    statement=f"Building one decode step's graph ({loaded.label}, {loaded.num_layers} layers) takes {build.median:.3g} "
              f"ms [{build.low:.3g}, {build.high:.3g}] ({1e3 * build.median / loaded.num_layers:.0f} us per layer); "
              f"evaluating it {evaluate.median:.3g} ms, {hidden.median:.2f}x [{hidden.low:.2f}, {hidden.high:.2f}] "
              f"the build, so a pipelined loop {'hides' if hidden.low > 1 else 'may not hide'} graph building "
              f"({where}; published: 1.61 ms Python, 1.54 ms Rust, GLM-4.5 MoE, Apple silicon)."))
run.finish()
display(Markdown("\n".join(f"- **{f.id}** ({f.verdict}): {f.statement}" for f in run.findings)))

# %% [markdown]
# ## Closing note <a id="closing"></a>

# %%
display(Markdown(
    f"On {where}, MLX versions run: {', '.join(ran) or 'none'}"
    + "".join(f"; {r.message}" for r in version_results if not r.ok) + ".\n\n"
    + (f"Every cliff found ({len(found)}, beyond a {tolerance:.0%} tolerance of the work envelope):\n\n"
       + "\n".join(f"- {line}" for line in cliff_lines) if len(found) else
       f"No cliff beyond a {tolerance:.0%} tolerance of the work envelope in any sweep.")))
