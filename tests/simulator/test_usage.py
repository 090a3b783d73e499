"""Usage beyond the token split: ``server_tool_use`` counted from the reply's server tool blocks, ``service_tier``;
and the split itself stays equal to ``count_tokens`` with server tool blocks, refusals and rate limits in play."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.testing import Simulator

from .helpers import body, post, user

MODEL = "claude-sonnet-4-6"
QUESTION = [user("What is new in Paris today?")]
TOOLS = [{"type": "web_search_20250305", "name": "web_search"}, {"type": "web_fetch_20250910", "name": "web_fetch"}]


def search(n: int) -> list[dict[str, Any]]:
    """A server tool round: a web search call and its result block."""
    tool_id = f"srvtoolu_{n:04d}"
    return [
        {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": f"paris {n}"}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": tool_id,
            "content": [
                {
                    "type": "web_search_result",
                    "url": f"https://example.com/{n}",
                    "title": f"Result {n}",
                    "encrypted_content": "abc",
                    "page_age": None,
                }
            ],
        },
    ]


def test_server_tool_use_counts_each_search_and_fetch_of_the_reply(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    fetch = {"type": "server_tool_use", "id": "srvtoolu_f", "name": "web_fetch", "input": {"url": "https://a.b"}}
    sim.reply_with([*search(1), *search(2), fetch, {"type": "text", "text": "Here is the news."}])
    reply = client.messages.create(model=MODEL, max_tokens=500, messages=QUESTION, tools=TOOLS)
    assert reply.usage.server_tool_use is not None
    assert (reply.usage.server_tool_use.web_search_requests, reply.usage.server_tool_use.web_fetch_requests) == (2, 1)


def test_server_tool_use_reaches_the_streamed_final_message(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with([*search(1), {"type": "text", "text": "Done."}])
    with client.messages.stream(model=MODEL, max_tokens=500, messages=QUESTION, tools=TOOLS) as stream:
        final = stream.get_final_message()
    assert final.usage.server_tool_use is not None
    assert final.usage.server_tool_use.web_search_requests == 1


def test_without_server_tools_there_is_no_server_tool_use_and_the_tier_is_standard(sim: Simulator) -> None:
    usage = post(sim.base_url, body(*QUESTION)).json()["usage"]
    assert "server_tool_use" not in usage
    assert usage["service_tier"] == "standard"
    asked = post(sim.base_url, body(*QUESTION, service_tier="standard_only"))
    if asked.status_code == 200:  # the request field itself is validated by the request schema
        assert asked.json()["usage"]["service_tier"] == "standard"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rounds=st.integers(min_value=0, max_value=3),
    words=st.lists(st.text(alphabet="abc xyz", min_size=1, max_size=60), min_size=1, max_size=4),
    cached=st.booleans(),
)
def test_the_usage_split_equals_count_tokens_whatever_the_reply(
    sim: Simulator, rounds: int, words: list[str], cached: bool
) -> None:
    """input + cache writes + cache reads == count_tokens for the same body, with server tool rounds in the
    history and in the reply."""
    client = sim.client(max_retries=0)
    history: list[dict[str, Any]] = []
    for n, text in enumerate(words):
        history.append(user(f"question {n}: {text}"))
        request: dict[str, Any] = {"model": MODEL, "messages": history, "tools": TOOLS}
        if cached:
            request["cache_control"] = {"type": "ephemeral"}
        expected = client.messages.count_tokens(**{k: v for k, v in request.items() if k != "cache_control"})
        blocks = [b for k in range(rounds) for b in search(100 * n + k)] + [{"type": "text", "text": "ok"}]
        sim.reply_with(blocks)
        reply = client.messages.create(max_tokens=2000, **request)
        usage = reply.usage
        split = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
        assert split == expected.input_tokens
        if rounds:
            assert usage.server_tool_use is not None and usage.server_tool_use.web_search_requests == rounds
        history.append({"role": "assistant", "content": [b.to_dict() for b in reply.content]})
    sim.reset()
