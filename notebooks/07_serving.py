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
# # 07 · Serving over HTTP: mlx_lm.server under load, measured by a real client
#
# Seed `004` ran its own server (FastAPI + IPC) and put a number on it: 13-20% slower than "direct MLX" for
# 50-token requests, 1-6% for 200, ~3-7 ms per request; it listed batching ("requires architecture changes")
# and prompt caching ("reduces time-to-first-token") as optimizations for later. Users who serve a model ask the
# next question: how many concurrent users does one device hold?
#
# This notebook serves a shape-faithful random-weights checkpoint with mlx-lm's own OpenAI-compatible server
# (`mlx_lm.server`, started here as a subprocess) and measures it with an asynchronous streaming HTTP client
# (httpx): the overhead against the same model in process, closed-loop load at fixed concurrency, open-loop load
# at Poisson arrivals, prompt reuse, and bad input. Metrics follow vLLM's serving benchmark (TTFT, TPOT, ITL,
# E2EL, goodput; definitions and sources in `data/published/vllm_serving_metrics.yaml`).

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
preset: str = "tiny"  # served model (models/presets.yaml), at random weights
bits: int = 0  # its weight width; 0 means unquantized (dtype)
dtype: str = "float32"  # unquantized weight type
group_size: int = 64  # quantization group size
checkpoint_dir: str = (
    ""  # where the checkpoint folder is written; empty: a temporary folder, removed at the end
)
prompt_tokens: int = 32  # prompt length of every load request (random token ids)
gen_tokens: int = 64  # output tokens of every load request (max_tokens, EOS blocked by a logit bias)
overhead_lengths: list = [50, 100, 200]  # output tokens of the overhead comparison (the write-up's sizes)
overhead_blocks: int = 5  # blocks of the overhead comparison: each variant once per block, in random order
concurrencies: list = [1, 2, 4, 8, 16, 32]  # closed-loop users
requests_per_user: int = 2  # requests per user per round at each concurrency
rounds: int = 3  # rounds of the closed-loop sweep (concurrencies shuffled per round)
rate_fractions: list = [
    0.25,
    0.5,
    1.0,
    1.5,
]  # open-loop rates, as fractions of the closed-loop capacity (req/s)
open_loop_requests: int = 32  # requests per open-loop rate
batch_curve_source: str = "auto"  # auto: 04_bandwidth's batch rows for this model and device if any; measure
inproc_repeats: int = 3  # trials per batch size of the in-process curve (when measured here)
prefix_tokens: int = 1024  # shared prompt prefix of the prompt-reuse experiment
suffix_tokens: int = 32  # new tokens after it
reuse_gen_tokens: int = 2  # output tokens of those requests (TTFT is what counts)
reuse_repeats: int = 5  # pairs (no shared prefix, shared prefix)
slo_ttft_ms: float = 500.0  # latency target: time to first token
slo_tpot_ms: float = 50.0  # latency target: time per output token
slo_percentile: int = 90  # the percentile that must meet the target
request_timeout_s: float = 120.0  # deadline of every HTTP request
startup_timeout_s: float = 300.0  # deadline for the server to answer /health

# %%
import shutil

import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import results
from mlx_workbook.investigations.serving import analysis, findings, measure
from mlx_workbook.investigations.serving.server import Server
from mlx_workbook.report import text

# Parameters are checked before any model is built or server started.
measure.validate(
    preset=preset,
    bits=bits,
    dtype=dtype,
    group_size=group_size,
    prompt_tokens=prompt_tokens,
    gen_tokens=gen_tokens,
    overhead_lengths=overhead_lengths,
    concurrencies=concurrencies,
    rate_fractions=rate_fractions,
    prefix_tokens=prefix_tokens,
    suffix_tokens=suffix_tokens,
    request_timeout_s=request_timeout_s,
    counts=dict(
        overhead_blocks=overhead_blocks,
        requests_per_user=requests_per_user,
        rounds=rounds,
        open_loop_requests=open_loop_requests,
        inproc_repeats=inproc_repeats,
        reuse_repeats=reuse_repeats,
        reuse_gen_tokens=reuse_gen_tokens,
    ),
)
if batch_curve_source not in ("auto", "measure"):
    raise ValueError(f"batch_curve_source must be 'auto' or 'measure', got {batch_curve_source!r}")

run = results.start("07_serving", globals())
env = run.environment
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## The server <a id="server"></a>
# The preset is built at random weights and saved as a real checkpoint folder (safetensors, config.json and an
# offline word-level tokenizer whose token `t<i>` is id `i`, so a prompt of n words is exactly n tokens). The
# notebook loads that folder back for its in-process baseline (the same weights on both sides) and starts
# `python -m mlx_lm server --model <folder> --port <free port>`, waiting for `/health` and a first one-token
# completion (the server answers `/health` before its model has loaded). Its whole output goes to `server.log`
# in the run folder. The server is stopped at the end of the notebook; if a cell fails first, the kernel's exit
# stops it (atexit, and on Linux the server also dies with its parent).

