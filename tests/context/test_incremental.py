"""The planner keeps per-session state between calls (the message index, the replay's checkpoints, the usage
history parsed so far, the view of each window) so that a request costs its new messages. None of it may
change a plan: planning with that state warm must give exactly what planning from scratch gives, request after
request, through summaries, exact counts, rewinds, forks, a changed usage history and several policies
planning the same session."""

from __future__ import annotations

import copy
import json
import random
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history import BudgetExceeded, InvalidHistory
from claude_history.context import (
    CacheAwareWindow,
    KeepAll,
    LastTurns,
    OldImages,
    Planner,
    ServerCompaction,
    Summarize,
    TokenBudget,
    plan_request,
)
from claude_history.context.plan import RequestPlan
from claude_history.history import content_blocks, is_turn_start, last_turn_start, validate
from claude_history.stores.base import Summary
from claude_history.tokens import estimate_request

from .conversation import LOOKUP_TOOL, build_history, random_turn, signed

MODEL = "claude-sonnet-4-6"
BINDING_MODEL = "claude-opus-5-5"
SYSTEM = "You are a research assistant. Answer with care and cite what you used. " * 12

POLICIES: dict[str, Any] = {
    "keep-all": KeepAll(),
    "cache-aware": CacheAwareWindow(7_000, low_water=4_000),
    "token-budget": TokenBudget(6_000),
    "summarize": Summarize(8_000, low_water=4_500, max_summary_tokens=300),
    "mixed": LastTurns(5) & TokenBudget(7_000) & OldImages(after_turns=2),
    "compaction": ServerCompaction(trigger_tokens=50_000),
}


def wire(plan: RequestPlan) -> str:
    """What goes over the wire, byte for byte (key order included)."""
    return json.dumps(plan.request_kwargs())


def assert_same(warm: RequestPlan, cold: RequestPlan) -> None:
    assert wire(warm) == wire(cold)
    assert warm == cold  # every field: window, estimate, breakpoints, TTL, report, summary request, fallback


def said(messages: list[dict[str, Any]]) -> list[Any]:
    """What the user side said (text and tool results, markers aside; images and their placeholders out)."""
    return [
        {k: v for k, v in block.items() if k != "cache_control"}
        for message in messages
        if message["role"] == "user"
        for block in content_blocks(message)
        if block.get("type") == "tool_result"
        or (block.get("type") == "text" and not str(block.get("text")).startswith("[image omitted"))
    ]


def assert_sound(plan: RequestPlan, full: list[dict[str, Any]]) -> None:
    """A valid request that says everything the log says from its window start on (a thinking-only reply
    dropped before the epoch merges the user messages around it: nothing of theirs may be lost)."""
    validate(plan.messages)
    assert said(plan.messages) == said(full[plan.window_start :])


