"""The fast decode path (jiter, with json for what jiter refuses) must give exactly what ``json.loads`` gives:
the same values of the same types, floats to the bit, key order, and the same errors."""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history.stores import _json, _messages, _times
from claude_history.stores.base import Entry, StoredMessage
from claude_history.stores.sqlite import SQLiteStore


def exact(value: Any) -> Any:
    """A form in which equal means identical: exact types, float bits, key order."""
    kind = type(value)
    if kind is float:
        return ("float", struct.pack("<d", value).hex())
    if kind is dict:
        return ("dict", [(exact(k), exact(v)) for k, v in value.items()])
    if kind is list:
        return ("list", [exact(v) for v in value])
    return (kind.__name__, value)


def outcome(decode: Any, text: Any) -> Any:
    try:
        return exact(decode(text))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return ("error", type(exc).__name__, str(exc))


def agrees(text: str) -> None:
    """decode_json, on the text and on its UTF-8, is json.loads: value or error."""
    expected = outcome(json.loads, text)
    assert outcome(_json.decode_json, text) == expected, text
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a raw lone surrogate: no UTF-8 form
        return
    assert outcome(_json.decode_json, data) == expected, text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def test_jiter_is_there_and_used() -> None:
    # A dependency (ours and the anthropic SDK's): if it went missing, loads would silently be twice as slow.
    assert _json.fast_decoder() is not None


def test_only_jiter_0_5_or_newer_is_used() -> None:
    def from_json(data: bytes) -> None:
        return None

    assert _json._jiter_decoder(None) is None
    assert _json._jiter_decoder(SimpleNamespace(__version__="0.4.0", from_json=from_json)) is None
    assert _json._jiter_decoder(SimpleNamespace(from_json=from_json)) is None
    assert _json._jiter_decoder(SimpleNamespace(__version__="0.5.0", from_json=from_json)) is from_json
    assert _json._jiter_decoder(SimpleNamespace(__version__="1.2.3", from_json=from_json)) is from_json


@settings(max_examples=500)
@given(json_values, st.booleans())
def test_values_decode_as_json_loads_does(value: Any, ascii_only: bool) -> None:
    agrees(json.dumps(value, ensure_ascii=ascii_only))
    agrees(_json.dumps(value))


digits = st.text("0123456789", min_size=1, max_size=25)


@settings(max_examples=500)
@given(
    st.sampled_from(["", "-", "+"]),
    digits,
    st.none() | st.text("0123456789", max_size=25),
    st.none() | st.tuples(st.sampled_from("eE"), st.sampled_from(["", "+", "-"]), st.text("0123456789", max_size=5)),
)
def test_numbers_decode_as_json_loads_does(sign: str, whole: str, fraction: str | None, exponent: Any) -> None:
    number = (
        sign + whole + ("" if fraction is None else "." + fraction) + ("" if exponent is None else "".join(exponent))
    )
    agrees(number)
    agrees(f'[{number},{{"n":{number}}}]')


pieces = [*'{}[],:"\\ ntrufalse0123456789.eE+-/bfdDaA\t\r\n\x00\x01\x1f\x7fé\u2028\ud800', "\\u", "\\ud800"]
pieces += ["\\udc00", "\\ud83d\\ude00", "null", "NaN", "Infinity", "\ufeff"]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(pieces), max_size=30).map("".join))
def test_any_text_decodes_or_fails_as_json_loads_does(text: str) -> None:
    agrees(text)
    agrees(f'"{text}"')
    agrees(f'{{"{text}":[1]}}')


# What jiter refuses (or may) and json takes: decoded by json, so the same values.
EDGES = [
    '"\\ud800"',
    '{"\\udc00x":"a\\ud800\\u0041"}',
    "NaN",
    "[Infinity,-Infinity]",
    "1" * 4300,
    "1" * 4301,  # json: over the default digit limit, an error
    "1" * 5000 + ".5",
    "0." + "1" * 5000,
    "[" * 300 + "]" * 300,
    "[" * 5000 + "]" * 5000,  # json: RecursionError
    '{"a":1,"a":2,"b":3}',
    "18446744073709551616",
    "-0",
    "-0.0",
    "1e400",
    "-1e400",
    "5e-324",
    "2.4703282292062328e-324",
    "1.7976931348623159e308",
    "9007199254740993",
    '"\\u0080\\u00ff\\uffff\\uDBFF\\uDFFF"',
    '"\x7f\u2028"',
    ' \t\n\r{"a":[]} \r\n',
    "\ufeff{}",
    '"\x00"',
    '"\\u0000"',
    "1\x00",
]


@pytest.mark.parametrize("text", EDGES, ids=range(len(EDGES)))
def test_edges_decode_as_json_loads_does(text: str) -> None:
    agrees(text)


def test_a_lower_int_digit_limit_is_obeyed() -> None:
    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("Python without an integer digit limit")
    before = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(1000)
        assert _json.fast_decoder() is None  # jiter would take 4,300 digits
        agrees("7" * 1001)
        agrees("7" * 1000)
        sys.set_int_max_str_digits(0)  # no limit: jiter's refusal of long numbers sends them to json
        assert _json.fast_decoder() is not None
        agrees("7" * 6000)
    finally:
        sys.set_int_max_str_digits(before)


rows_strategy = st.lists(
    st.tuples(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": json_values}),
        st.none() | st.text(max_size=10),
        st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        st.integers(min_value=0, max_value=3).map(lambda k: 1_763_000_000_000_000 + k),
        st.sampled_from(["bytes", "str", "ascii"]),
    ),
    max_size=10,
)


def _encode(value: Any, how: str) -> str | bytes:
    if how == "ascii":
        return json.dumps(value)
    text = _json.dumps(value)
    return text.encode("utf-8") if how == "bytes" else text


