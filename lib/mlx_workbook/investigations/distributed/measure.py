"""Notebook 06's measuring side: check the parameters, plan what fits, launch the ranks, merge their journals.

The measuring itself runs in the rank script (`rank.py`, one process per rank, started by `mlx.launch`
through `probes.launch`); this module decides what each launch does and brings its rows into the Run.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import pandas as pd

from mlx_workbook import ROOT, models
from mlx_workbook.core import env as envmod
from mlx_workbook.investigations.distributed import rank as rankmod
from mlx_workbook.probes import launch as launcher

RANK_SCRIPT = Path(rankmod.__file__)
RANKS_FOLDER = "ranks"  # the rank files of every launch live in <run>/ranks/<launch name>/
# 2: checkpoints loaded with mlx-lm's sharded_load (load time, memory, correctness); per-model batches/blocks.
# 3: below float32, the correctness check also runs the one-device model upcast to float32 (its own dtype
#    error, the tolerance the split model is judged by); correctness presets may name a dtype.
METHOD_VERSION = 3


@dataclass(frozen=True)
class ModelPlan:
    """One model configuration and the layouts that run for it (and why the others do not)."""

    preset: str
    dtype: str
    bits: int
    layouts: tuple[str, ...]
    skipped: dict  # layout -> reason
    rank_bytes: dict  # layout -> weight bytes on the busiest rank
    batches: tuple[int, ...] = ()  # this model's decode batches (empty: the notebook's)
    repeats: int = 0  # this model's blocks (0: the notebook's)

    @property
    def label(self) -> str:
        return (
            f"{self.preset} {self.bits}-bit"
            if self.bits
            else f"{self.preset} {models.loading._short_dtype(self.dtype)}"
        )

    def spec(self, seed: int) -> dict:
        return dict(
            preset=self.preset,
            dtype=self.dtype,
            bits=self.bits,
            label=self.label,
            layouts=list(self.layouts),
            seed=seed,
            batches=list(self.batches),
            repeats=self.repeats,
        )


def supported_layouts(preset: str) -> tuple[str, ...]:
    """The layouts mlx-lm's class of this preset implements: shard(group) and/or model.pipeline(group)."""
    lazy = models.build_preset(preset, dtype="float32", materialize=False)
    out = [rankmod.SINGLE]
    if hasattr(lazy.model, "shard"):
        out.append(rankmod.TENSOR)
    if hasattr(getattr(lazy.model, "model", None), "pipeline"):
        out.append(rankmod.PIPELINE)
    return tuple(out)


