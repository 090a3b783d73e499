"""bench/sqlite_writers.py runs end to end in its quick mode: both variants at every rate, nothing written."""

from __future__ import annotations

import pytest

from ._quick import quick_table


@pytest.mark.timeout(300)
def test_quick_run_reports_both_variants_at_each_rate() -> None:
    rows = quick_table("sqlite_writers.py")
    assert {(row[0], row[1]) for row in rows} == {
        (rate, variant)
        for rate in ("17", "50", "100")
        for variant in ("writer lock (now)", "busy handler only (before)")
    }
    for row in rows:
        p50, p99 = (float(cell.split()[0]) for cell in row[2:4])
        assert 0 < p50 <= p99
