"""Usage is stored with every reply; chat.usage and chat.cost add it up over the session."""

from __future__ import annotations

import warnings
from decimal import Decimal

import anthropic
import pytest

from claude_history import Chat
from claude_history import pricing as pricing_module
from claude_history.pricing import PricingWarning, cost_of
from claude_history.stores.base import Entry, Store, Summary
from claude_history.usage import TokenUsage

from .conftest import MODEL

KNOWN = {
    "input_tokens": 2_000,
    "output_tokens": 1_000,
    "cache_creation_input_tokens": 4_000,
    "cache_read_input_tokens": 20_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 3_000, "ephemeral_1h_input_tokens": 1_000},
}


def _session(store: Store, session_id: str, model: str, usage: dict[str, object]) -> None:
    store.append(
        session_id,
        [
            Entry({"role": "user", "content": "hi"}),
            Entry(
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                model=model,
                usage=usage,
            ),
        ],
        expected_version=0,
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # in 2,000 x $3 + out 1,000 x $15 + 5m 3,000 x $3.75 + 1h 1,000 x $6 + read 20,000 x $0.30
        # = 6,000 + 15,000 + 11,250 + 6,000 + 6,000 = 44,250 per million -> $0.04425
        ("claude-sonnet-4-6", Decimal("0.04425")),
        # 2,000 x 4 + 1,000 x 20 + 3,000 x 5 + 1,000 x 8 + 20,000 x 0.20
        # = 8,000 + 20,000 + 15,000 + 8,000 + 4,000 = 55,000 -> $0.055
        ("claude-opus-5-5", Decimal("0.055")),
        # prompt 26,000 <= 100k: base tier. 2,000 x 0.10 + 1,000 x 0.50 + 3,000 x 0.125 + 1,000 x 0.20
        # + 20,000 x 0.01 = 200 + 500 + 375 + 200 + 200 = 1,475 -> $0.001475
        ("claude-haiku-5-5", Decimal("0.001475")),
    ],
)
def test_cost_of_a_known_usage_record(
    client: anthropic.Anthropic, store: Store, model: str, expected: Decimal
) -> None:
    _session(store, "known", model, KNOWN)
    chat = Chat(client, model=model, store=store, session_id="known")
    assert chat.exact_cost == expected
    assert chat.cost == pytest.approx(float(expected), rel=1e-12)
    assert chat.cost_complete
    assert chat.usage == TokenUsage.from_api(KNOWN)
    assert chat.usage.ephemeral_1h_input_tokens == 1_000


def test_each_reply_stores_its_model_and_usage(client: anthropic.Anthropic, store: Store) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="u")
    replies = [chat.send("one"), chat.send("two")]
    with chat.stream("three") as s:
        s.until_done()
        replies.append(s.get_final_message())
    stored = store.load("u").messages
    assistants = [m for m in stored if m.role == "assistant"]
    assert [m.model for m in assistants] == [MODEL] * 3
    assert [m.usage for m in assistants] == [
        r.usage.model_dump(mode="json", exclude_none=True) for r in replies
    ]
    assert all(m.usage is None for m in stored if m.role == "user")
    total = sum((TokenUsage.from_api(r.usage) for r in replies), TokenUsage())
    assert chat.usage == total and total.input_tokens > 0 and total.output_tokens > 0
    expected = sum(cost_of(r.usage, MODEL) or 0.0 for r in replies)
    assert chat.cost == pytest.approx(expected, rel=1e-12)
    # A new chat over the same store computes the same figures from what was stored.
    again = Chat(client, model=MODEL, store=store, session_id="u")
    assert again.usage == chat.usage and again.exact_cost == chat.exact_cost


def test_prompt_cache_usage_is_counted_by_kind(client: anthropic.Anthropic) -> None:
    chat = Chat(client, model=MODEL, system="You are a careful assistant. " * 200)  # long enough to cache
    first = chat.send("hello")
    second = chat.send("again")
    assert (first.usage.cache_creation_input_tokens or 0) > 0
    assert (second.usage.cache_read_input_tokens or 0) > 0
    usage = chat.usage
    assert usage.cache_read_input_tokens == second.usage.cache_read_input_tokens
    assert usage.cache_creation_input_tokens == (first.usage.cache_creation_input_tokens or 0) + (
        second.usage.cache_creation_input_tokens or 0
    )


def test_prices_override_on_the_chat(client: anthropic.Anthropic, store: Store) -> None:
    _session(store, "p", "claude-sonnet-4-6", KNOWN)
    cheap = {"models": {"claude-sonnet-4-6": {"output": 0}}}
    chat = Chat(client, model=MODEL, store=store, session_id="p", prices=cheap)
    assert chat.exact_cost == Decimal("0.04425") - Decimal("0.015")


def test_unknown_model_cost_is_incomplete_not_invented(client: anthropic.Anthropic, store: Store) -> None:
    pricing_module._warned.discard("claude-private-7")
    _session(store, "x", "claude-private-7", KNOWN)
    chat = Chat(client, model=MODEL, store=store, session_id="x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert chat.cost == 0.0
        assert chat.cost_complete is False
    assert any(
        issubclass(w.category, PricingWarning) and "claude-private-7" in str(w.message) for w in caught
    )
    assert chat.usage == TokenUsage.from_api(KNOWN)  # tokens are still counted


def test_summaries_usage_counts(client: anthropic.Anthropic, store: Store) -> None:
    _session(store, "s", "claude-sonnet-4-6", KNOWN)
    store.save_summary(
        "s", Summary(0, 2, "they said hi", model="claude-haiku-4-5", usage={"input_tokens": 1_000_000})
    )
    chat = Chat(client, model=MODEL, store=store, session_id="s")
    assert chat.usage.input_tokens == 2_000 + 1_000_000
    assert chat.exact_cost == Decimal("0.04425") + Decimal("1")  # 1M input tokens of haiku-4-5 at $1
