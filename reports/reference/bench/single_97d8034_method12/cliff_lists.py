"""The method-12 run's cliff list and findings' verdicts against each run of the 65acd48 (method 11) pair, the
lists in the words `make compare` uses (report.agreement.list_line)."""

import json
from pathlib import Path

import pandas as pd

from mlx_workbook.report import agreement

new = Path("reports/reference/bench/single_97d8034_method12/A/20261201T073441_03_sdpa_cliff_cuda-nvidia-h200")
mine = pd.read_csv(new / "findings.csv").set_index("id").verdict
for old in [
    "reports/reference/20261201T050352_03_sdpa_cliff_cuda-nvidia-h200",
    "reports/reference/repeat/20261201T051444_03_sdpa_cliff_cuda-nvidia-h200",
]:
    d = agreement.list_difference(old, new, "cliffs")
    theirs = pd.Series(
        {f["id"]: f["verdict"] for f in json.loads((Path(old) / "summary.json").read_text())["findings"]}
    )
    both = mine.index.intersection(theirs.index)
    print(f"{Path(old).name} (method 11) vs {new.name} (method 12)")
    print(f"  findings: {int((mine[both] == theirs[both]).sum())} of {len(both)} verdicts alike")
    print(f"  A = 65acd48, B = 97d8034. {agreement.list_line(d)}")  # the sentence make compare writes
    for tag, keys in (("only A", d["only_a"]), ("only B", d["only_b"])):
        for k in sorted(keys, key=str):
            print(f"    {tag}: " + " ".join(map(str, k)))
