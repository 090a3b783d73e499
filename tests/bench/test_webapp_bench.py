"""bench/webapp.py runs end to end in its quick mode: the recipe under uvicorn, real clients, the read-back check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(180)
def test_quick_run_on_sqlite_measures_and_loses_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "webapp.py"), "--quick", "--only", "sqlite"],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| examples/webapp.py, SQLite"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1]) > 0  # turns per second
    acked, conflicts, lost, doubled = (int(x) for x in cells[6].split(" / "))
    assert acked + conflicts == 20  # every contended request was answered 200 or 409, none dropped
    assert (lost, doubled) == (0, 0)
