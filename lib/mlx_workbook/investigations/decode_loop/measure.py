"""Measuring the decode-loop variants (loops.VARIANTS): one paired, interleaved comparison per claim
(core.blocks), the identity of the emitted tokens, and the per-phase time split. Every row is recorded as it
finishes.

Method, and why (a GPU decode step of a 0.6B model is mostly host work, and the GPU machine's host changes
speed for seconds at a time):
- every variant is first warmed up once on exactly the timed shapes (same prompt, same number of tokens), so
  first-use kernel compilation (NVRTC on CUDA, shader builds on Metal) and allocator growth stay out of the
  timed trials; those seconds are recorded apart (experiment 'first_use');
- each claim's comparison (plans.PLANS) runs only its two or three variants, one trial each per block, the
  trials advanced alternately `chunk_tokens` tokens at a time in a random order per round (blocks.interleaved:
  the host's speed changes about once a second, so whole trials back to back land in different speed modes),
  and adds blocks until its interval decides the claim's widened band or its time budget is spent
  (blocks.compare); a trial's value is its steady-state ms per token (the geometric mean of its chunks'
  median over windows of token intervals), so a host stall moves one window of a chunk, not the trial, and a
  block's log-ratio is the median of its rounds' (blocks.block_log_ratio), so a round that straddles a change
  of the host's speed does not move it;
- mlx-lm's run-to-run spread is its own pass (`Variability`): whole generate_step generations, as the write-ups
  ran them, since the drift between runs is what that claim is about, spread over the comparisons (a few after
  each) so that they sample the host over the whole notebook rather than one stretch of it;
- the samplers alone are timed paired (sampling.time_samplers): every sampler once per repeat, back to back in
  a random order, so their ratio is judged on per-repeat log-ratios;
- Python's cyclic garbage collector is collected before each comparison and off while it runs (as `timeit`
  does): a collection pass over a notebook's heap takes tens of ms.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Collection
from contextlib import contextmanager
from functools import partial

import mlx.core as mx
import pandas as pd

from mlx_workbook import models
from mlx_workbook.core import blocks, intervals, progress
from mlx_workbook.investigations.decode_loop import plans, spread
from mlx_workbook.probes import decode, sampling
from mlx_workbook.probes.loops import PhaseClock, parse_model, steps, variant

# Each family's reference for the token agreement: greedy variants against generate_step, sampled ones against
# one of their own.
FAMILY_REFERENCE = {
    "greedy": "mlx_lm",
    "sampled": "sample_fast",
    "chain": "sample_chain",
    "penalty": "rep_penalty",
}


@contextmanager
def collector_paused():
    """Collect now, then keep Python's cyclic GC from pausing the timed code (reference counting still frees)."""
    was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def validate(
    model_specs: list[str],
    comparisons: list[str],
    side_comparisons: list[str],
    samplers: list[str],
    pipelining_model: str,
    *,
    seed: int = 0,
) -> None:
    """Every name known and every model fitting this device, before anything heavy runs (one clear error)."""
    if not model_specs:
        raise ValueError("model_specs needs at least one model")
    for spec_text in model_specs:  # unknown preset, dtype or bits, or too large: a ModelError now
        spec = parse_model(spec_text)
        lazy = models.build_preset(
            spec["name"], dtype=spec["dtype"], bits=spec["bits"], seed=seed, materialize=False
        )
        models.check_fits(lazy.weight_bytes(), lazy.label)
    unknown = sorted((set(comparisons) | set(side_comparisons)) - set(plans.PLANS))
    if unknown:
        raise ValueError(f"unknown comparisons {unknown}; known: {', '.join(plans.PLANS)}")
    if not comparisons:
        raise ValueError("comparisons needs at least one comparison for the claims model")
    for name in samplers:
        sampling.make(name, **(sampling.CHAIN if name.startswith("chain") else {}))
    if pipelining_model and pipelining_model not in model_specs:
        raise ValueError(f"pipelining_model {pipelining_model!r} is not one of model_specs {model_specs}")


