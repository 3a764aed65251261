"""The generation measurement against mlx-lm's own generation on the same model."""

import mlx.core as mx
import pytest
from mlx_lm import stream_generate

from mlx_workbook import models
from mlx_workbook.probes import decode


def test_reference_loop_emits_mlx_lm_tokens(tiny_checkpoint):
    lm = models.load(str(tiny_checkpoint))
    prompt = models.random_prompt(lm, 12, seed=3)
    ours = decode.measure_generation(lm.model, prompt, 20)
    theirs = [r.token for r in stream_generate(lm.model, lm.tokenizer, prompt, max_tokens=20)]
    # stream_generate stops early on an end-of-sequence token; up to there the tokens must agree
    assert ours.tokens[: len(theirs)] == theirs
    assert len(ours.tokens) == 20 and ours.prompt_tokens == 12


def test_clocks_follow_mlx_lm_definitions(tiny_checkpoint):
    lm = models.load(str(tiny_checkpoint))
    lm.tokenizer._eos_token_ids = set()  # as mlx_lm.benchmark does: never stop early
    prompt = models.random_prompt(lm, 16, seed=4)
    for _ in range(2):  # warm-up, then compare
        ours = decode.measure_generation(lm.model, prompt, 64)
        last = None
        for last in stream_generate(lm.model, lm.tokenizer, prompt, max_tokens=64):  # noqa: B007 (kept after)
            pass
    assert last.generation_tokens == len(ours.tokens) == 64
    assert last.prompt_tokens == ours.prompt_tokens
    # same definition (tokens / time after the first), same model: the same order of magnitude on a noisy CPU
    assert 0.33 < ours.decode_tps / last.generation_tps < 3.0
    assert 0.1 < ours.prompt_tps / last.prompt_tps < 10.0
    # internal consistency of the derived numbers
    assert ours.decode_tps == pytest.approx(64 / ours.decode_s)
    assert ours.ms_per_token == pytest.approx(1e3 * ours.decode_s / 63)
    assert ours.ttft_s == ours.token_times_s[0] and ours.token_times_s == sorted(ours.token_times_s)


def test_record_generation_writes_one_row_per_metric(tmp_path, tiny):
    from mlx_workbook.core import results

    run = results.start_run("99_test", {}, run_dir=tmp_path / "gen")
    gen = decode.measure_generation(tiny.model, models.random_prompt(tiny, 8), 8)
    decode.record_generation(run, "decode", gen, trial=0, **tiny.describe())
    df = run.measurements
    assert set(df.metric) == {"ttft_ms", "prompt_tps", "decode_tps", "ms_per_token", "peak_memory_gb"}
    assert (df.value > 0).all() and (df.model == "tiny").all()


def test_too_few_tokens_is_an_error(tiny):
    with pytest.raises(ValueError):
        decode.measure_generation(tiny.model, mx.array([1, 2], dtype=mx.uint32), 1)


def test_first_divergence_names_the_first_differing_token():
    assert decode.first_divergence([1, 2, 3], [1, 2, 4]) == 2
    assert decode.first_divergence([1, 2, 3], [1, 2, 3, 4]) is None  # equal over the shorter length
