"""Context editing is applied, not just accepted: ``clear_tool_uses`` and ``clear_thinking`` change what the
model sees and is billed for, and the response reports ``context_management.applied_edits``."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.testing import Simulator
from claude_history.testing._context_edits import CLEARED_RESULT

from .helpers import MODEL, assistant, body, post, user

BETA = {"anthropic-beta": "context-management-2025-06-27"}
LOOKUP = {"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {}}}
NOTE = {"name": "note", "description": "Take a note", "input_schema": {"type": "object", "properties": {}}}


def tool_history(n: int, size: int = 400, name: str = "lookup") -> list[dict[str, Any]]:
    """A conversation of ``n`` tool rounds, each result ``size`` characters, ending with a user question."""
    out: list[dict[str, Any]] = [user("Start the research.")]
    for k in range(n):
        out.append(assistant([{"type": "tool_use", "id": f"toolu_{name}{k}", "name": name, "input": {"q": k}}]))
        out.append(user([{"type": "tool_result", "tool_use_id": f"toolu_{name}{k}", "content": f"{k}" * size}]))
    out[-1]["content"].append({"type": "text", "text": "Go on."})
    return out


def create(sim: Simulator, messages: list[dict[str, Any]], edits: list[dict[str, Any]], **fields: Any) -> Any:
    payload = body(*messages, tools=[LOOKUP, NOTE], context_management={"edits": edits}, **fields)
    response = post(sim.base_url, payload, headers=BETA)
    assert response.status_code == 200, response.text
    return response.json()


def count(sim: Simulator, messages: list[dict[str, Any]], edits: list[dict[str, Any]] | None = None) -> Any:
    payload = {"model": MODEL, "messages": messages, "tools": [LOOKUP, NOTE]}
    if edits is not None:
        payload["context_management"] = {"edits": edits}
    return post(sim.base_url, payload, path="/v1/messages/count_tokens", headers=BETA).json()


def test_clear_tool_uses_clears_the_oldest_results_past_the_trigger(sim: Simulator) -> None:
    history = tool_history(6)
    full = count(sim, history)["input_tokens"]
    edit = {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 100}}
    reply = create(sim, history, [edit])
    (applied,) = reply["context_management"]["applied_edits"]
    assert applied["type"] == "clear_tool_uses_20250919" and applied["cleared_tool_uses"] == 3  # keeps 3
    # The model is billed for the edited prompt: what count_tokens says for it, and less than the full one.
    counted = count(sim, history, [edit])
    assert counted["context_management"] == {"original_input_tokens": full}
    assert reply["usage"]["input_tokens"] == counted["input_tokens"] == full - applied["cleared_input_tokens"]
    # The edit is applied to what the model sees, not to what was sent.
    assert sim.requests[-2]["body"]["messages"] == history
    assert reply["content"][0]["text"].startswith("Tool results received: toolu_lookup5")


def test_below_the_trigger_or_under_clear_at_least_nothing_is_cleared(sim: Simulator) -> None:
    history = tool_history(6)
    quiet = create(sim, history, [{"type": "clear_tool_uses_20250919"}])  # default trigger: 100,000 tokens
    assert quiet["context_management"] == {"applied_edits": []}
    too_little = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": 2},
        "clear_at_least": {"type": "input_tokens", "value": 1_000_000},
    }
    assert create(sim, history, [too_little])["context_management"] == {"applied_edits": []}


def test_keep_exclude_tools_and_clear_tool_inputs(sim: Simulator) -> None:
    history = tool_history(3) + tool_history(3, name="note")[1:]
    history[6]["content"] = [b for b in history[6]["content"] if b["type"] != "text"]
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": 1},
        "keep": {"type": "tool_uses", "value": 1},
        "exclude_tools": ["note"],
        "clear_tool_inputs": True,
    }
    reply = create(sim, history, [edit])
    assert reply["context_management"]["applied_edits"][0]["cleared_tool_uses"] == 2  # lookups 0 and 1
    tokens = count(sim, history, [edit])["input_tokens"]
    cleared = [dict(m) for m in history]
    for k in (1, 3):
        cleared[k] = assistant([{**history[k]["content"][0], "input": {}}])
        cleared[k + 1] = user(
            [{"type": "tool_result", "tool_use_id": f"toolu_lookup{k // 2}", "content": CLEARED_RESULT}]
        )
    assert tokens == count(sim, cleared)["input_tokens"]


def test_clear_thinking_keeps_the_newest_turns(sim: Simulator) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    client = sim.client(max_retries=0)
    history: list[Any] = []
    for text in ("one", "two", "three"):
        history.append(user(text))
        reply = client.messages.create(model=MODEL, max_tokens=2000, thinking=thinking, messages=history)
        history.append(reply.to_param())
    history.append(user("four"))
    edit = {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}
    beta = client.beta.messages.create(
        model=MODEL,
        max_tokens=2000,
        thinking=thinking,
        messages=history,
        context_management={"edits": [edit]},
        betas=["context-management-2025-06-27"],
    )
    assert beta.context_management is not None
    (applied,) = beta.context_management.applied_edits
    assert applied.type == "clear_thinking_20251015" and applied.cleared_thinking_turns == 2
    assert applied.cleared_input_tokens > 0
    keep_all = {"type": "clear_thinking_20251015", "keep": "all"}
    with client.beta.messages.stream(
        model=MODEL,
        max_tokens=2000,
        thinking=thinking,
        messages=history,
        context_management={"edits": [keep_all]},
        betas=["context-management-2025-06-27"],
    ) as stream:
        final = stream.get_final_message()
    assert final.context_management is not None and final.context_management.applied_edits == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rounds=st.integers(0, 8),
    sizes=st.lists(st.integers(1, 600), min_size=8, max_size=8),
    keep=st.integers(0, 5),
    trigger=st.integers(0, 10),
    excluded=st.booleans(),
)
def test_clearing_keeps_the_pairs_and_bills_what_count_tokens_says(
    sim: Simulator, rounds: int, sizes: list[int], keep: int, trigger: int, excluded: bool
) -> None:
    history: list[dict[str, Any]] = [user("Start.")]
    for k in range(rounds):
        name = "note" if excluded and k % 3 == 0 else "lookup"
        history.append(assistant([{"type": "tool_use", "id": f"toolu_{k}", "name": name, "input": {"k": k}}]))
        history.append(user([{"type": "tool_result", "tool_use_id": f"toolu_{k}", "content": "r" * sizes[k]}]))
    if rounds:
        history[-1]["content"].append({"type": "text", "text": "Go."})
    else:
        history.append(assistant("Nothing to look up."))
        history.append(user("Go on."))
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "tool_uses", "value": trigger},
        "keep": {"type": "tool_uses", "value": keep},
        "exclude_tools": ["note"],
    }
    sent = [dict(m) for m in history]
    reply = create(sim, history, [edit])  # 200: clearing never breaks the tool_use / tool_result pairing
    assert sim.requests[-1]["body"]["messages"] == sent  # what was sent is kept as sent
    full = count(sim, history)["input_tokens"]
    applied = reply["context_management"]["applied_edits"]
    clearable = sum(1 for k in range(rounds) if not (excluded and k % 3 == 0))
    expected = max(0, clearable - keep) if rounds > trigger else 0
    assert (applied[0]["cleared_tool_uses"] if applied else 0) == expected
    cleared = applied[0]["cleared_input_tokens"] if applied else 0
    assert reply["usage"]["input_tokens"] == count(sim, history, [edit])["input_tokens"]
    if cleared:  # (a result shorter than the placeholder grows; the reported count is then 0)
        assert reply["usage"]["input_tokens"] == full - cleared
