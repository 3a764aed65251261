"""What `make lab` would run (make -n: nothing starts), as root and as a user."""

import os
import shutil
import subprocess
import sys

import pytest

from mlx_workbook import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# Under `make test`, make passes its own command line (PYTHON=...) down through MAKEFLAGS: start clean.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHON")}


def dry_run(*args: str) -> str:
    out = subprocess.run(
        ["make", "-n", "lab", f"PYTHON={sys.executable}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_make_lab_opens_the_notebooks_once_each_and_installs_nothing_with_a_given_python():
    commands = dry_run("LAB_ARGS=--no-browser --port=8899")
    lab = next(line for line in commands.splitlines() if "jupyter lab" in line)
    assert "--ServerApp.root_dir=notebooks" in lab and '"[0-9][0-9]_*.py"' in lab  # the .py sources hidden
    assert "--no-browser --port=8899" in commands
    assert "pip install" not in commands  # PYTHON= given: nothing installed (the venv's stamp does it once)
    assert ("--allow-root" in commands) == (os.getuid() == 0)


def test_make_lab_installs_jupyterlab_once(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # an env already made (newer than every requirements file)

    def lab_installs() -> bool:
        out = subprocess.run(
            ["make", "-n", "lab", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, env=CLEAN_ENV
        )
        assert out.returncode == 0, out.stderr
        return "requirements/lab.txt" in out.stdout

    assert lab_installs()  # the first time
    (venv / ".installed-lab").touch()  # what that install leaves
    assert not lab_installs()  # every later time: straight to JupyterLab
