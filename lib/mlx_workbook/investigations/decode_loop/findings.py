"""02_decode_loop's findings, one per published claim (data/published, notebook 02_decode_loop) plus the loop
identity and the fastest loop per model, each computed from the stored rows with verdicts.py."""

from __future__ import annotations

import math

import pandas as pd

from mlx_workbook.core import measure, published, verdicts
from mlx_workbook.core.frames import rows
from mlx_workbook.core.results import Finding
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.investigations.decode_loop import stats as loop_stats
from mlx_workbook.investigations.decode_loop.analysis import (
    Setup,
    fastest_table,
    split_ms_table,
    split_share,
    variant_table,
)
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
    "rep_penalty_scatter_potential": (
        "mlx-lm's vectorized (scatter) repetition penalty over one applied token by token",
        "claims",
        False,
    ),
    "slice_vs_take_potential": ("the last logits by slicing over take + squeeze", "claims", False),
}
# claim -> (what its pair isolates, the Setup tolerance (±%) it is judged with: "minor" allows more than "none")
NO_IMPACT = {
    "dedicated_stream_minor": ("a dedicated stream over the default one", "minor_tolerance_pct"),
    "rep_penalty_vectorized_no_impact": (
        "the token-by-token repetition penalty over the vectorized one",
        "no_impact_tolerance_pct",
    ),
}
# The compiled-sampling speed-up is an unimplemented expectation ("~"): its range is widened by this much (x).
COMPILED_SAMPLING_TOLERANCE_X = 0.1
# Seed 000's per-token split (forward pass, sampling, transfer) divides its whole token time, published as
# this claim ("constant at ~N ms/token"); its shares, not its ms, are compared across devices.
TOKEN_TIME_CLAIM = "per_token_time_flat"


def pct(i: Interval) -> str:
    """A speed-up in % at two decimals: sub-1% claims are judged here."""
    return change_text(i, "+.2f")


def _not_measured(claim_id: str, section: str, what: str) -> Finding:
    return Finding(
        id=claim_id,
        verdict=verdicts.INCONCLUSIVE,
        section=section,
        published=published.reference(claim_id),
        statement=f"Not measured in this run: {what}.",
    )


