"""Notebook 06's findings (distribution over devices), built from its stored measurements alone.

Every statement's numbers come from `df` through `analysis`; published figures (data/published: the H200's
NVLink, Megatron-LM's all-reduce count, Mac RDMA-over-Thunderbolt figures) sit beside them with their
sources. Mac-cluster numbers are projections: our counted collectives per token priced at the published link
figures, never measured here.
"""

from __future__ import annotations

import math

import pandas as pd

from mlx_workbook.core import published, scope, verdicts
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.distributed import analysis as an
from mlx_workbook.report.text import interval_text

NOTEBOOK = "06_distributed"
# A link "delivers" its published per-direction bandwidth when the measured bus bandwidth lies within this
# share of it (NCCL's own tests reach about 80-90% of NVLink's figure on large all-reduces).
LINK_TOLERANCE_SHARE = 0.15
# Sharded logits differ from one device's only by the order of the all_sum's additions. float32: a fixed
# bound relative to the largest logit (float32's rounding, with room for the layers it accumulates over).
# Below float32 the bound is measured: DTYPE_ERROR_MULTIPLE x the one device's own error against the same
# weights in float32. Why 2: if the split model errs against fp32 no more than one device does (the same
# roundings, plus the all_sum's), |split - single| <= |split - fp32| + |single - fp32| <= 2 x that error; a
# wrong shard gives differences of the logits' own size. The fixed bounds of the other dtypes are only the
# fallback where no float32 run exists (its copy did not fit, a quantized model, runs before method 3).
LOGIT_TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 1e-2}
DTYPE_ERROR_MULTIPLE = 2.0
NVLINK_CLAIM = "nvlink_h200_per_direction"
MEGATRON_CLAIM = "megatron_two_allreduce_per_layer"
MAC_BANDWIDTH_CLAIM = "jaccl_tb5_send_bandwidth"
MAC_LATENCY_CLAIM = "rdma_tb5_latency"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(text).lower()).strip("_")


def _iv(value, low, high) -> Interval:
    return Interval(float(value), float(low), float(high))


def _pct(x: Interval) -> str:
    return f"{x.value:+.1f}% [{x.low:+.1f}, {x.high:+.1f}]"


def not_run(reason: str) -> list[Finding]:
    """The one finding of a run that could not launch its ranks here (too few devices)."""
    return [
        Finding(
            id="distributed_not_run",
            verdict=verdicts.NOT_MEASURED,
            section="setup",
            headline=True,
            statement=f"Nothing was measured: {reason}. Run it on a machine with enough devices (or the ring "
            "backend on one machine's CPU).",
        )
    ]


def collectives(df: pd.DataFrame) -> list[Finding]:
    ab = an.alpha_beta(df)
    if ab.empty:
        return []
    parts = [
        f"{r.op} {r.msg_dtype}: alpha {r.alpha_us:.3g} µs [{r.alpha_low:.3g}, {r.alpha_high:.3g}], beta "
        f"{r.beta_gbs:.3g} GB/s [{r.beta_low:.3g}, {r.beta_high:.3g}]"
        for r in ab.itertuples()
    ]
    main = ab[ab.op == "all_sum"].iloc[0] if (ab.op == "all_sum").any() else ab.iloc[0]
    return [
        Finding(
            id="collectives_alpha_beta",
            section="collectives",
            headline=True,
            measured=_iv(main.alpha_us, main.alpha_low, main.alpha_high).measured(
                "µs",
                what=f"{main.op} {main.msg_dtype} latency alpha",
                beta_gbs=main.beta_gbs,
                beta_low=main.beta_low,
                beta_high=main.beta_high,
                blocks=int(main.blocks),
            ),
            statement=f"On {an.where(df)}, time per call = alpha + bytes / beta, fitted per block over "
            f"{int(main.sizes)} message sizes (mean over {int(main.blocks)} blocks, 95% t-interval): "
            + "; ".join(parts)
            + ".",
        )
    ]


