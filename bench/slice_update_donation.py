"""Targeted pass behind 01's slice_update claim: does a one-token write into a cache-shaped buffer happen in place
or as a copy, write by write, and does that depend on what the previous write still holds, or on the process?

    python bench/slice_update_donation.py                                   # 16 MiB and 1 GiB, 4 fresh processes
    python bench/slice_update_donation.py --sizes-mb 1 16 --processes 1     # CPU, seconds

Each fresh process (a child of this one) writes one token at a time, `buf[..., i:i+1, :] = x` as mlx-lm's
KVCache does, into a (1, 8, n, 128) bfloat16 buffer of each size, `--writes` times per mode, every write
evaluated:
  - at once: the next write issued as soon as the previous write's eval returned (a decode loop's pattern);
  - synchronize: mx.synchronize() after each write, so nothing of the previous write still holds the buffer;
  - pause: a 2 ms sleep after each write instead;
  - at once again, last (the order is not the cause).
MLX can donate the old buffer to the write (in place) only when nothing else holds it; otherwise the write
copies the buffer. A write is counted as a copy when it takes more than half of what copying the buffer takes in
the same process (`buf + 0`, read and written once, median of 5); at a few MiB a slow write in place (after the
pause, say) can pass that, so read the largest size. One line per process, size and mode: the median
and the 10th/90th percentiles of ms per write and the share of writes that copied. The first 5 writes of a mode
are warm-up and not counted.

On one H200 (MLX CUDA 0.32.4, 4 processes), with this pass's first form (the same writes and modes; a write
counted as a copy above a fixed 0.2 ms, where a 1 GiB copy takes about 0.5 ms and a write in place 0.02-0.1 ms):
at 1 GiB, 53-96% of the writes issued at once copied, none after a synchronize and at most 2% after a pause
(reports/reference/bench/slice_update_donation_cuda-nvidia-h200.txt).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

MODES = ("at once", "synchronize", "pause", "at once")
WARMUP_WRITES = 5


def copy_ms(buf) -> float:
    """What copying the buffer takes here: `buf + 0` reads and writes every byte once; median of 5."""
    import mlx.core as mx

    times = []
    for _ in range(5):
        mx.synchronize()
        tic = time.perf_counter()
        mx.eval(buf + 0)
        times.append(1e3 * (time.perf_counter() - tic))
    return statistics.median(times)


def write_times(size_mb: float, mode: str, writes: int) -> tuple[list[float], float]:
    """ms per one-token write into a fresh buffer of `size_mb` MiB under `mode`, and a copy's ms."""
    import mlx.core as mx

    n = max(2, int(size_mb * 2**20) // (8 * 128 * 2))
    buf = mx.zeros((1, 8, n, 128), mx.bfloat16)
    x = mx.ones((1, 8, 1, 128), mx.bfloat16)
    mx.eval(buf, x)
    copy = copy_ms(buf)
    mx.synchronize()
    out = []
    for k in range(WARMUP_WRITES + writes):
        i = (k + 1) % n
        tic = time.perf_counter()
        buf[..., i : i + 1, :] = x
        mx.eval(buf)
        out.append(1e3 * (time.perf_counter() - tic))
        if mode == "synchronize":
            mx.synchronize()
        elif mode == "pause":
            time.sleep(0.002)
    del buf
    mx.clear_cache()
    return out[WARMUP_WRITES:], copy


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def child(tag: str, sizes_mb: list[float], writes: int) -> None:
    for size in sizes_mb:
        for mode in MODES:
            times, copy = write_times(size, mode, writes)
            copied = sum(t > copy / 2 for t in times) / len(times)
            print(
                f"{tag} {size:g} MiB, {mode:11s}: median {statistics.median(times):.3f} ms "
                f"[p10 {percentile(times, 0.1):.3f}, p90 {percentile(times, 0.9):.3f}], copy {copy:.3f} ms, "
                f"copied {copied:.0%} of n={len(times)}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[16, 1024], help="buffer sizes, MiB")
    parser.add_argument("--writes", type=int, default=55, help="timed writes per size and mode")
    parser.add_argument("--processes", type=int, default=4, help="fresh processes, one after the other")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writes < 1 or args.processes < 1 or any(s <= 0 for s in args.sizes_mb):
        parser.error("sizes must be positive, writes and processes at least 1")
    if args.child:
        child(args.child, args.sizes_mb, args.writes)
        return 0
    import mlx.core as mx

    print(f"mlx {mx.__version__}, {mx.default_device()}", flush=True)
    sizes = [f"{s:g}" for s in args.sizes_mb]
    for p in range(args.processes):
        cmd = [
            sys.executable,
            __file__,
            "--sizes-mb",
            *sizes,
            "--writes",
            str(args.writes),
            "--child",
            f"process {p}",
        ]
        if subprocess.run(cmd, check=False).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
