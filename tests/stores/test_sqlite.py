"""What only the SQLite store has to prove: schema and migrations, WAL, real deletion in the file, locks."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from claude_history.errors import SessionNotFound, StoreUnavailable
from claude_history.stores import _fts5
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


@pytest.mark.parametrize("on_delete", [True, False], ids=["compact_on_delete", "compact"])
def test_deleted_content_is_gone_from_the_file(path: Path, on_delete: bool) -> None:
    # Long enough that the deleted session fills whole pages of its own: those are freed, not rewritten, by a
    # delete, so only compaction (on delete, or the explicit call) zeroes them.
    store = SQLiteStore(path, compact_on_delete=on_delete)
    for i in range(30):
        store.append(f"keep{i}", turn(f"keep {i} " * 20), expected_version=0)
    store.append("secret-id-zq", turn("zebracornword " * 30), expected_version=0)
    for version in range(1, 40):
        store.append("secret-id-zq", turn(f"zebraword{version} " * 300), expected_version=version)
    store.update_session("secret-id-zq", title="zebratitle", tags=["zebratag"], metadata={"zebrameta": 1})
    store.save_summary("secret-id-zq", Summary(0, 2, "zebrasummary"))
    for i in range(30, 60):
        store.append(f"keep{i}", turn(f"keep {i} " * 20), expected_version=0)
    assert store.delete("secret-id-zq")
    assert store.search("zebracornword") == []
    if not on_delete:
        store.compact()
    store.close()  # the last connection checkpoints the WAL into the file
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    content = b"".join(p.read_bytes() for p in files)
    for word in (b"zebra", b"secret-id-zq"):
        assert word not in content, word
    assert b"keep 59" in content


def test_compact_removes_what_deletes_left_and_search_still_finds_the_rest(path: Path) -> None:
    store = SQLiteStore(path)
    for i in range(20):
        store.append(f"keep{i}", turn(f"keep {i} quokkaword" if i == 7 else f"keep {i}"), expected_version=0)
    store.append("gone", turn("quokkaword"), expected_version=0)
    store.delete("gone")
    assert sorted((h.session_id, h.seq) for h in store.search("quokkaword")) == [("keep7", 0), ("keep7", 1)]
    store.compact()
    assert sorted((h.session_id, h.seq) for h in store.search("quokkaword")) == [("keep7", 0), ("keep7", 1)]
    assert len(store.search("keep", limit=100)) == 40
    store.delete("keep7")
    store.compact()
    store.close()
    assert b"quokkaword" not in path.read_bytes()
    raw = sqlite3.connect(path)
    try:
        raw.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        raw.close()


def test_a_rewound_message_is_not_found_under_the_one_appended_in_its_place(path: Path) -> None:
    store = SQLiteStore(path)
    store.append("s", turn("first"), expected_version=0)
    store.append("s", turn("platypusword"), expected_version=1)
    store.rewind("s", to=2, expected_version=2)  # seq 2 and 3 are written again below, with other words
    store.append("s", turn("echidnaword"), expected_version=3)
    assert store.search("platypusword") == []
    assert [h.seq for h in store.search("echidnaword")] == [2, 3]
    store.close()


def test_a_store_written_before_the_external_content_index_keeps_its_search(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Schemas 1 to 3 kept the searchable text inside the full-text table; schema 4 moves it to messages_text.
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS[:2])
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("PRAGMA user_version=2")
    raw.execute(
        "INSERT INTO sessions (pk, id, version, message_count, created_at, updated_at) VALUES (1, 's', 1, 1, 0, 0)"
    )
    raw.execute(
        "INSERT INTO messages (id, role, content, created_at) VALUES (?, 'user', ?, 0)",
        (1 << 32, '{"role":"user","content":"old wombat"}'),
    )
    raw.execute("INSERT INTO messages_fts (rowid, role, text) VALUES (?, 'user', 'old wombat')", (1 << 32,))
    raw.close()
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS)
    store = SQLiteStore(path)
    assert [(h.session_id, h.seq, h.snippet) for h in store.search("wombat")] == [("s", 0, "old wombat")]
    store.append("s", [turn("new wombat")[0]], expected_version=1)
    assert len(store.search("wombat")) == 2
    store.rewind("s", to=0, expected_version=2)
    assert store.search("wombat") == []
    store.close()


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


def test_many_openers_of_a_new_file_at_once_all_get_the_store(tmp_path: Path) -> None:
    """Separate app servers starting together on one new file: switching it to WAL and migrating it fail at
    once with "database is locked" for all but one opener unless the store waits its turn."""
    openers, files = 8, 15
    errors: list[BaseException] = []
    for number in range(files):
        path = tmp_path / f"new-{number}.db"
        start = threading.Barrier(openers, timeout=30)

        def open_and_append(who: int, path: Path = path, start: threading.Barrier = start) -> None:
            try:
                start.wait()
                store = SQLiteStore(path)
                try:
                    store.append(f"s{who}", turn(str(who)), expected_version=0)
                finally:
                    store.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_append, args=(who,)) for who in range(openers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        store = SQLiteStore(path)
        assert sorted(info.id for info in store.list_sessions()) == sorted(f"s{w}" for w in range(openers))
        store.close()
    assert errors == []


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
        for table in ("sessions", "messages", "messages_text", "messages_fts", "summaries", "session_tags"):
            assert raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    finally:
        raw.close()


def test_the_search_index_survives_more_than_a_thousand_deletes(path: Path) -> None:
    # Each 'optimize' after a delete added levels to the FTS5 structure until SQLite called the index corrupt
    # (delete 998: "database disk image is malformed"; then "vtable constructor failed" on every write).
    store = SQLiteStore(path, synchronous="OFF", compact_on_delete=True)
    for i in range(1_100):
        store.append(f"s{i}", turn(f"wombat {i}"), expected_version=0)
    for i in range(1_050):
        assert store.delete(f"s{i}")
    store.close()
    reopened = SQLiteStore(path, compact_on_delete=True)
    reopened.append("after", turn("wombat after"), expected_version=0)
    assert len(reopened.search("wombat", limit=500)) == 2 * 51
    assert reopened.delete("after")
    reopened.close()
    raw = sqlite3.connect(path)
    try:
        raw.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        raw.close()


def _structure(raw: sqlite3.Connection, table: str = "messages_fts") -> bytes:
    """The FTS5 structure record (row 10 of the index's _data table)."""
    return bytes(raw.execute(f"SELECT block FROM {table}_data WHERE id = 10").fetchone()[0])


def _empty_structure() -> bytes:
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.execute("CREATE VIRTUAL TABLE t USING fts5(role UNINDEXED, text)")
        return _structure(scratch, "t")
    finally:
        scratch.close()


@pytest.mark.parametrize("damage", ["garbage", "oversized", "stale", "empty"])
def test_a_damaged_search_index_is_rebuilt_on_open(path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    # A file an older release left with a corrupt index failed every append, search and delete ever after
    # ("vtable constructor failed: messages_fts"); one whose index structure had grown near that point
    # broke at its next delete. A structure record that parses but is wrong ("stale": a copy from an earlier
    # state of the file; "empty": an empty index's) hid messages from search and failed the next write
    # ("constraint failed"). Opening it rebuilds the index from the stored text; the messages are intact.
    store = SQLiteStore(path)
    store.append("a", turn("wombat one"), expected_version=0)
    store.close()
    raw = sqlite3.connect(path)
    try:
        earlier = _structure(raw)
    finally:
        raw.close()
    store = SQLiteStore(path)
    store.append("b", turn("wombat two"), expected_version=0)
    store.close()
    raw = sqlite3.connect(path)
    try:
        if damage == "garbage":
            block = b"\x01\x02\x03\x04\x05"
        elif damage == "oversized":
            block = b"\x00" * 4 + b"\x81\x00" + b"\x00" * 2_000
        elif damage == "stale":
            block = earlier
        else:
            block = _empty_structure()
        raw.execute("UPDATE messages_fts_data SET block = ? WHERE id = 10", (block,))
        raw.commit()
    finally:
        raw.close()
    reopened = SQLiteStore(path)
    try:
        assert "rebuilding its full-text search index" in caplog.text
        assert {hit.session_id for hit in reopened.search("wombat")} == {"a", "b"}
        reopened.append("a", turn("wombat three"), expected_version=1)
        assert reopened.delete("b")
        assert [hit.session_id for hit in reopened.search("wombat")] == ["a"] * 4
        assert len(reopened.load("a").messages) == 4
        reopened.compact()  # the delete left b's entries to compaction; the index is whole again after it
    finally:
        reopened.close()
    raw = sqlite3.connect(path)
    try:
        raw.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        raw.close()


def test_a_sound_search_index_is_not_rebuilt_on_open(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The check on open must not mistake a sound index for a damaged one, whatever the store did to it.
    store = SQLiteStore(path, compact_on_delete=False)
    for i in range(30):
        store.append(f"s{i}", turn(f"wombat {i}"), expected_version=0)
        store.append(f"s{i}", turn(f"numbat {i}"), expected_version=1)
    store.rewind("s3", to=1)
    for i in range(0, 30, 3):
        store.delete(f"s{i}")
    store.close()
    for compact in (False, True):
        reopened = SQLiteStore(path)
        if compact:
            reopened.compact()
        reopened.close()
    SQLiteStore(path).close()
    assert "rebuilding" not in caplog.text
    reopened = SQLiteStore(path)
    try:
        assert len(reopened.search("numbat", limit=100)) == 2 * 20
    finally:
        reopened.close()



def test_a_write_by_another_process_during_the_check_on_open_is_not_taken_for_damage(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server writes while a second process opens the same file (a CLI, a batch import): the check on open
    # reads the index's structure record and then its pages; a commit between the two adds a segment the
    # record did not name. Read in one snapshot, the index is sound; read across the commit, the store
    # rebuilt the whole index on every such open (found by bench runs that opened the file beside a server).
    writer = SQLiteStore(path)
    for i in range(5):
        writer.append(f"s{i}", turn(f"wombat {i}"), expected_version=0)
    real = _fts5._segment_ids
    wrote = []

    def with_a_commit_in_between(conn: sqlite3.Connection, data: str) -> set[int]:
        # After the structure record is read, before the pages: another connection commits a new segment.
        writer.append(f"new{len(wrote)}", turn("a numbat appears"), expected_version=0)
        wrote.append(True)
        return real(conn, data)

    monkeypatch.setattr(_fts5, "_segment_ids", with_a_commit_in_between)
    opener = SQLiteStore(path)
    try:
        assert wrote, "the check on open did not run"
        assert "rebuilding" not in caplog.text
        assert len(opener.search("numbat", limit=10)) == 2  # the message and its reply, both found
    finally:
        opener.close()
        writer.close()

def test_a_store_written_before_copy_on_write_forks_keeps_working(path: Path) -> None:
    # Schema 6 adds the fork pointer (parent_pk, fork_at): a store at schema 5 is upgraded on open, and its
    # sessions load, search and fork as before.
    store = SQLiteStore(path)
    store.append("s", turn("old wombat") + turn("two"), expected_version=0)
    store.close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("DROP INDEX sessions_by_parent")
    raw.execute("ALTER TABLE sessions DROP COLUMN fork_at")
    raw.execute("ALTER TABLE sessions DROP COLUMN parent_pk")
    raw.execute("PRAGMA user_version=5")
    raw.close()
    store = SQLiteStore(path)
    assert len(store.load("s").messages) == 4
    store.fork("s", at=2, new_id="f")
    assert store.load("f").message_params() == store.load("s").message_params()[:2]
    assert sorted(h.session_id for h in store.search("wombat")) == ["f", "f", "s", "s"]
    store.delete("s")
    assert len(store.load("f").messages) == 2
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 6
    raw.close()


def test_a_deleted_parent_stays_only_as_its_forks_data_and_costs_no_copy(path: Path) -> None:
    store = SQLiteStore(path)
    store.append("p", [entry for i in range(100) for entry in turn(f"w{i}")], expected_version=0)
    store.fork("p", new_id="f")
    store.fork("p", at=20, new_id="g")
    raw = sqlite3.connect(path)

    def count(table: str) -> int:
        return int(raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    assert count("messages") == 200
    assert store.delete("p")
    assert count("messages") == 200  # nothing copied: the rows stay, as the forks' data
    assert sorted(info.id for info in store.list_sessions()) == ["f", "g"]
    assert sorted(hit.session_id for hit in store.search("w5")) == ["f", "f", "g", "g"]
    assert raw.execute("SELECT count(*) FROM sessions WHERE id = 'p'").fetchone()[0] == 0
    assert store.delete("f")
    assert count("messages") == 20  # what g still reads
    assert len(store.load("g").messages) == 20
    assert store.delete("g")
    assert (count("messages"), count("messages_text"), count("sessions")) == (0, 0, 0)
    raw.close()
    store.close()


def _hold_the_write(store: SQLiteStore, entered: threading.Event, release: threading.Event) -> None:
    """An append whose transaction stays open until ``release`` is set."""
    original = store._insert_messages

    def slow(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        entered.set()
        release.wait(30)

    store._insert_messages = slow  # type: ignore[method-assign]
    try:
        store.append("held", turn("held"), expected_version=0)
    finally:
        del store._insert_messages


def test_writers_of_one_process_queue_for_each_other_outside_sqlite(path: Path) -> None:
    """A second writer of the same file in this process waits on the process's lock, not in SQLite's busy
    handler (whose sleeps of 1, 2, 5, 10... ms made the commits' tail): it sends nothing to SQLite until the
    first one has committed, then commits at once. Two store objects on one file share the lock."""
    first, second = SQLiteStore(path), SQLiteStore(path)
    sent: list[str] = []
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_the_write, args=(first, entered, release))
    holder.start()
    assert entered.wait(10)
    appended: list[int] = []

    def append() -> None:
        second._conn().set_trace_callback(sent.append)
        appended.append(second.append("other", turn("waiting"), expected_version=0))

    waiter = threading.Thread(target=append)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and appended == []  # still waiting ...
    assert not any(statement.startswith("BEGIN") for statement in sent)  # ... outside SQLite
    release.set()
    holder.join(10)
    waiter.join(10)
    assert appended == [1]
    assert any(statement.startswith("BEGIN IMMEDIATE") for statement in sent)
    assert second.load("held").version == 1 and second.load("other").version == 1
    first.close()
    second.close()


def test_a_writer_queued_in_the_process_gives_up_after_the_busy_timeout(path: Path) -> None:
    store = SQLiteStore(path, busy_timeout=0.2)
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_the_write, args=(store, entered, release))
    holder.start()
    try:
        assert entered.wait(10)
        failure: list[BaseException] = []

        def append() -> None:
            try:
                store.append("other", turn("late"), expected_version=0)
            except BaseException as exc:
                failure.append(exc)

        waiter = threading.Thread(target=append)
        waiter.start()
        waiter.join(10)
        assert len(failure) == 1 and isinstance(failure[0], StoreUnavailable)
        assert "busy" in str(failure[0]) and "0.2s" in str(failure[0])
    finally:
        release.set()
        holder.join(10)
    with pytest.raises(SessionNotFound):
        store.load("other")  # nothing of the failed append was written
    assert store.append("other", turn("again"), expected_version=0) == 1
    store.close()


def _child_writes_while_a_parent_thread_held_the_lock(store: SQLiteStore, queue: multiprocessing.Queue[object]) -> None:
    try:
        queue.put(store.append("child", turn("child"), expected_version=0))
    except BaseException as exc:
        queue.put(repr(exc))


def test_a_child_forked_while_a_thread_of_the_parent_holds_the_writer_lock_can_write(path: Path) -> None:
    """The process's writer lock, held by one of the parent's threads at the fork, is not the child's (that
    thread does not exist there to release it): the child writes at once."""
    store = SQLiteStore(path, busy_timeout=5)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._writer:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    child = context.Process(target=_child_writes_while_a_parent_thread_held_the_lock, args=(store, queue))
    try:
        child.start()
        child.join(timeout=60)
        assert queue.get(timeout=5) == 1
    finally:
        release.set()
        holder.join(10)
    assert store.load("child").version == 1
    store.close()


def test_a_lock_met_by_the_check_on_open_is_not_taken_for_damage(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "database is locked" while reading the index on open says another connection holds a lock, not that the
    # index is damaged: rebuilding it then took the write lock and rewrote the whole index for nothing.
    store = SQLiteStore(path)
    store.append("a", turn("wombat one"), expected_version=0)
    store.close()
    calls = []

    def locked(conn: sqlite3.Connection, name: str) -> bool:
        calls.append(name)
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(sqlite_module, "structure_is_sound", locked)
    with caplog.at_level(logging.INFO):
        reopened = SQLiteStore(path)
    try:
        assert calls, "the check on open did not run"
        assert "rebuilding" not in caplog.text
        assert "waited for a lock" in caplog.text
        assert [hit.session_id for hit in reopened.search("wombat")] == ["a", "a"]  # the message and its reply
    finally:
        reopened.close()


def test_the_rebuild_on_open_says_why(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteStore(path)
    store.append("a", turn("wombat one"), expected_version=0)
    store.close()
    raw = sqlite3.connect(path)
    try:
        oversized = b"\x00" * 4 + b"\x81\x00" + b"\x00" * 2_000
        raw.execute("UPDATE messages_fts_data SET block = ? WHERE id = 10", (oversized,))
        raw.commit()
    finally:
        raw.close()
    SQLiteStore(path).close()
    assert "rebuilding its full-text search index (its structure record is 2,006 bytes" in caplog.text
