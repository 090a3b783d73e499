"""bench/sqlite_reads.py runs end to end in its quick mode: both pool layouts with and without the other
process's holds, nothing written."""

from __future__ import annotations

import pytest

from ._quick import quick_table


@pytest.mark.timeout(300)
def test_quick_run_reports_both_pool_layouts_with_and_without_holds() -> None:
    rows = quick_table("sqlite_reads.py")
    assert {(row[0], row[1]) for row in rows} == {
        (other, pools)
        for other in ("holds 100 ms every 500 ms", "none")
        for pools in ("split pools (now)", "one pool (before)")
    }
    for row in rows:
        p50, p99, most = (float(cell.split()[0]) for cell in row[2:5])
        assert 0 < p50 <= p99 <= most
