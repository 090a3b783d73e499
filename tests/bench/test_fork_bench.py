"""bench/fork.py runs end to end in its quick mode and reports the fork of each store it measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(300)
def test_quick_run_reports_fork_and_its_baseline() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "fork.py"), "--quick", "--only", "memory", "sqlite"],
        capture_output=True,
        text=True,
        timeout=290,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    labels = [row.strip("|").split("|")[0].strip() for row in rows[1:]]
    assert "fork, sqlite" in labels and "copying fork, sqlite" in labels and "copying / fork, sqlite" in labels
    assert "copying / fork, memory" in labels
    assert "Load average" in done.stdout
