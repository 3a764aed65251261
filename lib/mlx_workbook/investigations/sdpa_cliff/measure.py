"""Attention sweeps: prefill and decode SDPA over lengths, mask modes, dtypes, head dims and GQA variants.

The measuring code is the self-contained probe (probes/sdpa_probe.py), the same one versions.py runs under
other MLX versions; this module builds its cases, stores every round of trials in the run as it finishes, and
reads the stored sweeps back: cliffs, pairs of lengths, ratios between variants or versions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from mlx_workbook.core import hoststate, intervals, progress
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Run
from mlx_workbook.investigations.sdpa_cliff import cliffs
from mlx_workbook.probes import sdpa_probe as probe

# 13: decode inputs are made right after the allocator's cache is emptied (sdpa_probe.make_inputs): MLX CUDA 0.31+
# sends decode SDPA to cuDNN from 256 keys when K/V fill their buffer exactly, and keeps the vector kernel (~1.8x
# faster at 15-30 us a call) when the cache hands the buffer a slightly larger freed block (bench/decode_sdpa_path.py:
# 256 keys 1.6-1.9x of 255 with exact blocks in every fresh process, 1.0x with a larger block), so which lengths of a
# sweep were slow could depend on what the process had freed before (the cc49830 twins' versions sweep: 256 -> 257
# 0.56x in both of one run's processes, flat in two of the other's three).
# 12: the sweep's screen judges a step on its per-round paired ratios (the median round's ratio, a t interval on the
# log-ratios; cliffs.steps), not on the ratio of the two lengths' medians: each round times every length once, so what
# slows a round cancels within it. On the stored H200 twins the two runs' sweep ratios of a step lay 8.3-8.5% apart
# (robust SD, prefill) as medians and 5.9-6.9% paired (decode 7.0-7.1% -> 4.3%, versions 4.5-5.4% -> 2.3-2.5%), and the
# steps the two runs nominated overlapped more (Jaccard, prefill 0.51-0.55 -> 0.58-0.65; bench/screen_agreement.py). A
# step is read from the band that timed both its lengths in each round, so two passes of another MLX version, whose
# bands are numbered alike, no longer read a step twice (at 65acd48 run B's versions decode 256 -> 257 was scanned once
# per pass).
# 11: a sweep's call count is fixed per band of neighbouring lengths whose calls take within `band_ratio` of each other
# (sdpa_probe.bands, neighbouring bands sharing a length), enough for `target_ms` at the band's fastest length, instead
# of once at the sweep's longest: at d34abfb 71% of the H200 prefill sweep's samples were under 2 ms (min 0.38)
# (additive 513 -> 768: 12 calls of 0.075 ms, 0.9 ms a sample), the sync then biasing short lengths' ratios toward 1
# (one twin's sweep put that step at 0.98x, every process that re-measured it at 0.78x); a neighbouring pair is still
# compared at one call count.
# 10: a confirmation pass takes its steps in rounds, one alternated pair of each per round in a random order
# (sdpa_probe.confirm_steps), so a step's pairs spread over the whole pass instead of half a second: on the H200 a
# step's ratio can wander in time (decode float32 1024 -> 1025: passes of 20 back-to-back pairs 9.6% apart where
# independent pairs would be 2.2% apart; bench/input_states.py), and 20 back-to-back pairs judged one moment of it with
# an interval too narrow for the pass. 9: a fresh process adds passes of pairs while a step is unclear, as the
# notebook's own does (the probe's confirm_steps; before, it had one pass, and at 3362327 one run's two fresh processes
# left sdpa bool 1023 -> 1024 unclear at 0.790x and 0.794x against an edge of 0.80x, its pooled 60 pairs 0.789x [0.786,
# 0.793]), and another MLX version's passes in the notebook's turn run in one process, not one each; the screen
# nominates steps within `screen_margin` of the widened edge (cliffs.screened). 8: the versions sweep re-measures the
# steps around the prefill and decode sweeps' boundaries its lengths straddle (analysis.boundaries), as those sweeps do,
# instead of only the steps its screen nominated. 7: every re-measured step (not only a jump) is re-measured in fresh
# processes, and judged by the majority of its processes (cliffs.majority): one odd process, the notebook's own
# included, no longer decides it; the second fresh process measures only the steps the first two left open
# (cliffs.settled). 6: a fresh process's pass leaving a jump unclear no longer demotes it; only a contradiction does. 5:
# a step the notebook's process confirms as a jump is re-measured in `processes` - 1 fresh processes and is a cliff only
# where every process finds it. 4: the sweep's screen nominates every step whose median ratio lies beyond the widened
# envelope (not only those whose interval does), and a confirmation still unclear after its pairs gets more passes
# (`confirm_passes`, Bonferroni over the passes). 3: the steps into and out of every swept boundary are always
# re-measured in the confirmation pass (not only those the sweep nominates), Bonferroni over every re-measured step. 2:
# one call count per sweep (calibrated at its longest length), lengths in random order per round, and a confirmation
# pass (alternated pairs) before a candidate is called a cliff; 1 chose the count per length.
METHOD_VERSION = 13

MODES, VARIANTS, DTYPES = probe.MODES, probe.VARIANTS, tuple(probe.DTYPES)
GROUP = list(probe.GROUP_KEYS)  # a sweep's configuration: everything but the length
CASE_FIELDS = GROUP + ["length", "q_len", "k_len", "pairs", "flops", "calls"]


def around(boundaries: list[int], offsets: list[int]) -> list[int]:
    """Lengths near each boundary, e.g. around([128], [-12, -8, -4, -1, 0, 1, 4, 12]) -> 116 ... 140."""
    return sorted({b + o for b in boundaries for o in offsets if b + o >= 1})


def sweep_lengths(wide: list[int], boundaries: list[int], offsets: list[int]) -> list[int]:
    """The wide sweep and the fine sweeps around every boundary, merged: neighbours are compared in order."""
    return sorted(set(int(n) for n in wide) | set(around(boundaries, offsets)))


def validate(
    *, modes=(), dtypes=(), head_dims=(), lengths=(), n_q_heads: int = 1, n_kv_heads: int = 1, variants=()
) -> None:
    """One clear error for impossible sweep parameters, before anything is built."""
    for name, given, known in (
        ("mask mode", modes, MODES),
        ("dtype", dtypes, DTYPES),
        ("variant", variants, VARIANTS),
    ):
        bad = [g for g in given if g not in known]
        if bad:
            raise ValueError(f"unknown {name} {bad}; use any of {list(known)}")
    if any(int(d) < 1 for d in head_dims) or any(int(n) < 1 for n in lengths):
        raise ValueError(f"head dims and lengths must be positive, got {list(head_dims)} and {list(lengths)}")
    if n_q_heads < 1 or n_kv_heads < 1 or n_q_heads % n_kv_heads:
        raise ValueError(f"query heads ({n_q_heads}) must be a multiple of key/value heads ({n_kv_heads})")


def prefill_cases(
    lengths, *, modes, dtypes, head_dims, n_q_heads, n_kv_heads, variants=("sdpa",)
) -> list[dict]:
    return probe.cases_from_grid(
        "prefill", lengths, modes, dtypes, head_dims, n_q_heads, n_kv_heads, variants
    )


def decode_cases(lengths, *, dtypes, head_dims, n_q_heads, n_kv_heads, variants=("sdpa",)) -> list[dict]:
    return probe.cases_from_grid(
        "decode", lengths, ["none"], dtypes, head_dims, n_q_heads, n_kv_heads, variants
    )


def gqa_cases(prefill_lengths, decode_lengths, *, dtype, head_dim, n_q_heads, n_kv_heads) -> list[dict]:
    """Native grouped-query SDPA against K/V heads repeated by hand, at prefill (causal) and decode shapes."""
    if n_q_heads == n_kv_heads:
        raise ValueError("the GQA comparison needs fewer key/value heads than query heads")
    both = ("sdpa", "repeat_kv")
    return prefill_cases(
        prefill_lengths,
        modes=["causal"],
        dtypes=[dtype],
        head_dims=[head_dim],
        n_q_heads=n_q_heads,
        n_kv_heads=n_kv_heads,
        variants=both,
    ) + decode_cases(
        decode_lengths,
        dtypes=[dtype],
        head_dims=[head_dim],
        n_q_heads=n_q_heads,
        n_kv_heads=n_kv_heads,
        variants=both,
    )


@dataclass(frozen=True)
class Plan:
    """Every SDPA sweep of the notebook as case lists (built from its parameters, validated first)."""

    prefill_lengths: list[int]  # the mask-mode sweep: wide + fine around every boundary
    variant_lengths: list[int]  # the dtype x head-dim prefill sweep
    decode_lengths: list[int]
    prefill: list[dict]
    decode: list[dict]
    gqa: list[dict]
    versions: list[dict]  # the probe every MLX version runs


def plan(p: dict) -> Plan:
    """The sweeps named by the notebook's parameters `p` (n_q_heads, wide_lengths, boundaries, offsets, modes,
    variants, main_dtype, dtypes, head_dims, variant_*, decode_*, gqa_*, version_*), or one clear ValueError."""
    pre = sweep_lengths(p["wide_lengths"], p["boundaries"], p["offsets"])
    var = sweep_lengths(p["variant_wide"], p["variant_boundaries"], p["offsets"])
    dec = sweep_lengths(p["decode_lengths"], p["decode_boundaries"], p["decode_offsets"])
    version_lengths = p["version_lengths"] + p["version_causal_lengths"] + p["version_decode_lengths"]
    validate(
        modes=p["modes"] + p["variant_modes"],
        dtypes=[p["main_dtype"]] + p["dtypes"],
        head_dims=[p["main_head_dim"]] + p["head_dims"],
        variants=p["variants"],
        lengths=pre
        + var
        + dec
        + p["gqa_prefill_lengths"]
        + p["gqa_decode_lengths"]
        + version_lengths
        + p.get("prompt_lengths", []),
        n_q_heads=p["n_q_heads"],
        n_kv_heads=p["n_kv_heads"],
    )
    if p["n_q_heads"] == p["n_kv_heads"]:
        raise ValueError("n_q_heads must exceed n_kv_heads: the GQA comparison needs grouped-query heads")
    if not 0 < p["tolerance"] < 1 or p["repeats"] < 2:
        raise ValueError(
            f"tolerance must be in (0, 1) and repeats >= 2, got {p['tolerance']} and {p['repeats']}"
        )
    if p.get("confirm_pairs", 20) < 3 or p.get("confirm_passes", 1) < 1 or p.get("confirm_processes", 1) < 1:
        raise ValueError(
            f"confirm_pairs must be >= 3 (a paired t interval), confirm_passes and confirm_processes >= 1, got "
            f"{p.get('confirm_pairs')}, {p.get('confirm_passes')} and {p.get('confirm_processes')}"
        )
    heads = dict(n_q_heads=p["n_q_heads"], n_kv_heads=p["n_kv_heads"])
    main = dict(dtypes=[p["main_dtype"]], head_dims=[p["main_head_dim"]], **heads)
    return Plan(
        prefill_lengths=pre,
        variant_lengths=var,
        decode_lengths=dec,
        prefill=unique(
            prefill_cases(pre, modes=p["modes"], variants=p["variants"], **main)
            + prefill_cases(
                var, modes=p["variant_modes"], dtypes=p["dtypes"], head_dims=p["head_dims"], **heads
            )
        ),
        decode=decode_cases(dec, dtypes=p["dtypes"], head_dims=p["head_dims"], **heads),
        gqa=gqa_cases(
            p["gqa_prefill_lengths"],
            p["gqa_decode_lengths"],
            dtype=p["main_dtype"],
            head_dim=p["main_head_dim"],
            **heads,
        ),
        versions=unique(
            prefill_cases(p["version_lengths"], modes=p["modes"], **main)
            + prefill_cases(p["version_causal_lengths"], modes=["causal"], **main)
            + decode_cases(p["version_decode_lengths"], **main)
        ),
    )


def unique(cases: list[dict]) -> list[dict]:
    """Cases without duplicates (two grids may share some), in their first order."""
    seen, out = set(), []
    for c in cases:
        key = tuple(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


EXTRA_FIELDS = [
    "band",
    "position",
    "sample_ms",
    "pair",
    "before_length",
    "after_length",
    "confirm_pass",
]  # where the probe gives them


def to_rows(probe_rows: list[dict], **extra) -> list[dict]:
    """Probe rows as measurement rows: metric "ms" (per call), the case's fields, the trial number."""
    return [
        dict(
            metric="ms",
            value=r["ms"],
            unit="ms",
            trial=r["trial"],
            **{k: r[k] for k in CASE_FIELDS},
            **{k: r[k] for k in EXTRA_FIELDS if k in r},
            **extra,
        )
        for r in probe_rows
    ]


