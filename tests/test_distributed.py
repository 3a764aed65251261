"""06_distributed: the launcher's failure handling, the plan, the statistics, and the stored data of a run."""

import json
import math
import sys
import tempfile
import textwrap
from pathlib import Path

import mlx.core as mx
import numpy as np
import pandas as pd
import pytest
from mlx.utils import tree_flatten as mlx_tree_flatten

from mlx_workbook import models
from mlx_workbook.core import results, verdicts
from mlx_workbook.investigations.distributed import analysis, findings
from mlx_workbook.investigations.distributed import measure as dist
from mlx_workbook.probes import launch
from mlx_workbook.report import runner

RANK_STUB = """
import json, os, sys, time
from pathlib import Path
import mlx.core as mx
cfg = json.loads(Path(sys.argv[1]).read_text())
g = mx.distributed.init(backend="ring", strict=True)
folder = Path(cfg["log_dir"])
(folder / f"rank{g.rank()}.pid").write_text(str(os.getpid()))
(folder / f"rank{g.rank()}.log").write_text(f"rank {g.rank()} working on step 3\\n")
with open(folder / f"rank{g.rank()}.jsonl", "a") as f:
    f.write(json.dumps({"experiment": "stub", "metric": "m", "value": 1.0, "unit": "s", "rank": g.rank()}) + "\\n")
if g.rank() == cfg["bad_rank"]:
    # fail only once every rank is running and has written its pid and journal: else, on a loaded machine,
    # the launcher may end a rank before it writes them, and the test could not check that it was ended
    deadline = time.time() + 30
    while time.time() < deadline and not all(
        (folder / f"rank{r}.jsonl").exists() for r in range(g.size())
    ):
        time.sleep(0.05)
    if cfg["mode"] == "hang":
        time.sleep(600)
    raise SystemExit("rank failed on purpose")
if cfg["mode"] == "hang":
    mx.eval(mx.distributed.all_sum(mx.ones(1)))  # waits for the hanging rank
(folder / f"rank{g.rank()}.status").write_text("ok")
"""


@pytest.fixture
def stub(tmp_path):
    path = tmp_path / "stub.py"
    path.write_text(textwrap.dedent(RANK_STUB))
    return path


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_a_failing_or_hanging_rank_is_named_and_every_process_ended(stub, tmp_path, mode):
    folder = tmp_path / "ranks"
    config = {"log_dir": str(folder), "bad_rank": 1, "mode": mode}
    with pytest.raises(launch.LaunchError) as err:
        launch.launch(
            stub, config, ranks=2, backend="ring", log_dir=folder, timeout_s=20 if mode == "hang" else 60
        )
    text = str(err.value)
    assert "rank 1 did not finish" in text and "working on step 3" in text
    assert ("timed out" in text) == (mode == "hang")
    for r in (0, 1):
        assert not launch.alive(int((folder / f"rank{r}.pid").read_text()))
    # finished trials are kept: every rank's journal rows merge into a run
    run = results.start_run("06_distributed", {}, run_dir=tmp_path / "run")
    assert dist.merge_journals(run, folder) == 2
    assert sorted(run.measurements["rank"]) == [0, 1]


def test_nccl_without_enough_gpus_is_a_reason_not_an_error():
    if mx.cuda.is_available() and mx.device_count(mx.gpu) >= 2:
        pytest.skip("this machine has the GPUs")
    reason = launch.local_ranks("nccl", 2)
    assert reason and ("GPU" in reason or "not available" in reason)
    assert launch.local_ranks("ring", 2) is None
    with pytest.raises(ValueError, match="unknown distributed backend"):
        launch.local_ranks("carrier-pigeon", 2)
    with pytest.raises(ValueError, match="spread evenly"):
        launch.local_ranks("ring", 3, ["10.0.0.1", "10.0.0.2"])