def speedup_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    out = []
    for claim_id, (what, section, headline) in SPEEDUPS.items():
        a, b = loop_stats.CLAIM_PAIRS[claim_id]
        model = s.judged_on(claim_id)
        m = loop_stats.speedup_pct(df, model, a, b)
        if m is None:
            out.append(_not_measured(claim_id, section, f"variants {a!r} and {b!r} must both run on {model}"))
            continue
        c = published.claim(claim_id)
        lo, hi = published.figure_range(claim_id)
        verdict = verdicts.effect_matches(m, lo, hi, loop_stats.claim_tolerance(lo, hi))
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section=section,
                headline=headline,
                measured=m.measured("%"),
                published=published.reference(claim_id),
                statement=f"{what[0].upper() + what[1:]}: {pct(m)} tokens/s ({a} vs {b}, {model}, {s.where}); "
                f"published "
                f"{span(lo, hi)}% ({c['hardware']}, {c['software'].get('other') or 'MLX'}); verdict: {verdict}.",
            )
        )
    for claim_id, (what, tolerance) in NO_IMPACT.items():
        a, b = loop_stats.CLAIM_PAIRS[claim_id]
        tol = getattr(s, tolerance)
        m = loop_stats.speedup_pct(df, s.claims_label, a, b)
        if m is None:
            out.append(
                _not_measured(
                    claim_id, "claims", f"variants {a!r} and {b!r} must both run on {s.claims_label}"
                )
            )
            continue
        verdict = verdicts.no_effect(m, tol)
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section="claims",
                measured=m.measured("%"),
                published=published.reference(claim_id),
                statement=f"Speed of {what}: {pct(m)} ({a} vs {b}, {s.claims_label}, {s.where}); the claim of no more "
                f"than a minor / no impact holds within ±{tol:g}% only if the whole interval does; "
                f"verdict: {verdict}.",
            )
        )
    return out


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
                statement=f"Share of per-token time in {what} for generate_step's steps (our timed copy, "
                f"{s.claims_label}, {s.where}): {share_text(m)}; published "
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
    token, and the compiled chain's speed-up on sampling alone."""
    out, share_of_token, tol, label = [], {}, s.share_tolerance_pts, s.claims_label
    token_ms = published.figure_range(TOKEN_TIME_CLAIM)[0]
    chain_variant = "sample_chain" if not loop_stats.decode_tps(df, label, "sample_chain").empty else "mlx_lm"
    per_token = rows(df, "decode", "ms_per_token")
    per_token = per_token[(per_token.label == label) & (per_token.variant == chain_variant)].value
    for claim_id, name in (
        ("sampling_ms_per_token_000", "mlx_lm_chain"),
        ("data_transfer_ms_per_token", "transfer"),
    ):
        lo, hi = published.figure_range(claim_id)
        sampler_ms = _sampler_ms(df, label, name)
        if sampler_ms.empty:
            out.append(_not_measured(claim_id, "sampling", f"sampler {name!r} was not timed on {label}"))
            continue
        m = Interval.of(measure.ratio_interval(sampler_ms, per_token)).scaled(100)
        share_of_token[name] = m
        pub_lo, pub_hi = 100 * lo / token_ms, 100 * hi / token_ms
        verdict = verdicts.effect_matches(m, pub_lo, pub_hi, tolerance=tol)
        what = (
            "Token + logprobs transfer to the host"
            if name == "transfer"
            else "Sampling with the top-p/min-p/top-k chain (mlx-lm)"
        )
        out.append(
            Finding(
                id=claim_id,
                verdict=verdict,
                section="sampling",
                measured=m.measured("%"),
                published=published.reference(claim_id),
                statement=f"{what} takes {measure.summarize(sampler_ms).median:.3g} ms per token on "
                f"{s.where}, {share_text(m)} of a {chain_variant} token ({label}); "
                f"published ~{span(lo, hi)} ms of ~{token_ms:g} ms ({span(pub_lo, pub_hi)}%) for "
                f"mlx-node; absolute ms do not carry over between devices, so the shares are compared "
                f"(±{tol:g} points): {verdict}.",
            )
        )
    if len(share_of_token) == 2:
        a, t = share_of_token["mlx_lm_chain"], share_of_token["transfer"]
        fwd = Interval(100 - a.value - t.value, 100 - a.high - t.high, 100 - a.low - t.low)
        lo_ms, hi_ms = published.figure_range("forward_pass_ms_of_20")
        lo, hi = 100 * lo_ms / token_ms, 100 * hi_ms / token_ms
        verdict = verdicts.effect_matches(fwd, lo, hi, tolerance=tol)
        out.append(
            Finding(
                id="forward_pass_ms_of_20",
                verdict=verdict,
                section="sampling",
                measured=fwd.measured("%"),
                published=published.reference("forward_pass_ms_of_20"),
                statement=f"What is left of a {chain_variant} token after sampling and transfer "
                f"(the forward pass, seed "
                f"000's decomposition): {share_text(fwd)} ({label}, {s.where}); "
                f"published {span(lo_ms, hi_ms)} of ~{token_ms:g} ms ({lo:.0f}-{hi:.0f}%) for mlx-node; match "
                f"within ±{tol:g} points: {verdict}.",
            )
        )
    else:
        out.append(
            _not_measured(
                "forward_pass_ms_of_20", "sampling", "samplers 'mlx_lm_chain' and 'transfer' are both needed"
            )
        )
    chain_u, chain_c = _sampler_ms(df, label, "chain"), _sampler_ms(df, label, "chain_compiled")
    if chain_u.empty or chain_c.empty:
        out.append(
            _not_measured(
                "compiled_sampling_speedup_expected",
                "sampling",
                "samplers 'chain' and 'chain_compiled' are both needed",
            )
        )
        return out
    m = Interval.of(measure.ratio_interval(chain_u, chain_c))
    lo, hi = published.figure_range("compiled_sampling_speedup_expected")
    verdict = verdicts.effect_matches(m, lo, hi, tolerance=COMPILED_SAMPLING_TOLERANCE_X)
    out.append(
        Finding(
            id="compiled_sampling_speedup_expected",
            verdict=verdict,
            section="sampling",
            measured=m.measured("x"),
            published=published.reference("compiled_sampling_speedup_expected"),
            statement=f"Compiling the sampling chain into one mx.compile speeds sampling alone by "
            f"{interval_text(m, 'x', fmt='.2f')} ({label} vocabulary, {s.where}); expected {span(lo, hi)}x (seed 000, "
            f"not implemented there); verdict (published range widened by {COMPILED_SAMPLING_TOLERANCE_X:g}x): "
            f"{verdict}.",
        )
    )
    return out


