"""What 02_decode_loop compares and what each claim is judged against: the comparisons (PLANS), the claim each
variant answers (CLAIMS), and the widened bands the stopping rule and the verdicts share.

Each claim is its own comparison (core.blocks): only the two or three variants it needs, one trial each of
`max_tokens` tokens per block, the trials advanced alternately in chunks (blocks.interleaved), each trial's
value its steady-state ms per token (the geometric mean of its chunks' median). A comparison's stored
`change_pct` of a variant is ms(variant) / ms(reference) - 1 per block (each block's log-ratio the median of
its rounds', blocks.block_log_ratio; geometric mean over blocks, t interval on the per-block log-ratios),
which is exactly how much faster the reference decodes than the variant in tokens/s: so each plan's reference
is the loop a claim says is faster, and the claims' published speed-ups are set against that number unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from mlx_workbook.core import blocks, published

TIME_METRIC = (
    "ms_per_token_median"  # a trial's steady-state median ms per token (the value every block holds)
)
STEADY_TOKENS = 256  # tokens a trial needs before its median describes steady-state decode (issue 11)


@dataclass(frozen=True)
class Plan:
    """One comparison: the reference (the loop claimed faster) and the variants set against it."""

    reference: str
    variants: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [self.reference, *self.variants]


PIPELINING = "pipelining"  # the comparison judged on the pipelining model (the others: on the claims model)
PLANS = {
    # the loop named before measuring (pipelined) against generate_step, and against its own copy of
    # generate_step's steps (logprobs every step): the fastest-loop finding and the conditional-logprobs claim
    "loop_overhead": Plan("pipelined", ("mlx_lm", "logprobs_always")),
    "unused_logits": Plan("logprobs_always", ("eval_logits",)),
    "sampler_path": Plan("sample_fast", ("sample_t1", "sample_before_001")),
    "compiled_sampling": Plan("sample_chain_compiled", ("sample_chain",)),
    "rep_penalty": Plan("rep_penalty", ("rep_penalty_loop",)),
    "extract": Plan("pipelined", ("take_logits",)),
    "stream": Plan("pipelined", ("default_stream",)),
    # sampling inside the loop: the full filter chain against the greedy (argmax) fast path, same loop
    "sampling_in_loop": Plan("pipelined", ("sample_chain",)),
    PIPELINING: Plan("pipelined", ("batched_10",)),
}
# Published claim -> (comparison, variant): the variant's change against that comparison's reference measures it.
CLAIMS = {
    "unused_logits_eval_cost": ("unused_logits", "eval_logits"),
    "conditional_logprobs_gain": ("loop_overhead", "logprobs_always"),
    "sampling_fast_path_gain": ("sampler_path", "sample_t1"),
    "logits_optimizations_total_gain": ("sampler_path", "sample_before_001"),
    "async_pipelining_gain": ("pipelining", "batched_10"),
    "compiled_sampling_potential_001": ("compiled_sampling", "sample_chain"),
    "rep_penalty_vectorized_no_impact": ("rep_penalty", "rep_penalty_loop"),
    "slice_vs_take_potential": ("extract", "take_logits"),
    "dedicated_stream_minor": ("stream", "default_stream"),
    "sampling_ms_per_token_000": ("sampling_in_loop", "sample_chain"),
}
PIPELINING_CLAIM = "async_pipelining_gain"  # judged on the pipelining model, every other claim on the first
FASTEST = ("loop_overhead", "mlx_lm")  # the judged loop (pipelined) against generate_step, on every model
# Our copy of generate_step's steps against the real one (information), as paired_change's (variant, reference):
# generate_step's time over the copy's, i.e. how much faster the copy decodes.
COPY = ("mlx_lm", "logprobs_always")
# The two repetition-penalty claims are one measurement: the first is judged, the second refers to it.
REP_PENALTY = ("rep_penalty_vectorized_no_impact", "rep_penalty_scatter_potential")
SAMPLING_SHARE = "sampling_ms_per_token_000"
VARIABILITY = "variability"  # experiment of the whole mlx-lm generations run back to back
VARIABILITY_METRIC = "decode_tps"
TOKEN_TIME_CLAIM = "per_token_time_flat"  # seed 000's ~20 ms token, which its split divides

# A published speed-up ("4-5%") is approximate ('~' in the write-ups) and of other hardware: it is widened by a
# share of its size, and by a floor for the sub-1% claims, which no run-to-run noise could otherwise resolve.
SPEEDUP_TOLERANCE_SHARE = 0.25
SPEEDUP_TOLERANCE_MIN_PCT = 0.5
SPEEDUPS = (
    "unused_logits_eval_cost",
    "conditional_logprobs_gain",
    "sampling_fast_path_gain",
    "logits_optimizations_total_gain",
    "async_pipelining_gain",
    "compiled_sampling_potential_001",
    "slice_vs_take_potential",
)


def claim_tolerance(low: float, high: float) -> float:
    """Points a published speed-up range is widened by (see SPEEDUP_TOLERANCE_SHARE / _MIN_PCT)."""
    return max(SPEEDUP_TOLERANCE_MIN_PCT, SPEEDUP_TOLERANCE_SHARE * max(abs(low), abs(high)))


@dataclass(frozen=True)
class Tolerances:
    """The notebook's tolerances, the same for the stopping rule and the verdicts."""

    minor_pct: float = 2.0  # "minor" (dedicated stream) and "at least as fast" (the judged loop)
    no_impact_pct: float = 1.0  # "no impact" (repetition penalty)
    share_pts: float = 3.0  # a measured share against a published one
    variance_pts: float = 4.0  # mlx-lm's measured run-to-run spread against the published one


