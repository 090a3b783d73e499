"""bench/sqlite_writers.py runs end to end in its quick mode: both variants at every rate, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(300)
def test_quick_run_reports_both_variants_at_each_rate() -> None:
    results = BENCH / "RESULTS.md"
    before = results.read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(BENCH / "sqlite_writers.py"), "--quick"], capture_output=True, text=True, timeout=290
    )
    assert done.returncode == 0, done.stderr
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    rows = [[cell.strip() for cell in row] for row in rows if "---" not in row[0]]
    assert {(row[0], row[1]) for row in rows} == {
        (rate, variant)
        for rate in ("17", "50", "100")
        for variant in ("writer lock (now)", "busy handler only (before)")
    }
    for row in rows:
        p50, p99 = (float(cell.split()[0]) for cell in row[2:4])
        assert 0 < p50 <= p99
    assert results.read_text(encoding="utf-8") == before  # --quick prints only
