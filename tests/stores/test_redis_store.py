"""What only the Redis store has: native expiry, the key layout and its index sets, Lua scripts, the scan
search, and what happens when the server is away."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, SessionNotFound, StoreUnavailable
from claude_history.stores import open_store
from claude_history.stores._json import dumps
from claude_history.stores.base import Entry, Summary
from claude_history.stores.redis import AsyncRedisStore, RedisStore
from claude_history.stores.redis._ops import MESSAGE_PAGE, SCAN_PAGE, message_record, stored_message

from .samples import turn

pytestmark = pytest.mark.services

redis = pytest.importorskip("redis")


class RD:
    """A unique key prefix on the test server; every key under it is deleted afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"test:rd:{uuid.uuid4().hex[:12]}:"
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.stores: list[RedisStore] = []

    def open(self, **options: Any) -> RedisStore:
        store = RedisStore(self.url, **{"prefix": self.prefix, **options})
        self.stores.append(store)
        return store

    def all_keys(self) -> set[str]:
        return set(self.client.scan_iter(match=self.prefix + "*", count=10_000))

    def drop(self) -> None:
        for store in self.stores:
            store.close()
        keys = self.all_keys()
        if keys:
            self.client.delete(*keys)
        self.client.close()


@pytest.fixture
def rd(redis_url: str) -> Iterator[RD]:
    handle = RD(redis_url)
    try:
        yield handle
    finally:
        handle.drop()


def user(text: str) -> Entry:
    return Entry({"role": "user", "content": text})


def reply(text: str) -> Entry:
    return Entry({"role": "assistant", "content": [{"type": "text", "text": text}]}, model="claude-sonnet-4-6")


def mentions(rd: RD, session_id: str) -> list[str]:
    """Every key or set/hash member under the prefix that still refers to ``session_id``."""
    found = []
    for key in rd.all_keys():
        if key.endswith(":" + session_id) or key.startswith(f"{rd.prefix}postings:{session_id}:"):
            found.append(key)
        kind = rd.client.type(key)
        if kind == "set" and rd.client.sismember(key, session_id):
            found.append(f"{key} member")
        if kind == "zset" and rd.client.zscore(key, session_id) is not None:
            found.append(f"{key} member")
        if kind == "hash" and key == rd.prefix + "refs" and rd.client.hexists(key, session_id):
            found.append(f"{key} field")
    return found


