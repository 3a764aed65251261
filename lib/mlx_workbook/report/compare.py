"""Run comparison: two run folders -> every shared metric side by side, with the ratio B/A and whether the
difference exceeds the noise of both runs, and whether the two reach the same verdicts (agreement.py).

    python -m mlx_workbook.report.compare <run A> <run B> [--root reports] [--out reports/compare]
    python -m mlx_workbook.report.compare reports/reference reports/reference/repeat   # two sets of runs

A run is a folder path or a run id (a folder name under the reports root, or a unique part of one). A folder
that holds runs is a set: its newest finished run per notebook, paired with the other set's by notebook, one
metrics page per pair and one page of verdict agreement over all of them. Metrics match on experiment, metric,
unit and every configuration column (variant, size, model, dtype, ...); columns that describe the run (device,
versions, run id) or change from trial to trial (seconds, timestamp) do not.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import pandas as pd

from mlx_workbook import REPORTS_DIR, ROOT
from mlx_workbook.core import measure, results
from mlx_workbook.report import agreement, html

RUN_COLUMNS = {
    "run_id",
    "notebook",
    "method_version",
    "backend",
    "device",
    "mlx",
    "mlx_lm",
    "timestamp",
    "value",
    "trial",
}
KEYS = ["experiment", "metric", "unit"]
MIN_TRIALS = 3  # fewer trials than this in either run: too few to call a difference


class CompareError(ValueError):
    """A run that cannot be found, or two runs that cannot be compared."""


def resolve_run(spec: str | Path, root: Path = REPORTS_DIR) -> Path:
    """A run folder from a path or a run id (exact folder name, else a unique substring of one)."""
    path = Path(spec)
    for candidate in (path, ROOT / path):
        if (candidate / results.SUMMARY).exists():
            try:
                results.RunSummary.read(candidate)
            except results.SummaryError as exc:
                raise CompareError(f"cannot compare {candidate.name}: {exc}") from None
            return candidate
    runs = [r.path for r in results.find_runs(root)]  # unreadable summaries are skipped and named
    exact = [d for d in runs if d.name == str(spec)]
    partial = exact or [d for d in runs if str(spec) in d.name]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise CompareError(f"no run {str(spec)!r}: not a run folder and no run id under {root} matches")
    names = ", ".join(d.name for d in partial[:6])
    raise CompareError(
        f"{str(spec)!r} matches {len(partial)} runs ({names}{', ...' if len(partial) > 6 else ''}); "
        "give more of the run id"
    )


def _norm(value) -> str:
    """One spelling per configuration value, so 64, 64.0 and '64' match and NaN matches an absent column."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".6g")
    return str(value)


def configuration_columns(df: pd.DataFrame) -> list[str]:
    """Columns that name a configuration: each trial repeats the same set of values (a per-trial measurement
    like `seconds` takes new values every trial), and one configuration keeps its value from trial to trial
    (a variant's `position` in a rotated round order does not: bookkeeping, not what was measured).
    Judged per experiment and metric. A column is judged with the columns recorded before it fixed: of two
    columns that determine each other within a trial (variant and position), the first one recorded stays."""
    candidates = [c for c in df.columns if c not in RUN_COLUMNS and c not in KEYS]
    keyed = df.assign(**{c: df[c].map(_norm) for c in candidates})  # normalized once for both tests
    kept: list[str] = []
    for column in _repeated_columns(keyed, candidates):
        if not _moves_between_trials(keyed, column, kept):
            kept.append(column)
    return kept


def _moves_between_trials(keyed: pd.DataFrame, column: str, others: list[str]) -> bool:
    """True when, with every other configuration column fixed, each trial has one value of `column` but the
    trials do not agree on it: the column records when or where in a round something ran. `keyed` holds the
    columns as `_norm` spells them."""
    # one grouped pass instead of a loop over configurations (a 03 run has thousands of them)
    per_trial = keyed.groupby(KEYS + others + ["trial"], sort=False)[column].agg(["nunique", "first"])
    per_configuration = per_trial.groupby(level=list(range(len(KEYS + others))), sort=False)
    one_value_per_trial = per_configuration["nunique"].max() == 1
    trials_disagree = per_configuration["first"].nunique() > 1
    return bool((one_value_per_trial & trials_disagree).any())


def _repeated_columns(keyed: pd.DataFrame, columns: list[str]) -> list[str]:
    """The `columns` whose every value, per experiment and metric, already occurs in its first trial (`keyed`
    holds them as `_norm` spells them)."""
    timed = keyed.dropna(subset=["experiment", "metric", "trial"])
    first_trial = timed.trial == timed.groupby(["experiment", "metric"]).trial.transform("min")
    out = []
    for col in columns:
        values = timed[["experiment", "metric"]].assign(_v=timed[col])
        in_first = values[first_trial].drop_duplicates()
        found = values.drop_duplicates().merge(in_first, how="left", indicator=True)["_merge"]
        if (found == "both").all():
            out.append(col)
    return out


