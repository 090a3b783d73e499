"""Reads beside waiting writers on one SQLite file, through ``ThreadedAsyncStore`` (how ``AsyncChat`` and the
service use SQLite): its separate read and write pools against the one shared pool it had before. Writes the
"## SQLite reads beside writers" section of bench/RESULTS.md.

    .venv/bin/python bench/sqlite_reads.py           # the full run (about three minutes)
    .venv/bin/python bench/sqlite_reads.py --quick   # one seed, short runs, prints only

Method. Another process (a second service worker, the CLI, a large import or delete) holds the file's write
lock for HOLD ms every PERIOD ms; between holds the file is free. This process appends turns (a new session
each) at Poisson arrivals of 40 per second and reads a session's row (``get_session``, the read a chat makes
before each turn) at 100 per second, for 10 s. Each read is timed from submission to its return. An append
that arrives during a hold waits on its thread (SQLite's busy handler) until the hold ends. Two variants of
the same store, in alternation, each on a new file:

- **split pools** (now): reads on 4 threads, writes on 2 others;
- **one pool** (before): reads and writes share 4 threads (the write pool replaced by the read pool), so
  waiting writers can hold every thread.

And the same without the other process (no holds), where the two should not differ. Figures: p50 / p99 / max
of each run's read latencies in ms; median (range) over the seeds. The garbage collector is on.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import Tails, publish, run_line, table

from claude_history.stores.base import Entry
from claude_history.stores.sqlite import SQLiteStore
from claude_history.stores.threaded import ThreadedAsyncStore

SECTION = "SQLite reads beside writers"
MODEL = "claude-sonnet-4-6"
APPENDS_PER_S = 40.0
READS_PER_S = 100.0
HOLD_S, PERIOD_S = 0.100, 0.500


def other_writer(path: str, hold: float, period: float, stop: Any, started: Any) -> None:
    """The other process: a write transaction held ``hold`` s every ``period`` s until ``stop`` is set."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    started.set()
    while not stop.is_set():
        time.sleep(period - hold)
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(hold)
        conn.execute("COMMIT")
    conn.close()


def turn(k: int) -> list[Entry]:
    return [
        Entry({"role": "user", "content": f"turn {k}: " + "a question about the data " * 6}),
        Entry({"role": "assistant", "content": [{"type": "text", "text": "an answer, " * 40}]}, MODEL,
              {"input_tokens": 120, "output_tokens": 60}),
    ]  # fmt: skip


async def drive(store: ThreadedAsyncStore, seconds: float, seed: int) -> list[float]:
    """Read latencies (s) over ``seconds`` of Poisson reads and appends."""
    rng = random.Random(seed)
    latencies: list[float] = []
    tasks: list[asyncio.Task[Any]] = []

    async def read(due: float) -> None:
        await store.get_session("read-me")
        latencies.append(time.perf_counter() - due)

    start = time.perf_counter()
    events = []
    for kind, rate in (("read", READS_PER_S), ("append", APPENDS_PER_S)):
        at = 0.0
        while (at := at + rng.expovariate(rate)) < seconds:
            events.append((at, kind))
    events.sort()
    for k, (at, kind) in enumerate(events):
        pause = start + at - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        if kind == "read":
            tasks.append(asyncio.create_task(read(start + at)))
        else:
            tasks.append(asyncio.create_task(store.append(f"w{k}", turn(k), expected_version=0)))
    await asyncio.gather(*tasks)
    return latencies


def run(split: bool, holds: bool, seconds: float, seed: int) -> list[float]:
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "reads.db"
        inner = SQLiteStore(path)
        inner.append("read-me", turn(0), expected_version=0)
        store = ThreadedAsyncStore(inner)
        if not split:
            store._writers = store._executor  # one pool for both, as before
        context = multiprocessing.get_context("spawn")
        stop, started = context.Event(), context.Event()
        other = None
        if holds:
            other = context.Process(target=other_writer, args=(str(path), HOLD_S, PERIOD_S, stop, started))
            other.start()
            started.wait(30)
        try:
            latencies = asyncio.run(drive(store, seconds, seed))
        finally:
            stop.set()
            if other is not None:
                other.join(30)
            inner.close()
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 2 s runs; prints only")
    args = parser.parse_args(argv)
    seeds = [1] if args.quick else [1, 2, 3, 4, 5]
    seconds = 2.0 if args.quick else 10.0
    before = Path("/proc/loadavg").read_text().split()[0]
    figures = Tails()
    for holds in (True, False):
        for seed in seeds:
            for split in (True, False) if seed % 2 else (False, True):  # alternate which variant runs first
                figures.add((holds, split), run(split, holds, seconds, seed))
            print(f"holds {holds} seed {seed} done", file=sys.stderr, flush=True)
    after = Path("/proc/loadavg").read_text().split()[0]
    rows = []
    for holds in (True, False):
        for split in (True, False):
            other = f"holds {HOLD_S * 1000:g} ms every {PERIOD_S * 1000:g} ms" if holds else "none"
            name = "split pools (now)" if split else "one pool (before)"
            rows.append([other, name, *figures.cells((holds, split))])
    text = "\n".join(
        [
            run_line("sqlite_reads.py", before, after),
            "",
            f"`get_session` reads at {READS_PER_S:g}/s beside appends at {APPENDS_PER_S:g}/s through"
            f" `ThreadedAsyncStore` on SQLite, {seconds:g} s per run, Poisson arrivals; ms from submission to"
            f" return; median (range) over seeds {', '.join(map(str, seeds))}. The method is in the script's"
            " docstring.",
            "",
            table(["other process", "pools", "read p50 ms", "read p99 ms", "read max ms"], rows),
        ]
    )
    publish(SECTION, text, write=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
