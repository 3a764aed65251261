"""The serving and pre-quantized measurements on real tiny MLX models (CPU): sweep plans, variants, batching,
prompt caching, pre-quantized vs load-time quantization."""

import itertools
import random
import tempfile
import time

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from mlx_workbook import models
from mlx_workbook.core import blocks, results
from mlx_workbook.investigations.bandwidth import measure as serving
from mlx_workbook.investigations.bandwidth import prequant
from mlx_workbook.probes import decode, kernels

CEILING = kernels.Ceiling(10.0, 9.0, 11.0, "test")


@pytest.fixture
def run(tmp_path):
    return results.start_run("04_bandwidth", {}, run_dir=tmp_path / "run")


def arrays(lm):
    return dict(tree_flatten(lm.model.parameters()))


def test_sweep_plan_checks_presets_and_widths_before_building():
    plan = serving.sweep_plan(["tiny", "tiny-moe"], [0, 4], [8], {"tiny": [3]})
    assert plan == [("tiny", [3]), ("tiny-moe", [8])]
    with pytest.raises(models.ModelError, match="unknown preset"):
        serving.sweep_plan(["tiny", "nope"], [0], [0], {})
    with pytest.raises(models.ModelError, match="bits=7"):
        serving.sweep_plan(["tiny"], [7], [0], {})
    with pytest.raises(models.ModelError, match="not in the sweep"):
        serving.sweep_plan(["tiny"], [0], [0], {"mixtral-8x7b": [4]})
    with pytest.raises(ValueError, match="gen_tokens"):
        serving.validate(
            batch_sizes=[1],
            lengths=[4],
            prefix_tokens=4,
            suffix_tokens=4,
            serving_bits=4,
            prequant_bits=4,
            presets=["tiny"],
            gen_tokens=1,
        )
    with pytest.raises(models.ModelError, match="dtype"):
        serving.validate(
            batch_sizes=[1],
            lengths=[4],
            prefix_tokens=4,
            suffix_tokens=4,
            serving_bits=4,
            prequant_bits=4,
            presets=["tiny"],
            dtype="int8",
        )
    with pytest.raises(ValueError, match="lengths"):
        serving.validate(
            batch_sizes=[1],
            lengths=[1],
            prefix_tokens=4,
            suffix_tokens=4,
            serving_bits=4,
            prequant_bits=4,
            presets=["tiny"],
        )
    ok = dict(batch_sizes=[1], lengths=[4], prefix_tokens=4, suffix_tokens=4, serving_bits=4, prequant_bits=4)
    for bad, match in (
        ({"prequant_chunk_tokens": 1}, "prequant_chunk_tokens"),
        ({"prequant_tokens": 1}, "prequant_tokens"),
        ({"prequant_loads": 0}, "prequant_loads"),
        ({"cold_warm_runs": 1}, "cold_warm_runs"),
    ):
        with pytest.raises(ValueError, match=match):
            serving.validate(presets=["tiny"], **ok, **bad)


def test_variants_quantize_one_build_into_the_same_weights_as_presets():
    got = dict(serving.variants("tiny", [0, 8, 4], "bfloat16", 64))
    assert got[0].bits is None and got[8].bits == 8 and got[4].bits == 4
    for bits in (8, 4):
        ref = arrays(models.build_preset("tiny", bits=bits))
        ours = arrays(got[bits])
        assert ours.keys() == ref.keys()
        assert all(mx.array_equal(ours[k], ref[k]).item() for k in ref)
    assert got[0].model is None  # the last twin consumed the unquantized build


