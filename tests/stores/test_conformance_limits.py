"""The one validation boundary, over every backend: hostile or careless input is refused with the library's
error naming the field, identically everywhere, before anything is written; the largest accepted values
round-trip. (Found by an attack on every backend: before, each of these was a driver's traceback, or a write
that then broke reads of the session or of the whole store.)"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from claude_history.errors import ConfigurationError, InvalidHistory, SessionNotFound
from claude_history.stores._validation import MAX_DEPTH, MAX_KEY_BYTES
from claude_history.stores.base import Entry, Summary

from .samples import turn

SURROGATE = "bad \ud800 text"
WIDE = "🎉" * (MAX_KEY_BYTES // 4)  # four UTF-8 bytes each: exactly the limit


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def assert_untouched(store: Any) -> None:
    data = store.load("s")
    assert data.version == 1 and len(data.messages) == 2
    assert data.info.tags == () and data.info.owner is None and data.info.metadata == {}
    assert [info.id for info in store.list_sessions()] == ["s"]


@pytest.mark.parametrize("field", ["owner", "title", "model", "tags"])
def test_a_lone_surrogate_in_a_text_field_is_refused_and_nothing_is_written(store: Any, field: str) -> None:
    store.append("s", turn("a"), expected_version=0)
    value: Any = [SURROGATE] if field == "tags" else SURROGATE
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        store.update_session("s", **{field: value})
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        store.update_session("new", create=True, **{field: value})
    assert_untouched(store)
    # The session stays fully usable (on Redis the bad tag used to fail every later script half-way).
    assert store.append("s", turn("b"), expected_version=1) == 2
    assert store.rewind("s") == 3
    assert store.delete("s")


def test_a_lone_surrogate_in_a_filter_or_an_entry_model_is_refused(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    for call in (
        lambda: store.list_sessions(owner=SURROGATE),
        lambda: store.list_sessions(tag=SURROGATE),
        lambda: store.search("question", owner=SURROGATE),
        lambda: store.append("s", [Entry({"role": "user", "content": "x"}, model=SURROGATE)], expected_version=1),
        lambda: store.save_summary("s", Summary(0, 2, "sum", model=SURROGATE)),
    ):
        with pytest.raises(ConfigurationError, match="lone surrogate"):
            call()
    assert_untouched(store)


def test_indexed_fields_are_held_to_what_postgresql_can_index(store: Any) -> None:
    store.append(WIDE, turn("a"), expected_version=0)
    store.update_session(WIDE, owner=WIDE, tags=[WIDE])
    assert store.list_sessions(owner=WIDE, tag=WIDE)[0].id == WIDE
    assert store.load(WIDE).info.owner == WIDE
    too_long = WIDE + "x"
    with pytest.raises(ConfigurationError, match=r"session id .* bytes"):
        store.append(too_long, turn("a"), expected_version=0)
    for field, value in (("owner", too_long), ("tags", [too_long])):
        with pytest.raises(ConfigurationError, match=f"{field.rstrip('s')} .* bytes"):
            store.update_session(WIDE, **{field: value})
    assert store.load(WIDE).info.tags == (WIDE,)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # past year 9999 in UTC
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),  # before year 1 in UTC
    ],
)
def test_a_date_no_backend_can_give_back_is_refused(store: Any, moment: datetime) -> None:
    store.append("s", turn("a"), expected_version=0)
    with pytest.raises(ConfigurationError, match="expires_at is out of range"):
        store.update_session("s", expires_at=moment)
    with pytest.raises(ConfigurationError, match="created_at is out of range"):
        store.save_summary("s", Summary(0, 2, "sum", created_at=moment))
    for field in ("created_at", "updated_at", "expires_at"):
        header = {"type": "session", "id": "imported", field: moment.isoformat()}
        with pytest.raises(ConfigurationError, match=f"{field} is out of range"):
            store.import_jsonl(json.dumps(header) + "\n" + json.dumps({"role": "user", "content": "q"}))
    line = {"type": "message", "message": {"role": "user", "content": "q"}, "created_at": moment.isoformat()}
    with pytest.raises(ConfigurationError, match="created_at on import line 1 is out of range"):
        store.import_jsonl(json.dumps(line))
    assert [info.id for info in store.list_sessions()] == ["s"]  # the whole store stays listable
    store.update_session("s", expires_at=datetime(9999, 12, 1, tzinfo=timezone.utc))
    assert store.get_session("s").expires_at == datetime(9999, 12, 1, tzinfo=timezone.utc)


def test_json_nested_deeper_than_the_limit_is_refused_and_the_limit_round_trips(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    for depth in (MAX_DEPTH + 1, 990, 5_000):
        with pytest.raises(ConfigurationError, match="metadata nests more than"):
            store.update_session("s", metadata={"k": nested(depth)})
        with pytest.raises(ConfigurationError, match="system nests more than"):
            store.update_session("s", system=[{"type": "text", "text": "x", "deep": nested(depth)}])
        with pytest.raises(ConfigurationError, match="usage of entry 0 nests more than"):
            store.append("s", [Entry({"role": "user", "content": "x"}, usage={"k": nested(depth)})], expected_version=1)
        with pytest.raises(InvalidHistory, match="message 0 nests more than") as caught:
            deep = [{"type": "tool_result", "tool_use_id": "t", "content": nested(depth)}]
            store.append("s", [Entry({"role": "user", "content": deep})], expected_version=1)
        assert caught.value.index == 0
    assert_untouched(store)
    deepest = {"role": "user", "content": [{"type": "text", "text": "x", "k": nested(MAX_DEPTH - 3)}]}
    store.append("s", [Entry(deepest)], expected_version=1)
    store.update_session("s", metadata={"k": nested(MAX_DEPTH - 1)})
    data = store.load("s")
    assert data.messages[-1].message == deepest and data.info.metadata == {"k": nested(MAX_DEPTH - 1)}


def test_integers_past_what_every_backend_holds_are_refused(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    for call, name in (
        (lambda: store.list_sessions(limit=2**63), "limit"),
        (lambda: store.list_sessions(offset=2**63), "offset"),
        (lambda: store.search("question", limit=2**63), "limit"),
        (lambda: store.append("s", turn("b"), expected_version=2**63), "expected_version"),
        (lambda: store.rewind("s", to=2**63), "rewind target"),
        (lambda: store.save_summary("s", Summary(0, 2**63, "x")), "summary end"),
    ):
        with pytest.raises(ConfigurationError, match=name):
            call()
    assert_untouched(store)


@pytest.mark.parametrize("usage", ["abc", 5, ["input_tokens"], {"input_tokens": float("nan")}])
def test_a_usage_that_is_not_a_json_object_is_refused(store: Any, usage: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    with pytest.raises(ConfigurationError, match="usage of entry 0"):
        store.append("s", [Entry({"role": "user", "content": "x"}, usage=usage)], expected_version=1)
    assert_untouched(store)


HOSTILE_IMPORTS: list[tuple[Any, str]] = [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (None, "string or an iterable"),
    (5, "string or an iterable"),
    ([b"bytes line"], "line 1 must be a string"),
    ('{"role": "user", "content": "q"}\n5', "line 2 must be a JSON object"),
    ('{"type": "message", "message": 5}', "message 0"),
    ('{"role": "user", "content": "q", "x": ' + "1" * 5000 + "}", "line 1 is not valid JSON"),
    ('{"type": "message", "message": {"role": "user", "content": "q"}, "usage": {"n": NaN}}', "not valid JSON"),
    ('{"type": "message", "message": {"role": "user", "content": "q"}, "usage": 5}', "usage on import line 1"),
    ('{"type": "session", "tags": 5}', "tags"),
    ('{"type": "session", "summaries": 5}', "summaries"),
    ('{"type": "session", "metadata": [1]}', "metadata"),
    ('{"type": "session", "created_at": 5}', "created_at"),
    ('{"role": "user", "content": ' + "[" * 5000 + "]" * 5000 + "}", "line 1"),
    ('[{"role": "user", "content": ' + "[" * 990 + "]" * 990 + "}]", "nests"),
]


@pytest.mark.parametrize(("data", "error"), HOSTILE_IMPORTS)
def test_hostile_import_input_is_refused_with_a_clear_error(store: Any, data: Any, error: str) -> None:
    with pytest.raises((ConfigurationError, InvalidHistory), match=error):
        store.import_jsonl(data, session_id="imported")
    with pytest.raises(SessionNotFound):
        store.get_session("imported")
    assert store.list_sessions() == []
