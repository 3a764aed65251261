"""The pipeline: jupytext .py -> .ipynb -> papermill (parameters from a profile) -> nbconvert HTML -> index.

    python -m mlx_workbook.report.runner reports [--profile quick|full] [-p "name=value ..."] [--params-file f.yaml]
    python -m mlx_workbook.report.runner report 00_machine -p "repeats=5"
    python -m mlx_workbook.report.runner notebooks      # paired .ipynb files for JupyterLab
    python -m mlx_workbook.report.runner index          # rebuild reports/index.html

Every parameter (profile and -p overrides) is checked against the type declared in the notebook's parameters
cell, and preset names against the presets, before any kernel starts: a bad value is one line and exit 2.
One notebook's failure does not stop the others: it is marked failed (its finished trials stay on disk) and
the command exits non-zero at the end. Ctrl-C settles the running notebook as "interrupted" (its trials
become its parquet table, what ran becomes its HTML page), rebuilds the index and exits 130.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from mlx_workbook import REPORTS_DIR, ROOT, models
from mlx_workbook.core import env as envmod
from mlx_workbook.core import parameters, progress, results
from mlx_workbook.report import html

NOTEBOOKS_DIR = parameters.NOTEBOOKS_DIR
PROFILES_DIR = ROOT / "profiles"
KERNEL = "python3"
ERROR_ANCHOR = (
    "papermill-error-cell"  # the id papermill gives the cell that raised (absent when a kernel dies)
)
# Parameters whose values name presets ("tiny", or "tiny:4" for a model spec): checked against models.presets().
PRESET_PARAMETER = re.compile(r"(^|_)(presets?|model|model_specs)$")
# Runners that are timing right now, one file per process: machine-wide, so two checkouts see each other too.
ACTIVE_DIR = Path(tempfile.gettempdir()) / "mlx_workbook-active-runs"


class Interrupted(Exception):
    """Ctrl-C during a notebook: raised after that run is settled, so no further notebook starts."""


class RunnerError(ValueError):
    """Bad runner input (unknown notebook, profile or parameter): raised before anything executes."""


def notebook_names() -> list[str]:
    """Every notebook in run order: by number, except that a findings notebook (it reads the others' runs)
    comes last."""
    names = [p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")]
    return sorted(names, key=lambda n: (n.endswith("_findings"), n))


def to_ipynb(name: str, dest: Path) -> Path:
    """Convert the jupytext percent source to .ipynb with a kernelspec (papermill cannot read .py)."""
    import jupytext

    nb = jupytext.read(NOTEBOOKS_DIR / f"{name}.py")
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    dest.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, dest, fmt="ipynb")
    return dest


def pair_notebooks() -> list[Path]:
    """Write notebooks/<name>.ipynb next to each .py source (jupytext keeps them paired in JupyterLab)."""
    return [to_ipynb(name, NOTEBOOKS_DIR / f"{name}.ipynb") for name in notebook_names()]


def load_profile(profile: str) -> dict:
    """profiles/<profile>/<notebook>.yaml -> {notebook: {parameter: value}}."""
    folder = PROFILES_DIR / profile
    if not folder.is_dir():
        known = ", ".join(sorted(p.name for p in PROFILES_DIR.iterdir() if p.is_dir()))
        raise RunnerError(f"unknown profile {profile!r}; known profiles: {known}")
    return {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted(folder.glob("*.yaml"))}


def _split_assignments(text: str) -> list[str]:
    """Split 'a=1 b=[1, 2] c="x y"' at the spaces outside brackets and quotes."""
    items, current, depth, quote = [], "", 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch.isspace() and depth == 0:
            items, current = (items + [current] if current else items), ""
            continue
        current += ch
    if quote or depth:
        raise RunnerError(f"parameters {text!r}: unbalanced {'quote' if quote else 'brackets'}")
    return items + [current] if current else items


def parse_overrides(text: str | None) -> dict:
    """'a=1 b=[1, 2] c=name' -> {'a': 1, 'b': [1, 2], 'c': 'name'} (values read as YAML)."""
    out = {}
    for item in _split_assignments(text or ""):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RunnerError(f"parameter {item!r} is not name=value")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
            raise RunnerError(f"parameter {key}: cannot read {value!r} ({reason})") from None
    return out


def declared_parameters(notebook: str) -> dict[str, parameters.Parameter]:
    """The parameters a notebook's parameters cell declares (name, type, default, comment)."""
    return parameters.declared(notebook)


def check_presets(name: str, params: dict) -> None:
    """Every preset a parameter names must exist (a 'preset:bits' spec counts by its preset; a path is a folder)."""
    known = models.presets()
    for key, value in params.items():
        if not PRESET_PARAMETER.search(key):
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item or "/" in item:
                continue
            preset = item.split(":", 1)[0]
            if preset not in known:
                raise RunnerError(
                    f"{name}: {key}: unknown preset {preset!r}; known presets: {', '.join(known)}"
                )


def resolve_parameters(name: str, profile: str, profile_params: dict, overrides: dict) -> dict:
    """The profile's values with the overrides on top, each checked against the notebook's declaration."""
    declared = declared_parameters(name)
    params = {**profile_params.get("all", {}), **profile_params.get(name, {}), **overrides}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise RunnerError(f"{name} has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(declared)}")
    try:
        params = {k: parameters.check(declared[k], v) for k, v in params.items()}
    except parameters.ParameterError as exc:
        raise RunnerError(f"{name}: {exc}") from None
    check_presets(name, params)
    return {**params, "profile": profile}


def _page_has(page: Path, anchor: str) -> bool:
    return page.exists() and f'id="{anchor}"' in page.read_text(errors="replace")


def _interrupted_by(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt) or getattr(exc, "ename", "") == "KeyboardInterrupt"


def execute(name: str, params: dict, run_dir: Path, overrides: dict | None = None) -> tuple[str, str | None]:
    """Execute one notebook into run_dir; return (status, error). Ctrl-C: settle the run, then raise Interrupted."""
    import papermill

    started = time.time()
    source = to_ipynb(name, run_dir / ".input.ipynb")
    output = run_dir / f"{name}.ipynb"
    error = None
    sockets = tempfile.mkdtemp(prefix="wb-kernel-")
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters={**params, "run_dir": str(run_dir)},
            kernel_name=KERNEL,
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=False,
            stderr_file=ProgressEcho(name),  # the notebook's progress lines, echoed to the terminal
            config=_local_kernel(sockets),
        )
        status = results.OK
    except KeyboardInterrupt:
        status, error = results.INTERRUPTED, "interrupted (Ctrl-C)"
    except papermill.PapermillExecutionError as exc:
        status, error = results.FAILED, f"{exc.ename}: {exc.evalue}"
        if _interrupted_by(exc):
            status, error = results.INTERRUPTED, "interrupted (Ctrl-C)"
    except Exception as exc:  # the kernel died, a timeout: still a failed run, not a crashed pipeline
        status, error = results.FAILED, f"{type(exc).__name__}: {exc}"
    # Settling takes a moment; a second Ctrl-C must not leave the run half settled.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        source.unlink(missing_ok=True)
        shutil.rmtree(sockets, ignore_errors=True)
        if output.exists():
            html.render_notebook(output, run_dir / f"{name}.html")
        _settle_summary(name, run_dir, params, overrides or {}, status, error, started)
    finally:
        signal.signal(signal.SIGINT, previous)
    if status == results.INTERRUPTED:
        raise Interrupted(name)
    return status, error


