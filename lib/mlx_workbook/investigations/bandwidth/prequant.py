"""Pre-quantized checkpoints vs quantizing at load time: one preset saved twice (unquantized and quantized from
the same weights), each loaded once through mlx_lm.load (its load time stored), then both kept resident and
their decode compared in paired interleaved blocks (core.blocks)."""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import mlx.core as mx

from mlx_workbook import models
from mlx_workbook.core import blocks, results
from mlx_workbook.models import roofline as rl
from mlx_workbook.probes import decode

REFERENCE = "quantized at load time"  # the comparison's reference; the effect is pre-quantized over it
PREQUANT = "pre-quantized"
METRIC = "steady_tps"  # 1000 / the trial's steady-state ms per token (blocks.interleaved)


def save_pair(preset: str, bits: int, folder: Path, *, group_size: int = 64, dtype: str = "bfloat16") -> dict:
    """Save `preset` twice into `folder`: unquantized ('bf16/') and quantized from the same weights ('q/')."""
    base = models.build_preset(preset, dtype=rl.base_dtype(models.preset_config(preset), dtype))
    tokenizer = models.offline_tokenizer(base.vocab_size)
    paths = {"unquantized": folder / "unquantized", "quantized": folder / f"q{bits}"}
    models.save_checkpoint(base, paths["unquantized"], tokenizer=tokenizer)
    twin = models.quantize_copy(base, bits, group_size, consume=True)
    models.save_checkpoint(twin, paths["quantized"], tokenizer=tokenizer)
    return paths


def steady_tps_block(tokens: int, chunk: int) -> blocks.BlockFn:
    """One block: blocks.interleaved over the variants' generation factories, its steady-state ms per token
    turned into tokens/s, so the stored change reads as the claim's speed-up (the log-ratio only flips sign;
    the rounds' chunk times are turned alike, so the block's median log-ratio flips with it)."""
    timed = partial(blocks.interleaved, tokens=tokens, chunk=chunk)

    def block(variants, rng) -> blocks.Rounds:
        ms = timed(variants, rng)
        rounds = {name: [1e3 / x for x in per_round] for name, per_round in ms.rounds.items()}
        return blocks.Rounds({name: 1e3 / v for name, v in ms.items()}, rounds=rounds)

    return block


def load_all(
    run: results.Run, loaders: dict, sources: dict, loads: int, **fields
) -> dict[str, models.LoadedModel]:
    """Load every checkpoint `loads` times (variants alternating, the order reversed each round), storing each
    load's seconds; the last load of each stays resident for the decode comparison."""
    loaded: dict[str, models.LoadedModel] = {}
    for i in range(loads):
        for name in list(loaders)[:: 1 if i % 2 == 0 else -1]:
            loaded.pop(name, None)  # the previous load is freed first: one copy of each at a time
            mx.clear_cache()
            tic = time.perf_counter()
            loaded[name] = loaders[name]()
            mx.eval(loaded[name].model.parameters())
            run.record(
                "prequant",
                "load_s",
                time.perf_counter() - tic,
                "s",
                trial=i,
                variant=name,
                checkpoint_bytes=sum(f.stat().st_size for f in sources[name].glob("*.safetensors")),
                **fields,
            )
    return loaded


def prequantized_vs_load_time(
    run: results.Run,
    preset: str,
    bits: int,
    *,
    prompt_tokens: int,
    tokens: int,
    chunk_tokens: int,
    budget_s: float,
    loads: int = 1,
    min_blocks: int = 5,
    max_blocks: int = 16,
    band: blocks.Band | None = None,
    group_size: int = 64,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> dict[str, list[int]]:
    """Decode speed of a checkpoint saved quantized vs the same weights saved unquantized and quantized while
    loading, both through models.load_checkpoint (mlx_lm.load). Each is loaded `loads` times (load_s rows) and
    then kept resident; one untimed `tokens`-token generation of each warms it up at the timed shapes and
    stores its tokens' fingerprint; then paired blocks (core.blocks.compare) of `tokens`-token trials advanced
    alternately `chunk_tokens` at a time (blocks.interleaved; 0: whole trials back to back), until `band` is
    decided or `budget_s` is spent. Returns each variant's generated tokens."""
    label = f"{preset} {bits}-bit"
    fields = dict(model=preset, label=label, bits=bits)
    folder = Path(tempfile.mkdtemp(prefix="prequant-"))
    try:
        paths = save_pair(preset, bits, folder, group_size=group_size, dtype=dtype)
        sources = {REFERENCE: paths["unquantized"], PREQUANT: paths["quantized"]}
        loaders = {
            REFERENCE: lambda: models.load_checkpoint(
                str(paths["unquantized"]), quantize_bits=bits, group_size=group_size
            ),
            PREQUANT: lambda: models.load_checkpoint(str(paths["quantized"])),
        }
        loaded = load_all(run, loaders, sources, loads, **fields)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # both models are resident now
    prompt = models.random_prompt(loaded[PREQUANT], prompt_tokens, seed=5)
    generated = {}
    for name, lm in loaded.items():
        gen = decode.measure_generation(lm.model, prompt, tokens)
        generated[name] = gen.tokens
        run.record(
            "prequant",
            "warmup_decode_tps",
            gen.decode_tps,
            "tokens/s",
            variant=name,
            tokens_digest=decode.tokens_digest(gen.tokens),
            **fields,
        )
    blocks.compare(
        run,
        "prequant",
        {name: partial(decode.mlx_lm_loop, lm.model, prompt, tokens) for name, lm in loaded.items()},
        reference=REFERENCE,
        bands={PREQUANT: band} if band else None,
        metric=METRIC,
        unit="tokens/s",
        budget_s=budget_s,
        min_blocks=min_blocks,
        max_blocks=max(min_blocks, max_blocks),
        warmup=0,  # each variant just ran a whole generation at the timed shapes
        seed=seed,
        block_fn=steady_tps_block(tokens, chunk_tokens),
        tokens_per_trial=tokens,
        chunk_tokens=chunk_tokens,
        **fields,
    )
    return generated
