"""Decode-loop variants: what a loop spends besides the forward pass (seeds 000, 001, 002).

One generic loop (`steps`) with options covers every variant the investigations compare: when the host
waits for the device (synchronous, pipelined with async_eval like mlx-lm's generate_step, or a batched eval
every N tokens), what it evaluates (the token only, plus the logprobs, plus the unused logits), how it samples
(sampling.py), where it runs (a dedicated stream or the default one). `VARIANTS` names each configuration;
`loop(name)` gives a function with decode.Loop's signature, so decode.measure_generation clocks every variant
exactly like the reference decode.mlx_lm_loop. Under greedy sampling all of them emit generate_step's tokens
(tests/test_loops.py). A clock (`NoClock`, `PhaseClock`, `PerTokenClock`) splits the host's time per step into
PHASES; `prefill` is the one chunked prefill every investigation uses. Measuring the variants:
investigations/decode_loop/measure.py; reading the measurements back: investigations/decode_loop/stats.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import mlx.core as mx
import mlx.nn as nn

from mlx_workbook import models
from mlx_workbook.probes import decode, sampling

PREFILL_STEP = 2048  # prompt tokens per forward pass of the prefill, as mlx-lm's generate_step

# What the host does in one decode step, each timed on the host clock (no phase is device time: under async
# evaluation the device works while the host is in any of them).
PHASES = (
    "graph build",  # the model call: MLX only records the lazy graph
    "sampling",  # building the logprobs / sampler graph (and the repetition penalty's)
    "encode/launch",  # inside mx.async_eval: the graph handed to the device (encoded, kernels launched)
    "wait for device",  # blocked until the token is computed (eval / item() of the token), and its copy
)


class Clock:
    """What `steps` reports to: `add(phase, seconds)` for each timed part of a step, `token()` when a token id
    reaches the host. The base clock keeps nothing (`NoClock`); subclasses keep phase totals or a split per
    token, as mlx-lm's caches share one base interface."""

    def add(self, phase: str, seconds: float) -> None:
        pass

    def token(self) -> None:
        pass


class NoClock(Clock):
    """No timing: the loop as it runs untimed."""


class PhaseClock(Clock):
    """Host time per phase of the decode steps between the first token and the last (prefill excluded)."""

    def __init__(self):
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.started = self.ended = None
        self.tokens = 0

    def add(self, phase: str, seconds: float) -> None:
        if self.started is not None:
            self.totals[phase] += seconds

    def token(self) -> None:
        now = time.perf_counter()
        self.tokens += 1
        if self.started is None:
            self.started = now
        self.ended = now

    @property
    def wall_s(self) -> float:
        return (self.ended or 0.0) - (self.started or 0.0)

    @property
    def other_s(self) -> float:
        """Time between the first and last token outside every phase: the loop's own Python."""
        return self.wall_s - sum(self.totals.values())


class PerTokenClock(PhaseClock):
    """PhaseClock's totals, and `splits`: one dict per interval between consecutive tokens (the first token's
    prefill excluded), seconds per phase plus "other" (the rest of the interval) and "total"."""

    def __init__(self):
        super().__init__()
        self.splits: list[dict[str, float]] = []
        self._open = dict.fromkeys(PHASES, 0.0)

    def add(self, phase: str, seconds: float) -> None:
        super().add(phase, seconds)
        if self.started is not None:
            self._open[phase] += seconds

    def token(self) -> None:
        last = self.ended
        super().token()
        if last is not None:
            total = self.ended - last
            self.splits.append({**self._open, "other": total - sum(self._open.values()), "total": total})
        self._open = dict.fromkeys(PHASES, 0.0)


def prefill(model: nn.Module, tokens: mx.array, cache: list, step: int = PREFILL_STEP) -> None:
    """Run `tokens` through the model into `cache` (mlx-lm caches update in place) as generate_step prefills:
    `step` tokens per forward pass, the cache evaluated after each, freed buffers returned between them."""
    while tokens.size > 0:
        chunk = tokens[:step]
        model(chunk[None], cache=cache)
        mx.eval([c.state for c in cache])
        tokens = tokens[chunk.size :]
        mx.clear_cache()


_STREAMS: dict = {}


def _stream(kind: str):
    device = mx.default_device()
    if kind == "default":
        return mx.default_stream(device)
    if kind == "dedicated":  # one per device and process, like mlx-lm's module-level generation_stream
        key = str(device)
        if key not in _STREAMS:
            _STREAMS[key] = mx.new_stream(device)
        return _STREAMS[key]
    raise ValueError(f"unknown stream {kind!r}; use 'dedicated' or 'default'")


