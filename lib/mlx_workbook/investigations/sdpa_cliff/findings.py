"""Notebook 03's findings: one per published claim of seeds 003 and 002 that belongs to it, plus where the
cliffs are on this version, each computed from the stored rows (see `sdpa_cliff` for the tables and charts).

Claims comparing Rust with Python cannot be re-run (the workbook drives MLX from Python only); where the
write-up attributes the difference to the MLX version, the version comparison measures that part.
"""

from __future__ import annotations

import pandas as pd

from mlx_workbook.core import measure, published, scope, stats
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import NOT_MEASURED, Interval, at_least, effect_matches
from mlx_workbook.investigations.sdpa_cliff import cliffs
from mlx_workbook.investigations.sdpa_cliff import measure as attention
from mlx_workbook.investigations.sdpa_cliff.analysis import (
    BEFORE,
    CLIFF_AT,
    SOURCE,
    bullets,
    cliff_lines,
    gqa_ratios,
    graph_stats,
    heads,
    model_label,
    op_table,
    versions_ran,
    where,
)
from mlx_workbook.report.text import change_text, interval_text, share_text, span

# Our tolerances around the published figures (method parameters, not published numbers):
GAP_127_TOLERANCE_PCT = (
    10.0  # points either side of the published % gap at 127: the version is only part of it
)
PER_TOKEN_TOLERANCE_X = 0.3  # either side of the published per-token ratio (its inputs are rounded ms/token)
POST_FIX_TOLERANCE_PCT = 3.0  # points either side of the published post-fix % differences (run-to-run noise)


def step_text(step: cliffs.Step) -> str:
    return (
        f"{step.length:g} vs {step.before_length:g} tokens: {step.after:.3g} vs {step.before:.3g} ms, "
        f"ratio {interval_text(step_ratio(step), fmt='.3f')} against "
        f"{step.expected_high:.3f} from the "
        f"extra work ({step.verdict})"
    )


class _Versions:
    """The version comparison's rows, which versions ran, and why the others did not."""

    def __init__(self, df: pd.DataFrame, p: dict, results):
        self.rows, self.ran, self.p, self.results = rows(df, "versions"), versions_ran(df), p, list(results)
        self.confirmations = rows(df, "versions" + attention.CONFIRM)  # alternated pairs: the claims' steps

    def step(self, version: str, mode: str = "causal") -> cliffs.Step | None:
        return (
            attention.pair(
                self.rows,
                BEFORE,
                CLIFF_AT,
                tolerance=self.p["tolerance"],
                confirmations=self.confirmations,
                kind="prefill",
                probe_mlx=version,
                mode=mode,
            )
            if version in self.ran
            else None
        )

    def gap(self, new: str, old: str, lengths=None, **filters) -> measure.Stats | None:
        """new over old, pooled over the rows the filters (and `lengths`, if given) pick."""
        if new not in self.ran or old not in self.ran:
            return None
        sub = rows(self.rows, **filters)
        sub = sub if lengths is None else sub[sub.length.isin(lengths)]
        return stats.pooled_ratio(sub, "probe_mlx", new, old, ["kind", "mode", "length"])

    def paired_lengths(self, new: str, old: str, **filters) -> list[int]:
        """The lengths measured under both versions (those a pooled ratio pools over)."""
        sub = rows(self.rows, **filters)
        new_lengths, old_lengths = (set(sub.length[sub.probe_mlx == ver].astype(int)) for ver in (new, old))
        return sorted(new_lengths & old_lengths)

    def why_missing(self, *needed: str) -> str:
        missing = [v for v in needed if v not in self.ran]
        return (
            "; ".join(r.message for r in self.results if r.version in missing)
            or f"MLX {', '.join(missing)} not in mlx_versions ({self.p['mlx_versions']})"
        )


def step_ratio(step: cliffs.Step) -> Interval:
    return Interval(step.ratio, step.low, step.high)


def figure_text(claim_id: str) -> str:
    """A claim's published figure as written: one number, or 'low to high'."""
    lo, hi = published.figure_range(claim_id)
    return span(lo, hi, " to ")


def step_this_version(df: pd.DataFrame, p: dict) -> cliffs.Step | None:
    """The causal step across the published threshold in the main prefill sweep (fused kernel, this MLX)."""
    return attention.pair(
        rows(df, "prefill"),
        BEFORE,
        CLIFF_AT,
        tolerance=p["tolerance"],
        confirmations=rows(df, "prefill" + attention.CONFIRM),
        mode="causal",
        variant="sdpa",
        dtype=p["main_dtype"],
        head_dim=p["main_head_dim"],
    )


