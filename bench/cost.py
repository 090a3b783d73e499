"""Cost benchmark (issue 5, item 5): what a 300-turn conversation costs under each way of shaping requests.

Run: ``.venv/bin/python bench/cost.py`` (``make bench``); ``--quick`` for a tiny run that only prints.

Every strategy plays the same seeded conversations (bench/workload.py) against the Messages API simulator,
which bills them with its prompt-caching rules on its own clock (``Simulator.advance`` stands for the gaps
between turns). The replies are scripted, so the conversation is fixed by the seed; only the requests differ:

- ``naive``: the guides' first example, the whole history every time, no ``cache_control``;
- ``naive+bp`` / ``naive+auto``: the same loop as a careful user writes it: one ``cache_control`` breakpoint
  on the last block of the last message (it moves every request), or the API's automatic caching (one
  top-level ``cache_control``; the simulator honours it for every model);
- ``guides[-20:]``: the guides' sliding window ``messages[-20:]``, no ``cache_control``. The API answers 400
  (``messages: first message must use the "user" role``) whenever the window starts on an assistant message,
  which in a plain chat is every time once the history is longer than 20 messages;
- ``guides' window, last 20 turns``: the same idea at the budget the target names, with the cut moved to a
  user message so the API accepts it (the least a user of the guides' code has to change), without and with
  the moving breakpoint;
- ``langchain trim``: LangChain's ``trim_messages(strategy="last", token_counter="approximate",
  start_on="human", include_system=True)`` at the budget, with a moving breakpoint on the last message;
- our policies through ``Chat`` with its default caching.

A request the API rejects (400) is counted and its turn gets no reply: the guides' code would crash there. The
baselines keep what they appended before the call (the guides append the user message first) and go on with
the next message; Chat commits nothing of that turn. Every figure comes from the simulator's ``usage`` priced
by ``claude_history.pricing``; ``--cache 5m|1h|off`` fixes our policies' TTL to compare with the automatic
choice.

Seeds: each seed is one conversation (bench/workload.py); a full run plays ``--seeds`` of them (5) with every
strategy and reports the median and the range (lowest - highest) over the seeds, ratios computed per seed.

The strict bound of a strategy is the least its very requests could cost: each request's longest prefix already
sent in an earlier request of the conversation (the simulator's prefix identity) at the cache-read price, every
other input token at the base input price (no cache write premium: a cache that wrote for free), the output as
billed. No caching scheme can beat it: a cached token costs at least the read price, a new one at least the base
price. It ignores TTLs, breakpoint slots and the lookback. A request the server compacts is billed for two passes
(``usage.iterations``: the compaction pass over the context sent, then the reply from the compacted context);
the bound counts each pass that way, from the layout the simulator reports for it (``Simulator.billing``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anthropic

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, replace_section, table
from workload import SYSTEM, TOOLS, Conversation, TurnSpec, generate

from claude_history.errors import HistoryError
from claude_history.history import turn_starts
from claude_history.pricing import cost_breakdown, load_prices
from claude_history.testing import Billing, Simulator
from claude_history.tools import tool_result
from claude_history.usage import TokenUsage, billed_parts

MODELS = ("claude-sonnet-4-6", "claude-opus-5-5")
BUDGETS = (20_000, 100_000)
QUICK_BUDGETS = (3_000, 8_000)
GUIDES_WINDOW = 20  # messages, as in the guides' `messages[-20:]`
GUIDES_TURNS = 20  # the same idea at the budget the target names ("about 20 turns"), cut on a user message
LAST_TURNS = 10  # LastTurns(n): the guides' window done right, about as many turns as 20 messages hold
MAX_TOKENS = 4_096
SUMMARY_MODEL = "claude-haiku-4-5"
SECTION = "Cost"

# ---------------------------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    kind: str  # "naive" | "window" | "langchain" | "chat"
    budget: int | None = None
    ours: bool = False
    cache: bool | str = True  # Chat(cache=...): True (the default choice), "5m", "1h" or False
    marker: str | None = None  # baselines: "last" (a breakpoint on the last message) or "auto" (top-level)

    def policy(self) -> Any:
        import claude_history as ch

        name = self.key.split("@")[0]
        if name == "KeepAll":
            return ch.KeepAll()
        if name == "LastTurns":
            return ch.LastTurns(LAST_TURNS)
        if name == "TokenBudget":
            return ch.TokenBudget(self.budget)
        if name == "CacheAwareWindow":
            return ch.CacheAwareWindow(self.budget)
        if name == "Summarize":
            return ch.Summarize(self.budget, model=SUMMARY_MODEL)
        if name == "ServerCompaction":
            return ch.ServerCompaction(trigger_tokens=self.budget)
        raise ValueError(self.key)


def strategies(budgets: Sequence[int], only: Iterable[str] | None = None) -> list[Strategy]:
    out = [
        Strategy("naive", "naive full resend", "naive"),
        Strategy("naive+bp", "full resend, breakpoint on the last message", "naive", marker="last"),
        Strategy("naive+auto", "full resend, automatic caching", "naive", marker="auto"),
        Strategy("guides", "guides' messages[-20:]", "window"),
        Strategy("guides20", f"guides' window, last {GUIDES_TURNS} turns", "window_turns"),
        Strategy(
            "guides20+bp",
            f"window of last {GUIDES_TURNS} turns, breakpoint on the last message",
            "window_turns",
            marker="last",
        ),
        Strategy("KeepAll", "KeepAll()", "chat", ours=True),
        Strategy("LastTurns", f"LastTurns({LAST_TURNS})", "chat", ours=True),
    ]
    for b in budgets:
        out += [
            Strategy(f"langchain@{b}", f"LangChain trim_messages({b:,})", "langchain", b),
            Strategy(f"TokenBudget@{b}", f"TokenBudget({b:,})", "chat", b, ours=True),
            Strategy(f"CacheAwareWindow@{b}", f"CacheAwareWindow({b:,})", "chat", b, ours=True),
            Strategy(f"Summarize@{b}", f"Summarize({b:,})", "chat", b, ours=True),
            Strategy(f"ServerCompaction@{b}", f"ServerCompaction({b:,})", "chat", b, ours=True),
        ]
    small = min(budgets)
    for ttl in ("5m", "1h"):  # reference rows: is the automatic TTL choice the right one?
        out.append(
            Strategy(
                f"CacheAwareWindow@{small}/{ttl}",
                f"CacheAwareWindow({small:,}), TTL fixed {ttl}",
                "chat",
                small,
                cache=ttl,
            )
        )
    if only:
        wanted = set(only)
        out = [s for s in out if s.key in wanted or s.key.split("@")[0] in wanted]
    return out


def available(strategy: Strategy) -> str | None:
    """Why a strategy cannot run here (``None``: it can)."""
    if strategy.kind == "langchain":
        try:
            import langchain_core.messages  # noqa: F401
        except ImportError:
            return "langchain-core is not installed (pip install langchain-core, or the bench extra)"
        return None
    if strategy.kind == "chat":
        try:
            strategy.policy()
        except (ImportError, AttributeError) as exc:
            return f"not available yet: {exc}"
    return None


# ---------------------------------------------------------------------------------------------- metering


@dataclass
class RunResult:
    strategy: str
    model: str
    conversation: str
    seed: int = 0
    turns: int = 0
    requests: int = 0  # successful calls of the conversation's model
    invalid: int = 0  # 400s
    failed_turns: int = 0  # turns dropped: a 400 or our own error before the call
    errors: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0  # USD, everything (summary calls included)
    input_cost: float = 0.0  # USD, input side (uncached + writes + reads)
    bound_input_cost: float = 0.0  # USD, input side of the strict bound (new tokens at the base price)
    output_cost: float = 0.0
    summary_cost: float = 0.0  # USD of summariser calls (part of cost)
    compaction_cost: float = 0.0  # USD of server compaction passes, usage.iterations (part of cost)
    prompt_tokens: int = 0  # the context each request sent (input + cache writes + cache reads), main model
    billed_prompt_tokens: int = 0  # input tokens billed over every pass (a compaction pass reads the context too)
    read_tokens: int = 0  # of billed_prompt_tokens, read from the cache
    write_tokens: int = 0
    premium_1h: float = 0.0  # USD paid for writing with the 1-hour TTL instead of the 5-minute one
    turns_kept: int = 0  # summed over main requests
    count_tokens: int = 0  # calls of messages.count_tokens (issue 14: on fewer than 5% of turns)
    seconds: float = 0.0
    trace: list[dict[str, Any]] | None = None  # per request, with --trace (for investigating a strategy)


_PRICES = load_prices()


def _input_cost(parts: Any) -> float:
    return float(parts.input + parts.cache_write_5m + parts.cache_write_1h + parts.cache_read)


def _figures(usage: dict[str, Any]) -> tuple[int, ...]:
    split = usage.get("cache_creation") or {}
    return (
        _prompt(usage),
        usage.get("cache_read_input_tokens", 0),
        split.get("ephemeral_5m_input_tokens", 0),
        split.get("ephemeral_1h_input_tokens", 0),
        usage["output_tokens"],
    )


def _prompt(usage: dict[str, Any]) -> int:
    return int(
        usage["input_tokens"] + usage.get("cache_creation_input_tokens", 0) + usage.get("cache_read_input_tokens", 0)
    )


class Meter:
    """Bills each successful call from its usage and computes the strict bound from the passes the simulator
    billed for it."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.seen: set[str] = set()

    def record(self, request: dict[str, Any], billing: Billing, message: Any, *, main: bool) -> None:
        """``request``: what the simulator received; ``billing``: the passes it billed, each with the block
        layout it read (prefix identity and tokens up to each block)."""
        r = self.result
        model = message.model
        usage = message.usage.model_dump(mode="json", exclude_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unpriced model must not silently cost nothing
            parts = cost_breakdown(usage, model)  # every billed part: compaction iterations included
        assert parts is not None
        r.cost += parts.total
        r.input_cost += _input_cost(parts)
        r.output_cost += parts.output

        # What the reply says it billed must be what the simulator says each pass read.
        itemised = usage.get("iterations") or [usage]
        if [_figures(p.usage) for p in billing.passes] != [_figures(u) for u in itemised]:
            raise AssertionError(f"usage {usage} is not what the simulator billed: {billing.passes}")
        price = _PRICES.price_for(model)
        assert price is not None
        bound = Decimal(0)
        sent_before = []
        for billed in billing.passes:
            if _prompt(billed.usage) != billed.total:
                raise AssertionError(f"usage says {_prompt(billed.usage)} prompt tokens, the layout {billed.total}")
            pairs = zip(reversed(billed.prefix_ids), reversed(billed.ends), strict=True)
            sent = next((end for key, end in pairs if key in self.seen), 0)
            self.seen.update(billed.prefix_ids)
            bound += Decimal(sent) * price.cache_read + Decimal(billed.total - sent) * price.input
            sent_before.append(sent)
        bound /= 1_000_000
        r.bound_input_cost += float(bound)
        billed_usage = sum(billed_parts(usage), TokenUsage())
        dearer = price.cache_write_1h - price.cache_write_5m
        r.premium_1h += float(Decimal(billed_usage.ephemeral_1h_input_tokens) * dearer / 1_000_000)
        for item in itemised:
            if item.get("type") == "compaction":
                extra = cost_breakdown(item, model)
                assert extra is not None
                r.compaction_cost += extra.total

        if r.trace is not None:
            markers = [
                (b.get("cache_control") or {}).get("ttl", "5m")
                for m in request["body"]["messages"]
                if isinstance(m.get("content"), list)
                for b in m["content"]
                if b.get("cache_control")
            ]
            system = request["body"].get("system")
            if isinstance(system, list):
                marked = [b for b in system if b.get("cache_control")]
                markers = [b["cache_control"].get("ttl", "5m") for b in marked] + markers
            r.trace.append(
                {
                    "main": main,
                    "clock": simulator().now(),
                    "messages": len(request["body"]["messages"]),
                    "usage": usage,
                    "sent_before": sent_before,
                    "total": [p.total for p in billing.passes],
                    "markers": markers,
                    "cost": parts.total,
                    "bound": float(bound),
                }
            )
        if not main:
            r.summary_cost += parts.total
            return
        r.requests += 1
        r.prompt_tokens += billing.passes[0].total  # the context sent: what the first pass read
        r.billed_prompt_tokens += billed_usage.prompt_tokens
        r.read_tokens += billed_usage.cache_read_input_tokens
        r.write_tokens += billed_usage.cache_creation_input_tokens
        messages = request["body"]["messages"]
        for i in range(len(messages) - 1, -1, -1):  # the API ignores what precedes the latest compaction block
            content = messages[i].get("content")
            if isinstance(content, list) and any(b.get("type") == "compaction" for b in content):
                messages = messages[i:]
                break
        r.turns_kept += len(turn_starts(messages))


# ---------------------------------------------------------------------------------------------- the client


_SIM: Simulator | None = None  # one per process: started once, reset between runs
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def simulator() -> Simulator:
    global _SIM
    if _SIM is None:
        # A clock that only moves by advance(): gaps are simulated, not slept, and runs are reproducible.
        _SIM = Simulator(clock=lambda: 0.0, keep_requests=8)
        _SIM.start()
    return _SIM


def simulated_now() -> datetime:
    """ "Now" on the simulator's clock, for ``Chat(clock=...)``: Chat stamps each reply with it and chooses the
    cache TTL from the gaps between those stamps (in wall time the 300 turns pass within a minute)."""
    return EPOCH + timedelta(seconds=simulator().now())


class Script:
    """Which scripted reply the next call gets: a pure function of the request and the current turn."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.turn: TurnSpec | None = None
        self._rounds: dict[str, int] = {}

    def start(self, turn: TurnSpec) -> None:
        self.turn = turn
        self._rounds = {c.id: r for r, rnd in enumerate(turn.rounds) for c in rnd.calls}

    def is_main(self, kwargs: dict[str, Any]) -> bool:
        return kwargs.get("model") == self.model

    def reply(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.is_main(kwargs):  # a summariser call: a summary of fixed size
            return [{"type": "text", "text": _summary_text(json.dumps(kwargs.get("messages"), sort_keys=True))}]
        assert self.turn is not None
        last = kwargs["messages"][-1] if kwargs.get("messages") else {}
        content = last.get("content") if isinstance(last, dict) else None
        done = [
            self._rounds[b["tool_use_id"]]
            for b in (content if isinstance(content, list) else [])
            if isinstance(b, dict) and b.get("type") == "tool_result" and b.get("tool_use_id") in self._rounds
        ]
        return self.turn.reply(max(done) + 1 if done else 0)


@lru_cache(maxsize=64)
def _summary_text(key: str) -> str:
    import hashlib
    import random

    from workload import _prose

    return _prose(random.Random(hashlib.sha256(key.encode()).hexdigest()), 2_400)


class _Api:
    def __init__(self, owner: ScriptedClient, api: Any) -> None:
        self._owner = owner
        self._api = api

    def create(self, **kwargs: Any) -> Any:
        owner = self._owner
        reply = owner.script.reply(kwargs)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in reply) else "end_turn"
        owner.sim.reply_with(reply, stop_reason=stop)
        try:
            message = self._api.create(**kwargs)
        except anthropic.BadRequestError:
            owner.meter.result.invalid += 1
            owner.drain()
            raise
        billing = owner.sim.billing(message._request_id)
        assert billing is not None, "the simulator keeps the billing of its newest requests"
        owner.meter.record(owner.sim.requests[-1], billing, message, main=owner.script.is_main(kwargs))
        return message

    def count_tokens(self, **kwargs: Any) -> Any:
        self._owner.meter.result.count_tokens += 1
        return self._api.count_tokens(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class ScriptedClient:
    """An ``anthropic.Anthropic`` whose ``messages.create`` (and the beta one) queues the scripted reply and
    meters the call. Everything else passes through."""

    def __init__(self, sim: Simulator, script: Script, meter: Meter) -> None:
        self.sim = sim
        self.script = script
        self.meter = meter
        self._client = sim.client(max_retries=0)
        self.messages = _Api(self, self._client.messages)
        self.beta = SimpleNamespace(messages=_Api(self, self._client.beta.messages))

    def drain(self) -> None:
        """A rejected request leaves its queued reply in the simulator: consume it with a throwaway call
        (below the minimum cacheable length, never metered)."""
        self._client.messages.create(
            model=self.script.model, max_tokens=16, messages=[{"role": "user", "content": "drain"}]
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


# ---------------------------------------------------------------------------------------------- runs


def _dump(block: Any) -> dict[str, Any]:
    return block.model_dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


def _tool_results(turn: TurnSpec, reply: list[dict[str, Any]], sim: Simulator) -> list[dict[str, Any]]:
    results = []
    for block in reply:
        if block["type"] == "tool_use":
            call = turn.call(block["id"])
            sim.advance(call.seconds)
            results.append(tool_result(block["id"], call.output))
    return results


def _mark_last(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``messages`` with ``cache_control`` on the last block of the last message: the one moving
    breakpoint a careful user of the guides' loop adds (the stored list is left unmarked)."""
    if not messages:
        return messages
    last = messages[-1]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(b) for b in content]
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*messages[:-1], {"role": last["role"], "content": blocks}]


