"""02_decode_loop's findings, one per published claim (data/published, notebook 02_decode_loop) plus the loop
identity and the fastest loop per model, each computed from the stored rows with verdicts.py."""

from __future__ import annotations

import math

import pandas as pd

from mlx_workbook.core import intervals, measure, published, scope, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.decode_loop import plans, spread
from mlx_workbook.investigations.decode_loop import stats as loop_stats
from mlx_workbook.investigations.decode_loop.analysis import Setup, split_ms_table, split_share
from mlx_workbook.report.text import change_text, interval_text, share_text, span, span_pct

# claim -> (what its one-factor pair isolates, notebook section, headline)
SPEEDUPS = {
    "unused_logits_eval_cost": ("leaving the unused logits out of each step's evaluation", "claims", True),
    "conditional_logprobs_gain": ("computing logprobs only when asked (here: never)", "claims", False),
    "sampling_fast_path_gain": (
        "the temperature-1 fast path (categorical straight from the logits) over the "
        "general path that first scales the logits by 1/temperature (the copy's proxy; "
        "both uncompiled)",
        "claims",
        False,
    ),
    "logits_optimizations_total_gain": (
        "all three together (seed 001's starting loop against the fast-path loop, "
        "both sampling at temperature 1)",
        "claims",
        False,
    ),
    "async_pipelining_gain": (
        "async_eval of the next token before item() of this one, against one eval every "
        "10 tokens (our Python loops as the proxy of the Rust ones)",
        "claims",
        False,
    ),
    "compiled_sampling_potential_001": (
        "the top-p/min-p/top-k chain compiled as one function over the same chain uncompiled",
        "sampling",
        False,
    ),
    "slice_vs_take_potential": ("the last logits by slicing over take + squeeze", "claims", False),
}
# claim -> what its pair isolates ("minor": within the minor tolerance of no effect)
NO_IMPACT = {"dedicated_stream_minor": "a dedicated stream over the default one"}
REP_PENALTY = plans.REP_PENALTY
# An absolute figure of the write-ups' hardware (tok/s, ms) is widened by this share of it: run-to-run and
# machine-variant spread (judged only on that hardware: core.scope).
ABSOLUTE_TOLERANCE_SHARE = 0.1
TOKEN_TIME_CLAIM = plans.TOKEN_TIME_CLAIM


def pct(i) -> str:
    """A speed-up in % at two decimals: sub-1% claims are judged here."""
    return change_text(getattr(i, "interval", i), "+.2f")


def _not_measured(claim_id: str, section: str, what: str) -> Finding:
    return Finding(
        id=claim_id,
        verdict=verdicts.NOT_MEASURED,
        section=section,
        published=published.reference(claim_id),
        statement=f"Not measured: {what}.",
    )


def _missing(claim_id: str, label: str) -> str:
    plan_name, name = plans.CLAIMS[claim_id]
    return f"comparison {plan_name!r} ({plans.PLANS[plan_name].reference} vs {name}) did not run on {label}"


def _measured(e: loop_stats.Effect, unit: str, **extra) -> dict:
    return e.interval.measured(
        unit, n=e.n, stop_reason=e.stop_reason, resolvable_pct=e.resolvable_pct, **extra
    )


