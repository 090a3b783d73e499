"""Encryption at rest (stores/encrypted/): what users rely on beyond the conformance suite, which runs every
store behaviour over the encrypted variants too. Here: keys, what reaches the backend, wrong keys, tampering,
rotation (including a crash at every step of it), fork/search/export semantics under encryption."""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import (
    ConfigurationError,
    ConflictError,
    DecryptionError,
    HistoryError,
    InvalidHistory,
    SessionNotFound,
)
from claude_history.stores import open_store
from claude_history.stores.base import Entry, SessionData, Summary
from claude_history.stores.encrypted import (
    BACKUP_PREFIX,
    BLOCK_TYPE,
    ENV_VAR,
    OLD_KEYS_ENV_VAR,
    RESERVED_METADATA_KEY,
    EncryptedStore,
    _rotation,
    generate_key,
    key_id,
    parse_key,
    wrap,
    wrap_async,
)
from claude_history.stores.memory import MemoryStore
from claude_history.stores.threaded import ThreadedAsyncStore

KEY1 = bytes(range(32))
KEY2 = bytes(range(100, 132))
SECRET = "zebracorn"  # a word that must never reach the backend in clear


def turn(user: str, reply: str) -> list[Entry]:
    return [
        Entry({"role": "user", "content": user}),
        Entry(
            {"role": "assistant", "content": [{"type": "text", "text": reply}]},
            model="claude-sonnet-4-6",
            usage={"input_tokens": 12, "output_tokens": 7},
        ),
    ]


TOOL_TURN = [
    Entry({"role": "user", "content": f"what is the weather in {SECRET} town?"}),
    Entry(
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": f"call the tool for {SECRET}", "signature": "c2lnbmF0dXJl"},
                {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": SECRET}},
            ],
        },
        model="claude-sonnet-4-6",
    ),
    Entry(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": f"sunny in {SECRET}"}],
        }
    ),
    Entry({"role": "assistant", "content": [{"type": "text", "text": f"It is sunny in {SECRET} town."}]}),
]


@pytest.fixture(params=["memory", "sqlite"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    store = MemoryStore() if request.param == "memory" else open_store(f"sqlite:///{tmp_path / 'h.db'}")
    yield store
    store.close()


def fill(store: Any, session_id: str = "s1", turns: int = 3) -> SessionData:
    version = 0
    for i in range(turns):
        version = store.append(
            session_id, turn(f"question {i} {SECRET}", f"answer {i} {SECRET}"), expected_version=version
        )
    return store.load(session_id)


# ------------------------------------------------------------------------------------------------------------
# Keys


def test_key_formats_parse_to_the_same_key() -> None:
    raw = bytes(range(32))
    forms = [
        raw,
        bytearray(raw),
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "  " + base64.b64encode(raw).decode() + "\n",
        base64.b64encode(raw),
    ]
    assert {parse_key(form) for form in forms} == {raw}
    assert len({key_id(form) for form in forms}) == 1


@pytest.mark.parametrize("bad", [b"short", "correct horse battery staple", "", "00" * 31, b"\xff" * 33, 42])
def test_bad_keys_are_refused_with_a_hint(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"32 (raw )?bytes|bytes or a string"):
        wrap(MemoryStore(), bad)


def test_generated_keys_are_random_and_valid() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    assert len(parse_key(first)) == 32
    assert key_id(first) != key_id(second)
    assert len(key_id(first)) == 12


def test_key_id_does_not_reveal_the_key() -> None:
    kid = key_id(KEY1)
    assert kid not in KEY1.hex() and kid not in base64.b64encode(KEY1).decode()


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    base = MemoryStore()
    monkeypatch.setenv(ENV_VAR, base64.b64encode(KEY1).decode())
    wrap(base).append("s", turn("hi", "hello"), expected_version=0)
    monkeypatch.setenv(ENV_VAR, KEY2.hex())
    monkeypatch.setenv(OLD_KEYS_ENV_VAR, f" {KEY1.hex()} ,")
    assert wrap(base).load("s").messages[0].message["content"] == "hi"
    monkeypatch.delenv(OLD_KEYS_ENV_VAR)
    with pytest.raises(DecryptionError):
        wrap(base).load("s")
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ConfigurationError, match=ENV_VAR):
        wrap(base)


def test_open_store_encryption_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with open_store(url, encryption_key=KEY1.hex()) as store:
        assert isinstance(store, EncryptedStore)
        store.append("s", turn(SECRET, "ok"), expected_version=0)
    with open_store(url) as plain:
        assert SECRET not in json.dumps(plain.load("s").message_params())


# ------------------------------------------------------------------------------------------------------------
# Round trip and what reaches the backend

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda t: t.strip() != ""
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _text),
    st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, _text, _text),
    st.builds(
        lambda i, v: {"type": "tool_use", "id": "toolu_" + i, "name": "f", "input": {"v": v}},
        st.text("abc123", min_size=1, max_size=6),
        _json,
    ),
    st.builds(lambda d: {"type": "redacted_thinking", "data": d}, _text),
)
_message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["user", "assistant"]),
    _text | st.lists(_block, min_size=1, max_size=4),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(_message, min_size=1, max_size=6), usage=st.none() | st.just({"input_tokens": 5}))
