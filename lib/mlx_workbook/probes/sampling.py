"""Samplers and logits processors the decode-loop variants compare, and a clock for sampling alone.

Every sampler maps the last position's logits (or log-probabilities: the same distribution, shifted by a
constant) of shape (1, vocab) to a token id of shape (1,). The filter chain repeats mlx-lm's arithmetic
(sample_utils: top-p, then min-p, then top-k, then a categorical draw at 1/temperature) as plain functions,
so the same chain can run compiled (one `mx.compile` over the whole chain) or not; mlx-lm's own
`make_sampler` compiles each filter on its own and is the third form.

Identity under sampling: the random draw consumes MLX's global random state, so two samplers give the
same tokens when they draw from the same distribution with the same state (seeded the same way). Compiling
may change float rounding in the filters, so "same tokens" is tested, not assumed (tests/test_loops.py).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from functools import partial

import mlx.core as mx

from mlx_workbook.core import blocks

Sampler = Callable[[mx.array], mx.array]
Processor = Callable[[mx.array, mx.array], mx.array]  # (context tokens, logits) -> logits


def greedy(logits: mx.array) -> mx.array:
    return mx.argmax(logits, axis=-1)


def fast_categorical(logits: mx.array) -> mx.array:
    """Temperature 1, no filters: draw straight from the logits (seed 001's 'fast path', no copy)."""
    return mx.random.categorical(logits)


def top_p_filter(x: mx.array, top_p: float) -> mx.array:
    sorted_x = mx.sort(x, axis=-1)
    probs = mx.exp(sorted_x.astype(mx.float32))
    mass_above = mx.cumsum(probs, axis=-1, reverse=True, inclusive=False)
    total = mass_above[..., :1] + probs[..., :1]  # works on logits too: the mass is normalized here
    dropped = (mass_above >= top_p * total).sum(axis=-1, keepdims=True)
    threshold = mx.take_along_axis(sorted_x, dropped, axis=-1)
    return mx.where(x < threshold, -float("inf"), x)


def min_p_filter(x: mx.array, min_p: float) -> mx.array:
    return mx.where(x < mx.max(x, axis=-1, keepdims=True) + math.log(min_p), -float("inf"), x)


def top_k_filter(x: mx.array, top_k: int) -> mx.array:
    drop = mx.argpartition(-x, kth=top_k - 1, axis=-1)[..., top_k:]
    return mx.put_along_axis(x, drop, mx.array(-float("inf"), x.dtype), axis=-1)


def _chain(x: mx.array, temp: float, top_p: float, min_p: float, top_k: int) -> mx.array:
    if 0 < top_p < 1:
        x = top_p_filter(x, top_p)
    if min_p > 0:
        x = min_p_filter(x, min_p)
    if top_k > 0:
        x = top_k_filter(x, top_k)
    return mx.random.categorical(x * (1.0 / temp))


def chain_sampler(
    temp: float = 1.0, top_p: float = 0.0, min_p: float = 0.0, top_k: int = 0, compiled: bool = False
) -> Sampler:
    """The top-p/min-p/top-k chain as one function; `compiled` wraps all of it in one mx.compile."""
    if temp <= 0:
        raise ValueError("temp must be > 0 for a sampling chain (use greedy for temperature 0)")
    fn = partial(_chain, temp=temp, top_p=top_p, min_p=min_p, top_k=top_k)
    if compiled:
        # The random state is an implicit input and output of the draw: declare it, as mlx-lm does.
        fn = mx.compile(fn, inputs=mx.random.state, outputs=mx.random.state)
    return fn


def mlx_lm_sampler(temp: float = 1.0, top_p: float = 0.0, min_p: float = 0.0, top_k: int = 0) -> Sampler:
    """mlx-lm's own make_sampler (each filter compiled on its own; at temp 1 it still scales by 1/temp)."""
    from mlx_lm.sample_utils import make_sampler

    return make_sampler(temp=temp, top_p=top_p, min_p=min_p, top_k=top_k)


CHAIN = {"temp": 1.0, "top_p": 0.9, "min_p": 0.05, "top_k": 50}  # a typical full filter chain

SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "greedy": lambda **_: greedy,
    "fast": lambda **_: fast_categorical,
    "mlx_lm": mlx_lm_sampler,
    "chain": partial(chain_sampler, compiled=False),
    "chain_compiled": partial(chain_sampler, compiled=True),
    "mlx_lm_chain": lambda **_: mlx_lm_sampler(**CHAIN),
}


def make(name: str, **options) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**options)


# --- repetition penalty: vectorized (one scatter) vs one token at a time -------------------------------------


def _penalize(x: mx.array, penalty: float) -> mx.array:
    return mx.where(x < 0, x * penalty, x / penalty)