def fastest_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Per model: the library's fastest greedy loop against generate_step, and why not, from the data."""
    out, ms = [], split_ms_table(df)
    for spec, row in zip(s.labels, fastest_table(df, variant_table(df), s).itertuples()):
        m = loop_stats.speedup_pct(df, row.label, row.fastest, "mlx_lm")
        copy = loop_stats.speedup_pct(df, row.label, "logprobs_always", "mlx_lm")
        why = ""
        if not row.at_least_as_fast:
            host = ms.loc[(row.label, row.fastest)] if (row.label, row.fastest) in ms.index else None
            host_ms = (
                host.reindex(["graph build", "sampling", "other"]).sum() if host is not None else math.nan
            )
            gap_ms = (
                1e3 / loop_stats.decode_tps(df, row.label, row.fastest).median()
                - 1e3 / loop_stats.decode_tps(df, row.label, "mlx_lm").median()
            )
            why = (
                f" It is not: {gap_ms:.3g} ms per token slower, against {host_ms:.3g} ms per token of host-side "
                f"work in the loop; our copy of generate_step's own steps is {pct(copy) if copy else 'not measured'}"
                f" against it, so the gap is "
                f"{'the loop machinery (Python per step)' if copy and copy.high < 0 else 'noise or this variant'}."
            )
        out.append(
            Finding(
                id=f"fastest_vs_generate_step_{spec.replace(':', '_').replace('.', '_')}",
                verdict=verdicts.HOLDS if row.at_least_as_fast else verdicts.DOES_NOT_HOLD,
                section="fastest",
                headline=spec == next(iter(s.labels)),
                measured=m.measured("%"),
                statement=f"Fastest library loop on {row.label} ({s.where}): {row.fastest}, {pct(m)} tokens/s against "
                f"mlx-lm's generate_step ({'at least as fast within noise' if row.at_least_as_fast else 'slower'})."
                f"{why}",
            )
        )
    return out