def _groups(df: pd.DataFrame, columns: list[str]) -> dict[tuple, pd.Series]:
    keyed = df.assign(**{c: df[c].map(_norm) if c in df else "" for c in columns})
    return {k: g.value for k, g in keyed.groupby(KEYS + columns, sort=False)}


def compare_runs(run_a: Path, run_b: Path) -> pd.DataFrame:
    """One row per shared (experiment, metric, unit, configuration): medians, intervals, B/A and the call."""
    a, b = results.read_measurements(run_a), results.read_measurements(run_b)
    if a.empty or b.empty:
        raise CompareError(f"{(run_a if a.empty else run_b).name} has no measurements to compare")
    # A configuration column must be one in both runs; a column only one run has is left out of the key.
    columns_b = set(configuration_columns(b))
    columns = [c for c in configuration_columns(a) if c in columns_b]
    ga, gb = _groups(a, columns), _groups(b, columns)
    rows = []
    for key in [k for k in ga if k in gb]:
        sa, sb = measure.summarize(ga[key]), measure.summarize(gb[key])
        ratio = measure.ratio_interval(gb[key], ga[key])
        disjoint = sa.high < sb.low or sb.high < sa.low
        if min(sa.n, sb.n) < MIN_TRIALS:
            call = f"too few trials (< {MIN_TRIALS})"
        elif disjoint and (ratio.low > 1 or ratio.high < 1):
            call = "B higher" if ratio.median > 1 else "B lower"
        else:
            call = "within noise"
        config = ", ".join(f"{c}={v}" for c, v in zip(columns, key[3:]) if v != "")
        rows.append(
            {
                **dict(zip(KEYS + columns, key)),
                "configuration": config,
                "a_median": sa.median,
                "a_low": sa.low,
                "a_high": sa.high,
                "a_n": sa.n,
                "a_cv": sa.cv,
                "b_median": sb.median,
                "b_low": sb.low,
                "b_high": sb.high,
                "b_n": sb.n,
                "b_cv": sb.cv,
                "ratio": ratio.median,
                "ratio_low": ratio.low,
                "ratio_high": ratio.high,
                "beyond_noise": call in ("B higher", "B lower"),
                "call": call,
            }
        )
    if not rows:
        raise CompareError(f"{run_a.name} and {run_b.name} share no metric with the same configuration")
    out = pd.DataFrame(rows)
    out.attrs["only_a"], out.attrs["only_b"] = len(set(ga) - set(gb)), len(set(gb) - set(ga))
    return out


def _describe_run(label: str, run_dir: Path) -> str:
    s = results.RunSummary.read(run_dir)
    return (
        f"<tr><th>{label}</th><td>{html.esc(run_dir.name)}</td><td>{html.esc(s.notebook)}</td>"
        f"<td>{html.esc(s.device)} ({html.esc(s.backend)})</td>"
        f"<td>mlx {html.esc(s.environment.get('mlx', '?'))}, mlx-lm {html.esc(s.environment.get('mlx_lm', '?'))}"
        f"</td><td>{html.esc(s.profile)}</td><td>{html.esc(s.started)}</td><td>{html.esc(s.state)}</td></tr>"
    )


def _cell(median: float, low: float, high: float) -> str:
    return f'<td class="num">{median:.4g} <span class="small muted">[{low:.4g}, {high:.4g}]</span></td>'


def verdicts_section(found: agreement.Agreement) -> str:
    """The verdict agreement in words, the claims that differ first, then the saved lists."""
    rows = "".join(
        f'<tr class="{"" if r.agree else "beyond-noise"}"><td>{html.esc(r.notebook)}</td><td>{html.esc(r.id)}</td>'
        f"<td>{html.esc(r.verdict_a or '-')}</td><td>{html.esc(r.verdict_b or '-')}</td>"
        f"<td>{'yes' if r.agree else 'no'}</td></tr>"
        for r in found.verdicts.sort_values(["agree", "notebook", "id"]).itertuples()
    )
    lists = "".join(
        f"<h3>Saved list: {html.esc(d['name'])}</h3><p>{html.esc(agreement.list_line(d))} Rows are identified "
        f"by {html.esc(', '.join(d['columns']))}.</p>"
        + "".join(
            f"<p class='small'>only in {side}: {html.esc('; '.join(' '.join(k) for k in only))}</p>"
            for side, only in (("A", d["only_a"]), ("B", d["only_b"]))
            if only
        )
        for d in found.lists
    )
    return (
        '<h2 id="verdicts">Verdicts</h2>'
        + "".join(f"<p>{html.esc(line)}</p>" for line in found.summary_lines() if not line.startswith("  "))
        + found.per_notebook().round(2).to_html(index=False, border=0)
        + "<table><tr><th>notebook</th><th>claim</th><th>A</th><th>B</th><th>agree</th></tr>"
        + rows
        + "</table>"
        + lists
    )


