"""07_serving's findings: seed 004's server claims (overhead, batching, prompt caching) with verdicts computed
from the stored rows, and what the load sweeps, the latency target and the fault cases showed."""

from __future__ import annotations

from http.server import ThreadingHTTPServer

import pandas as pd

from mlx_workbook.core import measure, published, verdicts
from mlx_workbook.core.results import Finding
from mlx_workbook.investigations.serving import analysis as an
from mlx_workbook.investigations.serving.measure import OVERHEAD_VARIANTS
from mlx_workbook.report import text
from mlx_workbook.report.text import interval_text

SRC = "004_bandwidth"  # the write-up whose server claims these findings test
GENERATE, BATCHGEN, HTTP = OVERHEAD_VARIANTS
SEQUENTIAL_TOGETHER = (
    1.2  # requests decoding together (while any decodes) below which it served one at a time
)


def _iv(row) -> verdicts.Interval:
    return verdicts.Interval(float(row["median"]), float(row["low"]), float(row["high"]))


def overhead_findings(df: pd.DataFrame, where: str) -> list[Finding]:
    """Seed 004's server overhead at 50/100/200 tokens and per request, against mlx_lm.server here."""
    summ = an.overhead_summary(df, GENERATE, HTTP)
    label = df[df.experiment == "overhead"].label.iloc[0]
    pct = summ[summ.metric == "extra_pct"].set_index("length")
    out = []
    for p in published.table(SRC, "server_overhead").itertuples():
        n = int(p.gen_tokens)
        cid = f"server_overhead_{n}_tokens"
        lo, hi = published.figure_range(cid)
        if n in pct.index:
            iv = _iv(pct.loc[n])
            out.append(
                Finding.for_claim(
                    cid,
                    verdicts.effect_matches(iv, lo, hi),
                    f"A {n}-token request over HTTP (mlx_lm.server, one streaming user) against mlx-lm's "
                    f"generate_step in process: E2EL change {interval_text(iv, '%')} (positive: the server is "
                    f"slower; paired per block, n={int(pct.loc[n].n)}; {label}, {where}). Published: {lo:g}-{hi:g}% "
                    "slower for the write-up's own server on Apple silicon.",
                    iv.measured("%", length=n),
                    "overhead",
                )
            )
        else:
            near = int(min(pct.index, key=lambda m: abs(m - n)))
            out.append(
                Finding.for_claim(
                    cid,
                    verdicts.INCONCLUSIVE,
                    f"{n} tokens is not among this profile's overhead lengths; nearest: {near} tokens, "
                    f"{interval_text(_iv(pct.loc[near]), '%')} ({label}, {where}; published {lo:g}-{hi:g}%).",
                    None,
                    "overhead",
                )
            )
    split = an.fixed_and_per_token(df, GENERATE, HTTP)
    lo, hi = published.figure_range("server_overhead_ms_per_request")
    iv, per_token = verdicts.Interval.of(split["per_request"]), verdicts.Interval.of(split["per_token"])
    how = (
        f"the paired extra TTFT over generate_step (n={split['per_request'].n} blocks, all lengths), beside "
        f"{interval_text(per_token, ' ms')} per token (paired extra TPOT)"
    )
    out.append(
        Finding.for_claim(
            "server_overhead_ms_per_request",
            verdicts.effect_matches(iv, lo, hi),
            f"Fixed cost of a request over HTTP: {interval_text(iv, ' ms')}, {how} ({label}, {where}); "
            f"published ~{lo:g}-{hi:g} ms per request.",
            iv.measured("ms"),
            "overhead",
        )
    )
    tp = summ[summ.metric == "extra_ms_per_token"]
    split = an.overhead_table(df)
    tpot = split[split.metric == "tpot_ms"].pivot_table(index="length", columns="variant", values="median")
    longest = int(tpot.index.max())
    out.append(
        Finding(
            id="http_overhead_split",
            section="overhead",
            statement=f"Where the time goes at {longest} tokens (median TPOT): generate_step "
            f"{tpot.loc[longest, GENERATE]:.3g} ms, BatchGenerator at batch 1 (the server's engine) "
            f"{tpot.loc[longest, BATCHGEN]:.3g} ms, HTTP {tpot.loc[longest, HTTP]:.3g} ms per token; the HTTP "
            f"path adds {interval_text(_iv(tp[tp.length == longest].iloc[0]), ' ms')} per token over "
            f"generate_step. Same tokens on all three paths: {an.same_tokens(df)}. {label}, {where}.",
            measured=_iv(tp[tp.length == longest].iloc[0]).measured("ms per token", length=longest),
        )
    )
    return out


