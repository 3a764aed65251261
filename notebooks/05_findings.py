# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Findings: every published claim, measured
#
# The original write-ups make claims with numbers (`data/published/`, transcribed with their hardware and
# versions). The other notebooks each re-measure some of them and store, for every claim they own, a finding
# whose verdict is computed from their own data: **holds**, **direction holds, size differs** (an effect in the
# claimed direction, larger or smaller than published), **does not hold** or **inconclusive**; or says why there
# is none: **not measured** (something the claim needs is missing here: an MLX version, a model, a binding) or
# **does not apply** (the run is outside the claim's stated scope: its hardware, backend or model size, computed
# per run by `core.scope`). Two claims judged by one measurement are counted once. This notebook measures
# nothing. It reads the stored runs (local runs and the committed reference runs under `reports/reference/`) and
# puts every claim in one table: the published figure beside the figure measured on each device run, with its
# 95% interval, the verdict, and links to the notebook section and the data behind it. A claim that no run has
# a verdict for yet says so.
#
# A *device run* is the newest finished run of each notebook on one device, MLX version and profile; reference
# runs are kept apart from local ones.

# %% tags=["parameters"]
profile: str = "quick"  # parameter profile this run came from (set by the runner)
run_dir: str = (
    ""  # folder for this run's results (set by the runner; empty: a new folder under reports/runs/)
)
roots: list = []  # reports folders to read (runs at any depth, references too); empty: the one this run writes to
page: str = ""  # where to write the findings page; empty: findings.html in the first folder of roots
readme: str = ""  # a README whose findings block to refresh from the reference runs; empty: none

# %%
import pandas as pd
from IPython.display import Markdown, display

from mlx_workbook.core import results
from mlx_workbook.report import findings_page

run = results.start("05_findings", globals())
folders, page_path, readme_path = findings_page.locate(run, roots, page, readme)

# %% [markdown]
# ## The claims table <a id="table"></a>
# One row per claim and device run. `measured` is the value the notebook stored with its 95% bootstrap interval;
# the statement beside it is the notebook's own sentence, built from its numbers.

# %%
table = findings_page.claims_table(folders, page_path.parent)
counts = findings_page.record_verdicts(run, table)
columns = ["claim_id", "published", "published_hardware", "device_run", "measured", "verdict"]
with pd.option_context("display.max_rows", 500, "display.max_colwidth", 80):
    display(table[table.verdict != findings_page.NO_VERDICT][columns])  # every row is on the findings page

# %% [markdown]
# ## Verdicts per device run <a id="verdicts"></a>
# How many claims each device run confirmed, found in the claimed direction but of another size, refuted, could
# not decide, could not measure, found out of scope, or has no verdict for yet (from the counts stored above;
# a measurement two claims share counted once).

# %%
fig = findings_page.verdict_chart(
    counts, f"Verdicts of {table.claim_id.nunique()} published claims per device run"
)
run.save_figure(fig, "verdicts")
display(fig, counts)

# %% [markdown]
# ## The findings page <a id="page"></a>
# The same table as a page next to the reports index (`findings.html`, with a CSV of the table), linked from
# the top of the index.

# %%
written = findings_page.render_page(table, page_path)
if readme_path:
    findings_page.update_readme(readme_path, findings_page.headline_markdown(folders[0]))
for finding in findings_page.notebook_findings(table):
    run.add_finding(finding)
run.finish()
display(
    Markdown(f"Findings page: `{written.name}`\n\n" + "\n".join(f"- {f.statement}" for f in run.findings))
)
