"""Run the self-contained SDPA probe under other MLX versions, each in its own cached virtual env.

    result = versions.run_probe("0.29.1", config)    # VersionResult(status="ok", data={"rows": [...]}, ...)

Each version gets `.cache/mlx-versions/<version>-<backend>/` (a venv without pip of its own; the running
interpreter's pip installs into it with `--python`), holding only `mlx` and the backend package of the running
backend (mlx-cpu, mlx-cuda-13, ...). The probe runs there as a subprocess and prints JSON. The version already
installed here runs in this process, no env needed. Offline machines can pass a folder of wheels (`wheels_dir`
or the MLX_WHEELS_DIR environment variable), or ready installs (MLX_VERSION_SITES/<version>/, run with this
interpreter; how the GPU reference machine, with no index, runs other CUDA builds). A version that cannot be
installed (no network, no wheel for this platform or backend) yields one clear message in
`VersionResult.message`, never an exception.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from mlx_workbook import ROOT
from mlx_workbook.probes import child

CACHE_DIR = ROOT / ".cache" / "mlx-versions"
PROBE = Path(__file__).with_name("sdpa_probe.py")
WHEELS_ENV = "MLX_WHEELS_DIR"
# A folder of ready installs, one per version (`pip install --no-deps --target SITES/<version> mlx==V mlx-cuda-13==V`):
# for machines with no package index whose CUDA libraries come with the system rather than as pip packages.
SITES_ENV = "MLX_VERSION_SITES"
READY = ".ready"
# The backend packages MLX ships, newest naming first; "mlx-cuda" is what versions before 0.31 used for CUDA.
BACKEND_PACKAGES = ("mlx-cpu", "mlx-cuda-13", "mlx-cuda-12", "mlx-cuda", "mlx-metal")
NETWORK_ERRORS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeout",
    "ProxyError",
    "Max retries exceeded",
    "ReadTimeout",
    "Name or service not known",
    "No route to host",
)

_network_down = False  # set after the first install that failed for lack of a network (this process)


@dataclass
class VersionResult:
    version: str
    status: str  # "ok", "unavailable" (could not install) or "failed" (installed, the probe broke)
    message: str = ""
    python: str = ""
    seconds: float = 0.0
    data: dict = field(default_factory=dict)  # the probe's JSON: {"mlx", "backend", "rows", "errors"}

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class VersionUnavailable(RuntimeError):
    """This MLX version cannot be installed here (the message says why)."""


def current_version() -> str:
    import mlx.core as mx

    return mx.__version__


def backend_package() -> str | None:
    """The backend package installed with the running MLX (mlx-cpu, mlx-cuda-13, ...), None on a plain wheel."""
    for name in BACKEND_PACKAGES:
        try:
            metadata.version(name)
            return name
        except metadata.PackageNotFoundError:
            continue
    return None


def requirement_sets(version: str, package: str | None) -> list[list[str]]:
    """What to pip-install for `version` on this backend, in the order to try."""
    base = [f"mlx=={version}"]
    if package in (None, "mlx-metal"):  # macOS: mlx pulls mlx-metal itself; plain Linux wheels: mlx alone
        return [base]
    if package in ("mlx-cuda-13", "mlx-cuda-12"):  # older releases named their one CUDA build mlx-cuda
        return [base + [f"{package}=={version}"], base + [f"mlx-cuda=={version}"]]
    return [base + [f"{package}=={version}"]]


def env_dir(version: str, package: str | None = None) -> Path:
    tag = (package or backend_package() or "plain").removeprefix("mlx-")
    return CACHE_DIR / f"{version}-{tag}"


def _venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _no_network(version: str, requirements: list[str]) -> str:
    return (
        f"MLX {version}: not installed here and no network to fetch it (pip could not reach the package "
        f"index); put the wheels for {' '.join(requirements)} in a folder and pass it as wheels_dir or "
        f"{WHEELS_ENV}"
    )


def _classify(version: str, requirements: list[str], output: str, wheels_dir: str | None) -> str:
    if "No module named pip" in output or "no such option: --python" in output:
        return (
            f"MLX {version}: this interpreter ({sys.executable}) has no pip >= 22.3 to install it with "
            "(pip install -U pip)"
        )
    if any(marker in output for marker in NETWORK_ERRORS):
        return _no_network(version, requirements)
    where = f"the wheel folder {wheels_dir}" if wheels_dir else "the package index"
    if "from versions: none" in output and not wheels_dir:
        return (
            f"MLX {version}: pip found no MLX wheel at all for {' '.join(requirements)} (the package index "
            f"is unreachable, or MLX ships no wheel for this platform: {sys.platform}, Python "
            f"{sys.version_info.major}.{sys.version_info.minor}); for offline installs use {WHEELS_ENV}"
        )
    return (
        f"MLX {version}: no wheel of {' '.join(requirements)} in {where} for this platform "
        f"({sys.platform}, Python {sys.version_info.major}.{sys.version_info.minor}) and backend"
    )


def _pip_install(
    python: Path, requirements: list[str], wheels_dir: str | None, timeout: float
) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--disable-pip-version-check",
        "--retries",
        "1",
        "--timeout",
        "5",
    ]  # one retry: pip names a connection error only when it retries
    if wheels_dir:
        cmd += ["--no-index", "--find-links", str(wheels_dir)]
    try:
        out = subprocess.run(cmd + requirements, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 1, f"pip timed out after {timeout:.0f} s (Max retries exceeded)"
    return out.returncode, out.stdout + out.stderr


def ensure_env(version: str, *, wheels_dir: str | None = None, timeout: float = 600) -> Path:
    """The python of a venv holding MLX `version` for this backend; built once, then reused."""
    global _network_down
    package = backend_package()
    folder = env_dir(version, package)
    python = _venv_python(folder)
    if (folder / READY).exists() and python.exists():
        return python
    wheels_dir = wheels_dir or os.environ.get(WHEELS_ENV) or None
    if _network_down and not wheels_dir:  # one failed try per process is enough to know
        raise VersionUnavailable(_no_network(version, requirement_sets(version, package)[0]))
    folder.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--clear", str(folder)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    log = []
    for requirements in requirement_sets(version, package):
        code, output = _pip_install(python, requirements, wheels_dir, timeout)
        log.append(f"$ pip install {' '.join(requirements)}\n{output}")
        (folder / "install.log").write_text("\n".join(log))
        if code == 0:
            found = _installed_version(python)
            if found == version:
                (folder / READY).write_text(json.dumps({"version": version, "requirements": requirements}))
                return python
            message = (
                f"MLX {version}: installed into {folder}, but its python imports MLX {found or 'not at all'}"
            )
            continue
        message = _classify(version, requirements, output, wheels_dir)
        if "no network" in message:
            _network_down = not wheels_dir
            raise VersionUnavailable(message)
    raise VersionUnavailable(message + f" (pip's output: {folder / 'install.log'})")


def _installed_version(python: Path) -> str | None:
    out = subprocess.run(
        [str(python), "-c", "import mlx.core as mx; print(mx.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    return out.stdout.strip() if out.returncode == 0 else None


def _installed_site(version: str) -> tuple[str, dict] | None:
    """This interpreter with MLX `version` from a ready install under $MLX_VERSION_SITES, if there is one."""
    site = Path(os.environ.get(SITES_ENV, "/nonexistent")) / version
    if not (site / "mlx").is_dir():
        return None
    return sys.executable, {**_clean_env(), "PYTHONPATH": str(site)}


def _clean_env() -> dict:
    # A venv's own mlx must not be shadowed by this project's PYTHONPATH.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run_probe(
    version: str, config: dict, *, wheels_dir: str | None = None, timeout: float = 600, fresh: bool = False
) -> VersionResult:
    """Run the SDPA probe with `config` under MLX `version` ("current": the one installed here, run in this
    process, or with `fresh` in a new process of this interpreter; any other version in its own env as a
    subprocess)."""
    tic = time.perf_counter()
    here = current_version()
    version = here if version in ("current", here) else version
    if version == here and not fresh:  # in this process: the same probe code, no second CUDA start
        from mlx_workbook.probes import sdpa_probe

        return _result(version, sys.executable, tic, sdpa_probe.run(config))
    try:
        python, env = (
            (Path(sys.executable), dict(os.environ))
            if version == here
            else _installed_site(version)
            or (ensure_env(version, wheels_dir=wheels_dir, timeout=timeout), _clean_env())
        )
    except VersionUnavailable as exc:
        return VersionResult(version, "unavailable", str(exc), seconds=time.perf_counter() - tic)
    try:
        data = child.run_json([str(python), str(PROBE)], config, timeout=timeout, env=env)
    except child.ChildTimeout:
        message = f"MLX {version}: the probe ran past {timeout:.0f} s"
        return VersionResult(version, "failed", message, str(python), time.perf_counter() - tic)
    except child.ChildFailed as exc:
        message = f"MLX {version}: the probe failed: {exc}"
        return VersionResult(version, "failed", message, str(python), time.perf_counter() - tic)
    return _result(version, str(python), tic, data)


def _result(version: str, python: str, tic: float, data: dict) -> VersionResult:
    message = f"MLX {data['mlx']} ({data['backend']}): {len(data['rows'])} timings"
    if data["errors"]:
        message += f"; {len(data['errors'])} configuration(s) failed: " + "; ".join(
            f"{e['mode']}/{e['dtype']}: {e['error']}" for e in data["errors"]
        )
    return VersionResult(version, "ok", message, python, time.perf_counter() - tic, data)


def compare(
    versions: list[str],
    config: dict,
    *,
    passes: int = 1,
    wheels_dir: str | None = None,
    timeout: float = 600,
    on_result=None,
) -> list[VersionResult]:
    """The probe under each version (duplicates and "current" resolved), in `passes` passes of alternating
    order (A B C, then C B A, ...), so that a machine getting busier or quieter over time weighs on every version
    alike. `on_result` sees each pass's result as it finishes (trials numbered on across passes); the returned
    results hold every pass's rows. A version that cannot be installed is tried once."""
    here, order = current_version(), []
    for v in map(str, versions):
        v = here if v in ("current", here) else v
        if v not in order:
            order.append(v)
    merged: dict[str, VersionResult] = {}
    repeats = int(config.get("repeats", 5))
    for p in range(passes):
        for v in order if p % 2 == 0 else order[::-1]:
            if v in merged and not merged[v].ok:
                continue
            result = run_probe(v, config, wheels_dir=wheels_dir, timeout=timeout)
            if result.ok:
                for row in result.data["rows"]:
                    row["trial"] += p * repeats
            if on_result is not None:
                on_result(result)
            if v not in merged or not result.ok:
                merged[v] = result
            else:
                merged[v].data["rows"] += result.data["rows"]
                merged[v].seconds += result.seconds
    return [merged[v] for v in order]
