"""Results: one folder per notebook run, a long-format measurements table, and summary.json.

Each trial is appended to a journal (`measurements.jsonl`, one JSON row per line, flushed per trial) as soon as
it finishes, so a notebook that crashes halfway leaves every finished trial on disk; when the run ends (or the
runner settles a failed run) the journal becomes `measurements.parquet`. `summary.json` is written when the
run starts (status "running") and again at the end (status "ok", findings, duration); the runner marks a
run that never reached the end as "failed".
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlx_workbook import REPORTS_DIR
from mlx_workbook.core import env as envmod

MEASUREMENTS = "measurements.parquet"
JOURNAL = "measurements.jsonl"
SUMMARY = "summary.json"
FIGURES = "figures"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(notebook: str, environment: envmod.Environment) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}_{notebook}_{environment.device_slug}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass
class Finding:
    """One conclusion of a notebook, computed from its data."""

    id: str  # stable key, e.g. "kv_copy_slope"; claim findings use the claim id from data/published
    statement: str  # the sentence a reader sees, built from the numbers
    verdict: str = "measured"  # holds / does not hold / inconclusive / does not apply / measured
    measured: dict | None = None  # {"value", "low", "high", "unit"}
    published: dict | None = None  # {"value" or "low"/"high", "unit", "hardware", "software", "seed"}
    section: str = ""  # anchor of the notebook section behind it
    headline: bool = False

    def as_dict(self) -> dict:
        return _jsonable(self.__dict__)


@dataclass
class Run:
    notebook: str
    params: dict
    run_dir: Path
    run_id: str
    method_version: int
    environment: envmod.Environment
    started: float = field(default_factory=time.time)
    findings: list[Finding] = field(default_factory=list)
    _rows: list[dict] = field(default_factory=list)

    # -- writing ------------------------------------------------------------------------------------------

    def _base(self) -> dict:
        e = self.environment
        return {
            "run_id": self.run_id,
            "notebook": self.notebook,
            "method_version": self.method_version,
            "backend": e.backend,
            "device": e.device,
            "mlx": e.mlx,
            "mlx_lm": e.mlx_lm,
        }

    def record(
        self, experiment: str, metric: str, value: float, unit: str, *, trial: int = 0, **fields: Any
    ) -> None:
        """Append one measurement row and flush the table to disk."""
        self.record_many(experiment, [dict(metric=metric, value=value, unit=unit, trial=trial, **fields)])

    def record_many(self, experiment: str, rows: Iterable[dict]) -> None:
        stamp = _now()
        new = []
        for row in rows:
            full = {**self._base(), "experiment": experiment, "timestamp": stamp, **_jsonable(row)}
            full["value"] = float(full["value"])
            new.append(full)
        self._rows.extend(new)
        # Appending is O(rows added): a long sweep does not rewrite its whole table per trial.
        with open(self.run_dir / JOURNAL, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in new)
            f.flush()

    def add_finding(self, finding: Finding) -> Finding:
        self.findings = [f for f in self.findings if f.id != finding.id] + [finding]
        self.write_summary("running")
        return finding

    def save_figure(self, fig, name: str) -> Path:
        """Save a figure as SVG (for the HTML) and PNG (for quick looks) into the run's figures/ folder."""
        folder = self.run_dir / FIGURES
        folder.mkdir(exist_ok=True)
        fig.savefig(folder / f"{name}.svg", bbox_inches="tight")
        fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        return folder / f"{name}.svg"

    def write_summary(self, status: str, error: str | None = None) -> None:
        summary = {
            "run_id": self.run_id,
            "notebook": self.notebook,
            "status": status,
            "started": datetime.fromtimestamp(self.started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round(time.time() - self.started, 2),
            "method_version": self.method_version,
            "environment": self.environment.as_dict(),
            "params": _jsonable(self.params),
            "findings": [f.as_dict() for f in self.findings],
            "rows": len(self._rows),
            "error": error,
        }
        tmp = self.run_dir / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, self.run_dir / SUMMARY)

    def finish(self) -> None:
        consolidate(self.run_dir)
        self.write_summary("ok")

    @property
    def measurements(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows)


def start_run(
    notebook: str, params: dict, *, run_dir: str | Path | None = None, method_version: int = 1
) -> Run:
    """Open a run folder (the runner passes one; interactive use gets reports/runs/<run id>/)."""
    environment = envmod.capture()
    if run_dir:
        run_dir = Path(run_dir)
        run_id = run_dir.name
    else:
        run_id = new_run_id(notebook, environment)
        run_dir = REPORTS_DIR / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(
        notebook=notebook,
        params=dict(params),
        run_dir=run_dir,
        run_id=run_id,
        method_version=method_version,
        environment=environment,
    )
    run.write_summary("running")
    return run


# --- reading -----------------------------------------------------------------------------------------------


def read_summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY).read_text())


def _read_journal(path: Path) -> pd.DataFrame:
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash: every complete line still counts
            continue
    return pd.DataFrame(rows)


def consolidate(run_dir: str | Path) -> Path | None:
    """Turn the journal into measurements.parquet (atomically) and remove it; a no-op without a journal."""
    run_dir = Path(run_dir)
    journal = run_dir / JOURNAL
    if not journal.exists():
        return None
    frame = _read_journal(journal)
    target = run_dir / MEASUREMENTS
    if target.exists():  # a run resumed into the same folder keeps its earlier rows
        frame = pd.concat([pd.read_parquet(target), frame], ignore_index=True)
    tmp = target.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    journal.unlink()
    return target


def read_measurements(run_dir: str | Path) -> pd.DataFrame:
    """A run's rows: the parquet table, plus any journal rows not yet consolidated (a running or crashed run)."""
    run_dir = Path(run_dir)
    frames = [pd.read_parquet(run_dir / MEASUREMENTS)] if (run_dir / MEASUREMENTS).exists() else []
    if (run_dir / JOURNAL).exists():
        frames.append(_read_journal(run_dir / JOURNAL))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def find_runs(root: str | Path = REPORTS_DIR, notebook: str | None = None) -> list[Path]:
    """Run folders under `root` (any depth), newest first."""
    dirs = [p.parent for p in Path(root).rglob(SUMMARY)]
    if notebook:
        dirs = [d for d in dirs if read_summary(d).get("notebook") == notebook]
    return sorted(dirs, key=lambda d: read_summary(d).get("started", ""), reverse=True)


def load(
    root: str | Path = REPORTS_DIR, notebook: str | None = None, status: str | None = "ok"
) -> pd.DataFrame:
    """Every measurement row of every matching run under `root`, in one table."""
    frames = []
    for d in find_runs(root, notebook):
        if status and read_summary(d).get("status") != status:
            continue
        frame = read_measurements(d)
        if not frame.empty:
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latest_run(
    notebook: str, *, device: str | None = None, root: str | Path = REPORTS_DIR, status: str = "ok"
) -> Path | None:
    """The newest finished run of a notebook (on a device, if given)."""
    for d in find_runs(root, notebook):
        s = read_summary(d)
        if s.get("status") == status and (device is None or s["environment"]["device"] == device):
            return d
    return None