def speedup_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    out = []
    for claim_id, (what, section, headline) in SPEEDUPS.items():
        model = s.judged_on(claim_id)
        m = loop_stats.claim_effect(df, model, claim_id)
        if m is None:
            out.append(_not_measured(claim_id, section, _missing(claim_id, model)))
            continue
        plan_name, b = plans.CLAIMS[claim_id]
        a = plans.PLANS[plan_name].reference
        c = published.claim(claim_id)
        lo, hi = published.figure_range(claim_id)
        verdict = verdicts.effect_matches(m.interval, lo, hi, plans.claim_tolerance(lo, hi), no_effect_at=0.0)
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section=section,
                headline=headline,
                measured=_measured(m, "%"),
                published=published.reference(claim_id),
                statement=f"{what[0].upper() + what[1:]}: {pct(m)} tokens/s ({a} vs {b}, {model}, {s.where}; "
                f"{m.evidence(verdict)}); published {span(lo, hi)}% ({c['hardware']}, "
                f"{c['software'].get('other') or 'MLX'}); verdict: {verdict}.",
            )
        )
    for claim_id, what in NO_IMPACT.items():
        m = loop_stats.claim_effect(df, s.claims_label, claim_id)
        if m is None:
            out.append(_not_measured(claim_id, "claims", _missing(claim_id, s.claims_label)))
            continue
        plan_name, b = plans.CLAIMS[claim_id]
        a, tol = plans.PLANS[plan_name].reference, s.minor_tolerance_pct
        verdict = verdicts.no_effect(m.interval, tol)
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section="claims",
                measured=_measured(m, "%"),
                published=published.reference(claim_id),
                statement=f"Speed of {what}: {pct(m)} ({a} vs {b}, {s.claims_label}, {s.where}; "
                f"{m.evidence(verdict)}); the claim of no more than a minor / no impact holds within ±{tol:g}% "
                f"only if the whole interval does; verdict: {verdict}.",
            )
        )
    return out + rep_penalty_findings(df, s)


def rep_penalty_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """One verdict for the two repetition-penalty claims (REP_PENALTY): the vectorized penalty's speed over the
    token-by-token one, against 0 (no impact) to the scatter's hoped-for 1%, widened by the no-impact
    tolerance."""
    host, other = REP_PENALTY
    m = loop_stats.claim_effect(df, s.claims_label, host)
    if m is None:
        why = _missing(host, s.claims_label)
        return [_not_measured(host, "claims", why), _not_measured(other, "claims", why)]
    plan_name, b = plans.CLAIMS[host]
    a = plans.PLANS[plan_name].reference
    lo, hi = plans.rep_penalty_range()
    tol = s.no_impact_tolerance_pct
    verdict = verdicts.effect_matches(m.interval, lo, hi, tol)
    statement = (
        f"mlx-lm's vectorized (scatter) repetition penalty over one applied token by token: {pct(m)} tokens/s "
        f"({a} vs {b}, {s.claims_label}, {s.where}; {m.evidence(verdict)}). Both published claims are this one "
        f"difference: reverting to a loop 'had no impact' ({span(*published.figure_range(host))}%) and a "
        f"scatter 'could give {span(*published.figure_range(other))}%'; together {span(lo, hi)}%, widened by "
        f"±{tol:g} points: {verdict}."
    )
    return [
        Finding(
            id=host,
            verdict=verdict,
            section="claims",
            measured=_measured(m, "%"),
            published=published.reference(host),
            statement=statement,
        ),
        Finding(
            id=other,
            verdict=verdict,
            section="claims",
            measured=_measured(m, "%", same_as=host),
            published=published.reference(other),
            statement=f"The same measurement as {host} (one verdict, counted once): {statement}",
        ),
    ]


def share_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """The split of generate_step's steps (timed on its copy 'logprobs_always') against seed 001's table."""
    out = []
    for claim_id, phases, what in (
        (
            "decode_gpu_bound_share",
            ["encode/launch", "wait for device"],
            "encode/launch + wait for device (the host inside async_eval or waiting for the token: what the "
            "original counts as GPU-bound)",
        ),
        ("decode_cpu_work_share", ["graph build", "sampling"], "graph build + sampling"),
    ):
        per_trial = split_share(df, s.claims_label, "logprobs_always", phases)
        if per_trial.empty:
            out.append(_not_measured(claim_id, "split", f"no time split on {s.claims_label}"))
            continue
        m, c = Interval.of(measure.summarize(per_trial)), published.claim(claim_id)
        lo, hi = published.figure_range(claim_id)
        verdict = verdicts.effect_matches(m, lo, hi, tolerance=s.share_tolerance_pts)
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section="split",
                measured=m.measured("%"),
                published=published.reference(claim_id),
                statement=f"Proxy, a host-side split: 'device execution' is host time inside async_eval "
                f"(encoding and launching kernels) and 'token sync' the host's wait in item(); the device's own "
                f"busy time is not measured. Share of per-token time in {what} for generate_step's steps (our "
                f"timed copy, {s.claims_label}, {s.where}): {share_text(m)}; published "
                f"{span(lo, hi)}% for mlx-node on {c['hardware']} (before its clean-up); match within "
                f"±{s.share_tolerance_pts:g} points: {verdict}.",
            )
        )
    return out


