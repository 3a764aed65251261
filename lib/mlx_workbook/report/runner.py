"""The pipeline: jupytext .py -> .ipynb -> papermill (parameters from a profile) -> nbconvert HTML -> index.

    python -m mlx_workbook.report.runner reports [--profile quick|full] [-p "name=value ..."] [--params-file f.yaml]
    python -m mlx_workbook.report.runner report 00_machine -p "repeats=5"
    python -m mlx_workbook.report.runner notebooks      # paired .ipynb files for JupyterLab
    python -m mlx_workbook.report.runner index          # rebuild reports/index.html

One notebook's failure does not stop the others: it is marked failed (its finished trials stay on disk) and
the command exits non-zero at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from mlx_workbook import REPORTS_DIR, ROOT
from mlx_workbook.core import env as envmod
from mlx_workbook.core import progress, results
from mlx_workbook.report import html

NOTEBOOKS_DIR = ROOT / "notebooks"
PROFILES_DIR = ROOT / "profiles"
KERNEL = "python3"


class RunnerError(ValueError):
    """Bad runner input (unknown notebook, profile or parameter): raised before anything executes."""


def notebook_names() -> list[str]:
    return sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))


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


def parse_overrides(text: str | None) -> dict:
    """'a=1 b=[1,2] c=name' -> {'a': 1, 'b': [1, 2], 'c': 'name'} (values read as YAML)."""
    out = {}
    for item in (text or "").split():
        if "=" not in item:
            raise RunnerError(f"parameter {item!r} is not name=value")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def declared_parameters(ipynb: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(ipynb))


def resolve_parameters(name: str, ipynb: Path, profile: str, profile_params: dict, overrides: dict) -> dict:
    declared = declared_parameters(ipynb)
    params = {**profile_params.get("all", {}), **profile_params.get(name, {}), **overrides}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise RunnerError(f"{name} has no parameter(s) {', '.join(unknown)}; it takes: {', '.join(declared)}")
    return {**params, "profile": profile}


def execute(name: str, params: dict, run_dir: Path) -> tuple[str, str | None]:
    """Execute one notebook into run_dir; return (status, error)."""
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
        status = "ok"
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # the kernel died, a timeout: still a failed run, not a crashed pipeline
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        source.unlink(missing_ok=True)
        shutil.rmtree(sockets, ignore_errors=True)
    if output.exists():
        html.render_notebook(output, run_dir / f"{name}.html")
    _settle_summary(name, run_dir, params, status, error, time.time() - started)
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
    name: str, run_dir: Path, params: dict, status: str, error: str | None, seconds: float
) -> None:
    """Make summary.json tell the truth: a run that did not end well is failed, with its error."""
    results.consolidate(run_dir)  # a failed run's finished trials become its parquet table too
    path = run_dir / results.SUMMARY
    summary = (
        json.loads(path.read_text())
        if path.exists()
        else {
            "run_id": run_dir.name,
            "notebook": name,
            "params": params,
            "findings": [],
            "environment": envmod.capture().as_dict(),
            "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    if status != "ok" or summary.get("status") != "ok":
        summary["status"] = "failed"
        summary["error"] = error or summary.get("error") or "the notebook stopped before finishing"
        summary["error_anchor"] = "papermill-error-cell"
        summary["duration_s"] = round(seconds, 2)  # the notebook never wrote its own end time
    tmp = path.with_suffix(".tmp")  # atomic, like results: a torn summary.json would break every index build
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)


def run_notebooks(names: list[str], profile: str, overrides: dict, root: Path = REPORTS_DIR) -> int:
    profile_params = load_profile(profile)
    environment = envmod.capture()
    # Check every notebook's parameters before executing any, so a typo fails fast.
    plans = []
    build = root / ".build"
    for name in names:
        ipynb = to_ipynb(name, build / f"{name}.ipynb")
        plans.append((name, resolve_parameters(name, ipynb, profile, profile_params, overrides)))
    failures = []
    tic = time.time()
    for name, params in plans:
        run_dir = root / "runs" / results.new_run_id(name, environment)
        run_dir.mkdir(parents=True)
        print(f"[{name}] running with profile {profile} -> {_show(run_dir)}", flush=True)
        t0 = time.time()
        status, error = execute(name, params, run_dir)
        print(f"[{name}] {status} in {time.time() - t0:.0f} s" + (f": {error}" if error else ""), flush=True)
        if status != "ok":
            failures.append(name)
    elapsed = time.time() - tic
    html.build_index(root)
    _log_timing(root, names, profile, environment, elapsed, failures)
    print(
        f"{len(plans) - len(failures)}/{len(plans)} notebooks ok in {elapsed:.0f} s; "
        f"index: {_show(root / 'index.html')}"
    )
    return 1 if failures else 0


def _show(path: Path) -> str:
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
        overrides = (yaml.safe_load(Path(args.params_file).read_text()) or {}) if args.params_file else {}
        overrides.update(parse_overrides(args.params))
        names = notebook_names()
        if args.command == "report":
            match = [n for n in names if n == args.notebook or n.split("_", 1)[1] == args.notebook]
            if not match:
                raise RunnerError(f"unknown notebook {args.notebook!r}; notebooks: {', '.join(names)}")
            names = match
        return run_notebooks(names, profile, overrides)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
