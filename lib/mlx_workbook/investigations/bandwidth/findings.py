"""04_bandwidth's findings: one per published claim of the notebook (seed 004, and seed 002's model tables),
each with a verdict computed from the stored measurements, plus the notebook's own measured findings.

`findings(df, acc, ceiling, params)` is the entry point: df is run.measurements, acc the byte accounting
(roofline.accounting), params the run's parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlx_workbook.core import blocks, measure, published, scope, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.investigations.bandwidth import analysis as bw
from mlx_workbook.investigations.bandwidth import coldstart
from mlx_workbook.investigations.bandwidth import serving_analysis as sv
from mlx_workbook.models.roofline import mean_context, quant_label
from mlx_workbook.probes.kernels import Ceiling
from mlx_workbook.report import text

SEVEN_B = ["qwen2.5-7b", "llama-3-8b", "mistral-7b"]  # the write-ups' "7B" class, in order of preference
SRC = "004_bandwidth"  # the write-up whose tables these findings quote

# Our tolerances and thresholds (method parameters, not published figures):
BOUND_SHARE_HOLDS = (
    0.75  # "decode is bandwidth-bound" holds when at least this share of dense configurations is
)
BOUND_SHARE_FAILS = 0.25  # ... and does not hold when at most this share is (in between: inconclusive)
DOUBLING_TOLERANCE = 0.25  # x per 2x bytes: the "roughly" of the published rule of thumb
APPROX_GB_TOLERANCE = 0.4  # the "~" of the published GB-per-token range, in GB
PEAK_MEMORY_TOLERANCE = 0.15  # relative: peak memory also counts activations and allocator slack, which vary
# Absolute figures of the write-ups' Apple machines (tok/s, efficiency) are judged only there (core.scope); the
# tolerance is run-to-run and machine-variant spread: a share of a rate, points of an efficiency.
ABSOLUTE_TOLERANCE = 0.10
EFFICIENCY_TOLERANCE_PTS = 10.0
SLOWDOWN_TOLERANCE = 0.25  # relative, around the published 14B-over-0.5B slowdown


@dataclass
class Ctx:
    df: pd.DataFrame
    acc: pd.DataFrame
    ceiling: Ceiling
    params: dict

    def __post_init__(self):
        self.dec = rows(self.df, "decode")
        self.table = bw.decode_table(self.df, self.params["bound_threshold"], self.ceiling)
        self.dense = self.table[~self.table.moe]
        self.where = text.where(self.df)
        self.out: list[Finding] = []
        self.judged_on: dict[str, scope.Model] = {}  # claim -> the model it was judged on (for its scope)

    def stats(self, label, metric):
        values = rows(self.dec, metric=metric, label=label).value
        return measure.summarize(values) if label and len(values) else None

    def add(
        self, claim_id, verdict, statement, measured: verdicts.Interval | None, unit, section, headline=False
    ):
        self.out.append(
            Finding(
                id=claim_id,
                statement=statement,
                verdict=verdict,
                section=section,
                headline=headline,
                measured=measured.measured(unit) if measured else None,
                published=published.reference(claim_id),
            )
        )

    def model(self, label) -> scope.Model | None:
        row = self.table[self.table.label == label]
        return scope.Model(label, float(row.params.iloc[0])) if len(row) else None

    def not_measured(self, claim_id, why, section, measured=None, unit="") -> None:
        self.add(claim_id, verdicts.NOT_MEASURED, f"Not measured: {why}", measured, unit, section)

    def first_ran(self, names, quant):
        return next((f"{n} {quant}" for n in names if f"{n} {quant}" in set(self.table.label)), None)

    def over(self, s) -> str:
        """Says so when an efficiency interval passes 100%: the probe, not decoding, is then the weaker figure."""
        if not s or s.high <= 1:
            return ""
        peak = (
            f"; against the published peak of {self.ceiling.published_gbs:g} GB/s it is "
            f"{s.median * self.ceiling.gbs / self.ceiling.published_gbs:.0%}"
            if self.ceiling.published_gbs
            else ""
        )
        return (
            f" Above 100%: decoding moved bytes faster than the {self.ceiling.gbs:.0f} GB/s bandwidth probe did, "
            f"so the probe underestimates this device's sustained bandwidth{peak}."
        )


iv, txt = bw.interval, text.interval_text


def findings(df: pd.DataFrame, acc: pd.DataFrame, ceiling: Ceiling, params: dict) -> list[Finding]:
    c = Ctx(df, acc, ceiling, params)
    for part in (_efficiency, _size_and_bytes, _model_tables, _cold_start, _apple_and_projection):
        part(c)
    c.out += sv.findings(df, c.where, params)
    c.out.append(
        Finding(
            id="bandwidth_ceiling",
            section="ceiling",
            statement=f"Rooflines use {ceiling.describe()}.",
            measured=verdicts.Interval(ceiling.gbs, ceiling.low, ceiling.high).measured("GB/s"),
        )
    )
    missing = {cl["id"] for cl in published.claims("04_bandwidth")} - {f.id for f in c.out}
    assert not missing, f"claims without a finding: {sorted(missing)}"
    return scope.settle(c.out, df, c.judged_on)


def _reference_4bit(c: Ctx) -> tuple[str | None, str]:
    """The 7B 4-bit configuration the write-up's efficiency claims are about, else the largest dense 4-bit one."""
    seven = c.first_ran(SEVEN_B, "4-bit")
    dense4 = c.dense[c.dense.bits == 4].sort_values("bytes_per_token")
    ref = seven or (dense4.label.iloc[-1] if not dense4.empty else None)
    return ref, "" if ref == seven else f" (no 7-8B 4-bit preset ran in this profile; stand-in: {ref})"