class Session:
    """A conversation played the way Chat plays it (fresh copies of the pending messages and a new usage list
    on every call), checking every plan against a cold one made from deep copies of the same inputs."""

    def __init__(self, seed: int, model: str, policy: Any, *, thinking: bool) -> None:
        self.rng = random.Random(seed)
        self.counter = [0]
        self.model, self.policy, self.thinking = model, policy, thinking
        self.log: list[dict[str, Any]] = []
        self.usage: list[dict[str, Any]] = []
        self.summaries: list[Summary] = []
        self.clock = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.checked = 0
        self.planner = Planner()  # shared with a fork: one memory planning two sessions in turns
        # As Chat does: the same object while the log only grows (None: the caller vouches for nothing).
        self.lineage: object | None = object()
        # The newest warm plan and its wire text when made: a later plan must leave it as it was (the requests
        # of a window share the view's message dicts; a marker goes on a copy).
        self.previous: tuple[RequestPlan, str] | None = None

    def plan(
        self, pending: list[dict[str, Any]], *, policy: Any = None, usage: Any = None, **extra: Any
    ) -> RequestPlan:
        arguments: dict[str, Any] = {
            "model": self.model,
            "system": SYSTEM,
            "tools": [LOOKUP_TOOL],
            "policy": policy if policy is not None else self.policy,
            "summaries": list(self.summaries),
            "usage_history": list(usage if usage is not None else self.usage),
            **extra,
        }
        cold_log, cold_pending, cold_arguments = copy.deepcopy((self.log, pending, arguments))
        try:
            warm = plan_request(
                self.log, [dict(m) for m in pending], **arguments, planner=self.planner, lineage=self.lineage
            )
        except BudgetExceeded as error:
            with pytest.raises(BudgetExceeded) as cold_error:
                plan_request(cold_log, cold_pending, **cold_arguments)
            assert (error.needed, error.budget, str(error)) == (
                cold_error.value.needed,
                cold_error.value.budget,
                str(cold_error.value),
            )
            raise
        assert self.log == cold_log  # planning left the log as it was (the request's markers are on copies)
        if self.previous is not None:
            assert wire(self.previous[0]) == self.previous[1]  # ... and every earlier request too
        self.previous = (warm, wire(warm))
        cold = plan_request(cold_log, cold_pending, **cold_arguments)
        assert_same(warm, cold)
        assert_sound(warm, [*self.log, *pending])
        self.checked += 1
        return warm

    def turn(self, *, other: Any = None) -> None:
        """One turn; ``other``: also plan each request under another policy (the same session, another
        replay). A turn too big for the budget is dropped, as Chat commits nothing of it."""
        try:
            self._turn(other)
        except BudgetExceeded:
            self.usage = [u for u in self.usage if u["seq"] < len(self.log)]

    def _turn(self, other: Any) -> None:
        rng = self.rng
        turn = random_turn(rng, self.counter, thinking=self.thinking, images=True)
        if self.thinking and rng.random() < 0.2:  # a reply made of thinking alone: dropped with its thinking
            turn.replies[-1] = [b for b in turn.replies[-1] if b["type"] == "thinking"]
        user = turn.user
        if rng.random() < 0.15:  # the caller's own breakpoints (more than 4 in all, in a long conversation)
            text = user if isinstance(user, str) else "look at this"
            user = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
        pending: list[dict[str, Any]] = [{"role": "user", "content": user}]
        # Now and then a record stamped by a server whose clock is behind: a negative gap, which is ignored.
        self.clock += timedelta(seconds=rng.choice([20, 90, 400, 2_000, -60]))
        for k, reply in enumerate(turn.replies):
            if other is not None:
                self.plan(pending, policy=other)
            plan = self.plan(pending)
            if plan.summary_request is not None:
                if rng.random() < 0.75:  # the summariser answered
                    request = plan.summary_request
                    text = "notes: " + " ".join(rng.choice(["fact", "name", "number"]) for _ in range(80))
                    self.summaries.append(Summary(request.start, request.end, text, model="claude-haiku-4-5"))
                    plan = self.plan(pending)
                else:
                    assert plan.fallback is not None
                    plan = plan.fallback
            if plan.check_count and rng.random() < 0.5:  # an exact count that came out over the budget
                assert plan.report is not None
                counted = int(max(plan.estimated_input_tokens, plan.report.budget) * rng.uniform(1.01, 1.3))
                plan = self.plan(pending, measured_input_tokens=counted)
            sent = estimate_request(plan.messages, model=self.model, system=plan.system, tools=plan.tools)
            prompt = int(sent * rng.uniform(0.85, 0.95))
            assert plan.report is not None
            cached = min(prompt, plan.report.cached_tokens)
            pending.append({"role": "assistant", "content": signed(reply)})
            self.usage.append(
                {
                    "seq": len(self.log) + len(pending) - 1,
                    "usage": {
                        "input_tokens": prompt - cached,
                        "cache_read_input_tokens": cached,
                        "cache_creation_input_tokens": 0,
                        "output_tokens": 50,
                    },
                    "created_at": self.clock,
                    "model": self.model,
                }
            )
            self.clock += timedelta(seconds=4)
            if k < len(turn.tool_results):
                pending.append({"role": "user", "content": turn.tool_results[k]})
        self.log.extend(pending)

    def rewind(self) -> None:
        """Drop the newest turn, as ``store.rewind`` does (the log gets shorter, its usage goes with it)."""
        cut = last_turn_start(self.log)
        assert cut is not None
        del self.log[cut:]
        self.usage = [u for u in self.usage if u["seq"] < cut]
        self.summaries = [s for s in self.summaries if s.end <= cut]
        self.lineage = object()  # the log did not only grow

    def fork(self, turns_back: int) -> Session:
        """A new session holding the same message dicts up to an earlier turn (``store.fork``)."""
        forked = copy.copy(self)
        cut = len(self.log)
        for _ in range(turns_back):
            cut = last_turn_start(self.log[:cut]) or 0
        forked.log = self.log[:cut]
        forked.usage = [u for u in self.usage if u["seq"] < cut]
        forked.summaries = [s for s in self.summaries if s.end <= cut]
        forked.rng = random.Random(self.rng.random())
        forked.lineage = object()
        return forked


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("keep-all", MODEL),
        ("cache-aware", BINDING_MODEL),
        ("token-budget", MODEL),
        ("summarize", MODEL),
        ("summarize", BINDING_MODEL),
        ("mixed", BINDING_MODEL),
        ("compaction", BINDING_MODEL),
    ],
)
def test_a_long_conversation_plans_the_same_warm_and_cold(name: str, model: str) -> None:
    session = Session(zlib.crc32(f"{name}/{model}".encode()), model, POLICIES[name], thinking=model == BINDING_MODEL)
    other = POLICIES["cache-aware"] if name != "cache-aware" else POLICIES["keep-all"]
    windows = []
    for t in range(36):
        session.turn(other=other if t % 5 == 0 else None)
        windows.append(session.plan([{"role": "user", "content": "and?"}]).window_start)
        if t in (14, 27):
            session.rewind()
            session.plan([{"role": "user", "content": "again"}])
    if name in ("cache-aware", "token-budget", "summarize", "mixed"):
        assert len(set(windows)) > 2, "the conversation must be long enough to move the window"
    assert session.checked > 60


