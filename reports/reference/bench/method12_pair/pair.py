"""The two method-12 runs of 03 (97d8034 and a5fbd0c: the same library, notebook and profile, each first on its own
fresh H200) against each other, and each against the 65acd48 (method 11) twins (reports/reference/bench/twins_65acd48/):
the findings' verdicts and the saved cliff lists in the words `make compare` writes (report.agreement.list_line);
then bench/cliff_tolerance.py and bench/screen_agreement.py on the method-12 pair.

    # the output is pair.txt beside this file
    PYTHONPATH=lib:bench python reports/reference/bench/method12_pair/pair.py

Neither method-12 run keeps a summary.json (the pages would take it for the reference): the 97d8034 run's was lost
with its machine, the a5fbd0c run's is kept as run_summary.json. The two bench scripts read a run's parameters
from its summary, so they get scratch copies of both runs with the a5fbd0c run's parameters, which are the 97d8034
run's too (`git diff 97d8034 a5fbd0c -- lib notebooks profiles` is empty).
"""

import json
import tempfile
from pathlib import Path

import pandas as pd

import cliff_tolerance
import screen_agreement
from mlx_workbook import ROOT
from mlx_workbook.core import results
from mlx_workbook.report import agreement

HERE = Path(__file__).parent
RUNS = {
    "97d8034": HERE / "97d8034" / "20261201T073441_03_sdpa_cliff_cuda-nvidia-h200",
    "a5fbd0c": HERE / "a5fbd0c" / "20261201T095921_03_sdpa_cliff_cuda-nvidia-h200",
}
TWINS_65ACD48 = ROOT / "reports" / "reference" / "bench" / "twins_65acd48"
TWINS = {
    "65acd48 A": TWINS_65ACD48 / "A" / "20261201T050352_03_sdpa_cliff_cuda-nvidia-h200",
    "65acd48 B": TWINS_65ACD48 / "B" / "20261201T051444_03_sdpa_cliff_cuda-nvidia-h200",
}
SUMMARY = json.loads((RUNS["a5fbd0c"] / "run_summary.json").read_text())


def verdicts(run: Path) -> pd.Series:
    if (run / results.SUMMARY).exists():
        return pd.Series({f["id"]: f["verdict"] for f in results.read_summary(run)["findings"]})
    return pd.read_csv(run / "findings.csv").set_index("id").verdict


def side_by_side(name_a: str, a: Path, name_b: str, b: Path) -> None:
    va, vb = verdicts(a), verdicts(b)
    both = va.index.intersection(vb.index)
    print(f"A = {name_a} ({a.name}), B = {name_b} ({b.name})")
    print(f"  findings: {int((va[both] == vb[both]).sum())} of {len(both)} verdicts alike")
    d = agreement.list_difference(a, b, "cliffs")
    print(f"  {agreement.list_line(d)}")  # the sentence make compare writes
    for tag, keys in (("only A", d["only_a"]), ("only B", d["only_b"])):
        for k in sorted(keys, key=str):
            print(f"    {tag}: " + " ".join(map(str, k)))


def scratch(tmp: Path, name: str, run: Path) -> Path:
    """The run's rows and tables beside a summary that holds what the bench scripts read."""
    folder = tmp / name
    folder.mkdir()
    for part in ("measurements.parquet", "tables"):
        (folder / part).symlink_to(run.resolve() / part)
    keep = {
        "notebook": SUMMARY["notebook"],
        "params": SUMMARY["params"],
        "environment": SUMMARY["environment"],
    }
    (folder / "summary.json").write_text(json.dumps(keep))
    return folder


side_by_side("97d8034", RUNS["97d8034"], "a5fbd0c", RUNS["a5fbd0c"])
for old_name, old in TWINS.items():
    for new_name, new in RUNS.items():
        side_by_side(old_name, old, new_name, new)
with tempfile.TemporaryDirectory() as tmp:
    a, b = (scratch(Path(tmp), name, run) for name, run in RUNS.items())
    for script in (cliff_tolerance, screen_agreement):
        print(f"\n## bench/{script.__name__}.py, A = 97d8034, B = a5fbd0c")
        script.main([str(a), str(b)])
