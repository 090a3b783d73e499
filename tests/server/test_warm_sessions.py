"""Warm sessions (server/warm.py): a service process keeps the state and planner the last turn on a session
left, so the next request reads one metadata row and plans only what is new. What it sends upstream and what
it stores are the same as without; a session changed by anyone else in between (another server's turn, a
delete and re-create under the same id and version) is read afresh, never served stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from claude_history.context.planner import Planner
from claude_history.stores import open_store
from claude_history.stores.base import Entry, StoredMessage
from claude_history.testing import Simulator
from claude_history.turn import SessionState
from claude_history.warm import WarmSessions

from .conftest import MODEL, Service

TOOL = {"name": "lookup", "description": "Look a word up.", "input_schema": {"type": "object", "properties": {}}}


def _posts(sim: Simulator) -> list[dict[str, Any]]:
    return [r["body"] for r in sim.requests if r["method"] == "POST" and r["path"].startswith("/v1/messages")]


def _conversation(service: Service, session: str) -> None:
    """Turns of text, then a tool round trip, then text again, each sending only the new message."""
    client = service.client(session=session)
    for i in range(3):
        client.messages.create(model=MODEL, max_tokens=60, messages=[{"role": "user", "content": f"Question {i}?"}])
    client.messages.create(model=MODEL, max_tokens=60, messages=[{"role": "user", "content": "Use the tool."}],
                           tools=[TOOL])  # type: ignore[list-item]  # fmt: skip


def test_a_warm_service_sends_and_stores_what_a_cold_one_does(
    start_service: Callable[..., Service], sim: Simulator
) -> None:
    warm, cold = start_service(), start_service(warm_sessions=0)
    bodies = []
    for service, session in ((warm, "w"), (cold, "c")):
        before = len(_posts(sim))
        _conversation(service, session)
        bodies.append(_posts(sim)[before:])
    assert len(bodies[0]) == len(bodies[1]) == 4
    assert bodies[0] == bodies[1]  # messages, system, tools and cache breakpoints, request for request
    store = open_store(warm.store_url)
    assert [m.message for m in store.load("acme/w").messages] == [m.message for m in store.load("acme/c").messages]


def test_another_writer_between_turns_is_read_not_overwritten(service: Service, sim: Simulator) -> None:
    client = service.client(session="moved")
    client.messages.create(model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "First."}])
    other = open_store(service.store_url)
    other.append("acme/moved", [Entry({"role": "user", "content": "From elsewhere."}),
                                Entry({"role": "assistant", "content": "Kept."}, model=MODEL)],
                 expected_version=1)  # fmt: skip
    client.messages.create(model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "Third."}])
    sent = [m["content"] for m in _posts(sim)[-1]["messages"] if isinstance(m["content"], str)]
    assert sent == ["First.", "From elsewhere.", "Kept.", "Third."]  # (the reply, in blocks, left out)
    assert other.load("acme/moved").version == 3


def test_a_session_deleted_and_created_again_at_the_same_version_is_read_afresh(
    service: Service, sim: Simulator
) -> None:
    client = service.client(session="again")
    client.messages.create(model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "Old session."}])
    other = open_store(service.store_url)
    other.delete("acme/again")
    other.append("acme/again", [Entry({"role": "user", "content": "New session."}),
                                Entry({"role": "assistant", "content": "Fresh."}, model=MODEL)],
                 expected_version=0)  # fmt: skip
    other.update_session("acme/again", owner="acme")
    assert other.get_session("acme/again").version == 1  # the version the warm entry holds, another incarnation
    client.messages.create(model=MODEL, max_tokens=30, messages=[{"role": "user", "content": "Next."}])
    sent = [m["content"] for m in _posts(sim)[-1]["messages"] if isinstance(m["content"], str)]
    assert "Old session." not in sent and sent[0] == "New session." and sent[-1] == "Next."


def _kept(n: int) -> tuple[SessionState, Planner]:
    now = datetime.now(timezone.utc)
    records = [StoredMessage(i, {"role": "user", "content": "x"}, None, None, now) for i in range(n)]
    return SessionState("s", version=1, records=records), Planner()


def test_warm_sessions_are_bounded_by_count_and_by_messages_least_recent_first() -> None:
    warm = WarmSessions(sessions=2, messages=10)
    warm.put("a", _kept(3))
    warm.put("b", _kept(3))
    warm.put("c", _kept(3))  # over the count: "a" goes
    assert warm.take("a") is None and len(warm) == 2 and warm.held == 6
    warm.put("b", _kept(3))  # "b" is now the newest
    warm.put("d", _kept(6))  # over the messages: the oldest ("c") goes, 9 held
    assert warm.take("c") is None and warm.held == 9
    warm.put("e", _kept(11))  # longer than the whole budget: not kept, nothing else dropped
    assert warm.take("e") is None and len(warm) == 2
    taken = warm.take("b")
    assert taken is not None and len(taken[0].records) == 3 and warm.take("b") is None and warm.held == 6
    warm.put("d", None)  # nothing to keep: the older entry goes too
    assert len(warm) == 0 and warm.held == 0
    none = WarmSessions(sessions=0, messages=10)
    none.put("a", _kept(1))
    assert len(none) == 0