def steps(
    model: nn.Module,
    prompt: mx.array,
    max_tokens: int,
    *,
    schedule: str = "pipelined",
    eval_every: int = 10,
    logprobs: str = "asked",
    return_logprobs: bool = False,
    eval_logits: bool = False,
    sampler: str = "greedy",
    sampler_options: dict | None = None,
    stream: str = "dedicated",
    extract: str = "slice",
    rep_penalty: float = 0.0,
    rep_vectorized: bool = True,
    rep_context: int = 20,
    seed: int | None = None,
    prompt_cache=None,
    prefill_step_size: int = PREFILL_STEP,
    clock: Clock | None = None,
) -> Iterator[tuple[int, mx.array | None]]:
    """Yield (token id, logprobs or None) for `max_tokens` tokens.

    schedule: 'sync' (eval, then item, every step), 'pipelined' (async_eval of step n+1 before item() of
    step n, as generate_step), 'batched' (build `eval_every` steps lazily, then one eval: seed 002's anti-pattern).
    logprobs: 'always' computes logits - logsumexp every step and samples from it (generate_step);
    'asked' computes them only when `return_logprobs` (the sampler then reads the logits: same distribution).
    eval_logits: also evaluate the last-position logits every step although nothing reads them (seed 001).
    extract: 'slice' (logits[:, -1, :]) or 'take' (take + squeeze).
    clock: NoClock (default), PhaseClock (host time per phase, totals) or PerTokenClock (and per token).
    """
    if schedule not in ("sync", "pipelined", "batched") or logprobs not in ("always", "asked"):
        raise ValueError(f"unknown schedule {schedule!r} or logprobs mode {logprobs!r}")
    if max_tokens < 1 or eval_every < 1:
        raise ValueError("max_tokens and eval_every must be >= 1")
    clock = clock or NoClock()
    tick = time.perf_counter
    with_logprobs = logprobs == "always" or return_logprobs
    sample = sampling.make(sampler, **(sampler_options or {}))
    penalty = sampling.repetition_penalty(rep_penalty, rep_context, rep_vectorized) if rep_penalty else None
    cache = prompt_cache if prompt_cache is not None else _make_cache(model)
    s = _stream(stream)
    if seed is not None:
        mx.random.seed(seed)
    context = None  # tokens so far, for the repetition penalty (as generate_step keeps them)

    def step(tokens_in: mx.array):
        nonlocal context
        t0 = tick()
        with mx.stream(s):
            out = model(tokens_in[None], cache=cache)
            if extract == "slice":
                logits = out[:, -1, :]
            else:
                logits = mx.take(out, mx.array([out.shape[1] - 1]), axis=1).squeeze(1)
            t1 = tick()
            if penalty is not None:
                context = tokens_in if context is None else mx.concatenate([context, tokens_in])
                logits = penalty(context, logits)
            lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True) if with_logprobs else None
            y = sample(lp if lp is not None else logits)
        clock.add("graph build", t1 - t0)
        clock.add("sampling", tick() - t1)
        targets = [y] + ([lp] if lp is not None else []) + ([logits] if eval_logits else [])
        return y, (lp.squeeze(0) if lp is not None else None), targets

    def evaluate(targets, wait: bool):
        # async_eval returns once the graph is handed over; a blocking eval is that, then a wait (mx.eval of
        # arrays already scheduled only waits), so the two are timed apart
        t0 = tick()
        mx.async_eval(*targets)
        t1 = tick()
        clock.add("encode/launch", t1 - t0)
        if wait:
            mx.eval(*targets)
            clock.add("wait for device", tick() - t1)

    def item(y) -> int:
        t0 = tick()
        token = y.item()
        clock.add("wait for device", tick() - t0)
        clock.token()
        return token

    with mx.stream(s):  # every prompt token but the last, as generate_step does
        prefill(model, prompt[:-1], cache, prefill_step_size)
    if penalty is not None and prompt.size > 1:
        context = prompt[:-1]
    y, lp, targets = step(prompt[-1:])
    pending = []
    for n in range(max_tokens):
        last = n + 1 == max_tokens
        if schedule == "sync":
            evaluate(targets, wait=True)
            yield item(y), lp
            if not last:
                y, lp, targets = step(y)
        elif schedule == "pipelined":
            if n == 0:
                evaluate(targets, wait=False)
            if not last:  # queue the next step before waiting for this token
                ny, nlp, ntargets = step(y)
                evaluate(ntargets, wait=False)
            yield item(y), lp
            if not last:
                y, lp, targets = ny, nlp, ntargets
        else:
            pending.append((y, lp, targets))
            if len(pending) == eval_every or last or n == 0:  # the first token alone: TTFT means the same
                evaluate([a for _, _, t in pending for a in t], wait=True)
                for py, plp, _ in pending:
                    yield item(py), plp
                pending = []
            if not last:
                y, lp, targets = step(y)
        if n % 256 == 0:
            mx.clear_cache()  # as generate_step: return freed buffers now and then


