"""The rendered reports in a real headless browser (Debian's Chromium driven by Playwright), served from
127.0.0.1 only: the index loads, every link resolves, every figure renders, nothing is fetched from the
network, and a failed run shows as failed."""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from urllib.parse import urldefrag, urlparse

import pytest

from mlx_workbook import ROOT
from mlx_workbook.core import results
from mlx_workbook.report import compare, html, runner
from mlx_workbook.report import findings_page as findings

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SMALL = {"probes": ["read"], "sizes_mb": [1], "matmul_sizes": [64], "repeats": 2}  # the quickest 00_machine


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (make browser installs it; CHROMIUM=<path> points elsewhere)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements/dev.txt)"
    return None


if _missing():
    # On CI the browser is installed by `make test` (make browser): missing there is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run on CI: {_missing()}", pytrace=False)
    pytest.skip(_missing(), allow_module_level=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A reports folder as `make reports` + `make findings` + `make compare` leave it, served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("site")
    assert runner.run_notebooks(["00_machine"], "test", SMALL, root=root) == 0
    # A bogus probe after a real one: the first probe's trials finish, then the notebook raises.
    assert (
        runner.run_notebooks(["00_machine"], "test", {**SMALL, "probes": ["read", "bogus"]}, root=root) == 1
    )
    failed, ok = sorted(
        (r.path for r in results.find_runs(root)), key=lambda d: results.read_summary(d)["status"]
    )
    compare.compare(ok, failed, root=root)
    findings.build(root)  # the findings page, then the index that links it and the comparison
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    """A fresh Chromium profile; every request is recorded and anything not for 127.0.0.1 is blocked."""
    from playwright.sync_api import sync_playwright

    base, _ = site
    outside, errors = [], []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
        )

        def gate(route):
            if route.request.url.startswith(base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", gate)
        context.on("weberror", lambda e: errors.append(str(e.error)))
        yield context, outside, errors
        context.close()


def _html_pages(context, base: str) -> dict[str, list[str]]:
    """Crawl every local HTML page reachable from the index: url -> absolute hrefs on it."""
    pages, todo = {}, [base + "index.html"]
    page = context.new_page()
    while todo:
        url = todo.pop()
        if url in pages:
            continue
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        pages[url] = hrefs
        todo += [u for u in (urldefrag(h).url for h in hrefs) if u.startswith(base) and u.endswith(".html")]
    page.close()
    return pages


def test_index_loads_and_links_findings_and_comparison(site, browser):
    base, _ = site
    context, outside, _ = browser
    page = context.new_page()
    assert page.goto(base + "index.html").status == 200
    assert page.title().startswith("MLX performance workbook")
    assert page.locator("p a[href='findings.html']").count() == 1  # and one in the nav bar
    assert page.locator("a[href^='compare/']").count() == 1
    assert page.locator("h2[id='00_machine']").is_visible()
    page.close()
    assert outside == []


def test_every_link_resolves_and_nothing_leaves_localhost(site, browser):
    base, _ = site
    context, outside, errors = browser
    pages = _html_pages(context, base)
    assert len(pages) >= 5  # index, findings, comparison, two run reports
    bodies = {}
    for url, hrefs in pages.items():
        for href in hrefs:
            target, fragment = urldefrag(href)
            if urlparse(target).scheme not in ("http", "https"):
                continue
            assert target.startswith(base), f"{url} links outside the reports: {href}"
            if target not in bodies:
                response = context.request.get(target)
                assert response.status == 200, f"{url} -> {href}: HTTP {response.status}"
                bodies[target] = response.text() if target.endswith(".html") else ""
            if fragment and target.endswith(".html"):
                assert re.search(rf"""(id|name)=["']{re.escape(fragment)}["']""", bodies[target]), (
                    f"{url} -> {href}: no #{fragment} on the page"
                )
    assert outside == [], f"requests left 127.0.0.1: {outside[:5]}"
    assert errors == [], f"script errors: {errors[:3]}"


def test_every_figure_renders(site, browser):
    base, root = site
    context, outside, _ = browser
    page = context.new_page()
    pages = [base + "index.html", base + "findings.html"] + [
        base + p.relative_to(root).as_posix() for p in root.glob("runs/*/*.html")
    ]
    images = 0
    for url in pages:
        page.goto(url)
        sizes = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.currentSrc.slice(0, 60), e.naturalWidth])"
        )
        assert all(width > 0 for _, width in sizes), f"{url}: broken images {[s for s, w in sizes if w == 0]}"
        images += len(sizes)
        boxes = page.eval_on_selector_all("svg", "els => els.map(e => e.getBoundingClientRect().width)")
        assert all(w > 0 for w in boxes), url
    svg_files = list(root.glob("runs/*/figures/*.svg"))
    assert svg_files and images >= 2  # run reports embed their charts; the findings page shows its chart
    for svg in svg_files:
        page.goto(base + svg.relative_to(root).as_posix())
        assert page.eval_on_selector("svg", "e => e.getBoundingClientRect().width") > 0, svg
    page.close()
    assert outside == []


