"""00_machine's findings: the memory ceiling later notebooks use, each probe's bandwidth, the best matmul.

Each is measured on this machine; the vendor's published peak, where the library knows the device, stands
beside it (as a share), never in it.
"""

from __future__ import annotations

import pandas as pd

from mlx_workbook.core.results import Finding
from mlx_workbook.probes import kernels


def _measured(stats, unit: str, **extra) -> dict:
    return {"value": stats.median, "low": stats.low, "high": stats.high, "unit": unit, **extra}


def _share(value: float, peak: float | None, unit: str, missing: str = "") -> str:
    return f", {value / peak:.0%} of the published {peak} {unit}" if peak else missing


def findings(df: pd.DataFrame, peaks: dict | None, matmul_dtype: str) -> list[Finding]:
    """The bandwidth ceiling (headline; 04_bandwidth reads it by id), one finding per probe, the best matmul."""
    peaks = peaks or {}
    peak_gbs, peak_flops = peaks.get("peak_bandwidth_gbs"), peaks.get("peak_bf16_tflops")
    best_probe, ceiling = kernels.bandwidth_ceiling(df)
    bandwidth = df[df.experiment == "bandwidth"]
    largest = bandwidth.size_mb.max()
    out = [
        Finding(
            id="measured_bandwidth_gbs",
            headline=True,
            section="bandwidth",
            published=(
                {"value": peak_gbs, "unit": "GB/s", "hardware": peaks["name"], "source": peaks["source"]}
                if peak_gbs
                else None
            ),
            measured=_measured(ceiling, "GB/s", probe=best_probe),
            statement=f"Memory ceiling ({best_probe} probe, {largest:g} MB buffer): {ceiling.median:.1f} GB/s "
            f"[{ceiling.low:.1f}, {ceiling.high:.1f}]"
            + _share(ceiling.median, peak_gbs, "GB/s", " (no published peak known for this device)")
            + ".",
        )
    ]
    for probe in bandwidth.variant.unique():
        s = kernels.bandwidth_at_largest(df, probe)
        out.append(
            Finding(
                id=f"measured_{probe}_gbs",
                section="bandwidth",
                measured=_measured(s, "GB/s"),
                statement=f"{probe.capitalize()} bandwidth at {largest:g} MB: {s.median:.1f} GB/s "
                f"[{s.low:.1f}, {s.high:.1f}], cv {s.cv:.1%}.",
            )
        )
    n_best, flops = kernels.matmul_ceiling(df)
    out.append(
        Finding(
            id="measured_matmul_tflops",
            section="matmul",
            measured=_measured(flops, "TFLOP/s"),
            published=(
                {"value": peak_flops, "unit": "TFLOP/s", "hardware": peaks["name"]} if peak_flops else None
            ),
            statement=f"Best {matmul_dtype} matmul: {flops.median:.3g} TFLOP/s [{flops.low:.3g}, {flops.high:.3g}] "
            f"at n={n_best}" + _share(flops.median, peak_flops, "TFLOP/s") + ".",
        )
    )
    return out
