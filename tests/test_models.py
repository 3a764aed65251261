import time

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from mlx_workbook import models
from mlx_workbook.core import env


def dense_param_count(c: dict) -> int:
    """Parameters of a Qwen3 dense model from its config, written out by hand."""
    h, i, v, hd = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    attn = h * nh * hd + 2 * h * nkv * hd + nh * hd * h + 2 * hd  # q, k, v, o, q_norm, k_norm
    layer = attn + 3 * h * i + 2 * h  # + gate/up/down + two norms
    head = 0 if c["tie_word_embeddings"] else v * h
    return v * h + c["num_hidden_layers"] * layer + h + head


def test_byte_accounting_matches_config_arithmetic_without_materializing():
    lm = models.build_preset("qwen3-0.6b", dtype="bfloat16", materialize=False)
    assert lm.weight_bytes() == 2 * dense_param_count(lm.config)
    assert sum(models.weight_breakdown(lm.model).values()) == lm.weight_bytes()


@pytest.mark.parametrize("bits", [None, 8, 4, 3])
def test_byte_accounting_matches_materialized_arrays(bits):
    lm = models.build_preset("tiny", dtype="bfloat16", bits=bits)
    real = sum(v.nbytes for _, v in tree_flatten(lm.model.parameters()))
    assert lm.weight_bytes() == real
    if bits:
        # packed weights: about bits/16 of bf16, plus scales and biases per group of 64
        dense = models.build_preset("tiny", dtype="bfloat16", materialize=False).weight_bytes()
        assert lm.weight_bytes() < dense


def test_quantized_bytes_match_saved_checkpoint(tmp_path):
    lm = models.build_preset("tiny", bits=4)
    models.save_checkpoint(lm, tmp_path)
    saved = sum(p.stat().st_size for p in tmp_path.glob("*.safetensors"))
    # safetensors adds a small JSON header; the tensors themselves are the same bytes
    assert lm.weight_bytes() <= saved < lm.weight_bytes() + 64 * 1024


@pytest.mark.parametrize(
    "name,dtype,bits",
    [
        ("tiny", "bfloat16", None),
        ("tiny", "bfloat16", 4),
        ("tiny-moe", "float32", None),
        ("tiny-moe", "bfloat16", 4),
    ],
)
def test_presets_build_and_run_a_forward_pass(name, dtype, bits):
    lm = models.build_preset(name, dtype=dtype, bits=bits)
    logits = lm.model(mx.array([[1, 2, 3, 4]]))
    mx.eval(logits)
    assert logits.shape == (1, 4, lm.vocab_size)
    assert bool(mx.all(mx.isfinite(logits.astype(mx.float32))))


def test_every_preset_builds_lazily_with_the_real_architecture():
    for name in models.presets():
        lm = models.build_preset(name, bits=4, materialize=False)
        assert lm.weight_bytes() > 0
        assert lm.num_layers == lm.config["num_hidden_layers"]


def test_checkpoint_round_trip_through_mlx_lm_load(tiny, tiny_checkpoint):
    loaded = models.load(str(tiny_checkpoint))
    assert loaded.source == "checkpoint" and loaded.tokenizer is not None
    x = mx.array([[5, 6, 7]])
    assert mx.allclose(loaded.model(x), tiny.model(x), atol=1e-5).item()
    assert loaded.weight_bytes() == tiny.weight_bytes()
    quantized = models.load(str(tiny_checkpoint), bits=4)  # quantized at load time, same code as presets
    assert quantized.bits == 4 and quantized.weight_bytes() < tiny.weight_bytes()
    mx.eval(quantized.model(x))


def fast(fn):
    """Bad input must fail before any heavy work: well under a second."""
    tic = time.perf_counter()
    with pytest.raises(models.ModelError) as info:
        fn()
    assert time.perf_counter() - tic < 1.0
    return str(info.value)


def test_clear_errors_for_bad_input(tmp_path):
    assert "unknown preset 'qwen9'" in fast(lambda: models.load("qwen9"))
    assert "bits=7" in fast(lambda: models.build_preset("tiny", bits=7))
    assert "dtype" in fast(lambda: models.build_preset("tiny", dtype="int8"))
    assert "group_size" in fast(lambda: models.build_preset("tiny", bits=4, group_size=48))
    assert "not found" in fast(lambda: models.load(str(tmp_path / "missing" / "model")))
    (tmp_path / "empty").mkdir()
    assert "config.json" in fast(lambda: models.load(str(tmp_path / "empty")))
    assert "float32 only" in fast(lambda: models.build_preset("tiny-moe", dtype="bfloat16"))
    assert "prompt" in fast(lambda: models.random_prompt(models.build_preset("tiny", materialize=False), 0))


def test_model_too_big_for_device_fails_before_building(monkeypatch):
    small = env.Environment(
        backend="cuda",
        device="test GPU",
        memory_bytes=8 * 10**9,
        os="",
        python="",
        mlx="",
        mlx_lm="",
        workbook_commit="",
        cpu_count=1,
    )
    monkeypatch.setattr(env, "capture", lambda: small)
    before = mx.get_active_memory()
    message = fast(lambda: models.load("qwen2.5-14b", dtype="bfloat16"))
    assert "29.5 GB" in message and "8.0 GB" in message
    assert mx.get_active_memory() - before < 10**8  # nothing heavy was materialized
    models.build_preset("qwen2.5-14b", bits=4, materialize=False)  # 4-bit fits in 8 GB
