"""Which messages a client sent are new (pure): properties over generated conversations."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_history.server.resend import Diverged, new_part

words = st.text(alphabet="abcdefgh ", min_size=1, max_size=12).filter(str.strip)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    turns = draw(st.integers(min_value=0, max_value=6))
    log: list[dict[str, Any]] = []
    for _ in range(turns):
        log.append({"role": "user", "content": draw(words)})
        log.append({"role": "assistant", "content": [{"type": "text", "text": draw(words)}]})
    return log


def _as_client_sends(message: dict[str, Any]) -> dict[str, Any]:
    """The same message as a client may resend it: string content as a block, SDK dumps with None fields."""
    content = message["content"]
    if isinstance(content, str):
        return {"role": message["role"], "content": [{"type": "text", "text": content}]}
    return {"role": message["role"], "content": [{**b, "citations": None} for b in content]}


@given(conversations(), words)
def test_a_resent_history_yields_only_the_new_message(log: list[dict[str, Any]], text: str) -> None:
    new = {"role": "user", "content": text}
    assert new_part(log, [*[_as_client_sends(m) for m in log], new]) == [new]


@given(conversations(), words)
def test_a_lone_new_message_is_new(log: list[dict[str, Any]], text: str) -> None:
    new = {"role": "user", "content": text}
    assert new_part(log, [new]) == [new]


@given(conversations(), st.data())
def test_a_history_that_differs_from_the_log_is_refused(log: list[dict[str, Any]], data: st.DataObject) -> None:
    if len(log) < 2:
        return
    index = data.draw(st.integers(min_value=0, max_value=len(log) - 1))
    changed = [dict(m) for m in log]
    changed[index] = {"role": changed[index]["role"], "content": "something else entirely!"}
    with pytest.raises(Diverged) as caught:
        new_part(log, [*changed, {"role": "user", "content": "next"}])
    assert caught.value.index == index


def test_an_empty_log_takes_a_whole_history() -> None:
    sent = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert new_part([], sent) == sent