def wait_until(condition: Any, seconds: float = 10.0) -> None:
    """Poll for something Redis does on its own clock (no assertion on how long it takes)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "Redis did not get there in time"
        time.sleep(0.02)


# -- layout ------------------------------------------------------------------------------------------------


def test_key_layout_is_as_documented(rd: RD) -> None:
    store = rd.open()
    store.append("s", [user("hi"), reply("hello")], expected_version=0)
    store.update_session("s", owner="ann", tags=["work"])
    store.save_summary("s", Summary(0, 2, "greetings"))
    p = rd.prefix
    assert {key: rd.client.type(key) for key in rd.all_keys()} == {
        f"{p}session:s": "hash",
        f"{p}messages:s": "list",
        f"{p}summaries:s": "list",
        f"{p}index": "zset",
        f"{p}owner:ann": "zset",
        f"{p}tag:work": "zset",
        # the word index
        f"{p}word:hi": "set",
        f"{p}word:hello": "set",
        f"{p}postings:s:hi": "set",
        f"{p}postings:s:hello": "set",
        f"{p}terms:s": "list",
        f"{p}vocab:s": "set",
        f"{p}indexed": "set",
    }
    assert rd.client.smembers(f"{p}word:hello") == {"s"}
    assert rd.client.smembers(f"{p}postings:s:hello") == {"1"}
    assert rd.client.lrange(f"{p}terms:s", 0, -1) == ["hi", "hello"]
    assert rd.client.hget(f"{p}session:s", "version") == "1"
    # The message text is stored verbatim after the metadata line.
    assert rd.client.lindex(f"{p}messages:s", 0).split("\n", 1)[1] == dumps(user("hi").message)


def test_prefixes_isolate_stores(rd: RD) -> None:
    other = RD(rd.url)
    try:
        a, b = rd.open(), other.open()
        a.append("same", [user("in a")], expected_version=0)
        b.append("same", [user("in b")], expected_version=0)
        assert a.load("same").message_params() == [user("in a").message]
        assert b.load("same").message_params() == [user("in b").message]
    finally:
        other.drop()


def test_prefix_from_the_url(rd: RD) -> None:
    store = open_store(f"{rd.url}?prefix={rd.prefix}")
    try:
        assert store.prefix == rd.prefix  # type: ignore[attr-defined]
        store.append("u", [user("hi")], expected_version=0)
        assert f"{rd.prefix}session:u" in rd.all_keys()
    finally:
        store.close()


def test_bad_settings_are_reported_clearly(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisStore(redis_url, decode_responses=False)
    with pytest.raises(ConfigurationError, match="Redis URL"):
        RedisStore("http://127.0.0.1:6379")


@settings(max_examples=50, deadline=None)
@given(
    created=st.integers(min_value=0, max_value=2**52),
    model=st.none() | st.text(),
    usage=st.none() | st.dictionaries(st.text(), st.integers() | st.text(), max_size=4),
    message=st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": st.text()},
        optional={"z": st.text(), "a": st.lists(st.integers())},
    ),
)
def test_message_records_round_trip_exactly(
    created: int, model: str | None, usage: dict[str, Any] | None, message: dict[str, Any]
) -> None:
    record = message_record(created, model, None if usage is None else dumps(usage), dumps(message))
    stored = stored_message(7, record)
    assert dumps(stored.message) == dumps(message)  # key order included
    assert (stored.model, stored.usage, stored.seq) == (model, usage, 7)
    assert stored.created_at == datetime.fromtimestamp(0, timezone.utc) + timedelta(microseconds=created)


# -- native expiry -----------------------------------------------------------------------------------------


def test_expiry_is_a_native_ttl_on_every_key_and_kept_on_append(rd: RD) -> None:
    store = rd.open()
    store.update_session("s", create=True, expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
    store.append("s", [user("first")], expected_version=0)  # creates the message list: it gets the TTL too
    store.save_summary("s", Summary(0, 1, "summary"))
    keys = [f"{rd.prefix}{kind}:s" for kind in ("session", "messages", "summaries", "terms")]
    keys.append(f"{rd.prefix}postings:s:first")
    deadlines = {rd.client.pexpiretime(key) for key in keys}
    assert len(deadlines) == 1 and deadlines.pop() > 0
    # The vocabulary outlives the session until purged: it is what unindexes a session Redis expired.
    assert rd.client.pttl(f"{rd.prefix}vocab:s") == -1
    store.update_session("s", expires_at=None)
    assert [rd.client.pttl(key) for key in keys] == [-1] * len(keys)
    # No longer expiring: gone from the expiry set and refs, still listed.
    index = [f"{rd.prefix}{name} member" for name in ("index", "indexed", "word:first")]
    assert set(mentions(rd, "s")) == {*index, f"{rd.prefix}vocab:s", *keys}


def test_redis_drops_an_expired_session_by_itself_and_the_index_is_cleaned(rd: RD) -> None:
    store = rd.open()
    store.append("brief", [user("short-lived words")], expected_version=0)
    store.append("stays", [user("lasting words")], expected_version=0)
    store.update_session("brief", owner="ann", tags=["t"])
    store.save_summary("brief", Summary(0, 1, "s"))
    store.update_session("brief", expires_at=datetime.now(timezone.utc) + timedelta(milliseconds=300))
    session_keys = {f"{rd.prefix}{kind}:brief" for kind in ("session", "messages", "summaries")}
    wait_until(lambda: not (rd.all_keys() & session_keys))  # Redis expired every key itself
    # The index still names it until someone looks; listing and purging clean up.
    assert rd.client.zscore(rd.prefix + "owner:ann", "brief") is not None
    assert store.search("words", owner="ann") == []
    assert [s.id for s in store.list_sessions(owner="ann")] == []
    assert [s.id for s in store.list_sessions()] == ["stays"]
    store.purge_expired()
    assert mentions(rd, "brief") == []
    with pytest.raises(SessionNotFound):
        store.load("brief")
    assert [h.session_id for h in store.search("words")] == ["stays"]


def test_purge_cleans_sessions_redis_expired_without_anyone_listing(rd: RD) -> None:
    store = rd.open()
    store.append("brief", [user("x")], expected_version=0)
    store.update_session("brief", tags=["a", "b"], expires_at=datetime.now(timezone.utc) + timedelta(milliseconds=200))
    wait_until(lambda: not rd.client.exists(f"{rd.prefix}session:brief"))
    assert store.purge_expired() == 1
    assert mentions(rd, "brief") == []
    assert rd.all_keys() == set()  # nothing at all is left under the prefix


def test_a_session_forks_read_has_no_redis_expiry_and_an_expired_parent_becomes_their_data(rd: RD) -> None:
    """Redis would drop an expiring parent's rows under its forks: while forks read a session its keys carry no
    Redis expiry (it expires by the store's clock: not found, purged on sight), and get it back with the last
    fork; expired, it keeps only the rows its forks read, under no id."""
    store = rd.open()
    store.append("q", [user("brief ash")], expected_version=0)
    store.update_session("q", expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
    keys = [f"{rd.prefix}{kind}:q" for kind in ("session", "messages", "terms")] + [f"{rd.prefix}postings:q:ash"]
    assert all(rd.client.pttl(key) > 0 for key in keys)
    store.fork("q", new_id="h")
    assert [rd.client.pttl(key) for key in keys] == [-1] * 4
    assert rd.client.pttl(f"{rd.prefix}session:h") == -1 and store.get_session("h").expires_at is not None
    store.delete("h")
    assert all(rd.client.pttl(key) > 0 for key in keys)  # its last fork gone: its Redis expiry is back

    store.append(
        "p", [user("shared oak"), reply("oak reply"), user("tail elm"), reply("elm reply")], expected_version=0
    )
    store.fork("p", at=2, new_id="f")
    store.update_session("f", expires_at=None)
    store.fork("p", at=4, new_id="g")
    store.update_session("p", expires_at=datetime.now(timezone.utc) + timedelta(milliseconds=400))
    store.update_session("g", expires_at=None)
    parent_keys = [f"{rd.prefix}session:p", f"{rd.prefix}messages:p", f"{rd.prefix}postings:p:oak"]
    assert [rd.client.pttl(key) for key in parent_keys] == [-1] * 3
    time.sleep(0.5)
    with pytest.raises(SessionNotFound):
        store.load("p")
    assert [m.message for m in store.load("f").messages] == [user("shared oak").message, reply("oak reply").message]
    assert [info.id for info in store.list_sessions()] == ["g", "f", "q"]  # the listing purged p: forks' data now
    assert mentions(rd, "p") == []
    assert sorted((h.session_id, h.seq) for h in store.search("oak")) == [("f", 0), ("f", 1), ("g", 0), ("g", 1)]
    assert len(store.load("g").messages) == 4
    store.delete("g")  # the rows only g read go; f's stay
    assert len(store.load("f").messages) == 2 and store.search("elm") == []
    store.delete("f")
    store.delete("q")
    assert rd.all_keys() <= {f"{rd.prefix}index", f"{rd.prefix}indexed", f"{rd.prefix}expiry"}


def test_sessions_written_before_copy_on_write_forks_keep_working(rd: RD) -> None:
    """A session as the previous version wrote it (no fork fields; its fork a full copy, made by the copying
    script) is read, forked, rewound below its fork point and deleted as any other."""
    store = rd.open()
    p = rd.prefix
    records = [message_record(1_000_000 * (i + 1), None, None, dumps(user(f"old kiwi {i}").message)) for i in range(4)]
    for sid in ("old", "old-copy"):  # the old fork: the same hash fields and every message copied
        rd.client.hset(f"{p}session:{sid}", mapping={"version": 1, "created": 1, "updated": 2, "inc": f"i-{sid}"})
        rd.client.rpush(f"{p}messages:{sid}", *records)
        rd.client.zadd(f"{p}index", {sid: -2})
    before = [m.message for m in store.load("old").messages]
    assert store.get_session("old").message_count == 4 and store.load("old-copy").messages[3].message == before[3]
    store.fork("old", at=3, new_id="new")
    assert [m.message for m in store.load("new").messages] == before[:3]
    store.rewind("old", to=1)
    assert [m.message for m in store.load("new").messages] == before[:3]
    assert store.delete("old")
    assert [m.message for m in store.load("new").messages] == before[:3]
    assert sorted((h.session_id, h.seq) for h in store.search("kiwi 2")) == [("new", 2), ("old-copy", 2)]
    store.append("new", [reply("new kiwi")], expected_version=1)
    # The copy is indexed; the fork reads rows the old version never indexed (kept as a ghost): it stays scanned.
    assert store.rebuild_search_index() == 1
    assert sorted((h.session_id, h.seq) for h in store.search("kiwi")) == [
        *[("new", i) for i in range(4)],
        *[("old-copy", i) for i in range(4)],
    ]
    assert store.delete("new") and store.delete("old-copy")
    assert rd.all_keys() <= {f"{p}index", f"{p}indexed"}


def test_delete_leaves_no_key_and_no_index_entry(rd: RD) -> None:
    store = rd.open()
    store.append("gone", [user("secret"), reply("secret too")], expected_version=0)
    store.update_session(
        "gone", owner="bob", tags=["x", "y"], expires_at=datetime.now(timezone.utc) + timedelta(days=1)
    )
    store.save_summary("gone", Summary(0, 2, "summary"))
    store.append("kept", [user("other")], expected_version=0)
    assert store.delete("gone") is True
    assert mentions(rd, "gone") == []
    p = rd.prefix
    assert rd.all_keys() == {
        f"{p}session:kept",
        f"{p}messages:kept",
        f"{p}index",
        *(f"{p}{kind}" for kind in ("word:other", "postings:kept:other", "terms:kept", "vocab:kept", "indexed")),
    }
    assert not any("secret" in key for key in rd.all_keys())  # no word of it is left, not even in a key name


# -- scripts, scan, rewind ---------------------------------------------------------------------------------


def test_scripts_are_reloaded_after_the_server_lost_them(rd: RD) -> None:
    """A Redis restart empties the script cache; EVALSHA's NOSCRIPT must be answered by loading it again."""
    store = rd.open()
    store.append("s", [user("before")], expected_version=0)
    rd.client.script_flush()
    assert store.append("s", [reply("after")], expected_version=1) == 2


def test_search_scan_pages_through_many_sessions_and_long_sessions(rd: RD) -> None:
    store = rd.open()
    for i in range(SCAN_PAGE + 5):
        store.append(f"s{i:03d}", [user(f"filler {i}")], expected_version=0)
    long = [user("needle at the start")] + [reply(f"filler {i}") for i in range(2 * MESSAGE_PAGE)]
    long.append(user("another needle at the end"))
    store.append("long", long, expected_version=0)
    store.append("s000", [reply("needle in an old session")], expected_version=1)
    hits = store.search("needle", limit=100)
    # Sessions most recently updated first, messages in order within a session.
    assert [(h.session_id, h.seq) for h in hits] == [("s000", 1), ("long", 0), ("long", len(long) - 1)]
    assert [(h.session_id, h.seq) for h in store.search("needle", session_id="long")] == [
        ("long", 0),
        ("long", len(long) - 1),
    ]
    assert len(store.search("filler", limit=7)) == 7


def test_search_by_owner_pages_through_that_owners_set(rd: RD) -> None:
    store = rd.open()
    count = SCAN_PAGE + 5
    for i in range(count):
        for owner in ("ann", "bob"):
            sid = f"{owner}{i:03d}"
            store.append(sid, [user(f"needle {i}")], expected_version=0)
            store.update_session(sid, owner=owner)
    hits = store.search("needle", owner="ann", limit=10 * count)
    assert [h.session_id for h in hits] == [f"ann{i:03d}" for i in reversed(range(count))]  # most recent first
    assert len(store.search("needle", owner="bob", limit=SCAN_PAGE + 2)) == SCAN_PAGE + 2
    # The hash has the last word: a session the owner set still names under a former owner is skipped.
    rd.client.zadd(rd.prefix + "owner:ann", {"bob000": 0})
    assert "bob000" not in {h.session_id for h in store.search("needle", owner="ann", limit=10 * count)}


def test_rewind_finds_the_start_of_a_long_tool_loop_reading_back_from_the_end(rd: RD) -> None:
    store = rd.open()
    store.append("loop", [user("first question"), reply("first answer")], expected_version=0)
    loop = [user("second question")]
    for i in range(40):
        tool_use = {"type": "tool_use", "id": f"toolu_{i}", "name": "f", "input": {}}
        loop.append(Entry({"role": "assistant", "content": [tool_use]}))
        loop.append(Entry({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}"}]}))
    store.append("loop", loop, expected_version=1)
    assert store.rewind("loop") == 3
    assert store.load("loop").message_params() == [
        user("first question").message,
        reply("first answer").message,
    ]


# -- availability ------------------------------------------------------------------------------------------

DOWN = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1


def test_unreachable_server_is_store_unavailable_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        RedisStore(DOWN)
    assert "127.0.0.1:1" in str(caught.value) and "s3cret" not in str(caught.value)


def test_unreachable_server_async_fails_on_first_use() -> None:
    async def main() -> None:
        store = AsyncRedisStore(DOWN)
        try:
            with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
                await store.append("s", [user("hi")], expected_version=0)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_async_store_shares_data_with_the_sync_one(rd: RD) -> None:
    async def main() -> list[dict[str, Any]]:
        async with AsyncRedisStore(rd.url, prefix=rd.prefix) as store:
            await store.append("a", [user("hi"), reply("hello")], expected_version=0)
            await store.update_session("a", expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
            return (await store.load("a")).message_params()

    assert asyncio.run(main()) == [user("hi").message, reply("hello").message]
    assert rd.open().get_session("a").version == 1
    assert rd.client.pttl(f"{rd.prefix}messages:a") > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant"]), "content": st.text(max_size=50)},
            optional={"zz": st.integers(), "aa": st.none()},
        ),
        min_size=1,
        max_size=5,
    )
)
def test_stored_messages_round_trip_byte_exact(rd: RD, messages: list[dict[str, Any]]) -> None:
    store = rd.stores[0] if rd.stores else rd.open()
    session = uuid.uuid4().hex
    store.append(session, [Entry(m) for m in messages], expected_version=0)
    loaded = store.load(session).messages
    assert [json.dumps(m.message) for m in loaded] == [json.dumps(m) for m in messages]


def test_a_script_that_fails_leaves_no_partial_write_and_the_session_stays_deletable(rd: RD) -> None:
    # Scripts are not rolled back: each one checks what it reads before its first write. Tags another writer
    # (or an older version) stored and Lua cannot decode used to fail append after RPUSH and HINCRBY ran.
    store, client = rd.open(), rd.client
    store.append("s", turn("a"), expected_version=0)
    client.hset(store.prefix + "session:s", "tags", '["\\ud800"]')
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="nothing was written"):
            store.append("s", turn("b"), expected_version=1)
    assert client.llen(store.prefix + "messages:s") == 2
    assert client.hget(store.prefix + "session:s", "version") == "1"
    with pytest.raises(StoreUnavailable, match="nothing was written"):
        store.rewind("s", to=0, expected_version=1)
    assert client.llen(store.prefix + "messages:s") == 2
    assert store.delete("s")
    assert store.list_sessions() == []


