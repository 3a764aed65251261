"""Measurement fidelity: the library's decode tokens/s against `mlx_lm.benchmark`'s own figure, same model object,
same settings, measured in paired blocks until the comparison decides.

    PYTHONPATH=lib python bench/fidelity.py --preset tiny --budget-s 20          # CPU, seconds
    PYTHONPATH=lib python bench/fidelity.py --preset tiny --chunk-tokens 0      # whole trials back to back
    PYTHONPATH=lib python bench/fidelity.py --model path/to/checkpoint           # a real checkpoint folder

On one H200 (MLX CUDA), the two presets of issue 11's target, each about 60-70 s in all (`make fidelity`
runs both; the model is built in memory in a few seconds, then one warm-up per side, then the blocks):

    PYTHONPATH=lib python bench/fidelity.py --preset qwen3-0.6b --gen-tokens 256 --prompt-tokens 128 --budget-s 60
    PYTHONPATH=lib python bench/fidelity.py --preset llama-3-8b --gen-tokens 256 --prompt-tokens 128 --budget-s 55

The design. Each block holds one library trial and one mlx_lm.benchmark trial (`core.blocks.compare`), so the
host's speed drift hits both sides of a block alike and cancels in the block's log-ratio log(library /
benchmark). By default (--chunk-tokens 16) the two trials are advanced alternately, 16 tokens of one side then 16
of the other in a fresh random order per round (`core.blocks.interleaved_intervals`), every token timed on the
host, each chunk's first interval dropped (it holds the switch from the other side, or the prefill); the GPU
machine's host switches between two speed modes within about a second, so two whole trials back to back
(--chunk-tokens 0, the earlier design) often ran in different modes and the H200 runs stayed inconclusive
(qwen3-0.6b 1.024 [0.964, 1.087], n=22). The ratio is the geometric mean over blocks with a t interval on those
log-ratios; blocks are added until the interval lies wholly inside or wholly outside the ±2% band (at the looks
`core.blocks` schedules: the interim looks share a fifth of the 5% error rate, the final one keeps the rest) or the time
budget is spent or --max-blocks ran. The verdict (`core.verdicts.no_effect` on that interval) is holds, does not hold or
inconclusive; the JSON says why it stopped and, if undecided, the smallest difference the blocks could resolve.

The chunked value is still mlx-lm's generation_tps. That figure is g / (time from the first token to the last):
g tokens over g - 1 decode intervals (the library's decode_tps is the same formula, `decode.Generation`). A
chunked trial keeps the same definition and estimates that time from the kept intervals: g / ((g - 1) * mean kept
interval) (`chunked_trial`). With one chunk per trial (chunk >= g) the kept intervals are exactly the g - 1 decode
intervals and the value is the published figure (the library's exactly; the benchmark's up to where within
a token's yield the clock is read); with smaller chunks it drops one in `chunk` intervals, those
spent switching sides, which a whole trial does not have. The intervals are read at each side's token yields,
where its own clock reads (measure_generation stamps after each token of generate_step; stream_generate reads
perf_counter just before each yield), so the sums are the time each side's figure divides by. mlx-lm's own
generation_tps in a chunked trial would count the other side's chunks (its clock runs from its first token), so
it is not used there. Prompt tokens/s, chunked: prompt length / the first chunk's first interval (the call to
the first token, measure_generation's TTFT). Peak memory is not kept: both sides' caches are alive together.
A mean of the kept intervals, not the chunk medians of notebooks 01/02 (`blocks.interleaved`): generation_tps
divides by the total time, so a stall of the host counts here as it does in the published figure.

The two sides, on one model object in this process. Library: `decode.measure_generation` with mlx-lm's
`generate_step` (the reference loop; chunked, the same loop, `decode.mlx_lm_loop`, stamped token by token).
mlx_lm.benchmark: its module exposes no per-trial function (its trial is `single_bench`, a closure inside `main`,
which also loads the model and warms up on every call), so this file makes the call `single_bench` makes:
`mlx_lm.benchmark.stream_generate(model, tokenizer, prompt, max_tokens=-g, prefill_step_size=...)` with the
tokenizer's end-of-sequence ids emptied, mlx_lm.benchmark's prompt (seed 0, uniform ids), its parser's defaults
(`setup_arg_parser`), and its figure (the last response's generation_tps). Before any work,
`check_benchmark_source` reads `mlx_lm.benchmark.main`'s source and refuses to run if those calls changed, so the
in-process side cannot silently drift from the CLI. The alternative, the CLI as a subprocess, cannot be paired: it
loads the model (16 GB for llama-3-8b) and warms up on every start, and once started it runs its trials back to
back, so a library trial cannot sit between two of its trials (running both at once would share the GPU); one
process per block would cost a load per block. A preset is built in memory at random weights (shape-faithful); its
tokenizer (offline, byte-level decoder, so mlx-lm picks its streaming BPE detokenizer as for real Qwen/Llama
tokenizers) is saved and read back with mlx-lm's own `load_tokenizer`.

Writes a JSON file (settings, environment, chunk_tokens, per-side medians, the paired ratio with its interval, n
and confidence, the stop reason, the verdict, every block with, when chunked, each chunk's kept intervals, their
seconds and the dropped interval per side, the host's stability) and prints a table. Exit status 0
when the verdict is holds.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path

import mlx.core as mx
from mlx_lm import benchmark as mlx_benchmark
from mlx_lm.utils import load_tokenizer

from mlx_workbook import REPORTS_DIR, models
from mlx_workbook.core import blocks, hoststate, intervals, verdicts
from mlx_workbook.core import env as envmod
from mlx_workbook.probes import decode

EXPERIMENT = "fidelity"
LIBRARY, BENCHMARK = "library", "mlx_lm.benchmark"
WARMUP = 1  # untimed trials per side before the blocks (compile, allocate)
# What mlx_lm.benchmark.main does for one batch-1 trial (whitespace-normalized); `benchmark_trial` does the same.
BENCHMARK_CALLS = (
    "mx.random.seed(0)",
    "tokenizer._eos_token_ids = {}",
    "prompts = mx.random.randint(0, vocab_size, (batch_size, prompt_tokens)).tolist()",
    "prompt = prompts[0]",
    "stream_generate( model, tokenizer, prompt, max_tokens=generation_tokens, "
    "prefill_step_size=args.prefill_step_size, )",
    "_bench = single_bench",
)


def check_benchmark_source() -> None:
    """Refuse to run when mlx_lm.benchmark's trial is no longer the call `benchmark_trial` makes."""
    source = " ".join(inspect.getsource(mlx_benchmark.main).split())
    missing = [call for call in BENCHMARK_CALLS if call not in source]
    if missing:
        raise RuntimeError(
            f"mlx_lm.benchmark ({mlx_benchmark.__file__}) changed: its main no longer contains {missing}; "
            "update benchmark_trial in bench/fidelity.py to match it"
        )


