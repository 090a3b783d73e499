"""The path of a turn in one place: a pure generator from the user's message to the commit.

``turn_path`` is the whole of ``Chat.send`` / ``AsyncChat.send`` (and ``stream``, ``resume``) without the I/O,
in the manner of sans-I/O libraries such as h11: it yields a request (``turn_requests``: read the session,
count tokens, summarise, call the API, run tools, commit...) and the front end's one loop (``Chat._loop``,
``AsyncChat._loop``) does it and sends back the result, or throws the error back in. So the two front ends are
the same loop with different I/O, and every rule of a turn (when to reload, when to run tools, what to commit,
what a conflict leaves behind) is written once, here and in ``turn.py``:

    [take the lease] -> fresh session -> begin the turn -> [plan (summary, count) -> call the API
    -> accept the reply -> run tools]* -> commit (metadata, append) or park -> [release the lease] -> Finished

The lease (``Settings.on_concurrent``): "conflict" takes none (optimistic compare-and-swap; a turn that lost
the race raises ``ConflictError`` after its API call); "reject" takes the session's lease or raises
``TurnInProgress`` before any call; "enqueue" waits for it (up to ``lease_timeout``), then runs on the
history as the previous turn left it. The commit carries the lease's fencing token (stores/_leases.py).

``ChatMemory`` is what the chat holds between turns (the session state it last saw, the pending turn, the
ledger); the path reads and updates it, and nothing else does I/O-free bookkeeping for a turn.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .context.checkpoint import WHOLE_FROM, NotLoaded, keeps_whole, may_keep, reads_whole, restore, snapshot
from .context.sequences import Prefix
from .errors import ConfigurationError, ConflictError, HistoryError, LeaseLost, StoreUnavailable, TurnInProgress
from .stores import _checkpoints
from .stores._cas import creating, pinned_incarnation
from .stores._checkpoints import CheckpointTooLarge
from .stores.base import Entry, SessionInfo, Summary
from .tools import ToolSet
from .turn import (
    Ledger,
    SessionState,
    Settings,
    Step,
    Turn,
    begin_turn,
    read_clock,
    resume_turn,
)
from .turn_requests import (
    CallApi,
    CheckVersion,
    Commit,
    Finished,
    LoadCheckpoint,
    LoadMessages,
    LoadSession,
    ReleaseLease,
    Request,
    RunTools,
    SaveMetadata,
    TakeLease,
    Wait,
)
from .warm import Kept, WarmSessions

__all__ = [
    "ChatMemory",
    "TurnPath",
    "check_sync_tools",
    "resume_warm",
    "take_warm",
    "turn_path",
    "warm_current",
]

# The generator's type: it yields requests, is sent each one's result, and ends after ``Finished``.
TurnPath = Generator[Request, Any, None]


@dataclass
class ChatMemory:
    """What a chat holds between turns: the session state it last saw (``None``: not read yet), the turn in
    progress that is not committed, and the running usage and cost. No I/O."""

    session_id: str
    ledger: Ledger
    state: SessionState | None = None
    pending: Turn | None = None
    # The lease of the turn running now: set while held, so a front end whose turn was abandoned half-way (a
    # stream closed early) releases it rather than leave the session locked until the lease expires.
    lease: int | None = None
    # The state was read for the turn that comes next (``reload(for_next_turn=True)``): that turn skips its
    # version check (one metadata read). Any other change of state clears it.
    trusted: bool = False
    # Shared by the process's chats (``Chat(warm=...)``): after each turn the chat hands its state and planner
    # over there; a chat takes them when it next needs the session (``take_warm``).
    warm: WarmSessions | None = None
    warm_key: str = ""  # the session's key there (``warm.warm_key``: its store and id); the id if not set

    def adopt(self, state: SessionState, *, trusted: bool = False) -> None:
        """``state`` was read from the store: it replaces what the chat saw (usage and cost recounted)."""
        self.state = state
        self.trusted = trusted
        self.ledger.reset(state)

    def committed(self, turn: Turn, entries: Sequence[Entry], state: SessionState) -> None:
        """``entries`` of ``turn`` were appended: ``state`` is the session now (``turn_path._after``)."""
        self.trusted = False
        if self.state is turn.base:
            self.state = state
            self.ledger.add((e.model, e.usage) for e in entries)
        else:
            self.adopt(state)

    def summary_saved(self, turn: Turn, summary: Summary) -> None:
        """A summary was stored: the turn plans with it, and the chat's state (and cost) include it."""
        base = turn.base.changed(summaries=(*turn.base.summaries, summary))
        if self.state is turn.base:
            self.state = base
            self.ledger.add([(summary.model, summary.usage)])
        turn.base = base


