"""Turns notebook 03's stored measurements (attention-kernel cliffs) into its cliff tables and charts.

Every function reads the long-format rows of `run.measurements` (experiments "prefill", "decode", "gqa",
"versions" written by `attention`, "prompt", "ops", "graph" written by `ops`) and the run's parameters `p`
(the notebook's parameters cell as a dict); the findings built from them are in `sdpa_cliff_findings`.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from mlx_workbook.core import measure, published, stats
from mlx_workbook.core.frames import rows
from mlx_workbook.investigations.sdpa_cliff import cliffs
from mlx_workbook.investigations.sdpa_cliff import measure as attention
from mlx_workbook.probes.sdpa_probe import CACHE_STEP
from mlx_workbook.report import plots
from mlx_workbook.report.text import model_label, where  # noqa: F401  (used by sdpa_cliff_findings too)

SOURCE = "003_sdpa_cliff"  # the published tables: before the fix, after it, per op
CLIFF_AT = int(published.claim("sdpa_cliff_at_128_tokens")["published"])  # the published threshold, tokens
BEFORE = CLIFF_AT - 1  # the length just below it (the write-up's slow case)
LABELS = ["sweep", "probe_mlx", "kind", "variant", "mode", "dtype", "head_dim"]  # what names a cliff
SWEEPS = ("prefill", "decode", "versions", "prompt")
PER_PAIR = "ns per query-key pair and head (median, 95%)"
OP_NAMES = {
    "SwiGLU": "swiglu",
    "RMSNorm": "rmsnorm",
    "SDPA": "sdpa",
    "Matmul": "matmul",
    "MoE Routing": "moe_routing",
}


# --- labels and selections ---------------------------------------------------------------------------------


def heads(p: dict) -> str:
    return f"{p['n_q_heads']}/{p['n_kv_heads']} heads"


def mark(fig: Figure, xs, label: str, color: str = "#b00020") -> Figure:
    """Dotted vertical lines at detected cliffs (or cache steps) on a chart's axes."""
    ax = fig.axes[0]
    xs = sorted(set(xs))
    for i, x in enumerate(xs):
        ax.axvline(x, ls=":", lw=1.2, color=color, label=label if i == 0 else None)
    if xs:
        ax.legend(fontsize=8)
    return fig


# --- cliffs ------------------------------------------------------------------------------------------------


def scan(df: pd.DataFrame, sweep: str, p: dict) -> pd.DataFrame:
    """The cliffs one sweep ("prefill", "decode", "versions", "prompt") nominates, judged against the work pair
    by pair at 95% (a liberal screen; p["screen_margin"]: cliffs.screened), column `origin` "nominated"."""
    sub = rows(df, sweep)
    # runs before method 9 had no screen margin: read back, they nominate what they re-measured
    screen = dict(tolerance=p["tolerance"], family_wise=False, margin=p.get("screen_margin", 0.0))
    if sweep == "prompt":
        found = cliffs.scan(sub, ["model"], work="flops", **screen)
        return found.assign(origin=cliffs.NOMINATED)
    if sub.empty or (sweep == "versions" and "probe_mlx" not in sub.columns):
        return pd.DataFrame()
    return attention.scan(sub, **screen).assign(origin=cliffs.NOMINATED)


def candidates(df: pd.DataFrame, sweep: str, p: dict) -> pd.DataFrame:
    """What a sweep's confirmation pass re-measures: the nominated steps (`scan`) and, unless
    p["confirm_boundaries"] is false, every step into and out of the sweep's boundaries (origin "boundary",
    also where the sweep nominated it, so its judgement never depends on the sweep). `outcomes` settles them."""
    nominated = scan(df, sweep, p)
    if not p.get("confirm_boundaries", True) or not boundaries(sweep, p):
        return nominated
    around = attention.boundary_steps(rows(df, sweep), boundaries(sweep, p), tolerance=p["tolerance"])
    parts = [t for t in (around.assign(origin=cliffs.BOUNDARY), nominated) if len(t)]
    if len(parts) < 2:
        return parts[0] if parts else nominated
    keys = [c for c in attention.GROUP + ["probe_mlx", "before_length", "length"] if c in around.columns]
    return pd.concat(parts, ignore_index=True).drop_duplicates(subset=keys).reset_index(drop=True)