def rank_bytes(preset: str, dtype: str, bits: int, layout: str, ranks: int) -> int:
    """Weight bytes on the busiest rank: everything (single); the layers' projections split N ways and the
    embedding, head and norms whole (mlx-lm's shard); a share of the layers, rounded up, plus embedding and
    head (mlx-lm's pipeline). Computed from the lazy model's exact bytes, before any weight exists."""
    lazy = models.build_preset(preset, dtype=dtype, bits=bits or None, materialize=False)
    parts = models.loading.weight_breakdown(lazy.model)
    total = sum(parts.values())
    layered = parts.get("attention", 0) + parts.get("mlp", 0)
    if layout == rankmod.SINGLE:
        return total
    if layout == rankmod.TENSOR:
        return total - layered + -(-layered // ranks)
    per_layer = layered / lazy.num_layers
    return int(total - layered + per_layer * -(-lazy.num_layers // ranks))


def device_budget(environment: envmod.Environment, ranks_per_device: int) -> float:
    """Bytes of weights one rank may hold: the device's memory with headroom, shared by the ranks on it."""
    return environment.memory_bytes * models.loading.MEMORY_HEADROOM / ranks_per_device


def plan_models(
    configs: list[dict], *, ranks: int, layouts: list[str], budget: float, ranks_on_rank0_device: int = 1
) -> list[ModelPlan]:
    """Which layouts run for each model: those mlx-lm implements for it, that were asked for, and whose
    weights fit the busiest rank's budget (rank 0 holds every layout of a model at once, interleaved)."""
    out = []
    for c in configs:
        preset, dtype, bits = c["preset"], c.get("dtype", "bfloat16"), int(c.get("bits") or 0)
        models.validate(dtype, bits or None, 64)
        batches, repeats = tuple(int(b) for b in c.get("batches") or ()), int(c.get("repeats") or 0)
        if any(b < 1 for b in batches) or 0 < repeats < 2:
            raise ValueError(f"{preset}: its own batches must be positive and its repeats >= 2, got {c}")
        have = supported_layouts(preset)
        sizes = {lay: rank_bytes(preset, dtype, bits, lay, ranks) for lay in layouts}
        skipped = {lay: "mlx-lm's class has no such sharding" for lay in layouts if lay not in have}
        if ranks < 2:
            skipped.update({lay: "needs at least two ranks" for lay in layouts if lay != rankmod.SINGLE})
        chosen, held = [], 0
        # The largest layout first: the single device is the one a big model does not fit.
        for lay in sorted((lay for lay in layouts if lay not in skipped), key=lambda lay: -sizes[lay]):
            if sizes[lay] > budget:
                skipped[lay] = (
                    f"needs {sizes[lay] / 1e9:.1f} GB of weights on one rank, more than the "
                    f"{budget / 1e9:.1f} GB budget"
                )
            elif held + sizes[lay] > budget:
                skipped[lay] = (
                    f"fits alone ({sizes[lay] / 1e9:.1f} GB) but not beside the other layouts on rank 0 "
                    f"({held / 1e9:.1f} GB already)"
                )
            else:
                chosen.append(lay)
                held += sizes[lay]
        ordered = tuple(lay for lay in layouts if lay in chosen)
        out.append(ModelPlan(preset, dtype, bits, ordered, skipped, sizes, batches, repeats))
    return out


def plan_table(plans: list[ModelPlan]) -> pd.DataFrame:
    rows = []
    for p in plans:
        for lay, size in p.rank_bytes.items():
            rows.append(
                dict(
                    model=p.label,
                    layout=lay,
                    weights_gb_on_busiest_rank=round(size / 1e9, 3),
                    runs=lay in p.layouts,
                    why_not=p.skipped.get(lay, ""),
                )
            )
    return pd.DataFrame(rows)


def record_plan(run, plans: list[ModelPlan], *, budget: float, ranks: int) -> None:
    """The plan as rows (experiment "plan"): what each layout holds per rank and why a layout did not run,
    so that "only fits over several devices" is read from the data."""
    for p in plans:
        run.record_many(
            "plan",
            [
                dict(
                    metric="rank_weight_bytes",
                    value=size,
                    unit="bytes",
                    model=p.preset,
                    label=p.label,
                    dtype=p.dtype,
                    bits=p.bits,
                    layout=lay,
                    runs=lay in p.layouts,
                    why_not=p.skipped.get(lay, ""),
                    budget_bytes=budget,
                    world_size=ranks,
                )
                for lay, size in p.rank_bytes.items()
            ],
        )


def validate(
    *,
    ranks: int,
    backend: str,
    hosts: list,
    sizes_bytes: list,
    ops: list,
    dtypes: list,
    batches: list,
    prefill_lengths: list,
    decode_tokens: int,
    context_tokens: int,
    repeats: int,
    layouts: list,
    timeout_s: float,
) -> None:
    """One clear error for impossible settings, before anything is launched."""
    launcher.local_ranks(backend, ranks, hosts)  # raises on an unknown backend or uneven hosts
    if any(int(s) < 1 for s in sizes_bytes) or not sizes_bytes:
        raise ValueError(f"collective message sizes must be positive byte counts, got {sizes_bytes}")
    if bad := [o for o in ops if o not in rankmod.OPS]:
        raise ValueError(f"unknown collectives {bad}; use some of {rankmod.OPS}")
    if bad := [d for d in dtypes if d not in models.DTYPES]:
        raise ValueError(f"unknown dtypes {bad}; use some of {list(models.DTYPES)}")
    if bad := [lay for lay in layouts if lay not in rankmod.LAYOUTS]:
        raise ValueError(f"unknown layouts {bad}; use some of {rankmod.LAYOUTS}")
    if rankmod.SINGLE not in layouts:
        raise ValueError("layouts must include 'single': every parallel layout is judged against one device")
    if not batches or any(int(b) < 1 for b in batches) or any(int(n) < 1 for n in prefill_lengths):
        raise ValueError(f"batches and prefill lengths must be positive, got {batches} / {prefill_lengths}")
    if decode_tokens < 2 or context_tokens < 1 or repeats < 2 or timeout_s <= 0:
        raise ValueError(
            "decode_tokens >= 2, context_tokens >= 1, repeats >= 2 (paired blocks) and timeout_s > 0"
        )


def correctness_configs(presets: list) -> list[dict]:
    """The correctness check's models: a preset name (float32, as before) or {preset, dtype}."""
    return [{"preset": p, "dtype": "float32"} if isinstance(p, str) else dict(p) for p in presets]


def check_checkpoint(path: str, preset: dict) -> None:
    """A named model folder must exist and hold a model (config.json and safetensors); without one, the preset
    saved in its place must exist and have mlx-lm's tensor sharding. One clear error before any rank starts."""
    if path:
        models.loading.check_folder(Path(path).expanduser(), what="checkpoint folder")
        return
    models.validate(preset.get("dtype", "bfloat16"), None, 64)
    if rankmod.TENSOR not in supported_layouts(preset["preset"]):  # unknown presets raise here too
        raise ValueError(f"checkpoint_preset {preset['preset']}: mlx-lm's class has no shard(group)")


@contextlib.contextmanager
def checkpoint_task(
    run,
    path: str,
    preset: dict,
    *,
    scale: float,
    seed: int,
    prompt_tokens: int,
    tokens: int,
    save: bool,
    fp32_budget_bytes: float,
):
    """The rank task that loads a checkpoint folder with mlx-lm's sharded_load. `path` names a real one;
    empty: `preset` (its weights x `scale`, for clear greedy margins) is saved as config.json + safetensors
    + the offline tokenizer into a temporary folder, removed when the launch is over. The save's seconds
    and bytes are recorded (experiment "checkpoint_save"). Nothing is written when `save` is False (the
    ranks cannot run here). Below float32, rank 0 also runs the whole model upcast to float32 where that
    copy fits `fp32_budget_bytes` (its own dtype error: the tolerance of the split model's difference)."""
    task = dict(
        kind="checkpoint", prompt_tokens=prompt_tokens, tokens=tokens, fp32_budget_bytes=fp32_budget_bytes
    )
    if path:
        folder = str(Path(path).expanduser())
        config = json.loads((Path(folder) / "config.json").read_text())
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "")
        yield task | dict(path=folder, model=folder, label=Path(folder).name, dtype=dtype)
        return
    if not save:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="mlx-workbook-06-checkpoint-"))
    try:
        dtype = preset.get("dtype", "bfloat16")
        tic = time.perf_counter()
        loaded = models.build_preset(preset["preset"], dtype=dtype, seed=seed)
        rankmod.scale_weights(loaded.model, scale)
        models.save_checkpoint(loaded, folder, tokenizer=models.offline_tokenizer(loaded.vocab_size))
        nbytes = loaded.weight_bytes()
        del loaded  # the notebook's process lets its copy go before the ranks load theirs
        gc.collect()
        mx.clear_cache()
        seconds = time.perf_counter() - tic
        run.record(
            "checkpoint_save", "save_seconds", seconds, "s", weight_bytes=nbytes, model=preset["preset"]
        )
        label = f"{preset['preset']} {models.loading._short_dtype(dtype)}"
        yield task | dict(path=str(folder), model=preset["preset"], label=label, dtype=dtype)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def decode_message_bytes(plans: list[ModelPlan], batches: list, dtypes: list) -> list[int]:
    """The message a decode step's all_sum carries: hidden size x batch x dtype bytes (one token per row)."""
    out = set()
    for p in plans:
        hidden = models.preset_config(p.preset)["hidden_size"]
        for b in p.batches or batches:
            for dt in dtypes:
                out.add(int(hidden * b * models.DTYPES[dt].size))
    return sorted(out)


