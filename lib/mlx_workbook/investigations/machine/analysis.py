"""00_machine's tables and charts: bandwidth per probe and buffer size, matmul throughput per size."""

from __future__ import annotations

import pandas as pd

from mlx_workbook.core.env import Environment
from mlx_workbook.report import plots


def bandwidth_table(df: pd.DataFrame) -> pd.DataFrame:
    return plots.summary_table(df[df.experiment == "bandwidth"], ["variant", "size_mb"])


def bandwidth_chart(table: pd.DataFrame, env: Environment, peaks: dict | None):
    """GB/s against buffer size, one line per probe, the published peak dashed where the device is known."""
    peak = (peaks or {}).get("peak_bandwidth_gbs")
    return plots.lines_with_intervals(
        table,
        x="size_mb",
        series="variant",
        logx=True,
        ceilings={f"published peak {peak} GB/s": peak} if peak else None,
        title=f"Memory bandwidth, {env.device} ({env.backend}, mlx {env.mlx})",
        xlabel="buffer size (MB)",
        ylabel="GB/s (median, 95% interval)",
    )


def matmul_table(df: pd.DataFrame) -> pd.DataFrame:
    return plots.summary_table(df[df.experiment == "matmul"], ["size"])


def matmul_chart(table: pd.DataFrame, env: Environment, peaks: dict | None, dtype: str):
    """TFLOP/s against matrix size, the published bf16 peak dashed where the device is known."""
    peak = (peaks or {}).get("peak_bf16_tflops")
    return plots.lines_with_intervals(
        table,
        x="size",
        series=None,
        logx=True,
        ceilings={f"published bf16 peak {peak} TFLOP/s": peak} if peak else None,
        title=f"{dtype} matmul throughput, {env.device} ({env.backend})",
        xlabel="n (n×n @ n×n)",
        ylabel="TFLOP/s (median, 95% interval)",
    )