def boundaries(sweep: str, p: dict) -> list[int]:
    """The boundaries a sweep straddles finely (whose neighbouring steps are always re-measured). The versions
    sweep takes the prefill and decode sweeps' boundaries: its lengths straddle some of them (127-129, 255-257),
    and at the installed version those steps are the other sweeps' steps again, so they are re-measured there
    too rather than only where the versions sweep nominated them (at 46cbb15 one twin's versions sweep nominated
    the installed version's decode 255 -> 256, a cliff of both twins' decode sweeps, and the other's did not)."""
    if sweep == "prefill":
        return sorted(set(p["boundaries"]) | set(p["variant_boundaries"]))
    if sweep == "versions":
        return sorted(set(boundaries("prefill", p)) | set(boundaries("decode", p)))
    return list(p["decode_boundaries"]) if sweep == "decode" else []


def judged(df: pd.DataFrame, sweep: str, candidates: pd.DataFrame, p: dict) -> pd.DataFrame:
    """Every candidate of one sweep with its confirmation pass's ("<sweep>_confirm") judgement added
    (cliffs.CONFIRM_COLUMNS)."""
    if candidates.empty:
        return candidates
    confirmations = rows(df, sweep + attention.CONFIRM)
    if sweep == "prompt":  # one configuration per model, and one pass
        return cliffs.confirm(candidates, confirmations, ["model"], work="flops", tolerance=p["tolerance"])
    return attention.judge(
        candidates, confirmations, tolerance=p["tolerance"], looks=int(p.get("confirm_passes", 1))
    )