def probe_config(
    cases,
    *,
    repeats: int,
    warmup: int,
    target_ms: float,
    min_calls: int,
    max_calls: int,
    band_ratio: float = 2.0,
) -> dict:
    """The SDPA probe's input (sdpa_probe.run), the same in this process and under another MLX version."""
    return {
        "cases": unique(cases),
        "repeats": repeats,
        "warmup": warmup,
        "target_ms": target_ms,
        "min_calls": min_calls,
        "max_calls": max_calls,
        "band_ratio": band_ratio,
    }


def sweep(
    run: Run,
    experiment: str,
    cases: list[dict],
    *,
    repeats: int,
    warmup: int = 1,
    target_ms: float = 10,
    min_calls: int = 1,
    max_calls: int = 1000,
    band_ratio: float = 2.0,
) -> list[dict]:
    """Time every case (rounds per configuration, lengths in random order, one call count per band of lengths:
    sdpa_probe.bands), storing each round in the run as it finishes.

    Returns the configurations that failed (with the error) so the notebook can show them; the rest still ran."""
    config = probe_config(
        cases,
        repeats=repeats,
        warmup=warmup,
        target_ms=target_ms,
        min_calls=min_calls,
        max_calls=max_calls,
        band_ratio=band_ratio,
    )
    total = len(probe.groups(config["cases"])) * repeats
    finished = iter(range(1, total + 1))
    started = time.perf_counter()

    def on_round(rows):
        store_round(run, experiment, rows)
        progress.step(f"{experiment}: rounds done", next(finished, total), total, started)

    out = probe.run(config, on_round=on_round)
    return out["errors"]


