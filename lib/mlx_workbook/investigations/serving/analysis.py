"""07_serving's analysis: vLLM's serving metrics (data/published/vllm_serving_metrics.yaml) from the stored
per-request rows, percentiles with order-statistic intervals, load tables, and the charts.

Percentile intervals are distribution-free: the ranks l < u of the sorted sample with P(l <= B < u) >= 95% for
B ~ Binomial(n, q). When n is too small for the upper rank to exist (p99 needs n >= 299 for a bounded interval)
the interval's high end is the sample maximum and `bounded` says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import measure, published
from mlx_workbook.report import plots

PERCENTILES = (50, 90, 99)
LATENCIES = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2el_ms": "E2EL"}
CONFIDENCE = 0.95


def definitions() -> pd.DataFrame:
    """vLLM's metric definitions as this notebook uses them, with the source they are cited from."""
    return published.table("vllm_serving_metrics", "metrics")


# --- percentiles with intervals ------------------------------------------------------------------------------


def _binom_cdf(n: int, q: float) -> np.ndarray:
    k = np.arange(n + 1)
    logpmf = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in k])
        + k * math.log(q)
        + (n - k) * math.log1p(-q)
    )
    return np.cumsum(np.exp(logpmf))


def quantile_interval(values, q: float, confidence: float = CONFIDENCE) -> dict:
    """The q-quantile (np.percentile, as vLLM reports it) with a distribution-free order-statistic interval."""
    x = np.sort(np.asarray([v for v in values if np.isfinite(v)], dtype=float))
    n = x.size
    if n == 0:
        return {"value": math.nan, "low": math.nan, "high": math.nan, "n": 0, "bounded": False}
    alpha = (1 - confidence) / 2
    cdf = _binom_cdf(n, q)  # cdf[k] = P(B <= k)
    lo_rank = int(np.searchsorted(cdf, alpha, side="right"))  # P(B < lo_rank) <= alpha  (1-based rank)
    hi_rank = int(np.searchsorted(cdf, 1 - alpha, side="left")) + 1  # P(B >= hi_rank) <= alpha
    bounded = lo_rank >= 1 and hi_rank <= n
    return {
        "value": float(np.percentile(x, 100 * q)),
        "low": float(x[max(lo_rank, 1) - 1]),
        "high": float(x[min(hi_rank, n) - 1]),
        "n": int(n),
        "bounded": bool(bounded),
    }


def percentiles(df: pd.DataFrame, experiment: str, by: list[str], metrics=LATENCIES) -> pd.DataFrame:
    """p50/p90/p99 of TTFT, TPOT, ITL and E2EL per group, requests of all rounds pooled."""
    d = df[(df.experiment == experiment) & df.metric.isin(list(metrics))]
    rows = []
    for key, g in d.groupby(by + ["metric"], sort=True):
        for p in PERCENTILES:
            qi = quantile_interval(g.value, p / 100)
            rows.append({**dict(zip(by + ["metric"], key)), "name": f"p{p} {metrics[key[-1]]}", "p": p, **qi})
    return pd.DataFrame(rows)


# --- load tables ---------------------------------------------------------------------------------------------


