"""Running a benchmark in its quick mode, as the bench tests do: it must succeed and write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def quick_table(script: str, timeout: float = 290) -> list[list[str]]:
    """The rows (cells stripped, header and rule left out) of the table ``bench/<script> --quick`` prints,
    after checking that it succeeded and left bench/RESULTS.md as it was."""
    results = BENCH / "RESULTS.md"
    before = results.read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    assert results.read_text(encoding="utf-8") == before  # --quick prints only
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in row] for row in rows if "---" not in row[0]]