def test_launch_command_names_the_interpreter():
    cmd = launch.command(launch.Path("/x/rank.py"), ["cfg.json"], ranks=2, backend="nccl")
    assert cmd[cmd.index("--backend") + 1] == "nccl" and cmd[cmd.index("-n") + 1] == "2"
    assert cmd[-3:] == [sys.executable, "/x/rank.py", "cfg.json"]


def test_a_70b_model_only_fits_when_split():
    (plan,) = dist.plan_models(
        [{"preset": "llama-3-70b", "dtype": "bfloat16"}], ranks=2, layouts=["single", "tensor"], budget=120e9
    )
    assert plan.layouts == ("tensor",)
    assert "more than the 120.0 GB budget" in plan.skipped["single"]
    assert plan.rank_bytes["single"] > 140e9 and plan.rank_bytes["tensor"] < 0.55 * plan.rank_bytes["single"]
    (q4,) = dist.plan_models(
        [{"preset": "llama-3-70b", "dtype": "bfloat16", "bits": 4}],
        ranks=2,
        layouts=["single", "tensor"],
        budget=120e9,
    )
    assert q4.layouts == ("single", "tensor")
    (llama,) = dist.plan_models(
        [{"preset": "tiny", "dtype": "float32"}], ranks=2, layouts=["single", "pipeline"], budget=1e9
    )
    assert "pipeline" in llama.skipped  # mlx-lm's qwen3 class has no pipeline()


def test_log_interval_and_alpha_beta_recover_known_values():
    iv, n = analysis.log_interval([2.0, 2.0, 2.0])
    assert n == 3 and iv.value == pytest.approx(2.0) and iv.low == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    rows = []
    alpha, beta = 20e-6, 100e9  # 20 µs, 100 GB/s
    for trial in range(6):
        for size in [4, 1024, 2**20, 2**24, 2**28]:
            t = (alpha + size / beta) * math.exp(rng.normal(0, 0.02))
            for rank in (0, 1):
                rows.append(
                    dict(
                        experiment="collectives",
                        world_size=2,
                        op="all_sum",
                        coll_dtype="float32",
                        size_bytes=size,
                        trial=trial,
                        value=t * (1 if rank else 0.99),
                        decode_size=False,
                        rank=rank,
                    )
                )
    ab = analysis.alpha_beta(pd.DataFrame(rows)).iloc[0]
    assert ab.alpha_low < 20 < ab.alpha_high and ab.beta_low < 100 < ab.beta_high and ab.blocks == 6


def test_paired_speedup_pairs_by_block():
    rows = [
        dict(experiment="decode", rank=0, world_size=2, label="m", batch=1, layout=lay, trial=t, value=v)
        for t in range(4)
        for lay, v in (("single", 10.0 + t), ("tensor", 5.0 + t / 2))
    ]
    s = analysis.paired_speedup(pd.DataFrame(rows), "decode", "batch").iloc[0]
    assert s.speedup == pytest.approx(2.0) and s.n == 4


# --- a stored run (the notebook on the test profile: two ring ranks on this machine) ------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports-06")
    code = runner.run_notebooks(["06_distributed"], "test", {}, root=root)
    run_dir = results.find_runs(root)[0].path
    return code, run_dir, results.read_measurements(run_dir), results.read_summary(run_dir)


@pytest.mark.notebook
def test_stored_run_schema_and_both_ranks(stored):
    code, run_dir, df, summary = stored
    assert code == 0 and summary["status"] == "ok", summary.get("error")
    for experiment in (
        "collectives",
        "decode",
        "prefill",
        "step_collectives",
        "correctness",
        "checkpoint_load",
    ):
        sel = df[df.experiment == experiment]
        assert set(sel["rank"]) == {0, 1}, experiment
        assert (sel.world_size == 2).all() and (sel.dist_backend == "ring").all()
    coll = df[df.experiment == "collectives"]
    assert {"op", "coll_dtype", "size_bytes", "calls", "trial"} <= set(coll.columns)
    assert coll.decode_size.any()  # the decode-step message sizes were measured on their own
    dec = df[(df.experiment == "decode") & (df["rank"] == 0)]
    assert {"single", "tensor", "pipeline"} <= set(dec.layout)
    assert (
        df[(df.experiment == "decode") & (df["rank"] == 1)].layout != "single"
    ).all()  # single runs on rank 0
    assert (run_dir / "ranks" / "all" / "rank1.log").exists()