HOST = "host"  # experiment of the host-speed probes taken after every round (core.hoststate)


def store_round(run: Run, experiment: str, rows: list[dict], **extra) -> None:
    """One round of probe rows into the run, then a host-speed probe (experiment "host", the sweep named): the
    host's speed over the run, so a slow stretch shows beside the timings it touched."""
    run.record_many(experiment, to_rows(rows, **extra))
    trial = rows[0]["trial"] if rows else 0
    run.record(HOST, hoststate.PROBE_METRIC, hoststate.probe_ms(), "ms", trial=trial, sweep=experiment)


CONFIRM = "_confirm"  # suffix of a sweep's confirmation experiment ("prefill" -> "prefill_confirm")


def to_confirm(candidates: pd.DataFrame, max_candidates: int) -> pd.DataFrame:
    """The candidates a confirmation pass re-measures: every boundary step (column `origin`), and of the nominated
    ones the `max_candidates` farthest from the work envelope."""
    if candidates.empty:
        return candidates
    boundary = (
        candidates.get("origin", pd.Series(cliffs.NOMINATED, index=candidates.index)) == cliffs.BOUNDARY
    )
    nominated = candidates[~boundary]
    away = nominated["excess"].astype(float).apply(lambda x: max(x, 1 / x))
    return pd.concat(
        [candidates[boundary], nominated.loc[away.sort_values(ascending=False).index[:max_candidates]]]
    )


