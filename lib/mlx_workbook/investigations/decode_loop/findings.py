"""02_decode_loop's findings, one per published claim (data/published, notebook 02_decode_loop) plus the loop
identity and the fastest loop per model, each computed from the stored rows with verdicts.py."""

from __future__ import annotations

import math

import pandas as pd

from mlx_workbook.core import measure, published, scope, verdicts
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
    "slice_vs_take_potential": ("the last logits by slicing over take + squeeze", "claims", False),
}
# claim -> (what its pair isolates, the Setup tolerance (±%) it is judged with: "minor" allows more than "none")
NO_IMPACT = {
    "dedicated_stream_minor": ("a dedicated stream over the default one", "minor_tolerance_pct"),
}
# The two repetition-penalty claims are one measurement (vectorized against token-by-token), one inverted: "a
# scatter would give 0.5-1%" and "reverting to a loop had no impact". One verdict, against both figures at once
# (0 to 1%), held by the measured claim; the expectation refers to it and is counted once.
REP_PENALTY = ("rep_penalty_vectorized_no_impact", "rep_penalty_scatter_potential")
# The compiled-sampling speed-up is an unimplemented expectation ("~"): its range is widened by this much (x).
COMPILED_SAMPLING_TOLERANCE_X = 0.1
# An absolute figure of the write-ups' hardware (tok/s, ms) is widened by this share of it: run-to-run and
# machine-variant spread (judged only on that hardware: core.scope).
ABSOLUTE_TOLERANCE_SHARE = 0.1
# Seed 000's per-token split (forward pass, sampling, transfer) divides its whole token time, published as
# this claim ("constant at ~N ms/token"); its shares, not its ms, are compared across devices.
TOKEN_TIME_CLAIM = "per_token_time_flat"


def pct(i: Interval) -> str:
    """A speed-up in % at two decimals: sub-1% claims are judged here."""
    return change_text(i, "+.2f")


