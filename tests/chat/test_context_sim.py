"""Context policies through Chat against the simulator (issue 5): every request a policy shapes is accepted over
long random conversations, the cache hits as designed (judged by the simulator's usage figures), summaries are
written, stored and priced, budgets fail before any call, and the cache TTL follows the gaps between turns."""

from __future__ import annotations

import base64
import io
import itertools
import json
import random
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history import AsyncChat, Chat
from claude_history.context import (
    CacheAwareWindow,
    KeepAll,
    LastTurns,
    OldImages,
    ServerCompaction,
    Summarize,
    TokenBudget,
)
from claude_history.errors import BudgetExceeded
from claude_history.history import content_blocks, turn_starts, validate
from claude_history.models import model_info
from claude_history.stores import open_store
from claude_history.stores.base import Store
from claude_history.testing import Simulator
from claude_history.usage import TokenUsage

from .conftest import bodies

MODELS = ["claude-sonnet-4-6", "claude-opus-5-5"]
SUMMARY_MODEL = "claude-haiku-4-5"
SYSTEM = "You are a research assistant. Answer with care and cite what you used. " * 40
THINKING = {"type": "adaptive"}  # accepted by both MODELS; claude-opus-5-5 refuses "enabled"
_VOCABULARY = """
the of and to in is it you that was for on are with as they be at one have this from or had by word but what
some we can out other were all there when up use your how said each which do their time if will way about many
then them write would like so these long make thing see two has look cache window token budget summary prompt
model request reply tool result image turn session history
"""
WORDS = _VOCABULARY.split()


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n)))


def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: What to look up.
    """
    rng = random.Random(zlib.crc32(query.encode()))
    return words(rng, rng.choice([10, 80, 300]))


_PNGS: dict[tuple[int, int], str] = {}


def image_block(width: int, height: int) -> dict[str, Any]:
    if (width, height) not in _PNGS:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (120, 30, 200)).save(buffer, format="PNG")
        _PNGS[(width, height)] = base64.b64encode(buffer.getvalue()).decode()
    source = {"type": "base64", "media_type": "image/png", "data": _PNGS[(width, height)]}
    return {"type": "image", "source": source}


@dataclass
class Script:
    """One synthetic turn: what the user sends and the replies the simulator will give, in order (each
    tool_use round is answered by the chat's own ``lookup`` function)."""

    user: Any
    replies: list[tuple[list[dict[str, Any]], str]] = field(default_factory=list)


def random_turn(rng: random.Random, counter: list[int], *, thinking: bool, images: bool) -> Script:
    user: Any = words(rng, rng.choice([5, 20, 60, 150, 400]))
    if images and rng.random() < 0.15:
        size = (rng.choice([200, 600, 1200]), rng.choice([150, 500, 900]))
        user = [image_block(*size), {"type": "text", "text": user}]
    script = Script(user)
    rounds = rng.choice([0, 0, 0, 1, 2, 4]) if rng.random() < 0.5 else 0
    for _ in range(rounds):
        calls = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            counter[0] += 1
            calls.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{counter[0]:05d}",
                    "name": "lookup",
                    "input": {"query": words(rng, 4)},
                }
            )
        head = [{"type": "thinking", "thinking": words(rng, 30)}] if thinking else []
        script.replies.append(([*head, *calls], "tool_use"))
    head = [{"type": "thinking", "thinking": words(rng, 40)}] if thinking else []
    script.replies.append(([*head, {"type": "text", "text": words(rng, rng.choice([10, 60, 200]))}], "end_turn"))
    return script


