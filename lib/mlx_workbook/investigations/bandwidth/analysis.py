"""04_bandwidth's roofline analysis: from the stored decode trials and the byte accounting to the tables,
charts and numbers the notebook shows (bytes per token, decode vs bytes, efficiency, regimes, MoE, projection).

Serving charts live in bandwidth_serving, the findings in bandwidth_findings.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import intervals, measure, published, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.investigations.bandwidth.measure import COLD
from mlx_workbook.probes.kernels import Ceiling
from mlx_workbook.report import plots, text

GB = 1e9
PARTS = ["embedding_rows", "lm_head", "dense_layers", "experts_active", "kv_read", "kv_written"]


def interval(s: measure.Stats | None, scale: float = 1.0) -> verdicts.Interval | None:
    """A Stats' median and interval, scaled (e.g. 100 for a ratio in %); None when nothing was measured."""
    return verdicts.Interval.of(s).scaled(scale) if s else None


# --- bytes per token -----------------------------------------------------------------------------------------


def bytes_table(acc: pd.DataFrame) -> pd.DataFrame:
    """The accounting in GB, for display."""
    gb = acc.assign(**{p: acc[p] / GB for p in PARTS + ["weights", "total", "weight_bytes"]})
    return gb[["label", "weight_bytes", "weights", "kv_read", "total"]].rename(
        columns={
            "weight_bytes": "weights stored (GB)",
            "weights": "weights read (GB)",
            "kv_read": "KV read (GB)",
            "total": "moved per token (GB)",
        }
    )


def bytes_chart(acc: pd.DataFrame, context: float) -> Figure:
    gb = acc.assign(**{p: acc[p] / GB for p in PARTS})
    return plots.stacked_bars(
        gb,
        category="label",
        parts=PARTS,
        ylabel="GB moved per decoded token",
        title=f"Bytes per token at context {context:g} (library accounting)",
        horizontal=True,
    )


# --- the size sweep ------------------------------------------------------------------------------------------


def config_table(df: pd.DataFrame, experiment: str = "decode") -> pd.DataFrame:
    """One row per configuration: medians and 95% intervals of decode/prompt tok/s and efficiency."""
    out = []
    d = rows(df, experiment)
    for _, g in d.groupby("label", sort=False):
        first = g.iloc[0]
        row = {
            k: first[k]
            for k in (
                "label",
                "model",
                "quant",
                "bits",
                "dtype",
                "moe",
                "params",
                "weight_bytes",
                "bytes_per_token",
                "weights_read_bytes",
                "kv_bytes",
                "roofline_tps",
            )
        }
        for metric in (
            "decode_tps",
            "steady_tps",
            "prompt_tps",
            "ms_per_token",
            "efficiency",
            "peak_memory_gb",
        ):
            s = measure.summarize(g[g.metric == metric].value)
            row.update({metric: s.median, f"{metric}_low": s.low, f"{metric}_high": s.high})
        row.update(n=s.n, interval=s.method)  # every metric comes from the same trials
        out.append(row)
    return pd.DataFrame(out)


