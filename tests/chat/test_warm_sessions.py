"""``Chat(..., warm=WarmSessions())``: a fresh chat per turn (a web handler's) starts from what the last turn on
the session left in the process, checked against the store. It must send and store exactly what a cold fresh
chat does, read only the session's metadata row while nobody else wrote, and read afresh whenever someone did
(another chat, another process, a delete and re-create); two chats of one process taking turns on one session
never share a planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history import CacheAwareWindow, Chat, ConfigurationError, KeepAll, LastTurns, WarmSessions
from claude_history.stores import open_store
from claude_history.testing import Simulator

from .conftest import MODEL
from .test_turn_cost import CountingStore, count_estimates

POLICIES: dict[str, Any] = {
    "keep-all": KeepAll,
    "cache-aware": lambda: CacheAwareWindow(2_500),  # small: the window moves within a few turns
    "last-turns": lambda: LastTurns(3),
}


def _last_bodies(sim: Simulator, n: int) -> list[dict[str, Any]]:
    """The bodies of the newest ``n`` Messages API calls (the simulator keeps a bounded log of requests)."""
    return [r["body"] for r in sim.requests if r["method"] == "POST" and r["path"] == "/v1/messages"][-n:]


def _chat(client: anthropic.Anthropic, store: Any, session: str, policy: str, warm: WarmSessions | None) -> Chat:
    return Chat(client, model=MODEL, store=store, session_id=session, max_tokens=80, context=POLICIES[policy](),
                system="Be brief.", warm=warm)  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    policy=st.sampled_from(sorted(POLICIES)),
    texts=st.lists(st.text(alphabet="abcdefgh ijk", min_size=1, max_size=600).filter(str.strip), min_size=2,
                   max_size=10),
    others=st.sets(st.integers(0, 9), max_size=4),
    data=st.data(),
)
def test_fresh_chats_with_warm_sessions_send_and_store_what_cold_ones_do(
    sim: Simulator, tmp_path: Path, policy: str, texts: list[str], others: set[int], data: st.DataObject
) -> None:
    """Turn by turn, a fresh warm chat on session W and a fresh cold chat on session C send the same request;
    before some turns another chat (not warm, as another process) writes a turn into both."""
    client = sim.client(max_retries=0)
    store = open_store(f"sqlite:///{tmp_path / data.draw(st.uuids()).hex}.db")
    warm = WarmSessions()
    try:
        for i, text in enumerate(texts):
            if i in others:
                for session in ("W", "C"):
                    _chat(client, store, session, policy, None).send(f"from elsewhere {i}")
            _chat(client, store, "W", policy, warm).send(text)
            _chat(client, store, "C", policy, None).send(text)
            warm_body, cold_body = _last_bodies(sim, 2)
            assert warm_body == cold_body
        assert [m.message for m in store.load("W").messages] == [m.message for m in store.load("C").messages]
    finally:
        store.close()
        client.close()


def test_a_warm_fresh_chat_reads_the_metadata_row_and_sizes_only_its_new_messages(
    client: anthropic.Anthropic, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CountingStore(open_store(sqlite_url))
    warm = WarmSessions()
    estimates = count_estimates(monkeypatch)
    for i in range(12):
        store.calls.clear()
        estimates[0] = 0
        _chat(client, store, "s", "keep-all", warm).send(f"question {i}")
        reads = {name: n for name, n in store.calls.items() if name not in ("append", "append_checkpointed")}
        if i == 0:
            assert "get_session" in reads or "load" in reads  # a new session: nothing to start from
        else:
            assert reads == {"get_session": 1}
            # The planner the last chat left: only the new question and its reply are sized (a cold fresh
            # chat sizes every message of the session).
            assert 1 <= estimates[0] <= 2 * 4
    assert len(warm) == 1 and warm.held == 24


def test_a_session_deleted_and_created_again_is_read_afresh(client: anthropic.Anthropic, sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    warm = WarmSessions()
    _chat(client, store, "s", "keep-all", warm).send("old session")
    store.delete("s")
    _chat(client, store, "s", "keep-all", None).send("new session")  # version 1 again, another incarnation
    chat = _chat(client, store, "s", "keep-all", warm)
    chat.send("next")
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["new session", "next"]


def test_two_chats_of_one_process_taking_turns_see_each_others_turns(
    client: anthropic.Anthropic, sqlite_url: str, sim: Simulator
) -> None:
    """A long-lived chat and fresh ones take turns on one session with one WarmSessions: the entry moves
    between them (never shared), no turn conflicts, and each request holds every earlier turn."""
    store = open_store(sqlite_url)
    warm = WarmSessions()
    kept = _chat(client, store, "s", "cache-aware", warm)
    for i in range(6):
        chat = kept if i % 2 == 0 else _chat(client, store, "s", "cache-aware", warm)
        chat.send(f"turn {i}")
        (body,) = _last_bodies(sim, 1)
        assert f"turn {i}" in str(body["messages"][-1])
    assert [m.message["content"] for m in store.load("s").messages if m.role == "user"] == [
        f"turn {i}" for i in range(6)
    ]


def test_warm_must_be_a_warm_sessions(client: anthropic.Anthropic) -> None:
    with pytest.raises(ConfigurationError, match="WarmSessions"):
        Chat(client, model=MODEL, warm={})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sessions"):
        WarmSessions(sessions=-1)


def test_chats_on_two_stores_keep_separate_entries_for_the_same_id(client: anthropic.Anthropic, tmp_path: Path) -> None:
    warm = WarmSessions()
    first, second = (open_store(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b"))
    _chat(client, first, "s", "keep-all", warm).send("in the first store")
    _chat(client, second, "s", "keep-all", warm).send("in the second store")
    assert len(warm) == 2  # one entry per store, though the id is the same
    chat = _chat(client, first, "s", "keep-all", warm)
    chat.send("again in the first")
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["in the first store", "again in the first"]


@pytest.mark.parametrize("warm", [False, True])
def test_what_a_caller_gives_or_gets_is_not_the_chats_own(
    sim: Simulator, client: anthropic.Anthropic, store: Any, warm: bool
) -> None:
    """A turn keeps its message and usage dicts as they are (no copy per message at commit: the planner and a
    warm entry share them). So whatever crosses to the caller must be apart: blocks the caller sent and later
    changes, the history, the pending turn and the reply the caller reads and changes, touch neither the
    stored session nor the next request."""
    kept = WarmSessions() if warm else None

    def chat() -> Chat:
        return Chat(client, model=MODEL, store=store, session_id="own", max_tokens=80, system="Be brief.",
                    warm=kept)  # fmt: skip

    blocks = [{"type": "text", "text": "first question"}]
    first = chat()
    reply = first.send(blocks)
    blocks[0]["text"] = "CHANGED BY THE CALLER"
    blocks.append({"type": "text", "text": "ADDED BY THE CALLER"})
    reply.content[0].text = "CHANGED REPLY"  # type: ignore[union-attr]
    history = first.messages
    history[0]["content"][0]["text"] = "CHANGED HISTORY"
    history[1]["role"] = "user"
    stored = [m.message for m in store.load("own").messages]

    second = chat()
    second.send("second question")
    sent = _last_bodies(sim, 1)[0]["messages"]
    assert sent[0]["content"][0]["text"] == "first question"
    assert len(sent[0]["content"]) == 1
    assert sent[1]["role"] == "assistant" and "CHANGED" not in str(sent[1])
    assert [m.message for m in store.load("own").messages][:2] == stored
    assert "CHANGED" not in str(stored) and "ADDED" not in str(stored)
    assert "CHANGED" not in str(second.messages)