class Exchanges:
    """Every successful /v1/messages request and its reply, as the JSON that went over the wire, in order.

    Scripted replies are queued on the simulator just before each conversation request goes out, so a summary
    call in between never takes one (it gets the simulator's default reply). With ``fail_summaries``, each
    summary request is made to fail (HTTP 500, ``sim.fail_next``) just before it is sent."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.script: deque[tuple[list[dict[str, Any]], str]] = deque()
        self.fail_summaries = False
        self.summary_attempts = 0

    def on_request(self, request: httpx2.Request) -> None:
        if request.url.path != "/v1/messages":
            return
        if json.loads(request.content).get("model") == SUMMARY_MODEL:
            self.summary_attempts += 1
            if self.fail_summaries:
                self.sim.fail_next(500)
        elif self.script:
            blocks, stop_reason = self.script.popleft()
            self.sim.reply_with(blocks, stop_reason=stop_reason)

    def on_response(self, response: httpx2.Response) -> None:
        if response.request.url.path == "/v1/messages" and response.status_code == 200:
            response.read()
            self.pairs.append((json.loads(response.request.content), json.loads(response.content)))

    def of(self, model: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(q, r) for q, r in self.pairs if q["model"] == model]


@pytest.fixture
def wire(sim: Simulator) -> Iterator[tuple[anthropic.Anthropic, Exchanges]]:
    exchanges = Exchanges(sim)
    http = httpx2.Client(event_hooks={"request": [exchanges.on_request], "response": [exchanges.on_response]})
    yield sim.client(max_retries=0, http_client=http), exchanges
    http.close()


def billed(reply: dict[str, Any]) -> int:
    u = reply["usage"]
    return int(u["input_tokens"] + u.get("cache_read_input_tokens", 0) + u.get("cache_creation_input_tokens", 0))


def read(reply: dict[str, Any]) -> int:
    return int(reply["usage"].get("cache_read_input_tokens") or 0)


def plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as blocks without cache markers (the planner may mark blocks; the log never holds them)."""
    result = []
    for m in messages:
        blocks = [{k: v for k, v in b.items() if k != "cache_control"} for b in content_blocks(m)]
        result.append({"role": m["role"], "content": blocks})
    return result


def play(exchanges: Exchanges, chat: Chat, script: Script) -> None:
    exchanges.script.extend(script.replies)
    chat.send(script.user)
    assert not exchanges.script, "every scripted reply was used by this turn"


def window_moved(previous: dict[str, Any], request: dict[str, Any]) -> bool:
    """Whether ``request`` starts its messages elsewhere than ``previous`` did (a cut)."""
    return plain(previous["messages"][:1]) != plain(request["messages"][:1])


# ------------------------------------------------------------------------------- long random conversations

POLICIES = {
    "keep-all": KeepAll(),
    "last-turns+old-images": LastTurns(4) & OldImages(after_turns=3),
    "token-budget": TokenBudget(9_000),
    "cache-aware": CacheAwareWindow(12_000, low_water=7_000),
    "summarize": Summarize(12_000, low_water=7_000, max_summary_tokens=600, model=SUMMARY_MODEL),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_every_request_a_policy_shapes_is_accepted_over_a_long_random_conversation(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges], name: str, model: str
) -> None:
    client, exchanges = wire
    policy = POLICIES[name]
    store = open_store("memory://")
    chat = Chat(
        client, model=model, store=store, session_id="s", system=SYSTEM, tools=[lookup], context=policy,
        max_tokens=2048, thinking=THINKING,
    )  # fmt: skip
    rng = random.Random(zlib.crc32(f"{name}/{model}".encode()))
    counter = [0]
    turns = 30
    for _ in range(turns):
        play(exchanges, chat, random_turn(rng, counter, thinking=True, images=True))  # a 400 would raise here

    # Every turn is committed whole and the log is valid; the policy shaped requests, never the log.
    validate(chat.messages, for_sending=False)
    assert len(turn_starts(chat.messages)) == turns and chat.version == turns
    assert store.load("s").message_params() == chat.messages
    budget = getattr(policy, "max_input_tokens", None)
    binds = model_info(model).binds_thinking  # type: ignore[union-attr]
    requests = exchanges.of(model)
    for body, reply in requests:
        messages = body["messages"]
        assert messages[-1]["role"] == "user"  # the newest user message (or tool results) is the last one
        assert not any(b.get("type") == "tool_result" for b in content_blocks(messages[0]))
        starts_turn = not any(b.get("type") == "tool_result" for b in content_blocks(messages[-1]))
        if budget is not None and (starts_turn or not binds):
            assert billed(reply) <= budget
    # Usage and cost are the sum of every call made (summaries included).
    expected = sum((TokenUsage.from_api(r["usage"]) for _, r in exchanges.pairs), TokenUsage())
    assert chat.usage == expected
    if name == "summarize":
        summaries = store.load("s").summaries
        assert summaries and exchanges.of(SUMMARY_MODEL)
        starts = set(turn_starts(chat.messages))
        assert all(s.start == 0 and s.end in starts for s in summaries)
    if name == "keep-all":
        assert all(not window_moved(requests[0][0], q) for q, _ in requests)