def _is_nvlink_run(df: pd.DataFrame) -> bool:
    device = str(df.device.iloc[0]) if "device" in df and not df.empty else ""
    backend = (
        str(df.dist_backend.dropna().iloc[0])
        if "dist_backend" in df and df.dist_backend.notna().any()
        else ""
    )
    return "H200" in device and backend == "nccl"


def link_ceiling(df: pd.DataFrame) -> Finding | None:
    """The largest all_sum's bus bandwidth (and the largest send's) against NVLink's published figure."""
    table = an.collective_table(df)
    if table.empty:
        return None
    ceiling = published.figure_range(NVLINK_CLAIM)[1]
    big = table[table.size_bytes == table.size_bytes.max()]
    best = big.sort_values("busbw_gbs").iloc[-1]
    measured = _iv(best.busbw_gbs, best.busbw_low, best.busbw_high)
    sends = big[big.op == "send_recv"]
    send_text = (
        f"; one-way send/recv {sends.busbw_gbs.max():.3g} GB/s ({sends.busbw_gbs.max() / ceiling:.0%} of it)"
        if not sends.empty
        else ""
    )
    size = f"{best.size_bytes / 2**20:.4g} MiB"
    if _is_nvlink_run(df):
        v = verdicts.effect_matches(measured, ceiling, ceiling, tolerance=LINK_TOLERANCE_SHARE * ceiling)
        what = (
            f"{measured.value / ceiling:.0%} of NVLink 4's published {ceiling:g} GB/s per direction "
            f"(within {LINK_TOLERANCE_SHARE:.0%}: {v})"
        )
    else:
        v = verdicts.NOT_APPLICABLE
        what = (
            f"the published NVLink figure ({ceiling:g} GB/s per direction, H200) does not apply to this link"
        )
    return Finding(
        id=NVLINK_CLAIM,
        verdict=v,
        section="collectives",
        headline=True,
        published=published.reference(NVLINK_CLAIM),
        measured=measured.measured(
            "GB/s",
            op=best.op,
            dtype=best.msg_dtype,
            size_bytes=int(best.size_bytes),
            share_of_ceiling=measured.value / ceiling,
        ),
        statement=f"On {an.where(df)}, the largest message ({size}) moves at {interval_text(measured, ' GB/s')} "
        f"bus bandwidth ({best.op} {best.msg_dtype}, n={int(best.n)}){send_text}: {what}.",
    )


def allreduce_count(df: pd.DataFrame) -> Finding | None:
    """Megatron-style tensor parallelism: two all-reduces per layer in a forward pass; counted in mlx-lm's."""
    steps = an.step_collectives(df)
    tp = steps[(steps.layout == an.TENSOR) & (steps.collective == "all_sum")] if not steps.empty else steps
    if tp.empty:
        return None
    layers = _layers(df)
    per = tp.groupby(["label", "batch"]).calls.sum().reset_index()
    per["per_layer"] = [r.calls / layers.get(r.label, math.nan) for r in per.itertuples()]
    lo, hi = float(per.per_layer.min()), float(per.per_layer.max())
    v = verdicts.effect_matches(Interval(lo, lo, hi), *published.figure_range(MEGATRON_CLAIM))
    said = ", ".join(
        f"{r.label} b{r.batch}: {int(r.calls)} ({r.per_layer:g} per layer)"
        for r in per.drop_duplicates("label").itertuples()
    )
    return Finding(
        id=MEGATRON_CLAIM,
        verdict=v,
        section="communication",
        published=published.reference(MEGATRON_CLAIM),
        measured={"value": lo, "low": lo, "high": hi, "unit": "all_sum per layer per step"},
        statement=f"mlx-lm's model.shard(group) calls all_sum per decode step (counted while the step's graph is "
        f"built): {said}; two per layer (after the attention's o_proj and the MLP's down_proj): {v}.",
    )


def _layers(df: pd.DataFrame) -> dict:
    from mlx_workbook import models

    p = df[df.experiment == "plan"].drop_duplicates("label") if "experiment" in df else pd.DataFrame()
    return {r.label: models.preset_config(r.model)["num_hidden_layers"] for r in p.itertuples()}


