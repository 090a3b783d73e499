"""What hiredis (redis-py's C reply parser, which the ``redis`` extra installs) saves the Redis stores, against
redis-py's pure-Python parser, the one a user gets from ``pip install redis`` alone.

A session of ``--messages`` messages (a question and a one-block reply, 20-400 characters each, seeded text) is
written once; then, in each of ``--runs`` runs, the two parsers take turns (the order alternates between runs),
each through stores opened with that parser (``parser_class``, passed on to redis-py): the sync store's
``load`` and the async store's ``load`` of the session (median of 7 each), and the async store's
``get_session`` (the read before each turn: CPU time per call over 500 calls). Wall time for the loads (one
process, Redis on the same machine), process CPU time for ``get_session``. The table gives the median and the
range over the runs; the garbage collector stays on. Writes the ``Redis reply parser`` section of
bench/RESULTS.md (``--quick``: tiny sizes, prints only).

    python bench/redis_parser.py [--messages 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from typing import Any

from _common import machine, publish, reachable, table, text

# redis-py's own parser classes (private names, stable since redis-py 5): the bench pins each explicitly.
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser, _HiredisParser, _RESP3Parser

from claude_history.stores import open_async_store, open_store
from claude_history.stores.base import Entry

SECTION = "Redis reply parser"
REDIS_URL = "redis://127.0.0.1:6379/0"
SEED = 20261207
PARSERS = {
    "hiredis (the redis extra)": (_HiredisParser, _AsyncHiredisParser),
    "pure Python (redis-py alone)": (_RESP3Parser, _AsyncRESP3Parser),
}
MEASURES = ("sync load (ms)", "async load (ms)", "async get_session (µs CPU)")


def _entries(count: int) -> list[Entry]:
    rng = random.Random(SEED)
    entries = []
    for i in range(count // 2):
        entries.append(Entry({"role": "user", "content": f"question {i}: " + text(rng, 20, 400)}))
        reply = {"role": "assistant", "content": [{"type": "text", "text": text(rng, 20, 400)}]}
        entries.append(Entry(reply, "claude-sonnet-4-6", {"input_tokens": 100 + i, "output_tokens": 50}))
    return entries


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _measure(url: str, parsers: tuple[Any, Any], loads: int, reads: int) -> dict[str, float]:
    sync_parser, async_parser = parsers
    store = open_store(url, parser_class=sync_parser)
    try:
        store.load("s")  # connect, load the scripts
        walls = []
        for _ in range(loads):
            start = time.perf_counter()
            store.load("s")
            walls.append(time.perf_counter() - start)
        sync_load = _median_ms(walls)
    finally:
        store.close()

    async def run() -> tuple[float, float]:
        astore = open_async_store(url, parser_class=async_parser)
        try:
            await astore.load("s")
            walls = []
            for _ in range(loads):
                start = time.perf_counter()
                await astore.load("s")
                walls.append(time.perf_counter() - start)
            start = time.process_time()
            for _ in range(reads):
                await astore.get_session("s")
            return _median_ms(walls), (time.process_time() - start) / reads * 1e6
        finally:
            await astore.aclose()

    async_load, get_cpu = asyncio.run(run())
    return dict(zip(MEASURES, (sync_load, async_load, get_cpu), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints only")
    args = parser.parse_args(argv)
    if not reachable("127.0.0.1", 6379):
        print("Redis is not running at 127.0.0.1:6379", file=sys.stderr)
        return 1
    messages, runs, loads, reads = (200, 2, 2, 20) if args.quick else (args.messages, args.runs, 7, 500)
    url = f"{REDIS_URL}?prefix=benchparser{uuid.uuid4().hex[:8]}:"
    setup = open_store(url)
    setup.append("s", _entries(messages), expected_version=0)
    results: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MEASURES} for name in PARSERS}
    try:
        for run in range(runs):
            order = list(PARSERS) if run % 2 == 0 else list(reversed(PARSERS))
            for name in order:
                for measure, value in _measure(url, PARSERS[name], loads, reads).items():
                    results[name][measure].append(value)
    finally:
        setup.delete("s")
        setup.close()
    info = machine()
    rows = []
    for name, figures in results.items():
        rows.append([name, *(f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})" for v in figures.values())])
    ours, plain = (results[name] for name in PARSERS)
    ratios = ", ".join(
        f"{measure.split(' (')[0]} {statistics.median(ours[measure]) / statistics.median(plain[measure]):.2f}x"
        for measure in MEASURES
    )
    body = "\n\n".join([
        f"Command: `python bench/redis_parser.py{' --quick' if args.quick else ''}` ({info['date']}); "
        f"{info['cpu']}, Python {info['python']}; `{info['uname']}`.",
        f"A session of {messages:,} messages in Redis on the same machine; {runs} runs, the parsers alternating; "
        f"loads: median of {loads} per run, wall time; `get_session`: CPU time per call over {reads} calls. "
        "Median (range) over the runs. The garbage collector stays on.",
        table(["parser", *MEASURES], rows),
        f"hiredis against the pure-Python parser (medians): {ratios}.",
    ])
    publish(SECTION, body, write=not args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
