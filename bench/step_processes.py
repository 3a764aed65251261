"""The steps two runs of notebook 03 disagree on, re-measured in many fresh processes: is a cliff that one run
confirmed and the other did not a property of the process (some processes get a slower kernel), of the run, or
noise?

    PYTHONPATH=lib python bench/step_processes.py RUN_A RUN_B --processes 6 --out FOLDER

Each run confirms a jump in its own process and in a fresh one (03's `confirm_processes`), so a step that both
processes of one run find and both of the other run do not is invisible to either run's check. Here every cliff
only one of the two runs saved (as `make compare` finds them) is re-measured with 03's own confirmation pass (its
two lengths alternated back to back, `pairs` pairs, one call count for both) in `processes` fresh processes, one
after another. Per step and process: the confirmed ratio (geometric mean of the pairs' after/before); per step:
beside the two runs' own confirmed ratios. Rows go to FOLDER/step_processes.parquet (after each process), the
table to stdout; `--rows` judges saved rows again.

On the H200 twins at ea85dcf (reports/reference/bench/step_processes_ea85dcf/, ten processes on one H200 after the
twins, ~4 s each): the four cliffs only run B saved (sdpa additive and bool 512 -> 513, sdpa none 1024 -> 1025,
unfused none 511 -> 512) were measured 1.01-1.14x by run A's own process and 1.38-1.48x (0.71x) by B's; all ten
fresh processes found them (1.50-2.54x, 0.66-0.78x). Run A's process was the odd one, and a step found flat was
never re-measured in a fresh process by 03's method 6 (only jumps were; method 7 re-measures every step and takes
the majority of processes). The three only in A sit on the envelope's edge (0.77-0.79x against ~0.8x, 2.3x
against ~2.2x) in every process.

On the twins at 3362327 (step_processes_3362327/, eight processes, ~2 s each): the versions sweep's decode
255 -> 256 (sdpa, no mask, MLX 0.32.4) was 1.46x and 1.52x in run A's two processes, 1.01x and 0.98x in run B's,
and 1.40-1.77x in all eight fresh ones. The per-pass table shows a state of the process, not noise: one call at 256
took 22-31 us in the slow processes and 15-18 us in the fast ones, against 15-17 us at 255 in both, so the calls a
pass calibrates at 256 (245-441 in the slow processes, 550-635 in the fast ones) tell the state before a pair is
timed. The other two steps are the same in every process (0.78-0.79x against an edge of ~0.80x; 2.30-2.40x
against ~2.22x): run B left the first undecided, and run A's sweep did not nominate the second.

On the twins at d34abfb (03 method 9, one after the other on one H200; step_processes_d34abfb/): decode float32
1024 -> 1025 took 0.67-0.96x across the eight fresh processes against an edge of 0.80x (1024 at 28 us a call in
every one, 1025 anywhere from 18.6 to 27.6 us), the versions sweep's 255 -> 256 was slow in all eight again, and
prefill additive 513 -> 768 sat at 0.77-0.82x, on the edge. The calls at 256 no longer separate the two states
cleanly (235-403 slow, 370-508 fast): the time at 255 moved between processes too. bench/input_states.py then
showed that 1024 -> 1025 wanders in time within every process rather than differing between processes. With
--every (step_processes_every_1360022/: 246 steps in rounds of one pair each, as 03 method 10 times a pass, two
fresh processes) it came out 0.831x [0.753, 0.916] and 0.890x [0.845, 0.939] with uncorrelated consecutive pairs,
where back-to-back passes had given intervals that exclude each other.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mlx_workbook.core import intervals, results
from mlx_workbook.investigations.sdpa_cliff.measure import CONFIRM, GROUP
from mlx_workbook.probes import versions
from mlx_workbook.report import agreement

sys.path.insert(0, str(Path(__file__).parent))
import cliff_tolerance  # noqa: E402 - a sibling script: the runs' own confirmed ratios

INTS = ("head_dim", "n_q_heads", "n_kv_heads", "before_length", "length")
# one step of one sweep, as the saved lists name it
KEY = ["sweep", "probe_mlx", *GROUP, "before_length", "length"]


def disputed(run_a: Path, run_b: Path, mlx: str) -> pd.DataFrame:
    """The cliffs only one of the two runs saved (cliff_tolerance.only_in_one), lengths and sizes as integers; only
    those timed by MLX `mlx`, the runs' own version (a fresh process here runs that one)."""
    out = integers(cliff_tolerance.only_in_one(run_a, run_b))
    other = out.probe_mlx != mlx
    if other.any():
        print(f"# left out: {int(other.sum())} disputed step(s) of another MLX version", file=sys.stderr)
    return out[~other].reset_index(drop=True)


