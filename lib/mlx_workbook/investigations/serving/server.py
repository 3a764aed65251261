"""mlx_lm.server as a subprocess: a real checkpoint folder, a free port, a health wait with a deadline, and a
stop that always runs (context manager, plus atexit for a kernel that dies mid-cell).

Every server started here is in LIVE until it is stopped, so tests can check that none outlives a notebook.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from mlx_workbook import models

LIVE: dict[int, subprocess.Popen] = {}  # pid -> process, for every server not yet stopped
TAIL_LINES = 40  # lines of server output kept for the error message of a server that will not start


class ServerError(RuntimeError):
    """The server did not start (or died): the message carries its last output."""


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL (atexit cannot
    run then). Elsewhere a no-op: atexit and the context manager still stop it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_served_checkpoint(loaded: models.LoadedModel, folder: str | Path) -> Path:
    """The model as a folder mlx_lm.server can load: safetensors, config.json and the offline tokenizer (its
    token 't<i>' is id i, so a prompt text of n such words is exactly n tokens)."""
    from mlx_lm.utils import save_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = models.offline_tokenizer(loaded.vocab_size)
    save_config(dict(loaded.config), config_path=folder / "config.json")
    tokenizer.save_pretrained(str(folder))
    check_tokenizer(folder)  # before the weights: a checkpoint the server would misread is not written at all
    models.save_checkpoint(loaded, folder, tokenizer=tokenizer)
    return folder


def check_tokenizer(folder: Path) -> None:
    """The server must read back the same word-per-token tokenizer; one clear error, before any server starts,
    where transformers swaps in a model family's own tokenizer class (it maps model_type qwen2 to
    Qwen2Tokenizer, which rebuilds a byte-level BPE from the vocabulary and encodes 't1 t2' as nothing)."""
    from mlx_lm.utils import load_tokenizer

    got = list(load_tokenizer(folder).encode("t1 t2"))
    if got != [1, 2]:
        config = json.loads((folder / "config.json").read_text())
        raise models.ModelError(
            f"the served checkpoint's tokenizer does not read back ('t1 t2' -> {got}, expected [1, 2]): "
            f"transformers loads another tokenizer class for model_type {config.get('model_type')!r}; "
            "serve a preset of another family (e.g. llama-3-8b, qwen3-0.6b)"
        )


class Server:
    """`with Server(folder) as srv:` starts mlx_lm.server on a free port and stops it on the way out."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        startup_timeout_s: float = 120.0,
        extra_args: list | None = None,
        probe_prompt: str = "hello",
        log_path: str | Path | None = None,
    ):
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise models.ModelError(f"{model_dir} is not a model folder (no config.json)")
        self.model_dir = model_dir
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = [str(a) for a in (extra_args or [])]
        self.probe_prompt = probe_prompt  # the one-token request that proves the model is loaded
        self.log_path = Path(log_path) if log_path else None  # the server's whole output, kept for diagnosis
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.startup_s = float("nan")
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlx_lm",
            "server",
            "--model",
            str(self.model_dir),
            "--port",
            str(self.port),
        ]

    def last_output(self) -> str:
        return "\n".join(self._tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _drain(self) -> None:
        # The server logs every request; reading its pipe keeps it from blocking on a full buffer.
        log = open(self.log_path, "a") if self.log_path else None
        try:
            for line in self.proc.stdout:
                if log:
                    log.write(line)
                    log.flush()
                if '"GET /health' not in line:  # the readiness polls would crowd out the load error
                    self._tail.append(line.rstrip())
        finally:
            if log:
                log.close()

    def start(self) -> Server:
        self.port = free_port()
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        tic = time.perf_counter()
        self.proc = subprocess.Popen(
            [*self.command, *self.extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a stop reaches any child it forks
            preexec_fn=_die_with_parent,
        )
        LIVE[self.proc.pid] = self.proc
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        try:
            self._wait_ready(tic)
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, why: str) -> ServerError:
        return ServerError(f"mlx_lm.server {why}; last output:\n{self.last_output()}")

    def _wait_ready(self, tic: float) -> None:
        """/health answers as soon as HTTP is up, while the model still loads in the generation thread (503 once
        that thread died); a one-token completion then proves the model is loaded."""
        deadline = tic + self.startup_timeout_s
        while True:
            if not self.alive():
                raise self._fail(f"exited with code {self.proc.returncode} before answering")
            if time.perf_counter() > deadline:
                raise self._fail(f"did not answer /health within {self.startup_timeout_s:.0f} s")
            try:
                status = httpx.get(f"{self.url}/health", timeout=1.0).status_code
            except httpx.HTTPError:
                status = 0
            if status == 503:
                raise self._fail(
                    "answers /health with 503: its generation thread died (the model did not load)"
                )
            if status == 200:
                break
            time.sleep(0.1)
        try:
            r = httpx.post(
                f"{self.url}/v1/completions",
                json={"prompt": self.probe_prompt, "max_tokens": 1},
                timeout=max(1.0, deadline - time.perf_counter()),
            )
        except httpx.HTTPError as exc:
            raise self._fail(
                f"did not complete a first request within {self.startup_timeout_s:.0f} s ({exc})"
            ) from exc
        if r.status_code != 200:
            raise self._fail(f"answered a first request with HTTP {r.status_code}: {r.text[:200]}")
        self.startup_s = time.perf_counter() - tic

    def kill(self) -> None:
        """Die at once (SIGKILL), as a crashed server would; stop() still cleans up after it."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; safe to call twice or on a server that already died."""
        if self.proc is None:
            return
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout_s)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=timeout_s)
        LIVE.pop(self.proc.pid, None)
        if self._reader is not None:
            self._reader.join(timeout=2)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_all() -> None:
    """Kill every server still running (atexit: a kernel that exits mid-notebook leaves none behind)."""
    for pid, proc in list(LIVE.items()):
        if proc.poll() is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        LIVE.pop(pid, None)


atexit.register(stop_all)