# %%
folder = measure.checkpoint_folder(checkpoint_dir)
loaded = measure.prepare(preset, bits, dtype, group_size, folder)
srv = Server(
    folder,
    startup_timeout_s=startup_timeout_s,
    probe_prompt=measure.probe_prompt(loaded),
    log_path=run.run_dir / "server.log",
).start()
measure.record_server(run, srv, loaded)
prompts = measure.Prompts(loaded.vocab_size)
display(
    Markdown(
        f"**{loaded.label}** served at `{srv.url}` (pid {srv.proc.pid}), up in {srv.startup_s:.1f} s: "
        f"`{' '.join(srv.command[1:])}`."
    ),
    analysis.definitions()[["metric", "unit", "definition"]],
)

# %% [markdown]
# ## Server overhead at one user <a id="overhead"></a>
# The same prompt and number of tokens three ways: mlx-lm's `generate_step` in this process (what the write-up
# calls direct MLX), mlx-lm's `BatchGenerator` at batch 1 in this process (the engine inside mlx_lm.server), and
# the server over HTTP with one streaming user. Each block runs all three on one fresh prompt, in random order;
# the overhead is paired within blocks. EOS is blocked on every path (the server has no `ignore_eos`; a logit bias
# of -1e9 does it), so every request makes exactly its token count; the stored digests show whether all three
# paths produced the same tokens.

# %%
measure.overhead(
    run,
    srv,
    loaded,
    prompts,
    lengths=overhead_lengths,
    prompt_tokens=prompt_tokens,
    blocks=overhead_blocks,
    timeout_s=request_timeout_s,
)
df = run.measurements
where = text.where(df)
fig = analysis.overhead_chart(df, where)
run.save_figure(fig, "overhead")
display(
    fig,
    analysis.overhead_table(df).round(3),
    analysis.overhead_summary(df, measure.OVERHEAD_VARIANTS[0], measure.OVERHEAD_VARIANTS[2]).round(3),
)

# %% [markdown]
# ## Concurrency: closed loop <a id="concurrency"></a>
# `concurrency` users each send their next request as soon as their last one finished, `requests_per_user`
# requests each, every request with its own fresh prompt (no prompt-cache hits). An untimed wave of short
# requests precedes each level. Rounds repeat the sweep with the levels shuffled, so drift spreads over all of
# them; throughput intervals are over rounds, percentile intervals over the pooled requests.
#
# mlx-lm 0.32's server runs a `BatchGenerator` (up to `--decode-concurrency` 32 sequences, 8 prompts prefilled
# together) and admits new requests into the running batch. Whether it does here is read from the data: how many
# requests were decoding at the same time, and whether requests got their first token while others were
# mid-stream.

# %%
measure.closed_loop_sweep(
    run,
    srv,
    loaded,
    prompts,
    concurrencies=concurrencies,
    prompt_tokens=prompt_tokens,
    gen_tokens=gen_tokens,
    requests_per_user=requests_per_user,
    rounds=rounds,
    timeout_s=request_timeout_s,
)
df = run.measurements
load = analysis.load_table(df, "closed_loop", "concurrency", slo_ttft_ms, slo_tpot_ms)
summary = analysis.load_summary(load, "concurrency")
pct = analysis.percentiles(df, "closed_loop", ["concurrency"])
for metric, target in [("ttft_ms", slo_ttft_ms), ("tpot_ms", slo_tpot_ms)]:
    fig = analysis.latency_chart(pct, metric, target, where, loaded.label)
    run.save_figure(fig, f"closed_loop_{metric}")
    display(fig)
display(
    summary.pivot_table(index="concurrency", columns="metric", values="median").round(3),
    pct.pivot_table(index=["concurrency", "metric"], columns="p", values="value").round(2),
)

# %% [markdown]
# ## In-process batch curve <a id="batch"></a>
# The ceiling the server is set against: mlx-lm's `BatchGenerator` in this process at the same batch sizes.
# With `batch_curve_source: auto` the rows come from `04_bandwidth`'s latest finished run on this device when it
# batched the same model (same preset, width and dtype); otherwise they are measured here (steady decode:
# generated tokens after the first over the time from the first to the last).

# %%
if batch_curve_source == "measure" or not measure.batch_curve_from_04(run, loaded, env.device):
    measure.batch_curve(
        run,
        loaded,
        prompts,
        batch_sizes=concurrencies,
        prompt_tokens=prompt_tokens,
        gen_tokens=gen_tokens,
        repeats=inproc_repeats,
    )
