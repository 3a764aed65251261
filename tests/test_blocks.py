"""core.blocks (paired interleaved blocks, adaptive stopping) and core.hoststate."""

import math
import random
from functools import partial

import mlx.core as mx
import numpy as np
import pandas as pd
import pytest

from mlx_workbook.core import blocks, hoststate, intervals


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


def test_an_effect_outside_its_band_decides_only_once_it_clears_no_effect():
    """The pipelining claim (+22%, band 16.5-27.5%) on the 82cdd8e H200 twins: +8.3% [+2.6, +14.3] is 'size
    differs' and decided; +4.6% [-0.4, +9.9] could still become either verdict, so its comparison goes on."""
    effect = blocks.Band.widened(22, 22, 5.5, no_effect_at=0.0)
    assert (
        effect.decides(2.6, 14.3)
        and effect.decides(-9, -1)
        and effect.decides(17, 27)
        and effect.decides(28, 40)
    )
    assert not effect.decides(-0.4, 9.9) and not effect.decides(15, 20)
    assert blocks.Band.widened(22, 22, 5.5).decides(-0.4, 9.9)  # without no_effect_at: outside is enough
    assert effect.edges() == [16.5, 27.5, 0.0]
    assert blocks.Band(-0.4, 0.8, no_effect_at=0.0).edges() == [
        -0.4,
        0.8,
    ]  # inside the band: the edges decide
    # projected blocks: from the estimate to the nearest value it must clear, here no effect (4.6% away)
    e = intervals.Estimate(4.6, -0.4, 9.9, 5, "t", 0.95)
    half = (math.log1p(0.099) - math.log1p(-0.004)) / 2
    assert blocks.projected_blocks(e, effect) == pytest.approx(5 * (half / math.log1p(0.046)) ** 2)


def test_looks_and_their_confidence():
    assert blocks.looks(8, 64) == [8, 12, 18, 27, 41, 62, 64]
    # Haybittle-Peto style: the interim looks share a fifth of the 5% error rate, the final look keeps 4%
    assert blocks.interim_confidence(6) == pytest.approx(1 - 0.01 / 6)
    assert blocks.final_confidence() == pytest.approx(0.96)
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
    assert blocks.paired_log_ratios(df, "other", "fast", "ref", "seconds").empty  # never ran: no blocks


def test_a_decided_variant_leaves_and_the_others_go_on_in_shorter_blocks():
    """A clear -20% decides at the first look and leaves; a +1.5% against a 1-2.5% band needs many more blocks,
    which hold only it and the reference from then on; a variant without a band runs to the end."""
    rng = np.random.default_rng(4)
    calls = []

    def variant(name, ratio):
        def fn():
            calls.append(name)
            return ratio * math.exp(rng.normal(0, 0.004))

        return fn

    effects = {"ref": 1.0, "fast": 0.8, "small": 1.015, "info": 1.1}
    variants = {name: variant(name, r) for name, r in effects.items()}
    bands = {"fast": blocks.Band(-25, -15), "small": blocks.Band(1, 2.5)}
    run = blocks.Rows()
    out = blocks.compare(
        run, "c", variants, reference="ref", bands=bands, budget_s=60, min_blocks=4, max_blocks=40, warmup=0
    )
    rows = blocks.stop_rows(run.measurements, "c").set_index("variant")
    assert rows.loc["fast", "n_blocks"] == 4 and rows.loc["fast", "stop_reason"] == blocks.DECIDED
    assert rows.loc["fast", "confidence"] == pytest.approx(
        blocks.interim_confidence(len(blocks.looks(4, 40)) - 1)
    )
    assert out.blocks > 4 and rows.loc["small", "n_blocks"] == rows.loc["info", "n_blocks"] == out.blocks
    assert (
        calls.count("fast") == 4
        and calls.count("small") == calls.count("ref") == calls.count("info") == out.blocks
    )
    assert list(rows.index) == ["fast", "small", "info"]  # in the variants' order, whenever each stopped
    assert out.values["fast"].isna().sum() == out.blocks - 4 and out.values["small"].notna().all()
    assert out.estimates["fast"].high < -15 and out.estimates["fast"].low > -25
    # the stored blocks give the decided variant's four log-ratios, the others' all of theirs
    assert len(blocks.paired_log_ratios(run.measurements, "c", "fast", "ref", "seconds")) == 4
    assert len(blocks.paired_log_ratios(run.measurements, "c", "small", "ref", "seconds")) == out.blocks


