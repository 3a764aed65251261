"""07_serving's measurements: mlx_lm.server under load (server.py starts it, loadgen.py drives it) against the
same checkpoint in process (mlx-lm's generate_step and BatchGenerator).

Every function takes a Run and stores each trial as soon as it finishes; warm-ups are never stored. Each request
gets a prompt whose first token no earlier request had, so the server's prompt cache can never shorten a prefill
except in the prompt-reuse experiment, where that is the point (`cached_tokens` is stored to show it).
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import mlx.core as mx
import numpy as np

from mlx_workbook import models
from mlx_workbook.core import results
from mlx_workbook.investigations.serving import loadgen
from mlx_workbook.investigations.serving.server import Server
from mlx_workbook.probes import decode

OVERHEAD_VARIANTS = ["in-process generate_step", "in-process BatchGenerator", "HTTP, concurrency 1"]


def validate(
    *,
    preset: str,
    bits: int,
    dtype: str,
    group_size: int,
    prompt_tokens: int,
    gen_tokens: int,
    overhead_lengths: list[int],
    concurrencies: list[int],
    rate_fractions: list[float],
    prefix_tokens: int,
    suffix_tokens: int,
    request_timeout_s: float,
    counts: dict[str, int],
) -> None:
    """One clear error for impossible parameters, before a model is built or a server started."""
    config = models.preset_config(preset)
    models.check_bits(bits, preset)
    models.validate(dtype, bits or None, group_size)
    if prompt_tokens < 1 or min(gen_tokens, min(overhead_lengths or [0])) < 2:
        raise ValueError(
            f"prompt_tokens must be >= 1 and gen_tokens / overhead_lengths >= 2 (TPOT needs two tokens), got "
            f"{prompt_tokens}, {gen_tokens}, {overhead_lengths}"
        )
    if not concurrencies or min(concurrencies) < 1:
        raise ValueError(f"concurrencies must be positive integers, got {concurrencies}")
    if any(f <= 0 for f in rate_fractions):
        raise ValueError(f"rate_fractions must be > 0, got {rate_fractions}")
    if prefix_tokens < 1 or suffix_tokens < 1:
        raise ValueError(
            f"prefix_tokens and suffix_tokens must be >= 1, got {prefix_tokens}, {suffix_tokens}"
        )
    context = int(config.get("max_position_embeddings") or 0)
    longest = max(prompt_tokens + gen_tokens, prefix_tokens + 2 * suffix_tokens)
    if context and longest > context:
        raise ValueError(f"{preset} holds {context} positions; a request here needs {longest}")
    if request_timeout_s <= 0:
        raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s}")
    bad = {k: v for k, v in counts.items() if v < 1}
    if bad:
        raise ValueError(f"these counts must be >= 1: {bad}")


# --- the model, on disk for the server and in memory for the in-process baseline -----------------------------


def checkpoint_folder(checkpoint_dir: str = "") -> Path:
    """Where the served checkpoint goes: the given folder (kept), or a temporary one removed when the process
    exits, also after a failed cell (a 7B checkpoint is 15 GB of disk)."""
    if checkpoint_dir:
        return Path(checkpoint_dir)
    tmp = Path(tempfile.mkdtemp(prefix="07_serving-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return tmp / "model"


def prepare(preset: str, bits: int, dtype: str, group_size: int, folder) -> models.LoadedModel:
    """Build the preset, save it as the server's checkpoint folder, and load that folder back in process, so
    both sides run the very same weights."""
    from mlx_workbook.investigations.serving.server import save_served_checkpoint

    built = models.build_preset(preset, dtype=dtype, bits=bits or None, group_size=group_size)
    save_served_checkpoint(built, folder)
    del built
    mx.clear_cache()
    loaded = models.load_checkpoint(str(folder))
    loaded.name = preset  # rows say the preset, not the temporary folder
    return loaded


class Prompts:
    """Random prompts of token ids whose first token cycles through the vocabulary, so no two requests in a
    row share a prefix (the server's prompt cache holds only its last few sequences)."""

    def __init__(self, vocab_size: int, seed: int = 0):
        # The offline tokenizer's last two ids are <unk> and </s>; the one below them is the server's readiness probe.
        self.usable = vocab_size - 3
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def ids(self, n: int) -> list[int]:
        first = self.count % self.usable
        self.count += 1
        return [first, *self.rng.integers(0, self.usable, n - 1).tolist()]


def text_of(ids: list[int]) -> str:
    """The offline tokenizer's text for these ids: 't<i>' words, one token each."""
    return " ".join(f"t{i}" for i in ids)


def ids_of(text: str) -> list[int]:
    """Token ids back from generated text ('t12t7...': the tokenizer's decoder drops the spaces)."""
    return [int(m) for m in re.findall(r"t(\d+)", text)]


def probe_prompt(loaded: models.LoadedModel) -> str:
    """The server's readiness request: a token no measured prompt starts with (see Prompts)."""
    return text_of([loaded.vocab_size - 3])


def eos_id(loaded: models.LoadedModel) -> int:
    return loaded.vocab_size - 1  # the offline tokenizer's </s>


def body(ids: list[int], max_tokens: int, loaded: models.LoadedModel) -> dict:
    return loadgen.completion_body(text_of(ids), max_tokens, block_token=eos_id(loaded))


def record_server(run: results.Run, srv: Server, loaded: models.LoadedModel) -> None:
    run.record(
        "server",
        "startup_s",
        srv.startup_s,
        "s",
        pid=srv.proc.pid,
        port=srv.port,
        command=" ".join(srv.command[1:]),
        label=loaded.label,
        **loaded.describe(),
    )


# --- in process ----------------------------------------------------------------------------------------------


def _bias(loaded: models.LoadedModel) -> list:
    from mlx_lm.sample_utils import make_logits_processors

    return make_logits_processors(logit_bias={eos_id(loaded): -1e9})  # the same bias the HTTP requests carry


def generate_once(loaded: models.LoadedModel, ids: list[int], n: int) -> dict:
    """mlx-lm's generate_step (greedy), clocked per token like the HTTP client: ttft, e2el, tokens."""
    gen = decode.measure_generation(loaded.model, mx.array(ids), n, logits_processors=_bias(loaded))
    return {"stamps": gen.token_times_s, "tokens": gen.tokens}


def batch_once(loaded: models.LoadedModel, prompts: list[list[int]], n: int) -> list[dict]:
    """mlx-lm's BatchGenerator (the engine inside mlx_lm.server) over `prompts` at once, each token's host
    arrival clocked per sequence."""
    from mlx_lm.generate import BatchGenerator

    b = len(prompts)
    gen = BatchGenerator(loaded.model, max_tokens=n, completion_batch_size=b, prefill_batch_size=b)
    mx.synchronize()
    tic = time.perf_counter()
    uids = gen.insert(prompts, [n] * b, logits_processors=[_bias(loaded) for _ in prompts])
    out = {u: {"stamps": [], "tokens": []} for u in uids}
    while responses := gen.next_generated():
        now = time.perf_counter() - tic
        for r in responses:
            out[r.uid]["stamps"].append(now)
            out[r.uid]["tokens"].append(int(r.token))
    gen.close()
    return [out[u] for u in uids]


def _latency_rows(stamps: list[float], tokens: int) -> list[tuple[str, float, str]]:
    ttft, e2el = stamps[0], stamps[-1]
    tpot = (e2el - ttft) / (tokens - 1) if tokens > 1 else float("nan")
    return [("ttft_ms", 1e3 * ttft, "ms"), ("e2el_ms", 1e3 * e2el, "ms"), ("tpot_ms", 1e3 * tpot, "ms")]


# --- server overhead at concurrency 1 --------------------------------------------------------------------------


def overhead(
    run: results.Run,
    srv: Server,
    loaded: models.LoadedModel,
    prompts: Prompts,
    *,
    lengths: list[int],
    prompt_tokens: int,
    blocks: int,
    timeout_s: float,
    seed: int = 0,
) -> None:
    """The same prompt and token count three ways, in blocks of one each in random order: mlx-lm's generate_step,
    its BatchGenerator at batch 1 (what the server runs), and the server over HTTP with one user."""
    rng = np.random.default_rng(seed)
    cols = {**loaded.describe(), "label": loaded.label, "prompt_tokens": prompt_tokens}

    def once(variant: str, ids: list[int], n: int) -> dict:
        if variant == OVERHEAD_VARIANTS[0]:
            return generate_once(loaded, ids, n)
        if variant == OVERHEAD_VARIANTS[1]:
            return batch_once(loaded, [ids], n)[0]
        (res,) = loadgen.closed_loop(srv.url, [body(ids, n, loaded)], 1, timeout_s=timeout_s)
        if not res.ok:
            raise RuntimeError(
                f"an HTTP request at concurrency 1 failed: {res.error}; server: {srv.last_output()}"
            )
        return {"stamps": res.chunk_s, "tokens": ids_of(res.text), "cached": res.cached_tokens}

    for n in lengths:  # warm-up: every variant once per length
        for v in OVERHEAD_VARIANTS:
            once(v, prompts.ids(prompt_tokens), n)
    for block in range(blocks):
        for n in lengths:
            ids = prompts.ids(prompt_tokens)
            for v in rng.permutation(OVERHEAD_VARIANTS):
                r = once(str(v), ids, n)
                fields = dict(
                    variant=str(v),
                    length=n,
                    block=block,
                    output_tokens=len(r["tokens"]),
                    tokens_digest=decode.tokens_digest(r["tokens"]),
                    cached_tokens=r.get("cached", 0),
                    **cols,
                )
                run.record_many(
                    "overhead",
                    [
                        dict(metric=m, value=val, unit=u, trial=block, **fields)
                        for m, val, u in _latency_rows(r["stamps"], len(r["tokens"]))
                    ],
                )


# --- load: closed and open loop ------------------------------------------------------------------------------


def _record_load(
    run: results.Run, experiment: str, res: list[loadgen.RequestResult], duration_s: float, fields: dict
) -> None:
    rows = []
    for r in res:
        f = {
            **fields,
            "request": r.index,
            "ok": r.ok,
            "error": r.error,
            "output_tokens": r.output_tokens,
            "chunks": len(r.chunk_s),
            "cached_tokens": r.cached_tokens,
            "sent_s": r.sent_s,
            "first_token_at_s": r.sent_s + r.ttft_s if r.ok else float("nan"),
            "last_token_at_s": r.sent_s + r.e2el_s if r.ok else float("nan"),
        }
        if not r.ok:
            rows.append(dict(metric="failed", value=1, unit="count", trial=r.index, **f))
            continue
        rows += [
            dict(metric="ttft_ms", value=1e3 * r.ttft_s, unit="ms", trial=r.index, **f),
            dict(metric="e2el_ms", value=1e3 * r.e2el_s, unit="ms", trial=r.index, **f),
        ]
        if r.output_tokens > 1:
            rows.append(dict(metric="tpot_ms", value=1e3 * r.tpot_s, unit="ms", trial=r.index, **f))
        rows += [
            dict(metric="itl_ms", value=1e3 * g, unit="ms", trial=r.index, **f) for g in r.itl_s if g > 0
        ]
    rows.append(dict(metric="duration_s", value=duration_s, unit="s", trial=0, **fields))
    run.record_many(experiment, rows)


def closed_loop_sweep(
    run: results.Run,
    srv: Server,
    loaded: models.LoadedModel,
    prompts: Prompts,
    *,
    concurrencies: list[int],
    prompt_tokens: int,
    gen_tokens: int,
    requests_per_user: int,
    rounds: int,
    timeout_s: float,
    seed: int = 0,
) -> None:
    """Closed loop: per round, every concurrency in random order, each with `requests_per_user` x concurrency
    requests after an untimed warm-up wave of `concurrency` short requests (the server's batch shapes)."""
    rng = np.random.default_rng(seed)
    cols = {
        **loaded.describe(),
        "label": loaded.label,
        "prompt_tokens": prompt_tokens,
        "gen_tokens": gen_tokens,
    }
    for rnd in range(rounds):
        for c in rng.permutation(concurrencies):
            c = int(c)
            warm = [body(prompts.ids(prompt_tokens), 2, loaded) for _ in range(c)]
            loadgen.closed_loop(srv.url, warm, c, timeout_s=timeout_s)
            bodies = [
                body(prompts.ids(prompt_tokens), gen_tokens, loaded) for _ in range(requests_per_user * c)
            ]
            tic = time.perf_counter()
            res = loadgen.closed_loop(srv.url, bodies, c, timeout_s=timeout_s)
            _record_load(
                run, "closed_loop", res, time.perf_counter() - tic, {**cols, "concurrency": c, "round": rnd}
            )


def open_loop_sweep(
    run: results.Run,
    srv: Server,
    loaded: models.LoadedModel,
    prompts: Prompts,
    *,
    capacity_rps: float,
    rate_fractions: list[float],
    requests: int,
    prompt_tokens: int,
    gen_tokens: int,
    timeout_s: float,
    seed: int = 0,
) -> None:
    """Open loop at fractions of the closed-loop capacity (requests/s), Poisson arrivals, rates in random order."""
    rng = np.random.default_rng(seed)
    cols = {
        **loaded.describe(),
        "label": loaded.label,
        "prompt_tokens": prompt_tokens,
        "gen_tokens": gen_tokens,
    }
    for i, frac in enumerate(rng.permutation(rate_fractions)):
        rate = float(frac) * capacity_rps
        bodies = [body(prompts.ids(prompt_tokens), gen_tokens, loaded) for _ in range(requests)]
        tic = time.perf_counter()
        res = loadgen.open_loop(srv.url, bodies, rate, seed=seed + i, timeout_s=timeout_s)
        fields = {**cols, "rate_fraction": float(frac), "target_rps": rate, "capacity_rps": capacity_rps}
        _record_load(run, "open_loop", res, time.perf_counter() - tic, fields)


# --- in-process batch curve (when 04_bandwidth has none for this model and device) ---------------------------


def batch_curve(
    run: results.Run,
    loaded: models.LoadedModel,
    prompts: Prompts,
    *,
    batch_sizes: list[int],
    prompt_tokens: int,
    gen_tokens: int,
    repeats: int,
) -> None:
    """Aggregate and per-sequence tok/s of BatchGenerator per batch size (steady decode: after the first token)."""
    cols = {**loaded.describe(), "label": loaded.label, "source": "measured here"}
    for b in batch_sizes:
        batch_once(loaded, [prompts.ids(prompt_tokens) for _ in range(b)], 2)  # warm-up
        for trial in range(repeats):
            out = batch_once(loaded, [prompts.ids(prompt_tokens) for _ in range(b)], gen_tokens)
            first = max(o["stamps"][0] for o in out)
            last = max(o["stamps"][-1] for o in out)
            agg = b * (gen_tokens - 1) / (last - first)
            run.record_many(
                "inproc_batch",
                [
                    dict(metric="aggregate_tps", value=agg, unit="tokens/s", trial=trial, batch=b, **cols),
                    dict(
                        metric="per_sequence_tps",
                        value=agg / b,
                        unit="tokens/s",
                        trial=trial,
                        batch=b,
                        **cols,
                    ),
                ],
            )


def batch_curve_from_04(run: results.Run, loaded: models.LoadedModel, device: str) -> bool:
    """Copy 04_bandwidth's in-process batch rows for this model and device into this run (with their run id);
    False when its latest finished run on this device served a different model."""
    found = results.latest_run("04_bandwidth", device=device)
    if found is None:
        return False
    folder = found.path
    df = results.read_measurements(folder)
    d = loaded.describe()
    if df.empty or "batch" not in set(df.experiment):
        return False
    b = df[(df.experiment == "batch") & df.metric.isin(["aggregate_tps", "per_sequence_tps"])]
    b = b[(b.model == d["model"]) & (b.bits.fillna(0).astype(int) == d["bits"]) & (b.dtype == d["dtype"])]
    if b.empty:
        return False
    cols = {**d, "label": loaded.label, "source": f"04_bandwidth run {folder.name}"}
    run.record_many(
        "inproc_batch",
        [
            dict(metric=r.metric, value=r.value, unit=r.unit, trial=int(r.trial), batch=int(r.batch), **cols)
            for r in b.itertuples()
        ],
    )
    return True


# --- prompt reuse --------------------------------------------------------------------------------------------


def prompt_reuse(
    run: results.Run,
    srv: Server,
    loaded: models.LoadedModel,
    prompts: Prompts,
    *,
    prefix_tokens: int,
    suffix_tokens: int,
    gen_tokens: int,
    repeats: int,
    timeout_s: float,
) -> None:
    """Per trial a fresh shared prefix: first prefix + suffix A (nothing cached), then prefix + suffix B right
    after it (the server's prompt cache holds the prefix from A). Same lengths, back to back."""
    cols = {
        **loaded.describe(),
        "label": loaded.label,
        "prefix_tokens": prefix_tokens,
        "suffix_tokens": suffix_tokens,
    }
    for trial in range(repeats + 1):  # trial 0 warms up
        prefix = prompts.ids(prefix_tokens)
        for variant in ("no shared prefix", "shared prefix"):
            ids = prefix + prompts.rng.integers(0, prompts.usable, suffix_tokens).tolist()
            (res,) = loadgen.closed_loop(srv.url, [body(ids, gen_tokens, loaded)], 1, timeout_s=timeout_s)
            if not res.ok:
                # A server that broke is a finding, not a reason to lose the rest of the run: record it, start
                # the server again for the sections that follow, and stop this experiment.
                record_server_failure(run, srv, "prompt_reuse", res.error, trial=trial, variant=variant)
                srv.stop()
                srv.start()
                return
            if trial:
                run.record(
                    "prompt_reuse",
                    "ttft_ms",
                    1e3 * res.ttft_s,
                    "ms",
                    trial=trial - 1,
                    variant=variant,
                    cached_tokens=res.cached_tokens,
                    prompt_tokens=res.prompt_tokens,
                    **cols,
                )


def server_error(srv: Server) -> str:
    """The server's own last error line (e.g. 'mlx_lm.server generation thread died: ...'), else its last line."""
    lines = [line.strip() for line in srv.last_output().splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or line.startswith(("RuntimeError", "ValueError"))]
    return (errors or lines or ["no output"])[0 if errors else -1][:300]


def record_server_failure(run: results.Run, srv: Server, section: str, error: str, **fields) -> None:
    run.record(
        "server_failures",
        "failed_request",
        1.0,
        "count",
        section=section,
        error=str(error)[:200],
        server_error=server_error(srv),
        server_alive=srv.alive(),
        **fields,
    )


# --- bad input and faults ------------------------------------------------------------------------------------


def _post(srv: Server, content: bytes, timeout_s: float) -> tuple[int, str]:
    r = httpx.post(
        srv.url + loadgen.COMPLETIONS,
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=timeout_s,
    )
    return r.status_code, r.text[:160]


def _healthy(srv: Server) -> bool:
    try:
        return httpx.get(srv.url + "/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def faults(
    run: results.Run,
    srv: Server,
    loaded: models.LoadedModel,
    prompts: Prompts,
    *,
    prompt_tokens: int,
    gen_tokens: int,
    timeout_s: float,
    burst: int = 32,
) -> None:
    """Malformed JSON, an invalid parameter, a prompt longer than the model's context, a client that hangs up
    mid-stream, `burst` new connections at once, and (last: it kills the server) a request after the server
    died. One row per case: what came back, how long it took, and whether the server still answered a normal
    request afterwards."""
    import json

    context = int(loaded.config.get("max_position_embeddings") or 0)
    cols = {**loaded.describe(), "label": loaded.label}

    def normal_request() -> loadgen.RequestResult:
        return loadgen.closed_loop(
            srv.url, [body(prompts.ids(prompt_tokens), gen_tokens, loaded)], 1, timeout_s=timeout_s
        )[0]

    def burst_of(n: int) -> tuple[int, str]:
        res = loadgen.closed_loop(
            srv.url, [body(prompts.ids(prompt_tokens), 2, loaded) for _ in range(n)], n, timeout_s=timeout_s
        )
        failed = [r.error.split(":")[0] for r in res if not r.ok]
        kinds = ", ".join(sorted(set(failed)))
        return (200 if not failed else 0), f"{n - len(failed)} of {n} served" + (
            f"; failed: {kinds}" if failed else ""
        )

    def disconnect() -> tuple[int, str]:
        long = body(prompts.ids(prompt_tokens), 100 * gen_tokens, loaded)
        got = 0
        with httpx.stream("POST", srv.url + loadgen.COMPLETIONS, json=long, timeout=timeout_s) as r:
            for line in r.iter_lines():
                got += line.startswith("data: ")
                if got == 2:
                    break  # leaving the block closes the connection mid-stream
        return r.status_code, f"closed after {got} chunks of {100 * gen_tokens} tokens"

    cases = [
        ("malformed JSON", "400", lambda: _post(srv, b'{"prompt": "t1 t2", "max_tokens": ', timeout_s)),
        (
            "invalid parameter (max_tokens = 0)",
            "400",
            lambda: _post(srv, json.dumps(body(prompts.ids(4), 0, loaded)).encode(), timeout_s),
        ),
        (
            f"oversize prompt ({context + 16} tokens, context {context})",
            "an error (400/413)",
            lambda: _post(
                srv,
                json.dumps({**body(prompts.ids(context + 16), 2, loaded), "stream": False}).encode(),
                timeout_s,
            ),
        ),
        ("client disconnects mid-stream", "server goes on serving", disconnect),
        (f"burst of {burst} new connections at once", "all served", lambda: burst_of(burst)),
    ]
    for case, expected, fn in cases:
        tic = time.perf_counter()
        try:
            status, outcome = fn()
        except httpx.HTTPError as exc:
            status, outcome = 0, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - tic
        after = normal_request()
        run.record(
            "faults",
            "elapsed_ms",
            1e3 * elapsed,
            "ms",
            case=case,
            expected=expected,
            status=status,
            outcome=outcome,
            next_request_ok=after.ok,
            next_request_e2el_ms=1e3 * after.e2el_s if after.ok else float("nan"),
            server_alive=srv.alive(),
            **cols,
        )
    srv.kill()
    tic = time.perf_counter()
    res = normal_request()
    run.record(
        "faults",
        "elapsed_ms",
        max(1e3 * (time.perf_counter() - tic), 1e-3),
        "ms",
        case="request after the server died",
        expected="a prompt connection error, no hang",
        status=res.status,
        outcome=res.error or "answered (?)",
        next_request_ok=False,
        next_request_e2el_ms=float("nan"),
        server_alive=srv.alive(),
        **cols,
    )
