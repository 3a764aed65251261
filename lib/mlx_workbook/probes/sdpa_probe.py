"""Scaled-dot-product-attention timings over lengths, mask modes, dtypes, head dims and GQA variants.

Self-contained on purpose: it imports only `mlx` and the standard library, so `versions.py` can run this very
file under another MLX version (its own virtual env, no workbook installed) and read JSON back, while the
workbook imports the same functions in-process. One measuring code path for every version.

    python sdpa_probe.py config.json      # prints {"mlx": ..., "backend": ..., "rows": [...], "errors": [...]}

Cases sharing everything but the length form a group (one sweep). Its lengths are split into *bands*: runs of
neighbouring lengths whose calls take within `band_ratio` of each other's time, each band sharing its first length
with the previous band's last. A band uses ONE number of calls per sample for all its lengths, enough for
`target_ms` of work at its fastest length (at least `min_calls`), so every neighbouring pair of lengths is compared
at one call count, the synchronization at the end of a sample divided alike: a count chosen per length made steps
of its own (review 2026-11-30: 67 of 82 "cliffs" sat where the count changed), and one count for the whole sweep
(methods 2-10) left its short lengths under 1 ms a sample, where the sync biased their ratios toward 1. Calls are
queued without host syncs between them. Each round times every (band, length) once, in a fresh random order, so
load bursts and drift hit all lengths alike.

A candidate cliff is then re-measured by `confirm`: its two lengths alternated back to back (A B, B A, ...) for
`pairs` pairs at one fixed call count; the workbook judges the paired ratios and calls only confirmed steps
cliffs. The steps of a pass are timed in rounds, one pair of each per round in a random order, so each step's pairs
spread over the whole pass. With `passes` > 1 a step whose paired t interval still straddles its envelope's edge
after a pass gets another `pairs` pairs in the same process (`still_open`), so every process, fresh ones included,
adds pairs by the same rule until the interval decides or the passes run out.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
import time

import mlx.core as mx

MODES = ("causal", "additive", "bool", "none")  # "causal" string, additive float mask, boolean mask, no mask
VARIANTS = ("sdpa", "repeat_kv", "unfused")  # fused kernel; K/V heads repeated by hand first; composed ops
KINDS = ("prefill", "decode")  # prefill: queries = keys = length; decode: 1 query over `length` cached keys
DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}
CACHE_STEP = 256  # mlx-lm's KVCache grows its buffer in steps of 256 positions
# MLX CUDA's switch for its cuDNN attention path, read once per process: only a fresh process can change it. The
# environments the targeted passes compare, by name.
CUDNN_SDPA_VARIABLE = "MLX_CUDA_USE_CUDNN_SDPA"
CUDNN_SDPA_SETTINGS = {"default": {}, "cudnn off": {CUDNN_SDPA_VARIABLE: "0"}}
GROUP_KEYS = ("kind", "variant", "mode", "dtype", "head_dim", "n_q_heads", "n_kv_heads")


def backend() -> str:
    if mx.default_device().type != mx.DeviceType.gpu:
        return "cpu"
    metal = getattr(mx, "metal", None)
    return "metal" if metal is not None and metal.is_available() else "cuda"


# --- inputs -------------------------------------------------------------------------------------------------


def make_mask(mode: str, q_len: int, k_len: int, dtype):
    """What mlx-lm and users pass: the "causal" string, an explicit causal mask (additive or boolean), or None.

    Queries are the last q_len positions of k_len keys (the decode/chunked-prefill convention)."""
    if mode == "causal":
        return "causal"
    if mode == "none":
        return None
    allowed = mx.arange(k_len - q_len, k_len)[:, None] >= mx.arange(k_len)[None]
    if mode == "bool":
        return allowed
    if mode == "additive":
        return mx.where(allowed, mx.array(0.0, dtype), mx.array(-math.inf, dtype))
    raise ValueError(f"unknown mask mode {mode!r}; use one of {MODES}")


def attended_pairs(mode: str, q_len: int, k_len: int) -> int:
    """Query-key pairs a causal mask lets through (all pairs without one): the work attention must do."""
    if mode == "none" or q_len == 1:
        return q_len * k_len
    first = k_len - q_len + 1  # keys seen by the first query
    return q_len * first + q_len * (q_len - 1) // 2


def clear_cache() -> None:
    """Return the allocator's cached blocks (mx.clear_cache; mx.metal.clear_cache before MLX 0.24)."""
    (getattr(mx, "clear_cache", None) or mx.metal.clear_cache)()


