"""Results: one folder per notebook run, a long-format measurements table, and summary.json.

Each trial is appended to a journal (`measurements.jsonl`, one JSON row per line, flushed per trial) as soon as
it finishes, so a notebook that crashes halfway leaves every finished trial on disk; when the run ends (or the
runner settles a failed run) the journal becomes `measurements.parquet`. `summary.json` is written when the
run starts (status "running") and again at the end (status "ok", findings, duration); the runner marks a
run that never reached the end as "failed" (or "interrupted" after Ctrl-C). `RunSummary` is that file as a
typed record: every reader (index, findings page, compare, the bandwidth ceiling) goes through it, and a
summary that cannot be read is skipped and named once, never a crash.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlx_workbook import REPORTS_DIR
from mlx_workbook.core import env as envmod
from mlx_workbook.core import parameters, published

MEASUREMENTS = "measurements.parquet"
JOURNAL = "measurements.jsonl"
SUMMARY = "summary.json"
FIGURES = "figures"
TABLES = "tables"  # lists a run concludes (03: confirmed cliffs) as CSV, for make compare


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _stamp(time.time())


def new_run_id(notebook: str, environment: envmod.Environment) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}_{notebook}_{environment.device_slug}"


def new_run_dir(runs: Path, notebook: str, environment: envmod.Environment) -> Path:
    """Create runs/<run id>/ and return it; a second run started in the same second gets <run id>-2, -3, ..."""
    base = new_run_id(notebook, environment)
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = runs / (base if n == 1 else f"{base}-{n}")
        try:
            candidate.mkdir()  # atomic: of two processes racing for one name, exactly one gets it
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder for {base} under {runs}")


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

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{"id": "?", "statement": "", **known})

    @classmethod
    def for_claim(
        cls,
        claim_id: str,
        verdict: str,
        statement: str,
        measured: dict | None = None,
        section: str = "",
        **kw,
    ) -> Finding:
        """The finding on a published claim: the claim's id, and its published figure from data/published."""
        return cls(
            id=claim_id,
            statement=statement,
            verdict=verdict,
            measured=measured,
            published=published.reference(claim_id),
            section=section,
            **kw,
        )


class SummaryError(ValueError):
    """A summary.json that cannot be read as a run record (torn, not JSON, not an object)."""


# Statuses a summary.json holds; "abandoned" is never stored: it is a "running" run whose process is gone.
RUNNING, OK, FAILED, INTERRUPTED, ABANDONED = "running", "ok", "failed", "interrupted", "abandoned"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class RunSummary:
    """summary.json as a typed record: what ran, where, with which parameters, how it ended, what it found."""

    run_id: str
    notebook: str
    status: str = RUNNING  # running / ok / failed / interrupted (see `state` for abandoned runs)
    started: str = ""  # UTC, ISO 8601
    finished: str | None = None  # UTC, when the run settled
    duration_s: float | None = None
    method_version: int = 1  # bumped when a notebook changes what it measures
    environment: dict = field(default_factory=dict)  # core.env.Environment.as_dict()
    params: dict = field(default_factory=dict)  # every declared parameter's value, profile included
    overrides: dict = field(default_factory=dict)  # parameters set on the command line beyond the profile
    findings: list[Finding] = field(default_factory=list)
    rows: int = 0  # measurement rows when the summary was written
    error: str | None = None
    error_anchor: str | None = None  # the id, in the run's HTML page, of the cell that failed
    pid: int | None = None  # the process that ran the notebook (its kernel)
    host: str = ""
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as read
    path: Path | None = field(default=None, compare=False)  # the run folder it was read from (not stored)

    # -- derived ------------------------------------------------------------------------------------------

    @property
    def profile(self) -> str:
        return str(self.params.get("profile", "?"))

    @property
    def device(self) -> str:
        return str(self.environment.get("device", "?"))

    @property
    def backend(self) -> str:
        return str(self.environment.get("backend", "?"))

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def state(self) -> str:
        """The status, except that a run still "running" whose process is gone on this host is "abandoned"."""
        if self.status != RUNNING or not self.pid or self.host != socket.gethostname():
            return self.status
        return RUNNING if _process_alive(self.pid) else ABANDONED

    @property
    def headlines(self) -> list[Finding]:
        """The findings marked as headlines, else the first one."""
        return [f for f in self.findings if f.headline] or self.findings[:1]

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    # -- reading and writing ------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data, path: Path | None = None) -> RunSummary:
        if not isinstance(data, dict):
            raise SummaryError(f"holds a JSON {type(data).__name__}, not an object")
        missing = [k for k in ("run_id", "notebook") if not data.get(k)]
        if missing:
            raise SummaryError(f"has no {' or '.join(missing)}")
        fields = {k for k in cls.__dataclass_fields__ if k not in ("extra", "path")}
        known = {k: v for k, v in data.items() if k in fields}
        known["findings"] = [Finding.from_dict(f) for f in data.get("findings") or [] if isinstance(f, dict)]
        for key in ("environment", "params", "overrides"):
            known[key] = known.get(key) if isinstance(known.get(key), dict) else {}
        extra = {k: v for k, v in data.items() if k not in fields}
        return cls(**known, extra=extra, path=path)

    def as_dict(self) -> dict:
        out = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("extra", "path", "findings")
        }
        out["findings"] = [f.as_dict() for f in self.findings]
        return _jsonable({**self.extra, **out})

    @classmethod
    def read(cls, path: str | Path) -> RunSummary:
        """Read a run folder's summary.json (or the file itself); SummaryError names the file and the reason."""
        path = Path(path)
        folder = path.parent if path.name == SUMMARY else path
        file = folder / SUMMARY
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise SummaryError(f"{file}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SummaryError(f"{file}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data, path=folder)
        except (SummaryError, TypeError) as exc:
            raise SummaryError(f"{file}: {exc}") from None

    def write_atomic(self, path: str | Path | None = None) -> Path:
        """Write summary.json into the run folder (default: the one it was read from) in one rename, so a reader
        never sees half a file."""
        folder = Path(path or self.path)
        folder = folder.parent if folder.name == SUMMARY else folder
        target = folder / SUMMARY
        tmp = folder / f"{SUMMARY}.{os.getpid()}.tmp"  # per process: the runner and a kernel never share one
        tmp.write_text(json.dumps(self.as_dict(), indent=2))
        os.replace(tmp, target)
        self.path = folder
        return target


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

    def save_table(self, table: pd.DataFrame, name: str, key: list[str] | None = None) -> Path:
        """Save a concluded list (03's confirmed cliffs) as tables/<name>.csv, so that `make compare` can
        set two runs' lists side by side; `key` names the columns that identify a row (tables/<name>.key)."""
        folder = self.run_dir / TABLES
        folder.mkdir(exist_ok=True)
        table.to_csv(folder / f"{name}.csv", index=False)
        if key:
            missing = [c for c in key if c not in table.columns]
            if missing and len(table):
                raise ValueError(f"key columns {missing} are not in the table {name!r}")
            (folder / f"{name}.key").write_text(" ".join(key) + "\n")
        return folder / f"{name}.csv"

    def summary(self, status: str, error: str | None = None) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            notebook=self.notebook,
            status=status,
            started=_stamp(self.started),
            finished=None if status == RUNNING else _now(),
            duration_s=round(time.time() - self.started, 2),
            method_version=self.method_version,
            environment=self.environment.as_dict(),
            params=_jsonable(self.params),
            findings=list(self.findings),
            rows=len(self._rows),
            error=error,
            pid=os.getpid(),
            host=socket.gethostname(),
        )

    def write_summary(self, status: str, error: str | None = None) -> None:
        self.summary(status, error).write_atomic(self.run_dir)

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
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = new_run_dir(REPORTS_DIR / "runs", notebook, environment)
    run = Run(
        notebook=notebook,
        params=dict(params),
        run_dir=run_dir,
        run_id=run_dir.name,
        method_version=method_version,
        environment=environment,
    )
    run.write_summary(RUNNING)
    return run


