"""What machine is this: backend, device, memory, versions, and the device's published peaks."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata

import yaml

from mlx_workbook import DATA_DIR, ROOT


@dataclass(frozen=True)
class Environment:
    backend: str  # "metal", "cuda" or "cpu"
    device: str  # the name MLX (or the OS) reports for the device doing the work
    memory_bytes: int  # memory the device can use for arrays
    os: str
    python: str
    mlx: str
    mlx_lm: str
    workbook_commit: str
    cpu_count: int
    extra: dict = field(default_factory=dict)

    @property
    def device_slug(self) -> str:
        """A short file-name-safe label, e.g. 'cuda-nvidia-h100-80gb-hbm3'."""
        name = "".join(c if c.isalnum() else "-" for c in self.device.lower())
        return f"{self.backend}-" + "-".join(p for p in name.split("-") if p)

    def as_dict(self) -> dict:
        return asdict(self)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def detect_backend() -> str:
    import mlx.core as mx

    if mx.default_device().type != mx.DeviceType.gpu:
        return "cpu"
    if getattr(mx, "metal", None) is not None and mx.metal.is_available():
        return "metal"
    return "cuda"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.check_output(["sysctl", "-n", "machdep.cpu.brand_string"], text=True).strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return platform.processor() or platform.machine()


def _system_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _git_commit() -> str:
    # A copy of the tree without .git (e.g. shipped to a remote GPU machine) names its commit in WORKBOOK_COMMIT.
    if os.environ.get("WORKBOOK_COMMIT"):
        return os.environ["WORKBOOK_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("+dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


@lru_cache(maxsize=1)
def capture() -> Environment:
    """Detect the backend and device once per process."""
    import mlx.core as mx

    backend = detect_backend()
    info = dict(mx.device_info()) if backend != "cpu" else {}
    if backend == "metal":
        # Metal reports only an architecture string; the CPU brand names the chip (e.g. "Apple M4 Max").
        cpu = _cpu_name()
        device = cpu if cpu.lower().startswith("apple") else f"Apple {info.get('architecture', 'GPU')}"
        memory = int(info.get("max_recommended_working_set_size") or info.get("memory_size") or 0)
    elif backend == "cuda":
        device = str(info.get("device_name", "NVIDIA GPU"))
        memory = int(info.get("total_memory") or info.get("memory_size") or 0)
    else:
        device = _cpu_name()
        memory = _system_memory()
    extra = {k: (v if isinstance(v, (int, str)) else str(v)) for k, v in info.items()}
    return Environment(
        backend=backend,
        device=device,
        memory_bytes=memory,
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=platform.python_version(),
        mlx=_version("mlx"),
        mlx_lm=_version("mlx-lm"),
        workbook_commit=_git_commit(),
        cpu_count=os.cpu_count() or 0,
        extra=extra,
    )


@lru_cache(maxsize=1)
def _device_table() -> list[dict]:
    with open(DATA_DIR / "devices.yaml") as f:
        return yaml.safe_load(f)


def published_peaks(device_name: str) -> dict | None:
    """The vendor's peak bandwidth / bf16 throughput for a device name, or None if unknown."""
    name = device_name.lower()
    for entry in _device_table():
        if any(m in name for m in entry["match"]):
            return entry
    return None


def default_profile(env: Environment | None = None) -> str:
    """The parameter profile that fits the device: small sweeps on a CPU, full ones on a GPU."""
    env = env or capture()
    return "quick" if env.backend == "cpu" else "full"
