"""One conformance suite for every backend (memory, sqlite, file, postgres, redis, and encrypted variants),
in both flavours (sync, and async through the real async implementation). What one backend guarantees, all do.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from claude_history.errors import ConfigurationError, ConflictError, InvalidHistory, SessionNotFound
from claude_history.history import validate
from claude_history.stores.base import Entry, SessionInfo, Summary
from claude_history.stores.memory import MemoryStore

from .samples import USAGE, big_image_message, canonical, every_block_history, tool_turn, turn

NASTY_IDS = [
    'it\'s "quoted"',
    "'; DROP TABLE sessions; --",
    "../../../etc/passwd",
    "..",
    ".",
    "a/b\\c",
    "a%2Fb",
    "*",
    "user:{42}[x]?",
    "ünïcödé 会话 🎉",
    "line\nbreak\ttab",
    " leading and trailing ",
    "x" * 1000,
    "é" * 1000,
    "CaseSensitive",
    "casesensitive",
]


def now() -> datetime:
    return datetime.now(timezone.utc)


def version_of(store: Any, session_id: str) -> int:
    try:
        return int(store.get_session(session_id).version)
    except SessionNotFound:
        return 0


# -- round trip ---------------------------------------------------------------------------------------------


def test_every_block_type_round_trips_byte_exact(store: Any) -> None:
    entries = every_block_history()
    validate([dict(e.message) for e in entries], for_sending=False)  # the sample itself is a valid log
    before = now()
    assert store.append("s", entries[:2], expected_version=0) == 1
    assert store.append("s", entries[2:], expected_version=1) == 2
    data = store.load("s")
    assert [canonical(m.message) for m in data.messages] == [canonical(e.message) for e in entries]
    assert [m.model for m in data.messages] == [e.model for e in entries]
    assert [m.usage for m in data.messages] == [None if e.usage is None else dict(e.usage) for e in entries]
    assert canonical(data.messages[1].usage) == canonical(USAGE)  # nested usage keeps its key order too
    assert [m.seq for m in data.messages] == list(range(len(entries)))
    for stored in data.messages:
        assert stored.created_at.tzinfo is not None
        assert before - timedelta(seconds=5) <= stored.created_at <= now() + timedelta(seconds=5)
    assert data.version == 2
    assert data.info.message_count == len(entries)
    assert data.message_params() == [e.message for e in entries]


def test_loaded_messages_are_copies(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    first = store.load("s")
    first.messages[0].message["content"] = "changed by the caller"
    assert store.load("s").messages[0].message["content"] == "question a"


def test_order_is_kept_across_appends(store: Any) -> None:
    version = 0
    for i in range(12):
        version = store.append("s", turn(str(i)), expected_version=version)
    data = store.load("s")
    assert [m.message["content"] for m in data.messages[::2]] == [f"question {i}" for i in range(12)]
    assert [m.seq for m in data.messages] == list(range(24))
    assert data.version == 12


def test_unicode_and_control_characters(store: Any) -> None:
    texts = [
        "emoji 🎉👩‍👩‍👧 and flags 🇫🇷",
        "RTL שלום עליכם and العربية",
        "CJK 会话记录 日本語 한국어",
        "combining e\u0301 vs é, zero-width\u200bjoiner",
        "separators \u2028 \u2029 and escapes \\n \\u0000 \" ' `",
        "NUL \x00 and other controls \x01\x1f\x7f",
        "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀",
    ]
    entries = [Entry({"role": "user" if i % 2 == 0 else "assistant", "content": t}) for i, t in enumerate(texts)]
    store.append("u", entries, expected_version=0)
    assert [canonical(m.message) for m in store.load("u").messages] == [canonical(e.message) for e in entries]
    store.update_session("u", title="line\u2028separator \x85 in a title")
    store.import_jsonl(store.export_jsonl("u"), session_id="u2")  # raw U+2028 / U+0085 inside JSON lines
    copied = store.load("u2").messages
    assert [canonical(m.message) for m in copied] == [canonical(e.message) for e in entries]
    assert store.get_session("u2").title == "line\u2028separator \x85 in a title"


def test_lone_surrogates_from_json_escapes(store: Any) -> None:
    """JSON may escape a lone surrogate ("\\ud83d"), so a parsed reply can hold one; it must survive."""
    message = json.loads('{"role": "assistant", "content": [{"type": "text", "text": "cut \\ud83d emoji"}]}')
    store.append("s", [Entry({"role": "user", "content": "hi"}), Entry(message)], expected_version=0)
    assert store.load("s").messages[1].message == message
    assert [h.seq for h in store.search("emoji")] == [1]


def test_ten_megabyte_image_message(sync_store: Any) -> None:
    message = big_image_message(10)
    assert len(message["content"][0]["source"]["data"]) >= 10 * 1024 * 1024
    sync_store.append("img", [Entry(message)], expected_version=0)
    sync_store.append("img", [Entry({"role": "assistant", "content": "a gradient"})], expected_version=1)
    data = sync_store.load("img")
    assert canonical(data.messages[0].message) == canonical(message)
    assert data.messages[1].message["content"] == "a gradient"


@pytest.mark.slow
def test_hundred_thousand_message_session(backend: Any, sync_store: Any) -> None:
    if backend.encrypted:
        pytest.skip("scale is the backend's: the plain variant covers it; encryption cost is measured in bench/")
    batch = 10_000
    version = 0
    for start in range(0, 100_000, batch):
        entries = [
            Entry({"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"})
            for i in range(start, start + batch)
        ]
        version = sync_store.append("long", entries, expected_version=version)
    assert version == 10
    info = sync_store.get_session("long")
    assert info.message_count == 100_000
    data = sync_store.load("long")
    assert len(data.messages) == 100_000
    assert all(m.message["content"] == f"m{m.seq}" for m in data.messages)
    assert [m.seq for m in data.messages[-3:]] == [99_997, 99_998, 99_999]
    assert sync_store.append("long", turn("last"), expected_version=10) == 11
    assert sync_store.rewind("long") == 12
    assert sync_store.get_session("long").message_count == 100_000


# -- compare-and-swap ----------------------------------------------------------------------------------------


def test_append_with_stale_version_conflicts_and_writes_nothing(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    store.append("s", turn("2"), expected_version=1)
    before = store.load("s")
    lost = turn("lost")
    with pytest.raises(ConflictError) as raised:
        store.append("s", lost, expected_version=1)
    error = raised.value
    assert error.session_id == "s"
    assert error.expected_version == 1
    assert error.actual_version == 2
    assert [canonical(e.message) for e in error.unsaved] == [canonical(e.message) for e in lost]
    after = store.load("s")
    assert after.version == 2
    assert [canonical(m.message) for m in after.messages] == [canonical(m.message) for m in before.messages]


def test_creating_an_existing_session_conflicts(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    with pytest.raises(ConflictError) as raised:
        store.append("s", turn("again"), expected_version=0)
    assert raised.value.actual_version == 1
    assert len(store.load("s").messages) == 2


def test_appending_to_a_missing_session_with_a_version_conflicts(store: Any) -> None:
    with pytest.raises(ConflictError) as raised:
        store.append("ghost", turn("1"), expected_version=3)
    assert raised.value.actual_version in (0, None)
    with pytest.raises(SessionNotFound):
        store.load("ghost")


def test_future_version_conflicts(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    with pytest.raises(ConflictError):
        store.append("s", turn("2"), expected_version=5)
    assert store.get_session("s").version == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "system", "content": "be nice"},
        {"role": "user"},
        {"role": "user", "content": 42},
        {"role": "user", "content": [{"text": "no type"}]},
        {"role": "user", "content": {"not", "json"}},
        {"role": "user", "content": [{"type": "text", "text": b"bytes are not JSON"}]},
    ],
)
def test_an_invalid_entry_rejects_the_whole_turn(store: Any, bad: dict[str, Any]) -> None:
    store.append("s", turn("1"), expected_version=0)
    with pytest.raises((InvalidHistory, ConfigurationError)) as raised:
        store.append("s", [Entry({"role": "user", "content": "fine"}), Entry(bad)], expected_version=1)
    if isinstance(raised.value, InvalidHistory):
        assert raised.value.index == 1
    data = store.load("s")
    assert data.version == 1
    assert len(data.messages) == 2


def test_append_needs_entries(store: Any) -> None:
    with pytest.raises(ConfigurationError):
        store.append("s", [], expected_version=0)
    with pytest.raises(ConfigurationError):
        store.append("s", [{"role": "user", "content": "a dict, not an Entry"}], expected_version=0)
    with pytest.raises(ConfigurationError):
        store.append("s", turn("1"), expected_version=-1)
    with pytest.raises(SessionNotFound):
        store.load("s")


# -- metadata ------------------------------------------------------------------------------------------------


def test_update_session_changes_only_what_is_given(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    system = [{"type": "text", "text": "You are concise.", "cache_control": {"type": "ephemeral"}}]
    info = store.update_session(
        "s",
        title="Trip",
        owner="alice",
        tags=["travel", "paris", "travel"],
        model="claude-sonnet-4-6",
        system=system,
        metadata={"z": 1, "a": {"nested": [1, "two"]}},
    )
    assert isinstance(info, SessionInfo)
    assert info.version == 1
    info = store.update_session("s", title="Paris trip")
    assert info.title == "Paris trip"
    assert info.owner == "alice"
    assert info.tags == ("travel", "paris")
    assert info.model == "claude-sonnet-4-6"
    assert canonical(info.system) == canonical(system)
    assert canonical(info.metadata) == canonical({"z": 1, "a": {"nested": [1, "two"]}})
    loaded = store.get_session("s")
    assert (loaded.title, loaded.owner, loaded.tags, loaded.version) == (
        "Paris trip",
        "alice",
        ("travel", "paris"),
        1,
    )
    assert store.update_session("s", title=None, system="plain string").title is None
    assert store.get_session("s").system == "plain string"


def test_update_session_create(store: Any) -> None:
    with pytest.raises(SessionNotFound):
        store.update_session("new", title="x")
    info = store.update_session("new", title="x", create=True)
    assert (info.version, info.message_count, info.title) == (0, 0, "x")
    assert store.load("new").messages == []
    assert store.append("new", turn("1"), expected_version=0) == 1
    assert store.get_session("new").title == "x"


def test_bad_metadata_is_refused(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    with pytest.raises(ConfigurationError):
        store.update_session("s", tags="work")  # a bare string, not a list of tags
    with pytest.raises(ConfigurationError):
        store.update_session("s", metadata={"when": object()})
    assert store.get_session("s").tags == ()


@pytest.mark.parametrize("name", ["title", "owner", "model"])
def test_nul_is_refused_in_title_owner_and_model(store: Any, name: str) -> None:
    # PostgreSQL text cannot hold NUL: every backend refuses it, so sessions stay portable.
    store.append("s", turn("1"), expected_version=0)
    store.update_session("s", **{name: "kept"})
    with pytest.raises(ConfigurationError, match="NUL"):
        store.update_session("s", **{name: "bad\x00value"})
    assert getattr(store.get_session("s"), name) == "kept"
    with pytest.raises(ConfigurationError, match="NUL"):
        store.update_session("new", create=True, **{name: "bad\x00value"})
    with pytest.raises(SessionNotFound):
        store.get_session("new")
    header = json.loads(store.export_jsonl("s").split("\n")[0])
    header[name] = "bad\x00value"
    with pytest.raises(ConfigurationError, match="NUL"):
        store.import_jsonl(json.dumps(header) + "\n", session_id="copy")
    with pytest.raises(SessionNotFound):
        store.get_session("copy")


def test_nul_is_refused_in_the_model_of_an_entry_or_a_summary(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    reply = Entry({"role": "assistant", "content": [{"type": "text", "text": "hi"}]}, model="claude\x00x")
    with pytest.raises(ConfigurationError, match="NUL"):
        store.append("s", [Entry({"role": "user", "content": "q"}), reply], expected_version=1)
    with pytest.raises(ConfigurationError, match="NUL"):
        store.save_summary("s", Summary(0, 2, "sum", model="claude\x00x"))
    data = store.load("s")
    assert (data.version, len(data.messages), data.summaries) == (1, 2, [])
    # Elsewhere NUL is fine: message content, summary text, metadata values are JSON, which escapes it.
    store.append("s", turn("nul \x00 inside"), expected_version=1)
    store.save_summary("s", Summary(0, 2, "text with \x00"))
    store.update_session("s", metadata={"k": "v\x00"})
    data = store.load("s")
    assert data.messages[2].message["content"] == "question nul \x00 inside"
    assert data.summaries[0].text == "text with \x00"
    assert data.info.metadata == {"k": "v\x00"}


def test_timestamps(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    first = store.get_session("s")
    assert first.created_at.tzinfo is not None
    assert first.created_at <= first.updated_at
    store.append("s", turn("2"), expected_version=1)
    second = store.get_session("s")
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at


# -- summaries -----------------------------------------------------------------------------------------------


def test_summaries_are_kept_beside_the_log(store: Any) -> None:
    store.append("s", turn("1") + turn("2"), expected_version=0)
    store.save_summary(
        "s",
        Summary(start=0, end=2, text="They greeted.", model="claude-haiku-4-5", usage={"input_tokens": 9}),
    )
    data = store.load("s")
    assert data.version == 1  # a derived record does not change the log's version
    assert len(data.messages) == 4
    [summary] = data.summaries
    assert (summary.start, summary.end, summary.text, summary.model) == (
        0,
        2,
        "They greeted.",
        "claude-haiku-4-5",
    )
    assert dict(summary.usage or {}) == {"input_tokens": 9}
    assert summary.created_at is not None
    with pytest.raises(ConfigurationError):
        store.save_summary("s", Summary(start=0, end=9, text="beyond the log"))
    with pytest.raises(SessionNotFound):
        store.save_summary("ghost", Summary(start=0, end=1, text="x"))


@pytest.mark.parametrize(("start", "end"), [(0, 0), (2, 2), (4, 4), (3, 1)])
def test_a_summary_of_no_messages_is_refused(store: Any, start: int, end: int) -> None:
    store.append("s", turn("1") + turn("2"), expected_version=0)
    with pytest.raises(ConfigurationError, match="empty"):
        store.save_summary("s", Summary(start=start, end=end, text="nothing"))
    assert store.load("s").summaries == []
    exported = store.export_jsonl("s").split("\n")
    header = json.loads(exported[0])
    header["summaries"] = [{"start": start, "end": end, "text": "nothing"}]
    with pytest.raises(ConfigurationError, match="empty"):
        store.import_jsonl("\n".join([json.dumps(header), *exported[1:]]), session_id="copy")
    with pytest.raises(SessionNotFound):
        store.load("copy")


# -- fork ----------------------------------------------------------------------------------------------------


def test_fork_copies_the_prefix_and_the_metadata(store: Any) -> None:
    entries = every_block_history()
    store.append("src", entries, expected_version=0)
    store.update_session("src", title="T", owner="o", tags=["a"], system="sys", metadata={"k": "v"})
    store.save_summary("src", Summary(0, 2, "early part"))
    store.save_summary("src", Summary(0, 6, "longer part"))
    new_id = store.fork("src", at=4, new_id="child")
    assert new_id == "child"
    child = store.load("child")
    assert [canonical(m.message) for m in child.messages] == [canonical(e.message) for e in entries[:4]]
    assert [m.usage for m in child.messages] == [None if e.usage is None else dict(e.usage) for e in entries[:4]]
    assert (child.info.title, child.info.owner, child.info.tags, child.info.system) == (
        "T",
        "o",
        ("a",),
        "sys",
    )
    assert child.info.metadata == {"k": "v"}
    assert [s.text for s in child.summaries] == ["early part"]
    assert child.version == 1
    # The fork is independent: appending to it leaves the source alone, and the other way round.
    store.append("child", turn("c"), expected_version=child.version)
    assert len(store.load("src").messages) == len(entries)
    assert len(store.load("child").messages) == 6


def test_fork_defaults(store: Any) -> None:
    store.append("src", turn("1") + turn("2"), expected_version=0)
    new_id = store.fork("src")
    assert isinstance(new_id, str) and new_id != "src"
    assert store.load(new_id).message_params() == store.load("src").message_params()
    empty = store.fork("src", at=0, new_id="empty")
    assert store.load(empty).messages == []
    assert store.append("empty", turn("x"), expected_version=store.get_session("empty").version) >= 1


def test_fork_errors(store: Any) -> None:
    store.append("src", turn("1"), expected_version=0)
    store.append("taken", turn("1"), expected_version=0)
    with pytest.raises(ConflictError):
        store.fork("src", new_id="taken")
    assert len(store.load("taken").messages) == 2
    with pytest.raises(ConfigurationError):
        store.fork("src", at=3)
    with pytest.raises(SessionNotFound):
        store.fork("ghost")


# -- rewind (undo) -------------------------------------------------------------------------------------------


def test_rewind_drops_the_last_turn_with_its_tool_loop(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    store.append("s", tool_turn("2"), expected_version=1)
    assert store.rewind("s") == 3
    data = store.load("s")
    assert data.message_params() == [e.message for e in turn("1")]
    assert data.version == 3
    assert store.rewind("s", expected_version=3) == 4
    assert store.load("s").messages == []
    with pytest.raises(ConfigurationError):
        store.rewind("s")  # nothing left to undo


def test_rewind_to_an_index_and_append_again(store: Any) -> None:
    store.append("s", turn("1") + turn("2") + turn("3"), expected_version=0)
    store.save_summary("s", Summary(0, 2, "first"))
    store.save_summary("s", Summary(0, 4, "first two"))
    assert store.rewind("s", to=2) == 2
    data = store.load("s")
    assert len(data.messages) == 2
    assert [s.text for s in data.summaries] == ["first"]  # summaries covering dropped messages go too
    assert store.search("question 3") == []
    store.append("s", turn("new"), expected_version=2)
    data = store.load("s")
    assert [m.seq for m in data.messages] == [0, 1, 2, 3]
    assert data.messages[2].message["content"] == "question new"


def test_rewind_is_versioned(store: Any) -> None:
    store.append("s", turn("1") + turn("2"), expected_version=0)
    with pytest.raises(ConflictError):
        store.rewind("s", expected_version=0)
    assert len(store.load("s").messages) == 4
    with pytest.raises(ConfigurationError):
        store.rewind("s", to=5)
    with pytest.raises(SessionNotFound):
        store.rewind("ghost")


def test_rewind_finds_the_last_turn_behind_a_long_tool_loop(store: Any) -> None:
    # 61 messages after the turn start: found by reading the tail in growing chunks, as by a whole load.
    loop = [Entry({"role": "user", "content": "run the long job"})]
    for i in range(30):
        tool_id = f"toolu_{i:02d}"
        loop += [
            Entry({"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "f", "input": {}}]}),
            Entry({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}]}),
        ]
    loop.append(Entry({"role": "assistant", "content": [{"type": "text", "text": "done"}]}))
    store.append("s", turn("1"), expected_version=0)
    store.append("s", loop, expected_version=1)
    assert store.rewind("s", expected_version=2) == 3
    assert store.load("s").message_params() == [e.message for e in turn("1")]


def test_rewind_to_an_index_with_a_version(store: Any) -> None:
    store.append("s", turn("1") + turn("2"), expected_version=0)
    store.save_summary("s", Summary(0, 4, "all of it"))
    with pytest.raises(ConflictError) as stale:
        store.rewind("s", to=2, expected_version=0)
    assert stale.value.actual_version == 1
    for bad in (5, -1, True, "2", 1.0):
        with pytest.raises(ConfigurationError, match="rewind target"):
            store.rewind("s", to=bad, expected_version=1)
    data = store.load("s")
    assert (data.version, len(data.messages), len(data.summaries)) == (1, 4, 1)  # nothing changed
    assert store.rewind("s", to=4, expected_version=1) == 2  # the whole log kept: still a versioned write
    assert store.rewind("s", to=2, expected_version=2) == 3
    data = store.load("s")
    assert (data.version, data.message_params(), data.summaries) == (3, [e.message for e in turn("1")], [])
    with pytest.raises(SessionNotFound):
        store.rewind("ghost", to=0, expected_version=1)
    with pytest.raises(SessionNotFound):
        store.rewind("ghost", to=0)


# -- delete --------------------------------------------------------------------------------------------------


def test_delete_leaves_no_trace(store: Any) -> None:
    store.append("gone", turn("zebracorn"), expected_version=0)
    store.update_session("gone", title="secret", owner="bob", tags=["t"])
    store.save_summary("gone", Summary(0, 2, "summary of zebracorn"))
    store.append("kept", turn("other"), expected_version=0)
    assert store.delete("gone") is True
    with pytest.raises(SessionNotFound):
        store.load("gone")
    with pytest.raises(SessionNotFound):
        store.get_session("gone")
    assert [s.id for s in store.list_sessions()] == ["kept"]
    assert store.list_sessions(owner="bob") == []
    assert store.list_sessions(tag="t") == []
    assert store.search("zebracorn") == []
    assert store.delete("gone") is False
    # The id can be used again, and starts from nothing.
    assert store.append("gone", turn("fresh"), expected_version=0) == 1
    data = store.load("gone")
    assert (data.info.title, data.info.owner, data.info.tags, data.summaries) == (None, None, (), [])
    assert len(data.messages) == 2


# -- expiry --------------------------------------------------------------------------------------------------


def test_expired_sessions_disappear_and_are_purged(store: Any) -> None:
    store.append("old", turn("wombat"), expected_version=0)
    store.append("later", turn("1"), expected_version=0)
    store.append("forever", turn("2"), expected_version=0)
    store.update_session("later", expires_at=now() + timedelta(hours=1))
    store.update_session("old", expires_at=now() - timedelta(seconds=1))
    with pytest.raises(SessionNotFound):
        store.load("old")
    assert {s.id for s in store.list_sessions()} == {"later", "forever"}
    assert store.search("wombat") == []
    assert store.purge_expired(now() + timedelta(hours=2)) >= 1
    assert {s.id for s in store.list_sessions()} == {"forever"}
    with pytest.raises(SessionNotFound):
        store.load("later")
    assert store.purge_expired() == 0
    assert store.get_session("forever").expires_at is None


def test_expiry_can_be_read_and_cleared(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    when = (now() + timedelta(days=3)).replace(microsecond=0)
    assert store.update_session("s", expires_at=when).expires_at == when
    assert store.get_session("s").expires_at == when
    assert store.update_session("s", expires_at=None).expires_at is None
    assert store.purge_expired(now() + timedelta(days=10)) == 0
    assert store.load("s").version == 1


def test_an_expired_id_starts_afresh(store: Any) -> None:
    store.append("s", turn("1"), expected_version=0)
    store.update_session("s", expires_at=now() - timedelta(seconds=1))
    assert store.append("s", turn("2"), expected_version=0) == 1
    assert [m.message["content"] for m in store.load("s").messages][:1] == ["question 2"]


# -- search --------------------------------------------------------------------------------------------------


def test_search_finds_words_across_sessions(store: Any) -> None:
    store.append("a", [Entry({"role": "user", "content": "Where is the Eiffel Tower?"})], expected_version=0)
    store.append(
        "a",
        [Entry({"role": "assistant", "content": [{"type": "text", "text": "The Eiffel tower is in Paris."}]})],
        expected_version=1,
    )
    store.append(
        "b",
        [Entry({"role": "user", "content": "Tell me about Berlin and the TOWER there"})],
        expected_version=0,
    )
    store.append("c", tool_turn("x"), expected_version=0)
    hits = store.search("tower")
    assert {(h.session_id, h.seq) for h in hits} == {("a", 0), ("a", 1), ("b", 0)}
    by_key = {(h.session_id, h.seq): h for h in hits}
    assert by_key[("a", 1)].role == "assistant"
    assert "tower" in by_key[("b", 0)].snippet.lower()
    assert {(h.session_id, h.seq) for h in store.search("EIFFEL paris")} == {("a", 1)}
    assert {(h.session_id, h.seq) for h in store.search("tower", session_id="b")} == {("b", 0)}
    assert len(store.search("tower", limit=2)) == 2
    assert store.search("nothing-like-this") == []
    assert {(h.session_id, h.seq) for h in store.search("42")} == {("c", 2)}  # text inside a tool_result


def test_search_treats_queries_as_plain_words(store: Any) -> None:
    store.append("a", [Entry({"role": "user", "content": "plain words here"})], expected_version=0)
    for query in [
        '"',
        "'",
        "words OR",
        "NOT words",
        "word*",
        "(words",
        "'; DROP TABLE messages; --",
        "a:b",
        "^",
        "%",
        "*",
    ]:
        store.search(query)  # no syntax error, no injection
    assert {h.session_id for h in store.search('"words"')} == {"a"}
    assert store.search("") == []
    assert store.list_sessions()[0].id == "a"


def test_search_unicode(store: Any) -> None:
    store.append("u", [Entry({"role": "user", "content": "Ein Café in Zürich, 東京 too"})], expected_version=0)
    assert {h.session_id for h in store.search("café")} == {"u"}
    assert {h.session_id for h in store.search("ZÜRICH")} == {"u"}


def _say(text: str) -> list[Entry]:
    return [Entry({"role": "user", "content": text})]


def test_search_filters_by_owner(store: Any) -> None:
    store.append("ann-1", _say("the kiwi is a bird"), expected_version=0)
    store.append("ann-1", [Entry({"role": "assistant", "content": "a kiwi cannot fly"})], expected_version=1)
    store.append("ann-2", _say("kiwi fruit salad"), expected_version=0)
    store.append("bob-1", _say("bob saw a kiwi"), expected_version=0)
    store.append("nobody", _say("kiwi without an owner"), expected_version=0)
    store.append("ann-old", _say("an expired kiwi"), expected_version=0)
    for sid in ("ann-1", "ann-2", "ann-old"):
        store.update_session(sid, owner="ann")
    store.update_session("bob-1", owner="bob")
    store.update_session("ann-old", expires_at=now() - timedelta(seconds=1))

    def found(**filters: Any) -> set[tuple[str, int]]:
        return {(h.session_id, h.seq) for h in store.search("kiwi", **filters)}

    assert found() == {("ann-1", 0), ("ann-1", 1), ("ann-2", 0), ("bob-1", 0), ("nobody", 0)}
    assert found(owner="ann") == {("ann-1", 0), ("ann-1", 1), ("ann-2", 0)}  # not the expired one
    assert found(owner="bob") == {("bob-1", 0)}
    assert found(owner="carol") == set()
    assert found(owner="ANN") == set()  # owners match exactly, as in list_sessions
    assert {h.role for h in store.search("fly", owner="ann")} == {"assistant"}
    assert store.search("salad", owner="bob") == []
    # With session_id: that session's hits if it is the owner's, none otherwise.
    assert found(owner="ann", session_id="ann-2") == {("ann-2", 0)}
    assert found(owner="bob", session_id="ann-2") == set()
    assert found(owner="ann", session_id="nobody") == set()
    assert found(owner="ann", session_id="ann-old") == set()
    assert found(owner="ann", session_id="no-such-session") == set()
    assert store.search("", owner="ann") == []
    # A session given to another owner moves with it; a deleted one is gone from its owner's search.
    store.update_session("ann-2", owner="bob")
    assert found(owner="ann") == {("ann-1", 0), ("ann-1", 1)}
    assert found(owner="bob") == {("bob-1", 0), ("ann-2", 0)}
    store.update_session("bob-1", owner=None)
    assert found(owner="bob") == {("ann-2", 0)}
    store.delete("ann-1")
    assert found(owner="ann") == set()


def test_search_limit_applies_after_the_owner_filter(store: Any) -> None:
    # Owner a's five hits rank after owner b's five on every backend: written earlier (the scans and
    # PostgreSQL go most recently updated first) and less relevant (SQLite's FTS5 ranks by bm25).
    for i in range(5):
        filler = " ".join(f"filler{j}" for j in range(30))
        store.append(f"a{i}", _say(f"needle {filler}"), expected_version=0)
        store.update_session(f"a{i}", owner="a")
    for i in range(5):
        store.append(f"b{i}", _say("needle needle needle"), expected_version=0)
        store.update_session(f"b{i}", owner="b")
    unfiltered = store.search("needle", limit=3)
    assert len(unfiltered) == 3 and {h.session_id[0] for h in unfiltered} == {"b"}  # so filtering after would miss
    hits = store.search("needle", owner="a", limit=3)
    assert len(hits) == 3
    assert {h.session_id for h in hits} <= {f"a{i}" for i in range(5)}
    assert len({h.session_id for h in hits}) == 3
    assert {h.session_id for h in store.search("needle", owner="a")} == {f"a{i}" for i in range(5)}
    assert {h.session_id for h in store.search("needle", owner="b", limit=10)} == {f"b{i}" for i in range(5)}
    assert store.search("needle", owner="a", limit=0) == []
    assert [h.session_id for h in store.search("needle", owner="a", session_id="a3", limit=3)] == ["a3"]


@pytest.mark.parametrize("bad", [5, b"ann", ["ann"], "a\x00b"])
def test_a_bad_owner_filter_is_refused_clearly(store: Any, bad: Any) -> None:
    store.append("s", _say("kiwi"), expected_version=0)
    store.update_session("s", owner="ann")
    with pytest.raises(ConfigurationError, match="owner"):
        store.search("kiwi", owner=bad)
    with pytest.raises(ConfigurationError, match="owner"):
        store.search("kiwi", owner=bad, session_id="s")
    with pytest.raises(ConfigurationError, match="owner"):
        store.list_sessions(owner=bad)
    with pytest.raises(ConfigurationError, match="tag"):
        store.list_sessions(tag=bad)
    assert [h.session_id for h in store.search("kiwi", owner="ann")] == ["s"]  # nothing was changed


# -- listing -------------------------------------------------------------------------------------------------


def test_list_sessions_order_filters_and_pages(store: Any) -> None:
    for i in range(7):
        store.append(f"s{i}", turn(str(i)), expected_version=0)
        store.update_session(
            f"s{i}", owner="alice" if i % 2 == 0 else "bob", tags=["even"] if i % 2 == 0 else ["odd", "x"]
        )
    store.append("s3", turn("again"), expected_version=1)  # s3 becomes the most recently updated
    listed = store.list_sessions()
    assert listed[0].id == "s3"
    assert sorted(s.id for s in listed) == [f"s{i}" for i in range(7)]
    assert [s.updated_at for s in listed] == sorted((s.updated_at for s in listed), reverse=True)
    assert listed[0].message_count == 4 and listed[0].version == 2
    pages = [store.list_sessions(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [s.id for page in pages for s in page] == [s.id for s in listed]
    assert {s.id for s in store.list_sessions(owner="alice")} == {"s0", "s2", "s4", "s6"}
    assert {s.id for s in store.list_sessions(tag="odd")} == {"s1", "s3", "s5"}
    assert {s.id for s in store.list_sessions(owner="bob", tag="x", limit=2)} <= {"s1", "s3", "s5"}
    assert len(store.list_sessions(owner="bob", tag="x", limit=2)) == 2
    assert store.list_sessions(owner="carol") == []
    assert store.list_sessions(tag="even", owner="bob") == []
    with pytest.raises(ConfigurationError):
        store.list_sessions(limit=-1)


# -- export / import -----------------------------------------------------------------------------------------


def test_export_import_round_trip(store: Any) -> None:
    entries = every_block_history()
    store.append("orig", entries[:4], expected_version=0)
    store.append("orig", entries[4:], expected_version=1)
    expires = now() + timedelta(days=30)
    store.update_session(
        "orig",
        title="Weather",
        owner="ann",
        tags=["w"],
        model="claude-sonnet-4-6",
        system="Be brief.",
        expires_at=expires,
        metadata={"source": "test"},
    )
    store.save_summary("orig", Summary(0, 4, "weather talk", model="claude-haiku-4-5"))
    exported = store.export_jsonl("orig")
    lines = exported.splitlines()
    assert len(lines) == 1 + len(entries)
    assert all(isinstance(json.loads(line), dict) for line in lines)
    new_id = store.import_jsonl(exported, session_id="copy")
    assert new_id == "copy"
    original, copy = store.load("orig"), store.load("copy")
    assert [canonical(m.message) for m in copy.messages] == [canonical(m.message) for m in original.messages]
    assert [(m.seq, m.model, m.usage, m.created_at) for m in copy.messages] == [
        (m.seq, m.model, m.usage, m.created_at) for m in original.messages
    ]
    for name in (
        "title",
        "owner",
        "tags",
        "model",
        "system",
        "expires_at",
        "metadata",
        "created_at",
        "message_count",
    ):
        assert getattr(copy.info, name) == getattr(original.info, name), name
    assert [(s.start, s.end, s.text, s.model) for s in copy.summaries] == [(0, 4, "weather talk", "claude-haiku-4-5")]
    # Lines given one by one (as read from a file) work too, and the id comes from the header by default.
    store.delete("orig")
    assert store.import_jsonl(io.StringIO(exported)) == "orig"
    assert store.load("orig").message_params() == original.message_params()
    with pytest.raises(ConflictError):
        store.import_jsonl(exported)


def test_export_is_portable_between_backends(store: Any) -> None:
    entries = every_block_history()
    store.append("s", entries, expected_version=0)
    other = MemoryStore()
    other.import_jsonl(store.export_jsonl("s"))
    assert [canonical(m.message) for m in other.load("s").messages] == [canonical(e.message) for e in entries]
    back = other.export_jsonl("s")
    assert store.import_jsonl(back, session_id="back") == "back"
    assert [canonical(m.message) for m in store.load("back").messages] == [canonical(e.message) for e in entries]


def test_import_the_guides_plain_list(store: Any) -> None:
    history = [
        {"role": "user", "content": "Hello, Claude"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": [{"type": "text", "text": "Tell me a joke"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Why did the chicken..."}]},
    ]
    session_id = store.import_jsonl(json.dumps(history, indent=2))
    data = store.load(session_id)
    assert data.message_params() == history
    assert data.version == 1
    assert store.append(session_id, turn("more"), expected_version=1) == 2
    assert store.import_jsonl(json.dumps(history), session_id="named") == "named"


def test_import_rejects_bad_data_clearly(store: Any) -> None:
    with pytest.raises(InvalidHistory) as raised:
        store.import_jsonl(json.dumps([{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]))
    assert raised.value.index == 1
    assert "role" in str(raised.value)
    with pytest.raises(ConfigurationError):
        store.import_jsonl("{not json")
    with pytest.raises(ConfigurationError):
        store.import_jsonl('{"type": "something else"}')
    assert store.list_sessions() == []


# -- session ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("session_id", NASTY_IDS, ids=range(len(NASTY_IDS)))
def test_any_session_id(sync_store: Any, session_id: str) -> None:
    store = sync_store
    store.append(session_id, turn("nasty"), expected_version=0)
    store.append("neighbour", turn("n"), expected_version=0)
    assert store.load(session_id).info.id == session_id
    assert store.get_session(session_id).id == session_id
    assert {s.id for s in store.list_sessions()} == {session_id, "neighbour"}
    assert {h.session_id for h in store.search("nasty", session_id=session_id)} == {session_id}
    other_id = (session_id + "!")[-1000:]
    assert store.fork("neighbour", new_id=other_id) == other_id
    assert store.load(other_id).info.id == other_id
    assert store.delete(session_id) is True
    assert {s.id for s in store.list_sessions()} == {"neighbour", other_id}
    assert len(store.load("neighbour").messages) == 2


def test_ids_that_look_alike_stay_apart(store: Any) -> None:
    ids = ["a/b", "a%2Fb", "a_b", "a\\b", "A/B", "a/b "]
    for i, session_id in enumerate(ids):
        store.append(session_id, turn(str(i)), expected_version=0)
    for i, session_id in enumerate(ids):
        assert store.load(session_id).messages[0].message["content"] == f"question {i}"


@pytest.mark.parametrize("bad", ["", "x" * 1001, "nul\x00inside", 42, None])
def test_invalid_session_ids_are_refused(store: Any, bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        store.append(bad, turn("1"), expected_version=0)
    assert store.list_sessions() == []


# -- persistence ---------------------------------------------------------------------------------------------


def test_another_store_object_sees_the_same_data(backend: Any) -> None:
    first = backend.open()
    second = backend.open()
    try:
        first.append("s", turn("1"), expected_version=0)
        assert second.load("s").message_params() == [e.message for e in turn("1")]
        second.append("s", turn("2"), expected_version=1)
        with pytest.raises(ConflictError):
            first.append("s", turn("stale"), expected_version=1)
        assert len(first.load("s").messages) == 4
    finally:
        first.close()
        second.close()