def _sampler_ms(df: pd.DataFrame, label: str, name: str) -> pd.Series:
    samp = rows(df, "sampling")
    return samp[(samp.label == label) & (samp.sampler == name)].value


def sampling_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Seed 000's decomposition of its per-token time (sampling, transfer, the rest) as shares of a sampled
    token, sampling measured inside the decode loop; and the compiled chain's speed-up on sampling alone."""
    out, label = [], s.claims_label
    token_ms = published.figure_range(TOKEN_TIME_CLAIM)[0]
    loop = loop_stats.in_loop_sampling(df, label)
    sampling_share = loop["share"] if loop else None
    if loop is None:
        out.append(_not_measured(plans.SAMPLING_SHARE, "sampling", _missing(plans.SAMPLING_SHARE, label)))
    else:
        out.append(_in_loop_sampling_finding(df, s, loop))
    transfer_share = None
    claim_id = "data_transfer_ms_per_token"
    transfer_ms, chain_ms = _sampler_ms(df, label, "transfer"), loop_stats.times(df, label, "sample_chain")
    if transfer_ms.empty or chain_ms.empty:
        why = f"the transfer and a sample_chain token are both needed on {label}"
        out.append(_not_measured(claim_id, "sampling", why))
    else:
        transfer_share = Interval.of(measure.ratio_interval(transfer_ms, chain_ms)).scaled(100)
        pub_lo, pub_hi, tol = plans.share_range(claim_id, s.tolerances)
        verdict = verdicts.effect_matches(transfer_share, pub_lo, pub_hi, tolerance=tol)
        lo, hi = published.figure_range(claim_id)
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section="sampling",
                measured=transfer_share.measured("%"),
                published=published.reference(claim_id),
                statement=f"Proxy, the host copy alone (item() and a numpy copy repeated on an already evaluated "
                f"array, so no wait for the device is in it): token + logprobs transfer to the host takes "
                f"{measure.summarize(transfer_ms).median:.3g} ms per token on {s.where}, "
                f"{share_text(transfer_share)} of a sample_chain token ({label}); published ~{span(lo, hi)} ms "
                f"of ~{token_ms:g} ms ({span(pub_lo, pub_hi)}%) for mlx-node; absolute ms do not carry over "
                f"between devices, so the shares are compared (±{tol:g} points): {verdict}.",
            )
        )
    if sampling_share is not None and transfer_share is not None:
        a, t = sampling_share, transfer_share
        fwd = Interval(100 - a.value - t.value, 100 - a.high - t.high, 100 - a.low - t.low)
        lo_ms, hi_ms = published.figure_range("forward_pass_ms_of_20")
        lo, hi = 100 * lo_ms / token_ms, 100 * hi_ms / token_ms
        tol = s.share_tolerance_pts
        verdict = verdicts.effect_matches(fwd, lo, hi, tolerance=tol)
        out.append(
            Finding(
                id="forward_pass_ms_of_20",
                verdict=verdict,
                section="sampling",
                measured=fwd.measured("%"),
                published=published.reference("forward_pass_ms_of_20"),
                statement=f"A residual, in part of a proxy: what is left of a sample_chain token after sampling "
                f"(measured inside the decode loop, above) and the transfer (the host-copy proxy, above), seed "
                f"000's forward pass: {share_text(fwd)} ({label}, {s.where}); published {span(lo_ms, hi_ms)} of "
                f"~{token_ms:g} ms ({lo:.0f}-{hi:.0f}%) for mlx-node; match within ±{tol:g} points: {verdict}.",
            )
        )
    else:
        out.append(
            _not_measured(
                "forward_pass_ms_of_20",
                "sampling",
                "sampling inside the loop (comparison 'sampling_in_loop') and the transfer are both needed",
            )
        )
    out.append(compiled_sampling_finding(df, s))
    return out


