"""bench/redis_parser.py runs end to end in its quick mode: both parsers, every measure, nothing written."""

from __future__ import annotations

import pytest

from ._quick import quick_table

pytestmark = pytest.mark.services


@pytest.mark.timeout(300)
def test_quick_run_reports_both_parsers(redis_url: str) -> None:
    rows = quick_table("redis_parser.py")
    assert [row[0] for row in rows] == ["hiredis (the redis extra)", "pure Python (redis-py alone)"]
    for row in rows:
        assert len(row) == 4
        assert all(float(cell.split()[0]) > 0 for cell in row[1:])
