"""What chaining (format 2 rows, docs/encryption.md) adds to loading an encrypted session, against the rows of
format 1 the previous release wrote and against no encryption.

One session of 2,000 messages (1,000 turns: a user question and a reply of one text block, 20-200 characters
each, seeded text) in the in-memory store, written three ways: plain, encrypted in format 1 (each row bound to
session, position and role only) and encrypted in format 2 (also bound to the incarnation and linked by
version, then checked as a chain at load). A run builds the three sessions from its own seed and times
``store.load`` of each, round robin, ``--loads`` times; its figure is the median. The table gives the median and
the range over ``--runs`` runs (seeds). The garbage collector stays on. Writes the ``Encrypted load`` section of
bench/RESULTS.md.

    python bench/encrypted_load.py [--runs 7] [--loads 21] [--messages 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from typing import Any

from _common import machine, replace_section, table, text

from claude_history.stores.base import Entry
from claude_history.stores.encrypted import RESERVED_METADATA_KEY, wrap
from claude_history.stores.memory import MemoryStore

KEY = bytes(range(32))
SEED = 20261206


def _entries(rng: random.Random, messages: int) -> list[Entry]:
    out = []
    for i in range(messages // 2):
        out.append(Entry({"role": "user", "content": f"question {i}: " + text(rng, 20, 200)}))
        reply = {"role": "assistant", "content": [{"type": "text", "text": text(rng, 20, 200)}]}
        out.append(Entry(reply, model="claude-sonnet-4-6", usage={"input_tokens": 100 + i, "output_tokens": 40}))
    return out


def _format1(store: Any, session_id: str, entries: list[Entry]) -> None:
    """The rows as the release before chaining wrote them (the codec's format 1 associated data)."""
    codec = store._ops.codec
    rows = []
    for seq, entry in enumerate(entries):
        role = entry.message["role"]
        aad = json.dumps(["claude-history", 1, "message", session_id, seq, role], separators=(",", ":"))
        payload = json.dumps({"message": entry.message}, separators=(",", ":"), ensure_ascii=False)
        kid, nonce, ct = codec.seal(session_id, aad.encode(), payload.encode())
        block = {"type": "encrypted", "v": 1, "kid": kid, "nonce": nonce, "ct": ct}
        rows.append(Entry({"role": role, "content": [block]}, model=entry.model, usage=entry.usage))
    store.inner.append(session_id, rows, expected_version=0)
    record = {"v": 1, "kids": [codec.keys.current]}
    store.inner.update_session(session_id, metadata={RESERVED_METADATA_KEY: record})


def run(seed: int, messages: int, loads: int) -> dict[str, float]:
    rng = random.Random(seed)
    entries = _entries(rng, messages)
    plain, inner = MemoryStore(), MemoryStore()
    encrypted = wrap(inner, KEY)
    plain.append("s", entries, expected_version=0)
    _format1(encrypted, "v1", entries)
    encrypted.append("v2", entries, expected_version=0)
    assert [m.message for m in encrypted.load("v1").messages] == [m.message for m in plain.load("s").messages]
    assert [m.message for m in encrypted.load("v2").messages] == [m.message for m in plain.load("s").messages]
    loaders = {"plain": lambda: plain.load("s"), "format 1": lambda: encrypted.load("v1")}
    loaders["format 2"] = lambda: encrypted.load("v2")
    samples: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(loads):
        for name, load in loaders.items():
            start = time.perf_counter()
            load()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--loads", type=int, default=21)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    results = [run(SEED + r, args.messages, args.loads) for r in range(args.runs)]
    after = os.getloadavg()[0]

    def cell(name: str) -> str:
        values = [r[name] for r in results]
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    ratios = [r["format 2"] / r["format 1"] for r in results]
    rows = [[name, cell(name)] for name in ("plain", "format 1", "format 2")]
    rows.append(["format 2 / format 1", f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)"])
    info = machine()
    body = f"""Command: `.venv/bin/python bench/encrypted_load.py --runs {args.runs} --loads {args.loads} --messages \
{args.messages}` ({info["date"]}).

- Machine: `{info["uname"]}`; CPU: {info["cpu"]}; Python {info["python"]}
- Load average (1 min) before / after the run: {before:.2f} / {after:.2f}
- Workload: one session of {args.messages:,} messages in the in-memory store (1,000 turns of a question and a \
one-block reply, 20-200 characters each, seeded text), written plain, encrypted in format 1 (the rows of the \
release before chaining) and in format 2 (bound to the incarnation, linked by version, the chain checked at \
load); each run (seed {SEED} + run) times `load` of the three round robin, {args.loads} times, and keeps the \
median; the table gives the median and the range of the {args.runs} runs' medians. The garbage collector stays on.

### Load {args.messages:,} messages from memory (ms, median and range over runs)

{table(["rows", "load"], rows)}

What format 2 adds per message: a longer associated data string (incarnation, `w`, `p`) built for each row and \
the link check (one comparison per row); the AES-GCM, base64 and JSON parse are the same as for format 1.
"""
    print(body)
    if not args.no_write:
        replace_section("Encrypted load", body)


if __name__ == "__main__":
    main()