def test_forks_edits_and_changed_records_plan_the_same_warm_and_cold() -> None:
    """Two sessions sharing their first messages (a fork) planned in turns; the same log planned with a
    different usage history (its replies billed differently) and different summaries; a message edited in
    place: each plan as if it were the first."""
    main = Session(7, MODEL, POLICIES["cache-aware"], thinking=False)
    for _ in range(12):
        main.turn()
    fork = main.fork(turns_back=4)
    for _ in range(6):
        fork.turn()
        main.turn()
    rebilled = [
        {**u, "usage": {**u["usage"], "input_tokens": u["usage"]["input_tokens"] + 400}} if i % 3 == 0 else u
        for i, u in enumerate(main.usage)
    ]
    pending = [{"role": "user", "content": "next"}]
    before = main.plan(pending)
    main.lineage = None  # records replaced in the middle: nothing vouched for
    main.plan(pending, usage=rebilled)
    main.plan(pending, usage=[])  # no usage at all: estimates only
    assert main.plan(pending) == before
    fork.plan(pending)

    # Summaries: the same log planned without the newest one, then with all of them again.
    summarising = Session(11, MODEL, POLICIES["summarize"], thinking=False)
    while len(summarising.summaries) < 2:
        summarising.turn()
    for _ in range(3):
        summarising.turn()
    every = list(summarising.summaries)
    before = summarising.plan(pending)
    summarising.summaries = every[:-1]
    summarising.plan(pending)
    summarising.summaries = every
    assert summarising.plan(pending) == before

    # A message inside the window edited in place (its content replaced), with no usage to tell.
    unbilled = Session(5, BINDING_MODEL, POLICIES["token-budget"], thinking=True)
    for _ in range(14):
        unbilled.turn()
    unbilled.usage = []
    unbilled.lineage = None  # a message is about to change in place
    first = unbilled.plan(pending)
    starts = [i for i, m in enumerate(unbilled.log) if is_turn_start(m)]
    unbilled.log[starts[-2]]["content"] = "much longer now " * 500
    assert unbilled.plan(pending).messages != first.messages


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    name=st.sampled_from(sorted(POLICIES)),
    binding=st.booleans(),
    rewinds=st.lists(st.integers(2, 14), max_size=2),
)
def test_random_conversations_plan_the_same_warm_and_cold(
    seed: int, name: str, binding: bool, rewinds: list[int]
) -> None:
    session = Session(seed, BINDING_MODEL if binding else MODEL, POLICIES[name], thinking=binding)
    for t in range(16):
        session.turn()
        if t in rewinds and last_turn_start(session.log):
            session.rewind()