def _langchain_trim(budget: int) -> Callable[[list[Any]], list[dict[str, Any]]]:
    """LangChain's documented chat-history trimming, converted to the Anthropic format the way
    langchain-anthropic does it (consecutive ToolMessages become one user message of tool_results), with
    ``cache_control`` on the last block of the last message (a breakpoint that moves every request)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage, trim_messages

    def shape(lc: list[Any]) -> list[dict[str, Any]]:
        kept = trim_messages(
            lc,
            max_tokens=budget,
            strategy="last",
            token_counter="approximate",
            start_on="human",
            include_system=True,
            allow_partial=False,
        )
        out: list[dict[str, Any]] = []
        for m in kept:
            if isinstance(m, ToolMessage):
                block = tool_result(str(m.tool_call_id), m.content)
                if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                    out[-1]["content"].append(block)
                else:
                    out.append({"role": "user", "content": [block]})
            elif isinstance(m, HumanMessage):
                out.append({"role": "user", "content": m.content})
            elif isinstance(m, AIMessage):
                out.append({"role": "assistant", "content": m.content})
        return _mark_last(out)

    return shape


def run_baseline(conv: Conversation, model: str, strategy: Strategy) -> RunResult:
    sim = simulator()
    sim.reset()
    result = RunResult(strategy.key, model, conv.id, turns=len(conv.turns))
    script = Script(model)
    client = ScriptedClient(sim, script, Meter(result))
    history: list[dict[str, Any]] = []
    lc: list[Any] = []  # LangChain messages, kept alongside
    trim = None
    if strategy.kind == "langchain":
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        assert strategy.budget is not None
        lc.append(SystemMessage(SYSTEM))
        trim = _langchain_trim(strategy.budget)

    for turn in conv.turns:
        sim.advance(turn.gap)
        script.start(turn)
        history.append({"role": "user", "content": turn.user_content()})
        if trim is not None:
            lc.append(HumanMessage(turn.user_content()))
        try:
            while True:
                if strategy.kind == "naive":
                    messages = history
                elif strategy.kind == "window":
                    messages = history[-GUIDES_WINDOW:]
                elif strategy.kind == "window_turns":
                    starts = turn_starts(history)
                    messages = history[starts[-GUIDES_TURNS] :] if len(starts) > GUIDES_TURNS else history
                else:
                    assert trim is not None
                    messages = trim(lc)
                extra: dict[str, Any] = {}
                if strategy.marker == "last":
                    messages = _mark_last(messages)
                elif strategy.marker == "auto":
                    # Top-level cache_control (automatic caching); extra_body keeps SDKs before the field working.
                    extra["extra_body"] = {"cache_control": {"type": "ephemeral"}}
                reply = client.messages.create(
                    model=model, max_tokens=MAX_TOKENS, system=SYSTEM, tools=TOOLS, messages=messages, **extra
                )
                content = [_dump(b) for b in reply.content]
                history.append({"role": "assistant", "content": content})
                if trim is not None:
                    calls = [
                        {"name": b["name"], "args": b["input"], "id": b["id"], "type": "tool_call"}
                        for b in content
                        if b["type"] == "tool_use"
                    ]
                    lc.append(AIMessage(content=content, tool_calls=calls))
                if reply.stop_reason != "tool_use":
                    break
                results = _tool_results(turn, content, sim)
                history.append({"role": "user", "content": results})
                if trim is not None:
                    lc.extend(ToolMessage(r["content"], tool_call_id=r["tool_use_id"]) for r in results)
        except anthropic.BadRequestError:
            # The guides' code would crash here. What it appended before the call (the user message, and in a
            # tool loop the exchanges so far) stays in its list; the turn gets no reply and the user goes on.
            # (Removing them instead would freeze a `messages[-20:]` window on the same invalid first message
            # for the rest of the conversation.)
            result.failed_turns += 1
    return result


def run_chat(conv: Conversation, model: str, strategy: Strategy) -> RunResult:
    from claude_history import Chat, open_store

    sim = simulator()
    sim.reset()
    result = RunResult(strategy.key, model, conv.id, turns=len(conv.turns))
    script = Script(model)
    client = ScriptedClient(sim, script, Meter(result))

    def tool(query: str, ref: str) -> str:
        assert script.turn is not None
        call = script.turn.call(ref)
        sim.advance(call.seconds)
        return call.output

    chat = Chat(
        client,
        model=model,
        store=open_store("memory://"),
        system=SYSTEM,
        max_tokens=MAX_TOKENS,
        context=strategy.policy(),
        tools=TOOLS,
        tool_functions={t["name"]: tool for t in TOOLS},
        max_tool_rounds=100,
        cache=strategy.cache,
        clock=simulated_now,
    )
    for turn in conv.turns:
        sim.advance(turn.gap)
        script.start(turn)
        try:
            chat.send(turn.user_content())
        except anthropic.BadRequestError:
            result.failed_turns += 1
        except HistoryError as exc:  # e.g. BudgetExceeded: raised before any call, the turn is not sent
            result.failed_turns += 1
            name = type(exc).__name__
            result.errors[name] = result.errors.get(name, 0) + 1
        chat.discard_pending()
    return result


@lru_cache(maxsize=4)
def _workload(seed: int, conversations: int, turns: int) -> list[Conversation]:
    return generate(seed, conversations, turns)


def run_one(job: tuple[int, int, str, Strategy]) -> RunResult:
    seed, turns, model, strategy = job
    conv = _workload(seed, 1, turns)[0]  # one conversation per seed
    started = time.perf_counter()
    run = run_chat if strategy.kind == "chat" else run_baseline
    result = run(conv, model, strategy)
    result.seed = seed
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------- report


@dataclass
class Row:
    """One strategy on one model: a run per seed."""

    strategy: Strategy
    model: str
    runs: list[RunResult]

    def values(self, name: str) -> list[float]:
        return [float(getattr(r, name)) for r in self.runs]

    def median(self, name: str) -> float:
        return statistics.median(self.values(name))

    def total(self, name: str) -> int:
        return int(sum(getattr(r, name) for r in self.runs))

    def by_seed(self) -> dict[int, RunResult]:
        return {r.seed: r for r in self.runs}

    @property
    def read_share(self) -> float:
        prompt = self.total("billed_prompt_tokens")
        return self.total("read_tokens") / prompt if prompt else 0.0

    @property
    def avg_context(self) -> float:
        n = self.total("requests")
        return self.total("prompt_tokens") / n if n else 0.0

    @property
    def avg_turns(self) -> float:
        n = self.total("requests")
        return self.total("turns_kept") / n if n else 0.0

    def bound_ratios(self) -> list[float]:
        """Cost / strict bound (input bound + the output as billed), per seed."""
        return [r.cost / (r.bound_input_cost + r.output_cost) for r in self.runs if r.bound_input_cost + r.output_cost]


def ratios(num: Row, den: Row, name: str = "cost") -> list[float]:
    """``num`` / ``den`` seed by seed (the same conversation on both sides)."""
    theirs = num.by_seed()
    return [
        getattr(theirs[seed], name) / getattr(run, name)
        for seed, run in sorted(den.by_seed().items())
        if seed in theirs and getattr(run, name)
    ]


def spread(values: Sequence[float], fmt: str = "{:.2f}", unit: str = "") -> str:
    """Median and range: ``2.15x (2.01-2.24x)``; a single value alone."""
    if not values:
        return "n/a"
    med = fmt.format(statistics.median(values)) + unit
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))}{unit})"


def money(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    med = f"${statistics.median(values):.2f}"
    return med if len(values) == 1 else f"{med} ({min(values):.2f}-{max(values):.2f})"


def _rows(results: list[RunResult], plan: list[Strategy], models: Sequence[str]) -> dict[tuple[str, str], Row]:
    grouped: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for r in results:
        grouped[(r.strategy, r.model)].append(r)
    return {(s.key, m): Row(s, m, grouped[(s.key, m)]) for m in models for s in plan if grouped.get((s.key, m))}


def comparisons(rows: dict[tuple[str, str], Row], model: str, budgets: Sequence[int]) -> list[tuple[str, list[float]]]:
    """(what is compared with what, the ratio per seed): how many times the baseline's cost ours is."""
    out: list[tuple[str, list[float]]] = []
    pairs = [("KeepAll", base) for base in ("naive", "naive+bp", "naive+auto")]
    for b in budgets:
        pairs += [(f"CacheAwareWindow@{b}", base) for base in ("guides20", "guides20+bp", f"langchain@{b}")]
        pairs += [(f"TokenBudget@{b}", f"langchain@{b}")]
    for ours_key, base_key in pairs:
        ours, base = rows.get((ours_key, model)), rows.get((base_key, model))
        if ours is None or base is None:
            continue
        out.append((f"{base.strategy.label} / {ours.strategy.label}", ratios(base, ours)))
    return out


