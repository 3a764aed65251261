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
# # 02 · What does a decode loop spend besides the forward pass?
#
# Three write-ups blame (or clear) the loop around the model rather than the model itself:
#
# - **Logits evaluation** (seed `001_24b6d651dffff56b.txt`, mlx-node on Qwen3-0.6B, Apple Silicon): evaluating
#   the unused full logits every token cost **4-5%**, computing logprobs when nobody asked for them **1-2%**,
#   a logits copy in the temperature-1 sampler **0.5%**; 96% of the time per token was GPU-bound; mlx-lm's
#   speed varied **14%** run to run against mlx-node's **2.4%**.
# - **Async pipelining** (seed `002_f7004e0257eac9cc.txt`, Rust on GLM-4.5-Air 3-bit): `async_eval` of the next
#   token before `item()` of the current one, instead of evaluating every 10 tokens, gave **+22%**.
# - **The 2x gap analysis** (seed `000_8106547a6e1af99a.txt`) left two ideas untried: **compiled sampling**
#   (expected 1.3-1.5x on sampling, ~1-2% overall) and a **dedicated stream** (expected minor).
#
# Those loops were Rust; ours are Python on the same MLX. Each claim becomes a pair of decode loops that differ
# in exactly that one respect (`mlx_workbook.probes.loops.VARIANTS`), and the published effect is set against the
# ratio of their speeds. mlx-lm's own `generate_step` runs beside them as the reference of the loop we name
# before measuring (`pipelined`). Under greedy decoding every variant must emit `generate_step`'s tokens: checked
# below on a model with clear logit margins (and in `tests/test_loops.py`); sampled variants that read the same
# numbers emit identical tokens under the same seed.
#
# **How it is measured** (`mlx_workbook.investigations.decode_loop.measure`, method version 14). Each model gets
# the same random prompt. Every variant is first warmed up once on exactly the timed shapes, so first-use kernel
# compilation stays out of the trials (its seconds are shown below). Then each claim is its own comparison
# (`plans.PLANS`, `core.blocks`): only the two or three loops it needs, one trial each of `max_tokens` tokens per
# block, the trials advanced alternately `chunk_tokens` tokens at a time in a random order per round (so that a
# change of the host's speed, about once a second on the GPU machine, hits every loop of the block; 0: whole
# trials back to back), every token timed and the first of each chunk (the switch) dropped. A trial's value is
# its steady-state ms per token: the geometric mean of its chunks' medians over windows of token intervals (a
# host stall moves one window, not the trial; `blocks.interleaved`). A block's log-ratio is the median of its
# rounds' paired log-ratios (a round that straddles a change of the host's speed holds two chunks 10-45% apart:
# about a tenth of them on the H200 host; `blocks.block_log_ratio`), and the effect is the geometric mean over
# the blocks with a t interval, so a change of the host's speed between blocks cancels out; blocks are
# added until the interval decides the claim's widened published range or the comparison's `budget_s` is spent,
# and the stored outcome says which (with n, and for an undecided claim the smallest effect it could resolve).
# A variant decided at a look leaves its comparison there (method 13), so the blocks after it are shorter and
# hold the undecided pair side by side in every round; whether an extension could decide is projected at the pace
# of the blocks as they now are (method 14: per trial, not per block).
# A comparison still undecided at its budget goes on for up to `extend_s` more (`extend_total_s` over the
# notebook) where its blocks project a decision within that (`core.blocks.promising`); an effect on its band's
# edge, which would need hundreds of blocks, stops and says about how many.
# mlx-lm's run-to-run spread has its own pass: `variability_runs` whole `generate_step` generations, as the write-up
# ran them, spread over the comparisons (a few after each; method 12: back to back they sampled one ~40 s stretch of
# the host, and two runs at one commit found 15% and 21%), then more at the end while undecided. The samplers
# timed alone run paired: every repeat times each sampler once, back to back in a random order. Both go on (method
# 11: up to `variability_max_runs` runs and `sampler_max_repeats` repeats) until their claim's interval decides, and
# say why they stopped. Method version 8
# took a block's log-ratio from the mean of its rounds (2.0-3.0% per block on the H200 host against 0.7-1.0% as the
# median: bench/round_noise.py).
# Method version 5 took the spread from the few mlx-lm
# trials in the comparisons' blocks and timed each sampler's repeats in one stretch.
# Method version 4 ran whole trials back to back (on the GPU machine one trial of a block often ran in the
# host's fast mode and the other in its slow one); version 3 ran all 14 variants per round in 48-token trials,
# so the two loops of a claim could be seconds apart. Models are shape-faithful presets at random weights (same
# bytes, same kernels as the real checkpoints, so speeds carry over; text would not).

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
model_specs: list = [
    "tiny:float32",
    "tiny:4",
]  # models as preset:bits or preset:dtype; the first runs every variant and judges the claims
comparisons: list = [
    "loop_overhead",
    "unused_logits",
    "sampler_path",
    "compiled_sampling",
    "rep_penalty",
    "extract",
    "stream",
    "sampling_in_loop",
    "pipelining",
]  # comparisons on the first model (decode_loop.plans.PLANS)
side_comparisons: list = [
    "loop_overhead"
]  # comparisons on the other models (the pipelining model: and "pipelining")
pipelining_model: str = (
    ""  # model the pipelining claim is judged on (seed: a 3-bit MoE); empty: last model_spec
)
prompt_tokens: int = 16  # random prompt length, tokens
max_tokens: int = 256  # tokens each trial decodes, the warm-up as many (steady state: at least 256)
chunk_tokens: int = 16  # tokens a trial decodes before another loop's turn (0: whole trials back to back)
budget_s: float = 2.0  # seconds one comparison may add blocks for (it stops earlier once decided)
extend_s: float = 0.0  # seconds more for a comparison undecided at its budget whose blocks project a decision
extend_total_s: float = 0.0  # seconds of such extensions over all the comparisons (caps the run time)
min_blocks: int = 3  # blocks before a comparison's interval is first looked at
max_blocks: int = 30  # blocks one comparison runs at most
identity_tokens: int = 32  # tokens of the identity check on the tiny preset with scaled weights
split_tokens: int = 32  # tokens per instrumented generation (per-phase time split)
split_repeats: int = 3  # instrumented generations per split variant
samplers: list = [
    "greedy",
    "fast",
    "mlx_lm",
    "chain",
    "chain_compiled",
    "mlx_lm_chain",
]  # samplers timed alone, on the first model
sampler_calls: int = 20  # sampler calls per timed trial
sampler_repeats: int = 5  # timed repeats, each timing every sampler once back to back in a random order
sampler_max_repeats: int = (
    0  # above sampler_repeats: more repeats until the compiled chain's verdict is decided
)
variability_runs: int = (
    8  # whole mlx-lm generations back to back for its run-to-run spread (0: skip; < 8: not measured)
)
variability_max_runs: int = 0  # above variability_runs: more runs until the spread's verdict is decided
minor_tolerance_pct: float = 2.0  # speed difference still called minor (dedicated stream), percent
no_impact_tolerance_pct: float = 1.0  # speed difference still called no impact, percent
share_tolerance_pts: float = (
    3.0  # percentage points a measured share may differ from a published one and match
)
variance_tolerance_pts: float = (
    4.0  # percentage points a measured CV may differ from a published one and match
)
seed: int = 0  # seed of the random weights, prompts and samplers

