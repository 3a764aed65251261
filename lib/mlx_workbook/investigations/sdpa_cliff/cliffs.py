"""Cliff detection: where does time jump between neighbouring lengths by more than the work explains?

For a sweep sorted by length, each pair of neighbours (a < b) is judged by the ratio of their median times,
t_b / t_a, with a bootstrap interval. If the time is a fixed overhead plus a part proportional to the work
(t = c + k * work, c and k >= 0), that ratio must lie between 1 (all overhead) and w_b / w_a (all work). The
envelope, widened by a tolerance, is therefore [1 / (1 + tol), (w_b / w_a) * (1 + tol)]. A jump is a pair whose
whole ratio interval lies outside it:
  "up":   b costs more than the added work explains (a slower regime starts at b);
  "down": b is faster than a although it does more work (the lengths up to a were in a slow regime).
The excess of a jump is its ratio over the envelope's nearest edge (without tolerance): the slowdown the work
does not explain. Without a work column every length is expected to cost the same (the envelope is [1, 1]).

A sweep tests many pairs at once, so its intervals are family-wise (Bonferroni): with 20 pairs, each interval
is a 99.75% one, and a sweep without cliffs shows none at the 95% level as a whole.

The sweep only nominates candidates: with a few trials per length its intervals are close to ranges, so its
screen nominates every step whose median ratio lies outside the widened envelope, whatever its interval (one
slow trial of five left a 2.3x step "unclear" in one of two H200 runs and kept it off that run's list). Each
candidate is re-measured in a confirmation pass (its two lengths alternated back to back, A B, B A, ...) and
judged by `confirm` on the paired per-pair log-ratios with a t interval (core.intervals; Bonferroni over the
candidates and over the passes looked at). A step still unclear after a pass gets another pass of pairs, up to
`passes` (measure.confirm), so a step near the envelope's edge is settled by more pairs rather than by which
side of the edge 20 pairs happened to fall on. A pass takes its candidates in rounds, one pair of each per round
(method 10), so a candidate's pairs spread over the pass: a ratio that wanders in time is judged over the pass, not at
one moment of it with an interval too narrow for the pass. Only a candidate whose confirmation interval lies outside the
envelope in the same direction is a cliff; the others are transients (a burst of load, a call-count artifact
of an older method).

A step's ratio can also depend on the process that measures it (on the H200, 512 -> 513 tokens of the additive mask
was 1.61x in one process and 1.07x in another at the same commit, both confirmed by 20 pairs; at ea85dcf one run's
process found four boundary steps flat that ten fresh processes all found jumps). So every re-measured step can be
re-measured in fresh processes too (column `process`, 0 the notebook's own, measure.confirm's `processes`), and its
verdict is the one most of its processes found (`majority`): a cliff where more than half found the same jump, no
cliff where more than half found none, and otherwise "varies" (some found a jump, others none or the opposite one:
process-dependent, no cliff) or "unclear". One odd process, the notebook's own included, no longer decides a step.

Which steps a noisy sweep nominates varies from run to run, so the steps around the boundaries a sweep straddles
(b-1 -> b and b -> b+1) are re-measured whatever the sweep said (origin "boundary", the others "nominated"): a
boundary step is judged on its confirmation alone, a cliff when that is a jump either way, and otherwise simply
not a cliff (nothing was suspected of it, so it is no transient either).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from mlx_workbook.core import intervals, measure

UP, DOWN, NONE, UNCLEAR = "up", "down", "none", "unclear"
VARIES = "varies"  # a jump in some processes, none (or the opposite jump) in others, no majority: no cliff
# column of confirmation rows: which process measured them (0 or missing: the notebook's own)
PROCESS = "process"
ROUND = "trial"  # column of sweep rows: the round that timed every length of the sweep once
BAND = "band"  # column of sweep rows: the band of lengths timed at one call count (sdpa_probe.bands)


def is_jump(verdict: str) -> bool:
    return verdict in (UP, DOWN)


NOMINATED, BOUNDARY = "nominated", "boundary"  # why a step is re-measured (column `origin`)


@dataclass(frozen=True)
class Step:
    """One pair of neighbouring lengths and what their times say."""

    before_length: float
    length: float  # the later length of the pair (where a new regime starts, or ends for "down")
    before: float  # median time at before_length
    after: float  # median time at length
    ratio: float  # after / before (medians)
    low: float  # 95% bootstrap interval of the ratio
    high: float
    expected_low: float  # the envelope without tolerance: 1 ...
    expected_high: float  # ... to the work ratio
    excess: float  # ratio over the envelope's nearest edge (1.0 when inside it)
    verdict: str  # "up" / "down" (a jump), "none" (inside the envelope), "unclear" (straddles its edge)
    n: int = 0  # samples per length (sweep) or alternated pairs (confirmation pass)
    method: str = ""

    @property
    def is_jump(self) -> bool:
        return is_jump(self.verdict)

    def as_dict(self) -> dict:
        return asdict(self)


def excess(ratio: float, work_ratio: float) -> float:
    """A step's ratio over the nearest edge of its envelope without tolerance, [1, work ratio] (1.0 inside it)."""
    lo_edge, hi_edge = min(1.0, work_ratio), max(1.0, work_ratio)
    return ratio / hi_edge if ratio > hi_edge else (ratio / lo_edge if ratio < lo_edge else 1.0)


