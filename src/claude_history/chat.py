"""``Chat`` and ``AsyncChat``: load -> view -> call -> commit the turn -> record usage.

Both are thin I/O shells over one pure core (``turn.py``): they load the session from the store, ask the core
for each request, call the SDK, hand the reply to the core, run local tools, and commit the finished turn with
ONE ``store.append(..., expected_version=v)``. A turn is atomic: an API error, a cut stream or an exception in
user code before the commit leaves the chat and the store exactly as they were, and the SDK's exception passes
through unchanged. See docs/chat.md.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anthropic

from .connection import IncompleteStream
from .context.report import ContextReport
from .errors import ConfigurationError, ConflictError, HistoryError, SessionNotFound, StoreUnavailable
from .pricing import PriceTable, load_prices
from .stores._common import takes_append_tokens
from .stores.base import AsyncStore, Entry, SessionInfo, Store, Summary
from .tokens import count_kwargs
from .tools import ToolErrors, ToolSet, error_result, tool_result
from .turn import (
    Ledger,
    Op,
    SaveSummary,
    SessionState,
    Settings,
    Step,
    Summarize,
    Turn,
    begin_turn,
    next_request_report,
    read_clock,
    resume_turn,
    user_message,
    utc_now,
)
from .usage import TokenUsage

if TYPE_CHECKING:
    from anthropic.types import Message

__all__ = ["AsyncChat", "AsyncChatStream", "Chat", "ChatStream", "tool_results_content"]


def tool_results_content(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``{tool_use_id: result}`` (a result may be an exception: an ``is_error`` result) or ready
    ``tool_result`` blocks, as the content of the user message that answers a ``tool_use``."""
    if isinstance(results, Mapping):
        return [
            error_result(str(i), v) if isinstance(v, BaseException) else tool_result(str(i), v)
            for i, v in results.items()
        ]
    return [dict(b) for b in results]