def test_round_trip_is_exact(inner: Any, messages: list[dict[str, Any]], usage: Any) -> None:
    store = wrap(inner, KEY1)
    sid = f"rt-{len(inner.list_sessions(limit=1000))}"
    entries = [Entry(m, model="claude-x", usage=usage) for m in messages]
    store.append(sid, entries, expected_version=0)
    loaded = store.load(sid)
    # Byte-exact, key order included: what is stored is what was given.
    assert [json.dumps(m.message) for m in loaded.messages] == [json.dumps(m) for m in messages]
    assert [(m.model, m.usage) for m in loaded.messages] == [("claude-x", usage)] * len(messages)
    raw = inner.load(sid)
    assert all(m.message["content"][0]["type"] == BLOCK_TYPE for m in raw.messages)
    assert [m.role for m in raw.messages] == [m["role"] for m in messages]  # roles stay queryable
    assert [m.created_at for m in raw.messages] == [m.created_at for m in loaded.messages]


def test_backend_sees_no_plaintext(inner: Any) -> None:
    store = wrap(inner, KEY1, encrypt_titles=True)
    for entry in TOOL_TURN:
        assert SECRET in json.dumps(entry.message)
    store.append("s1", TOOL_TURN, expected_version=0)
    store.update_session("s1", title=f"about {SECRET}", system=f"you know {SECRET}", owner="ann", tags=["t"])
    store.save_summary("s1", Summary(0, 4, f"talked about {SECRET}", model="claude-haiku-4-5"))
    raw = inner.load("s1")
    dumped = json.dumps([m.message for m in raw.messages]) + repr(raw.info) + repr(raw.summaries)
    assert SECRET not in dumped
    assert inner.search(SECRET) == []  # nothing reached the backend's full-text index
    assert inner.search("sunny") == []
    assert raw.info.owner == "ann" and raw.info.tags == ("t",)  # listing fields stay in clear
    assert [h.seq for h in store.search(SECRET)] == [0, 2, 3]
    assert store.get_session("s1").title == f"about {SECRET}"
    assert store.load("s1").summaries[0].text == f"talked about {SECRET}"


