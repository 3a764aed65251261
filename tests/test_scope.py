"""Where a claim applies is computed from the run (backend, device, model) against the claim's stated scope in
data/published, never a constant: the same claims on a CPU, a CUDA H200 and Apple machines."""

import pytest

from mlx_workbook.core import published, scope, verdicts
from mlx_workbook.core.results import Finding

CPU = {"backend": "cpu", "device": "AMD EPYC 9654"}
H200 = {"backend": "cuda", "device": "NVIDIA H200"}
M4_MAX = {"backend": "metal", "device": "Apple M4 Max"}
M4 = {"backend": "metal", "device": "Apple M4"}
M4_MAX_CPU = {"backend": "cpu", "device": "Apple M4 Max"}  # MLX's CPU backend on a Mac
TINY = scope.Model("tiny 4-bit", 7e4)
SEVEN_B = scope.Model("qwen2.5-7b 4-bit", 7.6e9)

# claim -> does it apply on (CPU, H200, M4 Max, M4, M4 Max with the CPU backend)
EXPECTED = {
    "sdpa_cliff_at_128_tokens": (False, False, True, True, False),  # Metal's SDPA kernels only
    "mlx_tok_s_qwen25_7b_4bit_m4max": (False, False, True, False, False),  # one chip's figure
    "m4_air_7b_tok_s": (False, False, False, True, False),  # "M4" is not an M4 Max
    "mlxlm_decode_tok_s_001": (False, False, True, True, False),  # Apple silicon, any chip
    "kv_copy_no_impact": (True, True, True, True, True),  # no scope: everywhere
    "gqa_let_sdpa_handle": (True, True, True, True, True),
}


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_scope_follows_backend_and_device(claim_id):
    for environment, expected in zip((CPU, H200, M4_MAX, M4, M4_MAX_CPU), EXPECTED[claim_id]):
        ok, why = scope.applies(claim_id, environment)
        assert ok == expected, (claim_id, environment)
        assert bool(why) != ok  # a reason exactly when it does not apply


def test_reasons_name_the_scope_and_the_run():
    ok, why = scope.applies("sdpa_cliff_at_128_tokens", CPU)
    assert not ok and "metal" in why and "AMD EPYC 9654 (cpu)" in why
    ok, why = scope.applies("mlx_tok_s_qwen25_7b_4bit_m4max", H200)
    assert not ok and "Apple silicon" in why and "NVIDIA H200" in why
    ok, why = scope.applies("m4_air_7b_tok_s", M4_MAX)
    assert not ok and "the M4 " in why


def test_bandwidth_claims_need_a_model_larger_than_the_caches():
    assert scope.applies("decode_bandwidth_bound", M4_MAX, SEVEN_B) == (True, "")
    ok, why = scope.applies("decode_bandwidth_bound", M4_MAX, TINY)
    assert not ok and "tiny 4-bit" in why


def test_every_scope_uses_known_keys_and_backends():
    known = {"backend", "hardware", "chip", "min_params", "about"}
    for c in published.claims():
        s = c.get("scope") or {}
        assert set(s) <= known, c["id"]
        assert set(s.get("backend") or []) <= {"metal", "cuda", "cpu"}, c["id"]
        assert s.get("hardware") in (None, "apple"), c["id"]


def test_settle_marks_only_claims_outside_their_scope_and_keeps_the_numbers():
    found = [
        Finding("sdpa_cliff_at_128_tokens", "A step ... : holds.", verdicts.HOLDS, {"value": 1.6}),
        Finding("gqa_let_sdpa_handle", "Repeating K/V ...: holds.", verdicts.HOLDS),
        Finding("cliffs_found", "3 cliffs", "measured"),  # not a published claim: left alone
    ]
    settled = {f.id: f for f in scope.settle(found, CPU)}
    cliff = settled["sdpa_cliff_at_128_tokens"]
    assert cliff.verdict == verdicts.NOT_APPLICABLE and cliff.measured == {"value": 1.6}
    assert cliff.statement.startswith("Does not apply: ") and cliff.statement.endswith("not judged here.")
    assert settled["gqa_let_sdpa_handle"].verdict == verdicts.HOLDS
    assert settled["cliffs_found"].verdict == "measured"
    on_metal = {f.id: f for f in scope.settle(found, M4_MAX)}
    assert on_metal["sdpa_cliff_at_128_tokens"].verdict == verdicts.HOLDS


def test_scope_needs_the_run_s_backend_and_device():
    import pandas as pd

    with pytest.raises(ValueError, match="backend and device"):
        scope.where(pd.DataFrame({"value": [1.0]}))
    assert scope.where(pd.DataFrame([{**H200, "value": 1.0}])) == scope.Where("cuda", "NVIDIA H200")
