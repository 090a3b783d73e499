"""Prices and the cost of usage records (claude-api-facts.md, "Models, windows, prices")."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path

import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_history import pricing
from claude_history.errors import ConfigurationError
from claude_history.pricing import (
    PricingWarning,
    canonical_model,
    cost_breakdown,
    cost_of,
    exact_cost_of,
    load_prices,
)
from claude_history.usage import TokenUsage, combine_usage

# One usage record used for the hand-computed figures below.
RECORD = {
    "input_tokens": 1_200,
    "output_tokens": 800,
    "cache_creation_input_tokens": 3_000,
    "cache_read_input_tokens": 10_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 1_000},
}


@pytest.fixture(autouse=True)
def _no_env_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pricing.ENV_VAR, raising=False)
    pricing._warned.clear()


def test_sonnet_4_6_hand_computed() -> None:
    # in 1,200 x $3 + out 800 x $15 + 5m writes 2,000 x $3.75 + 1h writes 1,000 x $6 + reads 10,000 x $0.30
    # = 3,600 + 12,000 + 7,500 + 6,000 + 3,000 = 32,100 micro-dollars per million -> $0.0321
    assert exact_cost_of(RECORD, "claude-sonnet-4-6") == Decimal("0.0321")
    assert cost_of(RECORD, "claude-sonnet-4-6") == pytest.approx(0.0321, rel=1e-12)


def test_opus_5_5_hand_computed() -> None:
    # 1,200 x 4 + 800 x 20 + 2,000 x 5 + 1,000 x 8 + 10,000 x 0.20 = 4,800 + 16,000 + 10,000 + 8,000 + 2,000
    # = 40,800 -> $0.0408
    assert exact_cost_of(RECORD, "claude-opus-5-5") == Decimal("0.0408")


def test_haiku_5_5_short_prompt_hand_computed() -> None:
    # prompt = 1,200 + 3,000 + 10,000 = 14,200 <= 100k: base tier
    # 1,200 x 0.10 + 800 x 0.50 + 2,000 x 0.125 + 1,000 x 0.20 + 10,000 x 0.01 = 120 + 400 + 250 + 200 + 100
    # = 1,070 -> $0.00107
    assert exact_cost_of(RECORD, "claude-haiku-5-5") == Decimal("0.00107")


def test_haiku_5_5_long_prompt_tier_applies_to_whole_request() -> None:
    long = dict(RECORD, cache_read_input_tokens=100_000)  # prompt = 1,200 + 3,000 + 100,000 = 104,200 > 100k
    # 1,200 x 0.50 + 800 x 2.50 + 2,000 x 0.625 + 1,000 x 1.00 + 100,000 x 0.05
    # = 600 + 2,000 + 1,250 + 1,000 + 5,000 = 9,850 -> $0.00985 (output too at the long-prompt price)
    assert exact_cost_of(long, "claude-haiku-5-5") == Decimal("0.00985")


def test_haiku_5_5_threshold_is_strictly_over_100k() -> None:
    at = {"input_tokens": 100_000, "output_tokens": 0}
    over = {"input_tokens": 100_001, "output_tokens": 0}
    assert exact_cost_of(at, "claude-haiku-5-5") == Decimal("100000") * Decimal("0.10") / 1_000_000
    assert exact_cost_of(over, "claude-haiku-5-5") == Decimal("100001") * Decimal("0.50") / 1_000_000


def test_breakdown_by_kind() -> None:
    b = cost_breakdown(RECORD, "claude-sonnet-4-6")
    assert b is not None
    assert b.input == pytest.approx(0.0036)
    assert b.output == pytest.approx(0.012)
    assert b.cache_write_5m == pytest.approx(0.0075)
    assert b.cache_write_1h == pytest.approx(0.006)
    assert b.cache_read == pytest.approx(0.003)
    assert b.total == pytest.approx(0.0321)


def test_unsplit_cache_writes_count_as_5m() -> None:
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 1_000_000}
    assert exact_cost_of(usage, "claude-sonnet-4-6") == Decimal("3.75")
    assert TokenUsage.from_api(usage).ephemeral_5m_input_tokens == 1_000_000


def test_batch_half_price_explicit_and_from_service_tier() -> None:
    full = exact_cost_of(RECORD, "claude-sonnet-4-6")
    assert full is not None
    assert exact_cost_of(RECORD, "claude-sonnet-4-6", batch=True) == full / 2
    assert exact_cost_of(dict(RECORD, service_tier="batch"), "claude-sonnet-4-6") == full / 2
    assert exact_cost_of(dict(RECORD, service_tier="batch"), "claude-sonnet-4-6", batch=False) == full


def test_sdk_usage_object_accepted() -> None:
    usage = anthropic.types.Usage.model_validate(RECORD)
    assert exact_cost_of(usage, "claude-sonnet-4-6") == Decimal("0.0321")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        (
            "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-opus-4-5-20251101-v1:0",
            "claude-opus-4-5",
        ),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-opus-5-5-20261001", "claude-opus-5-5"),
    ],
)
def test_snapshot_and_cloud_names_resolve(name: str, expected: str) -> None:
    table = load_prices()
    assert canonical_model(name, table.models) == expected
    assert exact_cost_of(RECORD, name) == exact_cost_of(RECORD, expected)


def test_unknown_model_warns_once_and_invents_nothing() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cost_of(RECORD, "claude-imaginary-9") is None
        assert cost_of(RECORD, "claude-imaginary-9") is None
        assert cost_breakdown(RECORD, "claude-imaginary-9") is None
    relevant = [w for w in caught if issubclass(w.category, PricingWarning)]
    assert len(relevant) == 1
    assert "claude-imaginary-9" in str(relevant[0].message)
    assert "CLAUDE_HISTORY_PRICES" in str(relevant[0].message)


def test_override_by_dict_merges_field_by_field() -> None:
    table = load_prices({"models": {"claude-sonnet-4-6": {"cache_read": 0.25}}})
    price = table.price_for("claude-sonnet-4-6")
    assert price is not None
    assert price.cache_read == Decimal("0.25")
    assert price.input == Decimal(3)  # untouched
    # Other models keep the defaults.
    assert load_prices().price_for("claude-sonnet-4-6") is not None
    assert exact_cost_of(RECORD, "claude-opus-5-5", table) == Decimal("0.0408")


def test_override_plain_model_mapping_adds_a_model() -> None:
    prices = {
        "my-proxy-model": {"input": 1, "output": 2, "cache_write_5m": 3, "cache_write_1h": 4, "cache_read": 5}
    }
    # 1,200 x 1 + 800 x 2 + 2,000 x 3 + 1,000 x 4 + 10,000 x 5
    # = 1,200 + 1,600 + 6,000 + 4,000 + 50,000 = 62,800
    assert exact_cost_of(RECORD, "my-proxy-model", prices) == Decimal("0.0628")


def test_new_model_without_every_price_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="missing cache_write_5m, cache_write_1h, cache_read"):
        load_prices({"models": {"new-model": {"input": 1, "output": 2}}})


@pytest.mark.parametrize(
    "bad",
    [
        {"models": {"claude-sonnet-4-6": {"input": -1}}},
        {"models": {"claude-sonnet-4-6": {"input": "cheap"}}},
        {"models": {"claude-sonnet-4-6": {"inptu": 1}}},
        {"models": ["claude-sonnet-4-6"]},
        {"batch_discount": 2},
    ],
)
def test_malformed_overrides_are_clear_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        load_prices(bad)


def test_override_by_path_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {"models": {"claude-sonnet-4-6": {"output": 30}}, "aliases": {"house": "claude-sonnet-4-6"}}
        )
    )
    # output doubled: 32,100 - 12,000 + 24,000 = 44,100 -> $0.0441
    assert exact_cost_of(RECORD, "claude-sonnet-4-6", str(path)) == Decimal("0.0441")
    assert exact_cost_of(RECORD, "house", path) == Decimal("0.0441")
    monkeypatch.setenv(pricing.ENV_VAR, str(path))
    assert exact_cost_of(RECORD, "claude-sonnet-4-6") == Decimal("0.0441")
    # The argument goes over the environment file.
    assert exact_cost_of(RECORD, "claude-sonnet-4-6", {"claude-sonnet-4-6": {"output": 15}}) == Decimal(
        "0.0321"
    )


def test_bad_env_file_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{not json")
    monkeypatch.setenv(pricing.ENV_VAR, str(path))
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        cost_of(RECORD, "claude-sonnet-4-6")
    monkeypatch.setenv(pricing.ENV_VAR, str(path) + ".missing")
    with pytest.raises(ConfigurationError, match="cannot read"):
        cost_of(RECORD, "claude-sonnet-4-6")


def test_every_model_in_the_facts_table_has_a_price() -> None:
    table = load_prices()
    for name in [
        "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-fable-5-2", "claude-fable-5-1",
        "claude-fable-5", "claude-mythos-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7",
        "claude-opus-4-6", "claude-opus-4-5", "claude-sonnet-5", "claude-sonnet-4-6", "claude-sonnet-4-5",
        "claude-haiku-4-5",
    ]:  # fmt: skip
        assert table.price_for(name) is not None, name


def test_token_usage_adds_up() -> None:
    a = TokenUsage.from_api(RECORD)
    b = TokenUsage(input_tokens=1, output_tokens=2)
    total = sum([a, b], TokenUsage())
    assert total.input_tokens == 1_201
    assert total.output_tokens == 802
    assert total.cache_creation_input_tokens == 3_000
    assert total.ephemeral_1h_input_tokens == 1_000
    assert total.prompt_tokens == 1_201 + 3_000 + 10_000
    assert sum([a, b]) == total


_counts = st.integers(min_value=0, max_value=5_000_000)
_usage = st.fixed_dictionaries(
    {
        "input_tokens": _counts,
        "output_tokens": _counts,
        "cache_read_input_tokens": _counts,
        "cache_creation": st.fixed_dictionaries(
            {"ephemeral_5m_input_tokens": _counts, "ephemeral_1h_input_tokens": _counts}
        ),
    }
)


@given(_usage, _usage, st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5", "claude-fable-5-1"]))
def test_cost_is_additive_over_records_without_tiers(
    a: dict[str, object], b: dict[str, object], model: str
) -> None:
    ta, tb = TokenUsage.from_api(a), TokenUsage.from_api(b)
    ca, cb = exact_cost_of(ta, model), exact_cost_of(tb, model)
    assert ca is not None and cb is not None and ca >= 0
    assert exact_cost_of(ta + tb, model) == ca + cb


def test_a_reply_of_several_requests_is_priced_per_request() -> None:
    # A reply continued after pause_turn keeps each call's usage under "requests" (usage.combine_usage);
    # the haiku-5-5 long-prompt tier is decided per request, not on the sum.
    small = {"input_tokens": 60_000, "output_tokens": 0}
    combined = combine_usage([small, small])
    assert combined["input_tokens"] == 120_000 and len(combined["requests"]) == 2
    # Each request: 60,000 x $0.10 = $0.006 (base tier); the sum 120,000 would wrongly hit the $0.50 tier.
    assert exact_cost_of(combined, "claude-haiku-5-5") == Decimal("0.012")
    assert TokenUsage.from_api(combined).input_tokens == 120_000
    assert combine_usage([combined, small])["requests"] == [small, small, small]


def test_compaction_iterations_are_billed_on_top() -> None:
    # Beta compaction: the compaction iteration's tokens are not in the top-level figures (SDK docs).
    usage = {
        "input_tokens": 1_000,
        "output_tokens": 100,
        "iterations": [
            {"type": "compaction", "input_tokens": 50_000, "output_tokens": 2_000},
            {"type": "message", "input_tokens": 1_000, "output_tokens": 100},
        ],
    }
    # top level: 1,000 x 3 + 100 x 15 = 4,500; compaction: 50,000 x 3 + 2,000 x 15 = 180,000 -> $0.1845
    assert exact_cost_of(usage, "claude-sonnet-4-6") == Decimal("0.1845")
    assert TokenUsage.from_api(usage).input_tokens == 51_000
