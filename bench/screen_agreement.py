"""How alike two runs of notebook 03 see their sweeps: every neighbouring step's sweep ratio in both runs, and the
steps each run's screen nominates for a confirmation pass, judged two ways from the stored rows.

    PYTHONPATH=lib python bench/screen_agreement.py RUN_A RUN_B

- **medians**: the ratio of the two lengths' median times over the rounds, bootstrap interval, each band on its own
  (03 methods 2-11);
- **paired**: the median of the per-round ratios, t interval on their logs (method 12): each round times every
  length of a sweep once, so what slows a whole round cancels within it.

Per sweep it prints the steps both runs timed, the robust spread (1.4826 x median absolute deviation) of the log of
run A's ratio over run B's, the share more than 10% apart, and each run's nominated steps (the notebook's screen:
the run's tolerance and screen margin) with how many the two share (and their Jaccard index).
The sweep only nominates: every step around a swept boundary is re-measured whatever it says, and a nominated step
is a cliff only when its confirmation pass finds it, so a noisier screen costs re-measured steps and can miss a
step away from the boundaries; it does not make a cliff by itself.

On the H200 twins at 65acd48 (method 11), run A's and run B's step ratios lay apart (robust SD) by 8.3% as medians
and 5.9% paired in the prefill sweep, 7.0% and 4.3% in decode, 4.5% and 2.5% in versions; the nominated sets'
Jaccard index went from 0.51 to 0.65 (prefill), 0.27 to 0.50 (decode) and 0.67 to 1.00 (versions). The d34abfb
twins (method 9): 8.5% -> 6.9%, 7.1% -> 4.3%, 5.4% -> 2.3%; Jaccard 0.55 -> 0.58, 0.46 -> 0.86, 0.33 -> 1.00.
Output: reports/reference/bench/screen_agreement_cuda-nvidia-h200_*.txt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mlx_workbook.core.frames import rows
from mlx_workbook.investigations.sdpa_cliff import cliffs
from mlx_workbook.investigations.sdpa_cliff import measure as attention

sys.path.insert(0, str(Path(__file__).parent))
import cliff_tolerance  # noqa: E402 - a sibling script: its `load` reads a stored 03 run

# the probe sweeps (the prompt sweep times a model, once per length)
SWEEPS = ("prefill", "decode", "versions")
RULES = ("medians", "paired")
APART = 0.10  # "far apart": the two runs' ratios of one step differ by more than this


def screen(df: pd.DataFrame, sweep: str, rule: str, p: dict, jumps_only: bool) -> pd.DataFrame:
    """A sweep's scan as the notebook's screen makes it (analysis.scan: the run's tolerance and screen margin), or
    every step with `jumps_only` False. "medians" reads the rows without their rounds, each band on its own as
    method 11 did (cliffs.steps then compares unpaired medians); "paired" reads them as they are."""
    sub = rows(df, sweep)
    if sub.empty:
        return pd.DataFrame()
    by = attention.configuration(sub)
    if rule == "medians":
        by += [c for c in [cliffs.BAND] if c in sub.columns]
        sub = sub.drop(columns=cliffs.ROUND)
    margin = p.get("screen_margin", 0.0)
    return attention.scan(
        sub, by=by, tolerance=p["tolerance"], family_wise=False, jumps_only=jumps_only, margin=margin
    )


def keyed(table: pd.DataFrame) -> pd.Series:
    """A scan table's step ratios by (configuration, before_length, length), probe_mlx spelled alike in both
    runs; a step read twice (the medians rule on two passes whose bands share numbers) keeps its first reading."""
    if table.empty:
        return pd.Series(dtype=float)
    keys = [c for c in attention.GROUP + ["probe_mlx", "before_length", "length"] if c in table.columns]
    names = [" ".join(map(str, step)) for step in table[keys].itertuples(index=False)]
    ratios = pd.Series(table["ratio"].to_numpy(float), index=names)
    return ratios[~ratios.index.duplicated()]


def robust_sd(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else float("nan")


def compare(a: tuple[pd.DataFrame, dict], b: tuple[pd.DataFrame, dict]) -> pd.DataFrame:
    out = []
    for sweep in SWEEPS:
        for rule in RULES:
            ra, rb = (keyed(screen(d, sweep, rule, p, jumps_only=False)) for d, p in (a, b))
            both = ra.index.intersection(rb.index)
            if not len(both):
                continue
            log_apart = np.log(ra[both].to_numpy() / rb[both].to_numpy())
            na, nb = (set(keyed(screen(d, sweep, rule, p, jumps_only=True)).index) for d, p in (a, b))
            out.append(
                {
                    "sweep": sweep,
                    "rule": rule,
                    "steps": len(both),
                    "robust_sd_pct": round(100 * robust_sd(log_apart), 2),
                    f"over_{APART:.0%}_apart": round(float(np.mean(np.abs(log_apart) > np.log1p(APART))), 3),
                    "nominated_a": len(na),
                    "nominated_b": len(nb),
                    "shared": len(na & nb),
                    "jaccard": round(len(na & nb) / max(1, len(na | nb)), 2),
                }
            )
    return pd.DataFrame(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args(argv)
    load = cliff_tolerance.load
    (da, pa, _), (db, pb, _) = load(args.run_a), load(args.run_b)
    print(
        f"# A {args.run_a.name}, B {args.run_b.name}: sweep step ratios and nominations, as medians and paired"
    )
    print(compare((da, pa), (db, pb)).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
