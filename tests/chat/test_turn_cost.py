"""What a turn costs, counted rather than timed (issue 14, item 9): the store calls a turn makes and the
messages the planner estimates. A warm turn (the same Chat, the session unchanged by others) reads nothing
from the store but the version check and estimates only its new messages, however long the session is."""

from __future__ import annotations

import gc
import random
import statistics
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anthropic
import pytest

from claude_history import Chat
from claude_history.context import CacheAwareWindow, LastTurns
from claude_history.context import log_index as log_index_module
from claude_history.context.checkpoint import WHOLE_FROM
from claude_history.pricing import load_prices
from claude_history.stores import open_store
from claude_history.stores.base import Entry, SessionData, SessionInfo, Store, StoredMessage
from claude_history.tokens import estimate_request
from claude_history.tools import ToolSet
from claude_history.turn import Ledger, SessionState, Settings
from claude_history.turn_path import ChatMemory, turn_path
from claude_history.turn_requests import (
    CallApi,
    CheckVersion,
    Commit,
    CountTokens,
    Finished,
    SaveMetadata,
)

from .conftest import MODEL

READS = frozenset(
    {"load", "load_messages", "get_session", "version", "usage_log", "list_sessions", "search", "message_params"}
    | {"export_jsonl"}
)


class CountingStore:
    """A real store behind a front that counts the calls made to it, by method name."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


@pytest.fixture(params=["memory", "sqlite"])
def counting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CountingStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'chats.db'}"
    store = open_store(url)
    yield CountingStore(store)
    store.close()


def stored_session(store: Store, session_id: str, length: int, seed: int) -> None:
    """``length`` alternating text messages, the replies with a usage record, appended in one go."""
    rng = random.Random(seed)
    entries = []
    for i in range(length):
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) for _ in range(rng.randint(20, 200)))
        if i % 2:
            usage = {"input_tokens": 1_000 + i, "output_tokens": 200}
            entries.append(Entry({"role": "assistant", "content": text}, model=MODEL, usage=usage))
        else:
            entries.append(Entry({"role": "user", "content": text}))
    store.append(session_id, entries, expected_version=0)


def count_estimates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, ``[n]``: how many times the planner has sized a message (set it back to 0 at will)."""
    estimates = [0]
    real = log_index_module.estimate_message

    def counted(*args: Any, **kwargs: Any) -> Any:
        estimates[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(log_index_module, "estimate_message", counted)
    return estimates


def warm_turn_cost(
    client: anthropic.Anthropic, store: CountingStore, length: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Counter[str], int]:
    """(store calls, message estimates) of the third turn of a Chat on a stored session of ``length``."""
    session_id = f"cost-{length}"
    stored_session(store.inner, session_id, length, seed=length)
    chat = Chat(client, model=MODEL, store=store, session_id=session_id, context=CacheAwareWindow(8_000))
    chat.send("first")
    chat.send("second")
    estimates = count_estimates(monkeypatch)
    store.calls.clear()
    reply = chat.send("third")
    assert reply.content, "the turn got its reply"
    assert chat.messages[-2]["content"] == "third"
    return Counter(store.calls), estimates[0]


def test_a_warm_turn_reads_only_the_version_and_estimates_only_its_new_messages(
    client: anthropic.Anthropic, counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_calls, short_estimates = warm_turn_cost(client, counting, 60, monkeypatch)
    long_calls, long_estimates = warm_turn_cost(client, counting, 3_000, monkeypatch)
    for calls in (short_calls, long_calls):
        reads = {name: count for name, count in calls.items() if name in READS}
        assert reads == {"get_session": 1}, f"a warm turn read more than the version: {reads}"
        assert calls["append"] == 1  # the turn committed in one write
    # Two new messages (the user's and the reply), each estimated once per size variant at most.
    assert short_estimates == long_estimates
    assert 1 <= long_estimates <= 2 * 4


# ---------------------------------------------------------------------------------------------- nothing of n


NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def tokenized(kwargs: dict[str, Any]) -> int:
    """The request's size as a tokenizer 10% under the local estimate would count it."""
    sent = estimate_request(kwargs["messages"], model=MODEL, system=kwargs.get("system"), tools=kwargs.get("tools"))
    return int(sent * 0.9)


def reply_to(kwargs: dict[str, Any]) -> anthropic.types.Message:
    """A short answer, billed as ``tokenized``."""
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": "A short answer of a few words."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": tokenized(kwargs), "output_tokens": 20},
        }
    )