def plans_for(
    spec: str,
    model_specs: list[str],
    comparisons: list[str],
    side_comparisons: list[str],
    pipelining_model: str,
) -> list[str]:
    """The comparisons one model runs: the first model `comparisons`, the others `side_comparisons`; the model
    the pipelining claim is judged on (pipelining_model, else the last) also runs 'pipelining'."""
    chosen = list(comparisons if spec == model_specs[0] else side_comparisons)
    if spec == (pipelining_model or model_specs[-1]) and plans.PIPELINING not in chosen:
        chosen.append(plans.PIPELINING)
    return chosen


def judged_claims(spec: str, model_specs: list[str], pipelining_model: str) -> set[str]:
    """The claims judged on one model (plans.judged_model; the pipelining model: pipelining_model, else the last)."""
    pipelining = pipelining_model or model_specs[-1]
    return {c for c in plans.CLAIMS if plans.judged_model(c, model_specs[0], pipelining) == spec}


def window(names: list[str]) -> int:
    """Token intervals per window of a trial's median: a loop that evaluates every N tokens needs N (each
    window then holds one of its evaluations); every variant of a comparison uses the same window."""
    return max(
        (variant(n).options or {}).get("eval_every", 1)
        if (variant(n).options or {}).get("schedule") == "batched"
        else 1
        for n in names
    )


def trial(loaded: models.LoadedModel, prompt: mx.array, name: str, max_tokens: int, seed: int):
    """One variant as a block's generation factory: a fresh decode of `max_tokens` tokens (blocks.interleaved
    times it token by token). Sampled variants seed the global generator when they start, so their draws
    interleave with the other loop's and differ from an uninterrupted run's; their time per token does not."""
    v = variant(name)
    kwargs = {"seed": seed} if v.options is not None else {}
    return partial(v.loop(), loaded.model, prompt, max_tokens, **kwargs)


def warm_up(
    run, loaded: models.LoadedModel, names: list[str], prompt: mx.array, max_tokens: int, seed: int
) -> dict[str, list[int]]:
    """Each variant once, untimed for the comparisons, on the timed shapes (experiment 'first_use': its
    seconds, where first-use kernel compilation shows). Returns each variant's tokens."""
    tokens = {}
    for name in names:
        v = variant(name)
        tic = time.perf_counter()
        gen = decode.measure_generation(
            loaded.model,
            prompt,
            max_tokens,
            loop=v.loop(),
            **({"seed": seed} if v.options is not None else {}),
        )
        tokens[name] = gen.tokens
        run.record(
            "first_use",
            "warmup_s",
            time.perf_counter() - tic,
            "s",
            trial=0,
            variant=name,
            label=loaded.label,
            generated_tokens=max_tokens,
            **loaded.describe(),
        )
    return tokens


