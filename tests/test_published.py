import os
from pathlib import Path

import pytest

from mlx_workbook import ROOT
from mlx_workbook.core import published

NOTEBOOKS = {"01_kv_cache", "02_decode_loop", "03_sdpa_cliff", "04_bandwidth", "06_distributed", "07_serving"}


def test_every_source_has_claims_with_unique_ids_and_known_notebooks():
    srcs = published.sources()
    assert sum(1 for s in srcs.values() if s.get("seed")) == 5  # the five seed write-ups
    # the rest cite a public source: a URL, or a list of sources with their commits
    assert all(
        s.get("seed") or s.get("url", "").startswith("https://") or s.get("sources") for s in srcs.values()
    )
    ids = [c["id"] for c in published.claims()]
    assert len(ids) == len(set(ids))
    for c in published.claims():
        assert c["notebook"] in NOTEBOOKS, c["id"]
        assert c["hardware"] and (c["seed"] or "").endswith(".txt") or srcs[c["source"]].get("url")
        assert c["claim"] and c["quote"] and c.get("kind") in ("measured", "expectation"), c["id"]


def seeds_folder() -> Path:
    """The seed write-ups: ../shared/seeds/ beside the repository, or MLX_WORKBOOK_SEEDS (e.g. for a worktree)."""
    return Path(os.environ.get("MLX_WORKBOOK_SEEDS") or ROOT.parent / "shared" / "seeds")


def test_quotes_are_verbatim_from_the_seeds():
    seeds = seeds_folder()
    if not seeds.is_dir():
        message = f"the seed write-ups are not at {seeds} (set MLX_WORKBOOK_SEEDS to their folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + ": on CI the quotes must be checked, not skipped")
        pytest.skip(message)
    for c in published.claims():
        if not c["seed"]:  # a public source by URL (a specification, a paper, a post), not a stored seed
            continue
        text = (seeds / c["seed"]).read_text()
        assert c["quote"] in text, c["id"]


def test_tables_load_as_frames():
    df = published.table("000_kv_cache_gap", "per_token_ms")
    assert list(df.tokens) == [10, 25, 50, 100]
    assert df.ms_per_token.between(19, 21).all()
    ref = published.reference("kv_copy_no_impact")
    assert ref["seed"] == "000_8106547a6e1af99a.txt"


def test_missing_seeds_fail_on_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("MLX_WORKBOOK_SEEDS", str(tmp_path / "absent"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="on CI"):
        test_quotes_are_verbatim_from_the_seeds()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        test_quotes_are_verbatim_from_the_seeds()


def test_reference_definitions_cite_their_source_and_make_no_claims():
    vllm = published.sources()["vllm_serving_metrics"]
    assert vllm["seed"] is None and vllm["claims"] == []
    assert all(s.get("commit") or s.get("url") for s in vllm["sources"])
    metrics = published.table("vllm_serving_metrics", "metrics")
    assert {"TTFT", "TPOT", "ITL", "E2EL", "request_goodput"} <= set(metrics.metric)
