"""Per-op micro-benchmarks at a model's decode and prefill shapes, graph-building time of one forward pass,
and the end-to-end prompt (prefill) latency of a model over prompt lengths.

Ops take their shapes from a preset's config (hidden size, heads, MLP width, experts), so "RMSNorm at
decode" means exactly the RMSNorm a decode step of that model runs. Ops use MLX's and mlx-lm's own functions
(mx.fast.rms_norm, mlx-lm's compiled swiglu, mx.quantized_matmul, mlx-lm's SwitchGLU for the experts).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

from mlx_workbook import models
from mlx_workbook.core.results import Run
from mlx_workbook.probes import loops
from mlx_workbook.probes import sdpa_probe as probe

OPS = ("rmsnorm", "swiglu", "matmul", "quantized_matmul", "sdpa", "moe_routing", "moe_experts")
PHASES = ("decode", "prefill")


def _normal(shape, dtype, key):
    return (mx.random.normal(shape, key=key) * 0.02).astype(dtype)


def dense_shapes(config: dict) -> dict:
    heads = config["num_attention_heads"]
    return {
        "hidden": config["hidden_size"],
        "intermediate": config["intermediate_size"],
        "n_q_heads": heads,
        "n_kv_heads": config.get("num_key_value_heads", heads),
        "head_dim": config.get("head_dim") or config["hidden_size"] // heads,
        "eps": config.get("rms_norm_eps", 1e-6),
    }


def moe_shapes(config: dict) -> dict:
    if not models.is_moe(config):
        raise models.ModelError(f"{config.get('model_type')} is not a mixture-of-experts config")
    return {
        "hidden": config["hidden_size"],
        "experts": config.get("num_experts") or config["num_local_experts"],
        "top_k": config["num_experts_per_tok"],
        "expert_width": config.get("moe_intermediate_size") or config["intermediate_size"],
    }


def op_calls(
    phase: str,
    *,
    dense: dict,
    moe: dict | None,
    tokens: int,
    context: int,
    dtype: str,
    bits: int,
    group_size: int,
    experts: bool = True,
    seed: int = 0,
) -> dict[str, tuple[Callable, dict]]:
    """name -> (function to time, shape fields) for one phase: decode = 1 token over `context` cached
    positions; prefill = `tokens` tokens at once (causal attention over themselves). `experts=False` leaves out
    the quantized experts (and does not build them)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; use one of {PHASES}")
    from mlx_lm.models.activations import swiglu
    from mlx_lm.models.switch_layers import SwitchGLU

    dt = models.DTYPES[dtype]
    t = 1 if phase == "decode" else tokens
    k = iter(mx.random.split(mx.random.key(seed), 8))
    h, inter = dense["hidden"], dense["intermediate"]
    x = _normal((t, h), dt, next(k))
    norm_w = mx.ones((h,), dt)
    gate, up = _normal((t, inter), dt, next(k)), _normal((t, inter), dt, next(k))
    w = _normal((inter, h), dt, next(k))
    wq, scales, biases = mx.quantize(w, group_size=group_size, bits=bits)
    attn = {
        "kind": phase,
        "variant": "sdpa",
        "mode": "causal" if phase == "prefill" else "none",
        "dtype": dtype,
        "head_dim": dense["head_dim"],
        "n_q_heads": dense["n_q_heads"],
        "n_kv_heads": dense["n_kv_heads"],
        "length": tokens if phase == "prefill" else context,
    }
    calls = {
        "rmsnorm": (lambda: mx.fast.rms_norm(x, norm_w, dense["eps"]), {"shape": f"{t}x{h}"}),
        "swiglu": (lambda: swiglu(gate, up), {"shape": f"{t}x{inter}"}),
        "matmul": (lambda: x @ w.T, {"shape": f"{t}x{h} @ {h}x{inter}"}),
        "quantized_matmul": (
            lambda: mx.quantized_matmul(
                x, wq, scales, biases, transpose=True, group_size=group_size, bits=bits
            ),
            {"shape": f"{t}x{h} @ {h}x{inter} {bits}-bit"},
        ),
        "sdpa": (
            probe.make_call(attn, seed),
            {
                "shape": f"{attn['n_q_heads']}/{attn['n_kv_heads']} heads "
                f"x{attn['head_dim']}, {t} over {attn['length']}"
            },
        ),
    }
    if moe:
        hm, e, top = moe["hidden"], moe["experts"], moe["top_k"]
        xm = _normal((t, hm), dt, next(k))
        router = _normal((e, hm), dt, next(k))

        def route():  # mlx-lm's Qwen3-MoE routing: softmax over experts, top-k, renormalized scores
            gates = mx.softmax(xm @ router.T, axis=-1, precise=True)
            inds = mx.argpartition(gates, kth=-top, axis=-1)[..., -top:]
            scores = mx.take_along_axis(gates, inds, axis=-1)
            return inds, scores / mx.sum(scores, axis=-1, keepdims=True)

        calls["moe_routing"] = (route, {"shape": f"{t}x{hm} -> top {top} of {e}"})
        if experts:  # one MoE layer at the preset's shapes, never the whole model
            layer = SwitchGLU(hm, moe["expert_width"], e)
            layer.set_dtype(dt)
            nn.quantize(layer, group_size=group_size, bits=bits)  # gather_qmm: the quantized expert path
            inds = route()[0]
            mx.eval(layer.parameters(), inds)
            calls["moe_experts"] = (
                lambda: layer(xm, inds),
                {"shape": f"{t}x{hm}, {top} of {e} experts x{moe['expert_width']} {bits}-bit"},
            )
    mx.eval(x, norm_w, gate, up, w, wq, scales, biases)
    return calls