def _efficiency(c: Ctx) -> None:
    dtype_q, g = quant_label(0, c.params["dtype"]), c.ceiling.gbs
    table = c.table.set_index("label")
    for fid, quant in [("efficiency_7b_bf16", dtype_q), ("efficiency_7b_4bit", "4-bit")]:
        label = c.first_ran(SEVEN_B, quant)
        s = c.stats(label, "efficiency")
        c.out.append(
            Finding(
                id=fid,
                section="efficiency",
                verdict="measured" if s else verdicts.NOT_MEASURED,
                measured=iv(s, 100).measured("%") if s else None,
                headline=fid == "efficiency_7b_4bit" and s is not None,
                statement=(
                    f"{label} decodes at {txt(s, '%', 100)} of the {g:.0f} GB/s roofline "
                    f"({txt(c.stats(label, 'steady_tps'), ' tok/s')} vs {table.roofline_tps[label]:.1f} tok/s for "
                    f"{table.bytes_per_token[label] / 1e9:.2f} GB per token), {c.where}." + c.over(s)
                    if s
                    else f"No 7-8B {quant} preset ran in this profile ({c.params['profile']}); see the full "
                    "profile's run."
                ),
            )
        )
    threshold, dense = c.params["bound_threshold"], c.dense
    bound = dense.efficiency >= threshold
    share_bound = bound.mean()
    slope = bw.loglog_slope(dense) if dense.bytes_per_token.nunique() > 1 else None
    regimes = bw.regimes_text(c.table)
    c.add(
        "decode_bandwidth_bound",
        verdicts.HOLDS
        if share_bound >= BOUND_SHARE_HOLDS
        else verdicts.DOES_NOT_HOLD
        if share_bound <= BOUND_SHARE_FAILS
        else verdicts.INCONCLUSIVE,
        f"{bound.sum()} of {len(dense)} dense configurations reach {threshold:.0%} of the {g:.0f} GB/s roofline "
        f"(efficiency {dense.efficiency.min():.0%} to {dense.efficiency.max():.0%}); "
        + (
            f"time per token grows as bytes^{slope['slope']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}] "
            "(1 would be purely bandwidth-bound). "
            if slope
            else ""
        )
        + f"Regimes: {regimes}. On {c.where}."
        + (" " + bw.over_ceiling_text(dense, c.ceiling)).rstrip(),
        verdicts.Interval(
            float(np.median(dense.efficiency)), float(dense.efficiency.min()), float(dense.efficiency.max())
        ).scaled(100),
        "% of roofline (median, min, max)",
        "efficiency",
        headline=True,
    )
    if len(dense):
        c.judged_on["decode_bandwidth_bound"] = c.model(dense.sort_values("params").label.iloc[-1])
    x2 = verdicts.Interval(2 ** slope["slope"], 2 ** slope["low"], 2 ** slope["high"]) if slope else None
    lo2, hi2 = published.figure_range("bandwidth_doubling_doubles_tok_s")
    c.not_measured(
        "bandwidth_doubling_doubles_tok_s",
        f"one device cannot change its memory bandwidth, and fewer bytes per token (another quantization) "
        f"change the kernels too, so they measure the quantized kernels' speed, not bandwidth (published: "
        f"{lo2:g}x tok/s per doubling of bandwidth, for the same model)."
        + (
            f" For information, across the dense sweep halving the bytes multiplies tok/s by {x2.value:.2f} "
            f"[{x2.low:.2f}, {x2.high:.2f}] on {c.where}."
            if x2
            else ""
        ),
        "efficiency",
        x2,
        "x per 2x fewer bytes (information)",
    )
    floor_ms = float(c.table.floor_ms.iloc[0])
    c.out.append(
        Finding(
            id="decode_regimes",
            section="efficiency",
            verdict="measured",
            measured=verdicts.Interval(floor_ms, floor_ms, floor_ms).measured("ms per token (fastest step)"),
            statement=f"Where decode stops being bandwidth-bound (threshold {threshold:.0%} of the "
            f"roofline, fastest step {floor_ms:.2f} ms): {regimes}.",
        )
    )
    ref4, note = _reference_4bit(c)
    s = c.stats(ref4, "efficiency")
    if ref4:
        for cid in ("bandwidth_efficiency_observed_range", "python_overhead_lt_1pct"):
            c.judged_on[cid] = c.model(ref4)
    lo, hi = published.figure_range("bandwidth_efficiency_observed_range")
    c.add(
        "bandwidth_efficiency_observed_range",
        verdicts.effect_matches(iv(s, 100), lo, hi) if s else verdicts.NOT_MEASURED,
        f"{ref4}{note} decodes at {txt(s, '%', 100)} of the measured-bandwidth roofline on {c.where} "
        f"(published: {lo:g}-{hi:g}%)." + c.over(s)
        if s
        else "Not measured: no 4-bit dense configuration ran.",
        iv(s, 100),
        "%",
        "efficiency",
    )
    for cid, hw in [
        ("bandwidth_efficiency_m4_air", "the M4 Air"),
        ("bandwidth_efficiency_m4_max", "the M4 Max"),
        ("m4_max_bandwidth_utilization", "the M4 Max"),
    ]:
        lo, hi = published.figure_range(cid)
        verdict = (
            verdicts.effect_matches(iv(s, 100), lo, hi, EFFICIENCY_TOLERANCE_PTS)
            if s
            else verdicts.NOT_MEASURED
        )
        c.add(
            cid,
            verdict,
            f"A figure of {hw}: {ref4}{note} reaches {txt(s, '%', 100)} of its roofline on {c.where}; published "
            f"{lo:g}{'' if lo == hi else f'-{hi:g}'}%, within ±{EFFICIENCY_TOLERANCE_PTS:g} points: {verdict}."
            + (_m4_max_row_check() if cid.endswith("m4_max") else ""),
            iv(s, 100),
            "%",
            "efficiency",
        )
    _python_overhead(c, ref4, s)


