"""report.text: the one way findings write a measured value with its interval, and a published range."""

from mlx_workbook.core import measure
from mlx_workbook.core.verdicts import Interval
from mlx_workbook.report import text


def test_an_interval_or_a_stats_median_with_unit_scale_and_format():
    i = Interval(1.2345, 1.1, 1.4)
    assert text.interval_text(i) == "1.23 [1.1, 1.4]"
    assert text.interval_text(i, " tok/s", fmt=".1f") == "1.2 tok/s [1.1, 1.4]"
    assert text.interval_text(i, "%", 100) == "123% [110, 140]"
    s = measure.summarize([2.0, 2.0, 2.0])
    assert text.interval_text(s, "x") == "2x [2, 2]"
    assert text.interval_text(None, " ms") == "n/a"


def test_changes_shares_and_published_ranges():
    change = Interval.change_pct(Interval(1.04, 1.01, 1.07))
    assert text.change_text(change) == "+4.0% [+1.0, +7.0]"
    assert text.change_text(change, "+.2f") == "+4.00% [+1.00, +7.00]"
    assert text.share_text(Interval(12.54, 11.0, 14.0)) == "12.5% [11.0, 14.0]"
    assert text.span(4, 4) == "4" and text.span(4, 5) == "4-5" and text.span(4, 5, " to ") == "4 to 5"
    assert text.span_pct(0.95, 0.95) == "95% on every one" and text.span_pct(0.9, 1.0) == "90% to 100%"
