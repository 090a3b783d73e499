"""What a fresh ``Chat`` reads from its store (issue 14, items 1 and 9), pinned by counting reads, not by time.

A web handler builds a new ``Chat`` per request: its first turn on a long session must read about what the
request sends (the planner's checkpoint, kept with the session, stands for the rest), and a warm turn reads
nothing but the version check. The request a checkpointed chat sends is the one a chat that read the whole
session sends, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import anthropic
import pytest

from claude_history import AsyncChat, Chat
from claude_history.context import CacheAwareWindow
from claude_history.context.checkpoint import HISTORY
from claude_history.stores.base import Entry, SessionData, SessionInfo, StoredMessage
from claude_history.stores.memory import MemoryStore
from claude_history.stores.threaded import ThreadedAsyncStore
from claude_history.testing import Simulator

from .conftest import MODEL, bodies

POLICY = CacheAwareWindow(20_000)
SYSTEM = "You answer briefly."
WORDS = ["the", "of", "cache", "window", "session", "token", "turn", "reply", "plan", "store", "message", "user"]


class CountingStore(MemoryStore):
    """A memory store that counts its reads: calls by method, and the messages they returned."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.messages_read = 0

    def reset(self) -> None:
        self.calls.clear()
        self.messages_read = 0

    def load(self, session_id: str) -> SessionData:
        data = super().load(session_id)
        self.calls["load"] += 1
        self.messages_read += len(data.messages)
        return data

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        found = super().load_messages(session_id, start=start, stop=stop)
        self.calls["load_messages"] += 1
        self.messages_read += len(found)
        return found

    def get_session(self, session_id: str) -> SessionInfo:
        self.calls["get_session"] += 1
        return super().get_session(session_id)

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        self.calls["load_checkpoint"] += 1
        return super().load_checkpoint(session_id)