def where_cliffs_are(
    df: pd.DataFrame, p: dict, found: pd.DataFrame, now: cliffs.Step | None
) -> list[Finding]:
    """cliffs_found (every cliff of this version) and cliff_128_this_version (`now`, step_this_version)."""
    row, tol = df.iloc[0], p["tolerance"]
    cur = found[found.probe_mlx == row.mlx] if len(found) else found
    by_mode = (
        {
            f"{m} ({v})": n
            for (m, v), n in cur[cur.sweep == "prefill"].groupby(["mode", "variant"]).size().items()
        }
        if len(cur)
        else {}
    )
    n_prefill = len(attention.sweep_lengths(p["wide_lengths"], p["boundaries"], p["offsets"]))
    n_decode = len(attention.sweep_lengths(p["decode_lengths"], p["decode_boundaries"], p["decode_offsets"]))
    top = cur.iloc[0]["excess"] if len(cur) else None
    k = int(p.get("confirm_processes", 1))
    processes = (
        f" (each found by most of up to {k} processes: the notebook's own and fresh ones)" if k > 1 else ""
    )
    out = [
        Finding(
            id="cliffs_found",
            headline=True,
            section="cliffs",
            measured=Interval(top, top, top).measured("x beyond the work", count=len(cur))
            if len(cur)
            else Interval(0.0, 0.0, 0.0).measured("cliffs"),
            statement=(
                f"MLX {row.mlx} on {row.device} ({row.backend}): {len(cur)} confirmed cliff(s) beyond a {tol:.0%} "
                f"tolerance{processes} across the prefill ({n_prefill} lengths x {len(p['modes'])} mask modes, plus "
                f"dtypes x head dims), decode ({n_decode} cache lengths) and prompt sweeps"
                + (
                    f"; prefill cliffs by mask mode (kernel): {by_mode or 'none'}; decode cliffs: "
                    f"{(cur.sweep == 'decode').sum()}; the largest: {cliff_lines(cur.head(1))[0]}."
                    if len(cur)
                    else "."
                )
            ),
        )
    ]
    if now is not None:
        verdict_text = (
            f"a cliff at {CLIFF_AT}."
            if now.verdict == cliffs.DOWN
            else f"no cliff at {CLIFF_AT}."
            if now.verdict == cliffs.NONE
            else f"the step is {now.verdict}."
        )
        out.append(
            Finding(
                id="cliff_128_this_version",
                section="prefill",
                measured=step_ratio(now).measured(f"x ({CLIFF_AT} over {BEFORE} tokens)"),
                statement=f"MLX {row.mlx} ({row.backend}), causal prefill SDPA, {p['main_dtype']}, "
                f"d{p['main_head_dim']}: "
                f"{step_text(now)}: {verdict_text}",
            )
        )
    return out


