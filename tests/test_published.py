import pytest

from mlx_workbook.core import published

NOTEBOOKS = {"01_kv_cache", "02_decode_loop", "03_sdpa_cliff", "04_bandwidth", "06_distributed"}


def test_every_source_has_claims_with_unique_ids_and_known_notebooks():
    srcs = published.sources()
    assert sum(1 for s in srcs.values() if s.get("seed")) == 5  # the five seed write-ups
    assert all(s.get("seed") or s.get("url", "").startswith("https://") for s in srcs.values())
    ids = [c["id"] for c in published.claims()]
    assert len(ids) == len(set(ids))
    for c in published.claims():
        assert c["notebook"] in NOTEBOOKS, c["id"]
        assert c["hardware"] and (c["seed"] or "").endswith(".txt") or srcs[c["source"]].get("url")
        assert c["claim"] and c["quote"] and c.get("kind") in ("measured", "expectation"), c["id"]


def test_quotes_are_verbatim_from_the_seeds():
    seeds = published.DATA_DIR.parent.parent / "shared" / "seeds"
    if not seeds.exists():
        pytest.skip("the seed write-ups are not beside this checkout")
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