df = run.measurements
display(
    Markdown(f"In-process curve: {df[df.experiment == 'inproc_batch'].source.iloc[0]}."),
    analysis.inproc_table(df).round(2),
)
fig = analysis.throughput_chart(summary, df, where, loaded.label)
run.save_figure(fig, "throughput")
display(fig)

# %% [markdown]
# ## Throughput against interactivity <a id="frontier"></a>
# The trade-off public inference benchmarks (InferenceX, for one) draw: output tokens/s per device against
# tokens/s per user (1 / TPOT), one point per concurrency, with the in-process batch curve beside it. Up and to
# the right is better; each extra user buys device throughput at the price of every user's speed.

# %%
points = analysis.frontier_points(summary, df)
fig = analysis.frontier_chart(points, where, loaded.label)
run.save_figure(fig, "frontier")
display(fig, points.round(2))

# %% [markdown]
# ## Open loop: Poisson arrivals <a id="open-loop"></a>
# Requests arrive at fixed average rates with exponential gaps, whether or not earlier ones finished (as vLLM's
# `--request-rate` sends them), at fractions of the closed-loop capacity (its best request throughput). Past
# capacity the queue grows and TTFT with it.

# %%
capacity = analysis.capacity_rps(run.measurements, slo_ttft_ms, slo_tpot_ms)
measure.open_loop_sweep(
    run,
    srv,
    loaded,
    prompts,
    capacity_rps=capacity,
    rate_fractions=rate_fractions,
    requests=open_loop_requests,
    prompt_tokens=prompt_tokens,
    gen_tokens=gen_tokens,
    timeout_s=request_timeout_s,
)
df = run.measurements
open_table = analysis.load_table(df, "open_loop", "rate_fraction", slo_ttft_ms, slo_tpot_ms)
open_pct = analysis.percentiles(df, "open_loop", ["rate_fraction"])
fig = analysis.open_loop_chart(open_pct, open_table, where, loaded.label)
run.save_figure(fig, "open_loop")
display(Markdown(f"Closed-loop capacity: {capacity:.3g} req/s."), fig, open_table.round(3))

# %% [markdown]
# ## Prompt reuse <a id="prompt-reuse"></a>
# mlx_lm.server keeps the KV caches of recent requests (an LRU prompt cache) and reuses the longest matching
# prefix. Each pair sends a fresh `prefix_tokens` prefix with one suffix (nothing cached), then the same prefix
# with another suffix right after; the server's `cached_tokens` in the usage report shows the hit.

# %%
measure.prompt_reuse(
    run,
    srv,
    loaded,
    prompts,
    prefix_tokens=prefix_tokens,
    suffix_tokens=suffix_tokens,
    gen_tokens=reuse_gen_tokens,
    repeats=reuse_repeats,
    timeout_s=request_timeout_s,
)
fig = analysis.reuse_chart(run.measurements, where)
if fig is None:  # the server broke during the experiment: what it said, then the server was started again
    display(run.measurements.query("experiment == 'server_failures'")[["section", "error", "server_error"]])
else:
    run.save_figure(fig, "prompt_reuse")
    display(fig, analysis.reuse_table(run.measurements).round(2))

# %% [markdown]
# ## Bad input and faults <a id="faults"></a>
# Malformed JSON, an invalid parameter, a prompt longer than the model's context window, a client that hangs up
# after two streamed tokens of a long request, a burst of as many new connections as the largest concurrency at
# once (mlx_lm.server runs Python's `ThreadingHTTPServer`, whose listen backlog is 5), and last a request after
# the server was killed (SIGKILL). Each case has the request deadline; after each one a normal request checks
# that the server still serves.

# %%
measure.faults(
    run,
    srv,
    loaded,
    prompts,
    prompt_tokens=prompt_tokens,
    gen_tokens=gen_tokens,
    timeout_s=request_timeout_s,
    burst=max(concurrencies),
)
srv.stop()
if not checkpoint_dir:
    shutil.rmtree(folder.parent, ignore_errors=True)  # now rather than at exit
display(analysis.faults_table(run.measurements))

# %% [markdown]
# ## Findings <a id="findings"></a>
# Seed 004's server claims with verdicts computed from the data above (overhead per request length and per
# request, batching, prompt caching), and what the sweeps showed. The closing note quotes the overhead, the
# throughput curve and the concurrency at which the latency target breaks.

# %%
found = findings.findings(run.measurements, run.params)
for finding in found:
    run.add_finding(finding)
run.finish()
display(
    pd.DataFrame([{"id": f.id, "verdict": f.verdict, "statement": f.statement} for f in run.findings]),
    Markdown(findings.closing_note(found)),
)
