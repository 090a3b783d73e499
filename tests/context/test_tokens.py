"""Token estimates: the documented rules for images and PDFs, calibration, and the estimator's error against
the simulator's counts (the figures are printed: run with -s to see them)."""

from __future__ import annotations

import asyncio
import base64
import math
import random
from typing import Any

import anthropic
import pytest

from claude_history.context import plan_request
from claude_history.tokens import (
    PDF_PAGE_TOKENS,
    Calibration,
    TokenEstimate,
    acount_tokens,
    count_tokens,
    estimate_block,
    estimate_message,
    estimate_messages,
    estimate_request,
    estimate_system,
    estimate_text,
)

from .conversation import build_history, image_block, words


def test_text_estimate_is_per_character_class() -> None:
    assert estimate_text("") == 0
    assert estimate_text("a" * 35) == pytest.approx(10)
    assert estimate_text("日本語") == 3  # one token per non-ASCII character


def test_image_by_the_documented_rule() -> None:
    # ceil(w/28) * ceil(h/28), long edge capped at 1568 px (standard models) or 2576 px (4.7+ and 5.x).
    small = estimate_block(image_block(300, 200), "claude-sonnet-4-6")
    assert small.fixed == math.ceil(300 / 28) * math.ceil(200 / 28)
    big = estimate_block(image_block(3000, 1500), "claude-sonnet-4-6")
    assert big.fixed <= 1568
    high = estimate_block(image_block(3000, 1500), "claude-opus-5-5")
    assert big.fixed < high.fixed <= 4784


def test_unmeasurable_image_counts_the_cap() -> None:
    block = {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    assert estimate_block(block, "claude-sonnet-4-6").fixed == 1568


def test_pdf_pages_are_counted() -> None:
    pdf = b"%PDF-1.4\n" + b"".join(b"%d 0 obj << /Type /Page >> endobj\n" % i for i in range(3))
    pdf += b"9 0 obj << /Type /Pages /Count 3 >> endobj\n%%EOF"
    block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()},
    }
    assert estimate_block(block).fixed == 3 * PDF_PAGE_TOKENS


def test_thinking_can_be_left_out() -> None:
    message = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "x" * 700, "signature": "s"},
            {"type": "text", "text": "ok"},
        ],
    }
    assert estimate_message(message, drop_thinking=True).text < estimate_message(message).text - 100


def test_calibration_learns_a_stable_bias_and_resists_one_outlier() -> None:
    calibration = Calibration()
    estimate = TokenEstimate(text=1000, fixed=500)
    for _ in range(6):
        calibration = calibration.observe(500 + 870, estimate)  # the text part is really 0.87x the estimate
    assert calibration.ratio == pytest.approx(0.87, abs=0.005)
    assert calibration.observations == 6
    odd = calibration.observe(500 + 5000, estimate)  # e.g. a changed system prompt
    assert odd.ratio < 3
    assert TokenEstimate(100.0, 7).tokens(0.87) == 87 + 7


def corpus(seed: int, model: str) -> list[dict[str, Any]]:
    """Requests of every kind: prose, tool loops, thinking, images, unicode. (Thinking blocks here carry
    made-up signatures: only where the simulator does not check them, i.e. before the current tool loop on a
    model that does not bind thinking to its prefix.)"""
    open_loop = seed % 3 == 0
    thinking = seed % 2 == 0 and not open_loop and model == "claude-sonnet-4-6"
    history = build_history(seed, 6, thinking=thinking, images=True, open_tool_loop=open_loop)
    rng = random.Random(seed)
    if seed % 4 == 0:
        history[-1] = {"role": "user", "content": "Übersetze: " + "日本語のテキスト " * rng.randint(5, 60)}
    return history


def test_estimator_error_against_the_simulator(sim: Any) -> None:
    """Raw estimates stay on the safe side within a bounded error; after a few observed requests, the
    calibrated estimate is within a few percent of the exact count."""
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    report = []
    for model in ("claude-sonnet-4-6", "claude-opus-5-5"):
        raw_errors: list[float] = []
        calibrated_errors: list[float] = []
        calibration = Calibration()
        for seed in range(24):
            history = corpus(seed, model)
            exact = count_tokens(client, model=model, messages=history, system="Be brief.")
            estimate = estimate_request(history, model=model, system="Be brief.")
            raw_errors.append((estimate - exact) / exact)
            if calibration.observations >= 3:
                calibrated = estimate_request(
                    history, model=model, system="Be brief.", calibration=calibration
                )
                calibrated_errors.append((calibrated - exact) / exact)
            raw = estimate_messages(history, model) + estimate_system("Be brief.", model)
            calibration = calibration.observe(exact, raw)
        mean_raw = sum(raw_errors) / len(raw_errors)
        worst_cal = max(abs(e) for e in calibrated_errors)
        report.append(
            f"{model}: raw mean {mean_raw:+.1%} (min {min(raw_errors):+.1%}, max {max(raw_errors):+.1%}); "
            f"calibrated worst {worst_cal:.1%} over {len(calibrated_errors)} requests"
        )
        assert min(raw_errors) > -0.10, "the raw estimate must not undercount much"
        assert max(raw_errors) < 0.40
        assert worst_cal < 0.06
    print("\n" + "\n".join(report))