def take_warm(memory: ChatMemory, *, whole: bool = False) -> Kept | None:
    """The state and planner the last turn on this session left in ``memory.warm`` (this chat's own, or
    another's), taken: this chat owns them now. ``whole``: only a state that holds the whole session. The
    caller checks it is current (``warm_current``) before it uses it (``resume_warm``)."""
    if memory.warm is None:
        return None
    kept = memory.warm.take(memory.warm_key or memory.session_id)
    if kept is not None and whole and not kept[0].complete:
        return None
    return kept


def warm_current(state: SessionState, info: SessionInfo | None) -> bool:
    """Is the stored session (``info``, just read) still the one ``state`` shows: same version, same
    incarnation (a session deleted and created again may have reached the same version)?"""
    return info is not None and info.version == state.version and info.incarnation == state.incarnation


def resume_warm(memory: ChatMemory, settings: Settings, kept: Kept, *, trusted: bool) -> None:
    """Continue from ``kept`` (current): its planner's work moves into this chat's planner."""
    state, planner = kept
    settings.planner.take_over(planner)
    memory.adopt(state, trusted=trusted)


def _hand_over(memory: ChatMemory, settings: Settings) -> None:
    """After a turn: what this chat holds goes to ``memory.warm`` for the next chat on the session (this one
    included), unless a turn is left pending."""
    if memory.warm is not None and memory.pending is None and memory.state is not None:
        memory.warm.put(memory.warm_key or memory.session_id, (memory.state, settings.planner))


def check_sync_tools(toolset: ToolSet) -> None:
    """A sync chat cannot await tool functions: refused before any request."""
    coroutines = [name for name, r in toolset.runnables.items() if r.is_async]
    if coroutines:
        raise ConfigurationError(
            f"async tool functions ({', '.join(coroutines)}) need AsyncChat; Chat runs plain functions"
        )


def turn_path(
    memory: ChatMemory,
    settings: Settings,
    content: Any,
    overrides: Mapping[str, Any],
    *,
    resume: bool = False,
    sync_tools: bool = False,
    append_tokens: bool = True,
    checkpoints: bool = True,
) -> TurnPath:
    """One turn: ``content`` sent as the user's message (added to the pending turn, if any), or with
    ``resume`` the pending turn continued as it stands. ``sync_tools``: the front end cannot await tool
    functions. ``append_tokens``: the store takes ``incarnation``/``turn_id`` in ``append``. ``checkpoints``: it
    keeps planner checkpoints (the commit carries one).

    Ends with ``Finished(reply)``; a failure raises out of the generator with the chat and the store as they
    were (after a conflict: the chat shows the stored session, the turn rides on the ``ConflictError``)."""
    lease = (yield from _take_lease(memory, settings)) if settings.on_concurrent != "conflict" else None
    try:
        message = yield from _turn(
            memory, settings, content, overrides, resume, sync_tools, append_tokens, lease, checkpoints
        )
    except GeneratorExit:  # abandoned: no more requests; the front end releases ``memory.lease``
        raise
    except BaseException:
        if lease is not None:
            yield from _release(memory, lease)
        raise
    if lease is not None:
        yield from _release(memory, lease)
    _hand_over(memory, settings)
    yield Finished(message)