def test_the_extension_projects_at_the_pace_of_the_variants_still_running():
    """The 4ab0381 twins' sampler comparison: 6 blocks of three variants, then 3 of the undecided pair, 1 s per
    trial (24 s); 60 s more reach 30 blocks of the pair (2 s each), not the 22 the mean block (2.67 s) gives."""
    assert blocks.reachable_blocks(9, 24.0, 6 * 3 + 3 * 2, running=2, more_s=60) == 9 + 30
    assert blocks.reachable_blocks(9, 24.0, 6 * 3 + 3 * 2, running=3, more_s=60) == 9 + 20
    # no extension left: no more blocks
    assert blocks.reachable_blocks(10, 20.0, 20, running=2, more_s=0) == 10
    assert blocks.reachable_blocks(10, 0.0, 20, running=2, more_s=60) == 10  # no pace measured yet


def test_compare_goes_on_until_an_effect_below_its_band_clears_no_effect():
    """A true +4% against a +16.5-27.5% band, blocks noisy enough that the first looks straddle 0: without
    no_effect_at the comparison stops at the first look below the band; with it, it goes on until the interval lies
    above 0."""
    bands = {"b": blocks.Band(16.5, 27.5, no_effect_at=0.0)}
    out = {}
    for name, band in (("plain", blocks.Band(16.5, 27.5)), ("effect", bands["b"])):
        variants, _ = drifting_variants({"ref": 1.0, "b": 1.04}, seed=3, noise=0.05)
        out[name] = blocks.compare(
            blocks.Rows(), "c", variants, reference="ref", bands={"b": band}, min_blocks=4, max_blocks=64
        )
    assert out["plain"].stop_reason == blocks.DECIDED
    assert out["plain"].estimates["b"].low < 0  # "does not hold" here, "size differs" with more blocks
    assert out["effect"].stop_reason == blocks.DECIDED and out["effect"].blocks > out["plain"].blocks
    assert out["effect"].estimates["b"].low > 0


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


def clocked_variants(effects: dict[str, float], seed=0, noise=0.03, seconds_per_call=0.5):
    """drifting_variants on a fake clock that advances `seconds_per_call` per variant call (patch
    time.perf_counter with the returned clock), so a budget stop falls at a known block."""
    variants, calls = drifting_variants(effects, seed=seed, noise=noise)
    return variants, lambda: seconds_per_call * len(calls)


@pytest.mark.parametrize(
    "seed", [2, 5, 6]
)  # seeds where 6 blocks leave +6% undecided (in others they decide it)
def test_an_undecided_comparison_is_extended_where_its_blocks_project_a_decision(monkeypatch, seed):
    # +6% against a no-effect band of +-2%: undecided after the 6 s budget (6 blocks), decided within 18 s more
    variants, clock = clocked_variants({"ref": 1.0, "b": 1.06}, seed=seed, noise=0.04)
    monkeypatch.setattr(blocks.time, "perf_counter", clock)
    run = blocks.Rows()
    band = {"b": blocks.Band.no_effect(2)}
    kwargs = dict(reference="ref", bands=band, budget_s=6, min_blocks=4, max_blocks=30, warmup=0, seed=seed)
    plain = blocks.compare(blocks.Rows(), "c", variants, **kwargs)
    assert plain.stop_reason == blocks.BUDGET and plain.blocks == 6
    variants, clock = clocked_variants({"ref": 1.0, "b": 1.06}, seed=seed, noise=0.04)
    monkeypatch.setattr(blocks.time, "perf_counter", clock)
    shared = blocks.Extension(per_comparison_s=18, total_s=20)
    out = blocks.compare(run, "c", variants, extension=shared, **kwargs)
    row = blocks.stop_rows(run.measurements, "c").iloc[0]
    assert 6 < out.blocks <= 24 and row.extended and row.decided and math.isnan(row.projected_blocks)
    # the time it went on past its budget is spent from the shared extension: the next comparison gets the rest
    assert shared.total_s == pytest.approx(20 - (out.blocks - 6))
    variants, clock = clocked_variants({"ref": 1.0, "b": 1.06}, seed=seed, noise=0.04)
    monkeypatch.setattr(blocks.time, "perf_counter", clock)
    shared.spend(shared.total_s)  # nothing left: the same comparison stops on its budget
    spent = blocks.compare(blocks.Rows(), "c", variants, extension=shared, **kwargs)
    assert spent.stop_reason == blocks.BUDGET and spent.blocks == 6


