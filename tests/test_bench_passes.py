"""The targeted passes in bench/ (behind 01's and 03's claims) on the CPU, and the committed passes re-judged."""

import importlib.util

import pandas as pd
import pytest

from mlx_workbook import ROOT


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slice_update_donation_prints_every_process_size_and_mode(capfd):
    assert (
        load("slice_update_donation").main(["--sizes-mb", "1", "8", "--processes", "2", "--writes", "5"]) == 0
    )
    lines = capfd.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("process")]
    assert lines[0].startswith("mlx ") and len(rows) == 2 * 2 * 4
    assert all("copied" in r and "of n=5" in r for r in rows)
    # MLX's CPU backend writes in place at 8 MiB whatever came before (a copy there takes milliseconds); one
    # write of five may stall past half a copy on a busy machine
    shares = [int(r.split("copied ")[1].split("%")[0]) for r in rows if " 8 MiB" in r]
    assert len(shares) == 8 and max(shares) <= 20


def test_context_step_compares_fixed_and_plain_trials_in_paired_blocks(capsys):
    argv = [
        "--preset",
        "tiny",
        "--fixed",
        "10",
        "40",
        "--plain",
        "10",
        "40",
        "--budget-s",
        "120",  # max_blocks (3) ends it: three blocks on any machine
        "--max-blocks",
        "3",
    ]
    assert load("context_step").main(argv) == 0
    out = capsys.readouterr().out
    assert "fixed 10:" in out and "fixed 40" in out and "plain from 40 against plain from 10" in out


def test_round_noise_measures_every_design_saves_and_reads_back(capsys, tmp_path):
    """Two pairs and one more chunk size on the tiny preset, three blocks each (max_blocks ends it), every token
    interval saved; the saved file read back gives the same table."""
    saved = tmp_path / "intervals.parquet"
    argv = ["--preset", "tiny", "--pairs", "pipelined:pipelined", "pipelined:take_logits", "--chunks", "4"]
    argv += ["--tokens", "48", "--budget-s", "600", "--max-blocks", "3", "--save", str(saved)]
    round_noise = load("round_noise")
    assert round_noise.main(argv) == 0
    measured = capsys.readouterr().out
    for design in ("pipelined/pipelined 4", "pipelined/pipelined 16", "pipelined/take_logits 16"):
        pair, chunk = design.split()
        assert any(line.split()[:3] == [pair, chunk, "3"] for line in measured.splitlines()), design
    assert round_noise.main(["--from", str(saved)]) == 0
    assert capsys.readouterr().out == measured


def test_cliff_tolerance_rejudges_the_reference_twins_as_they_saved_their_lists(capsys):
    """Re-judged at the runs' own tolerance, the committed 03 H200 twins give the cliff lists the notebook saved:
    the same counts and the same differences as `make compare` (report.agreement.list_difference)."""
    import json

    from mlx_workbook.investigations.sdpa_cliff import measure as sdpa_measure
    from mlx_workbook.report import agreement

    reference = ROOT / "reports" / "reference"
    runs = [sorted(folder.glob("*_03_sdpa_cliff_cuda-*")) for folder in (reference, reference / "repeat")]
    if not all(runs):
        pytest.skip("no pair of committed 03 GPU runs")
    a, b = runs[0][-1], runs[1][-1]
    summary = json.loads((a / "summary.json").read_text())
    tolerance = summary["params"]["tolerance"]
    assert load("cliff_tolerance").main([str(a), str(b), "--tolerances", str(tolerance)]) == 0
    out = capsys.readouterr().out.splitlines()
    row = out[out.index("Cliff lists re-judged at each tolerance:") + 2].split()
    saved = agreement.list_difference(a, b, "cliffs")
    assert summary["method_version"] == sdpa_measure.METHOD_VERSION  # the reference runs the code's method
    assert [float(row[0]), *map(int, row[1:5])] == [
        tolerance,
        saved["n_a"],
        saved["n_b"],
        saved["n_a"] - len(saved["only_a"]),
        len(saved["only_a"]),
    ]
    assert "calls < 0.2 ms" in "\n".join(out)
    # the model's odds beside every tolerance, and again were every step surer
    assert out[out.index("Cliff lists re-judged at each tolerance:") + 1].split()[-2:] == [
        "model_differing",
        "model_p_identical",
    ]
    assert 0 <= float(row[-1]) <= 1 and any(line.startswith("The model's probability") for line in out)


