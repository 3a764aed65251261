"""Run a measurement in a child process: its JSON config in a temporary file, its JSON result on stdout.

    data = child.run_json([python, "probe.py"], config, timeout=600, env=env)    # the child gets the file's path
    rows = child.run_module("mlx_workbook.x.y", config, timeout=600, env={"VAR": "0"})  # this interpreter, -m

One way for every probe that needs a process of its own (another MLX version's env, or a fresh process of this
interpreter): a child that runs past `timeout` raises ChildTimeout, one that exits non-zero ChildFailed with the
last line it wrote (stderr, else stdout), so each caller words one clear message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


class ChildTimeout(RuntimeError):
    """The child ran past its timeout (and was killed)."""


class ChildFailed(RuntimeError):
    """The child exited non-zero; the message is the last line it wrote."""


def run_json(argv: list[str], config: dict, *, timeout: float, env: dict | None = None) -> dict:
    """Run `argv + [config file]` and return the JSON the child printed on stdout."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        try:
            done = subprocess.run([*argv, path], capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise ChildTimeout(f"ran past {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ChildFailed(tail[0])
    return json.loads(done.stdout)


def run_module(module: str, config: dict, *, timeout: float, env: dict | None = None):
    """`python -m module config.json` in a new process of this interpreter, with this library on its path (a
    notebook's kernel may import it through PYTHONPATH alone); `env` adds to this process's environment."""
    from mlx_workbook import ROOT

    path = os.pathsep.join(filter(None, [str(ROOT / "lib"), os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": path}
    return run_json([sys.executable, "-m", module], config, timeout=timeout, env=full_env)
