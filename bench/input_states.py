"""Is a process-dependent step a state of the process, or of where its inputs landed in memory?

    PYTHONPATH=lib python bench/input_states.py --processes 10 --out FOLDER

Through its method 9, 03 re-measured a step with its two lengths alternated back to back, 20 pairs on one set of input
buffers built when the pass started. Some steps come out differently from process to process: on the H200
twins at d34abfb, decode float32 1024 -> 1025 took 0.67-0.96x across processes (the time at 1025 anywhere from
18.6 to 27.6 us a call, at 1024 always 28 us), and decode bfloat16 255 -> 256 was either ~1.0x or ~1.8x. If what
differs is where the buffers landed (their alignment, or the pages behind them), then new buffers before every pair
average over those placements, and the steps' ratios agree between processes; if it is the process, they do not.

Each fresh process times every step in both ways, the order of the two alternating from pass to pass: "kept" (one
set of buffers for the pass's pairs, as 03 does) and "rebuilt" (new buffers, built and warmed up, before every
pair), `passes` passes of `pairs` pairs each, one call count per step (calibrated at its longer length once).
Per step, way and process: the ratio (geometric mean of after / before over the pairs of each pass); then, per
step and way, how far the ratios of one process's passes lie apart, and how far the processes' lie apart.

On one H200 (reports/reference/bench/input_states_a54b398/, 14 processes, 172 s): neither. Decode float32
1024 -> 1025 wanders in time within every process: its passes' means lie 9.6% apart (SD) where independent pairs
would put them 2.2% apart, consecutive pairs correlate (0.45), the processes' means lie 7.6% apart, and new buffers
before every pair change nothing (9.2%). 255 -> 256 was slow in all 14 (1.56-1.83x); the edge step 513 -> 768 held
0.775-0.782x everywhere. So 03's method 10 spreads a step's pairs over its pass (sdpa_probe.confirm_steps).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mlx_workbook.probes import child

sys.path.insert(0, str(Path(__file__).parent))
import step_processes  # noqa: E402 - a sibling script: one pass's times and ratio (pass_times)

HEADS = dict(n_q_heads=32, n_kv_heads=8, head_dim=128)  # 03 full profile's configuration
# (kind, variant, mode, dtype, before, after): two process-dependent steps of the d34abfb twins, and an edge step
# (the same in every process there) as the control
STEPS = [
    ("decode", "sdpa", "none", "float32", 1024, 1025),
    ("decode", "sdpa", "none", "bfloat16", 255, 256),
    ("prefill", "sdpa", "additive", "bfloat16", 513, 768),
]
WAYS = ("kept", "rebuilt")
CHILD_TIMEOUT_S = 1800  # one process's passes: ~12 s on the H200
SAMPLE = ("pair", "length", "position", "calls", "ms")  # what a row keeps of the probe's timed sample


def step_cases(step: tuple, heads: dict) -> list[dict]:
    kind, variant, mode, dtype, before, after = step
    base = dict(kind=kind, variant=variant, mode=mode, dtype=dtype, **heads)
    return [{**base, "length": int(before)}, {**base, "length": int(after)}]


def one_process(config: dict) -> list[dict]:
    """One process's passes (run with --child): rows of one timed sample each."""
    from mlx_workbook.probes import sdpa_probe as probe

    target_s = config["target_ms"] / 1e3
    rows = []
    for number, (before, after) in enumerate(config["steps"]):
        calls = None
        for look in range(config["passes"]):
            ways = WAYS if look % 2 == 0 else WAYS[::-1]
            for way in ways:
                fns = None
                for pair in range(config["pairs"]):
                    if fns is None or way == "rebuilt":
                        fns = probe.warmed(
                            [probe.make_call(before), probe.make_call(after)], config["warmup"]
                        )
                    if calls is None:
                        calls = probe.calls_for(fns[1], target_s, config["min_calls"], config["max_calls"])
                    timed = probe.time_pair(fns, calls, before, after, pair=pair, look=look)  # 03's A B / B A
                    for r in timed:
                        rows.append(dict(step=number, way=way, look=look, **{k: r[k] for k in SAMPLE}))
    return rows


def measure(config: dict, processes: int, out: Path) -> pd.DataFrame:
    """`one_process` in `processes` fresh processes, one after another; the rows saved after each."""
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1] / "lib"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for process in range(1, processes + 1):
        try:
            timed = child.run_json(
                [sys.executable, __file__, "--child"], config, timeout=CHILD_TIMEOUT_S, env=env
            )
        except (child.ChildFailed, child.ChildTimeout) as exc:
            print(f"process {process} failed: {exc}", file=sys.stderr)
            continue
        parts.append(pd.DataFrame(timed).assign(process=process))
        print(f"process {process}: {len(parts[-1])} timings", file=sys.stderr)
        pd.concat(parts, ignore_index=True).to_parquet(out / "input_states.parquet")
    return pd.concat(parts, ignore_index=True)