def loaded_memory(length: int) -> ChatMemory:
    """A chat's memory after loading a stored session of ``length`` text messages (no usage recorded: the
    planner goes by its own estimates, so the budget cuts the same window at any length)."""
    rng = random.Random(length)
    records = []
    for i in range(length):
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(20, 60)))
        reply = i % 2 == 1
        records.append(
            StoredMessage(
                seq=i,
                message={"role": "assistant" if reply else "user", "content": text},
                model=MODEL if reply else None,
                usage=None,
                created_at=NOW + timedelta(seconds=i),
            )
        )
    info = SessionInfo(id="s", version=1, created_at=NOW, updated_at=NOW, model=MODEL, system="S", incarnation="i")
    memory = ChatMemory("s", Ledger(load_prices(None)))
    memory.adopt(SessionState.from_data(SessionData(info=info, messages=records)))
    return memory


def one_turn(memory: ChatMemory, settings: Settings, content: str) -> int:
    """``turn_path`` driven as a front end would, the API and the store answered in memory (no I/O); the
    number of messages the request sent."""
    assert memory.state is not None
    version = memory.state.version
    path = turn_path(memory, settings, content, {}, append_tokens=False)
    result: Any = None
    sent = 0
    while not isinstance(request := path.send(result), Finished):
        if isinstance(request, (CheckVersion, SaveMetadata)):
            result = SessionInfo(id="s", version=version, created_at=NOW, updated_at=NOW, incarnation="i")
        elif isinstance(request, CallApi):
            result, sent = reply_to(request.kwargs), len(request.kwargs["messages"])
        elif isinstance(request, CountTokens):
            result = tokenized(request.kwargs)
        elif isinstance(request, Commit):
            result = version + 1
        else:
            raise AssertionError(f"unexpected {type(request).__name__}")
    return sent


def warm_turn_work(length: int, policy: Any) -> tuple[int, int, int, list[int]]:
    """What the warm turns of a chat on a session of ``length`` messages cost the library: (Python function
    calls of one turn; the median over five more turns of the peak bytes allocated during the turn above
    what was allocated before it, and of the bytes still held after it; the messages each turn sent)."""
    memory = loaded_memory(length)
    settings = Settings(model=MODEL, system="S", max_tokens=100, context=policy, cache=True,
                        toolset=ToolSet.build(None, None), create_kwargs={}, max_tool_rounds=5,
                        tool_errors="report", commit_pending=False, clock=lambda: NOW)  # fmt: skip
    for k in range(5):  # the first turn replays the session; the next ones are warm
        one_turn(memory, settings, f"turn {k}: " + "word " * 30)
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1

    sys.setprofile(count)
    try:
        sent = [one_turn(memory, settings, "the counted turn: " + "word " * 30)]
    finally:
        sys.setprofile(None)
    peaks, held = [], []
    for k in range(5):  # (apart from the profiler: it makes a frame object for every call it sees)
        gc.collect()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            sent.append(one_turn(memory, settings, f"measured turn {k}: " + "word " * 30))
            now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks.append(peak - start)
        held.append(now - start)
    assert memory.state is not None and len(memory.state.log) == length + 22  # eleven turns were committed
    return calls[0], int(statistics.median(peaks)), int(statistics.median(held)), sent


@pytest.mark.parametrize("policy", [LastTurns(20), CacheAwareWindow(6_000)], ids=repr)
def test_a_warm_turn_neither_walks_nor_copies_the_session(policy: Any) -> None:
    """Issue 14.2: a warm turn costs what is new. Counted, not timed: the Python calls the library makes for
    a turn (a loop over the log would add one per message) and the memory it allocates (a copy of the log is
    one pointer per message, 8 bytes each, whether it is kept or dropped) are the same for 1,000 and 8,000
    messages. ``LastTurns`` sends the same window at both lengths; under ``CacheAwareWindow`` the window
    moves at other turns, so the calls may differ by what the longer window sends."""
    short, long = 1_000, 8_000
    short_calls, short_peak, short_held, short_sent = warm_turn_work(short, policy)
    long_calls, long_peak, long_held, long_sent = warm_turn_work(long, policy)
    assert max(short_sent) < 200, "the budget cuts the session: the same kind of window at both lengths"
    wider = max(0, max(long_sent) - min(short_sent))  # messages the longer session's window sends more
    one_copy = 8 * (long - short)  # the bytes one copy of the longer log's pointers takes more
    assert long_calls <= short_calls + 50 + 15 * wider, (short_calls, long_calls, short_sent, long_sent)
    assert long_peak - short_peak < one_copy / 2, (short_peak, long_peak)
    assert long_held - short_held < one_copy / 2, (short_held, long_held)