def outcomes(
    df: pd.DataFrame, sweep: str, candidates: pd.DataFrame, p: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(cliffs, transients, undecided) of one sweep, from one judgement of its candidates:
    - cliffs: the candidates its confirmation pass ("<sweep>_confirm") repeated in the same direction;
    - transients: the nominated rest (not repeated, or not re-measured), each with the confirmation's ratio;
    - undecided: the re-measured steps whose confirmation stayed unclear after every pass, their interval
      straddling the widened envelope's edge, and the jumps another process did not find (verdict "varies"),
      so the data call them neither a cliff nor no cliff. Saved beside the cliffs, so that `make compare` can
      tell a cliff the other run could not decide from one it contradicted."""
    if candidates.empty:
        return candidates, candidates, candidates
    table = judged(df, sweep, candidates, p)
    varies = table.confirm_verdict == cliffs.VARIES
    unclear = (table.confirm_verdict == cliffs.UNCLEAR) | varies
    # an unconfirmed boundary step is no transient (the sweep never suspected it), nor is one that repeated in
    # this process but not in another
    dropped = table.confirmed | (table.get("origin") == cliffs.BOUNDARY) | varies
    return tuple(table[keep].reset_index(drop=True) for keep in (table.confirmed, ~dropped, unclear))


def transients_note(transient: dict[str, pd.DataFrame]) -> str:
    """How many candidates per sweep did not repeat in their confirmation pass (or were not re-measured)."""
    counts = {name: len(t) for name, t in transient.items() if len(t)}
    if not counts:
        return "**Transients:** none; every candidate step repeated in its confirmation pass."
    unmeasured = sum(int(t["confirm_n"].isna().sum()) for t in transient.values() if len(t))
    listed = ", ".join(f"{name} {n}" for name, n in counts.items())
    return (
        f"**Transients** (candidates whose step did not repeat when their two lengths were alternated, so not "
        f"called cliffs): {listed}"
        + (f"; {unmeasured} of them not re-measured (beyond max_confirm)." if unmeasured else ".")
    )


def undecided_note(table: pd.DataFrame, p: dict) -> str:
    """How many re-measured steps stayed unclear, and why that is no contradiction between runs."""
    if table.empty:
        return "**Undecided steps:** none; every re-measured step was either a cliff or within the envelope."
    varies = int((table.confirm_verdict == cliffs.VARIES).sum())
    text = (
        f"**Undecided steps** ({len(table)}): re-measured steps whose interval still straddles the work envelope "
        f"widened by {p['tolerance']:.0%} after every pass, or that no majority of the processes that re-measured "
        "them called alike"
    )
    if varies:
        text += (
            f", {varies} of them found a jump by some processes and not by others (verdict `varies`, every "
            "process's verdict in `process_verdicts`): process-dependent, no cliff"
        )
    return text + (". Another run may list some of them as cliffs, or not, without contradicting this one.")


def sample_note(df: pd.DataFrame, p: dict) -> str:
    """How much work the probe sweeps' samples held: the sync that ends a sample is divided over its calls, so a
    short sample pulls a length's time toward the sync's (method 11 sizes each band's count for `target_ms` at its
    fastest length). Samples under half the target are counted: the calibration misjudged them, or `max_calls`
    capped them."""
    lines = []
    for sweep in ("prefill", "decode", "gqa", "versions"):
        sub = rows(df, sweep)
        if sub.empty or "sample_ms" not in sub.columns:
            continue
        ms = sub["sample_ms"].dropna()
        short = int((ms < p["target_ms"] / 2).sum())
        bands = (
            sub.groupby(attention.configuration(sub) + [cliffs.BAND], dropna=False).ngroups
            if cliffs.BAND in sub
            else 0
        )
        lines.append(
            f"{sweep}: {len(ms)} samples"
            + (f", {bands} band{'s' * (bands != 1)}" if bands else "")
            + f", {ms.min():.3g}-{ms.max():.3g} ms a sample (median "
            f"{ms.median():.3g}), {int(sub.calls.min())}-{int(sub.calls.max())} calls"
            + (f"; {short} under half the {p['target_ms']:g} ms target" if short else "")
        )
    return bullets(lines, "No probe sweep ran.")


# What names a cliff in the saved list (tables/cliffs.csv), for `make compare`: where it is and which way it goes.
CLIFF_KEY = ["sweep", *attention.GROUP, "probe_mlx", "before_length", "length", "verdict"]
UNDECIDED_KEY = CLIFF_KEY[:-1]  # where an undecided step is (it has no direction)


def all_cliffs(found: dict[str, pd.DataFrame], mlx: str) -> pd.DataFrame:
    """Every sweep's cliffs in one table (column `sweep`; `probe_mlx` = this version where unset), largest
    departure from the work envelope first."""
    parts = [t.assign(sweep=name) for name, t in found.items() if len(t)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["sweep", "excess"])
    for column in CLIFF_KEY:  # a prompt-sweep-only table still has every key column `make compare` reads
        if column not in table.columns:
            table[column] = None
    # object first: the column is all-NaN floats where no sweep probed another version
    table["probe_mlx"] = table["probe_mlx"].astype(object).fillna(mlx)
    away = table["excess"].astype(float).apply(lambda x: max(x, 1 / x))
    return table.loc[away.sort_values(ascending=False).index].reset_index(drop=True)


def cliff_view(table: pd.DataFrame):
    """Every cliff, all rows, in the columns a reader needs (the full table stays in `table`): where it is,
    the step in time, its ratio against the work envelope, and which way it goes."""
    if table.empty:
        return table
    where = [c for c in ["sweep", "probe_mlx", "variant", "mode", "dtype", "head_dim"] if c in table]
    view = table[where].copy()
    view["lengths"] = [f"{a:g} -> {b:g}" for a, b in zip(table.before_length, table.length)]
    view["ms"] = [f"{a:.3g} -> {b:.3g}" for a, b in zip(table.before, table.after)]
    view["ratio [95%]"] = [
        f"{r:.3g} [{lo:.3g}, {hi:.3g}]" for r, lo, hi in zip(table.ratio, table.low, table.high)
    ]
    if "confirm_ratio" in table:  # a boundary step's sweep ratio may say nothing: its confirmation decided
        view["confirmed [95%]"] = [
            f"{r:.3g} [{lo:.3g}, {hi:.3g}]" if pd.notna(r) else ""
            for r, lo, hi in zip(table.confirm_ratio, table.confirm_low, table.confirm_high)
        ]
    if "other_processes" in table and table.other_processes.notna().any():
        view["other processes"] = table.other_processes.fillna("")
    view["from the work"] = [f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(table.expected_low, table.expected_high)]
    view["direction"] = table.verdict
    if "origin" in table:
        view["origin"] = table.origin
    return view.style.hide(axis="index")  # a Styler shows every row, not pandas' first and last five


def cliff_lines(table: pd.DataFrame) -> list[str]:
    """One sentence per cliff (see cliffs.describe)."""
    return cliffs.describe(table, LABELS) if len(table) else []


def bullets(lines: list[str], empty: str) -> str:
    return "\n".join(f"- {line}" for line in lines) or empty


# --- prefill, decode, GQA ----------------------------------------------------------------------------------


def prefill_chart(df: pd.DataFrame, p: dict, found: pd.DataFrame) -> Figure:
    """Time per unit of work of the mask-mode sweep (one line per mode, and kernel if several), cliffs marked."""
    main = rows(rows(df, "prefill"), dtype=p["main_dtype"], head_dim=p["main_head_dim"])
    main = main.assign(series=main["mode"] + (" (" + main.variant + ")" if len(p["variants"]) > 1 else ""))
    table = plots.summary_table(attention.per_pair(main), ["series", "length"])
    fig = plots.lines_with_intervals(
        table,
        x="length",
        series="series",
        logx=True,
        logy=True,
        ylabel=PER_PAIR,
        title=f"Prefill SDPA by mask mode, {p['main_dtype']}, head dim {p['main_head_dim']}, {heads(p)}\n{where(df)}",
        xlabel="prompt length (tokens; queries = keys)",
    )
    if len(found):
        mark(
            fig,
            rows(found, dtype=p["main_dtype"], head_dim=p["main_head_dim"]).length,
            "cliff detected",
        )
    return fig


def variants_chart(df: pd.DataFrame, p: dict, found: pd.DataFrame) -> Figure:
    """The dtype x head-dim sweep for the first of `variant_modes`, cliffs of that mode marked."""
    mode, lengths = (
        p["variant_modes"][0],
        attention.sweep_lengths(p["variant_wide"], p["variant_boundaries"], p["offsets"]),
    )
    var = rows(rows(df, "prefill"), mode=mode, variant="sdpa")
    var = var[var.length.isin(lengths)]
    var = var.assign(config=var.dtype + " d" + var.head_dim.astype(int).astype(str))
    table = plots.summary_table(attention.per_pair(var), ["config", "length"])
    fig = plots.lines_with_intervals(
        table,
        x="length",
        series="config",
        logx=True,
        logy=True,
        ylabel=PER_PAIR,
        title=f"Prefill SDPA, mask {mode!r}, by dtype and head dim, {heads(p)}\n{where(df)}",
        xlabel="prompt length (tokens)",
    )
    if len(found):
        marks = rows(found, mode=mode).length
        mark(fig, marks[marks.isin(lengths)], "cliff detected")
    return fig


def decode_chart(df: pd.DataFrame, p: dict, found: pd.DataFrame) -> Figure:
    """Time per cached key of the decode sweep, one line per dtype and head dim; cache steps and cliffs marked."""
    dec = rows(df, "decode")
    dec = dec.assign(config=dec.dtype + " d" + dec.head_dim.astype(int).astype(str))
    table = plots.summary_table(attention.per_pair(dec), ["config", "length"])
    fig = plots.lines_with_intervals(
        table,
        x="length",
        series="config",
        logx=True,
        logy=True,
        ylabel="ns per key and head (median, 95%)",
        title=f"Decode SDPA (1 query, KV-cache slices), {heads(p)}\n{where(df)}",
        xlabel="cached positions (keys)",
    )
    mark(
        fig,
        range(CACHE_STEP, int(dec.length.max()) + 1, CACHE_STEP),
        f"KV-cache step ({CACHE_STEP})",
        color="#999999",
    )
    return mark(fig, found.length if len(found) else [], "cliff detected")


def gqa_chart(df: pd.DataFrame, p: dict) -> tuple[Figure, pd.DataFrame]:
    """Native grouped-query SDPA vs repeated K/V heads: bars per case, and the table behind them."""
    gqa = rows(df, "gqa")
    gqa = gqa.assign(case=gqa.kind + " " + gqa.length.astype(int).astype(str))
    table = plots.summary_table(gqa, ["case", "variant"])
    fig = plots.bars_with_intervals(
        table,
        category="case",
        group="variant",
        ylabel="ms per call (median, 95%)",
        title=f"GQA: native SDPA vs repeated K/V, {p['main_dtype']}, d{p['main_head_dim']}, {heads(p)}\n{where(df)}",
    )
    return fig, table


def gqa_ratios(df: pd.DataFrame) -> tuple[measure.Stats, dict[str, measure.Stats]]:
    """repeat_kv over sdpa time, pooled over every case, and per kind (prefill, decode)."""
    gqa = rows(df, "gqa")
    by_kind = {
        k: stats.pooled_ratio(g, "variant", "repeat_kv", "sdpa", ["length"]) for k, g in gqa.groupby("kind")
    }
    return stats.pooled_ratio(gqa, "variant", "repeat_kv", "sdpa", ["kind", "length"]), by_kind


# --- versions ----------------------------------------------------------------------------------------------


def version_status(results) -> pd.DataFrame:
    """One row per MLX version tried (versions.VersionResult): status, seconds, message."""
    return pd.DataFrame(
        [
            {"version": r.version, "status": r.status, "seconds": round(r.seconds, 1), "message": r.message}
            for r in results
        ]
    )


def versions_ran(df: pd.DataFrame) -> list[str]:
    """The MLX versions whose probe rows are stored, in their order."""
    ver = rows(df, "versions")
    return list(dict.fromkeys(ver.probe_mlx)) if "probe_mlx" in ver.columns else []


def versions_chart(df: pd.DataFrame, p: dict) -> Figure | None:
    """Causal prefill SDPA per unit of work, one line per MLX version (None when no version ran)."""
    ver = rows(df, "versions")
    if not versions_ran(df):
        return None
    causal = rows(ver, kind="prefill", mode="causal")
    table = plots.summary_table(attention.per_pair(causal), ["probe_mlx", "length"])
    row = df.iloc[0]
    fig = plots.lines_with_intervals(
        table,
        x="length",
        series="probe_mlx",
        logx=True,
        ylabel=PER_PAIR,
        xlabel="prompt length (tokens)",
        title=f"Prefill SDPA, mask 'causal', {p['main_dtype']}, d{p['main_head_dim']}, {heads(p)}, by MLX version\n"
        f"{row.device} ({row.backend})",
    )
    return mark(fig, [CLIFF_AT], f"{CLIFF_AT} tokens", color="#999999")


def steps_127_128(df: pd.DataFrame, p: dict) -> pd.DataFrame:
    """Per MLX version and mask mode: median ms just below and at the published threshold (127 and 128 tokens),
    their ratio, interval and step."""
    ver = rows(rows(df, "versions"), kind="prefill")
    if ver.empty or "probe_mlx" not in ver.columns:
        return pd.DataFrame()
    table = attention.at_lengths(ver, [BEFORE, CLIFF_AT], ["probe_mlx", "mode"])
    confirmations = rows(df, "versions" + attention.CONFIRM)
    steps = [
        attention.pair(
            ver, BEFORE, CLIFF_AT, tolerance=p["tolerance"], confirmations=confirmations, probe_mlx=v, mode=m
        )
        for v, m in zip(table.probe_mlx, table["mode"])
    ]
    return table.assign(
        **{
            f"{CLIFF_AT} / {BEFORE}": [s.ratio if s else float("nan") for s in steps],
            "interval": [f"[{s.low:.2f}, {s.high:.2f}]" if s else "" for s in steps],
            "step": [s.verdict if s else "not measured" for s in steps],
            "judged on": [s.method if s else "" for s in steps],
        }
    )


def claim_steps(df: pd.DataFrame, sweep: str, p: dict) -> pd.DataFrame:
    """The steps published claims are about, as candidate rows for a confirmation pass: BEFORE -> CLIFF_AT in
    causal prefill SDPA of the main dtype and head dim (per MLX version in the version sweep)."""
    sub = rows(
        df,
        sweep,
        kind="prefill",
        variant="sdpa",
        mode="causal",
        dtype=p["main_dtype"],
        head_dim=p["main_head_dim"],
    )
    by = ["probe_mlx"] if sweep == "versions" and "probe_mlx" in sub.columns else []
    out = []
    for _, g in sub.groupby(by) if by else [(None, sub)]:
        if {BEFORE, CLIFF_AT} <= set(g.length.astype(int)):
            first = g.iloc[0]
            out.append(
                {
                    **{c: first[c] for c in attention.GROUP + by},
                    "before_length": BEFORE,
                    "length": CLIFF_AT,
                    "excess": float("nan"),
                    "verdict": "claim",
                }
            )
    return pd.DataFrame(out)


def published_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The write-up's tables: before the fix (127 vs 128) and after it (lengths 32 ... 1024)."""
    return published.table(SOURCE, "cliff_127_vs_128"), published.table(SOURCE, "latency_after_fix")


# --- prompt latency, ops, graph building -------------------------------------------------------------------


def prompt_chart(df: pd.DataFrame) -> tuple[Figure, pd.DataFrame]:
    """Prompt latency relative to the length nearest the published threshold (128), the published tables beside it
    as dashed lines."""
    prompt = rows(df, "prompt")
    table = plots.summary_table(prompt, ["length"])
    ref = table.iloc[(table.length - CLIFF_AT).abs().argmin()]
    rel = table.assign(**{c: table[c] / ref["median"] for c in ("median", "low", "high")})
    fig = plots.lines_with_intervals(
        rel,
        x="length",
        series=None,
        logx=True,
        xlabel="prompt length (tokens)",
        title=f"Prompt latency relative to {ref.length:g} tokens, {model_label(prompt)}\n{where(df)}",
        ylabel=f"time / time at {ref.length:g} tokens",
    )
    before, after = published_tables()
    for col, label in (
        ("python_ms", "published: Python, MLX 0.30.0"),
        ("rust_ms", "published: Rust, MLX 0.30.1"),
    ):
        pub = after.set_index("seq_len")[col]
        plots.add_curve(
            fig, pub.index, pub / pub[CLIFF_AT], f"{label} (Apple silicon)", color=None, marker="x"
        )
    pub = before.set_index("seq_len")["rust_ms"]
    plots.add_curve(
        fig,
        pub.index,
        pub / pub[CLIFF_AT],
        f"published: Rust, MLX 0.29.1, {BEFORE} vs {CLIFF_AT} (Apple silicon)",
        color="#b00020",
        marker="v",
    )
    fig.axes[0].legend(fontsize=7)
    return fig, table


def op_table(df: pd.DataFrame) -> pd.DataFrame:
    return plots.summary_table(rows(df, "ops"), ["op", "phase"])


def ops_chart(df: pd.DataFrame, p: dict) -> tuple[Figure, pd.DataFrame]:
    """Per-op time at decode and prefill shapes, the published Python times as crosses; and the published
    per-op table with the medians measured here beside it."""
    table = op_table(df)
    fig = plots.bars_with_intervals(
        table,
        category="op",
        group="phase",
        horizontal=True,
        ylabel="ms per call (median, 95%)",
        title=f"Per-op time, {p['model']} shapes (MoE: {p['moe_model'] or 'none'}), {p['op_dtype']}\n{where(df)}",
    )
    per_op = published.table(SOURCE, "per_op_ms").assign(op_here=lambda t: t.op.map(OP_NAMES))
    ax, position = fig.axes[0], {op: i for i, op in enumerate(dict.fromkeys(table.op))}
    shown = per_op[per_op.op_here.isin(position)]
    ax.scatter(
        shown.python_ms,
        shown.op_here.map(position),
        marker="x",
        color="black",
        zorder=3,
        label="published: Python, MLX 0.30.0 (Apple silicon, shapes unstated)",
    )
    ax.set_xscale("log")
    ax.legend(fontsize=7, loc="lower right")
    for phase in ("decode", "prefill"):
        per_op[f"measured {phase} ms"] = per_op.op_here.map(
            rows(table, phase=phase).set_index("op")["median"]
        )
    return fig, per_op


def graph_stats(df: pd.DataFrame) -> tuple[measure.Stats, measure.Stats, measure.Stats]:
    """(build ms, evaluate ms, evaluate / build) of one decode step's graph."""
    graph = rows(df, "graph")
    build, evaluate = (graph[graph.metric == m].value for m in ("build_ms", "eval_ms"))
    return measure.summarize(build), measure.summarize(evaluate), measure.ratio_interval(evaluate, build)


def graph_note(df: pd.DataFrame, p: dict) -> str:
    graph = rows(df, "graph")
    build, evaluate, _ = graph_stats(df)
    return (
        f"Graph building of one decode step ({model_label(graph)}, {int(graph.layers.iloc[0])} layers, "
        f"{p['graph_context']} cached positions): {build} ms; evaluating it: {evaluate} ms."
    )