def render_page(
    table: pd.DataFrame,
    run_a: Path,
    run_b: Path,
    out: Path,
    index: Path | None = None,
    found: agreement.Agreement | None = None,
) -> Path:
    """The comparison page; `index` is the runs index it links back to (default: the one above out's folder)."""
    index_href = Path(os.path.relpath(index or out.parent.parent / "index.html", out.parent)).as_posix()
    title = f"Run comparison: {run_a.name} vs {run_b.name}"
    sections = []
    for experiment, part in table.groupby("experiment", sort=False):
        shared = _shared(part)
        rows = "".join(
            f'<tr class="{"beyond-noise" if r.beyond_noise else ""}"><td>{html.esc(r.metric)}</td>'
            f"<td>{html.esc(_varying(table, r))}</td><td>{html.esc(r.unit)}</td>"
            f"{_cell(r.a_median, r.a_low, r.a_high)}{_cell(r.b_median, r.b_low, r.b_high)}"
            f"{_cell(r.ratio, r.ratio_low, r.ratio_high)}<td>{html.esc(r.call)}</td></tr>"
            for r in part.itertuples()
        )
        sections.append(
            f'<h2 id="{html.esc(experiment)}">{html.esc(experiment)}</h2>'
            + (f'<p class="small muted">Every row: {html.esc(", ".join(shared))}</p>' if shared else "")
            + "<table><tr><th>metric</th>"
            "<th>configuration</th><th>unit</th><th>A median [95%]</th><th>B median [95%]</th>"
            f"<th>B / A [95%]</th><th>difference</th></tr>{rows}</table>"
        )
    moved = int(table.beyond_noise.sum())
    body = (
        f"<h1>{html.esc(title)}</h1><table><tr><th></th><th>run</th><th>notebook</th><th>device</th>"
        f"<th>versions</th><th>profile</th><th>started</th><th>status</th></tr>"
        f"{_describe_run('A', run_a)}{_describe_run('B', run_b)}</table>"
        f"<p>{len(table)} shared metrics ({table.attrs.get('only_a', 0)} only in A, "
        f"{table.attrs.get('only_b', 0)} only in B); {moved} differ beyond the noise of both runs. A difference "
        f"counts when the two medians' 95% bootstrap intervals do not overlap and the 95% bootstrap interval of "
        f"B/A excludes 1, with at least {MIN_TRIALS} trials on each side. "
        f'<a href="{html.esc(out.with_suffix(".csv").name)}">CSV</a> · '
        f'<a href="{html.esc(out.with_suffix(".parquet").name)}">parquet</a> · '
        f'<a href="{html.esc(index_href)}">all runs</a></p>'
        + (verdicts_section(found) if found is not None else "")
        + "".join(sections)
    )
    nav = html.nav_bar(out.parent, (index or out.parent.parent / "index.html").parent)
    html.write_if_changed(out, html.page(title, body, nav=nav))
    return out


def resolve(spec: str | Path, root: Path = REPORTS_DIR) -> Path:
    """A run (see resolve_run), or a folder that holds runs (a set)."""
    path = Path(spec)
    for candidate in (path, ROOT / path):
        if candidate.is_dir() and not (candidate / results.SUMMARY).exists():
            if any((child / results.SUMMARY).exists() for child in candidate.iterdir()):
                return candidate
    return resolve_run(spec, root)


def compare_pair(run_a: Path, run_b: Path, out_dir: Path, index: Path) -> Path:
    """Compare two runs of one notebook: <out_dir>/<A>__<B>.html, .csv and .parquet; return the page."""
    table = compare_runs(run_a, run_b)
    found = agreement.of_paths(run_a, run_b)
    out = out_dir / f"{run_a.name}__{run_b.name}.html"
    table.to_csv(out.with_suffix(".csv"), index=False)
    table.to_parquet(out.with_suffix(".parquet"), index=False)
    return render_page(table, run_a, run_b, out, index=index, found=found)