def decode_speed(df: pd.DataFrame) -> list[Finding]:
    """Per model, batch and parallel layout: faster, slower, or only able to run at all."""
    speed, plan, sizes = an.paired_speedup(df, "decode", "batch"), an.plan_rows(df), an.model_bytes(df)
    dec = an.decode_table(df)
    out = []
    if dec.empty:
        return out
    for label in dict.fromkeys(dec.label):
        single_ran = ((dec.label == label) & (dec.layout == an.SINGLE)).any()
        why = (
            plan[(plan.label == label) & (plan.layout == an.SINGLE)].why_not
            if not plan.empty
            else pd.Series(dtype=str)
        )
        for layout in [lay for lay in dict.fromkeys(dec[dec.label == label].layout) if lay != an.SINGLE]:
            for batch in sorted(dec[(dec.label == label) & (dec.layout == layout)].batch):
                par = dec[(dec.label == label) & (dec.layout == layout) & (dec.batch == batch)].iloc[0]
                fid = f"{layout}_decode_{_slug(label)}_b{batch}"
                gb = sizes.get(label, math.nan) / 1e9
                if not single_ran:
                    out.append(
                        Finding(
                            id=fid,
                            verdict=verdicts.HOLDS,
                            section="decode",
                            headline=not any(f.measured and f.measured.get("only_fits") for f in out),
                            measured=_iv(par.ms_per_token, par.ms_low, par.ms_high).measured(
                                "ms per token", batch=int(batch), only_fits=True, model_gb=gb
                            ),
                            statement=f"{label} ({gb:.1f} GB of weights), batch {batch}: only fits when split — one "
                            f"device {why.iloc[0] if len(why) else 'did not run'}; {layout} over "
                            f"{par.devices} devices decodes at "
                            f"{par.ms_per_token:.3g} ms per token [{par.ms_low:.3g}, {par.ms_high:.3g}] (n={par.n}), "
                            f"{par.tok_s_per_user:.3g} tokens/s per user.",
                        )
                    )
                    continue
                s = speed[(speed.label == label) & (speed.layout == layout) & (speed.batch == batch)]
                if s.empty:
                    continue
                s = s.iloc[0]
                iv = _iv(s.speedup, s.low, s.high)
                v = verdicts.at_least(iv, 1.0)
                meaning = {
                    verdicts.HOLDS: "speeds decode up",
                    verdicts.DOES_NOT_HOLD: "slows decode down",
                }.get(v, "neither clearly speeds decode up nor slows it")
                change = Interval.change_pct(Interval(1 / iv.value, 1 / iv.high, 1 / iv.low))
                out.append(
                    Finding(
                        id=fid,
                        verdict=v,
                        section="decode",
                        measured=iv.measured(
                            "x",
                            what="single / parallel time per token (>1: faster)",
                            batch=int(batch),
                            pairs=int(s.n),
                            model_gb=gb,
                        ),
                        statement=f"{label} ({gb:.2g} GB), batch {batch}: {layout} parallel over {par.devices} devices "
                        f"{meaning}: speed-up {interval_text(iv, 'x')} (time per token {_pct(change)}; "
                        f"paired blocks, n={int(s.n)}), "
                        f"{par.ms_per_token:.3g} ms per token.",
                    )
                )
    return out


def crossover(df: pd.DataFrame) -> list[Finding]:
    """Per batch: the smallest model from which on tensor parallelism is faster for every larger model."""
    speed, sizes = an.paired_speedup(df, "decode", "batch"), an.model_bytes(df)
    tp = speed[speed.layout == an.TENSOR] if not speed.empty else speed
    out = []
    for batch, g in tp.groupby("batch") if not tp.empty else []:
        g = g.assign(gb=[sizes.get(label, math.nan) / 1e9 for label in g.label]).sort_values("gb")
        faster = [
            verdicts.at_least(_iv(r.speedup, r.low, r.high), 1.0) == verdicts.HOLDS for r in g.itertuples()
        ]
        onset = next((i for i in range(len(faster)) if all(faster[i:])), None)
        listing = ", ".join(f"{r.label} ({r.gb:.2g} GB) {r.speedup:.2f}x" for r in g.itertuples())
        if onset is None:
            text = (
                f"at no measured model size is tensor parallelism faster for every larger model ({listing})"
            )
            value = None
        else:
            r = g.iloc[onset]
            text = f"tensor parallelism is faster from {r.label} ({r.gb:.2g} GB of weights) up ({listing})"
            value = float(r.gb)
        out.append(
            Finding(
                id=f"tp_crossover_b{int(batch)}",
                section="decode",
                headline=int(batch) == int(tp.batch.min()),
                measured={"value": value, "unit": "GB of weights", "batch": int(batch)},
                statement=f"Crossover at batch {int(batch)} on {an.where(df)}: {text}.",
            )
        )
    return out