def cache_rows(length: int) -> int:
    """Rows of the KV-cache buffer that holds `length` positions: rounded up to mlx-lm's steps of CACHE_STEP."""
    return (length + CACHE_STEP - 1) // CACHE_STEP * CACHE_STEP


def make_inputs(case: dict, seed: int = 0, *, empty_cache: bool = True):
    """q, k, v (and the mask) for one case; decode keys/values are slices of a pre-allocated cache buffer,
    like mlx-lm's KVCache.keys[..., :offset, :] (rows strided by the buffer length, not contiguous), made right
    after the allocator's cache is emptied unless `empty_cache` is False (bench/decode_sdpa_path.py's other state)."""
    dtype = DTYPES[case["dtype"]]
    hq, hkv, d, length = case["n_q_heads"], case["n_kv_heads"], case["head_dim"], case["length"]
    kq, kk, kv = mx.random.split(mx.random.key(seed + length), 3)
    q_len = length if case["kind"] == "prefill" else 1
    q = mx.random.normal((1, hq, q_len, d), key=kq).astype(dtype)
    if case["kind"] == "decode":
        # MLX CUDA (0.31+) sends decode to cuDNN when K/V fill their buffer's 256-row steps exactly; a freed block
        # the allocator's cache hands back instead (slightly larger) keeps the vector kernel, ~1.8x faster here, so
        # an empty cache first makes every process take the path a decode loop's cache does (decode_sdpa_path.py)
        if empty_cache:
            clear_cache()
        buffer = cache_rows(length)
        k = mx.random.normal((1, hkv, buffer, d), key=kk).astype(dtype)[..., :length, :]
        v = mx.random.normal((1, hkv, buffer, d), key=kv).astype(dtype)[..., :length, :]
    else:
        k = mx.random.normal((1, hkv, length, d), key=kk).astype(dtype)
        v = mx.random.normal((1, hkv, length, d), key=kv).astype(dtype)
    mask = make_mask(case["mode"], q_len, length, dtype)
    mx.eval(q, k, v, *([mask] if isinstance(mask, mx.array) else []))
    return q, k, v, mask


def unfused_attention(q, k, v, scale: float, mask):
    """Attention from plain ops (matmul, mask, float32 softmax, matmul), GQA by reshaping, not repeating."""
    b, hq, q_len, d = q.shape
    hkv, k_len = k.shape[1], k.shape[2]
    rep = hq // hkv
    qg = (q * scale).reshape(b, hkv, rep, q_len, d)
    scores = qg @ mx.expand_dims(k, 2).swapaxes(-1, -2)
    if isinstance(mask, str):
        mask = mx.arange(k_len - q_len, k_len)[:, None] >= mx.arange(k_len)[None]
    if mask is not None:
        scores = mx.where(mask, scores, -math.inf) if mask.dtype == mx.bool_ else scores + mask
    probs = mx.softmax(scores.astype(mx.float32), axis=-1).astype(q.dtype)
    return (probs @ mx.expand_dims(v, 2)).reshape(b, hq, q_len, d)


def make_call(case: dict, seed: int = 0):
    """The function one trial calls repeatedly (its inputs built once, outside the clock)."""
    q, k, v, mask = make_inputs(case, seed)
    scale = 1.0 / math.sqrt(case["head_dim"])
    variant = case["variant"]
    if variant == "sdpa":
        return lambda: mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
    if variant == "repeat_kv":  # what the Rust code did before "let SDPA handle GQA"
        rep = case["n_q_heads"] // case["n_kv_heads"]
        return lambda: mx.fast.scaled_dot_product_attention(
            q, mx.repeat(k, rep, axis=1), mx.repeat(v, rep, axis=1), scale=scale, mask=mask
        )
    if variant == "unfused":
        return lambda: unfused_attention(q, k, v, scale, mask)
    raise ValueError(f"unknown variant {variant!r}; use one of {VARIANTS}")