def _turn(
    memory: ChatMemory,
    settings: Settings,
    content: Any,
    overrides: Mapping[str, Any],
    resume: bool,
    sync_tools: bool,
    append_tokens: bool,
    lease: int | None,
    checkpoints: bool,
) -> Generator[Request, Any, Any]:
    """The turn itself, from reading the session to the commit; returns the reply."""
    if resume:
        yield from _loaded(memory)
        turn = resume_turn(memory.pending, overrides)
    else:
        state = yield from _fresh(memory, settings, checkpoints) if memory.pending is None else _loaded(memory)
        turn = begin_turn(state, memory.pending, content, settings, overrides)
    if sync_tools:
        check_sync_tools(turn.toolset)
    if resume and turn.awaiting:  # tool rounds beyond max_tool_rounds: the open tools run first
        turn.add_tool_results((yield _run_tools(turn, settings)))
    while True:
        try:
            kwargs, beta = yield from turn.prepare(settings, lambda summary: memory.summary_saved(turn, summary))
        except NotLoaded:  # more of the log than the checkpointed read gave: read it all, plan again
            yield from _whole(memory, turn, settings)
            continue
        message = yield CallApi(kwargs, beta)
        step = turn.accept(message, settings)
        if step is Step.RUN_TOOLS:
            turn.add_tool_results((yield _run_tools(turn, settings)))
        elif step is not Step.CALL:
            break
    if step is Step.DONE:
        yield from _commit(memory, turn, turn.entries, message, settings, append_tokens, lease, checkpoints)
        memory.pending = None
    elif settings.commit_pending and turn.paused and turn.entries and turn.entries[-1].message["role"] == "assistant":
        # WAIT on a turn still paused past max_tool_rounds: with commit_pending it is stored as it stands (the
        # user message and the paused reply, one commit), so a process that cannot keep it pending (the
        # service, between requests) loses nothing; the next turn goes on after it.
        yield from _commit(memory, turn, turn.entries, message, settings, append_tokens, lease, checkpoints)
        memory.pending = None
    else:  # WAIT: the caller acts next; with commit_pending a tool_use turn is stored up to its reply
        entries = turn.committable() if settings.commit_pending and turn.awaiting else []
        if entries:
            yield from _commit(memory, turn, entries, message, settings, append_tokens, lease, checkpoints)
            assert memory.state is not None
            turn.rebased(memory.state, len(entries))
        memory.pending = turn
    return message


# How "enqueue" asks again for a held lease: backing off from the first to the last delay, with jitter so
# that waiting writers do not all ask at once.
_FIRST_DELAY, _LAST_DELAY = 0.005, 0.1


def _take_lease(memory: ChatMemory, settings: Settings) -> Generator[Request, Any, int]:
    """The session's lease for this turn: at once ("reject") or waiting up to ``lease_timeout`` ("enqueue");
    ``TurnInProgress`` otherwise."""
    started = time.monotonic()
    delay = _FIRST_DELAY
    while True:
        token: int | None = yield TakeLease(settings.lease_ttl)
        if token is not None:
            memory.lease = token
            return token
        waited = time.monotonic() - started
        if settings.on_concurrent == "reject" or waited >= settings.lease_timeout:
            how = "" if settings.on_concurrent == "reject" else f" (waited {waited:.1f}s, lease_timeout)"
            raise TurnInProgress(
                f"another turn is running on session {memory.session_id!r}{how}; nothing was sent or saved. "
                "Try again when it has finished.",
                session_id=memory.session_id,
                waited=waited,
            )
        yield Wait(min(delay * random.uniform(0.5, 1.0), settings.lease_timeout - waited))
        delay = min(delay * 2, _LAST_DELAY)


def _release(memory: ChatMemory, lease: int) -> Generator[Request, Any, None]:
    """Free the lease; if that fails it expires by itself (``lease_ttl``), so the turn's outcome stands."""
    memory.lease = None
    with contextlib.suppress(Exception):
        yield ReleaseLease(lease)


