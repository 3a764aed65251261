"""Which cliffs two runs of notebook 03 agree on, re-judged from their stored data at several tolerances, and how
much a step's ratio moves between the two processes.

    PYTHONPATH=lib python bench/cliff_tolerance.py RUN_A RUN_B                      # tolerances 0.1 ... 0.4
    PYTHONPATH=lib python bench/cliff_tolerance.py RUN_A RUN_B --tolerances 0.1 0.25
    PYTHONPATH=lib python bench/cliff_tolerance.py RUN_A RUN_B --scales 1 0.5 0.25   # the odds, were steps surer

A cliff is a step whose confirmed ratio lies outside the work envelope widened by `tolerance` (cliffs.py). Each
run's stored sweeps and confirmation pairs are judged again with the notebook's own analysis (sdpa_cliff
analysis.candidates and analysis.outcomes) at each tolerance, and the two runs' cliff lists are set side by side
as `make compare` does (report.agreement.list_difference): cliffs in each, only in one, and how many of those the
other run left undecided. Re-judging can only drop candidates the runs nominated at their own tolerance, and a step
keeps the passes it got there, so it approximates a run made at that tolerance.

Between the processes: for every step both runs re-measured, the log of the ratio of their two confirmed step
ratios (each the geometric mean of its 20-60 alternated pairs, whose own standard error is about 1%), its robust
spread (1.4826 x the median absolute value), how often the two differ by more than 5% and the largest difference;
split by the time of one call, since a call under 0.2 ms is bound by the host's launch work on MLX CUDA rather
than by the kernel.

On the two H200 runs at ae971f2 (reports/reference, repeat/; MLX CUDA 0.32.4, two processes at once, one per GPU):
steps with calls under 0.2 ms moved 2.7% between the processes (robust), a fifth of them by more than 5% (up
to 25%: 256 -> 257 tokens of the unfused additive mask, 0.97 in one run, 1.25 in the other);
steps with longer calls moved 0.9%. At tolerance 0.1 the runs found 77 cliffs each, 63 of them shared
(reports/reference/bench/cliff_tolerance_cuda-nvidia-h200_ae971f2.txt has the table per tolerance). The 82cdd8e
twins, run at 0.25: 2.7% and up to 50% between the processes, 45 and 43 cliffs, 42 shared (..._82cdd8e.txt).

How likely two runs are to save identical lists (`identical_odds`, a model of these data): each step both runs
re-measured has a log ratio mu (the mean of the two runs'); one run's estimate of it spreads with sigma, the larger
of the step's own spread over every process that re-measured it in either run (the SD of their 4-6 log ratios)
and its call-time class's robust spread between the runs (over sqrt 2, as that is a difference of two runs); a run
lists the step when its interval (half-width h in logs, the two runs' mean) lies wholly outside the widened
envelope [lo, hi]: P = Phi((mu - h - log hi) / sigma) + Phi((log lo - mu - h) / sigma). With the steps
independent, two runs differ on sum 2P(1 - P) steps, and their lists are identical with probability
prod(P^2 + (1 - P)^2). `--scales` shrinks sigma and h together, as 1 / scale^2 times the processes per step would.
A step whose truth lies on the edge stays a coin toss however sure each run is; only fewer such steps help.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from mlx_workbook.core import results
from mlx_workbook.investigations.sdpa_cliff import analysis, cliffs
from mlx_workbook.report import agreement

SWEEPS = analysis.SWEEPS
HOST_BOUND_MS = 0.2  # a call shorter than this is mostly the host's launch work on MLX CUDA (H200)


# bench/twins_* keep a run's summary under this name, so the folder of runs holding them does not read them as runs
KEPT_SUMMARY = "run_summary.json"


def load(run: Path) -> tuple[pd.DataFrame, dict, str]:
    """A 03 run's measurements, parameters and MLX version."""
    file = run / results.SUMMARY if (run / results.SUMMARY).exists() else run / KEPT_SUMMARY
    summary = json.loads(file.read_text())
    if summary.get("notebook") != "03_sdpa_cliff":
        raise SystemExit(f"{run} is a run of {summary.get('notebook')}, not of 03_sdpa_cliff")
    return pd.read_parquet(run / "measurements.parquet"), summary["params"], summary["environment"]["mlx"]