def test_planned_size_is_exact_up_to_the_last_response(sim: Any) -> None:
    """Over a real conversation, the plan's figure matches the billed prompt within 2% once calibrated."""
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    rng = random.Random(3)
    log: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    errors = []
    for turn in range(14):
        user = {"role": "user", "content": words(rng, rng.choice([10, 80, 300]))}
        plan = plan_request(
            log, [user], model="claude-sonnet-4-6", system="Be brief. " * 50, usage_history=usage
        )
        reply = client.messages.create(model="claude-sonnet-4-6", max_tokens=500, **plan.request_kwargs())
        billed = (
            reply.usage.input_tokens
            + (reply.usage.cache_read_input_tokens or 0)
            + (reply.usage.cache_creation_input_tokens or 0)
        )
        if turn >= 2:
            errors.append(abs(plan.estimated_input_tokens - billed) / billed)
            assert plan.report is not None and plan.report.exact_prefix_tokens > 0
        log += [
            user,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]},
        ]
        usage.append({"seq": len(log) - 1, "usage": reply.usage.model_dump(exclude_none=True)})
    print(f"\nplanned vs billed prompt: worst {max(errors):.2%}, mean {sum(errors) / len(errors):.2%}")
    assert max(errors) < 0.02


def test_exact_count_near_the_budget_can_tighten_the_window(sim: Any) -> None:
    """Near the budget the plan asks for an exact count; a count over the budget, given back, cuts deeper."""
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    history = build_history(21, 12, images=False)
    log, pending = history[:-1], history[-1:]
    from claude_history.context import TokenBudget

    whole = plan_request(log, pending, model="claude-sonnet-4-6").estimated_input_tokens
    policy = TokenBudget(int(whole * 1.2))
    plan = plan_request(log, pending, model="claude-sonnet-4-6", policy=policy)
    assert plan.check_count
    exact = count_tokens(client, model="claude-sonnet-4-6", max_tokens=100, **plan.request_kwargs())
    assert exact <= policy.max_input_tokens
    # Pretend the API counted far more than estimated: the window moves to fit.
    tighter = plan_request(
        log,
        pending,
        model="claude-sonnet-4-6",
        policy=policy,
        measured_input_tokens=int(policy.max_input_tokens * 1.3),
    )
    assert tighter.window_start > plan.window_start


def test_count_tokens_uses_the_beta_endpoint_for_beta_requests(sim: Any) -> None:
    from claude_history.context import ServerCompaction

    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    plan = plan_request(
        [], [{"role": "user", "content": "hello there"}], model="claude-opus-5-5", policy=ServerCompaction()
    )
    assert count_tokens(client, model="claude-opus-5-5", **plan.request_kwargs()) > 0
    assert "compact-2026-01-12" in sim.requests[-1]["headers"].get("anthropic-beta", "")


@pytest.mark.parametrize("asynchronous", [False, True])
def test_count_tokens_drops_what_count_tokens_does_not_take(sim: Any, asynchronous: bool) -> None:
    # Found with the strict simulator: the helper passed create-only arguments on (the SDK raised TypeError for
    # inference_geo / container / diagnostics) and a hand-kept list decided what to drop; now the endpoint's own
    # signature decides, as in Chat.
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello there"}],
        "inference_geo": "us",
        "container": None,
        "metadata": {"user_id": "u1"},
        "system": None,
    }
    if asynchronous:
        client = anthropic.AsyncAnthropic(api_key="test", base_url=sim.base_url, max_retries=0)
        assert asyncio.run(acount_tokens(client, **request)) > 0
    else:
        client_sync = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
        assert count_tokens(client_sync, **request) > 0
    sent = sim.requests[-1]["body"]
    assert set(sent) == {"model", "messages"}
