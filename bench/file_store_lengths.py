"""File store at any session length (issue 14): what the operations whose cost used to grow with the log cost.

    .venv/bin/python bench/file_store_lengths.py                       # 100, 10,000 and 100,000 messages, 3 runs
    .venv/bin/python bench/file_store_lengths.py --lengths 100 1000 --runs 1

For each length N and run, a new store directory and a session filled to N messages in one append (untimed, the
text of bench/scaling.py), then, each timed once, GC on:
- window read: ``load_messages(start=N - 100)``, what a fresh ``Chat`` reads of a long session;
- get_session: the session's state (its last line is the one append of N messages);
- fork: ``fork`` of the whole session;
- parent delete: ``delete`` of the parent while its fork reads all of it;
- fork's first search / next search: ``search("the", limit=5, session_id=fork)``, twice;
- delete: ``delete`` of a second session of N messages that no fork reads;
- append after it: the median of 5 appends of a 2-message turn to a third session right after that delete (the
  index erases a deleted session's words a few at a time with each write); then ``compact()`` (untimed) and
- append: the same with nothing left to erase.
Prints the medians and ranges (ms) as a Markdown table; nothing is written to RESULTS.md. It measures the
``src/`` of the checkout it lies in (bench/scaling.py puts that first on ``sys.path``, before PYTHONPATH): to
measure another version, copy it into that version's ``bench/`` and run it there.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table
from scaling import entries

from claude_history.stores.jsonfile import JsonFileStore

ROWS = (
    "window read",
    "get_session",
    "fork",
    "parent delete",
    "fork's first search",
    "fork's next search",
    "delete",
    "append after it",
    "append",
)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def one_run(length: int, filled: list[Any]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = JsonFileStore(Path(tmp) / "files")
        store.append("parent", filled, expected_version=0)
        store.append("other", filled, expected_version=0)
        gc.collect()
        out = {
            "window read": timed(lambda: store.load_messages("parent", start=max(0, length - 100))),
            "get_session": timed(lambda: store.get_session("parent")),
        }
        out["fork"] = timed(lambda: store.fork("parent", new_id="fork"))
        out["parent delete"] = timed(lambda: store.delete("parent"))
        out["fork's first search"] = timed(lambda: store.search("the", limit=5, session_id="fork"))
        out["fork's next search"] = timed(lambda: store.search("the", limit=5, session_id="fork"))
        out["delete"] = timed(lambda: store.delete("other"))
        turns = [entries(2, seed=seed) for seed in range(10)]
        appends = [timed(lambda v=v: store.append("third", turns[v], expected_version=v)) for v in range(5)]
        out["append after it"] = statistics.median(appends)
        compact = getattr(store, "compact", None)
        if compact is not None:
            compact()
        appends = [timed(lambda v=v: store.append("third", turns[v], expected_version=v)) for v in range(5, 10)]
        out["append"] = statistics.median(appends)
        store.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, dict[str, list[float]]] = {}
    for length in args.lengths:
        print(f"file {length:,} ...", file=sys.stderr)
        filled = entries(length)
        results[length] = {row: [] for row in ROWS}
        for _ in range(args.runs):
            for row, value in one_run(length, filled).items():
                results[length][row].append(value)
    info = machine()
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{info['date']}; {info['cpu']}; Python {info['python']}; load average {' '.join(load)}")
    rows = []
    for row in ROWS:
        cells = []
        for length in args.lengths:
            values = results[length][row]
            cells.append(f"{statistics.median(values):,.1f} ms ({min(values):,.1f}-{max(values):,.1f})")
        rows.append([row, *cells])
    print(table(["operation (file store)", *(f"{n:,} msgs" for n in args.lengths)], rows))


if __name__ == "__main__":
    main()
