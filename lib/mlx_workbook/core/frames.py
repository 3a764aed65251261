"""Picking rows out of the long-format measurement frames (one row per measured value, `experiment` and
`metric` naming what it is, other columns the setting it was measured at). Every investigation reads its
stored rows back through `rows`."""

from __future__ import annotations

import pandas as pd


def rows(df: pd.DataFrame, experiment: str | None = None, metric: str | None = None, **equal) -> pd.DataFrame:
    """The rows of `experiment` (any when None) and `metric` (any when None) whose columns equal the keyword
    values, e.g. rows(df, "decode", "decode_tps", label="tiny fp32", variant="sync").

    A filter on a column the frame lacks picks nothing (an empty frame), rather than failing: a run that
    never reached an experiment has none of its columns."""
    wanted = dict(equal)
    if experiment is not None:
        wanted["experiment"] = experiment
    if metric is not None:
        wanted["metric"] = metric
    if any(column not in df.columns for column in wanted):
        return df.iloc[0:0]
    keep = pd.Series(True, index=df.index)
    for column, value in wanted.items():
        keep &= df[column] == value
    return df[keep]