# --- cases --------------------------------------------------------------------------------------------------


def cases_from_grid(
    kind: str, lengths, modes, dtypes, head_dims, n_q_heads: int, n_kv_heads: int, variants=("sdpa",)
) -> list[dict]:
    """Every combination, as case dicts (decode always runs without a mask, as mlx-lm passes None)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {KINDS}")
    modes = ["none"] if kind == "decode" else list(modes)
    return [
        dict(
            kind=kind,
            variant=var,
            mode=mode,
            dtype=dt,
            head_dim=int(d),
            n_q_heads=int(n_q_heads),
            n_kv_heads=int(n_kv_heads),
            length=int(n),
        )
        for var, mode, dt, d, n in itertools.product(variants, modes, dtypes, head_dims, sorted(set(lengths)))
    ]


def groups(cases: list[dict]) -> list[list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for c in cases:
        out.setdefault(tuple(c[k] for k in GROUP_KEYS), []).append(c)
    return [sorted(g, key=lambda c: c["length"]) for g in out.values()]


# --- clocks -------------------------------------------------------------------------------------------------


def seconds_per_call(fn, calls: int) -> float:
    """`calls` calls back to back, device synchronized before the clock stops.

    Each call is queued with async_eval as soon as it is built and only the latest output is kept, so the device
    works while Python builds the next graph and outputs are recycled (as measure.time_per_call does; this file
    stays self-contained so that it runs under other MLX versions).
    """
    mx.synchronize()
    tic = time.perf_counter()
    out = None
    for _ in range(calls):
        out = fn()
        mx.async_eval(out)
    mx.eval(out)
    mx.synchronize()
    return (time.perf_counter() - tic) / calls


def warmed(fns: list, warmup: int) -> list:
    """`fns`, each called `warmup` times first (kernel compilation and first-use allocation stay off the clock)."""
    for fn in fns:
        for _ in range(warmup):
            mx.eval(fn())
    return fns


def clamped_calls(per_call: float, target_s: float, min_calls: int, max_calls: int) -> int:
    """Calls of `per_call` seconds each for about target_s of work, within [min_calls, max_calls]."""
    return max(min_calls, min(max_calls, int(math.ceil(target_s / max(per_call, 1e-7)))))


def per_call_time(fn, target_s: float, min_calls: int, max_calls: int) -> float:
    """Seconds per call of `fn`, estimated twice: 3 calls first (their time still holds a sync), then over the
    count for about target_s that estimate gives."""
    per_call = seconds_per_call(fn, 3)
    return seconds_per_call(fn, clamped_calls(per_call, target_s, min_calls, max_calls))


def calls_for(fn, target_s: float, min_calls: int, max_calls: int) -> int:
    """Calls per sample for about target_s of work of `fn` (the longer length of a step), fixed thereafter."""
    return clamped_calls(per_call_time(fn, target_s, min_calls, max_calls), target_s, min_calls, max_calls)


def within(times: list[float], ratio: float) -> bool:
    """Whether the slowest of `times` takes at most `ratio` times the fastest."""
    return max(times) <= ratio * min(times)


def bands(per_call: list[float], ratio: float) -> list[list[int]]:
    """Indexes of a sorted group's lengths split into runs whose per-call times lie within `ratio` of each
    other (at least two lengths each), each run starting at the previous one's last length: every neighbouring
    pair lies in exactly one band, so it is timed at that band's one call count."""
    if len(per_call) < 2:
        return [list(range(len(per_call)))]
    out, start = [], 0
    while start < len(per_call) - 1:
        end = start + 1
        while end + 1 < len(per_call) and within(per_call[start : end + 2], ratio):
            end += 1
        out.append(list(range(start, end + 1)))
        start = end
    return out


def case_row(case: dict) -> dict:
    q_len = case["length"] if case["kind"] == "prefill" else 1
    pairs = attended_pairs(case["mode"], q_len, case["length"])
    return {
        **case,
        "q_len": q_len,
        "k_len": case["length"],
        "pairs": pairs,
        "flops": 4.0 * pairs * case["n_q_heads"] * case["head_dim"],
    }


