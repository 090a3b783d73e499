"""bench/webapp.py runs end to end in its quick mode: the recipe under uvicorn, paired with the naive version in
interleaved rounds, real clients, the read-back check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.timeout(180)
def test_quick_run_on_sqlite_pairs_with_naive_and_loses_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "webapp.py"), "--quick", "--only", "sqlite"],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = cells(next(line for line in lines if line.startswith("| server |")))

    def row_of(start: str) -> dict[str, str]:
        return dict(zip(header, cells(next(line for line in lines if line.startswith(start))), strict=True))

    row, naive = row_of("| examples/webapp.py, SQLite"), row_of("| *guides' naive")
    assert float(row["turns / s"].split()[0]) > 0
    assert float(row["naive turns / s"].split()[0]) > 0  # measured in the same rounds
    assert row["throughput vs naive"].endswith(")") and "x (" in row["throughput vs naive"]  # median (range)
    assert done.stderr.count("round ") == 2  # two rounds, each a pair
    acked, conflicts, lost, doubled = (int(x) for x in row["contention: acked / 409 / lost / doubled"].split(" / "))
    assert acked + conflicts == 20  # every contended request was answered 200 or 409, none dropped
    assert (lost, doubled) == (0, 0)
    n_acked, n_conflicts, _, _ = (int(x) for x in naive["contention: acked / 409 / lost / doubled"].split(" / "))
    assert (n_acked, n_conflicts) == (20, 0)  # the naive version acknowledges everything (and loses some)
