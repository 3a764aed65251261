"""Notebook 06's tables and charts, from stored measurements alone (any run, any number of ranks).

Statistics: every time is summarized by its geometric mean with a 95% t-interval on the log values, and
every comparison by the paired ratio within a block (the layouts ran back to back, in a shuffled order per
block), summarized the same way: a t-interval on log ratios keeps its coverage at small n, where a
percentile bootstrap would be [min, max]. A collective's time per trial is its slowest rank's (a collective
is done when every rank is).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mlx_workbook.core.verdicts import Interval

SINGLE, TENSOR, PIPELINE = "single", "tensor", "pipeline"
LAYOUT_COLORS = {SINGLE: "#444444", TENSOR: "#1f77b4", PIPELINE: "#d62728"}
# Two-sided 95% Student t quantiles by degrees of freedom (no scipy in the environment); beyond 30, 1.96.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


def t95(dof: int) -> float:
    """The quantile at `dof`, or at the nearest tabulated dof below it (a slightly wider, safe interval)."""
    if dof < 1:
        return math.nan
    if dof > 30:
        return 1.96
    return T95[max(k for k in T95 if k <= dof)]


def log_interval(values) -> tuple[Interval, int]:
    """Geometric mean of positive values with a 95% t-interval on their logs, and n."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    if v.size == 0:
        return Interval(math.nan, math.nan, math.nan), 0
    logs = np.log(v)
    mean = float(logs.mean())
    if v.size < 2:
        return Interval(math.exp(mean), math.nan, math.nan), 1
    half = t95(v.size - 1) * float(logs.std(ddof=1)) / math.sqrt(v.size)
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half)), int(v.size)