def start(notebook: str, namespace: dict, *, method_version: int = 1) -> Run:
    """Start a run from the notebook's declared parameters: `run = results.start("02_decode_loop", globals())`.

    Every parameter its parameters cell declares is recorded with its value in `namespace` (after papermill's
    injected cell, so the values this run really used); `run_dir` comes from there too.
    """
    return start_run(
        notebook,
        parameters.collect(notebook, namespace),
        run_dir=namespace.get("run_dir") or None,
        method_version=method_version,
    )


# --- reading -----------------------------------------------------------------------------------------------


def read_summary(run_dir: str | Path) -> dict:
    """summary.json as a plain dict (RunSummary.read is the typed reader)."""
    return RunSummary.read(run_dir).as_dict()


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


_reported: set[str] = set()  # unreadable summaries already named in this process


def _skip(problem: str) -> None:
    """Name an unreadable summary once per process, however many readers meet it."""
    if problem not in _reported:
        _reported.add(problem)
        print(f"skipping a run: {problem}", file=sys.stderr)


def find_runs(
    root: str | Path = REPORTS_DIR, notebook: str | None = None, *, skipped: list[str] | None = None
) -> list[RunSummary]:
    """Every readable run under `root` (any depth), newest first, each summary read once.

    A summary that cannot be read is left out and named once on stderr; `skipped` collects those reasons.
    """
    runs = []
    for file in sorted(Path(root).rglob(SUMMARY)):
        try:
            summary = RunSummary.read(file)
        except SummaryError as exc:
            _skip(str(exc))
            if skipped is not None:
                skipped.append(str(exc))
            continue
        if notebook is None or summary.notebook == notebook:
            runs.append(summary)
    return sorted(runs, key=lambda s: s.started, reverse=True)


def load(
    root: str | Path = REPORTS_DIR, notebook: str | None = None, status: str | None = OK
) -> pd.DataFrame:
    """Every measurement row of every matching run under `root`, in one table."""
    frames = []
    for summary in find_runs(root, notebook):
        if status and summary.status != status:
            continue
        frame = read_measurements(summary.path)
        if not frame.empty:
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latest_run(
    notebook: str, *, device: str | None = None, root: str | Path = REPORTS_DIR, status: str = OK
) -> RunSummary | None:
    """The newest finished run of a notebook (on a device, if given)."""
    for summary in find_runs(root, notebook):
        if summary.status == status and (device is None or summary.device == device):
            return summary
    return None
