"""Performance under abuse: the large cases of issue 13's attack, measured here rather than as timed tests.

    .venv/bin/python bench/abuse.py            # the full run (about a minute); prints the figures
    .venv/bin/python bench/abuse.py --quick    # small sizes

* **Many deletes on SQLite** (``compact_on_delete=True``: the index is merged in every delete): N sessions
  created then deleted one by one. Before the fix SQLite 3.40 declared the full-text index corrupt at delete
  998; now every few hundred deletes rebuild the index. Reported: the median and the slowest delete, and the
  integrity check.
* **One huge line in the file store**: a session imported as one line of M MB beside 100 small sessions;
  ``list_sessions()`` of the whole store timed (24 s at 80 MB, 100 s at 161 MB before the fix).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import percentile

from claude_history.stores.base import Entry
from claude_history.stores.jsonfile import JsonFileStore
from claude_history.stores.sqlite import SQLiteStore


def turn(label: str) -> list[Entry]:
    return [
        Entry({"role": "user", "content": f"question {label} " + "lorem ipsum dolor " * 20}),
        Entry({"role": "assistant", "content": [{"type": "text", "text": f"answer {label}"}]}),
    ]


def many_deletes(count: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "history.db"
        store = SQLiteStore(path, compact_on_delete=True)
        for i in range(count):
            store.append(f"s{i}", turn(str(i)), expected_version=0)
        timings = []
        for i in range(count):
            started = time.perf_counter()
            store.delete(f"s{i}")
            timings.append(time.perf_counter() - started)
        store.append("after", turn("after"), expected_version=0)
        store.close()
        raw = sqlite3.connect(path)
        raw.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
        raw.close()
    print(
        f"SQLite, {count:,} deletes: median {percentile(timings, 0.5) * 1000:.2f} ms,"
        f" slowest {max(timings) * 1000:.1f} ms, total {sum(timings):.1f} s; full-text index integrity: ok"
    )


def huge_line(megabytes: int, small: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = JsonFileStore(Path(root) / "files", fsync=False)
        for i in range(small):
            store.append(f"s{i}", turn(str(i)), expected_version=0)
        big = "x" * (megabytes * 1_000_000)
        store.append("huge", [Entry({"role": "user", "content": big}), *turn("h")[1:]], expected_version=0)
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            listed = store.list_sessions(limit=small + 1)
            runs.append(time.perf_counter() - started)
        assert len(listed) == small + 1
    print(
        f"File store, one {megabytes} MB line beside {small} sessions: list_sessions() median"
        f" {percentile(runs, 0.5) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    many_deletes(300 if args.quick else 3_000)
    huge_line(5 if args.quick else 80, 100)


if __name__ == "__main__":
    main()
