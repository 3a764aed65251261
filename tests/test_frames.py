"""core.frames.rows: the one row picker of the long-format measurement frames."""

import pandas as pd

from mlx_workbook.core.frames import rows

DF = pd.DataFrame(
    [
        dict(experiment="decode", metric="decode_tps", variant="sync", trial=0, value=10.0),
        dict(experiment="decode", metric="decode_tps", variant="pipelined", trial=0, value=12.0),
        dict(experiment="decode", metric="ms_per_token", variant="sync", trial=0, value=100.0),
        dict(experiment="split", metric="phase_ms", variant="sync", trial=0, value=1.0),
    ]
)


def test_rows_picks_by_experiment_metric_and_any_column():
    assert len(rows(DF, "decode")) == 3
    assert rows(DF, "decode", "decode_tps").value.tolist() == [10.0, 12.0]
    assert rows(DF, "decode", "decode_tps", variant="sync").value.tolist() == [10.0]
    assert rows(DF, metric="phase_ms").experiment.tolist() == ["split"]
    assert rows(DF, variant="pipelined").value.tolist() == [12.0]
    assert rows(DF).equals(DF)


def test_a_missing_column_or_experiment_picks_nothing():
    assert rows(DF, "prefill").empty
    assert rows(DF, "decode", length=128).empty  # no such column: nothing, rather than a KeyError
    assert rows(pd.DataFrame(), "decode").empty  # a run that recorded nothing yet
