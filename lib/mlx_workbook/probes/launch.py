"""Launch a rank script on several processes through MLX's own launcher, `mlx.launch`, and watch it.

`mlx.launch` starts one process per rank (locally, or on the listed hosts over ssh) and sets up MLX's
distributed backend for them (`ring` over TCP, `nccl` on CUDA GPUs, `jaccl` over Thunderbolt RDMA, `mpi`).
This module only builds its command line, runs it with a deadline, and reports what each rank left behind:
every rank writes `rank<r>.log` (progress lines), `rank<r>.pid` and, once it is done, `rank<r>.status`
into `log_dir` (see `RankFiles`). A launch that times out or fails ends every process it started and raises
one `LaunchError` naming the ranks that did not finish and their last output.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx

BACKENDS = ("ring", "nccl", "jaccl", "jaccl-ring", "mpi")
LOCALHOST = "127.0.0.1"
TAIL_LINES = 8  # lines of a rank's log quoted in an error


class LaunchError(RuntimeError):
    """A distributed launch that did not finish on every rank."""


@dataclass(frozen=True)
class RankFiles:
    """The files one rank writes into the launch's log folder."""

    folder: Path
    rank: int

    @property
    def log(self) -> Path:
        return self.folder / f"rank{self.rank}.log"

    @property
    def pid(self) -> Path:
        return self.folder / f"rank{self.rank}.pid"

    @property
    def status(self) -> Path:
        return self.folder / f"rank{self.rank}.status"

    @property
    def journal(self) -> Path:
        return self.folder / f"rank{self.rank}.jsonl"

    def tail(self, lines: int = TAIL_LINES) -> str:
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) or "(no output)"

    def finished(self) -> bool:
        return self.status.exists() and self.status.read_text().strip() == "ok"


@dataclass(frozen=True)
class LaunchResult:
    ranks: int
    seconds: float
    output: str  # mlx.launch's own stdout and stderr (every rank's, interleaved)


def local_ranks(backend: str, ranks: int, hosts: list[str] | None = None) -> str | None:
    """Why `ranks` processes cannot run here (None when they can): NCCL needs one CUDA GPU per local rank."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown distributed backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if ranks < 1:
        raise ValueError(f"ranks must be at least 1, got {ranks}")
    if hosts and ranks % len(hosts):
        raise ValueError(f"{ranks} ranks cannot be spread evenly over the {len(hosts)} hosts {hosts}")
    if not mx.distributed.is_available(backend if backend != "jaccl-ring" else "jaccl"):
        return f"MLX's {backend} backend is not available in this build of MLX ({mx.__version__})"
    remote = hosts and any(h not in (LOCALHOST, "localhost") for h in hosts)
    if backend == "nccl" and not remote:
        gpus = mx.device_count(mx.gpu) if mx.cuda.is_available() else 0
        if gpus < ranks:
            return f"the nccl backend needs one CUDA GPU per rank: {ranks} ranks, {gpus} GPUs on this machine"
    return None


def _free_port_block(count: int) -> int:
    """A base port with `count` free ports after it (the ring backend listens on base + rank)."""
    for _ in range(50):
        base = random.randint(20000, 60000 - count)
        try:
            for p in range(base, base + count):
                with socket.socket() as s:
                    s.bind((LOCALHOST, p))
            return base
        except OSError:
            continue
    raise LaunchError(f"found no {count} free consecutive ports for the ring backend")


def launcher() -> list[str]:
    """mlx.launch beside this interpreter (its console script), else its module through this interpreter."""
    script = Path(sys.executable).with_name("mlx.launch")
    if script.exists():
        return [str(script)]
    found = shutil.which("mlx.launch")
    if found:
        return [found]
    return [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()"]


def command(
    script: Path,
    args: list[str],
    *,
    ranks: int,
    backend: str,
    hosts: list[str] | None = None,
    python: str | None = None,
    env: dict | None = None,
) -> list[str]:
    """The mlx.launch command line. The interpreter is named in the command: mlx.launch runs a bare script
    path as an executable (on the NCCL machine `mlx.launch --backend nccl -n 2 $(which python3) script.py`)."""
    cmd = [*launcher(), "--backend", backend]
    if hosts:
        cmd += ["--hosts", ",".join(hosts), "-n", str(ranks // len(hosts))]
    else:
        cmd += ["-n", str(ranks)]
    if backend == "ring":
        cmd += ["--starting-port", str(_free_port_block(ranks))]
    if backend == "nccl":
        cmd += ["--nccl-port", str(_free_port_block(1))]
    for key, value in (env or {}).items():
        cmd += ["--env", f"{key}={value}"]
    return [*cmd, python or sys.executable, str(script), *args]


def _end(proc: subprocess.Popen, files: list[RankFiles]) -> None:
    """End the launcher's whole process group, then any local rank still alive (by the pid it wrote)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    for f in files:
        try:
            pid = int(f.pid.read_text().strip())
            os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            continue
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether a local process still runs (a zombie, killed and waiting to be reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return not Path("/proc").exists()


def launch(
    script: Path,
    config: dict,
    *,
    ranks: int,
    backend: str,
    log_dir: Path,
    timeout_s: float,
    hosts: list[str] | None = None,
    python: str | None = None,
    env: dict | None = None,
) -> LaunchResult:
    """Run `script <config.json>` on `ranks` processes; raise LaunchError unless every rank wrote status ok.

    The config is written to `log_dir/launch.json`; the script's ranks read it from their first argument.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    files = [RankFiles(log_dir, r) for r in range(ranks)]
    for f in files:  # a previous launch's status must not pass for this one's
        for p in (f.status, f.pid, f.log):
            p.unlink(missing_ok=True)
    config_path = log_dir / "launch.json"
    config_path.write_text(json.dumps(config, indent=1))
    cmd = command(
        script, [str(config_path)], ranks=ranks, backend=backend, hosts=hosts, python=python, env=env
    )
    out_path = log_dir / "launch.out"
    tic = time.perf_counter()
    with open(out_path, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        try:
            proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        _end(proc, files)
    seconds = time.perf_counter() - tic
    output = out_path.read_text(errors="replace")
    failed = [f for f in files if not f.finished()]
    if timed_out or failed or proc.returncode:
        what = f"timed out after {timeout_s:.0f} s" if timed_out else f"exited with code {proc.returncode}"
        ranks_text = "\n".join(f"rank {f.rank} did not finish; its last output:\n{f.tail()}" for f in failed)
        tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        raise LaunchError(
            f"the {backend} launch of {Path(script).name} on {ranks} ranks {what}; every rank process was "
            f"ended.\n{ranks_text}\nmlx.launch's last output:\n{tail}"
        )
    return LaunchResult(ranks=ranks, seconds=seconds, output=output)
