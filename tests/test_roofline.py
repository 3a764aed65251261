"""Byte accounting and the bandwidth ceiling of the roofline module, on real MLX models (CPU)."""

import pytest

from mlx_workbook import models
from mlx_workbook.core import results
from mlx_workbook.core.results import Finding
from mlx_workbook.models import roofline as rl
from mlx_workbook.probes import kernels


def test_tied_dense_model_reads_one_embedding_row_and_the_whole_head():
    lm = models.build_preset("tiny", dtype="bfloat16", materialize=False)  # tie_word_embeddings: true
    parts = models.weight_breakdown(lm.model)
    step = rl.bytes_per_step(lm, context=100)
    assert step["lm_head"] == parts["embedding"]  # the tied embedding matrix is the output projection
    assert step["embedding_rows"] == parts["embedding"] / lm.vocab_size
    assert step["experts_active"] == 0
    # K and V: 2 tensors x 2 layers x 2 KV heads x head_dim 16 x 2 bytes (bf16) per cached token
    assert rl.kv_bytes_per_position(lm.config, "bfloat16") == 2 * 2 * 2 * 16 * 2
    assert step["kv_read"] == 100 * 256 and step["kv_written"] == 256
    weights = step["embedding_rows"] + step["lm_head"] + step["dense_layers"]
    assert step["weights"] == pytest.approx(weights)
    assert step["total"] == pytest.approx(
        weights + step["kv_read"] + step["kv_written"] + step["logits_written"]
    )


def test_untied_model_reads_its_lm_head_not_its_embedding():
    lm = models.build_preset("qwen2.5-7b", bits=4, materialize=False)  # tie_word_embeddings: false
    parts = models.weight_breakdown(lm.model)
    step = rl.bytes_per_step(lm, context=0)
    assert step["lm_head"] == parts["lm_head"]
    # every weight but the embedding matrix is read once per token (one embedding row instead)
    assert step["weights"] == pytest.approx(lm.weight_bytes() - parts["embedding"] * (1 - 1 / lm.vocab_size))
    assert 3.9e9 < step["total"] < 4.1e9  # the 7B-4bit "~4-5 GB per token" order of magnitude


def test_moe_reads_only_the_active_experts_and_batches_touch_more():
    lm = models.build_preset("tiny-moe", dtype="float32", materialize=False)  # 8 experts, 2 active
    experts = models.weight_breakdown(lm.model)["experts"]
    one = rl.bytes_per_step(lm, context=10)
    assert one["experts_active"] == pytest.approx(experts * 2 / 8)
    four = rl.bytes_per_step(lm, context=10, batch=4)
    assert four["experts_active"] == pytest.approx(experts * (1 - (1 - 2 / 8) ** 4))
    assert rl.bytes_per_step(lm, 10, batch=512)["experts_active"] == pytest.approx(experts)
    assert four["kv_read"] == 4 * one["kv_read"]


def test_quantized_variant_moves_fewer_bytes_and_roofline_is_bandwidth_over_bytes():
    dense = rl.bytes_per_step(models.build_preset("qwen2.5-0.5b", materialize=False), 64)["total"]
    q4 = rl.bytes_per_step(models.build_preset("qwen2.5-0.5b", bits=4, materialize=False), 64)["total"]
    assert q4 < dense / 3
    assert rl.roofline_tps(2e9, 100) == pytest.approx(50)
    assert rl.roofline_tps(2e9, 100, batch=8) == pytest.approx(400)
    assert rl.mean_context(64, 100) == 114


def fake_machine_run(root, gbs):
    run = results.start_run("00_machine", {}, run_dir=root / "runs" / "m")
    run.add_finding(
        Finding(
            id="measured_bandwidth_gbs",
            statement="x",
            measured={"value": gbs, "low": gbs - 1, "high": gbs + 1, "unit": "GB/s", "probe": "copy"},
        )
    )
    run.finish()


def test_bandwidth_comes_from_00_machine_else_from_a_probe_here(tmp_path):
    fake_machine_run(tmp_path / "reports", 123.0)
    run = results.start_run("04_bandwidth", {}, run_dir=tmp_path / "r")
    ceiling = kernels.measured_bandwidth(run, mode="auto", roots=[tmp_path / "reports"])
    assert ceiling.gbs == 123.0 and "00_machine run m" in ceiling.source
    probed = kernels.measured_bandwidth(run, mode="measure", sizes_mb=[4], probes=["read", "copy"], repeats=2)
    assert probed.gbs > 0 and "measured here" in probed.source and "no published peak" in probed.describe()
    assert set(run.measurements.experiment) == {"bandwidth"} and set(run.measurements.variant) == {
        "read",
        "copy",
    }
    empty = results.start_run("04_bandwidth", {}, run_dir=tmp_path / "r2")
    assert (
        "measured here"
        in kernels.measured_bandwidth(
            empty, roots=[tmp_path / "nothing"], sizes_mb=[4], probes=["copy"], repeats=2
        ).source
    )
    with pytest.raises(ValueError, match="bandwidth_source"):
        kernels.measured_bandwidth(run, mode="guess")


def test_accounting_has_one_row_per_configuration_from_lazy_builds():
    acc = rl.accounting([("qwen2.5-7b", [0, 4]), ("tiny", [4]), ("qwen2.5-7b", [4])], context=100)
    assert list(acc.label) == ["qwen2.5-7b bf16", "qwen2.5-7b 4-bit", "tiny 4-bit"]  # duplicates dropped
    q4 = acc.set_index("label").loc["qwen2.5-7b 4-bit"]
    lm = models.build_preset("qwen2.5-7b", bits=4, materialize=False)
    assert q4.weight_bytes == lm.weight_bytes() and q4.total == pytest.approx(
        rl.bytes_per_step(lm, 100)["total"]
    )
    assert acc.set_index("label").total["qwen2.5-7b bf16"] > 3 * q4.total