def communication(df: pd.DataFrame) -> list[Finding]:
    comm = an.communication_table(df)
    out = []
    if comm.empty:
        return out
    tensor = comm[comm.layout == an.TENSOR]
    # The headline: the largest model that also ran on one device (its one-device time makes the split whole).
    on_one = tensor[tensor.single_ms.notna()]
    headline = on_one.sort_values("ms_per_token").label.iloc[-1] if len(on_one) else None
    for label, g in tensor.groupby("label", sort=False):
        r = g.sort_values("batch").iloc[0]
        share = _iv(r.comm_share, r.comm_share_low, r.comm_share_high)
        big = g.sort_values("batch").iloc[-1]
        against_one = (
            f"one device: {r.single_ms:.3g} ms, an ideal split {r.ideal_ms:.3g} ms, measured "
            f"{r.above_ideal_ms:+.3g} ms above it and {r.minus_single_ms:+.3g} ms against one device"
            if pd.notna(r.single_ms)
            else "one device cannot hold it, so there is no one-device time to set it against"
        )
        out.append(
            Finding(
                id=f"comm_share_{_slug(label)}",
                section="communication",
                headline=label == headline,
                measured=share.scaled(100).measured(
                    "% of the time per token",
                    batch=int(r.batch),
                    comm_ms=r.comm_ms,
                    collectives=int(r.collectives_per_step),
                ),
                statement=f"{label}, tensor parallel, batch {int(r.batch)}: {int(r.collectives_per_step)} all_sums per "
                f"token of {int(r.message_bytes)} bytes cost {r.comm_ms:.3g} ms [{r.comm_low:.3g}, "
                f"{r.comm_high:.3g}] at their measured latency: {share.value:.0%} [{share.low:.0%}, "
                f"{share.high:.0%}] of the {r.ms_per_token:.3g} ms per token ({against_one}); "
                f"at batch {int(big.batch)}: {big.comm_share:.0%} of {big.ms_per_token:.3g} ms.",
            )
        )
    return out


def throughput(df: pd.DataFrame) -> list[Finding]:
    dec = an.decode_table(df)
    out = []
    for label, g in dec.groupby("label", sort=False) if not dec.empty else []:
        b1 = g[g.batch == g.batch.min()].sort_values("tok_s_per_user").iloc[-1]
        bn = g[g.batch == g.batch.max()].sort_values("tok_s_per_device").iloc[-1]
        out.append(
            Finding(
                id=f"throughput_{_slug(label)}",
                section="throughput",
                measured={
                    "value": float(bn.tok_s_per_device),
                    "unit": "tokens/s per device",
                    "layout": bn.layout,
                    "batch": int(bn.batch),
                },
                statement=f"{label}: the most tokens/s per user at batch {int(b1.batch)} come from {b1.layout} "
                f"({b1.tok_s_per_user:.3g}); the most tokens/s per device at batch {int(bn.batch)} from {bn.layout} "
                f"({bn.tok_s_per_device:.3g} per device, {bn.tok_s_per_user:.3g} per user).",
            )
        )
    return out


