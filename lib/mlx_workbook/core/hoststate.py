"""Host state: how fast the host CPU runs right now, and whether a run's host was stable.

The GPU machine's host changes speed in stretches of seconds (a fixed Python loop took 17 to 33 ms there), and
small models on MLX CUDA are host-bound, so they follow it. Each block of a comparison therefore records a short
fixed pure-Python probe and the process CPU time; a run summarizes the probe's spread and warns, as pyperf does,
when it was unstable.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlx_workbook.core import intervals

PROBE_ITERATIONS = 20_000  # fixed, never calibrated: ~1-2 ms of pure Python on a current x86 or Apple core
PROBE_METRIC = "host_probe_ms"
CPU_METRIC = "block_cpu_s"
WALL_METRIC = "block_wall_s"
UNSTABLE_CV = 0.10  # pyperf warns from a 10% std/mean
UNSTABLE_MAX_OVER_MIN = 1.5


def probe_ms(iterations: int = PROBE_ITERATIONS) -> float:
    """Milliseconds one fixed pure-Python loop takes: the host's current speed (lower is faster)."""
    tic = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i * i % 7
    elapsed = time.perf_counter() - tic
    return 1e3 * elapsed if total >= 0 else float("nan")  # `total` used so the loop is never skipped


def cpu_seconds() -> float:
    """CPU time of this process (user + system), to set against the wall time of a block."""
    return time.process_time()


@dataclass(frozen=True)
class Stability:
    n: int
    median_ms: float
    cv: float  # std / mean of the probe
    max_over_min: float
    unstable: bool
    warning: str  # empty when stable

    def as_dict(self) -> dict:
        return asdict(self)


def stability(probe_values) -> Stability:
    """The spread of a run's host-speed probes, with a pyperf-like warning when it was unstable."""
    arr = np.asarray(list(probe_values), float)
    arr = arr[np.isfinite(arr) & (arr > 0)]
    if arr.size < 2:
        return Stability(
            int(arr.size), float(np.median(arr)) if arr.size else float("nan"), 0.0, 1.0, False, ""
        )
    cv = float(arr.std(ddof=1) / arr.mean())
    spread = float(arr.max() / arr.min())
    unstable = cv > UNSTABLE_CV or spread > UNSTABLE_MAX_OVER_MIN
    warning = (
        f"WARNING: the host was unstable during this run: its speed probe varied by CV {cv:.0%} and "
        f"{spread:.2f}x max/min over {arr.size} blocks (limits {UNSTABLE_CV:.0%}, {UNSTABLE_MAX_OVER_MIN}x); "
        "absolute figures describe this run's host state; paired ratios within blocks are less affected."
        if unstable
        else ""
    )
    return Stability(int(arr.size), float(np.median(arr)), cv, spread, unstable, warning)


def probe_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The host-probe rows of a run's measurements (any experiment)."""
    if df.empty or "metric" not in df.columns:
        return df.iloc[0:0]
    return df[df.metric == PROBE_METRIC]


def run_stability(df: pd.DataFrame) -> Stability:
    """Stability of a whole run from its stored rows."""
    return stability(probe_rows(df).value)


def describe(s: Stability) -> str:
    if s.n < 2:
        return "Host speed: too few probes to judge the host's stability."
    text = (
        f"Host speed probe: median {s.median_ms:.2f} ms over {s.n} blocks, CV {s.cv:.1%}, max/min "
        f"{s.max_over_min:.2f}x."
    )
    return f"{text} {s.warning}" if s.warning else f"{text} Stable (CV <= {UNSTABLE_CV:.0%})."


def report(run) -> Stability:
    """The run-level summary: the spread of host speed over the run's blocks, stored as a finding (with the
    warning when the run was unstable) so summary.json and the findings page carry it."""
    from mlx_workbook.core.results import Finding

    probes = probe_rows(run.measurements).value
    s = stability(probes)
    if s.n >= 2:
        cv = intervals.cv_interval(probes[probes > 0])
        run.add_finding(
            Finding(
                id="host_stability",
                statement=describe(s),
                measured={
                    "value": 100 * cv.value,
                    "low": 100 * cv.low,
                    "high": 100 * cv.high,
                    "unit": "% CV of the host probe",
                    "method": cv.method,
                    **s.as_dict(),
                },
            )
        )
    return s
