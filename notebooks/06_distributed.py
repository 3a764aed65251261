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
# # 06 · When one device is not enough: what distribution costs and gains
#
# MLX users outgrow one device: Mac owners chain machines with `mlx.launch` (the `ring` backend over Ethernet
# or Thunderbolt, JACCL over RDMA), NVIDIA users split models over GPUs with MLX's NCCL backend. This notebook
# measures, on MLX's own distributed layer and mlx-lm's own sharding:
#
# - **collectives**: `all_sum`, `all_gather` and `send`/`recv` from a few bytes up, latency and bandwidth
#   (an alpha-beta fit), and the exact message sizes a decode step sends;
# - **tensor parallelism** (`model.shard(group)`: attention heads and MLP columns split, two `all_sum` per
#   layer) and **pipeline parallelism** (`model.model.pipeline(group)`, where mlx-lm's class has it: layers
#   split, one send per step) against one device, at batch 1 and larger, decode and prefill;
# - per token, how much is communication: the collectives a step calls (counted) x their measured cost;
# - throughput (tokens/s per device) against interactivity (tokens/s per user) for each layout;
# - correctness: the sharded logits and greedy tokens against one device's.
#
# Each rank is a process started by `mlx.launch` (`ranks`, `backend` and `hosts` are parameters); every rank
# appends its trials to its own journal in the run folder (`ranks/<launch>/rank<r>.jsonl`), merged here into
# the run's measurements. A rank that fails or hangs ends the launch (timeout), every rank process is ended,
# the finished trials are kept, and the error names the rank and quotes its last output. Models are
# shape-faithful presets at random weights: the same bytes and kernels as the real checkpoints. A checkpoint
# folder (`checkpoint`, or a preset the notebook saves as one) is loaded split with mlx-lm's `sharded_load`.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
ranks: int = 2  # processes (devices) the model is split over
backend: str = "ring"  # MLX distributed backend: ring (TCP, any machine), nccl (CUDA GPUs), jaccl, mpi
hosts: list = []  # hosts of the ranks (ranks spread evenly); empty: every rank on this machine
timeout_s: float = 300.0  # a launch that runs longer is ended and the run fails (finished trials kept)
sizes_bytes: list = [4, 64, 1024, 16384, 262144, 1048576]  # collective message sizes per rank, bytes
coll_ops: list = ["all_sum", "all_gather", "send_recv"]  # collectives measured
coll_dtypes: list = ["float32", "bfloat16"]  # their element types
coll_repeats: int = 5  # blocks of the collectives sweep (every size, op and dtype once per block)
model_configs: list = [
    {"preset": "tiny", "dtype": "float32"},
    {"preset": "tiny-qwen2", "dtype": "float32"},
]  # models split over the ranks: preset, dtype and bits (0: unquantized)
layouts: list = ["single", "tensor", "pipeline"]  # single device and the parallel layouts to compare
batches: list = [1, 4]  # decode batch sizes (sequences decoded together)
context_tokens: int = 32  # prompt tokens prefilled before the timed decode
decode_tokens: int = 8  # decode steps timed per trial
prefill_lengths: list = [16, 128]  # prompt lengths of the prefill comparison (batch 1)
repeats: int = 5  # blocks of the layout comparison (every layout, batch and length once per block)
correctness_presets: list = [
    "tiny",
    "tiny-qwen2",
]  # small models whose sharded logits are checked: a preset (float32) or {"preset", "dtype"}
correctness_tokens: int = 16  # greedy tokens compared
correctness_scale: float = 10.0  # weights scaled up so that greedy decoding has clear logit margins
checkpoint: str = ""  # a model folder (config.json + safetensors) loaded split by mlx-lm's sharded_load
checkpoint_preset: dict = {
    "preset": "tiny-qwen2",
    "dtype": "float32",
}  # with no checkpoint: this preset is saved as one (weights x correctness_scale), then loaded
seed: int = 0  # seed of the random weights, prompts and block orders

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import env as envmod
from mlx_workbook.core import published, results
from mlx_workbook.investigations.distributed import analysis, findings, measure