def compare(
    run,
    loaded: models.LoadedModel,
    plan_names: list[str],
    *,
    tolerances: plans.Tolerances,
    prompt_tokens: int,
    max_tokens: int,
    budget_s: float,
    extension: blocks.Extension | None = None,
    min_blocks: int,
    max_blocks: int,
    chunk_tokens: int = 0,
    claims: Collection[str] | None = None,
    between: Callable[[str], None] | None = None,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Warm every variant the plans need once, then run each plan as its own blocks.compare (experiment = the
    plan's name, one row per trial: its steady-state ms/token; one change_pct row per variant with why it
    stopped); each block's trials advance alternately `chunk_tokens` at a time (0: whole trials). Only the
    bands of `claims` (those judged on this model, `judged_claims`; None: all) and the fastest-loop check stop a
    comparison or extend it. `between(plan_name)` runs after each comparison (the variability pass's share).
    Returns each variant's tokens (warm-up generation)."""
    prompt = models.random_prompt(loaded, prompt_tokens, seed=seed)
    names = list(dict.fromkeys(n for p in plan_names for n in plans.PLANS[p].names))
    tokens = warm_up(run, loaded, names, prompt, max_tokens, seed)
    for i, plan_name in enumerate(progress.steps(plan_names, f"{loaded.label}: comparison")):
        plan = plans.PLANS[plan_name]
        per = window(plan.names)
        with collector_paused():
            blocks.compare(
                run,
                plan_name,
                {n: trial(loaded, prompt, n, max_tokens, seed) for n in plan.names},
                reference=plan.reference,
                bands=plans.bands(plan_name, tolerances, claims),
                metric=plans.TIME_METRIC,
                unit="ms",
                budget_s=budget_s,
                extension=extension,
                min_blocks=min_blocks,
                max_blocks=max_blocks,
                warmup=0,  # warm_up above ran every variant once already
                seed=seed + i,
                block_fn=partial(blocks.interleaved, tokens=max_tokens, chunk=chunk_tokens, window=per),
                label=loaded.label,
                tokens_per_trial=max_tokens,
                chunk_tokens=chunk_tokens,
                window_tokens=per,
                **loaded.describe(),
            )
        if between is not None:
            between(plan_name)
    return tokens


class Variability:
    """mlx-lm's run-to-run spread the way the write-ups measured it: `runs` whole generate_step generations of
    `max_tokens` tokens (warm: compare ran it first), each one row of its decode tokens/s (mlx-lm's
    generation_tps; experiment plans.VARIABILITY). Nothing is interleaved within a run: the host's drift between
    runs is part of what is measured. The runs are spread over the notebook's comparisons (`take` after each;
    method 12): back to back they sampled one ~40 s stretch of the host, so two runs of the notebook at the same
    commit found 15% and 21%, and consecutive runs shared a host state the interval takes as independent. With a
    `band` (the claim's, plans.variance_band), `finish` adds `runs` more at a time until the spread's interval
    (spread.expected_half_range) decides against it or `max_runs` have run; every row says why the pass stopped
    and which comparison it followed (column `after`)."""

    def __init__(
        self,
        run,
        loaded: models.LoadedModel,
        *,
        runs: int,
        prompt_tokens: int,
        max_tokens: int,
        max_runs: int = 0,
        band: blocks.Band | None = None,
        seed: int = 0,
    ):
        self.run, self.loaded, self.runs, self.max_tokens = run, loaded, runs, max_tokens
        self.max_runs, self.band = max_runs, band
        self.prompt = models.random_prompt(loaded, prompt_tokens, seed=seed)
        self.done: list[dict] = []

    def take(self, n: int, after: str) -> None:
        """Up to `n` of the first `runs` generations now, after comparison `after`."""
        self._generate(min(n, self.runs - len(self.done)), after)

    def _generate(self, n: int, after: str) -> None:
        if n <= 0:
            return
        with collector_paused():
            for i in progress.steps(
                range(len(self.done), len(self.done) + n), f"{self.loaded.label}: variability"
            ):
                gen = decode.measure_generation(
                    self.loaded.model, self.prompt, self.max_tokens, loop=variant("mlx_lm").loop()
                )
                self.done.append(
                    dict(value=gen.decode_tps, trial=i, generated_tokens=len(gen.tokens), after=after)
                )

    def decided(self) -> bool:
        if self.band is None or len(self.done) < spread.MIN_SPREAD_RUNS:  # no interval yet: not measured
            return False
        e = spread.expected_half_range([r["value"] for r in self.done])
        return self.band.decides(100 * e.low, 100 * e.high)

    def finish(self, after: str = "end") -> None:
        """The rest of the first `runs`, then more until decided (with a band), then every row into the run."""
        self.take(self.runs, after)
        settled = self.decided()
        while self.band is not None and self.done and not settled and len(self.done) < self.max_runs:
            self._generate(min(self.runs, self.max_runs - len(self.done)), after)
            settled = self.decided()
        stopped = {} if self.band is None else {"stop_reason": "decided" if settled else "max_runs"}
        for r in self.done:
            self.run.record(
                plans.VARIABILITY,
                plans.VARIABILITY_METRIC,
                r["value"],
                "tokens/s",
                trial=r["trial"],
                variant="mlx_lm",
                label=self.loaded.label,
                generated_tokens=r["generated_tokens"],
                after=r["after"],
                **stopped,
                **self.loaded.describe(),
            )


def variability(run, loaded: models.LoadedModel, **options) -> None:
    """The whole variability pass at once (Variability's options; no comparisons to spread it over)."""
    Variability(run, loaded, **options).finish()


def compiled_sampling_decided(per_repeat: list[dict[str, float]]) -> bool:
    """Does the uncompiled over compiled chain's paired speed-up (as its finding judges it) decide against the
    claim's band yet?"""
    if len(per_repeat) < 2:
        return False
    e = intervals.paired_ratio([r["chain"] for r in per_repeat], [r["chain_compiled"] for r in per_repeat])
    return plans.compiled_sampling_band().decides(e.low, e.high)


def record_agreement(run, loaded: models.LoadedModel, tokens: dict[str, list[int]]) -> None:
    """Share of each variant's tokens equal to its family's reference, position by position (experiment
    'agreement'). Information only on random-weight presets: their logits are nearly tied, so a last-bit
    difference between two graphs (a GPU reduction order) can flip an argmax; check_identity is the test."""
    for name, toks in tokens.items():
        ref = tokens.get(FAMILY_REFERENCE[variant(name).family])
        if ref is not None:
            same = sum(a == b for a, b in zip(toks, ref)) / len(ref)
            run.record(
                "agreement",
                "tokens_equal_to_reference",
                same,
                "fraction",
                variant=name,
                reference=FAMILY_REFERENCE[variant(name).family],
                label=loaded.label,
                **loaded.describe(),
            )


def check_identity(
    run, loaded: models.LoadedModel, names: list[str], *, prompt_tokens: int, max_tokens: int, seed: int = 0
) -> pd.DataFrame:
    """Greedy tokens of every greedy variant against generate_step's on a model with clear logit margins
    (kv_cache.measure.varied_model: weights scaled up), so equal tokens test the loop logic, not rounding luck.
    Recorded as experiment 'identity' (equal share and first differing position per variant)."""
    prompt = models.random_prompt(loaded, prompt_tokens, seed=seed)
    ref = decode.measure_generation(loaded.model, prompt, max_tokens, loop=variant("mlx_lm").loop()).tokens
    rows = []
    for name in [n for n in names if variant(n).family == "greedy" and n != "mlx_lm"]:
        toks = decode.measure_generation(
            loaded.model, prompt, max_tokens, loop=variant(name).loop(), seed=seed
        ).tokens
        diverge = decode.first_divergence(toks, ref)
        diverge = len(ref) if diverge is None else diverge
        rows.append(
            {
                "variant": name,
                "tokens": len(ref),
                "distinct_tokens": len(set(ref)),
                "equal_share": sum(a == b for a, b in zip(toks, ref)) / len(ref),
                "identical_prefix": diverge,
            }
        )
        run.record_many(
            "identity",
            [
                dict(
                    r,
                    variant=name,
                    reference="mlx_lm",
                    trial=0,
                    label=loaded.label,
                    prompt_tokens=prompt.size,
                    **loaded.describe(),
                )
                for r in (
                    dict(metric="tokens_equal_to_reference", value=rows[-1]["equal_share"], unit="fraction"),
                    dict(metric="identical_prefix", value=float(diverge), unit="tokens"),
                )
            ],
        )
    return pd.DataFrame(rows)


def time_split(
    run,
    loaded: models.LoadedModel,
    names: list[str],
    *,
    prompt_tokens: int,
    max_tokens: int,
    repeats: int,
    seed: int = 0,
) -> None:
    """Per-token host time by phase (loops.PHASES: graph build, sampling, encode/launch, wait for device; and
    the loop's own rest, 'other') for library variants, recorded per trial as ms per token and % of the time
    between first and last token. All host time: no phase is the device's execution time."""
    prompt = models.random_prompt(loaded, prompt_tokens, seed=seed)
    if any(variant(n).options is None for n in names):
        raise ValueError("mlx-lm's generate_step cannot be split; time its copy 'logprobs_always'")
    with collector_paused():
        _split_trials(run, loaded, names, prompt, max_tokens, repeats, seed)


def _split_trials(run, loaded, names, prompt, max_tokens, repeats, seed) -> None:
    for trial in range(-1, repeats):  # trial -1: warm-up, not recorded
        for name in names:
            clock = PhaseClock()
            for _ in steps(loaded.model, prompt, max_tokens, seed=seed, clock=clock, **variant(name).options):
                pass
            if trial < 0:
                continue
            intervals = clock.tokens - 1
            parts = dict(clock.totals, other=clock.other_s)
            rows = []
            for phase, seconds in parts.items():
                if seconds <= 0:  # only 'other' can be: the phases already cover the whole interval
                    continue
                rows.append(
                    dict(metric="phase_ms_per_token", value=1e3 * seconds / intervals, unit="ms", phase=phase)
                )
                rows.append(
                    dict(metric="phase_share_pct", value=100 * seconds / clock.wall_s, unit="%", phase=phase)
                )
            rows.append(
                dict(metric="ms_per_token", value=1e3 * clock.wall_s / intervals, unit="ms", phase="total")
            )
            run.record_many(
                "split",
                [dict(r, trial=trial, variant=name, label=loaded.label, **loaded.describe()) for r in rows],
            )


def measure_model(
    run,
    spec_text: str,
    plan_names: list[str],
    *,
    tolerances: plans.Tolerances,
    samplers: list[str],
    prompt_tokens: int,
    max_tokens: int,
    budget_s: float,
    extension: blocks.Extension | None = None,
    min_blocks: int,
    max_blocks: int,
    split_tokens: int,
    split_repeats: int,
    sampler_calls: int,
    sampler_repeats: int,
    sampler_max_repeats: int = 0,
    variability_runs: int = 0,
    variability_max_runs: int = 0,
    chunk_tokens: int = 0,
    claims: Collection[str] | None = None,
    seed: int = 0,
) -> str:
    """Everything measured on one model: the comparisons, mlx-lm's run-to-run spread (`variability_runs` whole
    generations spread over them; 0: skipped), the agreement with each family's reference, the time split of
    generate_step's steps (its copy) and of the judged loop (pipelined), and the samplers alone (when asked).
    `claims`: the claims judged on this model (see `compare`). The spread's pass and the samplers (the notebook
    runs both on the claims model) go on, up to `variability_max_runs` runs and `sampler_max_repeats` repeats
    where those exceed the first look, until their claim's interval decides. Returns the model's label."""
    spec = parse_model(spec_text)
    loaded = models.build_preset(spec["name"], dtype=spec["dtype"], bits=spec["bits"], seed=seed)
    spread_pass = Variability(
        run,
        loaded,
        runs=variability_runs,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        max_runs=variability_max_runs,
        band=plans.variance_band(tolerances) if variability_max_runs > variability_runs else None,
        seed=seed,
    )
    # its first runs spread evenly over the comparisons (a ceiling: the last share may be smaller)
    share = -(-variability_runs // max(1, len(plan_names)))
    tokens = compare(
        run,
        loaded,
        plan_names,
        tolerances=tolerances,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        budget_s=budget_s,
        extension=extension,
        min_blocks=min_blocks,
        max_blocks=max_blocks,
        chunk_tokens=chunk_tokens,
        claims=claims,
        between=lambda plan_name: spread_pass.take(share, after=plan_name),
        seed=seed,
    )
    spread_pass.finish()
    record_agreement(run, loaded, tokens)
    time_split(
        run,
        loaded,
        ["logprobs_always", "pipelined"],
        prompt_tokens=prompt_tokens,
        max_tokens=split_tokens,
        repeats=split_repeats,
        seed=seed,
    )
    if samplers:
        compiled = {"chain", "chain_compiled"} <= set(samplers) and sampler_max_repeats > sampler_repeats
        sampling.time_sampling(
            run,
            loaded,
            samplers,
            calls=sampler_calls,
            repeats=sampler_repeats,
            max_repeats=sampler_max_repeats,
            until=compiled_sampling_decided if compiled else None,
        )
    label = loaded.label
    del loaded, tokens
    mx.clear_cache()
    return label
