"""Ratios between two variants of one long-format frame (one row per measured value): the numerator's rows
and the denominator's are those whose `column` names them (a strategy, a loop variant, an MLX version).

Paired when both ran back to back: the ratio is taken key by key (round, or round and length), so a drift
of the machine that hits both cancels; pooled to give one ratio over several configurations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlx_workbook.core import measure


def paired_ratios(df: pd.DataFrame, column: str, numerator, denominator, on: list[str]) -> pd.DataFrame:
    """value(numerator) / value(denominator) matched on the `on` columns (the median where a key holds several
    rows); keys where only one side ran are left out. Columns: `on`, then ratio."""
    sides = [df[df[column] == side].groupby(on).value.median() for side in (numerator, denominator)]
    pairs = pd.concat(dict(zip("ab", sides)), axis=1).dropna()
    return (pairs.a / pairs.b).astype(float).rename("ratio").reset_index()


def pooled_ratio(
    df: pd.DataFrame, column: str, numerator, denominator, by: list[str], *, paired_on: str | None = None
) -> measure.Stats | None:
    """One ratio numerator/denominator over every configuration `by` names (e.g. lengths); None when the two
    never ran in the same configuration.

    paired_on (e.g. "trial", the round both ran in back to back): the median of every paired ratio, with
    summarize's bootstrap interval. Unpaired (None): each configuration's values, both sides, are divided by the
    denominator's median there, so configurations of very different times weigh alike, and ratio_interval
    bootstraps the pooled samples."""
    if paired_on is not None:
        ratios = paired_ratios(df, column, numerator, denominator, [*by, paired_on]).ratio
        return measure.summarize(ratios) if len(ratios) else None
    num, den = [], []
    for _, g in df.groupby(by):
        a = g.loc[g[column] == numerator, "value"].to_numpy(float)
        b = g.loc[g[column] == denominator, "value"].to_numpy(float)
        if a.size and b.size:
            scale = np.median(b)
            num.append(a / scale)
            den.append(b / scale)
    if not num:
        return None
    return measure.ratio_interval(np.concatenate(num), np.concatenate(den))