def envelope(work_ratio: float, tolerance: float) -> tuple[float, float]:
    """The ratios a step may take without being a jump: [1, work ratio] (either order) widened by `tolerance`."""
    return min(1.0, work_ratio) / (1 + tolerance), max(1.0, work_ratio) * (1 + tolerance)


def _verdict(low: float, high: float, work_ratio: float, tolerance: float) -> str:
    lo_tol, hi_tol = envelope(work_ratio, tolerance)
    if low > hi_tol:
        return UP
    if high < lo_tol:
        return DOWN
    if lo_tol <= low and high <= hi_tol:
        return NONE
    return UNCLEAR


def judge_paired(
    log_ratios, work_ratio: float = 1.0, tolerance: float = 0.1, confidence: float = measure.CONFIDENCE
) -> tuple[intervals.Estimate, str]:
    """(ratio estimate, verdict) from paired log(t_after / t_before), one per alternated pair."""
    r = intervals.log_ratio_interval(log_ratios, confidence)
    return r, _verdict(r.low, r.high, work_ratio, tolerance)


CONFIRM_COLUMNS = [
    "confirmed",
    "confirm_ratio",
    "confirm_low",
    "confirm_high",
    "confirm_n",
    "confirm_verdict",
    "other_processes",  # the ratio (verdict) of the step in every other process that re-measured it than the one
    # whose ratio and interval are given
    "process_verdicts",  # every process's verdict, the notebook's own first ("down, none, down")
]
VERDICT_SEPARATOR = ", "  # between the verdicts of `process_verdicts`


def majority(verdicts: list[str]) -> str:
    """One step's verdict from every process that re-measured it: the verdict (a jump, or none) more than half of
    them found; without one, VARIES where some found a jump and others none or the opposite jump (process-dependent,
    no cliff), else UNCLEAR. An unclear process (its pairs straddled the envelope's edge) counts against every
    verdict: it found none of them."""
    for v in (UP, DOWN, NONE):
        if 2 * sum(x == v for x in verdicts) > len(verdicts):
            return v
    found = {x for x in verdicts if x != UNCLEAR}
    return VARIES if len(found) > 1 and any(is_jump(x) for x in found) else UNCLEAR


def settled(verdicts: list[str], processes: int) -> bool:
    """Whether more processes (up to `processes` in all) could no longer change a step's `majority`: a verdict
    already has more than half of all `processes`, or none can reach that with the processes left (e.g. of 3, two
    that agree settle a step; one jump and one none need the third)."""
    need = processes // 2 + 1
    most = max(sum(x == v for x in verdicts) for v in (UP, DOWN, NONE))
    return most >= need or most + (processes - len(verdicts)) < need


def open_steps(judged: pd.DataFrame, processes: int) -> np.ndarray:
    """Which steps of a `confirm` table another process could still decide (not `settled`); a step no process
    could time (no `process_verdicts`) is not tried elsewhere."""
    return np.array(
        [
            isinstance(v, str) and not settled(v.split(VERDICT_SEPARATOR), processes)
            for v in judged["process_verdicts"]
        ],
        dtype=bool,
    )


