"""Notebook 03's findings: one per published claim of seeds 003 and 002 that belongs to it, plus where the
cliffs are on this version, each computed from the stored rows (see `sdpa_cliff` for the tables and charts).

Claims comparing Rust with Python cannot be re-run (the workbook drives MLX from Python only); where the
write-up attributes the difference to the MLX version, the version comparison measures that part.
"""

from __future__ import annotations

import pandas as pd

from .. import attention, cliffs, measure, published
from ..results import Finding
from ..verdicts import HOLDS, INCONCLUSIVE, NOT_APPLICABLE, Interval, at_least, effect_matches
from .sdpa_cliff import LABELS, graph_stats, gqa_ratios, heads, model_label, op_table, rows, versions_ran, where


def pct(stats: measure.Stats) -> Interval:
    """A ratio as a percent difference (1.25 -> +25)."""
    return Interval((stats.median - 1) * 100, (stats.low - 1) * 100, (stats.high - 1) * 100)


def matches(iv: Interval, value: float, tol: float) -> str:
    """effect_matches, but an interval too wide to tell the published effect from others is inconclusive."""
    verdict = effect_matches(iv, value, tolerance=tol)
    return INCONCLUSIVE if verdict == HOLDS and iv.high - iv.low > 4 * tol else verdict


def measured(iv: Interval, unit: str, **extra) -> dict:
    return {"value": iv.value, "low": iv.low, "high": iv.high, "unit": unit, **extra}


def step_text(step: cliffs.Step) -> str:
    return (f"128 vs 127 tokens: {step.after:.3g} vs {step.before:.3g} ms, ratio {step.ratio:.3f} "
            f"[{step.low:.3f}, {step.high:.3f}] against {step.expected_high:.3f} from the extra work ({step.verdict})")


class _Versions:
    """The version comparison's rows, which versions ran, and why the others did not."""

    def __init__(self, df: pd.DataFrame, p: dict, results):
        self.rows, self.ran, self.p, self.results = rows(df, "versions"), versions_ran(df), p, list(results)

    def step(self, version: str, mode: str = "causal") -> cliffs.Step | None:
        return attention.pair(self.rows, 127, 128, tolerance=self.p["tolerance"], kind="prefill", probe_mlx=version,
                              mode=mode) if version in self.ran else None

    def gap(self, new: str, old: str, **filters) -> measure.Stats | None:
        if new not in self.ran or old not in self.ran:
            return None
        return attention.pooled_ratio(attention.select(self.rows, **filters), "probe_mlx", new, old,
                                      ["kind", "mode", "length"])

    def why_missing(self, *needed: str) -> str:
        missing = [v for v in needed if v not in self.ran]
        return "; ".join(r.message for r in self.results if r.version in missing) or \
            f"MLX {', '.join(missing)} not in mlx_versions ({self.p['mlx_versions']})"


def where_cliffs_are(df: pd.DataFrame, p: dict, found: pd.DataFrame) -> list[Finding]:
    """cliffs_found (every cliff of this version) and cliff_128_this_version (the causal 127 -> 128 step)."""
    row, tol = df.iloc[0], p["tolerance"]
    cur = found[found.probe_mlx == row.mlx] if len(found) else found
    by_mode = ({f"{m} ({v})": n for (m, v), n in cur[cur.sweep == "prefill"].groupby(["mode", "variant"]).size().items()}
               if len(cur) else {})
    n_prefill = len(attention.sweep_lengths(p["wide_lengths"], p["boundaries"], p["offsets"]))
    n_decode = len(attention.sweep_lengths(p["decode_lengths"], p["decode_boundaries"], p["decode_offsets"]))
    top = cur.iloc[0]["excess"] if len(cur) else None
    out = [Finding(
        id="cliffs_found", headline=True, section="cliffs",
        measured=measured(Interval(top, top, top), "x beyond the work", count=len(cur)) if len(cur) else
        {"value": 0.0, "low": 0.0, "high": 0.0, "unit": "cliffs"},
        statement=(f"MLX {row.mlx} on {row.device} ({row.backend}): {len(cur)} cliff(s) beyond a {tol:.0%} "
                   f"tolerance across the prefill ({n_prefill} lengths x {len(p['modes'])} mask modes, plus "
                   f"dtypes x head dims), decode ({n_decode} cache lengths) and prompt sweeps"
                   + (f"; prefill cliffs by mask mode (kernel): {by_mode or 'none'}; decode cliffs: "
                      f"{(cur.sweep == 'decode').sum()}; the largest: {cliffs.describe(cur.head(1), LABELS)[0]}."
                      if len(cur) else ".")))]
    step = attention.pair(rows(df, "prefill"), 127, 128, tolerance=tol, mode="causal", variant="sdpa",
                          dtype=p["main_dtype"], head_dim=p["main_head_dim"])
    if step is not None:
        verdict_text = ("a cliff at 128." if step.verdict == cliffs.DOWN else "no cliff at 128."
                        if step.verdict == cliffs.NONE else f"the step is {step.verdict}.")
        out.append(Finding(
            id="cliff_128_this_version", section="prefill",
            measured=measured(Interval(step.ratio, step.low, step.high), "x (128 over 127 tokens)"),
            statement=f"MLX {row.mlx} ({row.backend}), causal prefill SDPA, {p['main_dtype']}, d{p['main_head_dim']}: "
                      f"{step_text(step)}: {verdict_text}"))
    return out