@settings(max_examples=300)
def _fields(message: StoredMessage) -> dict[str, Any]:
    return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}


@given(rows_strategy)
def test_decode_messages_is_the_same_with_and_without_jiter(rows: list[Any]) -> None:
    encoded = [
        (_encode(message, how), model, None if usage is None else _encode(usage, how), created)
        for message, model, usage, created, how in rows
    ]
    fast = _messages.decode_messages(encoded)
    expected = [
        StoredMessage(seq, json.loads(json.dumps(message)), model, usage, _times.from_us(created))
        for seq, (message, model, usage, created, _how) in enumerate(rows)
    ]
    assert [exact(_fields(m)) for m in fast] == [exact(_fields(m)) for m in expected]
    original = _json._jiter_from_json
    try:
        _json._jiter_from_json = None
        assert _json.fast_decoder() is None
        plain = _messages.decode_messages(encoded)
    finally:
        _json._jiter_from_json = original
    assert [exact(_fields(m)) for m in plain] == [exact(_fields(m)) for m in fast]


def test_what_jiter_refuses_is_decoded_by_json(monkeypatch: pytest.MonkeyPatch) -> None:
    refused: list[bytes] = []

    def refuse_all(data: bytes, **options: Any) -> Any:
        refused.append(data)
        raise ValueError("refused")

    monkeypatch.setattr(_json, "_jiter_from_json", refuse_all)
    rows = [
        (b'{"role":"user","content":"\\ud800"}', None, None, 0),
        ('{"role":"assistant","content":[]}', "m", b'{"input_tokens":1}', 0),
    ]
    built = _messages.decode_messages(rows)
    assert [(m.message, m.usage) for m in built] == [
        ({"role": "user", "content": "\ud800"}, None),
        ({"role": "assistant", "content": []}, {"input_tokens": 1}),
    ]
    assert len(refused) == 3
    assert _json.decode_json('{"a": NaN}')["a"] != 0  # NaN, from json
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        _messages.decode_messages([(b"[1,]", None, None, 0)])


def test_sqlite_round_trips_what_takes_the_json_path(tmp_path: Path) -> None:
    """Texts jiter refuses, stored among ordinary ones, load back exactly (one load, both decoders)."""
    tricky_input = {"deep": json.loads("[" * 250 + "]" * 250), "big": 2**200, "digits": int("9" * 4300)}
    history = [
        {"role": "user", "content": "plain"},
        {"role": "assistant", "content": [{"type": "text", "text": "lone \ud800 and \udfff surrogates"}]},
        {"role": "user", "content": "é \u2028 \x00 \x1f 😀"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": tricky_input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "floats", "x": [-0.0, 5e-324, 1.7976931348623157e308]}],
        },
    ]
    usage = {"input_tokens": 2**70, "output_tokens": 1, "note": "\ud800"}
    store = SQLiteStore(tmp_path / "history.db")
    try:
        entries = [Entry(m, model="m", usage=usage) if m["role"] == "assistant" else Entry(m) for m in history]
        store.append("s", entries, expected_version=0)
        loaded = store.load("s")
    finally:
        store.close()
    assert [exact(m.message) for m in loaded.messages] == [exact(m) for m in history]
    assert [exact(m.usage) for m in loaded.messages] == [
        exact(usage if m["role"] == "assistant" else None) for m in history
    ]
    assert [m.seq for m in loaded.messages] == list(range(len(history)))


def _redis_records(rows: list[Any]) -> list[str]:
    from claude_history.stores.redis import _ops as redis_ops

    return [
        redis_ops.message_record(created, model, None if usage is None else _json.dumps(usage), _json.dumps(message))
        for message, model, usage, created, _how in rows
    ]


@settings(max_examples=200)
@given(rows_strategy)
def test_a_redis_log_decoded_in_one_parse_is_the_same_as_record_by_record(rows: list[Any]) -> None:
    from claude_history.stores.redis import _ops as redis_ops

    records = _redis_records(rows)
    together = redis_ops.stored_messages(records)
    one_by_one = [redis_ops.stored_message(seq, record) for seq, record in enumerate(records)]
    assert [exact(_fields(m)) for m in together] == [exact(_fields(m)) for m in one_by_one]


def test_a_redis_load_is_one_parse_and_what_jiter_refuses_is_decoded_record_by_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A load decodes its log in one jiter call instead of two per message; a log jiter refuses as a whole (a
    lone surrogate) is decoded record by record, each as decode_json does, with the same result."""
    from claude_history.stores.redis import _ops as redis_ops

    calls: list[int] = []
    real = _json._jiter_from_json

    def counting(data: bytes, **options: Any) -> Any:
        calls.append(len(data))
        return real(data, **options)

    monkeypatch.setattr(_json, "_jiter_from_json", counting)
    plain = [
        ({"role": "user", "content": f"question {k}"}, None, None, 1_763_000_000_000_000, "str") for k in range(500)
    ]
    loaded = redis_ops.stored_messages(_redis_records(plain))
    assert [m.message for m in loaded] == [row[0] for row in plain]
    assert len(calls) == 1  # was 1,000: a metadata line and a body per message

    calls.clear()
    lone = ({"role": "assistant", "content": [{"type": "text", "text": "lone \ud800"}]}, "m", {"n": 1}, 0, "str")
    records = _redis_records([*plain[:3], lone])
    loaded = redis_ops.stored_messages(records)
    assert loaded[3].message["content"][0]["text"] == "lone \ud800" and loaded[3].usage == {"n": 1}
    assert [m.message for m in loaded[:3]] == [row[0] for row in plain[:3]]
    assert len(calls) == 1 + 2 * 4  # the refused whole, then each record's metadata and body
