"""Targeted pass behind 01's flatness claim: decode time per token at fixed contexts, against the shortest, in the
same paired blocks; and the earlier design's plain trials, which decode onwards from two contexts.

    PYTHONPATH=lib python bench/context_step.py                                  # qwen3-0.6b bf16, a GPU, ~90 s
    PYTHONPATH=lib python bench/context_step.py --preset tiny --budget-s 10      # CPU, seconds

Each block runs every variant once, 256-token trials advanced alternately in 16-token chunks in a fresh random
order (core.blocks.interleaved, as 01's claim comparisons). "fixed L": every token decoded at a context of L to
L + 16 (01's measure.fixed_context_trial: the cache trimmed back to the prompt every 16 tokens). "plain from L":
mlx-lm's loop decoding 256 tokens onwards from L, so its context runs from L to L + 256. Prints each variant's
median ms per token and its % change against "fixed <shortest>" with a t interval on the paired log-ratios, and
the plain trials against each other (how 01 judged flatness before method version 9).

On one H200 (MLX CUDA 0.32.4, qwen3-0.6b bf16, n=9 blocks): fixed 100 -1.7% [-5.5, +2.3], fixed 240 -1.7%
[-4.7, +1.3], fixed 272 +13.3% [+10.3, +16.5] against fixed 10; plain from 100 against plain from 10 +5.7% [+3.2,
+8.1] (reports/reference/bench/context_step_cuda-nvidia-h200.txt): the step is past 256 cached positions, which
a plain trial from 100 tokens reaches and one from 10 barely does.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import numpy as np

from mlx_workbook import models
from mlx_workbook.core import blocks
from mlx_workbook.investigations.kv_cache import measure as kv

TOKENS, CHUNK = 256, 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="qwen3-0.6b")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--fixed", type=int, nargs="+", default=[10, 100, 240, 272], help="fixed contexts")
    parser.add_argument(
        "--plain", type=int, nargs="*", default=[10, 100], help="plain trials' starting contexts"
    )
    parser.add_argument("--budget-s", type=float, default=70.0)
    parser.add_argument("--max-blocks", type=int, default=40)
    args = parser.parse_args(argv)
    if len(args.fixed) < 2 or min(args.fixed + args.plain) < 2 or len(args.plain) not in (0, 2):
        parser.error("need two or more fixed contexts, none or two plain ones, every context >= 2 tokens")
    if args.max_blocks < 3:
        parser.error("--max-blocks must be at least 3")
    models.check_fits(
        models.build_preset(args.preset, dtype=args.dtype, materialize=False).weight_bytes(), args.preset
    )
    loaded = models.build_preset(args.preset, dtype=args.dtype, seed=0)
    prompt = models.random_prompt(loaded, max(args.fixed + args.plain), seed=0)
    cache = dict(step=256, window=max(2048, max(args.plain or [0]) + TOKENS + 1), keep=4)
    variants = {
        f"fixed {n}": kv.fixed_context_trial(
            loaded, prompt, strategy="preallocated", length=n, tokens=TOKENS, window_tokens=CHUNK, **cache
        )
        for n in args.fixed
    }
    variants |= {
        f"plain from {n}": kv.per_token_trial(
            loaded, prompt, strategy="preallocated", length=n, tokens=TOKENS, **cache
        )
        for n in args.plain
    }
    reference = f"fixed {min(args.fixed)}"
    out = blocks.compare(
        blocks.Rows(),
        "context_step",
        variants,
        reference=reference,
        metric="ms_per_token",
        unit="ms",
        budget_s=args.budget_s,
        min_blocks=min(4, args.max_blocks),
        max_blocks=args.max_blocks,
        block_fn=partial(blocks.interleaved, tokens=TOKENS, chunk=CHUNK),
    )
    if out.blocks < 2:
        print(
            f"only {out.blocks} block within {args.budget_s:g} s: no interval; raise --budget-s",
            file=sys.stderr,
        )
        return 1
    ms = out.values.median()
    print(
        f"{loaded.label}: n={out.blocks} blocks, stopped: {out.stop_reason}; {reference}: {ms[reference]:.3f} ms/token"
    )
    for name, e in out.estimates.items():
        print(
            f"  {name:15s} {ms[name]:.3f} ms  {e.value:+.2f}% [{e.low:+.2f}, {e.high:+.2f}] against {reference}"
        )
    if args.plain:
        first, last = (f"plain from {n}" for n in sorted(args.plain))
        log_ratios = np.log(out.values[last] / out.values[first]).to_numpy()
        e = blocks.change_pct(log_ratios, blocks.final_confidence())
        print(f"  {last} against {first}: {e.value:+.2f}% [{e.low:+.2f}, {e.high:+.2f}] (n={e.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