def _run_tools(turn: Turn, settings: Settings) -> RunTools:
    return RunTools(tuple(turn.awaiting), turn.toolset, settings.tool_errors == "raise")


def _loaded(memory: ChatMemory) -> Generator[Request, Any, SessionState]:
    """The state the chat holds, read from the store first if it has none."""
    if memory.state is None:
        memory.adopt((yield LoadSession()))
    assert memory.state is not None
    return memory.state


def _fresh(memory: ChatMemory, settings: Settings, checkpoints: bool) -> Generator[Request, Any, SessionState]:
    """The state, read again first if another writer moved the session on (one cheap metadata read). What is
    read is the newest part of the session when its planner checkpoint holds (``_read``)."""
    kept = take_warm(memory) if not memory.trusted else None
    # The last turn on the session left its state in ``memory.warm``: used if the session is still at it.
    if kept is not None and warm_current(kept[0], (yield CheckVersion())):
        resume_warm(memory, settings, kept, trusted=True)
    if memory.state is not None and memory.trusted:
        # Read for this very turn a moment ago: the commit's compare-and-swap still guards it.
        memory.trusted = False
        return memory.state
    keeps = checkpoints and may_keep(settings.context)
    if memory.state is None and (not keeps or reads_whole(settings.context)):
        # Nothing held and no checkpoint to look for, or a policy that sends the whole session anyway: it is
        # read at once (its version comes with it); then the planner's checkpoint, when it is long enough.
        read: SessionState = yield LoadSession()
        if keeps and read.length >= WHOLE_FROM and keeps_whole(settings.context):
            yield from _seed_whole(settings, read)
        memory.adopt(read)
        return read
    info: SessionInfo | None = yield CheckVersion()
    state = memory.state
    if state is None:
        memory.adopt((yield from _read(memory, settings, info)))
        assert memory.state is not None
        return memory.state
    replaced = info is not None and _replaced(state, info)
    if (0 if info is None else info.version) != state.version or replaced:
        memory.adopt((yield from _read(memory, settings, info)))
        if info is not None and replaced:
            raise _replaced_error(memory.session_id, state, info)
    assert memory.state is not None
    return memory.state


def _read(memory: ChatMemory, settings: Settings, info: SessionInfo | None) -> Generator[Request, Any, SessionState]:
    """The session as ``info`` (just read) describes it: nothing for a session that does not exist, the part
    from its checkpoint on when a checkpoint of this very version is kept, else all of it."""
    if info is None:
        return SessionState(memory.session_id)
    partial = yield from _from_checkpoint(memory, settings, info)
    return partial if partial is not None else (yield LoadSession())


def _from_checkpoint(
    memory: ChatMemory, settings: Settings, info: SessionInfo
) -> Generator[Request, Any, SessionState | None]:
    """The newest part of the session, read from where its planner checkpoint starts, with the chat's planner
    seeded from that checkpoint (context/checkpoint.py); None when no checkpoint describes the session as it
    is now: one of its version (a later commit by anyone makes it stale), its incarnation and its length."""
    found = yield LoadCheckpoint()
    if found is None:
        return None
    version, data = found
    if (
        version != info.version
        or data.get("incarnation") != info.incarnation
        or data.get("length") != info.message_count
    ):
        return None
    if data.get("whole") is True:  # made for the whole session: read it, then seed the planner
        state: SessionState = yield LoadSession()
        _seed(settings, state, version, data)
        return state
    start = restore(settings.planner, data)
    if start is None or not 0 < start < info.message_count:
        return None
    records = yield LoadMessages(start)
    if len(records) != info.message_count - start or records[0].seq != start:
        return None  # a writer came in between the reads: read it all
    return SessionState(
        session_id=memory.session_id,
        version=info.version,
        records=Prefix(list(records)),
        info=info,
        incarnation=info.incarnation,
        start=start,
    )


