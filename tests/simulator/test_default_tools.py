"""Default replies that exercise tools: custom tools picked from the user's words, tool search, server tools
(web search, web fetch, code execution), ``usage.server_tool_use`` and ``pause_turn``."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history.testing import Simulator
from claude_history.testing._tool_pick import from_schema, pick_tool, words

from .helpers import MODEL, assistant, body, post, user

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather for a specific location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}
STOCKS = {
    "name": "stock_price",
    "description": "Look up the latest price of a stock ticker",
    "input_schema": {
        "type": "object",
        "properties": {"ticker": {"type": "string", "minLength": 1}, "exchange": {"enum": ["NYSE", "NASDAQ"]}},
        "required": ["ticker", "exchange"],
    },
}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}


def without_ids(blocks: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in b.to_dict().items() if k not in ("id", "tool_use_id")} for b in blocks]


def create(sim: Simulator, text: str, tools: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    response = post(sim.base_url, body(user(text), tools=tools, max_tokens=4000, **fields))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_question_calls_the_tool_whose_description_shares_its_words(sim: Simulator) -> None:
    reply = sim.client(max_retries=0).messages.create(
        model=MODEL, max_tokens=300, tools=[STOCKS, WEATHER], messages=[user("What is the weather in SF?")]
    )
    assert reply.stop_reason == "tool_use"
    (call,) = reply.content
    assert call.type == "tool_use" and call.name == "get_weather"
    jsonschema.validate(call.input, WEATHER["input_schema"])
    stock = create(sim, "What's the latest price of AAPL stock?", [WEATHER, STOCKS])
    assert stock["content"][0]["name"] == "stock_price"
    assert stock["content"][0]["input"] == {"ticker": "example", "exchange": "NYSE"}


def test_no_shared_word_or_an_incidental_one_gives_text(sim: Simulator) -> None:
    assert create(sim, "Hello there!", [WEATHER])["content"][0]["type"] == "text"
    # A long message that happens to say "weather" once is not a request for the tool.
    chatty = "I wrote a long letter to my aunt about gardens, roses, tulips, weather, soil and compost today."
    assert create(sim, chatty, [WEATHER])["stop_reason"] == "end_turn"
    assert create(sim, "What is the weather?", [WEATHER], tool_choice={"type": "none"})["stop_reason"] == "end_turn"


def test_the_tool_result_gets_a_text_answer_so_a_tool_loop_ends(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    question = user("What is the weather in SF?")
    first = client.messages.create(model=MODEL, max_tokens=300, tools=[WEATHER], messages=[question])
    call = first.content[0]
    result = user([{"type": "tool_result", "tool_use_id": call.id, "content": "73F"}])
    final = client.messages.create(
        model=MODEL, max_tokens=300, tools=[WEATHER], messages=[question, first.to_param(), result]
    )
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == f'Tool results received: {call.id}: "73F".'


def test_a_deferred_tool_is_found_through_a_tool_search_tool_then_called(sim: Simulator) -> None:
    deferred = {**WEATHER, "defer_loading": True}
    searcher = {
        "name": "search_available_tools",
        "description": "Search for useful tools using a query string",
        "input_schema": {"type": "object", "properties": {"keyword": {"type": "string"}}, "required": ["keyword"]},
    }
    question = user("What is the weather in SF?")
    first = create(sim, "What is the weather in SF?", [deferred, searcher])
    (search,) = first["content"]
    assert search["name"] == "search_available_tools" and search["input"] == {"keyword": "weather"}
    found = user(
        [
            {
                "type": "tool_result",
                "tool_use_id": search["id"],
                "content": [{"type": "tool_reference", "tool_name": "get_weather"}],
            }
        ]
    )
    history = [question, assistant(first["content"]), found]
    second = post(sim.base_url, body(*history, tools=[deferred, searcher])).json()
    assert second["content"][0]["name"] == "get_weather"
    weather = user([{"type": "tool_result", "tool_use_id": second["content"][0]["id"], "content": "sunny"}])
    third = post(sim.base_url, body(*history, assistant(second["content"]), weather, tools=[deferred, searcher]))
    assert third.json()["stop_reason"] == "end_turn"


def test_web_search_gives_its_documented_blocks_and_is_counted_in_usage(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    reply = client.messages.create(
        model=MODEL, max_tokens=1024, tools=[WEB_SEARCH], messages=[user("What's the weather in New York?")]
    )
    assert [b.type for b in reply.content] == ["server_tool_use", "web_search_tool_result", "text"]
    use, result, text = reply.content
    assert use.id.startswith("srvtoolu_") and use.name == "web_search" and "New York" in use.input["query"]
    assert result.tool_use_id == use.id
    assert [r.url.split("/")[2] for r in result.content] == ["example.com", "example.org", "example.net"]
    assert all(r.encrypted_content and r.title for r in result.content)
    assert text.type == "text" and "https://example.com/" in text.text
    assert reply.usage.server_tool_use is not None
    assert reply.usage.server_tool_use.web_search_requests == 1
    assert reply.usage.server_tool_use.web_fetch_requests == 0
    # Streamed, the blocks are the same (ids aside: they come from the request's hash) and the stream's usage
    # carries the count too.
    with client.messages.stream(
        model=MODEL, max_tokens=1024, tools=[WEB_SEARCH], messages=[user("What's the weather in New York?")]
    ) as stream:
        streamed = stream.get_final_message()
    assert without_ids(streamed.content) == without_ids(reply.content)
    assert streamed.usage.server_tool_use == reply.usage.server_tool_use
    # The reply goes back as history, and a request without server tools has no server_tool_use.
    follow = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        tools=[WEB_SEARCH],
        messages=[user("What's the weather in New York?"), reply.to_param(), user("Thanks")],
    )
    assert follow.content[0].type == "text" and follow.usage.server_tool_use is None


def test_allowed_domains_and_max_uses(sim: Simulator) -> None:
    tool = {**WEB_SEARCH, "allowed_domains": ["docs.example.com"], "max_uses": 1}
    reply = create(sim, "Do 2 searches for cats", [tool])
    results = [b for b in reply["content"] if b["type"] == "web_search_tool_result"]
    assert [r["url"].split("/")[2] for r in results[0]["content"]] == ["docs.example.com"]
    assert results[1]["content"] == {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
    assert reply["usage"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}


def test_more_than_ten_server_tool_calls_pause_the_turn_and_the_continuation_finishes(sim: Simulator) -> None:
    question = user("Do 13 searches for cats")
    paused = create(sim, "Do 13 searches for cats", [WEB_SEARCH])
    assert paused["stop_reason"] == "pause_turn"
    assert sum(b["type"] == "server_tool_use" for b in paused["content"]) == 10
    assert paused["content"][-1]["type"] == "web_search_tool_result"
    # Sent back as it is, the turn continues with the remaining calls and ends.
    rest = post(sim.base_url, body(question, assistant(paused["content"]), tools=[WEB_SEARCH], max_tokens=4000))
    assert rest.status_code == 200, rest.text
    done = rest.json()
    assert done["stop_reason"] == "end_turn"
    assert sum(b["type"] == "server_tool_use" for b in done["content"]) == 3
    assert done["usage"]["server_tool_use"]["web_search_requests"] == 3
    queries = [b["input"]["query"] for b in [*paused["content"], *done["content"]] if b["type"] == "server_tool_use"]
    assert len(set(queries)) == 13


def test_web_fetch_and_code_execution(sim: Simulator) -> None:
    fetch = {"type": "web_fetch_20250910", "name": "web_fetch"}
    reply = create(sim, "Summarise https://example.com/page.html please", [fetch])
    use, result, _ = reply["content"]
    assert use["input"] == {"url": "https://example.com/page.html"}
    assert result["content"]["type"] == "web_fetch_result" and result["content"]["url"] == use["input"]["url"]
    assert reply["usage"]["server_tool_use"] == {"web_search_requests": 0, "web_fetch_requests": 1}
    legacy = {"type": "code_execution_20250522", "name": "code_execution"}
    ran = create(sim, "Run this:\n```python\nprint('hi there')\n```", [legacy])
    use, result, text = ran["content"]
    assert use["name"] == "code_execution" and use["input"] == {"code": "print('hi there')"}
    assert result["content"]["stdout"] == "hi there\n" and result["content"]["return_code"] == 0
    assert "hi there" in text["text"]
    bash = {"type": "code_execution_20250825", "name": "code_execution"}
    ran = create(sim, "Calculate 2+2", [bash])
    assert ran["content"][0]["name"] == "bash_code_execution"
    assert ran["content"][1]["content"]["type"] == "bash_code_execution_result"


def test_words_and_pick_rules() -> None:
    assert words("What is the weather in SF?") == {"weather", "sf"}
    assert words("getWeather get_weather Tools") == {"weather", "tool"}
    assert pick_tool([WEATHER], None, "use get_weather") is not None
    assert pick_tool([WEATHER], {"type": "none"}, "weather?") is None
    assert pick_tool([STOCKS, WEATHER], {"type": "any"}, "hello") is not None


_LEAVES = st.sampled_from(
    [
        {"type": "string"},
        {"type": "string", "minLength": 12},
        {"type": "string", "maxLength": 3},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "email"},
        {"type": "integer"},
        {"type": "integer", "minimum": 5},
        {"type": "integer", "maximum": 0},
        {"type": "number", "exclusiveMinimum": 2},
        {"type": "boolean"},
        {"type": "null"},
        {"enum": ["a", "b"]},
        {"const": 7},
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
    ]
)
_SCHEMAS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.builds(
            lambda props, req: {
                "type": "object",
                "properties": props,
                "required": [k for k in props if req],
                "additionalProperties": False,
            },
            st.dictionaries(st.text("abcdef", min_size=1, max_size=4), inner, max_size=4),
            st.booleans(),
        ),
        st.builds(lambda items, n: {"type": "array", "items": items, "minItems": n}, inner, st.integers(0, 4)),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_SCHEMAS)
def test_generated_values_fit_their_schema(schema: dict[str, Any]) -> None:
    jsonschema.validate(from_schema(schema), schema)
    wrapped = {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}, "$defs": {"X": schema}}
    jsonschema.validate(from_schema(wrapped), wrapped)
