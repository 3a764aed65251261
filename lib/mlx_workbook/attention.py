"""Attention sweeps: prefill and decode SDPA over lengths, mask modes, dtypes, head dims and GQA variants.

The measuring code is the self-contained probe (probes/sdpa_probe.py), the same one versions.py runs under
other MLX versions; this module builds its cases, stores every round of trials in the run as it finishes, and
reads the stored sweeps back: cliffs, pairs of lengths, ratios between variants or versions.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from . import cliffs, measure
from .probes import sdpa_probe as probe
from .results import Run

MODES, VARIANTS, DTYPES = probe.MODES, probe.VARIANTS, tuple(probe.DTYPES)
GROUP = list(probe.GROUP_KEYS)  # a sweep's configuration: everything but the length
CASE_FIELDS = GROUP + ["length", "q_len", "k_len", "pairs", "flops", "calls"]


def around(boundaries: list[int], offsets: list[int]) -> list[int]:
    """Lengths near each boundary, e.g. around([128], [-12, -8, -4, -1, 0, 1, 4, 12]) -> 116 ... 140."""
    return sorted({b + o for b in boundaries for o in offsets if b + o >= 1})


def sweep_lengths(wide: list[int], boundaries: list[int], offsets: list[int]) -> list[int]:
    """The wide sweep and the fine sweeps around every boundary, merged: neighbours are compared in order."""
    return sorted(set(int(n) for n in wide) | set(around(boundaries, offsets)))


def validate(*, modes=(), dtypes=(), head_dims=(), lengths=(), n_q_heads: int = 1, n_kv_heads: int = 1,
             variants=()) -> None:
    """One clear error for impossible sweep parameters, before anything is built."""
    for name, given, known in (("mask mode", modes, MODES), ("dtype", dtypes, DTYPES), ("variant", variants, VARIANTS)):
        bad = [g for g in given if g not in known]
        if bad:
            raise ValueError(f"unknown {name} {bad}; use any of {list(known)}")
    if any(int(d) < 1 for d in head_dims) or any(int(n) < 1 for n in lengths):
        raise ValueError(f"head dims and lengths must be positive, got {list(head_dims)} and {list(lengths)}")
    if n_q_heads < 1 or n_kv_heads < 1 or n_q_heads % n_kv_heads:
        raise ValueError(f"query heads ({n_q_heads}) must be a multiple of key/value heads ({n_kv_heads})")


def prefill_cases(lengths, *, modes, dtypes, head_dims, n_q_heads, n_kv_heads, variants=("sdpa",)) -> list[dict]:
    return probe.cases_from_grid("prefill", lengths, modes, dtypes, head_dims, n_q_heads, n_kv_heads, variants)


def decode_cases(lengths, *, dtypes, head_dims, n_q_heads, n_kv_heads, variants=("sdpa",)) -> list[dict]:
    return probe.cases_from_grid("decode", lengths, ["none"], dtypes, head_dims, n_q_heads, n_kv_heads, variants)


def gqa_cases(prefill_lengths, decode_lengths, *, dtype, head_dim, n_q_heads, n_kv_heads) -> list[dict]:
    """Native grouped-query SDPA against K/V heads repeated by hand, at prefill (causal) and decode shapes."""
    if n_q_heads == n_kv_heads:
        raise ValueError("the GQA comparison needs fewer key/value heads than query heads")
    both = ("sdpa", "repeat_kv")
    return (prefill_cases(prefill_lengths, modes=["causal"], dtypes=[dtype], head_dims=[head_dim],
                          n_q_heads=n_q_heads, n_kv_heads=n_kv_heads, variants=both)
            + decode_cases(decode_lengths, dtypes=[dtype], head_dims=[head_dim], n_q_heads=n_q_heads,
                           n_kv_heads=n_kv_heads, variants=both))


def unique(cases: list[dict]) -> list[dict]:
    """Cases without duplicates (two grids may share some), in their first order."""
    seen, out = set(), []
    for c in cases:
        key = tuple(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def to_rows(probe_rows: list[dict], **extra) -> list[dict]:
    """Probe rows as measurement rows: metric "ms" (per call), the case's fields, the trial number."""
    return [dict(metric="ms", value=r["ms"], unit="ms", trial=r["trial"], **{k: r[k] for k in CASE_FIELDS}, **extra)
            for r in probe_rows]


