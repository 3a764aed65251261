"""Byte accounting, the bandwidth ceiling and the analysis of the roofline module, on real MLX models (CPU)."""

import numpy as np
import pandas as pd
import pytest

from mlx_workbook import models, results
from mlx_workbook import roofline as rl
from mlx_workbook.results import Finding


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
    assert step["total"] == pytest.approx(weights + step["kv_read"] + step["kv_written"] + step["logits_written"])


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
    run.add_finding(Finding(id="measured_bandwidth_gbs", statement="x",
                            measured={"value": gbs, "low": gbs - 1, "high": gbs + 1, "unit": "GB/s", "probe": "copy"}))
    run.finish()


def test_bandwidth_comes_from_00_machine_else_from_a_probe_here(tmp_path):
    fake_machine_run(tmp_path / "reports", 123.0)
    run = results.start_run("04_bandwidth", {}, run_dir=tmp_path / "r")
    ceiling = rl.measured_bandwidth(run, mode="auto", roots=[tmp_path / "reports"])
    assert ceiling.gbs == 123.0 and "00_machine run m" in ceiling.source
    probed = rl.measured_bandwidth(run, mode="measure", sizes_mb=[4], repeats=2)
    assert probed.gbs > 0 and "measured here" in probed.source
    assert set(run.measurements.experiment) == {"bandwidth"}
    empty = results.start_run("04_bandwidth", {}, run_dir=tmp_path / "r2")
    assert "measured here" in rl.measured_bandwidth(empty, roots=[tmp_path / "nothing"], sizes_mb=[4], repeats=2).source
    with pytest.raises(ValueError, match="bandwidth_source"):
        rl.measured_bandwidth(run, mode="guess")


def synthetic_table():
    # bytes in GB, time per token: one fixed 1 ms cost plus bytes at 100 GB/s, and one slow quantized kernel
    rows = [("big", 0, 20.0, 0.0), ("big", 4, 5.0, 0.0), ("big", 3, 4.0, 60.0), ("small", 0, 0.02, 0.0)]
    out = []
    for model, bits, gbytes, extra_ms in rows:
        ms = 1.0 + gbytes / 100 * 1e3 + extra_ms
        roof = 100 / gbytes
        out.append({"label": f"{model} {bits}", "model": model, "bits": bits, "moe": False, "bytes_per_token": gbytes * 1e9,
                    "ms_per_token": ms, "efficiency": (1e3 / ms) / roof, "decode_tps": 1e3 / ms})
    return pd.DataFrame(out)


def test_classify_tells_bandwidth_latency_and_kernel_bound_apart():
    table = rl.classify(synthetic_table(), threshold=0.5).set_index("label")
    assert table.regime["big 0"] == "bandwidth-bound"  # 201 ms, 200 of them memory
    assert table.regime["big 4"] == "bandwidth-bound"
    assert table.regime["small 0"] == "latency-bound"  # 1.2 ms, 0.2 of them memory
    assert table.regime["big 3"] == "kernel-bound"  # 4 GB but 101 ms: below its bf16 twin's efficiency
    assert table.floor_ms.iloc[0] == pytest.approx(1.2)


def test_loglog_slope_is_one_when_time_follows_bytes():
    t = pd.DataFrame({"bytes_per_token": [1e8, 1e9, 1e10], "ms_per_token": [0.5, 5.0, 50.0]})
    assert rl.loglog_slope(t)["slope"] == pytest.approx(1.0)


def test_projection_is_bandwidth_times_efficiency_over_bytes():
    configs = pd.DataFrame([{"label": "qwen2.5-7b 4-bit", "model": "qwen2.5-7b", "bytes_per_token": 4e9,
                             "efficiency": 0.5, "decode_tps": 10.0}])
    machines = pd.DataFrame([{"machine": "M4 Max", "bandwidth_low": 400, "bandwidth_high": 400, "here": False},
                             {"machine": "M4 Pro", "bandwidth_low": 200, "bandwidth_high": 250, "here": False},
                             {"machine": "this", "bandwidth_low": 80, "bandwidth_high": 80, "here": True}])
    proj = rl.projection(configs, machines, rl.published_decode()).set_index("machine")
    assert proj.predicted_tps_low["M4 Max"] == pytest.approx(50)
    assert (proj.predicted_tps_low["M4 Pro"], proj.predicted_tps_high["M4 Pro"]) == pytest.approx((25, 31.25))
    assert "94" in proj.published_tps["M4 Max"] and proj.published_tps["this"] == ""
    assert proj.measured_here_tps["this"] == 10.0 and np.isnan(proj.measured_here_tps["M4 Max"])


def test_published_tables_and_size_labels():
    assert set(rl.original_machines().machine) == {"M4 (Air/Mini)", "M4 Pro", "M4 Max", "M4 Ultra (future)"}
    pub = rl.published_decode()
    assert set(pub.machine) <= set(rl.original_machines().machine)
    assert [rl.size_label(n) for n in ("qwen2.5-0.5b", "qwen2.5-14b", "llama-3-8b", "tiny")] == ["0.5B", "14B", "8B", "tiny"]