def every_step(run: Path, mlx: str) -> pd.DataFrame:
    """Every step the run re-measured under MLX `mlx` (each once), with the key columns `disputed` gives: timed
    beside the disputed ones (--every), they make a fresh process's pass as long as the run's own."""
    df, p, _ = cliff_tolerance.load(run)
    steps = cliff_tolerance.re_measured(df, p)
    steps = steps[steps.probe_mlx.astype(str) == mlx].drop_duplicates(
        subset=[*GROUP, "before_length", "length"]
    )
    return integers(steps).reset_index(drop=True)


def integers(steps: pd.DataFrame) -> pd.DataFrame:
    """`steps` with lengths and sizes as integers (the saved lists and the scan tables hold them as floats or
    text)."""
    steps = steps.copy()
    for c in INTS:
        steps[c] = steps[c].astype(float).astype(int)
    return steps


def of_step(rows: pd.DataFrame, step: pd.Series) -> pd.DataFrame:
    """The confirmation rows of one step: its two lengths and its configuration (GROUP)."""
    sub = rows[(rows.before_length == step.before_length) & (rows.after_length == step.length)]
    for k in GROUP:
        sub = sub[sub[k] == step[k]] if k in INTS else sub[sub[k].astype(str) == str(step[k])]
    return sub


def cases(steps: pd.DataFrame) -> list[list[dict]]:
    """[before case, after case] per step, as 03's confirmation pass builds them."""
    out = []
    for _, s in steps.iterrows():
        base = {k: (int(s[k]) if k in INTS else str(s[k])) for k in GROUP}
        out.append([{**base, "length": int(s.before_length)}, {**base, "length": int(s.length)}])
    return out


def pass_times(part: pd.DataFrame, step: pd.Series, value: str) -> dict:
    """One process's pass over one step: its calls per sample, the median time of one call at each length (us),
    the confirmed ratio (geometric mean over its pairs of after / before) with its 95% t interval, and the lag-1
    autocorrelation of consecutive pairs' log ratios (near 0 where the pairs are independent; a ratio that wanders
    in time raises it when the pairs are back to back)."""
    before = part[part.length == step.before_length].set_index("pair")[value]
    after = part[part.length == step.length].set_index("pair")[value]
    logs = np.log(after / before).sort_index()
    ratio = intervals.log_ratio_interval(logs)
    return {
        "calls": int(part.calls.iloc[0]),
        "before_us": 1e3 * float(before.median()),
        "after_us": 1e3 * float(after.median()),
        "ratio": ratio.value,
        "low95": ratio.low,
        "high95": ratio.high,
        "lag1": float(logs.autocorr(1)),
    }


def step_ratios(rows: pd.DataFrame, steps: pd.DataFrame, pairs: int) -> pd.DataFrame:
    """Per step and fresh process: `pass_times` (a step's rows picked by its configuration and lengths: since 03
    method 10 a pass takes its steps in rounds, one pair of each, so their rows interleave)."""
    out = []
    for process, g in rows.groupby("process", sort=True):
        for _, s in steps.iterrows():
            part = of_step(g, s)
            if len(part) != 2 * pairs:
                raise SystemExit(f"process {process}: {len(part)} timings of a step, expected {2 * pairs}")
            out.append(dict(s[[*KEY, "only_in"]], process=process, **pass_times(part, s, "ms")))
    return pd.DataFrame(out)


def own_passes(run: Path, loaded: tuple[pd.DataFrame, dict, str], steps: pd.DataFrame) -> pd.DataFrame:
    """Per step: `pass_times` of every confirmation pass the run itself made of it (its notebook's process and
    its fresh ones), named "<run>:<process>.<pass>"; none where the run did not re-measure the step. `loaded`:
    the run as cliff_tolerance.load reads it."""
    df, _, mlx = loaded
    out = []
    for _, s in steps.iterrows():
        sub = of_step(df[df.experiment == s.sweep + CONFIRM], s)
        if "probe_mlx" in sub:
            sub = sub[sub.probe_mlx.astype(object).fillna(mlx) == s.probe_mlx]
        for (process, look), part in sub.groupby(["process", "confirm_pass"], sort=True):
            name = f"{run.name[:15]}:{int(process)}.{int(look)}"
            out.append(dict(s[[*KEY, "only_in"]], process=name, **pass_times(part, s, "value")))
    return pd.DataFrame(out)


def measure(config: dict, processes: int, out: Path) -> pd.DataFrame:
    """The confirmation pass in `processes` fresh processes, one after another; the rows saved after each one."""
    parts = []
    out.mkdir(parents=True, exist_ok=True)
    for process in range(1, processes + 1):
        result = versions.run_probe("current", config, fresh=True)
        if not result.ok:
            print(f"process {process}: {result.message}", file=sys.stderr)
            continue
        parts.append(pd.DataFrame(result.data["rows"]).assign(process=process))
        print(
            f"process {process}: {len(result.data['rows'])} timings in {result.seconds:.1f} s",
            file=sys.stderr,
        )
        pd.concat(parts, ignore_index=True).to_parquet(out / "step_processes.parquet")
    return pd.concat(parts, ignore_index=True)


