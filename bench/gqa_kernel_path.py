"""Targeted pass: does 03's GQA comparison on MLX CUDA weigh two attention kernels?

03 compares native grouped-query SDPA (32 query, 8 key/value heads) with K/V heads repeated to 32 by hand, at
decode lengths that are multiples of 256 (512, 4096 and 16384 in the full profile), K/V in buffers of exact size
since its method 13. MLX CUDA sends a decode query to cuDNN instead of its own vector kernel when K and V fill the
buffer behind them exactly in rows of a multiple of 256 (bench/decode_sdpa_path.py); if one variant meets that
condition and the other does not, the comparison weighs two kernels as well as the repetition. This pass runs 03's
GQA cases through the notebook's own probe (probes/sdpa_probe.py, as a script: fresh processes) with the default
settings and with MLX_CUDA_USE_CUDNN_SDPA=0, and reports per setting, kind and length the median time of each
variant and repeat_kv over sdpa: the geometric mean of the per-round ratios (the two variants' samples of one
round index, one process) with a 95% t interval (n = rounds x processes).

    PYTHONPATH=lib python bench/gqa_kernel_path.py --processes 2 --out FOLDER                       # a GPU, ~1 min
    PYTHONPATH=lib python bench/gqa_kernel_path.py --processes 1 --repeats 3 --decode 64 --prefill 32  # CPU
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from mlx_workbook.core import intervals
from mlx_workbook.investigations.sdpa_cliff import measure
from mlx_workbook.probes import child, sdpa_probe, versions

SETTINGS = sdpa_probe.CUDNN_SDPA_SETTINGS
CHILD_TIMEOUT_S = 600


def run_process(setting: str, process: int, args) -> list[dict]:
    """03's GQA sweep in one fresh process under the setting's environment; its probe rows, tagged."""
    cases = measure.gqa_cases(
        args.prefill,
        args.decode,
        dtype=args.dtype,
        head_dim=args.head_dim,
        n_q_heads=32,
        n_kv_heads=8,
    )
    timing = dict(repeats=args.repeats, warmup=1, target_ms=args.target_ms, min_calls=5, max_calls=2000)
    env = {**os.environ, **SETTINGS[setting]}
    try:
        out = child.run_json(
            [sys.executable, str(versions.PROBE)],
            measure.probe_config(cases, **timing),
            timeout=CHILD_TIMEOUT_S,
            env=env,
        )
    except (child.ChildFailed, child.ChildTimeout) as exc:
        raise SystemExit(f"{setting}, process {process} failed: {exc}") from None
    if out["errors"]:
        raise SystemExit(f"{setting}, process {process}: {out['errors']}")
    tag = {"setting": setting, "process": process, "mlx": out["mlx"], "backend": out["backend"]}
    return [r | tag for r in out["rows"]]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per setting, kind and length: each variant's median ms per call and repeat_kv / sdpa paired by round."""
    out = []
    for (setting, kind, length), g in df.groupby(["setting", "kind", "length"], sort=False):
        wide = g.pivot_table(index=["process", "trial"], columns="variant", values="ms")
        ratio = intervals.paired_ratio(wide["repeat_kv"], wide["sdpa"])
        out.append(
            {"setting": setting, "kind": kind, "length": int(length)}
            | {"sdpa_ms": float(wide["sdpa"].median()), "repeat_kv_ms": float(wide["repeat_kv"].median())}
            | {"ratio": ratio.value, "low": ratio.low, "high": ratio.high, "n": ratio.n}
        )
    table = pd.DataFrame(out)
    order = table.setting.map(list(SETTINGS).index)  # the default settings first, then by kind and length
    return table.assign(order=order).sort_values(["order", "kind", "length"]).drop(columns="order")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=2, help="fresh processes per setting")
    parser.add_argument("--repeats", type=int, default=10, help="rounds per process")
    parser.add_argument("--prefill", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--decode", type=int, nargs="+", default=[512, 4096, 16384])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--target-ms", type=float, default=10.0, help="device work per sample, ms")
    parser.add_argument("--out", type=Path, default=None, help="folder for gqa_kernel_path.parquet")
    args = parser.parse_args(argv)
    if args.processes < 1 or args.repeats < 2:
        parser.error("--processes must be at least 1, --repeats at least 2")
    rows = []
    for setting in SETTINGS:
        for process in range(1, args.processes + 1):
            rows += run_process(setting, process, args)
            print(f"{setting}, process {process}: done", file=sys.stderr)
    df = pd.DataFrame(rows)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_parquet(args.out / "gqa_kernel_path.parquet")
    table = summarize(df)
    seen = ", ".join(sorted({f"MLX {m} ({b})" for m, b in zip(df.mlx, df.backend)}))
    print(f"# 03's GQA cases, {args.dtype}, head_dim {args.head_dim}, 32 query / 8 key-value heads; {seen}")
    print(
        f"# {args.processes} fresh process(es) per setting, {args.repeats} rounds each, ~{args.target_ms} ms a sample"
    )
    print("# ratio: repeat_kv / sdpa, geometric mean of per-round ratios with its 95% t interval (n)")
    table["ratio [95%]"] = [
        f"{r:.2f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in zip(table.ratio, table.low, table.high)
    ]
    cols = ["setting", "kind", "length", "sdpa_ms", "repeat_kv_ms", "ratio [95%]", "n"]
    print(table[cols].round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
