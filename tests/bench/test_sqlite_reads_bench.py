"""bench/sqlite_reads.py runs end to end in its quick mode: both pool layouts with and without the other
process's holds, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(300)
def test_quick_run_reports_both_pool_layouts_with_and_without_holds() -> None:
    results = BENCH / "RESULTS.md"
    before = results.read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(BENCH / "sqlite_reads.py"), "--quick"], capture_output=True, text=True, timeout=290
    )
    assert done.returncode == 0, done.stderr
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    rows = [[cell.strip() for cell in row] for row in rows if "---" not in row[0]]
    assert {(row[0], row[1]) for row in rows} == {
        (other, pools)
        for other in ("holds 100 ms every 500 ms", "none")
        for pools in ("split pools (now)", "one pool (before)")
    }
    for row in rows:
        p50, p99, most = (float(cell.split()[0]) for cell in row[2:5])
        assert 0 < p50 <= p99 <= most
    assert results.read_text(encoding="utf-8") == before  # --quick prints only