def run_group(
    group: list[dict],
    *,
    repeats: int,
    warmup: int,
    target_s: float,
    min_calls: int = 1,
    max_calls: int,
    band_ratio: float = 2.0,
    seed: int = 0,
    on_round=None,
) -> list[dict]:
    """Time one group's lengths in rounds (random order per round), one call count per band of lengths (`bands`:
    enough for target_s at the band's fastest length); `on_round(rows)` sees each round as it finishes."""
    fns = warmed([make_call(c, seed) for c in group], warmup)
    per_call = [per_call_time(fn, target_s, min_calls, max_calls) for fn in fns]
    split = bands(per_call, band_ratio)
    counts = [clamped_calls(min(per_call[i] for i in band), target_s, min_calls, max_calls) for band in split]
    entries = [(b, i) for b, band in enumerate(split) for i in band]
    order = random.Random(seed)
    rows = []
    for trial in range(repeats):
        done = []
        order.shuffle(entries)
        for position, (b, i) in enumerate(entries):
            ms = 1e3 * seconds_per_call(fns[i], counts[b])
            done.append(
                {
                    **case_row(group[i]),
                    "band": b,
                    "calls": counts[b],
                    "trial": trial,
                    "position": position,
                    "ms": ms,
                    "sample_ms": ms * counts[b],
                }
            )
        rows += done
        if on_round is not None:
            on_round(done)
    return rows


def prepare_step(
    before: dict, after: dict, *, warmup: int, target_s: float, min_calls: int, max_calls: int, seed: int = 0
) -> tuple[list, int]:
    """A step's two calls, warmed up, and its one call count for both (calibrated at the longer length)."""
    fns = warmed([make_call(before, seed), make_call(after, seed)], warmup)
    longer = max((0, 1), key=lambda i: (before, after)[i]["length"])
    return fns, calls_for(fns[longer], target_s, min_calls, max_calls)


def time_pair(fns: list, calls: int, before: dict, after: dict, *, pair: int, look: int) -> list[dict]:
    """One alternated pair of a step: A B on even pairs, B A on odd ones; rows carry the pair index and the pass
    (`look`) that timed them."""
    rows = []
    for position, i in enumerate((0, 1) if pair % 2 == 0 else (1, 0)):
        ms = 1e3 * seconds_per_call(fns[i], calls)
        rows.append(
            {
                **case_row((before, after)[i]),
                "calls": calls,
                "trial": pair,
                "pair": pair,
                "position": position,
                "ms": ms,
                "sample_ms": ms * calls,
                "before_length": before["length"],
                "after_length": after["length"],
                "confirm_pass": look,
            }
        )
    return rows


def still_open(step_rows: list[dict], edges: list[float], t: float) -> bool:
    """Whether a step's paired t interval (of log(after / before) over its pairs so far, critical value `t`)
    straddles an edge of its envelope [low, high] (a ratio range): neither wholly outside nor wholly inside it.
    The same rule as the workbook's cliffs._verdict on intervals.log_ratio_interval, restated here so that this
    file needs no workbook (a test holds the two together)."""
    by_pair: dict[int, dict[int, float]] = {}  # pair -> length -> ms
    for r in step_rows:
        by_pair.setdefault(r["pair"], {})[r["length"]] = r["ms"]
    before, after = step_rows[0]["before_length"], step_rows[0]["after_length"]
    logs = [math.log(ms[after] / ms[before]) for ms in by_pair.values() if len(ms) == 2]
    if len(logs) < 2:
        return True  # no interval yet
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    half = t * sd / math.sqrt(len(logs))
    low, high = math.log(edges[0]), math.log(edges[1])
    outside = mean - half > high or mean + half < low
    inside = low <= mean - half and mean + half <= high
    return not (outside or inside)