def mean_interval(values) -> tuple[Interval, int]:
    """Mean with a 95% t-interval, and n."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size < 2:
        return Interval(float(v.mean()) if v.size else math.nan, math.nan, math.nan), int(v.size)
    half = t95(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return Interval(float(v.mean()), float(v.mean()) - half, float(v.mean()) + half), int(v.size)


def _exp(df: pd.DataFrame, name: str) -> pd.DataFrame:
    if df.empty or "experiment" not in df:
        return pd.DataFrame()
    return df[df.experiment == name].copy()


def world_size(df: pd.DataFrame) -> int:
    return int(df["world_size"].max()) if "world_size" in df and df["world_size"].notna().any() else 1


def where(df: pd.DataFrame) -> str:
    if df.empty:
        return "this machine"
    device = df.device.dropna().iloc[0] if "device" in df and df.device.notna().any() else "?"
    backend = (
        df.dist_backend.dropna().iloc[0] if "dist_backend" in df and df.dist_backend.notna().any() else "?"
    )
    return f"{device} ({world_size(df)} ranks, MLX's {backend} backend)"


# --- collectives --------------------------------------------------------------------------------------------


def bus_factor(op: str, ranks: int) -> float:
    """Bytes each rank moves over its link per message byte (NCCL's "bus bandwidth" convention): a ring
    all-reduce 2(N-1)/N, an all-gather of N inputs (N-1), a point-to-point send 1."""
    return {"all_sum": 2 * (ranks - 1) / ranks, "all_gather": ranks - 1.0, "send_recv": 1.0}[op]


def collective_trials(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (world size, op, dtype, size, trial): the slowest rank's seconds per call."""
    c = _exp(df, "collectives")
    if c.empty:
        return c
    keys = ["world_size", "op", "coll_dtype", "size_bytes", "trial"]
    out = c.groupby(keys, as_index=False).agg(seconds=("value", "max"), decode_size=("decode_size", "max"))
    return out


def collective_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per op, dtype and message size: time per call (µs) and bus bandwidth (GB/s), geometric means with
    95% t-intervals over the trials (n)."""
    t = collective_trials(df)
    rows = []
    for (ws, op, dt, size), g in t.groupby(["world_size", "op", "coll_dtype", "size_bytes"]):
        iv, n = log_interval(g.seconds)
        f = bus_factor(op, int(ws)) * size / 1e9
        rows.append(
            dict(
                world_size=int(ws),
                op=op,
                msg_dtype=dt,
                size_bytes=int(size),
                decode_size=bool(g.decode_size.any()),
                us=1e6 * iv.value,
                us_low=1e6 * iv.low,
                us_high=1e6 * iv.high,
                busbw_gbs=f / iv.value,
                busbw_low=f / iv.high,
                busbw_high=f / iv.low,
                n=n,
            )
        )
    return pd.DataFrame(rows)


def _fit_block(sizes: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """t = alpha + size / beta, least squares weighted by 1/t (relative errors: small messages count)."""
    w = 1 / seconds
    a = np.stack([np.ones_like(sizes), sizes], axis=1) * w[:, None]
    (alpha, inv_beta), *_ = np.linalg.lstsq(a, seconds * w, rcond=None)
    return float(alpha), float(1 / inv_beta) if inv_beta > 0 else math.inf


def alpha_beta(df: pd.DataFrame) -> pd.DataFrame:
    """Latency alpha (µs) and bandwidth beta (GB/s of message bytes) per op and dtype: one fit per block
    (every block measured every size), then the mean over blocks with a 95% t-interval (n = blocks)."""
    t = collective_trials(df)
    rows = []
    for (ws, op, dt), g in t.groupby(["world_size", "op", "coll_dtype"]):
        fits = [
            _fit_block(b.size_bytes.to_numpy(float), b.seconds.to_numpy(float))
            for _, b in g.groupby("trial")
            if b.size_bytes.nunique() >= 2
        ]
        if not fits:
            continue
        alpha, n = mean_interval([1e6 * a for a, _ in fits])
        beta, _ = mean_interval([b / 1e9 for _, b in fits if np.isfinite(b)])
        rows.append(
            dict(
                world_size=int(ws),
                op=op,
                msg_dtype=dt,
                alpha_us=alpha.value,
                alpha_low=alpha.low,
                alpha_high=alpha.high,
                beta_gbs=beta.value,
                beta_low=beta.low,
                beta_high=beta.high,
                busbw_at_beta_gbs=beta.value * bus_factor(op, int(ws)),
                blocks=n,
                sizes=int(g.size_bytes.nunique()),
            )
        )
    return pd.DataFrame(rows)


def collective_time_us(table: pd.DataFrame, op: str, dtype: str, size: float, ranks: int) -> Interval:
    """A collective's time at a message size: the measured size itself when it was measured (the decode
    sizes are), else interpolated log-log between the nearest measured sizes."""
    t = table[(table.op == op) & (table.msg_dtype == dtype) & (table.world_size == ranks)].sort_values(
        "size_bytes"
    )
    if t.empty:
        return Interval(math.nan, math.nan, math.nan)
    x = np.log(t.size_bytes.to_numpy(float))

    def at(col):
        return float(np.exp(np.interp(math.log(size), x, np.log(t[col].to_numpy(float)))))

    return Interval(at("us"), at("us_low"), at("us_high"))


def chart_collectives(table: pd.DataFrame, ceiling_gbs: float | None = None, ceiling_label: str = ""):
    """Left: time per call against message size; right: bus bandwidth, with the link's published ceiling."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for (op, dt), g in table.groupby(["op", "msg_dtype"]):
        g = g.sort_values("size_bytes")
        style = "-" if dt == "bfloat16" else "--"
        ax1.errorbar(
            g.size_bytes,
            g.us,
            yerr=[g.us - g.us_low, g.us_high - g.us],
            fmt=style + "o",
            ms=3,
            label=f"{op} {dt}",
        )
        ax2.plot(g.size_bytes, g.busbw_gbs, style + "o", ms=3, label=f"{op} {dt}")
    dec = table[table.decode_size]
    if not dec.empty:
        ax1.scatter(
            dec.size_bytes, dec.us, facecolors="none", edgecolors="k", s=60, label="decode-step sizes"
        )
    if ceiling_gbs:
        ax2.axhline(ceiling_gbs, color="k", ls=":", label=ceiling_label or f"ceiling {ceiling_gbs:g} GB/s")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message bytes per rank")
        ax.grid(alpha=0.3, which="both")
    if not table.empty:  # keep the axis on the data: a t-interval at n=2 can span decades
        ax1.set_ylim(table.us.min() / 10, table.us.max() * 10)
    ax1.set_ylabel("µs per call (slowest rank)")
    ax2.set_ylabel("bus bandwidth, GB/s")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- layouts: plan, decode, prefill -------------------------------------------------------------------------


