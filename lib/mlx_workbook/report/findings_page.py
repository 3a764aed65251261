"""The findings table: every published claim against every device run's computed verdict, from stored results only.

A "device run" is the set of runs made on one device with one MLX version and one profile (local runs and
committed reference runs under reports/reference/ are kept apart). For each claim in data/published and each
device run, the newest finished run of the claim's notebook supplies the Finding whose id is the claim id;
without one the row says "no verdict yet". Nothing here measures anything or computes a verdict itself. A claim
whose finding is the same measurement as another claim's (`measured.same_as`) is listed but counted once.

    python -m mlx_workbook.report.findings_page [--root reports] [--readme README.md]   # pages, indexes, README block
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
from pathlib import Path

import pandas as pd

from mlx_workbook import REPORTS_DIR, ROOT
from mlx_workbook.core import published, results, verdicts
from mlx_workbook.core.verdicts import (
    DOES_NOT_HOLD,
    HOLDS,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_MEASURED,
    SIZE_DIFFERS,
)
from mlx_workbook.report import html, plots

NO_VERDICT = (
    "no verdict yet"  # no run of the claim's notebook here, a failed one, or one without this finding
)
CATEGORIES = verdicts.CATEGORIES + [NO_VERDICT]
COLORS = {
    HOLDS: "#16794c",
    SIZE_DIFFERS: "#7fbf7b",
    DOES_NOT_HOLD: "#b00020",
    INCONCLUSIVE: "#d98c00",
    NOT_MEASURED: "#9ecae1",
    NOT_APPLICABLE: "#7f7f7f",
    NO_VERDICT: "#e0e0e0",
}
COUNTED = "published claims (two that share one measurement counted once)"
REFERENCE = "reference"  # committed reference runs live under reports/reference/
PAGE = "findings.html"
START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def is_reference(run: results.RunSummary) -> bool:
    # Reference runs sit directly in reports/reference/<run id>/ (not just anywhere under a folder so named).
    return run.path.resolve().parent.name == REFERENCE


def device_key(run: results.RunSummary) -> tuple:
    """What makes two runs the same device run: device, backend, versions, profile, reference or local."""
    e = run.environment
    return (
        e.get("device", "?"),
        e.get("backend", "?"),
        e.get("mlx", "?"),
        e.get("mlx_lm", "?"),
        run.profile,
        is_reference(run),
    )


def device_label(key: tuple) -> str:
    device, backend, mlx, mlx_lm, profile, reference = key
    return f"{device} ({backend}), mlx {mlx}, mlx-lm {mlx_lm}, {profile} profile" + (
        ", reference run" if reference else ""
    )


def collect_runs(roots) -> list[results.RunSummary]:
    """Every readable run under the roots (any depth, overlapping roots read once), newest first."""
    seen, out = set(), []
    for root in roots:
        for run in results.find_runs(Path(root)):
            if run.path.resolve() not in seen:
                seen.add(run.path.resolve())
                out.append(run)
    return sorted(out, key=lambda r: r.started, reverse=True)


def _href(target: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(target.resolve(), page_dir.resolve())).as_posix()


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value, digits: int = 3) -> str:
    v = _num(value)
    return "" if math.isnan(v) else f"{v:.{digits}g}"


def published_figure(claim: dict) -> str:
    """'94 tok/s', '4 to 5 %', '< 1 %' or '(no number)': the figure as the write-up gives it."""
    unit, value, low, high = (
        claim.get("unit") or "",
        claim.get("published"),
        claim.get("published_low"),
        claim.get("published_high"),
    )
    if low is not None and high is not None:
        text = f"{_fmt(low)} to {_fmt(high)}"
    elif high is not None:
        text = f"< {_fmt(high)}"
    elif low is not None:
        text = f"> {_fmt(low)}"
    elif value is not None:
        text = _fmt(value)
    else:
        return "(no number)"
    if value is not None and (low is not None or high is not None):
        text = f"{_fmt(value)} ({text})"
    return f"{text} {unit}".strip()


def _software(sw) -> str:
    if not isinstance(sw, dict):
        return str(sw or "unspecified")
    mlx, mlx_lm, other = sw.get("mlx", "unspecified"), sw.get("mlx_lm", "unspecified"), sw.get("other", "")
    return f"mlx {mlx}; mlx-lm {mlx_lm}; {other}".rstrip("; ")


def _row(
    claim: dict,
    key: tuple | None,
    ok: results.RunSummary | None,
    failed: results.RunSummary | None,
    page_dir: Path,
) -> dict:
    nb = claim["notebook"]
    row = {
        "claim_id": claim["id"],
        "notebook": nb,
        "source": claim.get("source"),
        "kind": claim.get("kind"),
        "claim": claim.get("claim"),
        "direction": claim.get("direction"),
        "published": published_figure(claim),
        "published_value": _num(claim.get("published")),
        "published_low": _num(claim.get("published_low")),
        "published_high": _num(claim.get("published_high")),
        "unit": claim.get("unit"),
        "published_hardware": claim.get("hardware"),
        "published_software": _software(claim.get("software")),
        "device_run": device_label(key) if key else "",
        "reference": bool(key and key[5]),
        "run_id": "",
        "verdict": NO_VERDICT,
        "same_as": "",
        "measured": "",
        "measured_value": math.nan,
        "measured_low": math.nan,
        "measured_high": math.nan,
        "measured_unit": "",
        "statement": "",
        "report_href": "",
        "data_href": "",
    }
    if key:
        row.update(zip(["device", "backend", "mlx", "mlx_lm", "profile"], key[:5]))
    run = ok or failed
    if run is None:
        row["statement"] = f"no {nb} run on this device yet" if key else "no run of any notebook yet"
        return row
    row["run_id"] = run.path.name
    report = run.path / f"{nb}.html"
    if (run.path / results.MEASUREMENTS).exists():
        row["data_href"] = _href(run.path / results.MEASUREMENTS, page_dir)
    if ok is None:
        status = failed.state
        row["statement"] = (
            f"the newest {nb} run here {'was ' if status == results.INTERRUPTED else ''}{status}: "
            f"{(failed.error or '')[:160]}"
            if status in (results.FAILED, results.INTERRUPTED)
            else f"the newest {nb} run here has not finished ({status})"
        )
        anchor = f"#{failed.error_anchor}" if failed.error_anchor else ""
        row["report_href"] = (
            _href(report, page_dir) + anchor
            if report.exists()
            else _href(run.path / results.SUMMARY, page_dir)
        )
        return row
    finding = ok.finding(claim["id"])
    base = _href(report, page_dir) if report.exists() else _href(run.path / results.SUMMARY, page_dir)
    if finding is None:
        row.update(statement=f"the {nb} run states no finding for this claim", report_href=base)
        return row
    m = finding.measured or {}
    row.update(
        verdict=verdicts.normalize(finding.verdict or NO_VERDICT),
        same_as=str(m.get("same_as") or ""),
        statement=finding.statement,
        measured_value=_num(m.get("value")),
        measured_low=_num(m.get("low")),
        measured_high=_num(m.get("high")),
        measured_unit=str(m.get("unit") or ""),
        report_href=base + (f"#{finding.section}" if finding.section and report.exists() else ""),
    )
    if not math.isnan(row["measured_value"]):
        interval = (
            f" [{_fmt(row['measured_low'])}, {_fmt(row['measured_high'])}]"
            if not math.isnan(row["measured_low"])
            else ""
        )
        row["measured"] = f"{_fmt(row['measured_value'])}{interval} {row['measured_unit']}".strip()
    return row


def claims_table(roots, page_dir: Path | None = None) -> pd.DataFrame:
    """One row per (claim, device run); links relative to `page_dir` (default: the first root)."""
    roots = [Path(r) for r in roots]
    page_dir = Path(page_dir or roots[0])
    claims = published.claims()
    owners = {c["notebook"] for c in claims}
    runs = [r for r in collect_runs(roots) if r.notebook in owners]
    keys = sorted(
        {device_key(r) for r in runs}, key=lambda k: (not k[5], device_label(k))
    )  # references first
    newest_ok, newest_failed = {}, {}
    for r in runs:  # newest first: the first one seen per (device run, notebook) wins
        (newest_ok if r.ok else newest_failed).setdefault((device_key(r), r.notebook), r)
    rows = []
    for c in claims:
        for key in keys or [None]:
            ok = newest_ok.get((key, c["notebook"]))
            failed = None if ok else newest_failed.get((key, c["notebook"]))
            rows.append(_row(c, key, ok, failed, page_dir))
    return pd.DataFrame(rows)


def counted(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that count: a claim judged by another claim's measurement (same_as) is counted once, there."""
    return table[table.same_as == ""] if "same_as" in table else table


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Device runs x verdicts: how many measurements got each verdict (known categories first); a measurement
    two claims share is counted once."""
    table = counted(table)
    extra = sorted(set(table.verdict) - set(CATEGORIES))
    label = table.device_run.where(table.device_run != "", "no device run yet")
    counts = pd.crosstab(label, table.verdict).reindex(
        index=label.unique(), columns=CATEGORIES + extra, fill_value=0
    )
    counts.index.name, counts.columns.name = "device_run", None
    return counts.reset_index()


def verdict_chart(counts: pd.DataFrame, title: str):
    """Horizontal stacked bars: one bar per device run, one segment per verdict."""
    from mlx_workbook.report.plots import new_figure

    fig, ax = new_figure(8.0, 2.0 + 0.7 * len(counts))
    labels = [textwrap.fill(str(d), 34) for d in counts.device_run]  # long device names would squash the bars
    left = pd.Series(0.0, index=counts.index)
    for verdict in [c for c in counts.columns if c != "device_run"]:
        ax.barh(labels, counts[verdict], left=left, color=COLORS.get(verdict, "#9467bd"), label=verdict)
        left += counts[verdict]
    ax.set(title=title, xlabel="claims (a measurement two claims share counted once)")
    ax.invert_yaxis()
    fig.legend(fontsize=8, ncols=3, loc="outside lower center")
    ax.grid(alpha=0.3, axis="x")
    return fig


def _verdict_cell(verdict: str, same_as: str = "") -> str:
    slug = "-".join("".join(ch if ch.isalpha() else " " for ch in verdict).split())
    shared = (
        f'<div class="small muted">same measurement as {html.esc(same_as)}, counted once</div>'
        if same_as
        else ""
    )
    return f'<span class="verdict-{html.esc(slug)}">{html.esc(verdict)}</span>{shared}'


def render_page(
    table: pd.DataFrame, out: Path, title: str = "Findings: every published claim, measured"
) -> Path:
    """Write the findings page, its CSV and its verdict chart (SVG) next to each other."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv, svg = out.with_suffix(".csv"), out.with_name(out.stem + "_verdicts.svg")
    html.write_if_changed(csv, table.to_csv(index=False))
    counts = verdict_counts(table)
    html.write_if_changed(svg, plots.svg_text(verdict_chart(counts, "Verdicts per device run")))
    head = "".join(f"<th>{html.esc(c)}</th>" for c in counts.columns)
    count_rows = "".join(
        "<tr>" + "".join(f"<td>{html.esc(v)}</td>" for v in r) + "</tr>"
        for r in counts.itertuples(index=False)
    )
    sections = []
    for nb, part in table.groupby("notebook", sort=True):
        rows = []
        for _, claim_rows in part.groupby("claim_id", sort=False):
            first = claim_rows.iloc[0]
            claim_cell = (
                f'<td rowspan="{len(claim_rows)}" id="{html.esc(first.claim_id)}"><b>'
                f'{html.esc(first.claim_id)}</b> <span class="small muted">{html.esc(first.kind)}</span>'
                f"<div>{html.esc(first.claim)}</div></td>"
                f'<td rowspan="{len(claim_rows)}">{html.esc(first.published)}<div class="small muted">'
                f"{html.esc(first.published_hardware)}<br>{html.esc(first.published_software)}</div></td>"
            )
            for i, (_, r) in enumerate(claim_rows.iterrows()):
                links = " · ".join(
                    f'<a href="{html.esc(h)}">{name}</a>'
                    for name, h in (("report", r.report_href), ("data", r.data_href))
                    if h
                )
                rows.append(
                    f"<tr>{claim_cell if i == 0 else ''}<td>{html.esc(r.device_run or '–')}</td>"
                    f'<td>{html.esc(r.measured)}<div class="small">{html.esc(r.statement)}</div></td>'
                    f"<td>{_verdict_cell(r.verdict, r.get('same_as', ''))}</td><td>{links}</td></tr>"
                )
        sections.append(
            f'<h2 id="{html.esc(nb)}">{html.esc(nb)}</h2><table><tr><th>claim</th>'
            f"<th>published (hardware, versions)</th><th>device run</th><th>measured [95% interval]"
            f"</th><th>verdict</th><th>behind it</th></tr>{''.join(rows)}</table>"
        )
    body = (
        f'<h1>{html.esc(title)}</h1><p class="muted">{table.claim_id.nunique()} published claims '
        f"(data/published/) against {len(counts)} device run(s), from stored results only. "
        f'<a href="index.html">All runs</a> · <a href="{html.esc(csv.name)}">table as CSV</a></p>'
        f'<table><tr>{head}</tr>{count_rows}</table><p><img src="{html.esc(svg.name)}" '
        f'alt="verdict counts per device run"></p>' + "".join(sections)
    )
    html.write_if_changed(
        out, html.page(title, body, nav=html.nav_bar(out.parent, out.parent, here="Findings"))
    )
    return out