def benchmark_prompt(vocab_size: int, n_tokens: int) -> list[int]:
    """The prompt mlx_lm.benchmark draws: seed 0, then uniform ids of shape (1, n) (its batch of one)."""
    mx.random.seed(0)
    return mx.random.randint(0, vocab_size, (1, n_tokens)).tolist()[0]


def load_model(args, folder: Path) -> models.LoadedModel:
    """A --model checkpoint through mlx_lm.load; a preset built in memory, its tokenizer read by mlx-lm."""
    if args.model:
        return models.load_checkpoint(args.model)
    dtype = (
        args.dtype
        if args.dtype != "auto"
        else ("float32" if envmod.capture().backend == "cpu" else "bfloat16")
    )
    loaded = models.build_preset(args.preset, dtype=dtype, bits=args.bits)
    models.offline_tokenizer(loaded.vocab_size).save_pretrained(str(folder))
    loaded.tokenizer = load_tokenizer(folder)
    return loaded


def library_trial(model, prompt: list[int], gen_tokens: int, trials: list[dict]) -> Callable[[], float]:
    """The library's measurement: one measure_generation with the reference loop; returns its decode tok/s."""
    prompt_array = mx.array(prompt, dtype=mx.uint32)

    def run() -> float:
        gen = decode.measure_generation(model, prompt_array, gen_tokens)
        trials.append(
            {
                "prompt_tps": gen.prompt_tps,
                "decode_tps": gen.decode_tps,
                "peak_memory_gb": gen.peak_memory_bytes / 1e9,
            }
        )
        return gen.decode_tps

    return run


