"""The rank script of notebook 06: run by `mlx.launch` on every rank, `python rank.py <launch.json>`.

Every rank runs the same tasks in the same order (the random orders come from a shared seed), so every
collective meets its partners. Each rank appends its rows to its own journal `rank<r>.jsonl` (one JSON
object per line, flushed per trial), writes progress lines to `rank<r>.log`, and `rank<r>.status` = "ok"
at the end; the notebook merges the journals into the run's measurements (see measure.merge_journals).

Tasks (the "tasks" list of the config):
- collectives: all_sum / all_gather / send-recv over message sizes and dtypes, in paired blocks;
- correctness: the tensor-parallel (and pipeline) model's logits and greedy tokens against one device's, and
  (below float32) both against the same weights upcast to float32: the one device's own dtype error;
- models: for each model, single device / tensor parallel / pipeline in paired blocks: decode time per token
  at each batch size, prefill at each prompt length, and the collectives counted in one decode step;
- checkpoint: a model folder loaded whole on rank 0 (`mlx_lm.load`) and split over the ranks with mlx-lm's
  `sharded_load` (each rank keeps only its shard): load time and memory per rank, logits and greedy tokens.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_workbook import models
from mlx_workbook.probes.launch import RankFiles

SINGLE, TENSOR, PIPELINE = "single", "tensor", "pipeline"
LAYOUTS = (SINGLE, TENSOR, PIPELINE)
OPS = ("all_sum", "all_gather", "send_recv")
CALL_BYTES = 64 << 20  # a collectives trial repeats a call until about this many bytes have moved
MAX_CALLS = 16


class Rank:
    """This process's group, files and journal."""

    def __init__(self, config: dict):
        self.config = config
        self.group = mx.distributed.init(backend=config["backend"], strict=config["world_size"] > 1)
        self.rank, self.size = self.group.rank(), self.group.size()
        if self.size != config["world_size"]:
            raise RuntimeError(f"expected {config['world_size']} ranks, MLX's group has {self.size}")
        self.files = RankFiles(Path(config["log_dir"]), self.rank)
        self.files.pid.write_text(str(os.getpid()))
        self.base = {"rank": self.rank, "world_size": self.size, "dist_backend": config["backend"]}
        self.p2p: str | None = None  # why send/recv do not work here ("" when they do), once probed

    def log(self, text: str) -> None:
        with open(self.files.log, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} rank {self.rank}: {text}\n")

    def record(self, experiment: str, rows: list[dict]) -> None:
        with open(self.files.journal, "a") as f:
            f.writelines(json.dumps({"experiment": experiment, **self.base, **r}) + "\n" for r in rows)

    def barrier(self) -> None:
        mx.eval(mx.distributed.all_sum(mx.zeros((1,)), group=self.group))
        mx.synchronize()

    def order(self, items: list, *keys: int) -> list:
        """The same shuffled order on every rank (a shared seed per block and case)."""
        rng = np.random.default_rng([self.config.get("seed", 0), *(k + 1 for k in keys)])
        return [items[i] for i in rng.permutation(len(items))]


# --- collectives --------------------------------------------------------------------------------------------


def _collective(rank: Rank, op: str, x: mx.array):
    """One call of `op`; send_recv pairs ranks (0->1, 2->3, ...): the even rank sends, the odd one receives."""
    g = rank.group
    if op == "all_sum":
        return mx.distributed.all_sum(x, group=g)
    if op == "all_gather":
        return mx.distributed.all_gather(x, group=g)
    peer = rank.rank + 1 if rank.rank % 2 == 0 else rank.rank - 1
    if peer >= rank.size:
        return None  # the odd one out of an odd group idles
    if rank.rank % 2 == 0:
        return mx.distributed.send(x, peer, group=g)
    return mx.distributed.recv_like(x, peer, group=g)


def time_collective(rank: Rank, op: str, x: mx.array, calls: int) -> float:
    """Seconds per call: `calls` calls queued back to back, then waited for (ranks aligned by a barrier)."""
    rank.barrier()
    tic = time.perf_counter()
    out = None
    for _ in range(calls):
        out = _collective(rank, op, x)
        if out is not None:
            mx.async_eval(out)
    if out is not None:
        mx.eval(out)
    mx.synchronize()
    return (time.perf_counter() - tic) / calls