# --- the findings notebook (05_findings) ---------------------------------------------------------------------


def locate(run: results.Run, roots: list, page: str, readme: str) -> tuple[list[Path], Path, Path | None]:
    """The folders to read, the page to write and the README to refresh, checked before anything is read.

    Relative paths are read from the repository root (papermill runs the kernel inside notebooks/); no roots
    means the reports folder this run writes into (its runs/ folder's parent).
    """

    def absolute(path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else ROOT / path

    folders = [absolute(r) for r in roots] or [Path(run.run_dir).resolve().parents[1]]
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        raise ValueError(f"roots: no such folder(s): {', '.join(missing)}")
    readme_path = absolute(readme) if readme else None
    if readme_path and not readme_path.is_file():
        raise ValueError(f"readme: no such file: {readme}")
    return folders, absolute(page) if page else folders[0] / PAGE, readme_path


def record_verdicts(run: results.Run, table: pd.DataFrame) -> pd.DataFrame:
    """Store the verdict counts per device run as the run's measurements; return them as the chart reads them."""
    counts = verdict_counts(table)
    for _, row in counts.melt(id_vars="device_run", var_name="verdict", value_name="claims").iterrows():
        run.record(
            "verdicts",
            "claims",
            row.claims,
            "claims",
            trial=0,
            verdict=row.verdict,
            device_run=row.device_run,
        )
    stored = run.measurements.pivot_table(
        index="device_run", columns="verdict", values="value", aggfunc="sum"
    )
    return stored.reindex(columns=[c for c in counts.columns if c != "device_run"]).reset_index()


def _tally(part: pd.DataFrame, *, every: bool = False) -> str:
    return ", ".join(
        f"{(part.verdict == v).sum()} {v}" for v in CATEGORIES if every or (part.verdict == v).any()
    )


def notebook_findings(table: pd.DataFrame) -> list[results.Finding]:
    """05_findings' own findings: how many claim rows have a verdict from data (a measurement two claims share
    counted once), how many are not measured or out of scope, and the tally per device run."""
    rows = counted(table)
    n_runs = table.device_run.replace("", pd.NA).nunique()
    n = {v: int((rows.verdict == v).sum()) for v in CATEGORIES}
    from_data = sum(n[v] for v in verdicts.FROM_DATA)
    out = [
        results.Finding(
            id="claims_with_verdict",
            headline=True,
            section="table",
            measured={"value": from_data, "low": from_data, "high": from_data, "unit": "claim rows"},
            statement=f"{table.claim_id.nunique()} published claims against {n_runs} device run(s), "
            f"{len(rows)} rows counted ({len(table) - len(rows)} more share another claim's measurement): "
            f"{from_data} have a verdict from data ("
            + ", ".join(f"{n[v]} {v}" for v in verdicts.FROM_DATA)
            + f"); {n[verdicts.NOT_MEASURED]} are not measured (something the claim needs is missing), "
            f"{n[verdicts.NOT_APPLICABLE]} do not apply (outside the claim's scope), {n[NO_VERDICT]} have no "
            "verdict yet.",
        )
    ]
    for device_run, part in rows[rows.device_run != ""].groupby("device_run"):
        out.append(
            results.Finding(
                id=f"verdicts: {device_run}",
                section="verdicts",
                statement=f"{device_run}: {_tally(part, every=True)}",
            )
        )
    return out


# --- the README block ---------------------------------------------------------------------------------------


def headline_markdown(root: Path = REPORTS_DIR, link_from: Path = ROOT) -> str:
    """The headline findings of the reference runs under root as Markdown, between the README markers."""
    root = Path(root)
    refs = [r for r in collect_runs([root]) if is_reference(r) and r.ok]
    if not refs:
        return f"{START}\n_No reference run is committed yet (see reports/reference/)._\n{END}"
    ref_root = next(p for p in refs[0].path.resolve().parents if p.name == REFERENCE)
    table = claims_table([ref_root], ref_root)
    lines = [START]
    by_key: dict[tuple, dict[str, results.RunSummary]] = {}
    for r in refs:
        by_key.setdefault(device_key(r), {}).setdefault(r.notebook, r)  # newest per notebook
    # GPU runs lead (their numbers mean something); CPU runs get one line each, after them.
    for key, per_nb in sorted(by_key.items(), key=lambda item: item[0][1] == "cpu"):
        first = next(iter(per_nb.values()))
        part = counted(table[table.device_run == device_label(key)])
        tally = ", ".join(f"{(part.verdict == v).sum()} {v}" for v in CATEGORIES if (part.verdict == v).any())
        header = (
            f"**Reference run:** {device_label(key)}, {first.started[:10]}. "
            f"[Every run]({_href(ref_root / 'index.html', link_from)}) · "
            f"[every claim with its verdict]({_href(ref_root / PAGE, link_from)})"
        )
        if key[1] == "cpu":
            lines += [f"{header}. Of the {len(part)} {COUNTED} there: {tally}.", ""]
            continue
        lines += [header, "", "| notebook | headline finding | verdict |", "| --- | --- | --- |"]
        for nb in sorted(per_nb):
            run = per_nb[nb]
            for f in [f for f in run.findings if f.headline]:
                target = _href(run.path / f"{nb}.html", link_from) + (f"#{f.section}" if f.section else "")
                statement = str(f.statement).replace("|", "\\|")
                lines.append(f"| [{nb}]({target}) | {statement} | {f.verdict} |")
        lines += ["", f"Of the {len(part)} {COUNTED}: {tally}.", ""]
    return "\n".join(lines + [END])


def update_readme(readme: Path, block: str) -> bool:
    """Replace the text between the findings markers (inclusive); True if the file changed."""
    text = Path(readme).read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no {START} ... {END} markers to put the findings between")
    new = text[:start] + block + text[end + len(END) :]
    if new != text:
        Path(readme).write_text(new)
    return new != text


def build(root: Path = REPORTS_DIR) -> list[Path]:
    """Findings page + index for root, and for root/reference/ when reference runs are there."""
    pages = []
    for folder in [Path(root), Path(root) / REFERENCE]:
        if folder == Path(root) or results.find_runs(folder):
            pages.append(render_page(claims_table([folder], folder), folder / PAGE))
            html.build_index(folder)
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlx_workbook.report.findings_page",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root", default=str(REPORTS_DIR), help="reports folder (reference runs inside it too)"
    )
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="README to refresh ('' to skip)")
    args = parser.parse_args(argv)
    for page_path in build(Path(args.root)):
        print(page_path)
    if args.readme:
        block = headline_markdown(Path(args.root))
        try:
            changed = update_readme(Path(args.readme), block)
            print(f"{args.readme}: findings block {'updated' if changed else 'unchanged'}")
        except ValueError as exc:
            print(f"note: {exc}; the block would be:\n{block}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
