import pytest

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
    ipynb = runner.to_ipynb("00_machine", tmp_path / "00_machine.ipynb")
    with pytest.raises(runner.RunnerError, match="no parameter"):
        runner.resolve_parameters("00_machine", ipynb, "quick", {}, {"repeatz": 3})
    params = runner.resolve_parameters(
        "00_machine", ipynb, "quick", runner.load_profile("quick"), {"repeats": 2}
    )
    assert params["repeats"] == 2 and params["profile"] == "quick"


def test_unknown_notebook_is_a_clear_error(capsys):
    assert runner.main(["report", "99_nothing", "--profile", "test"]) == 2
    assert "unknown notebook" in capsys.readouterr().err


def test_every_profile_names_real_notebooks_and_parameters(tmp_path):
    names = runner.notebook_names()
    for profile in ("quick", "full", "test"):
        for nb, params in runner.load_profile(profile).items():
            assert nb in names, f"{profile}.yaml names unknown notebook {nb}"
            ipynb = runner.to_ipynb(nb, tmp_path / f"{nb}.ipynb")
            runner.resolve_parameters(nb, ipynb, profile, {nb: params}, {})
