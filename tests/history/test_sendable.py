"""``history.sendable``: a stored reply's fields that a request may not carry are dropped from the request view,
and nothing else changes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from claude_history.history import sendable

from .strategies import valid_histories

CITATION = {
    "type": "char_location",
    "cited_text": "Paris",
    "document_index": 0,
    "document_title": "Atlas",
    "start_char_index": 0,
    "end_char_index": 5,
}


def cited(file_id: str | None) -> dict[str, Any]:
    return {"type": "text", "text": "Paris.", "citations": [{**CITATION, "file_id": file_id}]}


def test_a_citations_file_id_is_not_sent_back() -> None:
    # anthropic.types.CitationCharLocation has file_id; CitationCharLocationParam does not.
    history = [{"role": "user", "content": "capital?"}, {"role": "assistant", "content": [cited(None)]}]
    before = copy.deepcopy(history)
    out = sendable(history)
    assert out[1]["content"][0]["citations"] == [CITATION]
    assert history == before  # the stored log is not touched


@given(valid_histories(), st.data())
def test_sendable_only_drops_reply_only_citation_fields(history: list[dict[str, Any]], data: st.DataObject) -> None:
    with_citations = copy.deepcopy(history)
    for message in with_citations:
        if message["role"] == "assistant" and isinstance(message["content"], list) and data.draw(st.booleans()):
            message["content"].append(cited(data.draw(st.none() | st.just("file_abc"))))
    before = copy.deepcopy(with_citations)
    out = sendable(with_citations)
    assert with_citations == before
    assert sendable(out) == out  # idempotent
    assert len(out) == len(with_citations)
    for sent, stored in zip(out, with_citations, strict=True):
        if not isinstance(stored["content"], list):
            assert sent == stored
            continue
        for sent_block, stored_block in zip(sent["content"], stored["content"], strict=True):
            if stored_block.get("citations"):
                assert sent_block == {**stored_block, "citations": [CITATION]}
            else:
                assert sent_block == stored_block