# -- the word index ----------------------------------------------------------------------------------------


def index_of(rd: RD, session_id: str) -> dict[str, Any]:
    """Everything the word index holds about one session, keyed by what it means (not by key name)."""
    p, client = rd.prefix, rd.client
    vocab = client.smembers(f"{p}vocab:{session_id}")
    return {
        "indexed": client.sismember(f"{p}indexed", session_id),
        "terms": client.lrange(f"{p}terms:{session_id}", 0, -1),
        "vocab": vocab,
        "postings": {term: client.smembers(f"{p}postings:{session_id}:{term}") for term in vocab},
        "stray postings": {
            key
            for key in client.scan_iter(match=f"{p}postings:{session_id}:*", count=10_000)
            if key.rpartition(":")[2] not in vocab
        },
        "in word sets": {
            key.removeprefix(f"{p}word:")
            for key in client.scan_iter(match=f"{p}word:*", count=10_000)
            if client.sismember(key, session_id)
        },
    }


def chain_index(rd: RD, session_id: str) -> dict[str, Any]:
    """The word index a session's search reads, keyed by what it means: its own entries and those of the storage
    keys it reads through its fork chain (``_lua.segments``), each cut to the part it reads. Every storage key
    on the way must also be in step with itself (``index_of``: no stray posting, vocabulary or word-set entry)."""
    p, client = rd.prefix, rd.client
    runs: list[tuple[str, int, int]] = []
    key, last = session_id, None
    while True:
        parent, at = client.hmget(f"{p}session:{key}", "parent", "at")
        at = int(at or 0)
        top = at + client.llen(f"{p}messages:{key}") if last is None else last
        runs.insert(0, (key, at if parent else 0, top))
        own = index_of(rd, key)
        assert own["vocab"] == set(own["postings"]) == own["in word sets"] and not own["stray postings"]
        assert all(own["postings"].values()) and len(own["terms"]) == client.llen(f"{p}messages:{key}")
        if parent is None:
            break
        key, last = parent, min(top, at)
    terms: list[str] = []
    postings: dict[str, set[int]] = {}
    for key, low, high in runs:
        if low < high:
            base = int(client.hget(f"{p}session:{key}", "at") or 0)
            terms += client.lrange(f"{p}terms:{key}", low - base, high - base - 1)
        for term, seqs in index_of(rd, key)["postings"].items():
            postings.setdefault(term, set()).update(int(seq) for seq in seqs if low <= int(seq) < high)
    return {
        "indexed": client.sismember(f"{p}indexed", session_id),
        "terms": terms,
        "postings": {term: seqs for term, seqs in postings.items() if seqs},
    }


