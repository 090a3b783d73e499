"""Running one turn of a stored session through ``AsyncChat`` and answering with the upstream's reply unchanged:
the message as JSON, or the stream event for event. Shared by the proxy and the sessions API."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anthropic
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ..chat import AsyncChat
from ..errors import ConflictError, SessionNotFound
from ..turn import usage_of
from ..usage import combine_usage
from .auth import Caller
from .errors import ApiError, error_body, status_of
from .responses import JSONBody
from .service import Service
from .tenants import scoped
from .upstream import RawReply

__all__ = ["claim", "open_chat", "record", "reply_json", "required", "run_turn", "sse"]

# Events the SDK derives from the raw stream for convenience: the API never sends them.
_DERIVED = frozenset({"text", "input_json", "citation", "thinking", "signature"})


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def raw_event(event: Any) -> dict[str, Any] | None:
    """The API's event as it was sent (None for the SDK's derived events): the SDK adds the finished block to
    ``content_block_stop`` and the message to ``message_stop``; both are dropped again."""
    kind = getattr(event, "type", None)
    if kind in _DERIVED:
        return None
    data: dict[str, Any] = event.model_dump(mode="json", exclude_unset=True, by_alias=True)
    if kind == "content_block_stop":
        data.pop("content_block", None)
    elif kind == "message_stop":
        data.pop("message", None)
    return data


def reply_json(message: Any) -> dict[str, Any]:
    """The reply as the API sent it (the SDK keeps which fields were present)."""
    data: dict[str, Any] = message.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return data


def _summed(usage: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in usage.items() if k != "requests"}


def turn_json(chat: AsyncChat, message: Any) -> dict[str, Any]:
    """The reply of a committed turn. A turn the service continued after ``pause_turn`` (server tools) took
    several calls and is stored as one assistant message: the client gets that message (all the calls'
    blocks, their usage summed) with the last call's stop reason, as if the API had not paused."""
    data = reply_json(message)
    if chat.pending:  # not committed (a turn waiting for its tool results): the reply as it came
        return data
    state = chat._current()  # the state after the commit; its last record is the stored reply
    last = state.records[-1] if state.records else None
    if last is not None and last.role == "assistant" and len(last.message["content"]) != len(data["content"]):
        data = {**data, "content": last.message["content"]}
        if last.usage:
            data["usage"] = _summed(last.usage)
    return data


def turn_response(chat: AsyncChat, message: Any, headers: dict[str, str]) -> Response:
    """The reply of a committed turn as the client gets it: a reply of one call, read raw, is sent on byte for
    byte as the upstream sent it."""
    data = turn_json(chat, message)
    if isinstance(message, RawReply) and data is message.data:
        return Response(message.raw, media_type="application/json", headers=headers)
    return JSONBody(data, headers=headers)


