"""Labels every investigation's charts and findings share, read from the stored rows themselves."""

from __future__ import annotations

import pandas as pd

SHORT_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def where(df: pd.DataFrame) -> str:
    """The device and software the rows were measured on, e.g. 'NVIDIA H200 (cuda, mlx 0.32.4)'."""
    row = df.iloc[0]
    return f"{row['device']} ({row['backend']}, mlx {row['mlx']})"


def model_label(rows: pd.DataFrame) -> str:
    """'<preset> <n>-bit' or '<preset> <dtype>' (as LoadedModel.label), from one model's rows."""
    row = rows.iloc[0]
    bits = row.get("bits")
    if pd.notna(bits) and bits:
        return f"{row['model']} {int(bits)}-bit"
    return f"{row['model']} {SHORT_DTYPE.get(row['dtype'], row['dtype'])}"


def slug(name: str) -> str:
    """A preset name usable in finding ids and file names."""
    return "".join(c if c.isalnum() else "_" for c in name)