# ----------------------------------------------------------------------------------------- cache behaviour


def _text_conversation(exchanges: Exchanges, chat: Chat, seed: int, turns: int) -> None:
    rng = random.Random(seed)
    counter = [0]
    for _ in range(turns):
        play(exchanges, chat, random_turn(rng, counter, thinking=False, images=False))


def test_cache_aware_window_keeps_its_prefix_between_cuts_and_hits_again_after_one(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges]
) -> None:
    client, exchanges = wire
    model = "claude-sonnet-4-6"
    chat = Chat(client, model=model, system=SYSTEM, tools=[lookup], context=CacheAwareWindow(10_000, low_water=5_000))
    _text_conversation(exchanges, chat, seed=11, turns=40)
    requests = exchanges.of(model)
    minimum = model_info(model).min_cacheable_tokens  # type: ignore[union-attr]
    cuts = 0
    for k in range(1, len(requests)):
        (before, before_reply), (body, reply) = requests[k - 1], requests[k]
        if billed(before_reply) < minimum:
            continue  # nothing was cached yet
        if not window_moved(before, body):
            # Append-only since the previous request: all it sent is read back from the cache.
            assert read(reply) == billed(before_reply), k
        else:
            cuts += 1
            assert read(reply) < billed(before_reply)  # the cut writes the new window once...
            if k + 1 < len(requests):
                assert read(requests[k + 1][1]) == billed(reply)  # ...and the next request reads all of it
    assert 2 <= cuts <= 10
    share = sum(read(r) for _, r in requests) / sum(billed(r) for _, r in requests)
    assert share > 0.75
    assert max(billed(r) for _, r in requests) <= 10_000


def test_summarize_writes_stored_priced_summaries_and_keeps_the_cache_hitting(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges], tmp_path: Path
) -> None:
    client, exchanges = wire
    model = "claude-sonnet-4-6"
    system = SYSTEM * 2  # over the 1,024-token minimum on its own: its cache entry outlives every cut
    url = f"sqlite:///{tmp_path / 'chats.db'}"
    policy = Summarize(9_000, low_water=5_000, max_summary_tokens=400, model=SUMMARY_MODEL)
    chat = Chat(client, model=model, store=url, session_id="s", system=system, tools=[lookup], context=policy)
    _text_conversation(exchanges, chat, seed=5, turns=40)

    requests = exchanges.of(model)
    data = open_store(url).load("s")
    log = data.message_params()
    # The log is untouched; summaries are stored beside it with the range they cover.
    assert log == chat.messages and len(turn_starts(log)) == 40
    assert len(data.summaries) >= 2
    assert all(s.start == 0 and s.model == SUMMARY_MODEL and s.text for s in data.summaries)
    assert [s.end for s in data.summaries] == sorted({s.end for s in data.summaries})
    # Each summary was written when the window moved to its end, and the request that followed sent the log
    # from there on, with the summary as a second system block: the newest user message is never summarised.
    for summary in data.summaries:
        first = plain(log[summary.end : summary.end + 1])
        after = next(q for q, _ in requests if plain(q["messages"][:1]) == first)
        assert after["system"][0]["text"] == system
        assert summary.text in after["system"][1]["text"]
        assert summary.end < len(log) and log[summary.end]["role"] == "user"
    # Incremental: the second summary request carries the first summary.
    summary_bodies = [q for q, _ in exchanges.of(SUMMARY_MODEL)]
    assert len(summary_bodies) == len(data.summaries)
    assert data.summaries[0].text in summary_bodies[1]["messages"][0]["content"]
    # The summaries' calls are in the session's usage and cost, for this chat and for one opened later.
    expected = sum((TokenUsage.from_api(r["usage"]) for _, r in exchanges.pairs), TokenUsage())
    assert chat.usage == expected
    later = Chat(client, model=model, store=url, session_id="s")
    assert later.usage == expected and later.exact_cost == chat.exact_cost
    # Cache: between cuts every request reads what the previous one sent; a cut still reads the static
    # system prompt, and the request after it reads everything the cut request wrote.
    cuts = 0
    for k in range(1, len(requests)):
        (before, before_reply), (body, reply) = requests[k - 1], requests[k]
        if not window_moved(before, body):
            if body["system"] == before["system"]:
                assert read(reply) == billed(before_reply), k
        else:
            cuts += 1
            assert 0 < read(reply) < billed(before_reply)
            if k + 1 < len(requests) and not window_moved(body, requests[k + 1][0]):
                assert read(requests[k + 1][1]) == billed(reply)
    assert cuts >= 2