def test_a_configuration_that_does_not_fit_is_skipped_with_its_reason(run, monkeypatch):
    # Leave room for a 4-bit tiny model but not for its float32 build: the unquantized one is skipped.
    need = models.build_preset("tiny", dtype="float32", bits=4, materialize=False).weight_bytes()
    from mlx_workbook.core import env as envmod

    memory = envmod.capture().memory_bytes
    monkeypatch.setattr(models.loading, "MEMORY_HEADROOM", 2 * need / memory)
    skipped = serving.size_sweep(
        run,
        [("tiny", [0, 4])],
        CEILING,
        dtype="float32",
        prompt_tokens=8,
        gen_tokens=4,
        repeats=2,
        warmup_tokens=2,
        cold_warm_runs=3,
    )
    assert [s["label"] for s in skipped] == ["tiny fp32"] and "needs" in skipped[0]["reason"]
    df = run.measurements
    assert set(df[df.experiment == "decode"].label) == {"tiny 4-bit"}
    eff = df[(df.experiment == "decode") & (df.metric == "efficiency")]
    steady = df[(df.experiment == "decode") & (df.metric == "steady_tps")]
    # the preset's cold run is followed by cold_warm_runs warm trials (more than repeats)
    assert len(eff) == 3 and (eff.value.values == steady.value.values / eff.roofline_tps.values).all()
    assert df[df.experiment == "skipped"].reason.iloc[0] == skipped[0]["reason"]
    assert df[df.experiment == "skipped"].label.iloc[0] == "tiny fp32"
    # the first configuration that ran stores its first generation as the preset's cold start, apart
    cold = df[df.experiment == serving.COLD].set_index("metric")
    assert set(cold.label) == {"tiny 4-bit"} and cold.index.is_unique
    assert {"ttft_ms", "decode_tps", "wall_s"} <= set(cold.index)
    assert cold.value["wall_s"] >= cold.value["ttft_ms"] / 1e3 and cold.generated_tokens["wall_s"] == 4


def test_batch_generator_batch_of_one_emits_generate_step_tokens():
    lm = models.build_preset("tiny", dtype="float32")
    prompt = models.random_prompt(lm, 12, seed=3)
    ref = decode.measure_generation(lm.model, prompt, 10).tokens
    (ours,), stats = serving.batch_generate_tokens(lm, [prompt.tolist()], 10)
    assert ours == ref and stats.generation_tokens == 10
    two, stats = serving.batch_generate_tokens(lm, [prompt.tolist()] * 2, 6)
    assert two[0] == two[1] == ref[:6] and stats.generation_tokens == 12


def test_batch_sweep_records_every_trial_against_the_batched_roofline(run):
    lm = models.build_preset("tiny", bits=4)
    serving.batch_sweep(run, lm, CEILING, batch_sizes=[1, 3], prompt_tokens=8, gen_tokens=6, repeats=2)
    df = run.measurements
    agg = df[df.metric == "aggregate_tps"]
    assert sorted(agg.batch.unique()) == [1, 3] and len(agg) == 4
    roof = agg.groupby("batch").roofline_tps.first()
    assert 2.0 < roof[3] / roof[1] <= 3.0  # one weight read serves three sequences


def test_prompt_cache_gives_the_same_first_token_and_trims_back_in_paired_blocks(run):
    lm = models.build_preset("tiny", dtype="float32")
    info = serving.prompt_cache_ttft(
        run, lm, prefix_tokens=64, suffix_tokens=4, budget_s=30, min_blocks=3, max_blocks=3
    )
    assert info["trimmed"] and len(info["first_tokens"]) == 1
    df = run.measurements
    ttft = df[df.metric == "ttft_ms"]
    out = info["comparison"]  # one look, at 3 blocks: decided there, or stopped at the block limit
    assert out.blocks == 3 and out.stop_reason in (blocks.DECIDED, blocks.MAX_BLOCKS)
    assert sorted(ttft.variant.value_counts().to_dict().items()) == [("cached prefix", 3), ("no cache", 3)]
    stop = blocks.stop_rows(df, "prompt_cache").iloc[0]
    assert stop.variant == "cached prefix" and stop.reference == "no cache" and stop.n_blocks == 3
    assert df[df.metric == "same_first_token"].value.tolist() == [1.0]


def test_generation_lengths_store_fixed_share(run):
    lm = models.build_preset("tiny", bits=4)
    serving.generation_lengths(run, lm, lengths=[4, 8], prompt_tokens=8, repeats=2)
    share = run.measurements[run.measurements.metric == "fixed_share"]
    assert len(share) == 4 and share.value.between(0, 1).all()