def targets(
    rows: dict[tuple[str, str], Row], models: Sequence[str], budgets: Sequence[int]
) -> list[tuple[str, bool, str]]:
    """(target, passed in every seed, the figures) for the targets of issues 5 and 14, per model."""
    out: list[tuple[str, bool, str]] = []
    small = min(budgets)
    for m in models:
        naive, keep = rows.get(("naive", m)), rows.get(("KeepAll", m))
        if naive and keep:
            r = ratios(naive, keep)
            out.append(
                (
                    f"{m}: KeepAll >= 8x cheaper than the naive resend without cache_control (issue 5)",
                    bool(r) and min(r) >= 8,
                    spread(r, unit="x"),
                )
            )
        caw = rows.get((f"CacheAwareWindow@{small}", m))
        for key in ("guides", "guides20"):
            guides = rows.get((key, m))
            if guides is None or caw is None:
                continue
            r = ratios(guides, caw)
            invalid = caw.total("invalid") + caw.total("failed_turns")
            out.append(
                (
                    f"{m}: {caw.strategy.label} >= 3x cheaper than {guides.strategy.label} (no cache_control), "
                    "0 invalid (issue 5)",
                    bool(r) and min(r) >= 3 and invalid == 0,
                    f"{spread(r, unit='x')}; {caw.total('invalid')} 400s, {caw.total('failed_turns')} failed turns",
                )
            )
        for (_key, model), row in rows.items():
            if model != m or not row.strategy.ours or row.strategy.cache is not True:
                continue  # the fixed-TTL rows are references, not held to the targets
            r = row.bound_ratios()
            out.append(
                (
                    f"{m}: {row.strategy.label} within 1.3x of its strict bound",
                    bool(r) and max(r) <= 1.3,
                    spread(r, unit="x"),
                )
            )
            turns = row.total("turns")
            counted = row.total("count_tokens")
            out.append(
                (
                    f"{m}: {row.strategy.label} calls count_tokens on < 5% of turns (issue 14)",
                    counted < 0.05 * turns,
                    f"{counted} calls in {turns} turns ({counted / turns:.1%})",
                )
            )
    return out


