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
repeats: int = 10  # timed trials per configuration
warmup: int = 2  # untimed runs before the trials

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import results
from mlx_workbook.core.env import published_peaks
from mlx_workbook.core.results import Finding
from mlx_workbook.probes import kernels
from mlx_workbook.report import plots

run = results.start_run(
    "00_machine",
    {
        k: v
        for k, v in dict(globals()).items()
        if k
        in (
            "profile",
            "sizes_mb",
            "probes",
            "bandwidth_dtype",
            "traffic_mb",
            "matmul_sizes",
            "matmul_dtype",
            "repeats",
            "warmup",
        )
    },
    run_dir=run_dir,
)
env = run.environment
peaks = published_peaks(env.device)
display(pd.Series(env.as_dict() | {"run_id": run.run_id}, name="environment").to_frame())

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
df = run.measurements
bw = plots.summary_table(df[df.experiment == "bandwidth"], ["variant", "size_mb"])
ceilings = (
    {f"published peak {peaks['peak_bandwidth_gbs']} GB/s": peaks["peak_bandwidth_gbs"]} if peaks else None
)
fig = plots.lines_with_intervals(
    bw,
    x="size_mb",
    series="variant",
    logx=True,
    ceilings=ceilings,
    title=f"Memory bandwidth, {env.device} ({env.backend}, mlx {env.mlx})",
    xlabel="buffer size (MB)",
    ylabel="GB/s (median, 95% interval)",
)
run.save_figure(fig, "bandwidth")
display(fig, bw.round(2))

# %% [markdown]
# ## Matrix-multiply throughput <a id="matmul"></a>

# %%
kernels.matmul_sweep(run, sizes=matmul_sizes, repeats=repeats, warmup=warmup, dtype=matmul_dtype)
df = run.measurements
mm = plots.summary_table(df[df.experiment == "matmul"], ["size"])
peak_flops = peaks.get("peak_bf16_tflops") if peaks else None
fig = plots.lines_with_intervals(
    mm,
    x="size",
    series=None,
    logx=True,
    ceilings={f"published bf16 peak {peak_flops} TFLOP/s": peak_flops} if peak_flops else None,
    title=f"{matmul_dtype} matmul throughput, {env.device} ({env.backend})",
    xlabel="n (n×n @ n×n)",
    ylabel="TFLOP/s (median, 95% interval)",
)
run.save_figure(fig, "matmul")
display(fig, mm.round(4))

# %% [markdown]
# ## Findings <a id="findings"></a>

# %%
best_probe, ceiling = kernels.bandwidth_ceiling(df)
largest = df[df.experiment == "bandwidth"].size_mb.max()
unit = {"unit": "GB/s"}
published = (
    {
        "value": peaks["peak_bandwidth_gbs"],
        "unit": "GB/s",
        "hardware": peaks["name"],
        "source": peaks["source"],
    }
    if peaks
    else None
)
share = (
    f", {ceiling.median / peaks['peak_bandwidth_gbs']:.0%} of the published {peaks['peak_bandwidth_gbs']} GB/s"
    if peaks
    else " (no published peak known for this device)"
)
run.add_finding(
    Finding(
        id="measured_bandwidth_gbs",
        headline=True,
        section="bandwidth",
        published=published,
        measured={
            "value": ceiling.median,
            "low": ceiling.low,
            "high": ceiling.high,
            "probe": best_probe,
            **unit,
        },
        statement=f"Memory ceiling ({best_probe} probe, {largest:g} MB buffer): {ceiling.median:.1f} GB/s "
        f"[{ceiling.low:.1f}, {ceiling.high:.1f}]{share}.",
    )
)
for probe in probes:
    s = kernels.bandwidth_at_largest(df, probe)
    run.add_finding(
        Finding(
            id=f"measured_{probe}_gbs",
            section="bandwidth",
            measured={"value": s.median, "low": s.low, "high": s.high, **unit},
            statement=f"{probe.capitalize()} bandwidth at {largest:g} MB: {s.median:.1f} GB/s "
            f"[{s.low:.1f}, {s.high:.1f}], cv {s.cv:.1%}.",
        )
    )
n_best, flops = kernels.matmul_ceiling(df)
share = f", {flops.median / peak_flops:.0%} of the published {peak_flops} TFLOP/s" if peak_flops else ""
run.add_finding(
    Finding(
        id="measured_matmul_tflops",
        section="matmul",
        measured={"value": flops.median, "low": flops.low, "high": flops.high, "unit": "TFLOP/s"},
        published={"value": peak_flops, "unit": "TFLOP/s", "hardware": peaks["name"]} if peak_flops else None,
        statement=f"Best {matmul_dtype} matmul: {flops.median:.3g} TFLOP/s [{flops.low:.3g}, {flops.high:.3g}] "
        f"at n={n_best}{share}.",
    )
)
run.finish()
display(Markdown("\n".join(f"- {f.statement}" for f in run.findings)))