def stop_reason(frame: pd.DataFrame) -> str | None:
    """Why a pass that goes on until its claim is decided stopped (its rows' stop_reason); None for a fixed one."""
    reasons = frame["stop_reason"].dropna() if "stop_reason" in frame else frame.iloc[:0]
    return None if reasons.empty else str(reasons.iloc[0])


def stopped(reason: str | None) -> str:
    """The stop reason as the statements say it: nothing for a fixed count."""
    if reason is None:
        return ""
    return "; stopped: decided" if reason == "decided" else f"; stopped: {reason} reached"


def compiled_sampling_finding(df: pd.DataFrame, s: Setup) -> Finding:
    """The chain uncompiled over compiled, timed alone: both samplers ran back to back in a random order in every
    repeat (sampling.time_samplers), so the ratio is judged on the repeats' paired log-ratios (t interval)."""
    claim_id, label = plans.COMPILED_SAMPLING_CLAIM, s.claims_label
    paired = loop_stats.sampler_pairs(df, label, "chain", "chain_compiled")
    if len(paired) < 2:
        why = "samplers 'chain' and 'chain_compiled' are both needed, in at least 2 repeats"
        return _not_measured(claim_id, "sampling", why)
    e = intervals.paired_ratio(paired["chain"], paired["chain_compiled"])
    reason = stop_reason(rows(loop_stats.model_rows(df, label), "sampling", sampler="chain"))
    m = Interval.of(e)
    lo, hi = published.figure_range(claim_id)
    tol = plans.COMPILED_SAMPLING_TOLERANCE_X
    verdict = verdicts.effect_matches(m, lo, hi, tolerance=tol, no_effect_at=1.0)
    return Finding(
        id=claim_id,
        verdict=verdict,
        section="sampling",
        measured=m.measured("x", n=e.n, method=e.method, stop_reason=reason),
        published=published.reference(claim_id),
        statement=f"Sampler timed alone: compiling the sampling chain into one mx.compile speeds sampling alone "
        f"by {m.value:.2f}x [{m.low:.2f}, {m.high:.2f}] ({label} vocabulary, {s.where}; n={e.n} repeats, the "
        f"two samplers back to back in a random order in each, {e.method}"
        f"{stopped(reason)}); expected "
        f"{span(lo, hi)}x (seed 000, not implemented there); verdict (published range widened by {tol:g}x): {verdict}.",
    )