def _m4_max_row_check() -> str:
    """The published M4 Max efficiency set against its own row of the theoretical-vs-observed table."""
    row = published.table(SRC, "theoretical_vs_observed").set_index("machine").loc["M4 Max"]
    return (
        f" (The published {row.efficiency_pct:g}% does not follow from its own row: {row.observed_tok_s:g} / "
        f"{row.theoretical_tok_s:g} tok/s is {row.observed_tok_s / row.theoretical_tok_s:.0%}.)"
    )


def _python_overhead(c: Ctx, ref4, s) -> None:
    """python_overhead_lt_1pct is not judged: 1 - efficiency bounds the non-memory share of a step from above,
    so it could confirm "<1%" but never refute it (a check that cannot fail); the bound is quoted."""
    limit = published.figure_range("python_overhead_lt_1pct")[1]  # "<1%": an upper bound only
    if not s:
        c.not_measured("python_overhead_lt_1pct", "no 4-bit dense configuration ran.", "efficiency")
        return
    py = verdicts.Interval.change_pct(s).scaled(-1)  # 1 - efficiency, in %
    c.not_measured(
        "python_overhead_lt_1pct",
        f"the Python share of a step is not timed here. Everything that is not the roofline's memory time is "
        f"{text.interval_text(py, '%')} of a {ref4} step on {c.where}: an upper bound, which could confirm "
        f"<{limit:g}% but never refute it, so it is no test"
        + (" (and below zero: the probe underestimates the ceiling)" if s.high > 1 else "")
        + "; the host-side share of a decode step is in 02_decode_loop's split.",
        "efficiency",
        py,
        "% (upper bound, information)",
    )


