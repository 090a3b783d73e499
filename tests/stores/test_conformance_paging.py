"""Cursor (keyset) pagination of ``list_sessions``, the same on every backend and flavour: walking the pages
with ``after=SessionCursor.after(last)`` gives exactly the full listing, ties in ``updated_at`` included;
a session updated between two pages moves to the front and is neither repeated nor makes another one be
skipped; the cursor of a deleted session still continues where it was."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError
from claude_history.stores import SessionCursor

from .samples import turn

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def put(store: Any, session_id: str, seconds: int, *, owner: str | None = None, tags: tuple[str, ...] = (),
        micros: int = 0) -> None:  # fmt: skip
    """A session updated at a chosen time (import keeps it), so ties in ``updated_at`` can be made on purpose."""
    stamp = (BASE + timedelta(seconds=seconds, microseconds=micros)).isoformat()
    header = {"type": "session", "id": session_id, "owner": owner, "tags": list(tags), "created_at": stamp,
              "updated_at": stamp}  # fmt: skip
    message = {"type": "message", "seq": 0, "message": {"role": "user", "content": f"hello {session_id}"}}
    store.import_jsonl(json.dumps(header) + "\n" + json.dumps(message) + "\n", session_id=session_id)


def walk(store: Any, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        page = store.list_sessions(limit=limit, after=after, **filters)
        pages.append([s.id for s in page])
        if len(page) < limit:
            return pages
        after = SessionCursor.after(page[-1])


# Ids chosen so code-point order differs from some locales' collation ("B" < "a", "é" after "z").
IDS = ["a", "B", "b", "a-1", "a1", "z", "é", "中", "s 2", "s10", "s9"]


def test_walking_pages_by_cursor_gives_the_whole_listing_ties_included(store: Any) -> None:
    for i, session_id in enumerate(IDS):
        put(store, session_id, seconds=i % 3)  # three timestamps: most sessions share theirs with others
    full = [s.id for s in store.list_sessions(limit=100)]
    assert sorted(full) == sorted(IDS)
    expected = sorted(IDS, key=lambda sid: (-(IDS.index(sid) % 3), sid))  # newest first, ties by code point
    assert full == expected
    for limit in (1, 2, 3, 4, 11, 12):
        pages = walk(store, limit)
        assert [sid for page in pages for sid in page] == full, limit
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages[-1]) < limit


def test_cursor_pages_with_owner_and_tag_filters(store: Any) -> None:
    for i in range(9):
        put(store, f"s{i}", seconds=i // 2, owner="ann" if i % 3 else "bob", tags=("even",) if i % 2 == 0 else ())
    for filters in ({"owner": "ann"}, {"tag": "even"}, {"owner": "ann", "tag": "even"}, {"owner": "nobody"}):
        full = [s.id for s in store.list_sessions(limit=100, **filters)]
        assert [sid for page in walk(store, 2, **filters) for sid in page] == full, filters


def test_a_session_updated_between_pages_moves_to_the_front_and_nothing_else_is_lost(store: Any) -> None:
    for i in range(6):
        put(store, f"s{i}", seconds=i)
    first = store.list_sessions(limit=2)
    assert [s.id for s in first] == ["s5", "s4"]
    store.append("s1", turn("again"), expected_version=1)  # s1 jumps to the front: a new page misses it
    store.append("s5", turn("again"), expected_version=1)  # s5 was already seen
    rest = store.list_sessions(limit=10, after=SessionCursor.after(first[-1]))
    assert [s.id for s in rest] == ["s3", "s2", "s0"]
    assert [s.id for s in store.list_sessions(limit=2)] == ["s5", "s1"]


def test_the_cursor_of_a_deleted_session_continues_after_its_place(store: Any) -> None:
    for i in range(5):
        put(store, f"s{i}", seconds=i)
    first = store.list_sessions(limit=2)
    assert store.delete(first[-1].id)
    assert [s.id for s in store.list_sessions(limit=10, after=SessionCursor.after(first[-1]))] == ["s2", "s1", "s0"]


def test_offset_counts_after_the_cursor_and_microseconds_are_kept(store: Any) -> None:
    put(store, "old", seconds=0)
    put(store, "mid", seconds=0, micros=1)
    put(store, "new", seconds=0, micros=2)
    listed = store.list_sessions()
    assert [s.id for s in listed] == ["new", "mid", "old"]
    assert [s.id for s in store.list_sessions(after=SessionCursor.after(listed[0]))] == ["mid", "old"]
    assert [s.id for s in store.list_sessions(after=SessionCursor.after(listed[0]), offset=1)] == ["old"]
    assert store.list_sessions(after=SessionCursor.after(listed[-1])) == []


@pytest.mark.parametrize(
    ("after", "named"),
    [
        ("s1", "SessionCursor"),
        ({"updated_at": BASE, "id": "s1"}, "SessionCursor"),
        (SessionCursor(BASE, ""), "session id"),
        (SessionCursor("yesterday", "s1"), "after.updated_at"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_cursor_is_a_clear_error(store: Any, after: Any, named: str) -> None:
    put(store, "s1", seconds=0)
    with pytest.raises(ConfigurationError, match=named):
        store.list_sessions(after=after)


_EXAMPLES = itertools.count()
_sessions = st.lists(
    st.tuples(st.text(alphabet="aAbZ_-é1", min_size=1, max_size=4), st.integers(0, 3)),
    min_size=0,
    max_size=12,
    unique_by=lambda pair: pair[0],
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions=_sessions, limit=st.integers(1, 5))
def test_any_walk_equals_the_listing(sync_store: Any, sessions: list[tuple[str, int]], limit: int) -> None:
    owner = f"o{next(_EXAMPLES)}"  # each example lists only its own sessions (the store is shared)
    for session_id, seconds in sessions:
        put(sync_store, f"{owner}:{session_id}", seconds=seconds, owner=owner)
    expected = [f"{owner}:{sid}" for sid, sec in sorted(sessions, key=lambda p: (-p[1], f"{owner}:{p[0]}"))]
    assert [s.id for s in sync_store.list_sessions(owner=owner, limit=100)] == expected
    assert [sid for page in walk(sync_store, limit, owner=owner) for sid in page] == expected
