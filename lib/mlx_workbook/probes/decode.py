"""Decode loops and the generation measurement, defined the way mlx-lm defines it.

A loop is a function `(model, prompt, max_tokens) -> iterator of token ids`. mlx-lm's own
`generate_step` is the reference loop; the variants the investigations compare are added beside it.

Clocks follow `mlx_lm.stream_generate`: time to first token (TTFT) runs from the call until the first
token id is on the host (prefill + first sample); prompt tokens/s = prompt length / TTFT; decode tokens/s =
generated tokens / time from the first token to the last (mlx-lm counts the first token in the numerator
although its time is in TTFT; `ms_per_token` is the unbiased per-interval figure).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import mlx.core as mx
import mlx.nn as nn
import numpy as np

Loop = Callable[..., Iterator[int]]


def tokens_digest(tokens: list[int]) -> str:
    """A short fingerprint of a generated sequence, stored beside a measurement so that two runs' tokens can be
    compared from the data alone."""
    return hashlib.sha1(",".join(map(str, tokens)).encode()).hexdigest()[:12]


def mlx_lm_loop(model: nn.Module, prompt: mx.array, max_tokens: int, **kwargs) -> Iterator[int]:
    """mlx-lm's `generate_step` (greedy unless a sampler is passed), yielding token ids."""
    from mlx_lm.generate import generate_step

    for token, _logprobs in generate_step(prompt, model, max_tokens=max_tokens, **kwargs):
        yield int(token)


@dataclass
class Generation:
    prompt_tokens: int
    tokens: list[int]
    ttft_s: float
    decode_s: float  # from the first token on the host to the last
    token_times_s: list[float] = field(default_factory=list)  # host time of each token since the call
    peak_memory_bytes: int = 0

    @property
    def prompt_tps(self) -> float:
        return self.prompt_tokens / self.ttft_s

    @property
    def decode_tps(self) -> float:
        """mlx-lm's generation_tps: all generated tokens over the time after the first one."""
        return len(self.tokens) / self.decode_s if self.decode_s > 0 else float("nan")

    @property
    def ms_per_token(self) -> float:
        return 1e3 * self.decode_s / (len(self.tokens) - 1) if len(self.tokens) > 1 else float("nan")

    def median_ms_per_token(self, window: int = 1) -> float:
        """Steady-state time per token: the median over consecutive windows of `window` token intervals of
        each window's mean (ms). A stall of the host moves one window, not the figure; a loop that evaluates
        every N tokens needs window N (each window then holds exactly one of its evaluations)."""
        gaps = np.diff(self.token_times_s)
        n = len(gaps) // window * window
        if n == 0:
            return float("nan")
        return 1e3 * float(np.median(gaps[:n].reshape(-1, window).mean(axis=1)))

    def metrics(self) -> dict[str, tuple[float, str]]:
        """The numbers every generation trial stores: name -> (value, unit)."""
        return {
            "ttft_ms": (1e3 * self.ttft_s, "ms"),
            "prompt_tps": (self.prompt_tps, "tokens/s"),
            "decode_tps": (self.decode_tps, "tokens/s"),
            "ms_per_token": (self.ms_per_token, "ms"),
            "peak_memory_gb": (self.peak_memory_bytes / 1e9, "GB"),
        }


def measure_generation(
    model: nn.Module, prompt: mx.array, max_tokens: int, loop: Loop = mlx_lm_loop, **loop_kwargs
) -> Generation:
    """Run one generation of exactly `max_tokens` tokens and clock it like mlx_lm.stream_generate."""
    if max_tokens < 2:
        raise ValueError("max_tokens must be >= 2 to time decoding")
    mx.synchronize()
    mx.reset_peak_memory()
    tokens, stamps = [], []
    tic = time.perf_counter()
    for token in loop(model, prompt, max_tokens, **loop_kwargs):
        stamps.append(time.perf_counter() - tic)
        tokens.append(token)
        if len(tokens) == max_tokens:
            break
    return Generation(
        prompt_tokens=int(prompt.size),
        tokens=tokens,
        ttft_s=stamps[0],
        decode_s=stamps[-1] - stamps[0],
        token_times_s=stamps,
        peak_memory_bytes=int(mx.get_peak_memory()),
    )


def record_generation(run, experiment: str, gen: Generation, *, trial: int, **fields) -> None:
    """Store one generation trial: one row per metric."""
    run.record_many(
        experiment,
        [
            dict(
                metric=m,
                value=v,
                unit=u,
                trial=trial,
                prompt_tokens=gen.prompt_tokens,
                generated_tokens=len(gen.tokens),
                **fields,
            )
            for m, (v, u) in gen.metrics().items()
        ],
    )


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token of two generations (None when equal over the shorter length)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