def _requests(df: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """One row per request: its TTFT, TPOT, E2EL (NaN when it failed) and timestamps."""
    d = df[(df.experiment == experiment) & df.metric.isin(["ttft_ms", "tpot_ms", "e2el_ms", "failed"])]
    keys = [
        c
        for c in ["concurrency", "rate_fraction", "round", "request"]
        if c in d.columns and d[c].notna().any()
    ]
    wide = d.pivot_table(index=keys, columns="metric", values="value", aggfunc="first").reset_index()
    extra = d.drop_duplicates(keys).set_index(keys)[
        ["output_tokens", "sent_s", "first_token_at_s", "last_token_at_s", "ok"]
    ]
    return wide.join(extra, on=keys)


def _overlap(g: pd.DataFrame) -> tuple[float, float]:
    """(requests decoding together while any is decoding, share of requests whose decode overlapped another's).

    Decoding runs from a request's first token to its last. Serving one request at a time gives exactly 1 and 0;
    a server that batches gives more than 1, up to the concurrency, and a share near 1.
    """
    ok = g[g.ok.astype(bool)].sort_values("first_token_at_s")
    first, last = ok.first_token_at_s.to_numpy(float), ok.last_token_at_s.to_numpy(float)
    if first.size == 0:
        return math.nan, math.nan
    union, end = 0.0, -math.inf
    for start, stop in zip(first, last):  # length of the union of the decode intervals
        union += max(0.0, stop - max(start, end))
        end = max(end, stop)
    together = float(np.sum(last - first) / union) if union > 0 else math.nan
    overlapped = [
        bool(np.any((first < e) & (last > s) & (np.arange(first.size) != i)))
        for i, (s, e) in enumerate(zip(first, last))
    ]
    return together, float(np.mean(overlapped))


def load_table(
    df: pd.DataFrame, experiment: str, by: str, slo_ttft_ms: float, slo_tpot_ms: float
) -> pd.DataFrame:
    """Per level (concurrency or rate) and round: vLLM's request throughput, output throughput and goodput
    (requests meeting both SLOs / duration), plus tokens/s per user and how much requests overlapped."""
    req = _requests(df, experiment)
    dur = df[(df.experiment == experiment) & (df.metric == "duration_s")]
    rnd = "round" if "round" in req.columns else None
    rows = []
    for key, g in req.groupby([by] + ([rnd] if rnd else []), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        sel = dur[by] == key[0]
        if rnd:
            sel &= dur["round"] == key[1]
        duration = float(dur[sel].value.iloc[0])
        ok = g[g.ok.astype(bool)]
        tpot = ok.tpot_ms.fillna(0.0)  # vLLM: a one-token request has TPOT 0 for goodput
        good = (ok.ttft_ms <= slo_ttft_ms) & (tpot <= slo_tpot_ms)
        together, overlapped = _overlap(g)
        rows.append(
            {
                by: int(key[0]) if by == "concurrency" else key[0],
                "round": key[1] if rnd else 0,
                "requests": len(g),
                "completed": len(ok),
                "failed": len(g) - len(ok),
                "duration_s": duration,
                "request_rps": len(ok) / duration,
                "output_tps": float(ok.output_tokens.sum()) / duration,
                "goodput_rps": float(good.sum()) / duration,
                "slo_attainment": float(good.mean()) if len(ok) else math.nan,
                "tps_per_user": 1e3 / float(ok.tpot_ms.median())
                if ok.tpot_ms.notna().any()
                else math.nan,  # 1 / TPOT
                "decoding_together": together,
                "overlapped_share": overlapped,
            }
        )
    return pd.DataFrame(rows)


def load_summary(
    table: pd.DataFrame,
    by: str,
    columns=(
        "output_tps",
        "request_rps",
        "goodput_rps",
        "tps_per_user",
        "decoding_together",
        "overlapped_share",
    ),
) -> pd.DataFrame:
    """Median over rounds with a bootstrap interval (n = rounds: with 3 rounds that is [min, max])."""
    rows = []
    for level, g in table.groupby(by, sort=True):
        for col in columns:
            vals = g[col].dropna()
            if vals.empty:
                continue
            s = measure.summarize(vals)
            rows.append(
                {by: level, "metric": col, "median": s.median, "low": s.low, "high": s.high, "n": s.n}
            )
    return pd.DataFrame(rows)


def level_stat(summary: pd.DataFrame, by: str, level, metric: str) -> pd.Series:
    return summary[(summary[by] == level) & (summary.metric == metric)].iloc[0]


def capacity_rps(df: pd.DataFrame, slo_ttft_ms: float, slo_tpot_ms: float) -> float:
    """The highest median request throughput of the closed-loop sweep: 1.0 on the open-loop rate scale."""
    s = load_summary(load_table(df, "closed_loop", "concurrency", slo_ttft_ms, slo_tpot_ms), "concurrency")
    return float(s[s.metric == "request_rps"]["median"].max())


def break_concurrency(pct: pd.DataFrame, slo_ttft_ms: float, slo_tpot_ms: float, p: int) -> dict:
    """The lowest concurrency whose p-th percentile TTFT or TPOT is above its target: 'clear' when the whole
    interval is above it, else the lowest one whose point estimate is; None when every level meets it."""
    out = {"clear": None, "point": None}
    targets = {"ttft_ms": slo_ttft_ms, "tpot_ms": slo_tpot_ms}
    sel = pct[(pct.p == p) & pct.metric.isin(list(targets))].sort_values("concurrency")
    for row in sel.itertuples():
        t = targets[row.metric]
        if out["point"] is None and row.value > t:
            out["point"] = int(row.concurrency)
        if out["clear"] is None and row.low > t:
            out["clear"] = int(row.concurrency)
    return out


# --- overhead ------------------------------------------------------------------------------------------------


def overhead_table(df: pd.DataFrame) -> pd.DataFrame:
    """Median TTFT, TPOT and E2EL per variant and length (n = blocks)."""
    d = df[df.experiment == "overhead"]
    tab = plots.summary_table(d, ["length", "metric", "variant"])
    return tab.sort_values(["length", "metric", "variant"]).reset_index(drop=True)


def paired_overhead(df: pd.DataFrame, baseline: str, variant: str, metric: str = "e2el_ms") -> pd.DataFrame:
    """Per length and block: variant - baseline (ms) and variant / baseline, from the same block's prompt."""
    d = df[(df.experiment == "overhead") & (df.metric == metric)]
    wide = d.pivot_table(index=["length", "block"], columns="variant", values="value").reset_index()
    wide["extra_ms"] = wide[variant] - wide[baseline]
    wide["ratio"] = wide[variant] / wide[baseline]
    return wide[["length", "block", baseline, variant, "extra_ms", "ratio"]]


def overhead_summary(df: pd.DataFrame, baseline: str, variant: str) -> pd.DataFrame:
    """Per length: extra ms per request and extra % (E2EL), extra ms per output token (TPOT), medians of the
    per-block paired values with bootstrap intervals (n = blocks)."""
    e2el, tpot = paired_overhead(df, baseline, variant), paired_overhead(df, baseline, variant, "tpot_ms")
    rows = []
    for n, g in e2el.groupby("length"):
        t = tpot[tpot.length == n]
        for name, vals, unit in [
            ("extra_ms_per_request", g.extra_ms, "ms"),
            ("extra_pct", 100 * (g.ratio - 1), "%"),
            ("extra_ms_per_token", t.extra_ms, "ms"),
        ]:
            s = measure.summarize(vals)
            rows.append(
                {
                    "length": int(n),
                    "metric": name,
                    "median": s.median,
                    "low": s.low,
                    "high": s.high,
                    "n": s.n,
                    "unit": unit,
                }
            )
    return pd.DataFrame(rows)


def fixed_and_per_token(df: pd.DataFrame, baseline: str, variant: str) -> dict:
    """The overhead split the robust way, every length's blocks pooled: the extra TTFT is what a request pays
    once (connection, JSON, tokenizing, queue hand-off), the extra TPOT what it pays per token (streaming,
    detokenizing, thread hand-offs). Medians of the paired differences with bootstrap intervals."""
    ttft = paired_overhead(df, baseline, variant, "ttft_ms").extra_ms
    tpot = paired_overhead(df, baseline, variant, "tpot_ms").extra_ms
    return {"per_request": measure.summarize(ttft), "per_token": measure.summarize(tpot)}


def same_tokens(df: pd.DataFrame) -> bool:
    """Every variant generated the same tokens from each block's prompt."""
    d = df[(df.experiment == "overhead") & (df.metric == "e2el_ms")]
    return bool((d.groupby(["length", "block"]).tokens_digest.nunique() == 1).all())


def overhead_chart(df: pd.DataFrame, where: str) -> Figure:
    d = df[(df.experiment == "overhead") & (df.metric == "e2el_ms")]
    tab = plots.summary_table(d, ["variant", "length"])
    return plots.bars_with_intervals(
        tab.assign(length=tab.length.map(lambda n: f"{int(n)} tokens")),
        category="variant",
        group="length",
        ylabel="end-to-end latency, ms (median, 95% interval)",
        title=f"One request three ways, {d.label.iloc[0]}, {where}",
    )


# --- charts of the load sweeps -------------------------------------------------------------------------------


def latency_chart(pct: pd.DataFrame, metric: str, target_ms: float, where: str, label: str) -> Figure:
    tab = pct[pct.metric == metric].rename(columns={"value": "median"})
    return plots.lines_with_intervals(
        tab,
        x="concurrency",
        series="name",
        logx=True,
        logy=True,
        title=f"{LATENCIES[metric]} against concurrency, {label}, {where}",
        xlabel="concurrent users (closed loop)",
        ylabel=f"{LATENCIES[metric]}, ms (95% order-statistic interval)",
        ceilings={f"target {target_ms:g} ms": target_ms},
    )


def inproc_table(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df.experiment == "inproc_batch"]
    return plots.summary_table(d, ["batch", "metric"]).sort_values(["metric", "batch"]).reset_index(drop=True)


def throughput_chart(summary: pd.DataFrame, df: pd.DataFrame, where: str, label: str) -> Figure:
    http = (
        summary[summary.metric == "output_tps"]
        .rename(columns={"concurrency": "x"})
        .assign(series="HTTP, output tok/s")
    )
    inp = inproc_table(df)
    inp = (
        inp[inp.metric == "aggregate_tps"]
        .rename(columns={"batch": "x"})
        .assign(series="in process, BatchGenerator")
    )
    return plots.lines_with_intervals(
        pd.concat([http, inp], ignore_index=True),
        x="x",
        series="series",
        logx=True,
        logy=True,
        title=f"Aggregate output tokens/s, {label}, {where}",
        xlabel="concurrent users (HTTP) / batch size (in process)",
        ylabel="output tokens/s (median over rounds, 95% interval)",
    )


def frontier_points(summary: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Throughput per device against tokens/s per user, HTTP per concurrency and in process per batch size."""
    http = summary.pivot_table(index="concurrency", columns="metric", values="median")
    rows = [
        {
            "series": "HTTP (mlx_lm.server)",
            "level": int(c),
            "per_user": r.tps_per_user,
            "per_device": r.output_tps,
        }
        for c, r in http.iterrows()
    ]
    inp = inproc_table(df).pivot_table(index="batch", columns="metric", values="median")
    rows += [
        {
            "series": "in process (BatchGenerator)",
            "level": int(b),
            "per_user": r.per_sequence_tps,
            "per_device": r.aggregate_tps,
        }
        for b, r in inp.iterrows()
    ]
    return pd.DataFrame(rows)


def frontier_chart(points: pd.DataFrame, where: str, label: str) -> Figure:
    fig, ax = plots.new_figure(7.0, 4.5)
    for i, (name, g) in enumerate(points.groupby("series", sort=False)):
        g = g.sort_values("level")
        color = plots.PALETTE[i]
        ax.plot(g.per_user, g.per_device, marker="o", ms=4, color=color, label=name)
        for r in g.itertuples():
            ax.annotate(
                str(r.level),
                (r.per_user, r.per_device),
                fontsize=7,
                color=color,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set(
        xscale="log",
        yscale="log",
        title=f"Throughput against interactivity, {label}, {where}",
        xlabel="tokens/s per user (1 / TPOT, median)",
        ylabel="output tokens/s per device",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="labels: concurrency / batch", title_fontsize=7)
    return fig


def open_loop_chart(pct: pd.DataFrame, table: pd.DataFrame, where: str, label: str) -> Figure:
    rate = table.groupby("rate_fraction").request_rps.median()
    tab = pct[(pct.p == 90) & pct.metric.isin(["ttft_ms", "e2el_ms"])].rename(columns={"value": "median"})
    return plots.lines_with_intervals(
        tab,
        x="rate_fraction",
        series="name",
        logy=True,
        title=f"Open loop (Poisson arrivals), {label}, {where}; achieved req/s: "
        + ", ".join(f"{v:.2g}" for v in rate.values),
        xlabel="offered rate / closed-loop capacity",
        ylabel="latency, ms (95% order-statistic interval)",
    )


# --- prompt reuse and faults ---------------------------------------------------------------------------------


def reuse_table(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df.experiment == "prompt_reuse"]
    if d.empty:
        return pd.DataFrame(columns=["variant", "median", "low", "high", "n", "cached_tokens"])
    tab = plots.summary_table(d, ["variant"])
    return tab.merge(d.groupby("variant").cached_tokens.median().rename("cached_tokens"), on="variant")


def reuse_chart(df: pd.DataFrame, where: str) -> Figure | None:
    """None when no pair was measured (the server broke: see server_failures)."""
    if "prompt_reuse" not in set(df.experiment):
        return None
    r = df[df.experiment == "prompt_reuse"].iloc[0]
    return plots.bars_with_intervals(
        reuse_table(df),
        category="variant",
        ylabel="time to first token, ms",
        title=f"TTFT over HTTP, {int(r.prefix_tokens)}-token shared prefix + {int(r.suffix_tokens)} new, "
        f"{r.label}, {where}",
    )


def faults_table(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df.experiment == "faults"]
    cols = ["case", "expected", "status", "outcome", "value", "next_request_ok", "server_alive"]
    return (
        d[cols]
        .rename(columns={"value": "elapsed_ms", "status": "HTTP status (0: none)"})
        .reset_index(drop=True)
    )
