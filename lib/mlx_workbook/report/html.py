"""HTML output: executed notebooks rendered for offline reading, and the index page over all runs."""

from __future__ import annotations

import html as _html
import re
from datetime import UTC, datetime
from pathlib import Path

from mlx_workbook.core import results

# Anything fetched from the network would break offline reading (and leak a page view): drop it.
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.I)
_REMOTE_LINK = re.compile(r"<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*/?>", re.I)

STYLE = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5em 0} th,td{border:1px solid #ddd;padding:4px 6px;
vertical-align:top;text-align:left} th{background:#f4f4f4} tr.failed td{background:#fff0f0}
.status-ok{color:#16794c;font-weight:600} .status-failed{color:#b00020;font-weight:600}
.status-running{color:#a06000;font-weight:600} .muted{color:#777} .small{font-size:12px}
.verdict-holds{color:#16794c} .verdict-does-not-hold{color:#b00020} .verdict-inconclusive{color:#a06000}
.verdict-direction-holds-size-differs{color:#3f7f3b} .verdict-not-measured{color:#31708f}
.verdict-does-not-apply{color:#666} .verdict-no-verdict-yet{color:#999;font-style:italic}
td.num{text-align:right;white-space:nowrap} tr.beyond-noise td{background:#fffbe6}
"""


def render_notebook(ipynb: Path, out_html: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    out_html.write_text(make_offline(body))
    return out_html


def make_offline(page: str) -> str:
    return _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", page))


def esc(value) -> str:
    return _html.escape(str(value))


def page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


# Index-only styles (kept apart from the notebook pages' STYLE): verdict badges and the states a run can end in.
INDEX_STYLE = """
.badge{display:inline-block;font-size:11px;font-weight:600;padding:0 6px;border-radius:8px;margin-right:4px;
color:#fff;background:#888;white-space:nowrap} .badge-holds{background:#16794c}
.badge-does-not-hold{background:#b00020} .badge-inconclusive{background:#a06000}
.status-interrupted,.status-abandoned{color:#a06000;font-weight:600}
tr.interrupted td,tr.abandoned td{background:#fffbe6}
.params{font-family:monospace;font-size:12px}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _headline(summary: results.RunSummary) -> str:
    """Each headline finding with its verdict as a badge in front (none for a plain measurement)."""
    parts = []
    for f in summary.headlines:
        badge = (
            f'<span class="badge badge-{_slug(f.verdict)}">{esc(f.verdict)}</span>'
            if f.verdict and f.verdict != "measured"
            else ""
        )
        parts.append(badge + esc(f.statement))
    return "<br>".join(parts)


def _parameters(summary: results.RunSummary) -> str:
    """The profile, and the parameters set beyond it (a run made with P=... must not look like a default one)."""
    overrides = ", ".join(f"{k}={v}" for k, v in summary.overrides.items())
    return f"{esc(summary.profile)}" + (f'<div class="params">{esc(overrides)}</div>' if overrides else "")


def _status_cell(summary: results.RunSummary, rel: str, page_exists: bool) -> str:
    state = summary.state
    if state in (results.FAILED, results.INTERRUPTED):
        # Link to the failed cell when the page has one (a kernel that died has none), else to the page.
        anchor = f"#{summary.error_anchor}" if summary.error_anchor else ""
        target = f"{rel}/{summary.notebook}.html{anchor}" if page_exists else f"{rel}/{results.SUMMARY}"
        return (
            f'<a class="status-{state}" href="{esc(target)}">{state}</a>'
            f'<div class="small muted">{esc((summary.error or "")[:200])}</div>'
        )
    if state == results.ABANDONED:
        return (
            f'<span class="status-abandoned">abandoned</span><div class="small muted">still "running", but its '
            f"process ({esc(summary.pid)}) is gone: stopped without settling</div>"
        )
    return f'<span class="status-{esc(state)}">{esc(state)}</span>'


def _run_row(summary: results.RunSummary, root: Path) -> str:
    run_dir = summary.path
    rel = run_dir.relative_to(root).as_posix()
    nb, env = summary.notebook, summary.environment
    page_exists = (run_dir / f"{nb}.html").exists()
    links = []
    if page_exists:
        links.append(f'<a href="{esc(rel)}/{esc(nb)}.html">report</a>')
    if (run_dir / results.MEASUREMENTS).exists():
        links.append(f'<a href="{esc(rel)}/{results.MEASUREMENTS}">data</a>')
    links.append(f'<a href="{esc(rel)}/{results.SUMMARY}">summary</a>')
    figures = sorted((run_dir / results.FIGURES).glob("*.svg"))
    figure_links = " ".join(
        f'<a href="{esc(rel)}/{results.FIGURES}/{esc(f.name)}">{esc(f.stem)}</a>' for f in figures
    )
    duration = summary.duration_s
    return (
        f'<tr class="{esc(summary.state)}"><td>{esc(nb)}</td><td>{_status_cell(summary, rel, page_exists)}</td>'
        f"<td>{esc(summary.started)}</td><td>{'' if duration is None else f'{duration:.0f} s'}</td>"
        f'<td>{esc(env.get("device", "?"))}<div class="small muted">{esc(env.get("backend", ""))}</div></td>'
        f"<td>mlx {esc(env.get('mlx', '?'))}<br>mlx-lm {esc(env.get('mlx_lm', '?'))}</td>"
        f"<td>{_parameters(summary)}</td>"
        f'<td>{_headline(summary)}</td><td>{" · ".join(links)}<div class="small">{figure_links}</div></td></tr>'
    )


def build_index(root: Path, title: str = "MLX performance workbook: runs") -> Path:
    """Write root/index.html listing every run under root, grouped by notebook, newest first."""
    root = Path(root)
    skipped: list[str] = []
    runs = results.find_runs(root, skipped=skipped)
    by_notebook: dict[str, list[results.RunSummary]] = {}
    for summary in runs:
        by_notebook.setdefault(summary.notebook, []).append(summary)
    head = (
        "<tr><th>notebook</th><th>status</th><th>started (UTC)</th><th>duration</th><th>device</th>"
        "<th>versions</th><th>profile and overrides</th><th>headline finding</th><th>links</th></tr>"
    )
    sections = []
    for nb in sorted(by_notebook):
        rows = "".join(_run_row(s, root) for s in by_notebook[nb])
        sections.append(f'<h2 id="{esc(nb)}">{esc(nb)}</h2><table>{head}{rows}</table>')
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    extra = (root / "index_extra.html").read_text() if (root / "index_extra.html").exists() else ""
    extra = _findings_and_comparisons(root) + extra
    unreadable = (
        f'<p class="small"><b>{len(skipped)} run(s) skipped</b>, their summary.json could not be read:</p><ul '
        f'class="small">{"".join(f"<li>{esc(_relative(problem, root))}</li>" for problem in skipped)}</ul>'
        if skipped
        else ""
    )
    body = (
        f"<style>{INDEX_STYLE}</style>"
        f'<h1>{esc(title)}</h1><p class="muted">{len(runs)} runs under '
        f"<code>{esc(root.name)}/</code>; built {stamp}.</p>{extra}{unreadable}"
        + ("".join(sections) or "<p>No runs yet: <code>make reports</code> makes some.</p>")
    )
    out = root / "index.html"
    out.write_text(page(title, body))
    return out


def _relative(problem: str, root: Path) -> str:
    """A problem message with the machine's absolute path to root shortened to the folder's name."""
    return problem.replace(str(root.resolve()) + "/", "").replace(str(root) + "/", "")


def _findings_and_comparisons(root: Path) -> str:
    """Links to the findings page and the run comparisons, when they exist (relative: works offline)."""
    parts = []
    if (root / "findings.html").exists():
        parts.append(
            '<p><b><a href="findings.html">Findings</a></b>: every published claim with the figure '
            "measured on each device run and its verdict.</p>"
        )
    pages = sorted((root / "compare").glob("*.html"))
    if pages:
        links = " · ".join(
            f'<a href="compare/{esc(p.name)}">{esc(p.stem.replace("__", " vs "))}</a>' for p in pages
        )
        parts.append(f'<p class="small">Run comparisons: {links}</p>')
    return "".join(parts)