def classify(table: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Why each configuration sits where it does.

    bandwidth-bound: efficiency >= threshold (the bytes explain most of the step);
    latency-bound: below it, and no faster than 1.5x the quickest step of the sweep (a fixed per-token cost:
    kernel launches, host work, sync), so fewer bytes would not help;
    kernel-bound: a quantized variant below the threshold and below its unquantized twin's efficiency (the
    dequantizing kernels, not memory, set the pace); below-roofline otherwise.
    """
    out = table.copy()
    floor = out.ms_per_token.min()
    unquantized = out[out.bits == 0].set_index("model").efficiency

    def regime(r):
        if r.efficiency >= threshold:
            return "bandwidth-bound"
        if r.ms_per_token <= 1.5 * floor:
            return "latency-bound"
        if r.bits and r.model in unquantized and r.efficiency < unquantized[r.model]:
            return "kernel-bound"
        return "below roofline"

    out["regime"] = out.apply(regime, axis=1)
    out["floor_ms"] = floor
    return out


def decode_table(df: pd.DataFrame, threshold: float, ceiling: Ceiling | None = None) -> pd.DataFrame:
    """config_table + regimes + a chart series name; with a published peak, the efficiency against it too
    (never clipped: above 1 against the measured ceiling means the probe moved bytes slower than decode did)."""
    table = classify(config_table(df), threshold)
    table["series"] = table.quant + np.where(table.moe, " MoE", "")
    if ceiling is not None and ceiling.published_gbs:
        table["efficiency_vs_peak"] = table.efficiency * ceiling.gbs / ceiling.published_gbs
    return table


def loglog_slope(table: pd.DataFrame) -> dict:
    """Slope of log(ms per token) on log(bytes per token): 1 when time is proportional to bytes."""
    return measure.fit_slope(np.log(table.bytes_per_token), np.log(table.ms_per_token))


def _wall_s(gen: pd.DataFrame) -> pd.Series:
    """Per trial, the time of a whole generation: TTFT + the decode time (generated tokens / mlx-lm's tok/s)."""
    wide = gen.pivot_table(index="trial", columns="metric", values="value")
    tokens = gen.groupby("trial").generated_tokens.first()
    return wide.ttft_ms / 1e3 + tokens / wide.decode_tps


def cold_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per preset, its first generation after the build (cold) beside its warm trials: decode tok/s, TTFT and wall
    time; cold/warm decode tok/s over the warm runs' geometric mean, with a t prediction interval on log tok/s
    (intervals.one_vs_sample: one cold run against n warm ones, n - 1 degrees of freedom); the build time apart.
    `extra_s` is how much longer the cold run took, `extra_before_first_s` the part of it before the first token
    (prefill and the first step's first-use work)."""
    cold, warm, build = rows(df, COLD), rows(df, "decode"), rows(df, "build", "build_s")
    out = []
    for label, g in cold.groupby("label", sort=False):
        v, w = g.set_index("metric").value, warm[warm.label == label]
        w_tps, w_ttft = w[w.metric == "decode_tps"].value, w[w.metric == "ttft_ms"].value
        ratio = intervals.one_vs_sample(v.decode_tps, w_tps) if len(w_tps) >= 2 else None
        warm_wall = float(np.median(_wall_s(w))) if len(w_tps) else float("nan")
        out.append(
            dict(
                label=label,
                moe=bool(g.moe.iloc[0]),
                build_s=float(build[build.label == label].value.iloc[0])
                if (build.label == label).any()
                else np.nan,
                cold_ttft_ms=v.ttft_ms,
                warm_ttft_ms=float(w_ttft.median()),
                cold_decode_tps=v.decode_tps,
                warm_decode_tps=float(np.exp(np.log(w_tps).mean())),  # the ratio's denominator
                n_warm=len(w_tps),
                ratio=ratio.value if ratio else np.nan,
                ratio_low=ratio.low if ratio else np.nan,
                ratio_high=ratio.high if ratio else np.nan,
                cold_wall_s=v.wall_s,
                warm_wall_s=warm_wall,
                extra_s=v.wall_s - warm_wall,
                extra_before_first_s=(v.ttft_ms - float(w_ttft.median())) / 1e3,
            )
        )
    return pd.DataFrame(out)


def skipped(df: pd.DataFrame) -> pd.DataFrame:
    """Configurations the sweep could not run (label, reason), as recorded."""
    s = df[df.experiment == "skipped"] if "reason" in df else df.iloc[:0]
    return s.reindex(columns=["label", "reason"]).drop_duplicates("label").reset_index(drop=True)


def skipped_text(df: pd.DataFrame) -> str:
    s = skipped(df)
    return (
        ""
        if s.empty
        else "**Skipped configurations:**\n" + "\n".join(f"- {r.label}: {r.reason}" for r in s.itertuples())
    )


def sweep_view(table: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "label",
        "GB_per_token",
        "decode_tps",
        "decode_tps_low",
        "decode_tps_high",
        "n",
        "interval",
        "prompt_tps",
        "roofline_tps",
        "efficiency",
        "efficiency_vs_peak",
        "regime",
        "peak_memory_gb",
    ]
    table = table.assign(GB_per_token=table.bytes_per_token / GB)  # GB, not 9.9e+08 bytes
    view = table.reindex(columns=[c for c in cols if c in table]).round(3)
    return view.assign(GB_per_token=table.GB_per_token.round(4))  # tiny presets move well under 1 MB


def decode_chart(table: pd.DataFrame, acc: pd.DataFrame, ceiling: Ceiling, where: str) -> Figure:
    """Decode tok/s against bytes per token (log-log) with the measured and published rooflines, and the
    original's M4 Max 4-bit numbers placed at our byte count of the same-shaped preset."""
    lines = table.rename(columns={"decode_tps": "median", "decode_tps_low": "low", "decode_tps_high": "high"})
    fig = plots.lines_with_intervals(
        lines.assign(bytes_gb=lines.bytes_per_token / GB),
        x="bytes_gb",
        series="series",
        logy=True,
        title=f"Decode speed vs bytes per token, {where}",
        xlabel="GB moved per token (log scale)",
        ylabel="decode tok/s (median, 95% interval)",
    )
    fig.axes[0].set_xscale("log")
    xs = np.geomspace(
        table.bytes_per_token.min() * 0.8, max(table.bytes_per_token.max(), acc.total.max()) * 1.2, 50
    )
    plots.add_curve(fig, xs / GB, ceiling.gbs * GB / xs, f"roofline at measured {ceiling.gbs:.0f} GB/s")
    if ceiling.published_gbs:
        plots.add_curve(
            fig,
            xs / GB,
            ceiling.published_gbs * GB / xs,
            f"roofline at published peak {ceiling.published_gbs:g} GB/s",
            style=":",
            color="#999999",
        )
    ref = published_at_our_bytes(acc)
    if not ref.empty:
        plots.add_curve(
            fig,
            ref.total / GB,
            ref.tok_s,
            "published: M4 Max, 4-bit (other hardware)",
            style="none",
            color="#9467bd",
            marker="s",
        )
    return fig


def published_at_our_bytes(acc: pd.DataFrame) -> pd.DataFrame:
    """The original's 4-bit M4 Max scaling table joined to our accounting of the same-shaped Qwen2.5 presets."""
    scaling = published.table("004_bandwidth", "model_size_scaling")
    q4 = acc[(acc.bits == 4) & acc.model.str.startswith("qwen2.5")]
    return q4.assign(size=q4.model.map(size_label)).merge(scaling, left_on="size", right_on="model")


def prompt_chart(table: pd.DataFrame, prompt_tokens: int, where: str) -> Figure:
    lines = table.rename(columns={"prompt_tps": "median", "prompt_tps_low": "low", "prompt_tps_high": "high"})
    fig = plots.lines_with_intervals(
        lines.assign(weights_gb=lines.weight_bytes / GB),
        x="weights_gb",
        series="series",
        logy=True,
        title=f"Prompt speed ({prompt_tokens}-token prompt) vs weight size, {where}",
        xlabel="GB of weights (log scale)",
        ylabel="prompt tok/s (median, 95% interval)",
    )
    fig.axes[0].set_xscale("log")
    return fig


def efficiency_chart(table: pd.DataFrame, ceiling: Ceiling, threshold: float, where: str) -> Figure:
    eff = table.rename(columns={"efficiency": "median", "efficiency_low": "low", "efficiency_high": "high"})
    marks = {f"bandwidth-bound threshold {threshold:g}": threshold}
    if (table.efficiency_high > 1).any():
        marks["the measured ceiling (1.0)"] = 1.0
    return plots.bars_with_intervals(
        eff,
        category="model",
        group="quant",
        ylabel="measured / roofline",
        ceilings=marks,
        title=f"Decode efficiency against the {ceiling.gbs:.0f} GB/s roofline, {where}",
    )


def regimes_text(table: pd.DataFrame) -> str:
    """'latency-bound: a, b; kernel-bound: c'."""
    return "; ".join(f"{k}: {', '.join(g.label)}" for k, g in table.groupby("regime"))


def over_ceiling_text(table: pd.DataFrame, ceiling: Ceiling) -> str:
    """Honest words for efficiencies above 1: decode moved more bytes per second than the probe did, so the
    probe underestimates the sustained ceiling (the roofline is then not an upper bound). Empty when none."""
    over = table[table.efficiency > 1]
    if over.empty:
        return ""
    peak = (
        f"; against the published peak of {ceiling.published_gbs:g} GB/s they reach "
        f"{over.efficiency_vs_peak.min():.0%} to {over.efficiency_vs_peak.max():.0%}"
        if "efficiency_vs_peak" in over
        else ""
    )
    return (
        f"{len(over)} configuration(s) decode above the measured-bandwidth roofline ({', '.join(over.label)}: "
        f"up to {over.efficiency.max():.0%}): decoding moved bytes faster than the {ceiling.gbs:.0f} GB/s "
        f"probe did, so the probe underestimates this device's sustained bandwidth{peak}."
    )


def efficiency_note(table: pd.DataFrame, ceiling: Ceiling) -> str:
    return " ".join(
        filter(
            None,
            [
                f"Fastest step of the sweep: {table.floor_ms.iloc[0]:.2f} ms per token. "
                f"{regimes_text(table)}.",
                over_ceiling_text(table, ceiling),
            ],
        )
    )


def moe_view(table: pd.DataFrame, ceiling: Ceiling) -> pd.DataFrame:
    """MoE rows beside the roofline an all-experts accounting would give (empty when no MoE ran)."""
    moe = table[table.moe]
    view = moe.assign(
        all_weights_roofline_tps=ceiling.gbs * GB / moe.weight_bytes,
        active_share=moe.weights_read_bytes / moe.weight_bytes,
    )
    view = view.assign(weights_GB=moe.weight_bytes / GB, weights_read_GB=moe.weights_read_bytes / GB)
    return view[
        [
            "label",
            "weights_GB",
            "weights_read_GB",
            "active_share",
            "decode_tps",
            "roofline_tps",
            "all_weights_roofline_tps",
            "efficiency",
            "regime",
        ]
    ].round(3)


# --- projection onto the original's hardware -----------------------------------------------------------------


def size_label(model: str) -> str:
    """'qwen2.5-7b' -> '7B' (the size the write-ups name models by)."""
    m = re.search(r"(\d+(?:\.\d+)?)b(?:-|$)", model)
    return f"{m.group(1)}B" if m else model


def original_machines() -> pd.DataFrame:
    """The original write-up's chips with their published bandwidths (machine, bandwidth_low/high GB/s)."""
    est = published.table("004_bandwidth", "bandwidth_estimates")
    return pd.DataFrame(
        {
            "machine": est.chip,
            "bandwidth_low": est.bandwidth_gbs_low,
            "bandwidth_high": est.bandwidth_gbs_high,
            "here": False,
        }
    )


# quick_reference names hardware by machine; bandwidth_estimates by chip: one name per chip here.
_CHIP_OF = {"M4 Air 32GB": "M4 (Air/Mini)", "M4 Pro 48GB": "M4 Pro", "M4 Max 128GB": "M4 Max"}


def published_decode() -> pd.DataFrame:
    """Every published 4-bit decode tok/s (measured or estimated) by chip and model size."""
    quick = published.table("004_bandwidth", "quick_reference")
    out = [
        {
            "machine": _CHIP_OF[r.hardware],
            "size": r.model,
            "tok_s_low": r.tok_s_low,
            "tok_s_high": r.tok_s_high,
            "basis": r.basis,
        }
        for r in quick.itertuples()
    ]
    out += [
        {
            "machine": "M4 Max",
            "size": r.model,
            "tok_s_low": r.tok_s,
            "tok_s_high": r.tok_s,
            "basis": "measured, scaling table",
        }
        for r in published.table("004_bandwidth", "model_size_scaling").itertuples()
    ]
    for r in published.table("004_bandwidth", "bandwidth_estimates").itertuples():
        out += [
            {
                "machine": r.chip,
                "size": "7B",
                "tok_s_low": r.est_7b_tok_s_low,
                "tok_s_high": r.est_7b_tok_s_high,
                "basis": "estimate",
            }
        ]
    return pd.DataFrame(out)


def _published_text(pub: pd.DataFrame) -> str:
    return "; ".join(
        f"{text.span(r.tok_s_low, r.tok_s_high)} ({r.basis})"
        for r in pub.itertuples()
        if pd.notna(r.tok_s_low)
    )


def projection(configs: pd.DataFrame, machines: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """Predicted tok/s = bandwidth x efficiency / bytes per token for every (machine, configuration).

    `configs`: label, model, bytes_per_token, efficiency (the measured one to apply), decode_tps (measured
    here, shown on this machine's rows); `machines`: machine, bandwidth_low, bandwidth_high, here;
    `pub`: published_decode() (reference only, never an input of the prediction).
    """
    out = []
    for m in machines.itertuples():
        for c in configs.itertuples():
            low, high = m.bandwidth_low * GB / c.bytes_per_token, m.bandwidth_high * GB / c.bytes_per_token
            same = pub[(pub.machine == m.machine) & (pub["size"] == size_label(c.model))]
            band = (
                f"{m.bandwidth_low:.0f}"
                if m.bandwidth_low == m.bandwidth_high
                else f"{m.bandwidth_low:.0f}-{m.bandwidth_high:.0f}"
            )
            out.append(
                {
                    "machine": m.machine,
                    "bandwidth_gbs": band,
                    "config": c.label,
                    "bytes_per_token_gb": c.bytes_per_token / GB,
                    "efficiency_used": c.efficiency,
                    "roofline_tps": high,
                    "predicted_tps_low": low * c.efficiency,
                    "predicted_tps_high": high * c.efficiency,
                    "measured_here_tps": c.decode_tps if m.here else np.nan,
                    "published_tps": _published_text(same),
                }
            )
    return pd.DataFrame(out)


def projection_configs(table: pd.DataFrame, acc: pd.DataFrame, presets: list[str], bits: int) -> pd.DataFrame:
    """Per projected preset: its bytes, and the efficiency to apply: its own where it ran, else that of the
    largest dense configuration of the same width that ran (else the largest dense one), named in efficiency_from."""
    dense = table[~table.moe].sort_values("bytes_per_token")
    out = []
    for name in presets:
        row = acc[(acc.model == name) & (acc.bits == bits)].iloc[0]
        ran = dense[(dense.model == name) & (dense.bits == bits)]
        same_width = dense[dense.bits == bits]
        source = ran if not ran.empty else (same_width.tail(1) if not same_width.empty else dense.tail(1))
        out.append(
            {
                "label": row.label,
                "model": name,
                "bytes_per_token": row.total,
                "efficiency": float(source.efficiency.iloc[0]),
                "efficiency_from": source.label.iloc[0],
                "decode_tps": float(ran.decode_tps.iloc[0]) if not ran.empty else np.nan,
            }
        )
    return pd.DataFrame(out)


def projection_table(
    table: pd.DataFrame, acc: pd.DataFrame, ceiling: Ceiling, device: str, presets: list[str], bits: int
) -> pd.DataFrame:
    """The original's chips at their published bandwidths, plus this device at its measured bandwidth and its
    published peak; published tok/s beside every prediction, never in it."""
    configs = projection_configs(table, acc, presets, bits)
    here = [
        {
            "machine": f"{device} (measured)",
            "bandwidth_low": ceiling.gbs,
            "bandwidth_high": ceiling.gbs,
            "here": True,
        }
    ]
    if ceiling.published_gbs:
        here.append(
            {
                "machine": f"{device} (published peak)",
                "bandwidth_low": ceiling.published_gbs,
                "bandwidth_high": ceiling.published_gbs,
                "here": True,
            }
        )
    machines = pd.concat([original_machines(), pd.DataFrame(here)], ignore_index=True)
    proj = projection(configs, machines, published_decode())
    return proj.merge(configs[["label", "efficiency_from"]], left_on="config", right_on="label").drop(
        columns="label"
    )
