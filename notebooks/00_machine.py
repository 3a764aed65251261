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
# # 00 · What machine is this?
#
# Every later notebook compares decode speed with a ceiling: how many bytes per second this device can
# actually move, and how many matrix flops it can actually do. This notebook measures both with MLX on the
# machine at hand (memory bandwidth for read, write and copy over several buffer sizes; matrix-multiply
# throughput over several sizes) and sets them against the vendor's published peak where the library knows
# the device.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
sizes_mb: list = [1, 16, 64, 256]  # bandwidth probe buffer sizes, MB (the largest should exceed every cache)
probes: list = [
    "read",
    "write",
    "copy",
    "gemv",
]  # bandwidth probes: read (sum), write (fill), copy (x + 1), gemv (matrix @ vector)
bandwidth_dtype: str = "float32"  # element type of the bandwidth buffers
traffic_mb: float = (
    512  # least traffic per bandwidth trial in MB (small buffers repeat calls until they reach it)
)
matmul_sizes: list = [256, 512, 1024]  # square matrix sizes for the throughput probe
matmul_dtype: str = "bfloat16"  # matmul element type (bfloat16 is what LLM weights use)
matmul_flops: float = 8.6e9  # least flops per matmul trial, ~2^33 (small sizes repeat calls)
repeats: int = 10  # timed trials per configuration
warmup: int = 2  # untimed runs before the trials

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import env, results
from mlx_workbook.investigations.machine import analysis, findings
from mlx_workbook.probes import kernels

run = results.start("00_machine", globals())
peaks = env.published_peaks(run.environment.device)
display(pd.Series(run.environment.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

# %% [markdown]
# ## Memory bandwidth <a id="bandwidth"></a>
# Bytes counted are the fewest each probe must move: a read of the buffer, a write of it, one read plus
# one write for the copy, and one read of the matrix for `gemv` (a matrix-vector product, which is what decoding
# does with every weight matrix). Small buffers can sit in a cache and read faster than memory, so the ceiling later
# notebooks use is the best probe's rate at the largest buffer (on some backends the read probe, a reduction,
# is compute-bound and a copy moves bytes faster).

# %%
kernels.bandwidth_sweep(
    run,
    sizes_mb=sizes_mb,
    probes=probes,
    repeats=repeats,
    warmup=warmup,
    dtype=bandwidth_dtype,
    traffic_mb=traffic_mb,
)
table = analysis.bandwidth_table(run.measurements)
fig = analysis.bandwidth_chart(table, run.environment, peaks)
run.save_figure(fig, "bandwidth")
display(fig, table.round(2))

# %% [markdown]
# ## Matrix-multiply throughput <a id="matmul"></a>

# %%
kernels.matmul_sweep(
    run, sizes=matmul_sizes, repeats=repeats, warmup=warmup, dtype=matmul_dtype, flops_per_trial=matmul_flops
)
table = analysis.matmul_table(run.measurements)
fig = analysis.matmul_chart(table, run.environment, peaks, matmul_dtype)
run.save_figure(fig, "matmul")
display(fig, table.round(4))

# %% [markdown]
# ## Findings <a id="findings"></a>

# %%
for finding in findings.findings(run.measurements, peaks, matmul_dtype):
    run.add_finding(finding)
run.finish()
display(Markdown("\n".join(f"- {f.statement}" for f in run.findings)))
