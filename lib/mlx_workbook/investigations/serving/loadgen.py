"""An asynchronous streaming load generator for an OpenAI-compatible /v1/completions endpoint (httpx).

Closed loop: `concurrency` clients, each sends its next request when the last one finished. Open loop: requests
arrive at a target rate with exponential gaps (a Poisson process), whether or not earlier ones finished, as
vLLM's benchmark_serving sends them. Every request has a total deadline, so a load never hangs.

Clocks are client-side (time.perf_counter) from just before the request is sent: the arrival of every streamed
chunk that carries text is one output token's arrival (mlx_lm.server sends one chunk per generated token).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np

COMPLETIONS = "/v1/completions"


@dataclass
class RequestResult:
    index: int
    sent_s: float  # when it was sent, seconds since the load started
    chunk_s: list[float] = field(default_factory=list)  # arrival of each token chunk, seconds since sent
    done_s: float = math.nan  # the stream's end ([DONE] or the body's end), seconds since sent
    output_tokens: int = 0  # the server's usage.completion_tokens (chunks when it sends no usage)
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server took from its prompt cache
    text: str = ""
    status: int = 0
    error: str = ""  # empty when the request completed

    @property
    def ok(self) -> bool:
        return not self.error and self.status == 200 and bool(self.chunk_s)

    @property
    def ttft_s(self) -> float:
        return self.chunk_s[0] if self.chunk_s else math.nan

    @property
    def e2el_s(self) -> float:
        """vLLM's E2EL: from sending the request to its last token."""
        return self.chunk_s[-1] if self.chunk_s else math.nan

    @property
    def tpot_s(self) -> float:
        """vLLM's TPOT: (E2EL - TTFT) / (output tokens - 1), the first token excluded."""
        n = self.output_tokens
        return (self.e2el_s - self.ttft_s) / (n - 1) if n > 1 else math.nan

    @property
    def itl_s(self) -> list[float]:
        """vLLM's ITL: the gaps between successive token chunks of this request."""
        return list(np.diff(self.chunk_s))


def completion_body(
    prompt: str, max_tokens: int, *, block_token: int | None = None, stream: bool = True
) -> dict:
    """A greedy completion of exactly `max_tokens` tokens: `block_token` (the EOS id) gets a logit bias of
    -1e9, since mlx_lm.server has no ignore_eos; the server does not batch requests that set a seed."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if block_token is not None:
        body["logit_bias"] = {str(block_token): -1e9}
    return body


async def stream_request(
    client: httpx.AsyncClient, url: str, body: dict, *, index: int, t0: float, timeout_s: float
) -> RequestResult:
    """One streamed request, clocked; any failure (timeout, refused, HTTP error) is recorded, never raised."""
    tic = time.perf_counter()
    res = RequestResult(index=index, sent_s=tic - t0)

    async def read() -> None:
        async with client.stream("POST", url + COMPLETIONS, json=body) as resp:
            res.status = resp.status_code
            if resp.status_code != 200:
                res.error = f"HTTP {resp.status_code}: {(await resp.aread()).decode(errors='replace')[:200]}"
                return
            async for line in resp.aiter_lines():
                if not line.startswith("data: "):  # blank separators and ': keepalive' comments
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                _take_chunk(res, json.loads(data), time.perf_counter() - tic)
        res.done_s = time.perf_counter() - tic

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        res.error = f"timeout after {timeout_s:g} s"
    except (httpx.HTTPError, json.JSONDecodeError, OSError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    if not res.output_tokens:
        res.output_tokens = len(res.chunk_s)
    if not res.error and not res.chunk_s:
        res.error = "stream ended without a token"
    return res


def _take_chunk(res: RequestResult, obj: dict, at_s: float) -> None:
    usage = obj.get("usage")
    if usage:
        res.output_tokens = int(usage.get("completion_tokens") or 0)
        res.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        res.cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    for choice in obj.get("choices") or []:
        text = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
        if text:
            res.chunk_s.append(at_s)
            res.text += text


def _client(connections: int, timeout_s: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s))


async def _closed_loop(
    url: str, bodies: list[dict], concurrency: int, timeout_s: float
) -> list[RequestResult]:
    out: list[RequestResult] = []
    pending = iter(enumerate(bodies))
    async with _client(concurrency, timeout_s) as client:
        t0 = time.perf_counter()

        async def user() -> None:
            for i, body in pending:  # a shared iterator: each user takes the next request when it is free
                out.append(await stream_request(client, url, body, index=i, t0=t0, timeout_s=timeout_s))

        await asyncio.gather(*(user() for _ in range(concurrency)))
    return sorted(out, key=lambda r: r.index)


async def _open_loop(
    url: str, bodies: list[dict], rate: float, seed: int, timeout_s: float, max_connections: int
) -> list[RequestResult]:
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, len(bodies)))
    async with _client(max_connections, timeout_s) as client:
        t0 = time.perf_counter()
        tasks = []
        for i, (body, at) in enumerate(zip(bodies, arrivals)):
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
            tasks.append(
                asyncio.create_task(stream_request(client, url, body, index=i, t0=t0, timeout_s=timeout_s))
            )
        return list(await asyncio.gather(*tasks))


def _run(coro):
    # A fresh event loop in a worker thread: Jupyter's kernel already runs one in the main thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def closed_loop(url: str, bodies: list[dict], concurrency: int, *, timeout_s: float) -> list[RequestResult]:
    """Send every body with `concurrency` users in a closed loop; results in body order."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    return _run(_closed_loop(url, bodies, concurrency, timeout_s))


def open_loop(
    url: str, bodies: list[dict], rate: float, *, seed: int = 0, timeout_s: float, max_connections: int = 256
) -> list[RequestResult]:
    """Send every body at Poisson arrivals of `rate` requests/s; results in body order."""
    if rate <= 0:
        raise ValueError(f"request rate must be > 0, got {rate}")
    return _run(_open_loop(url, bodies, rate, seed, timeout_s, max_connections))