def _size_and_bytes(c: Ctx) -> None:
    context = mean_context(c.params["prompt_tokens"], c.params["gen_tokens"])
    row = c.acc[(c.acc.model == "qwen2.5-7b") & (c.acc.bits == 4)]
    gb = float(row.total.iloc[0]) / 1e9 if not row.empty else None
    b7 = verdicts.Interval(gb, gb, gb) if gb else None  # an accounting, not a timing: no interval
    lo, hi = published.figure_range("data_per_token_7b_4bit")
    c.add(
        "data_per_token_7b_4bit",
        verdicts.effect_matches(b7, lo, hi, APPROX_GB_TOLERANCE) if b7 else verdicts.NOT_MEASURED,
        f"The library's accounting gives {b7.value:.2f} GB per token for qwen2.5-7b 4-bit (group "
        f"{c.params['group_size']}) at context {context:g}: {float(row.weights.iloc[0]) / 1e9:.2f} GB of weights read, "
        f"{float(row.kv_read.iloc[0]) / 1e6:.1f} MB of KV cache (published ~{lo:g}-{hi:g} GB; the ~ read as a "
        f"{APPROX_GB_TOLERANCE:g} GB tolerance)."
        if b7
        else "qwen2.5-7b is not in projection_presets.",
        b7,
        "GB",
        "bytes",
    )
    _sublinear(c)


def _sublinear(c: Ctx) -> None:
    """tok_s_sublinear_in_params against the published figure: the write-up's largest over its smallest model
    (14B over 0.5B, 4-bit, M4 Max: 7.7x slower), on the same two shapes here; a direction-only "sub-linear"
    check could not fail (bytes grow ~28x, the slowdown never exceeds that)."""
    scaling = published.table(SRC, "model_size_scaling")
    pub, base = scaling.iloc[-1], scaling.iloc[0]
    lo, hi = published.figure_range("tok_s_sublinear_in_params")
    small, large = (f"qwen2.5-{m.lower().split()[-1]} 4-bit" for m in (base.model, pub.model))
    tps = c.dec[c.dec.metric == "decode_tps"]
    a, b = tps[tps.label == small].value, tps[tps.label == large].value
    if a.empty or b.empty:
        c.not_measured(
            "tok_s_sublinear_in_params",
            f"the published {pub.slowdown_x:g}x is {pub.model} over {base.model} (4-bit); this run has "
            f"{'' if a.empty else small + ' but not '}{large if b.empty else small}.",
            "sweep",
        )
        return
    c.judged_on["tok_s_sublinear_in_params"] = c.model(large)
    slow = iv(measure.ratio_interval(a, b))
    verdict = verdicts.effect_matches(slow, lo, hi, SLOWDOWN_TOLERANCE * hi, no_effect_at=1.0)
    row = c.table.set_index("label")
    c.add(
        "tok_s_sublinear_in_params",
        verdict,
        f"{large} is {text.interval_text(slow, 'x')} slower than {small} for "
        f"{row.params[large] / row.params[small]:.1f}x the parameters and "
        f"{row.bytes_per_token[large] / row.bytes_per_token[small]:.1f}x the bytes per token on {c.where}; "
        f"published: {pub.model} {pub.slowdown_x:g}x slower than {base.model} for {pub.params_x:g}x the "
        f"parameters; within ±{SLOWDOWN_TOLERANCE:.0%}: {verdict}.",
        slow,
        "x",
        "sweep",
    )


