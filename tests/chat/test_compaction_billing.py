"""A ServerCompaction chat pays for the compaction passes: the simulator bills each compacting request for two
sampling passes (``usage.iterations``: the compaction pass, left out of the top-level figures, and the reply's
pass), and ``chat.usage`` / ``chat.cost`` must count both, also after the usage went through a store, a
stream or a paused compaction continued within the turn. The expected figures are summed by hand from what
the simulator reports it billed (``Simulator.billing``), priced at claude-api-facts.md's Sonnet 4.6 prices."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history import Chat, ServerCompaction
from claude_history.stores import open_store
from claude_history.testing import Billing, Simulator

from .conftest import MODEL

# USD per million tokens, claude-sonnet-4-6 (claude-api-facts.md): input, output, 5m write, 1h write, read.
PRICE = {
    "input_tokens": Decimal(3),
    "output_tokens": Decimal(15),
    "ephemeral_5m_input_tokens": Decimal("3.75"),
    "ephemeral_1h_input_tokens": Decimal(6),
    "cache_read_input_tokens": Decimal("0.30"),
}
SYSTEM = "You answer questions about animals in full sentences. " * 30


class Billed:
    """The request-id of every successful /v1/messages response (streamed or not), in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def hook(self, response: httpx2.Response) -> None:
        if response.request.url.path.rstrip("/").endswith("/v1/messages") and response.status_code == 200:
            self.ids.append(response.headers["request-id"])

    def billings(self, sim: Simulator) -> list[Billing]:
        found = [sim.billing(i) for i in self.ids]
        assert all(b is not None for b in found), "the simulator keeps the billing of its newest 64 requests"
        return [b for b in found if b is not None]


@pytest.fixture
def billed(sim: Simulator) -> Iterator[tuple[anthropic.Anthropic, Billed]]:
    record = Billed()
    http = httpx2.Client(event_hooks={"response": [record.hook]})
    yield sim.client(max_retries=0, http_client=http), record
    http.close()


