"""What opening an SQLite store costs with its full-text index check (``stores/_fts5.py``: is the index's structure
record the index on disk?), on a file of 100,000 messages, against FTS5's own ``integrity-check`` (what the
check stands in for) and against opening without the check.

The file: 500 sessions of 100 messages (a question and a one-block reply, 20-200 characters each, seeded
text), each written in one append. Each run opens the store ``--opens`` times (``SQLiteStore(path).close()``)
and times, on one connection, the structure check alone and FTS5's ``integrity-check`` (rank 0: the index
against itself, not against the text); its figures are the medians. The table gives the median and the range
over ``--runs`` runs. The garbage collector stays on. Writes the ``SQLite open`` section of bench/RESULTS.md.

    python bench/sqlite_open.py [--runs 5] [--opens 11]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import machine, replace_section, table, text

from claude_history.stores import sqlite as sqlite_module
from claude_history.stores._fts5 import structure_is_sound
from claude_history.stores.base import Entry
from claude_history.stores.sqlite import SQLiteStore

SEED = 20261206
SESSIONS, PER_SESSION = 1_000, 100


def _fill(path: Path) -> None:
    rng = random.Random(SEED)
    store = SQLiteStore(path, synchronous="OFF")
    try:
        for s in range(SESSIONS):
            entries = []
            for i in range(PER_SESSION // 2):
                entries.append(Entry({"role": "user", "content": f"question {i}: " + text(rng, 20, 200)}))
                reply = {"role": "assistant", "content": [{"type": "text", "text": text(rng, 20, 200)}]}
                entries.append(Entry(reply, model="claude-sonnet-4-6"))
            store.append(f"s{s:03d}", entries, expected_version=0)
    finally:
        store.close()


def _median_ms(work: Callable[[], object], times: int) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--opens", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    figures: dict[str, list[float]] = {"open": [], "open without the check": [], "check": [], "integrity": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.db"
        _fill(path)
        SQLiteStore(path).close()  # warm the page cache
        raw = sqlite3.connect(path)
        try:
            (segments,) = raw.execute("SELECT count(DISTINCT id >> 37) FROM messages_fts_data WHERE id > 10").fetchone()
            for _ in range(args.runs):
                figures["open"].append(_median_ms(lambda: SQLiteStore(path).close(), args.opens))
                real = sqlite_module.structure_is_sound
                sqlite_module.structure_is_sound = lambda *a: True  # type: ignore[assignment]
                try:
                    figures["open without the check"].append(_median_ms(lambda: SQLiteStore(path).close(), args.opens))
                finally:
                    sqlite_module.structure_is_sound = real
                figures["check"].append(
                    _median_ms(lambda: structure_is_sound(raw, "messages_fts"), args.opens)
                )
                figures["integrity"].append(
                    _median_ms(
                        lambda: raw.execute(
                            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 0)"
                        ),
                        3,
                    )
                )
        finally:
            raw.close()
    after = os.getloadavg()[0]

    def cell(name: str) -> str:
        values = figures[name]
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    rows = [
        ["open (`SQLiteStore(path).close()`), with the check", cell("open")],
        ["open without the structure check", cell("open without the check")],
        ["the structure check alone", cell("check")],
        ["FTS5 `integrity-check` (rank 0), for comparison", cell("integrity")],
    ]
    info = machine()
    command = f".venv/bin/python bench/sqlite_open.py --runs {args.runs} --opens {args.opens}"
    body = f"""Command: `{command}` ({info["date"]}).

- Machine: `{info["uname"]}`; CPU: {info["cpu"]}; Python {info["python"]}; SQLite {sqlite3.sqlite_version}
- Load average (1 min) before / after the run: {before:.2f} / {after:.2f}
- Workload: {SESSIONS * PER_SESSION:,} messages ({SESSIONS} sessions of {PER_SESSION}, 20-200 characters each, seeded \
text), each session written in one append: an index of {segments} segments. Each figure is the median of \
{args.opens} timings (3 for `integrity-check`) per run; the table gives the median and range over {args.runs} runs.

### Open a store of {SESSIONS * PER_SESSION:,} messages (ms, median and range over runs)

{table(["what", "ms"], rows)}

The check reads the structure record and two or three rows per index segment: it grows with the number of
segments (a few dozen here), not with the number of messages.
"""
    print(body)
    if not args.no_write:
        replace_section("SQLite open", body)


if __name__ == "__main__":
    main()