def runs_ratios(steps: pd.DataFrame, run_a: Path, run_b: Path, loaded: dict) -> pd.DataFrame:
    """`steps` with each run's own confirmed ratio of that step (cliff_tolerance.one_sided, row for row; NaN where a
    run did not re-measure it). `loaded`: run -> the run as cliff_tolerance.load reads it."""
    (df_a, p_a, _), (df_b, p_b, _) = loaded[run_a], loaded[run_b]
    own = cliff_tolerance.one_sided(
        run_a, run_b, cliff_tolerance.re_measured(df_a, p_a), cliff_tolerance.re_measured(df_b, p_b)
    )
    where = [c for c in own.columns if c not in ("ratio_a", "verdict_a", "ratio_b", "verdict_b")]
    keyed = steps[where].apply(lambda column: column.map(agreement._text))  # one_sided's spelling of a step
    found = keyed.merge(own, on=where, how="left")  # row for row: own holds each step once
    return steps.assign(
        run_a=found.ratio_a.astype(float).to_numpy(), run_b=found.ratio_b.astype(float).to_numpy()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument(
        "--pairs", type=int, default=0, help="pairs per step (default: the runs' confirm_pairs)"
    )
    parser.add_argument("--steps", type=int, default=0, help="only the first N disputed steps (a smoke test)")
    parser.add_argument(
        "--every",
        action="store_true",
        help="time every step run A re-measured too, in the same rounds (a pass as long as the run's own)",
    )
    parser.add_argument(
        "--rows", type=Path, help="judge a saved step_processes.parquet again instead of measuring"
    )
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    summary = json.loads((args.run_a / results.SUMMARY).read_text())
    params = summary["params"]
    steps = disputed(args.run_a, args.run_b, summary["environment"]["mlx"])
    steps = steps.head(args.steps) if args.steps else steps
    if steps.empty:
        print("the two runs saved the same cliffs: nothing to re-measure")
        return 0
    timing = {k: params[k] for k in ("warmup", "target_ms", "min_calls", "max_calls")}
    timed = every_step(args.run_a, summary["environment"]["mlx"]) if args.every else steps
    if args.every:  # the disputed steps a run did not re-measure (its sweep did not nominate them) go in too
        timed = pd.concat([timed, steps], ignore_index=True).drop_duplicates(
            subset=[*GROUP, "before_length", "length"]
        )
    config = {"confirm": cases(timed), "pairs": args.pairs or int(params["confirm_pairs"]), **timing}
    rows = pd.read_parquet(args.rows) if args.rows else measure(config, args.processes, args.out)
    ratios = step_ratios(rows, steps, config["pairs"])
    tolerance = float(params["tolerance"])
    index = [c for c in KEY if c not in ("n_q_heads", "n_kv_heads")] + ["only_in"]
    table = ratios.pivot_table(index=index, columns="process", values="ratio")
    loaded = {run: cliff_tolerance.load(run) for run in (args.run_a, args.run_b)}  # read once, used twice
    table = table.join(
        runs_ratios(steps, args.run_a, args.run_b, loaded).set_index(index)[["run_a", "run_b"]]
    )
    n = rows.process.nunique()
    print(f"# {args.run_a.name} and {args.run_b.name}: {len(steps)} disputed steps, {n} fresh processes")
    print(
        f"# confirmed ratio (after / before, geometric mean of {config['pairs']} pairs) per process; the runs judged "
        f"at tolerance {tolerance:g} (a jump lies outside the work envelope widened by it)"
    )
    print(table.round(3).to_string())
    passes = pd.concat(
        [*(own_passes(run, loaded[run], steps) for run in (args.run_a, args.run_b)), ratios],
        ignore_index=True,
    )
    print(
        "\n# per pass (the runs' own processes <run>:<process>.<pass>, then the fresh ones): calls per sample "
        "(calibrated at the longer length when the pass starts: a process in its slow state there gets fewer) and "
        "median time of one call, us; the ratio's 95% t interval over the pass's pairs and the lag-1 autocorrelation "
        "of consecutive pairs"
    )
    step_names = (
        passes[["before_length", "length", "probe_mlx", "variant", "mode"]].astype(str).agg(" ".join, axis=1)
    )
    columns = ["step", "process", "calls", "before_us", "after_us", "ratio", "low95", "high95", "lag1"]
    shown = passes.assign(step=step_names)[columns].sort_values("step", kind="stable")
    shown = shown.round({"before_us": 2, "after_us": 2, "ratio": 3, "low95": 3, "high95": 3, "lag1": 2})
    print(shown.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
