"""Measurement fidelity: the library's decode tokens/s against `mlx_lm.benchmark`'s own figure, same model, same
settings, side by side in one run.

    PYTHONPATH=lib python bench/fidelity.py --preset tiny                       # CPU, seconds
    PYTHONPATH=lib python bench/fidelity.py --preset qwen3-0.6b --gen-tokens 256 # GPU (MLX CUDA or Metal)
    PYTHONPATH=lib python bench/fidelity.py --model path/to/checkpoint           # a real checkpoint folder

A preset is saved as a checkpoint (safetensors, config.json and an offline byte-level BPE-style tokenizer, so
mlx-lm streams text with its O(1)-per-token detokenizer as it does for real Qwen/Llama tokenizers), and both
sides load those files with `mlx_lm.load`. The library side is `decode.measure_generation` with the reference
loop (mlx-lm's `generate_step`) in this process; the other side is `python -m mlx_lm.benchmark -p P -g G -n N`
as a subprocess, its per-trial `generation_tps` parsed from its output. Both use mlx-lm's definition of decode
tokens/s and the same prompt (mlx_lm.benchmark's: seed 0, uniform random ids). Rounds interleave the two
sides, alternating which goes first, so drift (thermals, other load) hits both alike. Each side warms up once
per round. The result: medians with 95% bootstrap intervals, the ratio library / mlx_lm.benchmark with its
interval, and whether they agree within the tolerance (2%). Writes a JSON file and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlx.core as mx

from mlx_workbook import REPORTS_DIR, models
from mlx_workbook.core import env as envmod
from mlx_workbook.core import measure, verdicts
from mlx_workbook.probes import decode

TRIAL_LINE = re.compile(r"Trial (\d+):\s+prompt_tps=([\d.]+), generation_tps=([\d.]+), peak_memory=([\d.]+)")


def prepare_checkpoint(args, folder: Path) -> Path:
    """Save the preset (random weights) with an offline tokenizer; a --model folder is used as it is."""
    if args.model:
        return Path(args.model)
    dtype = (
        args.dtype
        if args.dtype != "auto"
        else ("float32" if envmod.capture().backend == "cpu" else "bfloat16")
    )
    loaded = models.build_preset(args.preset, dtype=dtype, bits=args.bits)
    models.save_checkpoint(loaded, folder, tokenizer=models.offline_tokenizer(loaded.vocab_size))
    return folder


def benchmark_prompt(vocab_size: int, n_tokens: int) -> mx.array:
    """The prompt mlx_lm.benchmark draws: seed 0, then uniform ids of shape (1, n) (its batch of one)."""
    mx.random.seed(0)
    return mx.array(mx.random.randint(0, vocab_size, (1, n_tokens)).tolist()[0], dtype=mx.uint32)


def run_benchmark(folder: Path, args) -> list[dict]:
    """One `python -m mlx_lm.benchmark` process (its own warm-up, then N trials): per-trial figures."""
    cmd = [
        sys.executable,
        "-m",
        "mlx_lm.benchmark",
        "--model",
        str(folder),
        "-p",
        str(args.prompt_tokens),
        "-g",
        str(args.gen_tokens),
        "-n",
        str(args.trials),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    trials = [
        {"prompt_tps": float(m[2]), "decode_tps": float(m[3]), "peak_memory_gb": float(m[4])}
        for m in TRIAL_LINE.finditer(done.stdout)
    ]
    if done.returncode != 0 or len(trials) != args.trials:
        raise RuntimeError(
            f"mlx_lm.benchmark failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return trials


def run_library(model, prompt: mx.array, args) -> list[dict]:
    """The library's measurement: one warm-up generation, then N trials of measure_generation (reference loop)."""
    decode.measure_generation(model, prompt, args.gen_tokens)
    out = []
    for _ in range(args.trials):
        gen = decode.measure_generation(model, prompt, args.gen_tokens)
        out.append(
            {
                "prompt_tps": gen.prompt_tps,
                "decode_tps": gen.decode_tps,
                "peak_memory_gb": gen.peak_memory_bytes / 1e9,
            }
        )
    return out