def test_sqlite_file_holds_no_plaintext(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.db'}", encryption_key=KEY1)
    store.append("s1", TOOL_TURN, expected_version=0)
    store.update_session("s1", system=f"system {SECRET}")
    store.save_summary("s1", Summary(0, 4, f"summary {SECRET}"))
    store.fork("s1", at=2, new_id="s2")
    assert store.search(SECRET, session_id="s2")
    files = list(tmp_path.iterdir())
    assert any(f.name == "h.db" for f in files)
    for path in files:  # the database, its WAL and shared memory
        assert SECRET.encode() not in path.read_bytes(), path.name
    store.close()
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_a_10_mb_image_round_trips(tmp_path: Path) -> None:
    data = base64.b64encode(bytes(range(256)) * (7_500_000 // 256 + 1)).decode()
    assert len(data) >= 10_000_000
    message = {
        "role": "user",
        "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
            {"type": "text", "text": "what is this?"},
        ],
    }
    with open_store(f"sqlite:///{tmp_path / 'h.db'}", encryption_key=KEY1) as store:
        store.append("img", [Entry(message)], expected_version=0)
        assert store.load("img").messages[0].message == message


def test_titles_stay_in_clear_by_default_and_listing_filters_work(inner: Any) -> None:
    store = wrap(inner, KEY1)
    store.append("a", turn("q", "r"), expected_version=0)
    store.append("b", turn("q", "r"), expected_version=0)
    store.update_session("a", title="Plans", owner="ann", tags=["work"], metadata={"n": 1})
    store.update_session("b", title="Other", owner="bob", tags=["home"])
    assert inner.get_session("a").title == "Plans"
    assert [s.id for s in store.list_sessions(owner="ann")] == ["a"]
    assert [s.id for s in store.list_sessions(tag="home")] == ["b"]
    assert {s.id for s in store.list_sessions()} == {"a", "b"}
    listed = store.list_sessions(owner="ann")[0]
    assert listed.metadata == {"n": 1}  # the encryption record is not shown
    assert RESERVED_METADATA_KEY in inner.get_session("a").metadata
    assert listed.message_count == 2 and listed.version == 1


def test_encrypted_titles_are_hidden_from_the_backend(inner: Any) -> None:
    store = wrap(inner, KEY1, encrypt_titles=True)
    store.update_session("a", title="Secret plans", create=True)
    assert "Secret" not in (inner.get_session("a").title or "")
    assert store.list_sessions()[0].title == "Secret plans"
    # Readable by a wrapper that does not itself encrypt titles.
    assert wrap(inner, KEY1).get_session("a").title == "Secret plans"


def _write_legacy_empty_summary(inner: Any, session_id: str, text: str) -> None:
    """A summary of no messages, as older stores accepted (legacy data), written into the storage itself:
    every store refuses one now."""
    if isinstance(inner, MemoryStore):
        inner._sessions[session_id].summaries.append(Summary(0, 0, text, created_at=datetime.now(timezone.utc)))
        return
    inner._conn().execute(
        'INSERT INTO summaries (session_pk, start, "end", text, model, usage, created_at)'
        " SELECT pk, 0, 0, ?, NULL, NULL, 0 FROM sessions WHERE id = ?",
        (text, session_id),
    )


def test_summary_of_no_messages_is_refused_and_never_blocks_rotation_silently(inner: Any) -> None:
    store = wrap(inner, KEY1, allow_plaintext=True)
    fill(store, "s1", turns=1)
    with pytest.raises(ConfigurationError, match="empty"):
        store.save_summary("s1", Summary(1, 1, "nothing"))
    with pytest.raises(ConfigurationError, match="empty"):
        inner.save_summary("s1", Summary(0, 0, "written around the wrapper"))  # the plain store refuses it too
    _write_legacy_empty_summary(inner, "s1", "written around the wrapper")
    assert [(s.start, s.end) for s in inner.load("s1").summaries] == [(0, 0)]
    with pytest.raises(HistoryError, match=r"\[0, 0\)"):
        wrap(inner, KEY2, old_keys=[KEY1], allow_plaintext=True).rotate("s1")
    assert len(store.load("s1").messages) == 2  # untouched


def test_reserved_metadata_key_cannot_be_set(inner: Any) -> None:
    store = wrap(inner, KEY1)
    with pytest.raises(ConfigurationError, match="reserved"):
        store.update_session("a", metadata={RESERVED_METADATA_KEY: {}}, create=True)
    store.update_session("a", metadata={"x": 1}, create=True)
    store.update_session("a", metadata={"y": 2})
    assert store.get_session("a").metadata == {"y": 2}
    assert key_id(KEY1) in inner.get_session("a").metadata[RESERVED_METADATA_KEY]["kids"]


def test_invalid_input_is_refused_before_anything_is_written(inner: Any) -> None:
    store = wrap(inner, KEY1)
    with pytest.raises(InvalidHistory):
        store.append("s", [Entry({"role": "system", "content": "x"})], expected_version=0)
    with pytest.raises(ConfigurationError):
        store.append("s", [], expected_version=0)
    with pytest.raises(SessionNotFound):
        inner.get_session("s")


# ------------------------------------------------------------------------------------------------------------
# Wrong keys and tampering


def test_wrong_key_is_a_clear_error_and_writes_nothing(inner: Any) -> None:
    right = wrap(inner, KEY1)
    fill(right)
    right.update_session("s1", system="be brief")
    before = inner.export_jsonl("s1")
    wrong = wrap(inner, KEY2)
    with pytest.raises(DecryptionError, match=key_id(KEY1)) as caught:
        wrong.load("s1")
    assert "old_keys" in str(caught.value)
    with pytest.raises(DecryptionError, match="Nothing was written"):
        wrong.append("s1", turn("more", "text"), expected_version=3)
    with pytest.raises(DecryptionError):
        wrong.update_session("s1", system="overwrite")
    with pytest.raises(DecryptionError):
        wrong.save_summary("s1", Summary(0, 2, "x"))
    with pytest.raises(DecryptionError):
        wrong.rewind("s1")
    with pytest.raises(DecryptionError):
        wrong.rotate("s1")
    with pytest.raises(DecryptionError):
        wrong.fork("s1")
    assert inner.export_jsonl("s1") == before
    assert len(inner.list_sessions()) == 1
    assert right.load("s1").messages[-1].message["content"][0]["text"] == f"answer 2 {SECRET}"


def _raw_lines(inner: Any, sid: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in inner.export_jsonl(sid).splitlines()]


def _reimport(inner: Any, lines: list[dict[str, Any]], sid: str) -> None:
    """Rewrite a session beneath the wrapper, keeping its incarnation as a restore in the database itself
    would: an import is otherwise another session, to which no row an append wrote belongs, so every row
    would fail and the test would show nothing."""
    incarnation = inner.get_session(sid).incarnation
    inner.delete(sid)
    inner.import_jsonl("\n".join(json.dumps(line) for line in lines), session_id=sid)
    if isinstance(inner, MemoryStore):
        session = inner._sessions[sid]
        session.info = dataclasses.replace(session.info, incarnation=incarnation)
    else:
        raw = sqlite3.connect(inner.path)
        try:
            raw.execute("UPDATE sessions SET incarnation = ? WHERE id = ?", (incarnation, sid))
            raw.commit()
        finally:
            raw.close()


def _flip(text: str) -> str:
    data = bytearray(base64.b64decode(text))
    data[len(data) // 2] ^= 1
    return base64.b64encode(bytes(data)).decode()


@pytest.mark.parametrize(
    "tamper",
    ["ciphertext", "nonce", "swap_rows", "role", "other_session", "summary_range", "system_other_session"],
)
def test_tampering_is_detected(inner: Any, tamper: str) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1")
    fill(store, "s2")
    store.save_summary("s1", Summary(0, 2, "first turn"))
    store.update_session("s1", system="sys one")
    lines = _raw_lines(inner, "s1")
    target = "s1"
    block = lines[1]["message"]["content"][0]
    if tamper == "ciphertext":
        block["ct"] = _flip(block["ct"])
    elif tamper == "nonce":
        block["nonce"] = _flip(block["nonce"])
    elif tamper == "swap_rows":  # two user messages trade places
        lines[1]["message"], lines[3]["message"] = lines[3]["message"], lines[1]["message"]
    elif tamper == "role":
        lines[1]["message"]["role"] = "assistant"
    elif tamper == "other_session":  # s1's rows planted as s2
        target = "s2"
    elif tamper == "summary_range":
        lines[0]["summaries"][0]["end"] = 4
    elif tamper == "system_other_session":
        other = _raw_lines(inner, "s2")
        store.update_session("s2", system="sys two")
        other[0]["system"] = lines[0]["system"]
        lines = other
        target = "s2"
    _reimport(inner, lines, target)
    with pytest.raises(DecryptionError, match=r"authentication failed|modified"):
        store.load(target)


def test_planted_plaintext_is_refused_unless_allowed(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1", turns=1)
    lines = _raw_lines(inner, "s1")
    lines[1]["message"] = {"role": "user", "content": "planted"}
    _reimport(inner, lines, "s1")
    with pytest.raises(DecryptionError, match="not encrypted"):
        store.load("s1")
    assert wrap(inner, KEY1, allow_plaintext=True).load("s1").messages[0].message["content"] == "planted"


def test_importing_a_raw_encrypted_export_is_refused(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1", turns=1)
    with pytest.raises(ConfigurationError, match="still encrypted"):
        store.import_jsonl(inner.export_jsonl("s1"), session_id="copy")


# ------------------------------------------------------------------------------------------------------------
# Store operations under encryption


def test_conflict_carries_plaintext_entries(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, turns=1)
    entries = turn(f"late {SECRET}", "reply")
    with pytest.raises(ConflictError) as caught:
        store.append("s1", entries, expected_version=0)
    assert caught.value.unsaved == entries
    assert caught.value.actual_version == 1


def test_fork_reencrypts_for_the_new_session(inner: Any) -> None:
    store = wrap(inner, KEY1)
    original = fill(store, "s1", turns=3)
    store.save_summary("s1", Summary(0, 2, "first"))
    store.save_summary("s1", Summary(0, 6, "all"))
    store.update_session("s1", system="sys", title="t", tags=["x"])
    new_id = store.fork("s1", at=4, new_id="f1")
    assert new_id == "f1"
    forked = store.load("f1")
    assert forked.message_params() == original.message_params()[:4]
    assert [m.created_at for m in forked.messages] == [m.created_at for m in original.messages[:4]]
    assert [s.text for s in forked.summaries] == ["first"]
    assert forked.version == 1 and forked.info.system == "sys" and forked.info.title == "t"
    raw_src, raw_fork = inner.load("s1"), inner.load("f1")
    assert all(a.message != b.message for a, b in zip(raw_src.messages, raw_fork.messages, strict=False))
    # The fork continues independently under its own key.
    store.append("f1", turn("branch", "ok"), expected_version=1)
    assert len(store.load("f1").messages) == 6 and len(store.load("s1").messages) == 6
    with pytest.raises(ConflictError):
        store.fork("s1", new_id="f1")


def test_rewind_finds_the_turn_start_inside_encrypted_messages(inner: Any) -> None:
    store = wrap(inner, KEY1)
    version = store.append("s", turn("first", "one"), expected_version=0)
    version = store.append("s", TOOL_TURN, expected_version=version)
    # The last turn starts at index 2; the tool_result user message at 4 is not a turn start.
    version = store.rewind("s")
    assert store.load("s").messages[0].message["content"] == "first"
    assert len(store.load("s").messages) == 2
    assert store.rewind("s", to=1, expected_version=version) == version + 1
    with pytest.raises(ConflictError):
        store.rewind("s", expected_version=version)


def test_search_decrypts_and_scans(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1", turns=2)
    store.append("s2", turn("nothing here", f"Only {SECRET.upper()} here"), expected_version=0)
    hits = store.search(f"{SECRET} answer")
    assert [(h.session_id, h.seq, h.role) for h in hits] == [("s1", 1, "assistant"), ("s1", 3, "assistant")]
    assert SECRET in hits[0].snippet
    assert [h.session_id for h in store.search(SECRET, session_id="s2")] == ["s2"]
    assert len(store.search(SECRET, limit=2)) == 2
    assert store.search(SECRET, session_id="missing") == []
    assert store.search("   ") == []
    store.delete("s1")
    assert {h.session_id for h in store.search(SECRET)} == {"s2"}


def test_search_by_owner_decrypts_only_that_owners_sessions(inner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner stays in clear, so the backend lists that owner's sessions and only those are read."""
    store = wrap(inner, KEY1)
    for sid, owner in (("a1", "ann"), ("b1", "bob"), ("a2", "ann"), ("n1", None)):
        fill(store, sid, turns=1)
        store.update_session(sid, owner=owner)
    loaded: list[str] = []
    real_load = inner.load

    def counting_load(session_id: str) -> Any:
        loaded.append(session_id)
        return real_load(session_id)

    monkeypatch.setattr(inner, "load", counting_load)
    assert {h.session_id for h in store.search(SECRET, owner="ann")} == {"a1", "a2"}
    assert sorted(set(loaded)) == ["a1", "a2"]
    loaded.clear()
    assert store.search(SECRET, owner="ann", session_id="b1") == []
    assert [h.session_id for h in store.search(SECRET, owner="ann", limit=1)] == ["a2"]  # most recent first
    assert store.search(SECRET, owner="carol") == []


def test_export_is_plaintext_and_import_encrypts(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1", turns=2)
    store.update_session("s1", system="sys", metadata={"k": "v"})
    exported = store.export_jsonl("s1")
    assert SECRET in exported and RESERVED_METADATA_KEY not in exported
    # Into a plain store and back into an encrypted one, under another key.
    plain = MemoryStore()
    plain.import_jsonl(exported, session_id="p")
    assert plain.load("p").message_params() == store.load("s1").message_params()
    other = wrap(MemoryStore(), KEY2)
    assert other.import_jsonl(exported, session_id="e") == "e"
    assert other.load("e").message_params() == store.load("s1").message_params()
    assert other.get_session("e").metadata == {"k": "v"}
    assert SECRET not in other.inner.export_jsonl("e")  # type: ignore[attr-defined]
    # The guides' plain list of messages.
    guides = json.dumps([{"role": "user", "content": SECRET}, {"role": "assistant", "content": "hi"}])
    sid = store.import_jsonl(guides)
    assert store.load(sid).messages[0].message["content"] == SECRET
    assert SECRET not in inner.export_jsonl(sid)


def test_delete_leaves_no_trace(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1")
    assert store.delete("s1") is True
    assert store.delete("s1") is False
    assert inner.list_sessions() == [] and store.search(SECRET) == []


async def test_async_wrapper_round_trip_and_rotation() -> None:
    base = MemoryStore()
    async with wrap_async(ThreadedAsyncStore(base), KEY1) as store:
        version = await store.append("a", TOOL_TURN, expected_version=0)
        await store.update_session("a", system="sys", title="t")
        await store.save_summary("a", Summary(0, 4, "sum"))
        loaded = await store.load("a")
        assert loaded.message_params() == [e.message for e in TOOL_TURN]
        assert [h.seq for h in await store.search(SECRET)] == [0, 2, 3]
        assert (await store.rewind("a")) == version + 1
        assert (await store.load("a")).summaries == []  # the summary covered the dropped turn
        await store.append("a", TOOL_TURN, expected_version=version + 1)
        await store.save_summary("a", Summary(0, 4, "sum"))
    rotated = wrap_async(ThreadedAsyncStore(base), KEY2, old_keys=[KEY1])
    report = await rotated.rotate()
    assert report.rotated == ("a",)
    only_new = wrap(base, KEY2)
    assert only_new.load("a").message_params() == [e.message for e in TOOL_TURN]
    assert only_new.load("a").summaries[0].text == "sum"
    await rotated.aclose()


# ------------------------------------------------------------------------------------------------------------
# Rotation


def _snapshot(store: Any, sid: str) -> tuple[Any, ...]:
    data = store.load(sid)
    return (
        [(m.seq, m.message, m.model, m.usage, m.created_at) for m in data.messages],
        [(s.start, s.end, s.text, s.model) for s in data.summaries],
        data.info.system,
        data.info.title,
        data.info.owner,
        data.info.tags,
        data.info.metadata,
    )


def _prepare_rotation(inner: Any, encrypt_titles: bool = False) -> tuple[dict[str, Any], EncryptedStore]:
    old = wrap(inner, KEY1, encrypt_titles=encrypt_titles)
    fill(old, "s1", turns=3)
    old.append("s1", TOOL_TURN, expected_version=3)
    old.save_summary("s1", Summary(0, 4, f"sum {SECRET}", model="claude-haiku-4-5"))
    old.update_session("s1", system=[{"type": "text", "text": "sys"}], title="t", owner="ann", metadata={"m": 1})
    fill(old, "s2", turns=1)
    old.update_session("empty", system="only a system prompt", create=True)
    snapshots = {sid: _snapshot(old, sid) for sid in ("s1", "s2", "empty")}
    return snapshots, wrap(inner, KEY2, old_keys=[KEY1], encrypt_titles=encrypt_titles)


def test_rotation_reencrypts_without_loss(inner: Any) -> None:
    snapshots, both = _prepare_rotation(inner, encrypt_titles=True)
    # Before rotation: readable with the old key among old_keys; new writes use the new key.
    assert {sid: _snapshot(both, sid) for sid in snapshots} == snapshots
    with pytest.raises(DecryptionError, match=key_id(KEY1)):
        wrap(inner, KEY2).load("s1")
    version_before = inner.get_session("s1").version
    report = both.rotate()
    assert set(report.rotated) == {"s1", "s2", "empty"} and report.unchanged == 0
    only_new = wrap(inner, KEY2, encrypt_titles=True)
    assert {sid: _snapshot(only_new, sid) for sid in snapshots} == snapshots
    assert inner.get_session("s1").version == version_before + 2  # rewind + re-append: CAS path, new version
    assert all(not s.id.startswith(BACKUP_PREFIX) for s in inner.list_sessions())
    with pytest.raises(DecryptionError):
        wrap(inner, KEY1).load("s1")
    assert both.rotate() == type(report)(unchanged=3)  # idempotent
    only_new.append("s1", turn("after", "rotation"), expected_version=version_before + 2)
    assert SECRET not in json.dumps([m.message for m in inner.load("s1").messages])


def test_rotation_of_one_session_and_mixed_key_sessions(inner: Any) -> None:
    old = wrap(inner, KEY1)
    fill(old, "s1", turns=1)
    fill(old, "s2", turns=1)
    both = wrap(inner, KEY2, old_keys=[KEY1])
    both.append("s1", turn("under", "new key"), expected_version=1)  # s1 now holds both keys
    assert set(inner.get_session("s1").metadata[RESERVED_METADATA_KEY]["kids"]) == {
        key_id(KEY1),
        key_id(KEY2),
    }
    with pytest.raises(DecryptionError, match="Nothing was written"):
        old.append("s1", turn("x", "y"), expected_version=2)  # the old key alone cannot read s1 any more
    assert both.rotate("s1").rotated == ("s1",)
    assert len(wrap(inner, KEY2).load("s1").messages) == 4
    with pytest.raises(DecryptionError):
        wrap(inner, KEY2).load("s2")


def test_rotation_needs_the_old_key_and_changes_nothing_without_it(inner: Any) -> None:
    fill(wrap(inner, KEY1), "s1")
    before = inner.export_jsonl("s1")
    with pytest.raises(DecryptionError):
        wrap(inner, KEY2).rotate()
    assert inner.export_jsonl("s1") == before
    assert [s.id for s in inner.list_sessions()] == ["s1"]


def test_rotation_encrypts_legacy_plaintext(inner: Any) -> None:
    inner.append("legacy", turn(f"plain {SECRET}", "text"), expected_version=0)
    inner.update_session("legacy", system=f"sys {SECRET}", title="kept")
    with pytest.raises(DecryptionError, match="allow_plaintext"):
        wrap(inner, KEY1).load("legacy")
    migrating = wrap(inner, KEY1, allow_plaintext=True)
    expected = _snapshot(migrating, "legacy")
    assert migrating.rotate().rotated == ("legacy",)
    assert _snapshot(wrap(inner, KEY1), "legacy") == expected
    assert SECRET not in inner.export_jsonl("legacy")
    assert inner.get_session("legacy").title == "kept"


class Crash(Exception):
    """Stands for the process dying at this point."""


class CrashingStore:
    """Proxies a store and raises ``Crash`` instead of performing the N-th call."""

    def __init__(self, inner: Any, crash_at: int) -> None:
        self._inner = inner
        self.crash_at = crash_at
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.crash_at:
                raise Crash(name)
            return method(*args, **kwargs)

        return call


def test_interrupted_rotation_loses_nothing_at_any_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash before each backend call of a rotation in turn; after every crash the data reads back whole,
    other writers are held off, and the next rotate() finishes the job."""
    counter = CrashingStore(MemoryStore(), crash_at=0)
    snapshots, _ = _prepare_rotation(counter._inner)
    wrap(counter, KEY2, old_keys=[KEY1]).rotate()
    total = counter.calls
    assert total > 10
    for crash_at in range(1, total + 1):
        base = MemoryStore()
        snapshots, _ = _prepare_rotation(base)
        crashing = CrashingStore(base, crash_at)
        with pytest.raises(Crash):
            wrap(crashing, KEY2, old_keys=[KEY1]).rotate()
        reader = wrap(base, KEY2, old_keys=[KEY1])
        assert {sid: _snapshot(reader, sid) for sid in snapshots} == snapshots, f"crash at call {crash_at}"
        assert {s.id for s in reader.list_sessions()} == set(snapshots)
        data = reader.load("s1")
        try:
            reader.append("s1", turn("during", "crash"), expected_version=data.version)
        except ConflictError as exc:  # held off while a rotation is unfinished
            assert "re-encrypted" in str(exc) and exc.unsaved[0].message["content"] == "during"
            appended = False
        else:
            appended = True
        try:
            reader.rotate()
        except HistoryError as exc:
            # Died between writing a backup and marking the session: indistinguishable from a rotation still
            # running elsewhere, so it is refused until the backup is stale. Then it goes through.
            assert "seems to be running" in str(exc)
            monkeypatch.setattr(_rotation, "STALE_BACKUP_AFTER", timedelta(0))
            reader.rotate()
            monkeypatch.undo()
        only_new = wrap(base, KEY2)
        final = {sid: _snapshot(only_new, sid) for sid in snapshots}
        if appended:
            assert final["s1"][0][:-2] == snapshots["s1"][0]
            final["s1"] = (final["s1"][0][:-2], *final["s1"][1:])
        assert final == snapshots, f"crash at call {crash_at}"
        assert not [s.id for s in base.list_sessions() if s.id.startswith(BACKUP_PREFIX)], crash_at


def test_rotation_refuses_while_another_seems_to_run_and_retries_a_stale_backup(inner: Any) -> None:
    snapshots, both = _prepare_rotation(inner)
    # Calls of a rotation: load, import the backup, mark the session, ... Crash before marking it.
    crashing = CrashingStore(inner, crash_at=3)
    with pytest.raises(Crash, match="update_session"):
        wrap(crashing, KEY2, old_keys=[KEY1]).rotate("s1")
    backups = [s for s in inner.list_sessions() if s.id.startswith(BACKUP_PREFIX)]
    assert len(backups) == 1
    with pytest.raises(ConflictError, match="another rotation"):
        both.rotate("s1")
    assert _snapshot(both, "s1") == snapshots["s1"]
    # Much later, the leftover backup is recognised as stale and replaced.
    original = _rotation.STALE_BACKUP_AFTER
    _rotation.STALE_BACKUP_AFTER = timedelta(0)
    try:
        assert both.rotate("s1").rotated == ("s1",)
    finally:
        _rotation.STALE_BACKUP_AFTER = original
    assert _snapshot(wrap(inner, KEY2), "s1") == snapshots["s1"]


def test_delete_during_an_unfinished_rotation_removes_the_backup(inner: Any) -> None:
    _prepare_rotation(inner)
    crashing = CrashingStore(inner, crash_at=7)  # after the rewind and re-append, before the summaries
    with pytest.raises(Crash, match="save_summary"):
        wrap(crashing, KEY2, old_keys=[KEY1]).rotate("s1")
    store = wrap(inner, KEY2, old_keys=[KEY1])
    assert store.delete("s1") is True
    assert {s.id for s in inner.list_sessions()} == {"s2", "empty"}


def test_expired_sessions_and_timestamps_survive_encryption(inner: Any) -> None:
    store = wrap(inner, KEY1)
    fill(store, "s1", turns=1)
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    store.update_session("s1", expires_at=past)
    assert store.list_sessions() == []
    assert store.purge_expired() in (0, 1)
    with pytest.raises(SessionNotFound):
        store.load("s1")


def test_backend_errors_pass_through(inner: Any) -> None:
    store = wrap(inner, KEY1)
    with pytest.raises(SessionNotFound):
        store.load("nope")
    with pytest.raises(SessionNotFound):
        store.update_session("nope", title="x")
    with pytest.raises(ConfigurationError):
        store.append("", turn("a", "b"), expected_version=0)
    assert isinstance(DecryptionError("x"), HistoryError)


# ------------------------------------------------------------------------------------------------------------
# Property: under any sequence of operations, the encrypted store shows what a plain store shows

_op = st.one_of(
    st.tuples(st.just("append"), st.lists(_text, min_size=1, max_size=2)),
    st.tuples(st.just("summary"), _text),
    st.tuples(st.just("rewind")),
    st.tuples(st.just("rotate")),
    st.tuples(st.just("fork"), st.integers(0, 10)),
)


@settings(max_examples=40, deadline=None)
@given(ops=st.lists(_op, min_size=1, max_size=12))
def test_encrypted_store_behaves_like_a_plain_store(ops: list[tuple[Any, ...]]) -> None:
    model, base = MemoryStore(), MemoryStore()
    keys = [KEY1]
    store = wrap(base, KEY1)
    sessions = ["main"]
    for op in ops:
        sid = sessions[-1]
        if op[0] == "append":
            entries = [e for text in op[1] for e in turn(text, text[::-1])]
            exists = sid in {s.id for s in model.list_sessions()}
            for target in (model, store):
                version = target.get_session(sid).version if exists else 0  # differs after a rotation
                target.append(sid, entries, expected_version=version)
        elif op[0] == "summary" and sid in {s.id for s in model.list_sessions()}:
            count = model.get_session(sid).message_count
            if not count:
                with pytest.raises(ConfigurationError, match="empty"):
                    store.save_summary(sid, Summary(0, 0, op[1]))
                continue
            for target in (model, store):
                target.save_summary(sid, Summary(0, count, op[1]))
        elif op[0] == "rewind" and model.list_sessions() and model.get_session(sid).message_count:
            for target in (model, store):
                target.rewind(sid)
        elif op[0] == "rotate":
            keys.append(bytes([len(keys)]) * 32)
            store = wrap(base, keys[-1], old_keys=keys[:-1])
            store.rotate()
            store = wrap(base, keys[-1])  # after rotation the newest key alone reads everything
        elif op[0] == "fork" and sid in {s.id for s in model.list_sessions()}:
            at = min(op[1], model.get_session(sid).message_count)
            new_id = f"fork{len(sessions)}"
            model.fork(sid, at=at, new_id=new_id)
            store.fork(sid, at=at, new_id=new_id)
            sessions.append(new_id)
        for session in model.list_sessions():
            expected, actual = model.load(session.id), store.load(session.id)
            assert actual.message_params() == expected.message_params()
            assert [(s.start, s.end, s.text) for s in actual.summaries] == [
                (s.start, s.end, s.text) for s in expected.summaries
            ]
            raw = base.load(session.id)
            assert all(m.message["content"][0]["type"] == BLOCK_TYPE for m in raw.messages)
        assert {s.id for s in store.list_sessions()} == {s.id for s in model.list_sessions()}