def prefill(df: pd.DataFrame) -> list[Finding]:
    speed = an.paired_speedup(df, "prefill", "prompt_tokens")
    out = []
    for (label, layout), g in speed.groupby(["label", "layout"], sort=False) if not speed.empty else []:
        r = g.sort_values("prompt_tokens").iloc[-1]
        iv = _iv(r.speedup, r.low, r.high)
        v = verdicts.at_least(iv, 1.0)
        listing = ", ".join(
            f"{int(x.prompt_tokens)}: {x.speedup:.2f}x" for x in g.sort_values("prompt_tokens").itertuples()
        )
        out.append(
            Finding(
                id=f"{layout}_prefill_{_slug(label)}",
                verdict=v,
                section="prefill",
                measured=iv.measured("x", prompt_tokens=int(r.prompt_tokens), pairs=int(r.n)),
                statement=f"{label}, prefill of {int(r.prompt_tokens)} tokens: {layout} parallel over one device "
                f"{interval_text(iv, 'x')} (n={int(r.n)}; faster: {v}); by prompt length {listing}.",
            )
        )
    return out


def logit_tolerance(row) -> tuple[float, str]:
    """(absolute tolerance, how it was set) for one correctness row: float32's fixed relative bound;
    below it DTYPE_ERROR_MULTIPLE x the one device's measured dtype error, or the fixed fallback without it."""
    fixed = LOGIT_TOLERANCE.get(row.dtype, 1e-2)
    if row.dtype == "float32":
        return fixed * row.max_abs_logit, f"float32's fixed {fixed:g} of the largest logit"
    if pd.notna(row.single_dtype_error):
        return DTYPE_ERROR_MULTIPLE * row.single_dtype_error, (
            f"{DTYPE_ERROR_MULTIPLE:g} x one device's own {row.dtype} error against float32, "
            f"{row.single_dtype_error:.2g} ({row.single_dtype_relative:.1e} of the largest logit)"
        )
    why = row.fp32_why_not or "no float32 run in this data"
    return fixed * row.max_abs_logit, f"the fixed {fixed:g} of the largest logit ({why})"


def _leaves_fp32(step) -> str:
    return "never" if step < 0 else f"at step {int(step)}"


def _tokens_text(r) -> str:
    same = "identical" if r.identical_tokens else f"first differ at step {int(r.first_difference)}"
    if pd.isna(r.single_fp32_first_difference):
        return f"tokens {same}"
    return (
        f"tokens {same}; their own tokens leave fp32's: one device's {_leaves_fp32(r.single_fp32_first_difference)}"
        f", the split model's {_leaves_fp32(r.parallel_fp32_first_difference)}"
    )


def correctness(df: pd.DataFrame) -> list[Finding]:
    c = an.correctness_table(df)
    if c.empty:
        return []
    tols = [logit_tolerance(r) for r in c.itertuples()]
    c["tolerance"] = [t for t, _ in tols]
    within = bool((c.max_abs_logit_diff <= c.tolerance).all())
    share = c.max_abs_logit_diff / c.tolerance.where(c.tolerance > 0)
    rows = "; ".join(
        f"{r.label} {r.layout}{' (sharded_load)' if r.loaded_by == 'sharded_load' else ''}: "
        f"max |Δlogit| {r.max_abs_logit_diff:.2g} ({r.relative_diff:.1e} of the largest logit) against "
        f"{how}: {'within' if r.max_abs_logit_diff <= r.tolerance else 'beyond'}, {_tokens_text(r)}"
        for r, (_, how) in zip(c.itertuples(), tols)
    )
    comparable = c[c.compared_tokens > 0]
    same = bool(comparable.tokens_match_compared.all())
    token_verdict = (
        verdicts.INCONCLUSIVE if comparable.empty else verdicts.HOLDS if same else verdicts.DOES_NOT_HOLD
    )
    steps = "; ".join(
        f"{r.label} {r.layout}: one device's own {r.dtype} tokens leave float32's at step "
        f"{int(r.single_fp32_first_difference)}, the split's leave one device's "
        + (f"at step {int(r.first_difference)}" if r.first_difference >= 0 else "nowhere")
        for r in c.itertuples()
        if r.compared_tokens == 0
    )
    cut = (
        f" Not judged on tokens, information only ({steps}): where the dtype's rounding alone changes one "
        "device's greedy tokens, its logit margins are within that rounding and equal split tokens are not "
        "expected."
        if steps
        else ""
    )
    return [
        Finding(
            id="sharded_logits_match",
            verdict=verdicts.HOLDS if within else verdicts.DOES_NOT_HOLD,
            section="correctness",
            measured={
                "value": float(c.relative_diff.max()),
                "unit": "max |Δlogit| / max |logit|",
                "max_share_of_tolerance": float(share.max()),
            },
            statement=f"Sharded against one device (same weights): {rows}. Every difference within the dtype's "
            f"reduction-order tolerance: {within}.",
        ),
        Finding(
            id="sharded_greedy_tokens_match",
            verdict=token_verdict,
            section="correctness",
            measured={
                "value": float(c.tokens_match_compared.mean()),
                "unit": "share identical over the compared steps",
                "min_top1_margin": float(c.top1_margin.min()),
                "compared_tokens": int(c.compared_tokens.min()),
            },
            statement=f"Greedy tokens ({int(c.tokens.iloc[0])} per layout, smallest top-1 margin "
            f"{c.top1_margin.min():.2g} logits) of every parallel layout equal one device's: "
            f"{same if not comparable.empty else 'not judged, no step is comparable'}.{cut}",
        ),
    ]


