"""Labels and number formats every investigation's charts and findings share: labels read from the stored rows
themselves, and one way to write a measured value with its interval."""

from __future__ import annotations

import math

import pandas as pd

from mlx_workbook.core.verdicts import Interval

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


# --- numbers with their intervals ----------------------------------------------------------------------------


def interval_text(x, unit: str = "", scale: float = 1.0, fmt: str = ".3g") -> str:
    """'12.3 tok/s [11.9, 12.6]': a value and its interval (an Interval, or a Stats' median), times `scale`,
    the unit right after the value; 'n/a' when nothing was measured (None)."""
    if x is None:
        return "n/a"
    i = (x if isinstance(x, Interval) else Interval.of(x)).scaled(scale)
    return f"{i.value:{fmt}}{unit} [{i.low:{fmt}}, {i.high:{fmt}}]"


def change_text(x, fmt: str = "+.1f") -> str:
    """A signed % change with its interval (Interval.change_pct of a ratio): '+4.0% [+1.0, +7.0]'."""
    return interval_text(x, "%", fmt=fmt)


def share_text(x, fmt: str = ".1f") -> str:
    """A share or a variation in % with its interval: '12.5% [11.0, 14.0]'."""
    return interval_text(x, "%", fmt=fmt)


def span(low: float, high: float, sep: str = "-") -> str:
    """A published figure or range as the write-ups give it: '4' or '4-5' (or '4 to 5' with sep=' to ')."""
    return f"{low:g}" if low == high else f"{low:g}{sep}{high:g}"


def span_pct(low: float, high: float) -> str:
    """The least and most of several fractions, in %: '95% on every one' or '90% to 100%'."""
    return f"{low:.0%} on every one" if low == high else f"{low:.0%} to {high:.0%}"


# --- paired-block comparisons (core.blocks) ------------------------------------------------------------------

STOP_REASONS = {"decided": "decided", "budget": "time budget spent", "max_blocks": "block limit reached"}


def stop_text(stop_reason: str, extended: bool = False) -> str:
    """Why a comparison stopped, saying where its budget was extended (core.blocks.promising)."""
    text = STOP_REASONS.get(stop_reason, stop_reason)
    return text + (" (after an extension: its blocks projected a decision)" if extended else "")


def undecided_text(resolvable_pct: float, projected_blocks: float = float("nan"), blocks: int = 0) -> str:
    """What an undecided comparison could resolve and, if known, about how many blocks a decision would take."""
    text = f"the smallest effect these blocks could resolve is ±{resolvable_pct:.2g}%"
    if math.isfinite(projected_blocks) and projected_blocks > blocks:
        text += f"; a decision would take about {projected_blocks:.0f} blocks at this spread"
    elif math.isinf(projected_blocks):
        text += "; the estimate sits on the band's edge, so no number of blocks is sure to decide it"
    return text


def blocks_text(row) -> str:
    """How a stored comparison outcome (a core.blocks.stop_rows row) was reached: its n, method and stop reason,
    and where it stopped undecided, the smallest effect its blocks could have resolved (the half-width) and the
    blocks a decision would take (rows stored before the extension have neither column: NaN, False)."""
    out = f"n={int(row.n_blocks)} paired blocks, {row.method} at {row.confidence:.1%}, stopped: " + stop_text(
        row.stop_reason, stored_flag(getattr(row, "extended", False))
    )
    if not bool(row.decided):
        out += "; " + undecided_text(
            row.resolvable_pct, float(getattr(row, "projected_blocks", float("nan"))), int(row.n_blocks)
        )
    return out


def stored_flag(value) -> bool:
    """A stored boolean column's value; missing (None, or NaN in a row stored before the column): False."""
    return bool(value) if pd.notna(value) else False
