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
# **How a sample is timed** (`probes/sdpa_probe.py`, method 11): a configuration's lengths are split into bands of
# neighbours whose calls take within `band_ratio` of each other's time, neighbouring bands sharing a length; a band
# uses one call count, enough for `target_ms` of device work per sample at its fastest length (at least `min_calls`),
# the calls queued without host syncs between them; each round visits every (band, length) in a fresh random order.
# So neighbouring lengths are always compared at one call count: method 1 chose the count per length, and the sync
# divided differently at neighbouring lengths made steps of its own; methods 2-10 used one count per configuration,
# calibrated at its longest length, which left short lengths under 1 ms a sample and the sync biasing their ratios
# toward 1.
#
# **How a cliff is found** (`cliffs.py`): neighbouring lengths a < b are compared by the median of their per-round
# ratios, read from the band that timed both at one call count (method 12: a round times every length once, so what
# slows a round cancels within it). If time is an overhead plus a part proportional to the attention work, that ratio
# lies between 1 and the work ratio w_b / w_a; a *candidate* is a pair whose median ratio (method 4; before, its 95%
# interval) lies outside that envelope widened by `tolerance` and drawn in by `screen_margin` (method 9: a few trials
# can put a real jump just inside the edge): **up** (b slower than its extra work explains) or **down** (b faster
# although it does more: the lengths up to a were slow, the shape of the published cliff). Each candidate is then
# re-measured with its two lengths alternated back to back for `confirm_pairs` pairs (method 10: one pair of every
# candidate per round, so a candidate's pairs spread over the whole pass) and judged on the paired ratios (t interval
# on the log-ratios, Bonferroni over every re-measured step and over the passes): a step still unclear (its interval
# straddling the envelope's edge) gets another pass of pairs in the same process, up to `confirm_passes` (method 9: in
# fresh processes too). Only a step that repeats is called a **cliff**; the others are listed as transients. The
# published 127 -> 128 step is always re-measured this way, and so (method 3, `confirm_boundaries`) is every step into
# and out of a boundary the prefill and decode sweeps straddle (b-1 -> b, b -> b+1), whatever the sweep said: which
# steps a noisy sweep nominates changes from run to run, and these are the steps that matter most. Such a step (origin
# `boundary` in the tables) is a cliff when its confirmation is a jump either way, and otherwise simply not a cliff. A
# step's ratio can depend on the process that measures it (on the H200, 512 -> 513 tokens of the additive mask took
# 1.61x in one process and 1.07x in another; at ea85dcf one run's process found four boundary steps flat that ten
# fresh processes all found jumps), so with `confirm_processes` 3 (method 7) every re-measured step is re-measured in
# fresh processes as well (20 pairs a pass) and judged by the majority of its processes: a cliff where most found the
# same jump, none where most found none. The second fresh process measures only the steps the first two left open
# (they disagreed, or one was unsure); a step without a majority is listed with the undecided steps, as `varies` where
# some process found a jump and another none.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
n_q_heads: int = 2  # query heads of every SDPA sweep
n_kv_heads: int = 1  # key/value heads (fewer than the query heads: grouped-query attention)
wide_lengths: list = [32, 64, 96, 192, 256, 512]  # wide prefill sweep, tokens
boundaries: list = [64, 128, 256]  # powers of two and tile sizes to sweep finely around (prefill)
offsets: list = [-12, -8, -4, -1, 0, 1, 4, 12]  # fine sweep around each boundary (128 gives 116 ... 140)
modes: list = [
    "causal",
    "additive",
    "bool",
    "none",
]  # mask modes: causal string, additive array, boolean array, none
variants: list = [
    "sdpa"
]  # kernels of the mask-mode sweep: sdpa (mx.fast) and/or unfused (matmul, softmax, matmul)
main_dtype: str = "float32"  # dtype of the mask-mode sweep, the GQA and the version comparison
main_head_dim: int = 64  # head dim of the mask-mode sweep, the GQA and the version comparison
dtypes: list = [
    "float32",
    "bfloat16",
    "float16",
]  # dtypes of the dtype x head-dim sweeps (prefill and decode)
head_dims: list = [64, 128, 80]  # head dims of the dtype x head-dim sweeps (prefill and decode)
variant_modes: list = ["causal"]  # mask modes of the dtype x head-dim prefill sweep
variant_wide: list = [64, 256]  # wide lengths of the dtype x head-dim prefill sweep
variant_boundaries: list = [128]  # boundaries of the dtype x head-dim prefill sweep
decode_lengths: list = [64, 128, 512, 1024]  # wide decode sweep, cached positions
decode_boundaries: list = [
    256,
    512,
    768,
    1024,
]  # KV-cache steps (multiples of 256) and powers of two (decode)
decode_offsets: list = [-1, 0, 1]  # fine decode sweep around each boundary
gqa_prefill_lengths: list = [64, 128, 256]  # prompt lengths of the GQA comparison
gqa_decode_lengths: list = [256, 1024]  # cache lengths of the GQA comparison
mlx_versions: list = ["0.29.1", "0.30.0", "0.30.1", "current"]  # MLX versions to run the SDPA probe under
version_passes: int = 2  # runs of every version in alternating order, so load drift weighs on all alike
wheels_dir: str = (
    ""  # folder of MLX wheels for offline installs (empty: the package index, or MLX_WHEELS_DIR)
)
version_lengths: list = [
    64,
    116,
    120,
    124,
    127,
    128,
    129,
    132,
    140,
]  # version probe prefill lengths, every mask mode
version_causal_lengths: list = [32, 256, 512]  # more prefill lengths of the version probe, causal string only
version_decode_lengths: list = [255, 256, 257, 1024]  # decode lengths of the version probe
model: str = "tiny"  # preset for prompt latency, graph building and the dense op shapes
model_dtype: str = "float32"  # the preset's weight dtype
model_bits: int = 0  # weight quantization bits (0 means unquantized)
prompt_lengths: list = [
    32,
    64,
    96,
    116,
    120,
    124,
    127,
    128,
    129,
    132,
    140,
    256,
    512,
]  # prompt lengths, tokens
moe_model: str = "tiny-moe"  # preset whose MoE shapes the routing and expert ops use (empty: no MoE ops)
moe_expert_phases: list = [
    "decode",
    "prefill",
]  # phases that time one quantized MoE layer (CUDA compiles its prefill path for about 50 s)
op_tokens: int = 128  # tokens of the prefill op shapes
op_context: int = 512  # cached positions of the decode op shapes
op_dtype: str = "float32"  # dtype of the op inputs
op_bits: int = 4  # bits of the quantized matmul and the quantized experts
group_size: int = 64  # quantization group size
graph_context: int = 128  # cached positions before the decode steps whose graph building is timed
repeats: int = 5  # timed trials per configuration
warmup: int = 1  # untimed runs before the trials
target_ms: float = 3  # device work per sample at a band's fastest length: sets the band's call count
band_ratio: float = 2.0  # a band's lengths take within this factor of each other's time per call
min_calls: int = 2  # calls per sample at least (short kernels: the final sync divided over them)
max_calls: int = 1000  # calls per sample at most
confirm_pairs: int = 20  # alternated pairs that re-measure each candidate cliff (one pass)
confirm_passes: int = 1  # passes at most: a step still unclear after a pass gets another confirm_pairs pairs
confirm_processes: int = 1  # processes whose majority judges a step: 3 adds up to two fresh processes
max_confirm: int = 30  # candidates re-measured per sweep (the farthest from the work envelope first)
confirm_boundaries: bool = True  # also re-measure every step b-1 -> b, b -> b+1 around the swept boundaries
tolerance: float = 0.25  # a cliff must exceed the work envelope by this fraction (CPU timings are noisy)
screen_margin: float = 0.05  # the sweep also nominates steps this close (a fraction) inside the widened edge