class ProgressEcho:
    """A stream for papermill's stderr_file: prints the kernel's progress lines (core.progress) to the
    terminal as "[notebook] what n/total", and drops everything else (the page keeps that). A series of steps
    prints its first and last step and at most one line every `every` seconds between them."""

    STEP = re.compile(r"^(?P<what>.*) (?P<done>\d+)/(?P<total>\d+)(?: \(\d+ s\))?$")

    def __init__(self, name: str, out=None, every: float = 5.0):
        self.name, self.out, self.every = name, out or sys.stderr, every
        self.last_what, self.last_time = None, 0.0

    def write(self, text: str) -> None:
        for line in re.split(r"[\r\n]+", text):
            if line.startswith(progress.MARK):
                self._show(line[len(progress.MARK) :])

    def _show(self, line: str) -> None:
        step, now = self.STEP.match(line), time.monotonic()
        what = step["what"] if step else line
        last = bool(step) and step["done"] == step["total"]
        if what != self.last_what or last or now - self.last_time >= self.every:
            print(f"[{self.name}] {line}", file=self.out, flush=True)
            self.last_what, self.last_time = what, now

    def flush(self) -> None:
        self.out.flush()


def _local_kernel(folder: str):
    """Kernel sockets as files in a private folder (IPC) instead of TCP on localhost: nothing listens on a
    port, and the kernel has no reason to warn about unencrypted TCP."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc", "ip": str(Path(folder) / "kernel")}})


def _settle_summary(
    name: str, run_dir: Path, params: dict, overrides: dict, status: str, error: str | None, started: float
) -> results.RunSummary:
    """Make summary.json tell the truth: a run that did not end well is failed or interrupted, with its error."""
    results.consolidate(run_dir)  # a failed run's finished trials become its parquet table too
    try:
        summary = results.RunSummary.read(run_dir)
    except results.SummaryError:  # the kernel died before the notebook wrote one (or tore it)
        summary = results.RunSummary(
            run_id=run_dir.name,
            notebook=name,
            params=params,
            environment=envmod.capture().as_dict(),
            started=results._stamp(started),
        )
    summary.overrides = overrides
    if status != results.OK or summary.status != results.OK:
        summary.status = status if status != results.OK else results.FAILED
        summary.error = error or summary.error or "the notebook stopped before finishing"
        page = run_dir / f"{name}.html"
        summary.error_anchor = ERROR_ANCHOR if _page_has(page, ERROR_ANCHOR) else None
        summary.duration_s = round(time.time() - started, 2)  # the notebook never wrote its own end time
        summary.finished = results._now()
    summary.write_atomic(run_dir)
    return summary


def _writable(folder: Path) -> None:
    """One clear line, before any kernel starts, when the reports folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise RunnerError(
            f"cannot write to {_show(folder)} ({exc.strerror or exc}): make it writable "
            f"(chmod -R u+w {_show(folder)}) or run from a copy of the workbook you can write to"
        ) from None