def repetition_penalty(penalty: float, context: int = 20, vectorized: bool = True) -> Processor:
    """mlx-lm's repetition penalty (one gather + one scatter over the last `context` tokens), or the same
    arithmetic applied one context token at a time (the loop seed 000 reverted to). Both read the original
    logits, so a token repeated in the context is penalized once either way: the same tokens come out."""
    if penalty <= 0:
        raise ValueError("penalty must be > 0")

    def vector(tokens: mx.array, logits: mx.array) -> mx.array:
        recent = tokens[-context:]
        logits[:, recent] = _penalize(logits[:, recent], penalty)
        return logits

    def loop(tokens: mx.array, logits: mx.array) -> mx.array:
        # Gather every original value first: a setitem rebinds `logits` to the scattered array.
        idx = [tokens[i : i + 1] for i in range(max(0, tokens.size - context), tokens.size)]
        new = [_penalize(logits[:, t], penalty) for t in idx]
        for t, v in zip(idx, new):
            logits[:, t] = v
        return logits

    return vector if vectorized else loop


# --- clocks ------------------------------------------------------------------------------------------------


def time_samplers(
    samplers: dict[str, Sampler],
    vocab_size: int,
    *,
    dtype=mx.float32,
    calls: int = 20,
    repeats: int = 5,
    warmup: int = 2,
    seed: int = 0,
    max_repeats: int = 0,
    until=None,
) -> list[dict[str, float]]:
    """Seconds per sampling of one (1, vocab) logits row, each call evaluated before the next (a decode loop
    samples one token at a time, so calls are never batched into one graph here). Paired: every repeat times
    each sampler once (`calls` calls) back to back in a fresh random order (blocks.back_to_back), so a change
    of the host's speed hits the samplers of a repeat alike. One {name: seconds per call} per repeat.

    `until(repeats so far) -> bool`: after the first `repeats`, `repeats` more at a time until it says the
    question is decided or `max_repeats` have run."""
    mx.random.seed(seed)
    logits = mx.random.normal((1, vocab_size)).astype(dtype)
    mx.eval(logits)

    def sample_calls(sampler: Sampler) -> None:
        for _ in range(calls):
            mx.eval(sampler(logits))

    variants = {name: blocks.timed(partial(sample_calls, s)) for name, s in samplers.items()}
    for _ in range(warmup):  # first-use compilation (mx.compile, kernels) stays out of the repeats
        for fn in variants.values():
            fn()
    rng = random.Random(seed)

    def more(n: int) -> list[dict[str, float]]:
        return [{name: t / calls for name, t in blocks.back_to_back(variants, rng).items()} for _ in range(n)]

    out = more(repeats)
    while until is not None and len(out) < max_repeats and not until(out):
        out += more(min(repeats, max_repeats - len(out)))
    return out


def time_transfer(vocab_size: int, *, calls: int = 20, repeats: int = 5) -> list[float]:
    """Seconds to bring an evaluated token id and its (vocab,) float32 log-probabilities to the host
    (item + a numpy copy): seed 000's 'data transfer' step, with nothing left to compute."""
    import numpy as np

    token = mx.array([1], dtype=mx.uint32)
    logprobs = mx.random.normal((vocab_size,))
    mx.eval(token, logprobs)
    out = []
    for _ in range(repeats):
        tic = time.perf_counter()
        for _ in range(calls):
            token.item()
            np.array(logprobs, copy=True)
        out.append((time.perf_counter() - tic) / calls)
    return out


def time_sampling(
    run, loaded, names: list[str], *, calls: int, repeats: int, max_repeats: int = 0, until=None
) -> None:
    """Seconds per sampler call on one vocab-sized logits row (model dtype), the samplers paired per repeat
    (time_samplers: `trial` is the repeat; more repeats while `until` says undecided, up to `max_repeats`, each
    row saying why they stopped), and the token + logprobs transfer to the host; experiment 'sampling'."""
    from mlx_workbook.models import DTYPES

    samplers = {name: make(name, **(CHAIN if name.startswith("chain") else {})) for name in names}
    per_repeat = time_samplers(
        samplers,
        loaded.vocab_size,
        dtype=DTYPES[loaded.dtype],
        calls=calls,
        repeats=repeats,
        max_repeats=max_repeats,
        until=until,
    )
    fields = dict(label=loaded.label, **loaded.describe())
    stopped = {} if until is None else {"stop_reason": "decided" if until(per_repeat) else "max_repeats"}
    for i, timed in enumerate(per_repeat):
        for position, (name, s) in enumerate(timed.items()):  # in running order
            run.record(
                "sampling",
                "ms_per_call",
                1e3 * s,
                "ms",
                trial=i,
                sampler=name,
                position=position,
                **stopped,
                **fields,
            )
    for i, s in enumerate(time_transfer(loaded.vocab_size, calls=calls, repeats=repeats)):
        run.record("sampling", "ms_per_call", 1e3 * s, "ms", trial=i, sampler="transfer", **fields)