def _seed_whole(settings: Settings, state: SessionState) -> Generator[Request, Any, None]:
    """The planner seeded from the session's checkpoint when it was made for ``state``, the whole session
    just read (``checkpoint.reads_whole``): the next plan then sizes and replays only the newest part."""
    found = yield LoadCheckpoint()
    if found is not None:
        _seed(settings, state, *found)


def _seed(settings: Settings, state: SessionState, version: int, data: Mapping[str, Any]) -> None:
    if (
        data.get("whole") is True
        and version == state.version
        and data.get("incarnation") == state.incarnation
        and data.get("length") == state.length
    ):
        restore(settings.planner, data)


def _whole(memory: ChatMemory, turn: Turn, settings: Settings) -> Generator[Request, Any, None]:
    """The planner needs more of the log than the checkpointed read gave (``NotLoaded``): the whole session is
    read and the turn goes on from it, unless it changed meanwhile (then nothing of the turn is kept). When it
    was read whole already (a ``whole`` checkpoint: only the planner's index started late), the planner drops
    what it restored and indexes it all."""
    if turn.base.complete:
        settings.planner.forget_restored()
        return
    state: SessionState = yield LoadSession()
    base = turn.base
    if state.version != base.version or state.incarnation != base.incarnation:
        memory.pending = None
        memory.adopt(state)
        raise ConflictError(
            f"session {memory.session_id!r} changed while this turn was being planned (expected version "
            f"{base.version}, found {state.version}); the turn was not saved. The chat now shows the stored "
            "history: send again to continue.",
            session_id=memory.session_id,
            expected_version=base.version,
            actual_version=state.version,
            unsaved=list(turn.entries),
        )
    if memory.state is base:
        memory.adopt(state)
    turn.base = state


def _after(
    turn: Turn, entries: Sequence[Entry], info: SessionInfo | None, now: datetime, tokens: Mapping[str, Any]
) -> SessionState:
    """The session as the commit of ``entries`` will leave it (the version an append makes is the one after
    ``expected_version``): one new state, its log extended in place (``SessionState.committed``)."""
    incarnation = pinned_incarnation(tokens.get("incarnation"))
    changes = {key: value for key, value in (("info", info), ("incarnation", incarnation)) if value is not None}
    return turn.base.committed(entries, turn.base.version + 1, now, **changes)


def _checkpoint(settings: Settings, turn: Turn, after: SessionState) -> dict[str, Any] | None:
    """The planner's checkpoint of ``after``, kept by the commit's own write for the next fresh chat (best
    effort: without one that chat reads the whole session, never plans differently)."""
    if not after.records:
        return None
    try:
        turn.settle(settings, after)
        data = snapshot(settings.planner, after.length)
    except Exception:  # e.g. NotLoaded: the checkpoint of the next chat is then not this one's to make
        return None
    if data is None:
        return None
    if len(data["anchors"]) > _checkpoints.MAX_CHECKPOINT_BYTES:
        # Its earlier requests alone are over what a store keeps (a window of thousands of short messages): the
        # store would refuse it, after its encoding and a round trip, on every turn while the window grows.
        return None
    data["incarnation"] = after.incarnation
    return data


def _keeps(settings: Settings, after: SessionState) -> bool:
    """Does the commit leading to ``after`` carry a checkpoint? Not for a whole-log policy on a short session
    (``checkpoint.WHOLE_FROM``) or one that gets none (``keeps_whole``): bringing the planner up to the end
    would be work no fresh chat uses."""
    policy = settings.context
    if not reads_whole(policy):
        return may_keep(policy)
    return after.length >= WHOLE_FROM and keeps_whole(policy)