def _others_timing() -> list[dict]:
    """Other runners timing on this machine now (files of processes that are gone are cleared)."""
    others = []
    for file in ACTIVE_DIR.glob("*.json") if ACTIVE_DIR.is_dir() else []:
        try:
            entry = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if entry.get("pid") == os.getpid():
            continue
        if results._process_alive(int(entry.get("pid", 0))):
            others.append(entry)
        else:
            file.unlink(missing_ok=True)
    return others


def _register(notebook: str, run_dir: Path) -> Path | None:
    """Mark this runner as timing `notebook` (None when the machine-wide folder cannot be written)."""
    entry = {"pid": os.getpid(), "host": socket.gethostname(), "notebook": notebook, "run_dir": str(run_dir)}
    try:
        ACTIVE_DIR.mkdir(parents=True, exist_ok=True)
        file = ACTIVE_DIR / f"{os.getpid()}.json"
        file.write_text(json.dumps(entry))
        return file
    except OSError:
        return None


def _warn_if_shared(name: str) -> None:
    for other in _others_timing():
        print(
            f"[{name}] warning: another workbook run is timing on this machine now ({other.get('notebook')}, "
            f"pid {other.get('pid')}): both runs' times will be slower and noisier than alone",
            file=sys.stderr,
            flush=True,
        )