def processes(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Confirmation rows split by the process that measured them, the notebook's own (0) first."""
    if PROCESS not in rows.columns:
        return [rows]
    number = rows[PROCESS].fillna(0).astype(int)
    return [rows[number == n] for n in sorted(set(number) | {0})]


def confirm(
    candidates: pd.DataFrame,
    confirmations: pd.DataFrame,
    by: list[str],
    *,
    value: str = "value",
    work: str | None = None,
    tolerance: float = 0.1,
    looks: int = 1,
) -> pd.DataFrame:
    """`candidates` (a scan table) with the confirmation pass's judgement added (CONFIRM_COLUMNS).

    `looks`: how many passes of pairs the confirmation may look at (measure.confirm re-measures a step that is
    still unclear); each look gets a Bonferroni share of the error rate, so stopping at the first decisive one
    does not inflate it (as core.blocks does for comparisons).

    `confirmations` holds rows with the `by` columns, length, before_length / after_length (the candidate step)
    and pair (the index of an alternated pair within its process); a candidate without confirmation rows stays
    unconfirmed. Where several processes re-measured a step (column `process`), its verdict is their `majority`, and
    its ratio and interval those of the first process that found that verdict (the notebook's own where it did). A
    nominated candidate is confirmed when that verdict repeats the sweep's jump; a boundary step (column `origin`)
    when it is a jump at all, and then takes that verdict and excess."""
    out = candidates.copy()
    for c in CONFIRM_COLUMNS:
        out[c] = pd.Series([False] * len(out) if c == "confirmed" else [np.nan] * len(out), dtype=object)
    if out.empty:
        return out
    confidence = family_confidence(family_size(out, confirmations, by), looks)
    for i, cand in out.iterrows():
        sel = confirmations
        if sel.empty:
            break
        for c in by:
            if c in sel.columns and pd.notna(cand[c]):
                sel = sel[sel[c] == cand[c]]
        measured = [
            paired_step(
                part,
                cand.before_length,
                cand.length,
                value=value,
                work=work,
                tolerance=tolerance,
                confidence=confidence,
            )
            for part in processes(sel)
        ]
        if measured[0] is None:
            continue
        measured = [s for s in measured if s is not None]
        verdict = majority([s.verdict for s in measured])
        step = next((s for s in measured if s.verdict == verdict), measured[0])
        boundary = cand.get("origin") == BOUNDARY
        out.loc[i, CONFIRM_COLUMNS] = [
            is_jump(verdict) if boundary else verdict == cand.verdict,
            step.ratio,
            step.low,
            step.high,
            step.n,
            verdict,
            ", ".join(f"{s.ratio:.3g} ({s.verdict})" for s in measured if s is not step) or np.nan,
            VERDICT_SEPARATOR.join(s.verdict for s in measured),
        ]
        if boundary and is_jump(verdict):  # the sweep said nothing reliable here: the confirmation names it
            out.loc[i, ["verdict", "excess"]] = [step.verdict, step.excess]
    out["confirmed"] = out["confirmed"].astype(bool)
    return out


def family_confidence(family: int, looks: int = 1) -> float:
    """The confidence of each confirmation interval: Bonferroni over the `family` of re-measured steps and the
    `looks` at its passes (`confirm`, and the probe's rule for another pass, measure.stopping)."""
    return 1 - (1 - measure.CONFIDENCE) / (max(1, family) * max(1, looks))


def family_size(candidates: pd.DataFrame, confirmations: pd.DataFrame, by: list[str]) -> int:
    """How many steps the Bonferroni correction covers: every step the confirmation pass re-measured (boundary
    steps, nominated candidates and claims alike), or every candidate where none was."""
    keys = [c for c in by if c in confirmations.columns] + ["before_length", "after_length"]
    if confirmations.empty or not set(keys) <= set(confirmations.columns):
        return max(1, len(candidates))
    return max(1, len(confirmations.drop_duplicates(subset=keys)))


def paired_step(
    df: pd.DataFrame,
    before_length: float,
    length: float,
    *,
    x: str = "length",
    value: str = "value",
    work: str | None = None,
    tolerance: float = 0.1,
    confidence: float = measure.CONFIDENCE,
) -> Step | None:
    """The step between two lengths from a confirmation pass (rows of one configuration with before_length,
    after_length and pair): geometric mean of the per-pair ratios with a t interval. None without >= 3 pairs.
    Rows of several processes: the notebook's own process (pairs are numbered within a process)."""
    if df.empty or "pair" not in df.columns:
        return None
    if PROCESS in df.columns and df[PROCESS].fillna(0).nunique() > 1:
        df = processes(df)[0]
    sub = df[(df.before_length == before_length) & (df.after_length == length)]
    wide = sub.pivot_table(index="pair", columns=x, values=value, aggfunc="first").dropna()
    if wide.shape[1] != 2 or len(wide) < 3:
        return None
    a, b = before_length, length
    w = float(sub.loc[sub[x] == b, work].iloc[0] / sub.loc[sub[x] == a, work].iloc[0]) if work else 1.0
    r, verdict = judge_paired(np.log(wide[b] / wide[a]), w, tolerance, confidence)
    return Step(
        before_length=float(a),
        length=float(b),
        before=float(np.median(wide[a])),
        after=float(np.median(wide[b])),
        ratio=r.value,
        low=r.low,
        high=r.high,
        expected_low=min(1.0, w),
        expected_high=max(1.0, w),
        excess=excess(r.value, w),
        verdict=verdict,
        n=r.n,
        method=f"{r.method}, {r.n} alternated pairs",
    )


def steps(
    df: pd.DataFrame,
    *,
    x: str = "length",
    value: str = "value",
    work: str | None = None,
    tolerance: float = 0.1,
    family_wise: bool = True,
) -> list[Step]:
    """Every neighbouring pair of a sweep (one group: rows of one configuration, several trials per length);
    family_wise=False judges each pair at 95% alone: a liberal screen for candidates that a confirmation pass
    then settles.

    A sweep times every length once per round (`trial`), so a pair is judged on its per-round paired ratios
    (method 12): the median round's ratio, with a t interval on the log-ratios; what slows a whole round cancels
    within it. Between the H200 twins at d34abfb and 65acd48 the sweeps' step ratios lay 8.3-8.5% apart (robust
    SD, prefill) as ratios of medians and 5.9-6.9% as paired ones (bench/screen_agreement.py). Where the sweep
    was timed in bands (column `band`, method 11), a pair is read from the band that timed both its lengths at
    one call count in each round. Rows without rounds, or with fewer than 3 rounds holding both lengths, are
    judged on unpaired medians (bootstrap)."""
    lengths = np.sort(df[x].unique())
    works = {n: float(df.loc[df[x] == n, work].iloc[0]) for n in lengths} if work else None
    rounds = None
    if ROUND in df.columns and df[ROUND].notna().all():
        # a round, and within it the band (rows before method 11 have none: -1), is what a pair's samples share
        banded = df.assign(**{BAND: df[BAND].fillna(-1) if BAND in df.columns else -1})
        rounds = banded.pivot_table(index=[ROUND, BAND], columns=x, values=value, aggfunc="median")
    out = []
    confidence = 1 - (1 - measure.CONFIDENCE) / (max(1, len(lengths) - 1) if family_wise else 1)
    for a, b in zip(lengths[:-1], lengths[1:]):
        w = works[b] / works[a] if works else 1.0
        both = rounds[[a, b]].dropna() if rounds is not None and {a, b} <= set(rounds) else pd.DataFrame()
        if len(both) >= 3:
            logs = np.log(both[b] / both[a])
            r = intervals.log_ratio_interval(logs, confidence)
            # the median round's ratio: one odd round of five moves it less than the mean (robust SD between the
            # twins' sweeps, prefill: 5.9-6.9% against 7.3-7.6% for the geometric mean)
            ratio, n = float(np.exp(np.median(logs))), len(both)
            method = f"sweep: median of {n} rounds' paired ratios, t interval on their logs"
            samples = {a: both[a].to_numpy(float), b: both[b].to_numpy(float)}
        else:
            samples = {k: df.loc[df[x] == k, value].to_numpy(dtype=float) for k in (a, b)}
            r = measure.ratio_interval(samples[b], samples[a], confidence=confidence)
            ratio, n = r.median, int(min(samples[a].size, samples[b].size))
            method = "sweep: bootstrap of unpaired medians"
        out.append(
            Step(
                before_length=float(a),
                length=float(b),
                before=float(np.median(samples[a])),
                after=float(np.median(samples[b])),
                ratio=ratio,
                low=r.low,
                high=r.high,
                expected_low=min(1.0, w),
                expected_high=max(1.0, w),
                excess=excess(ratio, w),
                verdict=_verdict(r.low, r.high, w, tolerance),
                n=n,
                method=f"{method} at {confidence:.2%}",
            )
        )
    return out


def find_cliffs(
    df: pd.DataFrame,
    *,
    x: str = "length",
    value: str = "value",
    work: str | None = None,
    tolerance: float = 0.1,
) -> list[Step]:
    """The jumps of one sweep: the steps whose ratio interval lies outside the work envelope."""
    return [s for s in steps(df, x=x, value=value, work=work, tolerance=tolerance) if s.is_jump]


def scan(
    df: pd.DataFrame,
    by: list[str],
    *,
    x: str = "length",
    value: str = "value",
    work: str | None = None,
    tolerance: float = 0.1,
    jumps_only: bool = True,
    family_wise: bool = True,
    margin: float = 0.0,
) -> pd.DataFrame:
    """`find_cliffs` (or every step) per group of `by`, as one table with the group's columns in front.

    family_wise=False is the liberal screen for a confirmation pass: each step judged alone at 95%, and a step
    whose median ratio lies beyond the widened envelope (drawn in by `margin`) is nominated too, whatever its
    interval, its verdict the direction of that ratio (`screened`)."""
    rows = []
    # dropna=False: a grouping column that only some sweeps fill (e.g. probe_mlx) must not drop the others' rows
    for key, group in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        found = steps(group, x=x, value=value, work=work, tolerance=tolerance, family_wise=family_wise)
        if not family_wise:
            found = [screened(s, tolerance, margin) for s in found]
        rows += [{**dict(zip(by, key)), **s.as_dict()} for s in found if s.is_jump or not jumps_only]
    columns = by + list(Step.__dataclass_fields__)
    return pd.DataFrame(rows, columns=columns)


def screened(step: Step, tolerance: float, margin: float = 0.0) -> Step:
    """A step the sweep did not call a jump but whose median ratio lies beyond the widened envelope drawn in by
    `margin` (a fraction of the edge), as the jump it points to (a candidate for the confirmation pass); any
    other step unchanged. The margin catches steps a few trials put just inside the edge: at 3362327 one H200
    run's sweep put unfused bool 1536 -> 2047 at 2.207x against an edge of 2.220x, 2.30-2.40x in every process
    that re-measured it."""
    if is_jump(step.verdict):
        return step
    work_ratio = step.expected_high if step.expected_low == 1.0 else step.expected_low
    lo_tol, hi_tol = envelope(work_ratio, tolerance)
    if step.ratio > hi_tol / (1 + margin):
        return replace(step, verdict=UP)
    if step.ratio < lo_tol * (1 + margin):
        return replace(step, verdict=DOWN)
    return step


def pair(
    df: pd.DataFrame,
    before_length: float,
    length: float,
    *,
    x: str = "length",
    value: str = "value",
    work: str | None = None,
    tolerance: float = 0.1,
) -> Step | None:
    """The step between two given lengths of one sweep (None if either was not measured)."""
    sub = df[df[x].isin([before_length, length])]
    if sub[x].nunique() < 2:
        return None
    return steps(sub, x=x, value=value, work=work, tolerance=tolerance)[0]


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(table: pd.DataFrame, label_columns: list[str]) -> list[str]:
    """One line per jump, e.g. 'prefill causal bfloat16 128: 127 -> 128 tokens, 0.9 -> 0.6 ms, ratio 0.63 ...'."""
    lines = []
    for _, s in table.iterrows():
        label = " ".join(_label(s[c]) for c in label_columns if c in s and pd.notna(s[c]))
        lines.append(
            f"{label}: {s['before_length']:g} -> {s['length']:g} tokens, {s['before']:.3g} -> "
            f"{s['after']:.3g} ms, ratio {s['ratio']:.2f} [{s['low']:.2f}, {s['high']:.2f}] against "
            f"{s['expected_low']:.2f}-{s['expected_high']:.2f} from the work ({s['verdict']}; "
            f"{s['excess']:.2f}x the envelope's nearest edge)"
        )
    return lines


def verdict(step: Step | None, expected: str) -> str:
    """A claim about one step ("a cliff here": expected="down" or "up"; "no cliff here": expected="none"):
    holds when the step's verdict is the expected one, inconclusive when unmeasured or unclear."""
    from mlx_workbook.core import verdicts

    if step is None or step.verdict == UNCLEAR:
        return verdicts.INCONCLUSIVE
    return verdicts.HOLDS if step.verdict == expected else verdicts.DOES_NOT_HOLD
