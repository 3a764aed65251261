import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlx_workbook.core import results
from mlx_workbook.report import runner


def test_parse_overrides_reads_yaml_values():
    assert runner.parse_overrides("a=1 b=[1,2] c=name d=0.5 e=true") == {
        "a": 1,
        "b": [1, 2],
        "c": "name",
        "d": 0.5,
        "e": True,
    }
    with pytest.raises(runner.RunnerError):
        runner.parse_overrides("novalue")


def test_unknown_profile_and_parameter_fail_before_running(tmp_path):
    with pytest.raises(runner.RunnerError, match="unknown profile"):
        runner.load_profile("turbo")
    with pytest.raises(runner.RunnerError, match="no parameter"):
        runner.resolve_parameters("00_machine", "quick", {}, {"repeatz": 3})
    params = runner.resolve_parameters("00_machine", "quick", runner.load_profile("quick"), {"repeats": 2})
    assert params["repeats"] == 2 and params["profile"] == "quick"


def test_unknown_notebook_is_a_clear_error(capsys):
    assert runner.main(["report", "99_nothing", "--profile", "test"]) == 2
    assert "unknown notebook" in capsys.readouterr().err


def test_every_profile_names_real_notebooks_and_parameters():
    names = runner.notebook_names()
    for profile in ("quick", "full", "test"):
        for nb, params in runner.load_profile(profile).items():
            assert nb in names, f"{profile}.yaml names unknown notebook {nb}"
            runner.resolve_parameters(nb, profile, {nb: params}, {})  # types and presets checked too


def test_p_values_with_spaces_quotes_and_yaml_errors():
    assert runner.parse_overrides("sizes_mb=[64, 1024] name='a b' presets=tiny") == {
        "sizes_mb": [64, 1024],
        "name": "a b",
        "presets": "tiny",
    }
    with pytest.raises(runner.RunnerError, match="unbalanced"):
        runner.parse_overrides("sizes_mb=[64, 1024")
    with pytest.raises(runner.RunnerError, match="cannot read"):
        runner.parse_overrides("x=@home")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"repeats": "abc"}, "repeats='abc': expected a whole number"),
        ({"repeats": 2.5}, "expected a whole number"),
        ({"sizes_mb": [64, "big"]}, "every item must be a whole number"),
        ({"matmul_dtype": 16}, "expected text"),
    ],
)
def test_values_are_checked_against_the_declared_types(overrides, message):
    with pytest.raises(runner.RunnerError, match=message):
        runner.resolve_parameters("00_machine", "test", {}, overrides)


def test_a_single_value_for_a_list_parameter_becomes_a_list_and_presets_are_checked():
    params = runner.resolve_parameters("01_kv_cache", "test", {}, runner.parse_overrides("presets=tiny"))
    assert params["presets"] == ["tiny"]
    assert runner.resolve_parameters("00_machine", "test", {}, {"traffic_mb": 64})["traffic_mb"] == 64
    with pytest.raises(runner.RunnerError, match="unknown preset 'nope'; known presets: .*tiny"):
        runner.resolve_parameters("01_kv_cache", "test", {}, {"presets": ["nope"]})
    with pytest.raises(runner.RunnerError, match="unknown preset 'nope'"):
        runner.resolve_parameters("02_decode_loop", "test", {}, {"model_specs": ["tiny:4", "nope:4"]})
    with pytest.raises(runner.RunnerError, match="unknown preset 'nope'"):
        runner.resolve_parameters("04_bandwidth", "test", {}, {"serving_preset": "nope"})


@pytest.mark.parametrize("p", ["repeats=abc", "presets=['nope']", "sizes_mb=[64, x]"])
def test_bad_p_is_one_line_before_any_run_folder(tmp_path, monkeypatch, capsys, p):
    monkeypatch.setattr(runner, "REPORTS_DIR", tmp_path)
    nb = "01_kv_cache" if "presets" in p else "00_machine"
    assert runner.main(["report", nb, "--profile", "test", "-p", p]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_findings_notebook_runs_after_every_other():
    names = runner.notebook_names()
    findings = [n for n in names if n.endswith("_findings")]
    assert findings and names[-len(findings) :] == findings


def _fake_notebook(run_dir, name, *, error_cell=False):
    """What papermill leaves when a notebook stops: a started run with some trials and a partial .ipynb."""
    import nbformat

    run = results.start_run(name, {"profile": "test"}, run_dir=run_dir)
    run.record_many("exp", [dict(metric="x", value=float(i), unit="s", trial=i) for i in range(4)])
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# partial")]
    if error_cell:
        nb.cells.append(
            nbformat.v4.new_markdown_cell('<span id="papermill-error-cell">Execution failed</span>')
        )
    nbformat.write(nb, str(run_dir / f"{name}.ipynb"))


def _fake_papermill(monkeypatch, raise_exc, **kwargs):
    import papermill

    def execute_notebook(source, output, parameters, **_):
        run_dir = Path(parameters["run_dir"])
        _fake_notebook(run_dir, Path(output).stem, **kwargs)
        raise raise_exc

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)