def load_findings(df: pd.DataFrame, where: str, params: dict) -> list[Finding]:
    """Batching, throughput against concurrency and the in-process curve, and where the latency target breaks."""
    ttft_t, tpot_t, p = params["slo_ttft_ms"], params["slo_tpot_ms"], params["slo_percentile"]
    table = an.load_table(df, "closed_loop", "concurrency", ttft_t, tpot_t)
    summ = an.load_summary(table, "concurrency")
    label = df[df.experiment == "closed_loop"].label.iloc[0]
    levels = sorted(int(c) for c in table.concurrency.unique())
    top, one = levels[-1], levels[0]
    out = []
    tps = table.pivot_table(index="round", columns="concurrency", values="output_tps")
    speed = measure.ratio_interval(tps[top], tps[one])
    together = an.level_stat(summ, "concurrency", top, "decoding_together")
    overlapped = an.level_stat(summ, "concurrency", top, "overlapped_share")
    mode = (
        "serves one request at a time"
        if together["median"] < SEQUENTIAL_TOGETHER
        else "decodes concurrent requests in one batch"
    )
    n_rounds = int(tps.shape[0])
    out.append(
        Finding.for_claim(
            "batching_better_utilization",
            verdicts.at_least(verdicts.Interval.of(speed), 1.0),
            f"At {top} concurrent users mlx_lm.server delivers {interval_text(verdicts.Interval.of(speed), 'x')} "
            f"the output tokens/s of {one} user ({tps[one].median():.4g} -> {tps[top].median():.4g} tok/s, "
            f"median of {n_rounds} rounds; {label}, {where}). It {mode}: while any request was decoding, "
            f"{together['median']:.3g} were on average, and {overlapped['median']:.0%} of requests decoded while "
            "another did."
            + (
                " mlx-lm 0.32's server does this out of the box (BatchGenerator, --decode-concurrency): no "
                "architecture change is needed for it."
                if together["median"] >= SEQUENTIAL_TOGETHER
                else ""
            ),
            verdicts.Interval.of(speed).measured("x", concurrency=int(top)),
            "concurrency",
        )
    )
    out.append(
        Finding(
            id="server_batching_mode",
            section="concurrency",
            statement=f"mlx_lm.server {mode} ({label}, {where}): requests decoding together (while any decodes) per "
            "concurrency "
            + ", ".join(
                f"{int(c)}: {an.level_stat(summ, 'concurrency', c, 'decoding_together')['median']:.2g}"
                for c in levels
            )
            + ".",
            measured=_iv(together).measured("requests decoding together", concurrency=int(top)),
        )
    )
    inp = an.inproc_table(df)
    agg = inp[inp.metric == "aggregate_tps"].set_index("batch")["median"]
    curve = summ[summ.metric == "output_tps"].set_index("concurrency")
    p50 = an.percentiles(df, "closed_loop", ["concurrency"])
    tpot50 = p50[(p50.metric == "tpot_ms") & (p50.p == 50)].set_index("concurrency")["value"]
    out.append(
        Finding(
            id="throughput_curve",
            section="concurrency",
            statement="Output tok/s over HTTP by concurrency (median over rounds, p50 TPOT): "
            + ", ".join(
                f"{int(c)}: {r['median']:.4g} [{r.low:.4g}, {r.high:.4g}] ({tpot50.get(c, float('nan')):.3g} ms)"
                for c, r in curve.iterrows()
            )
            + "; in process, BatchGenerator aggregate tok/s by batch: "
            + ", ".join(f"{int(b)}: {v:.4g}" for b, v in agg.items())
            + f" ({label}, {where}).",
            measured={"value": float(curve["median"].max()), "unit": "output tok/s (best level)"},
        )
    )
    common = [c for c in levels if c in agg.index]
    if common:
        c = int(max(common))
        http = an.level_stat(summ, "concurrency", c, "output_tps")["median"]
        source = df[df.experiment == "inproc_batch"].source.iloc[0]
        out.append(
            Finding(
                id="http_vs_inprocess_batch",
                section="frontier",
                statement=f"At {c} users the server reaches {http / agg[c]:.0%} of the in-process BatchGenerator's "
                f"aggregate tok/s at batch {c} ({http:.4g} vs {agg[c]:.4g} tok/s; in-process curve: {source}); "
                "the gap is what the server adds around the same engine (HTTP, JSON, tokenizing and detokenizing, "
                "streaming, its scheduling of prefills into the running batch), not split further here.",
                measured={"value": http / agg[c], "unit": "ratio", "concurrency": int(c)},
            )
        )
    pct = an.percentiles(df, "closed_loop", ["concurrency"])
    brk = an.break_concurrency(pct, ttft_t, tpot_t, p)
    good = summ[summ.metric == "goodput_rps"].set_index("concurrency")["median"]
    best = int(good.idxmax())
    where_breaks = (
        f"breaks at {brk['point']} users (p{p} above target)"
        + (
            f", clearly (whole interval above) at {brk['clear']}"
            if brk["clear"]
            else ", no level is clearly above it"
        )
        if brk["point"]
        else f"holds at every concurrency up to {top}"
    )
    out.append(
        Finding(
            id="latency_target_break",
            section="concurrency",
            headline=True,
            statement=f"The latency target (p{p} TTFT <= {ttft_t:g} ms and p{p} TPOT <= {tpot_t:g} ms) "
            f"{where_breaks}; goodput peaks at {best} users with {good[best]:.3g} req/s ({label}, {where}).",
            measured={"value": brk["point"] or 0, "unit": "users (0: never breaks)", "clear": brk["clear"]},
        )
    )
    return out


