"""Targeted pass behind 03's history-dependent decode steps at 256 cached keys: which kernel does MLX CUDA's decode
SDPA take for a slice of a KV-cache buffer, and what decides it?

    PYTHONPATH=lib python bench/decode_sdpa_path.py --processes 3 --out FOLDER      # a GPU, about a minute
    PYTHONPATH=lib python bench/decode_sdpa_path.py --processes 1 --rounds 3        # CPU, seconds (no cuDNN)

MLX's CUDA backend (0.31-0.32 source, scaled_dot_product_attention.cpp) sends a decode query to cuDNN instead of its
own vector kernel when the keys are at least 256 long, both K and V still have the status `evaluated` (nothing has
waited on them since the graph that made them), and they look like an unsliced KV cache: the buffer behind the view
holds exactly T rows with T a multiple of 256 (`buffer_size` compared with the view's shape and strides).
`MLX_CUDA_USE_CUDNN_SDPA=0` turns the cuDNN path off. Two things in that test depend on the process's history:
the status (a second `mx.eval` of K and V, or reading them on the host, sets it to `available`) and the block the
allocator hands out (its cache may return a slightly larger freed block, and then the buffer no longer matches).

So each fresh process (a child of this one, through probes.child) builds 03's decode inputs (`sdpa_probe.make_inputs`:
K and V slices of a bf16 buffer rounded up to 256 rows, 32 query and 8 key/value heads) at 255, 256, 257, 511, 512
and 513 keys, in three states:
  - fresh: as 03 builds them since its method 13 (right after `mx.clear_cache()`: exact blocks, status `evaluated`);
  - waited: the same, then `mx.eval(k, v)` once more (status `available`);
  - larger block: a freed block 16 KiB larger than the buffer left in the cache first, so the buffer gets it.
It times them in rounds, every (state, length) once per round in a random order, one fixed number of calls per
sample (`--calls`, queued without host syncs), and reports per state and length the median time of one call and its
ratio to 255 keys: the paired per-round ratio's geometric mean with a t interval (95%, n = rounds). The whole pass
runs with the default settings and again with `MLX_CUDA_USE_CUDNN_SDPA=0`. Rows go to FOLDER/decode_sdpa_path.parquet.

On one H200 (MLX CUDA 0.32.4, reports/reference/bench/decode_sdpa_path_cc49830/): fresh inputs took 14.6-15.9 us a
call at 255 keys and 1.58-1.87x that at 256, 257, 511 and 512 in all three processes; waited inputs 0.97-1.03x at
256 and 257; with the larger block 256 was 0.99-1.03x and 257 stayed 1.63-1.86x (the allocator gave that buffer
another block); with cuDNN SDPA off every length took 17-21 us, 0.96-1.09x of 255 keys, in every state. Head dim 80
(no vector kernel: 255 keys run unfused) is the mirror image, 0.53-0.56x from 256 keys with cuDNN, 0.93-1.22x
without it. MLX 0.31.1 is as 0.32.4 (1.82-1.89x fresh); MLX 0.30.1 shows no step (0.94-1.08x in every state). The
same switch is 01's step past 256 cached positions: bench/context_step.py on qwen3-0.6b bf16 measured +12.8% [+11.2,
+14.4] per token at 272 against 10 tokens of context, and -1.5% [-2.9, -0.0] with cuDNN SDPA off.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import pandas as pd

from mlx_workbook.probes import child, sdpa_probe

LENGTHS = (255, 256, 257, 511, 512, 513)
STATES = ("fresh", "waited", "larger block")
SETTINGS = sdpa_probe.CUDNN_SDPA_SETTINGS
# bytes: a freed block this much larger than the buffer is within the allocator cache's reuse limit
DECOY_EXTRA = 16 * 1024
CHILD_TIMEOUT_S = 600  # one process: ~6 s on an H200, ~10 s with the test's settings on a 2-core CPU


def inputs(length: int, state: str, head_dim: int):
    """03's decode inputs for one length in one state (see the module docstring)."""
    import mlx.core as mx

    case = dict(kind="decode", mode="none", dtype="bfloat16", head_dim=head_dim, n_q_heads=32, n_kv_heads=8)
    larger = state == "larger block"
    if larger:
        sdpa_probe.clear_cache()
        itemsize = sdpa_probe.DTYPES[case["dtype"]].size
        buffer_bytes = case["n_kv_heads"] * sdpa_probe.cache_rows(length) * head_dim * itemsize
        decoy = mx.zeros((buffer_bytes + DECOY_EXTRA,), dtype=mx.uint8)
        mx.eval(decoy)
        del decoy  # back to the allocator's cache, where the buffer's allocation finds it
    q, k, v, _ = sdpa_probe.make_inputs({**case, "length": length}, empty_cache=not larger)
    if state == "waited":
        mx.eval(k, v)  # already evaluated: this waits on them, and their status becomes `available`
    return q, k, v