class WithoutCheckpoints:
    """The same store seen through a wrapper that keeps no checkpoints (as a user's own store): every fresh
    chat reads the whole session."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("load_checkpoint", "save_checkpoint", "checkpoints_supported"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def write_history(store: MemoryStore, session_id: str, length: int, seed: int = 1) -> None:
    """``length`` messages of seeded prose written straight into the store, as an import writes them (no
    usage: the planner sizes them by its estimates until the chats' own replies are billed)."""
    rng = random.Random(seed)
    chunk: list[Entry] = []
    version = 0
    for i in range(length):
        text = " ".join(rng.choices(WORDS, k=rng.randint(20, 120)))
        if i % 2 == 0:
            chunk.append(Entry({"role": "user", "content": text}))
        else:
            chunk.append(Entry({"role": "assistant", "content": [{"type": "text", "text": text}]}, MODEL))
        if len(chunk) == 1_000 or i == length - 1:
            version = store.append(session_id, chunk, expected_version=version)
            chunk = []


def twin_sessions(length: int, seed: int) -> tuple[CountingStore, WithoutCheckpoints]:
    """Sessions "a" and "b" holding the same conversation, in one store, and that store seen without checkpoints
    (a chat on it reads everything): the request of a chat on "a" must be the one of a chat on "b"."""
    store = CountingStore()
    for session_id in ("a", "b"):
        write_history(store, session_id, length, seed=seed)
    return store, WithoutCheckpoints(store)


def question(step: int, words: int) -> str:
    return f"Question {step}: " + " ".join(random.Random(step).choices(WORDS, k=words))


def chat(client: anthropic.Anthropic, store: Any, session_id: str) -> Chat:
    return Chat(client, model=MODEL, store=store, session_id=session_id, system=SYSTEM, max_tokens=64, context=POLICY)


def test_a_fresh_chat_reads_the_window_it_sends_and_a_warm_turn_only_the_version(
    client: anthropic.Anthropic, sim: Simulator
) -> None:
    store = CountingStore()
    write_history(store, "long", 10_000)
    chat(client, store, "long").send("First question after the import.")  # reads it all, keeps a checkpoint
    assert store.load_checkpoint("long") is not None
    for turn in range(3):  # a new Chat per request, as a web handler makes one
        store.reset()
        fresh = chat(client, store, "long")
        fresh.send(f"Question {turn} from a new request handler.")
        sent = len(bodies(sim)[-1]["messages"])
        assert store.calls["load"] == 0
        assert store.calls["load_messages"] == 1
        assert store.calls["get_session"] + store.calls["load_checkpoint"] == 2
        # At most the previous request's window (this request's window may have moved on), never the session.
        assert store.messages_read < 600
    # Once the window holds still: the window it sends, and the request points the planner looks back over
    # (the gaps between turns for the cache TTL, the 1-hour cache anchors).
    assert store.messages_read <= sent + 2 * HISTORY + 2

    store.reset()
    fresh.send("And a second one on the same chat.")
    assert store.calls == Counter({"get_session": 1})
    assert store.messages_read == 0


def test_a_checkpointed_chat_sends_what_a_chat_that_read_everything_sends(
    client: anthropic.Anthropic, sim: Simulator
) -> None:
    store, whole = twin_sessions(1_200, seed=5)
    for step in range(4):
        asked = question(step, 60)
        store.reset()
        chat(client, store, "a").send(asked)
        partial_read = store.messages_read
        via_checkpoint = bodies(sim)[-1]
        chat(client, whole, "b").send(asked)
        via_whole_read = bodies(sim)[-1]
        assert via_checkpoint == via_whole_read
        if step:  # a checkpoint was kept by the previous step's chat
            assert partial_read < 600
    assert [m.message for m in store.load("a").messages] == [m.message for m in store.load("b").messages]


def test_a_checkpoint_made_stale_by_another_writer_is_not_used(client: anthropic.Anthropic, sim: Simulator) -> None:
    store = CountingStore()
    write_history(store, "s", 600)
    chat(client, store, "s").send("one")
    version, _ = store.load_checkpoint("s") or (0, {})
    assert version == store.get_session("s").version
    # Another writer appends without keeping a checkpoint (a user's own code, another library version).
    store.append("s", [Entry({"role": "user", "content": "hi"}), Entry({"role": "assistant", "content": "yo"})],
                 expected_version=version)  # fmt: skip
    store.reset()
    chat(client, store, "s").send("two")
    assert store.calls["load"] == 1  # the stale checkpoint was ignored: the whole session was read
    assert store.load_checkpoint("s") is not None and store.load_checkpoint("s")[0] == version + 2  # type: ignore[index]
    # A rewind moves the version on too: the checkpoint kept is stale again.
    store.rewind("s")
    store.reset()
    chat(client, store, "s").send("three")
    assert store.calls["load"] == 1


def test_a_fresh_chat_reads_the_whole_session_for_its_history_and_totals(client: anthropic.Anthropic) -> None:
    store = CountingStore()
    write_history(store, "s", 800)
    first = chat(client, store, "s")
    first.send("one")
    fresh = chat(client, store, "s")
    fresh.send("two")
    assert store.calls["load"] == 1  # only the first chat read it all
    assert len(fresh.messages) == 804  # reading the history reads the rest
    whole = chat(client, store, "s")
    assert fresh.usage == whole.usage and fresh.cost == whole.cost and fresh.cost_complete
    assert fresh.usage.output_tokens > first.usage.output_tokens  # the fresh chat's own turn is counted


def test_an_async_chat_reads_the_window_and_asks_for_a_load_before_the_whole_history(
    aclient: anthropic.AsyncAnthropic,
) -> None:
    store = CountingStore()
    write_history(store, "s", 3_000)

    async def scenario() -> None:
        threaded = ThreadedAsyncStore(store)
        first = AsyncChat(aclient, model=MODEL, store=threaded, session_id="s", system=SYSTEM, max_tokens=64,
                          context=POLICY)  # fmt: skip
        await first.send("one")
        store.reset()
        fresh = AsyncChat(aclient, model=MODEL, store=threaded, session_id="s", system=SYSTEM, max_tokens=64,
                          context=POLICY)  # fmt: skip
        await fresh.send("two")
        assert store.calls["load"] == 0 and store.messages_read < 400
        with pytest.raises(RuntimeError, match=r"await chat\.load"):
            _ = fresh.messages
        await fresh.load()
        assert len(fresh.messages) == 3_004
        await threaded.aclose()

    asyncio.run(scenario())


class PlannerWork:
    """What the planner walked during a turn: messages validated, message blocks trimmed for sending,
    messages estimated (``tokens.estimate_message``, per message indexed), earlier requests encoded into the
    checkpoint kept with the commit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import claude_history.context.checkpoint as checkpoint
        import claude_history.context.log_index as log_index
        import claude_history.history as history

        self.counts: Counter[str] = Counter()
        # The planner validates through history.validate_from, which calls history.validate.
        validate, trim, estimate = history.validate, history._sendable_block, log_index.estimate_message

        def counted_validate(messages: Any, **kwargs: Any) -> None:
            self.counts["validated"] += len(messages)
            validate(messages, **kwargs)

        def counted_trim(block: Any) -> Any:
            self.counts["trimmed"] += 1
            return trim(block)

        def counted_estimate(*args: Any, **kwargs: Any) -> Any:
            self.counts["estimated"] += 1
            return estimate(*args, **kwargs)

        encode = checkpoint._previous_out

        def counted_encode(previous: Any) -> Any:
            self.counts["encoded"] += 1
            return encode(previous)

        monkeypatch.setattr(checkpoint, "_previous_out", counted_encode)
        monkeypatch.setattr(history, "validate", counted_validate)
        monkeypatch.setattr(history, "_sendable_block", counted_trim)
        monkeypatch.setattr(log_index, "estimate_message", counted_estimate)


@pytest.mark.parametrize("length", [1_000, 6_000])
def test_a_warm_turn_walks_only_its_new_messages_and_a_fresh_one_validates_only_the_newest_turn(
    client: anthropic.Anthropic, sim: Simulator, monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    store = CountingStore()
    write_history(store, "long", length)
    chat(client, store, "long").send("First question after the import.")
    work = PlannerWork(monkeypatch)
    fresh = chat(client, store, "long")
    fresh.send("A question from a new request handler.")
    sent = len(bodies(sim)[-1]["messages"])
    assert sent > 100
    # The checkpoint's planner validated the log to its end: only the newest turn is validated again.
    assert work.counts["validated"] <= 4
    work.counts.clear()
    fresh.send("And a second one on the same chat.")
    # The new user message and the previous reply, never the window (sent again whole) nor the session.
    assert work.counts["validated"] <= 4
    assert work.counts["trimmed"] <= 4
    assert work.counts["estimated"] <= 4
    # The checkpoint carries the requests of the window (hundreds here): only the newest is encoded anew.
    assert work.counts["encoded"] <= 2


def keep_all(client: anthropic.Anthropic, store: Any, session_id: str) -> Chat:
    """A chat with the default policy (``KeepAll``): every request sends the whole session."""
    return Chat(client, model=MODEL, store=store, session_id=session_id, system=SYSTEM, max_tokens=64)


def test_a_fresh_keep_all_chat_reads_the_session_once_and_sizes_only_its_newest_part(
    client: anthropic.Anthropic, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeepAll sends the whole session, so a fresh chat reads it all, once; its checkpoint (``whole``) saves
    the replay of every earlier request and the sizing of every message: the planner indexes only what the
    newest requests and the gaps between turns look back over, and sends what a chat that replayed it all
    sends."""
    store, whole = twin_sessions(2_000, seed=7)
    for step in range(5):
        asked = question(step, 40)
        work = PlannerWork(monkeypatch)
        store.reset()
        keep_all(client, store, "a").send(asked)
        via_checkpoint = bodies(sim)[-1]
        if step:  # the previous step's commit kept a checkpoint
            assert store.calls == Counter({"load": 1, "load_checkpoint": 1})
            assert store.load_checkpoint("a")[1]["whole"] is True  # type: ignore[index]
            assert work.counts["estimated"] <= 2 * HISTORY + 8  # not the 2,000 messages sent
            assert work.counts["validated"] <= 4
        keep_all(client, whole, "b").send(asked)
        assert via_checkpoint == bodies(sim)[-1]
        assert len(via_checkpoint["messages"]) == 2_001 + 2 * step
    # The checkpoint keeps the newest requests only: it does not grow with the session.
    size = len(json.dumps(store.load_checkpoint("a")[1]))  # type: ignore[index]
    write_history(store, "c", 4_000, seed=7)
    for step in range(3):
        keep_all(client, store, "c").send(f"Question {step}")
    assert len(json.dumps(store.load_checkpoint("c")[1])) < 1.5 * size  # type: ignore[index]


def test_a_short_keep_all_session_keeps_no_checkpoint_and_reads_nothing_else(client: anthropic.Anthropic) -> None:
    store = CountingStore()
    write_history(store, "short", 40)
    for _ in range(3):
        store.reset()
        keep_all(client, store, "short").send("Another question")
        assert store.calls == Counter({"load": 1})  # no version check, no checkpoint asked for
    assert store.load_checkpoint("short") is None


def test_a_budget_whose_window_is_still_the_whole_session_replays_only_the_newest_requests(
    client: anthropic.Anthropic, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a budget first cuts, its window is the whole session: a fresh chat reads it all, and its
    checkpoint ("window": every request of the window, which the budget bounds) spares the replay of each
    earlier request, with the request a chat that replayed everything sends."""
    import claude_history.context.replay as replay

    decided: list[int] = []
    decide = replay.Replay.decide

    def counted(self: Any, state: Any, point: int, measured: int | None) -> Any:
        decided.append(point)
        return decide(self, state, point, measured)

    monkeypatch.setattr(replay.Replay, "decide", counted)
    roomy = CacheAwareWindow(400_000)
    store, whole = twin_sessions(600, seed=9)

    def send(target: Any, session_id: str, text: str) -> dict[str, Any]:
        Chat(client, model=MODEL, store=target, session_id=session_id, system=SYSTEM, max_tokens=64,
             context=roomy).send(text)  # fmt: skip
        return bodies(sim)[-1]

    for step in range(4):
        asked = question(step, 40)
        store.reset()
        decided.clear()
        via_checkpoint = send(store, "a", asked)
        if step:
            assert store.calls == Counter({"get_session": 1, "load_checkpoint": 1, "load": 1})
            assert store.load_checkpoint("a")[1]["whole"] is True  # type: ignore[index]
            assert len(decided) <= 4  # the newest points, not the ~300 requests of the session
        assert via_checkpoint == send(whole, "b", asked)
        assert len(via_checkpoint["messages"]) == 601 + 2 * step  # the window is still the whole session


class AppendLog(MemoryStore):
    """A memory store that records what each ``append`` was asked to keep as a checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.checkpoints: list[dict[str, Any] | None] = []

    def append(self, session_id: str, entries: Any, **kwargs: Any) -> int:
        self.checkpoints.append(kwargs.get("checkpoint"))
        return super().append(session_id, entries, **kwargs)


def test_a_checkpoint_whose_earlier_requests_alone_are_over_the_bound_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window of thousands of short messages gives a checkpoint no store keeps (its earlier requests alone are
    over MAX_CHECKPOINT_BYTES): the chat commits the turn without it at once, instead of having the store encode
    it, refuse it and take the turn again, on every turn while the window grows."""
    from claude_history.stores import _checkpoints

    monkeypatch.setattr(_checkpoints, "MAX_CHECKPOINT_BYTES", 64)  # a few earlier requests are over this
    store = AppendLog()
    texts = [f"{n} " + "word " * 600 for n in ("one", "two", "three", "four", "five", "six")]
    with Simulator() as sim:
        for text in texts:
            chat = Chat(sim.client(max_retries=0), model=MODEL, store=store, session_id="s",
                        context=CacheAwareWindow(3_000))  # fmt: skip
            chat.send(text)
    assert store.load("s").version == len(texts)
    sent = [c for c in store.checkpoints if c is not None]
    assert all(len(c["anchors"]) <= 64 for c in sent)  # none over the bound was sent ...
    assert len(store.checkpoints) - len(sent) >= 2  # ... the later turns went without one, each in one append
    assert len(store.checkpoints) == len(texts) + len(sent)  # an append refused for its checkpoint is taken again