def version_claims(df: pd.DataFrame, p: dict, results) -> list[Finding]:
    """The seed-003 claims about MLX 0.29.1, 0.30.0 and 0.30.1, from the version comparison."""
    v, row, tol = _Versions(df, p, results), df.iloc[0], p["tolerance"]
    out = []
    # sdpa_cliff_at_128_tokens: under MLX 0.29.1, 127 tokens slow and 128 fast (a "down" step).
    old = v.step("0.29.1")
    now = attention.pair(rows(df, "prefill"), 127, 128, tolerance=tol, mode="causal", variant="sdpa",
                         dtype=p["main_dtype"], head_dim=p["main_head_dim"])
    out.append(Finding(
        id="sdpa_cliff_at_128_tokens", headline=True, section="versions", verdict=cliffs.verdict(old, cliffs.DOWN),
        measured=measured(Interval(old.ratio, old.low, old.high), "x (128 over 127 tokens)") if old else None,
        published=published.reference("sdpa_cliff_at_128_tokens"),
        statement=(f"MLX 0.29.1 on {row.device} ({row.backend}), causal prefill SDPA: {step_text(old)}; published "
                   f"(Rust, whole run): 600 vs 958 ms, ratio 0.626." if old else
                   f"MLX 0.29.1 could not run here ({v.why_missing('0.29.1')}); on MLX {row.mlx}: "
                   + (step_text(now) if now else "127 / 128 not measured") + ".")))

    # sdpa_cliff_127_gap_vs_python: 0.29.1 vs 0.30.0 at 127 tokens, 56% slower (parity at 128).
    g127 = v.gap("0.29.1", "0.30.0", kind="prefill", mode="causal", length=127)
    g128 = v.gap("0.29.1", "0.30.0", kind="prefill", mode="causal", length=128)
    out.append(Finding(
        id="sdpa_cliff_127_gap_vs_python", section="versions",
        verdict=matches(pct(g127), 56, 10) if g127 else INCONCLUSIVE,
        measured=measured(pct(g127), "% (0.29.1 over 0.30.0 at 127)") if g127 else None,
        published=published.reference("sdpa_cliff_127_gap_vs_python"),
        statement=(f"Causal prefill SDPA at 127 tokens takes {pct(g127).value:+.1f}% [{pct(g127).low:+.1f}, "
                   f"{pct(g127).high:+.1f}] under MLX 0.29.1 vs 0.30.0 here ({pct(g128).value:+.1f}% at 128); "
                   f"published: +56% at 127 (Rust on 0.29.1 vs Python on 0.30.0, whole runs), parity at 128."
                   if g127 and g128 else f"Not measured: {v.why_missing('0.29.1', '0.30.0')}.")))

    # sdpa_cliff_cause_causal_lt128: the version effect should sit in causal mode below 128 tokens only.
    lt = [n for n in p["version_lengths"] if n < 128]
    cause = {m: v.gap("0.29.1", "0.30.0", kind="prefill", mode=m) for m in p["modes"]}
    both = {"0.29.1", "0.30.0"} <= set(v.ran)
    below = attention.select(v.rows, kind="prefill", mode="causal") if both else None
    cause_lt = (attention.pooled_ratio(below[below.length < 128], "probe_mlx", "0.29.1", "0.30.0", ["length"])
                if both else None)
    out.append(Finding(
        id="sdpa_cliff_cause_causal_lt128", section="versions",
        verdict=at_least(Interval.of(cause_lt), 1 + tol) if cause_lt else INCONCLUSIVE,
        measured=measured(Interval.of(cause_lt), "x (0.29.1 over 0.30.0, causal, < 128 tokens)") if cause_lt else None,
        published=published.reference("sdpa_cliff_cause_causal_lt128"),
        statement=(f"Causal prefill SDPA below 128 tokens ({lt}) takes {cause_lt.median:.3f}x [{cause_lt.low:.3f}, "
                   f"{cause_lt.high:.3f}] under MLX 0.29.1 vs 0.30.0 here; all lengths by mask mode: "
                   + ", ".join(f"{m} {s.median:.3f}x [{s.low:.3f}, {s.high:.3f}]" for m, s in cause.items() if s)
                   + f" (a bug of 0.29.1 in causal SDPA below 128 would show as > {1 + tol:.2f}x in causal only)."
                   if cause_lt else f"Not measured: {v.why_missing('0.29.1', '0.30.0')}.")))

    # No cliff after the fix: MLX 0.30.1 (Rust after the update) and 0.30.0 (Python).
    for claim_id, version in (("sdpa_cliff_gone_after_upgrade", "0.30.1"), ("python_0300_no_cliff", "0.30.0")):
        s = v.step(version)
        out.append(Finding(
            id=claim_id, section="versions", verdict=cliffs.verdict(s, cliffs.NONE),
            measured=measured(Interval(s.ratio, s.low, s.high), "x (128 over 127 tokens)") if s else None,
            published=published.reference(claim_id),
            statement=(f"MLX {version} on {row.device} ({row.backend}), causal prefill SDPA: {step_text(s)}."
                       if s else f"Not measured: {v.why_missing(version)}.")))

    # initial_rust_python_gap_3_24x: can the MLX version alone (0.29.1 vs 0.30.0) explain 3.24x per token?
    per_token = v.gap("0.29.1", "0.30.0", kind="decode")
    out.append(Finding(
        id="initial_rust_python_gap_3_24x", section="versions",
        verdict=matches(Interval.of(per_token), 3.24, 0.3) if per_token else INCONCLUSIVE,
        measured=measured(Interval.of(per_token), "x (0.29.1 over 0.30.0, decode SDPA)") if per_token else None,
        published=published.reference("initial_rust_python_gap_3_24x"),
        statement=(f"Decode SDPA (the per-token attention) takes {per_token.median:.3f}x [{per_token.low:.3f}, "
                   f"{per_token.high:.3f}] under MLX 0.29.1 vs 0.30.0 on {row.device} ({row.backend}); the published "
                   f"3.24x per token (Rust on 0.29.1 vs Python on 0.30.0) is not a version effect of attention here "
                   f"unless this interval reaches it. Rust itself is not measured." if per_token else
                   f"Not measured: {v.why_missing('0.29.1', '0.30.0')}.")))

    # post_fix_worst_case_256 / post_fix_best_case_512: 0.30.1 vs 0.30.0 at 256 (0.7% slower) and 512 (6.3% faster).
    for claim_id, n, sign, value in (("post_fix_worst_case_256", 256, 1, 0.7), ("post_fix_best_case_512", 512, -1, 6.3)):
        g = v.gap("0.30.1", "0.30.0", kind="prefill", mode="causal", length=n)
        iv = Interval(sign * pct(g).value, min(sign * pct(g).low, sign * pct(g).high),
                      max(sign * pct(g).low, sign * pct(g).high)) if g else None
        word = "slower" if sign > 0 else "faster"
        out.append(Finding(
            id=claim_id, section="versions", verdict=matches(iv, value, 3.0) if g else INCONCLUSIVE,
            measured=measured(iv, f"% {word} (0.30.1 vs 0.30.0 at {n})") if g else None,
            published=published.reference(claim_id),
            statement=(f"Causal prefill SDPA at {n} tokens is {iv.value:.1f}% [{iv.low:.1f}, {iv.high:.1f}] {word} "
                       f"under MLX 0.30.1 than 0.30.0 here (published: Rust on 0.30.1 {value}% {word} than Python on "
                       f"0.30.0, whole runs; the version part of that difference is what is measured here)." if g else
                       f"Not measured: {v.why_missing('0.30.1', '0.30.0')}.")))
    return out


