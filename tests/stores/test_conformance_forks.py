"""Forks over every backend, sync and async (issue 14.4): a fork behaves as a full copy of its parent's prefix
whatever happens to the parent afterwards (append, rewind below the fork point, delete, expiry), for loading,
ranged loads, usage, search, export and forks of forks; backends that share the prefix instead of copying it
(copy-on-write) also write only a few rows for a fork of a long session, and leave nothing of a deleted parent
once its last fork is gone."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, ConflictError, SessionNotFound

from .conftest import Backend
from .samples import turn
from .test_no_trace import _everything

# The backends whose fork shares the parent's rows (the others copy them, which is also correct).
SHARING = {"memory", "sqlite", "postgres", "redis", "file"}


def texts(store: Any, session_id: str) -> list[str]:
    return [json.dumps(m.message, sort_keys=True) for m in store.load(session_id).messages]


def build(store: Any, session_id: str, labels: list[str]) -> None:
    version = 0
    for label in labels:
        version = store.append(session_id, turn(label), expected_version=version)


def test_a_fork_keeps_its_prefix_whatever_the_parent_does(store: Any) -> None:
    build(store, "p", ["a", "b", "c", "d"])
    before = texts(store, "p")
    usage_before = [(u.seq, u.usage) for u in store.usage_log("p")]
    store.fork("p", at=6, new_id="f")
    store.fork("f", at=4, new_id="ff")  # a fork of a fork, inside the shared part
    store.append("f", turn("f1"), expected_version=1)
    store.fork("f", at=8, new_id="fg")  # a fork of a fork, past its own fork point
    store.rewind("p", to=2)  # the parent cut below every fork point...
    store.append("p", turn("p2"), expected_version=store.get_session("p").version)  # ...and written again
    assert texts(store, "f") == before[:6] + texts(store, "fg")[6:8]
    assert texts(store, "ff") == before[:4]
    assert texts(store, "fg") == texts(store, "f")
    assert [m.seq for m in store.load("f").messages] == list(range(8))
    ranged = store.load_messages("f", start=3, stop=7)
    assert [json.dumps(m.message, sort_keys=True) for m in ranged] == texts(store, "f")[3:7]
    assert [m.seq for m in ranged] == [3, 4, 5, 6]
    assert [(u.seq, u.usage) for u in store.usage_log("f")][:3] == usage_before[:3]
    assert len(store.usage_log("f")) == 4
    assert texts(store, "p") == before[:2] + texts(store, "p")[2:4] and len(texts(store, "p")) == 4
    # the fork rewound below its own fork point, then written: it reads what it had, then its own turn
    store.rewind("f", to=2)
    store.append("f", turn("f2"), expected_version=store.get_session("f").version)
    assert texts(store, "f")[:2] == before[:2] and "f2" in texts(store, "f")[2]
    assert texts(store, "ff") == before[:4]
    assert texts(store, "fg")[:6] == before[:6]


def test_a_fork_outlives_its_parent_and_exports_whole(store: Any) -> None:
    build(store, "p", ["a", "b", "c"])
    store.update_session("p", title="T", tags=["x"], metadata={"k": 1})
    before = texts(store, "p")
    store.fork("p", at=4, new_id="f")
    store.fork("f", at=2, new_id="ff")
    assert store.delete("p")
    with pytest.raises(SessionNotFound):
        store.load("p")
    assert texts(store, "f") == before[:4] and texts(store, "ff") == before[:2]
    assert store.get_session("f").title == "T" and store.get_session("f").tags == ("x",)
    exported = store.export_jsonl("f")
    assert store.delete("f")
    assert texts(store, "ff") == before[:2]
    store.import_jsonl(exported, session_id="back")
    assert texts(store, "back") == before[:4]
    assert sorted(info.id for info in store.list_sessions()) == ["back", "ff"]


def test_a_search_finds_the_shared_prefix_under_the_forks_id(store: Any) -> None:
    build(store, "p", ["zebra", "okapi"])
    store.fork("p", at=2, new_id="f")
    store.fork("p", at=4, new_id="g")
    found = sorted((hit.session_id, hit.seq) for hit in store.search("zebra"))
    assert found == [("f", 0), ("f", 1), ("g", 0), ("g", 1), ("p", 0), ("p", 1)]
    assert sorted((hit.session_id, hit.seq) for hit in store.search("okapi")) == [
        ("g", 2),
        ("g", 3),
        ("p", 2),
        ("p", 3),
    ]
    assert sorted((hit.session_id, hit.seq) for hit in store.search("zebra", session_id="f")) == [("f", 0), ("f", 1)]
    assert [hit.session_id for hit in store.search("okapi", session_id="f")] == []
    store.rewind("g", to=2)  # the fork no longer holds the word; its parent still does
    assert sorted(hit.session_id for hit in store.search("okapi")) == ["p", "p"]
    store.delete("p")  # the parent's hits go with it; the forks keep theirs
    assert sorted(hit.session_id for hit in store.search("zebra")) == ["f", "f", "g", "g"]
    assert store.search("okapi") == []


def test_a_fork_survives_its_parents_expiry(backend: Backend, store: Any) -> None:
    build(store, "p", ["a", "b"])
    before = texts(store, "p")
    store.fork("p", new_id="f")
    store.update_session("f", expires_at=None)
    store.update_session("p", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    if backend.base != "redis":  # Redis expires the keys itself
        store.purge_expired()
    with pytest.raises(SessionNotFound):
        store.load("p")
    assert texts(store, "f") == before
    assert sorted(hit.session_id for hit in store.search("answer a")) == ["f"]  # one message holds both words


def test_a_deleted_parent_leaves_no_trace_once_its_forks_are_gone(backend: Backend) -> None:
    store = backend.open()
    parent = "zq-parent-5519"
    try:
        store.append(parent, turn("shared"), expected_version=0)
        store.append(parent, turn("wombatish"), expected_version=1)
        store.fork(parent, at=2, new_id="f")
        store.fork(parent, at=4, new_id="g")
        store.fork("g", at=4, new_id="h")
        store.append("keep", turn("kept"), expected_version=0)
        assert store.delete(parent)
        assert parent not in " ".join(_everything(backend, store))
        assert sorted(hit.session_id for hit in store.search("wombatish")) == ["g", "g", "h", "h"]
        for child in ("f", "g", "h"):
            assert store.delete(child)
        if hasattr(store, "compact"):  # SQLite leaves deleted words in its index until compact()
            store.compact()
        left = " ".join(_everything(backend, store))
        assert parent not in left and "shared" not in left and "wombatish" not in left
    finally:
        store.close()


def _rows_written(backend: Backend, store: Any) -> int:
    """How many stored records the backend holds: rows of every table (SQLite) or keys (Redis), files."""
    return sum(1 for _ in _everything(backend, store))


def _bytes_on_disk(backend: Backend) -> int:
    """The bytes of every file of a file store, each file once however many names (hard links) it has: a
    fork's file count is no measure of a copy (a copying fork writes two files too), its bytes are."""
    assert backend.root is not None
    files = {}
    for path in backend.root.rglob("*"):
        stat = path.stat()
        files[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(files.values())


@pytest.mark.parametrize("length", [10, 1000])
def test_a_fork_does_not_copy_the_prefix(backend: Backend, length: int) -> None:
    if backend.name not in SHARING:
        pytest.skip(f"{backend.name} copies the prefix on fork")
    store = backend.open()
    try:
        store.append("long", [entry for i in range(length) for entry in turn(str(i))], expected_version=0)
        if backend.base == "memory":  # what the fork allocates: a list of references to the parent's rows
            tracemalloc.start()
            try:
                store.fork("long", new_id="f")
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak <= 8 * 2 * length + 16_384
        elif backend.base == "file":  # what the fork writes: its log's first line, sidecar and a hard link
            before = _bytes_on_disk(backend)
            store.fork("long", new_id="f")
            assert _bytes_on_disk(backend) - before <= 3 * 4096  # the search index may grow by a page or two
            assert length < 1000 or before > 20 * 4096  # (so a copy of the log would not fit in that bound)
        else:  # what the fork writes: its session row, whatever the length
            before = _rows_written(backend, store)
            store.fork("long", new_id="f")
            assert _rows_written(backend, store) - before <= 2
        assert len(store.load("f").messages) == 2 * length
    finally:
        store.close()


def test_forks_racing_rewinds_appends_and_deletes_keep_what_they_read(backend: Backend) -> None:
    """Threads fork a session, rewind it below the fork point and write it again, and delete forks, all at once:
    every fork keeps the messages it read when it was made, and once every session is deleted nothing of them
    is left. (On PostgreSQL a rewind copying into a fork while the fork's delete updates their parent is a
    deadlock the store retries.)"""
    store = backend.open()
    errors: list[BaseException] = []
    made: dict[str, list[str]] = {}
    lock = threading.Lock()
    forked = threading.Event()
    try:
        build(store, "p", ["a", "b", "c"])

        def forker() -> None:
            for i in range(12):
                while True:
                    try:
                        store.fork("p", at=4, new_id=f"f{i}")
                        break
                    except ConfigurationError:  # p is at 2 messages now: wait for the rewinder's append
                        time.sleep(0.001)
                try:
                    seen = texts(store, f"f{i}")
                except SessionNotFound:  # deleted already
                    continue
                with lock:
                    made[f"f{i}"] = seen
            forked.set()

        def rewinder() -> None:
            i = 0
            while not forked.is_set():
                i += 1
                try:
                    store.rewind("p", to=2)
                    version = store.get_session("p").version
                    store.append("p", turn(f"r{i}") + turn(f"s{i}"), expected_version=version)
                except ConflictError:
                    continue

        def deleter() -> None:
            for i in range(0, 12, 2):  # every other fork, as soon as it exists
                while not store.delete(f"f{i}") and not forked.is_set():
                    time.sleep(0.001)

        threads = [threading.Thread(target=_catching(work, errors)) for work in (forker, rewinder, deleter)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        alive = {info.id for info in store.list_sessions()} - {"p"}
        assert alive
        for sid in alive:
            assert texts(store, sid) == made[sid]
            assert len(made[sid]) == 4
        for info in store.list_sessions():
            assert store.delete(info.id)
        if hasattr(store, "compact"):
            store.compact()
        left = " ".join(_everything(backend, store))
        assert "answer a" not in left and "question" not in left
    finally:
        store.close()


def _catching(work: Any, errors: list[BaseException]) -> Any:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    return run


# -- a random sequence of appends, forks, rewinds and deletes against plain lists -------------------------------

_STEP = st.tuples(st.sampled_from(["append", "fork", "rewind", "delete"]), st.integers(0, 5), st.integers(0, 8))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(_STEP, min_size=1, max_size=14))
def test_random_forks_behave_as_copies(store: Any, steps: list[tuple[str, int, int]]) -> None:
    run = uuid.uuid4().hex[:8]  # one store serves every example: fresh ids each time
    model: dict[str, list[str]] = {}
    made = 0
    for op, pick, arg in steps:
        alive = sorted(model)
        if op == "append" or not alive:
            sid = alive[pick % len(alive)] if alive and op == "append" else f"{run}-{made}"
            made += sid not in model
            label = f"w{run}x{made}x{arg}"
            version = store.get_session(sid).version if sid in model else 0
            store.append(sid, turn(label), expected_version=version)
            model.setdefault(sid, []).extend(json.dumps(e.message, sort_keys=True) for e in turn(label))
            continue
        sid = alive[pick % len(alive)]
        turns = len(model[sid]) // 2
        if op == "fork":
            at = 2 * (arg % (turns + 1))
            new = f"{run}-{made}"
            made += 1
            store.fork(sid, at=at, new_id=new)
            model[new] = model[sid][:at]
        elif op == "rewind":
            to = 2 * (arg % (turns + 1))
            store.rewind(sid, to=to)
            del model[sid][to:]
        else:
            assert store.delete(sid)
            del model[sid]
        for other, messages in model.items():
            assert texts(store, other) == messages, (op, sid, other)
    for sid, messages in model.items():
        assert texts(store, sid) == messages
        if messages:
            last = json.loads(messages[-1])["content"][0]["text"].split()[-1]
            hits = {hit.session_id for hit in store.search(last)}
            assert hits == {other for other, m in model.items() if any(last in x for x in m)}
    for sid in model:
        store.delete(sid)