class _Store:
    """Stores finished rounds in the run at most every `every_s` seconds: the run rewrites its whole table on
    each store, and a GPU sweep finishes hundreds of rounds (a crash loses at most `every_s` of trials)."""

    def __init__(self, run: Run, experiment: str, every_s: float):
        self.run, self.experiment, self.every_s = run, experiment, every_s
        self.rows, self.last = [], time.perf_counter()

    def add(self, rows: list[dict]) -> None:
        self.rows += to_rows(rows)
        if time.perf_counter() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.run.record_many(self.experiment, self.rows)
        self.rows, self.last = [], time.perf_counter()


def sweep(run: Run, experiment: str, cases: list[dict], *, repeats: int, warmup: int = 1, target_ms: float = 5,
          max_calls: int = 100, store_every_s: float = 2.0) -> list[dict]:
    """Time every case (interleaved rounds per configuration), storing finished rounds as they come.

    Returns the configurations that failed (with the error) so the notebook can show them; the rest still ran."""
    config = {"cases": unique(cases), "repeats": repeats, "warmup": warmup, "target_ms": target_ms,
              "max_calls": max_calls}
    store = _Store(run, experiment, store_every_s)
    try:
        out = probe.run(config, on_round=store.add)
    finally:
        store.flush()
    return out["errors"]


def record_version(run: Run, result, experiment: str = "versions") -> None:
    """One version's probe results (versions.VersionResult) into the run, tagged with that version."""
    if result.ok and result.data["rows"]:
        run.record_many(experiment, to_rows(result.data["rows"], probe_mlx=result.data["mlx"],
                                            probe_backend=result.data["backend"]))


# --- reading the stored sweeps ------------------------------------------------------------------------------


def per_pair(df: pd.DataFrame) -> pd.DataFrame:
    """Time per unit of attention work: nanoseconds per query-key pair (of the full q_len x k_len score matrix,
    whatever the mask, so mask modes compare as plain time) and query head."""
    return df.assign(value=df["value"] * 1e6 / (df["q_len"] * df["k_len"] * df["n_q_heads"]), unit="ns/pair")


def scan(df: pd.DataFrame, *, tolerance: float, by: list[str] | None = None) -> pd.DataFrame:
    """Every cliff of every configuration in `df` (work = the attention flops of each length)."""
    by = by or [c for c in GROUP + ["probe_mlx"] if c in df.columns]
    return cliffs.scan(df, by, work="flops", tolerance=tolerance)


def select(df: pd.DataFrame, **filters) -> pd.DataFrame:
    for column, value in filters.items():
        df = df[df[column] == value]
    return df


def pair(df: pd.DataFrame, before: int, after: int, *, tolerance: float, **filters) -> cliffs.Step | None:
    """The step between two lengths of one configuration (filters pick it, e.g. mode="causal")."""
    sub = select(df, **filters)
    if sub.empty:
        return None
    if sub.groupby([c for c in GROUP if c in sub.columns]).ngroups > 1:
        raise ValueError(f"filters {filters} leave more than one configuration; add filters")
    return cliffs.pair(sub, before, after, work="flops", tolerance=tolerance)


def pooled_ratio(df: pd.DataFrame, column: str, numerator, denominator, keys: list[str]) -> measure.Stats | None:
    """Median ratio numerator/denominator of `column` pooled over matching configurations `keys`.

    Each configuration's trials (both sides) are divided by the denominator's median there first, so lengths
    with very different times weigh alike; the interval is ratio_interval's bootstrap of the pooled samples."""
    num, den = [], []
    for _, g in df.groupby(keys):
        a = g.loc[g[column] == numerator, "value"].to_numpy(float)
        b = g.loc[g[column] == denominator, "value"].to_numpy(float)
        if a.size and b.size:
            scale = np.median(b)
            num.append(a / scale)
            den.append(b / scale)
    if not num:
        return None
    return measure.ratio_interval(np.concatenate(num), np.concatenate(den))


def at_lengths(df: pd.DataFrame, lengths: list[int], by: list[str]) -> pd.DataFrame:
    """Median ms per configuration at some lengths, one column per length (e.g. the 127 / 128 table)."""
    sub = df[df["length"].isin(lengths)]
    table = sub.groupby(by + ["length"])["value"].median().unstack("length")
    return table.rename(columns=lambda n: f"{n} tokens (ms)").reset_index()
