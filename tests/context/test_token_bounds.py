"""The worst-case bounds (``tokens.bound_*``) that let the planner skip ``count_tokens``: by property, over
adversarial content of every kind, a bound is never below what the simulator counts for the same request, and
for text it is at least 3x the estimate (ASCII; 2x any text) -- the margin of the DENSE scenario of
test_exact_count.py, where a message weighs three times its estimate. Every request here goes through the
simulator's own validation and tokenizer (``parse_request``, ``Counter``, ``build_layout``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.context import plan_request
from claude_history.testing._tokens import Counter, build_layout
from claude_history.testing._validation import parse_request
from claude_history.tokens import (
    bound_message,
    bound_system,
    bound_text,
    bound_tools,
    count_tokens,
    estimate_message,
    estimate_text,
)

from .conversation import image_block

MODELS = ("claude-sonnet-4-6", "claude-opus-5-5", "claude-haiku-4-5")

# Any character JSON can carry (no lone surrogates), plus a letter so a text block is never blank.
_ANY = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
_DENSE = st.text(st.sampled_from("{}[]()<>=+-*/\\|&^%$#@!~`'\";:,.?0123456789abcdefXYZ_\t\n"), max_size=300)
_BASE64 = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
_CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=200)
_EMOJI = st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), max_size=100)
TEXTS = st.one_of(_ANY, _DENSE, _BASE64, _CJK, _EMOJI).map(lambda s: "x" + s)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXTS),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXTS, inner, max_size=4)),
    max_leaves=12,
)


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


@st.composite
def exchanges(draw: Any, n: int) -> list[dict[str, Any]]:
    """One user message, or a user message, an assistant tool_use and the tool_result answering it."""
    kind = draw(st.sampled_from(["text", "string", "image", "document", "tool"]))
    if kind == "string":
        return [{"role": "user", "content": draw(TEXTS)}]
    if kind == "text":
        return [{"role": "user", "content": [text_block(t) for t in draw(st.lists(TEXTS, min_size=1, max_size=3))]}]
    if kind == "image":
        width, height = draw(st.integers(1, 900)), draw(st.integers(1, 900))
        return [{"role": "user", "content": [image_block(width, height), text_block(draw(TEXTS))]}]
    if kind == "document":
        document = {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": draw(TEXTS)},
            "title": draw(TEXTS),
        }
        return [{"role": "user", "content": [document, text_block(draw(TEXTS))]}]
    name = draw(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True))
    tool_input = draw(st.dictionaries(TEXTS, JSON_VALUES, max_size=4))
    result = draw(st.one_of(TEXTS, st.lists(TEXTS.map(text_block), min_size=1, max_size=3)))
    return [
        {"role": "user", "content": draw(TEXTS)},
        {
            "role": "assistant",
            "content": [
                text_block(draw(TEXTS)),
                {"type": "tool_use", "id": f"toolu_{n:02d}", "name": name, "input": tool_input},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n:02d}", "content": result}]},
    ]


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 4))):
        exchange = draw(exchanges(n))
        if messages:
            messages.append({"role": "assistant", "content": [text_block(draw(TEXTS))]})
        messages += exchange
    body: dict[str, Any] = {"model": draw(st.sampled_from(MODELS)), "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(TEXTS)
    if draw(st.booleans()):
        body["tools"] = [
            {
                "name": "lookup",
                "description": draw(TEXTS),
                "input_schema": {"type": "object", "properties": {draw(TEXTS): {"type": "string"}}},
            }
        ]
    return body


def simulator_count(body: dict[str, Any]) -> int:
    request = parse_request(json.loads(json.dumps(body)), count_only=True, headers={})
    counter = Counter(request.model, request.info.tokenizer_factor, request.image_sizes)
    return build_layout(request, counter).total


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_bound_is_never_below_the_simulators_count(body: dict[str, Any]) -> None:
    model = body["model"]
    bound = (
        bound_system(body.get("system"), model)
        + bound_tools(body.get("tools"))
        + sum(bound_message(m, model, placeholder="[image omitted]") for m in body["messages"])
    )
    assert bound >= simulator_count(body)
    # Message by message too: the planner adds up bounds of the messages it never saw billed.
    system_only = simulator_count({**body, "messages": body["messages"][:1]})
    assert bound_system(body.get("system"), model) + bound_tools(body.get("tools")) + bound_message(
        body["messages"][0], model
    ) >= system_only


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_the_text_bound_covers_a_message_three_times_denser_than_estimated(text: str) -> None:
    """What a dense message (code, CJK, base64) may weigh against its estimate: 3x for ASCII, 2x for any text.
    The estimate of a message is what the planner trusts until usage measures it; the bound never trusts it."""
    ascii_only = text.isascii()
    assert bound_text(text) >= (3 if ascii_only else 2) * estimate_text(text)
    message = {"role": "user", "content": text}
    factor = 1.0  # claude-sonnet-4-6
    assert bound_message(message, "claude-sonnet-4-6") >= 2 * estimate_message(message, "claude-sonnet-4-6").tokens(
        factor
    )


def test_a_history_denser_than_estimated_is_counted_and_never_sent_too_long(sim: Any) -> None:
    """An imported log (no usage to go by) of many tiny blocks weighs about 1.5x its estimate in the simulator:
    near the context window the estimate alone would not even have asked for a count, and sent as planned the
    request would be refused ("prompt is too long"). Its bound does not fit, so the plan asks for a count, and
    the plan made with that count is accepted."""
    model = "claude-haiku-4-5"
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    log: list[dict[str, Any]] = []
    for _ in range(52):
        log.append({"role": "user", "content": [{"type": "text", "text": "ab"} for _ in range(1000)]})
        log.append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    pending = [{"role": "user", "content": "Go on."}]
    plan = plan_request(log, pending, model=model)
    assert plan.report is not None
    assert plan.estimated_input_tokens < 0.75 * plan.report.budget
    exact = count_tokens(client, model=model, **plan.request_kwargs())
    assert exact > plan.report.context_window
    assert plan.check_count
    again = plan_request(log, pending, model=model, measured_input_tokens=exact)
    assert again.window_start > plan.window_start
    reply = client.messages.create(model=model, max_tokens=100, **again.request_kwargs())
    billed = reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0)
    assert billed + (reply.usage.cache_creation_input_tokens or 0) <= plan.report.context_window
