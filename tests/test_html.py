"""Notebook pages for readers, rendered from a small executed-looking notebook."""

import re

import nbformat

from mlx_workbook import ROOT
from mlx_workbook.report import html


def executed_notebook(run_dir):
    params = nbformat.v4.new_code_cell(
        'profile: str = "quick"  # parameter profile\nrun_dir: str = ""  # folder for results\n'
        'repeats: int = 7  # rounds\npresets: list = [\n    "tiny",\n]  # models to load\n',
        metadata={"tags": ["parameters"]},
    )
    injected = nbformat.v4.new_code_cell(
        f'# Parameters\nrepeats = 3\nprofile = "full"\nrun_dir = "{run_dir}"\n',
        metadata={"tags": ["injected-parameters"]},
    )
    work = nbformat.v4.new_code_cell("import mlx_workbook\nprint(run.run_dir)")
    work.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"{run_dir}/figures/a.svg\n"),
        nbformat.v4.new_output(
            "stream",
            name="stderr",
            text="/opt/venv/lib/python3.12/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"
            "  from .autonotebook import tqdm as notebook_tqdm\n",
        ),
    ]
    cells = [nbformat.v4.new_markdown_cell("# Title")]
    cells += [params, injected, work]
    cells += [nbformat.v4.new_markdown_cell(f"## Part {i} <a id='p{i}'></a>\ntext") for i in range(3)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["papermill"] = {
        "parameters": {"repeats": 3, "profile": "full", "run_dir": str(run_dir)},
        "output_path": f"{run_dir}/99_demo.ipynb",
    }
    return nb


def test_page_for_readers(tmp_path):
    # The run happened on another machine, in its checkout's reports/runs/.
    run_dir = "/srv/someone/checkout/reports/runs/20260101T000000_99_demo_cpu-x"
    folder = tmp_path / "reports" / "runs" / "20260101T000000_99_demo_cpu-x"
    folder.mkdir(parents=True)
    (tmp_path / "reports" / "index.html").write_text("index")
    nbformat.write(executed_notebook(run_dir), folder / "99_demo.ipynb")
    page = html.render_notebook(folder / "99_demo.ipynb", folder / "99_demo.html").read_text()
    # One parameters table: the values the run used, the default beside an overridden one, the comments.
    assert page.count('class="wb-params"') == 1 and "injected-parameters" not in page
    row = re.search(r"<tr><td>repeats</td>(.*?)</tr>", page).group(1)
    assert "<b>3</b>" in row and "(default 7)" in row and "rounds" in row
    assert re.search(r"<td>run_dir</td><td>20260101T000000_99_demo_cpu-x</td>", page)
    row = re.search(r"<tr><td>presets</td>(.*?)</tr>", page).group(1)  # a multi-line default, its comment
    assert "tiny" in row and "models to load" in row
    # Code folded away per cell; the narrative and outputs shown; no warning box, no machine path.
    assert page.count('<details class="wb-code">') == 1
    assert "reports/runs/20260101T000000_99_demo_cpu-x/figures/a.svg" in page
    assert "/srv/someone" not in page and str(ROOT) not in page and "TqdmWarning" not in page
    assert "wb-stderr" not in page.split("</style>")[-1]
    # Navigation back to the index, and a table of contents after the title.
    assert '<nav class="wb-nav">' in page and 'href="../../index.html"' in page
    assert page.index("</h1>") < page.index('<nav class="wb-toc">') and 'href="#p2"' in page


def test_scrub_paths_makes_machine_paths_relative():
    roots = [("/home/me/wb/reports", "reports"), ("/home/me/wb", "")]
    text = html.scrub_paths(
        "/home/me/wb/reports/runs/x /home/me/wb/lib/a.py /usr/lib/python3.11/json/x.py "
        "C:/venv/Lib/site-packages/y.py /home/other/z /tmp/abc/q",
        roots,
    )
    assert text == "reports/runs/x lib/a.py python3.11/json/x.py site-packages/y.py ~/z tmp/q"
    image = '<img src="data:image/png;base64,iVBOR/tmp/Ab/root/Cd=">'
    assert html.scrub_paths(image, roots) == image  # base64 that happens to spell a path stays intact


def test_a_rerender_with_nothing_new_leaves_the_page_alone(tmp_path):
    nbformat.write(executed_notebook("/x/reports/runs/r"), tmp_path / "n.ipynb")
    page = html.render_notebook(tmp_path / "n.ipynb", tmp_path / "n.html")
    stamp = page.stat().st_mtime_ns
    html.render_notebook(tmp_path / "n.ipynb", tmp_path / "n.html")
    assert page.stat().st_mtime_ns == stamp
