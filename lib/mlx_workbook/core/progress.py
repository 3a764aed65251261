"""Progress of long measuring loops: one short line per step saying what runs and how far along it is.

    for trial in progress.steps(range(repeats), "llama-3-8b bf16: round"):   # "▸ llama-3-8b bf16: round 3/7"

The line goes to stderr. In a notebook (JupyterLab, or papermill under the runner) it starts with a carriage
return, so the output shows one line that updates in place; the runner echoes these lines to the terminal,
and the HTML page leaves them out (it shows results, not progress).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

MARK = "\u25b8 "  # what marks a progress line for the runner's echo and the page renderer


def _in_notebook() -> bool:
    return type(sys.stderr).__module__.startswith("ipykernel")


def step(what: str, done: int, total: int | None = None, started: float | None = None) -> None:
    """Say that step `done` (1-based) of `total` of `what` is running now."""
    count = f"{done}/{total}" if total else str(done)
    elapsed = f" ({time.perf_counter() - started:.0f} s)" if started is not None and done > 1 else ""
    line = f"{MARK}{what} {count}{elapsed}"
    if _in_notebook():
        sys.stderr.write("\r" + line + ("\n" if total and done == total else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def steps(items: Iterable, what: str) -> Iterator:
    """Yield the items, announcing each one as a step of `what`."""
    items = list(items)
    started = time.perf_counter()
    for i, item in enumerate(items, 1):
        step(what, i, len(items), started)
        yield item
