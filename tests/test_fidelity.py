"""bench/fidelity.py: the library against mlx_lm.benchmark in paired blocks, on the tiny preset (CPU, seconds)."""

import importlib.util
import json
import math

import pytest

from mlx_workbook import ROOT
from mlx_workbook.core import blocks, intervals, verdicts


def load_bench():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "bench" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fidelity = load_bench()


GEN_TOKENS, CHUNK = 12, 4  # three chunks of 4 tokens per side and block


@pytest.fixture(scope="module", params=[0, CHUNK], ids=["whole-trials", "chunked"])
def result(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity") / "tiny.json"
    argv = [
        "--preset",
        "tiny",
        "-p",
        "8",
        "-g",
        str(GEN_TOKENS),
        "--chunk-tokens",
        str(request.param),
        "--budget-s",
        "30",
        "--min-blocks",
        "3",
        "--max-blocks",
        "4",
    ]
    code = fidelity.main([*argv, "--out", str(out)])
    data = json.loads(out.read_text())
    assert code == (0 if data["decode_tps"]["decided"]["verdict"] == verdicts.HOLDS else 1)
    return data


def test_schema(result):
    assert {
        "model",
        "environment",
        "settings",
        "benchmark_settings",
        "decode_tps",
        "prompt_tps",
        "host",
        "blocks",
        "chunk_tokens",
    } <= set(result)
    for metric in ("decode_tps", "prompt_tps"):
        assert {"library", "mlx_lm_benchmark", "ratio"} <= set(result[metric])
    decided = result["decode_tps"]["decided"]
    assert decided["stop_reason"] in {blocks.DECIDED, blocks.BUDGET, blocks.MAX_BLOCKS}
    assert decided["method"] == "t on paired log-ratios"
    assert decided["band_pct"] == [-2.0, 2.0]
    assert result["benchmark_settings"]["prefill_step_size"] > 0  # mlx_lm.benchmark's own default
    assert result["host"]["n"] == len(result["blocks"])


def test_ratio_comes_from_the_paired_blocks(result):
    table = result["blocks"]
    decided = result["decode_tps"]["decided"]
    assert 3 <= len(table) == decided["n_blocks"] <= 4
    for b in table:
        # both sides, once each, in every block
        assert sorted(b["order"]) == sorted([fidelity.BENCHMARK, fidelity.LIBRARY])
        assert b["log_ratio"] == pytest.approx(math.log(b["library_decode_tps"] / b["benchmark_decode_tps"]))
    # The decided ratio is the t interval on exactly these per-block log-ratios at the look's confidence.
    again = intervals.log_ratio_interval([b["log_ratio"] for b in table], decided["confidence"])
    assert (decided["value"], decided["low"], decided["high"]) == pytest.approx(
        (again.value, again.low, again.high)
    )
    change = verdicts.Interval(**decided["change_pct"])
    assert decided["verdict"] == verdicts.no_effect(change, 2.0)
    paired = result["decode_tps"]["ratio"]  # the 95% summary pairs the same blocks
    assert paired["n"] == len(table) and paired["value"] == pytest.approx(again.value)


def test_chunked_blocks_take_their_values_from_the_kept_intervals(result):
    """Chunked: every block holds both sides' three chunks, each chunk's first interval dropped (3 of 4 kept),
    and each side's value is g tokens over (g - 1) kept intervals' mean time; whole trials carry no chunks."""
    if not result["chunk_tokens"]:
        assert all("chunk_intervals" not in b for b in result["blocks"])
        return
    g = GEN_TOKENS
    for b in result["blocks"]:
        assert b["chunk_intervals"] == [CHUNK - 1] * (g // CHUNK)
        for side in ("library", "benchmark"):
            kept_s = b[f"{side}_chunk_kept_s"]
            assert len(kept_s) == len(b[f"{side}_chunk_dropped_s"]) == g // CHUNK
            mean_interval = sum(kept_s) / sum(b["chunk_intervals"])
            assert b[f"{side}_decode_tps"] == pytest.approx(g / ((g - 1) * mean_interval))
            assert b[f"{side}_prompt_tps"] == pytest.approx(8 / b[f"{side}_chunk_dropped_s"][0])


def test_chunked_trial_is_generation_tps_with_one_chunk():
    """One chunk of a whole trial keeps its g - 1 decode intervals: the value is mlx-lm's g / (t_last -
    t_first); with chunks, the dropped (switch) intervals do not count, however long."""
    stamps = [0.5, 0.6, 0.7, 0.8, 0.9]  # a whole trial's token times: TTFT 0.5 s, then 0.1 s per token
    gaps = [stamps[0], *(b - a for a, b in zip(stamps, stamps[1:]))]
    whole = fidelity.chunked_trial([gaps], prompt_tokens=10, gen_tokens=5)
    assert whole["decode_tps"] == pytest.approx(5 / (stamps[-1] - stamps[0]))
    assert whole["prompt_tps"] == pytest.approx(10 / 0.5)
    chunked = fidelity.chunked_trial([[0.5, 0.1], [9.0, 0.1], [7.0]], prompt_tokens=10, gen_tokens=5)
    assert chunked["decode_tps"] == pytest.approx(whole["decode_tps"])
    assert chunked["chunk_intervals"] == [1, 1, 0]


def test_benchmark_source_check(monkeypatch):
    fidelity.check_benchmark_source()  # the installed mlx-lm makes the call benchmark_trial makes
    monkeypatch.setattr(fidelity, "BENCHMARK_CALLS", (*fidelity.BENCHMARK_CALLS, "no_such_call()"))
    with pytest.raises(RuntimeError, match="no_such_call"):
        fidelity.check_benchmark_source()


@pytest.mark.parametrize(
    "argv",
    [
        ["--min-blocks", "2"],
        ["--budget-s", "0"],
        ["-g", "1"],
        ["--chunk-tokens", "1"],
        ["--chunk-tokens", "-4"],
    ],
)
def test_bad_parameters_fail_before_work(argv):
    with pytest.raises(SystemExit):
        fidelity.parse_args(argv)
    with pytest.raises(ValueError, match="no-such-preset"):  # models.ModelError
        fidelity.parse_args(["--preset", "no-such-preset"])