def test_load_time_quantization_matches_the_saved_quantized_checkpoint(tmp_path):
    paths = prequant.save_pair("tiny", 4, tmp_path)
    otf = models.load_checkpoint(str(paths["unquantized"]), quantize_bits=4)
    pre = models.load_checkpoint(str(paths["quantized"]))
    assert otf.bits == pre.bits == 4 and otf.weight_bytes() == pre.weight_bytes()
    a, b = arrays(otf), arrays(pre)
    assert a.keys() == b.keys() and all(mx.array_equal(a[k], b[k]).item() for k in a)


def test_steady_tps_block_advances_the_trials_alternately_and_reports_tokens_per_second():
    """Two generations that take 5 and 10 ms per token: the block pulls them 4 tokens at a time, alternating,
    and reports 1000 / the median ms per token (about 200 and 100 tok/s)."""
    pulled = []

    def factory(name, seconds):
        def generation():
            for i in range(8):
                time.sleep(seconds)
                pulled.append(name)
                yield i

        return generation

    block = prequant.steady_tps_block(8, 4)
    values = block({"fast": factory("fast", 0.005), "slow": factory("slow", 0.01)}, random.Random(0))
    runs = [len(list(g)) for _, g in itertools.groupby(pulled)]
    assert len(pulled) == 16 and all(n in (4, 8) for n in runs) and len(runs) >= 3  # chunks of 4, alternating
    assert values["fast"] == pytest.approx(200, rel=0.3) and values["slow"] == pytest.approx(100, rel=0.3)


def test_prequantized_comparison_loads_once_and_compares_decode_in_interleaved_blocks(
    run, tmp_path, monkeypatch
):
    """Each checkpoint loaded twice (load_s rows), both kept resident, one warm-up generation each (its tokens'
    fingerprint), then every block an interleaved decode of both variants."""
    calls = []
    interleaved = blocks.interleaved

    def spy(variants, rng, **kwargs):
        calls.append((sorted(variants), kwargs))
        return interleaved(variants, rng, **kwargs)

    monkeypatch.setattr(blocks, "interleaved", spy)
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: str(tmp_path / f"{prefix}checkpoints"))
    band = blocks.Band.widened(41, 41, 10)
    tokens = prequant.prequantized_vs_load_time(
        run,
        "tiny",
        4,
        prompt_tokens=8,
        tokens=12,
        chunk_tokens=4,
        loads=2,
        budget_s=30,
        min_blocks=3,
        max_blocks=3,
        band=band,
    )
    assert not list(tmp_path.glob("prequant-*"))  # the checkpoints are removed once both are loaded
    assert tokens[prequant.PREQUANT] == tokens[prequant.REFERENCE] and len(tokens[prequant.PREQUANT]) == 12
    df = run.measurements
    loads = df[df.metric == "load_s"]
    assert sorted(loads.variant.value_counts().to_dict().items()) == [
        (prequant.PREQUANT, 2),
        (prequant.REFERENCE, 2),
    ]
    assert (loads.value > 0).all() and sorted(loads.trial.unique()) == [0, 1]
    assert (
        loads[loads.variant == prequant.REFERENCE].checkpoint_bytes.iloc[0]
        > loads[loads.variant == prequant.PREQUANT].checkpoint_bytes.iloc[0]
    )
    digests = df[df.metric == "warmup_decode_tps"].set_index("variant").tokens_digest
    assert set(digests) == {decode.tokens_digest(tokens[prequant.PREQUANT])} and len(digests) == 2
    # three blocks, each one interleaved call over both variants, its rows both variants' steady tok/s
    both = sorted([prequant.PREQUANT, prequant.REFERENCE])
    assert calls == [(both, {"tokens": 12, "chunk": 4})] * 3
    speed = df[df.metric == prequant.METRIC]
    assert len(speed) == 6 and speed.groupby("block").variant.nunique().eq(2).all()
    assert (speed.tokens_per_trial == 12).all() and (speed.chunk_tokens == 4).all()
    stop = blocks.stop_rows(df, "prequant").iloc[0]
    assert stop.variant == prequant.PREQUANT and (stop.band_low, stop.band_high) == (31, 51)
    assert stop.n_blocks == 3