def benchmark_trial(
    model, tokenizer, prompt: list[int], settings: argparse.Namespace, trials: list[dict]
) -> Callable[[], float]:
    """One trial of mlx_lm.benchmark (its `single_bench`); returns its generation_tps."""

    def run() -> float:
        for _response in mlx_benchmark.stream_generate(
            model,
            tokenizer,
            prompt,
            max_tokens=settings.generation_tokens,
            prefill_step_size=settings.prefill_step_size,
        ):
            pass
        trials.append(
            {
                "prompt_tps": _response.prompt_tps,
                "decode_tps": _response.generation_tps,
                "peak_memory_gb": _response.peak_memory,
            }
        )
        return _response.generation_tps

    return run


def library_generation(model, prompt: list[int], gen_tokens: int) -> Callable[[], Iterator]:
    """The library's side for chunked blocks: a fresh mlx-lm generate_step decode (the loop
    measure_generation clocks), token by token."""
    prompt_array = mx.array(prompt, dtype=mx.uint32)
    return partial(decode.mlx_lm_loop, model, prompt_array, gen_tokens)


def benchmark_generation(model, tokenizer, prompt: list[int], settings) -> Callable[[], Iterator]:
    """mlx_lm.benchmark's side for chunked blocks: a fresh call of the stream_generate its trial makes."""
    return partial(
        mlx_benchmark.stream_generate,
        model,
        tokenizer,
        prompt,
        max_tokens=settings.generation_tokens,
        prefill_step_size=settings.prefill_step_size,
    )


def chunked_trial(chunks: list[list[float]], prompt_tokens: int, gen_tokens: int) -> dict:
    """One side's trial from its chunks' token intervals (blocks.interleaved_intervals): generation_tps's
    definition, g tokens over the g - 1 decode intervals' time, with that time estimated from the kept
    intervals (every chunk's first dropped): g / ((g - 1) * mean kept interval). Prompt tokens/s from the
    first chunk's first interval, the call to the first token (as measure_generation's TTFT)."""
    kept = [gaps[1:] for gaps in chunks]
    kept_n = sum(len(k) for k in kept)
    kept_s = sum(sum(k) for k in kept)
    return {
        "prompt_tps": prompt_tokens / chunks[0][0],
        "decode_tps": gen_tokens / ((gen_tokens - 1) * kept_s / kept_n),
        "chunk_intervals": [len(k) for k in kept],
        "chunk_kept_s": [sum(k) for k in kept],
        "chunk_dropped_s": [gaps[0] for gaps in chunks],
    }


def chunked_block(
    variants: dict[str, Callable[[], Iterator]],
    rng,
    *,
    trials: dict[str, list[dict]],
    prompt_tokens: int,
    gen_tokens: int,
    chunk: int,
) -> dict[str, float]:
    """A block (compare's block_fn): both sides' generations advanced alternately `chunk` tokens at a time;
    each side's trial (chunked_trial) goes to `trials`; returns their decode tokens/s in running order."""
    order, chunks = blocks.interleaved_intervals(variants, rng, tokens=gen_tokens, chunk=chunk)
    for name in order:
        trials[name].append(chunked_trial(chunks[name], prompt_tokens, gen_tokens))
    return {name: trials[name][-1]["decode_tps"] for name in order}