# %%
import mlx.core as mx
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import blocks, hoststate, results
from mlx_workbook.investigations.decode_loop import analysis, findings, measure, plans
from mlx_workbook.investigations.kv_cache.measure import varied_model
from mlx_workbook.probes import loops
from mlx_workbook.report import plots

# Parameters are checked before anything heavy runs: unknown names, models too large, impossible sizes.
measure.validate(model_specs, comparisons, side_comparisons, samplers, pipelining_model, seed=seed)
if (
    min(split_tokens, identity_tokens) < 2
    or max_tokens < 21  # the pipelining comparison's windows of 10 token intervals: at least two
    or not 3 <= min_blocks <= max_blocks
    or budget_s <= 0
    or chunk_tokens < 0
    or chunk_tokens == 1
    or split_repeats < 1
    or prompt_tokens < 1
    or min(sampler_calls, sampler_repeats) < 1
    or variability_runs < 0
    or min(sampler_max_repeats, variability_max_runs) < 0
):
    raise ValueError(
        "split_tokens and identity_tokens must be >= 2, max_tokens >= 21, chunk_tokens 0 or >= 2, "
        "3 <= min_blocks <= max_blocks, "
        "budget_s > 0, split_repeats, prompt_tokens, sampler_calls and sampler_repeats >= 1, "
        "variability_runs, sampler_max_repeats and variability_max_runs >= 0"
    )