def point_to_point(rank: Rank) -> str:
    """ "" when send/recv work on this backend and device, else why not. Some builds have no GPU kernel for
    them (MLX's CUDA backend raises "Send has no CUDA implementation"); both sides raise locally before any
    transfer, so the probe cannot hang, and every rank learns the outcome through an all_sum."""
    if rank.size < 2:
        return "needs two ranks"
    if rank.p2p is None:
        error = ""
        try:
            out = _collective(rank, "send_recv", mx.ones((4,)))
            if out is not None:
                mx.eval(out)
        except Exception as e:  # any failure means: not usable here
            error = f"{type(e).__name__}: {e}"
        ok = mx.distributed.all_sum(mx.array([0.0 if error else 1.0]), group=rank.group)
        agreed = float(ok.item()) == rank.size
        rank.p2p = "" if agreed else (error or "send/recv failed on another rank")
        rank.record(
            "capability", [dict(metric="send_recv_works", value=float(agreed), unit="bool", error=rank.p2p)]
        )
        rank.log(f"send/recv: {'works' if agreed else rank.p2p}")
    return rank.p2p


def collectives(rank: Rank, task: dict) -> None:
    if point_to_point(rank):
        task = {**task, "ops": [op for op in task["ops"] if op != "send_recv"]}
    sizes = sorted({int(s) for s in task["sizes_bytes"]})
    decode_sizes = {int(s) for s in task.get("decode_sizes_bytes", [])}
    cases = [(op, dt) for op in task["ops"] for dt in task["dtypes"]]
    for block in range(-1, task["repeats"]):  # block -1 warms every case up, unrecorded
        for size in sizes:
            for op, dt in rank.order(cases, block, size):
                dtype = models.DTYPES[dt]
                n = max(1, size // dtype.size)
                x = mx.ones((n,), dtype=dtype)
                mx.eval(x)
                calls = 1 if block < 0 else int(min(MAX_CALLS, max(1, CALL_BYTES // max(size, 1))))
                seconds = time_collective(rank, op, x, calls)
                if block >= 0:
                    rank.record(
                        "collectives",
                        [
                            dict(
                                metric="seconds_per_call",
                                value=seconds,
                                unit="s",
                                trial=block,
                                op=op,
                                coll_dtype=dt,
                                size_bytes=n * dtype.size,
                                calls=calls,
                                decode_size=n * dtype.size in decode_sizes,
                            )
                        ],
                    )
        rank.log(f"collectives block {block} done")
    mx.clear_cache()  # the 1 GB messages' buffers go back before any model is built


# --- models -----------------------------------------------------------------------------------------------


def scale_weights(model, scale: float) -> None:
    """Matrices x scale (lazily): larger weights give clear logit margins (random presets' greedy tokens
    repeat one token); norms and biases stay as they are."""
    from mlx.utils import tree_map

    if scale != 1.0:
        model.update(tree_map(lambda v: v * scale if v.ndim >= 2 else v, model.parameters()))


def build(rank: Rank, spec: dict, layout: str, *, scale: float = 1.0):
    """A preset on this rank in a layout: the whole model (single), `model.shard(group)` (mlx-lm's tensor
    parallelism) or `model.model.pipeline(group)` (mlx-lm's pipeline); weights materialized after sharding,
    so a rank only ever holds its own part (random weights are the same on every rank: one seed)."""
    loaded = models.build_preset(
        spec["preset"],
        dtype=spec["dtype"],
        bits=spec["bits"] or None,
        seed=spec.get("seed", 0),
        materialize=False,
    )
    model = loaded.model
    scale_weights(model, scale)
    if layout == TENSOR:
        model.shard(rank.group)
    elif layout == PIPELINE:
        model.model.pipeline(rank.group)
    for layer in model.layers:
        if layer is not None:
            mx.eval(layer.parameters())
    mx.eval(model.parameters())
    return loaded


def _cache(model):
    from mlx_lm.models.cache import make_prompt_cache

    return make_prompt_cache(model)


def _tokens(vocab: int, batch: int, length: int, seed: int) -> mx.array:
    return mx.random.randint(0, vocab, (batch, length), key=mx.random.key(seed)).astype(mx.uint32)


def greedy(model, prompt: mx.array, steps: int) -> tuple[list[list[int]], mx.array]:
    """Greedy tokens (per row) and the prefill's last-position logits."""
    cache = _cache(model)
    logits = model(prompt, cache=cache)[:, -1, :].astype(mx.float32)
    first = logits
    y = mx.argmax(logits, axis=-1)
    mx.eval(y, first)  # one step per evaluation, as mlx-lm does: every rank meets its collectives in order
    out = [y]
    for _ in range(steps - 1):
        y = mx.argmax(model(y[:, None], cache=cache)[:, -1, :], axis=-1)
        mx.eval(y)
        out.append(y)
    return np.stack([np.array(t) for t in out], axis=1).tolist(), first


def decode_ms(model, prompt: mx.array, steps: int) -> float:
    """Milliseconds per decoded token at this batch: prefill untimed, then `steps` greedy steps pipelined as
    mlx-lm does (the next step is queued with async_eval before the current one is waited for)."""
    cache = _cache(model)
    y = mx.argmax(model(prompt, cache=cache)[:, -1, :], axis=-1)
    mx.eval(y)
    mx.synchronize()
    tic = time.perf_counter()
    for _ in range(steps):
        nxt = mx.argmax(model(y[:, None], cache=cache)[:, -1, :], axis=-1)
        mx.async_eval(nxt)
        y = nxt
    mx.eval(y)
    mx.synchronize()
    return 1e3 * (time.perf_counter() - tic) / steps


def prefill_ms(model, prompt: mx.array) -> float:
    cache = _cache(model)
    mx.synchronize()
    tic = time.perf_counter()
    mx.eval(model(prompt, cache=cache))
    mx.synchronize()
    return 1e3 * (time.perf_counter() - tic)


def count_collectives(model, prompt: mx.array, batch: int) -> list[dict]:
    """The collectives one decode step's graph calls, with their message bytes: mx.distributed's functions
    are wrapped while the step's graph is built (mlx's sharded layers call them through the module)."""
    calls: Counter = Counter()
    names = ("all_sum", "all_gather", "send", "recv_like")
    originals = {n: getattr(mx.distributed, n) for n in names}

    def counted(name):
        def call(x, *args, **kwargs):
            calls[(name, int(x.nbytes), str(x.dtype).replace("mlx.core.", ""))] += 1
            return originals[name](x, *args, **kwargs)

        return call

    cache = _cache(model)
    mx.eval(model(prompt, cache=cache))
    step = prompt[:, -1:]
    try:
        for n in names:
            setattr(mx.distributed, n, counted(n))
        out = model(step, cache=cache)
    finally:
        for n, f in originals.items():
            setattr(mx.distributed, n, f)
    mx.eval(out)
    return [
        dict(collective=n, message_bytes=b, message_dtype=d, count=c, batch=batch)
        for (n, b, d), c in sorted(calls.items())
    ]


def _without_unsupported(rank: Rank, spec: dict) -> dict:
    """mlx-lm's pipeline sends activations with send/recv: dropped (and said so) where those do not work."""
    if PIPELINE in spec["layouts"] and point_to_point(rank):
        rank.log(f"{spec['label']}: pipeline skipped, send/recv do not work here")
        return {**spec, "layouts": [lay for lay in spec["layouts"] if lay != PIPELINE]}
    return spec


def run_models(rank: Rank, task: dict) -> None:
    """Per model: build every layout that fits, then paired blocks of (layout order shuffled per block)
    decode at every batch and prefill at every prompt length. `single` runs on rank 0 while the others wait."""
    for spec in task["models"]:
        spec = _without_unsupported(rank, spec)
        label = spec["label"]
        # A model may name its own batches and blocks (fewer where the default's intervals were decisive).
        batches, repeats = spec.get("batches") or task["batches"], spec.get("repeats") or task["repeats"]
        built = {}
        for layout in spec["layouts"]:
            if layout == SINGLE and rank.rank != 0:
                continue
            built[layout] = build(rank, spec, layout)
            rank.log(f"{label}: built {layout} ({built[layout].weight_bytes() / 1e9:.2f} GB on this rank)")
        vocab = models.preset_config(spec["preset"])["vocab_size"]
        fields = dict(model=spec["preset"], label=label, dtype=spec["dtype"], bits=spec["bits"])
        for layout in built:
            rank.record(
                "layout",
                [
                    dict(
                        metric="rank_weight_bytes",
                        value=built[layout].weight_bytes(),
                        unit="bytes",
                        layout=layout,
                        **fields,
                    )
                ],
            )
        # The collectives one decode step calls (at every batch), counted on the parallel layouts.
        for layout in [lay for lay in spec["layouts"] if lay != SINGLE]:
            for batch in batches:
                prompt = _tokens(vocab, batch, task["context_tokens"], spec.get("seed", 0))
                rows = count_collectives(built[layout].model, prompt, batch)
                rank.record(
                    "step_collectives",
                    [
                        dict(metric="calls", value=r.pop("count"), unit="calls", layout=layout, **r, **fields)
                        for r in rows
                    ],
                )
        for block in range(-1, repeats):
            for layout in rank.order(list(spec["layouts"]), block):
                runs_here = layout != SINGLE or rank.rank == 0
                for batch in batches:
                    prompt = _tokens(vocab, batch, task["context_tokens"], block + 7)
                    steps = task["decode_tokens"] if block >= 0 else 2
                    ms = decode_ms(built[layout].model, prompt, steps) if runs_here else None
                    rank.barrier()
                    if block >= 0 and ms is not None:
                        rank.record(
                            "decode",
                            [
                                dict(
                                    metric="ms_per_token",
                                    value=ms,
                                    unit="ms",
                                    trial=block,
                                    layout=layout,
                                    batch=batch,
                                    context_tokens=task["context_tokens"],
                                    **fields,
                                )
                            ],
                        )
                for length in task["prefill_lengths"]:
                    prompt = _tokens(vocab, 1, length, block + 11)
                    ms = prefill_ms(built[layout].model, prompt) if runs_here else None
                    rank.barrier()
                    if block >= 0 and ms is not None:
                        rank.record(
                            "prefill",
                            [
                                dict(
                                    metric="prefill_ms",
                                    value=ms,
                                    unit="ms",
                                    trial=block,
                                    layout=layout,
                                    batch=1,
                                    prompt_tokens=length,
                                    **fields,
                                )
                            ],
                        )
            rank.log(f"{label}: block {block} done")
        built.clear()  # every reference to this model's weights goes before the next model is built
        gc.collect()
        mx.clear_cache()


def top1_margin(logits: mx.array) -> float:
    top2 = mx.sort(logits, axis=-1)[:, -2:]
    return float((top2[:, 1] - top2[:, 0]).min())


def _first_difference(a: list, b: list) -> int:
    """The first step where two token lists differ, -1 where they never do."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), -1)


def float32_copy_reason(model, budget: float) -> str:
    """ "" when a float32 copy of this one-device model may be made here, else why not. The copy is cast in
    place, so the old weights and the float32 ones are held together at the peak: both must fit the budget
    the plan uses. A quantized model has no float32 copy of the same weights."""
    from mlx.utils import tree_flatten

    params = [v for _, v in tree_flatten(model.parameters())]
    if any(not mx.issubdtype(v.dtype, mx.floating) for v in params):
        return "quantized: no float32 copy of the same weights"
    now = sum(v.nbytes for v in params)
    fp32 = sum(v.size * 4 for v in params)
    if now + fp32 > budget:
        return (
            f"the float32 copy ({fp32 / 1e9:.1f} GB beside the model's {now / 1e9:.1f} GB) does not fit the "
            f"{budget / 1e9:.1f} GB budget"
        )
    return ""


def dtype_reference(model, prompt: mx.array, steps: int, budget: float) -> dict | None:
    """The same weights upcast to float32 (in place: the model is float32 afterwards) and run greedily, to
    set the one-device model's own dtype error beside the split model's difference. None for a model that
    is float32 already; else {"reference": (tokens, logits) or None, "why_not": why no copy was made}."""
    from mlx.utils import tree_flatten

    if all(v.dtype == mx.float32 for _, v in tree_flatten(model.parameters())):
        return None
    why_not = float32_copy_reason(model, budget)
    if why_not:
        return {"reference": None, "why_not": why_not}
    model.set_dtype(mx.float32)
    return {"reference": greedy(model, prompt, steps), "why_not": ""}


def dtype_fields(single: tuple, parallel: tuple, fp32: dict | None) -> dict:
    """Columns of a correctness row against the float32 run of the same weights: the one device's own dtype
    error (max |logits - fp32 logits|) and the step where its greedy tokens leave fp32's, and the parallel
    model's own error beside it. Empty for float32 models (no fp32 run: nothing to add)."""
    if fp32 is None:
        return {}
    if fp32["reference"] is None:
        return dict(fp32_reference=False, fp32_why_not=fp32["why_not"])
    (tokens32, logits32), (tokens, logits), (par_tokens, par_logits) = fp32["reference"], single, parallel
    return dict(
        fp32_reference=True,
        fp32_why_not="",
        single_dtype_error=float(mx.abs(logits - logits32).max()),
        parallel_dtype_error=float(mx.abs(par_logits - logits32).max()),
        max_abs_logit_fp32=float(mx.abs(logits32).max()),
        single_fp32_first_difference=_first_difference(tokens[0], tokens32[0]),
        parallel_fp32_first_difference=_first_difference(par_tokens[0], tokens32[0]),
        tokens_fp32=json.dumps(tokens32[0]),
    )


def comparison(reference: tuple, parallel: tuple, margin: float, fp32: dict | None = None, **fields) -> dict:
    """The correctness row of one parallel model against one device's: (tokens, logits) each; with `fp32`
    (a `dtype_reference`), also both against the same weights in float32."""
    (ref_tokens, ref_logits), (tokens, logits) = reference, parallel
    first = _first_difference(tokens[0], ref_tokens[0])
    return dict(
        metric="max_abs_logit_diff",
        value=float(mx.abs(logits - ref_logits).max()),
        unit="logit",
        max_abs_logit=float(mx.abs(ref_logits).max()),
        top1_margin=margin,
        tokens=len(tokens[0]),
        identical_tokens=first < 0,
        first_difference=first,
        tokens_parallel=json.dumps(tokens[0]),
        tokens_single=json.dumps(ref_tokens[0]),
        **dtype_fields(reference, parallel, fp32),
        **fields,
    )


def correctness(rank: Rank, task: dict) -> None:
    """Logits and greedy tokens of each parallel layout against one device's (the same weights, one seed),
    on a small model with scaled-up weights so that greedy decoding has clear margins."""
    for spec in task["models"]:
        spec = _without_unsupported(rank, spec)
        single = build(rank, spec, SINGLE, scale=task["scale"])
        vocab = models.preset_config(spec["preset"])["vocab_size"]
        prompt = _tokens(vocab, 1, task["prompt_tokens"], spec.get("seed", 0))
        reference = greedy(single.model, prompt, task["tokens"])
        margin = top1_margin(reference[1])
        fp32 = dtype_reference(single.model, prompt, task["tokens"], task["fp32_budget_bytes"])
        del single
        fields = dict(model=spec["preset"], label=spec["label"], dtype=spec["dtype"], bits=spec["bits"])
        for layout in [lay for lay in spec["layouts"] if lay != SINGLE]:
            par = build(rank, spec, layout, scale=task["scale"])
            par_run = greedy(par.model, prompt, task["tokens"])
            row = comparison(reference, par_run, margin, fp32, layout=layout)
            rank.record("correctness", [row | fields | {"loaded_by": "build"}])
            del par
        rank.log(f"correctness {spec['label']} done")


def _timed_load(load) -> tuple:
    """(model, row fields): seconds to load and materialize, and the memory the load added on this rank (MLX's
    active memory: what the rank keeps) and at its peak during the load (a rank that read the whole model
    before keeping its shard would show it there), both above what the rank held before."""
    gc.collect()
    mx.clear_cache()
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    tic = time.perf_counter()
    model = load()
    mx.eval(model.parameters())
    mx.synchronize()
    seconds = time.perf_counter() - tic
    return model, dict(
        value=seconds,
        active_memory_bytes=mx.get_active_memory() - before,
        peak_memory_bytes=mx.get_peak_memory() - before,
        weight_bytes=models.weight_bytes(model),
    )


def _sharded_load(rank: Rank, path: str):
    """mlx-lm's sharded_load with this rank's group as the tensor group. Its closing barrier is an all_sum on
    the CPU stream; MLX's NCCL backend runs collectives on CUDA streams only, so there it runs on the default
    stream (the weights and the sharding are mlx-lm's own either way)."""
    from mlx_lm.utils import sharded_load

    if rank.config["backend"] != "nccl":
        return sharded_load(path, tensor_group=rank.group)[0]
    original = mx.distributed.all_sum
    mx.distributed.all_sum = lambda x, *a, stream=None, **k: original(x, *a, **k)
    try:
        return sharded_load(path, tensor_group=rank.group)[0]
    finally:
        mx.distributed.all_sum = original


def checkpoint(rank: Rank, task: dict) -> None:
    """A checkpoint folder: `mlx_lm.load` on rank 0 (the one-device reference), then mlx-lm's `sharded_load`
    on every rank (tensor parallel: each rank materializes only its shard); load time and memory per rank,
    and the split model's logits and greedy tokens against the whole one's."""
    import mlx_lm

    path, fields = task["path"], dict(model=task["model"], label=task["label"], dtype=task["dtype"], bits=0)
    config = json.loads((Path(path) / "config.json").read_text())
    vocab = int(config.get("vocab_size") or config["text_config"]["vocab_size"])
    prompt = _tokens(vocab, 1, task["prompt_tokens"], rank.config.get("seed", 0))
    reference = fp32 = None
    if rank.rank == 0:
        whole, row = _timed_load(lambda: mlx_lm.load(path)[0])
        rank.record(
            "checkpoint_load", [dict(metric="load_seconds", unit="s", layout=SINGLE, **row, **fields)]
        )
        reference = greedy(whole, prompt, task["tokens"])
        fp32 = dtype_reference(whole, prompt, task["tokens"], task["fp32_budget_bytes"])
        del whole
        gc.collect()
        mx.clear_cache()  # the float32 copy goes before the split model loads
    rank.barrier()
    split, row = _timed_load(lambda: _sharded_load(rank, path))
    rank.record("checkpoint_load", [dict(metric="load_seconds", unit="s", layout=TENSOR, **row, **fields)])
    rank.log(f"checkpoint {task['label']}: sharded_load in {row['value']:.2f} s")
    tokens = greedy(split, prompt, task["tokens"])
    if reference is not None:
        row = comparison(reference, tokens, top1_margin(reference[1]), fp32, layout=TENSOR)
        rank.record("correctness", [row | fields | {"loaded_by": "sharded_load"}])
    del split
    gc.collect()
    mx.clear_cache()


TASKS = {
    "collectives": collectives,
    "correctness": correctness,
    "models": run_models,
    "checkpoint": checkpoint,
}


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    rank = Rank(config)
    try:
        rank.log(f"started: {rank.size} ranks, backend {config['backend']}, device {mx.default_device()}")
        for task in config["tasks"]:
            rank.log(f"task {task['kind']}")
            TASKS[task["kind"]](rank, task)
        rank.barrier()
        rank.files.status.write_text("ok")
        rank.log("done")
        return 0
    except Exception:
        rank.log("failed:\n" + traceback.format_exc())
        rank.files.status.write_text("failed")
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
