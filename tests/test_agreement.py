"""Verdict agreement between two runs and between two sets of runs (report/agreement.py, make compare)."""

import pandas as pd
import pytest

from mlx_workbook.core import results, verdicts
from mlx_workbook.report import agreement, compare


def make_run(folder, notebook, found: dict[str, str], cliffs: list[tuple] | None = None):
    """A finished run of `notebook` with one claim finding per {id: verdict}, a 'measured' finding (not a
    claim, never counted) and, if given, a saved cliff list of (sweep, before, length, excess)."""
    run = results.start_run(notebook, {"profile": "test"}, run_dir=folder)
    for trial in range(3):
        run.record("x", "seconds", 1.0 + 0.01 * trial, "s", trial=trial)
    for claim_id, verdict in found.items():
        run.add_finding(results.Finding(claim_id, f"{claim_id} {verdict}", verdict))
    if "c1" in found:  # a second claim judged by c1's measurement: listed on the findings page, counted once
        run.add_finding(results.Finding("c1_twin", "same", found["c1"], measured={"same_as": "c1"}))
    run.add_finding(results.Finding("a_number", "just a measurement", "measured"))
    if cliffs is not None:
        table = pd.DataFrame(cliffs, columns=["sweep", "before_length", "length", "excess"])
        run.save_table(table, "cliffs")
    run.finish()
    return run.run_dir