tolerances = plans.Tolerances(
    minor_tolerance_pct, no_impact_tolerance_pct, share_tolerance_pts, variance_tolerance_pts
)
extension = blocks.Extension(extend_s, extend_total_s)  # shared by every comparison below
# 12: mlx-lm's spread runs are spread over the comparisons, not back to back after them; 11: the samplers timed alone
# and mlx-lm's spread go on (sampler_max_repeats, variability_max_runs) until their
# claim's interval decides; 10: a side model's comparisons stop and extend on the fastest-loop check alone, and an
# effect outside its band stops only once its interval clears no effect (core.blocks.Band.no_effect_at); 9: a block's
# log-ratio the median of its rounds'; 8: undecided comparisons whose blocks project a decision may go on past their
# budget
run = results.start("02_decode_loop", globals(), method_version=14)
env = run.environment
where = f"{env.device} ({env.backend}, mlx {env.mlx})"
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())
display(analysis.variant_descriptions(list(loops.VARIANTS)))

# %% [markdown]
# ## Greedy variants emit generate_step's tokens <a id="identity"></a>
# The loop logic is checked on the tiny preset in float32 with its weights scaled up, where the top logit
# stands clear of the next: equal tokens there mean the loops compute the same thing. On the random-weight
# benchmark presets the logits are nearly tied, so a last-bit difference between two graphs (a GPU reduction in
# another order) can flip an argmax; the agreement measured there is shown further down as information only.

# %%
varied = varied_model("tiny", dtype="float32", seed=seed)
identity = measure.check_identity(
    run, varied, list(loops.VARIANTS), prompt_tokens=prompt_tokens, max_tokens=identity_tokens, seed=seed
)
display(identity)
del varied

# %% [markdown]
# ## Measuring every model <a id="measure"></a>
# Per model: every variant its comparisons need, warmed up once (`first_use`: the table below, where first-use
# kernel compilation shows); the comparisons, one experiment each named after its plan; the tokens each
# variant shares with its family's reference (`agreement`); the per-phase time split of `generate_step`'s
# steps and of the judged loop (`split`); and, on the first model, the samplers timed alone on one
# vocabulary-sized row (`sampling`). `generate_step` itself cannot be instrumented without editing mlx-lm, so
# its split is taken on `logprobs_always`, our copy of its steps (same operations, same order; its speed
# against the real one is in the fastest-loop table).