def tokens(usage: dict[str, Any]) -> dict[str, int]:
    split = usage["cache_creation"]
    return {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "ephemeral_5m_input_tokens": split["ephemeral_5m_input_tokens"],
        "ephemeral_1h_input_tokens": split["ephemeral_1h_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
    }


def price(usage: dict[str, Any]) -> Decimal:
    return sum((PRICE[k] * n for k, n in tokens(usage).items()), Decimal(0)) / 1_000_000


def passes(billings: list[Billing], kind: str | None = None) -> list[dict[str, Any]]:
    return [p.usage for b in billings for p in b.passes if kind is None or p.kind == kind]


def long_message(i: int) -> str:
    return f"Question {i}: tell me about the sleep of cats, dogs and foxes. " * 12


def converse(chat: Chat, turns: int, *, stream: bool = False) -> None:
    for i in range(turns):
        if stream:
            with chat.stream(long_message(i)) as s:
                for _ in s.text_stream:
                    pass
        else:
            chat.send(long_message(i))


def assert_billed(chat: Chat, billings: list[Billing]) -> None:
    """chat.usage and chat.cost are every pass the simulator billed: the compaction passes included."""
    compaction = passes(billings, "compaction")
    assert compaction, "the simulator compacted the conversation"
    every = passes(billings)
    summed = {k: sum(tokens(u)[k] for u in every) for k in PRICE}
    usage = chat.usage
    assert usage.input_tokens == summed["input_tokens"]
    assert usage.output_tokens == summed["output_tokens"]
    assert usage.cache_read_input_tokens == summed["cache_read_input_tokens"]
    assert usage.ephemeral_5m_input_tokens == summed["ephemeral_5m_input_tokens"]
    assert usage.ephemeral_1h_input_tokens == summed["ephemeral_1h_input_tokens"]
    expected = sum((price(u) for u in every), Decimal(0))
    assert chat.exact_cost == expected
    # ... which is more than the replies' passes alone, by what the compaction passes cost.
    replies = sum((price(u) for u in passes(billings, "message")), Decimal(0))
    assert chat.exact_cost - replies == sum((price(u) for u in compaction), Decimal(0)) > 0


def test_a_compacting_chat_pays_for_the_compaction_passes(
    sim: Simulator, billed: tuple[anthropic.Anthropic, Billed], sqlite_url: str
) -> None:
    client, record = billed
    policy = ServerCompaction(trigger_tokens=1_500)
    chat = Chat(client, model=MODEL, store=sqlite_url, session_id="s", system=SYSTEM, context=policy)
    converse(chat, 6)
    billings = record.billings(sim)
    assert len(billings) == 6
    assert_billed(chat, billings)

    # The iterations are stored with the reply: a chat opened later on the stored session costs the same.
    stored = [m.usage for m in open_store(sqlite_url).load("s").messages if m.usage]
    assert any("iterations" in u for u in stored)
    later = Chat(client, model=MODEL, store=sqlite_url, session_id="s", system=SYSTEM, context=policy)
    assert later.exact_cost == chat.exact_cost
    assert later.usage == chat.usage


def test_a_streamed_compacting_chat_pays_for_the_compaction_passes(
    sim: Simulator, billed: tuple[anthropic.Anthropic, Billed]
) -> None:
    client, record = billed
    chat = Chat(client, model=MODEL, system=SYSTEM, context=ServerCompaction(trigger_tokens=1_500))
    converse(chat, 6, stream=True)
    billings = record.billings(sim)
    assert len(billings) == 6
    assert_billed(chat, billings)


def test_a_paused_compaction_continued_in_the_turn_is_billed_with_it(
    sim: Simulator, billed: tuple[anthropic.Anthropic, Billed]
) -> None:
    client, record = billed
    policy = ServerCompaction(trigger_tokens=1_500, pause_after_compaction=True)
    chat = Chat(client, model=MODEL, system=SYSTEM, context=policy)
    converse(chat, 6)
    billings = record.billings(sim)
    paused = [b for b in billings if [p.kind for p in b.passes] == ["compaction"]]
    assert paused, "a compaction paused the reply and the turn went on with another call"
    assert len(billings) == 6 + len(paused)
    assert chat.version == 6
    assert_billed(chat, billings)


def test_a_compacting_request_does_not_skew_the_estimate_of_the_next(
    sim: Simulator, billed: tuple[anthropic.Anthropic, Billed]
) -> None:
    """The size of a compacting request is not observed (its top-level usage is the reply's pass over the
    compacted context; the compaction iteration may bill less than it closed): the calibration learnt from the
    other requests holds, and the report of the next request stays as close to what the simulator bills as
    before any compaction."""
    client, record = billed
    chat = Chat(client, model=MODEL, system=SYSTEM, context=ServerCompaction(3_000), max_tokens=256)
    errors: list[float] = []
    ratios: list[float] = []
    compacted_at: list[int] = []
    for i in range(24):
        report = chat.context_report(long_message(i))
        ratios.append(report.calibration_ratio)
        chat.send(long_message(i))
        billing = sim.billing(record.ids[-1])
        assert billing is not None
        sent = billing.passes[0].total  # the compaction pass reads what was sent; otherwise the only pass
        errors.append(abs(report.total_tokens - sent) / sent)
        if any(p.kind == "compaction" for p in billing.passes):
            compacted_at.append(i)
    assert compacted_at and compacted_at[0] < 20, compacted_at
    after = [i + 1 for i in compacted_at if i + 1 < len(errors)]
    assert after
    before = [e for i, e in enumerate(errors) if i >= 2 and i - 1 not in compacted_at and i not in after]
    assert max(errors[i] for i in after) <= max(before, default=0.0) + 0.02, (errors, compacted_at)
    assert max(ratios[2:]) - min(ratios[2:]) < 0.05, ratios
