"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic-compatible stateful proxy.

With ``x-session-id`` the service keeps the history: the client sends only its new message (or tool results),
the service loads the session, builds the request through the library's ``AsyncChat`` (context policy, cache
placement, tool pairing), calls the upstream and commits the turn atomically. Without it the request goes to
the upstream unchanged and only its usage is recorded: in the metrics and in the tenant's stored totals
(``usage_records``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ..chat import AsyncChat
from ..errors import InvalidHistory, SessionNotContinuable, SessionNotFound
from ..history import continuation_problem, last_turn_start, validate_from
from .auth import Caller, caller
from .errors import ApiError
from .examples import MESSAGES_OPENAPI, responses
from .resend import Diverged, new_part, sends_back_last_reply
from .service import Service
from .tenants import scoped
from .turns import claim, open_chat, record, required, run_turn, sent_messages

__all__ = ["router"]

router = APIRouter()

# Headers passed on to the upstream as they are; the key is always replaced (ours, or the client's when
# forwarding), so a tenant key never leaves the service.
_FORWARD = ("anthropic-version", "anthropic-beta", "content-type", "accept")


async def read_json(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, f"request body is {len(raw)} bytes; this service takes at most {limit}")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return raw, body


def _expected_version(request: Request) -> int | None:
    value = request.headers.get("x-session-version")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(400, f"x-session-version must be an integer, got {value!r}") from exc


@router.post("/v1/messages", tags=["proxy"], openapi_extra=MESSAGES_OPENAPI,
             responses=responses("reply", conflict=True, not_found=False))  # fmt: skip
async def messages(request: Request) -> Response:
    """The Messages API. With ``x-session-id: ID`` the service keeps the conversation (send only the new
    message); ``x-session-version: N`` makes the turn fail with 409 unless the session is at version N."""
    service: Service = request.app.state.service
    who = await caller(request)
    raw, body = await read_json(request, service.config.max_body_bytes)
    session_id = request.headers.get("x-session-id")
    if not session_id:
        return await passthrough(service, request, who, raw, body, "/v1/messages")
    _, _, sent = required(body)
    chat = await open_chat(service, who, session_id, body, request)
    expected = _expected_version(request)
    if expected is not None and expected != chat.version:
        service.metrics.conflicts.labels(who.tenant or "-").inc()
        raise ApiError(409, f"session {session_id!r} is at version {chat.version}, not {expected}")
    # The history as the chat holds it (open_chat loaded it whole): read, never changed, so not copied
    # (``chat.messages`` hands out a deep copy, three of them per request here before).
    history = chat._current().log
    if sends_back_last_reply(history, sent):
        raise ApiError(400, (
            f"the messages sent add nothing to session {session_id!r}: it already ends with this reply. A reply "
            f"still paused (stop_reason pause_turn) after the service's {service.config.max_continuations} "
            "continuations is stored as it stood and is not continued by sending it back: send the next user "
            "message (for example 'Please go on.') and the conversation continues after it."))  # fmt: skip
    try:
        new = new_part(history, sent)
    except Diverged as exc:
        service.metrics.conflicts.labels(who.tenant or "-").inc()
        raise ApiError(409, str(exc)) from exc
    # The stored history was valid when committed: its last turn on is enough (O(turn) per request). An
    # imported one may not have been: then the error says the session cannot go on, and how to repair it.
    try:
        validate_from([*history, *new], last_turn_start(history) or 0)
    except InvalidHistory as exc:
        problem = continuation_problem(history)
        if problem is None:
            raise
        raise SessionNotContinuable(str(exc), index=exc.index, problem=problem) from exc
    chat.stage(new[:-1])
    fresh = chat.version == 0

    async def committed(chat: AsyncChat, message: Any) -> None:
        if fresh and chat.version:  # version 0: nothing was stored (an empty reply waits for the client)
            await claim(service, who, chat)
        record(service, who.tenant, chat, message, "session")

    return await run_turn(service, chat, new[-1]["content"], stream=bool(body.get("stream")), tenant=who.tenant,
                          committed=committed)  # fmt: skip


@router.post("/v1/messages/count_tokens", tags=["proxy"])
async def count_tokens(request: Request) -> Response:
    """Token count of the request. With ``x-session-id``: of the stored history followed by the new message
    (the whole log, before the context policy trims it)."""
    service: Service = request.app.state.service
    who = await caller(request)
    raw, body = await read_json(request, service.config.max_body_bytes)
    session_id = request.headers.get("x-session-id")
    if not session_id:
        return await passthrough(service, request, who, raw, body, "/v1/messages/count_tokens")
    sent = sent_messages(body)
    try:
        data = await service.store.load(scoped(who.tenant, session_id))
        log, stored_system = data.message_params(), data.info.system
    except SessionNotFound:
        log, stored_system = [], None
    try:
        new = new_part(log, sent)
    except Diverged as exc:
        raise ApiError(409, str(exc)) from exc
    body = {**body, "messages": [*log, *new]}
    if body.get("system") is None and (stored_system or service.config.system):
        body["system"] = stored_system or service.config.system
    return await passthrough(service, request, who, json.dumps(body).encode(), body, "/v1/messages/count_tokens",
                             count=False)  # fmt: skip


async def passthrough(service: Service, request: Request, who: Caller, raw: bytes, body: dict[str, Any],
                      path: str, *, count: bool = True) -> Response:  # fmt: skip
    """The request to the upstream unchanged (but for the key); the reply back unchanged, its usage recorded."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARD}
    key = service.upstream_key(who.key)
    if key:
        headers["x-api-key"] = key
    url = service.base_url + path + (f"?{request.url.query}" if request.url.query else "")
    upstream = await service.http.send(service.http.build_request("POST", url, content=raw, headers=headers),
                                       stream=True)  # fmt: skip
    kept = {k: v for k, v in upstream.headers.items() if k.lower() in ("request-id", "retry-after")}
    model = body.get("model") if isinstance(body.get("model"), str) else None
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):
        relay = _relay(service, who, upstream, model if count else None)
        return StreamingResponse(relay, status_code=upstream.status_code, media_type="text/event-stream",
                                 headers=kept)  # fmt: skip
    content = await upstream.aread()
    await upstream.aclose()
    if count and upstream.status_code == 200 and path == "/v1/messages":
        try:
            reply = json.loads(content)
            service.record_passthrough(who.tenant, reply.get("model"), reply.get("usage"))
        except (ValueError, AttributeError):
            pass
    return Response(content, status_code=upstream.status_code, headers=kept,
                    media_type=upstream.headers.get("content-type", "application/json"))  # fmt: skip


async def _relay(service: Service, who: Caller, upstream: Any, model: str | None) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come; the usage is read from message_start / message_delta on the way."""
    usage: dict[str, Any] = {}
    buffer = b""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                _read_usage(line, usage)
    finally:
        await upstream.aclose()
        if model is not None and usage:
            service.record_passthrough(who.tenant, usage.pop("_model", model), usage)


def _read_usage(line: bytes, usage: dict[str, Any]) -> None:
    if not line.startswith(b"data:"):
        return
    try:
        event = json.loads(line[5:])
    except ValueError:
        return
    if not isinstance(event, dict):
        return
    if event.get("type") == "message_start":
        message = event.get("message") or {}
        usage.update(message.get("usage") or {})
        if message.get("model"):
            usage["_model"] = message["model"]
    elif event.get("type") == "message_delta":
        usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
