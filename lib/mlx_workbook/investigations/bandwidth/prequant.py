"""Pre-quantized checkpoints vs quantizing at load time: one preset saved twice (unquantized and quantized from
the same weights), each loaded through mlx_lm.load and decoded; every trial stored as it finishes."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import mlx.core as mx

from mlx_workbook import models
from mlx_workbook.core import results
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


def prequantized_vs_load_time(
    run: results.Run,
    preset: str,
    bits: int,
    *,
    prompt_tokens: int,
    gen_tokens: int,
    repeats: int,
    group_size: int = 64,
    dtype: str = "bfloat16",
) -> dict:
    """Load time and decode speed of a checkpoint saved quantized vs the same weights saved unquantized and
    quantized while loading, both through models.load_checkpoint (mlx_lm.load). Returns the generated tokens."""
    folder = Path(tempfile.mkdtemp(prefix="prequant-"))
    try:
        paths = save_pair(preset, bits, folder, group_size=group_size, dtype=dtype)
        loaders = {
            "quantized at load time": lambda: models.load_checkpoint(
                str(paths["unquantized"]), quantize_bits=bits, group_size=group_size
            ),
            "pre-quantized": lambda: models.load_checkpoint(str(paths["quantized"])),
        }
        tokens = {}
        for trial in range(repeats):
            for variant, load in loaders.items():  # interleaved, so drift hits both alike
                mx.clear_cache()
                tic = time.perf_counter()
                loaded = load()
                mx.eval(loaded.model.parameters())
                load_s = time.perf_counter() - tic
                cols = {
                    **loaded.describe(),
                    "model": preset,
                    "label": f"{preset} {bits}-bit",
                    "variant": variant,
                    "checkpoint_bytes": sum(
                        p.stat().st_size
                        for p in paths["unquantized" if "load" in variant else "quantized"].glob(
                            "*.safetensors"
                        )
                    ),
                }
                prompt = models.random_prompt(loaded, prompt_tokens, seed=5)
                decode.measure_generation(loaded.model, prompt, 4)  # warm-up of this load
                gen = decode.measure_generation(loaded.model, prompt, gen_tokens)
                tokens[variant] = gen.tokens
                run.record("prequant", "load_s", load_s, "s", trial=trial, **cols)
                decode.record_generation(
                    run, "prequant", gen, trial=trial, tokens_digest=tokens_digest(gen.tokens), **cols
                )
                loaded = None
        return tokens
    finally:
        shutil.rmtree(folder, ignore_errors=True)
