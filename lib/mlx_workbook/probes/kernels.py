"""Micro-benchmarks: memory bandwidth probes (read, write, copy) and matrix-multiply throughput.

Each probe is a function that does the work plus the bytes or flops it must move or do at the least;
`measure.trials` times it with evaluation forced, and the rate is work / seconds per trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx

from mlx_workbook import REPORTS_DIR
from mlx_workbook.core import env as envmod
from mlx_workbook.core import measure, results
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Run

MB = 1 << 20


@dataclass(frozen=True)
class Probe:
    name: str
    fn: Callable[[], mx.array]
    work: float  # bytes moved (bandwidth probes) or floating-point operations (matmul)
    unit: str  # unit of work / seconds after scaling: "GB/s" or "TFLOP/s"
    scale: float  # work / seconds / scale = reported rate


GEMV_COLS = 4096  # a hidden size of 7-8B models


def bandwidth_probe(kind: str, size_mb: float, dtype=mx.float32) -> Probe:
    """read: a sum over the buffer; write: fill a buffer; copy: y = x + 1 (one read, one write);
    gemv: matrix @ vector, what decoding does to every weight matrix (reads the matrix once).

    Buffers are (rows, 4096) matrices: a flat buffer of 4 GB in bf16 would pass MLX's int32 dimension limit.
    """
    n_rows = max(1, int(size_mb * MB) // (dtype.size * GEMV_COLS))
    x = mx.random.uniform(shape=(n_rows, GEMV_COLS)).astype(dtype)
    mx.eval(x)
    nbytes = x.nbytes
    if kind == "read":
        return Probe("read", lambda: mx.sum(x), nbytes, "GB/s", 1e9)
    if kind == "write":
        return Probe("write", lambda: mx.full(x.shape, 1.0, dtype=dtype), nbytes, "GB/s", 1e9)
    if kind == "copy":
        return Probe("copy", lambda: x + 1, 2 * nbytes, "GB/s", 1e9)
    if kind == "gemv":
        v = mx.random.uniform(shape=(GEMV_COLS,)).astype(dtype)
        mx.eval(v)
        return Probe("gemv", lambda: x @ v, nbytes, "GB/s", 1e9)
    raise ValueError(f"unknown bandwidth probe {kind!r}; use read, write, copy or gemv")


def matmul_probe(n: int, dtype=mx.bfloat16) -> Probe:
    a = mx.random.normal((n, n)).astype(dtype)
    b = mx.random.normal((n, n)).astype(dtype)
    mx.eval(a, b)
    return Probe("matmul", lambda: a @ b, 2.0 * n**3, "TFLOP/s", 1e12)


def run_probe(
    run: Run, experiment: str, probe: Probe, *, repeats: int, warmup: int = 2, calls: int = 1, **fields
) -> list[float]:
    """Time `calls` back-to-back calls per trial; record the rate of each trial as it finishes."""
    metric = probe.unit.replace("/", "_per_").lower()

    def store(i: int, seconds: float) -> None:
        run.record(
            experiment,
            metric=metric,
            value=probe.work / seconds / probe.scale,
            unit=probe.unit,
            trial=i,
            variant=probe.name,
            seconds=seconds,
            **fields,
        )

    per_call = measure.time_per_call(probe.fn, calls=calls, repeats=repeats, warmup=warmup, on_trial=store)
    return [probe.work / s / probe.scale for s in per_call]


def calls_for(size_mb: float, target_mb: float = 2048, least: int = 4) -> int:
    """Enough calls per trial for a readable clock (about target_mb of traffic), and never fewer than `least`."""
    return max(least, int(target_mb // max(size_mb, 1e-3)))


def bandwidth_sweep(
    run: Run,
    *,
    sizes_mb: list[float],
    probes: list[str],
    repeats: int,
    warmup: int = 2,
    dtype: str = "float32",
    traffic_mb: float = 2048,
) -> None:
    for size in sizes_mb:
        for kind in probes:
            probe = bandwidth_probe(kind, size, getattr(mx, dtype))
            run_probe(
                run,
                "bandwidth",
                probe,
                repeats=repeats,
                warmup=warmup,
                calls=calls_for(size, traffic_mb),
                size_mb=float(size),
                dtype=dtype,
            )
            del probe
            mx.clear_cache()


def matmul_sweep(
    run: Run,
    *,
    sizes: list[int],
    repeats: int,
    warmup: int = 2,
    dtype: str = "bfloat16",
    flops_per_trial: float = 2**33,
) -> None:
    """Matmul throughput per size. Small products finish in microseconds, so a trial batches enough calls for
    `flops_per_trial` (at most 256 calls): ~2^33 dwarfs a GPU's sync; a slow CPU needs far less."""
    if flops_per_trial <= 0:
        raise ValueError(f"flops_per_trial must be positive, got {flops_per_trial}")
    for n in sizes:
        probe = matmul_probe(int(n), getattr(mx, dtype))
        calls = min(256, max(1, int(flops_per_trial // probe.work)))
        run_probe(run, "matmul", probe, repeats=repeats, warmup=warmup, calls=calls, size=int(n), dtype=dtype)
        mx.clear_cache()


def bandwidth_at_largest(df, probe: str) -> measure.Stats:
    """One probe's bandwidth at the largest buffer (smaller buffers may sit in a cache)."""
    sel = rows(df, "bandwidth", variant=probe)
    if sel.empty:
        raise ValueError(f"no {probe} bandwidth measurements")
    return measure.summarize(sel[sel.size_mb == sel.size_mb.max()].value)


def bandwidth_ceiling(df) -> tuple[str, measure.Stats]:
    """The measured memory ceiling: the best probe's median at the largest buffer, and which probe it was.

    Read is what decoding does, but on some backends the read probe (a reduction) is compute-bound and a copy
    moves bytes faster, so the ceiling is the best sustained rate seen, not one probe's.
    """
    probes = rows(df, "bandwidth").variant.unique()
    stats = {p: bandwidth_at_largest(df, p) for p in probes}
    best = max(stats, key=lambda p: stats[p].median)
    return best, stats[best]


def matmul_ceiling(df) -> tuple[int, measure.Stats]:
    """The best matmul throughput over sizes (median per size, then the size with the highest median)."""
    sel = rows(df, "matmul")
    best = sel.groupby("size").value.median().idxmax()
    return int(best), measure.summarize(sel[sel["size"] == best].value)


# --- the bandwidth ceiling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    gbs: float
    low: float
    high: float
    source: str  # where the number comes from, in words
    published_gbs: float | None = None  # the vendor's peak, a second ceiling
    published_name: str | None = None

    def describe(self) -> str:
        """e.g. '2800.0 GB/s [2790.0, 2810.0] from 00_machine run ...; published peak of the ...: 4800 GB/s'."""
        peak = (
            f"; published peak of the {self.published_name}: {self.published_gbs:g} GB/s"
            if self.published_gbs
            else "; no published peak known for this device"
        )
        return f"{self.gbs:.1f} GB/s [{self.low:.1f}, {self.high:.1f}] from {self.source}{peak}"


def measured_bandwidth(
    run: results.Run,
    *,
    mode: str = "auto",
    roots: list[Path] | None = None,
    sizes_mb: list[float] = (64, 256),
    probes: list[str] = ("read", "copy", "gemv"),
    repeats: int = 5,
) -> Ceiling:
    """00_machine's latest ok run on this device (mode 'auto'), else a quick probe now (recorded in `run`).

    Looked for under `roots`; by default the reports folder this run writes into, then the workbook's.
    """
    if mode not in ("auto", "measure"):
        raise ValueError(f"bandwidth_source must be 'auto' or 'measure', got {mode!r}")
    peaks = envmod.published_peaks(run.environment.device) or {}
    extra = {"published_gbs": peaks.get("peak_bandwidth_gbs"), "published_name": peaks.get("name")}
    roots = roots or list(dict.fromkeys([Path(run.run_dir).resolve().parents[1], REPORTS_DIR]))
    for root in roots if mode == "auto" else []:
        found = (
            results.latest_run("00_machine", device=run.environment.device, root=root)
            if root.exists()
            else None
        )
        f = found.finding("measured_bandwidth_gbs") if found else None
        if f and f.measured:
            m = f.measured
            return Ceiling(
                m["value"],
                m["low"],
                m["high"],
                f"00_machine run {found.run_id} ({m.get('probe', 'best')} probe)",
                **extra,
            )
    # gemv is what decoding does to every weight matrix (on a CPU it is compute-bound and slow); the best one counts
    bandwidth_sweep(run, sizes_mb=list(sizes_mb), probes=list(probes), repeats=repeats)
    probe, s = bandwidth_ceiling(run.measurements)
    return Ceiling(
        s.median,
        s.low,
        s.high,
        f"measured here with kernels.bandwidth_sweep ({probe} probe, "
        f"{max(sizes_mb):g} MB), no 00_machine run for this device",
        **extra,
    )