def failures_finding(df: pd.DataFrame, where: str) -> Finding:
    """Requests of the load sweeps that did not complete, with their errors and when they were sent."""
    d = df[df.experiment.isin(["closed_loop", "open_loop"]) & (df.metric == "failed")]
    total = int((df.experiment.isin(["closed_loop", "open_loop"]) & (df.metric == "e2el_ms")).sum()) + len(d)
    if d.empty:
        statement = f"All {total} requests of the closed- and open-loop sweeps completed ({where})."
    else:
        parts = []
        for (exp, err), g in d.groupby(["experiment", d.error.str.split(":").str[0]]):
            levels = ", ".join(
                f"{'concurrency' if exp == 'closed_loop' else 'rate x'} {lv:g}"
                for lv in sorted(
                    g.concurrency.dropna().unique() if exp == "closed_loop" else g.rate_fraction.unique()
                )
            )
            parts.append(
                f"{len(g)} x {err} in the {exp.replace('_', ' ')} ({levels}), sent {1e3 * g.sent_s.min():.0f}-"
                f"{1e3 * g.sent_s.max():.0f} ms after the level started"
            )
        statement = (
            f"{len(d)} of {total} requests failed: " + "; ".join(parts) + ". mlx_lm.server runs Python's "
            f"ThreadingHTTPServer (listen backlog {ThreadingHTTPServer.request_queue_size}, one accepting thread); "
            f"failed requests count in no throughput or goodput here ({where})."
        )
    return Finding(
        id="failed_requests",
        section="concurrency",
        statement=statement,
        measured={"value": float(len(d)), "unit": f"failed requests of {total}"},
    )


def reuse_finding(df: pd.DataFrame, where: str) -> Finding:
    d = df[df.experiment == "prompt_reuse"]
    crash = df[df.experiment == "server_failures"]
    crash = crash[crash.section == "prompt_reuse"] if "section" in crash else crash
    if d.empty or not crash.empty:
        why = (
            f"mlx_lm.server failed a prompt-reuse request ({crash.error.iloc[0]}); its log says: "
            f"{crash.server_error.iloc[0]}. The server was started again for the sections after this one"
            if not crash.empty
            else "no prompt-reuse pair was measured"
        )
        return Finding.for_claim(
            "prompt_caching_reduces_ttft",
            verdicts.NOT_MEASURED,
            f"Not measured: {why} ({where}).",
            None,
            "prompt-reuse",
        )
    speed = measure.ratio_interval(
        d[d.variant == "no shared prefix"].value, d[d.variant == "shared prefix"].value
    )
    tab = an.reuse_table(df).set_index("variant")
    iv = verdicts.Interval.of(speed)
    return Finding.for_claim(
        "prompt_caching_reduces_ttft",
        verdicts.at_least(iv, 1.0),
        f"With a {int(d.prefix_tokens.iloc[0])}-token prefix shared with the previous request, mlx_lm.server's "
        f"prompt cache cuts TTFT {interval_text(iv, 'x')} ({tab.loc['no shared prefix', 'median']:.3g} -> "
        f"{tab.loc['shared prefix', 'median']:.3g} ms, n={speed.n}; the server reported "
        f"{int(tab.loc['shared prefix', 'cached_tokens'])} cached tokens) with no client-side work; "
        f"{d.label.iloc[0]}, {where}.",
        iv.measured("x"),
        "prompt-reuse",
    )


def faults_finding(df: pd.DataFrame, where: str) -> Finding:
    t = an.faults_table(df)
    parts = [
        f"{r.case}: {int(r['HTTP status (0: none)']) or 'no response'} in {r.elapsed_ms:.0f} ms"
        + (f" ({r.outcome.split(':')[0]})" if r.case.startswith(("burst", "request after")) else "")
        for _, r in t.iterrows()
    ]
    alive = t[t.case != "request after the server died"]
    return Finding(
        id="faults",
        section="faults",
        statement="; ".join(parts)
        + f". The server kept answering after every bad request: {bool(alive.next_request_ok.all())}; "
        f"longest case {t.elapsed_ms.max():.0f} ms, so nothing hung ({where}).",
        measured={"value": float(t.elapsed_ms.max()), "unit": "ms (longest case)"},
    )


def findings(df: pd.DataFrame, params: dict) -> list[Finding]:
    where = text.where(df)
    return [
        *overhead_findings(df, where),
        *load_findings(df, where, params),
        failures_finding(df, where),
        reuse_finding(df, where),
        faults_finding(df, where),
    ]


def closing_note(found: list[Finding]) -> str:
    """The overhead, the throughput curve and the concurrency at which the latency target breaks, quoted."""
    by_id = {f.id: f for f in found}
    keys = [
        "server_overhead_ms_per_request",
        "http_overhead_split",
        "batching_better_utilization",
        "throughput_curve",
        "http_vs_inprocess_batch",
        "latency_target_break",
        "prompt_caching_reduces_ttft",
    ]
    return "\n".join(f"- **{k}** ({by_id[k].verdict}): {by_id[k].statement}" for k in keys if k in by_id)