def run_notebooks(
    names: list[str], profile: str, overrides: dict, root: Path = REPORTS_DIR, *, open_index: bool = False
) -> int:
    profile_params = load_profile(profile)
    environment = envmod.capture()
    # Check every notebook's parameters before executing any, so a typo fails fast.
    plans = [(name, resolve_parameters(name, profile, profile_params, overrides)) for name in names]
    _writable(root / "runs")
    failures, interrupted, finished = [], None, 0
    tic = time.time()
    registration = None
    try:
        for name, params in plans:
            run_dir = results.new_run_dir(root / "runs", name, environment)
            _warn_if_shared(name)
            registration = _register(name, run_dir)
            print(f"[{name}] running with profile {profile} -> {_show(run_dir)}", flush=True)
            t0 = time.time()
            try:
                status, error = execute(name, params, run_dir, overrides)
            except Interrupted:
                print(f"[{name}] interrupted after {time.time() - t0:.0f} s; its trials are kept", flush=True)
                interrupted = name
                break
            print(
                f"[{name}] {status} in {time.time() - t0:.0f} s" + (f": {error}" if error else ""), flush=True
            )
            finished += status == results.OK
            if status != results.OK:
                failures.append(name)
    finally:
        if registration:
            registration.unlink(missing_ok=True)
    elapsed = time.time() - tic
    html.build_index(root)
    _log_timing(root, names, profile, environment, elapsed, failures + ([interrupted] if interrupted else []))
    index = (root / "index.html").resolve()
    print(f"{finished}/{len(plans)} notebooks ok in {elapsed:.0f} s; index: {_show(index)}")
    print(f"open it: {index.as_uri()}", flush=True)
    if open_index:
        import webbrowser

        webbrowser.open(index.as_uri())
    if interrupted:
        return 130
    return 1 if failures else 0


def _show(path: Path) -> str:
    path = Path(os.path.abspath(path))
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _log_timing(root: Path, names, profile, environment, elapsed, failures) -> None:
    """Append how long this `make reports` took, and where, to reports/timings.jsonl."""
    entry = {
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "notebooks": names,
        "profile": profile,
        "device": environment.device,
        "backend": environment.backend,
        "mlx": environment.mlx,
        "seconds": round(elapsed, 1),
        "failed": failures,
    }
    with open(root / "timings.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlx_workbook.report.runner",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("reports", "report"):
        p = sub.add_parser(cmd)
        if cmd == "report":
            p.add_argument("notebook", help="notebook name, e.g. 00_machine")
        p.add_argument(
            "--profile", default="auto", help="quick, full, or auto (quick on a CPU, full on a GPU)"
        )
        p.add_argument("-p", "--params", default="", help='overrides: "name=value name2=value2"')
        p.add_argument("--params-file", help="YAML file of overrides")
        p.add_argument("--open", action="store_true", help="open the index in a browser at the end")
    sub.add_parser("notebooks")
    sub.add_parser("index")
    args = parser.parse_args(argv)
    try:
        if args.command == "notebooks":
            for path in pair_notebooks():
                print(path.relative_to(ROOT))
            return 0
        if args.command == "index":
            print(html.build_index(REPORTS_DIR))
            return 0
        profile = envmod.default_profile() if args.profile == "auto" else args.profile
        overrides = _params_file(args.params_file) if args.params_file else {}
        overrides.update(parse_overrides(args.params))
        names = notebook_names()
        if args.command == "report":
            match = [n for n in names if n == args.notebook or n.split("_", 1)[1] == args.notebook]
            if not match:
                raise RunnerError(f"unknown notebook {args.notebook!r}; notebooks: {', '.join(names)}")
            names = match
        return run_notebooks(names, profile, overrides, REPORTS_DIR, open_index=args.open)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # between notebooks (inside one, execute settles the run first)
        print("interrupted", file=sys.stderr)
        return 130
    except PermissionError as exc:  # e.g. a reports folder made read-only while the runs ran
        print(
            f"error: cannot write {exc.filename or ''} ({exc.strerror}): make the reports folder writable",
            file=sys.stderr,
        )
        return 2


def _params_file(path: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RunnerError(f"parameters file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RunnerError(f"parameters file {path}: expected name: value lines, got a {type(data).__name__}")
    return data


if __name__ == "__main__":
    sys.exit(main())
