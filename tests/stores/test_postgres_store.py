"""What only the PostgreSQL store has: migrations, the pool, connection failures, its tables, tsvector
search."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, ConflictError, SessionNotFound, StoreUnavailable
from claude_history.stores import open_async_store, open_store
from claude_history.stores._json import dumps
from claude_history.stores._search_text import message_text, search_terms, text_matches
from claude_history.stores.base import Entry, Summary
from claude_history.stores.postgres import AsyncPostgresStore, PostgresStore
from claude_history.stores.postgres._sql import MIGRATIONS, quote_ident

pytestmark = pytest.mark.services

psycopg = pytest.importorskip("psycopg")


class PG:
    """A unique schema on the test server, dropped afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = "t_pg_" + uuid.uuid4().hex[:12]
        self.stores: list[PostgresStore] = []

    def open(self, **options: Any) -> PostgresStore:
        store = PostgresStore(self.url, **{"schema": self.schema, "pool_max_size": 4, **options})
        self.stores.append(store)
        return store

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query.replace("{s}", quote_ident(self.schema)), params)
            return cur.fetchall() if cur.description else []

    def drop(self) -> None:
        for store in self.stores:
            store.close()
        self.sql("DROP SCHEMA IF EXISTS {s} CASCADE")


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PG]:
    handle = PG(postgres_url)
    try:
        yield handle
    finally:
        handle.drop()


def user(text: str) -> Entry:
    return Entry({"role": "user", "content": text})


def reply(text: str) -> Entry:
    return Entry({"role": "assistant", "content": [{"type": "text", "text": text}]}, model="claude-sonnet-4-6")


# -- migrations ----------------------------------------------------------------------------------------------