def version_claims(df: pd.DataFrame, p: dict, results, now: cliffs.Step | None) -> list[Finding]:
    """The seed-003 claims about MLX 0.29.1, 0.30.0 and 0.30.1, from the version comparison (`now`: this
    version's step, step_this_version, quoted when 0.29.1 could not run)."""
    v, row, tol = _Versions(df, p, results), df.iloc[0], p["tolerance"]
    before_fix = published.table(SOURCE, "cliff_127_vs_128").set_index("seq_len")
    out = []
    # sdpa_cliff_at_128_tokens: under MLX 0.29.1, BEFORE tokens slow and CLIFF_AT fast (a "down" step).
    old = v.step("0.29.1")
    rust = before_fix.rust_ms
    out.append(
        Finding(
            id="sdpa_cliff_at_128_tokens",
            headline=True,
            section="versions",
            verdict=cliffs.verdict(old, cliffs.DOWN) if old else NOT_MEASURED,
            measured=step_ratio(old).measured(f"x ({CLIFF_AT} over {BEFORE} tokens)") if old else None,
            published=published.reference("sdpa_cliff_at_128_tokens"),
            statement=(
                f"MLX 0.29.1 on {row.device} ({row.backend}), causal prefill SDPA: {step_text(old)}; published "
                f"(Rust, whole run): {rust[CLIFF_AT]:g} vs {rust[BEFORE]:g} ms, ratio "
                f"{rust[CLIFF_AT] / rust[BEFORE]:.3f}."
                if old
                else f"MLX 0.29.1 could not run here ({v.why_missing('0.29.1')}); on MLX {row.mlx}: "
                + (step_text(now) if now else f"{BEFORE} / {CLIFF_AT} not measured")
                + "."
            ),
        )
    )

    # sdpa_cliff_127_gap_vs_python: 0.29.1 vs 0.30.0 just below the threshold (parity at it).
    g127, g128 = (
        v.gap("0.29.1", "0.30.0", kind="prefill", mode="causal", length=n) for n in (BEFORE, CLIFF_AT)
    )
    d127, d128 = (Interval.change_pct(g) if g else None for g in (g127, g128))
    pub_pct = 100 * (before_fix.rust_ms / before_fix.python_ms - 1)
    out.append(
        Finding(
            id="sdpa_cliff_127_gap_vs_python",
            section="versions",
            verdict=effect_matches(
                d127,
                *published.figure_range("sdpa_cliff_127_gap_vs_python"),
                tolerance=GAP_127_TOLERANCE_PCT,
                no_effect_at=0.0,
            )
            if g127
            else NOT_MEASURED,
            measured=d127.measured(f"% (0.29.1 over 0.30.0 at {BEFORE})") if g127 else None,
            published=published.reference("sdpa_cliff_127_gap_vs_python"),
            statement=(
                f"Causal prefill SDPA at {BEFORE} tokens takes {d127.value:+.1f}% [{d127.low:+.1f}, "
                f"{d127.high:+.1f}] under MLX 0.29.1 vs 0.30.0 here ({d128.value:+.1f}% at {CLIFF_AT}); "
                f"published: +{figure_text('sdpa_cliff_127_gap_vs_python')}% at {BEFORE} ({rust[BEFORE]:g} vs "
                f"{before_fix.python_ms[BEFORE]:g} ms, Rust on 0.29.1 vs Python on 0.30.0, whole runs), "
                f"{pub_pct[CLIFF_AT]:+.1f}% at {CLIFF_AT} ({rust[CLIFF_AT]:g} vs {before_fix.python_ms[CLIFF_AT]:g} "
                f"ms, 'parity')."
                if g127 and g128
                else f"Not measured: {v.why_missing('0.29.1', '0.30.0')}."
            ),
        )
    )

    # sdpa_cliff_cause_causal_lt128: the version effect should sit in causal mode below the threshold only.
    both = {"0.29.1", "0.30.0"} <= set(v.ran)
    lt = (
        [n for n in v.paired_lengths("0.29.1", "0.30.0", kind="prefill", mode="causal") if n < CLIFF_AT]
        if both
        else []
    )
    cause_lt = v.gap("0.29.1", "0.30.0", lengths=lt, kind="prefill", mode="causal") if lt else None
    # Every mask mode ran at version_lengths (causal also at version_causal_lengths): compare modes there.
    common = sorted(p["version_lengths"])
    cause = {m: v.gap("0.29.1", "0.30.0", lengths=common, kind="prefill", mode=m) for m in p["modes"]}
    out.append(
        Finding(
            id="sdpa_cliff_cause_causal_lt128",
            section="versions",
            verdict=at_least(Interval.of(cause_lt), 1 + tol) if cause_lt else NOT_MEASURED,
            measured=(
                Interval.of(cause_lt).measured(f"x (0.29.1 over 0.30.0, causal, < {CLIFF_AT} tokens)")
                if cause_lt
                else None
            ),
            published=published.reference("sdpa_cliff_cause_causal_lt128"),
            statement=(
                f"Causal prefill SDPA below {CLIFF_AT} tokens ({lt}) takes "
                f"{interval_text(cause_lt, 'x', fmt='.3f')} under MLX 0.29.1 vs 0.30.0 here; by mask mode over "
                f"the lengths every mode ran ({common}): "
                + ", ".join(f"{m} {interval_text(s, 'x', fmt='.3f')}" for m, s in cause.items() if s)
                + f" (a bug of 0.29.1 in causal SDPA below {CLIFF_AT} would show as > {1 + tol:.2f}x in causal "
                f"only)."
                if cause_lt
                else f"Not measured: {v.why_missing('0.29.1', '0.30.0')}."
            ),
        )
    )

    # No cliff after the fix: MLX 0.30.1 (Rust after the update) and 0.30.0 (Python).
    for claim_id, version in (
        ("sdpa_cliff_gone_after_upgrade", "0.30.1"),
        ("python_0300_no_cliff", "0.30.0"),
    ):
        s = v.step(version)
        out.append(
            Finding(
                id=claim_id,
                section="versions",
                verdict=cliffs.verdict(s, cliffs.NONE) if s else NOT_MEASURED,
                measured=step_ratio(s).measured(f"x ({CLIFF_AT} over {BEFORE} tokens)") if s else None,
                published=published.reference(claim_id),
                statement=(
                    f"MLX {version} on {row.device} ({row.backend}), causal prefill SDPA: {step_text(s)}."
                    if s
                    else f"Not measured: {v.why_missing(version)}."
                ),
            )
        )

    # initial_rust_python_gap_3_24x: can the MLX version alone (0.29.1 vs 0.30.0) explain the per-token gap?
    per_token = v.gap("0.29.1", "0.30.0", kind="decode")
    per_token_pub = (
        published.table(SOURCE, "ms_per_token_before_fix").set_index("implementation").ms_per_token
    )
    out.append(
        Finding(
            id="initial_rust_python_gap_3_24x",
            section="versions",
            verdict=effect_matches(
                Interval.of(per_token),
                *published.figure_range("initial_rust_python_gap_3_24x"),
                tolerance=PER_TOKEN_TOLERANCE_X,
                no_effect_at=1.0,
            )
            if per_token
            else NOT_MEASURED,
            measured=Interval.of(per_token).measured("x (0.29.1 over 0.30.0, decode SDPA)")
            if per_token
            else None,
            published=published.reference("initial_rust_python_gap_3_24x"),
            statement=(
                f"Decode SDPA (the per-token attention) takes {per_token.median:.3f}x [{per_token.low:.3f}, "
                f"{per_token.high:.3f}] under MLX 0.29.1 vs 0.30.0 on {row.device} ({row.backend}); the published "
                f"{figure_text('initial_rust_python_gap_3_24x')}x per token (Rust on 0.29.1, "
                f"{per_token_pub['Rust']:g} ms/token, vs Python on 0.30.0, {per_token_pub['Python']:g} ms/token) is "
                f"not a version effect of attention here unless this interval reaches it. Rust itself is not "
                f"measured."
                if per_token
                else f"Not measured: {v.why_missing('0.29.1', '0.30.0')}."
            ),
        )
    )

    # post_fix_worst_case_256 / post_fix_best_case_512: 0.30.1 vs 0.30.0 at the published table's worst and best
    # lengths (Rust over Python largest and smallest), in the claim's direction.
    after = published.table(SOURCE, "latency_after_fix").set_index("seq_len")
    change = after.rust_ms / after.python_ms - 1
    worst, best = int(change.idxmax()), int(change.idxmin())
    for claim_id, n in (("post_fix_worst_case_256", worst), ("post_fix_best_case_512", best)):
        word = published.claim(claim_id)["direction"]  # "slower" or "faster"
        g = v.gap("0.30.1", "0.30.0", kind="prefill", mode="causal", length=n)
        iv = Interval.change_pct(g).scaled(1 if word == "slower" else -1) if g else None
        out.append(
            Finding(
                id=claim_id,
                section="versions",
                verdict=effect_matches(
                    iv, *published.figure_range(claim_id), tolerance=POST_FIX_TOLERANCE_PCT, no_effect_at=0.0
                )
                if g
                else NOT_MEASURED,
                measured=iv.measured(f"% {word} (0.30.1 vs 0.30.0 at {n})") if g else None,
                published=published.reference(claim_id),
                statement=(
                    f"Causal prefill SDPA at {n} tokens is {share_text(iv)} {word} "
                    f"under MLX 0.30.1 than 0.30.0 here (published: Rust on 0.30.1 {figure_text(claim_id)}% {word} "
                    f"than Python on 0.30.0, {after.rust_ms[n]:g} vs {after.python_ms[n]:g} ms, whole runs; the "
                    f"version part of that difference is what is measured here)."
                    if g
                    else f"Not measured: {v.why_missing('0.30.1', '0.30.0')}."
                ),
            )
        )
    return out