def compare(library: list[dict], benchmark: list[dict], metric: str, tolerance: float) -> dict:
    lib = measure.summarize([t[metric] for t in library])
    ref = measure.summarize([t[metric] for t in benchmark])
    ratio = measure.ratio_interval([t[metric] for t in library], [t[metric] for t in benchmark])
    gap = verdicts.Interval.change_pct(ratio)
    return {
        "library": lib.as_dict(),
        "mlx_lm_benchmark": ref.as_dict(),
        "ratio": {"median": ratio.median, "low": ratio.low, "high": ratio.high},
        "within_tolerance": abs(ratio.median - 1) <= tolerance,
        "verdict": verdicts.no_effect(gap, 100 * tolerance),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="tiny", help="preset to save as a checkpoint (ignored with --model)"
    )
    parser.add_argument("--model", default="", help="an existing checkpoint folder instead of a preset")
    parser.add_argument(
        "--dtype", default="auto", help="preset dtype; auto: float32 on the CPU, else bfloat16"
    )
    parser.add_argument("--bits", type=int, default=None, help="quantize the preset to this many bits")
    parser.add_argument("--prompt-tokens", "-p", type=int, default=64)
    parser.add_argument("--gen-tokens", "-g", type=int, default=128)
    parser.add_argument("--trials", "-n", type=int, default=5, help="timed trials per side per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (sides alternate going first)"
    )
    parser.add_argument("--tolerance", type=float, default=0.02, help="agreement asked for, as a fraction")
    parser.add_argument(
        "--out", default="", help="JSON path (default reports/bench/fidelity_<device>_<model>.json)"
    )
    args = parser.parse_args(argv)
    if args.gen_tokens < 2 or args.prompt_tokens < 1 or args.trials < 1 or args.rounds < 1:
        parser.error("need --gen-tokens >= 2, --prompt-tokens >= 1, --trials >= 1, --rounds >= 1")
    if not args.model:
        models.preset_config(args.preset)  # an unknown preset fails here, before any work
    environment = envmod.capture()
    tic = time.time()
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        folder = prepare_checkpoint(args, Path(tmp))
        loaded = models.load_checkpoint(str(folder))
        prompt = benchmark_prompt(loaded.vocab_size, args.prompt_tokens)
        library, benchmark, order = [], [], []
        for r in range(args.rounds):
            sides = ["mlx_lm.benchmark", "library"] if r % 2 == 0 else ["library", "mlx_lm.benchmark"]
            for side in sides:
                if side == "library":
                    library += run_library(loaded.model, prompt, args)
                else:
                    benchmark += run_benchmark(folder, args)
            order.append(sides)
    label = args.model or f"{args.preset} ({loaded.dtype}{f', {args.bits}-bit' if args.bits else ''})"
    result = {
        "model": label,
        "describe": loaded.describe(),
        "environment": environment.as_dict(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "order": order,
        "seconds": round(time.time() - tic, 1),
        "decode_tps": compare(library, benchmark, "decode_tps", args.tolerance),
        "prompt_tps": compare(library, benchmark, "prompt_tps", args.tolerance),
        "trials": {"library": library, "mlx_lm_benchmark": benchmark},
    }
    slug = (Path(args.model).name if args.model else args.preset).replace("/", "-")
    out = Path(args.out or REPORTS_DIR / "bench" / f"fidelity_{environment.device_slug}_{slug}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"{label} on {environment.device} ({environment.backend}), mlx {environment.mlx}, mlx-lm "
        f"{environment.mlx_lm}; prompt {args.prompt_tokens}, generate {args.gen_tokens}, "
        f"{args.rounds} rounds x {args.trials} trials per side, {result['seconds']} s"
    )
    print(
        f"{'metric':<11} {'library [95%]':>28} {'mlx_lm.benchmark [95%]':>28} {'library / benchmark':>26}  verdict"
    )
    for metric in ("decode_tps", "prompt_tps"):
        c = result[metric]
        lib, ref, ratio = c["library"], c["mlx_lm_benchmark"], c["ratio"]
        print(
            f"{metric:<11} {lib['median']:>10.1f} [{lib['low']:.1f}, {lib['high']:.1f}]".ljust(40)
            + f"{ref['median']:>10.1f} [{ref['low']:.1f}, {ref['high']:.1f}]".ljust(29)
            + f"{ratio['median']:>8.4f} [{ratio['low']:.4f}, {ratio['high']:.4f}]  "
            + f"{'within' if c['within_tolerance'] else 'outside'} {args.tolerance:.0%} ({c['verdict']})"
        )
    print(out)
    # Success means the whole interval agrees (the verdict), not just the median.
    return 0 if result["decode_tps"]["verdict"] == verdicts.HOLDS else 1


if __name__ == "__main__":
    sys.exit(main())