def test_a_failed_summary_call_falls_back_to_trimming_without_an_error(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges], store: Store
) -> None:
    client, exchanges = wire
    exchanges.fail_summaries = True  # every summary request gets HTTP 500 (sim.fail_next) as it is sent
    model = "claude-sonnet-4-6"
    policy = Summarize(6_000, max_summary_tokens=300, model=SUMMARY_MODEL)
    chat = Chat(client, model=model, store=store, session_id="s", system=SYSTEM, tools=[lookup], context=policy)
    _text_conversation(exchanges, chat, seed=8, turns=25)
    assert exchanges.summary_attempts >= 1 and not exchanges.of(SUMMARY_MODEL)
    data = store.load("s")
    assert data.summaries == [] and len(turn_starts(data.message_params())) == 25
    requests = exchanges.of(model)
    assert any(window_moved(requests[0][0], q) for q, _ in requests)  # trimmed instead
    assert all(isinstance(q["system"], str) or len(q["system"]) == 1 for q, _ in requests)
    assert max(billed(r) for _, r in requests) <= 6_000
    assert chat.usage == sum((TokenUsage.from_api(r["usage"]) for _, r in requests), TokenUsage())


# --------------------------------------------------------------------------- what the planner is given


def test_the_planner_sees_the_sessions_usage_exactly_known_prefix_and_calibration(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges], store: Store
) -> None:
    client, exchanges = wire
    chat = Chat(client, model="claude-opus-5-5", store=store, session_id="s", system=SYSTEM, tools=[LOOKUP])
    rng = random.Random(3)
    for i in range(4):
        chat.send(words(rng, 200))
        report = chat.context_report("next")
        # Every call calibrates the estimate; from the second one on (the first observation only sets the
        # calibration), the part already sent is known exactly from the last reply's usage.
        assert report.calibration_observations == i + 1
        if i > 0:
            assert report.exact_prefix_tokens == billed(exchanges.pairs[-1][1])
    # So the planned size of the next request is exact but for the estimate of what was added since (the
    # last reply and the new message): within 1% of what the simulator billed.
    reply = chat.send("next")
    assert abs(report.total_tokens - billed(exchanges.pairs[-1][1])) <= 0.01 * billed(exchanges.pairs[-1][1])
    # Inside a tool loop the replies of the turn in progress count too (they are not stored yet).
    sim.reply_with([{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"query": "x"}}], "tool_use")
    reply = chat.send("look it up")
    assert reply.stop_reason == "tool_use" and chat.pending
    result = [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found it"}]
    report = chat.context_report(result)
    assert report.exact_prefix_tokens == billed(exchanges.pairs[-1][1])
    assert report.calibration_observations == 6
    # A chat opened later on the same store plans from the stored records alike.
    later = Chat(client, model="claude-opus-5-5", store=store, session_id="s", system=SYSTEM, tools=[LOOKUP])
    assert later.context_report("next").exact_prefix_tokens == billed(exchanges.pairs[-2][1])


LOOKUP = {
    "name": "lookup",
    "description": "Look something up in the research archive. " * 120,  # over 1,024 tokens on its own
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


def test_without_a_system_prompt_the_tools_carry_the_stable_breakpoint(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges]
) -> None:
    client, exchanges = wire
    chat = Chat(client, model="claude-sonnet-4-6", tools=[LOOKUP], context=LastTurns(1))
    rng = random.Random(4)
    for _ in range(5):
        chat.send(words(rng, 100))
    requests = exchanges.of("claude-sonnet-4-6")
    assert all(q["tools"][-1].get("cache_control") == {"type": "ephemeral"} for q, _ in requests)
    # The window moves every turn (LastTurns(1)), yet every later request reads the tools from the cache.
    assert all(window_moved(a, b) for (a, _), (b, _) in itertools.pairwise(requests[1:]))
    assert all(read(r) >= 1_024 for _, r in requests[1:])


def test_an_exact_count_over_the_budget_cuts_deeper_before_the_call(
    sim: Simulator, client: anthropic.Anthropic
) -> None:
    # An API whose tokenizer counts a third more than the local estimate: near the budget the chat asks
    # count_tokens, and a count over the budget makes it plan again with the measured size.
    counts: list[int] = []
    real_count = client.messages.count_tokens

    def count_tokens(**kwargs: Any) -> Any:
        assert "max_tokens" not in kwargs  # count_tokens takes the request, not the output settings
        result = real_count(**kwargs)
        counts.append(int(result.input_tokens * 4 / 3))
        return result.model_copy(update={"input_tokens": counts[-1]})

    client.messages.count_tokens = count_tokens  # type: ignore[method-assign]
    policy = TokenBudget(4_000)
    chat = Chat(client, model="claude-sonnet-4-6", context=policy)
    rng = random.Random(6)
    for _ in range(30):
        planned = chat.context_report(content := words(rng, 150))
        chat.send(content)
        if counts:
            break
    assert counts and counts[-1] > policy.max_input_tokens  # the count that made the chat plan again
    sent = bodies(sim)[-1]["messages"]
    # Without the count the plan would have started at planned.window_start; the request sent starts later,
    # and it fits the budget as that API counts it.
    assert plain(sent[:1]) != plain(chat.messages[planned.window_start : planned.window_start + 1])
    assert billed_tokens(sim) * 4 / 3 <= policy.max_input_tokens


def billed_tokens(sim: Simulator) -> int:
    """The exact size of the last message request, counted by the simulator."""
    body = dict(bodies(sim)[-1])
    client = sim.client(max_retries=0)
    return int(client.messages.count_tokens(model=body["model"], messages=body["messages"]).input_tokens)


def test_a_failed_count_leaves_the_estimate_standing(sim: Simulator, client: anthropic.Anthropic) -> None:
    calls: list[dict[str, Any]] = []

    def count_tokens(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise anthropic.APIConnectionError(request=httpx2.Request("POST", sim.base_url))

    client.messages.count_tokens = count_tokens  # type: ignore[method-assign]
    chat = Chat(client, model="claude-sonnet-4-6", context=TokenBudget(3_000))
    rng = random.Random(6)
    for _ in range(12):
        chat.send(words(rng, 150))
    assert calls, "the budget was approached, so a count was asked for"
    assert chat.version == 12


# ------------------------------------------------------------------------------------ server compaction


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def test_server_compaction_blocks_round_trip_byte_exact_through_sqlite(
    sim: Simulator, wire: tuple[anthropic.Anthropic, Exchanges], tmp_path: Path
) -> None:
    client, exchanges = wire
    url = f"sqlite:///{tmp_path / 'chats.db'}"
    model = "claude-opus-5-5"
    policy = ServerCompaction(trigger_tokens=2_000)
    chat = Chat(client, model=model, store=url, session_id="c", system="Be brief.", context=policy)
    rng = random.Random(9)
    while not any(r["content"][0]["type"] == "compaction" for _, r in exchanges.pairs):
        assert chat.version < 20, "the simulator should compact past 2,000 input tokens"
        chat.send(words(rng, 150))
    body, reply = exchanges.pairs[-1]
    assert body["context_management"] == {"edits": [policy.edit()]}
    # Stored exactly as the API sent it: reopen the SQLite file in a new store.
    stored = open_store(url).load("c").messages[-1]
    assert _canonical(stored.message["content"]) == _canonical(reply["content"])
    assert stored.usage is not None and stored.usage["input_tokens"] == reply["usage"]["input_tokens"]
    # Sent back as it came in the next request, also by a chat opened later on the stored session.
    later = Chat(client, model=model, store=url, session_id="c", context=policy)
    later.send("and now?")
    sent = exchanges.pairs[-1][0]
    assert "compact-2026-01-12" in sim.requests[-1]["headers"]["anthropic-beta"]
    blocks = [b for m in sent["messages"] for b in content_blocks(m)]
    compaction = [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks if b["type"] == "compaction"]
    assert [_canonical(b) for b in compaction] == [_canonical(reply["content"][0])]
    # The log is untouched by the compaction: every turn is there, valid.
    log = open_store(url).load("c").message_params()
    assert len(turn_starts(log)) == later.version and log[: len(chat.messages)] == chat.messages
    validate(log, for_sending=False)


# ---------------------------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    "policy",
    [TokenBudget(2_000), CacheAwareWindow(2_000), Summarize(2_000, model=SUMMARY_MODEL), LastTurns(1)],
    ids=["token-budget", "cache-aware", "summarize", "context-window"],
)
def test_a_turn_that_cannot_fit_fails_before_any_call(
    sim: Simulator, client: anthropic.Anthropic, store: Store, policy: Any
) -> None:
    chat = Chat(client, model="claude-sonnet-4-6", store=store, session_id="s", context=policy)
    for i in range(3):
        chat.send(f"short message {i}")
    before, requests = chat.messages, len(sim.requests)
    # LastTurns has no budget of its own: the model's context window is the limit.
    size = 3_000 if not isinstance(policy, LastTurns) else 1_200_000
    with pytest.raises(BudgetExceeded) as caught:
        chat.send("word " * size)
    assert len(sim.requests) == requests  # no summary, no count_tokens, no message call
    assert caught.value.needed > caught.value.budget
    assert chat.messages == before and store.load("s").message_params() == before
    chat.send("short again")  # the chat goes on
    assert chat.version == 4


def test_a_first_turn_that_cannot_fit_makes_no_request_at_all(sim: Simulator, client: anthropic.Anthropic) -> None:
    chat = Chat(client, model="claude-sonnet-4-6", system=SYSTEM, context=TokenBudget(500))
    with pytest.raises(BudgetExceeded):
        chat.send("hello")  # the system prompt alone is over the budget
    assert sim.requests == [] and chat.messages == [] and chat.version == 0


async def test_async_chat_raises_budget_exceeded_before_any_call(
    sim: Simulator, aclient: anthropic.AsyncAnthropic
) -> None:
    async with AsyncChat(aclient, model="claude-sonnet-4-6", context=CacheAwareWindow(1_000)) as chat:
        with pytest.raises(BudgetExceeded):
            await chat.send("word " * 2_000)
        assert sim.requests == [] and chat.messages == []


# --------------------------------------------------------------------------------------------- cache TTL


class Clock:
    """A test clock for both the chat (aware datetimes) and the simulator (seconds)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> datetime:
        return datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc) + timedelta(seconds=self.seconds)

    def sim_time(self) -> float:
        return self.seconds


def _ttl_run(gap: float, turns: int = 7) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    clock = Clock()
    with Simulator(clock=clock.sim_time) as sim:
        exchanges = Exchanges(sim)
        http = httpx2.Client(event_hooks={"response": [exchanges.on_response]})
        chat = Chat(sim.client(max_retries=0, http_client=http), model="claude-sonnet-4-6", clock=clock)
        for i in range(turns):
            chat.send(f"turn {i}: " + " ".join(f"word{i}x{k}" for k in range(500)))
            clock.seconds += gap
        http.close()
    return exchanges.pairs


def _ttls(body: dict[str, Any]) -> set[str]:
    blocks = [b for m in body["messages"] for b in content_blocks(m)]
    return {b["cache_control"].get("ttl", "5m") for b in blocks if "cache_control" in b}


def test_gaps_between_turns_longer_than_5_minutes_choose_the_1h_cache() -> None:
    pairs = _ttl_run(gap=20 * 60)  # a turn every 20 minutes: a 5-minute entry is always gone
    # Until three gaps are seen, the API's default; then 1h, whose entries survive the gaps and are read.
    assert [_ttls(q) for q, _ in pairs[:4]] == [{"5m"}] * 4
    assert all(_ttls(q) == {"1h"} for q, _ in pairs[4:])
    assert all(read(r) == 0 for _, r in pairs[:5])  # each 5m entry had expired when the next turn came
    for (_, before), (_, reply) in itertools.pairwise(pairs[4:]):
        assert read(reply) == billed(before)
        assert reply["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] > 0


def test_short_gaps_keep_the_5m_cache() -> None:
    pairs = _ttl_run(gap=60)
    assert all(_ttls(q) == {"5m"} for q, _ in pairs)
    for (_, before), (_, reply) in itertools.pairwise(pairs):
        assert read(reply) == billed(before)


def test_a_clock_must_give_aware_datetimes(client: anthropic.Anthropic) -> None:
    from claude_history.errors import ConfigurationError

    chat = Chat(client, model="claude-sonnet-4-6", clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ConfigurationError, match="aware datetime"):
        chat.send("hello")
    assert chat.messages == []


# ------------------------------------------------------------------------------------------- async parity


async def test_async_chat_plans_summarises_and_reports_as_chat_does(sim: Simulator) -> None:
    """The same conversation through Chat and AsyncChat (streaming, Summarize, a clock): the same requests,
    summary calls included, the same summaries, usage and report."""
    policy = Summarize(3_000, low_water=1_800, max_summary_tokens=200, model=SUMMARY_MODEL)
    texts = [words(random.Random(i), 120) for i in range(12)]
    settings: dict[str, Any] = {"model": "claude-sonnet-4-6", "system": SYSTEM, "context": policy}

    clock = Clock()
    sync_store = open_store("memory://")
    chat = Chat(sim.client(max_retries=0), store=sync_store, session_id="s", clock=clock, **settings)
    for text in texts:
        with chat.stream(text) as stream:
            stream.get_final_message()
        clock.seconds += 400
    sync_requests = [r["body"] for r in sim.requests]
    sim.reset()

    clock = Clock()
    async_store = open_store("memory://")
    achat = AsyncChat(sim.async_client(max_retries=0), store=async_store, session_id="s", clock=clock, **settings)
    for text in texts:
        async with achat.stream(text) as astream:
            await astream.get_final_message()
        clock.seconds += 400
    async_requests = [r["body"] for r in sim.requests]

    assert any(b["model"] == SUMMARY_MODEL for b in async_requests)
    assert async_requests == sync_requests
    assert [(s.start, s.end, s.text) for s in async_store.load("s").summaries] == [
        (s.start, s.end, s.text) for s in sync_store.load("s").summaries
    ]
    assert achat.usage == chat.usage and achat.messages == chat.messages
    assert achat.context_report("next") == chat.context_report("next")  # no await: it plans, no I/O


def test_a_top_level_cache_control_replaces_the_automatic_breakpoints(
    sim: Simulator, client: anthropic.Anthropic
) -> None:
    # The API's automatic caching (one breakpoint on the last block) is the caller's choice: the chat adds none,
    # so the request can never carry more than the API's 4.
    chat = Chat(client, model="claude-sonnet-4-6", system=SYSTEM * 2, cache_control={"type": "ephemeral"})
    first = chat.send("first " * 300)
    second = chat.send("second " * 300)
    body = bodies(sim)[-1]
    assert body["cache_control"] == {"type": "ephemeral"}
    assert body["system"] == SYSTEM * 2  # a plain string: no breakpoint on it
    assert not any("cache_control" in b for m in body["messages"] for b in content_blocks(m))
    # The automatic breakpoint still caches: the second request reads all the first one sent.
    u = first.usage
    assert second.usage.cache_read_input_tokens == (
        u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    )
