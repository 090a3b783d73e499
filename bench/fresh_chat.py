"""A fresh ``Chat`` per request on a long session, as a web handler makes one (issue 14, item 1). Prints only.

    .venv/bin/python bench/fresh_chat.py                       # SQLite, 100 / 10,000 / 100,000 messages
    .venv/bin/python bench/fresh_chat.py --lengths 100 10000 --policy keep-all

For each length a session is filled by one ``store.append`` (untimed; the messages of ``bench/scaling.py``),
then, in ms, with the in-process simulator answering: the first ``Chat`` ever on it (no planner checkpoint yet,
as after an import: the planner replays the whole log once), three fresh ``Chat``s in a row (each reads the
checkpoint the previous turn kept) and a warm second send on the last one; in brackets the time of each turn's
``plan_request`` alone (the simulator's work on a long request dominates the turn). The GC stays on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scaling import MODEL, entries

import claude_history.turn as turn_module
from claude_history import CacheAwareWindow, Chat, KeepAll
from claude_history.stores import open_store
from claude_history.testing import Simulator

POLICIES = {"cache-aware": lambda: CacheAwareWindow(150_000), "keep-all": KeepAll}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--policy", choices=sorted(POLICIES), default="cache-aware")
    parser.add_argument("--store", help="store URL (default: a new SQLite file)")
    args = parser.parse_args(argv)
    context = POLICIES[args.policy]()
    plans: list[float] = []
    plan_request = turn_module.plan_request  # type: ignore[attr-defined]

    def timed_plan(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return plan_request(*args, **kwargs)
        finally:
            plans.append((time.perf_counter() - started) * 1000)

    turn_module.plan_request = timed_plan  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp, Simulator(keep_requests=0) as sim:
        store = open_store(args.store or f"sqlite:///{tmp}/fresh.db")
        client = sim.client(max_retries=0)

        def timed_send(chat: Chat, text: str) -> str:
            plans.clear()
            started = time.perf_counter()
            chat.send(text)
            spent = (time.perf_counter() - started) * 1000
            return f"{spent:.0f} ({sum(plans):.1f})"

        def fresh(sid: str) -> Chat:
            return Chat(client, model=MODEL, store=store, session_id=sid, max_tokens=256, context=context)

        for n in args.lengths:
            sid = f"fresh-{uuid.uuid4().hex[:10]}"
            store.append(sid, entries(n), expected_version=0)
            first = timed_send(fresh(sid), "first")
            chats = [fresh(sid) for _ in range(3)]
            again = [timed_send(chat, "again") for chat in chats]
            warm = timed_send(chats[-1], "warm")
            print(
                f"{args.policy} {n:,} messages, ms (plan ms): first {first}, fresh {' / '.join(again)}, warm {warm}",
                flush=True,
            )
            store.delete(sid)
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