def _not_measured(claim_id: str, section: str, what: str) -> Finding:
    return Finding(
        id=claim_id,
        verdict=verdicts.NOT_MEASURED,
        section=section,
        published=published.reference(claim_id),
        statement=f"Not measured: {what}.",
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
        verdict = verdicts.effect_matches(m, lo, hi, loop_stats.claim_tolerance(lo, hi), no_effect_at=0.0)
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
    return out + rep_penalty_findings(df, s)


def rep_penalty_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """One verdict for the two repetition-penalty claims (REP_PENALTY): the vectorized penalty's speed over the
    token-by-token one, against 0 (no impact) to the scatter's hoped-for 1%, widened by the no-impact
    tolerance."""
    host, other = REP_PENALTY
    a, b = loop_stats.CLAIM_PAIRS[other]  # vectorized over token by token
    m = loop_stats.speedup_pct(df, s.claims_label, a, b)
    if m is None:
        why = f"variants {a!r} and {b!r} must both run on {s.claims_label}"
        return [_not_measured(host, "claims", why), _not_measured(other, "claims", why)]
    lo = min(published.figure_range(host)[0], published.figure_range(other)[0])
    hi = max(published.figure_range(host)[1], published.figure_range(other)[1])
    tol = s.no_impact_tolerance_pct
    verdict = verdicts.effect_matches(m, lo, hi, tol)
    statement = (
        f"mlx-lm's vectorized (scatter) repetition penalty over one applied token by token: {pct(m)} tokens/s "
        f"({a} vs {b}, {s.claims_label}, {s.where}). Both published claims are this one difference: reverting "
        f"to a loop 'had no impact' ({span(*published.figure_range(host))}%) and a scatter 'could give "
        f"{span(*published.figure_range(other))}%'; together {span(lo, hi)}%, widened by ±{tol:g} points: "
        f"{verdict}."
    )
    return [
        Finding(
            id=host,
            verdict=verdict,
            section="claims",
            measured=m.measured("%"),
            published=published.reference(host),
            statement=statement,
        ),
        Finding(
            id=other,
            verdict=verdict,
            section="claims",
            measured=m.measured("%", same_as=host),
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
    token, and the compiled chain's speed-up on sampling alone."""
    out, share_of_token, label = [], {}, s.claims_label
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
        # A "~" share is widened like a "~" speed-up (a quarter of its size), never by more than the share
        # tolerance: ±3 points around 2.5% would accept anything from 0 to 5.5%.
        tol = min(s.share_tolerance_pts, loop_stats.claim_tolerance(pub_lo, pub_hi))
        verdict = verdicts.effect_matches(m, pub_lo, pub_hi, tolerance=tol)
        what = (
            "Proxy, the host copy alone (item() and a numpy copy repeated on an already evaluated array, so no "
            "wait for the device is in it): token + logprobs transfer to the host"
            if name == "transfer"
            else "Proxy, the sampler timed alone (one vocabulary row, synchronized after every call, not inside "
            "the decode loop): sampling with the top-p/min-p/top-k chain (mlx-lm)"
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
        tol = s.share_tolerance_pts
        verdict = verdicts.effect_matches(fwd, lo, hi, tolerance=tol)
        out.append(
            Finding(
                id="forward_pass_ms_of_20",
                verdict=verdict,
                section="sampling",
                measured=fwd.measured("%"),
                published=published.reference("forward_pass_ms_of_20"),
                statement=f"Proxy, a residual of the two proxies above (sampler timed alone, host copy "
                f"alone): what is left of a {chain_variant} token after sampling and transfer "
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
    verdict = verdicts.effect_matches(m, lo, hi, tolerance=COMPILED_SAMPLING_TOLERANCE_X, no_effect_at=1.0)
    out.append(
        Finding(
            id="compiled_sampling_speedup_expected",
            verdict=verdict,
            section="sampling",
            measured=m.measured("x"),
            published=published.reference("compiled_sampling_speedup_expected"),
            statement=f"Sampler timed alone: compiling the sampling chain into one mx.compile speeds sampling alone "
            f"by {m.value:.2f}x "
            f"[{m.low:.2f}, {m.high:.2f}] ({label} vocabulary, {s.where}); expected {span(lo, hi)}x (seed 000, "
            f"not implemented there); verdict (published range widened by {COMPILED_SAMPLING_TOLERANCE_X:g}x): "
            f"{verdict}.",
        )
    )
    return out


def fastest_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Per model: the library loop named before measuring (Setup.judged_loop) against generate_step, at least as
    fast within the minor tolerance; the fastest of all greedy loops is quoted beside it, not judged (the best
    of several wins by selection alone), with why it is slower when it is."""
    out, ms, tol = [], split_ms_table(df), s.minor_tolerance_pct
    for spec, row in zip(s.labels, fastest_table(df, variant_table(df), s).itertuples()):
        judged = loop_stats.speedup_pct(df, row.label, s.judged_loop, "mlx_lm")
        best = loop_stats.speedup_pct(df, row.label, row.fastest, "mlx_lm")
        copy = loop_stats.speedup_pct(df, row.label, "logprobs_always", "mlx_lm")
        slug = f"fastest_vs_generate_step_{spec.replace(':', '_').replace('.', '_')}"
        if judged is None:
            out.append(_not_measured(slug, "fastest", f"{s.judged_loop!r} did not run on {row.label}"))
            continue
        verdict = verdicts.at_least(judged, -tol)
        why = ""
        if verdict == verdicts.DOES_NOT_HOLD:
            host = ms.loc[(row.label, s.judged_loop)] if (row.label, s.judged_loop) in ms.index else None
            host_ms = (
                host.reindex(["graph build", "sampling", "other"]).sum() if host is not None else math.nan
            )
            gap_ms = (
                1e3 / loop_stats.decode_tps(df, row.label, s.judged_loop).median()
                - 1e3 / loop_stats.decode_tps(df, row.label, "mlx_lm").median()
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
                measured=judged.measured("%", loop=s.judged_loop, fastest=row.fastest),
                statement=f"The library's {s.judged_loop} loop (named before measuring) on {row.label} ({s.where}): "
                f"{pct(judged)} tokens/s against mlx-lm's generate_step; at least as fast within -{tol:g}%: "
                f"{verdict}.{why} The fastest of the greedy loops here, {row.fastest}, is {pct(best)} "
                f"(information: picked after measuring, so favoured by the selection).",
            )
        )
    return out


def absolute_findings(df: pd.DataFrame, s: Setup) -> list[Finding]:
    """Absolute speeds and variability, judged against the published figures (core.scope marks them "does not
    apply" off the write-ups' Apple hardware); mlx-node and C++ comparisons are not measured (neither runs
    here), with our own loops' numbers beside them as proxies."""
    label, summary = s.claims_label, variant_table(df)
    ref, best = loop_stats.decode_tps(df, label, "mlx_lm"), loop_stats.fastest_library_loop(summary, label)
    ref_tps, best_tps = measure.summarize(ref), measure.summarize(loop_stats.decode_tps(df, label, best))
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
    step = rows(df, "decode", "ms_per_token")
    fwd = measure.summarize(step[(step.label == label) & (step.variant == "mlx_lm")].value)
    absolute(
        "mlxlm_forward_pass_ms",
        Interval.of(fwd),
        "ms",
        f"mlx-lm's whole greedy step (forward pass included) takes {fwd.median:.3g} ms per token "
        f"[{fwd.low:.3g}, {fwd.high:.3g}] for {label} on {s.where}",
    )
    out.append(
        _not_measured(
            "mlxnode_decode_tok_s_001",
            "variants",
            f"mlx-node does not run in the workbook; proxy: our fastest loop ({best}) decodes {label} at "
            f"{best_tps.median:.1f} tok/s [{best_tps.low:.1f}, {best_tps.high:.1f}] on {s.where}",
        )
    )
    spread = loop_stats.spread_interval(ref).scaled(100)
    first = rows(df, "first_use", "warmup_s")
    first = first[(first.label == label) & (first.variant == "mlx_lm")].value
    lm_cv, node_cv = published.claim("mlxlm_variance_pct"), published.claim("mlxnode_variance_pct")
    lo, hi = published.figure_range("mlxlm_variance_pct")
    verdict = verdicts.effect_matches(spread, lo, hi, tolerance=s.variance_tolerance_pts)
    cold = (
        f" The first generation here took {first.iloc[0]:.3g} s (first use: kernels compiled, buffers "
        "allocated), not a cold run of the write-up's kind, so it is left out: only the warm part of the "
        "published spread is compared."
        if len(first)
        else " No cold first run is recorded here: only the warm part of the published spread is compared."
    )
    out.append(
        Finding(
            id="mlxlm_variance_pct",
            verdict=verdict,
            section="variability",
            measured=spread.measured("% (half range / mean, warm runs)"),
            published=published.reference("mlxlm_variance_pct"),
            statement=f"mlx-lm's decode tokens/s spreads {share_text(spread)} (half the range over the mean, the "
            f"published statistic, over {ref_tps.n} warm interleaved runs, {label}, {s.where}); published "
            f"{span(lo, hi)}% on {lm_cv['hardware']} (81-109 tok/s, a cold first run included). Match within "
            f"±{s.variance_tolerance_pts:g} points: {verdict}.{cold}",
        )
    )
    cv_ref = loop_stats.cv_interval(ref).scaled(100)
    cv_best = loop_stats.cv_interval(loop_stats.decode_tps(df, label, best)).scaled(100)
    out.append(
        _not_measured(
            "mlxnode_variance_pct",
            "variability",
            f"mlx-node does not run in the workbook. Proxy, a second loop beside mlx-lm's on the same MLX: "
            f"our fastest loop ({best}) varies {share_text(cv_best)} (CV) against mlx-lm's {cv_ref.value:.1f}% "
            f"in the same interleaved runs ({label}, {s.where}); published {node_cv['published']:g}% vs "
            f"{lm_cv['published']:g}% ({node_cv['hardware']})",
        )
    )
    gap = loop_stats.speedup_pct(df, label, best, "mlx_lm")
    greedy = summary[(summary.label == label) & (summary.family == "greedy")].vs_mlx_lm_pct
    gap_001, gap_2x = published.claim("mlxnode_vs_mlxlm_gap_001"), published.claim("mlxnode_vs_mlxlm_gap_2x")
    out.append(
        _not_measured(
            "mlxnode_vs_mlxlm_gap_001",
            "fastest",
            f"mlx-node does not run in the workbook. Proxy: our fastest loop ({best}) is {pct(gap)} against "
            f"generate_step ({label}, {s.where}); published: mlx-node ~{gap_001['published']:g}"
            f"{gap_001['unit']} {gap_001['direction']}",
        )
    )
    out.append(
        _not_measured(
            "mlxnode_vs_mlxlm_gap_2x",
            "fastest",
            f"mlx-node does not run in the workbook. Proxy: every greedy loop of ours is between "
            f"{greedy.min():+.1f}% and {greedy.max():+.1f}% of generate_step's speed ({label}, {s.where}): a loop "
            f"written outside mlx-lm is not {gap_2x['published']:g}{gap_2x['unit']} slower by itself; published "
            f"{gap_2x['published']:.1f}{gap_2x['unit']}",
        )
    )
    host = Interval.of(
        measure.summarize(split_share(df, label, "logprobs_always", ["graph build", "sampling", "other"]))
    )
    out.append(
        _not_measured(
            "python_mlx_faster_than_cpp",
            "split",
            f"no C++ binding runs in the workbook. Bound from the host-side split: all host-side Python work of "
            f"generate_step's steps (graph building, sampling, loop) is {share_text(host)} of the time per token "
            f"({label}, {s.where}), so no binding, faster or slower, can change decode speed by more than that "
            f"share unless it builds a different graph",
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
    return scope.settle(out, df)
