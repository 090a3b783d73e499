"""Rollback and truncation beneath the encrypted wrapper (issue 13, item 8), over every backend: someone who
can write the backend but has no key puts back an older copy of a turn (from before a rewind, or from a
deleted session of the same id), or drops the last turn; every such change is refused at load, while the
wrapper's own rewinds, rotations and sessions written before chaining keep loading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history.errors import ConflictError, DecryptionError, StoreUnavailable
from claude_history.stores.base import Entry, StoredMessage
from claude_history.stores.encrypted import RESERVED_METADATA_KEY, wrap
from claude_history.stores.memory import MemoryStore

from .conftest import Backend
from .samples import turn

KEY = bytes(range(32))
KEY2 = bytes(range(1, 33))
BROKEN = r"not the one the encrypted store wrote|does not end where the encrypted store left it"


@pytest.fixture
def store(enc_backend: Backend) -> Iterator[Any]:
    opened = enc_backend.open()
    try:
        yield opened
    finally:
        opened.close()


def texts(store: Any, session_id: str = "s") -> list[str]:
    return [m.message["content"] for m in store.load(session_id).messages if m.message["role"] == "user"]


def log(store: Any, session_id: str = "s") -> list[tuple[Any, ...]]:
    return [(m.seq, m.message, m.model, m.usage) for m in store.load(session_id).messages]


def entries(rows: list[StoredMessage]) -> list[Entry]:
    return [Entry(m.message, model=m.model, usage=m.usage) for m in rows]


def test_an_older_copy_of_the_last_turn_put_back_after_a_rewind_is_refused(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    old = store.inner.load("s").messages[2:]
    store.rewind("s")
    assert texts(store) == ["question a"]
    store.append("s", turn("c"), expected_version=3)
    assert texts(store) == ["question a", "question c"]
    # Beneath the wrapper: the turn it rewound comes back in place of the one after it.
    version = store.inner.rewind("s", to=2)
    store.inner.append("s", entries(old), expected_version=version)
    with pytest.raises(DecryptionError, match=BROKEN):
        store.load("s")


def test_an_older_copy_of_one_message_put_back_is_refused(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b") + turn("b2"), expected_version=1)
    old = store.inner.load("s").messages[2:]
    store.rewind("s", to=2)
    store.append("s", turn("c") + turn("c2"), expected_version=3)
    rows = store.inner.load("s").messages
    version = store.inner.rewind("s", to=3)  # the row after "question c" becomes the old one at 3
    store.inner.append("s", entries([old[1], *rows[4:]]), expected_version=version)
    with pytest.raises(DecryptionError, match="not the one the encrypted store wrote"):
        store.load("s")


@pytest.mark.parametrize("to", [None, 2, 0])
def test_dropping_turns_beneath_the_wrapper_is_refused(store: Any, to: int | None) -> None:
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    store.append("other", turn("a"), expected_version=0)
    store.inner.rewind("s", to=to)
    with pytest.raises(DecryptionError, match="does not end where the encrypted store left it"):
        store.load("s")
    assert {hit.session_id for hit in store.search("question")} == {"other"}  # search goes on past it


def test_rows_of_a_deleted_session_of_the_same_id_are_refused(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    old = store.inner.load("s").messages
    store.delete("s")
    store.append("s", turn("z"), expected_version=0)
    version = store.inner.rewind("s", to=0)
    store.inner.append("s", entries(old), expected_version=version)
    with pytest.raises(DecryptionError, match="authentication failed"):
        store.load("s")


def test_a_forged_or_borrowed_rewind_note_is_refused(store: Any) -> None:
    store.append("donor", turn("a") + turn("b"), expected_version=0)
    store.rewind("donor", to=2)  # a genuine note, for another session
    genuine = store.inner.get_session("donor").metadata[RESERVED_METADATA_KEY]["rewind"]
    for note in ({"version": 3, "count": 2, "last": 1}, genuine):
        store.delete("s")
        store.append("s", turn("a"), expected_version=0)
        store.append("s", turn("b"), expected_version=1)
        store.inner.rewind("s", to=2)  # version 3, 2 messages, last written at 1: what the note claims
        info = store.inner.get_session("s")
        record = {**info.metadata[RESERVED_METADATA_KEY], "rewind": note}
        store.inner.update_session("s", metadata={**info.metadata, RESERVED_METADATA_KEY: record})
        with pytest.raises(DecryptionError, match="rewind note"):
            store.load("s")


def test_the_stores_own_rewinds_of_every_kind_keep_loading(store: Any) -> None:
    model = MemoryStore()
    steps: list[tuple[str, Any]] = [
        ("append", "a"),
        ("append", "b"),
        ("rewind", None),
        ("append", "c"),
        ("rewind", 3),  # inside a turn
        ("append", "d"),
        ("rewind", 0),
        ("rewind", 0),
        ("append", "e"),
        ("rewind", 2),  # to the end: a new version, nothing cut
        ("append", "f"),
    ]
    for kind, arg in steps:
        for target in (store, model):
            if kind == "append":
                version = target.get_session("s").version if target.list_sessions() else 0
                target.append("s", turn(arg), expected_version=version)
            else:
                target.rewind("s", to=arg)
        assert log(store) == log(model), (kind, arg)
        assert [m.message for m in store.load_messages("s", start=1)] == [
            m.message for m in model.load_messages("s", start=1)
        ]


def test_a_rewind_whose_cut_failed_leaves_the_session_readable(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    real = store.inner.rewind

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("connection lost before the cut")

    store.inner.rewind = down
    with pytest.raises(StoreUnavailable):
        store.rewind("s")  # its note is written, the cut is not
    store.inner.rewind = real
    assert texts(store) == ["question a", "question b"]
    store.append("s", turn("c"), expected_version=2)
    store.rewind("s")
    assert texts(store) == ["question a", "question b"]


def test_sessions_written_before_chaining_load_and_take_new_turns(store: Any) -> None:
    # Rows of format 1 (bound to id, position and role only) and a record without an epoch, as the previous
    # release wrote them.
    codec = store._ops.codec
    rows = []
    for seq, entry in enumerate(turn("old")):
        aad = json.dumps(["claude-history", 1, "message", "s", seq, entry.message["role"]], separators=(",", ":"))
        payload = json.dumps({"message": entry.message}, separators=(",", ":"))
        kid, nonce, ct = codec.seal("s", aad.encode(), payload.encode())
        block = {"type": "encrypted", "v": 1, "kid": kid, "nonce": nonce, "ct": ct}
        rows.append(Entry({"role": entry.message["role"], "content": [block]}, model=entry.model, usage=entry.usage))
    store.inner.append("s", rows, expected_version=0)
    store.inner.update_session("s", metadata={RESERVED_METADATA_KEY: {"v": 1, "kids": [codec.keys.current]}})
    assert texts(store) == ["question old"]
    store.append("s", turn("new"), expected_version=1)
    assert texts(store) == ["question old", "question new"]
    store.rewind("s")
    assert texts(store) == ["question old"]
    store.append("s", turn("newer"), expected_version=3)
    store.rewind("s", to=2)
    store.append("s", turn("newest"), expected_version=5)
    assert texts(store) == ["question old", "question newest"]
    store.append("s", turn("last"), expected_version=6)
    store.inner.rewind("s", to=4)  # a chained turn dropped beneath, after another: refused
    with pytest.raises(DecryptionError, match="does not end"):
        store.load("s")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 3)),
            st.tuples(st.just("rewind"), st.none() | st.integers(0, 12)),
            st.tuples(st.just("rotate"), st.none()),
        ),
        max_size=12,
    )
)
def test_any_history_of_the_stores_own_operations_loads_as_written(steps: list[tuple[str, Any]]) -> None:
    inner, model = MemoryStore(), MemoryStore()
    store = wrap(inner, KEY)
    for number, (kind, arg) in enumerate(steps):
        version = model.get_session("s").version if model.list_sessions() else 0
        count = len(model.load("s").messages) if version else 0
        if kind == "append":
            batch = [entry for index in range(arg) for entry in turn(f"{number}.{index}")]
            store.append("s", batch, expected_version=store.get_session("s").version if version else 0)
            model.append("s", batch, expected_version=version)  # (a rotation moves the store's version on)
        elif kind == "rewind" and version and (arg is None or arg <= count):
            if arg is None and not any(m.message["role"] == "user" for m in model.load("s").messages):
                continue
            for target in (store, model):
                target.rewind("s", to=arg)
        elif kind == "rotate" and version:
            store = wrap(inner, KEY2, old_keys=[KEY])
            store.rotate("s")
        if model.list_sessions():
            assert log(store) == log(model)


def test_two_racing_rewinds_leave_the_note_of_the_one_that_cut(enc_backend: Backend) -> None:
    # A writes its note, B writes its own over it, A cuts, B's cut loses its compare-and-swap: metadata is last
    # writer wins, so without care the note would describe B's cut, which never happened, and the session
    # would read as tampered with (and every later append would be chained wrong).
    first, second = enc_backend.open(), enc_backend.open()
    try:
        first.append("s", turn("a") + turn("b") + turn("c"), expected_version=0)
        first.append("s", turn("d"), expected_version=1)  # version 2, 8 messages
        reals = {id(store.inner): store.inner.rewind for store in (first, second)}
        done: dict[str, int] = {}

        def hooked(*args: Any, **kwargs: Any) -> Any:
            if "outer" not in done:
                done["outer"] = 1
                with pytest.raises(ConflictError):
                    second.rewind("s", to=2, expected_version=2)
                return done["first"]
            if "first" not in done:
                done["first"] = reals[id(first.inner)]("s", to=4, expected_version=2)
            return reals[id(second.inner)](*args, **kwargs)

        for store in (first, second):
            store.inner.rewind = hooked
        assert first.rewind("s", to=4, expected_version=2) == 3
        for store in (first, second):
            store.inner.rewind = reals[id(store.inner)]
        assert texts(first) == ["question a", "question b"]
        first.append("s", turn("e"), expected_version=3)
        assert texts(second) == ["question a", "question b", "question e"]
    finally:
        first.close()
        second.close()


def _put_back_an_older_turn(store: Any) -> None:
    """Turns a, b; the wrapper rewinds b; turn c; beneath the wrapper b's old rows replace c's, then a turn d is
    appended beneath too (so neither the count nor the end alone gives it away): rows 0-1 a, 2-3 old b, 4-5 d."""
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    old = store.inner.load("s").messages[2:]
    store.rewind("s")
    store.append("s", turn("c"), expected_version=3)
    store.append("s", turn("d"), expected_version=4)
    rows = store.inner.load("s").messages
    version = store.inner.rewind("s", to=2)
    store.inner.append("s", entries(old + rows[4:]), expected_version=version)


@pytest.mark.parametrize("start, stop", [(0, 2), (0, 1), (1, None), (2, 4), (3, 4), (4, None), (5, 6), (6, None)])
def test_ranged_reads_refuse_what_whole_loads_refuse(store: Any, start: int, stop: int | None) -> None:
    # load_messages (the CLI's and the service's paged reads) checked the links only inside the range: an older
    # turn put back, or turns dropped, beneath the wrapper read silently through any range that did not cross
    # the change. Each range is now tied to the log at both edges and to where the wrapper left its end.
    _put_back_an_older_turn(store)
    with pytest.raises(DecryptionError, match=BROKEN):
        store.load("s")
    with pytest.raises(DecryptionError, match=BROKEN):
        store.load_messages("s", start=start, stop=stop)


@pytest.mark.parametrize("start, stop", [(0, 2), (1, 3), (2, None), (4, None)])
def test_ranged_reads_refuse_a_dropped_last_turn(store: Any, start: int, stop: int | None) -> None:
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    store.append("s", turn("c"), expected_version=2)
    store.inner.rewind("s", to=4)
    with pytest.raises(DecryptionError, match="does not end where the encrypted store left it"):
        store.load_messages("s", start=start, stop=stop)


def test_ranged_reads_of_a_sound_log_cost_at_most_two_more_rows(store: Any) -> None:
    for n in range(5):
        store.append("s", turn(str(n)), expected_version=n)
    store.rewind("s", to=6)  # the log's end is explained by the wrapper's note
    read: list[int] = []
    real = store.inner.load_messages

    def counting(*args: Any, **kwargs: Any) -> Any:
        rows = real(*args, **kwargs)
        read.append(len(rows))
        return rows

    store.inner.load_messages = counting
    whole = [m.message for m in store.load("s").messages]
    for start, stop in [(0, 6), (0, 2), (2, 4), (5, None), (6, None), (9, None), (3, 3)]:
        read.clear()
        got = [m.message for m in store.load_messages("s", start=start, stop=stop)]
        assert got == whole[start:stop]
        assert sum(read) <= len(got) + 2, (start, stop, read)


def test_a_rewind_to_an_index_does_not_vouch_for_a_turn_put_back_beneath(store: Any) -> None:
    # The rewind read only the row it kept last and sealed a note naming it: a note that made an older turn
    # put back beneath the wrapper load as if the store had written it.
    _put_back_an_older_turn(store)
    for to in (6, 4, 3, 2, None):  # each keeps or cuts rows of a log that no longer chains: refused
        with pytest.raises(DecryptionError, match=BROKEN):
            store.rewind("s", to=to)
        with pytest.raises(DecryptionError, match=BROKEN):
            store.load("s")
    store.rewind("s", to=0)  # keeps nothing: the way back to a session the store vouches for
    assert store.load("s").messages == []