# %%
labels = {}
for i, spec in enumerate(model_specs):
    labels[spec] = measure.measure_model(
        run,
        spec,
        measure.plans_for(spec, model_specs, comparisons, side_comparisons, pipelining_model),
        tolerances=tolerances,
        samplers=samplers if i == 0 else [],
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        chunk_tokens=chunk_tokens,
        budget_s=budget_s,
        extension=extension,
        min_blocks=min_blocks,
        max_blocks=max_blocks,
        split_tokens=split_tokens,
        split_repeats=split_repeats,
        sampler_calls=sampler_calls,
        sampler_repeats=sampler_repeats,
        sampler_max_repeats=sampler_max_repeats,
        variability_runs=variability_runs if i == 0 else 0,
        variability_max_runs=variability_max_runs if i == 0 else 0,
        claims=measure.judged_claims(spec, model_specs, pipelining_model),
        seed=seed,
    )
    mx.clear_cache()
df = run.measurements
setup = analysis.Setup(
    labels=labels,
    where=where,
    pipelining_spec=pipelining_model,
    minor_tolerance_pct=minor_tolerance_pct,
    no_impact_tolerance_pct=no_impact_tolerance_pct,
    share_tolerance_pts=share_tolerance_pts,
    variance_tolerance_pts=variance_tolerance_pts,
)
display(analysis.first_use_table(df).round(3))

# %% [markdown]
# ## Every comparison <a id="variants"></a>
# Bars: per comparison and model, how much faster the comparison's reference decodes than each variant set
# against it (paired blocks; the interval is the one the stopping rule last looked at). The table gives n, why
# the comparison stopped (`decided`: its interval lies wholly inside or outside the claim's widened band, and
# outside it also wholly on one side of no change, which settles "size differs" against "does not hold";
# `budget`: `budget_s` ran out, after the extension where `extended`; `max_blocks`) and, for an undecided one,
# the smallest effect it could resolve (the interval's half-width) and about how many blocks a decision would
# take (`projected_blocks`). Below: every variant's median ms/token and tokens/s over all its trials
# (unpaired across comparisons: information only).

# %%
table = analysis.comparisons_table(df)
fig = analysis.comparisons_chart(table, where)
run.save_figure(fig, "comparisons")
summary = analysis.variant_table(df)
display(fig, table.round(3), summary.set_index(["label", "variant"]).round(3))
host = hoststate.report(run)
fig = plots.host_speed(df)
run.save_figure(fig, "host_speed")
display(fig, Markdown(hoststate.describe(host)))
display(
    Markdown(
        "Benchmark presets, information only: share of each variant's tokens equal to its family's "
        "reference, position by position (greedy: `generate_step`; temperature-1 samplers: `sample_fast`, "
        "same seed; filter chain: `sample_chain`; penalty: `rep_penalty`). Nearly tied random-weight logits "
        "let last-bit differences flip tokens; in bf16, `sample_before_001` draws from logprobs rounded to "
        "bf16, so a draw with the same key can land on a neighbouring token (the same work per token, so "
        "its speed still compares)."
    ),
    analysis.agreement_table(df),
)

# %% [markdown]
# ## Where the time per token goes <a id="split"></a>
# Host time of each decode step, by phase, as a share of the time from the first token to the last:
# *graph build* (the model call: MLX only records the graph), *sampling* (logprobs and sampler graph),
# *encode/launch* (inside `async_eval`: the graph handed to the device), *wait for device* (blocked until the
# token is computed: `eval` of it, then `item()`), *other* (the loop's own Python). Every phase is host time:
# while the host is in any of them the device may be working, so none is the device's execution time. The
# original's table (seed 001, mlx-node before its clean-up, Apple Silicon) is the last bar: its "forward pass"
# is graph build, its "async eval" encode/launch, its "token extract" wait for device. Method version 3: the
# phases were named "graph building", "device execution", "token sync" before, and a synchronous step's
# `eval` counted whole as "device execution"; it is now split into encode/launch and wait for device.

# %%
shares = analysis.split_shares(df)
fig = analysis.split_chart(shares, where)
run.save_figure(fig, "time_split")
display(fig, shares.set_index("loop")[analysis.PARTS].round(1), analysis.split_ms_table(df).round(3))