def test_step_processes_rejudges_its_committed_rows_into_its_committed_tables(capsys):
    """bench/step_processes.py on the committed 03 H200 twins and the rows its GPU passes saved (--rows, and --every
    where the pass was run so): the same disputed steps, per-process ratios and the runs' own ratios as each committed
    table whose twins are committed (older passes keep their table beside runs the reference no longer holds)."""
    reference = ROOT / "reports" / "reference"
    checked = 0
    for saved in sorted((reference / "bench").glob("step_processes_*")):
        table = (saved / "step_processes.txt").read_text().splitlines()
        names = table[1].split()[1], table[1].split()[3].rstrip(":")  # "# RUN_A and RUN_B: ..."
        a, b = reference / names[0], reference / "repeat" / names[1]
        if not (a.exists() and b.exists()):
            continue
        every = ["--every"] if "--every" in table[0].split() else []
        argv = [str(a), str(b), "--rows", str(saved / "step_processes.parquet"), *every]
        assert load("step_processes").main(argv) == 0
        out = capsys.readouterr().out
        assert out.splitlines() == table[1:], saved.name  # below the command line
        assert "disputed steps" in out and "fresh processes" in out
        checked += 1
    if not checked:
        pytest.skip("no committed step_processes pass with its twins")


def test_input_states_times_every_step_both_ways_in_fresh_processes_and_reads_back(capsys, tmp_path):
    """bench/input_states.py on tiny heads: every step kept and rebuilt in each fresh process, every pass, and the
    saved rows judged again (--rows) into the same table."""
    script = load("input_states")
    small = [
        "--pairs",
        "3",
        "--passes",
        "2",
        "--heads",
        "2",
        "1",
        "16",
        "--target-ms",
        "1",
        "--min-calls",
        "1",
    ]
    assert script.main([*small, "--processes", "2", "--out", str(tmp_path)]) == 0
    measured = capsys.readouterr().out
    rows = __import__("pandas").read_parquet(tmp_path / "input_states.parquet")
    assert rows.process.nunique() == 2 and set(rows.way) == {"kept", "rebuilt"}
    per_pass = rows.groupby(["process", "step", "way", "look"]).pair.nunique()
    assert len(per_pass) == 2 * len(script.STEPS) * 2 * 2 and (per_pass == 3).all()
    # one call count per step and process, whichever way its buffers were built
    assert (rows.groupby(["process", "step"]).calls.nunique() == 1).all()
    assert script.main([*small, "--rows", str(tmp_path / "input_states.parquet")]) == 0
    assert capsys.readouterr().out == measured


