"""Store operations at scale (issue 14 point 4): SQLite delete, PostgreSQL load memory, load time against
openai-agents' SQLiteSession. Writes the "## Store operations" section of bench/RESULTS.md.

    .venv/bin/python bench/store_ops.py            # the full run (several minutes)
    .venv/bin/python bench/store_ops.py --quick    # small sizes, nothing written

Method.
* delete: a SQLite store holding three other 10,000-message sessions; a 10,000-message session (messages of
  200 to 2,000 characters, bench/storage.py's workload) is written, then ``delete`` is timed; RUNS times with
  the default settings and RUNS times with ``compact_on_delete=True`` (the former default), then one
  ``compact()``. Target: under 100 ms.
* PostgreSQL memory: 100,000 messages of 5,000 characters written once; ``load`` runs in a fresh process,
  whose peak resident memory (``ru_maxrss``) less its resident memory before the load is compared with the
  size of the messages' JSON. Target: under 2x.
* load: our SQLite store and openai-agents' ``SQLiteSession`` (when installed) hold the same messages; each
  loads its session RUNS times, alternating, the garbage collector on (collected before each load, as
  storage.py does). Target: ours within 1.2x of openai-agents at 10,000 and 100,000 messages.
Every figure is the median with the range (fastest to slowest) of its runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import machine, reachable, replace_section, table

from claude_history.stores import open_store
from claude_history.stores.base import Entry

POSTGRES_URL = os.environ.get("CLAUDE_HISTORY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def spread(samples: list[float], scale: float = 1_000.0, unit: str = "ms") -> str:
    low, mid, high = min(samples) * scale, statistics.median(samples) * scale, max(samples) * scale
    return f"{mid:.0f} {unit} ({low:.0f}-{high:.0f})"


def entries(count: int) -> list[Entry]:
    import storage

    return [storage.entry(m) for m in storage.Workload.make(count).history]


def bench_delete(runs: int, size: int) -> list[list[str]]:
    rows = []
    history = entries(size)
    for compact_on_delete in (False, True):
        times = []
        with tempfile.TemporaryDirectory() as root:
            store = open_store(f"sqlite:///{root}/d.db", compact_on_delete=compact_on_delete)
            for other in range(3):
                fill(store, f"other{other}", history)
            for run in range(runs):
                fill(store, f"s{run}", history)
                started = time.perf_counter()
                store.delete(f"s{run}")
                times.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.compact()
            compact = time.perf_counter() - started
            store.close()
        label = "compact_on_delete=True (the former default)" if compact_on_delete else "default"
        if compact_on_delete:
            target, verdict = "compared", ""
        else:
            target, verdict = "< 100 ms", "PASS" if statistics.median(times) < 0.1 else "FAIL"
        rows.append([f"delete {size:,} messages, {label}", spread(times), target, verdict])
        if not compact_on_delete:
            what = f"compact() after {runs} deletes, {3 * size:,} messages left"
            rows.append([what, f"{compact * 1000:.0f} ms", "", ""])
    return rows


def fill(store: object, session_id: str, history: list[Entry]) -> None:
    version = 0
    for start in range(0, len(history), 1_000):
        chunk = history[start : start + 1_000]
        version = store.append(session_id, chunk, expected_version=version)  # type: ignore[attr-defined]


def _pg_child(schema: str) -> None:
    """In a fresh process: load the session, print the memory figures as JSON."""
    store = open_store(POSTGRES_URL, schema=schema)
    gc.collect()
    before = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    started = time.perf_counter()
    data = store.load("big")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = sum(len(json.dumps(m.message, ensure_ascii=False, separators=(",", ":")).encode()) for m in data.messages)
    store.close()
    print(json.dumps({"before": before, "peak": peak, "size": size, "seconds": elapsed, "count": len(data.messages)}))


def bench_postgres_memory(count: int, chars: int, runs: int) -> list[list[str]]:
    if not reachable("127.0.0.1", 5432):
        return [["PostgreSQL load memory", "not run: PostgreSQL is not reachable", "", ""]]
    import random

    schema = "bench_ops_" + uuid.uuid4().hex[:10]
    store = open_store(POSTGRES_URL, schema=schema)
    rng = random.Random(14)
    names = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "iota", "kappa", "lambda")
    words = [w * rng.randint(1, 3) for w in names]

    def message(index: int) -> Entry:
        body = " ".join(rng.choice(words) for _ in range(chars // 4))[:chars]
        if index % 2 == 0:
            return Entry({"role": "user", "content": body})
        reply = {"role": "assistant", "content": [{"type": "text", "text": body}]}
        return Entry(reply, model="m", usage={"output_tokens": 9})

    try:
        version = 0
        for start in range(0, count, 1_000):
            chunk = [message(i) for i in range(start, min(count, start + 1_000))]
            version = store.append("big", chunk, expected_version=version)
        ratios, seconds = [], []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, __file__, "--pg-child", schema], check=True, capture_output=True, text=True
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            assert figures["count"] == count
            ratios.append((figures["peak"] - figures["before"]) / figures["size"])
            seconds.append(figures["seconds"])
        size_mb = figures["size"] / 1e6
    finally:
        store.close()
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    verdict = "PASS" if statistics.median(ratios) < 2 else "FAIL"
    return [
        [
            f"PostgreSQL load of {count:,} messages of {chars:,} characters ({size_mb:.0f} MB of JSON): peak memory"
            " growth / data size",
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
            "< 2x (3.3x before streaming)",
            verdict,
        ],
        [f"PostgreSQL load of {count:,} messages of {chars:,} characters, time", spread(seconds, 1, "s"), "", ""],
    ]


def bench_loads(sizes: list[int], runs: int) -> list[list[str]]:
    import storage

    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as root:
            ours = storage.OurStore("sqlite", lambda: open_store(f"sqlite:///{root}/ours.db"))
            try:
                peer: storage.Subject | None = storage.AgentsSQLite(Path(root) / "agents.db")
            except storage.Skip as exc:
                peer, reason = None, str(exc)
            history = storage.Workload.make(size).history
            subjects = [("ours", ours)] + ([("agents", peer)] if peer is not None else [])
            for _, subject in subjects:
                subject.prepare("s", history)
            times: dict[str, list[float]] = {name: [] for name, _ in subjects}
            for _ in range(runs):
                for name, subject in subjects:
                    gc.collect()
                    started = time.perf_counter()
                    assert subject.load() == size
                    times[name].append(time.perf_counter() - started)
            for _, subject in subjects:
                subject.close()
        if peer is None:
            rows.append([f"load {size:,} messages, SQLite", spread(times["ours"]), f"peer not run: {reason}", ""])
            continue
        ratio = statistics.median(times["ours"]) / statistics.median(times["agents"])
        rows.append(
            [
                f"load {size:,} messages: ours (SQLite) / openai-agents SQLiteSession",
                f"{spread(times['ours'])} / {spread(times['agents'])} = {ratio:.2f}x",
                "<= 1.2x",
                "PASS" if ratio <= 1.2 else "FAIL",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, results not written")
    parser.add_argument(
        "--loads", action="store_true", help="only the loads against openai-agents (10,000 and 100,000); printed"
    )
    parser.add_argument("--pg-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pg_child:
        _pg_child(args.pg_child)
        return 0
    runs = 3 if args.quick else 7
    if args.loads:
        before = os.getloadavg()[0]
        rows = bench_loads([1_000] if args.quick else [10_000, 100_000], runs)
        print(table(["what", "measured", "target / compared to", "result"], rows))
        print(f"load average before / after: {before:.2f} / {os.getloadavg()[0]:.2f}; {machine()['date']}")
        return 0
    size = 1_000 if args.quick else 10_000
    before = os.getloadavg()[0]
    rows = bench_delete(runs, size)
    rows += bench_postgres_memory(2_000 if args.quick else 100_000, 5_000, 1 if args.quick else 3)
    rows += bench_loads([1_000] if args.quick else [10_000, 100_000], runs)
    info = machine()
    body = "\n".join(
        [
            f"Command: `python bench/store_ops.py` ({info['date']}); `{info['uname']}`, {info['cpu']},"
            f" Python {info['python']}; load average before / after: {before:.2f} / {os.getloadavg()[0]:.2f}"
            " (the machine is shared: figures are median (fastest-slowest)).",
            "",
            table(["what", "measured", "target / compared to", "result"], rows),
            "",
            "Delete: rows go at once; the deleted words stay in the full-text index and the freed pages keep their"
            " bytes until `compact()` (see docs/stores.md). PostgreSQL: the rows are streamed in chunks of 500 and"
            " decoded as they arrive (before: all rows fetched, then decoded: 3.3x). Load: openai-agents returns"
            " the list of stored dicts; ours a `SessionData` of `StoredMessage`s (model, usage and time of each"
            " message); before `StoredMessage` was slotted the 100,000-message ratio was 1.34x (median of 5, same"
            " machine, same day). Delete is dominated by the commit's fsync (`synchronous=FULL`): on a busy disk"
            " it varies several-fold between runs.",
        ]
    )
    if args.quick:
        print(body)
    else:
        replace_section("Store operations", body)
        print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
