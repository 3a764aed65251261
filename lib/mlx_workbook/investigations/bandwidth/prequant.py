"""Pre-quantized checkpoints vs quantizing at load time: one preset saved twice (unquantized and quantized from
the same weights), each loaded through mlx_lm.load and decoded, in paired interleaved blocks (core.blocks)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import mlx.core as mx

from mlx_workbook import models
from mlx_workbook.core import blocks, results
from mlx_workbook.models import roofline as rl
from mlx_workbook.probes import decode


def tokens_digest(tokens: list[int]) -> str:
    """A short fingerprint of a generated sequence, stored per trial so identity can be checked from the data."""
    return hashlib.sha1(",".join(map(str, tokens)).encode()).hexdigest()[:12]


def save_pair(preset: str, bits: int, folder: Path, *, group_size: int = 64, dtype: str = "bfloat16") -> dict:
    """Save `preset` twice into `folder`: unquantized ('bf16/') and quantized from the same weights ('q/')."""
    base = models.build_preset(preset, dtype=rl.base_dtype(models.preset_config(preset), dtype))
    tokenizer = models.offline_tokenizer(base.vocab_size)
    paths = {"unquantized": folder / "unquantized", "quantized": folder / f"q{bits}"}
    models.save_checkpoint(base, paths["unquantized"], tokenizer=tokenizer)
    twin = models.quantize_copy(base, bits, group_size, consume=True)
    models.save_checkpoint(twin, paths["quantized"], tokenizer=tokenizer)
    return paths


REFERENCE = "quantized at load time"  # the comparison's reference; the effect is pre-quantized over it


def prequantized_vs_load_time(
    run: results.Run,
    preset: str,
    bits: int,
    *,
    prompt_tokens: int,
    gen_tokens: int,
    budget_s: float,
    min_blocks: int = 5,
    max_blocks: int = 16,
    band: blocks.Band | None = None,
    group_size: int = 64,
    dtype: str = "bfloat16",
) -> dict:
    """Decode speed of a checkpoint saved quantized vs the same weights saved unquantized and quantized while
    loading, both through models.load_checkpoint (mlx_lm.load), in paired interleaved blocks (core.blocks) until
    `band` is decided or `budget_s` is spent. Each call loads, warms up and decodes; its load time and a
    fingerprint of its tokens are stored beside the block's decode tok/s. Returns the generated tokens."""
    folder = Path(tempfile.mkdtemp(prefix="prequant-"))
    try:
        paths = save_pair(preset, bits, folder, group_size=group_size, dtype=dtype)
        sources = {REFERENCE: paths["unquantized"], "pre-quantized": paths["quantized"]}
        loaders = {
            REFERENCE: lambda: models.load_checkpoint(
                str(paths["unquantized"]), quantize_bits=bits, group_size=group_size
            ),
            "pre-quantized": lambda: models.load_checkpoint(str(paths["quantized"])),
        }
        label = f"{preset} {bits}-bit"
        tokens: dict[str, list[int]] = {}

        def variant(name: str):
            def once() -> float:
                mx.clear_cache()
                tic = time.perf_counter()
                loaded = loaders[name]()
                mx.eval(loaded.model.parameters())
                load_s = time.perf_counter() - tic
                prompt = models.random_prompt(loaded, prompt_tokens, seed=5)
                decode.measure_generation(loaded.model, prompt, 4)  # warm-up of this load
                gen = decode.measure_generation(loaded.model, prompt, gen_tokens)
                block = calls[name]  # no warm-up calls: a variant's n-th call is block n
                calls[name] += 1
                tokens[name] = gen.tokens
                run.record(
                    "prequant",
                    "load_s",
                    load_s,
                    "s",
                    trial=block,
                    block=block,
                    variant=name,
                    model=preset,
                    label=label,
                    tokens_digest=tokens_digest(gen.tokens),
                    checkpoint_bytes=sum(f.stat().st_size for f in sources[name].glob("*.safetensors")),
                )
                return gen.decode_tps

            return once

        calls = dict.fromkeys(loaders, 0)
        blocks.compare(
            run,
            "prequant",
            {name: variant(name) for name in loaders},
            reference=REFERENCE,
            bands={"pre-quantized": band} if band else None,
            metric="decode_tps",
            unit="tokens/s",
            budget_s=budget_s,
            min_blocks=min_blocks,
            max_blocks=max(min_blocks, max_blocks),
            warmup=0,  # every call loads afresh and warms its own model up
            model=preset,
            label=label,
            bits=bits,
        )
        return tokens
    finally:
        shutil.rmtree(folder, ignore_errors=True)