def interleaved(
    run: Run,
    experiment: str,
    items: list[tuple[dict, Callable]],
    *,
    repeats: int,
    warmup: int = 1,
    target_ms: float = 5,
    max_calls: int = 200,
    seed: int = 0,
) -> None:
    """Time each (fields, fn) in rounds (round r times every item once, in a fresh random order), storing each
    round as it finishes; one call count per item, fixed after a calibration (max_calls=1: one call each)."""
    calls = []
    for _, fn in items:
        for _ in range(warmup):
            mx.eval(fn())
        calls.append(probe.calls_for(fn, target_ms / 1e3, 1, max_calls) if max_calls > 1 else 1)
    order = random.Random(seed)
    for trial in range(repeats):
        positions = list(range(len(items)))
        order.shuffle(positions)
        rows = []
        for position, i in enumerate(positions):
            (fields, fn), n = items[i], calls[i]
            ms = 1e3 * probe.seconds_per_call(fn, n)
            rows.append(
                dict(metric="ms", value=ms, unit="ms", trial=trial, position=position, calls=n, **fields)
            )
        run.record_many(experiment, rows)


def run_ops(
    run: Run,
    *,
    dense: dict,
    moe: dict | None,
    tokens: int,
    context: int,
    dtype: str,
    bits: int,
    group_size: int,
    ops: list[str],
    repeats: int,
    warmup: int = 1,
    target_ms: float = 5,
    expert_phases=PHASES,
    **fields,
) -> None:
    """Every op in `ops` at decode and prefill shapes, stored as experiment "ops" (ms per call); the quantized
    experts only in `expert_phases` (on CUDA their sorted prefill path costs ~50 s of first-use compilation)."""
    unknown = [o for o in ops if o not in OPS] + [p for p in expert_phases if p not in PHASES]
    if unknown:
        raise ValueError(f"unknown ops or phases {unknown}; use any of {list(OPS)} and {list(PHASES)}")
    for phase in PHASES:
        calls = op_calls(
            phase,
            dense=dense,
            moe=moe,
            tokens=tokens,
            context=context,
            dtype=dtype,
            bits=bits,
            group_size=group_size,
            experts="moe_experts" in ops and phase in expert_phases,
        )
        items = [
            (
                {
                    "op": name,
                    "phase": phase,
                    "tokens": 1 if phase == "decode" else tokens,
                    "context": context,
                    "op_dtype": dtype,
                    **extra,
                    **fields,
                },
                fn,
            )
            for name, (fn, extra) in calls.items()
            if name in ops
        ]
        interleaved(run, "ops", items, repeats=repeats, warmup=warmup, target_ms=target_ms)
        del calls, items
        mx.clear_cache()


def prompt_flops(config: dict, n: int) -> float:
    """Floating-point operations of one forward pass over n prompt tokens (matmuls only): 2 per weight per token
    (projections, MLP or the active experts, logits for every position) plus causal attention, 2 n^2 h d per
    layer; the work a prompt's latency should follow, linear and quadratic parts together."""
    d = dense_shapes(config)
    q, kv = d["n_q_heads"] * d["head_dim"], d["n_kv_heads"] * d["head_dim"]
    if models.is_moe(config):
        m = moe_shapes(config)
        mlp = m["top_k"] * 3 * d["hidden"] * m["expert_width"] + d["hidden"] * m["experts"]
    else:
        mlp = 3 * d["hidden"] * d["intermediate"]
    per_layer = d["hidden"] * (2 * q + 2 * kv) + mlp
    layers = config["num_hidden_layers"]
    return 2.0 * n * (layers * per_layer + d["hidden"] * config["vocab_size"]) + 2.0 * layers * n * n * q