def merge_journals(run, folder: Path) -> int:
    """Every rank's journal rows (finished trials) into the run's measurements; returns the row count."""
    added = 0
    for journal in sorted(Path(folder).glob("rank*.jsonl")):
        rows = [json.loads(line) for line in journal.read_text().splitlines() if line.strip().endswith("}")]
        by_experiment: dict[str, list] = {}
        for r in rows:
            by_experiment.setdefault(r.pop("experiment"), []).append(r)
        for experiment, group in by_experiment.items():
            run.record_many(experiment, group)
            added += len(group)
        journal.rename(journal.with_suffix(".merged"))
    return added


def run_ranks(
    run, name: str, tasks: list[dict], *, ranks: int, backend: str, hosts: list, timeout_s: float, seed: int
) -> dict:
    """Launch the rank script with `tasks`, then merge every rank's journal into the run (also on failure,
    so finished trials are kept). Returns {"ran": bool, "reason", "seconds", "rows"}."""
    reason = launcher.local_ranks(backend, ranks, hosts)
    if reason:
        return {"ran": False, "reason": reason, "seconds": 0.0, "rows": 0}
    folder = Path(run.run_dir) / RANKS_FOLDER / name
    config = dict(backend=backend, world_size=ranks, log_dir=str(folder), seed=seed, tasks=tasks)
    # The ranks import this library the way the notebook does (the runner puts lib/ on PYTHONPATH).
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")) if p),
        # MLX's CUDA backend runs float32 matmuls as TF32 unless told not to (ml-explore/mlx#3860): the
        # float32 correctness check compares sharded and whole models at float32's own precision. The timed
        # layouts are bf16 or quantized, which this does not touch.
        "MLX_ENABLE_TF32": os.environ.get("MLX_ENABLE_TF32", "0"),
    }
    try:
        result = launcher.launch(
            RANK_SCRIPT,
            config,
            ranks=ranks,
            backend=backend,
            log_dir=folder,
            timeout_s=timeout_s,
            hosts=hosts or None,
            env=env,
        )
    finally:
        rows = merge_journals(run, folder)
    return {"ran": True, "reason": "", "seconds": result.seconds, "rows": rows}