def _in_loop_sampling_finding(df: pd.DataFrame, s: Setup, loop: dict) -> Finding:
    """Sampling's share of a token measured where it is paid: inside the decode loop, the full chain against
    the greedy fast path in the same loop, paired per block; the sampler timed alone is quoted beside it."""
    claim_id, label = plans.SAMPLING_SHARE, s.claims_label
    e, share, ms = loop["effect"], loop["share"], loop["ms"]
    pub_lo, pub_hi, tol = plans.share_range(claim_id, s.tolerances)
    verdict = verdicts.effect_matches(share, pub_lo, pub_hi, tolerance=tol)
    lo, hi = published.figure_range(claim_id)
    token_ms = published.figure_range(TOKEN_TIME_CLAIM)[0]
    alone = _sampler_ms(df, label, "mlx_lm_chain")
    side = (
        f" The sampler timed alone (mlx-lm's chain on one row, synchronized after every call) takes "
        f"{alone.median():.3g} ms: a side table, not this verdict (alone, nothing overlaps it)."
        if not alone.empty
        else ""
    )
    extra = f"{ms.value:+.3g} ms [{ms.low:+.3g}, {ms.high:+.3g}]" if ms else "n/a"
    return Finding(
        id=claim_id,
        verdict=verdict,
        section="sampling",
        measured=share.measured("%", n=e.n, stop_reason=e.stop_reason, extra_ms=ms.value if ms else None),
        published=published.reference(claim_id),
        statement=f"Measured inside the decode loop: the top-p/min-p/top-k chain (uncompiled) costs {extra} per "
        f"token over the greedy argmax fast path in the same pipelined loop ({loop['chain_ms']:.3g} against "
        f"{loop['greedy_ms']:.3g} ms per token; paired per block), {share_text(share)} of a chain token "
        f"({label}, {s.where}; {e.evidence(verdict)}); published ~{span(lo, hi)} ms of ~{token_ms:g} ms "
        f"({span(pub_lo, pub_hi)}%) for mlx-node; absolute ms do not carry over between devices, so the shares "
        f"are compared (±{tol:g} points): {verdict}.{side}",
    )