def test_an_effect_on_its_bands_edge_is_not_extended_and_says_what_a_decision_would_take(monkeypatch):
    variants, clock = clocked_variants({"ref": 1.0, "b": 1.02})
    monkeypatch.setattr(blocks.time, "perf_counter", clock)
    run = blocks.Rows()
    out = blocks.compare(
        run,
        "c",
        variants,
        reference="ref",
        bands={"b": blocks.Band.no_effect(2)},
        budget_s=6,
        extension=blocks.Extension(12, 60),
        min_blocks=4,
        max_blocks=30,
        warmup=0,
    )
    row = blocks.stop_rows(run.measurements, "c").iloc[0]
    assert out.stop_reason == blocks.BUDGET and out.blocks == 6
    assert not row.extended and not row.decided and row.projected_blocks > 18


def test_projected_blocks_by_hand():
    # log-ratios with mean log(1.05) and sd 0.02 at n=9: half-width t(0.975, 8) * 0.02 / 3 ~ 1.54% on the log
    # scale; the nearest edge of +-2% is log(1.05) - log(1.02) ~ 2.9% away: ~9 * (1.54 / 2.9)^2 ~ 2.5 blocks
    lr = math.log(1.05) + 0.02 * np.array([-1.5, -1, -0.5, 0, 0, 0, 0.5, 1, 1.5]) / np.std(
        [-1.5, -1, -0.5, 0, 0, 0, 0.5, 1, 1.5], ddof=1
    )
    half = intervals.t_quantile(0.975, 8) * 0.02 / 3
    expected = 9 * (half / (math.log(1.05) - math.log(1.02))) ** 2
    no_effect = blocks.Band.no_effect(2)
    assert blocks.projected_blocks(blocks.change_pct(lr, 0.95), no_effect) == pytest.approx(
        expected, rel=1e-6
    )
    on_edge = blocks.change_pct(np.full(5, math.log(1.02)) + [0, 0.01, -0.01, 0, 0], 0.95)
    assert blocks.projected_blocks(on_edge, no_effect) > 1e6


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