def _make_cache(model):
    from mlx_lm.models.cache import make_prompt_cache

    return make_prompt_cache(model)


def library_loop(model: nn.Module, prompt: mx.array, max_tokens: int, **options) -> Iterator[int]:
    """`steps` with decode.Loop's signature: token ids only."""
    for token, _ in steps(model, prompt, max_tokens, **options):
        yield token


# --- the registry -----------------------------------------------------------------------------------------

CHAIN = sampling.CHAIN


@dataclass(frozen=True)
class Variant:
    name: str
    about: str
    options: dict | None = None  # None: mlx-lm's generate_step itself
    family: str = (
        "greedy"  # greedy: generate_step's tokens; sampled / chain / penalty: compared among themselves
    )
    settings: dict = field(default_factory=dict)  # e.g. the reference's sampler / logits processors

    def loop(self):
        if self.options is None:
            return partial(decode.mlx_lm_loop, **self.settings)
        return partial(library_loop, **self.options)


_V = [
    Variant("mlx_lm", "mlx-lm's generate_step (reference): pipelined, logprobs every step"),
    Variant(
        "pipelined",
        "async_eval of token n+1 before item() of token n; logprobs only when asked",
        {"schedule": "pipelined"},
    ),
    Variant(
        "sync",
        "eval + item() every step: the device idles while the host builds the next graph",
        {"schedule": "sync"},
    ),
    Variant(
        "batched_10",
        "graphs of 10 steps built lazily, then one eval (seed 002's anti-pattern)",
        {"schedule": "batched", "eval_every": 10},
    ),
    Variant(
        "logprobs_always",
        "pipelined, logprobs every step, async_eval(token, logprobs): generate_step's steps",
        {"logprobs": "always"},
    ),
    Variant(
        "eval_logits",
        "as logprobs_always, plus the unused logits in every async_eval (seed 001, before)",
        {"logprobs": "always", "eval_logits": True},
    ),
    Variant(
        "default_stream", "pipelined on the default stream instead of a dedicated one", {"stream": "default"}
    ),
    Variant(
        "take_logits", "pipelined, last logits by take + squeeze instead of a slice", {"extract": "take"}
    ),
    Variant(
        "sample_fast",
        "temperature 1, no filters: categorical straight from the logits (fast path)",
        {"sampler": "fast"},
        "sampled",
    ),
    Variant(
        "sample_t1",
        "temperature 1, no filters, the general path: logits * (1/temp), a full pass over the "
        "vocabulary (the copy the fast path skips), then the same uncompiled draw",
        {"sampler": "chain", "sampler_options": {"temp": 1.0}},
        "sampled",
    ),
    Variant(
        "sample_before_001",
        "seed 001's starting point: logprobs + logits evaluated, sampler without fast path",
        {"logprobs": "always", "eval_logits": True, "sampler": "chain", "sampler_options": {"temp": 1.0}},
        "sampled",
    ),
    Variant(
        "sample_chain",
        "top-p 0.9, min-p 0.05, top-k 50 chain, not compiled",
        {"sampler": "chain", "sampler_options": CHAIN},
        "chain",
    ),
    Variant(
        "sample_chain_compiled",
        "the same chain inside one mx.compile",
        {"sampler": "chain_compiled", "sampler_options": CHAIN},
        "chain",
    ),
    Variant(
        "rep_penalty",
        "greedy with mlx-lm's vectorized repetition penalty 1.1 over 20 tokens",
        {"rep_penalty": 1.1},
        "penalty",
    ),
    Variant(
        "rep_penalty_loop",
        "the same penalty applied one context token at a time",
        {"rep_penalty": 1.1, "rep_vectorized": False},
        "penalty",
    ),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _V}


def loop(name: str):
    return variant(name).loop()


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown decode-loop variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def parse_model(spec: str) -> dict:
    """'qwen3-0.6b:4' -> 4-bit (bf16 scales); 'llama-3-8b:bfloat16' -> unquantized bf16."""
    preset, _, kind = spec.partition(":")
    models.preset_config(preset)  # raises ModelError for an unknown preset
    kind = kind or "bfloat16"
    if kind.isdigit():
        if int(kind) == 0:
            raise models.ModelError(
                f"{spec}: 0 is not a bit width; use preset:<dtype> for unquantized weights"
            )
        models.check_bits(int(kind), spec)
        return {"name": preset, "dtype": "bfloat16", "bits": int(kind)}
    if kind not in models.DTYPES:
        raise models.ModelError(
            f"{spec}: use preset:<bits> or preset:<dtype>, dtype one of {', '.join(models.DTYPES)}"
        )
    return {"name": preset, "dtype": kind, "bits": None}