@pytest.mark.notebook
def test_stored_run_sharded_model_matches_one_device(stored):
    _, _, df, summary = stored
    c = analysis.correctness_table(df)
    assert set(c.layout) == {"tensor", "pipeline"}
    fp32 = c[c.dtype == "float32"]
    assert (fp32.relative_diff <= findings.LOGIT_TOLERANCE["float32"]).all()
    assert fp32.identical_tokens.all() and (c.top1_margin > 0.05).all()
    assert fp32.single_dtype_error.isna().all()  # float32 models need no float32 run
    tokens = json.loads(df[df.experiment == "correctness"].tokens_parallel.iloc[0])
    assert len(set(tokens)) > 1  # clear margins: greedy decoding does not repeat one token
    by_id = {f["id"]: f for f in summary["findings"]}
    tolerance = [findings.logit_tolerance(r)[0] for r in c.itertuples()]
    within = (c.max_abs_logit_diff <= tolerance).all()
    assert by_id["sharded_logits_match"]["verdict"] == ("holds" if within else "does not hold")
    assert by_id["megatron_two_allreduce_per_layer"]["verdict"] == "holds"
    assert by_id["nvlink_h200_per_direction"]["verdict"] == verdicts.NOT_APPLICABLE


@pytest.mark.notebook
def test_stored_run_loads_the_saved_checkpoint_with_sharded_load(stored):
    _, run_dir, df, summary = stored
    t = analysis.checkpoint_table(df)
    assert sorted(zip(t.layout, t["rank"])) == [("single", 0), ("tensor", 0), ("tensor", 1)]
    assert (t.load_s > 0).all() and (t.active_memory_gb > 0).all()
    whole, split = t[t.layout == "single"].iloc[0], t[t.layout == "tensor"]
    assert (split.weight_gb < whole.weight_gb).all()  # each rank keeps only its shard
    c = analysis.correctness_table(df)
    loaded = c[c.loaded_by == "sharded_load"]
    assert list(loaded.layout) == ["tensor"]
    # The test profile saves it in bfloat16: rank 0 also ran it upcast to float32, its own dtype error.
    r = next(loaded.itertuples())
    assert r.dtype == "bfloat16" and r.fp32_why_not == "" and r.single_dtype_error > 0
    assert r.parallel_dtype_error > 0 and 0 <= r.compared_tokens <= r.tokens
    assert findings.logit_tolerance(r)[0] == pytest.approx(
        findings.DTYPE_ERROR_MULTIPLE * r.single_dtype_error
    )
    row = df[(df.experiment == "correctness") & (df.loaded_by == "sharded_load")].iloc[0]
    assert len(json.loads(row.tokens_fp32)) == r.tokens
    same = c[c.compared_tokens > 0].tokens_match_compared.all()
    assert by_id_verdict(summary, "sharded_greedy_tokens_match") == ("holds" if same else "does not hold")
    save = df[df.experiment == "checkpoint_save"]
    assert len(save) == 1 and save.value.iloc[0] > 0
    by_id = {f["id"]: f for f in summary["findings"]}
    assert "sharded_load over 2 ranks" in by_id["sharded_load_checkpoint"]["statement"]
    assert not list(Path(tempfile.gettempdir()).glob("mlx-workbook-06-checkpoint-*"))  # the folder is removed


def by_id_verdict(summary: dict, fid: str) -> str:
    return {f["id"]: f["verdict"] for f in summary["findings"]}[fid]


