"""Run comparison on run folders written with the real results API, with known differences between them."""

import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import results
from mlx_workbook.report import compare, html


def make_run(root, name, *, fast_scale, extra_size=None, repeats=6, seed=0):
    """A run with a 'decode' experiment over two prompt lengths and a 'probe' experiment over sizes.

    Every trial also stores `seconds`, a per-trial measurement column that must not split configurations.
    """
    rng = np.random.default_rng(seed)
    run = results.start_run("99_demo", {"profile": "test"}, run_dir=root / "runs" / name)
    for trial in range(repeats):
        for length in (128, 512):
            tps = 100.0 * (fast_scale if length == 512 else 1.0) * (1 + 0.005 * rng.standard_normal())
            run.record(
                "decode",
                "decode_tps",
                tps,
                "tokens/s",
                trial=trial,
                variant="reference",
                prompt_tokens=length,
                seconds=float(rng.random()),
            )
        for size in [64.0, 256.0] + ([extra_size] if extra_size else []):
            run.record(
                "probe",
                "gb_per_s",
                10.0 * (1 + 0.005 * rng.standard_normal()),
                "GB/s",
                trial=trial,
                size_mb=size,
                seconds=float(rng.random()),
            )
    run.finish()
    return run.run_dir


@pytest.fixture()
def two_runs(tmp_path):
    a = make_run(tmp_path, "20260101T000000_99_demo_cpu-a", fast_scale=1.0, seed=1)
    b = make_run(tmp_path, "20260102T000000_99_demo_cuda-b", fast_scale=2.0, extra_size=1024.0, seed=2)
    return tmp_path, a, b


def test_configuration_columns_exclude_per_trial_measurements(two_runs):
    _, a, _ = two_runs
    cols = compare.configuration_columns(results.read_measurements(a))
    assert set(cols) == {"variant", "prompt_tokens", "size_mb"}


def test_shared_metrics_ratio_and_noise_call(two_runs):
    _, a, b = two_runs
    table = compare.compare_runs(a, b)
    assert len(table) == 4  # 2 decode lengths + 2 probe sizes; the 1024 MB probe is only in B
    assert table.attrs["only_a"] == 0 and table.attrs["only_b"] == 1
    row = table[(table.experiment == "decode") & (table.prompt_tokens == "512")].iloc[0]
    assert row.ratio == pytest.approx(2.0, rel=0.02) and row.ratio_low < 2.0 < row.ratio_high * 1.02
    assert row.beyond_noise and row.call == "B higher" and row.a_n == row.b_n == 6
    same = table[(table.experiment == "decode") & (table.prompt_tokens == "128")].iloc[0]
    assert 0.98 < same.ratio < 1.02
    assert row.configuration == "variant=reference, prompt_tokens=512"
    assert table[table.experiment == "probe"].configuration.tolist() == ["size_mb=64", "size_mb=256"]


def test_identical_runs_are_within_noise(tmp_path):
    a = make_run(tmp_path, "a", fast_scale=1.0, seed=3)
    b = make_run(tmp_path, "b", fast_scale=1.0, seed=3)
    table = compare.compare_runs(a, b)
    assert (table.call == "within noise").all() and (table.ratio == 1.0).all()


def test_too_few_trials_is_not_called(tmp_path):
    a = make_run(tmp_path, "a", fast_scale=1.0, repeats=2)
    b = make_run(tmp_path, "b", fast_scale=3.0, repeats=2)
    table = compare.compare_runs(a, b)
    assert not table.beyond_noise.any() and table.call.str.startswith("too few").all()


def test_compare_writes_page_and_data_and_resolves_run_ids(two_runs):
    root, a, b = two_runs
    page = compare.compare("cpu-a", b.name, root=root)  # a unique part of a run id, and a full one
    assert page == root / "compare" / f"{a.name}__{b.name}.html"
    text = page.read_text()
    assert "B higher" in text and "decode" in text and "http://" not in text and "https://" not in text
    assert pd.read_parquet(page.with_suffix(".parquet")).shape[0] == 4
    assert pd.read_csv(page.with_suffix(".csv")).shape[0] == 4
    html.build_index(root)
    assert f'href="compare/{page.name}"' in (root / "index.html").read_text()


def test_bad_run_names_are_clear_errors(two_runs, tmp_path):
    root, a, _ = two_runs
    with pytest.raises(compare.CompareError, match="no run"):
        compare.resolve_run("nothing-like-this", root)
    with pytest.raises(compare.CompareError, match="matches 2 runs"):
        compare.resolve_run("99_demo", root)
    other = results.start_run("98_other", {}, run_dir=tmp_path / "x" / "runs" / "other")
    other.record("elsewhere", "x", 1.0, "s")
    other.finish()
    with pytest.raises(compare.CompareError, match="share no metric"):
        compare.compare_runs(a, other.run_dir)
    assert compare.main([str(a), "nothing-like-this", "--root", str(root)]) == 2


def test_a_corrupt_summary_is_skipped_by_lookup_and_refused_by_path(two_runs, capsys):
    root, a, b = two_runs
    torn = root / "runs" / "20260103T000000_99_demo_torn"
    torn.mkdir()
    (torn / results.SUMMARY).write_text('{"run_id": "20260103T0000')
    assert compare.resolve_run("cpu-a", root) == a  # the lookup reads every summary: the torn one is skipped
    assert "not valid JSON" in capsys.readouterr().err
    with pytest.raises(compare.CompareError, match="cannot compare .*torn.*not valid JSON"):
        compare.resolve_run(torn, root)
    assert compare.main([str(a), str(torn), "--root", str(root)]) == 2


def make_rotated_run(root, name, *, repeats=5, seed=0):
    """Variants timed in rounds whose order rotates by one each round: `position` (the variant's place in the
    round) changes from trial to trial, while `family` belongs to the variant."""
    rng = np.random.default_rng(seed)
    run = results.start_run("99_demo", {"profile": "test"}, run_dir=root / "runs" / name)
    variants = ["mlx_lm", "pipelined", "sync"]
    for trial in range(repeats):
        order = variants[trial % 3 :] + variants[: trial % 3]
        for position, variant in enumerate(order):
            tps = 100.0 * (1 + 0.01 * rng.standard_normal())
            run.record(
                "decode", "decode_tps", tps, "tokens/s", trial=trial, variant=variant, position=position,
                family="greedy" if variant != "sync" else "blocking",
            )  # fmt: skip
    run.finish()
    return run.run_dir


def test_round_order_columns_do_not_split_a_configuration(tmp_path):
    a = make_rotated_run(tmp_path, "a", seed=1)
    b = make_rotated_run(tmp_path, "b", seed=2)
    assert compare.configuration_columns(results.read_measurements(a)) == ["variant", "family"]
    table = compare.compare_runs(a, b)
    assert sorted(table.variant) == ["mlx_lm", "pipelined", "sync"]
    assert (table.a_n == 5).all() and (table.b_n == 5).all()
    assert not table.call.str.startswith("too few").any()


def test_terminal_summary_is_short_and_names_what_differs(two_runs):
    _, a, b = two_runs
    text = compare.terminal_summary(compare.compare_runs(a, b))
    lines = text.splitlines()
    assert lines[0].startswith("4 shared metrics:") and "1 B higher" in lines[0]
    assert len(lines) == 3 and "decode decode_tps (prompt_tokens=512)" in lines[2]
    assert all(len(line) <= 100 for line in lines)
