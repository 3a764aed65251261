"""Cold starts in fresh processes (04, method 7): the processes are added until the per-process cold/warm ratio
decides the published band, the read-back replays the same rule, and the claim is judged on them."""

import math

import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import blocks, results, verdicts
from mlx_workbook.investigations.bandwidth import coldstart
from mlx_workbook.investigations.bandwidth import findings as bandwidth_findings
from test_analysis_bandwidth import CEILING, MACHINE, PARAMS, synthetic


def process_rows(ratio: float, warm_tps: float = 100.0, warm_runs: int = 3, label="qwen3-30b-a3b 4-bit"):
    """What coldstart.run_one returns for one process whose cold run decodes at `ratio` of its warm runs."""
    rows = [
        dict(phase="setup", metric="start_s", value=2.0, unit="s", trial=0),
        dict(phase="setup", metric="build_s", value=1.0, unit="s", trial=0),
    ]
    for trial in range(1 + warm_runs):
        tps = warm_tps * (ratio if trial == 0 else 1.0)
        phase = "cold" if trial == 0 else "warm"
        rows += [
            dict(phase=phase, metric="decode_tps", value=tps, unit="tokens/s", trial=trial),
            dict(phase=phase, metric="ttft_ms", value=50.0 if trial else 400.0, unit="ms", trial=trial),
            dict(phase=phase, metric="wall_s", value=64 / tps + 0.05, unit="s", trial=trial),
        ]
    return [dict(r, label=label, prompt_tokens=128, generated_tokens=64) for r in rows]


class Spawner:
    """Stands in for coldstart.spawn: one process per call, its cold/warm ratio from `ratios` in turn."""

    def __init__(self, ratios, fail_at=None):
        self.ratios, self.fail_at, self.calls = list(ratios), fail_at, 0

    def __call__(self, config):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("a cold-start process failed: out of memory")
        return process_rows(self.ratios[self.calls - 1])


def measured(ratios, plan, folder, **kw):
    run = results.start_run("04_bandwidth", {}, run_dir=folder / f"run{len(list(folder.iterdir()))}")
    spawner = Spawner(ratios, **kw)
    reason = coldstart.measure_processes(
        run, "qwen3-30b-a3b", 4, plan, spawn_one=spawner, dtype="bfloat16", group_size=64, prompt_tokens=8
    )
    return reason, run.measurements.assign(**MACHINE), spawner


def test_processes_stop_at_the_first_look_that_decides_and_the_read_back_replays_it(tmp_path):
    """Ratios at the published 0.70 with a 0.3% spread decide "holds" at the first look (3 processes)."""
    plan = coldstart.Plan(min_processes=3, max_processes=10, budget_s=60, warm_runs=3)
    reason, df, spawner = measured([0.700, 0.702, 0.698] + [0.7] * 7, plan, tmp_path)
    assert reason == blocks.DECIDED and spawner.calls == 3
    fresh = coldstart.result(df)
    assert fresh.stop_reason == blocks.DECIDED and fresh.estimate.n == 3
    logs = np.log([0.700, 0.702, 0.698])
    assert fresh.estimate.value == pytest.approx(math.exp(logs.mean()))
    # the interim look's level: a fifth of the error rate over the schedule's interim looks
    e = blocks.change_pct(logs, blocks.interim_confidence(len(blocks.looks(3, 10)) - 1))
    assert fresh.estimate.low == pytest.approx(1 + e.low / 100) and fresh.estimate.high == pytest.approx(
        1 + e.high / 100
    )
    table = coldstart.table(df)
    assert list(table.process) == [1, 2, 3] and table.ratio.tolist() == pytest.approx([0.700, 0.702, 0.698])
    assert table.warm_decode_tps.tolist() == pytest.approx([100.0] * 3) and (table.start_s == 2.0).all()


def test_undecided_processes_run_to_the_most_allowed_and_say_so(tmp_path):
    """Ratios spread around the band's edge (0.81) never decide: every allowed process runs."""
    plan = coldstart.Plan(min_processes=3, max_processes=5, budget_s=60, warm_runs=3)
    reason, df, spawner = measured([0.6, 1.0, 0.7, 0.95, 0.8], plan, tmp_path)
    assert reason == blocks.MAX_BLOCKS and spawner.calls == 5
    fresh = coldstart.result(df)
    assert fresh.stop_reason == blocks.MAX_BLOCKS and fresh.estimate.n == 5
    assert fresh.estimate.confidence == pytest.approx(blocks.final_confidence())


def test_the_budget_stops_new_processes_only_after_the_minimum(tmp_path):
    plan = coldstart.Plan(min_processes=3, max_processes=10, budget_s=1e-9, warm_runs=3)
    reason, df, spawner = measured([0.6, 1.0, 0.7, 0.95, 0.8], plan, tmp_path)
    assert reason == blocks.BUDGET and spawner.calls == 3
    assert coldstart.result(df).stop_reason == blocks.BUDGET


def test_a_failed_process_stops_the_series_and_keeps_what_was_measured(tmp_path):
    plan = coldstart.Plan(min_processes=3, max_processes=5, budget_s=60, warm_runs=3)
    reason, df, spawner = measured([0.6, 1.0, 0.7], plan, tmp_path, fail_at=3)
    assert reason.startswith("failed: ") and "out of memory" in reason
    fresh = coldstart.result(df)
    assert fresh.estimate.n == 2 and fresh.stop_reason == reason