def _commit(
    memory: ChatMemory,
    turn: Turn,
    entries: Sequence[Entry],
    message: Any,
    settings: Settings,
    append_tokens: bool,
    lease: int | None,
    checkpoints: bool,
) -> Generator[Request, Any, None]:
    """Store ``entries`` with ONE compare-and-swap append (after the session's metadata, when it changed),
    fenced by the turn's ``lease`` when it holds one."""
    changes = settings.metadata_changes(turn.base)
    now = read_clock(settings.clock)  # before the commit: a broken clock must not strand a turn
    info: SessionInfo | None = None
    commit: Commit | None = None
    try:
        if changes:
            info = yield SaveMetadata(changes)
        tokens = _append_tokens(turn, info) if append_tokens else {}
        if lease is not None:
            tokens["lease"] = lease
        after = _after(turn, entries, info, now, tokens)
        checkpoint = _checkpoint(settings, turn, after) if checkpoints and _keeps(settings, after) else None
        commit = Commit(tuple(entries), turn.base.version, tokens, checkpoint)
        try:
            version: int = yield commit
        except CheckpointTooLarge:  # refused before anything was written: the turn goes in without it
            commit = replace(commit, checkpoint=None)
            version = yield commit
    except ConflictError as exc:
        memory.pending = None
        try:
            memory.adopt((yield LoadSession()))
        except Exception:
            memory.state = None  # stale: the next use reads it again
        raise _conflict(memory.session_id, exc, message, entries) from exc
    except BaseException as exc:
        _attach(exc, message, entries, commit)
        raise
    memory.committed(turn, entries, after if version == after.version else replace(after, version=version))


def _append_tokens(turn: Turn, info: SessionInfo | None) -> dict[str, Any]:
    """``incarnation`` and ``turn_id`` for ``store.append``: the incarnation the chat holds (a new session
    takes the one ``update_session`` just gave it, or is created under a fresh one), and a new turn id."""
    incarnation = turn.base.incarnation
    if incarnation is None and turn.base.version == 0:
        incarnation = info.incarnation if info is not None and info.incarnation else creating()
    return {"incarnation": incarnation, "turn_id": uuid.uuid4().hex}


def _replaced(state: SessionState, info: SessionInfo) -> bool:
    """Is the stored session another incarnation than the one ``state`` was read from?"""
    return state.incarnation is not None and info.incarnation is not None and state.incarnation != info.incarnation


def _replaced_error(session_id: str, state: SessionState, info: SessionInfo) -> ConflictError:
    """Before any request: the session this chat held was deleted and another created under its id."""
    return ConflictError(
        f"session {session_id!r} was deleted and created again since this chat read it; nothing was "
        "sent or saved. The chat now shows the new session: send again to continue in it.",
        session_id=session_id,
        expected_version=state.version,
        actual_version=info.version,
    )


def _conflict(session_id: str, exc: ConflictError, message: Any, entries: Sequence[Entry]) -> ConflictError:
    if isinstance(exc, LeaseLost):
        what = "was taken by another turn after this turn's lease expired (lease_ttl)"
    elif exc.actual_version == exc.expected_version:
        what = "was deleted and created again"
    else:
        what = f"changed (expected version {exc.expected_version}, found {exc.actual_version})"
    return type(exc)(
        f"session {session_id!r} {what} while this turn ran; the turn was not saved. "
        "It is in this error's .reply and .unsaved; the chat now shows the stored history.",
        session_id=session_id,
        expected_version=exc.expected_version,
        actual_version=exc.actual_version,
        unsaved=list(entries),
        reply=message,
    )


def _attach(exc: BaseException, message: Any, entries: Sequence[Entry], commit: Commit | None) -> None:
    """A store failure at commit time: the reply and the unsaved messages ride on our own error, and a
    ``StoreUnavailable`` says whether the turn may have been stored (``commit`` was asked for: the append
    itself failed, so the server may have committed before the connection dropped) and the ``turn_id`` that
    makes a retried ``store.append(..., turn_id=...)`` safe."""
    if isinstance(exc, HistoryError) and not isinstance(exc, ConflictError):
        exc.reply = message  # type: ignore[attr-defined]
        exc.unsaved = list(entries)  # type: ignore[attr-defined]
    if isinstance(exc, StoreUnavailable):
        exc.may_be_stored = commit is not None
        exc.turn_id = commit.tokens.get("turn_id") if commit is not None else None