def rep_penalty_range() -> tuple[float, float]:
    """Both repetition-penalty claims together: 0 (no impact) to the scatter's hoped-for 1%."""
    ranges = [published.figure_range(c) for c in REP_PENALTY]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def share_range(claim_id: str, tol: Tolerances) -> tuple[float, float, float]:
    """A published ms of seed 000's ~20 ms token as a % share, and the points it is widened by (a '~' share
    like a '~' speed-up, never more than the share tolerance: ±3 points around 2.5% would accept 0 to 5.5%)."""
    token_ms = published.figure_range(TOKEN_TIME_CLAIM)[0]
    lo, hi = (100 * x / token_ms for x in published.figure_range(claim_id))
    return lo, hi, min(tol.share_pts, claim_tolerance(lo, hi))


def share_of_token(change_pct: float) -> float:
    """The variant's extra time (change_pct of the reference's token) as a % of the variant's own token."""
    return 100 * change_pct / (100 + change_pct)


def change_for_share(share_pct: float) -> float:
    """share_of_token inverted: the change_pct at which the extra time is `share_pct` of the token."""
    return 100 * share_pct / (100 - share_pct)


def claim_band(claim_id: str, tol: Tolerances) -> blocks.Band:
    """The widened band a claim's comparison stops on, in change_pct: the same edges its verdict uses."""
    if claim_id in SPEEDUPS:
        lo, hi = published.figure_range(claim_id)
        return blocks.Band.widened(lo, hi, claim_tolerance(lo, hi), no_effect_at=0.0)  # judged as an effect
    if claim_id == "dedicated_stream_minor":
        return blocks.Band.no_effect(tol.minor_pct)
    if claim_id == REP_PENALTY[0]:
        return blocks.Band.widened(*rep_penalty_range(), tol.no_impact_pct)
    if claim_id == SAMPLING_SHARE:
        lo, hi, pts = share_range(claim_id, tol)
        return blocks.Band(change_for_share(lo - pts), change_for_share(hi + pts))
    raise ValueError(f"no band for {claim_id!r}")


COMPILED_SAMPLING_CLAIM = "compiled_sampling_speedup_expected"
# The compiled-sampling speed-up is an unimplemented expectation ("~"): its 1.3-1.5x is widened by this much (x).
COMPILED_SAMPLING_TOLERANCE_X = 0.1
VARIANCE_CLAIM = "mlxlm_variance_pct"


def compiled_sampling_band() -> blocks.Band:
    """The compiled chain's speed-up over the uncompiled one (x) its verdict is judged against, widened: the
    sampler repeats go on until their interval decides against it."""
    lo, hi = published.figure_range(COMPILED_SAMPLING_CLAIM)
    return blocks.Band.widened(lo, hi, COMPILED_SAMPLING_TOLERANCE_X, no_effect_at=1.0)


def variance_band(tol: Tolerances) -> blocks.Band:
    """mlx-lm's published run-to-run spread (% half range over mean) widened by tol.variance_pts: the
    variability pass goes on until its interval decides against it."""
    return blocks.Band.widened(*published.figure_range(VARIANCE_CLAIM), tol.variance_pts)


def judged_model(claim_id: str, claims_model, pipelining_model):
    """The model a claim is judged on (a spec or a label alike): the pipelining claim on the pipelining model,
    every other claim on the claims model (the first)."""
    return pipelining_model if claim_id == PIPELINING_CLAIM else claims_model


def bands(plan_name: str, tol: Tolerances, claims: Collection[str] | None = None) -> dict[str, blocks.Band]:
    """Variant -> band for every claim (and the fastest-loop check) a comparison answers; `claims`: only those
    judged on the comparison's model (None: every claim), so a comparison on another model neither waits nor
    takes extension time for a band nothing reads."""
    out = {
        v: claim_band(c, tol)
        for c, (p, v) in CLAIMS.items()
        if p == plan_name and (claims is None or c in claims)
    }
    if plan_name == FASTEST[0]:
        out[FASTEST[1]] = blocks.Band(-tol.minor_pct, math.inf)  # at least as fast within -minor
    return out
