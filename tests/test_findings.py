"""The findings table, page and README block, built from run folders written with the real results API."""

import dataclasses
import time
from pathlib import Path

import pandas as pd
import pytest

from mlx_workbook.core import published, results
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import DOES_NOT_HOLD, HOLDS, NOT_APPLICABLE
from mlx_workbook.report import findings_page as findings

H100 = {"device": "NVIDIA H100 80GB HBM3", "backend": "cuda"}


def make_run(
    folder: Path,
    notebook: str,
    claims: dict,
    *,
    profile="quick",
    env=None,
    age_s=0,
    status="ok",
    headline=None,
):
    """A finished (or failed) run folder: a few rows, one Finding per claim id in `claims` ({id: verdict})."""
    run = results.start_run(notebook, {"profile": profile}, run_dir=folder)
    run.environment = dataclasses.replace(run.environment, **(env or {}))
    run.started = time.time() - age_s
    for trial in range(3):
        run.record("decode", "decode_tps", 50.0 + trial, "tokens/s", trial=trial, variant="reference")
    for claim_id, verdict in claims.items():
        run.add_finding(
            Finding(
                id=claim_id,
                verdict=verdict,
                section="copies",
                headline=claim_id == headline,
                statement=f"{claim_id} measured at 51 tok/s",
                measured={"value": 1.5, "low": 1.0, "high": 2.0, "unit": "%"},
                published=published.reference(claim_id),
            )
        )
    (folder / f"{notebook}.html").write_text('<html><body><a id="copies"></a></body></html>')
    if status == "ok":
        run.finish()
    else:
        run.write_summary("failed", error="ValueError: bogus preset")
    return folder


@pytest.fixture()
def reports(tmp_path):
    make_run(
        tmp_path / "reference" / "gpu01",
        "01_kv_cache",
        {"kv_copy_no_impact": HOLDS, "per_token_time_flat": DOES_NOT_HOLD},
        profile="full",
        env=H100,
        headline="kv_copy_no_impact",
    )
    make_run(tmp_path / "runs" / "old01", "01_kv_cache", {"kv_copy_no_impact": DOES_NOT_HOLD}, age_s=100)
    make_run(tmp_path / "runs" / "new01", "01_kv_cache", {"kv_copy_no_impact": NOT_APPLICABLE})
    make_run(tmp_path / "runs" / "bad02", "02_decode_loop", {}, status="failed")
    make_run(tmp_path / "runs" / "machine", "00_machine", {})  # owns no claim: defines no device run
    return tmp_path


def test_one_row_per_claim_and_device_run_with_computed_verdicts(reports):
    table = findings.claims_table([reports])
    claims = published.claims()
    assert len(table) == 2 * len(claims)  # two device runs: the reference GPU run and the local CPU runs
    assert set(table.claim_id) == {c["id"] for c in claims}
    assert (table.groupby("claim_id").size() == 2).all()
    ref = table[table.reference]
    assert ref.device_run.str.contains("NVIDIA H100").all() and ref.device_run.str.contains("reference").all()
    row = ref.set_index("claim_id").loc["kv_copy_no_impact"]
    assert row.verdict == HOLDS and (row.measured_value, row.measured_low, row.measured_high) == (
        1.5,
        1.0,
        2.0,
    )
    assert row.measured == "1.5 [1, 2] %" and row.published_hardware == "unspecified"
    assert row.report_href == "reference/gpu01/01_kv_cache.html#copies"
    assert row.data_href == "reference/gpu01/measurements.parquet"
    assert ref.set_index("claim_id").loc["per_token_time_flat"].verdict == DOES_NOT_HOLD
    # A claim of the notebook the run states nothing about has "no verdict yet", linked to the run.
    assert ref.set_index("claim_id").loc["kv_preallocated_buffers_no_impact"].verdict == findings.NO_VERDICT


def test_newest_finished_run_wins_and_failed_or_missing_runs_say_so(reports):
    local = findings.claims_table([reports]).query("not reference").set_index("claim_id")
    assert local.loc["kv_copy_no_impact"].verdict == NOT_APPLICABLE  # new01, not old01
    assert local.loc["kv_copy_no_impact"].run_id == "new01"
    failed = local.loc["mlxlm_decode_tok_s_000"]  # a 02_decode_loop claim: its only run failed
    assert failed.verdict == findings.NO_VERDICT and "failed" in failed.statement
    # Its page has no error cell (no runner settled it with one): the link goes to the page, not a dead anchor.
    assert failed.report_href.endswith("bad02/02_decode_loop.html")
    missing = local.loc["sdpa_cliff_at_128_tokens"]
    assert missing.verdict == findings.NO_VERDICT and "no 03_sdpa_cliff run" in missing.statement


def test_without_runs_no_claim_has_a_verdict(tmp_path):
    table = findings.claims_table([tmp_path])
    assert len(table) == len(published.claims()) and (table.verdict == findings.NO_VERDICT).all()
    counts = findings.verdict_counts(table)
    assert list(counts.columns) == ["device_run"] + findings.CATEGORIES
    assert counts[findings.NO_VERDICT].tolist() == [len(table)]