def plan_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and layout: weight bytes on the busiest rank, whether it ran, and why not."""
    p = _exp(df, "plan")
    if p.empty:
        return p
    cols = ["label", "layout", "value", "runs", "why_not", "budget_bytes", "world_size"]
    return p[cols].rename(columns={"value": "rank_weight_bytes"}).reset_index(drop=True)


def model_bytes(df: pd.DataFrame) -> dict:
    """label -> the whole model's weight bytes (its single-device size, run or not)."""
    p = plan_rows(df)
    return {} if p.empty else dict(p[p.layout == SINGLE].set_index("label").rank_weight_bytes.astype(float))


def devices(layout: str, ranks: int) -> int:
    return 1 if layout == SINGLE else ranks


def decode_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, batch and layout: ms per token (rank 0's clock), tokens/s per user and per device."""
    d = _exp(df, "decode")
    d = d[d["rank"] == 0] if not d.empty else d
    rows = []
    for (ws, label, batch, layout), g in d.groupby(["world_size", "label", "batch", "layout"]):
        iv, n = log_interval(g.value)
        used = devices(layout, int(ws))
        rows.append(
            dict(
                world_size=int(ws),
                label=label,
                batch=int(batch),
                layout=layout,
                devices=used,
                ms_per_token=iv.value,
                ms_low=iv.low,
                ms_high=iv.high,
                tok_s_per_user=1e3 / iv.value,
                tok_s_per_device=int(batch) * 1e3 / iv.value / used,
                n=n,
            )
        )
    return pd.DataFrame(rows)


def paired_speedup(df: pd.DataFrame, experiment: str, key: str) -> pd.DataFrame:
    """single / layout time, paired within each block (trial), per model, `key` (batch or prompt length) and
    parallel layout: >1 means the parallel layout is faster. Geometric mean of the per-block ratios with a
    95% t-interval on their logs (n = blocks)."""
    d = _exp(df, experiment)
    if d.empty:
        return pd.DataFrame()
    d = d[d["rank"] == 0]
    rows = []
    for (ws, label, k), g in d.groupby(["world_size", "label", key]):
        single = g[g.layout == SINGLE].set_index("trial").value
        for layout in sorted(set(g.layout) - {SINGLE}):
            par = g[g.layout == layout].set_index("trial").value
            both = single.index.intersection(par.index)
            if len(both) == 0:
                continue
            iv, n = log_interval((single.loc[both] / par.loc[both]).to_numpy())
            rows.append(
                dict(
                    world_size=int(ws),
                    label=label,
                    **{key: int(k)},
                    layout=layout,
                    speedup=iv.value,
                    low=iv.low,
                    high=iv.high,
                    n=n,
                )
            )
    return pd.DataFrame(rows)


def step_collectives(df: pd.DataFrame) -> pd.DataFrame:
    """Collectives one decode step calls (rank 0's count), per model, layout, batch and collective."""
    s = _exp(df, "step_collectives")
    if s.empty:
        return s
    s = s[s["rank"] == 0]
    return (
        s.groupby(
            ["world_size", "label", "layout", "batch", "collective", "message_bytes", "message_dtype"],
            as_index=False,
        )
        .value.sum()
        .rename(columns={"value": "calls"})
    )


OP_OF = {"all_sum": "all_sum", "all_gather": "all_gather", "send": "send_recv", "recv_like": "send_recv"}


def communication_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, batch and parallel layout: collectives per decode step x their measured time at that
    message size (the communication estimate) beside the measured time per token, the ideal split of the
    single device's time (single / devices), and what the layout measured above that ideal."""
    steps, coll, dec = step_collectives(df), collective_table(df), decode_table(df)
    if steps.empty or dec.empty:
        return pd.DataFrame()
    rows = []
    for (ws, label, layout, batch), g in steps.groupby(["world_size", "label", "layout", "batch"]):
        est = [0.0, 0.0, 0.0]
        calls = 0
        for r in g.itertuples():
            t = collective_time_us(coll, OP_OF[r.collective], r.message_dtype, r.message_bytes, int(ws))
            for i, v in enumerate((t.value, t.low, t.high)):
                est[i] += r.calls * v / 1e3
            calls += r.calls
        par = dec[
            (dec.label == label) & (dec.layout == layout) & (dec.batch == batch) & (dec.world_size == ws)
        ]
        single = dec[
            (dec.label == label) & (dec.layout == SINGLE) & (dec.batch == batch) & (dec.world_size == ws)
        ]
        if par.empty:
            continue
        p = par.iloc[0]
        ideal = single.iloc[0].ms_per_token / devices(layout, int(ws)) if not single.empty else math.nan
        rows.append(
            dict(
                world_size=int(ws),
                label=label,
                layout=layout,
                batch=int(batch),
                collectives_per_step=int(calls),
                message_bytes=int(g.message_bytes.max()),
                comm_ms=est[0],
                comm_low=est[1],
                comm_high=est[2],
                ms_per_token=p.ms_per_token,
                comm_share=est[0] / p.ms_per_token,
                comm_share_low=est[1] / p.ms_per_token,
                comm_share_high=est[2] / p.ms_per_token,
                single_ms=single.iloc[0].ms_per_token if not single.empty else math.nan,
                ideal_ms=ideal,
                above_ideal_ms=p.ms_per_token - ideal,
                minus_single_ms=p.ms_per_token
                - (single.iloc[0].ms_per_token if not single.empty else math.nan),
            )
        )
    return pd.DataFrame(rows)


def prefill_table(df: pd.DataFrame) -> pd.DataFrame:
    d = _exp(df, "prefill")
    d = d[d["rank"] == 0] if not d.empty else d
    rows = []
    for (ws, label, length, layout), g in d.groupby(["world_size", "label", "prompt_tokens", "layout"]):
        iv, n = log_interval(g.value)
        rows.append(
            dict(
                world_size=int(ws),
                label=label,
                prompt_tokens=int(length),
                layout=layout,
                ms=iv.value,
                low=iv.low,
                high=iv.high,
                tok_s=length * 1e3 / iv.value,
                n=n,
            )
        )
    return pd.DataFrame(rows)


def correctness_table(df: pd.DataFrame) -> pd.DataFrame:
    c = _exp(df, "correctness")
    if c.empty:
        return c
    c = c[c["rank"] == 0].copy()
    c["relative_diff"] = c.value / c.max_abs_logit
    # Runs before sharded_load was measured have no such column: their models were all built on the ranks.
    c["loaded_by"] = c["loaded_by"].fillna("build") if "loaded_by" in c else "build"
    # Below float32 (method 3 on): the one device's own error against the same weights in float32, and the
    # step its greedy tokens leave fp32's; absent (NaN) for float32 models, skipped copies and older runs.
    fp32_cols = ("single_dtype_error", "parallel_dtype_error")
    for col in fp32_cols + ("single_fp32_first_difference", "parallel_fp32_first_difference"):
        c[col] = pd.to_numeric(c[col], errors="coerce") if col in c else math.nan
    c["fp32_why_not"] = c["fp32_why_not"].fillna("") if "fp32_why_not" in c else ""
    c["single_dtype_relative"] = c.single_dtype_error / c.max_abs_logit
    # Greedy tokens are a test only on a model with clear margins: where one device's own tokens leave fp32's,
    # the dtype's rounding alone flips an argmax there, so equal split tokens are not expected (information).
    diverges = c.single_fp32_first_difference.fillna(-1) >= 0
    c["compared_tokens"] = c.tokens.where(~diverges, 0).astype(int)
    c["tokens_match_compared"] = c.first_difference < 0
    cols = [
        "label",
        "layout",
        "loaded_by",
        "dtype",
        "value",
        "max_abs_logit",
        "relative_diff",
        "top1_margin",
        "tokens",
        "identical_tokens",
        "first_difference",
        "single_dtype_error",
        "single_dtype_relative",
        "parallel_dtype_error",
        "single_fp32_first_difference",
        "parallel_fp32_first_difference",
        "fp32_why_not",
        "compared_tokens",
        "tokens_match_compared",
    ]
    return c[cols].rename(columns={"value": "max_abs_logit_diff"}).reset_index(drop=True)


def checkpoint_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per rank and layout: seconds to load the checkpoint folder (mlx_lm.load whole on rank 0, sharded_load
    on every rank) and MLX's memory after the load and at its peak, in GB, beside the weights it holds."""
    c = _exp(df, "checkpoint_load")
    if c.empty:
        return c
    out = c[["label", "layout", "rank", "value"]].rename(columns={"value": "load_s"})
    for col in ("weight_bytes", "active_memory_bytes", "peak_memory_bytes"):
        out[col.replace("_bytes", "_gb")] = c[col] / 1e9
    return out.sort_values(["layout", "rank"]).reset_index(drop=True)


def scaling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Decode tokens/s per user and per device against the number of devices, for every rank count in the
    data (a run on 2 ranks gives 1 and 2; runs on 4 and 8 ranks extend the same table)."""
    dec = decode_table(df)
    return (
        dec[
            ["label", "batch", "layout", "devices", "ms_per_token", "tok_s_per_user", "tok_s_per_device", "n"]
        ]
        if not dec.empty
        else dec
    )


def chart_decode(dec: pd.DataFrame, speed: pd.DataFrame):
    """Per model: ms per token by batch and layout (left); single / parallel speed-up with interval (right)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = list(dict.fromkeys(dec.label))
    for layout, g in dec.groupby("layout"):
        for label in labels:
            h = g[g.label == label].sort_values("batch")
            if h.empty:
                continue
            ax1.errorbar(
                h.batch,
                h.ms_per_token,
                yerr=[h.ms_per_token - h.ms_low, h.ms_high - h.ms_per_token],
                fmt="o-",
                color=LAYOUT_COLORS.get(layout),
                alpha=0.3 + 0.7 * (labels.index(label) + 1) / len(labels),
                label=f"{label} {layout}",
            )
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("batch")
    ax1.set_ylabel("ms per token")
    ax1.legend(fontsize=6)
    if not speed.empty:
        names = [f"{r.label}\n{r.layout} b{r.batch}" for r in speed.itertuples()]
        y = np.arange(len(names))
        ax2.errorbar(
            speed.speedup, y, xerr=[speed.speedup - speed.low, speed.high - speed.speedup], fmt="o", color="k"
        )
        ax2.set_yticks(y, names, fontsize=6)
        ax2.axvline(1, color="grey", ls="--")
        ax2.set_xscale("log")
        ax2.set_xlim(
            max(speed.low.min(), speed.speedup.min() / 10), min(speed.high.max(), speed.speedup.max() * 10)
        )
        ax2.set_xlabel("speed-up over one device (single / parallel time per token), log scale")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    plt.close(fig)
    return fig


def chart_throughput(dec: pd.DataFrame):
    """Tokens/s per device against tokens/s per user, one line per model and layout through its batches."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (label, layout), g in dec.groupby(["label", "layout"]):
        g = g.sort_values("batch")
        ax.plot(
            g.tok_s_per_user,
            g.tok_s_per_device,
            "o-",
            color=LAYOUT_COLORS.get(layout),
            label=f"{label} {layout}",
        )
        for r in g.itertuples():
            ax.annotate(f"b{r.batch}", (r.tok_s_per_user, r.tok_s_per_device), fontsize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens/s per user (interactivity)")
    ax.set_ylabel("tokens/s per device (throughput)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)
    fig.tight_layout()
    plt.close(fig)
    return fig


def chart_scaling(scaling: pd.DataFrame, coll: pd.DataFrame):
    """Left: decode tokens/s per user against devices, per model and batch (every rank count in the data);
    right: all_sum bus bandwidth at the largest message against ranks."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    tp = scaling[scaling.layout.isin([SINGLE, TENSOR])]
    for (label, batch), g in tp.groupby(["label", "batch"]):
        g = g.groupby("devices", as_index=False).tok_s_per_user.max().sort_values("devices")
        ax1.plot(g.devices, g.tok_s_per_user, "o-", label=f"{label} b{batch}")
    ax1.set_xlabel("devices (1 = single, else tensor parallel)")
    ax1.set_ylabel("tokens/s per user")
    ax1.set_xscale("log", base=2)
    ax1.legend(fontsize=6)
    if not coll.empty:
        big = coll[coll.op == "all_sum"]
        big = big[big.size_bytes == big.size_bytes.max()]
        for dt, g in big.groupby("msg_dtype"):
            ax2.plot(
                g.world_size, g.busbw_gbs, "o-", label=f"all_sum {dt}, {int(g.size_bytes.iloc[0]) >> 20} MiB"
            )
    ax2.set_xlabel("ranks")
    ax2.set_ylabel("bus bandwidth, GB/s")
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    plt.close(fig)
    return fig


def chart_prefill(pre: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7, 4))
    for (label, layout), g in pre.groupby(["label", "layout"]):
        g = g.sort_values("prompt_tokens")
        ax.errorbar(
            g.prompt_tokens, g.tok_s, fmt="o-", color=LAYOUT_COLORS.get(layout), label=f"{label} {layout}"
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("prefill tokens/s")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)
    fig.tight_layout()
    plt.close(fig)
    return fig