def checkpoint_load(df: pd.DataFrame) -> Finding | None:
    """What loading a checkpoint split costs each rank: sharded_load's seconds and memory against one device's
    whole load (its correctness rows are judged with the other sharded models above)."""
    t = an.checkpoint_table(df)
    if t.empty:
        return None
    whole, split = t[t.layout == an.SINGLE], t[t.layout == an.TENSOR]
    save = df[df.experiment == "checkpoint_save"] if "experiment" in df else pd.DataFrame()
    saved = f" (saved from the preset in {save.value.iloc[0]:.3g} s)" if not save.empty else ""
    ranks = "; ".join(
        f"rank {int(r.rank)} {r.load_s:.3g} s, {r.active_memory_gb:.3g} GB after the load "
        f"(peak {r.peak_memory_gb:.3g} GB)"
        for r in split.itertuples()
    )
    one = (
        f"; mlx_lm.load on one device: {whole.load_s.iloc[0]:.3g} s, {whole.active_memory_gb.iloc[0]:.3g} GB"
        if not whole.empty
        else ""
    )
    share = split.active_memory_gb.max() / whole.active_memory_gb.iloc[0] if not whole.empty else math.nan
    return Finding(
        id="sharded_load_checkpoint",
        section="checkpoint",
        measured={
            "value": float(split.load_s.max()),
            "unit": "s (slowest rank)",
            "memory_share_of_whole": float(share),
        },
        statement=f"{split.label.iloc[0]} from a checkpoint folder{saved}, on {an.where(df)}: mlx-lm's "
        f"sharded_load over {len(split)} ranks: {ranks}{one}; the busiest rank keeps {share:.0%} of the whole "
        "model's memory.",
    )


def mac_projection(df: pd.DataFrame) -> list[Finding]:
    """Projection, not a measurement: each model's counted all_sums per token priced at the published
    RDMA-over-Thunderbolt figures (latency per call + bytes / published send bandwidth)."""
    steps = an.step_collectives(df)
    if steps.empty:
        return []
    latency_us = published.figure_range(MAC_LATENCY_CLAIM)[1]
    bw_low, bw_high = published.figure_range(MAC_BANDWIDTH_CLAIM)
    tp = steps[steps.layout == an.TENSOR]
    per = (
        tp.groupby(["label", "batch"])
        .apply(
            lambda g: pd.Series({"calls": g.calls.sum(), "bytes": (g.calls * g.message_bytes).sum()}),
            include_groups=False,
        )
        .reset_index()
    )
    dec = an.decode_table(df)
    parts = []
    values = []
    for r in per[per.batch == per.batch.min()].itertuples():
        low = r.bytes / (bw_high * 1e9) * 1e3
        high = r.calls * latency_us / 1e3 + r.bytes / (bw_low * 1e9) * 1e3
        values.append(high)
        parts.append(f"{r.label}: {int(r.calls)} all_sums, {low:.2g}-{high:.2g} ms per token")
    on_here = dec[(dec.layout == an.TENSOR) & (dec.batch == per.batch.min())] if not dec.empty else dec
    here = (
        "; measured here: " + ", ".join(f"{r.label} {r.ms_per_token:.3g} ms" for r in on_here.itertuples())
        if not on_here.empty
        else ""
    )
    out = []
    for cid in (MAC_LATENCY_CLAIM, MAC_BANDWIDTH_CLAIM):
        out.append(
            Finding(
                id=cid,
                verdict=verdicts.NOT_APPLICABLE,
                section="projection",
                published=published.reference(cid),
                measured={"value": max(values) if values else None, "unit": "ms per token (projection)"},
                statement="Projection, not measured: two Macs over RDMA on Thunderbolt 5 (published: up to "
                f"{latency_us:g} µs latency, {bw_low:g}-{bw_high:g} GB/s send/recv) would spend, per decode token "
                f"at batch "
                f"{int(per.batch.min())}, "
                + "; ".join(parts)
                + " (bandwidth alone to latency + bandwidth per call)"
                + here
                + ". Not measured on this machine: the verdict does not apply here.",
            )
        )
    return out


