"""The backend-independent rules in the stores' shared modules (_checks, _json, _times, _search_text, _jsonl,
_rewind_fork, _messages): ids, time, search matching, export/import."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, InvalidHistory
from claude_history.stores import _checks, _json, _jsonl, _messages, _rewind_fork, _search_text, _times
from claude_history.stores.base import UNSET, SessionData, SessionInfo, StoredMessage, Summary

from .samples import PNG_1PX, canonical, every_block_history

safe_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=1000)


@given(safe_text)
def test_any_text_without_nul_is_a_session_id(session_id: str) -> None:
    assert _checks.check_session_id(session_id) == session_id


@pytest.mark.parametrize("bad", ["", "x" * 1001, "a\x00b", "lone \ud800 surrogate", 7, None, b"bytes"])
def test_bad_session_ids(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        _checks.check_session_id(bad)


def test_dumps_is_compact_and_keeps_order() -> None:
    value = {"z": 1, "a": ["é", {"y": None, "b": 1.5}]}
    assert _json.dumps(value) == '{"z":1,"a":["é",{"y":null,"b":1.5}]}'
    assert _json.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    with pytest.raises(ValueError):
        _json.dumps(float("nan"))  # not JSON; the API would reject it too


@given(st.datetimes(timezones=st.just(timezone.utc), min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_microsecond_timestamps_round_trip(moment: datetime) -> None:
    assert _times.from_us(_times.to_us(moment)) == moment


def test_naive_datetimes_are_local_time() -> None:
    naive = datetime(2030, 5, 6, 7, 8, 9)
    assert _times.from_us(_times.to_us(naive)) == naive.astimezone(timezone.utc)
    other = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=5)))
    assert _times.to_us(other) == _times.to_us(datetime(2030, 5, 6, 2, 8, 9, tzinfo=timezone.utc))


def test_message_text_collects_what_people_read() -> None:
    entries = every_block_history()
    assistant = _search_text.message_text(entries[1].message)
    assert "Let me check." in assistant
    assert "The user wants the weather" not in assistant  # thinking is not indexed
    assert "Paris" not in assistant  # nor tool inputs
    user = _search_text.message_text(entries[0].message)
    assert "Plain document text." in user and "search result body" in user
    assert PNG_1PX not in user  # images carry no text
    assert "18°C, light rain" in _search_text.message_text(entries[2].message)
    assert _search_text.message_text({"role": "user", "content": "just a string"}) == "just a string"


@given(st.text(max_size=200))
def test_a_text_matches_its_own_words(text: str) -> None:
    terms = _search_text.search_terms(text)
    assert _search_text.text_matches(text, terms) == bool(terms)


def test_search_matching_is_by_whole_words() -> None:
    assert _search_text.search_terms('Hello, "World"! hello_there x*') == ["hello", "world", "there", "x"]
    assert _search_text.text_matches("the Tower of London", ["tower", "london"])
    assert not _search_text.text_matches("towers", ["tower"])
    assert not _search_text.text_matches("anything", [])


@given(st.text(min_size=1, max_size=2000), st.sampled_from(["needle", "Needle", "NEEDLE"]))
def test_snippets_are_short_and_show_the_match(text: str, needle: str) -> None:
    document = text + " " + needle + " " + text
    snippet = _search_text.make_snippet(document, ["needle"], width=80)
    assert len(snippet) <= 82
    assert "needle" in snippet.lower()
    assert "\n" not in snippet


def _session(messages: list[dict[str, object]]) -> SessionData:
    stamp = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    stored = [
        StoredMessage(
            seq=i,
            message=m,
            model="claude-sonnet-4-6" if m["role"] == "assistant" else None,
            usage={"input_tokens": i} if m["role"] == "assistant" else None,
            created_at=stamp + timedelta(seconds=i),
        )
        for i, m in enumerate(messages)
    ]
    info = SessionInfo(
        id="sid ✓",
        version=7,
        created_at=stamp,
        updated_at=stamp + timedelta(hours=1),
        message_count=len(stored),
        title="T\u2028itle",
        owner="o",
        tags=("a", "b"),
        model="m",
        system=[{"type": "text", "text": "sys"}],
        expires_at=stamp + timedelta(days=1),
        metadata={"k": [1, {"z": None}]},
    )
    return SessionData(
        info=info,
        messages=stored,
        summaries=[Summary(0, len(stored), "sum", "h", {"input_tokens": 1}, stamp)] if stored else [],
    )


json_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(
    st.lists(
        st.builds(
            lambda role, text: {"content": [{"text": text, "type": "text"}], "role": role},
            st.sampled_from(["user", "assistant"]),
            json_text,
        ),
        max_size=8,
    )
)
def test_export_then_import_restores_everything(messages: list[dict[str, object]]) -> None:
    data = _session(messages)
    restored = _jsonl.parse_import(_jsonl.export_session(data), session_id=None, now=0)
    assert [canonical(m.message) for m in restored.messages] == [canonical(m.message) for m in data.messages]
    assert [(m.seq, m.model, m.usage, m.created_at) for m in restored.messages] == [
        (m.seq, m.model, m.usage, m.created_at) for m in data.messages
    ]
    assert restored.summaries == data.summaries
    expected_info = SessionInfo(
        **{**data.info.__dict__, "version": 1 if messages else 0, "incarnation": restored.info.incarnation}
    )
    assert restored.info == expected_info
    assert restored.info.incarnation  # an imported session is a new incarnation


def test_import_errors_name_the_problem() -> None:
    with pytest.raises(InvalidHistory, match="message 0: role"):
        _jsonl.parse_import('[{"role": "bot", "content": "x"}]', session_id=None, now=0)
    with pytest.raises(InvalidHistory, match="system=") as raised:
        _jsonl.parse_import(
            '[{"role": "user", "content": "x"}, {"role": "system", "content": "x"}]', session_id=None, now=0
        )
    assert raised.value.index == 1
    exported = _jsonl.export_session(
        _session([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    )
    header, first, second = exported.strip().split("\n")
    with pytest.raises(ConfigurationError, match="out of order"):
        _jsonl.parse_import("\n".join([header, second, first]), session_id=None, now=0)
    with pytest.raises(ConfigurationError, match="first line"):
        _jsonl.parse_import("\n".join([first, header]), session_id=None, now=0)
    with pytest.raises(ConfigurationError, match="format"):
        _jsonl.parse_import(header.replace("claude-history/1", "other/2"), session_id=None, now=0)
    with pytest.raises(ConfigurationError, match="outside"):
        _jsonl.parse_import(header.replace('"start":0,"end":2', '"start":0,"end":5'), session_id=None, now=0)


def test_import_accepts_plain_message_lines() -> None:
    lines = '{"role": "user", "content": "hi"}\n\n{"role": "assistant", "content": "hello"}\r\n'
    data = _jsonl.parse_import(lines, session_id="x", now=_times.to_us(datetime(2030, 1, 1, tzinfo=timezone.utc)))
    assert data.message_params() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert data.info.id == "x"
    assert data.messages[0].created_at == datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_fork_session_takes_the_prefix_and_the_summaries_inside_it() -> None:
    data = _session([{"role": "user", "content": str(i)} for i in range(4)])
    data = SessionData(data.info, data.messages, [Summary(0, 2, "a"), Summary(1, 4, "b")])
    forked = _rewind_fork.fork_session(data, at=2, new_id="child", now=0)
    assert [m.message for m in forked.messages] == [
        {"role": "user", "content": "0"},
        {"role": "user", "content": "1"},
    ]
    assert [s.text for s in forked.summaries] == ["a"]
    assert (forked.info.id, forked.info.version, forked.info.message_count, forked.info.tags) == (
        "child",
        1,
        2,
        ("a", "b"),
    )
    assert _rewind_fork.fork_session(data, at=0, new_id=None, now=0).info.version == 0
    with pytest.raises(ConfigurationError):
        _rewind_fork.fork_session(data, at=5, new_id=None, now=0)


def test_rewind_target_is_the_last_turn_start() -> None:
    messages = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "u", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "u", "content": "r"}]},
        {"role": "assistant", "content": "a2"},
    ]
    assert _rewind_fork.rewind_target(messages, None) == 4
    assert _rewind_fork.rewind_target(messages[:4], None) == 0
    assert _rewind_fork.rewind_target(messages, 8) == 8
    for bad in (-1, 9, True, "2"):
        with pytest.raises(ConfigurationError):
            _rewind_fork.rewind_target(messages, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no turn"):
        _rewind_fork.rewind_target([], None)


def test_update_arguments_are_checked_and_normalised() -> None:
    changes = _checks.check_session_changes(
        {
            "title": "t",
            "tags": ["a", "b", "a"],
            "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc),
            "owner": UNSET,
        }
    )
    assert changes == {
        "title": "t",
        "tags": ("a", "b"),
        "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc),
    }
    for bad in (
        {"tags": "abc"},
        {"tags": [""]},
        {"title": 5},
        {"metadata": []},
        {"system": 3},
        {"colour": "red"},
        {"expires_at": "tomorrow"},
    ):
        with pytest.raises(ConfigurationError):
            _checks.check_session_changes(bad)


def test_lone_surrogates_are_escaped_not_lost() -> None:
    value = {"text": "half \ud83d emoji", "ok": "é"}
    text = _json.dumps(value)
    text.encode("utf-8")  # storable as UTF-8
    assert json.loads(text) == value
    assert _json.dumps({"ok": "é"}) == '{"ok":"é"}'  # ordinary text stays unescaped
    assert _search_text.message_text({"role": "user", "content": "a \ud83d b"}).encode("utf-8")


# -- loading: the shared fast path must build exactly what the plain constructors build ----------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values, st.sampled_from(["", " ", "\n", "\t "]), st.sampled_from(["", " ", "\r\n"]))
def test_decode_json_is_json_loads(value: object, before: str, after: str) -> None:
    text = before + json.dumps(value, ensure_ascii=False) + after
    assert _json.decode_json(text) == json.loads(text)
    assert _json.decode_json(text.encode("utf-8")) == json.loads(text)


@pytest.mark.parametrize("bad", ["", " ", "{", '{"a":1} x', '{"a":1}{}', "[1,]", "nan", '"\x01"', "1 2"])
def test_decode_json_rejects_what_json_loads_rejects(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(bad)
    with pytest.raises(json.JSONDecodeError) as got:
        _json.decode_json(bad)
    assert str(got.value) == str(expected.value)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_from_us_is_exact(value: int) -> None:
    try:
        expected = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=value)
    except OverflowError:
        return
    assert _times.from_us(value) == expected
    assert _times.to_us(_times.from_us(value)) == value


messages_rows = st.lists(
    st.tuples(
        st.builds(lambda text: {"role": "user", "content": text}, st.text(max_size=20)),
        st.none() | st.text(max_size=10),
        st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        st.integers(min_value=0, max_value=5).map(lambda k: 1_763_000_000_000_000 + k),
    ),
    max_size=12,
)


@given(messages_rows)
def test_decode_messages_builds_plain_stored_messages(rows: list[tuple[dict[str, object], ...]]) -> None:
    encoded = [
        (json.dumps(message), model, None if usage is None else json.dumps(usage), created)
        for message, model, usage, created in rows
    ]
    built = _messages.decode_messages(encoded)
    expected = [
        StoredMessage(seq, message, model, usage, _times.from_us(created))  # type: ignore[arg-type]
        for seq, (message, model, usage, created) in enumerate(rows)
    ]
    assert built == expected
    def fields(m: StoredMessage) -> list[object]:
        return [getattr(m, f.name) for f in dataclasses.fields(m)]

    assert [fields(m) for m in built] == [fields(m) for m in expected]
    assert all(type(m) is StoredMessage for m in built)
    # Every message gets its own objects, even where rows are equal.
    assert len({id(m.message) for m in built}) == len(built)
    assert len({id(m.usage) for m in built if m.usage is not None}) == sum(m.usage is not None for m in built)


NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def test_decode_messages_takes_any_json_text_as_json_loads_does() -> None:
    rows = [
        (' {"role": "user", "content": "x"}\n', None, ' {"input_tokens": 1} ', 0),
        (b'{"role":"assistant","content":"\xc3\xa9"}', "m", b'{"output_tokens":2}', 0),
    ]
    built = _messages.decode_messages(rows)
    assert [(m.message, m.usage) for m in built] == [
        ({"role": "user", "content": "x"}, {"input_tokens": 1}),
        ({"role": "assistant", "content": "é"}, {"output_tokens": 2}),
    ]
    for bad in ('{"role":"user"} trailing', "", "[1,]"):
        with pytest.raises(json.JSONDecodeError):
            _messages.decode_messages([(bad, None, None, 0)])
        with pytest.raises(json.JSONDecodeError):
            _messages.decode_messages([('{"role":"user","content":"x"}', None, bad, 0)])


def test_decoded_messages_stay_frozen_and_take_any_stamp() -> None:
    [built] = _messages.decode_messages([('{"role":"user","content":"x"}', None, None, "raw")], stamp=lambda v: NOW)
    assert built.created_at is NOW
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.seq = 9  # type: ignore[misc]


def test_stored_message_is_the_dataclass() -> None:
    now = NOW
    fast = _messages.stored_message(3, {"role": "user", "content": "x"}, "m", {"input_tokens": 1}, now)
    assert fast == StoredMessage(3, {"role": "user", "content": "x"}, "m", {"input_tokens": 1}, now)
    assert repr(fast) == repr(StoredMessage(3, {"role": "user", "content": "x"}, "m", {"input_tokens": 1}, now))
    assert fast.role == "user"


# -- rewind: the last turn found from the tail is the last turn of the whole log -----------------------------

log_messages = st.lists(
    st.sampled_from(
        [
            {"role": "user", "content": "q"},
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        ]
    ),
    max_size=300,
)


@given(log_messages)
def test_find_last_turn_from_the_tail_agrees_with_the_whole_log(messages: list[dict[str, object]]) -> None:
    from claude_history.history import last_turn_start

    reads: list[tuple[int, int]] = []

    def read(start: int, end: int) -> list[dict[str, object]]:
        reads.append((start, end))
        return messages[start:end]

    expected = last_turn_start(messages)
    if expected is None:
        with pytest.raises(ConfigurationError, match="no turn"):
            _rewind_fork.find_last_turn(read, len(messages))
    else:
        assert _rewind_fork.find_last_turn(read, len(messages)) == expected
        # Only the tail is read, in chunks growing 4x: about 4x the distance back to the turn at most.
        assert reads[0] == (max(0, len(messages) - _rewind_fork.TAIL_CHUNK), len(messages))
        assert len(messages) - reads[-1][0] <= 4 * (len(messages) - expected) + _rewind_fork.TAIL_CHUNK
    # Chunks are contiguous and never overlap.
    for (start, _), (_, end) in itertools.pairwise(reads):
        assert end == start


def test_find_last_turn_just_past_a_chunk_boundary() -> None:
    tail = [{"role": "assistant", "content": "a"}] * _rewind_fork.TAIL_CHUNK
    messages = [{"role": "user", "content": "q"}, *tail]
    assert _rewind_fork.find_last_turn(lambda start, end: messages[start:end], len(messages)) == 0


def test_summary_ranges_must_cover_messages() -> None:
    assert _checks.check_summary(Summary(0, 1, "one"), 1).end == 1
    for start, end in ((0, 0), (2, 2), (3, 1)):
        with pytest.raises(ConfigurationError, match="empty"):
            _checks.check_summary(Summary(start, end, "nothing"), 4)
    for start, end in ((-1, 1), (0, 5)):
        with pytest.raises(ConfigurationError, match="outside"):
            _checks.check_summary(Summary(start, end, "x"), 4)
    for bad in (1.5, "1", True):
        with pytest.raises(ConfigurationError, match="integer"):
            _checks.check_summary(Summary(bad, 2, "x"), 4)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="NUL"):
        _checks.check_summary(Summary(0, 1, "x", model="m\x00"), 4)


@pytest.mark.parametrize("name", ["title", "owner", "model"])
def test_nul_is_refused_in_titles_owners_and_models(name: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{name} must not contain NUL"):
        _checks.check_session_changes({name: "bad\x00value"})
    assert _checks.check_session_changes({name: "fine \x01 value"}) == {name: "fine \x01 value"}


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(),
            st.text(max_size=40),
            st.text(alphabet="0123456789[],.-truefalsn\x7f", min_size=1_000, max_size=1_300),  # written as is
            st.text(alphabet="0123456789[],.-truefalsn\"\\\n\x01\x7f é", min_size=1_000, max_size=1_300),
            st.lists(st.integers(), max_size=3),
        ),
        max_size=5,
    )
)
def test_a_checkpoint_is_kept_as_the_json_of_its_object(data: dict[str, object]) -> None:
    """The checkpoint text (long plain strings spliced in, not run through the encoder) reads back as the
    object, and is the encoder's own text when those strings come last, as the planner's earlier requests do."""
    from claude_history.stores._checkpoints import _SPLICED, check_checkpoint

    text = check_checkpoint("s", 1, data)
    assert json.loads(text) == data
    long_last = sorted(data, key=lambda key: isinstance(data[key], str) and len(str(data[key])) >= _SPLICED and all(
        " " <= c < "\x80" and c not in "\"\\" for c in str(data[key])
    ))
    assert check_checkpoint("s", 1, {key: data[key] for key in long_last}) == _json.dumps(
        {key: data[key] for key in long_last}
    )
