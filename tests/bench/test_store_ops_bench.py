"""bench/store_ops.py runs end to end in its quick mode and reports each of its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(300)
def test_quick_run_reports_delete_memory_and_load() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "store_ops.py"), "--quick"], capture_output=True, text=True, timeout=290
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    labels = [row.strip("|").split("|")[0].strip() for row in rows[1:]]
    assert any(label.startswith("delete 1,000 messages, default") for label in labels)
    assert any(label.startswith("compact()") for label in labels)
    assert any(label.startswith("PostgreSQL load of 2,000 messages") for label in labels) or any(
        "PostgreSQL is not reachable" in row for row in rows
    )
    assert any(label.startswith("load 1,000 messages") for label in labels)
