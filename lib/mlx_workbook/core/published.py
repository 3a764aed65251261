"""The original investigations' published numbers (data/published/*.yaml): reference data, never measurements."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import yaml

from mlx_workbook import DATA_DIR

PUBLISHED_DIR = DATA_DIR / "published"


@lru_cache(maxsize=1)
def sources() -> dict[str, dict]:
    """Every write-up, keyed by its file stem (e.g. '000_kv_cache_gap')."""
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(PUBLISHED_DIR.glob("*.yaml"))}


def claims(notebook: str | None = None) -> list[dict]:
    """Claims with their source's hardware, software and seed attached."""
    out = []
    for stem, src in sources().items():
        for c in src.get("claims", []):
            if notebook is None or c.get("notebook") == notebook:
                out.append(
                    {
                        **c,
                        "source": stem,
                        "seed": src.get("seed"),
                        "hardware": src.get("hardware"),
                        "software": src.get("software"),
                        "model_published": src.get("model"),
                    }
                )
    return out


def claim(claim_id: str) -> dict:
    for c in claims():
        if c["id"] == claim_id:
            return c
    raise KeyError(f"no published claim {claim_id!r}")


def figure_range(claim_id: str) -> tuple[float, float]:
    """(low, high) of a claim's published figure; a single value gives (value, value); no number gives NaN."""
    c = claim(claim_id)
    lo = c["published_low"] if c.get("published_low") is not None else c.get("published")
    hi = c["published_high"] if c.get("published_high") is not None else c.get("published")
    return (float("nan") if lo is None else float(lo)), (float("nan") if hi is None else float(hi))


def table(source: str, name: str) -> pd.DataFrame:
    """A published table as a DataFrame, e.g. table('000_kv_cache_gap', 'per_token_ms')."""
    return pd.DataFrame(sources()[source]["tables"][name]["rows"])


def reference(claim_id: str) -> dict:
    """The dict a Finding stores as `published`: figure, range, unit, hardware, software, seed."""
    c = claim(claim_id)
    return {
        "value": c.get("published"),
        "low": c.get("published_low"),
        "high": c.get("published_high"),
        "unit": c.get("unit"),
        "claim": c.get("claim"),
        "hardware": c.get("hardware"),
        "software": c.get("software"),
        "seed": c.get("seed"),
        "kind": c.get("kind"),
    }