def gqa_and_ops(df: pd.DataFrame, p: dict, gqa_ratio: measure.Stats,
                gqa_by_kind: dict[str, measure.Stats]) -> list[Finding]:
    """gqa_let_sdpa_handle (seed 002), per_op_rust_python_parity and graph_build_parity (seed 003)."""
    gqa_pct = pct(gqa_ratio)
    table = op_table(df)
    sdpa_dec = measure.summarize(attention.select(rows(df, "ops"), op="sdpa", phase="decode").value)
    graph = rows(df, "graph")
    label, layers = model_label(graph), int(graph.layers.iloc[0])
    build, evaluate, hidden = graph_stats(df)
    medians = "; ".join(
        f"{op} " + " / ".join(f"{m.iloc[0]:.3g}" if len(m) else "n/a" for m in
                              (attention.select(table, op=op, phase=ph)["median"] for ph in ("decode", "prefill")))
        + " ms" for op in table.op.unique())
    return [
        Finding(id="gqa_let_sdpa_handle", headline=False, section="gqa", verdict=at_least(gqa_pct, 0.0),
                measured=measured(gqa_pct, "% slower with repeated K/V"),
                published=published.reference("gqa_let_sdpa_handle"),
                statement=f"Repeating K/V heads by hand before SDPA ({heads(p)}, {p['main_dtype']}, d{p['main_head_dim']}) "
                          f"takes {gqa_pct.value:+.1f}% [{gqa_pct.low:+.1f}, {gqa_pct.high:+.1f}] vs native GQA over all "
                          f"cases; " + ", ".join(f"{k} {pct(s).value:+.1f}% [{pct(s).low:+.1f}, {pct(s).high:+.1f}]"
                                                 for k, s in gqa_by_kind.items()) + f" ({where(df)})."),
        Finding(id="per_op_rust_python_parity", section="ops", verdict=NOT_APPLICABLE,
                measured=measured(Interval.of(sdpa_dec), "ms (SDPA op at decode)"),
                published=published.reference("per_op_rust_python_parity"),
                statement="Rust vs Python parity cannot be measured here (the workbook drives MLX from Python only). "
                          f"Per-op medians at decode / prefill shapes ({p['model']}, MoE {p['moe_model'] or 'none'}, "
                          f"{p['op_dtype']}, {where(df)}): {medians}."),
        # ~1.6 ms, "not the problem": building must take less than evaluating (pipelining hides it).
        Finding(id="graph_build_parity", section="ops", verdict=at_least(Interval.of(hidden), 1.0),
                measured=measured(Interval.of(build), "ms (graph build, one decode step)"),
                published=published.reference("graph_build_parity"),
                statement=f"Building one decode step's graph ({label}, {layers} layers) takes {build.median:.3g} ms "
                          f"[{build.low:.3g}, {build.high:.3g}] ({1e3 * build.median / layers:.0f} us per layer); "
                          f"evaluating it {evaluate.median:.3g} ms, {hidden.median:.2f}x [{hidden.low:.2f}, "
                          f"{hidden.high:.2f}] the build, so a pipelined loop "
                          f"{'hides' if hidden.low > 1 else 'may not hide'} graph building ({where(df)}; published: "
                          f"1.61 ms Python, 1.54 ms Rust, GLM-4.5 MoE, Apple silicon)."),
    ]


def findings(df: pd.DataFrame, p: dict, found: pd.DataFrame, version_results) -> list[Finding]:
    """Every finding of the notebook, from its stored rows, parameters, all cliffs (sdpa_cliff.all_cliffs) and
    the version comparison's results (for why a version did not run)."""
    return (where_cliffs_are(df, p, found) + version_claims(df, p, version_results)
            + gqa_and_ops(df, p, *gqa_ratios(df)))


def closing_note(df: pd.DataFrame, p: dict, found: pd.DataFrame, version_results) -> str:
    """Which versions ran (and why the others did not), and every cliff found, as Markdown."""
    tol = p["tolerance"]
    lines = cliffs.describe(found, LABELS) if len(found) else []
    return (f"On {where(df)}, MLX versions run: {', '.join(versions_ran(df)) or 'none'}"
            + "".join(f"; {r.message}" for r in version_results if not r.ok) + ".\n\n"
            + (f"Every cliff found ({len(found)}, beyond a {tol:.0%} tolerance of the work envelope):\n\n"
               + "\n".join(f"- {line}" for line in lines) if len(found) else
               f"No cliff beyond a {tol:.0%} tolerance of the work envelope in any sweep."))
