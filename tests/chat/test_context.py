"""Chat over the context policies: the log stays whole, requests are shaped by the plan (context/plan.py)."""

from __future__ import annotations

import anthropic
import pytest

from claude_history import Chat, LastTurns, ServerCompaction, Summarize
from claude_history.stores.base import Store
from claude_history.testing import Simulator
from claude_history.usage import TokenUsage

from .conftest import MODEL, bodies, normalized


def _long(i: int) -> str:
    return f"turn {i}: " + " ".join(f"word{i}x{k}" for k in range(80))


def test_last_turns_shapes_the_request_not_the_log(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="w", context=LastTurns(2))
    for i in range(4):
        chat.send(f"message {i}")
    assert len(store.load("w").messages) == 8  # the log keeps everything
    sent = normalized(bodies(sim)[-1]["messages"])
    assert sent == normalized(chat.messages[4:7])  # the last two turns: user, assistant, user


def test_summarize_stores_a_summary_and_counts_its_cost(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    policy = Summarize(
        max_input_tokens=2000, low_water=1200, max_summary_tokens=200, model="claude-haiku-4-5"
    )
    chat = Chat(client, model=MODEL, store=store, session_id="sum", system="Be brief.", context=policy)
    replies = [chat.send(_long(i)) for i in range(10)]

    data = store.load("sum")
    assert len(data.messages) == 20  # the log is untouched
    assert data.summaries, "the window moved, so a summary was written"
    summary = data.summaries[-1]
    assert summary.start == 0 and 0 < summary.end < 20 and summary.model == "claude-haiku-4-5"
    assert bodies(sim, model="claude-haiku-4-5"), "the summary was written by the configured model"
    # The summary rides in a second system block after the static prompt.
    system = bodies(sim, model=MODEL)[-1]["system"]
    assert system[0]["text"] == "Be brief." and "Summary of the earlier part" in system[1]["text"]
    # Usage and cost include the summariser's call.
    expected = sum((TokenUsage.from_api(r.usage) for r in replies), TokenUsage())
    expected += sum((TokenUsage.from_api(s.usage) for s in data.summaries), TokenUsage())
    assert chat.usage == expected
    fresh = Chat(client, model=MODEL, store=store, session_id="sum")
    assert fresh.usage == expected and fresh.cost == pytest.approx(chat.cost)


def test_a_failed_summary_falls_back_to_trimming(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    # The summariser model does not exist: every summary call is a 404; the turns still succeed.
    policy = Summarize(
        max_input_tokens=2000, low_water=1200, max_summary_tokens=200, model="claude-nonexistent-1"
    )
    chat = Chat(client, model=MODEL, store=store, session_id="fb", context=policy)
    for i in range(10):
        chat.send(_long(i))
    assert bodies(sim, model="claude-nonexistent-1"), "a summary was attempted"
    assert store.load("fb").summaries == []
    assert len(chat.messages) == 20
    first_sent = normalized(bodies(sim, model=MODEL)[-1]["messages"])[0]
    assert first_sent != normalized(chat.messages)[0]  # trimmed instead


def test_server_compaction_blocks_round_trip(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = Chat(
        client, model=MODEL, store=store, session_id="cmp", context=ServerCompaction(trigger_tokens=600)
    )
    for i in range(4):
        chat.send(_long(i))
    compacted = [
        m for m in chat.messages if m["role"] == "assistant" and m["content"][0]["type"] == "compaction"
    ]
    assert compacted, "the simulator compacted the conversation"
    chat.send("and now?")
    request = sim.requests[-1]
    assert "compact-2026-01-12" in request["headers"]["anthropic-beta"]
    sent = normalized(request["body"]["messages"])
    assert normalized(compacted)[0] in sent  # sent back exactly as it came
    assert store.load("cmp").message_params() == chat.messages


def test_pause_after_compaction_continues_within_the_turn(
    sim: Simulator, client: anthropic.Anthropic
) -> None:
    # A current model (no prefill): the paused compaction response is sent back to continue, not a prefill.
    policy = ServerCompaction(trigger_tokens=600, pause_after_compaction=True)
    chat = Chat(client, model=MODEL, context=policy)
    for i in range(4):
        reply = chat.send(_long(i))
        assert reply.stop_reason == "end_turn"
    assistants = [m for m in chat.messages if m["role"] == "assistant"]
    merged = [m for m in assistants if m["content"][0]["type"] == "compaction"]
    assert merged and all(len(m["content"]) >= 2 for m in merged)  # compaction + the continued answer
    assert chat.version == 4


def test_context_report_plans_without_calling(sim: Simulator, client: anthropic.Anthropic) -> None:
    chat = Chat(client, model=MODEL, system="Be brief.", context=LastTurns(1))
    chat.send("one")
    chat.send("two")
    before = len(sim.requests)
    report = chat.context_report("three")
    assert len(sim.requests) == before
    assert report.model == MODEL and report.kept_turns == 1 and report.dropped_turns == 2
    assert report.total_tokens > 0 and report.system_tokens > 0