def test_page_links_resolve_and_counts_match(reports):
    table = findings.claims_table([reports])
    page = findings.render_page(table, reports / "findings.html")
    text = page.read_text()
    for claim in published.claims():
        assert f'id="{claim["id"]}"' in text
    for href in set(table.report_href) | set(table.data_href):
        if href:
            assert (reports / href.split("#")[0]).is_file(), href
    assert "https://" not in text and "http://" not in text  # offline: nothing fetched
    assert (reports / "findings.csv").is_file() and (reports / "findings_verdicts.svg").is_file()
    counts = findings.verdict_counts(table).set_index("device_run")
    assert counts.sum(axis=1).tolist() == [len(published.claims())] * 2
    assert counts.loc[counts.index.str.contains("reference"), HOLDS].item() == 1
    assert pd.read_csv(reports / "findings.csv").shape[0] == len(table)


def test_a_shared_measurement_is_counted_once_and_old_names_are_read(tmp_path):
    """Two claims judged by one measurement (same_as) count once; a verdict stored under an older name is read
    as today's category."""
    run = results.start_run("01_kv_cache", {"profile": "quick"}, run_dir=tmp_path / "runs" / "kv")
    shared = {"value": 1.5, "low": 1.0, "high": 2.0, "unit": "%"}
    run.add_finding(Finding("kv_copy_no_impact", "copy", HOLDS, shared))
    run.add_finding(
        Finding(
            "kv_preallocated_buffers_no_impact", "same", HOLDS, {**shared, "same_as": "kv_copy_no_impact"}
        )
    )
    run.add_finding(Finding("slice_update_creates_new_arrays", "old run", "does not apply on this backend"))
    run.finish()
    table = findings.claims_table([tmp_path])
    rows = table.set_index("claim_id")
    assert rows.loc["kv_preallocated_buffers_no_impact"].same_as == "kv_copy_no_impact"
    assert rows.loc["slice_update_creates_new_arrays"].verdict == NOT_APPLICABLE
    counts = findings.verdict_counts(table).iloc[0]
    assert counts[HOLDS] == 1  # two rows, one measurement
    assert counts.drop("device_run").sum() == len(published.claims()) - 1
    page = findings.render_page(table, tmp_path / "findings.html").read_text()
    assert "same measurement as kv_copy_no_impact, counted once" in page
    cell = findings._verdict_cell("direction holds, size differs")
    assert 'class="verdict-direction-holds-size-differs"' in cell  # a CSS class without the comma


def test_build_links_the_page_from_both_indexes(reports):
    pages = findings.build(reports)
    assert pages == [reports / "findings.html", reports / "reference" / "findings.html"]
    assert 'href="findings.html"' in (reports / "index.html").read_text()
    assert 'href="findings.html"' in (reports / "reference" / "index.html").read_text()


def test_a_rebuild_with_nothing_new_leaves_every_file_untouched(reports):
    findings.build(reports)
    written = sorted(p for p in reports.rglob("*") if p.suffix in (".html", ".svg", ".csv") and p.parent in
                     (reports, reports / "reference"))  # fmt: skip
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in written}
    assert len(before) >= 6  # the findings page, its chart and CSV, and the index, in both folders
    findings.build(reports)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in written} == before  # same bytes, not rewritten
    svg = (reports / "findings_verdicts.svg").read_text()
    assert "<dc:date>" not in svg and 'id="p' in svg  # no timestamp; element ids from a fixed salt


def test_readme_block_shows_reference_headlines_between_markers(reports, tmp_path):
    block = findings.headline_markdown(reports, link_from=reports)
    assert block.startswith(findings.START) and block.endswith(findings.END)
    assert "NVIDIA H100" in block and "kv_copy_no_impact measured at 51 tok/s" in block
    assert "(reference/gpu01/01_kv_cache.html#copies)" in block and "(reference/findings.html)" in block
    assert "1 holds" in block and "1 does not hold" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{findings.START}\nstale text\n{findings.END}\n\nrest\n")
    assert findings.update_readme(readme, block) is True
    assert findings.update_readme(readme, block) is False  # idempotent
    text = readme.read_text()
    assert text.startswith("# Title") and text.endswith("rest\n") and "stale text" not in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        findings.update_readme(readme, block)


def test_readme_block_without_reference_runs(tmp_path):
    assert "No reference run" in findings.headline_markdown(tmp_path)


def test_published_figure_formats_values_ranges_and_bounds():
    assert findings.published_figure({"published": 94, "unit": "tok/s"}) == "94 tok/s"
    assert findings.published_figure({"published_low": 4, "published_high": 5, "unit": "%"}) == "4 to 5 %"
    assert findings.published_figure({"published_high": 1, "unit": "%"}) == "< 1 %"
    assert (
        findings.published_figure(
            {"published": 97, "published_low": 81, "published_high": 109, "unit": "tok/s"}
        )
        == "97 (81 to 109) tok/s"
    )
    assert findings.published_figure({"unit": "x"}) == "(no number)"


def test_a_corrupt_summary_is_skipped_and_named_by_findings_and_index(reports, capsys):
    for name, content in (("torn", '{"run_id": "torn", "notebook": "01_kv'), ("list", "[]")):
        (reports / "runs" / name).mkdir()
        (reports / "runs" / name / "summary.json").write_text(content)
    pages = findings.build(reports)  # findings page and index, reference folder included: no crash
    assert pages and findings.claims_table([reports]).run_id.isin(["torn", "list"]).sum() == 0
    err = capsys.readouterr().err
    assert (
        err.count("runs/torn/summary.json: not valid JSON") == 1 and err.count("runs/list/summary.json") == 1
    )
    index = (reports / "index.html").read_text()
    assert "2 run(s) skipped" in index and "runs/torn/summary.json" in index