# Parameters are checked before anything is launched: an unknown backend, preset, dtype or layout, uneven
# hosts or impossible sizes are one clear error now.
measure.validate(
    ranks=ranks,
    backend=backend,
    hosts=hosts,
    sizes_bytes=sizes_bytes,
    ops=coll_ops,
    dtypes=coll_dtypes,
    batches=batches,
    prefill_lengths=prefill_lengths,
    decode_tokens=decode_tokens,
    context_tokens=context_tokens,
    repeats=repeats,
    layouts=layouts,
    timeout_s=timeout_s,
)
measure.check_checkpoint(checkpoint, checkpoint_preset)  # a missing model folder: one error, nothing launched
environment = envmod.capture()
budget = measure.device_budget(environment, ranks_per_device=ranks if backend == "ring" and not hosts else 1)
plans = measure.plan_models(model_configs, ranks=ranks, layouts=layouts, budget=budget)
checks = measure.plan_models(
    measure.correctness_configs(correctness_presets),
    ranks=ranks,
    layouts=layouts,
    budget=budget,
)
not_here = measure.launcher.local_ranks(backend, ranks, hosts)  # why the ranks cannot run here, or None

run = results.start("06_distributed", globals(), method_version=measure.METHOD_VERSION)
measure.record_plan(run, plans, budget=budget, ranks=ranks)
display(pd.Series(run.environment.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## Setup: what runs where <a id="setup"></a>
# Weight bytes on the busiest rank for each layout (exact, from the lazy model before any weight exists):
# `single` holds the whole model; `tensor` splits the layers' projections over the ranks and keeps the
# embedding, head and norms whole (mlx-lm's `shard`); `pipeline` gives each rank a share of the layers. Rank 0
# holds every layout of a model at once (they are compared back to back), within the budget (the device's
# memory with headroom, shared by the ranks on one machine). A layout that does not fit is reported and not
# run: a model that fits only when split is the case that forces distribution.

# %%
display(measure.plan_table(plans))
if not_here:
    display(Markdown(f"**Skipped: {not_here}.** Nothing is launched; the findings say so."))

# %% [markdown]
# ## The ranks' work <a id="launch"></a>
# One launch (`mlx.launch`, one process per rank) runs every measurement below, in this order, so that the
# ranks import MLX and mlx-lm once; its journals are merged into the run when it ends (also when it fails).
#
# **Collectives.** Each trial aligns the ranks with a barrier, then queues `calls` calls of one collective back
# to back (as many as move about 64 MB, at most 16) and waits for them: seconds per call, from each rank's
# clock; a trial's time is its slowest rank's. Every block visits every size, and at each size every op and
# dtype in a shuffled order (the same on every rank). `send_recv` pairs ranks (0 sends to 1, 2 to 3, ...);
# it is probed first and skipped, with the reason, where send/recv have no kernel (then mlx-lm's pipeline,
# which sends activations, is skipped too). The decode sizes (hidden size x batch x dtype bytes: the message a
# tensor-parallel decode step all-sums) are measured on their own beside the sweep.
#
# **Correctness.** The same weights (one seed) on one device and split over the ranks: the last position's
# logits after a prompt, and greedy tokens, on small models whose weights are scaled up (x
# `correctness_scale`) so that the top-1 margins are clear. Split models sum partial products in another
# order, so logits may differ by the dtype's rounding, not more. How large that rounding is, is measured:
# below float32, rank 0 also runs the one-device model upcast to float32 (the same weights, cast in place,
# where the copy fits the budget beside the model; a quantized model has none) and records its own dtype
# error, max |logits - fp32 logits|, and the step where its greedy tokens leave fp32's. The split model
# matches when its difference from one device is at most twice that error (if it errs no more than one
# device does, |split - single| <= |split - fp32| + |single - fp32| <= 2 x the error); its greedy tokens are
# compared up to the step where one device's own tokens leave fp32's (beyond it, a different token is the
# dtype's, not the split's). float32 models keep a fixed bound (1e-4 of the largest logit).
#
# **Decode and prefill.** Per model, every layout that fits is built (mlx-lm's `shard` / `pipeline` on lazily
# built random weights, then materialized, so a rank only ever holds its part). Then blocks: each block runs
# the layouts in a shuffled order, each at every batch (prefill `context_tokens`, then `decode_tokens` greedy
# steps pipelined as mlx-lm does; time per token from rank 0's clock) and every prompt length (a prefill).
# `single` runs on rank 0 while the others wait. Block -1 warms up and is not recorded. The collectives of one
# decode step are counted while its graph is built (`mx.distributed`'s functions wrapped). A model may name its
# own `batches` and `repeats` (fewer where the default's intervals were already decisive).
#
# **Checkpoint.** The folder is loaded whole on rank 0 (`mlx_lm.load`), then split over every rank by
# mlx-lm's `sharded_load(path, tensor_group=group)`: it builds the model lazily, shards it, and materializes
# only this rank's part. Per rank: load seconds and MLX's memory after the load and at its peak. The split
# model's logits and greedy tokens are checked against the whole one's (rows of the correctness table,
# `loaded_by` sharded_load). Without a `checkpoint` folder, `checkpoint_preset` is saved as one first (config,
# safetensors, an offline tokenizer; removed after the launch), so this path always runs.

# %%
decode_sizes = measure.decode_message_bytes(plans, batches, coll_dtypes)
with measure.checkpoint_task(
    run,
    checkpoint,
    checkpoint_preset,
    scale=correctness_scale,
    seed=seed,
    prompt_tokens=16,
    tokens=correctness_tokens,
    save=not not_here,
    fp32_budget_bytes=budget,
) as load_task:
    launched = measure.run_ranks(
        run,
        "all",
        [
            dict(
                kind="collectives",
                sizes_bytes=sorted(set(sizes_bytes) | set(decode_sizes)),
                decode_sizes_bytes=decode_sizes,
                ops=coll_ops,
                dtypes=coll_dtypes,
                repeats=coll_repeats,
            ),
            dict(
                kind="correctness",
                models=[p.spec(seed) for p in checks],
                prompt_tokens=16,
                tokens=correctness_tokens,
                scale=correctness_scale,
                fp32_budget_bytes=budget,
            ),
            dict(
                kind="models",
                models=[p.spec(seed) for p in plans],
                batches=batches,
                context_tokens=context_tokens,
                decode_tokens=decode_tokens,
                prefill_lengths=prefill_lengths,
                repeats=repeats,
            ),
            load_task,
        ],
        ranks=ranks,
        backend=backend,
        hosts=hosts,
        timeout_s=timeout_s,
        seed=seed,
    )
df = run.measurements
measured = launched["ran"]
display(pd.Series(launched, name="launch").to_frame())

# %% [markdown]
# ## Collectives <a id="collectives"></a>
# Time per call and bus bandwidth per message size (geometric means, 95% t-intervals over the blocks), and the
# alpha-beta fit. Bus bandwidth follows NCCL's convention (bytes each rank moves over its link: all_sum
# 2(N-1)/N x message, all_gather (N-1) x message, send 1 x message), so it compares with the link's figure.

# %%
if measured:
    ctable = analysis.collective_table(df)
    on_nvlink = "H200" in environment.device and backend == "nccl"
    ceiling = published.figure_range(findings.NVLINK_CLAIM)[1] if on_nvlink else None
    fig = analysis.chart_collectives(ctable, ceiling, "NVLink 4, H200: 450 GB/s per direction (published)")
    run.save_figure(fig, "collectives")
    display(fig, analysis.alpha_beta(df).round(3), ctable.round(3))

# %% [markdown]
# ## Correctness <a id="correctness"></a>
# `tests/test_distributed.py` asserts the same on the stored data.

# %%
if measured:
    display(analysis.correctness_table(df))

# %% [markdown]
# ## Loading a checkpoint split: sharded_load <a id="checkpoint"></a>
# Seconds to load the checkpoint folder and MLX's memory per rank: `single` is `mlx_lm.load` on rank 0 (the
# whole model), `tensor` is `sharded_load` on every rank. A rank keeps only its shard (memory after the load);
# the peak shows what it held on the way (sharded_load builds the model lazily and shards it before any weight
# is read). Its logits and tokens are in the correctness table above (`loaded_by` sharded_load).

# %%
if measured:
    display(analysis.checkpoint_table(df).round(3))

# %% [markdown]
# ## Decode <a id="decode"></a>
# Left: ms per token per model, layout and batch (geometric means, 95% t-intervals over the blocks). Right:
# the speed-up over one device, single / parallel time per token paired within each block (> 1: faster).

# %%
if measured:
    dec, speed = analysis.decode_table(df), analysis.paired_speedup(df, "decode", "batch")
    fig = analysis.chart_decode(dec, speed)
    run.save_figure(fig, "decode")
    display(fig, dec.round(3), speed.round(3))

# %% [markdown]
# ## Communication per token <a id="communication"></a>
# The collectives one decode step calls (counted), times each one's measured cost at its message size (the
# decode sizes were measured exactly), against the measured time per token; beside it the ideal split (one
# device's time / devices) and how far above it the layout measured. Communication share = estimate / time.

# %%
if measured:
    display(analysis.step_collectives(df), analysis.communication_table(df).round(4))

# %% [markdown]
# ## Throughput against interactivity <a id="throughput"></a>
# Tokens/s per user (1 / time per token) against tokens/s per device (batch / time per token / devices), one
# line per model and layout through its batch sizes: up and to the right is better; which layout wins depends
# on where a service has to sit.

# %%
if measured:
    fig = analysis.chart_throughput(dec)
    run.save_figure(fig, "throughput")
    display(fig)

# %% [markdown]
# ## Prefill <a id="prefill"></a>
# Prompt processing at batch 1: compute-bound at long prompts, where splitting the matmuls helps most.

# %%
if measured:
    pre = analysis.prefill_table(df)
    fig = analysis.chart_prefill(pre)
    run.save_figure(fig, "prefill")
    display(fig, pre.round(3), analysis.paired_speedup(df, "prefill", "prompt_tokens").round(3))

# %% [markdown]
# ## Scaling over rank counts <a id="scaling"></a>
# Tokens/s per user against the number of devices, for every rank count in the data (this run: 1 and
# `ranks`; runs on 4 and 8 ranks add their points to the same table), and the largest all_sum's bus bandwidth
# against ranks.

# %%
if measured:
    fig = analysis.chart_scaling(analysis.scaling_table(df), analysis.collective_table(df))
    run.save_figure(fig, "scaling")
    display(fig, analysis.scaling_table(df).round(3))

# %% [markdown]
# ## Projection: Mac clusters <a id="projection"></a>
# A projection, not a measurement: each model's counted all_sums per token priced at published figures for
# RDMA over Thunderbolt 5 (data/published/007: latency "single digit microseconds", 3.5-3.8 GB/s send/recv
# between two Mac Studio M3 Ultra), set beside what this machine measured.
#
# ## Findings <a id="findings"></a>

# %%
for finding in findings.not_run(not_here) if not_here else findings.findings(run.measurements):
    run.add_finding(finding)
run.finish()
display(Markdown("\n".join(f"- **{f.id}** ({f.verdict}): {f.statement}" for f in run.findings)))

# %% [markdown]
# ## Closing note <a id="closing"></a>
# The crossover, the communication share per token, the collectives against the link's ceiling, and the
# model that only fits when split, quoted from the findings above.

# %%
display(Markdown(findings.closing_note(run.findings)))