def block_table(rows, library: list[dict], benchmark: list[dict]) -> list[dict]:
    """One dict per block: the order the two sides ran in, both sides' figures, the log-ratio (from the recorded
    rows, as a notebook's analysis reads them), host state. `library` / `benchmark` are the trials in block
    order, for the prompt figures; they must hold the recorded decode figures."""
    df = rows.measurements
    timed = df[df.metric == "decode_tps"].sort_values(["block", "position"])
    log_ratios = blocks.paired_log_ratios(df, EXPERIMENT, LIBRARY, BENCHMARK, "decode_tps")
    host = df[df.metric.isin([hoststate.PROBE_METRIC, hoststate.WALL_METRIC])]
    host = host.pivot_table(index="block", columns="metric", values="value", aggfunc="first")
    out = []
    for block, group in timed.groupby("block"):
        block = int(block)  # a float column: the outcome rows have no block
        lib, ref = library[block], benchmark[block]
        recorded = dict(zip(group.variant, group.value))
        if (recorded[LIBRARY], recorded[BENCHMARK]) != (lib["decode_tps"], ref["decode_tps"]):
            raise RuntimeError(f"block {block}: the trials kept do not match the recorded rows")
        out.append(
            {
                "block": block,
                "order": list(group.variant),
                "library_decode_tps": lib["decode_tps"],
                "benchmark_decode_tps": ref["decode_tps"],
                "log_ratio": float(log_ratios.loc[block]),
                "library_prompt_tps": lib["prompt_tps"],
                "benchmark_prompt_tps": ref["prompt_tps"],
                "host_probe_ms": float(host.loc[block, hoststate.PROBE_METRIC]),
                "block_wall_s": float(host.loc[block, hoststate.WALL_METRIC]),
                **chunk_columns(lib, ref),
            }
        )
    return out


def chunk_columns(lib: dict, ref: dict) -> dict:
    """A chunked block's per-chunk data (chunked_trial), both sides; nothing for whole trials."""
    if "chunk_intervals" not in lib:
        return {}
    return {
        "chunk_intervals": lib["chunk_intervals"],  # kept intervals per chunk, the same on both sides
        **{
            f"{side}_{key}": trial[key]
            for side, trial in (("library", lib), ("benchmark", ref))
            for key in ("chunk_kept_s", "chunk_dropped_s")
        },
    }


def side_summary(library: list[dict], benchmark: list[dict], metric: str) -> dict:
    """Each side's median with its order-statistic interval, and the paired ratio (95% t on log-ratios)."""
    lib = [t[metric] for t in library]
    ref = [t[metric] for t in benchmark]
    return {
        "library": intervals.median_interval(lib).as_dict(),
        "mlx_lm_benchmark": intervals.median_interval(ref).as_dict(),
        "ratio": intervals.paired_ratio(lib, ref).as_dict(),
    }


