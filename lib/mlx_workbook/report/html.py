"""HTML output: executed notebooks rendered for offline reading, and the index page over all runs."""

from __future__ import annotations

import ast
import html as _html
import io
import os
import re
import tokenize
from pathlib import Path

from mlx_workbook import ROOT
from mlx_workbook.core import results
from mlx_workbook.core.progress import MARK as PROGRESS_MARK  # the page shows results, not progress

TEMPLATES = Path(__file__).parent / "templates"

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
nav.wb-nav{font-size:13px;padding:.4em 0;border-bottom:1px solid #ddd;margin-bottom:1em}
nav.wb-nav a{margin-right:1.2em} nav.wb-toc{font-size:13px;background:#f8f8f8;border:1px solid #e4e4e4;
padding:.3em 1em;margin:1em 0;display:inline-block} nav.wb-toc ol{margin:.3em 0;padding-left:1.4em}
"""

# Notebook pages: code folded away, long lines wrapped, wide tables scroll inside their own box.
NOTEBOOK_STYLE = (
    STYLE.replace("body{", "body.wb-page{", 1)
    + """
details.wb-code>summary{cursor:pointer;color:#777;font-size:12px;margin:.2em 0}
details.wb-code pre{white-space:pre-wrap;overflow-wrap:anywhere}
.jp-RenderedHTMLCommon table{width:auto} .jp-RenderedHTML{overflow-x:auto;max-height:none}
.jp-OutputArea-output pre{white-space:pre-wrap} .jp-Cell{padding:0}
table.wb-params td:first-child{font-family:monospace;white-space:nowrap}
"""
)

# Stderr lines that are noise, not findings: from pages stored before their sources were silenced.
_NOISE = re.compile(
    r"TqdmWarning: IProgress not found|from \.autonotebook import tqdm|\[transformers\] The tokenizer"
)


def render_notebook(ipynb: Path, out_html: Path) -> Path:
    """An executed notebook as a page for readers: narrative, tables and charts, each cell's code one click
    away, the parameters as one table, a navigation bar and a table of contents, no machine paths."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    roots = _machine_roots(nb)
    _parameters_as_table(nb)
    _drop_noise(nb)
    exporter = HTMLExporter(
        template_name="reader",
        extra_template_basedirs=[str(TEMPLATES)],
        embed_images=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    body = scrub_paths(make_offline(body), roots)
    body = body.replace("</head>", f"<style>{NOTEBOOK_STYLE}</style></head>", 1)
    body = body.replace('<body class="jp-Notebook"', '<body class="jp-Notebook wb-page"', 1)
    toc = table_of_contents(body)
    body = body.replace("<main>", "<main>" + nav_bar(out_html.parent, _reports_root(out_html)), 1)
    body = re.sub(r"(</h1>)", lambda m: m.group(1) + toc, body, count=1) if "</h1>" in body else body
    write_if_changed(out_html, body)
    return out_html


def _reports_root(page_file: Path) -> Path:
    """The folder holding index.html for a run page: <root>/runs/<id>/x.html or <root>/<id>/x.html."""
    run_dir = Path(page_file).parent
    return run_dir.parent.parent if run_dir.parent.name == "runs" else run_dir.parent


def nav_bar(page_dir: Path, root: Path, here: str = "") -> str:
    """Links between the runs index, the findings page and the page itself (relative: works offline)."""
    links = []
    for name, target in (("All runs", "index.html"), ("Findings", "findings.html")):
        path = Path(root) / target
        if name == here or not (path.exists() or target == "index.html"):
            continue
        links.append(f'<a href="{esc(Path(os.path.relpath(path, page_dir)).as_posix())}">{name}</a>')
    return f'<nav class="wb-nav">MLX performance workbook: {" ".join(links)}</nav>' if links else ""


def table_of_contents(page_html: str, minimum: int = 3) -> str:
    """A list of links to the page's second-level headings, when there are at least `minimum` of them."""
    heads = re.findall(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', page_html, re.S)
    if len(heads) < minimum:
        return ""
    items = []
    for anchor, text in heads:
        named = re.search(r"""<a id=["']([^"']+)["']""", text)  # a notebook's own anchor (#claims) is stable
        title = re.sub(r"<[^>]+>|¶", "", text).strip()
        items.append(f'<li><a href="#{named.group(1) if named else anchor}">{title}</a></li>')
    items = "".join(items)
    return f'<nav class="wb-toc"><b>Contents</b><ol>{items}</ol></nav>'


def _machine_roots(nb) -> list[tuple[str, str]]:
    """(absolute folder, what to show instead) for folders whose paths may appear in the page: this checkout,
    the checkout that ran the notebook, and the reports folder it wrote to (shown as reports/)."""
    roots = {str(ROOT): ""}
    output = (nb.metadata.get("papermill") or {}).get("output_path") or ""
    if "/reports/" in output:
        roots[output.split("/reports/")[0]] = ""
    run_dir = Path(output).parent
    if output and run_dir.parent.name == "runs":
        roots[str(run_dir.parent.parent)] = "reports"
    return sorted(roots.items(), key=lambda item: len(item[0]), reverse=True)


_SITE = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s\"'<>()]*?[/\\](site-packages|dist-packages)[/\\]")
_STDLIB = re.compile(r"/(?:usr|opt|Library)/[^\s\"'<>()]*?/(python3\.\d+)/")
_HOME = re.compile(r"/(?:home|Users)/[^/\s\"'<>]+/|/root/|/tmp/[^\s\"'<>]*?/")


_DATA_URI = re.compile(r"(data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+)")


def scrub_paths(text: str, roots: list[tuple[str, str]]) -> str:
    """Absolute paths of the machine that ran a notebook, made relative: the checkout's to the repository,
    installed packages' to site-packages/, anything under a home or temporary folder to ~/ or tmp/.
    Embedded images are left alone (base64 text can spell /tmp/ by chance)."""
    parts = _DATA_URI.split(text)
    return "".join(p if i % 2 else _scrub(p, roots) for i, p in enumerate(parts))


def _scrub(text: str, roots: list[tuple[str, str]]) -> str:
    for root, instead in roots:
        text = text.replace(root.rstrip("/") + "/", instead + "/" if instead else "")
        text = re.sub(re.escape(root.rstrip("/")) + r"\b", instead or ".", text)
    text = _SITE.sub(lambda m: m.group(1) + "/", text)
    text = _STDLIB.sub(lambda m: m.group(1) + "/", text)
    return _HOME.sub(lambda m: "tmp/" if m.group(0).startswith("/tmp/") else "~/", text)


def _parameters_as_table(nb) -> None:
    """Replace the default parameters cell and papermill's injected one with one table of the values used."""
    import nbformat

    tags = [set(c.metadata.get("tags") or []) for c in nb.cells]
    where = [i for i, t in enumerate(tags) if t & {"parameters", "injected-parameters"}]
    if not where:
        return
    defaults = _declared(nb.cells[where[0]].source) if "parameters" in tags[where[0]] else {}
    used = (nb.metadata.get("papermill") or {}).get("parameters") or {}
    rows = []
    for name in list(defaults) + [n for n in used if n not in defaults]:
        default, comment = defaults.get(name, ("", ""))
        value = _short_value(name, used[name]) if name in used else default
        changed = name in used and value != default and name not in ("profile", "run_dir")
        note = f' <span class="small muted">(default {esc(default)})</span>' if changed and default else ""
        rows.append(
            f"<tr><td>{esc(name)}</td><td>{'<b>' if changed else ''}{esc(value)}{'</b>' if changed else ''}"
            f"{note}</td><td>{esc(comment)}</td></tr>"
        )
    table = (
        '<details open><summary><b>Parameters</b> <span class="small muted">(values this run used; '
        "bold: set by the profile or the command line)</span></summary>"
        f'<table class="wb-params"><tr><th>parameter</th><th>value</th><th>meaning</th></tr>{"".join(rows)}'
        "</table></details>"
    )
    replaced = nb.cells[where[0]]
    nb.cells[where[0]] = nbformat.v4.new_markdown_cell(table)
    if "id" in replaced:  # the page's cell ids stay those of the notebook: same notebook, same bytes
        nb.cells[where[0]].id = replaced.id
    for i in reversed(where[1:]):
        del nb.cells[i]


def _short_value(name: str, value) -> str:
    if name == "run_dir":  # the machine's folder: only the run id means anything to a reader
        return Path(str(value)).name
    return ast.unparse(ast.Constant(value)) if not isinstance(value, list | dict) else repr(value)


def _declared(source: str) -> dict[str, tuple[str, str]]:
    """name -> (default as written, its comment) for each assignment in a parameters cell."""
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("# ")
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name):
                lines = range(node.lineno, node.end_lineno + 1)
                comment = " ".join(comments[n] for n in lines if n in comments)
                out[target.id] = (_short_value(target.id, ast.literal_eval(node.value)), comment)
    return out


def _drop_noise(nb) -> None:
    """Drop progress lines and known library noise from stderr outputs (a stderr box left empty goes)."""
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = re.split(r"(?<=\n)|\r", out.text)
                text = "".join(
                    ln for ln in lines if not ln.startswith(PROGRESS_MARK) and not _NOISE.search(ln)
                )
                if not text.strip():
                    continue
                out.text = text
            kept.append(out)
        if "outputs" in cell:
            cell.outputs = kept


def write_if_changed(path: Path, text: str) -> bool:
    """Write text unless the file already holds exactly it (a rebuild with nothing new leaves files alone)."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def make_offline(page: str) -> str:
    return _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", page))


def esc(value) -> str:
    return _html.escape(str(value))


def page(title: str, body: str, nav: str = "") -> str:
    """A plain page: the navigation bar, then the body with a table of contents after its first heading."""
    toc = table_of_contents(body)
    if toc and "</h1>" in body:
        head, rest = body.split("</h1>", 1)
        first_p = rest.find("</p>")
        cut = first_p + 4 if 0 <= first_p < 2000 else 0  # after the first paragraph under the title
        body = head + "</h1>" + rest[:cut] + toc + rest[cut:]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>{nav}{body}</body></html>"
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
    stamp = newest_start(runs)  # not the clock: a rebuild with no new run writes the same bytes
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
        f"<code>{esc(root.name)}/</code>; newest started {stamp}.</p>{extra}{unreadable}"
        + ("".join(sections) or "<p>No runs yet: <code>make reports</code> makes some.</p>")
    )
    out = root / "index.html"
    write_if_changed(out, page(title, body, nav=nav_bar(root, root, here="All runs")))
    return out


def _relative(problem: str, root: Path) -> str:
    """A problem message with the machine's absolute path to root shortened to the folder's name."""
    return problem.replace(str(root.resolve()) + "/", "").replace(str(root) + "/", "")


def newest_start(runs: list[results.RunSummary]) -> str:
    """When the newest of these runs started (from its record), for a page's "as of" line."""
    return max((str(r.started or "") for r in runs), default="") or "never"


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