def test_failed_run_shows_as_failed(site, browser):
    base, _ = site
    context, _, _ = browser
    page = context.new_page()
    page.goto(base + "index.html")
    row = page.locator("tr.failed")
    assert row.count() == 1 and "bogus" in row.inner_text()
    link = row.locator("a.status-failed")
    assert link.inner_text() == "failed" and link.is_visible()
    assert page.locator("tr.ok").count() == 1
    color = link.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(176, 0, 32)"  # the failed colour, not the ok one
    link.click()
    page.wait_for_load_state()
    assert page.url.endswith("#papermill-error-cell")
    assert page.locator("#papermill-error-cell").count() >= 1
    assert "bogus" in page.content()
    page.close()


def test_pages_are_offline_safe_as_written(site):
    _, root = site
    for page in [
        root / "index.html",
        root / "findings.html",
        *root.glob("compare/*.html"),
        *root.glob("runs/*/*.html"),
    ]:
        text = page.read_text()
        assert not re.search(r"""<(script|link)[^>]+(src|href)=["']https?://""", text, re.I), page
    assert html.make_offline('<script src="https://x/y.js"></script>') == ""


def _links(page, selector: str = "a[href]") -> set[str]:
    return {urldefrag(h).url for h in page.eval_on_selector_all(selector, "els => els.map(e => e.href)")}


def test_navigation_between_index_findings_and_notebook_pages(site, browser):
    base, root = site
    context, _, _ = browser
    page = context.new_page()
    run_pages = sorted(base + p.relative_to(root).as_posix() for p in root.glob("runs/*/*.html"))
    assert len(run_pages) == 2
    page.goto(base + "index.html")
    assert _links(page, "nav.wb-nav a") == {base + "findings.html"}  # the nav bar: the other pages
    assert set(run_pages) <= _links(page)
    page.goto(base + "findings.html")
    assert _links(page, "nav.wb-nav a") == {base + "index.html"}
    for url in run_pages:
        page.goto(url)
        assert base + "index.html" in _links(page, "nav.wb-nav a"), url
    # Pages rendered before the findings page existed link the index only; once it exists, both.
    ok = next(r.path for r in results.find_runs(root) if r.status == "ok")
    html.render_notebook(ok / "00_machine.ipynb", ok / "00_machine.html")
    page.goto(base + (ok / "00_machine.html").relative_to(root).as_posix())
    assert _links(page, "nav.wb-nav a") == {base + "index.html", base + "findings.html"}
    toc = page.locator("nav.wb-toc a")
    assert toc.count() >= 3  # a notebook page with several sections gets a table of contents
    toc.nth(1).click()
    assert page.url.endswith(toc.nth(1).get_attribute("href"))
    page.close()


def test_no_page_shows_a_machine_path(site):
    _, root = site
    pages = [
        root / "index.html",
        root / "findings.html",
        *root.glob("compare/*.html"),
        *root.glob("runs/*/*.html"),
    ]
    assert len(pages) >= 5
    for page in pages:
        text = page.read_text()
        for folder in {str(root), str(ROOT), str(root.parent), "/home/", "/Users/", "/root/"}:
            assert folder not in text, f"{page.name} shows {folder}"
        assert not re.search(r"/[\w.+-]+/(?:lib/python3\.\d+/)?(?:site|dist)-packages", text), page.name
    assert "run_dir" in (pages[-1].read_text())  # the parameters table is there, with the run id only


def test_no_page_shows_a_warning_box(site, browser, tmp_path):
    import nbformat

    base, root = site
    context, _, _ = browser
    page = context.new_page()
    for path in root.glob("runs/*/*.html"):
        page.goto(base + path.relative_to(root).as_posix())
        assert page.locator(".wb-stderr").count() == 0, (
            f"{path.name}: {page.locator('.wb-stderr').all_inner_texts()}"
        )
        assert "TqdmWarning" not in page.content() and "without encryption" not in page.content()
    # The same check on a page with a warning written to stderr: it must see the box.
    cell = nbformat.v4.new_code_cell("import warnings")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something real\n")]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "w.ipynb")
    html.render_notebook(tmp_path / "w.ipynb", root / "warning.html")
    page.goto(base + "warning.html")
    assert page.locator(".wb-stderr").count() == 1 and page.locator(".wb-stderr").is_visible()
    page.close()
    (root / "warning.html").unlink()


def test_the_checks_catch_a_broken_page(site, browser):
    # The same checks on a page that is broken on purpose: they must fail there, or they prove nothing.
    base, root = site
    context, outside, _ = browser
    (root / "broken.html").write_text(
        '<img src="https://example.invalid/x.png"><img src="missing.svg"><a href="nothing.html">x</a>'
    )
    before = len(outside)
    page = context.new_page()
    page.goto(base + "broken.html")
    widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
    assert widths == [0, 0]
    assert outside[before:] == ["https://example.invalid/x.png"]
    del outside[before:]
    assert context.request.get(base + "nothing.html").status == 404
    page.close()
    (root / "broken.html").unlink()