class JoinedEvents:
    """The events of a turn the service continued after ``pause_turn``, as one message's stream: one
    ``message_start``, content block indexes running on across the calls, and one ``message_delta`` (the
    last call's stop reason, the calls' usage summed) followed by ``message_stop``, both sent by ``finish``
    once the turn is committed. A turn of one call keeps its events unchanged."""

    def __init__(self) -> None:
        self._calls: list[dict[str, Any]] = []  # each call's usage
        self._offset = 0
        self._blocks = 0
        self._delta: dict[str, Any] | None = None
        self._stop: dict[str, Any] | None = None

    def feed(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The event to send now (None: held back or dropped)."""
        kind = data.get("type")
        if kind == "message_start":
            self._calls.append(dict((data.get("message") or {}).get("usage") or {}))
            self._offset = self._blocks
            return data if len(self._calls) == 1 else None
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            index = int(data.get("index", 0)) + self._offset
            self._blocks = max(self._blocks, index + 1)
            return {**data, "index": index} if self._offset else data
        if kind == "message_delta":
            if self._calls:
                self._calls[-1].update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            self._delta = data
            return None
        if kind == "message_stop":
            self._stop = data
            return None
        return data

    def finish(self) -> list[dict[str, Any]]:
        """The closing ``message_delta`` and ``message_stop``."""
        delta = self._delta
        if delta is not None and len(self._calls) > 1:
            calls: list[Mapping[str, Any]] = list(self._calls)
            delta = {**delta, "usage": _summed(combine_usage(calls))}
        return [event for event in (delta, self._stop) if event is not None]


def _error_event(exc: BaseException) -> bytes:
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else error_body(exc.status_code, str(exc))
        return sse("error", body)
    status, message = status_of(exc)
    return sse("error", error_body(status, message))


Committed = Callable[[AsyncChat, Any], Awaitable[None]]


async def run_turn(
    service: Service, chat: AsyncChat, content: Any, *, stream: bool, tenant: str | None, committed: Committed
) -> Response:
    """Send ``content`` on ``chat`` (its turn commits inside the chat, atomically) and answer with the reply.

    ``committed`` runs after the commit (metadata, metrics). A conflict before any byte is sent is a 409; in a
    stream, the ``message_stop`` event is held back until the turn is committed, and a conflict then becomes
    an ``error`` event instead, so a client that saw ``message_stop`` knows the turn is stored. The turn runs
    in its own task: a client that disconnects does not stop it."""
    if not stream:
        message = await service.run(_send(chat, content, committed, service, tenant))
        headers = {"x-session-version": str(chat.version)}
        request_id = getattr(message, "_request_id", None)
        if request_id:
            headers["request-id"] = request_id
        return turn_response(chat, message, headers)
    try:
        opened = chat.stream(content)
        await opened.__aenter__()  # errors before the first event are plain HTTP errors
    except ConflictError:
        service.metrics.conflicts.labels(tenant or "-").inc()
        raise
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def produce() -> None:
        joined = JoinedEvents()
        try:
            async for event in opened:
                data = raw_event(event)
                if data is None:
                    continue
                data = joined.feed(data)
                if data is not None:
                    queue.put_nowait(sse(str(data.get("type")), data))
            await committed(chat, await opened.get_final_message())
            for data in joined.finish():
                queue.put_nowait(sse(str(data.get("type")), data))
        except Exception as exc:
            if isinstance(exc, ConflictError):
                service.metrics.conflicts.labels(tenant or "-").inc()
            queue.put_nowait(_error_event(exc))
        finally:
            await opened.close()
            queue.put_nowait(None)

    service.spawn(produce())

    async def relay() -> AsyncIterator[bytes]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    headers = {"cache-control": "no-cache"}
    request_id = opened.request_id
    if request_id:
        headers["request-id"] = request_id
    return StreamingResponse(relay(), media_type="text/event-stream", headers=headers)


async def _send(chat: AsyncChat, content: Any, committed: Committed, service: Service, tenant: str | None) -> Any:
    try:
        message = await chat.send(content)
    except ConflictError:
        service.metrics.conflicts.labels(tenant or "-").inc()
        raise
    await committed(chat, message)
    return message


def record(service: Service, tenant: str | None, chat: AsyncChat, message: Any, mode: str) -> None:
    """A committed turn in the metrics, with the usage of every upstream call it made: the stored reply's
    (a turn continued after ``pause_turn`` keeps each call's figures there; ``message`` is the last call)."""
    state = chat._current()
    last = state.records[-1] if state.records else None
    usage = last.usage if last is not None and last.role == "assistant" and last.usage else usage_of(message)
    service.metrics.record_usage(tenant, getattr(message, "model", None), usage, service.prices, mode)


def required(body: dict[str, Any]) -> tuple[str, int, list[dict[str, Any]]]:
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ApiError(400, "max_tokens: Field required (a positive integer)")
    return model, max_tokens, sent_messages(body)


def sent_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``messages``, checked before they are compared with a stored session (a 400, not a 500)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "messages: a non-empty list of message objects is required")
    return messages


def _betas(request: Request) -> list[str]:
    header = request.headers.get("anthropic-beta", "")
    return [b.strip() for b in header.split(",") if b.strip()]


_PARAMETERS: dict[type, frozenset[str]] = {}  # the keywords each SDK class's ``messages.create`` takes


def _create_arguments(service: Service, beta: bool, body: dict[str, Any]) -> dict[str, Any]:
    """The request's other fields as ``messages.create`` keywords; fields this SDK does not know go in
    ``extra_body`` so they still reach the upstream."""
    api = service.upstream.beta.messages if beta else service.upstream.messages
    known = _PARAMETERS.get(type(api))
    if known is None:  # read once per SDK class: ``inspect.signature`` on every turn is slow
        known = _PARAMETERS[type(api)] = frozenset(inspect.signature(api.create).parameters)
    arguments = {k: v for k, v in body.items() if k in known}
    extra = {k: v for k, v in body.items() if k not in known}
    if extra:
        arguments["extra_body"] = extra
    return arguments


async def open_chat(service: Service, who: Caller, session_id: str, body: dict[str, Any],
                    request: Request) -> AsyncChat:  # fmt: skip
    """An ``AsyncChat`` on the tenant's session for this request (loaded), with the request's settings."""
    model, max_tokens, _ = required(body)
    rest = {k: v for k, v in body.items() if k not in ("model", "max_tokens", "messages", "stream", "system",
                                                        "tools")}  # fmt: skip
    betas = _betas(request)
    arguments = _create_arguments(service, bool(betas), rest)
    if betas:
        arguments["betas"] = betas
    store_id = scoped(who.tenant, session_id)
    system = body.get("system")
    if system is None and service.config.system is not None:
        try:
            stored = (await service.store.get_session(store_id)).system
        except SessionNotFound:
            stored = None
        system = service.config.system if stored is None else None
    chat = AsyncChat(
        service.client_for(who.key),
        model=model,
        store=service.store,
        session_id=store_id,
        system=system,
        max_tokens=max_tokens,
        context=service.config.context,
        cache=service.config.cache,
        prices=service.prices,
        tools=body.get("tools"),
        # The client runs its tools and sends their results (the chat has no functions to run, so it never
        # calls for them); a pause_turn (server tools) is continued here, as the API asks, up to this often.
        max_tool_rounds=service.config.max_continuations,
        commit_pending=True,  # each request's messages and reply are one atomic commit
        warm=service.warm,
        **arguments,
    )
    # The turn follows at once: no second read of its version. A warm session (the last turn on it in this
    # process left its state in service.warm) is read as its metadata row only.
    await chat.load(for_next_turn=True)
    return chat


async def claim(service: Service, who: Caller, chat: AsyncChat) -> None:
    """After the first commit of a new session: it belongs to its tenant (set after the turn is safely
    stored, so a failed first turn leaves nothing behind)."""
    if who.tenant is not None:
        await service.store.update_session(chat.session_id, owner=who.tenant)
