"""Charts from stored data: each function takes a DataFrame and returns a matplotlib Figure (object API)."""

from __future__ import annotations

import textwrap

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def new_figure(width: float = 7.0, height: float = 4.0) -> tuple[Figure, matplotlib.axes.Axes]:
    # Figure() directly (not pyplot): no global state, and the notebook's inline backend still displays it.
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def summary_table(df: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Median and its interval of `value` per group (measure.summarize: order statistics; `method` says which
    and its coverage where n is too small for 95%), the shape every chart below draws."""
    from mlx_workbook.core.measure import summarize

    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):  # keep rows whose group column is empty
        s = summarize(group[value])
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, key)),
                "median": s.median,
                "low": s.low,
                "high": s.high,
                "cv": s.cv,
                "n": s.n,
                "method": s.method,
            }
        )
    return pd.DataFrame(rows)


def lines_with_intervals(
    table: pd.DataFrame,
    *,
    x: str,
    series: str | None,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    ceilings: dict[str, float] | None = None,
) -> Figure:
    """Median lines with shaded 95% intervals, one line per `series`; ceilings drawn as dashed lines."""
    fig, ax = new_figure()
    groups = table.groupby(series, sort=False) if series else [("", table)]
    for i, (name, g) in enumerate(groups):
        g = g.sort_values(x)
        color = PALETTE[i % len(PALETTE)]
        ax.plot(g[x], g["median"], marker="o", ms=3, color=color, label=str(name) if series else None)
        ax.fill_between(g[x], g["low"], g["high"], color=color, alpha=0.2, linewidth=0)
    for j, (label, value) in enumerate((ceilings or {}).items()):
        ax.axhline(value, ls="--", lw=1, color="#444444" if j == 0 else "#999999", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if series or ceilings:
        ax.legend(fontsize=8)
    return fig


def bars_with_intervals(
    table: pd.DataFrame,
    *,
    category: str,
    title: str,
    ylabel: str,
    group: str | None = None,
    ceilings: dict[str, float] | None = None,
    horizontal: bool = False,
) -> Figure:
    """Bars of the median with 95% interval whiskers; optional second grouping as side-by-side bars."""
    fig, ax = new_figure(7.5, max(3.5, 0.35 * len(table)) if horizontal else 4.0)
    cats = list(dict.fromkeys(table[category]))
    groups = list(dict.fromkeys(table[group])) if group else [None]
    width = 0.8 / len(groups)
    for i, gname in enumerate(groups):
        sub = table if gname is None else table[table[group] == gname]
        sub = sub.set_index(category).reindex(cats)
        pos = np.arange(len(cats)) + (i - (len(groups) - 1) / 2) * width
        err = np.vstack([sub["median"] - sub["low"], sub["high"] - sub["median"]])
        bar = ax.barh if horizontal else ax.bar
        kwargs = {"xerr": err} if horizontal else {"yerr": err}
        bar(
            pos,
            sub["median"],
            width * 0.95,
            color=PALETTE[i % len(PALETTE)],
            capsize=2,
            label=str(gname) if gname is not None else None,
            **kwargs,
        )
    ticks = ax.set_yticks if horizontal else ax.set_xticks
    ticks(
        np.arange(len(cats)),
        [str(c) for c in cats],
        **({} if horizontal else {"rotation": 30, "ha": "right"}),
    )
    for j, (label, value) in enumerate((ceilings or {}).items()):
        (ax.axvline if horizontal else ax.axhline)(
            value, ls="--", lw=1, color="#444444" if j == 0 else "#999999", label=label
        )
    ax.set_title(title)
    (ax.set_xlabel if horizontal else ax.set_ylabel)(ylabel)
    ax.grid(alpha=0.3, axis="x" if horizontal else "y")
    if group or ceilings:
        ax.legend(fontsize=8)
    return fig


def stacked_bars(
    table: pd.DataFrame,
    *,
    category: str,
    parts: list[str],
    title: str,
    ylabel: str,
    horizontal: bool = False,
) -> Figure:
    """Stacked bars: one bar per `category`, one segment per column in `parts`. Horizontal bars keep long
    category names readable (one per line, none rotated); the legend sits below the axes, off the bars."""
    size = (7.5, max(3.0, 0.42 * len(table) + 1.6)) if horizontal else (7.0, 4.0)
    fig, ax = new_figure(*size)
    names = table[category].astype(str)
    if horizontal:  # long names on two lines rather than a plot squeezed to the right
        names = names.map(lambda n: textwrap.fill(n, 34))
    bottom = np.zeros(len(table))
    for i, part in enumerate(parts):
        values = table[part].to_numpy(dtype=float)
        color = PALETTE[i % len(PALETTE)]
        if horizontal:
            ax.barh(names, values, left=bottom, color=color, label=part)
        else:
            ax.bar(names, values, bottom=bottom, color=color, label=part)
        bottom += values
    if horizontal:
        ax.invert_yaxis()  # first row on top, as in the table beside it
        ax.set_xlim(0, max(float(np.nanmax(bottom)), 0) * 1.08 or 1)  # room past the longest bar
        ax.set(title=title, xlabel=ylabel)
        ax.grid(alpha=0.3, axis="x")
        fig.legend(fontsize=8, ncols=min(len(parts), 3), loc="outside lower center")
    else:
        ax.set(title=title, ylabel=ylabel)
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    return fig


def legend_below(fig: Figure, ncols: int = 2) -> Figure:
    """Move the first axes' legend below the axes, where it cannot cover a bar; returns the figure."""
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, fontsize=8, ncols=ncols, loc="outside lower center")
    return fig


