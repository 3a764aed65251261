"""Running the SDPA probe under MLX versions: the installed one in this process, and one clear message (never an
exception) for a version that cannot be installed. Installs of other versions are tested only with a local
wheel folder (MLX_WHEELS_DIR), so the suite needs no network."""

import os
import sys
from pathlib import Path

import pytest

from mlx_workbook.probes import sdpa_probe as probe
from mlx_workbook.probes import versions

CONFIG = {
    "cases": probe.cases_from_grid("prefill", [16, 32], ["causal", "bool"], ["float32"], [16], 4, 2),
    "repeats": 2,
    "warmup": 1,
    "target_ms": 0.5,
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "CACHE_DIR", tmp_path / "mlx-versions")
    monkeypatch.setattr(versions, "_network_down", False)
    return tmp_path / "mlx-versions"


def test_requirements_follow_the_backend_package():
    assert versions.requirement_sets("0.29.1", "mlx-cpu") == [["mlx==0.29.1", "mlx-cpu==0.29.1"]]
    assert versions.requirement_sets("0.30.0", "mlx-cuda-13") == [
        ["mlx==0.30.0", "mlx-cuda-13==0.30.0"],
        ["mlx==0.30.0", "mlx-cuda==0.30.0"],
    ]
    assert versions.requirement_sets("0.30.0", "mlx-metal") == [["mlx==0.30.0"]]
    assert versions.env_dir("0.29.1", "mlx-cpu").name == "0.29.1-cpu"


def test_current_version_runs_the_probe_in_this_process():
    result = versions.run_probe("current", CONFIG)
    assert result.ok, result.message
    assert result.version == versions.current_version() == result.data["mlx"]
    assert len(result.data["rows"]) == 2 * 2 * 2 and not result.data["errors"]
    assert all(r["ms"] > 0 for r in result.data["rows"])


def test_compare_resolves_current_once_and_alternates_passes(monkeypatch):
    seen, stored = [], []

    def fake(version, config, **kw):
        seen.append(version)
        if version == "9.9.9":
            return versions.VersionResult(version, "unavailable", "MLX 9.9.9: no wheel")
        return versions.VersionResult(version, "ok", data={"rows": [{"trial": t} for t in range(2)]})

    monkeypatch.setattr(versions, "run_probe", fake)
    here = versions.current_version()
    out = versions.compare(
        ["current", "9.9.9", "0.30.0", here], {"repeats": 2}, passes=2, on_result=stored.append
    )
    assert seen == [here, "9.9.9", "0.30.0", "0.30.0", here]  # the unavailable version is tried once
    assert [r.version for r in out] == [here, "9.9.9", "0.30.0"] and not out[1].ok
    assert [row["trial"] for row in out[0].data["rows"]] == [0, 1, 2, 3] and len(stored) == 5


def test_no_network_gives_one_clear_message(cache, monkeypatch, tmp_path):
    # An index nobody listens on, whatever pip's own configuration says: every download fails to connect.
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.setenv(var, "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.delenv("MLX_WHEELS_DIR", raising=False)
    first = versions.run_probe("0.29.1", CONFIG, timeout=120)
    assert (
        first.status == "unavailable" and "no network" in first.message and "MLX_WHEELS_DIR" in first.message
    )
    second = versions.run_probe("0.30.0", CONFIG)  # known offline: answered without another pip attempt
    assert second.status == "unavailable" and "MLX 0.30.0" in second.message and second.seconds < 1


def test_wheel_folder_without_the_wheel_says_so(cache, tmp_path):
    empty = tmp_path / "wheels"
    empty.mkdir()
    result = versions.run_probe("0.29.1", CONFIG, wheels_dir=str(empty), timeout=120)
    assert result.status == "unavailable" and "no wheel" in result.message and str(empty) in result.message
    assert (cache / "0.29.1-cpu" / "install.log").exists() or "cpu" not in str(versions.backend_package())


@pytest.mark.skipif(
    not os.environ.get("MLX_WHEELS_DIR"), reason="needs a folder of MLX wheels (MLX_WHEELS_DIR)"
)
def test_another_version_from_a_wheel_folder(cache):
    wheels = Path(os.environ["MLX_WHEELS_DIR"])
    version = sorted(p.name.split("-")[1] for p in wheels.glob("mlx-0.*.whl"))[0]
    result = versions.run_probe(version, CONFIG)
    assert result.ok and result.data["mlx"] == version, result.message
    assert (cache / versions.env_dir(version).name / versions.READY).exists()


def test_a_ready_install_under_mlx_version_sites_runs_with_this_interpreter(tmp_path, monkeypatch):
    site = tmp_path / "sites" / "0.0.1"
    (site / "mlx").mkdir(parents=True)
    monkeypatch.setenv(versions.SITES_ENV, str(tmp_path / "sites"))
    python, env = versions._installed_site("0.0.1")
    assert python == sys.executable and env["PYTHONPATH"] == str(site)
    assert versions._installed_site("0.0.2") is None