# %%
from mlx_workbook import models
from mlx_workbook.core import parameters
from mlx_workbook.investigations.sdpa_cliff import measure
from mlx_workbook.probes import ops

P = parameters.collect("03_sdpa_cliff", globals())
plan = measure.plan(P)  # every SDPA sweep as cases; one clear error for impossible sweeps, before any work
dense_shapes, moe_shapes = ops.shapes(
    model, moe_model, tokens=op_tokens, context=op_context, bits=op_bits, group_size=group_size
)
models.validate(model_dtype, model_bits or None, group_size)
models.check_backend_support(models.preset_config(model), model_dtype, model_bits or None, model)

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import hoststate, results
from mlx_workbook.investigations.sdpa_cliff import analysis, findings
from mlx_workbook.report import plots

run = results.start("03_sdpa_cliff", globals(), method_version=measure.METHOD_VERSION)
calls = dict(warmup=warmup, target_ms=target_ms, min_calls=min_calls, max_calls=max_calls)
timing = dict(repeats=repeats, **calls)
# the probe sweeps' timing (the ops and the prompt sweep time other things and have no bands)
sweeping = dict(timing, band_ratio=band_ratio)
confirming = dict(
    pairs=confirm_pairs,
    passes=confirm_passes,
    processes=confirm_processes,
    tolerance=tolerance,
    max_candidates=max_confirm,
    wheels_dir=wheels_dir,
    **calls,
)
found, transient = {}, {}  # each sweep's confirmed cliffs, and its candidates that did not repeat
edge = {}  # each sweep's re-measured steps that stayed unclear: at the tolerance's edge, neither cliff nor not
display(pd.Series(run.environment.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## Prefill attention across lengths and mask modes <a id="prefill"></a>
# Queries = keys = the prompt length, batch 1. Each configuration's lengths are timed in interleaved rounds, so
# load from other processes hits all lengths alike. The chart shows time per unit of work (nanoseconds per
# query-key pair of the length x length score matrix and query head, whatever the mask): flat where time grows
# with the work, a step where it does not.
# Dotted red lines: detected cliffs.

# %%
errors = measure.sweep(run, "prefill", plan.prefill, **sweeping)
if errors:
    display(Markdown("**Configurations that failed on this backend:**"), pd.DataFrame(errors))
candidates = analysis.candidates(run.measurements, "prefill", P)
claims = analysis.claim_steps(
    run.measurements, "prefill", P
)  # the published 127 -> 128 step: always re-measured
measure.confirm(run, "prefill", candidates, claims=claims, **confirming)
df = run.measurements
found["prefill"], transient["prefill"], edge["prefill"] = analysis.outcomes(df, "prefill", candidates, P)
fig = analysis.prefill_chart(df, P, found["prefill"])
run.save_figure(fig, "prefill_modes")
display(fig)

# %% [markdown]
# ### Dtypes and head dims <a id="variants"></a>
# The same probe for every dtype and head dim in the parameters and every mask mode in `variant_modes` (the
# chart shows the first), fine around `variant_boundaries`: a kernel path that depends on dtype or head dim
# shows up as a cliff in one line only. The table lists every prefill cliff of this MLX version.

# %%
fig = analysis.variants_chart(df, P, found["prefill"])
run.save_figure(fig, "prefill_dtypes_head_dims")
display(fig, found["prefill"].round(3))

# %% [markdown]
# ## Decode attention over a pre-allocated KV cache <a id="decode"></a>
# One query over `length` cached positions, keys and values passed as `cache[..., :length, :]` of a buffer grown
# in steps of 256 positions (mlx-lm's `KVCache`), so their rows are strided by the buffer length. No mask (mlx-lm
# passes none for a single token). Grey dotted lines: the cache's 256-position steps.

# %%
errors = measure.sweep(run, "decode", plan.decode, **sweeping)
if errors:
    display(pd.DataFrame(errors))
candidates = analysis.candidates(run.measurements, "decode", P)
measure.confirm(run, "decode", candidates, **confirming)
df = run.measurements
found["decode"], transient["decode"], edge["decode"] = analysis.outcomes(df, "decode", candidates, P)
fig = analysis.decode_chart(df, P, found["decode"])
run.save_figure(fig, "decode")
display(fig, found["decode"].round(3))

# %% [markdown]
# ## GQA: native grouped-query SDPA vs repeating K/V heads <a id="gqa"></a>
# Seed 002: "MLX `scaled_dot_product_attention` handles GQA internally. Manual K/V repetition is unnecessary and
# harmful to performance." Both variants below get the same unrepeated K/V; `repeat_kv` repeats them to the query
# head count (`mx.repeat`) inside the timed call, as the Rust code did every forward pass.

# %%
measure.sweep(run, "gqa", plan.gqa, **sweeping)
fig, table = analysis.gqa_chart(run.measurements, P)
run.save_figure(fig, "gqa")
display(fig, table.round(4))

# %% [markdown]
# ## Across MLX versions <a id="versions"></a>
# The same self-contained probe (`probes/sdpa_probe.py`, only `mlx` and the standard library) runs under each
# version in `mlx_versions`: the installed one in this process, every other one installed once into
# `.cache/mlx-versions/<version>-<backend>/` with this backend's MLX package and run there as a subprocess
# returning JSON. Versions run one after another, so `version_passes` passes in alternating order keep a machine
# whose load changes over time from favouring one version (on a shared CPU, differences between versions smaller
# than that load noise mean nothing). A version that cannot be installed here (no network, no wheel for this
# platform) gets one message below; the rest of the notebook does not depend on it.

# %%
version_results = measure.compare_versions(
    run, mlx_versions, plan.versions, passes=version_passes, wheels_dir=wheels_dir, **sweeping
)
display(analysis.version_status(version_results))

# %%
candidates = analysis.candidates(run.measurements, "versions", P)
claims = analysis.claim_steps(run.measurements, "versions", P)
measure.confirm(run, "versions", candidates, claims=claims, **confirming)
df = run.measurements
found["versions"], transient["versions"], edge["versions"] = analysis.outcomes(df, "versions", candidates, P)
fig = analysis.versions_chart(df, P)
if fig is not None:
    run.save_figure(fig, "versions")
    display(fig, analysis.steps_127_128(df, P).round(3))
display(
    Markdown(
        "**Published (Apple silicon, chip unspecified; whole runs of a GLM-4.5 MoE model, ms):** before "
        "the fix (Rust on MLX 0.29.1, Python on 0.30.0) and after it (Rust on 0.30.1)."
    ),
    *analysis.published_tables(),
)

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
candidates = analysis.scan(run.measurements, "prompt", P)
steps = measure.to_confirm(candidates, max_confirm)
ops.prompt_confirm(
    run, loaded, list(zip(steps.before_length, steps.length)), pairs=confirm_pairs, warmup=warmup
)
df = run.measurements
found["prompt"], transient["prompt"], edge["prompt"] = analysis.outcomes(df, "prompt", candidates, P)
fig, table = analysis.prompt_chart(df)
run.save_figure(fig, "prompt_latency")
display(fig, table.round(3), found["prompt"].round(3))

# %% [markdown]
# ## Per-op timings and graph building <a id="ops"></a>
# Each op at the shapes one decode step (1 token, `op_context` cached positions) and one prefill (`op_tokens`
# tokens) of the model would run: dense shapes from `model`, MoE routing and one quantized MoE layer
# (`gather_qmm` through mlx-lm's `SwitchGLU`, in the phases of `moe_expert_phases`) at the shapes of `moe_model`,
# never the whole MoE model. The published per-op table (shapes unstated) is shown beside.
# Graph building: the time of the model call for one decode step before anything is evaluated, then the
# evaluation itself; with mlx-lm's pipelined loop, building the next step overlaps the device computing this one.

# %%
ops.run_ops(
    run,
    dense=dense_shapes,
    moe=moe_shapes,
    tokens=op_tokens,
    context=op_context,
    dtype=op_dtype,
    bits=op_bits,
    group_size=group_size,
    ops=list(ops.OPS),
    expert_phases=moe_expert_phases,
    **timing,
)
ops.graph_build(run, loaded, context=graph_context, repeats=max(repeats, 5), warmup=max(warmup, 2))
df = run.measurements
fig, per_op = analysis.ops_chart(df, P)
run.save_figure(fig, "ops")
display(fig, per_op, Markdown(analysis.graph_note(df, P)))

# %% [markdown]
# ## Every cliff found <a id="cliffs"></a>
# A sweep only nominates candidates (each step judged alone at 95%); every candidate (up to `max_confirm` per
# sweep) and every step around a swept boundary is re-measured with its two lengths alternated back to back for
# `confirm_pairs` pairs (more passes while unclear, up to `confirm_passes`), and is a cliff only if the paired
# ratio's interval (t on log-ratios, Bonferroni over the re-measured steps and the passes) lies outside the work
# envelope (for a nominated step: in the sweep's direction); with `confirm_processes` above 1 that is the verdict
# most of its processes found (column `other processes`: the others' ratios). Nominated steps that did not repeat are
# listed below as transients; steps whose interval still straddles the envelope's edge, or without a majority of
# processes (`varies` where one found a jump and another did not), as undecided (another run may call them cliffs, or
# not, without contradicting this one);
# column `origin` says why a step was re-measured.
# All confirmed jumps of every sweep in this run (prefill, decode, versions, prompt latency), largest first.
# `excess` is the ratio beyond the work envelope: 0.6 means the later length took 0.6x the time its extra work
# allows, i.e. the lengths before it ran in a slow regime; 1.4 means a slowdown 1.4x beyond the work. The closing
# note says each cliff in a sentence.

# %%
every_cliff = analysis.all_cliffs(found, run.environment.mlx)
run.save_table(
    every_cliff, "cliffs", key=analysis.CLIFF_KEY
)  # `make compare` sets two runs' lists side by side
display(analysis.cliff_view(every_cliff))
display(
    Markdown(analysis.transients_note(transient)),
    analysis.all_cliffs(transient, run.environment.mlx).round(3),
)
undecided = analysis.all_cliffs(edge, run.environment.mlx)
run.save_table(undecided, "undecided_steps", key=analysis.UNDECIDED_KEY)  # for `make compare`
display(Markdown(analysis.undecided_note(undecided, P)), undecided.round(3))

# %% [markdown]
# ## Host speed and sample sizes during the run <a id="host"></a>
# A fixed pure-Python loop timed after every round of every sweep (`core/hoststate.py`): where it slowed, the
# host did, and host-bound timings with it. The run is flagged unstable (as pyperf does) when the probe's CV
# exceeds 10% or its max/min 1.5x. Below it, how much work the sweeps' samples held: a sample's closing sync is
# divided over its calls, so each band's count was sized for `target_ms` at its fastest length.

# %%
host = hoststate.report(run)
fig = plots.host_speed(run.measurements)
run.save_figure(fig, "host_speed")
display(fig, Markdown(hoststate.describe(host)), Markdown(analysis.sample_note(run.measurements, P)))

# %% [markdown]
# ## Findings <a id="findings"></a>
# One finding per published claim of seeds 003 and 002 that belongs here, each computed from the data above
# (`analysis/sdpa_cliff_findings.py`). Claims comparing Rust with Python cannot be re-run (this workbook drives
# MLX from Python only); where the write-up attributes the difference to the MLX version, the version comparison
# measures that part.

# %%
for finding in findings.findings(df, P, every_cliff, version_results):
    run.add_finding(finding)
run.finish()
display(Markdown(analysis.bullets([f"**{f.id}** ({f.verdict}): {f.statement}" for f in run.findings], "")))

# %% [markdown]
# ## Closing note <a id="closing"></a>

# %%
display(Markdown(findings.closing_note(df, P, every_cliff, version_results)))