def ratios(rows: pd.DataFrame, steps: list[tuple]) -> pd.DataFrame:
    """Per step, way, process and pass: the geometric mean of after / before over the pass's pairs."""
    out = []
    for (number, way, process, look), g in rows.groupby(["step", "way", "process", "look"]):
        before, after = steps[number][4], steps[number][5]
        times = step_processes.pass_times(g, pd.Series({"before_length": before, "length": after}), "ms")
        out.append(
            dict(
                step=" ".join(map(str, steps[number])),
                way=way,
                process=process,
                look=look,
                **{k: times[k] for k in ("calls", "ratio", "after_us", "before_us")},
            )
        )
    return pd.DataFrame(out)


def spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per step and way: the SD (%) of log ratio between one process's passes (pooled) and between the processes'
    means, and the range of the processes' means."""
    out = []
    for (step, way), g in table.groupby(["step", "way"], sort=False):
        logs = np.log(g.ratio)
        within = g.assign(d=logs - logs.groupby(g.process).transform("mean")).d
        means = np.exp(logs.groupby(g.process).mean())
        out.append(
            dict(
                step=step,
                way=way,
                processes=len(means),
                within_sd_pct=100 * float(np.sqrt((within**2).sum() / max(1, len(g) - len(means)))),
                between_sd_pct=100 * float(np.log(means).std(ddof=1)) if len(means) > 1 else math.nan,
                low=float(means.min()),
                high=float(means.max()),
            )
        )
    return pd.DataFrame(out)


def pair_noise(rows: pd.DataFrame, steps: list[tuple]) -> pd.DataFrame:
    """Per step and way: the SD (%) of one pair's log ratio within a pass (pooled), the SD a pass's mean would have
    if its pairs were independent (that over the square root of the pairs), and the mean lag-1 autocorrelation of
    consecutive pairs within a pass. A pass mean that moves more than the independent-pairs SD says that the ratio
    wanders on a scale longer than a pair."""
    out = []
    for (number, way), g in rows.groupby(["step", "way"], sort=False):
        before, after = steps[number][4], steps[number][5]
        wide = g.pivot_table(
            index=["process", "look", "pair"], columns="length", values="ms", aggfunc="first"
        )
        logs = np.log(wide[after] / wide[before])
        passes = logs.groupby(level=["process", "look"])
        pair_sd = float(np.sqrt(passes.var(ddof=1).mean()))
        out.append(
            dict(
                step=" ".join(map(str, steps[number])),
                way=way,
                pair_sd_pct=100 * pair_sd,
                independent_pass_sd_pct=100 * pair_sd / math.sqrt(float(passes.size().mean())),
                lag1_autocorr=float(passes.apply(lambda x: x.autocorr(1)).mean()),
            )
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one process's config file
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--target-ms", type=float, default=10)
    parser.add_argument("--min-calls", type=int, default=5)
    parser.add_argument("--max-calls", type=int, default=2000)
    parser.add_argument(
        "--heads", type=int, nargs=3, metavar=("Q", "KV", "D"), help="query heads, kv heads, head dim"
    )
    parser.add_argument(
        "--rows", type=Path, help="judge a saved input_states.parquet again instead of measuring"
    )
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    heads = dict(zip(("n_q_heads", "n_kv_heads", "head_dim"), args.heads)) if args.heads else HEADS
    if args.child:
        json.dump(one_process(json.loads(args.child.read_text())), sys.stdout)
        return 0
    config = dict(
        steps=[step_cases(s, heads) for s in STEPS],
        pairs=args.pairs,
        passes=args.passes,
        warmup=1,
        target_ms=args.target_ms,
        min_calls=args.min_calls,
        max_calls=args.max_calls,
    )
    rows = pd.read_parquet(args.rows) if args.rows else measure(config, args.processes, args.out)
    table = ratios(rows, STEPS)
    print(
        f"# {rows.process.nunique()} fresh processes, {args.passes} passes of {args.pairs} pairs per step and way"
    )
    print("# ratio (after / before) per process, the mean over its passes, and each pass's")
    means = table.groupby(["step", "way", "process"], sort=False).ratio.apply(
        lambda r: float(np.exp(np.log(r).mean()))
    )
    print(means.unstack("process").round(3).to_string())
    print(
        "\n# spread of the ratio: between one process's passes (within) and between the processes' means; one pair's"
        " within a pass, what that gives a pass of independent pairs, and consecutive pairs' autocorrelation"
    )
    print(spread(table).merge(pair_noise(rows, STEPS), on=["step", "way"]).round(3).to_string(index=False))
    print("\n# per pass")
    print(table.round({"ratio": 3, "after_us": 2, "before_us": 2}).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