def compare_sets(path_a: Path, path_b: Path, out_dir: Path, index: Path) -> Path:
    """Two sets of runs: a metrics page per notebook in both, and one page of verdict agreement over all."""
    found = agreement.of_paths(path_a, path_b)
    links = []
    for notebook, (run_a, run_b) in found.pairs.items():
        try:
            page = compare_pair(run_a, run_b, out_dir, index)
            links.append(f'<li><a href="{html.esc(page.name)}">{html.esc(notebook)}</a></li>')
        except CompareError as exc:
            links.append(f"<li>{html.esc(notebook)}: {html.esc(str(exc))}</li>")
    out = out_dir / f"{path_a.name}__{path_b.name}.html"
    found.verdicts.to_csv(out.with_suffix(".csv"), index=False)
    title = f"Set comparison: {path_a.name} vs {path_b.name}"
    body = (
        f"<h1>{html.esc(title)}</h1><p>A: {html.esc(str(path_a))}; B: {html.esc(str(path_b))}. Each notebook's "
        f"newest finished run in each folder.</p><ul>{''.join(links)}</ul>" + verdicts_section(found)
    )
    nav = html.nav_bar(out.parent, index.parent)
    html.write_if_changed(out, html.page(title, body, nav=nav))
    return out


def compare(a: str | Path, b: str | Path, root: Path = REPORTS_DIR, out_dir: Path | None = None) -> Path:
    """Resolve two runs (or sets), compare them, write the page(s) into out_dir; return the main page."""
    path_a, path_b = resolve(a, root), resolve(b, root)
    out_dir = Path(out_dir or Path(root) / "compare")
    out_dir.mkdir(parents=True, exist_ok=True)
    index = Path(root) / "index.html"
    is_set = [not (p / results.SUMMARY).exists() for p in (path_a, path_b)]
    if any(is_set):
        try:
            return compare_sets(path_a, path_b, out_dir, index)
        except ValueError as exc:
            raise CompareError(str(exc)) from None
    return compare_pair(path_a, path_b, out_dir, index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlx_workbook.report.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", help="run A: folder or run id")
    parser.add_argument("b", help="run B: folder or run id")
    parser.add_argument("--root", default=str(REPORTS_DIR), help="where run ids are looked up")
    parser.add_argument("--out", default=None, help="output folder (default: <root>/compare)")
    args = parser.parse_args(argv)
    try:
        page = compare(args.a, args.b, Path(args.root), Path(args.out) if args.out else None)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = pd.read_csv(page.with_suffix(".csv"), dtype={"configuration": str})
    if "configuration" in table:  # a pair's metrics (a set's CSV is its verdict table)
        print(terminal_summary(table))
    path_a, path_b = resolve(args.a, Path(args.root)), resolve(args.b, Path(args.root))
    print("\n".join(agreement.of_paths(path_a, path_b).summary_lines()))
    if (Path(args.root) / "index.html").exists() or Path(args.root) == REPORTS_DIR:
        html.build_index(Path(args.root))  # so the index links the new comparison
    shown = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    print(f"every metric, with intervals: {shown}")
    return 0


def _shared(part: pd.DataFrame) -> list[str]:
    """The configuration values every row of one experiment has (model=tiny, ...), in their order."""
    rows = [str(c).split(", ") if isinstance(c, str) and c else [] for c in part.configuration]
    common = set.intersection(*(set(r) for r in rows)) if rows else set()
    return [p for p in rows[0] if p in common] if rows else []


def _varying(table: pd.DataFrame, row) -> str:
    """The row's configuration without the values every row of its experiment shares."""
    common = set(_shared(table[table.experiment == row.experiment]))
    parts = str(row.configuration if isinstance(row.configuration, str) else "").split(", ")
    return ", ".join(p for p in parts if p and p not in common)


def terminal_summary(table: pd.DataFrame, largest: int = 10, width: int = 100) -> str:
    """A few lines for the terminal: how many metrics moved, and the largest differences beyond the noise
    (the page has every row)."""
    calls = table.call.value_counts()
    counts = ", ".join(f"{n} {call}" for call, n in calls.items())
    lines = [f"{len(table)} shared metrics: {counts}."]
    moved = table[table.beyond_noise.astype(bool)].copy()
    if not moved.empty:
        moved["size"] = (moved.ratio.map(math.log)).abs()
        lines.append(
            f"Largest differences beyond the noise (B / A, 95% interval), {min(largest, len(moved))} shown:"
        )
        for r in moved.sort_values("size", ascending=False).head(largest).itertuples():
            config = _varying(table, r)
            what = f"{r.experiment} {r.metric}" + (f" ({config})" if config else "")
            what = what if len(what) <= width - 28 else what[: width - 31] + "..."
            lines.append(f"  {r.ratio:6.3g}x [{r.ratio_low:.3g}, {r.ratio_high:.3g}]  {what}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
