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


def _headline(summary: dict) -> str:
    findings = summary.get("findings") or []
    chosen = [f for f in findings if f.get("headline")] or findings[:1]
    return "<br>".join(esc(f["statement"]) for f in chosen)


def _run_row(run_dir: Path, root: Path) -> str:
    s = results.read_summary(run_dir)
    rel = run_dir.relative_to(root).as_posix()
    nb, status = s.get("notebook", "?"), s.get("status", "?")
    env = s.get("environment", {})
    html_file = run_dir / f"{nb}.html"
    report = f"{rel}/{nb}.html"
    links = []
    if html_file.exists():
        links.append(f'<a href="{esc(report)}">report</a>')
    if (run_dir / results.MEASUREMENTS).exists():
        links.append(f'<a href="{esc(rel)}/{results.MEASUREMENTS}">data</a>')
    links.append(f'<a href="{esc(rel)}/{results.SUMMARY}">summary</a>')
    figures = sorted((run_dir / results.FIGURES).glob("*.svg"))
    figure_links = " ".join(
        f'<a href="{esc(rel)}/{results.FIGURES}/{esc(f.name)}">{esc(f.stem)}</a>' for f in figures
    )
    status_cell = f'<span class="status-{esc(status)}">{esc(status)}</span>'
    if status == "failed":
        target = (
            f"{report}#{s.get('error_anchor', 'papermill-error-cell')}"
            if html_file.exists()
            else f"{rel}/{results.SUMMARY}"
        )
        status_cell = (
            f'<a class="status-failed" href="{esc(target)}">failed</a>'
            f'<div class="small muted">{esc((s.get("error") or "")[:200])}</div>'
        )
    duration = s.get("duration_s")
    return (
        f'<tr class="{esc(status)}"><td>{esc(nb)}</td><td>{status_cell}</td>'
        f"<td>{esc(s.get('started', ''))}</td><td>{'' if duration is None else f'{duration:.0f} s'}</td>"
        f'<td>{esc(env.get("device", "?"))}<div class="small muted">{esc(env.get("backend", ""))}</div></td>'
        f"<td>mlx {esc(env.get('mlx', '?'))}<br>mlx-lm {esc(env.get('mlx_lm', '?'))}</td>"
        f'<td>{_headline(s)}</td><td>{" · ".join(links)}<div class="small">{figure_links}</div></td></tr>'
    )


def build_index(root: Path, title: str = "MLX performance workbook: runs") -> Path:
    """Write root/index.html listing every run under root, grouped by notebook, newest first."""
    root = Path(root)
    runs = results.find_runs(root)
    by_notebook: dict[str, list[Path]] = {}
    for d in runs:
        by_notebook.setdefault(results.read_summary(d).get("notebook", "?"), []).append(d)
    head = (
        "<tr><th>notebook</th><th>status</th><th>started (UTC)</th><th>duration</th><th>device</th>"
        "<th>versions</th><th>headline finding</th><th>links</th></tr>"
    )
    sections = []
    for nb in sorted(by_notebook):
        rows = "".join(_run_row(d, root) for d in by_notebook[nb])
        sections.append(f'<h2 id="{esc(nb)}">{esc(nb)}</h2><table>{head}{rows}</table>')
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    extra = (root / "index_extra.html").read_text() if (root / "index_extra.html").exists() else ""
    extra = _findings_and_comparisons(root) + extra
    body = (
        f'<h1>{esc(title)}</h1><p class="muted">{len(runs)} runs under '
        f"<code>{esc(root.name)}/</code>; built {stamp}.</p>{extra}"
        + ("".join(sections) or "<p>No runs yet: <code>make reports</code> makes some.</p>")
    )
    out = root / "index.html"
    out.write_text(page(title, body))
    return out


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