def decided_ratio(comparison: blocks.Comparison, tolerance_pct: float) -> dict:
    """The stopping rule's estimate as a ratio library / benchmark, and the verdict it decides."""
    e = comparison.estimates[LIBRARY]
    measured = verdicts.Interval(e.value, e.low, e.high)
    return {
        "value": 1 + e.value / 100,
        "low": 1 + e.low / 100,
        "high": 1 + e.high / 100,
        "change_pct": asdict(measured),
        "n_blocks": e.n,
        "method": e.method,
        "confidence": e.confidence,
        "band_pct": [-tolerance_pct, tolerance_pct],
        "stop_reason": comparison.stop_reason,
        "resolvable_pct": comparison.resolvable_pct(LIBRARY),
        "verdict": verdicts.no_effect(measured, tolerance_pct),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="tiny", help="preset built at random weights (ignored with --model)"
    )
    parser.add_argument("--model", default="", help="an existing checkpoint folder instead of a preset")
    parser.add_argument(
        "--dtype", default="auto", help="preset dtype; auto: float32 on the CPU, else bfloat16"
    )
    parser.add_argument("--bits", type=int, default=None, help="quantize the preset to this many bits")
    parser.add_argument("--prompt-tokens", "-p", type=int, default=64)
    parser.add_argument("--gen-tokens", "-g", type=int, default=128)
    parser.add_argument(
        "--budget-s", type=float, default=60.0, help="wall seconds of blocks at most (after the warm-up)"
    )
    parser.add_argument("--min-blocks", type=int, default=8, help="blocks before the first look")
    parser.add_argument("--max-blocks", type=int, default=40, help="blocks at most (the last look)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="agreement asked for, as a fraction")
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        default=16,
        help="advance the two sides alternately this many tokens at a time in each block; 0: whole trials",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random order within blocks")
    parser.add_argument(
        "--out", default="", help="JSON path (default reports/bench/fidelity_<device>_<model>.json)"
    )
    args = parser.parse_args(argv)
    if args.gen_tokens < 2 or args.prompt_tokens < 1:
        parser.error("need --gen-tokens >= 2 and --prompt-tokens >= 1")
    if args.budget_s <= 0 or not 0 < args.tolerance < 1:
        parser.error("need --budget-s > 0 and 0 < --tolerance < 1")
    if args.chunk_tokens < 0 or args.chunk_tokens == 1:
        parser.error("need --chunk-tokens 0 (whole trials) or >= 2")
    if not 3 <= args.min_blocks <= args.max_blocks:
        parser.error("need 3 <= --min-blocks <= --max-blocks")
    if not args.model:
        models.preset_config(args.preset)  # an unknown preset fails here, before any work
    return args


def sides(args, loaded, prompt: list[int], settings, trials: dict[str, list[dict]]):
    """The two sides as compare's variants with the block function that runs them: whole trials back to back
    (--chunk-tokens 0), or generations advanced alternately in chunks (chunked_block)."""
    if not args.chunk_tokens:
        return {
            LIBRARY: library_trial(loaded.model, prompt, args.gen_tokens, trials[LIBRARY]),
            BENCHMARK: benchmark_trial(loaded.model, loaded.tokenizer, prompt, settings, trials[BENCHMARK]),
        }, blocks.back_to_back
    variants = {
        LIBRARY: library_generation(loaded.model, prompt, args.gen_tokens),
        BENCHMARK: benchmark_generation(loaded.model, loaded.tokenizer, prompt, settings),
    }
    block_fn = partial(
        chunked_block,
        trials=trials,
        prompt_tokens=args.prompt_tokens,
        gen_tokens=args.gen_tokens,
        chunk=min(args.chunk_tokens, args.gen_tokens),
    )
    return variants, block_fn


def measure(args, environment) -> dict:
    """Load the model once, run the paired blocks, and assemble the result."""
    tic = time.time()
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        loaded = load_model(args, Path(tmp))
    loaded.tokenizer._eos_token_ids = {}  # as mlx_lm.benchmark: never stop early
    settings = mlx_benchmark.setup_arg_parser().parse_args(
        ["-p", str(args.prompt_tokens), "-g", str(args.gen_tokens)]
    )
    prompt = benchmark_prompt(loaded.vocab_size, args.prompt_tokens)
    trials: dict[str, list[dict]] = {LIBRARY: [], BENCHMARK: []}
    variants, block_fn = sides(args, loaded, prompt, settings, trials)
    rows = blocks.Rows()
    tolerance_pct = 100 * args.tolerance
    comparison = blocks.compare(
        rows,
        EXPERIMENT,
        variants,
        reference=BENCHMARK,
        bands={LIBRARY: blocks.Band.no_effect(tolerance_pct)},
        metric="decode_tps",
        unit="tokens/s",
        budget_s=args.budget_s,
        min_blocks=args.min_blocks,
        max_blocks=args.max_blocks,
        warmup=WARMUP,
        seed=args.seed,
        block_fn=block_fn,
    )
    if comparison.blocks < 2:
        raise RuntimeError(f"only {comparison.blocks} block ran in {args.budget_s} s: raise --budget-s")
    library, benchmark = trials[LIBRARY][WARMUP:], trials[BENCHMARK][WARMUP:]
    table = block_table(rows, library, benchmark)
    bits = f", {args.bits}-bit" if args.bits else ""
    return {
        "model": args.model or f"{args.preset} ({loaded.dtype}{bits})",
        "describe": loaded.describe(),
        "environment": environment.as_dict(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "benchmark_settings": vars(settings),
        "seconds": round(time.time() - tic, 1),
        "chunk_tokens": args.chunk_tokens,
        "decode_tps": {
            **side_summary(library, benchmark, "decode_tps"),
            "decided": decided_ratio(comparison, tolerance_pct),
        },
        "prompt_tps": side_summary(library, benchmark, "prompt_tps"),
        "host": hoststate.stability(b["host_probe_ms"] for b in table).as_dict(),
        "blocks": table,
        "warmup": {"library": trials[LIBRARY][:WARMUP], "mlx_lm_benchmark": trials[BENCHMARK][:WARMUP]},
    }


def print_table(result: dict, args, environment) -> None:
    decided = result["decode_tps"]["decided"]
    print(
        f"{result['model']} on {environment.device} ({environment.backend}), mlx {environment.mlx}, mlx-lm "
        f"{environment.mlx_lm}; prompt {args.prompt_tokens}, generate {args.gen_tokens}, "
        f"{decided['n_blocks']} paired blocks "
        + (f"in chunks of {args.chunk_tokens} tokens" if args.chunk_tokens else "of whole trials")
        + f", {result['seconds']} s"
    )
    print(f"{'metric':<11} {'library [95%]':>26} {'mlx_lm.benchmark [95%]':>28} {'paired ratio [95% t]':>28}")
    for metric in ("decode_tps", "prompt_tps"):
        c = result[metric]
        lib, ref, ratio = c["library"], c["mlx_lm_benchmark"], c["ratio"]
        print(
            f"{metric:<11} {lib['value']:>10.1f} [{lib['low']:.1f}, {lib['high']:.1f}]".ljust(40)
            + f"{ref['value']:>10.1f} [{ref['low']:.1f}, {ref['high']:.1f}]".ljust(30)
            + f"{ratio['value']:>8.4f} [{ratio['low']:.4f}, {ratio['high']:.4f}]"
        )
    print(
        f"decided: library / mlx_lm.benchmark = {decided['value']:.4f} [{decided['low']:.4f}, "
        f"{decided['high']:.4f}] ({decided['confidence']:.1%} {decided['method']}, n={decided['n_blocks']}), "
        f"band ±{args.tolerance:.0%}, stopped: {decided['stop_reason']}, verdict: {decided['verdict']}"
        + (
            ""
            if decided["stop_reason"] == blocks.DECIDED
            else f" (resolvable ±{decided['resolvable_pct']:.2f}%)"
        )
    )
    if result["host"]["warning"]:
        print(result["host"]["warning"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_benchmark_source()
    environment = envmod.capture()
    result = measure(args, environment)
    slug = (Path(args.model).name if args.model else args.preset).replace("/", "-")
    out = Path(args.out or REPORTS_DIR / "bench" / f"fidelity_{environment.device_slug}_{slug}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_table(result, args, environment)
    print(out)
    # Success means the whole interval lies inside the band (the verdict), not just the ratio.
    return 0 if result["decode_tps"]["decided"]["verdict"] == verdicts.HOLDS else 1


if __name__ == "__main__":
    sys.exit(main())