def gqa_and_ops(
    df: pd.DataFrame, p: dict, gqa_ratio: measure.Stats, gqa_by_kind: dict[str, measure.Stats]
) -> list[Finding]:
    """gqa_let_sdpa_handle (seed 002), per_op_rust_python_parity and graph_build_parity (seed 003)."""
    gqa_pct = Interval.change_pct(gqa_ratio)
    table = op_table(df)
    sdpa_dec = measure.summarize(rows(rows(df, "ops"), op="sdpa", phase="decode").value)
    graph = rows(df, "graph")
    label, layers = model_label(graph), int(graph.layers.iloc[0])
    build, evaluate, hidden = graph_stats(df)
    graph_pub = published.table(SOURCE, "graph_build_ms").iloc[0]
    medians = "; ".join(
        f"{op} "
        + " / ".join(
            f"{m.iloc[0]:.3g}" if len(m) else "n/a"
            for m in (rows(table, op=op, phase=ph)["median"] for ph in ("decode", "prefill"))
        )
        + " ms"
        for op in table.op.unique()
    )
    by_kind = ", ".join(
        f"{k} {change_text(d)}" for k, d in ((k, Interval.change_pct(s)) for k, s in gqa_by_kind.items())
    )
    return [
        Finding(
            id="gqa_let_sdpa_handle",
            headline=False,
            section="gqa",
            verdict=at_least(gqa_pct, 0.0),
            measured=gqa_pct.measured("% slower with repeated K/V"),
            published=published.reference("gqa_let_sdpa_handle"),
            statement=f"Repeating K/V heads by hand before SDPA ({heads(p)}, {p['main_dtype']}, d{p['main_head_dim']}) "
            f"takes {change_text(gqa_pct)} vs native GQA over all "
            f"cases; {by_kind} ({where(df)}).",
        ),
        Finding(
            id="per_op_rust_python_parity",
            section="ops",
            verdict=NOT_MEASURED,
            measured=Interval.of(sdpa_dec).measured("ms (SDPA op at decode)"),
            published=published.reference("per_op_rust_python_parity"),
            statement="Not measured: Rust vs Python parity needs the Rust binding (the workbook drives MLX from "
            "Python only). "
            f"Per-op medians at decode / prefill shapes ({p['model']}, MoE {p['moe_model'] or 'none'}, "
            f"{p['op_dtype']}, {where(df)}): {medians}.",
        ),
        # "not the problem": building must take less than evaluating (a pipelined loop hides it then).
        Finding(
            id="graph_build_parity",
            section="ops",
            verdict=at_least(Interval.of(hidden), 1.0),
            measured=Interval.of(build).measured("ms (graph build, one decode step)"),
            published=published.reference("graph_build_parity"),
            statement=f"Building one decode step's graph ({label}, {layers} layers) takes "
            f"{interval_text(build, ' ms')} ({1e3 * build.median / layers:.0f} us per layer); "
            f"evaluating it {evaluate.median:.3g} ms, {hidden.median:.2f}x [{hidden.low:.2f}, "
            f"{hidden.high:.2f}] the build, so a pipelined loop "
            f"{'hides' if hidden.low > 1 else 'may not hide'} graph building ({where(df)}; published: "
            f"{graph_pub.python_ms:g} ms Python, {graph_pub.rust_ms:g} ms Rust, GLM-4.5 MoE, Apple "
            f"silicon).",
        ),
    ]


def findings(df: pd.DataFrame, p: dict, found: pd.DataFrame, version_results) -> list[Finding]:
    """Every finding of the notebook, from its stored rows, parameters, all cliffs (sdpa_cliff.all_cliffs) and
    the version comparison's results (for why a version did not run)."""
    now = step_this_version(df, p)
    return scope.settle(
        where_cliffs_are(df, p, found, now)
        + version_claims(df, p, version_results, now)
        + gqa_and_ops(df, p, *gqa_ratios(df)),
        df,
    )


def closing_note(df: pd.DataFrame, p: dict, found: pd.DataFrame, version_results) -> str:
    """Which versions ran (and why the others did not), and every cliff found, as Markdown."""
    tol = p["tolerance"]
    return (
        f"On {where(df)}, MLX versions run: {', '.join(versions_ran(df)) or 'none'}"
        + "".join(f"; {r.message}" for r in version_results if not r.ok)
        + ".\n\n"
        + (
            f"Every cliff found ({len(found)}, beyond a {tol:.0%} tolerance of the work envelope):\n\n"
            if len(found)
            else ""
        )
        + bullets(
            cliff_lines(found), f"No cliff beyond a {tol:.0%} tolerance of the work envelope in any sweep."
        )
    )