def _planted(**row) -> dict:
    base = dict(
        experiment="correctness", rank=0, label="m bf16", layout="tensor", loaded_by="build", dtype="bfloat16",
        value=0.15, max_abs_logit=5.0, top1_margin=1.0, tokens=16, identical_tokens=True, first_difference=-1,
        single_dtype_error=0.1, parallel_dtype_error=0.12, single_fp32_first_difference=-1,
        parallel_fp32_first_difference=7, fp32_why_not="",
    )  # fmt: skip
    return base | row


@pytest.mark.parametrize(
    "row, logits, tokens",
    [
        ({}, "holds", "holds"),  # 0.15 <= 2 x 0.1
        ({"value": 0.25}, "does not hold", "holds"),  # beyond twice one device's own error
        # one device's own tokens never leave fp32's (clear margins): a split token that differs fails it
        ({"identical_tokens": False, "first_difference": 3}, "holds", "does not hold"),
        # one device's own bf16 tokens leave fp32's at step 6: its margins are within bf16's rounding, so the
        # split's tokens are information, not a test (the only row here: nothing left to judge)
        ({"identical_tokens": False, "first_difference": 3, "single_fp32_first_difference": 6},
         "holds", "inconclusive"),
        ({"single_fp32_first_difference": 0}, "holds", "inconclusive"),
        # no float32 copy: the fixed bf16 bound (0.03 x 5 = 0.15) is the fallback, and every step is compared
        ({"value": 0.2, "single_dtype_error": None, "single_fp32_first_difference": None,
          "fp32_why_not": "the float32 copy does not fit"}, "does not hold", "holds"),
        ({"dtype": "float32", "value": 4e-4, "single_dtype_error": None}, "holds", "holds"),  # 1e-4 x 5
        ({"dtype": "float32", "value": 6e-4, "single_dtype_error": None}, "does not hold", "holds"),
    ],
)  # fmt: skip
def test_the_correctness_verdicts_follow_the_measured_dtype_tolerance(row, logits, tokens):
    found = {f.id: f for f in findings.correctness(pd.DataFrame([_planted(**row)]))}
    assert found["sharded_logits_match"].verdict == logits
    assert found["sharded_greedy_tokens_match"].verdict == tokens
    if row.get("fp32_why_not"):
        assert "does not fit" in found["sharded_logits_match"].statement
    if row.get("single_fp32_first_difference") == 6:
        assert "leave float32's at step 6, the split's leave one device's at step 3" in (
            found["sharded_greedy_tokens_match"].statement
        )


def test_an_older_run_without_float32_runs_keeps_the_fixed_tolerance():
    old = _planted(value=0.1)
    for col in (
        "single_dtype_error",
        "parallel_dtype_error",
        "single_fp32_first_difference",
        "parallel_fp32_first_difference",
        "fp32_why_not",
    ):
        old.pop(col)  # fmt: skip
    c = analysis.correctness_table(pd.DataFrame([old]))
    assert c.compared_tokens.iloc[0] == 16 and c.single_dtype_error.isna().all()
    f = findings.correctness(pd.DataFrame([old]))[0]
    assert f.verdict == "holds" and "fixed 0.03" in f.statement


def test_the_float32_reference_is_an_upcast_copy_where_it_fits():
    from mlx_workbook.investigations.distributed import rank as rankmod

    loaded = models.build_preset("tiny", dtype="bfloat16", seed=0)
    prompt = mx.array([[1, 2, 3, 4]], dtype=mx.uint32)
    assert "does not fit the 0.0 GB budget" in rankmod.float32_copy_reason(loaded.model, 1.0)
    assert rankmod.dtype_reference(loaded.model, prompt, 3, 1.0)["reference"] is None
    single = rankmod.greedy(loaded.model, prompt, 3)
    fp32 = rankmod.dtype_reference(loaded.model, prompt, 3, 1e12)
    assert fp32["why_not"] == "" and len(fp32["reference"][0][0]) == 3
    assert all(v.dtype == mx.float32 for _, v in mlx_tree_flatten(loaded.model.parameters()))
    assert rankmod.dtype_reference(loaded.model, prompt, 3, 1e12) is None  # float32 already: nothing to add
    row = rankmod.comparison(single, single, 1.0, fp32)
    assert row["single_dtype_error"] == row["parallel_dtype_error"] > 0 and row["fp32_reference"]
    quantized = models.build_preset("tiny", dtype="bfloat16", bits=4, seed=0)
    assert "quantized" in rankmod.float32_copy_reason(quantized.model, 1e12)