@pytest.fixture()
def two_sets(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_run(
        a / "20260101T000000_01_x_cpu",
        "01_x",
        {"c1": verdicts.HOLDS, "c2": verdicts.INCONCLUSIVE, "c3": verdicts.NOT_APPLICABLE},
    )
    make_run(
        b / "20260102T000000_01_x_cpu",
        "01_x",
        {"c1": verdicts.HOLDS, "c2": verdicts.DOES_NOT_HOLD, "c3": verdicts.NOT_APPLICABLE},
    )
    make_run(a / "20260101T000100_03_y_cpu", "03_y", {"c4": verdicts.HOLDS}, [("prefill", 128, 129, 2.0)])
    make_run(
        b / "20260102T000100_03_y_cpu",
        "03_y",
        {"c4": verdicts.HOLDS},
        [("prefill", 128, 129, 2.1), ("decode", 255, 256, 1.5)],
    )
    make_run(a / "20260101T000200_04_z_cpu", "04_z", {"c5": verdicts.HOLDS})  # in A only
    return a, b


def test_sets_pair_by_notebook_and_count_agreement_over_claims_judged_from_data(two_sets):
    found = agreement.of_paths(*two_sets)
    assert list(found.pairs) == ["01_x", "03_y"] and found.only_a == ["04_z"]
    # c3 is out of scope in both: listed, but not in the share judged from data; 'measured' is no claim
    assert set(found.verdicts.id) == {"c1", "c2", "c3", "c4"}
    assert len(found.judged) == 3 and found.agree_share == pytest.approx(2 / 3)
    assert found.inconclusive_share("a") == (1, 3) and found.inconclusive_share("b") == (0, 3)
    (cliffs,) = found.lists
    assert not cliffs["identical"] and cliffs["only_b"] == [("decode", "255", "256")]
    assert cliffs["columns"] == ["sweep", "before_length", "length"]  # the float excess is no identity
    assert any("c2: A inconclusive, B does not hold" in line for line in found.summary_lines())
    per = found.per_notebook().set_index("notebook")
    assert per.loc["01_x", ["judged", "agree", "inconclusive_a", "inconclusive_b"]].tolist() == [2, 1, 1, 0]


def test_interval_width_is_in_percent_of_the_value():
    width = agreement.interval_width
    assert (
        width(results.Finding("x", "", measured={"value": -1.0, "low": -3.0, "high": 2.0, "unit": "%"})) == 5
    )
    assert width(
        results.Finding("x", "", measured={"value": 2.0, "low": 1.9, "high": 2.1, "unit": "x"})
    ) == pytest.approx(10)
    assert pd.isna(width(results.Finding("x", "", measured={"value": 2.0, "unit": "x"})))


def test_identical_lists_and_the_newest_run_per_notebook(tmp_path, two_sets):
    a, _ = two_sets
    newer = make_run(a / "20260105T000000_01_x_cpu", "01_x", {"c1": verdicts.DOES_NOT_HOLD})
    assert agreement.run_set(a)["01_x"] == newer
    same = agreement.of_paths(a / "20260101T000100_03_y_cpu", a / "20260101T000100_03_y_cpu")
    assert same.agree_share == 1.0 and same.lists[0]["identical"]


def test_make_compare_on_two_sets_writes_one_page_per_notebook_and_the_agreement(two_sets, tmp_path, capsys):
    a, b = two_sets
    assert compare.main([str(a), str(b), "--root", str(tmp_path), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 agree (67%)" in out and "Inconclusive in A: 1 of 3" in out
    page = (tmp_path / "cmp" / "a__b.html").read_text()
    assert "01_x" in page and "Saved list: cliffs" in page
    assert len(list((tmp_path / "cmp").glob("2026*__2026*.html"))) == 2


def test_a_folder_without_runs_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    with pytest.raises(compare.CompareError):
        compare.compare(tmp_path / "empty", tmp_path / "empty", tmp_path)


def test_a_saved_key_names_the_rows_and_whole_number_floats_are_configuration(tmp_path):
    def run(folder, rows):
        run = results.start_run("03_y", {"profile": "test"}, run_dir=folder)
        table = pd.DataFrame(rows, columns=["sweep", "head_dim", "length", "ratio"])
        run.save_table(table, "cliffs", key=["sweep", "head_dim", "length"])
        run.finish()
        return run.run_dir

    a = run(tmp_path / "a", [("decode", 128.0, 256.0, 2.0), ("decode", 80.0, 256.0, 0.5)])
    b = run(tmp_path / "b", [("decode", 128.0, 256.0, 2.1), ("decode", 64.0, 256.0, 1.5)])
    d = agreement.list_difference(a, b, "cliffs")
    assert d["columns"] == ["sweep", "head_dim", "length"]
    assert d["only_a"] == [("decode", "80", "256")] and d["only_b"] == [("decode", "64", "256")]
    (tmp_path / "a" / results.TABLES / "cliffs.key").unlink()
    (tmp_path / "b" / results.TABLES / "cliffs.key").unlink()
    # without a key: head_dim and length (whole numbers) still name a row; the measured ratio does not
    assert agreement.list_difference(a, b, "cliffs")["columns"][:3] == ["sweep", "head_dim", "length"]
    with pytest.raises(ValueError, match="not in the table"):
        results.start_run("03_y", {}, run_dir=tmp_path / "c").save_table(
            pd.DataFrame({"x": [1]}), "cliffs", key=["y"]
        )


def test_a_cliff_only_in_one_run_that_the_other_left_undecided_is_counted_as_such(tmp_path):
    """03 saves the steps it could not decide beside its cliffs: a difference there is no contradiction."""

    def run(folder, found, undecided):
        run = results.start_run("03_y", {"profile": "test"}, run_dir=folder)
        columns = ["sweep", "length", "verdict", "ratio"]
        run.save_table(pd.DataFrame(found, columns=columns), "cliffs", key=["sweep", "length", "verdict"])
        run.save_table(pd.DataFrame(undecided, columns=columns), "undecided_steps", key=["sweep", "length"])
        run.finish()
        return run.run_dir

    a = run(
        tmp_path / "a", [("decode", 256, "up", 2.0), ("prefill", 129, "up", 1.2)], [("decode", 513, "", 1.1)]
    )
    b = run(
        tmp_path / "b", [("decode", 256, "up", 2.1), ("decode", 513, "up", 1.2)], [("prefill", 129, "", 1.1)]
    )
    d = agreement.list_difference(a, b, "cliffs")
    assert d["only_a"] == [("prefill", "129", "up")] and d["only_b"] == [("decode", "513", "up")]
    assert d["undecided_b"] == 1 and d["undecided_a"] == 1  # each run's extra cliff is undecided in the other
    assert agreement.list_line(d).endswith(
        "1 only in A (1 of them undecided in B), 1 only in B (1 undecided in A)."
    )
    (tmp_path / "b" / results.TABLES / "undecided_steps.csv").unlink()  # an older run: no companion list
    assert agreement.list_difference(a, b, "cliffs")["undecided_b"] is None
