"""Search stays exact while its index is kept up (Redis' word sets, the file store's index file, the SQL
backends' full-text indexes): after rewind, delete, fork, import and expiry, ``search`` finds what a scan of
the stored messages finds (``_search_text``, the one matching rule), no more, no less, on every backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.stores import _search_text
from claude_history.stores._times import from_us, now_us
from claude_history.stores.base import Entry

WORDS = ["apple", "birch", "cedar", "delta", "Ember"]


def say(text: str, role: str = "user") -> Entry:
    return Entry({"role": role, "content": text if role == "user" else [{"type": "text", "text": text}]})


def found(store: Any, query: str, **filters: Any) -> set[tuple[str, int]]:
    return {(h.session_id, h.seq) for h in store.search(query, limit=1000, **filters)}


def scanned(store: Any, query: str) -> set[tuple[str, int]]:
    """What a scan of every live session finds: the rule the index must give the same answer as."""
    terms = _search_text.search_terms(query)
    hits = set()
    for info in store.list_sessions(limit=1000):
        for stored in store.load(info.id).messages:
            if _search_text.text_matches(_search_text.message_text(stored.message), terms):
                hits.add((info.id, stored.seq))
    return hits


def test_rewound_messages_leave_the_index(store: Any) -> None:
    store.append("s", [say("keep this alpha"), say("alpha beta", "assistant")], expected_version=0)
    store.append("s", [say("gamma dropped"), say("beta gamma", "assistant")], expected_version=1)
    assert found(store, "gamma") == {("s", 2), ("s", 3)}
    store.rewind("s", to=2)
    assert found(store, "gamma") == set()
    assert found(store, "beta") == {("s", 1)}
    # New messages at the rewound positions are found by their own words only.
    store.append("s", [say("omega replaces it")], expected_version=3)
    assert found(store, "omega") == {("s", 2)}
    assert found(store, "gamma") == set()
    store.rewind("s", to=0)
    assert found(store, "alpha") == found(store, "omega") == set()
    store.append("s", [say("alpha again")], expected_version=5)
    assert found(store, "alpha") == {("s", 0)}


def test_a_deleted_session_leaves_the_index_and_its_id_starts_afresh(store: Any) -> None:
    store.append("gone", [say("secret marmalade recipe")], expected_version=0)
    store.append("other", [say("marmalade for all")], expected_version=0)
    assert store.delete("gone") is True
    assert found(store, "marmalade") == {("other", 0)}
    assert found(store, "secret") == set()
    store.append("gone", [say("a new life")], expected_version=0)
    assert found(store, "secret") == set()
    assert found(store, "new life") == {("gone", 0)}
    assert found(store, "marmalade", session_id="gone") == set()


def test_a_fork_is_indexed_with_its_prefix_only_and_outlives_its_parent(store: Any) -> None:
    store.append("p", [say("shared root words"), say("shared answer", "assistant")], expected_version=0)
    store.append("p", [say("parent only tail"), say("tail answer", "assistant")], expected_version=1)
    child = store.fork("p", at=2, new_id="c")
    assert found(store, "shared") == {("p", 0), ("p", 1), (child, 0), (child, 1)}
    assert found(store, "tail") == {("p", 2), ("p", 3)}
    store.append(child, [say("child branch words")], expected_version=1)
    assert found(store, "branch") == {(child, 2)}
    store.rewind("p", to=0)
    assert found(store, "shared") == {(child, 0), (child, 1)}
    store.delete("p")
    assert found(store, "shared root") == {(child, 0)}
    assert found(store, "words") == {(child, 0), (child, 2)}
    assert found(store, "shared", session_id=child) == {(child, 0), (child, 1)}


def test_an_imported_session_is_searchable_like_its_source(store: Any) -> None:
    store.append("src", [say("imported quokka"), say("quokka reply", "assistant")], expected_version=0)
    store.append("src", [say("second quokka turn")], expected_version=1)
    copy = store.import_jsonl(store.export_jsonl("src"), session_id="copy")
    assert found(store, "quokka", session_id=copy) == {(copy, 0), (copy, 1), (copy, 2)}
    store.rewind(copy, to=1)
    assert found(store, "quokka") == {("src", 0), ("src", 1), ("src", 2), (copy, 0)}


def test_an_expired_session_is_not_found_and_its_reused_id_has_only_new_words(store: Any) -> None:
    store.append("brief", [say("ephemeral wombat")], expected_version=0)
    store.update_session("brief", expires_at=from_us(now_us()) - timedelta(seconds=1))
    assert found(store, "wombat") == set()
    store.append("brief", [say("durable words")], expected_version=0)
    assert found(store, "wombat") == set()
    assert found(store, "durable") == {("brief", 0)}


_step = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(["a", "b"]), st.lists(st.sampled_from(WORDS), max_size=3)),
    st.tuples(st.just("rewind"), st.sampled_from(["a", "b"]), st.integers(0, 4)),
    st.tuples(st.just("fork"), st.sampled_from(["a", "b"]), st.integers(0, 4)),
    st.tuples(st.just("delete"), st.sampled_from(["a", "b", "f"]), st.none()),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, min_size=1, max_size=7))
def test_search_equals_a_scan_after_any_history(store: Any, steps: list[tuple[str, str, Any]]) -> None:
    for sid in ("a", "b", "f"):
        store.delete(sid)
    for op, sid, arg in steps:
        exists = any(info.id == sid for info in store.list_sessions(limit=1000))
        version = store.get_session(sid).version if exists else 0
        count = store.get_session(sid).message_count if exists else 0
        if op == "append":
            store.append(sid, [say(" ".join(arg) or "silence")], expected_version=version)
        elif op == "rewind" and exists and arg <= count:
            store.rewind(sid, to=arg, expected_version=version)
        elif op == "fork" and exists and arg <= count:
            store.delete("f")
            store.fork(sid, at=arg, new_id="f")
        elif op == "delete":
            store.delete(sid)
        for word in WORDS:
            assert found(store, word) == scanned(store, word), (op, sid, arg, word)
        assert found(store, "apple birch") == scanned(store, "apple birch")
