"""``Chat`` and ``AsyncChat``: load -> view -> call -> commit the turn -> record usage.

Both are thin I/O shells over one pure core: the path of a turn (``turn_path.py``, over ``turn.py``) yields
what it needs done (read the session, call the SDK, run local tools, commit the finished turn with ONE
``store.append(..., expected_version=v)``...) and each front end's ``_loop`` does it, sync or async: the same
loop with different I/O. A turn is atomic: an API error, a cut stream or an exception in
user code before the commit leaves the chat and the store exactly as they were, and the SDK's exception passes
through unchanged. See docs/chat.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anthropic

from .connection import IncompleteStream
from .context.checkpoint import NotLoaded
from .context.plan import RequestPlan
from .context.report import ContextReport
from .errors import ConfigurationError, ConflictError, SessionNotFound
from .pricing import PriceTable, load_prices
from .stores._cas import takes_append_tokens
from .stores._checkpoints import append_checkpointed, supports_checkpoints, takes_append_checkpoint
from .stores._checks import check_system
from .stores._leases import check_ttl, supports_leases
from .stores.base import AsyncStore, Entry, Store
from .tokens import count_kwargs
from .tools import ToolErrors, ToolSet, error_result, tool_result
from .turn import (
    Ledger,
    SessionState,
    Settings,
    Turn,
    next_request_plan,
    next_request_report,
    user_message,
    utc_now,
)
from .turn_path import ChatMemory, TurnPath, check_sync_tools, resume_warm, take_warm, turn_path, warm_current
from .turn_requests import (
    CallApi,
    CheckVersion,
    Commit,
    CountTokens,
    Finished,
    LoadCheckpoint,
    LoadMessages,
    LoadSession,
    ReleaseLease,
    Request,
    RunTools,
    SaveMetadata,
    SaveSummary,
    Summarize,
    TakeLease,
    Wait,
)
from .usage import TokenUsage
from .warm import WarmSessions, warm_key

if TYPE_CHECKING:
    from anthropic.types import Message

__all__ = ["AsyncChat", "AsyncChatStream", "Chat", "ChatStream", "OnConcurrent", "tool_results_content"]

# What a chat does when another turn is running on its session (docs/chat.md "Concurrent turns").
OnConcurrent = Literal["conflict", "reject", "enqueue"]


def _list_of_mappings(value: object) -> bool:
    """A list (or tuple) of dicts: what ``stage`` and ``send_tool_results`` take, checked up front."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and all(
        isinstance(item, Mapping) for item in value
    )