def test_a_turn_keeps_the_planner_checkpoint_in_its_one_write(
    client: anthropic.Anthropic, counting: CountingStore
) -> None:
    """Issue 14.1: the checkpoint a fresh chat plans from is written by the commit's own append (the same
    transaction or script), not by a second write: one store write, one round trip per turn."""
    stored_session(counting.inner, "cp", 3_000, seed=3)
    first = Chat(client, model=MODEL, store=counting, session_id="cp", context=CacheAwareWindow(8_000))
    first.send("first")  # read whole; its checkpoint is of the second request (the first has no earlier one)
    first.send("second")
    for turn in range(2):  # a fresh Chat per request (it plans from the checkpoint), then a warm turn
        chat = Chat(client, model=MODEL, store=counting, session_id="cp", context=CacheAwareWindow(8_000))
        counting.calls.clear()
        chat.send(f"question {turn}")
        writes = {name: n for name, n in counting.calls.items() if name not in READS | {"load_checkpoint"}}
        assert writes == {"append": 1}, f"a turn wrote more than its append: {writes}"
        assert counting.calls["load"] == 0, "the checkpoint let the fresh chat read only the window"
        kept = counting.inner.load_checkpoint("cp")  # type: ignore[attr-defined]
        assert kept is not None and kept[0] == counting.inner.get_session("cp").version


def test_a_chat_sums_the_session_usage_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A web handler makes a Chat per request and rarely reads ``chat.usage``: reading a session does no
    per-message usage arithmetic (it showed as ``usage.from_api`` once per message per request in the web-app
    profile of issue 14); the totals are summed when asked, and are the same."""
    from claude_history.usage import TokenUsage

    looked = [0]

    class Record(dict):  # type: ignore[type-arg]
        """A usage record that counts how often it is looked at (``if usage``: its length)."""

        def __len__(self) -> int:
            looked[0] += 1
            return super().__len__()

    memory = loaded_memory(10)
    records = [
        StoredMessage(seq=i, message={"role": "assistant", "content": "x"}, model=MODEL,
                      usage=Record(input_tokens=i, output_tokens=2, cache_read_input_tokens=3), created_at=NOW)
        for i in range(1_000)
    ]  # fmt: skip
    info = SessionInfo(id="s", version=1, created_at=NOW, updated_at=NOW, incarnation="i")
    state = SessionState.from_data(SessionData(info=info, messages=records))
    calls = [0]
    real = TokenUsage.from_api.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, usage: Any) -> TokenUsage:
        calls[0] += 1
        return real(cls, usage)  # type: ignore[no-any-return]

    monkeypatch.setattr(TokenUsage, "from_api", classmethod(counted))
    looked[0] = 0
    memory.adopt(state)
    assert calls[0] == 0, "reading the session summed its usage"
    assert looked[0] == 0, "reading the session listed its usage records"
    usage = memory.ledger.usage
    assert usage == TokenUsage(input_tokens=sum(range(1_000)), output_tokens=2_000, cache_read_input_tokens=3_000)
    assert calls[0] == 1_000
    memory.ledger.add([(MODEL, {"input_tokens": 1})])
    assert memory.ledger.usage.input_tokens == sum(range(1_000)) + 1 and calls[0] == 1_001
    memory.adopt(state)  # a turn added before the totals are asked for: counted after the session's records
    memory.ledger.add([(MODEL, {"input_tokens": 5})])
    assert memory.ledger.usage.input_tokens == sum(range(1_000)) + 5 and calls[0] == 2_002


@pytest.mark.parametrize("policy", [None, LastTurns(20)], ids=["KeepAll", "LastTurns"])
def test_a_fresh_chat_reads_a_whole_log_policy_session_in_one_read(
    client: anthropic.Anthropic, counting: CountingStore, policy: Any
) -> None:
    """A web handler's fresh Chat under ``KeepAll`` (the default: its window is the whole log, so no
    checkpoint can spare any of the read) reads the session once and writes the turn once: no version check
    before the load, and a checkpoint lookup only on a long session (it spares the replay there: the
    checkpoint tests). A windowed policy looks for its checkpoint first."""
    stored_session(counting.inner, "whole", 400, seed=4)
    stored_session(counting.inner, "short", WHOLE_FROM - 20, seed=4)
    for session_id in ("whole", "short"):
        Chat(client, model=MODEL, store=counting, session_id=session_id, context=policy).send("first")
    for turn in range(2):
        for session_id in ("whole", "short"):
            chat = Chat(client, model=MODEL, store=counting, session_id=session_id, context=policy)
            counting.calls.clear()
            chat.send(f"question {turn}")
            if policy is None:
                checkpoint = {"load_checkpoint": 1} if session_id == "whole" else {}
                assert counting.calls == Counter({"load": 1, "append": 1, **checkpoint}), counting.calls
            else:
                assert counting.calls["get_session"] == 1 and counting.calls["load_checkpoint"] == 1
    chat = Chat(client, model=MODEL, store=counting, session_id="new-session", context=policy)
    chat.send("hello")  # a session that does not exist yet is created by the turn's append
    assert len(chat.messages) == 2 and counting.inner.get_session("new-session").version >= 1
