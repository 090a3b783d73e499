"""A separate process that writes to a store, for the multi-process and crash tests.

Usage: ``python store_worker.py '<json>'`` with keys ``spec`` (url, options, encryption_key), ``mode``
(``turns`` or ``forever``), ``session``, ``label``, ``turns``, ``pad``. In ``forever`` mode it prints
``committed <i>`` after each turn until it is killed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from claude_history.errors import ConflictError, SessionNotFound
from claude_history.stores import open_store
from claude_history.stores.base import Entry


def turn(label: str, pad: int = 0) -> list[Entry]:
    padding = " " + "p" * pad if pad else ""
    return [
        Entry({"role": "user", "content": f"question {label}{padding}"}),
        Entry({"role": "assistant", "content": [{"type": "text", "text": f"answer {label}"}]}, model="m"),
    ]


def append_turn(store: Any, session_id: str, entries: list[Entry]) -> int:
    """The CAS loop every writer runs: read the version, append, and on a conflict read again."""
    while True:
        try:
            version = store.get_session(session_id).version
        except SessionNotFound:
            version = 0
        try:
            return int(store.append(session_id, entries, expected_version=version))
        except ConflictError:
            continue


def main() -> None:
    job = json.loads(sys.argv[1])
    spec = job["spec"]
    store = open_store(spec["url"], encryption_key=spec["encryption_key"], **spec["options"])
    try:
        if job["mode"] == "turns":
            for i in range(job["turns"]):
                append_turn(store, job["session"], turn(f"{job['label']}-{i}", job.get("pad", 0)))
        else:
            i = 0
            while True:
                append_turn(store, job["session"], turn(f"{job['label']}-{i}", job.get("pad", 0)))
                print(f"committed {i}", flush=True)
                i += 1
    finally:
        store.close()


if __name__ == "__main__":
    main()
