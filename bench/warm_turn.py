"""Warm turn, library (issue 14): bench/scaling.py's "warm turn, library" alone, with more runs and its range.

    .venv/bin/python bench/warm_turn.py                          # memory://, 100 to 100,000 messages, 11 runs
    .venv/bin/python bench/warm_turn.py --lengths 100 1000 --runs 5 --store sqlite

Per run, as scaling.py does: a new session of N messages (one append, untimed), a first ``Chat`` turn (it
replays the log and keeps its checkpoint), a fresh ``Chat`` turn (it plans from the checkpoint), then that
chat's second turn, timed: the turn less its API call (``client.messages.create`` against the in-process
simulator). Printed: median and range of the wall time (what scaling.py reports) and of the main thread's CPU
time (``time.thread_time``: the simulator's threads and other processes on a shared machine left out). Prints
only; the figures go to RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scaling import CONTEXT, MODEL, entries

from claude_history import Chat
from claude_history.stores import open_store
from claude_history.testing import Simulator


def measure(store: Any, client: Any, n: int, runs: int, spent: list[float]) -> tuple[list[float], list[float]]:
    """``runs`` warm turns on new sessions of ``n`` messages: (wall ms, thread CPU ms), each less the API call."""
    wall, cpu = [], []
    for _ in range(runs):
        sid = f"warm-{uuid.uuid4().hex[:10]}"
        store.append(sid, entries(n), expected_version=0)
        for _ in range(2):  # the first chat (no checkpoint yet), then the fresh chat whose second turn is timed
            chat = Chat(client, model=MODEL, store=store, session_id=sid, max_tokens=256, context=CONTEXT)
            chat.send("One more question about the session so far.")
        spent[:] = [0.0, 0.0]
        started, started_cpu = time.perf_counter(), time.thread_time()
        chat.send("And a follow-up.")
        wall.append((time.perf_counter() - started - spent[0]) * 1000)
        cpu.append((time.thread_time() - started_cpu - spent[1]) * 1000)
        store.delete(sid)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1_000, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args(argv)
    spent = [0.0, 0.0]  # the API call's wall and thread CPU seconds in the timed turn
    with tempfile.TemporaryDirectory() as tmp, Simulator(keep_requests=0) as sim:
        client = sim.client(max_retries=0)
        create = client.messages.create

        def timed_create(*a: Any, **k: Any) -> Any:
            started, started_cpu = time.perf_counter(), time.thread_time()
            try:
                return create(*a, **k)
            finally:
                spent[0] += time.perf_counter() - started
                spent[1] += time.thread_time() - started_cpu

        client.messages.create = timed_create  # type: ignore[method-assign]
        store = open_store("memory://" if args.store == "memory" else f"sqlite:///{Path(tmp) / 'warm.db'}")
        print(f"{args.store}, median (min-max) of {args.runs} warm turns, ms less the API call")
        for n in args.lengths:
            wall, cpu = measure(store, client, n, args.runs, spent)
            print(
                f"{n:>7,} messages: wall {statistics.median(wall):.2f} ({min(wall):.2f}-{max(wall):.2f}), "
                f"thread CPU {statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})",
                flush=True,
            )
        store.close()
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
