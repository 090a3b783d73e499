"""Hostile input, generated: every backend either takes a value and gives it back unchanged, or refuses it with
the library's error; never a driver's traceback, never a write it cannot read back, and always the same
answer as the reference (the in-memory store) for the same input. Kept as a regression suite (the attack that
found the raw tracebacks tried about 1,000 hostile ids and values by hand)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import HistoryError
from claude_history.stores.base import Entry
from claude_history.stores.memory import MemoryStore

from .samples import turn

# 25 examples per backend in the suite; CLAUDE_HISTORY_FUZZ_EXAMPLES=1000 for a deeper run.
FUZZ = settings(
    max_examples=int(os.environ.get("CLAUDE_HISTORY_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text as hostile users write it: quotes, path and glob characters, controls, NUL, lone surrogates, 4-byte
# characters (long in UTF-8), right-to-left marks, and lengths around the limits.
_CHARS = st.sampled_from(
    ["a", "'", '"', "\\", "/", "..", "*", "%", ":", "\n", "\x00", "\x7f", "\u202e", "é", "🎉", "\ud800"]
)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.lists(_CHARS, max_size=30).map("".join),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "🎉"]), st.integers(400, 1100)),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
hostile_dates = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone(timedelta(hours=-5)))
) | st.datetimes(timezones=st.just(timezone(timedelta(hours=5))))


def outcome(call: Any) -> tuple[str, Any]:
    """("ok", result) or ("refused", error class name); anything but the library's errors fails the test."""
    try:
        return "ok", call()
    except HistoryError as exc:
        return "refused", type(exc).__name__


def assert_same_as_reference(store: Any, reference: MemoryStore, operation: Any) -> Any:
    mine, theirs = outcome(lambda: operation(store)), outcome(lambda: operation(reference))
    assert mine[0] == theirs[0], (mine, theirs)
    if mine[0] == "refused":
        assert mine[1] == theirs[1]
    return mine


def assert_store_is_healthy(store: Any) -> None:
    """The whole store stays listable and every session in it loads."""
    for info in store.list_sessions(limit=1000):
        store.load(info.id)


@FUZZ
@given(session_id=hostile_text, owner=hostile_text, title=hostile_text, tags=st.lists(hostile_text, max_size=3))
def test_hostile_metadata_is_kept_exactly_or_refused_as_everywhere(
    sync_store: Any, session_id: str, owner: str, title: str, tags: list[str]
) -> None:
    reference = MemoryStore()
    created = assert_same_as_reference(
        sync_store, reference, lambda s: s.append(session_id, turn("q"), expected_version=0)
    )
    if created[0] == "ok":
        updated = assert_same_as_reference(
            sync_store, reference, lambda s: s.update_session(session_id, owner=owner, title=title, tags=tags)
        )
        info = sync_store.get_session(session_id)
        if updated[0] == "ok":
            assert (info.owner, info.title, info.tags) == (owner, title, tuple(dict.fromkeys(tags)))
            assert [i.id for i in sync_store.list_sessions(owner=owner)] == [session_id]
        else:
            assert (info.owner, info.title, info.tags) == (None, None, ())  # nothing written
        assert_same_as_reference(sync_store, reference, lambda s: s.search("question", owner=owner))
        assert_store_is_healthy(sync_store)
        assert sync_store.delete(session_id)
    assert_store_is_healthy(sync_store)


@FUZZ
@given(metadata=json_values, usage=json_values, expires=hostile_dates)
def test_hostile_json_and_dates_are_kept_exactly_or_refused_as_everywhere(
    sync_store: Any, metadata: Any, usage: Any, expires: datetime
) -> None:
    reference = MemoryStore()
    session_id = uuid.uuid4().hex
    for store in (sync_store, reference):
        store.append(session_id, turn("q"), expected_version=0)
    result = assert_same_as_reference(
        sync_store, reference, lambda s: s.update_session(session_id, metadata={"k": metadata})
    )
    if result[0] == "ok":
        assert sync_store.get_session(session_id).metadata == {"k": metadata}
    reply = Entry({"role": "assistant", "content": [{"type": "text", "text": "a"}]}, usage=usage)
    appended = assert_same_as_reference(
        sync_store, reference, lambda s: s.append(session_id, [turn("x")[0], reply], expected_version=1)
    )
    if appended[0] == "ok":
        assert sync_store.load(session_id).messages[-1].usage == usage
    expiring = assert_same_as_reference(
        sync_store, reference, lambda s: s.update_session(session_id, expires_at=expires)
    )
    if expiring[0] == "ok" and expires > datetime.now(timezone.utc):
        assert sync_store.get_session(session_id).expires_at == expires
    assert_store_is_healthy(sync_store)
    sync_store.delete(session_id)


def _line(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):  # pragma: no cover - json_values always serialise (NaN as NaN)
        return "null"


import_lines = st.lists(
    st.one_of(
        json_values.map(_line),
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", 5]), "content": json_values}
        ).map(_line),
        st.fixed_dictionaries(
            {"type": st.just("session")},
            optional={
                "id": json_values,
                "tags": json_values,
                "metadata": json_values,
                "created_at": st.one_of(hostile_dates.map(datetime.isoformat), json_values),
                "summaries": json_values,
            },
        ).map(_line),
        hostile_text,
    ),
    max_size=4,
)


@FUZZ
@given(lines=import_lines)
def test_hostile_imports_are_refused_or_imported_exactly_as_everywhere(sync_store: Any, lines: list[str]) -> None:
    reference = MemoryStore()
    data = "\n".join(lines)
    session_id = uuid.uuid4().hex
    result = assert_same_as_reference(sync_store, reference, lambda s: s.import_jsonl(data, session_id=session_id))
    if result[0] == "ok":
        mine, theirs = sync_store.load(session_id), reference.load(session_id)
        assert mine.message_params() == theirs.message_params()
        assert [(m.model, m.usage) for m in mine.messages] == [(m.model, m.usage) for m in theirs.messages]
        for name in ("title", "owner", "tags", "model", "system", "metadata", "expires_at"):
            assert getattr(mine.info, name) == getattr(theirs.info, name), name
        sync_store.delete(session_id)
    assert_store_is_healthy(sync_store)
