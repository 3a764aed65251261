"""Cold starts in fresh processes: a model built and run in a new interpreter, its first generation against the
warm generations right after it, one cold/warm ratio per process.

A notebook's process has one cold run per preset, and it comes after the presets before it compiled the kernels
they share, so one ratio judged by a prediction interval from warm runs could not decide the claim on a host
whose speed wanders (the H200 twins at c178fba: 0.87x [0.54, 1.40] and 0.90x [0.52, 1.58]). Here each process is a
paired block: its cold run and its warm runs are seconds apart, so a drift of the host's speed cancels in its
log-ratio; across processes the ratio gets a t interval (core.blocks' looks and error split), and processes are
added until it decides against the published band, `max_processes` are run or the time budget is spent. What a
fresh process does not pay again is what the machine keeps between processes (files, and on MLX CUDA the
compiled kernels it caches on disk), as for a user's second session.

    python -m mlx_workbook.investigations.bandwidth.coldstart config.json    # one process: writes its rows
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlx_workbook import models
from mlx_workbook.core import blocks, intervals, published
from mlx_workbook.models import roofline as rl
from mlx_workbook.probes import child

EXPERIMENT = "cold_process"
CLAIM = "rust_cold_start_qwen3_moe"
MODEL = "qwen3-30b-a3b 4-bit"  # the claim's model (Qwen3-30B-A3B-4bit), at its shape
# Cold/warm decode ratio, in ratio units around the published one: what a first run pays depends on what the
# process or the machine already holds (files, compiled kernels).
TOLERANCE = 0.10
PHASES = ("cold", "warm")
TIMEOUT_S = 600  # one process; the claim's model builds and runs in ~10 s on an H200


def published_ratio() -> tuple[float, float, float, list[float]]:
    """The write-up's Qwen3-30B-A3B runs: its cold run over each warm run -> (low, high, cold tok/s, warm tok/s)."""
    runs = published.table("002_rust_vs_mlx_lm", "rust_runs")
    q = runs[runs.model == "Qwen3-30B-A3B-4bit"]
    cold = float(q[q.note == "cold start"].tok_s.iloc[0])
    warm = [float(x) for x in q[q.note.isna()].tok_s]
    return cold / max(warm), cold / min(warm), cold, warm


def band() -> blocks.Band:
    """The published cold/warm ratio widened by TOLERANCE, as a % change (what core.blocks judges)."""
    lo, hi, _, _ = published_ratio()
    return blocks.Band.widened(100 * (lo - 1), 100 * (hi - 1), 100 * TOLERANCE, no_effect_at=0.0)


def pick(plan: list[tuple], dtype: str, skipped: list[dict] = ()) -> tuple[str, int] | None:
    """The configuration to cold-start (preset, bits): the claim's model where the sweep ran it, else the first MoE
    preset's first width that ran, else the first configuration that ran (`plan`: measure.sweep_plan's; `skipped`:
    what measure.size_sweep could not run)."""
    left_out = {(s["model"], s["bits"]) for s in skipped}
    configs = [(name, bits) for name, widths in plan for bits in widths if (name, bits) not in left_out]
    named = [c for c in configs if label(*c, dtype) == MODEL]
    moe = [c for c in configs if models.is_moe(models.preset_config(c[0]))]
    return (named or moe or configs or [None])[0]


def label(preset: str, bits: int, dtype: str) -> str:
    """A configuration's label as the size sweep writes it."""
    return f"{preset} {rl.quant_label(bits, rl.base_dtype(models.preset_config(preset), dtype))}"


# --- one process ---------------------------------------------------------------------------------------------


def run_one(config: dict) -> list[dict]:
    """In this (fresh) process: build the preset, one cold generation, then `warm_runs` warm ones; their rows."""
    from mlx_workbook.investigations.bandwidth import measure
    from mlx_workbook.probes import decode

    # from the spawn to here: the interpreter's start and the imports (MLX, mlx-lm, this library)
    started = time.time() - config["spawned_at"]
    tic = time.perf_counter()
    loaded = measure.build(config["preset"], config["bits"], config["dtype"], config["group_size"])
    built = time.perf_counter() - tic
    prompt = models.random_prompt(loaded, config["prompt_tokens"], seed=1)  # as the size sweep's trials
    out = [
        dict(phase="setup", metric="start_s", value=started, unit="s", trial=0),
        dict(phase="setup", metric="build_s", value=built, unit="s", trial=0),
    ]
    for trial in range(1 + config["warm_runs"]):
        start = time.perf_counter()
        gen = decode.measure_generation(loaded.model, prompt, config["gen_tokens"])
        phase = PHASES[trial > 0]
        metrics = {**gen.metrics(), "wall_s": (time.perf_counter() - start, "s")}
        out += [
            dict(phase=phase, metric=m, value=v, unit=u, trial=trial, generated_tokens=len(gen.tokens))
            for m, (v, u) in metrics.items()
        ]
    return [dict(r, label=loaded.label, prompt_tokens=int(prompt.size)) for r in out]


def spawn(config: dict, timeout: float = TIMEOUT_S) -> list[dict]:
    """`run_one` in a new process of this interpreter (this library on its path); its rows, or one clear error."""
    try:
        return child.run_module(__name__, dict(config, spawned_at=time.time()), timeout=timeout)
    except child.ChildTimeout as exc:
        raise RuntimeError(f"a cold-start process {exc}") from exc
    except child.ChildFailed as exc:
        raise RuntimeError(f"a cold-start process failed: {exc}") from exc


