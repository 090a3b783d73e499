"""Several writers on one session of a shared store (PostgreSQL, Redis): threads, asyncio tasks,
processes and a writer killed with SIGKILL. Every writer appends whole turns through compare-and-swap;
afterwards nothing is lost, nothing is duplicated and the history is valid."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from claude_history.errors import ConflictError, SessionNotFound
from claude_history.history import validate
from claude_history.stores import open_async_store, open_store
from claude_history.stores.base import Entry
from waiting import read_line

pytestmark = pytest.mark.services

MESSAGES_PER_TURN = 4

# Shared by this process and the worker processes: a tool-loop turn labelled with its writer and number.
TURN_CODE = '''
def make_turn(worker, turn, padding=0):
    label = f"w{worker}-t{turn}"
    tool_id = f"toolu_{worker}_{turn}"
    return [
        Entry({"role": "user", "content": f"question {label}" + "." * padding}),
        Entry(
            {"role": "assistant", "content": [
                {"type": "text", "text": f"looking up {label}"},
                {"type": "tool_use", "id": tool_id, "name": "lookup", "input": {"label": label}},
            ]},
            model="claude-sonnet-4-6",
            usage={"input_tokens": 10, "output_tokens": 5},
        ),
        Entry({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": f"result {label}"},
        ]}),
        Entry({"role": "assistant", "content": [{"type": "text", "text": f"answer {label}"}]},
              model="claude-sonnet-4-6", usage={"input_tokens": 20, "output_tokens": 7}),
    ]


def append_turn(store, session_id, entries):
    """Append with compare-and-swap, retrying on conflict as an app server would; returns the conflicts."""
    conflicts = 0
    while True:
        try:
            version = store.get_session(session_id).version
        except SessionNotFound:
            version = 0
        try:
            store.append(session_id, entries, expected_version=version)
            return conflicts
        except ConflictError:
            conflicts += 1
'''
namespace: dict[str, Any] = {
    "Entry": Entry,
    "ConflictError": ConflictError,
    "SessionNotFound": SessionNotFound,
}
exec(TURN_CODE, namespace)
make_turn = namespace["make_turn"]
append_turn = namespace["append_turn"]

WORKER = (
    textwrap.dedent(
        """
    import json, sys
    from claude_history.errors import ConflictError, SessionNotFound
    from claude_history.stores import open_store
    from claude_history.stores.base import Entry
    """
    )
    + TURN_CODE
    + textwrap.dedent(
        """
    spec = json.loads(sys.argv[1])
    store = open_store(spec["url"], **spec["options"])
    if spec["barrier"]:  # start together, once every process has paid for its imports
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()
    conflicts = 0
    turn = 0
    while spec["turns"] is None or turn < spec["turns"]:
        conflicts += append_turn(store, spec["session"], make_turn(spec["worker"], turn, spec["padding"]))
        print(json.dumps({"appended": turn}), flush=True)
        turn += 1
    store.close()
    print(json.dumps({"conflicts": conflicts}), flush=True)
    """
    )
)


@dataclass
class Shared:
    """One isolated namespace (schema or key prefix) on a shared server, and how to open stores on it."""

    name: str
    url: str
    options: dict[str, Any]
    opened: list[Any] = field(default_factory=list)

    def open(self, **extra: Any) -> Any:
        store = open_store(self.url, **self.options, **extra)
        self.opened.append(store)
        return store

    def spawn(
        self, session: str, worker: int, turns: int | None, padding: int = 0, barrier: bool = False
    ) -> subprocess.Popen[str]:
        spec = {
            "url": self.url,
            "options": self.options,
            "session": session,
            "worker": worker,
            "turns": turns,
            "padding": padding,
            "barrier": barrier,
        }
        return spawn(WORKER, spec)


def spawn(code: str, spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_together(processes: list[subprocess.Popen[str]]) -> None:
    """Wait until every worker is ready (imports done, store open), then release them at once."""
    for process in processes:
        assert process.stdout is not None
        line = read_line(process.stdout, "a worker to open its store")
        assert line.strip() == '{"ready": true}', line + (process.stderr.read() if process.stderr else "")
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()


def _drop_postgres(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _drop_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["postgres", "redis"])
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    token = uuid.uuid4().hex[:12]
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        backend = Shared("postgres", url, {"schema": f"t_conc_{token}", "pool_max_size": 4})
    else:
        url = request.getfixturevalue("redis_url")
        backend = Shared("redis", url, {"prefix": f"test:conc:{token}:"})
    try:
        yield backend
    finally:
        for store in backend.opened:
            store.close()
        if backend.name == "postgres":
            _drop_postgres(url, backend.options["schema"])
        else:
            _drop_redis(url, backend.options["prefix"])


def check_turns(messages: list[dict[str, Any]], expected: set[str] | None = None) -> list[str]:
    """The history is valid, made of whole turns each stored exactly once; returns the turn labels."""
    validate(messages, for_sending=False)
    assert len(messages) % MESSAGES_PER_TURN == 0, f"a partial turn is stored ({len(messages)} messages)"
    labels = []
    for start in range(0, len(messages), MESSAGES_PER_TURN):
        first = messages[start]["content"]
        label = first.split()[1].rstrip(".")
        worker, turn = label[1:].split("-t")
        assert [m for m in messages[start : start + MESSAGES_PER_TURN]] == [
            e.message for e in make_turn(int(worker), int(turn), len(first) - len(f"question {label}"))
        ], f"turn {label} is not stored whole and in order"
        labels.append(label)
    assert len(labels) == len(set(labels)), "a turn is stored twice"
    if expected is not None:
        assert set(labels) == expected, f"lost turns: {sorted(expected - set(labels))}"
    return labels


def _labels(workers: int, turns: int) -> set[str]:
    return {f"w{w}-t{t}" for w in range(workers) for t in range(turns)}


def test_16_threads_append_through_cas_without_loss(shared: Shared) -> None:
    store = shared.open()
    workers, turns = 16, 3
    errors: list[BaseException] = []
    conflicts = [0] * workers
    start = threading.Barrier(workers)

    def run(worker: int) -> None:
        try:
            start.wait()
            for turn in range(turns):
                conflicts[worker] += append_turn(store, "one-session", make_turn(worker, turn))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    data = store.load("one-session")
    check_turns(data.message_params(), _labels(workers, turns))
    assert data.version == workers * turns  # one version per committed turn, none skipped
    assert sum(conflicts) > 0  # the writers really raced (16 threads on one session)


def test_asyncio_tasks_append_through_cas_without_loss(shared: Shared) -> None:
    workers, turns = 8, 3

    async def main() -> Any:
        store = open_async_store(shared.url, **shared.options)
        try:

            async def run(worker: int) -> None:
                for turn in range(turns):
                    entries = make_turn(worker, turn)
                    while True:
                        try:
                            version = (await store.get_session("tasks")).version
                        except SessionNotFound:
                            version = 0
                        try:
                            await store.append("tasks", entries, expected_version=version)
                            break
                        except ConflictError as exc:
                            assert exc.unsaved == entries  # nothing is lost: the caller still has the turn

            await asyncio.gather(*(run(w) for w in range(workers)))
            return await store.load("tasks")
        finally:
            await store.aclose()

    data = asyncio.run(main())
    check_turns(data.message_params(), _labels(workers, turns))
    assert data.version == workers * turns


def test_4_processes_append_through_cas_without_loss(shared: Shared) -> None:
    workers, turns = 4, 6
    processes = [shared.spawn("multi-process", w, turns, barrier=True) for w in range(workers)]
    start_together(processes)
    for process in processes:
        _, err = process.communicate(timeout=90)
        assert process.returncode == 0, err
    data = shared.open().load("multi-process")
    check_turns(data.message_params(), _labels(workers, turns))
    assert data.version == workers * turns


def test_writer_killed_mid_append_leaves_whole_turns(shared: Shared) -> None:
    """SIGKILL a writer at arbitrary moments while it appends large turns: the store opens, the history is
    valid, and every turn is either whole or absent; then writing continues from there."""
    session = "killed"
    confirmed = 0
    for round_number, delay in enumerate((0.0, 0.013, 0.029, 0.041)):
        process = shared.spawn(session, round_number, turns=None, padding=200_000)
        assert process.stdout is not None
        # Wait until it is in full flight (two turns committed in this round), then kill it at some moment.
        seen = 0
        while seen < 2:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "worker died"
            seen += 1
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
        confirmed += seen

        store = shared.open()
        data = store.load(session)
        labels = check_turns(data.message_params())
        assert len(labels) >= confirmed  # every turn the writer saw committed is there
        confirmed = len(labels)
        assert data.version == len(labels)

    # The session stays writable after the crashes.
    store = shared.open()
    version = store.get_session(session).version
    assert store.append(session, make_turn(99, 0), expected_version=version) == version + 1
    check_turns(store.load(session).message_params())


CHAT_WORKER = textwrap.dedent(
    """
    import json, sys
    import anthropic
    from claude_history import Chat
    from claude_history.errors import ConflictError
    from claude_history.stores import open_store

    spec = json.loads(sys.argv[1])
    client = anthropic.Anthropic(api_key="test", base_url=spec["base_url"], max_retries=0)
    store = open_store(spec["url"], **spec["options"])
    chat = Chat(client, model="claude-sonnet-4-6", store=store, session_id="shared-chat", system="Be brief.")
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    conflicts = 0
    for turn in range(spec["turns"]):
        while True:
            try:
                chat.send(f"process {spec['worker']} message {turn}")
                break
            except ConflictError:
                conflicts += 1  # another app server committed first; the chat reloaded, send again on top
    store.close()
    print(json.dumps({"conflicts": conflicts}))
    """
)


def test_chat_in_several_processes_over_one_shared_store(shared: Shared) -> None:
    """Several app servers (processes) run ``Chat`` on the same session of one PostgreSQL / Redis against one
    Messages API: every user message is answered and stored once, in a valid history."""
    from claude_history.testing import Simulator

    workers, turns = 3, 5
    with Simulator() as sim:
        processes = []
        for worker in range(workers):
            spec = {
                "base_url": sim.base_url,
                "url": shared.url,
                "options": shared.options,
                "worker": worker,
                "turns": turns,
            }
            processes.append(spawn(CHAT_WORKER, spec))
        start_together(processes)
        for process in processes:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
    data = shared.open().load("shared-chat")
    messages = data.message_params()
    validate(messages, for_sending=False)
    assert [m["role"] for m in messages] == ["user", "assistant"] * (workers * turns)
    said = [m["content"] for m in messages if m["role"] == "user"]
    assert sorted(said) == sorted(f"process {w} message {t}" for w in range(workers) for t in range(turns))
    for worker in range(workers):  # each app server's turns in the order it sent them
        mine = [text for text in said if text.startswith(f"process {worker} ")]
        assert mine == [f"process {worker} message {t}" for t in range(turns)]
    assert all(m.model == "claude-sonnet-4-6" and m.usage for m in data.messages if m.role == "assistant")
    assert data.info.system == "Be brief."