def fastest_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Per model: the library loop named before measuring (Setup.judged_loop) against generate_step in their
    own comparison, at least as fast within the minor tolerance; when it is slower, why, from the data."""
    out, ms, tol = [], split_ms_table(df), s.minor_tolerance_pct
    for spec, label in s.labels.items():
        judged = loop_stats.effect(df, label, *plans.FASTEST)
        slug = f"fastest_vs_generate_step_{spec.replace(':', '_').replace('.', '_')}"
        if judged is None:
            why = f"comparison {plans.FASTEST[0]!r} ({s.judged_loop} vs mlx_lm) did not run on {label}"
            # a workbook finding, not a published claim: nothing published to cite
            out.append(Finding(slug, f"Not measured: {why}.", verdicts.NOT_MEASURED, section="fastest"))
            continue
        verdict = verdicts.at_least(judged.interval, -tol)
        copy = loop_stats.paired_change(df, label, *plans.COPY)
        why = ""
        if verdict == verdicts.DOES_NOT_HOLD:
            host = ms.loc[(label, s.judged_loop)] if (label, s.judged_loop) in ms.index else None
            host_ms = (
                host.reindex(["graph build", "sampling", "other"]).sum() if host is not None else math.nan
            )
            gap_ms = (
                loop_stats.times(df, label, s.judged_loop).median()
                - loop_stats.times(df, label, "mlx_lm").median()
            )
            why = (
                f" It is {gap_ms:.3g} ms per token slower, against {host_ms:.3g} ms per token of host-side "
                f"work in the loop; our copy of generate_step's own steps is {pct(copy) if copy else 'not measured'}"
                f" against it, so the gap is "
                f"{'the loop machinery (Python per step)' if copy and copy.high < 0 else 'noise or this variant'}."
            )
        out.append(
            Finding(
                id=slug,
                verdict=verdict,
                section="fastest",
                headline=spec == next(iter(s.labels)),
                measured=_measured(judged, "%", loop=s.judged_loop),
                statement=f"The library's {s.judged_loop} loop (named before measuring) on {label} ({s.where}): "
                f"{pct(judged)} tokens/s against mlx-lm's generate_step ({judged.evidence(verdict)}); at least "
                f"as fast within -{tol:g}%: {verdict}.{why}",
            )
        )
    return out


def absolute_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Absolute speeds and variability, judged against the published figures (core.scope marks them "does not
    apply" off the write-ups' Apple hardware); mlx-node and C++ comparisons are not measured (neither runs
    here), with our own loops' numbers beside them as proxies."""
    label, judged = s.claims_label, s.judged_loop
    ref_ms, judged_ms = loop_stats.times(df, label, "mlx_lm"), loop_stats.times(df, label, judged)
    if ref_ms.empty or judged_ms.empty:  # `comparisons` left out loop_overhead: no generate_step trials here
        why = (
            f"comparison {plans.FASTEST[0]!r} (generate_step beside the {judged} loop) did not run on {label}"
        )
        return [_not_measured(c, section, why) for c, section in ABSOLUTE_CLAIMS] + [
            variability_finding(df, s),
            cpp_bound_finding(df, s),
        ]
    ref = 1e3 / ref_ms
    ref_tps, judged_tps = measure.summarize(ref), measure.summarize(1e3 / judged_ms)
    tps_text = interval_text(ref_tps, " tok/s", fmt=".1f")
    out = []

    def absolute(claim_id: str, value: Interval, unit: str, text: str, section: str = "variants") -> None:
        c, (lo, hi) = published.claim(claim_id), published.figure_range(claim_id)
        tol = ABSOLUTE_TOLERANCE_SHARE * hi
        verdict = verdicts.effect_matches(value, lo, hi, tol)
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section=section,
                measured=value.measured(unit),
                published=published.reference(claim_id),
                statement=f"{text}; published {span(lo, hi)} {unit} (hardware: {c['hardware']}; model: "
                f"{c['model_published']}); within ±{ABSOLUTE_TOLERANCE_SHARE:.0%}: {verdict}.",
            )
        )

    for claim_id in ("mlxlm_decode_tok_s_001", "mlxlm_decode_tok_s_000"):
        absolute(
            claim_id, Interval.of(ref_tps), "tok/s", f"mlx-lm decodes {label} at {tps_text} on {s.where}"
        )
    fwd = measure.summarize(ref_ms)
    absolute(
        "mlxlm_forward_pass_ms",
        Interval.of(fwd),
        "ms",
        f"mlx-lm's whole greedy step (forward pass included) takes {fwd.median:.3g} ms per token "
        f"[{fwd.low:.3g}, {fwd.high:.3g}] (trial medians) for {label} on {s.where}",
    )
    out.append(
        _not_measured(
            "mlxnode_decode_tok_s_001",
            "variants",
            f"mlx-node does not run in the workbook; proxy: our {judged} loop decodes {label} at "
            f"{judged_tps.median:.1f} tok/s [{judged_tps.low:.1f}, {judged_tps.high:.1f}] on {s.where}",
        )
    )
    out.append(variability_finding(df, s))
    lm_cv = published.claim("mlxlm_variance_pct")
    node_cv = published.claim("mlxnode_variance_pct")
    cv_ref = loop_stats.cv_interval(ref).scaled(100)
    cv_judged = loop_stats.cv_interval(1e3 / judged_ms).scaled(100)
    out.append(
        _not_measured(
            "mlxnode_variance_pct",
            "variability",
            f"mlx-node does not run in the workbook. Proxy, a second loop beside mlx-lm's on the same MLX: "
            f"our {judged} loop varies {share_text(cv_judged)} (CV) against mlx-lm's {cv_ref.value:.1f}% "
            f"in the same interleaved blocks ({label}, {s.where}); published {node_cv['published']:g}% vs "
            f"{lm_cv['published']:g}% ({node_cv['hardware']})",
        )
    )
    gap = loop_stats.effect(df, label, *plans.FASTEST)
    copy = loop_stats.paired_change(df, label, *plans.COPY)
    gap_001, gap_2x = published.claim("mlxnode_vs_mlxlm_gap_001"), published.claim("mlxnode_vs_mlxlm_gap_2x")
    gap_text = pct(gap) if gap else "not measured"
    out.append(
        _not_measured(
            "mlxnode_vs_mlxlm_gap_001",
            "fastest",
            f"mlx-node does not run in the workbook. Proxy: our {judged} loop is {gap_text} against "
            f"generate_step ({label}, {s.where}); published: mlx-node ~{gap_001['published']:g}"
            f"{gap_001['unit']} {gap_001['direction']}",
        )
    )
    out.append(
        _not_measured(
            "mlxnode_vs_mlxlm_gap_2x",
            "fastest",
            f"mlx-node does not run in the workbook. Proxy: our {judged} loop is {gap_text} and our copy of "
            f"generate_step's steps {pct(copy) if copy else 'not measured'} against generate_step's speed "
            f"({label}, {s.where}): a loop written outside mlx-lm is not {gap_2x['published']:g}{gap_2x['unit']} "
            f"slower by itself; published {gap_2x['published']:.1f}{gap_2x['unit']}",
        )
    )
    out.append(cpp_bound_finding(df, s))
    return out


