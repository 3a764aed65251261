"""04_bandwidth's findings: one per published claim of the notebook (seed 004, and seed 002's model tables),
each with a verdict computed from the stored measurements, plus the notebook's own measured findings.

`findings(df, acc, ceiling, params)` is the entry point: df is run.measurements, acc the byte accounting
(roofline.accounting), params the run's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import measure, published, verdicts
from ..results import Finding
from ..roofline import Ceiling, mean_context, quant_label
from . import bandwidth as bw
from . import bandwidth_serving as sv

SEVEN_B = ["qwen2.5-7b", "llama-3-8b", "mistral-7b"]  # the write-ups' "7B" class, in order of preference


@dataclass
class Ctx:
    df: pd.DataFrame
    acc: pd.DataFrame
    ceiling: Ceiling
    params: dict

    def __post_init__(self):
        self.dec = self.df[self.df.experiment == "decode"]
        self.table = bw.decode_table(self.df, self.params["bound_threshold"], self.ceiling)
        self.dense = self.table[~self.table.moe]
        self.where = bw.where(self.df)
        self.out: list[Finding] = []

    def stats(self, label, metric):
        values = self.dec[(self.dec.label == label) & (self.dec.metric == metric)].value
        return measure.summarize(values) if label and len(values) else None

    def add(self, claim_id, verdict, statement, measured, section, headline=False):
        self.out.append(Finding(id=claim_id, statement=statement, verdict=verdict, measured=measured,
                                published=published.reference(claim_id), section=section, headline=headline))

    def first_ran(self, names, quant):
        return next((f"{n} {quant}" for n in names if f"{n} {quant}" in set(self.table.label)), None)

    def over(self, s) -> str:
        """Says so when an efficiency interval passes 100%: the probe, not decoding, is then the weaker figure."""
        if not s or s.high <= 1:
            return ""
        peak = (f"; against the published peak of {self.ceiling.published_gbs:g} GB/s it is "
                f"{s.median * self.ceiling.gbs / self.ceiling.published_gbs:.0%}" if self.ceiling.published_gbs else "")
        return (f" Above 100%: decoding moved bytes faster than the {self.ceiling.gbs:.0f} GB/s bandwidth probe did, "
                f"so the probe underestimates this device's sustained bandwidth{peak}.")


m, txt = bw.as_measured, bw.as_text


def findings(df: pd.DataFrame, acc: pd.DataFrame, ceiling: Ceiling, params: dict) -> list[Finding]:
    c = Ctx(df, acc, ceiling, params)
    for part in (_efficiency, _size_and_bytes, _model_tables, _apple_and_projection):
        part(c)
    c.out += sv.findings(df, c.where, params)
    c.out.append(Finding(id="bandwidth_ceiling", section="ceiling", statement=f"Rooflines use {ceiling.describe()}.",
                         measured={"value": ceiling.gbs, "low": ceiling.low, "high": ceiling.high, "unit": "GB/s"}))
    missing = {cl["id"] for cl in published.claims("04_bandwidth")} - {f.id for f in c.out}
    assert not missing, f"claims without a finding: {sorted(missing)}"
    return c.out


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
        c.out.append(Finding(
            id=fid, section="efficiency", verdict="measured" if s else verdicts.INCONCLUSIVE, measured=m(s, "%", 100),
            headline=fid == "efficiency_7b_4bit" and s is not None,
            statement=(f"{label} decodes at {txt(s, '%', 100)} of the {g:.0f} GB/s roofline "
                       f"({txt(c.stats(label, 'steady_tps'), ' tok/s')} vs {table.roofline_tps[label]:.1f} tok/s for "
                       f"{table.bytes_per_token[label] / 1e9:.2f} GB per token), {c.where}." + c.over(s)
                       if s else f"No 7-8B {quant} preset ran in this profile ({c.params['profile']}); see the full "
                                 "profile's run.")))
    threshold, dense = c.params["bound_threshold"], c.dense
    bound = dense.efficiency >= threshold
    share_bound = bound.mean()
    slope = bw.loglog_slope(dense) if dense.bytes_per_token.nunique() > 1 else None
    regimes = bw.regimes_text(c.table)
    c.add("decode_bandwidth_bound",
          verdicts.HOLDS if share_bound >= 0.75 else verdicts.DOES_NOT_HOLD if share_bound <= 0.25 else verdicts.INCONCLUSIVE,
          f"{bound.sum()} of {len(dense)} dense configurations reach {threshold:.0%} of the {g:.0f} GB/s roofline "
          f"(efficiency {dense.efficiency.min():.0%} to {dense.efficiency.max():.0%}); "
          + (f"time per token grows as bytes^{slope['slope']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}] "
             "(1 would be purely bandwidth-bound). " if slope else "")
          + f"Regimes: {regimes}. On {c.where}." + (" " + bw.over_ceiling_text(dense, c.ceiling)).rstrip(),
          {"value": float(np.median(dense.efficiency)) * 100, "low": float(dense.efficiency.min()) * 100,
           "high": float(dense.efficiency.max()) * 100, "unit": "% of roofline (median, min, max)"},
          "efficiency", headline=True)
    x2 = verdicts.Interval(2 ** slope["slope"], 2 ** slope["low"], 2 ** slope["high"]) if slope else None
    c.add("bandwidth_doubling_doubles_tok_s", verdicts.effect_matches(x2, 2, tolerance=0.25) if x2 else verdicts.INCONCLUSIVE,
          (f"One machine cannot change its bandwidth; under the roofline halving the bytes per token is the same "
           f"lever. Across the dense sweep halving the bytes multiplies tok/s by {x2.value:.2f} [{x2.low:.2f}, "
           f"{x2.high:.2f}] (2 if decode were purely bandwidth-bound)."
           if x2 else "Needs at least two dense configurations with different bytes per token."),
          {"value": x2.value, "low": x2.low, "high": x2.high, "unit": "x per 2x"} if x2 else None, "efficiency")
    floor_ms = float(c.table.floor_ms.iloc[0])
    c.out.append(Finding(id="decode_regimes", section="efficiency", verdict="measured",
                         measured={"value": floor_ms, "low": floor_ms, "high": floor_ms, "unit": "ms per token (fastest step)"},
                         statement=f"Where decode stops being bandwidth-bound (threshold {threshold:.0%} of the "
                                   f"roofline, fastest step {floor_ms:.2f} ms): {regimes}."))
    ref4, note = _reference_4bit(c)
    s = c.stats(ref4, "efficiency")
    c.add("bandwidth_efficiency_observed_range",
          verdicts.effect_matches(verdicts.Interval(s.median * 100, s.low * 100, s.high * 100), 70, 90) if s else verdicts.INCONCLUSIVE,
          f"{ref4}{note} decodes at {txt(s, '%', 100)} of the measured-bandwidth roofline on {c.where} "
          f"(published: 70-90%)." + c.over(s) if s else "No 4-bit dense configuration ran.", m(s, "%", 100), "efficiency")
    for cid, hw in [("bandwidth_efficiency_m4_air", "the M4 Air"), ("bandwidth_efficiency_m4_max", "the M4 Max"),
                    ("m4_max_bandwidth_utilization", "the M4 Max")]:
        c.add(cid, verdicts.NOT_APPLICABLE, f"A claim about {hw}, which this run is not. Here {ref4}{note} reaches "
              f"{txt(s, '%', 100)} of its roofline on {c.where}."
              + (" (The published 94% does not follow from its own row: 94 / 80 tok/s is 118%.)" if cid.endswith("m4_max") else ""),
              m(s, "%", 100), "efficiency")
    _python_overhead(c, ref4, s)


def _python_overhead(c: Ctx, ref4, s) -> None:
    """1 - efficiency bounds the non-memory share of a step only while efficiency stays below 100%."""
    if not s:
        c.add("python_overhead_lt_1pct", verdicts.INCONCLUSIVE, "No 4-bit dense configuration ran.", None, "efficiency")
        return
    if s.high > 1:
        peak = c.ceiling.published_gbs
        bound = (1 - s.median * c.ceiling.gbs / peak) * 100 if peak else None
        c.add("python_overhead_lt_1pct", verdicts.INCONCLUSIVE,
              f"{ref4} decodes at {txt(s, '%', 100)} of the measured-bandwidth roofline on {c.where}: above 100%, so "
              "the probe underestimates the ceiling and 1 - efficiency bounds nothing."
              + (f" Against the published peak ({peak:g} GB/s) everything that is not memory time is at most "
                 f"{bound:.1f}% of a step, too large to confirm <1% (the host share itself is measured in "
                 "02_decode_loop)." if peak else ""),
              {"value": bound, "low": bound, "high": bound, "unit": "% (upper bound, published peak)"} if peak else None,
              "efficiency")
        return
    py = verdicts.Interval((1 - s.median) * 100, (1 - s.high) * 100, (1 - s.low) * 100)
    c.add("python_overhead_lt_1pct", verdicts.HOLDS if py.high < 1 else verdicts.INCONCLUSIVE,
          f"Everything that is not the roofline's memory time is {verdicts.describe(py, '%')} of a {ref4} step on "
          f"{c.where}: an upper bound on the Python share, " + ("below 1%, so the claim holds." if py.high < 1 else
                                                               "too large to confirm <1% (the host share itself is measured in 02_decode_loop)."),
          {"value": py.value, "low": py.low, "high": py.high, "unit": "% (upper bound)"}, "efficiency")


def _size_and_bytes(c: Ctx) -> None:
    context = mean_context(c.params["prompt_tokens"], c.params["gen_tokens"])
    row = c.acc[(c.acc.model == "qwen2.5-7b") & (c.acc.bits == 4)]
    b7 = float(row.total.iloc[0]) / 1e9 if not row.empty else None
    c.add("data_per_token_7b_4bit", verdicts.effect_matches(verdicts.Interval(b7, b7, b7), 4, 5, tolerance=0.4) if b7 else verdicts.INCONCLUSIVE,
          f"The library's accounting gives {b7:.2f} GB per token for qwen2.5-7b 4-bit (group {c.params['group_size']}) "
          f"at context {context:g}: {float(row.weights.iloc[0]) / 1e9:.2f} GB of weights read, "
          f"{float(row.kv_read.iloc[0]) / 1e6:.1f} MB of KV cache (published ~4-5 GB; the ~ read as a 0.4 GB tolerance)."
          if b7 else "qwen2.5-7b is not in projection_presets.", {"value": b7, "low": b7, "high": b7, "unit": "GB"} if b7 else None,
          "bytes")
    dense = c.dense
    width = 4 if (dense.bits == 4).sum() >= 2 else dense.bits.mode().iloc[0]
    d = dense[dense.bits == width].sort_values("params")
    if d.model.nunique() < 2:
        c.add("tok_s_sublinear_in_params", verdicts.INCONCLUSIVE, "Needs two dense presets of different size at one "
              f"width; this profile ran {sorted(dense.model.unique())}.", None, "sweep")
        return
    small, large = d.iloc[0], d.iloc[-1]
    tps = c.dec[c.dec.metric == "decode_tps"]
    slow = measure.ratio_interval(tps[tps.label == small.label].value, tps[tps.label == large.label].value)
    ratio = large.params / small.params
    c.add("tok_s_sublinear_in_params",
          verdicts.HOLDS if slow.high < ratio else verdicts.DOES_NOT_HOLD if slow.low > ratio else verdicts.INCONCLUSIVE,
          f"{large.label} is {txt(slow, 'x')} slower than {small.label} for {ratio:.1f}x the parameters and "
          f"{large.bytes_per_token / small.bytes_per_token:.1f}x the bytes per token on {c.where}: sub-linear when "
          "the slowdown is below the parameter ratio (small models pay a fixed per-token cost).", m(slow, "x"), "sweep")


def _model_tables(c: Ctx) -> None:
    """Seed 002's mlx-lm tables: tok/s and prompt tok/s are Apple numbers; peak memory follows from the weights."""
    claims = {cl["id"] for cl in published.claims("04_bandwidth")}
    skipped = bw.skipped(c.df).set_index("label").reason
    same_shape = {"qwen3_30b_a3b": ("qwen3-30b-a3b", "4-bit"), "mixtral_8x7b": ("mixtral-8x7b", "4-bit"),
                  "mistral_7b": ("mistral-7b", "4-bit"), "glm45_air": (None, "3-bit")}
    for key, (preset, quant) in same_shape.items():
        label = f"{preset} {quant}" if preset else None
        s_tps, s_mem = c.stats(label, "decode_tps"), c.stats(label, "peak_memory_gb")
        why = ("no GLM-4.5-Air preset in the library" if not preset else f"{label} did not run in this profile"
               + (f" ({skipped[label]})" if label in skipped else ""))
        ours = f"our mlx-lm decode of the same-shaped {label} is {txt(s_tps, ' tok/s')} on {c.where}" if s_tps else why
        rust = next(cid for cid in sorted(claims) if cid.startswith(key) and cid.endswith("rust_vs_mlxlm"))
        c.add(rust, verdicts.NOT_APPLICABLE, f"Rust binding vs mlx-lm: no Rust binding runs here; {ours}.",
              m(s_tps, "tok/s"), "sweep")
        c.add(f"mlxlm_tok_s_{key}_{quant[0]}bit", verdicts.NOT_APPLICABLE, f"Apple-silicon tok/s, hardware-specific; {ours}.",
              m(s_tps, "tok/s"), "sweep")
        pub = published.claim(f"mlxlm_peak_mem_{key}_{quant[0]}bit")["published"]
        c.add(f"mlxlm_peak_mem_{key}_{quant[0]}bit",
              verdicts.effect_matches(verdicts.Interval.of(s_mem), pub, tolerance=0.15 * pub) if s_mem else verdicts.INCONCLUSIVE,
              f"Peak memory (weights + cache + activations) follows from the weights, not the hardware: {label} peaks "
              f"at {txt(s_mem, ' GB')} here vs {pub} GB published (tolerance 15%)." if s_mem else f"Not measured: {why}.",
              m(s_mem, "GB"), "sweep")
        if f"mlxlm_prompt_tok_s_{key}_{quant[0]}bit" in claims:
            s_p = c.stats(label, "prompt_tps")
            c.add(f"mlxlm_prompt_tok_s_{key}_{quant[0]}bit", verdicts.NOT_APPLICABLE,
                  "Prompt tok/s of a short prompt on Apple silicon, hardware-specific; "
                  + (f"our {c.params['prompt_tokens']}-token prompt on {label} runs at {txt(s_p, ' tok/s')} on "
                     f"{c.where}." if s_p else why + "."), m(s_p, "tok/s"), "sweep")
    c.add("rust_cold_start_qwen3_moe", verdicts.NOT_APPLICABLE, "A cold start of the Rust binding; no Rust binding runs "
          "here, and this notebook excludes its warm-up runs by design.", None, "sweep")