_history = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.sampled_from(["oak", "Elm", "ash", "yew"]), max_size=3)),
        st.tuples(st.just("rewind"), st.integers(0, 6)),
        st.tuples(st.just("fork"), st.integers(0, 6)),
        st.tuples(st.just("rewind fork"), st.integers(0, 6)),
        st.tuples(st.just("delete"), st.just(0)),
    ),
    max_size=10,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=_history)
def test_the_word_index_after_any_history_is_the_one_a_fresh_import_builds(rd: RD, history: list[Any]) -> None:
    """Forks included: a fork reads its prefix's entries where they are stored (its parent, or what is left of
    a deleted parent), and sees the index a fresh import of it builds."""
    store = rd.open()
    for sid in ("s", "f", "fresh-s", "fresh-f"):
        store.delete(sid)
    for op, arg in history:
        sid = "f" if op == "rewind fork" else "s"
        try:
            info = store.get_session(sid)
        except SessionNotFound:
            info = None
        version, count = (info.version, info.message_count) if info else (0, 0)
        if op == "append":
            store.append("s", [user(" ".join(arg)), reply("and " + " ".join(arg))], expected_version=version)
        elif op == "delete":
            store.delete("s")
        elif info is not None and arg <= count:
            if op == "fork":
                store.delete("f")
                store.fork("s", at=arg, new_id="f")
            else:
                store.rewind(sid, to=arg)
    for sid in ("s", "f"):
        try:
            exported = store.export_jsonl(sid)
        except SessionNotFound:
            assert index_of(rd, sid) == index_of(rd, "never-written")  # nothing left of it
            continue
        store.import_jsonl(exported, session_id=f"fresh-{sid}")
        assert chain_index(rd, sid) == chain_index(rd, f"fresh-{sid}")
    for sid in ("s", "f", "fresh-s", "fresh-f"):
        store.delete(sid)
    assert rd.all_keys() <= {f"{rd.prefix}{name}" for name in ("index", "indexed")}  # nothing else left


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the commands the store sends in transactions (its reads)."""
    sent: list[str] = []
    original = redis.client.Pipeline.execute_command

    def record(self: Any, *args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return original(self, *args, **options)

    monkeypatch.setattr(redis.client.Pipeline, "execute_command", record)
    return sent


def test_search_reads_only_the_messages_it_returns(rd: RD, commands: list[str]) -> None:
    store = rd.open()
    for i in range(30):
        store.append(f"s{i}", [user(f"filler words {i}"), reply("more filler")] * 20, expected_version=0)
    store.append("s7", [user("the needle is here")], expected_version=1)
    commands.clear()
    assert [(h.session_id, h.seq) for h in store.search("needle here")] == [("s7", 40)]
    message_reads = [name for name in commands if name in ("LRANGE", "LINDEX")]
    assert message_reads == ["LINDEX"]  # one message read, of the 1,201 stored
    commands.clear()
    assert store.search("absent") == []
    assert not [name for name in commands if name in ("LRANGE", "LINDEX", "HGETALL")]  # nothing read
    assert store.search("needle filler") == []  # both words in s7, never in one message: its hash, no message
    assert [name for name in commands if name in ("LRANGE", "LINDEX", "HGETALL")] == ["HGETALL"]
    commands.clear()
    assert len(store.search("filler", limit=5)) == 5
    assert commands.count("LINDEX") == 5


def test_sessions_written_before_the_index_are_still_found_by_a_scan(rd: RD) -> None:
    store = rd.open()
    store.append("old", [user("legacy kiwi"), reply("kiwi again")], expected_version=0)
    store.append("new", [user("indexed kiwi")], expected_version=0)
    # What a store written by a version without the index holds: no index entries at all for "old".
    p = rd.prefix
    for key in rd.client.scan_iter(match=f"{p}postings:old:*", count=10_000):
        rd.client.delete(key)
    rd.client.delete(f"{p}terms:old", f"{p}vocab:old")
    rd.client.srem(f"{p}indexed", "old")
    for key in rd.client.scan_iter(match=f"{p}word:*", count=10_000):
        rd.client.srem(key, "old")
    store.append("old", [user("one more kiwi")], expected_version=1)  # not indexed: it stays scanned
    assert [(h.session_id, h.seq) for h in store.search("kiwi")] == [("old", 0), ("old", 1), ("old", 2), ("new", 0)]
    assert [h.seq for h in store.search("kiwi", session_id="old")] == [0, 1, 2]
    store.rewind("old", to=1)
    assert [(h.session_id, h.seq) for h in store.search("kiwi")] == [("old", 0), ("new", 0)]
    assert index_of(rd, "old")["vocab"] == set()
    # Rebuilding indexes it as an import would have, once; search then reads the index.
    assert store.rebuild_search_index() == 1
    assert store.rebuild_search_index() == 0
    store.import_jsonl(store.export_jsonl("old"), session_id="fresh")
    assert index_of(rd, "old") == index_of(rd, "fresh")
    assert {(h.session_id, h.seq) for h in store.search("kiwi")} == {("fresh", 0), ("new", 0), ("old", 0)}
    assert [(h.session_id, h.seq) for h in store.search("kiwi", session_id="old")] == [("old", 0)]


def test_a_write_by_a_server_without_the_index_is_scanned_until_rebuilt(rd: RD) -> None:
    """A rolling upgrade: an app server still on a version without the word index appends to an indexed
    session (RPUSH and a version bump, as its script did). The index is then out of step with the log."""
    store = rd.open()
    store.append("s", [user("kiwi first")], expected_version=0)
    p = rd.prefix
    rd.client.rpush(f"{p}messages:s", message_record(1, None, None, dumps(user("kiwi mango").message)))
    rd.client.hincrby(f"{p}session:s", "version", 1)
    # A word the session had: it is a candidate, out of step, so it is scanned and the new message found.
    assert [h.seq for h in store.search("kiwi")] == [0, 1]
    # A word only the old server wrote is in no index set yet: found once the index is rebuilt...
    assert store.rebuild_search_index() == 1
    assert [h.seq for h in store.search("mango")] == [1]
    # ...or once a current server writes to the session, which drops its index for a scan.
    rd.client.rpush(f"{p}messages:s", message_record(1, None, None, dumps(user("papaya").message)))
    rd.client.hincrby(f"{p}session:s", "version", 1)
    store.append("s", [reply("and more")], expected_version=3)
    assert [h.seq for h in store.search("papaya")] == [2]
    assert store.rebuild_search_index() == 1
    store.import_jsonl(store.export_jsonl("s"), session_id="fresh")
    assert index_of(rd, "s") == index_of(rd, "fresh")
    assert [h.seq for h in store.search("papaya", session_id="s")] == [2]