# The claims absolute_findings judges from generate_step's trials beside the judged loop's (comparison
# loop_overhead on the claims model), with their sections: not measured where that comparison did not run.
ABSOLUTE_CLAIMS = [
    ("mlxlm_decode_tok_s_001", "variants"),
    ("mlxlm_decode_tok_s_000", "variants"),
    ("mlxlm_forward_pass_ms", "variants"),
    ("mlxnode_decode_tok_s_001", "variants"),
    ("mlxnode_variance_pct", "variability"),
    ("mlxnode_vs_mlxlm_gap_001", "fastest"),
    ("mlxnode_vs_mlxlm_gap_2x", "fastest"),
]


def cpp_bound_finding(df: pd.DataFrame, s: Setup) -> Finding:
    """No C++ binding runs here: the host-side share of generate_step's steps bounds what one could change."""
    label = s.claims_label
    host = Interval.of(
        measure.summarize(split_share(df, label, "logprobs_always", ["graph build", "sampling", "other"]))
    )
    return _not_measured(
        "python_mlx_faster_than_cpp",
        "split",
        f"no C++ binding runs in the workbook. Bound from the host-side split: all host-side Python work of "
        f"generate_step's steps (graph building, sampling, loop) is {share_text(host)} of the time per token "
        f"({label}, {s.where}), so no binding, faster or slower, can change decode speed by more than that "
        f"share unless it builds a different graph",
    )


def variability_finding(df: pd.DataFrame, s: Setup) -> Finding:
    """mlx-lm's run-to-run spread from the variability pass (whole generations spread over the comparisons), in the
    published statistic at the published run count (spread.expected_half_range)."""
    claim_id, label, k = plans.VARIANCE_CLAIM, s.claims_label, spread.PUBLISHED_RUNS
    runs = loop_stats.variability_runs(df, label)
    need = spread.MIN_SPREAD_RUNS
    if len(runs) < need:
        ran = "variability_runs = 0: the pass was skipped" if runs.empty else f"only {len(runs)} runs"
        return _not_measured(
            claim_id,
            "variability",
            f"mlx-lm's run-to-run spread needs at least {need} whole generations (variability_runs) for an "
            f"interval of the spread of {k} runs that covers near its 95%, and {label} has {ran}",
        )
    e = spread.expected_half_range(runs)
    reason = stop_reason(rows(df, plans.VARIABILITY, label=label))
    half_range = Interval.of(e).scaled(100)
    c, (lo, hi) = published.claim(claim_id), published.figure_range(claim_id)
    tol = s.variance_tolerance_pts
    verdict = verdicts.effect_matches(half_range, lo, hi, tolerance=tol)
    pass_rows = rows(df, plans.VARIABILITY, plans.VARIABILITY_METRIC, label=label)
    tokens = pass_rows.generated_tokens
    gaps = pass_rows["after"].nunique() if "after" in pass_rows else 0
    when = (
        f"spread over {gaps} points of the notebook (after its comparisons)" if gaps > 1 else "back to back"
    )
    first = rows(df, "first_use", "warmup_s", label=label, variant="mlx_lm").value
    cold = (
        f" The first generation here took {first.iloc[0]:.3g} s (first use: kernels compiled, buffers "
        "allocated), not a cold run of the write-up's kind, so it is left out: only the warm part of the "
        "published spread is compared."
        if len(first)
        else " No cold first run is recorded here: only the warm part of the published spread is compared."
    )
    return Finding(
        id=claim_id,
        verdict=verdict,
        section="variability",
        measured=half_range.measured(
            f"% (half range / mean of {k} warm runs)", n=e.n, method=e.method, stop_reason=reason
        ),
        published=published.reference(claim_id),
        statement=f"mlx-lm's decode speed over {e.n} whole generate_step runs of {int(tokens.iloc[0])} tokens "
        f"{when} ({label}, {s.where}; {runs.min():.1f}-{runs.max():.1f} tok/s, median "
        f"{runs.median():.1f}): half the range over the mean of {k} runs, the published statistic at the "
        f"published run count (seed 001: '5 runs per prompt'), averaged over every {k} of our {e.n} runs, is "
        f"{share_text(half_range)} (95% interval: {e.method}, n={e.n} runs"
        f"{stopped(reason)}); published {span(lo, hi)}% on "
        f"{c['hardware']} (81-109 tok/s, a cold first run included). Match within ±{tol:g} points: "
        f"{verdict}.{cold}",
    )


