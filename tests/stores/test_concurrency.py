"""Concurrent writers and crashed writers, on every backend whose data they can share.

Every writer runs the same compare-and-swap loop (read the version, append, retry on ConflictError). Whatever
the interleaving: no turn lost, none duplicated, every turn contiguous, the history valid.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from claude_history.errors import ConflictError, SessionNotFound
from claude_history.history import validate

from .conftest import Backend
from .store_worker import append_turn, turn

WORKER = Path(__file__).with_name("store_worker.py")


def check_turns(messages: list[dict[str, Any]], labels: set[str]) -> list[str]:
    """The history is whole turns (question L then answer L), each expected label exactly once; returns the
    labels in stored order."""
    validate(messages, for_sending=False)
    assert len(messages) % 2 == 0, "a turn was split"
    seen = []
    for user, assistant in zip(messages[::2], messages[1::2], strict=True):
        assert user["role"] == "user" and assistant["role"] == "assistant"
        label = user["content"].split(" ")[1]
        assert assistant["content"] == [{"type": "text", "text": f"answer {label}"}], "a turn is not contiguous"
        seen.append(label)
    assert len(seen) == len(set(seen)), "a turn was stored twice"
    assert set(seen) == labels, f"lost: {sorted(labels - set(seen))[:5]}, unexpected: {sorted(set(seen) - labels)[:5]}"
    return seen


def spawn(backend: Backend, **job: Any) -> subprocess.Popen[str]:
    payload = json.dumps({"spec": backend.spec(), **job})
    return subprocess.Popen(
        [sys.executable, str(WORKER), payload], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        _, err = process.communicate(timeout=90)
        assert process.returncode == 0, err


def test_sixteen_threads_append_to_one_session(shared_backend: Backend) -> None:
    store = shared_backend.open()
    conflicts = 0
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def writer(worker: int) -> None:
        nonlocal conflicts
        barrier.wait()
        for i in range(8):
            entries = turn(f"t{worker}-{i}")
            while True:
                try:
                    version = store.get_session("shared").version
                except SessionNotFound:
                    version = 0
                try:
                    store.append("shared", entries, expected_version=version)
                    break
                except ConflictError as exc:
                    assert [e.message for e in exc.unsaved] == [e.message for e in entries]
                    with lock:
                        conflicts += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        data = store.load("shared")
    finally:
        store.close()
    check_turns(data.message_params(), {f"t{w}-{i}" for w in range(16) for i in range(8)})
    assert data.version == 16 * 8


def test_memory_store_threads(tmp_path: Path) -> None:
    """The in-process store is shared by threads only: the same guarantee, without processes."""
    from claude_history.stores.memory import MemoryStore

    store = MemoryStore()
    threads = [
        threading.Thread(target=lambda w=w: [append_turn(store, "s", turn(f"m{w}-{i}")) for i in range(10)])
        for w in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_turns(store.load("s").message_params(), {f"m{w}-{i}" for w in range(16) for i in range(10)})


def test_four_processes_append_to_one_session(shared_backend: Backend) -> None:
    store = shared_backend.open()
    store.close()  # create the schema / directory before the workers race to
    workers = [spawn(shared_backend, mode="turns", session="shared", label=f"p{w}", turns=15) for w in range(4)]
    finish(workers)
    store = shared_backend.open()
    try:
        data = store.load("shared")
    finally:
        store.close()
    check_turns(data.message_params(), {f"p{w}-{i}" for w in range(4) for i in range(15)})
    assert data.version == 60


def test_eight_processes_on_separate_sessions(plain_shared_backend: Backend) -> None:
    shared_backend = plain_shared_backend  # the workers also race to create the database / directory
    workers = [spawn(shared_backend, mode="turns", session=f"s{w}", label=f"p{w}", turns=50) for w in range(8)]
    finish(workers)
    store = shared_backend.open()
    try:
        for w in range(8):
            data = store.load(f"s{w}")
            order = check_turns(data.message_params(), {f"p{w}-{i}" for i in range(50)})
            assert order == [f"p{w}-{i}" for i in range(50)]
            assert data.version == 50
    finally:
        store.close()


def test_writer_killed_mid_append(shared_backend: Backend) -> None:
    """SIGKILL a writer while it appends large turns, three times: each time the store opens, the history is
    valid, the last turn is whole or absent, and the next writer carries on."""
    rng = random.Random(7)
    committed: list[str] = []
    store = shared_backend.open()
    store.close()
    for round_ in range(3):
        worker = spawn(shared_backend, mode="forever", session="crash", label=f"k{round_}", pad=200_000)
        assert worker.stdout is not None
        for _ in range(2 + rng.randrange(3)):
            line = worker.stdout.readline()
            assert line.startswith("committed"), worker.stderr.read() if worker.stderr else line
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        worker.stdout.close()
        if worker.stderr:
            worker.stderr.close()
        store = shared_backend.open()
        try:
            data = store.load("crash")
            labels = [m["content"].split(" ")[1] for m in data.message_params()[::2]]
            check_turns(data.message_params(), set(labels))
            assert labels[: len(committed)] == committed, "a committed turn was lost"
            new = labels[len(committed) :]
            assert new == [f"k{round_}-{i}" for i in range(len(new))], "turns out of order"
            assert data.version == len(labels)
            # A new writer continues after the crash, on top of whatever the killed one left.
            append_turn(store, "crash", turn(f"after{round_}"))
            committed = [*labels, f"after{round_}"]
            check_turns(store.load("crash").message_params(), set(committed))
        finally:
            store.close()


async def test_async_tasks_append_concurrently(backend: Backend) -> None:
    store = backend.open_async()

    async def writer(worker: int) -> None:
        for i in range(6):
            entries = turn(f"a{worker}-{i}")
            while True:
                try:
                    version = (await store.get_session("s")).version
                except SessionNotFound:
                    version = 0
                try:
                    await store.append("s", entries, expected_version=version)
                    break
                except ConflictError:
                    await asyncio.sleep(0)

    try:
        await asyncio.gather(*(writer(w) for w in range(8)))
        data = await store.load("s")
    finally:
        await store.aclose()
    check_turns(data.message_params(), {f"a{w}-{i}" for w in range(8) for i in range(6)})