def candidate_cases(candidates: pd.DataFrame) -> list[list[dict]]:
    """[before case, after case] per candidate step of a probe sweep (the probe's `confirm` config)."""
    out = []
    for _, c in candidates.iterrows():
        base = {k: (int(c[k]) if k in ("head_dim", "n_q_heads", "n_kv_heads") else str(c[k])) for k in GROUP}
        out.append([{**base, "length": int(c["before_length"])}, {**base, "length": int(c["length"])}])
    return out


def confirm(
    run: Run,
    experiment: str,
    candidates: pd.DataFrame,
    *,
    pairs: int = 20,
    passes: int = 1,
    processes: int = 1,
    tolerance: float = 0.1,
    max_candidates: int = 40,
    warmup: int = 1,
    target_ms: float = 10,
    min_calls: int = 1,
    max_calls: int = 1000,
    wheels_dir: str | None = None,
    claims: pd.DataFrame | None = None,
) -> list[dict]:
    """Re-measure candidate cliffs of a probe sweep (scan table): each step's two lengths alternated back to back
    for `pairs` pairs, stored as experiment "<experiment>_confirm"; candidates of another MLX version (column
    probe_mlx) run under that version. `claims` (same columns) are steps a published claim is about: always
    re-measured, whatever the sweep said. In every process a step whose paired interval still straddles the
    envelope's edge after a pass (as `judge` reads it, `passes` looks) gets another `pairs` pairs there, up to
    `passes` passes (sdpa_probe.confirm_steps). Then every re-measured step, whatever this process found, is
    re-measured the same way in fresh processes (rows tagged `process` 1, 2, ...; the notebook's own 0), one after
    another, up to `processes` in all, until more processes could no longer change its majority verdict
    (cliffs.settled: of 3, a second process that agrees settles a step): a step's ratio may depend on the process
    (cliffs.py). Returns the configurations that failed."""
    chosen = to_confirm(candidates, max_candidates)
    if claims is not None and len(claims):
        keys = [c for c in GROUP + ["probe_mlx", "before_length", "length"] if c in claims.columns]
        chosen = pd.concat([claims, chosen], ignore_index=True).drop_duplicates(subset=keys)
    timing = dict(pairs=pairs, warmup=warmup, target_ms=target_ms, min_calls=min_calls, max_calls=max_calls)
    stop = stopping(pairs, passes, family=len(chosen))
    errors: list[dict] = []
    for process in range(processes):
        if process:
            judged = judge(
                chosen, rows(run.measurements, experiment + CONFIRM), tolerance=tolerance, looks=passes
            )
            chosen = chosen[cliffs.open_steps(judged, processes)]
        if chosen.empty:
            break
        errors += _confirm_pass(
            run,
            experiment,
            chosen,
            dict(timing, **stop),
            tolerance=tolerance,
            wheels_dir=wheels_dir,
            process=process,
        )
    return errors