def test_first_open_creates_schema_and_records_each_migration_once(pg: PG) -> None:
    store = pg.open()
    store.append("s", [user("hello"), reply("hi")], expected_version=0)
    again = pg.open()  # a second app server starting on the same schema
    assert again.load("s").message_params() == store.load("s").message_params()
    rows = pg.sql("SELECT version, name FROM {s}.schema_migrations ORDER BY version")
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_concurrent_first_start_from_several_processes_is_safe(pg: PG) -> None:
    """Processes and threads opening a brand-new schema at the same moment: the advisory lock makes exactly
    one of them create it, the others wait and then find it ready."""
    code = textwrap.dedent(
        """
        import sys
        from claude_history.stores.postgres import PostgresStore
        from claude_history.stores.base import Entry
        store = PostgresStore(sys.argv[1], schema=sys.argv[2], pool_max_size=1)
        store.append("p" + sys.argv[3], [Entry({"role": "user", "content": "hi"})], expected_version=0)
        store.close()
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, pg.url, pg.schema, str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    errors: list[BaseException] = []

    def open_in_thread(i: int) -> None:
        try:
            pg.open(pool_max_size=1).append(f"t{i}", [user("hi")], expected_version=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_in_thread, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    assert not errors, errors
    assert pg.sql("SELECT count(*), count(DISTINCT version) FROM {s}.schema_migrations") == [
        (len(MIGRATIONS), len(MIGRATIONS))
    ]
    ids = [row[0] for row in pg.sql("SELECT id FROM {s}.sessions ORDER BY id")]
    assert ids == sorted([f"p{i}" for i in range(4)] + [f"t{i}" for i in range(4)])


def test_sessions_written_before_copy_on_write_forks_migrate_and_fork(pg: PG) -> None:
    """A schema at migration 4 (every message row keyed by the session id) opened by this release: its
    sessions keep their messages, fork without a copy, and a deleted old parent stays as its fork's data (its
    storage key is its id, here one of 1,998 bytes: the ghost id it then takes still fits PostgreSQL's index)."""
    old = "".join(chr(0x4E00 + i * 7919 % 20_000) for i in range(666))  # incompressible
    pg.sql("CREATE SCHEMA {s}")
    pg.sql(
        "CREATE TABLE {s}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for migration in MIGRATIONS[:4]:
        pg.sql(migration.sql)
        pg.sql("INSERT INTO {s}.schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name))
    pg.sql(
        "INSERT INTO {s}.sessions (id, version, message_count, created_at, updated_at)"
        " VALUES (%s, 1, 2, now(), now())",
        (old,),
    )
    for seq, text in enumerate(["ancient words", "older reply"]):
        pg.sql(
            "INSERT INTO {s}.messages (session_id, seq, role, message, created_at, words)"
            " VALUES (%s, %s, 'user', %s, now(), array_to_tsvector(%s::text[]))",
            (old, seq, dumps({"role": "user", "content": text}), search_terms(text)),
        )
    store = pg.open()
    assert [m.message["content"] for m in store.load(old).messages] == ["ancient words", "older reply"]
    store.fork(old, at=1, new_id="new")
    assert pg.sql("SELECT count(*) FROM {s}.messages") == [(2,)]  # shared, not copied
    assert store.delete(old)
    assert [m.message["content"] for m in store.load("new").messages] == ["ancient words"]
    assert [hit.session_id for hit in store.search("ancient")] == ["new"]
    store.append(old, [user("a new session under the old id")], expected_version=0)
    assert [m.message["content"] for m in store.load(old).messages] == ["a new session under the old id"]
    assert store.delete("new")
    assert pg.sql("SELECT count(*) FROM {s}.messages") == [(1,)]


def test_schema_newer_than_the_code_is_refused(pg: PG) -> None:
    pg.open()
    pg.sql("INSERT INTO {s}.schema_migrations (version, name) VALUES (999, 'from the future')")
    with pytest.raises(ConfigurationError, match="newer than this claude-history supports"):
        pg.open()


def test_schemas_isolate_stores_and_any_name_is_quoted(pg: PG) -> None:
    odd = PG(pg.url)
    odd.schema = 'we"ird; DROP TABLE x; --' + uuid.uuid4().hex[:6]
    try:
        a, b = pg.open(), odd.open()
        a.append("same-id", [user("in a")], expected_version=0)
        b.append("same-id", [user("in b")], expected_version=0)
        assert a.load("same-id").message_params() == [{"role": "user", "content": "in a"}]
        assert b.load("same-id").message_params() == [{"role": "user", "content": "in b"}]
        assert [s.id for s in b.list_sessions()] == ["same-id"]
    finally:
        odd.drop()


def test_bad_options_are_reported_clearly(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="pool"):
        PostgresStore(postgres_url, schema="x", pool_min_size=5, pool_max_size=2)
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresStore(postgres_url, schema="")
    with pytest.raises(ConfigurationError, match="connection settings"):
        PostgresStore(postgres_url, schema="x", no_such_libpq_option="1")


def test_url_query_carries_store_options(pg: PG) -> None:
    store = open_store(f"{pg.url}?schema={pg.schema}&pool_max_size=2&application_name=ch-test")
    try:
        assert store.schema == pg.schema  # type: ignore[attr-defined]
        store.append("q", [user("hi")], expected_version=0)
        assert pg.sql("SELECT id FROM {s}.sessions") == [("q",)]
    finally:
        store.close()


# -- availability and the pool -------------------------------------------------------------------------------

DOWN = "postgresql://postgres:s3cret@127.0.0.1:1/test"  # nothing listens on port 1


def test_unreachable_server_is_store_unavailable_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore(DOWN, schema="x")
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "s3cret" not in message


def test_unreachable_server_async_fails_on_first_use() -> None:
    async def main() -> None:
        store = AsyncPostgresStore(DOWN, schema="x")  # constructing never blocks nor connects
        try:
            with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
                await store.load("anything")
        finally:
            await store.aclose()

    asyncio.run(main())


def test_closed_store_says_so(pg: PG) -> None:
    store = pg.open()
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.load("s")


def test_exhausted_pool_is_store_unavailable_naming_the_setting(pg: PG) -> None:
    store = pg.open(pool_min_size=1, pool_max_size=1, pool_timeout=0.3)
    # White box: every connection of the pool is busy.
    with store._pool.connection(), pytest.raises(StoreUnavailable, match="pool_max_size"):
        store.list_sessions()
    assert store.list_sessions() == []  # and it recovers as soon as a connection is free


def test_more_threads_than_connections_wait_for_the_pool(pg: PG) -> None:
    store = pg.open(pool_max_size=2)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            version = 0
            for turn in range(5):
                version = store.append(f"thread-{i}", [user(f"{i}/{turn}"), reply("ok")], expected_version=version)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(s.message_count for s in store.list_sessions(limit=100)) == [10] * 12


def test_store_recovers_when_the_server_drops_its_connections(pg: PG) -> None:
    """After a server restart or failover every pooled connection is dead; the next call must not fail."""
    app = "ch-" + uuid.uuid4().hex[:8]
    store = pg.open(pool_min_size=3, pool_max_size=3, application_name=app)
    store.append("s", [user("before")], expected_version=0)
    store._pool.wait(timeout=10)  # white box: all 3 connections exist
    killed = pg.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (app,))
    assert killed[0][0] >= 1
    assert store.append("s", [reply("after")], expected_version=1) == 2
    assert [m["role"] for m in store.load("s").message_params()] == ["user", "assistant"]


def test_an_append_and_a_session_read_wait_for_the_server_once(pg: PG, monkeypatch: pytest.MonkeyPatch) -> None:
    """The swap, the rows, the checkpoint and the commit go to the server together: one wait per turn (each
    wait is a wake-up of the server's backend and of the caller, the service's added latency under load)."""
    store = pg.open()
    store.append("s", [user("hello")], expected_version=0)
    waits: list[str] = []
    real_sync = psycopg.Pipeline._enqueue_sync  # each Sync sent is a wait for the server's answer to it

    def counting(self: Any) -> None:
        waits.append("sync")
        real_sync(self)

    monkeypatch.setattr(psycopg.Pipeline, "_enqueue_sync", counting)
    assert store.append("s", [reply("hi")], expected_version=1, turn_id="t1") == 2
    assert len(waits) == 1
    store.append("s", [user("again")], expected_version=2, checkpoint={"kind": "test", "n": 1})
    assert len(waits) == 2
    with pytest.raises(ConflictError):  # a lost swap: one wait, then the read of why (a statement of its own)
        store.append("s", [user("late")], expected_version=1)
    assert len(waits) == 3
    assert store.get_session("s").version == 3  # a warm turn's read: the session row, one wait
    assert len(waits) == 4
    monkeypatch.undo()
    assert [m.message["content"] for m in store.load("s").messages] == [
        "hello", [{"type": "text", "text": "hi"}], "again"
    ]  # fmt: skip
    assert store.load_checkpoint("s") == (3, {"kind": "test", "n": 1})


def test_an_append_whose_reply_is_lost_after_its_commit_is_stored_once(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies after the server committed the turn but before its reply arrives: the store runs
    the append again on a fresh connection, finds that very turn committed, and reports success (not a
    conflict for a turn that was stored, not a second copy), with or without a caller's turn id."""
    store = pg.open()
    store.append("s", [user("hello")], expected_version=0)
    real_exit = psycopg.Pipeline.__exit__
    lost = {"left": 0}

    def reply_lost(self: Any, *args: Any) -> None:
        real_exit(self, *args)  # the pipeline's last Sync: the server ran the statements and the commit
        if lost["left"] > 0 and args[0] is None:
            lost["left"] -= 1
            raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")

    monkeypatch.setattr(psycopg.Pipeline, "__exit__", reply_lost)
    lost["left"] = 1
    assert store.append("s", [reply("one")], expected_version=1) == 2
    lost["left"] = 1
    assert store.append("s", [user("two")], expected_version=2, turn_id="caller-id") == 3
    assert lost["left"] == 0
    monkeypatch.undo()
    assert [m.role for m in store.load("s").messages] == ["user", "assistant", "user"]
    assert store.get_session("s").version == 3


def test_async_store_opens_lazily_and_works_as_context_manager(pg: PG) -> None:
    async def main() -> list[dict[str, Any]]:
        async with open_async_store(pg.url, schema=pg.schema) as store:
            await store.append("a", [user("hi"), reply("hello")], expected_version=0)
            return (await store.load("a")).message_params()

    assert asyncio.run(main()) == [user("hi").message, reply("hello").message]
    assert pg.open().get_session("a").version == 1  # the sync store sees what the async one wrote


# -- tables ----------------------------------------------------------------------------------------


def test_message_is_kept_as_the_exact_json_text_and_stays_queryable(pg: PG) -> None:
    store = pg.open()
    message = {"content": [{"text": "Zürich", "type": "text", "citations": None}], "role": "user", "a": 1.50}
    store.append("exact", [Entry(message)], expected_version=0)
    stored, first_text = pg.sql(
        "SELECT message::text, message->'content'->0->>'text' FROM {s}.messages"
        " WHERE session_id = (SELECT key FROM {s}.sessions WHERE id = 'exact')"
    )[0]
    assert stored == dumps(message)  # key order as given; jsonb would have reordered them
    assert first_text == "Zürich"
    assert json.dumps(store.load("exact").messages[0].message) == json.dumps(message)


def test_delete_leaves_no_rows_behind(pg: PG) -> None:
    store = pg.open()
    store.append("gone", [user("secret words"), reply("more secrets")], expected_version=0)
    store.save_summary("gone", Summary(0, 2, "a summary of secrets"))
    (key,) = pg.sql("SELECT key FROM {s}.sessions WHERE id = 'gone'")[0]
    store.fork("gone", new_id="kept")
    assert store.delete("gone") is True
    for table in ("sessions", "summaries"):
        assert pg.sql(
            f"SELECT count(*) FROM {{s}}.{table} WHERE id = 'gone' OR id::text LIKE '%gone%'"
            if table == "sessions"
            else "SELECT count(*) FROM {s}.summaries WHERE session_id = 'gone'"
        ) == [(0,)]
    assert [hit.session_id for hit in store.search("secrets")] == ["kept"]
    assert store.delete("gone") is False
    # the rows the fork reads stay, under no id, until the fork goes too
    assert pg.sql("SELECT count(*) FROM {s}.messages WHERE session_id = %s", (key,)) == [(2,)]
    assert store.delete("kept") is True
    assert pg.sql("SELECT count(*) FROM {s}.messages") == [(0,)]
    assert pg.sql("SELECT count(*) FROM {s}.sessions") == [(0,)]


def test_expired_sessions_vanish_and_purge_removes_their_rows(pg: PG) -> None:
    store = pg.open()
    now = datetime.now(timezone.utc)
    store.append("old", [user("expiring words")], expected_version=0)
    store.append("later", [user("expiring words")], expected_version=0)
    store.update_session("old", expires_at=now - timedelta(seconds=1))
    store.update_session("later", expires_at=now + timedelta(hours=1))
    with pytest.raises(SessionNotFound):
        store.load("old")
    assert pg.sql("SELECT count(*) FROM {s}.messages WHERE session_id = 'old'") == [(0,)]
    assert [h.session_id for h in store.search("expiring")] == ["later"]
    assert store.purge_expired(now + timedelta(minutes=30)) == 0
    assert store.purge_expired(now + timedelta(hours=2)) == 1
    assert pg.sql("SELECT count(*) FROM {s}.messages") == [(0,)]
    assert pg.sql("SELECT count(*) FROM {s}.sessions") == [(0,)]
    # An expired id is free again: a new conversation starts at version 0.
    assert store.append("old", [user("new life")], expected_version=0) == 1


def test_rewind_finds_the_start_of_a_long_tool_loop_reading_back_from_the_end(pg: PG) -> None:
    store = pg.open()
    store.append("loop", [user("first question"), reply("first answer")], expected_version=0)
    loop = [user("second question")]
    for i in range(40):  # 81 messages in the last turn: more than the first tail chunks hold
        tool_use = {"type": "tool_use", "id": f"toolu_{i}", "name": "f", "input": {}}
        loop.append(Entry({"role": "assistant", "content": [tool_use]}))
        loop.append(Entry({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}"}]}))
    store.append("loop", loop, expected_version=1)
    assert store.rewind("loop") == 3
    assert store.load("loop").message_params() == [
        user("first question").message,
        reply("first answer").message,
    ]
    assert store.rewind("loop") == 4
    assert store.load("loop").messages == []
    with pytest.raises(ConfigurationError, match="no turn to rewind"):
        store.rewind("loop")


# -- search ----------------------------------------------------------------------------------------

WORDS = [
    "alpha",
    "Beta",
    "gamma-delta",
    "bob@example.com",
    "x_y",
    "ünïcode",
    "日本語",
    "3.14",
    "http://a.b/c",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join), min_size=1, max_size=6),
    query=st.lists(st.sampled_from([*WORDS, "delta", "example", "14", "y", "BETA"]), min_size=1, max_size=2),
)
def test_tsvector_search_matches_exactly_what_the_reference_matcher_matches(
    pg_search: PostgresStore, texts: list[str], query: list[str]
) -> None:
    """PostgreSQL's own parser would keep e-mail addresses, URLs and numbers whole; the store indexes the same
    words as every other backend, so a query finds the same messages everywhere."""
    session = uuid.uuid4().hex
    pg_search.append(session, [user(text) for text in texts], expected_version=0)
    terms = search_terms(" ".join(query))
    expected = [seq for seq, text in enumerate(texts) if text_matches(message_text({"content": text}), terms)]
    hits = pg_search.search(" ".join(query), session_id=session, limit=100)
    assert [hit.seq for hit in hits] == expected
    assert all(hit.role == "user" and hit.session_id == session for hit in hits)


@pytest.fixture
def pg_search(pg: PG) -> PostgresStore:
    return pg.open()


def test_search_index_covers_huge_messages_without_failing(pg: PG) -> None:
    """A tsvector holds at most 1 MiB: a message of millions of distinct words is still stored."""
    store = pg.open()
    dump = " ".join(f"w{i:07d}" for i in range(300_000)) + " findme"
    store.append("dump", [user("needle " + dump)], expected_version=0)
    assert [h.seq for h in store.search("needle")] == [0]
    assert store.load("dump").messages[0].message["content"].endswith("findme")


def test_a_session_longer_than_a_page_is_read_whole_and_in_order(pg: PG, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are read in pages of ``CHUNK_ROWS`` inside one snapshot (a long session's raw rows never all in
    memory); a session of several pages, and ranges across page edges, come back whole and in order."""
    from claude_history.stores.postgres import _ops

    monkeypatch.setattr(_ops, "CHUNK_ROWS", 7)
    store = pg.open()
    version = 0
    for i in range(15):  # 30 messages: four pages and a short one
        version = store.append("long", [user(f"q{i}"), reply(f"a{i}")], expected_version=version)
    said = store.load("long").message_params()
    assert said == [e.message for i in range(15) for e in (user(f"q{i}"), reply(f"a{i}"))]
    assert [m.message for m in store.load_messages("long", start=5, stop=22)] == said[5:22]
    assert [m.message for m in store.load_messages("long", start=7, stop=14)] == said[7:14]

    async def read() -> list[Any]:
        async with open_async_store(pg.url, schema=pg.schema) as async_store:
            return (await async_store.load("long")).message_params()

    assert asyncio.run(read()) == said


def test_a_deadlock_is_run_again_and_one_that_persists_is_the_librarys_error(
    pg: PG, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL aborts one of two transactions that lock related forks in opposite orders: the store runs it
    again, and after its attempts says so as ``StoreUnavailable`` instead of a raw psycopg error."""
    import claude_history.stores.postgres as module

    store = pg.open()
    store.append("s", [user("hello")], expected_version=0)
    real = module._transaction_sync
    failures = {"left": 2}

    def deadlocking(conn: Any, op: Any, progress: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            op.close()
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return real(conn, op, progress)

    monkeypatch.setattr(module, "_transaction_sync", deadlocking)
    assert [m.message["content"] for m in store.load("s").messages] == ["hello"]
    assert failures["left"] == 0
    failures["left"] = 100
    with pytest.raises(StoreUnavailable, match="deadlocks"):
        store.load("s")
    assert failures["left"] == 100 - module._DEADLOCK_ATTEMPTS
