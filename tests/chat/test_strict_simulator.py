"""Requests the library sends that the strict simulator (the API's request schema) refused: one test each."""

from __future__ import annotations

from typing import Any

from claude_history import Chat
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL

# A citation as the API's reply carries it: anthropic.types.CitationCharLocation has `file_id`, the request's
# CitationCharLocationParam does not (sent back: "...citations.0.char_location.file_id: Extra inputs are not
# permitted").
CITATION: dict[str, Any] = {
    "type": "char_location",
    "cited_text": "Paris",
    "document_index": 0,
    "document_title": "Atlas",
    "start_char_index": 0,
    "end_char_index": 5,
    "file_id": None,
}


def test_a_reply_with_citations_can_be_followed_up(sim: Simulator, store: Store) -> None:
    chat = Chat(sim.client(max_retries=0), model=MODEL, store=store, session_id="cited", max_tokens=256)
    sim.reply_with([{"type": "text", "text": "Paris.", "citations": [CITATION]}])
    chat.send("What is the capital of France?")
    assert chat.messages[1]["content"][0]["citations"] == [CITATION]  # stored as the API returned it
    chat.send("And of Spain?")
    sent = sim.requests[-1]["body"]["messages"][1]["content"][0]["citations"]
    assert sent == [{k: v for k, v in CITATION.items() if k != "file_id"}]
    with chat.stream("And of Italy?") as stream:
        assert stream.get_final_message().type == "message"