# %% [markdown]
# ## Trial-to-trial variability <a id="variability"></a>
# Coefficient of variation (standard deviation / mean) of each variant's tokens/s over its trials (every
# comparison it ran in), with a 95% chi-square interval.
# The original reported 14% for mlx-lm and 2.4% for mlx-node (dashed lines); it does not
# define "variance", and 14% matches half the 81-109 tok/s range over the mean of its 5 runs. That claim is
# judged on its own pass (`variability_runs` whole `generate_step` runs spread over the comparisons, more while it is
# undecided up to `variability_max_runs`; the table below): half the range over the mean of 5 runs, averaged over
# every 5 of ours, with a jackknife interval on the log scale.

# %%
fig = analysis.variability_chart(summary, where)
run.save_figure(fig, "variability")
display(fig, analysis.variability_runs_table(df).round(2))

# %% [markdown]
# ## Sampling inside the loop, and alone <a id="sampling"></a>
# Sampling's cost where it is paid: comparison `sampling_in_loop` runs the same pipelined loop with the greedy
# argmax fast path and with the full top-p 0.9 / min-p 0.05 / top-k 50 chain (uncompiled) back to back per
# block; the chain's extra ms per token is their paired per-block difference, and its share of a chain token is
# what the sampling claim is judged on (first table). The chart and second table time each sampler alone on one
# vocabulary-sized row, synchronized after every call, so nothing overlaps it (a side table: only the compiled
# chain's speed-up on sampling alone rests on it): greedy argmax, the temperature-1 fast path (`fast`), mlx-lm's
# `make_sampler` at temperature 1 (`mlx_lm`), the chain uncompiled (`chain`), inside one `mx.compile`
# (`chain_compiled`) and through mlx-lm (`mlx_lm_chain`); `transfer` is copying an evaluated token id and
# float32 logprobs to the host.

# %%
display(analysis.in_loop_sampling_table(df, setup).round(4))
samp = analysis.sampling_table(df)
fig = analysis.sampling_chart(samp, where)
run.save_figure(fig, "sampling")
display(fig, samp.round(4))

# %% [markdown]
# ## The claims, one by one <a id="claims"></a>
# Each speed-up claim is its own comparison of a one-factor pair of variants on the claims model (the first of
# `model_specs`; the pipelining claim on `pipelining_model`), judged on the stored outcome of its blocks.
# Verdicts: **holds** when the measured interval lies within the published range (widened by a quarter of it,
# at least 0.5 points); **direction holds, size differs** when it lies wholly outside it on the claimed side of
# zero; **does not hold** when it lies outside it otherwise; **inconclusive** when it straddles an edge (the
# statement then gives the smallest effect its blocks could resolve). "No impact" and "minor" claims hold when
# the whole interval sits within the tolerance of zero. Claims about mlx-node or Rust code, or absolute Apple
# figures,
# cannot be re-measured here: they are marked as not applicable, with the honest proxy quoted where there is one.

# %%
effects = analysis.effects_table(df, setup)
fig = analysis.claims_chart(effects, setup)
run.save_figure(fig, "claims")
display(fig, effects.set_index(["claim", "label"]).round(2))

# %% [markdown]
# ## Fastest loop against generate_step <a id="fastest"></a>
# Per model: the library loop named before measuring (`pipelined`) against `generate_step` in their own
# comparison (judged: at least as fast within the minor tolerance, and if it is not, why, from the data, in the
# findings below); our copy of `generate_step`'s steps ran in the same blocks and is quoted beside it. No loop is
# picked after measuring: the best of several would win by selection alone.

# %%
display(analysis.fastest_table(df, setup).round(2))

# %% [markdown]
# ## Findings <a id="findings"></a>

# %%
for finding in findings.findings(df, setup):
    run.add_finding(finding)
run.finish()
display(Markdown("\n".join(f"- **{f.id}** ({f.verdict}): {f.statement}" for f in run.findings)))