def one_process(rounds: int, calls: int, head_dim: int, seed: int) -> dict:
    """What one fresh process measures: its MLX version, device and rows."""
    import mlx.core as mx

    scale = head_dim**-0.5
    cases = [(s, n) for s in STATES for n in LENGTHS]
    fns = {}
    for s, n in cases:
        q, k, v = inputs(n, s, head_dim)
        fns[s, n] = lambda q=q, k=k, v=v: mx.fast.scaled_dot_product_attention(q, k, v, scale=scale)
    for fn in fns.values():  # warm-up: kernels compiled, cuDNN graphs built
        sdpa_probe.seconds_per_call(fn, 20)
    rng = random.Random(seed)
    rows = []
    for r in range(rounds):
        order = cases[:]
        rng.shuffle(order)
        for s, n in order:
            us = sdpa_probe.seconds_per_call(fns[s, n], calls) * 1e6
            rows.append({"round": r, "state": s, "length": n, "us": us})
    return {"mlx": mx.__version__, "device": str(mx.default_device()), "rows": rows}


def summarize(df):
    """Per setting, process, state and length: median us per call, and the ratio to 255 keys of the same process,
    state and round (paired), its geometric mean over the rounds with a t interval."""
    from mlx_workbook.core import intervals

    keys = ["setting", "process", "state"]
    wide = df.pivot_table(index=[*keys, "round"], columns="length", values="us")
    out = []
    for key, g in wide.groupby(level=keys, sort=False):
        for n in LENGTHS:
            ratio = intervals.paired_ratio(g[n], g[LENGTHS[0]])
            out.append(
                dict(zip(keys, key))
                | {"length": n, "us": float(g[n].median()), "ratio": ratio.value, "low": ratio.low}
                | {"high": ratio.high, "n": ratio.n}
            )
    return pd.DataFrame(out)


def run_child(setting: str, process: int, args) -> dict:
    """One fresh process with the setting's environment (probes.child); its rows, tagged."""
    config = dict(rounds=args.rounds, calls=args.calls, head_dim=args.head_dim, seed=process)
    env = os.environ | SETTINGS[setting]
    try:
        result = child.run_json(
            [sys.executable, __file__, "--child"], config, timeout=CHILD_TIMEOUT_S, env=env
        )
    except (child.ChildFailed, child.ChildTimeout) as exc:
        raise SystemExit(f"{setting}, process {process} failed: {exc}") from None
    rows = [r | {"setting": setting, "process": process} for r in result["rows"]]
    return {"mlx": result["mlx"], "device": result["device"], "rows": rows}


def parent(args) -> int:
    rows, seen = [], set()
    for setting in SETTINGS:
        for process in range(1, args.processes + 1):
            result = run_child(setting, process, args)
            rows += result["rows"]
            seen.add((result["mlx"], result["device"]))
            print(f"{setting}, process {process}: {len(result['rows'])} samples", file=sys.stderr)
    df = pd.DataFrame(rows)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        df.to_parquet(args.out / "decode_sdpa_path.parquet")
    table = summarize(df)
    versions = ", ".join(f"MLX {m} on {d}" for m, d in sorted(seen))
    print(f"# decode SDPA, bf16, 32 query / 8 key-value heads, head_dim {args.head_dim}; {versions}")
    print(
        f"# {args.processes} fresh process(es) per setting, {args.rounds} rounds of {args.calls} calls a sample"
    )
    print(
        "# us: median time of one call; ratio: to 255 keys in the same process, state and round, geometric mean"
    )
    print("# with its 95% t interval over the rounds (n)")
    wide = table.pivot_table(index=["setting", "state", "process"], columns="length", values="us", sort=False)
    print("\nus per call:")
    print(wide.round(1).to_string())
    table["cell"] = [f"{r:.2f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in zip(table.ratio, table.low, table.high)]
    print("\nratio to 255 keys:")
    cells = table[table.length != LENGTHS[0]]
    print(cells.pivot(index=["setting", "state", "process"], columns="length", values="cell").to_string())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per setting")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--calls", type=int, default=300, help="calls per sample (~6-12 ms at 20-40 us a call)"
    )
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None, help="folder for decode_sdpa_path.parquet")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one process's config file
    args = parser.parse_args(argv)
    if args.child:
        json.dump(one_process(**json.loads(args.child.read_text())), sys.stdout)
        return 0
    if args.processes < 1 or args.rounds < 2 or args.calls < 1:
        parser.error("--processes and --calls must be at least 1, --rounds at least 2")
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
