"""07_serving's library on a real mlx_lm.server (tiny checkpoint, CPU): the server lifecycle, the load generator,
vLLM's metrics and the percentile intervals. No mocks: every request goes over HTTP to a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from mlx_workbook import models
from mlx_workbook.investigations.serving import analysis as an
from mlx_workbook.investigations.serving import loadgen, server
from mlx_workbook.investigations.serving import measure as sm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def srv(tiny_checkpoint):
    with server.Server(tiny_checkpoint, startup_timeout_s=120, probe_prompt="t509") as s:
        yield s
    assert not s.alive()


@pytest.fixture(scope="module")
def tiny_loaded(tiny_checkpoint):
    return models.load_checkpoint(str(tiny_checkpoint))


# --- the server's lifecycle ----------------------------------------------------------------------------------


def test_server_answers_and_is_stopped_on_exit(tiny_checkpoint):
    with server.Server(tiny_checkpoint) as s:
        pid = s.proc.pid
        assert s.alive() and pid in server.LIVE and s.startup_s > 0
        assert s.url.endswith(str(s.port))
    assert not alive(pid) and pid not in server.LIVE
    s.stop()  # twice is harmless


def test_a_missing_model_folder_fails_before_starting(tmp_path):
    with pytest.raises(models.ModelError, match="no config.json"):
        server.Server(tmp_path / "nowhere")


def test_a_server_that_cannot_start_gives_one_error_with_its_last_output(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    before = set(server.LIVE)
    tic = time.perf_counter()
    with pytest.raises(server.ServerError, match="did not load|exited") as err:
        server.Server(tmp_path, startup_timeout_s=120).start()
    assert "No safetensors found" in str(err.value)  # the server's own error, from its output
    assert time.perf_counter() - tic < 60  # not the whole startup deadline
    assert set(server.LIVE) == before


@pytest.mark.parametrize("ending", ["raise", "sigkill"])
def test_no_server_outlives_the_process_that_started_it(tiny_checkpoint, ending):
    # A notebook kernel that dies mid-cell: an uncaught error (atexit stops the server) or SIGKILL (no atexit;
    # on Linux the server gets SIGTERM when its parent dies).
    if ending == "sigkill" and not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux only")
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from mlx_workbook.investigations.serving.server import Server
        s = Server({str(tiny_checkpoint)!r}).start()
        print(s.proc.pid, flush=True)
        if {ending!r} == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError("a cell failed")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "lib")}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180
    )
    pid = int(proc.stdout.split()[0])
    deadline = time.time() + 15
    while alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(pid), f"server {pid} outlived its parent ({ending})"


# --- the load generator --------------------------------------------------------------------------------------


def test_closed_loop_streams_exact_token_counts_with_vllm_metrics(srv, tiny_loaded):
    prompts = sm.Prompts(tiny_loaded.vocab_size, seed=3)
    bodies = [sm.body(prompts.ids(8), 6, tiny_loaded) for _ in range(4)]
    res = loadgen.closed_loop(srv.url, bodies, 2, timeout_s=60)
    assert [r.index for r in res] == [0, 1, 2, 3]
    for r in res:
        assert r.ok, r.error
        assert r.output_tokens == 6 == len(r.chunk_s) == len(sm.ids_of(r.text))
        assert r.prompt_tokens == 8 and r.cached_tokens == 0  # fresh first token: no prompt-cache hit
        assert 0 < r.ttft_s <= r.e2el_s
        assert r.tpot_s == pytest.approx((r.e2el_s - r.ttft_s) / 5)
        assert sum(r.itl_s) == pytest.approx(r.e2el_s - r.ttft_s) and len(r.itl_s) == 5


def test_every_request_has_a_deadline(srv, tiny_loaded):
    body = sm.body(sm.Prompts(tiny_loaded.vocab_size, seed=4).ids(8), 2000, tiny_loaded)
    tic = time.perf_counter()
    (r,) = loadgen.closed_loop(srv.url, [body], 1, timeout_s=0.3)
    assert not r.ok and "timeout" in r.error and time.perf_counter() - tic < 5


def test_open_loop_sends_on_poisson_arrivals_without_waiting(srv, tiny_loaded):
    prompts = sm.Prompts(tiny_loaded.vocab_size, seed=5)
    bodies = [sm.body(prompts.ids(4), 2, tiny_loaded) for _ in range(6)]
    res = loadgen.open_loop(srv.url, bodies, rate=20.0, seed=1, timeout_s=60)
    sent = np.array([r.sent_s for r in res])
    expected = np.cumsum(np.random.default_rng(1).exponential(1 / 20.0, 6))
    assert all(r.ok for r in res)
    assert np.all(np.abs(sent - expected) < 0.05)  # sent on schedule, not after the previous one finished
    with pytest.raises(ValueError, match="rate"):
        loadgen.open_loop(srv.url, bodies, rate=0, timeout_s=1)


def test_refused_connection_is_recorded_not_raised(tiny_loaded):
    body = sm.body([1, 2, 3], 2, tiny_loaded)
    (r,) = loadgen.closed_loop(f"http://127.0.0.1:{server.free_port()}", [body], 1, timeout_s=5)
    assert not r.ok and "Connect" in r.error


def test_in_process_paths_make_the_tokens_the_server_makes(srv, tiny_loaded):
    ids = sm.Prompts(tiny_loaded.vocab_size, seed=6).ids(8)
    (http,) = loadgen.closed_loop(srv.url, [sm.body(ids, 6, tiny_loaded)], 1, timeout_s=60)
    assert sm.ids_of(http.text) == sm.generate_once(tiny_loaded, ids, 6)["tokens"]
    assert (
        sm.batch_once(tiny_loaded, [ids], 6)[0]["tokens"] == sm.generate_once(tiny_loaded, ids, 6)["tokens"]
    )


def test_prompts_never_share_a_first_token_in_a_row():
    p = sm.Prompts(100, seed=0)
    firsts = [p.ids(5)[0] for _ in range(97)]
    assert len(set(firsts)) == 97 and max(firsts) < 97  # 97: the readiness probe's token is kept out


def test_validate_rejects_impossible_parameters_before_any_work():
    ok = dict(
        preset="tiny",
        bits=0,
        dtype="float32",
        group_size=64,
        prompt_tokens=8,
        gen_tokens=8,
        overhead_lengths=[4],
        concurrencies=[1, 2],
        rate_fractions=[0.5],
        prefix_tokens=16,
        suffix_tokens=4,
        request_timeout_s=10,
        counts={"rounds": 1},
    )
    sm.validate(**ok)
    for bad, match in [
        ({"preset": "nope"}, "unknown preset"),
        ({"gen_tokens": 1}, "TPOT needs two"),
        ({"concurrencies": [0]}, "concurrencies"),
        ({"rate_fractions": [0]}, "rate_fractions"),
        ({"prefix_tokens": 5000}, "positions"),
        ({"counts": {"rounds": 0}}, "rounds"),
    ]:
        with pytest.raises(ValueError, match=match):
            sm.validate(**{**ok, **bad})


# --- metrics -------------------------------------------------------------------------------------------------


def test_quantile_interval_is_an_order_statistic_interval_with_coverage():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(300):
        qi = an.quantile_interval(rng.exponential(1.0, 200), 0.9)
        assert qi["low"] <= qi["value"] <= qi["high"] and qi["bounded"]
        hits += qi["low"] <= -np.log(0.1) <= qi["high"]
    assert hits / 300 >= 0.92  # 95% nominal, distribution-free
    small = an.quantile_interval(np.arange(50.0), 0.99)
    assert not small["bounded"] and small["high"] == 49.0 and small["n"] == 50


def _load_rows(intervals, duration=1.0, ttft=0.01) -> pd.DataFrame:
    rows = []
    for i, (first, last) in enumerate(intervals):
        f = dict(
            experiment="closed_loop",
            concurrency=2,
            round=0,
            request=i,
            ok=True,
            output_tokens=11,
            sent_s=first - ttft,
            first_token_at_s=first,
            last_token_at_s=last,
        )
        rows += [
            {**f, "metric": "ttft_ms", "value": 1e3 * ttft},
            {**f, "metric": "tpot_ms", "value": 1e3 * (last - first) / 10},
            {**f, "metric": "e2el_ms", "value": 1e3 * (last - first + ttft)},
        ]
    rows.append(dict(experiment="closed_loop", concurrency=2, round=0, metric="duration_s", value=duration))
    return pd.DataFrame(rows)


def test_load_table_tells_one_at_a_time_from_batched_and_counts_goodput():
    one_at_a_time = an.load_table(_load_rows([(0.0, 0.4), (0.5, 0.9)]), "closed_loop", "concurrency", 100, 50)
    batched = an.load_table(_load_rows([(0.0, 0.8), (0.1, 0.9)]), "closed_loop", "concurrency", 100, 50)
    assert one_at_a_time.decoding_together[0] == pytest.approx(1.0) and one_at_a_time.overlapped_share[0] == 0
    assert batched.decoding_together[0] == pytest.approx(1.6 / 0.9) and batched.overlapped_share[0] == 1
    assert batched.output_tps[0] == pytest.approx(22.0) and batched.request_rps[0] == pytest.approx(2.0)
    # TPOT 80 ms > the 50 ms target: no request counts toward goodput; with a 100 ms target both do
    assert batched.goodput_rps[0] == 0
    assert an.load_table(_load_rows([(0.0, 0.8)]), "closed_loop", "concurrency", 100, 100).goodput_rps[0] == 1


def test_break_concurrency_reads_the_percentile_against_the_target():
    pct = pd.DataFrame(
        [
            {"concurrency": c, "metric": "tpot_ms", "p": 90, "value": v, "low": v - 2, "high": v + 2}
            for c, v in [(1, 10), (2, 19), (4, 21), (8, 40)]
        ]
    )
    assert an.break_concurrency(pct, 1000, 20, 90) == {"point": 4, "clear": 8}
    assert an.break_concurrency(pct, 1000, 100, 90) == {"point": None, "clear": None}


def test_the_served_checkpoint_is_the_in_process_model(tmp_path):
    assert sm.checkpoint_folder(str(tmp_path / "kept")) == tmp_path / "kept"
    folder = sm.checkpoint_folder()
    assert folder.name == "model" and folder.parent.is_dir() and folder.parent.name.startswith("07_serving-")
    loaded = sm.prepare("tiny", 0, "float32", 64, folder)
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert loaded.name == "tiny" and loaded.source == "checkpoint" and loaded.tokenizer is not None
    assert loaded.tokenizer.encode(sm.text_of([5, 7, 9])) == [5, 7, 9]  # one word, one token


def test_a_preset_whose_tokenizer_the_server_would_misread_is_refused_before_its_weights(tmp_path):
    """transformers maps model_type qwen2 to Qwen2Tokenizer, which encodes the offline tokenizer's words as
    nothing: one clear error, and no weights written."""
    lm = models.build_preset("tiny-qwen2", dtype="float32")
    with pytest.raises(models.ModelError, match="does not read back"):
        server.save_served_checkpoint(lm, tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*.safetensors"))


class _FakeServer:
    """Stands in for a server whose generation thread dies on the first prompt-reuse request."""

    url = "http://127.0.0.1:1"

    def __init__(self):
        self.restarts = 0

    def last_output(self):
        return "INFO - Prompt processing\nERROR - mlx_lm.server generation thread died: cudaMemcpy failed"

    def alive(self):
        return True

    def stop(self):
        pass

    def start(self):
        self.restarts += 1
        return self


def test_a_server_that_breaks_during_prompt_reuse_is_a_finding_and_is_started_again(monkeypatch, tmp_path):
    from mlx_workbook.core import results, verdicts
    from mlx_workbook.investigations.serving import findings as sf

    failed = loadgen.RequestResult(index=0, sent_s=0.0, status=200, error="stream ended without a token")
    monkeypatch.setattr(loadgen, "closed_loop", lambda *a, **k: [failed])
    lm = models.build_preset("tiny", dtype="float32")
    run = results.start_run("07_serving", {"profile": "test"}, run_dir=tmp_path / "run")
    fake = _FakeServer()
    sm.prompt_reuse(
        run, fake, lm, sm.Prompts(lm.vocab_size), prefix_tokens=8, suffix_tokens=2, gen_tokens=1, repeats=2,
        timeout_s=5,
    )  # fmt: skip
    df = run.measurements
    assert fake.restarts == 1 and "prompt_reuse" not in set(df.experiment)
    assert an.reuse_chart(df, "here") is None
    f = sf.reuse_finding(df, "here")
    assert f.verdict == verdicts.NOT_MEASURED and "generation thread died" in f.statement