def _model_tables(c: Ctx) -> None:
    """Seed 002's mlx-lm tables: tok/s and prompt tok/s are Apple numbers; peak memory follows from the weights."""
    claims = {cl["id"] for cl in published.claims("04_bandwidth")}
    skipped = bw.skipped(c.df).set_index("label").reason
    same_shape = {
        "qwen3_30b_a3b": ("qwen3-30b-a3b", "4-bit"),
        "mixtral_8x7b": ("mixtral-8x7b", "4-bit"),
        "mistral_7b": ("mistral-7b", "4-bit"),
        "glm45_air": (None, "3-bit"),
    }
    for key, (preset, quant) in same_shape.items():
        label = f"{preset} {quant}" if preset else None
        s_tps, s_mem = c.stats(label, "decode_tps"), c.stats(label, "peak_memory_gb")
        why = (
            "no GLM-4.5-Air preset in the library"
            if not preset
            else f"{label} did not run in this profile" + (f" ({skipped[label]})" if label in skipped else "")
        )
        ours = (
            f"our mlx-lm decode of the same-shaped {label} is {txt(s_tps, ' tok/s')} on {c.where}"
            if s_tps
            else why
        )
        rust = next(cid for cid in sorted(claims) if cid.startswith(key) and cid.endswith("rust_vs_mlxlm"))
        c.not_measured(rust, f"no Rust binding runs in the workbook; {ours}.", "sweep", iv(s_tps), "tok/s")
        cid = f"mlxlm_tok_s_{key}_{quant[0]}bit"
        if s_tps:
            lo, hi = published.figure_range(cid)
            verdict = verdicts.effect_matches(iv(s_tps), lo, hi, ABSOLUTE_TOLERANCE * hi)
            c.add(
                cid,
                verdict,
                f"Apple-silicon tok/s: {ours}; published {hi:g} tok/s, within ±{ABSOLUTE_TOLERANCE:.0%}: {verdict}.",
                iv(s_tps),
                "tok/s",
                "sweep",
            )
        else:
            c.not_measured(cid, f"{why}.", "sweep")
        lo, hi = published.figure_range(f"mlxlm_peak_mem_{key}_{quant[0]}bit")
        c.add(
            f"mlxlm_peak_mem_{key}_{quant[0]}bit",
            verdicts.effect_matches(iv(s_mem), lo, hi, PEAK_MEMORY_TOLERANCE * hi)
            if s_mem
            else verdicts.NOT_MEASURED,
            f"Peak memory (weights + cache + activations) follows from the weights, not the hardware: {label} peaks "
            f"at {txt(s_mem, ' GB')} here vs {hi:g} GB published (tolerance {PEAK_MEMORY_TOLERANCE:.0%})."
            if s_mem
            else f"Not measured: {why}.",
            iv(s_mem),
            "GB",
            "sweep",
        )
        cid = f"mlxlm_prompt_tok_s_{key}_{quant[0]}bit"
        if cid in claims:
            _prompt_speed(c, cid, label, why)


def _prompt_speed(c: Ctx, cid: str, label: str, why: str) -> None:
    """Prompt tok/s depends on the prompt's length: judged only on a prompt as long as the published one."""
    s_p = c.stats(label, "prompt_tps")
    found = re.search(r"(\d+)-token prompt", published.claim(cid)["claim"])
    pub_len, ours = (int(found.group(1)) if found else None), int(c.params["prompt_tokens"])
    lo, hi = published.figure_range(cid)
    if not s_p:
        c.not_measured(cid, f"{why}.", "sweep")
    elif pub_len != ours:
        c.not_measured(
            cid,
            f"prompt speed depends on the prompt's length: published for a {pub_len}-token prompt, ours has "
            f"{ours} tokens ({label} runs it at {txt(s_p, ' tok/s')} on {c.where}).",
            "sweep",
            iv(s_p),
            "tok/s",
        )
    else:
        verdict = verdicts.effect_matches(iv(s_p), lo, hi, ABSOLUTE_TOLERANCE * hi)
        c.add(
            cid,
            verdict,
            f"A {ours}-token prompt on {label} runs at {txt(s_p, ' tok/s')} on {c.where}; published {hi:g} "
            f"tok/s, within ±{ABSOLUTE_TOLERANCE:.0%}: {verdict}.",
            iv(s_p),
            "tok/s",
            "sweep",
        )