def test_a_missing_checkpoint_folder_is_one_error_before_any_rank_starts(tmp_path):
    with pytest.raises(models.ModelError, match="checkpoint folder not found"):
        dist.check_checkpoint(str(tmp_path / "missing"), {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.ModelError, match="no config.json"):
        dist.check_checkpoint(str(tmp_path / "empty"), {})
    with pytest.raises(ValueError, match="no-such-preset"):
        dist.check_checkpoint("", {"preset": "no-such-preset", "dtype": "float32"})
    root = tmp_path / "reports"
    code = runner.run_notebooks(
        ["06_distributed"], "test", {"checkpoint": str(tmp_path / "missing")}, root=root
    )
    assert code != 0
    assert not list(root.rglob("ranks"))  # nothing was launched


def test_the_notebook_skips_cleanly_without_the_devices(tmp_path):
    if mx.cuda.is_available() and mx.device_count(mx.gpu) >= 2:
        pytest.skip("this machine has the GPUs")
    code = runner.run_notebooks(["06_distributed"], "test", {"backend": "nccl"}, root=tmp_path)
    run_dir = results.find_runs(tmp_path)[0].path
    summary = results.read_summary(run_dir)
    assert code == 0 and summary["status"] == "ok"
    assert [f["id"] for f in summary["findings"]] == ["distributed_not_run"]
    statement = summary["findings"][0]["statement"]
    assert "GPU" in statement or "not available" in statement


def test_pipeline_is_dropped_where_send_recv_do_not_run():
    from mlx_workbook.investigations.distributed import rank as rankmod

    class NoSendRecv:  # what the probe leaves behind on MLX's CUDA backend
        size, p2p = 2, "RuntimeError: Send has no CUDA implementation."

        def log(self, text):
            pass

    spec = {"label": "m", "layouts": ["single", "tensor", "pipeline"]}
    assert rankmod._without_unsupported(NoSendRecv(), spec)["layouts"] == ["single", "tensor"]
    cap = pd.DataFrame(
        [
            dict(experiment="capability", metric="send_recv_works", value=0.0, error=NoSendRecv.p2p, rank=r)
            for r in (0, 1)
        ]
    )
    f = findings.point_to_point(cap)
    assert f.verdict == "does not hold" and "no CUDA implementation" in f.statement


def test_a_model_that_only_fits_split_is_said_so_and_quoted_in_the_closing_note():
    plan = [
        dict(experiment="plan", label="big bf16", model="llama-3-70b", layout=lay, value=v, runs=runs, why_not=why,
             budget_bytes=128e9, world_size=2)
        for lay, v, runs, why in (("single", 141e9, False, "needs 141.1 GB of weights on one rank"),
                                  ("tensor", 72e9, True, ""))
    ]  # fmt: skip
    dec = [
        dict(
            experiment="decode",
            rank=0,
            world_size=2,
            label="big bf16",
            batch=1,
            layout="tensor",
            trial=t,
            value=20.0 + t,
        )
        for t in range(5)
    ]
    df = pd.DataFrame(plan + dec).assign(device="NVIDIA H200", dist_backend="nccl")
    (f,) = findings.decode_speed(df)
    assert f.id == "tensor_decode_big_bf16_b1" and f.measured["only_fits"] and f.verdict == "holds"
    assert "only fits when split" in f.statement and "141.1 GB" in f.statement
    assert f.statement in findings.closing_note([f])