def judge(df: pd.DataFrame, p: dict, mlx: str, tolerance: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cliffs, undecided steps) of every sweep of a run, judged at `tolerance`, as the notebook saves them."""
    p = {**p, "tolerance": tolerance}
    found, edge = {}, {}
    for sweep in SWEEPS:
        candidates = analysis.candidates(df, sweep, p)
        found[sweep], _, edge[sweep] = analysis.outcomes(df, sweep, candidates, p)
    return analysis.all_cliffs(found, mlx), analysis.all_cliffs(edge, mlx)


def save(folder: Path, found: pd.DataFrame, undecided: pd.DataFrame) -> Path:
    """The two tables where report.agreement looks for them (a run's tables/ folder)."""
    tables = folder / results.TABLES
    tables.mkdir(parents=True, exist_ok=True)
    for table, name, key in (
        (found, "cliffs", analysis.CLIFF_KEY),
        (undecided, "undecided_steps", analysis.UNDECIDED_KEY),
    ):
        table.to_csv(tables / f"{name}.csv", index=False)
        (tables / f"{name}.key").write_text(" ".join(key) + "\n")
    return folder


def re_measured(df: pd.DataFrame, p: dict) -> pd.DataFrame:
    """Every step a run re-measured (nominated at its own tolerance, or around a boundary), with its confirmed
    ratio and the shorter of its two lengths' median time of one call."""
    parts, mlx = [], df["mlx"].iloc[0]
    for sweep in SWEEPS:
        candidates = analysis.candidates(df, sweep, p)
        if candidates.empty:
            continue
        table = analysis.judged(df, sweep, candidates, p).dropna(subset=["confirm_ratio"])
        table = table.assign(sweep=sweep, call_ms=table[["before", "after"]].min(axis=1))
        # which MLX version timed the step (as the saved lists name it): the versions sweep runs several
        table["probe_mlx"] = table["probe_mlx"].astype(object).fillna(mlx) if "probe_mlx" in table else mlx
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def both_runs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The steps both runs re-measured (`re_measured` tables), side by side (suffixes _a, _b), with `gap`, the log of
    the ratio of their two confirmed ratios, and `calls`, the step's call-time class."""
    key = [c for c in analysis.UNDECIDED_KEY if c in a.columns and c in b.columns]
    both = a.merge(b, on=key, suffixes=("_a", "_b"))
    gap = np.log(both.confirm_ratio_a.astype(float) / both.confirm_ratio_b.astype(float))
    calls = np.where(
        both.call_ms_a < HOST_BOUND_MS, f"calls < {HOST_BOUND_MS:g} ms", f"calls >= {HOST_BOUND_MS:g} ms"
    )
    return both.assign(gap=gap, calls=calls)


def robust_sd(values) -> float:
    """1.4826 x the median absolute value: the SD of normal values around 0, unmoved by a few far ones."""
    return 1.4826 * float(np.median(np.abs(values)))


def between(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per call-time class: steps in both runs, the robust spread of their ratios' log difference, the share more
    than 5% apart and the largest difference."""
    both = both_runs(a, b)
    if both.empty:
        return pd.DataFrame()
    return (
        both.groupby("calls")
        .gap.apply(
            lambda d: pd.Series(
                {
                    "steps": len(d),
                    "robust_sd_pct": 100 * robust_sd(d),
                    "over_5pct_apart": float((d.abs() > np.log(1.05)).mean()),
                    "largest_pct": 100 * float(np.expm1(d.abs().max())),
                }
            )
        )
        .unstack()
        .rename_axis("class")
    )


# one other process's ratio in cliffs.confirm's `other_processes` ("0.817 (unclear), 0.704 (down)")
OTHER_RATIO = re.compile(r"([0-9.eE+-]+) \(")


def process_logs(confirm_ratio: float, other_processes) -> list[float]:
    """The log ratio of a step in every process that re-measured it: the one given and the others."""
    others = OTHER_RATIO.findall(other_processes) if isinstance(other_processes, str) else []
    return list(np.log([float(confirm_ratio), *map(float, others)]))


def identical_odds(a: pd.DataFrame, b: pd.DataFrame, tolerance: float, scale: float = 1.0) -> dict:
    """The model of the module's docstring: over the steps both runs re-measured (`re_measured` tables), how many
    the two runs are expected to list differently at `tolerance`, and the probability that they list none so;
    `scale` shrinks every step's spread and interval."""
    both = both_runs(a, b)
    if both.empty:
        return {"steps": 0, "expected_differing": 0.0, "p_identical": 1.0}
    log_a, log_b = (np.log(both[f"confirm_ratio_{s}"].astype(float)).to_numpy() for s in ("a", "b"))
    # one run's spread around the runs' mean: their class's gap, a difference of two runs, over sqrt 2
    class_sd = both.groupby("calls").gap.transform(robust_sd).to_numpy() / np.sqrt(2)
    step_sd = [
        np.std(
            process_logs(r.confirm_ratio_a, r.other_processes_a)
            + process_logs(r.confirm_ratio_b, r.other_processes_b),
            ddof=1,
        )
        for r in both.itertuples()
    ]
    # a step seen never to vary (sigma 0): its mean alone decides
    sigma = np.maximum(scale * np.maximum(class_sd, step_sd), 1e-12)
    widths = [
        np.log(both[f"confirm_high_{s}"].astype(float) / both[f"confirm_low_{s}"].astype(float)) for s in "ab"
    ]
    half = scale * (widths[0] + widths[1]).to_numpy() / 4  # the two runs' mean half-width, in logs
    work = np.where(both.expected_low_a == 1.0, both.expected_high_a, both.expected_low_a).astype(float)
    low, high = np.log([cliffs.envelope(w, tolerance) for w in work]).T
    mu = (log_a + log_b) / 2
    cdf = np.vectorize(NormalDist().cdf)
    listed = cdf((mu - half - high) / sigma) + cdf((low - mu - half) / sigma)
    return {
        "steps": len(both),
        "expected_differing": float(np.sum(2 * listed * (1 - listed))),
        "p_identical": float(np.prod(listed**2 + (1 - listed) ** 2)),
    }


def only_in_one(run_a: Path, run_b: Path) -> pd.DataFrame:
    """The cliffs the two runs saved in one list only, as `make compare` finds them (the saved key columns, as
    text, and `only_in`: a or b)."""
    d = agreement.list_difference(run_a, run_b, "cliffs")
    rows = [dict(zip(d["columns"], key), only_in=side) for side in ("a", "b") for key in d[f"only_{side}"]]
    return pd.DataFrame(rows)


def one_sided(run_a: Path, run_b: Path, steps_a: pd.DataFrame, steps_b: pd.DataFrame) -> pd.DataFrame:
    """The cliffs the two runs saved in one list only (as `make compare` finds them), each with both runs'
    confirmed ratio and verdict for that step (NaN where a run did not re-measure it) and the widened envelope."""
    out = only_in_one(run_a, run_b)
    if out.empty:
        return out
    where = [c for c in out.columns if c not in ("verdict", "only_in")]
    for side, steps in (("a", steps_a), ("b", steps_b)):
        keyed = steps.assign(**{c: steps[c].map(agreement._text) for c in where if c in steps.columns})
        keyed = keyed.rename(columns={"confirm_ratio": f"ratio_{side}", "confirm_verdict": f"verdict_{side}"})
        out = out.merge(keyed[where + [f"ratio_{side}", f"verdict_{side}"]], on=where, how="left")
    return out[
        [c for c in where if c not in ("kind", "n_q_heads", "n_kv_heads")]
        + ["only_in", "ratio_a", "verdict_a", "ratio_b", "verdict_b"]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.1, 0.15, 0.2, 0.25, 0.3, 0.4])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.125])
    args = parser.parse_args(argv)
    (df_a, p_a, mlx_a), (df_b, p_b, mlx_b) = load(args.run_a), load(args.run_b)
    print(
        f"# A {args.run_a.name} (tolerance {p_a['tolerance']:g}), "
        f"B {args.run_b.name} (tolerance {p_b['tolerance']:g})"
    )
    steps_a, steps_b = re_measured(df_a, p_a), re_measured(df_b, p_b)
    spread = between(steps_a, steps_b)
    print("\nA step's confirmed ratio between the two processes (steps both re-measured):")
    print(spread.round(3).to_string() if len(spread) else "no step re-measured in both")
    differing = one_sided(args.run_a, args.run_b, steps_a, steps_b)
    print("\nCliffs only one run saved, with both runs' confirmation of that step:")
    print(
        differing.round(3).to_string(index=False) if len(differing) else "none: the saved lists are identical"
    )
    print("\nCliff lists re-judged at each tolerance:")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tol in args.tolerances:
            folders = [
                save(Path(tmp) / f"{side}{tol:g}", *judge(df, p, mlx, tol))
                for side, df, p, mlx in (("a", df_a, p_a, mlx_a), ("b", df_b, p_b, mlx_b))
            ]
            d = agreement.list_difference(*folders, "cliffs")
            odds = identical_odds(steps_a, steps_b, tol)
            rows.append(
                {
                    "tolerance": tol,
                    "cliffs_a": d["n_a"],
                    "cliffs_b": d["n_b"],
                    "shared": d["n_a"] - len(d["only_a"]),
                    "only_a": len(d["only_a"]),
                    "of_them_undecided_in_b": d["undecided_b"],
                    "only_b": len(d["only_b"]),
                    "of_them_undecided_in_a": d["undecided_a"],
                    "identical": d["identical"],
                    "model_differing": round(odds["expected_differing"], 2),
                    "model_p_identical": round(odds["p_identical"], 3),
                }
            )
    print(pd.DataFrame(rows).to_string(index=False))
    print(
        "\nThe model's probability of identical lists were every step surer (spread and interval times scale, as"
        " 1 / scale^2 times the processes per step would give):"
    )
    grid = [
        {"tolerance": tol, "scale": scale, **identical_odds(steps_a, steps_b, tol, scale)}
        for tol in args.tolerances
        for scale in args.scales
    ]
    table = pd.DataFrame(grid).pivot(index="tolerance", columns="scale", values="p_identical")[args.scales]
    print(table.rename(columns=lambda s: f"scale {s:g}").round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