def identity_finding(df: pd.DataFrame, s: Setup) -> Finding:
    """The loop logic's verdict comes from the identity check (clear logit margins); agreement on the
    benchmark presets (nearly tied logits) is quoted beside it as information."""
    ident = rows(df, "identity", "tokens_equal_to_reference")
    prefix = rows(df, "identity", "identical_prefix")
    agree = rows(df, "agreement", "tokens_equal_to_reference")
    agree = agree[agree.reference == "mlx_lm"]
    info = (
        f" On the benchmark presets (random weights: nearly tied logits, where a last-bit difference between "
        f"two graphs can flip an argmax) the share of generate_step's tokens the greedy variants emitted was "
        f"{span_pct(agree.value.min(), agree.value.max())}: information, not this verdict."
        if not agree.empty
        else ""
    )
    if ident.empty:
        return Finding(
            id="greedy_tokens_identical",
            verdict=verdicts.INCONCLUSIVE,
            section="identity",
            statement="The identity check did not run." + info,
        )
    differ = ident[ident.value < 1]
    where_model = f"{ident.label.iloc[0]} with its weights scaled up (clear logit margins), {s.where}"
    tokens = int(prefix.value.max())
    if differ.empty:
        verdict = verdicts.HOLDS
        text = (
            f"Every greedy variant ({len(ident)} loops) emitted exactly generate_step's {tokens} tokens on "
            f"{where_model}."
        )
    else:
        verdict = verdicts.DOES_NOT_HOLD
        first = prefix.set_index("variant").value
        text = (
            f"Not every greedy variant emitted generate_step's tokens on {where_model}: "
            + ", ".join(f"{v} from token {int(first[v])}" for v in differ.variant)
            + " differ."
        )
    low = float(ident.value.min())
    return Finding(
        id="greedy_tokens_identical",
        verdict=verdict,
        section="identity",
        measured=Interval(low, low, low).measured("fraction"),
        statement=text + info,
    )


def findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Every finding of the notebook, in the order the notebook presents them."""
    out = (
        speedup_findings(df, s)
        + share_findings(df, s)
        + sampling_findings(df, s)
        + fastest_findings(df, s)
        + absolute_findings(df, s)
        + [identity_finding(df, s)]
    )
    missing = {c["id"] for c in published.claims("02_decode_loop")} - {f.id for f in out}
    assert not missing, f"claims without a finding: {missing}"
    return scope.settle(out, df)
