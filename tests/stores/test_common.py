"""The backend-independent rules in stores._common: ids, time, search matching, export/import."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, InvalidHistory
from claude_history.stores import _common
from claude_history.stores.base import UNSET, SessionData, SessionInfo, StoredMessage, Summary

from .samples import PNG_1PX, canonical, every_block_history

safe_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=1000
)


@given(safe_text)
def test_any_text_without_nul_is_a_session_id(session_id: str) -> None:
    assert _common.check_session_id(session_id) == session_id


@pytest.mark.parametrize("bad", ["", "x" * 1001, "a\x00b", "lone \ud800 surrogate", 7, None, b"bytes"])
def test_bad_session_ids(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        _common.check_session_id(bad)


def test_dumps_is_compact_and_keeps_order() -> None:
    value = {"z": 1, "a": ["é", {"y": None, "b": 1.5}]}
    assert _common.dumps(value) == '{"z":1,"a":["é",{"y":null,"b":1.5}]}'
    assert _common.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    with pytest.raises(ValueError):
        _common.dumps(float("nan"))  # not JSON; the API would reject it too


@given(
    st.datetimes(
        timezones=st.just(timezone.utc), min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)
    )
)
def test_microsecond_timestamps_round_trip(moment: datetime) -> None:
    assert _common.from_us(_common.to_us(moment)) == moment


def test_naive_datetimes_are_local_time() -> None:
    naive = datetime(2030, 5, 6, 7, 8, 9)
    assert _common.from_us(_common.to_us(naive)) == naive.astimezone(timezone.utc)
    other = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=5)))
    assert _common.to_us(other) == _common.to_us(datetime(2030, 5, 6, 2, 8, 9, tzinfo=timezone.utc))


def test_message_text_collects_what_people_read() -> None:
    entries = every_block_history()
    assistant = _common.message_text(entries[1].message)
    assert "Let me check." in assistant
    assert "The user wants the weather" not in assistant  # thinking is not indexed
    assert "Paris" not in assistant  # nor tool inputs
    user = _common.message_text(entries[0].message)
    assert "Plain document text." in user and "search result body" in user
    assert PNG_1PX not in user  # images carry no text
    assert "18°C, light rain" in _common.message_text(entries[2].message)
    assert _common.message_text({"role": "user", "content": "just a string"}) == "just a string"


@given(st.text(max_size=200))
def test_a_text_matches_its_own_words(text: str) -> None:
    terms = _common.search_terms(text)
    assert _common.text_matches(text, terms) == bool(terms)


def test_search_matching_is_by_whole_words() -> None:
    assert _common.search_terms('Hello, "World"! hello_there x*') == ["hello", "world", "there", "x"]
    assert _common.text_matches("the Tower of London", ["tower", "london"])
    assert not _common.text_matches("towers", ["tower"])
    assert not _common.text_matches("anything", [])


@given(st.text(min_size=1, max_size=2000), st.sampled_from(["needle", "Needle", "NEEDLE"]))
def test_snippets_are_short_and_show_the_match(text: str, needle: str) -> None:
    document = text + " " + needle + " " + text
    snippet = _common.make_snippet(document, ["needle"], width=80)
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
        summaries=[Summary(0, len(stored), "sum", "h", {"input_tokens": 1}, stamp)],
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
    restored = _common.parse_import(_common.export_session(data), session_id=None, now=0)
    assert [canonical(m.message) for m in restored.messages] == [canonical(m.message) for m in data.messages]
    assert [(m.seq, m.model, m.usage, m.created_at) for m in restored.messages] == [
        (m.seq, m.model, m.usage, m.created_at) for m in data.messages
    ]
    assert restored.summaries == data.summaries
    expected_info = SessionInfo(**{**data.info.__dict__, "version": 1 if messages else 0})
    assert restored.info == expected_info


def test_import_errors_name_the_problem() -> None:
    with pytest.raises(InvalidHistory, match="message 0: role"):
        _common.parse_import('[{"role": "bot", "content": "x"}]', session_id=None, now=0)
    with pytest.raises(InvalidHistory, match="system=") as raised:
        _common.parse_import(
            '[{"role": "user", "content": "x"}, {"role": "system", "content": "x"}]', session_id=None, now=0
        )
    assert raised.value.index == 1
    exported = _common.export_session(
        _session([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    )
    header, first, second = exported.strip().split("\n")
    with pytest.raises(ConfigurationError, match="out of order"):
        _common.parse_import("\n".join([header, second, first]), session_id=None, now=0)
    with pytest.raises(ConfigurationError, match="first line"):
        _common.parse_import("\n".join([first, header]), session_id=None, now=0)
    with pytest.raises(ConfigurationError, match="format"):
        _common.parse_import(header.replace("claude-history/1", "other/2"), session_id=None, now=0)
    with pytest.raises(ConfigurationError, match="outside"):
        _common.parse_import(header.replace('"start":0,"end":2', '"start":0,"end":5'), session_id=None, now=0)


def test_import_accepts_plain_message_lines() -> None:
    lines = '{"role": "user", "content": "hi"}\n\n{"role": "assistant", "content": "hello"}\r\n'
    data = _common.parse_import(
        lines, session_id="x", now=_common.to_us(datetime(2030, 1, 1, tzinfo=timezone.utc))
    )
    assert data.message_params() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert data.info.id == "x"
    assert data.messages[0].created_at == datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_fork_session_takes_the_prefix_and_the_summaries_inside_it() -> None:
    data = _session([{"role": "user", "content": str(i)} for i in range(4)])
    data = SessionData(data.info, data.messages, [Summary(0, 2, "a"), Summary(1, 4, "b")])
    forked = _common.fork_session(data, at=2, new_id="child", now=0)
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
    assert _common.fork_session(data, at=0, new_id=None, now=0).info.version == 0
    with pytest.raises(ConfigurationError):
        _common.fork_session(data, at=5, new_id=None, now=0)


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
    assert _common.rewind_target(messages, None) == 4
    assert _common.rewind_target(messages[:4], None) == 0
    assert _common.rewind_target(messages, 8) == 8
    for bad in (-1, 9, True, "2"):
        with pytest.raises(ConfigurationError):
            _common.rewind_target(messages, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no turn"):
        _common.rewind_target([], None)


def test_update_arguments_are_checked_and_normalised() -> None:
    changes = _common.check_session_changes(
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
            _common.check_session_changes(bad)


def test_lone_surrogates_are_escaped_not_lost() -> None:
    value = {"text": "half \ud83d emoji", "ok": "é"}
    text = _common.dumps(value)
    text.encode("utf-8")  # storable as UTF-8
    assert json.loads(text) == value
    assert _common.dumps({"ok": "é"}) == '{"ok":"é"}'  # ordinary text stays unescaped
    assert _common.message_text({"role": "user", "content": "a \ud83d b"}).encode("utf-8")