def stopping(pairs: int, passes: int, *, family: int) -> dict:
    """The probe's rule for another pass (sdpa_probe.confirm_steps): `passes`, and the t critical value after
    each look at the confidence `judge` uses (cliffs.family_confidence over the `family` of re-measured steps)."""
    alpha = 1 - cliffs.family_confidence(family, passes)
    return {
        "passes": passes,
        "t": [intervals.t_quantile(1 - alpha / 2, pairs * (look + 1) - 1) for look in range(passes)],
    }


def edges(chosen: pd.DataFrame, tolerance: float) -> list[list[float]]:
    """Each step's envelope (cliffs.envelope) from the attention work of its two lengths, as the probe reads it."""
    out = []
    for before, after in candidate_cases(chosen):
        work_ratio = probe.case_row(after)["flops"] / probe.case_row(before)["flops"]
        out.append(list(cliffs.envelope(work_ratio, tolerance)))
    return out


def configuration(table: pd.DataFrame) -> list[str]:
    """The columns of `table` that name a probe sweep's configuration (probe_mlx where another version ran)."""
    return [c for c in GROUP + ["probe_mlx"] if c in table.columns]


def judge(
    candidates: pd.DataFrame, confirmations: pd.DataFrame, *, tolerance: float, looks: int
) -> pd.DataFrame:
    """A probe sweep's candidates with their confirmation pass's judgement against the attention work
    (cliffs.confirm): what `confirm` decides another pass on, and what analysis.outcomes reads the run with."""
    return cliffs.confirm(
        candidates, confirmations, configuration(candidates), work="flops", tolerance=tolerance, looks=looks
    )


def _confirm_pass(
    run: Run,
    experiment: str,
    chosen: pd.DataFrame,
    config: dict,
    *,
    tolerance: float,
    wheels_dir: str | None,
    process: int,
) -> list[dict]:
    """One process's passes over the chosen steps (sdpa_probe.confirm_steps with `config`'s timing and stopping
    rule, each step's envelope widened by `tolerance`), rows tagged `process`: 0 in this process (another MLX
    version in its own), any other in a fresh process."""
    from mlx_workbook.probes import versions

    here = versions.current_version()
    column = chosen["probe_mlx"] if "probe_mlx" in chosen.columns else pd.Series(here, index=chosen.index)
    errors = []
    for version, part in chosen.groupby(column.fillna(here)):
        part_config = {**config, "confirm": candidate_cases(part), "edges": edges(part, tolerance)}
        if version == here and "probe_mlx" not in chosen.columns and process == 0:
            out = probe.run(
                part_config,
                on_round=lambda rows: store_round(run, experiment + CONFIRM, rows, **{cliffs.PROCESS: 0}),
            )
            errors += out["errors"]
            continue
        result = versions.run_probe(version, part_config, wheels_dir=wheels_dir or None, fresh=process > 0)
        if result.ok:
            tagged = "probe_mlx" in chosen.columns  # the versions sweep: rows name the version that ran
            tags = dict(probe_mlx=result.data["mlx"], probe_backend=result.data["backend"]) if tagged else {}
            run.record_many(
                experiment + CONFIRM, to_rows(result.data["rows"], **tags, **{cliffs.PROCESS: process})
            )
            errors += result.data["errors"]
        else:
            errors.append({"probe_mlx": version, "error": result.message})
    return errors