def tool_results_content(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``{tool_use_id: result}`` (a result may be an exception: an ``is_error`` result) or ready
    ``tool_result`` blocks, as the content of the user message that answers a ``tool_use``."""
    if isinstance(results, Mapping):
        return [
            error_result(str(i), v) if isinstance(v, BaseException) else tool_result(str(i), v)
            for i, v in results.items()
        ]
    if not _list_of_mappings(results):
        raise TypeError(
            "send_tool_results() takes {tool_use_id: result, ...} or a list of tool_result blocks, "
            f"got {type(results).__name__}"
        )
    return [dict(b) for b in results]


class _ChatBase:
    """What both front ends share: settings, and the chat's memory between turns (``turn_path.ChatMemory``:
    the session state it last saw, the pending turn, the ledger)."""

    _sync_tools = True  # tool functions are called, never awaited

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
        on_concurrent: OnConcurrent,
        lease_ttl: float,
        lease_timeout: float,
        warm: WarmSessions | None,
        create_kwargs: Mapping[str, Any],
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model= must be a model name such as 'claude-sonnet-4-6'")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        check_system(system)
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
        if on_concurrent not in ("conflict", "reject", "enqueue"):
            raise ConfigurationError(
                f"on_concurrent must be 'conflict', 'reject' or 'enqueue', got {on_concurrent!r}"
            )
        check_ttl(lease_ttl)
        if isinstance(lease_timeout, bool) or not isinstance(lease_timeout, (int, float)) or not (
            0 <= lease_timeout < float("inf")
        ):
            raise ConfigurationError(f"lease_timeout must be a number of seconds >= 0, got {lease_timeout!r}")
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
            on_concurrent=on_concurrent,
            lease_ttl=float(lease_ttl),
            lease_timeout=float(lease_timeout),
        )
        self._prices = load_prices(prices)
        self._session_id = session_id or uuid.uuid4().hex
        if warm is not None and not isinstance(warm, WarmSessions):
            raise ConfigurationError(f"warm= must be a WarmSessions shared by the process's chats, got {warm!r}")
        self._memory = ChatMemory(self._session_id, Ledger(self._prices), warm=warm)
        if session_id is None:  # a new session id is known to be empty: no load needed before using it
            self._memory.adopt(SessionState(self._session_id))

    @property
    def _state(self) -> SessionState | None:
        return self._memory.state

    @_state.setter
    def _state(self, state: SessionState | None) -> None:
        self._memory.state = state

    @property
    def _pending(self) -> Turn | None:
        return self._memory.pending

    @_pending.setter
    def _pending(self, turn: Turn | None) -> None:
        self._memory.pending = turn

    @property
    def _ledger(self) -> Ledger:
        return self._memory.ledger

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
        return copy.deepcopy(list(self._whole_state().log))

    @property
    def version(self) -> int:
        """The session version this chat last saw (0: not stored yet)."""
        return self._current().version

    @property
    def usage(self) -> TokenUsage:
        """Tokens of every committed reply (and stored summary) of the session, by kind."""
        self._whole_state()
        return self._ledger.usage

    @property
    def cost(self) -> float:
        """USD of every committed reply of the session. Replies on a model without a price are left out
        (with a one-time warning): then ``cost_complete`` is False."""
        self._whole_state()
        return self._ledger.cost

    @property
    def exact_cost(self) -> Decimal:
        """``cost`` as an exact ``Decimal``."""
        self._whole_state()
        return self._ledger.exact_cost

    @property
    def cost_complete(self) -> bool:
        self._whole_state()
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
        try:
            return next_request_report(self._current(), self._pending, content, self._settings, overrides)
        except NotLoaded:  # the plan needs more of the session than a checkpointed read gave
            return next_request_report(self._whole_state(), self._pending, content, self._settings, overrides)

    def next_request(self, content: Any = None, **overrides: Any) -> RequestPlan:
        """The request ``send(content)`` would make now, as ``context_report`` plans it: the messages with their
        cache markers, the system prompt and tools, where the window starts (``context.RequestPlan``; its
        ``report`` is ``context_report``'s). No API call, nothing changes."""
        try:
            return next_request_plan(self._current(), self._pending, content, self._settings, overrides)
        except NotLoaded:
            return next_request_plan(self._whole_state(), self._pending, content, self._settings, overrides)

    def stage(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Put ``messages`` ahead of the next ``send`` in the same turn: they are sent with it and committed
        with its reply, or not at all (a conversation handed over from elsewhere, as the HTTP proxy receives
        one). Alternation and tool pairs are checked as the next ``send`` checks them."""
        if self._pending is not None:
            raise RuntimeError("a turn is already in progress; send it or discard_pending() first")
        if not _list_of_mappings(messages):
            raise TypeError(
                "stage() takes a list of message dicts ({'role': 'user' or 'assistant', 'content': ...}), "
                f"got {type(messages).__name__}" + (" holding a non-dict" if isinstance(messages, list) else "")
            )
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

    def _whole_state(self) -> SessionState:
        """The state with the whole session in it: a send may have read only the newest part (from the
        session's planner checkpoint); what tells the whole history or its totals reads the rest first."""
        raise NotImplementedError

    def _set_state(self, state: SessionState, *, trusted: bool = False) -> None:
        self._memory.adopt(state, trusted=trusted)

    def _check_leases(self) -> None:
        store = self._store  # type: ignore[attr-defined]
        if self._settings.on_concurrent != "conflict" and not supports_leases(store):
            raise ConfigurationError(
                f"on_concurrent={self._settings.on_concurrent!r} needs a store with turn leases "
                f"(acquire_lease, release_lease); {type(store).__name__} has none: use one of the library's "
                "stores, or on_concurrent='conflict'"
            )

    def _path(self, content: Any, overrides: Mapping[str, Any], *, resume: bool = False) -> TurnPath:
        """The turn ``content`` starts (or ``resume`` continues), as the requests ``_loop`` carries out."""
        return turn_path(
            self._memory,
            self._settings,
            content,
            overrides,
            resume=resume,
            sync_tools=self._sync_tools,
            append_tokens=takes_append_tokens(self._store),  # type: ignore[attr-defined]
            checkpoints=supports_checkpoints(self._store),  # type: ignore[attr-defined]
        )

    def _api(self, beta: bool) -> Any:
        return self._client.beta.messages if beta else self._client.messages


def _is_async_client(client: Any) -> bool | None:
    """Whether ``client.messages.create`` is a coroutine function (None: cannot tell, e.g. a test double)."""
    create = getattr(getattr(client, "messages", None), "create", None)
    if create is None:
        return None
    return inspect.iscoroutinefunction(inspect.unwrap(create))


_OPENED = object()  # a streamed call yields it once the response has begun (``ChatStream.__enter__`` waits for it)


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
        on_concurrent: OnConcurrent = "conflict",
        lease_ttl: float = 60.0,
        lease_timeout: float = 60.0,
        warm: WarmSessions | None = None,
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
            on_concurrent=on_concurrent,
            lease_ttl=lease_ttl,
            lease_timeout=lease_timeout,
            warm=warm,
            create_kwargs=create_kwargs,
        )
        check_sync_tools(self._settings.toolset)
        self._store: Store = _sync_store(store)
        self._memory.warm_key = warm_key(store, self._session_id)
        self._owns_store = store is None or isinstance(store, str)
        self._check_leases()

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

    def reload(self, *, for_next_turn: bool = False) -> None:
        """Read the session from the store again (a pending turn is kept; it commits against the version it
        started from). ``for_next_turn``: the next turn follows at once (as in a request handler that loads
        and sends), so it skips its own version check; a writer in between still makes the commit's
        compare-and-swap fail (``ConflictError``), only after the API call instead of before it."""
        kept = take_warm(self._memory, whole=True)
        if kept is not None and warm_current(kept[0], self._execute(CheckVersion())):
            resume_warm(self._memory, self._settings, kept, trusted=for_next_turn)
            return
        self._set_state(self._execute(LoadSession()), trusted=for_next_turn)

    load = reload

    def _current(self) -> SessionState:
        if self._state is None:
            self.reload()
        assert self._state is not None
        return self._state

    def _whole_state(self) -> SessionState:
        state = self._current()
        if not state.complete:
            self.reload()
            state = self._current()
        return state

    # -- turns -------------------------------------------------------------------------------------------

    def send(self, content: Any, **overrides: Any) -> Message:
        """Send ``content`` (a string or content blocks) and return the reply, committing the whole turn.

        With tool functions the tool loop runs here, inside the turn. Without them a ``tool_use`` reply is
        returned and the turn stays pending until you send the results."""
        return _reply(self._loop(self._path(content, overrides)))

    def send_tool_results(
        self, results: Mapping[str, Any] | Sequence[Mapping[str, Any]], **overrides: Any
    ) -> Message:
        """Answer the pending ``tool_use`` blocks: ``{tool_use_id: result}`` (an exception value becomes an
        ``is_error`` result) or a list of ``tool_result`` blocks; continues the turn."""
        return self.send(tool_results_content(results), **overrides)

    def resume(self, **overrides: Any) -> Message:
        """Go on with the pending turn as it stands: after ``max_tool_rounds`` (runs the open tools again, or
        continues a pause), or to retry an empty reply; ``max_tool_rounds`` more automatic rounds follow."""
        return _reply(self._loop(self._path(None, overrides, resume=True)))

    def stream(self, content: Any, **overrides: Any) -> ChatStream:
        """Like ``send``, streaming: ``with chat.stream(x) as s: for text in s.text_stream: ...``.

        The turn is committed once the stream has been read to the end; leaving the block earlier (break, an
        exception) discards it and the history stays as it was."""
        return ChatStream(self, lambda stream: self._loop(self._path(content, overrides), stream))

    def _loop(self, path: TurnPath, stream: ChatStream | None = None) -> Iterator[Any]:
        """The one place a turn does I/O: carry out each request of ``path`` and send back its result, or
        throw its error back in. Yields a streamed call's events (``stream``), and ``Finished`` last."""
        result: Any = None
        error: BaseException | None = None
        try:
            while True:
                request = path.throw(error) if error is not None else path.send(result)
                result, error = None, None
                if isinstance(request, Finished):
                    yield request
                    return
                try:
                    if stream is not None and isinstance(request, CallApi):
                        yield from stream.call(request)
                        result = stream.reply
                    else:
                        result = self._execute(request)
                except GeneratorExit:
                    raise
                except BaseException as exc:  # the path decides: a store error at commit carries the turn
                    error = exc
        finally:
            path.close()
            if self._memory.lease is not None:  # the turn was abandoned holding its lease
                with contextlib.suppress(Exception):
                    self._execute(ReleaseLease(self._memory.lease))
                self._memory.lease = None

    def _execute(self, request: Request) -> Any:
        """Do what one request asks (see ``turn_requests``) and return its result."""
        store, session_id = self._store, self._session_id
        if isinstance(request, TakeLease):
            return store.acquire_lease(session_id, ttl=request.ttl)  # type: ignore[attr-defined]
        if isinstance(request, Wait):
            return time.sleep(request.seconds)
        if isinstance(request, ReleaseLease):
            return store.release_lease(session_id, request.token)  # type: ignore[attr-defined]
        if isinstance(request, CallApi):
            return self._api(request.beta).create(**request.kwargs)
        if isinstance(request, RunTools):
            return self._run_tools(request)
        if isinstance(request, Commit):
            entries = list(request.entries)
            return append_checkpointed(
                store, session_id, entries, request.checkpoint, expected_version=request.expected_version,
                **request.tokens,
            )
        if isinstance(request, SaveMetadata):
            return store.update_session(session_id, create=True, **request.changes)
        if isinstance(request, CheckVersion):
            try:
                return store.get_session(session_id)
            except SessionNotFound:
                return None
        if isinstance(request, LoadSession):
            try:
                return SessionState.from_data(store.load(session_id))
            except SessionNotFound:
                return SessionState(session_id)
        if isinstance(request, LoadCheckpoint):
            return store.load_checkpoint(session_id) if supports_checkpoints(store) else None  # type: ignore[attr-defined]
        if isinstance(request, LoadMessages):
            try:
                return store.load_messages(session_id, start=request.start)
            except SessionNotFound:
                return []
        if isinstance(request, Summarize):
            return self._client.messages.create(**request.params)
        if isinstance(request, SaveSummary):
            return store.save_summary(session_id, request.summary)
        if isinstance(request, CountTokens):
            count = self._api(request.beta).count_tokens
            return count(**count_kwargs(count, request.kwargs)).input_tokens
        raise TypeError(f"unknown request {request!r}")  # pragma: no cover - turn_requests.Request is closed

    def _run_tools(self, request: RunTools) -> list[dict[str, Any]]:
        """The functions one after the other (see ``AsyncChat._run_tools``)."""
        results = []
        for use in request.uses:
            runnable = request.toolset.runnable(str(use.get("name")))
            try:
                value = runnable.call(use.get("input", {}))
            except Exception as exc:
                if request.raise_errors:
                    raise
                results.append(error_result(str(use["id"]), exc))
            else:
                results.append(tool_result(str(use["id"]), value))
        return results

    # -- undo --------------------------------------------------------------------------------------------

    def undo(self) -> list[dict[str, Any]]:
        """Remove the last turn: a pending one from memory, else the last committed turn from the store
        (``store.rewind`` with compare-and-swap on the version this chat saw). Returns the removed
        messages."""
        if self._pending is not None:
            return self.discard_pending()
        state = self._whole_state()
        if not state.log:
            return []
        try:
            self._store.rewind(self._session_id, expected_version=state.version)
        except ConflictError:
            self.reload()
            raise
        self.reload()
        return copy.deepcopy(list(state.log[len(self._current().log) :]))


def _reply(loop: Iterator[Any]) -> Message:
    """The reply of a turn run without streaming (its loop yields only ``Finished``)."""
    for item in loop:
        if isinstance(item, Finished):
            return item.message  # type: ignore[no-any-return]
    raise AssertionError("a turn path ends with Finished")  # pragma: no cover


class ChatStream:
    """The context manager ``Chat.stream`` returns; mirrors the SDK's ``MessageStream``.

    Iterate it for the SDK's stream events (a tool loop or a pause continuation shows several
    message_start ... message_stop sequences), or ``text_stream`` for text deltas; ``get_final_message()``
    reads to the end and returns the final reply."""

    def __init__(self, chat: Chat, start: Callable[[ChatStream], Iterator[Any]]) -> None:
        self._chat = chat
        self._start = start
        self._loop: Iterator[Any] | None = None
        self._manager: Any = None
        self._current: Any = None
        self._final: Any = None
        self.reply: Any = None
        self._iterator: Iterator[Any] = iter(())
        self.text_stream: Iterator[str] = iter(())

    def __enter__(self) -> ChatStream:
        self._loop = self._start(self)
        for item in self._loop:  # the turn begins and its first request is sent, as the SDK's stream() does
            if item is _OPENED:
                break
        self._iterator = self._events()
        self.text_stream = self._texts()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def call(self, request: CallApi) -> Iterator[Any]:
        """One streamed API call of the turn (``Chat._loop`` runs it): ``_OPENED`` once the response has
        begun, then the events; ``self.reply`` is the final message."""
        manager = self._chat._api(request.beta).stream(**request.kwargs)
        self._current = manager.__enter__()
        self._manager = manager
        try:
            yield _OPENED
            finished = False
            for event in self._current:
                finished = finished or event.type == "message_stop"
                yield event
            if not finished:
                raise _incomplete(self._current)
            self.reply = self._current.get_final_message()
        finally:
            self._close_current()

    def _close_current(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.__exit__(None, None, None)

    def _events(self) -> Iterator[Any]:
        assert self._loop is not None
        for item in self._loop:
            if isinstance(item, Finished):
                self._final = item.message
                return
            if item is not _OPENED:
                yield item

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
        for iterator in (self._iterator, self._loop):
            close = getattr(iterator, "close", None)
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

    _sync_tools = False

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
        on_concurrent: OnConcurrent = "conflict",
        lease_ttl: float = 60.0,
        lease_timeout: float = 60.0,
        warm: WarmSessions | None = None,
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
            on_concurrent=on_concurrent,
            lease_ttl=lease_ttl,
            lease_timeout=lease_timeout,
            warm=warm,
            create_kwargs=create_kwargs,
        )
        self._store: AsyncStore = _async_store(store)
        self._memory.warm_key = warm_key(store, self._session_id)
        self._owns_store = store is None or isinstance(store, str)
        self._check_leases()

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

    async def reload(self, *, for_next_turn: bool = False) -> None:
        """Read the session from the store again (a pending turn is kept); ``for_next_turn``: see ``Chat.reload``."""
        kept = take_warm(self._memory, whole=True)
        if kept is not None and warm_current(kept[0], await self._execute(CheckVersion())):
            resume_warm(self._memory, self._settings, kept, trusted=for_next_turn)
            return
        self._set_state(await self._execute(LoadSession()), trusted=for_next_turn)

    load = reload

    def _current(self) -> SessionState:
        if self._state is None:
            raise RuntimeError(
                f"session {self._session_id!r} is not loaded yet: `await chat.load()` (or use "
                "`async with AsyncChat(...) as chat`) before reading messages, usage or cost"
            )
        return self._state

    def _whole_state(self) -> SessionState:
        state = self._current()
        if not state.complete:
            raise RuntimeError(
                f"only the newest part of session {self._session_id!r} was read (its planner checkpoint made a "
                "send cheap): `await chat.load()` reads all of it before reading messages, usage or cost"
            )
        return state

    async def _ensure(self) -> SessionState:
        if self._state is None or not self._state.complete:
            await self.reload()
        return self._current()

    # -- turns -------------------------------------------------------------------------------------------

    async def send(self, content: Any, **overrides: Any) -> Message:
        """See ``Chat.send``."""
        return await _areply(self._loop(self._path(content, overrides)))

    async def send_tool_results(
        self, results: Mapping[str, Any] | Sequence[Mapping[str, Any]], **overrides: Any
    ) -> Message:
        """See ``Chat.send_tool_results``."""
        return await self.send(tool_results_content(results), **overrides)

    async def resume(self, **overrides: Any) -> Message:
        """See ``Chat.resume``."""
        return await _areply(self._loop(self._path(None, overrides, resume=True)))

    def stream(self, content: Any, **overrides: Any) -> AsyncChatStream:
        """``async with chat.stream(x) as s: async for text in s.text_stream: ...`` (see ``Chat.stream``)."""
        return AsyncChatStream(self, lambda stream: self._loop(self._path(content, overrides), stream))

    async def _loop(self, path: TurnPath, stream: AsyncChatStream | None = None) -> AsyncIterator[Any]:
        """See ``Chat._loop``: the same loop, awaiting."""
        result: Any = None
        error: BaseException | None = None
        try:
            while True:
                request = path.throw(error) if error is not None else path.send(result)
                result, error = None, None
                if isinstance(request, Finished):
                    yield request
                    return
                try:
                    if stream is not None and isinstance(request, CallApi):
                        async for event in stream.call(request):
                            yield event
                        result = stream.reply
                    else:
                        result = await self._execute(request)
                except GeneratorExit:
                    raise
                except BaseException as exc:  # the path decides: a store error at commit carries the turn
                    error = exc
        finally:
            path.close()
            if self._memory.lease is not None:  # the turn was abandoned holding its lease
                with contextlib.suppress(Exception):
                    await self._execute(ReleaseLease(self._memory.lease))
                self._memory.lease = None

    async def _execute(self, request: Request) -> Any:
        """See ``Chat._execute``."""
        store, session_id = self._store, self._session_id
        if isinstance(request, TakeLease):
            return await store.acquire_lease(session_id, ttl=request.ttl)  # type: ignore[attr-defined]
        if isinstance(request, Wait):
            return await asyncio.sleep(request.seconds)
        if isinstance(request, ReleaseLease):
            return await store.release_lease(session_id, request.token)  # type: ignore[attr-defined]
        if isinstance(request, CallApi):
            return await self._api(request.beta).create(**request.kwargs)
        if isinstance(request, RunTools):
            return await self._run_tools(request)
        if isinstance(request, Commit):
            return await self._append(request)
        if isinstance(request, SaveMetadata):
            return await store.update_session(session_id, create=True, **request.changes)
        if isinstance(request, CheckVersion):
            try:
                return await store.get_session(session_id)
            except SessionNotFound:
                return None
        if isinstance(request, LoadSession):
            try:
                return SessionState.from_data(await store.load(session_id))
            except SessionNotFound:
                return SessionState(session_id)
        if isinstance(request, LoadCheckpoint):
            if not supports_checkpoints(store):
                return None
            return await store.load_checkpoint(session_id)  # type: ignore[attr-defined]
        if isinstance(request, LoadMessages):
            try:
                return await store.load_messages(session_id, start=request.start)
            except SessionNotFound:
                return []
        if isinstance(request, Summarize):
            return await self._client.messages.create(**request.params)
        if isinstance(request, SaveSummary):
            return await store.save_summary(session_id, request.summary)
        if isinstance(request, CountTokens):
            count = self._api(request.beta).count_tokens
            return (await count(**count_kwargs(count, request.kwargs))).input_tokens
        raise TypeError(f"unknown request {request!r}")  # pragma: no cover - turn_requests.Request is closed

    async def _append(self, request: Commit) -> int:
        """The commit, with the planner's checkpoint in the same write when the store takes one there; a user's
        own store that keeps checkpoints only through ``save_checkpoint`` is given it after (best effort; the
        sync twin is ``stores._checkpoints.append_checkpointed``)."""
        store, session_id, checkpoint = self._store, self._session_id, request.checkpoint
        arguments = {"expected_version": request.expected_version, **request.tokens}
        if checkpoint is None or not supports_checkpoints(store):
            return await store.append(session_id, list(request.entries), **arguments)
        if takes_append_checkpoint(store):
            return await store.append(  # type: ignore[call-arg]
                session_id, list(request.entries), checkpoint=checkpoint, **arguments
            )
        version: int = await store.append(session_id, list(request.entries), **arguments)
        with contextlib.suppress(Exception):
            await store.save_checkpoint(session_id, version, checkpoint)  # type: ignore[attr-defined]
        return version

    async def _run_tools(self, request: RunTools) -> list[dict[str, Any]]:
        """The functions at once when there are several (async ones are awaited)."""

        async def run(use: Mapping[str, Any]) -> dict[str, Any]:
            runnable = request.toolset.runnable(str(use.get("name")))
            try:
                value = runnable.call(use.get("input", {}))
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                if request.raise_errors:
                    raise
                return error_result(str(use["id"]), exc)
            return tool_result(str(use["id"]), value)

        uses = request.uses
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
        return copy.deepcopy(list(state.log[len(self._current().log) :]))


async def _areply(loop: AsyncIterator[Any]) -> Message:
    """See ``_reply``."""
    async for item in loop:
        if isinstance(item, Finished):
            return item.message  # type: ignore[no-any-return]
    raise AssertionError("a turn path ends with Finished")  # pragma: no cover


class AsyncChatStream:
    """The async context manager ``AsyncChat.stream`` returns; mirrors the SDK's ``AsyncMessageStream``."""

    def __init__(self, chat: AsyncChat, start: Callable[[AsyncChatStream], AsyncIterator[Any]]) -> None:
        self._chat = chat
        self._start = start
        self._loop: AsyncIterator[Any] | None = None
        self._manager: Any = None
        self._current: Any = None
        self._final: Any = None
        self.reply: Any = None
        self._iterator: AsyncIterator[Any] | None = None
        self.text_stream: AsyncIterator[str] = _empty()

    async def __aenter__(self) -> AsyncChatStream:
        self._loop = self._start(self)
        async for item in self._loop:  # see ChatStream.__enter__
            if item is _OPENED:
                break
        self._iterator = self._events()
        self.text_stream = self._texts()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def call(self, request: CallApi) -> AsyncIterator[Any]:
        """See ``ChatStream.call``."""
        manager = self._chat._api(request.beta).stream(**request.kwargs)
        self._current = await manager.__aenter__()
        self._manager = manager
        try:
            yield _OPENED
            finished = False
            async for event in self._current:
                finished = finished or event.type == "message_stop"
                yield event
            if not finished:
                raise _incomplete(self._current)
            self.reply = await self._current.get_final_message()
        finally:
            await self._close_current()

    async def _close_current(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            await manager.__aexit__(None, None, None)

    async def _events(self) -> AsyncIterator[Any]:
        assert self._loop is not None
        async for item in self._loop:
            if isinstance(item, Finished):
                self._final = item.message
                return
            if item is not _OPENED:
                yield item

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
        for iterator in (self._iterator, self._loop):
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
