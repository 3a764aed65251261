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
# versions). Notebooks 01 to 04 each re-measure some of them and store, for every claim they own, a finding
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
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

import mlx_workbook as wb
from mlx_workbook.core import results, verdicts
from mlx_workbook.core.results import Finding
from mlx_workbook.report import findings_page as findings

run = results.start_run(
    "05_findings", {"profile": profile, "roots": roots, "page": page, "readme": readme}, run_dir=run_dir
)
# Relative folders are read from the repository root (papermill runs the kernel inside notebooks/).
here = run.run_dir.parent.parent if run_dir else wb.REPORTS_DIR
folders = [p if p.is_absolute() else wb.ROOT / p for p in map(Path, roots)] or [here]
missing = [str(p) for p in folders if not p.is_dir()]
if missing:
    raise ValueError(f"roots: no such folder(s): {', '.join(missing)}")
page_path = Path(page) if page else folders[0] / findings.PAGE
page_path = page_path if page_path.is_absolute() else wb.ROOT / page_path
if readme and not (wb.ROOT / readme).is_file():
    raise ValueError(f"readme: no such file: {readme}")

# %% [markdown]
# ## The claims table <a id="table"></a>
# One row per claim and device run. `measured` is the value the notebook stored with its 95% bootstrap interval;
# the statement beside it is the notebook's own sentence, built from its numbers.

# %%
table = findings.claims_table(folders, page_path.parent)
counts = findings.verdict_counts(table)
for _, row in counts.melt(id_vars="device_run", var_name="verdict", value_name="claims").iterrows():
    run.record(
        "verdicts", "claims", row.claims, "claims", trial=0, verdict=row.verdict, device_run=row.device_run
    )
columns = ["claim_id", "published", "published_hardware", "device_run", "measured", "verdict"]
with pd.option_context("display.max_rows", 500, "display.max_colwidth", 80):
    display(table[table.verdict != findings.NO_VERDICT][columns])  # every row is on the findings page

# %% [markdown]
# ## Verdicts per device run <a id="verdicts"></a>
# How many claims each device run confirmed, found in the claimed direction but of another size, refuted, could
# not decide, could not measure, found out of scope, or has no verdict for yet (from the counts stored above;
# a measurement two claims share counted once).

# %%
stored = run.measurements.pivot_table(index="device_run", columns="verdict", values="value", aggfunc="sum")
stored = stored.reindex(columns=[c for c in counts.columns if c != "device_run"]).reset_index()
fig = findings.verdict_chart(
    stored, f"Verdicts of {table.claim_id.nunique()} published claims per device run"
)
run.save_figure(fig, "verdicts")
display(fig, stored)

# %% [markdown]
# ## The findings page <a id="page"></a>
# The same table as a page next to the reports index (`findings.html`, with a CSV of the table), linked from
# the top of the index.

# %%
written = findings.render_page(table, page_path)
if readme:
    findings.update_readme(wb.ROOT / readme, findings.headline_markdown(folders[0]))
rows = findings.counted(table)  # a measurement two claims share counts once
n_runs = table.device_run.replace("", pd.NA).nunique()
n = {v: int((rows.verdict == v).sum()) for v in findings.CATEGORIES}
from_data = sum(n[v] for v in verdicts.FROM_DATA)
run.add_finding(
    Finding(
        id="claims_with_verdict",
        headline=True,
        section="table",
        measured={"value": from_data, "low": from_data, "high": from_data, "unit": "claim rows"},
        statement=f"{table.claim_id.nunique()} published claims against {n_runs} device run(s), "
        f"{len(rows)} rows counted ({len(table) - len(rows)} more share another claim's measurement): "
        f"{from_data} have a verdict from data ("
        + ", ".join(f"{n[v]} {v}" for v in verdicts.FROM_DATA)
        + f"); {n[verdicts.NOT_MEASURED]} are not measured (something the claim needs is missing), "
        f"{n[verdicts.NOT_APPLICABLE]} do not apply (outside the claim's scope), {n[findings.NO_VERDICT]} have no "
        "verdict yet.",
    )
)
for device_run, part in rows[rows.device_run != ""].groupby("device_run"):
    run.add_finding(
        Finding(
            id=f"verdicts: {device_run}",
            section="verdicts",
            statement=f"{device_run}: "
            + ", ".join(f"{(part.verdict == v).sum()} {v}" for v in findings.CATEGORIES),
        )
    )
run.finish()
display(Markdown(f"Findings page: `{written}`\n\n" + "\n".join(f"- {f.statement}" for f in run.findings)))