def point_to_point(df: pd.DataFrame) -> Finding | None:
    """Whether send/recv (hence the send_recv collective and mlx-lm's pipeline) ran on this backend."""
    cap = df[df.experiment == "capability"] if "experiment" in df else pd.DataFrame()
    if cap.empty:
        return None
    works = bool((cap.value == 1).all())
    errors = sorted({str(e) for e in cap.get("error", pd.Series(dtype=str)).dropna() if str(e)})
    return Finding(
        id="send_recv_available",
        verdict=verdicts.HOLDS if works else verdicts.DOES_NOT_HOLD,
        section="collectives",
        measured={"value": float(works), "unit": "works on every rank"},
        statement=f"On {an.where(df)}, mx.distributed.send/recv "
        + (
            "work, so the send_recv collective and mlx-lm's pipeline layout were measured."
            if works
            else f"do not run ({'; '.join(errors)[:200]}): the send_recv collective and mlx-lm's pipeline "
            "layout (which sends activations between stages) were skipped."
        ),
    )


def scaling(df: pd.DataFrame) -> Finding | None:
    sc = an.scaling_table(df)
    if sc.empty:
        return None
    counts = sorted(set(sc.devices))
    return Finding(
        id="scaling_rank_counts",
        section="scaling",
        measured={"value": max(counts), "unit": "devices", "device_counts": counts},
        statement=f"Device counts in this run's data: {counts}. Runs with more ranks (`ranks` = 4 or 8) add points "
        "to the same scaling table and chart; none beyond these were measured here.",
    )


def findings(df: pd.DataFrame) -> list[Finding]:
    """Every finding of notebook 06 from its measurements."""
    out = []
    out += collectives(df)
    out += [f for f in (link_ceiling(df), allreduce_count(df)) if f is not None]
    out += correctness(df)
    out += [f for f in (checkpoint_load(df),) if f is not None]
    out += decode_speed(df)
    out += crossover(df)
    out += communication(df)
    out += throughput(df)
    out += prefill(df)
    out += mac_projection(df)
    out += [f for f in (point_to_point(df), scaling(df)) if f is not None]
    return scope.settle(out, df)  # the NVLink and Mac figures are judged only where their hardware is


def closing_note(found: list[Finding]) -> str:
    """The closing paragraph: the crossover, the communication share, the collectives against the link's
    ceiling, and what forced distribution, quoted from the findings (nothing computed here)."""
    by_id = {f.id: f for f in found}
    if "distributed_not_run" in by_id:
        return by_id["distributed_not_run"].statement
    picks = [by_id.get("collectives_alpha_beta"), by_id.get(NVLINK_CLAIM)]
    picks += [f for f in found if f.id.startswith("tp_crossover_")]
    picks += [f for f in found if f.id.startswith("comm_share_")]
    picks += [f for f in found if f.measured and f.measured.get("only_fits")][:1]
    picks += [
        by_id.get("sharded_logits_match"),
        by_id.get("send_recv_available"),
        by_id.get("scaling_rank_counts"),
    ]
    return "\n".join(f"- {f.statement}" for f in picks if f is not None)
