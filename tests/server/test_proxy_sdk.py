"""The official Python SDK, unmodified, against the stateful proxy: it sends only new messages."""

from __future__ import annotations

from claude_history.stores import open_store
from claude_history.testing import Simulator

from .conftest import MODEL, Service


def test_a_client_sending_only_new_messages_gets_a_multi_turn_conversation(service: Service, sim: Simulator) -> None:
    client = service.client(session="trip")
    first = client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    second = client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "More"}])
    assert first.content and second.content
    sent = sim.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    store = open_store(service.store_url)
    data = store.load("acme/trip")
    assert data.info.owner == "acme"
    assert [m.role for m in data.messages] == ["user", "assistant", "user", "assistant"]
    assert data.messages[3].message["content"] == second.model_dump(mode="json", exclude_unset=True)["content"]