def _apple_and_projection(c: Ctx) -> None:
    proj = bw.projection_table(
        c.table,
        c.acc,
        c.ceiling,
        c.df.device.iloc[0],
        c.params["projection_presets"],
        c.params["projection_bits"],
    )
    for size, cid in [
        ("0.5b", "mlx_tok_s_qwen25_0_5b_4bit_m4max"),
        ("3b", "mlx_tok_s_qwen25_3b_4bit_m4max"),
        ("7b", "mlx_tok_s_qwen25_7b_4bit_m4max"),
        ("14b", "mlx_tok_s_qwen25_14b_4bit_m4max"),
        ("7b", "m4_air_7b_tok_s"),
    ]:
        label = f"qwen2.5-{size} 4-bit"
        s = c.stats(label, "decode_tps")
        chip = "M4 Max" if cid.endswith("m4max") else "M4 (Air/Mini)"
        pr = proj[(proj.machine == chip) & (proj.config == label)]
        pred = ""
        if not pr.empty:
            r = pr.iloc[0]
            span = f"{r.predicted_tps_low:.3g}" + (
                f"-{r.predicted_tps_high:.3g}" if r.predicted_tps_high != r.predicted_tps_low else ""
            )
            pred = (
                f" At the efficiency measured here ({r.efficiency_used:.1%}, from {r.efficiency_from}), the roofline "
                f"projects {span} tok/s for the {chip} (projection table)."
            )
        if not s:
            c.not_measured(cid, f"{label} did not run in this profile.{pred}", "sweep")
            continue
        lo, hi = published.figure_range(cid)
        verdict = verdicts.effect_matches(iv(s), lo, hi, ABSOLUTE_TOLERANCE * hi)
        c.add(
            cid,
            verdict,
            f"A measurement on Apple hardware: {label} decodes at {txt(s, ' tok/s')} on {c.where}; published "
            f"{hi:g} tok/s, within ±{ABSOLUTE_TOLERANCE:.0%}: {verdict}.{pred}",
            iv(s),
            "tok/s",
            "sweep",
        )
    for cid in ["mlx_vs_ollama_advantage_m4max", "m4_air_frameworks_converge"]:
        c.not_measured(cid, "compares MLX with Ollama, which is not part of this workbook.", "sweep")
    air, mx_ = bw.original_machines().set_index("machine").bandwidth_low[["M4 (Air/Mini)", "M4 Max"]]
    lo, hi = published.figure_range("air_to_max_7b_speedup")
    c.not_measured(
        "air_to_max_7b_speedup",
        f"needs both machines. At equal efficiency the roofline predicts {mx_ / air:.2f}x from "
        f"{air:g} to {mx_:g} GB/s; the published {lo:g}-{hi:g}x would need the M4 Max to be {lo / (mx_ / air):.1f}-"
        f"{hi / (mx_ / air):.1f}x more efficient than the Air.",
        "projection",
    )
    c.not_measured(
        "speculative_decoding_potential",
        "speculative decoding's gain depends on how often the draft's tokens are accepted, which random-weight "
        "presets cannot show.",
        "sweep",
    )


def _cold_start(c: Ctx) -> None:
    """rust_cold_start_qwen3_moe: "a warm-up run matters" is not Rust-specific, so it is judged on mlx-lm's own
    first generation of the claim's model shape (else a stand-in) against its warm runs: over fresh processes where
    they ran (coldstart), else on the notebook's own cold run."""
    fresh = coldstart.result(c.df)
    if fresh is not None:
        _cold_start_fresh(c, fresh)
        return
    cid, tab = coldstart.CLAIM, bw.cold_table(c.df)
    tab = tab[tab.ratio.notna()] if "ratio" in tab else tab
    if tab.empty:
        c.not_measured(cid, "no preset ran a cold generation and two warm ones in this run.", "cold")
        return
    pick = tab[tab.label == coldstart.MODEL]
    pick = pick if len(pick) else tab[tab.moe] if tab.moe.any() else tab
    r = pick.iloc[0]
    lo, hi, _, _ = coldstart.published_ratio()
    m = verdicts.Interval(r.ratio, r.ratio_low, r.ratio_high)
    verdict = verdicts.effect_matches(m, lo, hi, coldstart.TOLERANCE, no_effect_at=1.0)
    backend = str(c.df.backend.iloc[0])
    c.add(
        cid,
        verdict,
        f"Measured with Python mlx-lm, not the Rust binding, on {c.where}: the first generation of {r.label}"
        f"{_stand_in(r.label)} after building it decodes at {r.cold_decode_tps:.1f} tok/s against "
        f"{r.warm_decode_tps:.1f} tok/s warm (geometric mean of n={int(r.n_warm)} warm runs): cold/warm "
        f"{txt(m, 'x')} (t prediction interval on log tok/s with {int(r.n_warm) - 1} degrees of freedom: a process "
        f"has one cold run, its noise taken as a warm run's; no fresh processes ran); {_published_cold()}: "
        f"{verdict}. The cold run took {r.cold_wall_s:.2f} s against {r.warm_wall_s:.2f} s warm, "
        f"{r.extra_before_first_s:+.2f} s of it before the first token (TTFT {r.cold_ttft_ms:.0f} vs "
        f"{r.warm_ttft_ms:.0f} ms); building the model ({r.build_s:.2f} s) is not in it."
        + _first_use_text(r, backend),
        m,
        "x (cold / warm decode tok/s)",
        "cold",
    )