def _above_bound(run: RunResult) -> float:
    return run.cost - run.bound_input_cost - run.output_cost


def notes(rows: dict[tuple[str, str], Row], models: Sequence[str], budgets: Sequence[int]) -> list[str]:
    """What explains the figures, computed from them."""
    out = []
    small = min(budgets)
    for m in models:
        guides = rows.get(("guides", m))
        if guides:
            turns = guides.total("turns")
            failed = guides.total("failed_turns")
            out.append(
                f"{m}: messages[-20:] got {guides.total('invalid')} 400s: {failed} of {turns} turns "
                f"({failed / turns:.0%}) got no reply, so its cost covers only the rest; it is not a working "
                "baseline to compare costs with."
            )
        auto = rows.get((f"CacheAwareWindow@{small}", m))
        fixed = [rows.get((f"CacheAwareWindow@{small}/{ttl}", m)) for ttl in ("5m", "1h")]
        if auto and all(fixed):
            five, hour = fixed
            assert five is not None and hour is not None
            out.append(
                f"{m}: CacheAwareWindow({small:,}) with the automatic TTL {money(auto.values('cost'))} "
                f"({spread(auto.bound_ratios(), unit='x')} of its bound), fixed 5m {money(five.values('cost'))} "
                f"({spread(five.bound_ratios(), unit='x')}), fixed 1h {money(hour.values('cost'))} "
                f"({spread(hour.bound_ratios(), unit='x')})."
            )
        above = [
            f"{row.strategy.label} ${statistics.median(_above_bound(r) for r in row.runs):.2f}"
            f" (${row.median('premium_1h'):.2f})"
            for (_key, model), row in rows.items()
            if model == m and row.strategy.ours and row.bound_ratios() and statistics.median(row.bound_ratios()) > 1.15
        ]
        if above:
            out.append(
                f"{m}: paid above the strict bound (median), and in brackets the part of it that is the 1-hour "
                "TTL's dearer writes over 5-minute ones; the rest is cache writes (1.25x the input price where "
                "the bound has 1x) and prefixes that expired or fell outside the lookback: " + ", ".join(above) + "."
            )
        for key, what in (("Summarize", "summary_cost"), ("ServerCompaction", "compaction_cost")):
            parts = [
                f"{row.strategy.label} {money(row.values(what))}"
                for (k, model), row in rows.items()
                if model == m and k.split("@")[0] == key and row.median(what) > 0
            ]
            if parts:
                kind = (
                    f"summaries (by {SUMMARY_MODEL})"
                    if key == "Summarize"
                    else "compaction passes (usage.iterations, as the simulator bills them)"
                )
                out.append(f"{m}: included {kind}: " + ", ".join(parts) + " per conversation.")
    return out