def svg_text(fig: Figure) -> str:
    """The figure as SVG text that depends only on what is drawn: fixed element ids, no date, so a page
    rebuilt from the same data is byte-identical (and a committed file stays untouched)."""
    import io

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "mlx-workbook"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def show_figures_inline(*formats: str) -> None:
    """Let IPython display Figure objects made without pyplot (every chart here): without a formatter for the
    Figure type, display(fig) shows only '<Figure size ...>' and the HTML report has no chart in it."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # no IPython: scripts save figures to files instead
        return
    if get_ipython() is not None:
        set_matplotlib_formats(*(formats or ("svg",)))


show_figures_inline()


def show_tables_whole() -> None:
    """In a notebook, tables show every row up to a few hundred and every cell's full text: a page for
    readers must not cut a statement short with '...' or hide 73 of 83 rows."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is not None:
        pd.set_option("display.max_colwidth", None)
        pd.set_option("display.max_rows", 300)


show_tables_whole()


def effects_vs_published(
    table: pd.DataFrame, *, title: str, xlabel: str, band_label: str = "published (original hardware)"
) -> Figure:
    """One row per claim: the measured effect (median, 95% interval whiskers) as a bar, and the published
    figure or range beside it as a hatched grey band (a point claim is a thin band; `band_label` names it).
    Columns: `claim`, `median`, `low`, `high`, `pub_low`, `pub_high` (NaN where nothing was published). The
    legend sits below the axes, where it hides no row."""
    fig, ax = new_figure(7.5, max(3.0, 0.45 * len(table) + 1))
    y = np.arange(len(table))
    err = np.vstack([table["median"] - table["low"], table["high"] - table["median"]])
    ax.barh(y, table["median"], 0.5, xerr=err, color=PALETTE[0], capsize=2, label="measured (this device)")
    labelled = False
    for i, (lo, hi) in enumerate(zip(table["pub_low"], table["pub_high"])):
        if np.isfinite(lo) and np.isfinite(hi):
            pad = 0.02 * max(1.0, abs(hi)) if lo == hi else 0
            ax.fill_betweenx(
                [i - 0.35, i + 0.35],
                lo - pad,
                hi + pad,
                color="#888888",
                alpha=0.45,
                hatch="//",
                linewidth=0,
                label=None if labelled else band_label,
            )
            labelled = True
    ax.axvline(0, color="#444444", lw=0.8)
    ax.set_yticks(y, table["claim"].astype(str))
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    ax.grid(alpha=0.3, axis="x")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def add_curve(
    fig: Figure, x, y, label: str, *, style: str = "--", color: str = "#444444", marker: str | None = None
) -> Figure:
    """Add a reference curve (a roofline, published points) to the first axes of a figure; returns the figure."""
    ax = fig.axes[0]
    ax.plot(list(x), list(y), ls=style, color=color, marker=marker, lw=1, label=label)
    ax.legend(fontsize=8)
    return fig


def host_speed(df: pd.DataFrame, *, title: str = "Host speed per block") -> Figure:
    """The host-speed probe of every block in run order, one colour per experiment, with the run's median and
    the stability verdict in the title (core.hoststate): where the host slowed, absolute figures moved with it."""
    from mlx_workbook.core import hoststate

    rows = hoststate.probe_rows(df)
    fig, ax = new_figure(7.0, 3.0)
    if rows.empty:
        ax.set(title=f"{title}: no host probes recorded")
        return fig
    rows = rows.reset_index(drop=True)
    for i, (name, g) in enumerate(rows.groupby("experiment", sort=False)):
        ax.plot(
            g.index, g["value"], marker="o", ms=2, lw=0.8, color=PALETTE[i % len(PALETTE)], label=str(name)
        )
    s = hoststate.stability(rows["value"])
    ax.axhline(s.median_ms, ls="--", lw=1, color="#444444", label=f"median {s.median_ms:.2f} ms")
    verdict = "UNSTABLE" if s.unstable else "stable"
    ax.set(
        title=f"{title}: {verdict} (CV {s.cv:.0%}, max/min {s.max_over_min:.2f}x, n={s.n})",
        xlabel="block, in run order",
        ylabel="probe time (ms, lower = faster host)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
