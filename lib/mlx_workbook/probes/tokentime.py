"""Where one decode step's time goes: a synchronous, instrumented copy of mlx-lm's decode step.

mlx-lm's `generate_step` pipelines: it builds and submits step n+1 (`mx.async_eval`) before it waits for
token n (`item()`), so graph building overlaps the device's work and a host clock sees only the larger of
the two. To see each part, this loop runs the same step (forward, `logits[:, -1]`, log-softmax, greedy
argmax) one token at a time, in order, with a clock between the parts:

- build: Python builds the lazy graph of the forward pass and the sampling (nothing runs yet);
- eval: `mx.eval` of the token and its log-probabilities (dispatch, the device's execution, waiting for it);
- item: `item()` copies the (already computed) token id to the host.

The sum is the time a token costs when nothing overlaps, which is what a non-pipelined binding pays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

PREFILL_STEP = 2048  # as mlx-lm's generate_step
PARTS = ("build_ms", "eval_ms", "item_ms")


@dataclass(frozen=True)
class Split:
    build_ms: float
    eval_ms: float
    item_ms: float

    @property
    def total_ms(self) -> float:
        return self.build_ms + self.eval_ms + self.item_ms


def greedy(logprobs: mx.array) -> mx.array:
    return mx.argmax(logprobs, axis=-1)  # mlx-lm's default sampler (temperature 0)


def _prefill(model: nn.Module, prompt: mx.array, cache: list) -> None:
    # As generate_step: every prompt token but the last, in chunks, evaluating the cache after each chunk.
    while prompt.size > 1:
        n = min(PREFILL_STEP, prompt.size - 1)
        model(prompt[:n][None], cache=cache)
        mx.eval([c.state for c in cache])
        prompt = prompt[n:]


def instrumented_loop(
    model: nn.Module,
    prompt: mx.array,
    max_tokens: int,
    *,
    prompt_cache: list | None = None,
    splits: list | None = None,
) -> Iterator[int]:
    """A decode loop (the `decode.Loop` signature) that times build / eval / item of every token.

    `splits` (a list) receives one `Split` per token, the first one included (it holds the last prompt
    token's forward pass). With a `prompt_cache` that already holds a context, a one-token prompt continues
    from it without any prefill.
    """
    from mlx_lm.models.cache import make_prompt_cache

    cache = prompt_cache if prompt_cache is not None else make_prompt_cache(model)
    _prefill(model, prompt, cache)
    y = prompt[-1:]
    for _ in range(max_tokens):
        t0 = time.perf_counter()
        logits = model(y[None], cache=cache)[:, -1, :]
        logprobs = logits - mx.logsumexp(logits, keepdims=True)
        y = greedy(logprobs)
        t1 = time.perf_counter()
        mx.eval(y, logprobs)
        t2 = time.perf_counter()
        token = y.item()
        t3 = time.perf_counter()
        if splits is not None:
            splits.append(Split(1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2)))
        yield token


def measure_split(model: nn.Module, cache: list, last_token: int, tokens: int) -> list[Split]:
    """Continue decoding `tokens` steps from a filled cache; the splits of every step after the first.

    The first step is dropped: its graph may be new to the allocator and the clocks (a warm-up).
    """
    mx.eval([c.state for c in cache])
    mx.synchronize()
    splits: list[Split] = []
    prompt = mx.array([last_token], dtype=mx.uint32)
    for _ in instrumented_loop(model, prompt, tokens + 1, prompt_cache=cache, splits=splits):
        pass
    return splits[1:]