# --- the processes, added until decided -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many fresh processes, and for how long: at least `min_processes` (>= 3, a t interval's first look),
    at most `max_processes`, and no new one once `budget_s` is spent."""

    min_processes: int
    max_processes: int
    budget_s: float
    warm_runs: int

    def validate(self) -> None:
        if self.max_processes == 0:
            return  # no fresh processes: the claim is judged on the notebook's own cold run
        if not 3 <= self.min_processes <= self.max_processes or self.budget_s <= 0 or self.warm_runs < 1:
            raise ValueError(
                "cold starts in fresh processes need 3 <= cold_min_processes <= cold_max_processes (0 for none), "
                f"cold_budget_s > 0 and cold_process_warm_runs >= 1; got {self.min_processes}, "
                f"{self.max_processes}, {self.budget_s} and {self.warm_runs}"
            )


def measure_processes(run, preset: str, bits: int, plan: Plan, *, spawn_one=spawn, **config) -> str:
    """Fresh processes, one after another, each stored as it finishes (column `process`, 1 on); stops once the
    ratio decides the band (at core.blocks' looks), at `max_processes` or when the budget is spent. Returns why
    it stopped, also stored in a "stop" row with the plan's counts, so that the read-back replays the same looks."""
    schedule, judged_against = blocks.looks(plan.min_processes, plan.max_processes), band()
    started, ratios, reason = time.perf_counter(), [], blocks.MAX_BLOCKS
    body = dict(config, preset=preset, bits=bits, warm_runs=plan.warm_runs)
    for process in range(1, plan.max_processes + 1):
        if process > plan.min_processes and time.perf_counter() - started >= plan.budget_s:
            reason = blocks.BUDGET
            break
        try:
            rows = spawn_one(body)
        except RuntimeError as exc:  # out of memory, a broken install: stop, say why, keep what was measured
            reason = f"failed: {exc}"
            break
        run.record_many(EXPERIMENT, [dict(r, process=process, bits=bits) for r in rows])
        ratios.append(log_ratio(pd.DataFrame(rows)))
        if process not in schedule[:-1]:  # decisions are looked at only at the interim looks
            continue
        e = change(ratios, schedule, decided=True)
        if judged_against.decides(e.low, e.high):
            reason = blocks.DECIDED
            break
    run.record(
        EXPERIMENT,
        "stop",
        len(ratios),
        "processes",
        stop_reason=reason,
        min_processes=plan.min_processes,
        max_processes=plan.max_processes,
    )
    return reason


# --- reading back ----------------------------------------------------------------------------------------------


def change(log_ratios, schedule: list[int], decided: bool) -> intervals.Estimate:
    """The % change over the processes at the level of the look it is judged at: an interim look's (they share a
    fifth of the error rate) where it decided, else the final look's (core.blocks' split)."""
    level = blocks.interim_confidence(len(schedule) - 1) if decided else blocks.final_confidence()
    return blocks.change_pct(np.asarray(log_ratios), level)


def log_ratio(process_rows: pd.DataFrame) -> float:
    """One process's log(cold decode tok/s) - mean log(warm decode tok/s)."""
    tps = process_rows[process_rows.metric == "decode_tps"]
    cold, warm = tps[tps.phase == "cold"].value, tps[tps.phase == "warm"].value
    return float(math.log(cold.iloc[0]) - np.log(warm).mean())


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Per fresh process: its start (interpreter and imports) and build time, the cold run's TTFT, decode tok/s
    and wall time beside its warm runs' (geometric mean tok/s, median TTFT and wall), and cold/warm decode tok/s."""
    rows = df[(df.experiment == EXPERIMENT) & (df.metric != "stop")]
    out = []
    for process, g in rows.groupby("process"):
        by = g.groupby(["phase", "metric"]).value
        first, median = by.first(), by.median()
        warm_tps = g[(g.phase == "warm") & (g.metric == "decode_tps")].value
        out.append(
            dict(
                process=int(process),
                label=g.label.iloc[0],
                start_s=first["setup", "start_s"],
                build_s=first["setup", "build_s"],
                cold_ttft_ms=first["cold", "ttft_ms"],
                warm_ttft_ms=median["warm", "ttft_ms"],
                cold_decode_tps=first["cold", "decode_tps"],
                warm_decode_tps=float(np.exp(np.log(warm_tps).mean())),
                cold_wall_s=first["cold", "wall_s"],
                warm_wall_s=median["warm", "wall_s"],
                ratio=math.exp(log_ratio(g)),
            )
        )
    return pd.DataFrame(out)


@dataclass(frozen=True)
class Result:
    """The ratio over the fresh processes (t interval on their log-ratios, at the look it stopped on), why it
    stopped, and the per-process table."""

    estimate: intervals.Estimate  # cold / warm decode tok/s, as a ratio
    stop_reason: str
    processes: pd.DataFrame

    @property
    def label(self) -> str:
        return str(self.processes.label.iloc[0])


def result(df: pd.DataFrame) -> Result | None:
    """Replays measure_processes' rule on the stored rows; None where no fresh process ran (or fewer than 2)."""
    stop = df[(df.experiment == EXPERIMENT) & (df.metric == "stop")] if "experiment" in df else df.iloc[:0]
    per_process = table(df) if len(stop) else pd.DataFrame()
    if len(per_process) < 2:
        return None
    s = stop.iloc[0]
    schedule = blocks.looks(int(s.min_processes), int(s.max_processes))
    e = change(np.log(per_process.ratio.to_numpy()), schedule, decided=s.stop_reason == blocks.DECIDED)
    ratio = intervals.Estimate(
        1 + e.value / 100, 1 + e.low / 100, 1 + e.high / 100, e.n, "t on per-process log-ratios", e.confidence
    )
    return Result(ratio, str(s.stop_reason), per_process)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the rows alone
        rows = run_one(config)
    json.dump(rows, sys.stdout)