def absolute_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Absolute speeds, variability and the mlx-node / C++ comparisons: measured here, but set beside figures
    of other hardware or code, so they do not apply (variability of mlx-lm itself is compared)."""
    label, na, summary = s.claims_label, verdicts.NOT_APPLICABLE, variant_table(df)
    ref, best = loop_stats.decode_tps(df, label, "mlx_lm"), loop_stats.fastest_library_loop(summary, label)
    ref_tps, best_tps = measure.summarize(ref), measure.summarize(loop_stats.decode_tps(df, label, best))
    tps_text = interval_text(ref_tps, " tok/s", fmt=".1f")
    out = []
    for claim_id, value, text in (
        (
            "mlxlm_decode_tok_s_001",
            Interval.of(ref_tps),
            f"mlx-lm decodes {label} at {tps_text} on {s.where}",
        ),
        (
            "mlxlm_decode_tok_s_000",
            Interval.of(ref_tps),
            f"mlx-lm decodes {label} at {tps_text} on {s.where}",
        ),
        (
            "mlxnode_decode_tok_s_001",
            Interval.of(best_tps),
            f"mlx-node cannot run here; our fastest loop ({best}) decodes {label} at "
            f"{interval_text(best_tps, ' tok/s', fmt='.1f')} on {s.where}",
        ),
    ):
        c = published.claim(claim_id)
        out.append(
            Finding(
                id=claim_id,
                verdict=na,
                section="variants",
                measured=value.measured("tok/s"),
                published=published.reference(claim_id),
                statement=f"{text}; published {c['published']:g} tok/s (hardware: {c['hardware']}; "
                f"model: {c['model_published']}): an absolute speed of other hardware (and, "
                f"for mlx-node, other code), not re-measurable here.",
            )
        )
    cv_ref = loop_stats.cv_interval(ref).scaled(100)
    cv_best = loop_stats.cv_interval(loop_stats.decode_tps(df, label, best)).scaled(100)
    lm_cv, node_cv = published.claim("mlxlm_variance_pct"), published.claim("mlxnode_variance_pct")
    lo, hi = published.figure_range("mlxlm_variance_pct")
    verdict = verdicts.effect_matches(cv_ref, lo, hi, tolerance=s.variance_tolerance_pts)
    out.append(
        Finding(
            id="mlxlm_variance_pct",
            verdict=verdict,
            section="variability",
            measured=cv_ref.measured("%"),
            published=published.reference("mlxlm_variance_pct"),
            statement=f"mlx-lm's decode tokens/s varies {share_text(cv_ref)} (CV over {ref_tps.n} interleaved runs, "
            f"{label}, {s.where}); published {span(lo, hi)}% on {lm_cv['hardware']}; match "
            f"within ±{s.variance_tolerance_pts:g} points: {verdict}.",
        )
    )
    out.append(
        Finding(
            id="mlxnode_variance_pct",
            verdict=na,
            section="variability",
            measured=cv_best.measured("%"),
            published=published.reference("mlxnode_variance_pct"),
            statement=f"mlx-node cannot run here. Proxy, a second loop beside mlx-lm's on the same MLX: our fastest "
            f"loop ({best}) varies {share_text(cv_best)} against mlx-lm's {cv_ref.value:.1f}% in the same "
            f"interleaved runs ({label}, {s.where}); published {node_cv['published']:g}% vs "
            f"{lm_cv['published']:g}% ({node_cv['hardware']}).",
        )
    )
    gap = loop_stats.speedup_pct(df, label, best, "mlx_lm")
    greedy = summary[(summary.label == label) & (summary.family == "greedy")].vs_mlx_lm_pct
    gap_001, gap_2x = published.claim("mlxnode_vs_mlxlm_gap_001"), published.claim("mlxnode_vs_mlxlm_gap_2x")
    for claim_id, text in (
        (
            "mlxnode_vs_mlxlm_gap_001",
            f"mlx-node cannot run here. Proxy: our fastest loop ({best}) is {pct(gap)} "
            f"against generate_step ({label}, {s.where}); published: mlx-node "
            f"~{gap_001['published']:g}{gap_001['unit']} {gap_001['direction']}",
        ),
        (
            "mlxnode_vs_mlxlm_gap_2x",
            f"mlx-node cannot run here. Proxy: every greedy loop of ours is between "
            f"{greedy.min():+.1f}% and {greedy.max():+.1f}% of generate_step's speed ({label}, "
            f"{s.where}): a loop written outside mlx-lm is not "
            f"{gap_2x['published']:g}{gap_2x['unit']} slower by itself; "
            f"published {gap_2x['published']:.1f}{gap_2x['unit']}",
        ),
    ):
        out.append(
            Finding(
                id=claim_id,
                verdict=na,
                section="fastest",
                measured=gap.measured("%"),
                published=published.reference(claim_id),
                statement=text + ".",
            )
        )
    host = Interval.of(
        measure.summarize(split_share(df, label, "logprobs_always", ["graph build", "sampling", "other"]))
    )
    out.append(
        Finding(
            id="python_mlx_faster_than_cpp",
            verdict=na,
            section="split",
            measured=host.measured("%"),
            published=published.reference("python_mlx_faster_than_cpp"),
            statement=f"No C++ binding runs here. Bound from the split: all host-side Python work of generate_step's "
            f"steps (graph build, sampling, loop) is {share_text(host)} of "
            f"the time per token ({label}, {s.where}), so no binding, faster or slower, can change decode speed "
            f"by more than that share unless it builds a different graph.",
        )
    )
    step = rows(df, "decode", "ms_per_token")
    fwd = measure.summarize(step[(step.label == label) & (step.variant == "mlx_lm")].value)
    fwd_pub = published.claim("mlxlm_forward_pass_ms")
    out.append(
        Finding(
            id="mlxlm_forward_pass_ms",
            verdict=na,
            section="variants",
            measured=Interval.of(fwd).measured("ms"),
            published=published.reference("mlxlm_forward_pass_ms"),
            statement=f"mlx-lm's whole greedy step (forward pass included) takes "
            f"{interval_text(fwd, ' ms per token')} for {label} on {s.where}; published ~{fwd_pub['published']:g} "
            f"{fwd_pub['unit']} forward pass (hardware: {fwd_pub['hardware']}): an absolute time of other "
            f"hardware.",
        )
    )
    return out


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
    return out