def confirm_steps(config: dict, timing: dict, on_round=None) -> tuple[list[dict], list[dict]]:
    """Every step of config["confirm"] re-measured in config["pairs"] alternated pairs (`time_pair`), the steps
    taken in rounds: each round times one pair of every step, in a fresh random order. A step's ratio can wander
    in time (on the H200, decode float32 1024 -> 1025 moved 9.6% between passes of 20 back-to-back pairs where
    independent pairs would move 2.2%; bench/input_states.py), so a step's pairs are spread over the whole pass
    rather than timed within half a second, and its interval covers the ratio over the pass. Then, up to
    config["passes"] passes, the steps `still_open` (config["edges"][i]: step i's envelope, config["t"][k]: the
    critical value after k + 1 passes) get another pass the same way, pair numbers going on. Every open step's
    inputs are held for its pass. `on_round(rows)` sees each round. Returns (rows, errors)."""
    steps = config.get("confirm", [])
    pairs, passes = int(config.get("pairs", 20)), int(config.get("passes", 1))
    order = random.Random(timing["seed"])
    rows, errors = [], []
    timed: dict[int, list[dict]] = {i: [] for i in range(len(steps))}
    open_steps = list(range(len(steps)))

    def failed(i: int, exc: Exception) -> None:  # one broken step must not lose the others' data
        errors.append(error_row(steps[i][0], exc))
        timed[i] = []

    for look in range(passes):
        prepared = {}
        for i in open_steps:
            try:
                prepared[i] = prepare_step(*steps[i], **timing)
            except Exception as exc:  # noqa: BLE001
                failed(i, exc)
        for pair in range(look * pairs, (look + 1) * pairs):
            visit = list(prepared)
            order.shuffle(visit)
            done = []
            for i in visit:
                try:
                    timed_pair = time_pair(*prepared[i], *steps[i], pair=pair, look=look)
                except Exception as exc:  # noqa: BLE001
                    failed(i, exc)
                    del prepared[i]
                    continue
                timed[i] += timed_pair
                done += timed_pair
            rows += done
            if on_round is not None and done:
                on_round(done)
        if look + 1 < passes:
            t = float(config["t"][look])
            open_steps = [i for i in prepared if timed[i] and still_open(timed[i], config["edges"][i], t)]
        del prepared  # the pass's inputs
    return rows, errors


def error_row(case: dict, exc: Exception) -> dict:
    """What the probe reports of a configuration that failed: its group's keys and the error."""
    return {**{k: case[k] for k in GROUP_KEYS}, "error": f"{type(exc).__name__}: {exc}"}


def _timing(config: dict) -> dict:
    return dict(
        warmup=int(config.get("warmup", 1)),
        target_s=float(config.get("target_ms", 10)) / 1e3,
        min_calls=int(config.get("min_calls", 1)),
        max_calls=int(config.get("max_calls", 1000)),
        seed=int(config.get("seed", 0)),
    )


def run(config: dict, on_round=None) -> dict:
    """Run every case of `config`: {"cases": [...], "repeats", "warmup", "target_ms", "min_calls", "max_calls",
    "band_ratio"} sweeps each group; {"confirm": [[before_case, after_case], ...], "pairs": 20, ...} re-measures
    candidate steps (with "passes", "edges" and "t": more passes while a step is open, `confirm_steps`).

    A group that fails (a dtype or mask an old version lacks) is reported in "errors"; the others still run."""
    rows, errors = [], []
    timing = _timing(config)
    sweeping = dict(
        timing, repeats=int(config.get("repeats", 5)), band_ratio=float(config.get("band_ratio", 2.0))
    )
    for group in groups(config.get("cases", [])):
        try:
            rows += run_group(group, on_round=on_round, **sweeping)
        except Exception as exc:  # noqa: BLE001 - one broken group must not lose the others' data
            errors.append(error_row(group[0], exc))
        clear_cache()
    confirmed, failed = confirm_steps(config, timing, on_round)
    rows, errors = rows + confirmed, errors + failed
    return {"mlx": mx.__version__, "backend": backend(), "rows": rows, "errors": errors}


def main(argv: list[str]) -> int:
    config = json.load(open(argv[1]) if len(argv) > 1 and argv[1] != "-" else sys.stdin)
    json.dump(run(config), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