def record_version(run: Run, result, experiment: str = "versions") -> None:
    """One version's probe results (versions.VersionResult) into the run, tagged with that version."""
    if result.ok and result.data["rows"]:
        run.record_many(
            experiment,
            to_rows(result.data["rows"], probe_mlx=result.data["mlx"], probe_backend=result.data["backend"]),
        )


def compare_versions(
    run: Run,
    mlx_versions: list[str],
    cases: list[dict],
    *,
    passes: int,
    repeats: int,
    warmup: int = 1,
    target_ms: float = 10,
    min_calls: int = 1,
    max_calls: int = 1000,
    band_ratio: float = 2.0,
    wheels_dir: str | None = None,
) -> list:
    """The probe's `cases` under every MLX version (versions.compare), each pass stored as it finishes as
    experiment "versions" tagged with the version; returns the VersionResults (messages of those that failed)."""
    from mlx_workbook.probes import versions

    config = probe_config(
        cases,
        repeats=repeats,
        warmup=warmup,
        target_ms=target_ms,
        min_calls=min_calls,
        max_calls=max_calls,
        band_ratio=band_ratio,
    )
    return versions.compare(
        mlx_versions,
        config,
        passes=passes,
        wheels_dir=wheels_dir or None,
        on_result=lambda result: record_version(run, result),
    )


# --- reading the stored sweeps ------------------------------------------------------------------------------


def per_pair(df: pd.DataFrame) -> pd.DataFrame:
    """Time per unit of attention work: nanoseconds per query-key pair (of the full q_len x k_len score matrix,
    whatever the mask, so mask modes compare as plain time) and query head."""
    return df.assign(value=df["value"] * 1e6 / (df["q_len"] * df["k_len"] * df["n_q_heads"]), unit="ns/pair")


def scan(
    df: pd.DataFrame,
    *,
    tolerance: float,
    by: list[str] | None = None,
    family_wise: bool = True,
    jumps_only: bool = True,
    margin: float = 0.0,
) -> pd.DataFrame:
    """Every cliff of every configuration in `df` (work = the attention flops of each length); with
    family_wise=False the liberal screen for candidates that a confirmation pass settles (`margin`:
    cliffs.screened)."""
    by = by or configuration(df)  # cliffs.steps reads a pair from the band that timed both (method 11)
    return cliffs.scan(
        df,
        by,
        work="flops",
        tolerance=tolerance,
        family_wise=family_wise,
        jumps_only=jumps_only,
        margin=margin,
    )


def boundary_steps(df: pd.DataFrame, boundaries: list[int], *, tolerance: float) -> pd.DataFrame:
    """The steps b-1 -> b and b -> b+1 around every boundary b, in every configuration of `df` that swept both
    lengths (as scan rows, whatever the sweep's verdict): re-measured in every run, so which of them are cliffs
    does not hang on which ones a noisy sweep happened to nominate."""
    every = scan(df, tolerance=tolerance, family_wise=False, jumps_only=False)
    if every.empty:
        return every
    wanted = {(b - 1, b) for b in boundaries} | {(b, b + 1) for b in boundaries}
    at = [(int(a), int(b)) in wanted for a, b in zip(every.before_length, every.length)]
    return every[at].reset_index(drop=True)


def pair(
    df: pd.DataFrame,
    before: int,
    after: int,
    *,
    tolerance: float,
    confirmations: pd.DataFrame | None = None,
    **filters,
) -> cliffs.Step | None:
    """The step between two lengths of one configuration (filters pick it, e.g. mode="causal"): from its
    confirmation pass (alternated pairs, paired t interval) where `confirmations` hold one, else from the sweep."""
    if confirmations is not None and len(confirmations):
        step = cliffs.paired_step(
            rows(confirmations, **filters), before, after, work="flops", tolerance=tolerance
        )
        if step is not None:
            return step
    sub = rows(df, **filters)
    if sub.empty:
        return None
    if sub.groupby([c for c in GROUP if c in sub.columns]).ngroups > 1:
        raise ValueError(f"filters {filters} leave more than one configuration; add filters")
    return cliffs.pair(sub, before, after, work="flops", tolerance=tolerance)


def at_lengths(df: pd.DataFrame, lengths: list[int], by: list[str]) -> pd.DataFrame:
    """Median ms per configuration at some lengths, one column per length (e.g. the 127 / 128 table)."""
    sub = df[df["length"].isin(lengths)]
    table = sub.groupby(by + ["length"])["value"].median().unstack("length")
    return table.rename(columns=lambda n: f"{n:g} tokens (ms)").reset_index()
