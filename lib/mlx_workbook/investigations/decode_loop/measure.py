"""Measuring the decode-loop variants (loops.VARIANTS): interleaved tokens/s, identity of the emitted tokens,
and the per-phase time split. Every trial is recorded as it finishes.

Method, and why (a GPU decode step of a 0.6B model is mostly host work, so host noise matters):
- every variant is first warmed up on exactly the timed shapes (same prompt, same number of tokens), so
  first-use kernel compilation (NVRTC on CUDA, shader builds on Metal) and allocator growth stay out of the
  timed trials; the first warm-up's seconds are recorded apart (experiment 'first_use');
- Python's cyclic garbage collector is off while a round runs (as `timeit` does) and collected between
  rounds: a collection pass over a notebook's heap takes tens of ms, the size of a whole short trial;
- rounds: each runs every variant once, in an order rotated by one per round, so a change of machine state
  hits all variants alike, and stats.py pairs the variants round by round.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager

import mlx.core as mx
import pandas as pd

from mlx_workbook import models
from mlx_workbook.core import progress
from mlx_workbook.core.frames import rows
from mlx_workbook.probes import decode, sampling
from mlx_workbook.probes.loops import PhaseClock, parse_model, steps, variant

# Each family's reference: greedy variants against generate_step, sampled ones against one of their own.
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
    variants: list[str],
    side_variants: list[str],
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
    for names, what in ((variants, "variants"), (side_variants, "side_variants")):
        for name in names:
            variant(name)  # unknown variant: a ValueError naming the known ones
        if "mlx_lm" not in names or not any(variant(v).family == "greedy" and v != "mlx_lm" for v in names):
            raise ValueError(
                f"{what} must include the reference 'mlx_lm' and at least one greedy library loop"
            )
    for name in samplers:
        sampling.make(name, **(sampling.CHAIN if name.startswith("chain") else {}))
    if pipelining_model and pipelining_model not in model_specs:
        raise ValueError(f"pipelining_model {pipelining_model!r} is not one of model_specs {model_specs}")


def compare(
    run,
    loaded: models.LoadedModel,
    names: list[str],
    *,
    prompt_tokens: int,
    max_tokens: int,
    repeats: int,
    warmup: int = 1,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Decode tokens/s of every variant in interleaved rounds (experiment 'decode', trial = round).
    Returns each variant's tokens (first round)."""
    variants = [variant(n) for n in names]
    prompt = models.random_prompt(loaded, prompt_tokens, seed=seed)
    kwargs = {v.name: ({"seed": seed} if v.options is not None else {}) for v in variants}
    for w in range(warmup):  # the timed shapes exactly: kernels compiled, buffers allocated, untimed
        for v in variants:
            tic = time.perf_counter()
            decode.measure_generation(loaded.model, prompt, max_tokens, loop=v.loop(), **kwargs[v.name])
            if w == 0:
                run.record(
                    "first_use",
                    "warmup_s",
                    time.perf_counter() - tic,
                    "s",
                    trial=0,
                    variant=v.name,
                    label=loaded.label,
                    generated_tokens=max_tokens,
                    **loaded.describe(),
                )
    tokens: dict[str, list[int]] = {}
    for trial in progress.steps(range(repeats), f"{loaded.label}: round"):
        k = trial % len(variants)
        with collector_paused():
            for position, v in enumerate(variants[k:] + variants[:k]):
                gen = decode.measure_generation(
                    loaded.model, prompt, max_tokens, loop=v.loop(), **kwargs[v.name]
                )
                tokens.setdefault(v.name, gen.tokens)
                decode.record_generation(
                    run,
                    "decode",
                    gen,
                    trial=trial,
                    variant=v.name,
                    family=v.family,
                    position=position,
                    label=loaded.label,
                    **loaded.describe(),
                )
    return tokens


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


def fastest_measured(df: pd.DataFrame, label: str) -> str:
    """The greedy library loop with the highest median decode tokens/s so far on one model (generate_step
    excluded), from the raw rows: cheap enough mid-measurement to pick the loop whose time is split next.
    (The analysis names the fastest from its bootstrap summary: stats.fastest_library_loop.)"""
    medians = rows(df, "decode", "decode_tps", label=label).groupby("variant").value.median()
    greedy = [n for n in medians.index if variant(n).family == "greedy" and n != "mlx_lm"]
    return str(medians.loc[greedy].idxmax())


def measure_model(
    run,
    spec_text: str,
    names: list[str],
    *,
    samplers: list[str],
    prompt_tokens: int,
    max_tokens: int,
    repeats: int,
    warmup: int,
    split_tokens: int,
    split_repeats: int,
    sampler_calls: int,
    sampler_repeats: int,
    seed: int = 0,
) -> str:
    """Everything measured on one model: the interleaved comparison, the agreement with each family's
    reference, the time split of generate_step's steps (its copy) and of the fastest library loop, and the
    samplers alone (when asked). Returns the model's label."""
    spec = parse_model(spec_text)
    loaded = models.build_preset(spec["name"], dtype=spec["dtype"], bits=spec["bits"], seed=seed)
    tokens = compare(
        run,
        loaded,
        names,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        repeats=repeats,
        warmup=warmup,
        seed=seed,
    )
    record_agreement(run, loaded, tokens)
    fastest = fastest_measured(run.measurements, loaded.label)
    time_split(
        run,
        loaded,
        list(dict.fromkeys(["logprobs_always", fastest])),
        prompt_tokens=prompt_tokens,
        max_tokens=split_tokens,
        repeats=split_repeats,
        seed=seed,
    )
    if samplers:
        sampling.time_sampling(run, loaded, samplers, calls=sampler_calls, repeats=sampler_repeats)
    label = loaded.label
    del loaded, tokens
    mx.clear_cache()
    return label
