"""Memory one ``WarmSessions`` entry holds for a session of 2 x TURNS messages (the web app benchmark's long
session: a question and a one-paragraph reply per turn), measured with tracemalloc (bytes allocated, not RSS:
no allocator or collector noise), against the size of the messages' JSON, with the source files that hold it.
Then, on a second entry built the same way with tracemalloc off, what it adds to each of Python's full garbage
collections (which run on a server's event loop): the objects the collector tracks, and the time of
``gc.collect()`` with and without it (fastest of REPEATS).

    python bench/warm_memory.py [TURNS]      # default 2000 turns = 4,000 messages

Last, the entry of a session built turn by turn through fresh chats (min(TURNS, 200) turns), as a web app's
new sessions are: its replies carry their usage records.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
import tracemalloc
from typing import Any

MODEL = "claude-sonnet-4-6"
REPEATS = 7


def full_collection_ms() -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def warm_entry(turns: int) -> tuple[Any, Any, int]:
    """A SQLite store with one session of 2 x TURNS messages and a WarmSessions holding its entry, made by fresh
    chats as a web handler makes them; and the size of the messages' JSON."""
    from claude_history import Chat, WarmSessions
    from claude_history.stores import open_store
    from claude_history.stores.base import Entry
    from claude_history.testing import Simulator

    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/warm.db")
    history = []
    for t in range(turns):
        history.append({"role": "user", "content": f"Question number {t}: " + "word " * 40})
        history.append({"role": "assistant", "content": [{"type": "text", "text": f"A fact about {t}: " + "x " * 60}]})
    entries = [Entry(m, MODEL) if m["role"] == "assistant" else Entry(m) for m in history]
    store.append("long", entries, expected_version=0)
    warm = WarmSessions()
    with Simulator() as sim:
        client = sim.client()
        for i in range(4):  # a fresh chat per request, as a web handler makes
            Chat(client=client, store=store, session_id="long", model=MODEL, warm=warm).send(f"turn {i}")
    return store, warm, len(json.dumps(history))


def collector(turns: int) -> None:
    store, warm, _ = warm_entry(turns)
    gc.collect()
    tracked, took = len(gc.get_objects()), full_collection_ms()
    warm.clear()
    gc.collect()
    tracked, took = tracked - len(gc.get_objects()), took - full_collection_ms()
    print(
        f"  the collector tracks {tracked:,} of its objects ({tracked / (2 * turns):.1f} per message); a full"
        f" collection takes {took:.2f} ms longer with it ({took * 1e6 / (2 * turns):.0f} ns per message)"
    )
    store.close()


def main(turns: int) -> None:
    tracemalloc.start(5)  # before anything is built: the entry's objects are made by the turns below
    store, warm, raw = warm_entry(turns)
    gc.collect()
    held_snapshot = tracemalloc.take_snapshot()
    held = tracemalloc.get_traced_memory()[0]
    warm.put(next(iter(warm._entries)), None)  # drop the entry
    gc.collect()
    freed = held - tracemalloc.get_traced_memory()[0]
    empty_snapshot = tracemalloc.take_snapshot()
    print(
        f"{turns} turns ({2 * turns:,} messages, {raw / 1e6:.2f} MB of JSON): the warm entry holds"
        f" {freed / 1e6:.2f} MB ({freed / raw:.2f}x the JSON, {freed / (2 * turns):,.0f} bytes per message)"
    )
    for stat in held_snapshot.compare_to(empty_snapshot, "filename")[:8]:
        print("  ", stat)
    store.close()
    del held_snapshot, empty_snapshot
    tracemalloc.stop()
    collector(turns)


def built_by_turns(turns: int) -> None:
    """The entry of a session every message of which came through a turn (a new session in a web app): the
    replies carry their usage, and each turn's messages were planned before they were committed."""
    from claude_history import Chat, WarmSessions
    from claude_history.stores import open_store
    from claude_history.testing import Simulator

    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/turns.db")
    warm = WarmSessions()
    with Simulator(keep_requests=0) as sim:
        client = sim.client()
        tracemalloc.start(5)
        for t in range(turns):
            Chat(client=client, store=store, session_id="turns", model=MODEL, warm=warm).send(
                f"Question number {t}: " + "word " * 40
            )
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        messages = warm.held
        warm.clear()
        gc.collect()
        freed = held - tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    print(
        f"{turns} turns sent through fresh chats ({messages:,} messages): the warm entry holds {freed / 1e6:.2f} MB"
        f" ({freed / messages:,.0f} bytes per message)"
    )
    store.close()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    main(count)
    built_by_turns(min(count, 200))
