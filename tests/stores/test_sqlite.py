"""What only the SQLite store has to prove: schema and migrations, WAL, real deletion in the file, locks."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from claude_history.errors import SessionNotFound, StoreUnavailable
from claude_history.stores import sqlite as sqlite_module
from claude_history.stores.base import Summary
from claude_history.stores.sqlite import MIGRATIONS, SQLiteStore

from .samples import turn


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


def test_schema_is_migrated_once_and_uses_wal(path: Path) -> None:
    store = SQLiteStore(path)
    store.append("s", turn("1"), expected_version=0)
    store.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"sessions", "messages", "summaries", "session_tags", "messages_fts"} <= tables
        assert raw.execute("SELECT count(*) FROM messages").fetchone()[0] == 2  # one row per message
    finally:
        raw.close()
    reopened = SQLiteStore(path)
    assert reopened.load("s").version == 1
    reopened.close()


def test_a_new_migration_is_applied_to_an_existing_database(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(path)
    store.append("s", turn("1"), expected_version=0)
    store.close()
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*MIGRATIONS, ["CREATE TABLE added_later (x INTEGER)"]])
    upgraded = SQLiteStore(path)
    assert upgraded.load("s").version == 1
    upgraded.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        assert raw.execute("SELECT count(*) FROM added_later").fetchone()[0] == 0
    finally:
        raw.close()


def test_a_database_from_a_newer_version_is_refused(path: Path) -> None:
    SQLiteStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    raw.close()
    with pytest.raises(StoreUnavailable, match="upgrade claude-history"):
        SQLiteStore(path)


def test_a_file_that_is_not_a_database_is_refused(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable):
        SQLiteStore(path)


def test_a_missing_directory_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        SQLiteStore(tmp_path / "no" / "such" / "dir.db")


def test_deleted_content_is_gone_from_the_file(path: Path) -> None:
    store = SQLiteStore(path)
    for i in range(30):
        store.append(f"keep{i}", turn(f"keep {i} " * 20), expected_version=0)
    store.append("secret-id-zq", turn("zebracornword " * 30), expected_version=0)
    store.update_session("secret-id-zq", title="zebratitle", tags=["zebratag"], metadata={"zebrameta": 1})
    store.save_summary("secret-id-zq", Summary(0, 2, "zebrasummary"))
    for i in range(30, 60):
        store.append(f"keep{i}", turn(f"keep {i} " * 20), expected_version=0)
    assert store.delete("secret-id-zq")
    store.close()  # the last connection checkpoints the WAL into the file
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    content = b"".join(p.read_bytes() for p in files)
    for word in (b"zebra", b"secret-id-zq"):
        assert word not in content, word
    assert b"keep 59" in content


def test_compact_removes_what_deletes_left_when_compaction_on_delete_is_off(path: Path) -> None:
    store = SQLiteStore(path, compact_on_delete=False)
    for i in range(20):
        store.append(f"keep{i}", turn(f"keep {i}"), expected_version=0)
    store.append("gone", turn("quokkaword"), expected_version=0)
    store.delete("gone")
    assert store.search("quokkaword") == []
    store.compact()
    store.close()
    assert b"quokkaword" not in path.read_bytes()


def test_a_writer_that_cannot_get_the_lock_gets_a_clear_error(path: Path) -> None:
    store = SQLiteStore(path, busy_timeout=0.05)
    store.append("s", turn("1"), expected_version=0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="busy"):
            store.append("s", turn("2"), expected_version=1)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.append("s", turn("2"), expected_version=1) == 2
    assert store.load("s").version == 2  # reads were never blocked
    store.close()


def test_a_closed_store_says_so(path: Path) -> None:
    store = SQLiteStore(path)
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.load("s")


def test_connections_are_per_thread(path: Path) -> None:
    store = SQLiteStore(path)
    store.append("s", turn("main"), expected_version=0)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            assert store.load("s").version >= 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store._connections) == 5
    store.close()
    assert store._connections == []


def _child_appends(store: SQLiteStore, queue: multiprocessing.Queue[object]) -> None:
    try:
        queue.put(store.append("s", turn("child"), expected_version=1))
    except BaseException as exc:  # pragma: no cover - reported in the parent
        queue.put(repr(exc))


def test_a_store_inherited_by_a_forked_process_opens_its_own_connection(path: Path) -> None:
    store = SQLiteStore(path)
    store.append("s", turn("parent"), expected_version=0)
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    child = context.Process(target=_child_appends, args=(store, queue))
    child.start()
    child.join(timeout=60)
    assert queue.get(timeout=5) == 2
    assert [m.message["content"] for m in store.load("s").messages[::2]] == [
        "question parent",
        "question child",
    ]
    store.close()


def test_expired_session_rows_are_removed_by_purge(path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    store = SQLiteStore(path)
    store.append("s", turn("1"), expected_version=0)
    store.update_session("s", expires_at=datetime.now(timezone.utc) + timedelta(minutes=5))
    assert store.purge_expired(datetime.now(timezone.utc) + timedelta(minutes=10)) == 1
    with pytest.raises(SessionNotFound):
        store.load("s")
    store.close()
    raw = sqlite3.connect(path)
    try:
        for table in ("sessions", "messages", "messages_fts", "summaries", "session_tags"):
            assert raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    finally:
        raw.close()


def test_the_search_index_survives_more_than_a_thousand_deletes(path: Path) -> None:
    # Each 'optimize' after a delete added levels to the FTS5 structure until SQLite called the index corrupt
    # (delete 998: "database disk image is malformed"; then "vtable constructor failed" on every write).
    store = SQLiteStore(path, synchronous="OFF")
    for i in range(1_100):
        store.append(f"s{i}", turn(f"wombat {i}"), expected_version=0)
    for i in range(1_050):
        assert store.delete(f"s{i}")
    store.close()
    reopened = SQLiteStore(path)
    reopened.append("after", turn("wombat after"), expected_version=0)
    assert len(reopened.search("wombat", limit=500)) == 2 * 51
    assert reopened.delete("after")
    reopened.close()
    raw = sqlite3.connect(path)
    try:
        raw.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        raw.close()
