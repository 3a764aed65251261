"""core.blocks (paired interleaved blocks, adaptive stopping) and core.hoststate."""

import math

import mlx.core as mx
import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import blocks, hoststate


def drifting_variants(effects: dict[str, float], seed=0, noise=0.01):
    """Variants whose values follow a shared host speed that jumps by up to 2x between blocks (cancelled by
    pairing) with independent jitter; `effects` is each variant's true ratio to the reference."""
    rng = np.random.default_rng(seed)
    calls = []
    host = {"speed": 1.0}

    def make(name, ratio):
        def fn():
            if (
                len(calls) % len(effects) == 0
            ):  # each block runs every variant once: a new host speed per block
                host["speed"] = rng.uniform(1.0, 2.0)
            calls.append(name)
            return ratio * host["speed"] * math.exp(rng.normal(0, noise))

        return fn

    return {name: make(name, r) for name, r in effects.items()}, calls


def test_band_decides_inside_or_outside_only():
    band = blocks.Band.widened(4, 5, 1)
    assert band == blocks.Band(3, 6)
    assert band.decides(3.5, 5.5) and band.decides(7, 9) and band.decides(-2, 2.9)
    assert not band.decides(2, 4)
    assert blocks.Band.at_least(0).decides(0.5, 10) and not blocks.Band.at_least(0).decides(-1, 10)
    assert blocks.Band.no_effect(2).decides(-1, 1)


def test_looks_and_their_confidence():
    assert blocks.looks(8, 64) == [8, 12, 18, 27, 41, 62, 64]
    assert blocks.look_confidence(5) == pytest.approx(0.99)
    with pytest.raises(ValueError):
        blocks.looks(2, 10)


def test_compare_stops_when_decided_and_records_every_block():
    run = blocks.Rows()
    variants, calls = drifting_variants({"ref": 1.0, "fast": 0.8, "same": 1.0})
    bands = {"fast": blocks.Band(-25, -15), "same": blocks.Band.no_effect(3)}
    out = blocks.compare(
        run, "cmp", variants, reference="ref", bands=bands, budget_s=30, min_blocks=8, model="m"
    )
    assert out.stop_reason == blocks.DECIDED and out.blocks == 8
    assert out.estimates["fast"].low < -20 < out.estimates["fast"].high
    df = run.measurements
    values = df[df.metric == "seconds"]
    assert len(values) == 3 * 8 and set(values.variant) == {"ref", "fast", "same"}
    assert (values.groupby("block").position.apply(sorted) == pd.Series([[0, 1, 2]] * 8)).all()
    assert values.model.eq("m").all()
    # random order within blocks: not always the same variant first
    assert values[values.position == 0].variant.nunique() > 1
    host = df[df.metric == hoststate.PROBE_METRIC]
    assert len(host) == 8 and (host.value > 0).all()
    assert len(df[df.metric == hoststate.CPU_METRIC]) == 8
    outcome = blocks.stop_rows(df, "cmp")
    assert set(outcome.variant) == {"fast", "same"} and outcome.stop_reason.eq("decided").all()
    assert outcome.decided.all() and (outcome.n_blocks == 8).all()
    lr = blocks.paired_log_ratios(df, "cmp", "fast", "ref", "seconds")
    assert len(lr) == 8 and np.exp(lr.mean()) == pytest.approx(0.8, rel=0.02)


def test_compare_undecided_says_why_and_what_it_could_resolve():
    run = blocks.Rows()
    variants, _ = drifting_variants({"ref": 1.0, "b": 1.02}, noise=0.05)
    # a band edge right at the true effect: never decided within 12 blocks
    out = blocks.compare(run, "c", variants, reference="ref", bands={"b": blocks.Band(2, 10)}, max_blocks=12)
    assert out.stop_reason == blocks.MAX_BLOCKS and out.blocks == 12
    row = blocks.stop_rows(run.measurements, "c").iloc[0]
    assert (
        not row.decided
        and row.resolvable_pct == pytest.approx(out.resolvable_pct("b"))
        and row.resolvable_pct > 0
    )
    assert row.method == "t on paired log-ratios" and row.confidence > 0.95


def test_compare_stops_on_budget():
    run = blocks.Rows()
    variants, _ = drifting_variants({"ref": 1.0, "b": 1.02}, noise=0.05)
    out = blocks.compare(run, "c", variants, reference="ref", bands={"b": blocks.Band(2, 10)}, budget_s=0.0)
    assert out.stop_reason == blocks.BUDGET and out.blocks == 1


def test_compare_rejects_bad_input_before_running():
    variants, calls = drifting_variants({"ref": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match="reference"):
        blocks.compare(blocks.Rows(), "c", variants, reference="nope")
    with pytest.raises(ValueError, match="bands"):
        blocks.compare(blocks.Rows(), "c", variants, reference="ref", bands={"x": blocks.Band(0, 1)})
    assert calls == []


def test_timed_forces_mlx_work():
    fn = blocks.timed(lambda: mx.ones((64, 64)) @ mx.ones((64, 64)))
    assert fn() > 0


def test_host_stability_warns_like_pyperf():
    steady = hoststate.stability([1.0, 1.02, 0.99, 1.01, 1.0])
    assert not steady.unstable and steady.warning == "" and "Stable" in hoststate.describe(steady)
    shaky = hoststate.stability([17, 18, 33, 30, 17, 19])  # the GPU host's 17-33 ms
    assert shaky.unstable and shaky.max_over_min == pytest.approx(33 / 17) and "WARNING" in shaky.warning
    assert 0.5 < hoststate.probe_ms() < 50
    df = pd.DataFrame({"metric": [hoststate.PROBE_METRIC] * 3 + ["x"], "value": [1.0, 1.0, 2.0, 9.0]})
    assert hoststate.run_stability(df).n == 3


def test_host_speed_chart_draws_the_probes():
    from mlx_workbook.report import plots

    run = blocks.Rows()
    variants, _ = drifting_variants({"ref": 1.0, "b": 1.1})
    blocks.compare(run, "c", variants, reference="ref", max_blocks=8)
    fig = plots.host_speed(run.measurements)
    assert "n=8" in fig.axes[0].get_title() and len(fig.axes[0].lines) == 2
    assert "no host probes" in plots.host_speed(pd.DataFrame()).axes[0].get_title()


def test_host_report_becomes_a_run_finding(tmp_path):
    from mlx_workbook.core import results

    run = results.start_run("99_test", {}, run_dir=tmp_path / "run")
    variants, _ = drifting_variants({"ref": 1.0, "b": 1.1})
    blocks.compare(run, "c", variants, reference="ref", max_blocks=8)
    s = hoststate.report(run)
    assert s.n == 8
    (finding,) = [f for f in run.findings if f.id == "host_stability"]
    assert finding.verdict == "measured" and "Host speed probe" in finding.statement
