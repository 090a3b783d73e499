"""Concurrent commits to one SQLite file from one process: the process's writer lock against SQLite's busy
handler alone. Writes the "## SQLite writers" section of bench/RESULTS.md.

    .venv/bin/python bench/sqlite_writers.py           # the full run (about two minutes)
    .venv/bin/python bench/sqlite_writers.py --quick   # one seed, small sizes, prints only

Method. A service on SQLite commits its turns from a pool of 4 threads (``ThreadedAsyncStore``), so two turns
that end at the same moment commit at once. Here 50 sessions x 8 turns (a user message and a reply, with usage)
are appended through such a pool, each append submitted at a Poisson arrival (the rates below, in appends per
second), each timed from submission to its return: the wait for the pool, for the other writers and the commit
(``synchronous=FULL``: an fsync each). Two variants of the same store, in alternation, each on a new file:

- **writer lock** (the store as shipped): the process's writers of a file wait for each other on a lock, woken
  the moment the writer before them commits;
- **busy handler only** (as before): the lock replaced by one that never waits, so a writer that finds the
  file locked waits in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries.

Figures: p50 / p99 / max of each run's latencies; median (range) over the seeds. The garbage collector is on.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import Tails, publish, run_line, table

from claude_history.stores.base import Entry
from claude_history.stores.sqlite import SQLiteStore

SECTION = "SQLite writers"
MODEL = "claude-sonnet-4-6"


class _NoWait:
    """A lock that never waits: the busy handler alone orders the writers (the store before the writer lock)."""

    def acquire(self, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> _NoWait:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def turn(session: int, k: int) -> list[Entry]:
    usage = {"input_tokens": 120 + 40 * k, "output_tokens": 60}
    return [
        Entry({"role": "user", "content": f"session {session}, turn {k}: " + "a question about the data " * 6}),
        Entry({"role": "assistant", "content": [{"type": "text", "text": "an answer, " * 40}]}, MODEL, usage),
    ]


def run(lock: bool, rate: float, sessions: int, turns: int, seed: int) -> list[float]:
    """Latencies (s) of every append, submitted at Poisson arrivals of ``rate`` per second."""
    with tempfile.TemporaryDirectory() as root:
        store = SQLiteStore(Path(root) / "writers.db")
        if not lock:
            store._writer = _NoWait()  # type: ignore[assignment]
        versions: dict[int, int] = {}
        latencies: list[float] = []

        def append(session: int, k: int, due: float) -> None:
            versions[session] = store.append(f"s{session}", turn(session, k), expected_version=versions.get(session, 0))
            latencies.append(time.perf_counter() - due)

        rng = random.Random(seed)
        order = [(s, k) for k in range(turns) for s in range(sessions)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures: list[Any] = []
            due = time.perf_counter()
            for session, k in order:
                due += rng.expovariate(rate)
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                futures.append(pool.submit(append, session, k, due))
            for future in futures:
                future.result()
        store.close()
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 20 sessions x 4 turns; prints only")
    args = parser.parse_args(argv)
    seeds = [1] if args.quick else [1, 2, 3, 4, 5]
    sessions, turns = (20, 4) if args.quick else (50, 8)
    rates = [17.0, 50.0, 100.0]
    before = Path("/proc/loadavg").read_text().split()[0]
    figures = Tails()
    for rate in rates:
        for seed in seeds:
            for lock in (True, False) if seed % 2 else (False, True):  # alternate which variant runs first
                figures.add((rate, lock), run(lock, rate, sessions, turns, seed))
            print(f"rate {rate:g}/s seed {seed} done", file=sys.stderr, flush=True)
    after = Path("/proc/loadavg").read_text().split()[0]
    rows = []
    for rate in rates:
        for lock in (True, False):
            name = "writer lock (now)" if lock else "busy handler only (before)"
            rows.append([f"{rate:g}", name, *figures.cells((rate, lock))])
    text = "\n".join(
        [
            run_line("sqlite_writers.py", before, after),
            "",
            f"{sessions} sessions x {turns} turns appended from a pool of 4 threads at Poisson arrivals; ms from"
            " submission to return (pool, other writers, commit with an fsync); median (range) over seeds"
            f" {', '.join(map(str, seeds))}. The method is in the script's docstring.",
            "",
            table(["appends / s", "writers wait on", "p50 ms", "p99 ms", "max ms"], rows),
        ]
    )
    publish(SECTION, text, write=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