class SwitchingHost:
    """A fake host clock that switches between a fast and a 1.5x slower speed mode every ~`every` tokens
    (exponentially distributed stretches), as the GPU machine's host does about once a second; each token of a
    generation advances it by the variant's ms per token at the current speed, with 1% jitter."""

    def __init__(self, every: float, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.every, self.now, self.slow = every, 0.0, False
        self.left = self.rng.exponential(every)

    def clock(self) -> float:
        return self.now

    def generation(self, ms: float, tokens: int):
        def make():
            for _ in range(tokens):
                self.left -= 1
                if self.left <= 0:
                    self.slow, self.left = not self.slow, self.rng.exponential(self.every)
                self.now += 1e-3 * ms * (1.5 if self.slow else 1.0) * math.exp(self.rng.normal(0, 0.01))
                yield 0

        return make


def mean_of_rounds(values, variant, reference) -> float:
    """The block log-ratio before the median: the variants' geometric means over their chunks."""
    return math.log(values[variant] / values[reference])


def _planted_blocks(
    chunk: int, n_blocks: int = 12, tokens: int = 256, every: float = 300, log_ratio=mean_of_rounds
) -> intervals.Estimate:
    """Per-block log-ratios of a variant planted 4% slower than the reference on a host that switches speed
    after about `every` tokens."""
    host = SwitchingHost(every=every, seed=1)
    rng = random.Random(0)
    ratios = []
    for _ in range(n_blocks):
        variants = {"ref": host.generation(4.0, tokens), "slow": host.generation(4.16, tokens)}
        v = blocks.interleaved(variants, rng, tokens=tokens, chunk=chunk, clock=host.clock)
        ratios.append(log_ratio(v, "slow", "ref"))
    return blocks.change_pct(ratios, 0.95)


def test_chunk_interleaving_recovers_the_planted_ratio_on_a_switching_host():
    """Whole 256-token trials back to back: a speed switch lands between the two trials of many blocks, so the
    interval spans tens of %; 16-token chunks alternated: both variants see each switch, the interval is narrow
    and holds the planted +4% (the rest of its width: chunks that straddle a switch)."""
    whole = _planted_blocks(chunk=256)
    chunked = _planted_blocks(chunk=16)
    assert whole.half_width > 8
    assert chunked.half_width < 2.5 and chunked.low < 4 < chunked.high


def test_median_of_rounds_resists_the_rounds_that_straddle_a_switch():
    """A host that switches speed every ~40 tokens: many rounds hold one variant's chunk in each speed, 50%
    apart. The mean of the rounds' log-ratios moves with them; their median (block_log_ratio) does not, so its
    interval is far narrower and still holds the planted +4%."""
    mean = _planted_blocks(chunk=16, every=40)
    median = _planted_blocks(chunk=16, every=40, log_ratio=blocks.block_log_ratio)
    assert median.low < 4 < median.high
    assert median.half_width < 0.5 * mean.half_width


def test_block_log_ratio_is_the_median_of_the_paired_rounds():
    rounds = blocks.Rounds(
        {"a": 1.0, "b": 1.2}, rounds={"a": [1.0, 1.0, 1.0, 1.0], "b": [1.1, 1.1, 1.5, np.nan]}
    )
    assert blocks.block_log_ratio(rounds, "b", "a") == pytest.approx(math.log(1.1))  # 3 paired rounds
    assert blocks.block_log_ratio({"a": 1.0, "b": 1.2}, "b", "a") == pytest.approx(math.log(1.2))


def test_compare_stores_each_round_and_the_stored_rows_give_its_log_ratios():
    """An interleaved comparison stores every round's chunk value (round_<metric>), and paired_log_ratios
    recomputes from those rows exactly the per-block median log-ratios the comparison was judged on."""
    host = SwitchingHost(every=40, seed=2)
    run = blocks.Rows()
    out = blocks.compare(
        run,
        "cmp",
        {"ref": host.generation(4.0, 64), "slow": host.generation(4.4, 64)},
        reference="ref",
        metric="ms_per_token",
        unit="ms",
        budget_s=60,
        min_blocks=5,
        max_blocks=5,
        block_fn=partial(blocks.interleaved, tokens=64, chunk=16, clock=host.clock),
    )
    df = run.measurements
    rounds = df[df.metric == blocks.round_metric("ms_per_token")]
    assert len(rounds) == 5 * 2 * 4 and rounds.unit.eq("ms").all()  # 5 blocks x 2 variants x 4 rounds
    assert rounds.trial.nunique() == 5 * 4 and set(rounds["round"]) == {0, 1, 2, 3}
    lr = blocks.paired_log_ratios(df, "cmp", "slow", "ref", "ms_per_token")
    stored = blocks.change_pct(lr.to_numpy(), out.estimates["slow"].confidence)
    assert stored.value == pytest.approx(out.estimates["slow"].value)
    assert stored.low == pytest.approx(out.estimates["slow"].low)


def test_interleaved_drops_each_chunks_first_interval_and_keeps_whole_windows():
    """A generation whose first token of every chunk costs 100 ms (the switch) and others 1 ms: the value is
    1 ms; windows of 10 intervals round a chunk of 12 up to 20 tokens."""
    stamps = {"now": 0.0}
    pulled = []

    def make(name):
        def gen():
            for i in range(40):
                pulled.append((name, i))
                stamps["now"] += 0.1 if i % 20 == 0 else 1e-3
                yield i

        return gen

    v = blocks.interleaved(
        {"a": make("a"), "b": make("b")},
        random.Random(0),
        tokens=40,
        chunk=12,
        window=10,
        clock=lambda: stamps["now"],
    )
    assert v == pytest.approx({"a": 1.0, "b": 1.0})
    runs = [name for i, (name, _) in enumerate(pulled) if i == 0 or pulled[i - 1][0] != name]
    assert len(runs) == 4 and sorted(runs) == ["a", "a", "b", "b"]  # 2 rounds of a 20-token chunk each
    with pytest.raises(ValueError):
        blocks.interleaved({"a": make("a")}, random.Random(0), tokens=40, chunk=1)
    # chunk 0: whole trials back to back, one run per variant
    pulled.clear()
    blocks.interleaved({"a": make("a"), "b": make("b")}, random.Random(0), tokens=40, chunk=0)
    runs = [name for i, (name, _) in enumerate(pulled) if i == 0 or pulled[i - 1][0] != name]
    assert sorted(runs) == ["a", "b"] and len(pulled) == 80


def test_interleaved_intervals_returns_every_chunks_intervals_switch_first():
    """Chunks of 4 over 10 tokens: 4, 4 and 2 intervals per variant, every interval the variant's own token
    time (the first runs from the chunk's start, so the other variant's chunk before it is not in it), and the
    generations closed at the end."""
    now = {"t": 0.0}
    closed = []

    def make(name, step):
        def gen():
            try:
                for i in range(10):
                    now["t"] += step
                    yield i
            finally:
                closed.append(name)

        return gen

    order, chunks = blocks.interleaved_intervals(
        {"a": make("a", 1.0), "b": make("b", 2.0)},
        random.Random(0),
        tokens=10,
        chunk=4,
        clock=lambda: now["t"],
    )
    assert sorted(order) == ["a", "b"] and sorted(closed) == ["a", "b"]
    assert [len(c) for c in chunks["a"]] == [len(c) for c in chunks["b"]] == [4, 4, 2]
    for name, step in (("a", 1.0), ("b", 2.0)):
        assert all(gaps[1:] == [step] * (len(gaps) - 1) for gaps in chunks[name])  # kept: its own tokens
        assert all(gaps[0] == step for gaps in chunks[name])  # the clock is read at the chunk's start


def test_interleaved_generations_keep_their_state_across_chunks():
    """Two greedy decode loops, each with its own cache, advanced in 5-token chunks alternately, emit exactly
    the tokens of their uninterrupted runs (on a model with clear logit margins, so the tokens vary)."""
    from mlx_workbook.investigations.kv_cache.measure import make_cache, varied_model
    from mlx_workbook.models import random_prompt
    from mlx_workbook.probes import decode, loops

    loaded = varied_model()
    prompt = random_prompt(loaded, 12, seed=0)
    tokens = 23
    seen: dict[str, list[int]] = {"concat": [], "pipelined": []}

    def recorded(name, generation):
        def gen():
            for t in generation():
                seen[name].append(int(t))
                yield t

        return gen

    concat = partial(
        decode.mlx_lm_loop, loaded.model, prompt, tokens, prompt_cache=make_cache("concat", loaded.model)
    )
    pipelined = partial(loops.library_loop, loaded.model, prompt, tokens)
    blocks.interleaved(
        {"concat": recorded("concat", concat), "pipelined": recorded("pipelined", pipelined)},
        random.Random(0),
        tokens=tokens,
        chunk=5,
    )
    alone = decode.measure_generation(loaded.model, prompt, tokens).tokens
    assert len(set(alone)) > 3  # varied tokens: the comparison is not vacuous
    assert seen["concat"] == alone and seen["pipelined"] == alone