class _ChatBase:
    """What both front ends share: settings, the cached session state, the pending turn, the ledger."""

    _state: SessionState | None
    _pending: Turn | None

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        session_id: str | None,
        system: str | list[dict[str, Any]] | None,
        max_tokens: int,
        context: Any,
        cache: bool | str,
        prices: PriceTable | Mapping[str, Any] | str | None,
        tools: Iterable[Any] | None,
        tool_functions: Mapping[str, Callable[..., Any]] | None,
        max_tool_rounds: int,
        tool_errors: ToolErrors,
        commit_pending: bool,
        clock: Callable[[], datetime] | None,
        create_kwargs: Mapping[str, Any],
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model= must be a model name such as 'claude-sonnet-4-6'")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if max_tool_rounds < 0:
            raise ConfigurationError("max_tool_rounds must be >= 0")
        if tool_errors not in ("report", "raise"):
            raise ConfigurationError("tool_errors must be 'report' or 'raise'")
        for key in ("messages", "stream"):
            if key in create_kwargs:
                raise ConfigurationError(
                    f"{key}= is not a Chat argument: the chat builds the messages itself"
                )
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock= must be a function returning an aware datetime")
        self._client = client
        self._settings = Settings(
            model=model,
            system=system,
            max_tokens=max_tokens,
            context=context,
            cache=cache,
            toolset=ToolSet.build(tools, tool_functions),
            create_kwargs=dict(create_kwargs),
            max_tool_rounds=max_tool_rounds,
            tool_errors=tool_errors,
            commit_pending=commit_pending,
            clock=clock if clock is not None else utc_now,
        )
        self._prices = load_prices(prices)
        self._ledger = Ledger(self._prices)
        self._session_id = session_id or uuid.uuid4().hex
        self._pending = None
        # A new session id is known to be empty: no load needed before using it.
        self._state = SessionState(self._session_id) if session_id is None else None

    # -- properties (no I/O once loaded) ---------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def client(self) -> Any:
        return self._client

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def system(self) -> str | list[dict[str, Any]] | None:
        """The system prompt in use: the constructor's, else the one stored with the session."""
        return self._settings.system_for(self._current())

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The committed history as ``MessageParam`` dicts (copies: changing them changes nothing)."""
        return copy.deepcopy(self._current().log)

    @property
    def version(self) -> int:
        """The session version this chat last saw (0: not stored yet)."""
        return self._current().version

    @property
    def usage(self) -> TokenUsage:
        """Tokens of every committed reply (and stored summary) of the session, by kind."""
        self._current()
        return self._ledger.usage

    @property
    def cost(self) -> float:
        """USD of every committed reply of the session. Replies on a model without a price are left out
        (with a one-time warning): then ``cost_complete`` is False."""
        self._current()
        return self._ledger.cost

    @property
    def exact_cost(self) -> Decimal:
        """``cost`` as an exact ``Decimal``."""
        self._current()
        return self._ledger.exact_cost

    @property
    def cost_complete(self) -> bool:
        self._current()
        return self._ledger.cost_complete

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Messages of a turn in progress that is not committed yet (caller-driven tool use, a pause beyond
        ``max_tool_rounds``, an empty reply); ``[]`` when there is none."""
        return copy.deepcopy(self._pending.messages) if self._pending is not None else []

    @property
    def pending_tool_uses(self) -> list[dict[str, Any]]:
        """tool_use blocks waiting for results from you (``send_tool_results``)."""
        if self._pending is not None:
            return copy.deepcopy(self._pending.awaiting)
        return copy.deepcopy(self._current().awaiting_tool_uses())

    def context_report(self, content: Any = None, **overrides: Any) -> ContextReport:
        """What the next request would hold if ``content`` were sent now, planned exactly as ``send`` plans
        it: tokens of system, tools, summary and kept turns, cached vs uncached, the TTL and breakpoints, the
        budget and the estimated input cost (``context.ContextReport``). No API call, nothing changes.
        Without ``content``: the pending turn as it stands, or a one-character placeholder message.
        ``overrides`` are ``send``'s per-call keywords (``model=``, ``system=``, ``tools=``...).
        On ``AsyncChat`` it is not awaited: it reads the loaded state (``await chat.load()`` first)."""
        return next_request_report(self._current(), self._pending, content, self._settings, overrides)

    def stage(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Put ``messages`` ahead of the next ``send`` in the same turn: they are sent with it and committed
        with its reply, or not at all (a conversation handed over from elsewhere, as the HTTP proxy receives
        one). Alternation and tool pairs are checked as the next ``send`` checks them."""
        if self._pending is not None:
            raise RuntimeError("a turn is already in progress; send it or discard_pending() first")
        turn = Turn(base=self._current(), entries=[], overrides={}, toolset=self._settings.toolset)
        for message in messages:
            if message.get("role") == "assistant":
                turn.entries.append(Entry({"role": "assistant", "content": message["content"]}))
            else:
                turn.add_user(user_message(message.get("content")))
        self._pending = turn if turn.entries else None

    def discard_pending(self) -> list[dict[str, Any]]:
        """Drop the turn in progress (nothing of it was stored); returns its messages."""
        dropped = self.pending
        self._pending = None
        return dropped

    def __repr__(self) -> str:
        return f"{type(self).__name__}(session_id={self._session_id!r}, model={self.model!r})"

    # -- shared helpers ----------------------------------------------------------------------------------

    def _current(self) -> SessionState:
        raise NotImplementedError

    def _set_state(self, state: SessionState) -> None:
        self._state = state
        self._ledger.reset(state)

    def _after_commit(
        self,
        turn: Turn,
        entries: Sequence[Entry],
        version: int,
        info: SessionInfo | None,
        now: datetime,
        incarnation: str | None = None,
    ) -> None:
        state = turn.base.committed(entries, version, now)
        if info is not None:
            state = replace(state, info=info)
        if incarnation is not None:
            state = replace(state, incarnation=incarnation)
        if self._state is turn.base:
            self._state = state
            self._ledger.add((e.model, e.usage) for e in entries)
        else:
            self._set_state(state)

    def _replaced_error(self, state: SessionState, info: SessionInfo) -> ConflictError:
        """Before any request: the session this chat held was deleted and another created under its id."""
        return ConflictError(
            f"session {self._session_id!r} was deleted and created again since this chat read it; nothing was "
            "sent or saved. The chat now shows the new session: send again to continue in it.",
            session_id=self._session_id,
            expected_version=state.version,
            actual_version=info.version,
        )

    def _conflict(self, exc: ConflictError, message: Any, entries: Sequence[Entry]) -> ConflictError:
        what = (
            "was deleted and created again"
            if exc.actual_version == exc.expected_version
            else f"changed (expected version {exc.expected_version}, found {exc.actual_version})"
        )
        return ConflictError(
            f"session {self._session_id!r} {what} while this turn ran; the turn was not saved. "
            "It is in this error's .reply and .unsaved; the chat now shows the stored history.",
            session_id=self._session_id,
            expected_version=exc.expected_version,
            actual_version=exc.actual_version,
            unsaved=list(entries),
            reply=message,
        )

    def _api(self, beta: bool) -> Any:
        return self._client.beta.messages if beta else self._client.messages

    def _park(self, turn: Turn) -> None:
        self._pending = turn

    def _summary_saved(self, turn: Turn, summary: Summary) -> None:
        """A summary was stored: the turn plans with it, and the chat's state (and cost) include it."""
        base = replace(turn.base, summaries=(*turn.base.summaries, summary))
        if self._state is turn.base:
            self._state = base
            self._ledger.add([(summary.model, summary.usage)])
        turn.base = base


def _is_async_client(client: Any) -> bool | None:
    """Whether ``client.messages.create`` is a coroutine function (None: cannot tell, e.g. a test double)."""
    create = getattr(getattr(client, "messages", None), "create", None)
    if create is None:
        return None
    return inspect.iscoroutinefunction(inspect.unwrap(create))


def _incomplete(stream: Any) -> IncompleteStream:
    request = stream.response.request
    return IncompleteStream(
        message="The stream ended before message_stop: the reply is incomplete and was not saved.",
        request=request,
    )


def _text_of(message: Any) -> str:
    texts = [b.text for b in message.content if getattr(b, "type", None) == "text"]
    if not texts:
        kinds = ",".join(str(getattr(b, "type", "?")) for b in message.content)
        raise RuntimeError(f"the reply holds no text block (it holds: {kinds or 'nothing'})")
    return "".join(texts)


def _attach(
    exc: BaseException, message: Any, entries: Sequence[Entry], *, appending: bool = False, turn_id: str | None = None
) -> None:
    """A store failure at commit time: the reply and the unsaved messages ride on our own error, and a
    ``StoreUnavailable`` says whether the turn may have been stored (``appending``: the append itself failed,
    so the server may have committed before the connection dropped) and the ``turn_id`` that makes a retried
    ``store.append(..., turn_id=...)`` safe."""
    if isinstance(exc, HistoryError) and not isinstance(exc, ConflictError):
        exc.reply = message  # type: ignore[attr-defined]
        exc.unsaved = list(entries)  # type: ignore[attr-defined]
    if isinstance(exc, StoreUnavailable):
        exc.may_be_stored = appending
        exc.turn_id = turn_id if appending else None


def _replaced(state: SessionState, info: SessionInfo) -> bool:
    """Is the stored session another incarnation than the one ``state`` was read from?"""
    return state.incarnation is not None and info.incarnation is not None and state.incarnation != info.incarnation


def _append_tokens(store: Any, turn: Turn, info: SessionInfo | None) -> dict[str, Any]:
    """``incarnation`` and ``turn_id`` for ``store.append``: the incarnation the chat holds (a new session
    takes the one ``update_session`` just gave it, or a fresh one), and a new turn id. Empty for a store
    written before these parameters existed (a user's own ``Store``), which keeps working as it did."""
    if not takes_append_tokens(store):
        return {}
    incarnation = turn.base.incarnation
    if incarnation is None and turn.base.version == 0:
        incarnation = info.incarnation if info is not None and info.incarnation else uuid.uuid4().hex
    return {"incarnation": incarnation, "turn_id": uuid.uuid4().hex}


# ================================================================================================== sync


class Chat(_ChatBase):
    """A conversation with Claude kept in a store, over ``anthropic.Anthropic`` (or the Bedrock / Vertex
    clients). See docs/chat.md.

    ``store``: a ``Store`` or a store URL; default an in-memory store (nothing survives the process: pass
    ``open_store("sqlite:///chats.db")`` or a URL to keep sessions). ``session_id``: continue that session, or
    a new uuid4 hex. ``system``: kept with the session; a chat opened without it uses the stored one.
    ``clock``: "now" as an aware datetime (default ``datetime.now(timezone.utc)``); it stamps the replies, and
    the gaps between turns choose the cache TTL, so a simulation passes its simulated time here. Any
    other keyword (tool_choice, thinking, metadata, output_config, stop_sequences, betas, ...) goes to every
    ``messages.create`` call; ``send``/``stream`` take the same keywords for one call.
    """

    def __init__(
        self,
        client: anthropic.Anthropic | Any,
        *,
        model: str,
        store: Store | str | None = None,
        session_id: str | None = None,
        system: str | list[dict[str, Any]] | None = None,
        max_tokens: int = 1024,
        context: Any = None,
        cache: bool | str = True,
        prices: PriceTable | Mapping[str, Any] | str | None = None,
        tools: Iterable[Any] | None = None,
        tool_functions: Mapping[str, Callable[..., Any]] | None = None,
        max_tool_rounds: int = 20,
        tool_errors: ToolErrors = "report",
        commit_pending: bool = False,
        clock: Callable[[], datetime] | None = None,
        **create_kwargs: Any,
    ) -> None:
        if _is_async_client(client) is True:
            raise ConfigurationError(
                "Chat needs a sync client (anthropic.Anthropic); use AsyncChat for AsyncAnthropic"
            )
        super().__init__(
            client,
            model=model,
            session_id=session_id,
            system=system,
            max_tokens=max_tokens,
            context=context,
            cache=cache,
            prices=prices,
            tools=tools,
            tool_functions=tool_functions,
            max_tool_rounds=max_tool_rounds,
            tool_errors=tool_errors,
            commit_pending=commit_pending,
            clock=clock,
            create_kwargs=create_kwargs,
        )
        self._check_sync_tools(self._settings.toolset)
        self._store: Store = _sync_store(store)
        self._owns_store = store is None or isinstance(store, str)

    @property
    def store(self) -> Store:
        return self._store

    def close(self) -> None:
        """Close the store if this chat opened it (``store=None`` or a URL); a store you passed stays open."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> Chat:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- loading -----------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the session from the store again (a pending turn is kept; it commits against the version it
        started from)."""
        try:
            state = SessionState.from_data(self._store.load(self._session_id))
        except SessionNotFound:
            state = SessionState(self._session_id)
        self._set_state(state)

    load = reload

    def _current(self) -> SessionState:
        if self._state is None:
            self.reload()
        assert self._state is not None
        return self._state

    def _fresh(self) -> SessionState:
        """The state, reloaded first if another writer moved the session on (one cheap metadata read)."""
        state = self._current()
        try:
            info: SessionInfo | None = self._store.get_session(self._session_id)
        except SessionNotFound:
            info = None
        if (0 if info is None else info.version) != state.version or (info is not None and _replaced(state, info)):
            self.reload()
            if info is not None and _replaced(state, info):
                raise self._replaced_error(state, info)
        return self._current()

    # -- turns -------------------------------------------------------------------------------------------

    def _begin(self, content: Any, overrides: Mapping[str, Any]) -> Turn:
        state = self._fresh() if self._pending is None else self._current()
        turn = begin_turn(state, self._pending, content, self._settings, overrides)
        self._check_sync_tools(turn.toolset)
        return turn

    def send(self, content: Any, **overrides: Any) -> Message:
        """Send ``content`` (a string or content blocks) and return the reply, committing the whole turn.

        With tool functions the tool loop runs here, inside the turn. Without them a ``tool_use`` reply is
        returned and the turn stays pending until you send the results."""
        return self._drive(self._begin(content, overrides))

    def send_tool_results(
        self, results: Mapping[str, Any] | Sequence[Mapping[str, Any]], **overrides: Any
    ) -> Message:
        """Answer the pending ``tool_use`` blocks: ``{tool_use_id: result}`` (an exception value becomes an
        ``is_error`` result) or a list of ``tool_result`` blocks; continues the turn."""
        return self.send(tool_results_content(results), **overrides)

    def resume(self, **overrides: Any) -> Message:
        """Go on with the pending turn as it stands: after ``max_tool_rounds`` (runs the open tools again, or
        continues a pause), or to retry an empty reply; ``max_tool_rounds`` more automatic rounds follow."""
        turn = resume_turn(self._pending, overrides)
        if turn.awaiting:
            turn.add_tool_results(self._run_tools(turn))
        return self._drive(turn)

    def stream(self, content: Any, **overrides: Any) -> ChatStream:
        """Like ``send``, streaming: ``with chat.stream(x) as s: for text in s.text_stream: ...``.

        The turn is committed once the stream has been read to the end; leaving the block earlier (break, an
        exception) discards it and the history stays as it was."""
        return ChatStream(self, lambda: self._begin(content, overrides))

    def _prepare(self, turn: Turn) -> tuple[dict[str, Any], bool]:
        """Run the turn's request protocol, doing the I/O it asks for."""
        steps = turn.prepare(self._settings)
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                op = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            result, error = None, None
            try:
                result = self._perform(op, turn)
            except Exception as exc:
                error = exc

    def _perform(self, op: Op, turn: Turn) -> Any:
        if isinstance(op, Summarize):
            return self._client.messages.create(**op.params)
        if isinstance(op, SaveSummary):
            self._store.save_summary(self._session_id, op.summary)
            self._summary_saved(turn, op.summary)
            return None
        count = self._api(op.beta).count_tokens
        return count(**count_kwargs(count, op.kwargs)).input_tokens

    def _drive(self, turn: Turn) -> Message:
        while True:
            kwargs, beta = self._prepare(turn)
            message = self._api(beta).create(**kwargs)
            step = turn.accept(message, self._settings)
            if step is Step.RUN_TOOLS:
                turn.add_tool_results(self._run_tools(turn))
            elif step is not Step.CALL:
                self._finish(turn, step, message)
                return message  # type: ignore[no-any-return]

    def _finish(self, turn: Turn, step: Step, message: Any) -> None:
        if step is Step.DONE:
            self._commit(turn, turn.entries, message)
            self._pending = None
            return
        if self._settings.commit_pending and turn.awaiting:  # a tool_use turn handed back to the caller
            entries = turn.committable()
            if entries:
                self._commit(turn, entries, message)
                turn.rebased(self._current(), len(entries))
        self._park(turn)

    def _commit(self, turn: Turn, entries: Sequence[Entry], message: Any) -> None:
        changes = self._settings.metadata_changes(turn.base)
        now = read_clock(self._settings.clock)  # before the commit: a broken clock must not strand a turn
        info: SessionInfo | None = None
        tokens: dict[str, Any] = {}
        appending = False
        try:
            if changes:
                info = self._store.update_session(self._session_id, create=True, **changes)
            tokens = _append_tokens(self._store, turn, info)
            appending = True
            version = self._store.append(
                self._session_id, list(entries), expected_version=turn.base.version, **tokens
            )
        except ConflictError as exc:
            self._pending = None
            try:
                self.reload()
            except Exception:
                self._state = None  # stale: the next use reloads
            raise self._conflict(exc, message, entries) from exc
        except BaseException as exc:
            _attach(exc, message, entries, appending=appending, turn_id=tokens.get("turn_id"))
            raise
        self._after_commit(turn, entries, version, info, now, tokens.get("incarnation"))

    def _run_tools(self, turn: Turn) -> list[dict[str, Any]]:
        results = []
        for use in turn.awaiting:
            runnable = turn.toolset.runnable(str(use.get("name")))
            try:
                value = runnable.call(use.get("input", {}))
            except Exception as exc:
                if self._settings.tool_errors == "raise":
                    raise
                results.append(error_result(str(use["id"]), exc))
            else:
                results.append(tool_result(str(use["id"]), value))
        return results

    @staticmethod
    def _check_sync_tools(toolset: ToolSet) -> None:
        coroutines = [name for name, r in toolset.runnables.items() if r.is_async]
        if coroutines:
            raise ConfigurationError(
                f"async tool functions ({', '.join(coroutines)}) need AsyncChat; Chat runs plain functions"
            )

    # -- undo --------------------------------------------------------------------------------------------

    def undo(self) -> list[dict[str, Any]]:
        """Remove the last turn: a pending one from memory, else the last committed turn from the store
        (``store.rewind`` with compare-and-swap on the version this chat saw). Returns the removed
        messages."""
        if self._pending is not None:
            return self.discard_pending()
        state = self._current()
        if not state.log:
            return []
        try:
            self._store.rewind(self._session_id, expected_version=state.version)
        except ConflictError:
            self.reload()
            raise
        self.reload()
        return copy.deepcopy(state.log[len(self._current().log) :])


class ChatStream:
    """The context manager ``Chat.stream`` returns; mirrors the SDK's ``MessageStream``.

    Iterate it for the SDK's stream events (a tool loop or a pause continuation shows several
    message_start ... message_stop sequences), or ``text_stream`` for text deltas; ``get_final_message()``
    reads to the end and returns the final reply."""

    def __init__(self, chat: Chat, begin: Callable[[], Turn]) -> None:
        self._chat = chat
        self._begin = begin
        self._turn: Turn | None = None
        self._manager: Any = None
        self._current: Any = None
        self._final: Any = None
        self._iterator: Iterator[Any] = iter(())
        self.text_stream: Iterator[str] = iter(())

    def __enter__(self) -> ChatStream:
        self._turn = self._begin()
        self._open()
        self._iterator = self._events()
        self.text_stream = self._texts()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open(self) -> None:
        assert self._turn is not None
        kwargs, beta = self._chat._prepare(self._turn)
        manager = self._chat._api(beta).stream(**kwargs)
        self._current = manager.__enter__()
        self._manager = manager

    def _close_current(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.__exit__(None, None, None)

    def _events(self) -> Iterator[Any]:
        assert self._turn is not None
        turn, chat = self._turn, self._chat
        try:
            while True:
                finished = False
                for event in self._current:
                    finished = finished or event.type == "message_stop"
                    yield event
                if not finished:
                    raise _incomplete(self._current)
                message = self._current.get_final_message()
                self._close_current()
                step = turn.accept(message, chat._settings)
                if step is Step.RUN_TOOLS:
                    turn.add_tool_results(chat._run_tools(turn))
                elif step is not Step.CALL:
                    chat._finish(turn, step, message)
                    self._final = message
                    return
                self._open()
        finally:
            self._close_current()

    def _texts(self) -> Iterator[str]:
        for event in self._iterator:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def until_done(self) -> None:
        for _ in self._iterator:
            pass

    def get_final_message(self) -> Message:
        self.until_done()
        if self._final is None:
            raise RuntimeError("the stream was closed before the reply was complete; nothing was saved")
        return self._final  # type: ignore[no-any-return]

    def get_final_text(self) -> str:
        return _text_of(self.get_final_message())

    @property
    def current_message_snapshot(self) -> Message:
        if self._current is not None and self._manager is not None:
            return self._current.current_message_snapshot  # type: ignore[no-any-return]
        if self._final is None:
            raise RuntimeError("no message yet")
        return self._final  # type: ignore[no-any-return]

    @property
    def response(self) -> Any:
        return self._current.response if self._current is not None else None

    @property
    def request_id(self) -> str | None:
        return self._current.request_id if self._current is not None else None

    def close(self) -> None:
        """Stop reading; an unfinished turn is discarded (nothing stored)."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
        self._close_current()


def _sync_store(store: Store | str | None) -> Store:
    from .stores import open_store

    if store is None:
        return open_store("memory://")
    if isinstance(store, str):
        return open_store(store)
    if inspect.iscoroutinefunction(getattr(store, "append", None)):
        raise ConfigurationError("Chat needs a sync Store; this is an AsyncStore (use AsyncChat)")
    return store


# ================================================================================================== async


class AsyncChat(_ChatBase):
    """``Chat`` over ``anthropic.AsyncAnthropic``: ``await chat.send(...)``, ``async with chat.stream(...)``.

    Properties (``messages``, ``usage``, ``cost``...) do no I/O: they read the state loaded by
    ``await chat.load()`` (or ``async with AsyncChat(...) as chat``, or the first send). Before that, on a
    session id you gave, they raise ``RuntimeError``; a chat made without a session id starts empty.
    Async tool functions are awaited (several at once when the model asks for several); plain functions run
    on the event loop thread, so make slow tools async.
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic | Any,
        *,
        model: str,
        store: AsyncStore | Store | str | None = None,
        session_id: str | None = None,
        system: str | list[dict[str, Any]] | None = None,
        max_tokens: int = 1024,
        context: Any = None,
        cache: bool | str = True,
        prices: PriceTable | Mapping[str, Any] | str | None = None,
        tools: Iterable[Any] | None = None,
        tool_functions: Mapping[str, Callable[..., Any]] | None = None,
        max_tool_rounds: int = 20,
        tool_errors: ToolErrors = "report",
        commit_pending: bool = False,
        clock: Callable[[], datetime] | None = None,
        **create_kwargs: Any,
    ) -> None:
        if _is_async_client(client) is False:
            raise ConfigurationError("AsyncChat needs anthropic.AsyncAnthropic; use Chat for a sync client")
        super().__init__(
            client,
            model=model,
            session_id=session_id,
            system=system,
            max_tokens=max_tokens,
            context=context,
            cache=cache,
            prices=prices,
            tools=tools,
            tool_functions=tool_functions,
            max_tool_rounds=max_tool_rounds,
            tool_errors=tool_errors,
            commit_pending=commit_pending,
            clock=clock,
            create_kwargs=create_kwargs,
        )
        self._store: AsyncStore = _async_store(store)
        self._owns_store = store is None or isinstance(store, str)

    @property
    def store(self) -> AsyncStore:
        return self._store

    async def aclose(self) -> None:
        """Close the store if this chat opened it (``store=None`` or a URL); a store you passed stays open."""
        if self._owns_store:
            await self._store.aclose()

    async def __aenter__(self) -> AsyncChat:
        if self._state is None:
            await self.load()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- loading -----------------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Read the session from the store again (a pending turn is kept)."""
        try:
            state = SessionState.from_data(await self._store.load(self._session_id))
        except SessionNotFound:
            state = SessionState(self._session_id)
        self._set_state(state)

    load = reload

    def _current(self) -> SessionState:
        if self._state is None:
            raise RuntimeError(
                f"session {self._session_id!r} is not loaded yet: `await chat.load()` (or use "
                "`async with AsyncChat(...) as chat`) before reading messages, usage or cost"
            )
        return self._state

    async def _ensure(self) -> SessionState:
        if self._state is None:
            await self.reload()
        return self._current()

    async def _fresh(self) -> SessionState:
        state = await self._ensure()
        try:
            info: SessionInfo | None = await self._store.get_session(self._session_id)
        except SessionNotFound:
            info = None
        if (0 if info is None else info.version) != state.version or (info is not None and _replaced(state, info)):
            await self.reload()
            if info is not None and _replaced(state, info):
                raise self._replaced_error(state, info)
        return self._current()

    # -- turns -------------------------------------------------------------------------------------------

    async def _begin(self, content: Any, overrides: Mapping[str, Any]) -> Turn:
        state = await self._fresh() if self._pending is None else await self._ensure()
        return begin_turn(state, self._pending, content, self._settings, overrides)

    async def send(self, content: Any, **overrides: Any) -> Message:
        """See ``Chat.send``."""
        return await self._drive(await self._begin(content, overrides))

    async def send_tool_results(
        self, results: Mapping[str, Any] | Sequence[Mapping[str, Any]], **overrides: Any
    ) -> Message:
        """See ``Chat.send_tool_results``."""
        return await self.send(tool_results_content(results), **overrides)

    async def resume(self, **overrides: Any) -> Message:
        """See ``Chat.resume``."""
        await self._ensure()
        turn = resume_turn(self._pending, overrides)
        if turn.awaiting:
            turn.add_tool_results(await self._run_tools(turn))
        return await self._drive(turn)

    def stream(self, content: Any, **overrides: Any) -> AsyncChatStream:
        """``async with chat.stream(x) as s: async for text in s.text_stream: ...`` (see ``Chat.stream``)."""
        return AsyncChatStream(self, lambda: self._begin(content, overrides))

    async def _prepare(self, turn: Turn) -> tuple[dict[str, Any], bool]:
        """See ``Chat._prepare``."""
        steps = turn.prepare(self._settings)
        result: Any = None
        error: Exception | None = None
        while True:
            try:
                op = steps.throw(error) if error is not None else steps.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            result, error = None, None
            try:
                result = await self._perform(op, turn)
            except Exception as exc:
                error = exc

    async def _perform(self, op: Op, turn: Turn) -> Any:
        if isinstance(op, Summarize):
            return await self._client.messages.create(**op.params)
        if isinstance(op, SaveSummary):
            await self._store.save_summary(self._session_id, op.summary)
            self._summary_saved(turn, op.summary)
            return None
        count = self._api(op.beta).count_tokens
        return (await count(**count_kwargs(count, op.kwargs))).input_tokens

    async def _drive(self, turn: Turn) -> Message:
        while True:
            kwargs, beta = await self._prepare(turn)
            message = await self._api(beta).create(**kwargs)
            step = turn.accept(message, self._settings)
            if step is Step.RUN_TOOLS:
                turn.add_tool_results(await self._run_tools(turn))
            elif step is not Step.CALL:
                await self._finish(turn, step, message)
                return message  # type: ignore[no-any-return]

    async def _finish(self, turn: Turn, step: Step, message: Any) -> None:
        if step is Step.DONE:
            await self._commit(turn, turn.entries, message)
            self._pending = None
            return
        if self._settings.commit_pending and turn.awaiting:  # a tool_use turn handed back to the caller
            entries = turn.committable()
            if entries:
                await self._commit(turn, entries, message)
                turn.rebased(self._current(), len(entries))
        self._park(turn)

    async def _commit(self, turn: Turn, entries: Sequence[Entry], message: Any) -> None:
        changes = self._settings.metadata_changes(turn.base)
        now = read_clock(self._settings.clock)  # before the commit: a broken clock must not strand a turn
        info: SessionInfo | None = None
        tokens: dict[str, Any] = {}
        appending = False
        try:
            if changes:
                info = await self._store.update_session(self._session_id, create=True, **changes)
            tokens = _append_tokens(self._store, turn, info)
            appending = True
            version = await self._store.append(
                self._session_id, list(entries), expected_version=turn.base.version, **tokens
            )
        except ConflictError as exc:
            self._pending = None
            try:
                await self.reload()
            except Exception:
                self._state = None
            raise self._conflict(exc, message, entries) from exc
        except BaseException as exc:
            _attach(exc, message, entries, appending=appending, turn_id=tokens.get("turn_id"))
            raise
        self._after_commit(turn, entries, version, info, now, tokens.get("incarnation"))

    async def _run_tools(self, turn: Turn) -> list[dict[str, Any]]:
        uses = turn.awaiting

        async def run(use: Mapping[str, Any]) -> dict[str, Any]:
            runnable = turn.toolset.runnable(str(use.get("name")))
            try:
                value = runnable.call(use.get("input", {}))
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                if self._settings.tool_errors == "raise":
                    raise
                return error_result(str(use["id"]), exc)
            return tool_result(str(use["id"]), value)

        if len(uses) == 1:
            return [await run(uses[0])]
        tasks = [asyncio.ensure_future(run(u)) for u in uses]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:  # one tool raised (tool_errors="raise") or we were cancelled: stop the rest
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # -- undo --------------------------------------------------------------------------------------------

    async def undo(self) -> list[dict[str, Any]]:
        """See ``Chat.undo``."""
        if self._pending is not None:
            return self.discard_pending()
        state = await self._ensure()
        if not state.log:
            return []
        try:
            await self._store.rewind(self._session_id, expected_version=state.version)
        except ConflictError:
            await self.reload()
            raise
        await self.reload()
        return copy.deepcopy(state.log[len(self._current().log) :])


class AsyncChatStream:
    """The async context manager ``AsyncChat.stream`` returns; mirrors the SDK's ``AsyncMessageStream``."""

    def __init__(self, chat: AsyncChat, begin: Callable[[], Any]) -> None:
        self._chat = chat
        self._begin = begin
        self._turn: Turn | None = None
        self._manager: Any = None
        self._current: Any = None
        self._final: Any = None
        self._iterator: AsyncIterator[Any] | None = None
        self.text_stream: AsyncIterator[str] = _empty()

    async def __aenter__(self) -> AsyncChatStream:
        self._turn = await self._begin()
        await self._open()
        self._iterator = self._events()
        self.text_stream = self._texts()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _open(self) -> None:
        assert self._turn is not None
        kwargs, beta = await self._chat._prepare(self._turn)
        manager = self._chat._api(beta).stream(**kwargs)
        self._current = await manager.__aenter__()
        self._manager = manager

    async def _close_current(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            await manager.__aexit__(None, None, None)

    async def _events(self) -> AsyncIterator[Any]:
        assert self._turn is not None
        turn, chat = self._turn, self._chat
        try:
            while True:
                finished = False
                async for event in self._current:
                    finished = finished or event.type == "message_stop"
                    yield event
                if not finished:
                    raise _incomplete(self._current)
                message = await self._current.get_final_message()
                await self._close_current()
                step = turn.accept(message, chat._settings)
                if step is Step.RUN_TOOLS:
                    turn.add_tool_results(await chat._run_tools(turn))
                elif step is not Step.CALL:
                    await chat._finish(turn, step, message)
                    self._final = message
                    return
                await self._open()
        finally:
            await self._close_current()

    async def _texts(self) -> AsyncIterator[str]:
        assert self._iterator is not None
        async for event in self._iterator:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._iterator is None:
            raise RuntimeError("use `async with chat.stream(...) as s` before iterating")
        return self._iterator

    async def __anext__(self) -> Any:
        return await self.__aiter__().__anext__()

    async def until_done(self) -> None:
        if self._iterator is not None:
            async for _ in self._iterator:
                pass

    async def get_final_message(self) -> Message:
        await self.until_done()
        if self._final is None:
            raise RuntimeError("the stream was closed before the reply was complete; nothing was saved")
        return self._final  # type: ignore[no-any-return]

    async def get_final_text(self) -> str:
        return _text_of(await self.get_final_message())

    @property
    def current_message_snapshot(self) -> Message:
        if self._current is not None and self._manager is not None:
            return self._current.current_message_snapshot  # type: ignore[no-any-return]
        if self._final is None:
            raise RuntimeError("no message yet")
        return self._final  # type: ignore[no-any-return]

    @property
    def response(self) -> Any:
        return self._current.response if self._current is not None else None

    @property
    def request_id(self) -> str | None:
        return self._current.request_id if self._current is not None else None

    async def close(self) -> None:
        """Stop reading; an unfinished turn is discarded (nothing stored)."""
        iterator = self._iterator
        if iterator is not None:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._close_current()


async def _empty() -> AsyncIterator[str]:
    return
    yield  # pragma: no cover


def _async_store(store: AsyncStore | Store | str | None) -> AsyncStore:
    from .stores import open_async_store

    if store is None:
        return open_async_store("memory://")
    if isinstance(store, str):
        return open_async_store(store)
    if inspect.iscoroutinefunction(getattr(store, "append", None)):
        return store  # type: ignore[return-value]
    from .stores.threaded import ThreadedAsyncStore

    # Its worker threads end when the wrapper is garbage-collected with the chat.
    return ThreadedAsyncStore(store)  # type: ignore[arg-type]