def _cold_start_fresh(c: Ctx, fresh: coldstart.Result) -> None:
    """The claim judged on the fresh processes' per-process cold/warm ratios (t interval, stopped by its rule)."""
    e, p = fresh.estimate, fresh.processes
    m = verdicts.Interval(e.value, e.low, e.high)
    lo, hi, _, _ = coldstart.published_ratio()
    verdict = verdicts.effect_matches(m, lo, hi, coldstart.TOLERANCE, no_effect_at=1.0)
    own = bw.cold_table(c.df)
    own = own[own.label == fresh.label] if len(own) else own
    in_notebook = (
        ""
        if own.empty or np.isnan(own.ratio.iloc[0])
        else f" In the notebook's own process, where presets before it had compiled the kernels they share, its one "
        f"cold run was {txt(verdicts.Interval(*own[['ratio', 'ratio_low', 'ratio_high']].iloc[0]), 'x')} of its "
        "warm runs (prediction interval): not the verdict."
    )
    c.add(
        coldstart.CLAIM,
        verdict,
        f"Measured with Python mlx-lm, not the Rust binding, on {c.where}: {fresh.label}{_stand_in(fresh.label)} "
        f"built and run in {e.n} fresh processes, each one's first generation against the warm ones right after "
        f"it: cold/warm decode tok/s {txt(m, 'x')} (n={e.n} processes, {e.method}, {e.confidence:.1%} interval; "
        f"stopped: {_cold_stop(fresh.stop_reason)}); {_published_cold()}: {verdict}. Medians over the processes: "
        f"the cold run took {p.cold_wall_s.median():.2f} s against {p.warm_wall_s.median():.2f} s warm (TTFT "
        f"{p.cold_ttft_ms.median():.0f} vs {p.warm_ttft_ms.median():.0f} ms), at {p.cold_decode_tps.median():.1f} "
        f"against {p.warm_decode_tps.median():.1f} tok/s; starting the interpreter and importing took "
        f"{p.start_s.median():.1f} s and building the model {p.build_s.median():.2f} s, neither in the ratio. What "
        "a fresh process does not pay again is what the machine keeps between processes (files, and on MLX CUDA "
        "its kernels cached on disk)." + in_notebook,
        m,
        "x (cold / warm decode tok/s)",
        "cold",
    )


def _stand_in(label: str) -> str:
    return (
        ""
        if label == coldstart.MODEL
        else f" (stand-in: {coldstart.MODEL}, the claim's shape, did not run here)"
    )


def _published_cold() -> str:
    lo, hi, cold, warm = coldstart.published_ratio()
    return (
        f"published (Rust, Apple silicon) {cold:g} vs {text.span(min(warm), max(warm))} tok/s warm, "
        f"{lo:.3f}-{hi:.3f}x, within ±{coldstart.TOLERANCE:g}"
    )


def _cold_stop(reason: str) -> str:
    """Why the processes stopped, in the comparisons' words (text.stop_text); their limit counts processes."""
    return "the most processes allowed ran" if reason == blocks.MAX_BLOCKS else text.stop_text(reason)


def _first_use_text(r, backend: str) -> str:
    """What the cold run's extra time is, as far as the data say: on MLX CUDA a first run compiles its kernels
    (JIT) at their first call; that is named as dominating when the cold run took over twice a warm one."""
    if backend != "cuda":
        return ""
    shared = " Kernels it shares with presets run before it in this process were already compiled."
    if r.extra_s > r.warm_wall_s:
        return (
            f" On MLX's CUDA backend a first run compiles its kernels at their first call (JIT): that one-off work "
            f"dominates here ({r.extra_s:.1f} of the cold run's {r.cold_wall_s:.1f} s are extra, "
            f"{r.extra_before_first_s:.1f} s of them before the first token, outside the decode clock)."
            + shared
        )
    return (
        f" On MLX's CUDA backend a first run also compiles its kernels (JIT); here it adds {r.extra_s:.2f} s."
    )