def prompt_latency(
    run: Run, loaded: models.LoadedModel, lengths: list[int], *, repeats: int, warmup: int = 1, seed: int = 0
) -> None:
    """The model's forward pass over a prompt of each length (fresh KV cache, last position's logits
    evaluated, as mlx-lm's prefill does), stored as experiment "prompt" (ms per prompt, with its flops)."""
    tokens = models.random_prompt(loaded, max(lengths), seed)
    model = loaded.model

    items = [
        (
            {"length": int(n), "flops": prompt_flops(loaded.config, int(n)), **loaded.describe()},
            _forward(model, tokens, int(n)),
        )
        for n in sorted(set(lengths))
    ]
    interleaved(run, "prompt", items, repeats=repeats, warmup=warmup, target_ms=0, max_calls=1, seed=seed)


def _forward(model, tokens, n: int):
    from mlx_lm.models.cache import make_prompt_cache

    return lambda: model(tokens[None, :n], cache=make_prompt_cache(model))[:, -1, :]


def prompt_confirm(
    run: Run,
    loaded: models.LoadedModel,
    steps: list[tuple[int, int]],
    *,
    pairs: int,
    warmup: int = 1,
    seed: int = 0,
    experiment: str = "prompt_confirm",
) -> None:
    """Re-measure candidate steps of the prompt sweep: each step's two prompt lengths alternated back to back
    (A B, B A, ...) for `pairs` pairs, stored with the pair index (see sdpa_cliff.measure.judge_confirmations)."""
    tokens = models.random_prompt(loaded, max(max(s) for s in steps), seed) if steps else None
    for before, after in steps:
        fns = probe.warmed(
            [_forward(loaded.model, tokens, int(before)), _forward(loaded.model, tokens, int(after))], warmup
        )
        rows = []
        for pair in range(pairs):
            for position, (n, fn) in enumerate(
                ((before, fns[0]), (after, fns[1])) if pair % 2 == 0 else ((after, fns[1]), (before, fns[0]))
            ):
                ms = 1e3 * probe.seconds_per_call(fn, 1)
                rows.append(
                    dict(
                        metric="ms",
                        value=ms,
                        unit="ms",
                        trial=pair,
                        pair=pair,
                        position=position,
                        calls=1,
                        length=int(n),
                        flops=prompt_flops(loaded.config, int(n)),
                        before_length=int(before),
                        after_length=int(after),
                        **loaded.describe(),
                    )
                )
        run.record_many(experiment, rows)


def graph_build(
    run: Run, loaded: models.LoadedModel, *, context: int, repeats: int, warmup: int = 2, seed: int = 0
) -> None:
    """Time to build one decode step's graph (the model call, nothing evaluated), then to evaluate it.

    Stored as experiment "graph": metric build_ms and eval_ms per trial, with the context length and layers."""
    from mlx_lm.models.cache import make_prompt_cache

    model = loaded.model
    cache = make_prompt_cache(model)
    prompt = models.random_prompt(loaded, context, seed)
    loops.prefill(model, prompt, cache)
    token = prompt[-1:][None]
    for i in range(warmup + repeats):
        mx.synchronize()
        tic = time.perf_counter()
        logits = model(token, cache=cache)[:, -1, :]
        build = time.perf_counter() - tic
        mx.eval(logits)
        mx.synchronize()
        total = time.perf_counter() - tic
        if i >= warmup:
            base = dict(trial=i - warmup, context=context + i, layers=loaded.num_layers, **loaded.describe())
            run.record_many(
                "graph",
                [
                    dict(metric="build_ms", value=1e3 * build, unit="ms", **base),
                    dict(metric="eval_ms", value=1e3 * (total - build), unit="ms", **base),
                ],
            )


def shapes(model: str, moe_model: str, *, tokens: int, context: int, bits: int, group_size: int) -> tuple:
    """(dense shapes of preset `model`, MoE shapes of preset `moe_model` or None), checked; one clear error for
    an unknown preset or impossible op parameters, before anything is built."""
    dense = dense_shapes(models.preset_config(model))
    moe = moe_shapes(models.preset_config(moe_model)) if moe_model else None
    check_shapes(dense, tokens, context, bits, group_size)
    return dense, moe


def check_shapes(dense: dict, tokens: int, context: int, bits: int, group_size: int) -> None:
    if tokens < 2 or context < 1:
        raise ValueError(
            f"prefill needs >= 2 tokens and decode >= 1 cached position (got {tokens}, {context})"
        )
    if dense["hidden"] % group_size:
        raise ValueError(f"hidden size {dense['hidden']} is not a multiple of group_size {group_size}")
    if bits not in models.QUANT_BITS:
        raise ValueError(f"bits={bits} is not one of MLX's {models.QUANT_BITS}")
    if math.gcd(dense["n_q_heads"], dense["n_kv_heads"]) != dense["n_kv_heads"]:
        raise ValueError("query heads must be a multiple of key/value heads")