def test_screen_agreement_rejudges_the_committed_twins_into_its_committed_table(capsys):
    """bench/screen_agreement.py on the committed 03 H200 twins: the same table as committed beside them (the
    paired reading is method 12's screen, so the table moves only when the screen's rule does)."""
    reference = ROOT / "reports" / "reference"
    checked = 0
    for saved in sorted((reference / "bench").glob("screen_agreement_*.txt")):
        table = saved.read_text().splitlines()
        names = table[1].split()[2].rstrip(","), table[1].split()[4].rstrip(":")  # "# A RUN_A, B RUN_B: ..."
        a, b = reference / names[0], reference / "repeat" / names[1]
        if not (a.exists() and b.exists()):
            continue
        assert load("screen_agreement").main([str(a), str(b)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out == table[1:], saved.name
        rules = {(line.split()[0], line.split()[1]) for line in out[2:]}
        assert rules == {(s, r) for s in ("prefill", "decode", "versions") for r in ("medians", "paired")}
        checked += 1
    if not checked:
        pytest.skip("no committed screen_agreement table with its twins")


def test_decode_sdpa_path_times_every_state_and_length_in_both_settings(capsys, tmp_path):
    """bench/decode_sdpa_path.py on the CPU (no cuDNN here: it only has to run): every setting, state and length
    timed in every round of every fresh process, the rows saved, the ratio table printed for each state."""
    script = load("decode_sdpa_path")
    argv = ["--processes", "1", "--rounds", "2", "--calls", "1", "--head-dim", "64", "--out", str(tmp_path)]
    assert script.main(argv) == 0
    rows = pd.read_parquet(tmp_path / "decode_sdpa_path.parquet")
    assert len(rows) == len(script.SETTINGS) * len(script.STATES) * len(script.LENGTHS) * 2
    assert set(rows.setting) == set(script.SETTINGS) and (rows.us > 0).all()
    out = capsys.readouterr().out
    assert "ratio to 255 keys:" in out and all(state in out for state in script.STATES)


def test_decode_sdpa_path_pairs_each_length_with_255_keys_of_the_same_round():
    """A drift that slows a whole round cancels: 256 keys at twice 255's time in every round is 2.00x exactly."""
    script = load("decode_sdpa_path")
    rows = [
        dict(
            setting="default",
            process=1,
            state="fresh",
            round=r,
            length=n,
            us=drift * (20 if n == 256 else 10),
        )
        for r, drift in enumerate([1.0, 3.0, 0.5])
        for n in script.LENGTHS
    ]
    table = script.summarize(pd.DataFrame(rows)).set_index("length")
    assert table.loc[256, "ratio"] == pytest.approx(2.0) and table.loc[256, "high"] == pytest.approx(2.0)
    assert table.loc[257, "ratio"] == pytest.approx(1.0) and table.loc[256, "n"] == 3


def test_gqa_kernel_path_times_both_variants_of_every_case_in_both_settings(capsys, tmp_path):
    """bench/gqa_kernel_path.py on the CPU (no cuDNN here: it only has to run): 03's GQA cases through its probe in a
    fresh process per setting, every variant, kind and length in every round, the rows saved, the table printed."""
    script = load("gqa_kernel_path")
    argv = ["--processes", "1", "--repeats", "2", "--prefill", "16", "--decode", "32", "--head-dim", "64"]
    assert script.main([*argv, "--target-ms", "0.5", "--out", str(tmp_path)]) == 0
    rows = pd.read_parquet(tmp_path / "gqa_kernel_path.parquet")
    counts = rows.groupby(["setting", "kind", "variant"]).size()
    assert len(counts) == len(script.SETTINGS) * 2 * 2 and (counts == 2).all() and (rows.ms > 0).all()
    out = capsys.readouterr().out
    assert "repeat_kv / sdpa" in out and "cudnn off" in out and "decode" in out


def test_gqa_kernel_path_pairs_the_variants_by_round():
    """A drift that slows a whole round cancels: repeat_kv at three times sdpa's time in every round is 3.00x."""
    script = load("gqa_kernel_path")
    rows = [
        dict(
            setting=s,
            process=1,
            kind="decode",
            length=512,
            trial=r,
            variant=v,
            ms=drift * (3 if v == "repeat_kv" else 1),
        )
        for s in ("cudnn off", "default")
        for r, drift in enumerate([1.0, 4.0, 0.5])
        for v in ("sdpa", "repeat_kv")
    ]
    table = script.summarize(pd.DataFrame(rows))
    assert list(table.setting) == ["default", "cudnn off"]
    assert table.ratio.tolist() == pytest.approx([3.0, 3.0]) and (table.n == 3).all()
    assert table.high.tolist() == pytest.approx([3.0, 3.0])


def test_identical_odds_are_certain_far_from_the_envelope_and_a_coin_toss_on_its_edge():
    """The model behind the cliff lists' odds: steps far inside or outside the widened envelope are listed alike by
    any two runs; a step whose ratio sits on the edge is listed by half the runs, however sure each run is."""
    odds = load("cliff_tolerance").identical_odds

    def steps(ratio: float, half: float = 0.01, other: float | None = None) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "sweep": ["prefill"] * 2,
                "before_length": [127, 511],
                "length": [128, 512],
                "confirm_ratio": [0.5, ratio],  # the first a clear drop, whatever the second
                "confirm_low": [0.5 * (1 - half), ratio * (1 - half)],
                "confirm_high": [0.5 * (1 + half), ratio * (1 + half)],
                "other_processes": ["0.51 (down)", f"{other or ratio:.6f} (unclear)"],
                "call_ms": [0.1, 0.1],
                "expected_low": [1.0, 1.0],
                "expected_high": [1.0, 1.0],
            }
        )

    far = odds(steps(1.0), steps(1.0), tolerance=0.25)
    assert far["steps"] == 2 and far["p_identical"] > 0.999 and far["expected_differing"] < 0.001
    # two runs 4% apart around the widened edge (1.0 x 1.25), with no interval to keep them off it
    a, b = steps(1.25 * 1.02, half=0.0, other=1.25 / 1.02), steps(1.25 / 1.02, half=0.0, other=1.25 * 1.02)
    for scale in (1.0, 0.1):
        on_edge = odds(a, b, tolerance=0.25, scale=scale)
        assert on_edge["p_identical"] == pytest.approx(0.5, abs=0.01)
        assert on_edge["expected_differing"] == pytest.approx(0.5, abs=0.01)
