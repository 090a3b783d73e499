"""Memory one ``WarmSessions`` entry holds for a session of 2 x TURNS messages (the web app benchmark's long
session: a question and a one-paragraph reply per turn), measured with tracemalloc (bytes allocated, not RSS:
no allocator or collector noise), against the size of the messages' JSON, with the source files that hold it.

    python bench/warm_memory.py [TURNS]      # default 2000 turns = 4,000 messages
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import tracemalloc

MODEL = "claude-sonnet-4-6"


def main(turns: int) -> None:
    tracemalloc.start(5)  # before anything is built: the entry's objects are made by the turns below
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
    raw = len(json.dumps(history))
    warm = WarmSessions()
    with Simulator() as sim:
        client = sim.client()
        for i in range(4):  # a fresh chat per request, as a web handler makes
            Chat(client=client, store=store, session_id="long", model=MODEL, warm=warm).send(f"turn {i}")
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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
