"""bench/scaling.py runs end to end in its quick mode and draws its plot (figures are not checked: no timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(180)
def test_quick_run_measures_every_operation_and_draws_the_plot(tmp_path: Path) -> None:
    png = tmp_path / "scaling.png"
    done = subprocess.run(
        [sys.executable, str(BENCH / "scaling.py"), "--quick", "--lengths", "10", "100", "--only", "memory",
         "sqlite", "--plot", str(png)],
        capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and " msgs" not in line]
    names = {line.split("|")[1].strip() for line in rows}
    for op in ("fresh turn", "warm turn", "load", "append", "fork", "delete", "search"):
        assert {f"{op}, memory", f"{op}, sqlite"} <= names
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[1:3]), line
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
