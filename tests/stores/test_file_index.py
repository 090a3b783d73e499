"""The file store's search index (``_file_index``): what only it has. Search reads the index and the bytes of
its hits, not the logs; the index follows every write, is the one a fresh import builds whatever the history,
and a missing, stale or corrupt index is rebuilt from the logs (the record) by the next search. That search
equals a scan on every backend is the conformance suite's (test_conformance_search_index.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.stores import _search_text, jsonfile
from claude_history.stores._file_index import INDEX_NAME, FileIndex
from claude_history.stores.base import Entry
from claude_history.stores.jsonfile import JsonFileStore, _name


def say(text: str, role: str = "user") -> Entry:
    return Entry({"role": role, "content": text if role == "user" else [{"type": "text", "text": text}]})


def postings(root: Path, session_id: str) -> set[tuple[str, int]]:
    if not (root / INDEX_NAME).exists():
        return set()  # no write indexed anything yet
    with contextlib.closing(sqlite3.connect(root / INDEX_NAME)) as db:
        row = db.execute("SELECT key FROM logs WHERE name = ?", (_name(session_id),)).fetchone()
        if row is None:
            return set()
        # A fork reads its bases' rows below each one's count, then its own.
        levels = db.execute("SELECT key, count FROM bases WHERE owner = ? ORDER BY level", (row[0],)).fetchall()
        found: set[tuple[str, int]] = set()
        first = 0
        for key, end in [*levels, (row[0], 1 << 62)]:
            query = "SELECT term, seq FROM postings WHERE key = ? AND seq >= ? AND seq < ?"
            rows = db.execute(query, (key, first, end))
            found.update((term, seq) for term, seq in rows)
            first = end
    return found


def spans_hold_their_messages(store: JsonFileStore, session_id: str) -> bool:
    """Every span of the session reads back, from the log's bytes, as the message stored at that position."""
    name = _name(session_id)
    messages = store.load(session_id).messages
    spans = store._index.spans(name, [m.seq for m in messages])
    data = (store.root / f"{name}.jsonl").read_bytes()
    first = jsonfile.decode_json(data[: data.index(b"\n")]) if data else {}
    if first.get("op") == "base":  # a fork's spans point into its bases' prefixes, one after the other, then its log
        bases = [
            (store.root / f"{name}.{level}.base").read_bytes()[:end] for level, (end, _) in enumerate(first["levels"])
        ]
        data = b"".join(bases) + data
    return len(spans) == len(messages) and all(
        jsonfile.decode_json(data[offset : offset + length])["message"] == messages[seq].message
        for seq, (offset, length) in spans.items()
    )


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Messages the store decodes from its logs (entries and whole lines; not the sidecars), and no load."""
    decoded: list[bytes] = []
    original = jsonfile.decode_json

    def counting(data: Any) -> Any:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if raw.startswith((b'{"message"', b'{"v"')):
            decoded.append(raw)
        return original(data)

    monkeypatch.setattr(jsonfile, "decode_json", counting)
    return decoded


def test_search_reads_only_the_messages_it_returns(tmp_path: Path, counted: list[bytes]) -> None:
    store = JsonFileStore(tmp_path / "s", fsync=False)
    for i in range(30):
        store.append(f"s{i}", [say(f"filler words {i}"), say("more filler", "assistant")] * 20, expected_version=0)
    store.append("s7", [say("the needle is here")], expected_version=1)
    store.search("warm up")  # the first search checks every log against the index (nothing to rebuild here)
    counted.clear()
    assert [(h.session_id, h.seq) for h in store.search("needle here")] == [("s7", 40)]
    assert len(counted) == 1  # one message decoded, of the 1,201 stored
    counted.clear()
    assert store.search("absent") == [] and store.search("needle filler") == []
    assert counted == []
    assert len(store.search("filler", limit=5)) == 5
    assert len(counted) == 5


def test_a_missing_stale_or_corrupt_index_is_rebuilt_by_the_next_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "s"
    store = JsonFileStore(root, fsync=False)
    store.append("a", [say("alpha one"), say("alpha two", "assistant")], expected_version=0)
    store.append("b", [say("beta alpha")], expected_version=0)
    expected = {(h.session_id, h.seq) for h in store.search("alpha")}
    assert expected == {("a", 0), ("a", 1), ("b", 0)}
    # Deleted (or never there: a store written before the index existed).
    store.close()
    (root / INDEX_NAME).unlink()
    store = JsonFileStore(root, fsync=False)
    assert {(h.session_id, h.seq) for h in store.search("alpha")} == expected
    assert postings(root, "a") == {("alpha", 0), ("one", 0), ("alpha", 1), ("two", 1)}

    # Stale: a writer's index update failed (or it crashed after writing the log).
    def failing(*args: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(FileIndex, "appended", failing)
    store.append("a", [say("alpha three")], expected_version=1)
    monkeypatch.undo()
    assert {(h.session_id, h.seq) for h in store.search("alpha")} == expected | {("a", 2)}
    assert ("three", 2) in postings(root, "a")
    # Corrupt: not a database at all.
    store.close()
    (root / INDEX_NAME).write_bytes(b"this is not an SQLite file" * 100)
    store = JsonFileStore(root, fsync=False)
    assert {(h.session_id, h.seq) for h in store.search("alpha")} == expected | {("a", 2)}
    assert spans_hold_their_messages(store, "a")


def test_a_log_changed_behind_the_index_is_scanned(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = JsonFileStore(root, fsync=False)
    store.append("a", [say("gamma words")], expected_version=0)
    store.search("gamma")
    log = root / f"{_name('a')}.jsonl"
    # A hand edit of the same size: the index's stamp no longer matches, so the log is read again.
    log.write_bytes(log.read_bytes().replace(b"gamma", b"delta"))
    assert store.search("gamma") == []
    assert [h.seq for h in store.search("delta")] == [0]


_history = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.sampled_from(["oak", "Elm", "ash", "café"]), max_size=3)),
        st.tuples(st.just("rewind"), st.integers(0, 6)),
        st.tuples(st.just("fork"), st.integers(0, 6)),
        st.tuples(st.just("summary"), st.none()),
    ),
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=_history)
def test_the_index_after_any_history_is_the_one_a_fresh_import_builds(tmp_path: Path, history: list[Any]) -> None:
    from claude_history.stores.base import Summary

    root = tmp_path / "h"
    store = JsonFileStore(root, fsync=False)
    for sid in ("s", "f", "fresh-s", "fresh-f"):
        store.delete(sid)
    for op, arg in history:
        info = store.get_session("s") if store.list_sessions(limit=10) else None
        count = info.message_count if info else 0
        if op == "append":
            text = " ".join(arg) or "…"
            store.append(
                "s", [say(text), say("and " + text, "assistant")], expected_version=info.version if info else 0
            )
        elif op == "summary" and count:
            store.save_summary("s", Summary(0, count, "so far"))
        elif op in ("rewind", "fork") and info is not None and arg <= count:
            if op == "rewind":
                store.rewind("s", to=arg)
            else:
                store.delete("f")
                store.fork("s", at=arg, new_id="f")
    for sid in ("s", "f"):
        if not any(s.id == sid for s in store.list_sessions(limit=10)):
            assert postings(root, sid) == set()
            continue
        if sid == "f" and not postings(root, sid):  # its parent was rewound below its fork point: the rows it
            store.search("oak", session_id=sid)  # shared were forgotten, for the next search to build again
        # Otherwise no search ran: what is there is what the writers kept (a fork: its parent's rows).
        kept = postings(root, sid)
        assert spans_hold_their_messages(store, sid)
        store.import_jsonl(store.export_jsonl(sid), session_id=f"fresh-{sid}")
        assert kept == postings(root, f"fresh-{sid}")
        words = {(w, m.seq) for m in store.load(sid).messages for w in _search_text.search_terms(
            _search_text.message_text(m.message))}  # fmt: skip
        assert kept == words
    store.close()


def test_a_rewind_inside_a_line_moves_the_spans_of_the_messages_it_keeps(tmp_path: Path, counted: list[bytes]) -> None:
    store = JsonFileStore(tmp_path / "s", fsync=False)
    store.append("s", [say(f"word{i} kept") for i in range(12)], expected_version=0)  # one line, "n":12
    store.rewind("s", to=5)  # that line is rewritten with "n":5: one digit less, every entry one byte earlier
    assert spans_hold_their_messages(store, "s")
    counted.clear()
    assert [h.seq for h in store.search("kept")] == [0, 1, 2, 3, 4]
    assert len(counted) == 5  # read from the index's spans, not by scanning the log again


def test_hits_come_in_the_listings_order_without_reading_the_logs_tails(tmp_path: Path) -> None:
    from claude_history.stores.base import Summary

    store = JsonFileStore(tmp_path / "s", fsync=False)
    for sid in ("a", "b", "c", "d"):
        store.append(sid, [say(f"lark in {sid}")], expected_version=0)
    store.update_session("b", title="touched: the sidecar is newer than the log")
    store.save_summary("c", Summary(0, 1, "a summary line does not move the time"))
    store.append("a", [say("lark again")], expected_version=1)
    listing = [s.id for s in store.list_sessions()]
    assert listing[:2] == ["a", "b"]
    expected = [sid for sid in listing for _ in range(2 if sid == "a" else 1)]  # "a" has two hits
    assert [h.session_id for h in store.search("lark", limit=100)] == expected
    store.rewind("d", to=1)  # a rewind is a write: d comes first
    assert store.search("lark", limit=1)[0].session_id == "d"


def test_an_index_of_another_layout_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = JsonFileStore(root, fsync=False)
    store.append("a", [say("heron")], expected_version=0)
    store.close()
    (root / INDEX_NAME).unlink()
    with contextlib.closing(sqlite3.connect(root / INDEX_NAME)) as db:  # an older layout, user_version 0
        db.execute("CREATE TABLE logs (name TEXT PRIMARY KEY, ino INTEGER, size INTEGER, mtime INTEGER)")
        db.commit()
    store = JsonFileStore(root, fsync=False)
    assert [h.seq for h in store.search("heron")] == [0]
    assert postings(root, "a") == {("heron", 0)}


def test_a_long_delete_unnames_at_once_and_its_words_leave_with_later_writes_or_compact(tmp_path: Path) -> None:
    from claude_history.stores import _file_index

    root = tmp_path / "s"
    store = JsonFileStore(root, fsync=False)
    words = [f"zebra{i} okapi{i} tapir{i}" for i in range(2 * _file_index.SWEEP_MIN)]  # more than a write erases
    store.append("long", [say(text) for text in words], expected_version=0)
    store.append("other", [say("kept words")], expected_version=0)
    assert len(store.search("okapi7")) == 1
    assert store.delete("long")
    # At once: no search finds it and nothing in the directory names it ...
    assert store.search("okapi7") == [] and store.search("zebra1") == []
    assert _name("long").encode() not in (root / INDEX_NAME).read_bytes()
    # ... but this delete erased only part of its words (its cost does not grow with the session's length).
    assert b"okapi" in (root / INDEX_NAME).read_bytes()
    store.append("other", [say("more words")], expected_version=1)  # every write erases a few more
    store.compact()  # and compact erases the rest
    assert b"okapi" not in (root / INDEX_NAME).read_bytes()
    assert [h.session_id for h in store.search("words")] == ["other", "other"]
    assert postings(root, "other") == {("kept", 0), ("words", 0), ("more", 1), ("words", 1)}


def test_writes_erase_what_deletes_left_without_compact(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = JsonFileStore(root, fsync=False)
    store.append("long", [say(f"okapi{i} zebra") for i in range(1000)], expected_version=0)
    store.delete("long")
    for version in range(20):
        store.append("other", [say(f"turn {version}")], expected_version=version)
    assert b"okapi" not in (root / INDEX_NAME).read_bytes()


def test_a_fork_shares_its_parents_rows_and_its_first_search_reads_only_its_hits(
    tmp_path: Path, counted: list[bytes]
) -> None:
    root = tmp_path / "s"
    store = JsonFileStore(root, fsync=False)
    for version in range(6):
        turn = [say(f"filler {i} heron{i % 7}") for i in range(100 * version, 100 * version + 100)]
        store.append("p", turn, expected_version=version)
    store.append("p", [say("the parent's own later words"), say("egret", "assistant")], expected_version=6)
    counted.clear()
    store.fork("p", at=300, new_id="f")  # at line boundaries: the forks hold no message themselves
    store.fork("f", at=200, new_id="ff")
    assert [line for line in counted if b'"op":"base"' not in line[:80]] == []  # no message decoded for them
    shared = {(word, i) for i in range(200) for word in _search_text.search_terms(f"filler {i} heron{i % 7}")}
    assert postings(root, "ff") == shared  # at once, before any search
    store.delete("p")  # its rows stay as the forks' (below their fork points), its later words go
    store.append("f", [say("fork's own egret")], expected_version=1)
    counted.clear()
    hits = store.search("heron3", limit=200)
    assert [(h.session_id, h.seq) for h in hits if h.session_id == "ff"] == [("ff", i) for i in range(3, 200, 7)]
    assert [(h.session_id, h.seq) for h in hits if h.session_id == "f"] == [("f", i) for i in range(3, 300, 7)]
    messages = [line for line in counted if line.startswith(b'{"message"')]
    assert len(messages) == len(hits) and len(counted) == len(hits) + 2  # the hits and the forks' base lines:
    # their rows were there (none was rebuilt)
    assert [(h.session_id, h.seq) for h in store.search("egret")] == [("f", 300)]
    assert store.search("later") == []
    assert postings(root, "ff") == shared
    store.compact()
    assert b"later" not in (root / INDEX_NAME).read_bytes()  # the deleted parent's words past the forks' points
    assert b"heron3" in (root / INDEX_NAME).read_bytes()
    store.delete("f")
    store.delete("ff")
    store.compact()
    assert b"heron" not in (root / INDEX_NAME).read_bytes()


def test_a_parent_rewound_below_a_fork_point_leaves_the_forks_search_right(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "s", fsync=False)
    store.append("p", [say(f"kite{i}") for i in range(10)], expected_version=0)
    store.append("p", [say("kite tail")], expected_version=1)
    store.fork("p", new_id="f")
    store.rewind("p", to=4)  # the lines the fork reads are rewritten in the parent's new log
    store.append("p", [say("kite new")], expected_version=3)
    assert [(h.session_id, h.seq) for h in store.search("kite", session_id="f")] == [("f", 10)]
    assert [h.seq for h in store.search("kite7")] == [7]
    assert [h.seq for h in store.search("kite", session_id="p")] == [4]
    assert spans_hold_their_messages(store, "f") and spans_hold_their_messages(store, "p")