def _apple_and_projection(c: Ctx) -> None:
    proj = bw.projection_table(c.table, c.acc, c.ceiling, c.df.device.iloc[0], c.params["projection_presets"],
                               c.params["projection_bits"])
    for size, cid in [("0.5b", "mlx_tok_s_qwen25_0_5b_4bit_m4max"), ("3b", "mlx_tok_s_qwen25_3b_4bit_m4max"),
                      ("7b", "mlx_tok_s_qwen25_7b_4bit_m4max"), ("14b", "mlx_tok_s_qwen25_14b_4bit_m4max"),
                      ("7b", "m4_air_7b_tok_s")]:
        label = f"qwen2.5-{size} 4-bit"
        s = c.stats(label, "decode_tps")
        chip = "M4 Max" if cid.endswith("m4max") else "M4 (Air/Mini)"
        pr = proj[(proj.machine == chip) & (proj.config == label)]
        pred = ""
        if not pr.empty:
            r = pr.iloc[0]
            span = f"{r.predicted_tps_low:.3g}" + (f"-{r.predicted_tps_high:.3g}" if r.predicted_tps_high != r.predicted_tps_low else "")
            pred = (f" At the efficiency measured here ({r.efficiency_used:.1%}, from {r.efficiency_from}), the roofline "
                    f"projects {span} tok/s for the {chip} (projection table).")
        c.add(cid, verdicts.NOT_APPLICABLE, f"A measurement on Apple hardware. Here {label} decodes at "
              + (f"{txt(s, ' tok/s')} on {c.where}." if s else "(not run in this profile).") + pred, m(s, "tok/s"), "sweep")
    for cid in ["mlx_vs_ollama_advantage_m4max", "m4_air_frameworks_converge"]:
        c.add(cid, verdicts.NOT_APPLICABLE, "Compares MLX with Ollama on Apple hardware; Ollama is not part of this "
              "workbook.", None, "sweep")
    air, mx_ = bw.original_machines().set_index("machine").bandwidth_low[["M4 (Air/Mini)", "M4 Max"]]
    c.add("air_to_max_7b_speedup", verdicts.NOT_APPLICABLE,
          f"An expectation for Apple hardware. At equal efficiency the roofline predicts {mx_ / air:.2f}x from "
          f"{air:g} to {mx_:g} GB/s; the published 4.7-5.5x would need the M4 Max to be {4.7 / (mx_ / air):.1f}-"
          f"{5.5 / (mx_ / air):.1f}x more efficient than the Air.", None, "projection")
    c.add("speculative_decoding_potential", verdicts.NOT_APPLICABLE,
          "Speculative decoding's gain depends on how often the draft's tokens are accepted, which random-weight "
          "presets cannot show; not measured here.", None, "sweep")
