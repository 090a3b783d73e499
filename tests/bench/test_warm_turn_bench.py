"""bench/warm_turn.py runs end to end on both stores it knows (figures are not checked: no timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_short_run_prints_each_length(store: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "warm_turn.py"), "--lengths", "10", "300", "--runs", "2", "--store", store],
        capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if " messages: wall " in line]
    assert [line.split(" messages")[0].strip() for line in lines] == ["10", "300"]