def test_ctrl_c_settles_the_run_as_interrupted(tmp_path, monkeypatch, capsys):
    _fake_papermill(monkeypatch, KeyboardInterrupt())
    assert runner.run_notebooks(["00_machine", "01_kv_cache"], "test", {"repeats": 2}, root=tmp_path) == 130
    (summary,) = results.find_runs(tmp_path)  # the second notebook never started
    assert summary.status == summary.state == "interrupted" and summary.duration_s is not None
    assert summary.overrides == {"repeats": 2}
    assert (summary.path / results.MEASUREMENTS).exists() and not (summary.path / results.JOURNAL).exists()
    assert (summary.path / "00_machine.html").exists()
    index = (tmp_path / "index.html").read_text()
    assert "interrupted" in index and "repeats=2" in index
    assert "interrupted after" in capsys.readouterr().out


def test_a_dead_kernel_links_to_a_cell_the_page_has(tmp_path, monkeypatch):
    _fake_papermill(monkeypatch, RuntimeError("DeadKernelError: Kernel died"))
    assert runner.run_notebooks(["00_machine"], "test", {}, root=tmp_path) == 1
    (summary,) = results.find_runs(tmp_path)
    assert summary.status == "failed" and summary.error_anchor is None
    index = (tmp_path / "index.html").read_text()
    assert "papermill-error-cell" not in index and f"{summary.run_id}/00_machine.html" in index


def test_a_failed_cell_keeps_its_anchor(tmp_path, monkeypatch):
    import papermill

    _fake_papermill(
        monkeypatch, papermill.PapermillExecutionError(0, 1, "x", "ValueError", "bad", []), error_cell=True
    )
    assert runner.run_notebooks(["00_machine"], "test", {}, root=tmp_path) == 1
    (summary,) = results.find_runs(tmp_path)
    assert summary.error_anchor == "papermill-error-cell" and summary.error == "ValueError: bad"
    assert "00_machine.html#papermill-error-cell" in (tmp_path / "index.html").read_text()


def test_unwritable_reports_folder_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(runner, "REPORTS_DIR", blocker / "reports")
    assert runner.main(["report", "00_machine", "--profile", "test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to") and "make it writable" in err and err.count("\n") == 1


def test_another_runner_timing_on_this_machine_is_warned_about(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "ACTIVE_DIR", tmp_path / "active")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "active").mkdir()
        (tmp_path / "active" / f"{other.pid}.json").write_text(
            json.dumps({"pid": other.pid, "notebook": "02_x"})
        )
        (tmp_path / "active" / "1.json").write_text(json.dumps({"pid": 2**22 + 7, "notebook": "gone"}))
        runner._warn_if_shared("00_machine")
        err = capsys.readouterr().err
        assert "another workbook run is timing on this machine now (02_x" in err and "gone" not in err
        assert not (tmp_path / "active" / "1.json").exists()  # a finished process's file is cleared
    finally:
        other.kill()
        other.wait()


def test_ctrl_c_on_a_real_run_settles_it(tmp_path):
    """SIGINT to the runner's process group, as Ctrl-C in a terminal sends it, while trials are being written."""
    code = (
        "import sys; from pathlib import Path; from mlx_workbook.report import runner; "
        f"sys.exit(runner.run_notebooks(['00_machine'], 'test', {{'repeats': 400}}, root=Path({str(tmp_path)!r})))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        start_new_session=True,  # its own process group, like a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # background jobs ignore SIGINT
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline and not list(tmp_path.glob("runs/*/" + results.JOURNAL)):
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, out
    assert "interrupted after" in out and "Traceback" not in out.split("[00_machine] interrupted")[1]
    (summary,) = results.find_runs(tmp_path)
    assert summary.status == "interrupted" and summary.duration_s > 0
    assert len(results.read_measurements(summary.path)) > 0 and (summary.path / results.MEASUREMENTS).exists()
    assert (summary.path / "00_machine.html").exists() and "interrupted" in (
        tmp_path / "index.html"
    ).read_text()


def test_the_index_shows_an_abandoned_run_and_a_verdict_badge(tmp_path):
    from mlx_workbook.core.results import Finding
    from mlx_workbook.report import html

    left = results.start_run("00_machine", {"profile": "quick"}, run_dir=tmp_path / "runs" / "left")
    summary = results.RunSummary.read(left.run_dir)
    summary.pid = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
    )
    summary.write_atomic()  # a "running" run whose process has exited, as a killed runner leaves it
    done = results.start_run("01_kv_cache", {"profile": "test"}, run_dir=tmp_path / "runs" / "done")
    done.add_finding(
        Finding(id="c", statement="the copies cost nothing", verdict="does not hold", headline=True)
    )
    done.finish()
    index = html.build_index(tmp_path).read_text()
    assert "abandoned" in index and "its process" in index
    assert '<span class="badge badge-does-not-hold">does not hold</span>the copies cost nothing' in index
