"""Targeted pass behind core.blocks.block_log_ratio: how much a block's paired log-ratio varies, taken as the mean
of its interleaved rounds (the earlier design) or as their median, for a pair of identical loops and for claim pairs.

    PYTHONPATH=lib python bench/round_noise.py                                   # qwen3-0.6b 4-bit, a GPU, ~4 min
    PYTHONPATH=lib python bench/round_noise.py --preset tiny --budget-s 5        # CPU, seconds
    PYTHONPATH=lib python bench/round_noise.py --from reports/reference/bench/round_noise_gpu0.parquet

Each block decodes one 256-token trial of each loop of a pair, advanced alternately `chunk` tokens at a time in
a fresh random order per round (core.blocks.interleaved_intervals, as notebooks 01 and 02), every token timed;
the designs (pair, chunk) take turns in a random order. Per block, per design: the log-ratio as the mean of the
rounds' paired chunk log-ratios (the variants' geometric means over their chunks) and as their median. Prints,
per design, n blocks and the standard deviation of each across blocks (the noise a comparison's t interval
sees), the rounds' paired log-ratios' percentiles, and the share of rounds whose two chunks are over 10% apart.
`--save` keeps every token interval, `--from` reads such a file (or several) instead of measuring.

On one H200 host (MLX CUDA 0.32.4, qwen3-0.6b 4-bit; two processes at once, one per GPU, n=32 blocks per design
over both): the block's log-ratio varied 1.97% (mean) and 0.75% (median) for identical loops in 16-token
chunks, 2.21% and 0.96% for pipelined vs take_logits, 2.23% and 0.79% for pipelined vs logprobs_always, 2.98%
and 0.68% for sample_fast vs sample_t1; 8-13% of rounds had their two chunks over 10% apart (1st-99th
percentile about -40% to +45%: a change of the host's speed inside the round). 4-token chunks: 1.37% and
0.48%; 64-token chunks: 4.78% and 3.41% (reports/reference/bench/round_noise_cuda-nvidia-h200.txt).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
import pandas as pd

from mlx_workbook import models
from mlx_workbook.core import blocks
from mlx_workbook.investigations.decode_loop import measure as decode_measure

TOKENS = 256
PAIRS = ["pipelined:pipelined", "pipelined:take_logits", "pipelined:logprobs_always", "sample_fast:sample_t1"]


def measure(args) -> pd.DataFrame:
    """Every token interval of every design's blocks, until the budget is spent (a row per variant and round)."""
    designs = [(pair, 16) for pair in args.pairs] + [(args.pairs[0], c) for c in args.chunks if c != 16]
    names = sorted({n for pair, _ in designs for n in pair.split(":")})
    bits = args.bits or None
    models.check_fits(
        models.build_preset(args.preset, dtype=args.dtype, bits=bits, materialize=False).weight_bytes(),
        args.preset,
    )
    loaded = models.build_preset(args.preset, dtype=args.dtype, bits=bits, seed=0)
    prompt = models.random_prompt(loaded, 16, seed=0)
    decode_measure.warm_up(blocks.Rows(), loaded, names, prompt, args.tokens, 0)
    rng, rows, block, start = random.Random(0), [], 0, time.perf_counter()
    while time.perf_counter() - start < args.budget_s and block < args.max_blocks * len(designs):
        for d in rng.sample(range(len(designs)), len(designs)):
            pair, chunk = designs[d]
            a, b = pair.split(":")
            variants = {
                "a": decode_measure.trial(loaded, prompt, a, args.tokens, 0),
                "b": decode_measure.trial(loaded, prompt, b, args.tokens, 0),
            }
            _, chunks = blocks.interleaved_intervals(variants, rng, tokens=args.tokens, chunk=chunk)
            rows += [
                dict(
                    pair=pair.replace(":", "/"),
                    chunk=chunk,
                    block=block,
                    variant=side,
                    round=r,
                    gaps=json.dumps(gaps),
                )
                for side, per_round in chunks.items()
                for r, gaps in enumerate(per_round)
            ]
            block += 1
    return pd.DataFrame(rows)


def chunk_ms(gaps: str) -> float:
    """A chunk's median ms per token, its first interval (the switch from the other loop) dropped."""
    return blocks.chunk_ms(json.loads(gaps)[1:])


def summarize(intervals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per design: n blocks and the SD (%) of the block log-ratio as the rounds' mean and as their median; and
    the rounds' paired log-ratios (%): percentiles and the share over 10% apart."""
    df = intervals.assign(ms=intervals.gaps.map(chunk_ms))
    is_b = df.variant.eq("b") | df.variant.str.endswith("#b")  # "#b": the exploration script's first form
    wide = df.assign(side=is_b).pivot_table(
        index=["pair", "chunk", "source", "block", "round"], columns="side", values="ms"
    )
    lr = 100 * np.log(wide[True] / wide[False]).dropna().rename("lr")
    per_block = lr.groupby(level=["pair", "chunk", "source", "block"]).agg(["mean", "median"])
    blocks_sd = per_block.groupby(level=["pair", "chunk"]).agg(
        n=("mean", "size"), sd_mean_pct=("mean", "std"), sd_median_pct=("median", "std")
    )
    grouped = lr.groupby(level=["pair", "chunk"])
    rounds = pd.DataFrame(
        {
            "rounds": grouped.size(),
            "p1": grouped.quantile(0.01),
            "p25": grouped.quantile(0.25),
            "p50": grouped.median(),
            "p75": grouped.quantile(0.75),
            "p99": grouped.quantile(0.99),
            "over_10pct": grouped.apply(lambda x: float(np.mean(np.abs(x) > 10))),
        }
    )
    return blocks_sd, rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="qwen3-0.6b")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--bits", type=int, default=4, help="0: unquantized")
    parser.add_argument("--pairs", nargs="+", default=PAIRS, help="reference:variant loop names")
    parser.add_argument(
        "--chunks", type=int, nargs="*", default=[4, 64], help="chunks besides 16 (first pair)"
    )
    parser.add_argument("--tokens", type=int, default=TOKENS)
    parser.add_argument("--budget-s", type=float, default=200.0)
    parser.add_argument("--max-blocks", type=int, default=100, help="per design")
    parser.add_argument("--save", help="write every token interval to this parquet file")
    parser.add_argument("--from", dest="sources", nargs="+", help="read interval files instead of measuring")
    args = parser.parse_args(argv)
    if any(p.count(":") != 1 for p in args.pairs) or min(args.chunks + [2]) < 2 or args.tokens < 32:
        parser.error("pairs are reference:variant; chunks need >= 2 tokens, trials >= 32")
    if args.sources:
        intervals = pd.concat(pd.read_parquet(f).assign(source=i) for i, f in enumerate(args.sources))
    else:
        from mlx_workbook.probes import loops

        for name in {n for p in args.pairs for n in p.split(":")}:
            loops.variant(name)  # an unknown loop: one clear error before the model is built
        intervals = measure(args).assign(source=0)
        if args.save:
            intervals.drop(columns="source").to_parquet(args.save)
    blocks_sd, rounds = summarize(intervals)
    print(
        "block log-ratio SD (%): the rounds' mean (earlier design) and their median (core.blocks.block_log_ratio)"
    )
    print(blocks_sd.round(2).reset_index().to_string(index=False))
    print("\nthe rounds' paired log-ratios (%)")
    print(rounds.round(3).reset_index().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