def render(
    results: list[RunResult],
    plan: list[Strategy],
    skipped: dict[str, str],
    models: Sequence[str],
    budgets: Sequence[int],
    settings: dict[str, Any],
    elapsed: float,
) -> str:
    rows = _rows(results, plan, models)
    info = settings.get("machine") or machine()
    seeds = settings["seeds"]
    lines = [
        f"`{settings['command']}` on {info['date']}: {info['cpu']}, Python {info['python']}; "
        f"`{info['uname']}`. Wall time {elapsed:.0f} s with {settings['jobs']} worker processes.",
        "",
        f"Workload (bench/workload.py): {len(seeds)} conversations of {settings['turns']} turns, one per seed "
        f"({', '.join(map(str, seeds))}); about 1,050 tokens a turn (Sonnet 4.6 count, x1.3 on Opus 5.5), 12% of "
        "turns a tool loop of 5 to 30 blocks, 3 PNG images a conversation, gaps of 5 s to 30 min on the "
        "simulator's clock. Replies are scripted: every strategy plays the same conversations. Billed from the "
        f"simulator's usage with `claude_history.pricing`; Summarize writes its summaries with {SUMMARY_MODEL}. "
        "Every figure is the median over the seeds with the range (lowest-highest) in brackets; ratios are "
        "taken seed by seed.",
        "",
        "A request answered 400 is counted and its turn gets no reply. The baselines keep what they "
        "appended before the call, as the guides' code does (`messages.append(...)`, then the call that "
        "raises), and go on with the next message; Chat commits nothing for that turn. Baselines: the guides' "
        "loop as written (no `cache_control`) and as a careful user writes it (one breakpoint on the last "
        "message, moved every request, or the API's automatic caching), all with the default 5-minute TTL.",
        "",
        "Strict bound: the same requests with every already-sent prefix read from the cache at the read price "
        "and every other input token at the base input price (no write premium), the output as billed. No "
        "caching scheme pays less for those requests; `cost / bound` says how close a strategy gets.",
        "",
        "Columns: USD per conversation; share of input tokens read from the cache; 400s and turns without a "
        "reply over all seeds; mean prompt tokens and turns a request carried; cost / strict bound; "
        "`count_tokens` calls per turn.",
    ]
    for m in models:
        body = []
        for s in plan:
            row = rows.get((s.key, m))
            if row is None:
                continue
            turns = row.total("turns")
            body.append(
                [
                    s.label + (" *" if s.ours else ""),
                    money(row.values("cost")),
                    f"{row.read_share:.0%}",
                    f"{row.total('invalid')} / {row.total('failed_turns')}",
                    f"{row.avg_context:,.0f}",
                    f"{row.avg_turns:.1f}",
                    spread(row.bound_ratios(), unit="x"),
                    f"{row.total('count_tokens') / turns:.1%}" if turns else "",
                ]
            )
        lines += [
            "",
            f"### {m}",
            "",
            table(
                [
                    "strategy (* ours)",
                    "USD / conv",
                    "cache-read share",
                    "400s / dropped turns",
                    "avg context (tokens)",
                    "avg turns kept",
                    "cost / strict bound",
                    "count_tokens / turn",
                ],
                body,
            ),
        ]
        compared = comparisons(rows, m, budgets)
        if compared:
            lines += ["", f"How many times ours costs, {m} (baseline / ours, per seed):", ""]
            lines += [f"- {what}: {spread(r, unit='x')}" for what, r in compared]
    lines += ["", "### Targets", "", "PASS means in every seed; the figure is the median (range)."]
    lines += [""] + [
        f"- {'PASS' if ok else 'FAIL'}: {name}: {figures}" for name, ok, figures in targets(rows, models, budgets)
    ]
    lines += ["", "### Notes", ""] + [f"- {note}" for note in notes(rows, models, budgets)]
    if skipped:
        lines += ["", "Not run: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."]
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        for k, v in r.errors.items():
            counts[f"{r.strategy} on {r.model}: {k}"] += v
    extra = [f"{what} x{n}" for what, n in sorted(counts.items())]
    if extra:
        lines += ["", "Errors raised before a call (turn dropped): " + "; ".join(extra) + "."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 16 turns, small budgets; prints only")
    parser.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--seeds", type=int, help="how many seeds, one conversation each (default 5, quick 1)")
    parser.add_argument("--turns", type=int)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--only", nargs="+", help="strategy keys to run, e.g. naive KeepAll CacheAwareWindow")
    parser.add_argument("--results", type=Path, help="Markdown file to write the section into")
    parser.add_argument("--json", type=Path, help="also write the raw per-run figures as JSON")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only render the report again from a --json file")
    parser.add_argument(
        "--cache",
        choices=("auto", "5m", "1h", "off"),
        default="auto",
        help="Chat(cache=...) for our policies: auto (the default TTL choice), a fixed TTL, or no caching",
    )
    args = parser.parse_args(argv)

    if args.render is not None:
        saved = json.loads(args.render.read_text())
        settings, elapsed = saved["settings"], saved["elapsed"]
        budgets, models = tuple(saved["budgets"]), saved["models"]
        results = [RunResult(**r) for r in saved["runs"]]
        keys = {r.strategy for r in results}
        plan = [s for s in strategies(budgets) if s.key in keys]
        skipped = saved.get("skipped", {})
        results_path = args.results if args.results is not None else RESULTS
    else:
        models = list(args.models)
        seeds = list(range(args.seed, args.seed + (args.seeds or (1 if args.quick else 5))))
        turns = args.turns or (16 if args.quick else 300)
        budgets = QUICK_BUDGETS if args.quick else BUDGETS
        results_path = args.results if args.results is not None else (None if args.quick else RESULTS)

        plan = strategies(budgets, args.only)
        skipped = {s.label: why for s in plan if (why := available(s)) is not None}
        plan = [s for s in plan if s.label not in skipped]
        if args.cache != "auto":
            fixed: bool | str = False if args.cache == "off" else args.cache
            plan = [replace(s, cache=fixed, label=f"{s.label} cache={args.cache}") if s.ours else s for s in plan]
        jobs = [(seed, turns, m, s) for s in plan for m in models for seed in seeds]
        # The whole-history strategies are the slowest: start them first so the workers finish together.
        whole = ("naive", "KeepAll", "ServerCompaction")
        jobs.sort(key=lambda j: -(10**9 if j[3].key.split("@")[0].split("+")[0] in whole else (j[3].budget or 0)))

        started = time.perf_counter()
        results: list[RunResult] = []
        if args.jobs <= 1:
            for job in jobs:
                results.append(run_one(job))
        else:
            import multiprocessing

            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                results = list(pool.map(run_one, jobs))
        elapsed = time.perf_counter() - started

        command = " ".join([".venv/bin/python bench/cost.py", *(sys.argv[1:] if argv is None else argv)])
        settings = {
            "seeds": seeds,
            "turns": turns,
            "jobs": args.jobs,
            "command": command,
            "machine": machine(),
        }
    text = render(results, plan, skipped, models, budgets, settings, elapsed)
    print(f"## {SECTION}\n\n{text}")
    if args.json:
        saved = {
            "settings": settings,
            "elapsed": elapsed,
            "budgets": list(budgets),
            "models": models,
            "skipped": skipped,
            "runs": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(saved, indent=1))
    if results_path is not None:
        replace_section(SECTION, text, results_path)
        print(f"\nwritten to {results_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