def test_a_shallow_copy_of_a_message_is_the_same_message_unless_its_role_or_keys_differ() -> None:
    """Chat hands the planner fresh copies of the turn's messages on every call (same content lists): they
    are recognised, while a copy that changed its role or gained a key is checked again like a new message."""
    history = build_history(3, 12, thinking=True)
    log, pending = history[:-1], history[-1:]
    arguments: dict[str, Any] = {
        "model": MODEL,
        "system": SYSTEM,
        "policy": POLICIES["cache-aware"],
        "planner": Planner(),
    }
    first = plan_request(log, pending, **arguments)
    copied = [log[0], *(dict(m) for m in log[1:])]
    assert_same(plan_request(copied, pending, **arguments), first)
    assert_same(plan_request(copy.deepcopy(log), pending, **arguments), first)
    assistant = next(i for i, m in enumerate(log) if m["role"] == "assistant")
    for changed in ({**log[assistant], "role": "user"}, {**log[assistant], "name": "bot"}):
        plan_request(log, pending, **arguments)
        with pytest.raises(InvalidHistory) as error:
            plan_request([*log[:assistant], changed, *log[assistant + 1 :]], pending, **arguments)
        assert error.value.index == assistant


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 12), st.integers(0, 3), st.booleans()), max_size=14),
        min_size=1,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_the_usage_index_follows_any_sequence_of_usage_histories(
    histories: list[list[tuple[int, int, bool]]], rng: random.Random
) -> None:
    """The planner's parsed usage history, updated call after call (items kept by identity, dropped, added,
    seqs given twice), is always ``usage_points`` of the current list; and it names the first seq whose
    usage changed, which is what the replay's checkpoints are kept or dropped by."""
    from claude_history.context.usage_index import NEVER, UsageIndex, usage_points

    pool: dict[tuple[int, int, bool], dict[str, Any]] = {}
    index = UsageIndex()
    previous: dict[int, Any] = {}
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for history in histories:
        items = []
        for seq, billed, timed in history:
            key = (seq, billed, timed)
            if key not in pool or rng.random() < 0.3:  # sometimes a new but equal record
                pool[key] = {
                    "seq": seq,
                    "usage": {"input_tokens": 100 * billed} if billed else None,
                    "created_at": start + timedelta(seconds=seq * 60) if timed else None,
                }
            items.append(pool[key])
        changed = index.update(items)
        expected = usage_points(items)
        assert index.points == expected
        assert index.timed == sorted(s for s, p in expected.items() if p.created_at is not None)
        now = {seq: point.usage for seq, point in expected.items()}
        differs = [s for s in set(now) | set(previous) if now.get(s) != previous.get(s)]
        assert changed == min(differs, default=NEVER)
        assert all(index.prompt(s) == (now[s] or {}).get("input_tokens") for s in now)
        previous = now


def test_a_window_holds_the_logs_own_message_dicts_and_copies_only_what_it_marks() -> None:
    """A warm session keeps its window's view for every message of its log: a plain message (a role and its
    content, nothing to transform) is held as the log's own dict, not an equal copy, and a request copies
    only the messages its cache breakpoints change, so the log is left exactly as it was."""
    log: list[dict[str, Any]] = []
    for t in range(40):
        log.append({"role": "user", "content": f"question {t}: " + "words " * 30})
        log.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {t} " + "more " * 40}]})
    planner = Planner()
    for turn in range(3):
        before = json.dumps(log)
        pending = [{"role": "user", "content": f"and now, {turn}?"}]
        plan = plan_request(log, pending, model=MODEL, system=SYSTEM, policy=KeepAll(), planner=planner)
        assert json.dumps(log) == before
        sent = plan.request_kwargs()["messages"]
        marked = {i for i, m in enumerate(sent) if "cache_control" in json.dumps(m)}
        assert marked
        assert all(sent[i] is log[i] for i in range(len(log)) if i not in marked)
        assert all(sent[i] is not log[i] for i in marked if i < len(log))
        log += [pending[0], {"role": "assistant", "content": [{"type": "text", "text": f"reply {turn}"}]}]
