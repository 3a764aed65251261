"""Notebook 01's long-context copy comparison with MLX CUDA's decode attention kernel held fixed.

MLX CUDA (0.31 and later) sends a decode query to cuDNN instead of its own vector kernel when K and V fill the
buffer behind their view exactly, in rows that are a multiple of 256: a layout mlx-lm's preallocated cache has and
concat's fresh arrays do not. So at a long context, concat against preallocated measures which attention kernel
each cache gets as much as the copy: on one H200 (qwen3-0.6b bf16, 7936 tokens) concat measured -10.3% and -7.1%
with cuDNN SDPA and +3.9% and +4.5% without it (reports/reference/bench/kv_cache_cudnn_abba_9953cea/). MLX reads
the switch, MLX_CUDA_USE_CUDNN_SDPA, once per process, so the comparison runs again in a fresh process with it set
to 0: both caches on MLX's vector kernel, and what is left of the difference is the copy's. Its rows come back
into the notebook's run under their own experiment (measure.COPY_LONG_VECTOR_SDPA).

    python -m mlx_workbook.investigations.kv_cache.fixed_kernel config.json    # one comparison: prints its rows
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from mlx_workbook import models
from mlx_workbook.core import blocks
from mlx_workbook.investigations.kv_cache import measure
from mlx_workbook.probes import child, sdpa_probe

# s, on top of the comparison's own budget and extension: the model's build, prefills and warm-up block (an 8B
# model at 7936 tokens took about 30 s on one H200)
STARTUP_ALLOWANCE_S = 300


def applies(backend: str) -> bool:
    """Only MLX CUDA has a second decode attention kernel that depends on the cache's layout."""
    return backend == "cuda"


def run_one(config: dict) -> dict:
    """In the child: the long-context comparison of one preset (measure.compare_claims), its rows and the
    extension seconds left."""
    loaded = models.build_preset(
        config["preset"], dtype=config["dtype"], bits=config["bits"], seed=config["seed"]
    )
    n = config["length"]
    plan = measure.ClaimComparison(
        measure.COPY_LONG_VECTOR_SDPA,
        {"concat": ("concat", n), "preallocated": ("preallocated", n)},
        "preallocated",
        config["tolerance"],
        # the setting this process really ran under, on every row
        {"length": n, "cudnn_sdpa_setting": os.environ.get(sdpa_probe.CUDNN_SDPA_VARIABLE, "unset")},
    )
    extension = blocks.Extension(config["extend_s"], config["extend_total_s"])
    rows = blocks.Rows()  # the child has no run folder of its own
    measure.compare_claims(rows, loaded, [plan], extension=extension, **config["blocks"])
    return {"rows": rows.rows, "extend_total_s": extension.total_s}


def compare(
    run,
    preset: str,
    *,
    dtype: str,
    bits: int | None,
    seed: int,
    length: int,
    tolerance: float,
    extension: blocks.Extension,
    **block_params,
) -> None:
    """Run the comparison in a fresh process with cuDNN SDPA off and record its rows into `run`; the extension
    seconds it used are taken from the notebook's shared `extension`. `block_params` are compare_claims'
    (tokens, budget_s, min_blocks, max_blocks, warmup, step, window, keep, chunk_tokens)."""
    config = {
        "preset": preset,
        "dtype": dtype,
        "bits": bits,
        "seed": seed,
        "length": length,
        "tolerance": tolerance,
        "extend_s": extension.per_comparison_s,
        "extend_total_s": extension.total_s,
        "blocks": dict(block_params, seed=seed),
    }
    timeout = block_params["budget_s"] + extension.available_s() + STARTUP_ALLOWANCE_S
    try:
        data = child.run_module(
            __name__, config, timeout=timeout, env=sdpa_probe.CUDNN_SDPA_SETTINGS["cudnn off"]
        )
    except (child.ChildFailed, child.ChildTimeout) as exc:
        raise RuntimeError(f"the copy comparison with cuDNN SDPA off ({preset}) failed: {exc}") from exc
    by_experiment: dict[str, list[dict]] = {}
    for row in data["rows"]:
        by_experiment.setdefault(row.pop("experiment"), []).append(row)
    for experiment, rows in by_experiment.items():
        run.record_many(experiment, rows)
    extension.spend(extension.total_s - data["extend_total_s"])


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the rows alone
        out = run_one(config)
    json.dump(out, sys.stdout)