def test_the_claim_is_judged_on_the_fresh_processes_where_they_ran(tmp_path):
    base, acc = synthetic()
    plan = coldstart.Plan(min_processes=3, max_processes=10, budget_s=60, warm_runs=3)
    _, df, _ = measured([0.700, 0.702, 0.698], plan, tmp_path)
    found = {f.id: f for f in bandwidth_findings.findings(pd.concat([base, df]), acc, CEILING, PARAMS)}
    cold = found[coldstart.CLAIM]
    assert cold.verdict == verdicts.HOLDS and cold.measured["value"] == pytest.approx(0.70, rel=0.01)
    assert "3 fresh processes" in cold.statement and "stopped: decided" in cold.statement
    assert "n=3 processes" in cold.statement and "stand-in" not in cold.statement
    # far from the published ratio, in the same direction: the size differs
    _, df, _ = measured([0.300, 0.301, 0.299], plan, tmp_path)
    found = {f.id: f for f in bandwidth_findings.findings(pd.concat([base, df]), acc, CEILING, PARAMS)}
    assert found[coldstart.CLAIM].verdict == verdicts.SIZE_DIFFERS


def test_the_band_is_the_published_ratio_widened_as_a_percent_change():
    lo, hi, cold, warm = coldstart.published_ratio()
    assert (lo, hi) == pytest.approx((69.3 / 98.5, 69.3 / 98.1))
    band = coldstart.band()
    assert band.low == pytest.approx(100 * (lo - 1 - coldstart.TOLERANCE))
    assert band.high == pytest.approx(100 * (hi - 1 + coldstart.TOLERANCE)) and band.no_effect_at == 0.0
    # inside decides; outside on the claimed side decides (size differs); an interval outside the band that still
    # straddles no change has not decided between "size differs" and "does not hold", though it reads the latter
    assert band.decides(-30, -25) and band.decides(-15, -5) and not band.decides(-25, -15)
    assert not band.decides(-5, 5)
    assert verdicts.effect_matches(verdicts.Interval(1.0, 0.95, 1.05), lo, hi, coldstart.TOLERANCE, 1.0) == (
        verdicts.DOES_NOT_HOLD
    )


def test_pick_prefers_the_claims_model_then_an_moe_preset_that_ran():
    plan = [("qwen2.5-0.5b", [0, 4]), ("qwen3-30b-a3b", [4]), ("mixtral-8x7b", [4])]
    assert coldstart.pick(plan, "bfloat16") == ("qwen3-30b-a3b", 4)
    skipped = [{"model": "qwen3-30b-a3b", "bits": 4}]
    assert coldstart.pick(plan, "bfloat16", skipped) == ("mixtral-8x7b", 4)
    assert coldstart.pick([("tiny", [0, 4]), ("tiny-moe", [0, 4])], "bfloat16") == ("tiny-moe", 0)
    assert coldstart.pick([("tiny", [4])], "bfloat16", [{"model": "tiny", "bits": 4}]) is None


@pytest.mark.parametrize(
    "plan, match",
    [
        (coldstart.Plan(2, 5, 10, 3), "cold_min_processes"),
        (coldstart.Plan(4, 3, 10, 3), "cold_min_processes"),
        (coldstart.Plan(3, 5, 0, 3), "cold_budget_s"),
        (coldstart.Plan(3, 5, 10, 0), "cold_process_warm_runs"),
    ],
)
def test_impossible_plans_get_one_clear_error(plan, match):
    with pytest.raises(ValueError, match=match):
        plan.validate()
    coldstart.Plan(0, 0, 0, 0).validate()  # no fresh processes at all is allowed


def test_a_real_fresh_process_cold_starts_a_preset_and_stores_its_rows(tmp_path):
    """One process of this interpreter: a tiny preset built, one cold and two warm generations, with its start."""
    run = results.start_run("04_bandwidth", {}, run_dir=tmp_path / "run")
    plan = coldstart.Plan(min_processes=3, max_processes=3, budget_s=60, warm_runs=2)
    reason = coldstart.measure_processes(
        run, "tiny", 4, plan, dtype="bfloat16", group_size=64, prompt_tokens=8, gen_tokens=4
    )
    table = coldstart.table(run.measurements)
    assert reason in (blocks.DECIDED, blocks.MAX_BLOCKS) and list(table.process) == [1, 2, 3]
    assert (table.label == "tiny 4-bit").all() and (table.start_s > 0).all() and (table.build_s > 0).all()
    warm = run.measurements[(run.measurements.phase == "warm") & (run.measurements.metric == "decode_tps")]
    assert len(warm) == 6 and coldstart.result(run.measurements).estimate.n == 3


def test_a_broken_process_gives_one_clear_error():
    with pytest.raises(RuntimeError, match="cold-start process failed: .*no-such-preset"):
        coldstart.spawn(
            dict(
                preset="no-such-preset",
                bits=4,
                dtype="bfloat16",
                group_size=64,
                prompt_tokens=8,
                gen_tokens=4,
                warm_runs=1,
            )
        )
