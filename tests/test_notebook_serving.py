"""07_serving executed through papermill on the test profile, then checked on its stored data: no server left
running, exact token counts, no accidental prompt-cache hits, the fault table, and the findings."""

from __future__ import annotations

import os

import pytest

from mlx_workbook.core import published, results
from mlx_workbook.report import runner

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def run_07_serving(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports-07_serving")
    code = runner.run_notebooks(["07_serving"], "test", {}, root=root)
    run_dir = results.find_runs(root)[0].path
    return code, run_dir, results.read_measurements(run_dir), results.read_summary(run_dir)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_07_serving_leaves_no_server_process_behind(run_07_serving):
    code, run_dir, df, summary = run_07_serving
    assert code == 0 and summary["status"] == "ok", summary.get("error")
    assert "Starting httpd" in (run_dir / "server.log").read_text()
    (pid,) = df[df.experiment == "server"].pid.astype(int)
    assert not _running(pid)
    if os.path.isdir("/proc"):  # no mlx_lm server of this run's port anywhere
        port = str(int(df[df.experiment == "server"].port.iloc[0]))
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace").split("\0")
            except OSError:
                continue
            assert not ("server" in cmd and port in cmd and _running(int(p))), cmd


def test_07_serving_requests_make_exactly_their_tokens_from_fresh_prompts(run_07_serving):
    _, _, df, summary = run_07_serving
    p = summary["params"]
    over = df[(df.experiment == "overhead") & (df.metric == "e2el_ms")]
    assert (over.output_tokens == over.length).all()
    assert set(over.variant) == {
        "in-process generate_step",
        "in-process BatchGenerator",
        "HTTP, concurrency 1",
    }
    assert len(over) == 3 * p["overhead_blocks"] * len(p["overhead_lengths"])
    load = df[df.experiment.isin(["closed_loop", "open_loop"]) & (df.metric == "e2el_ms")]
    assert (load.output_tokens == p["gen_tokens"]).all() and (load.chunks == p["gen_tokens"]).all()
    assert (load.cached_tokens == 0).all()  # every load request had a fresh prompt
    itl = df[(df.experiment == "closed_loop") & (df.metric == "itl_ms")]
    per_request = itl.groupby(["concurrency", "round", "request"]).size()
    assert (per_request <= p["gen_tokens"] - 1).all()
    levels = df[(df.experiment == "closed_loop") & (df.metric == "duration_s")]
    assert sorted(set(levels.concurrency)) == p["concurrencies"] and len(levels) == p["rounds"] * len(
        p["concurrencies"]
    )


def test_07_serving_prompt_reuse_hits_the_servers_cache(run_07_serving):
    _, _, df, summary = run_07_serving
    reuse = df[df.experiment == "prompt_reuse"]
    shared, fresh = reuse[reuse.variant == "shared prefix"], reuse[reuse.variant == "no shared prefix"]
    assert (shared.cached_tokens >= summary["params"]["prefix_tokens"]).all()
    assert (fresh.cached_tokens == 0).all()


def test_07_serving_fault_table_records_every_case(run_07_serving):
    _, _, df, summary = run_07_serving
    faults = df[df.experiment == "faults"].set_index("case")
    assert len(faults) == 6
    assert faults.loc["malformed JSON", "status"] == 400
    assert faults.loc["invalid parameter (max_tokens = 0)", "status"] == 400
    died = faults.loc["request after the server died"]
    assert died.status == 0 and not died.server_alive and "Connect" in died.outcome
    alive = faults.drop("request after the server died")
    assert alive.next_request_ok.all() and alive.server_alive.all()
    burst = faults.loc[f"burst of {max(summary['params']['concurrencies'])} new connections at once"]
    assert " served" in burst.outcome
    assert (
        faults.value < 1e3 * summary["params"]["request_timeout_s"]
    ).all()  # nothing waited out a deadline


def test_07_serving_findings_give_the_server_claims_verdicts(run_07_serving):
    _, run_dir, _, summary = run_07_serving
    found = {f["id"]: f for f in summary["findings"]}
    claims = {c["id"] for c in published.claims("07_serving")}
    assert claims <= set(found)
    verdicts = {"holds", "does not hold", "inconclusive"}
    for cid in claims:
        assert (
            found[cid]["verdict"] in verdicts
            and found[cid]["published"]["seed"] == "004_7f79c0412eb0f7cb.txt"
        )
    assert found["latency_target_break"]["headline"]
    for name in ["frontier", "throughput", "overhead", "prompt_reuse", "open_loop"]:
        assert (run_dir / "figures" / f"{name}.svg").exists()
