"""The sessions API under ``/v1/sessions``: a tenant's sessions, their messages, turns, undo, fork, context
report, usage, search, export and import. Every id is the tenant's own (see ``tenants.scoped``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ..errors import ConflictError, SessionNotFound
from ..history import continuable_copy, continuation_problem, is_turn_start, left_out
from ..stores._json import dumps
from ..stores.base import UNSET, Entry, SessionCursor, SessionInfo
from ..turn import Ledger
from ..usage import TokenUsage
from .auth import Caller, caller
from .errors import ApiError, continuation_advice
from .examples import responses
from .paging import decode_messages_cursor, decode_sessions_cursor, messages_cursor, sessions_cursor
from .reports import costs_json, request_layout
from .responses import JSONBody
from .service import Service
from .tenants import scoped, unscoped
from .turns import open_chat, record, run_turn
from .usage_records import is_usage_record

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["sessions"])

_PAGE = 100  # store rows read per step while filtering a listing
_DETAIL = "Add ``layout``: each stored message sent, cut or summarised, and where the cache breakpoints sit."
_FORMAT = "``jsonl`` (what import takes back) or ``markdown`` (for reading and sharing)."


class SessionCreate(BaseModel):
    id: str | None = Field(None, description="Your id for the session; default a new random id.",
                           examples=["user-42"])  # fmt: skip
    title: str | None = Field(None, examples=["Trip to Lisbon"])
    tags: list[str] = Field(default_factory=list, examples=[["support"]])
    metadata: dict[str, Any] = Field(default_factory=dict, examples=[{"plan": "pro"}])
    model: str | None = Field(None, examples=["claude-sonnet-4-6"])
    system: str | list[dict[str, Any]] | None = Field(None, examples=["You are concise."])


class SessionUpdate(BaseModel):
    title: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    model: str | None = None
    system: str | list[dict[str, Any]] | None = None


class TurnRequest(BaseModel):
    content: str | list[dict[str, Any]] = Field(..., examples=["What is the capital of France?"])
    stream: bool = Field(False, description="Answer with the API's SSE stream instead of JSON.")
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


class ForkRequest(BaseModel):
    at: int | None = Field(None, ge=0, description="Keep messages [0, at) (at: a turn start, or the message count); "
                                                   "default all.")
    id: str | None = Field(None, description="The new session's id; default a new random id.")


class RepairRequest(BaseModel):
    id: str | None = Field(None, description="The repaired copy's id; default a new random id.")


class RewindRequest(BaseModel):
    to: int | None = Field(None, ge=0, description="Drop messages from this index on (a turn start, or the message "
                                                   "count); default the last turn.")
    expected_version: int | None = None


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def session_json(who: Caller, info: SessionInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": unscoped(who.tenant, info.id),
        "version": info.version,
        "message_count": info.message_count,
        "title": info.title,
        "tags": list(info.tags),
        "metadata": info.metadata,
        "model": info.model,
        "system": info.system,
        "created_at": _iso(info.created_at),
        "updated_at": _iso(info.updated_at),
        "expires_at": _iso(info.expires_at),
    }
    if who.tenant is None:
        data["owner"] = info.owner
    return data


async def _info(service: Service, who: Caller, session_id: str) -> SessionInfo:
    return await service.store.get_session(scoped(who.tenant, session_id))


@router.get("/sessions", responses=responses("sessions", not_found=False))
async def list_sessions(
    request: Request,
    tag: str | None = None,
    owner: str | None = Query(None, description="Only without authentication (with it, the tenant's own)."),
    metadata: Annotated[list[str] | None, Query(description="key=value; every pair must match.")] = None,
    updated_since: datetime | None = None,
    limit: int = Query(20, ge=1, le=1000),
    cursor: str | None = None,
    with_cost: bool = Query(False, description="Add each session's turns and cost (reads its usage records)."),
) -> dict[str, Any]:
    """The tenant's sessions, most recently updated first, filtered; ``next_cursor`` continues the list."""
    service, who = _service(request), await caller(request)
    pairs: dict[str, str] = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ApiError(400, f"metadata filter {item!r} must be key=value")
        pairs[key] = value
    if updated_since is not None and updated_since.tzinfo is None:
        raise ApiError(400, "updated_since needs a time zone, e.g. 2026-12-01T00:00:00Z")
    after = decode_sessions_cursor(who.tenant, cursor)
    found: list[SessionInfo] = []
    done = False
    while len(found) <= limit and not done:
        page = await service.store.list_sessions(
            owner=who.tenant if who.tenant is not None else owner, tag=tag, limit=_PAGE, after=after
        )
        done = len(page) < _PAGE
        for info in page:
            if updated_since is not None and info.updated_at < updated_since:
                done = True  # newest first: the rest are older
                break
            if unscoped(who.tenant, info.id) is None:
                continue
            if any(str(info.metadata.get(k)) != v for k, v in pairs.items()):
                continue
            found.append(info)
            if len(found) > limit:
                break
        if page:
            after = SessionCursor.after(page[-1])
    more = len(found) > limit
    shown = found[:limit]
    data = [session_json(who, info) for info in shown]
    if with_cost:
        for row in data:
            await _add_cost(service, who, row)
    return {"data": data, "has_more": more,
            "next_cursor": sessions_cursor(who.tenant, shown[-1]) if more else None}  # fmt: skip


async def _add_cost(service: Service, who: Caller, item: dict[str, Any]) -> None:
    """``turns`` (replies in the log) and ``cost_usd`` of a listed session, from its usage records."""
    try:
        records = await service.store.usage_log(scoped(who.tenant, item["id"]))
    except SessionNotFound:  # deleted while listing
        records = []
    totals = costs_json(records, service.prices)["totals"]
    item["turns"] = len(records)
    item["cost_usd"] = totals["cost_usd"]
    item["cost_complete"] = totals["cost_complete"]


@router.post("/sessions", status_code=201, responses=responses("session", status=201, conflict=True, not_found=False))
async def create_session(request: Request, body: SessionCreate) -> dict[str, Any]:
    """A new, empty session of the tenant; 409 if the id is taken."""
    service, who = _service(request), await caller(request)
    session_id = body.id or uuid.uuid4().hex
    store_id = scoped(who.tenant, session_id)
    await _refuse_taken(service, store_id, session_id)
    info = await service.store.update_session(
        store_id, title=body.title, tags=body.tags, metadata=body.metadata, model=body.model, system=body.system,
        owner=who.tenant if who.tenant is not None else UNSET, create=True,
    )  # fmt: skip
    return session_json(who, info)


@router.get("/sessions/{session_id}", responses=responses("session"))
async def get_session(request: Request, session_id: str) -> dict[str, Any]:
    service, who = _service(request), await caller(request)
    return session_json(who, await _info(service, who, session_id))


@router.patch("/sessions/{session_id}")
async def update_session(request: Request, session_id: str, body: SessionUpdate) -> dict[str, Any]:
    """Change the fields given (title, tags, metadata, model, system); the version does not change."""
    service, who = _service(request), await caller(request)
    await _info(service, who, session_id)
    changes = body.model_dump(exclude_unset=True)
    if "tags" in changes and changes["tags"] is None:
        changes["tags"] = []
    if "metadata" in changes and changes["metadata"] is None:
        changes["metadata"] = {}
    info = await service.store.update_session(scoped(who.tenant, session_id), **changes)
    return session_json(who, info)


@router.delete("/sessions/{session_id}", status_code=204)
async def delete_session(request: Request, session_id: str) -> Response:
    """Delete the session, its messages, summaries and search entries, without trace."""
    service, who = _service(request), await caller(request)
    if not await service.store.delete(scoped(who.tenant, session_id)):
        raise SessionNotFound(session_id)
    return Response(status_code=204)


@router.get("/sessions/{session_id}/messages", responses=responses("messages"))
async def messages(
    request: Request, session_id: str, limit: int = Query(100, ge=1, le=10_000), cursor: str | None = None
) -> dict[str, Any]:
    """The stored messages, oldest first, ``limit`` at a time (only those are read from the store);
    ``next_cursor`` continues."""
    service, who = _service(request), await caller(request)
    store_id = scoped(who.tenant, session_id)
    start = decode_messages_cursor(cursor)
    info = await service.store.get_session(store_id)
    rows = await service.store.load_messages(store_id, start=start, stop=start + limit + 1)
    items = [{"seq": m.seq, **m.message, "model": m.model, "usage": m.usage, "created_at": _iso(m.created_at)}
             for m in rows[:limit]]  # fmt: skip
    more = len(rows) > limit
    return {"data": items, "version": info.version, "has_more": more,
            "next_cursor": messages_cursor(start + limit) if more else None}  # fmt: skip


@router.post("/sessions/{session_id}/messages", responses=responses("reply", conflict=True))
async def send(request: Request, session_id: str, body: TurnRequest) -> Response:
    """Send a turn (the reply as JSON, or as the API's SSE stream with ``stream: true``); it is committed
    atomically. The session must exist (create it first)."""
    service, who = _service(request), await caller(request)
    info = await _info(service, who, session_id)
    request_body: dict[str, Any] = {
        "model": body.model or info.model or service.config.model,
        "max_tokens": body.max_tokens or service.config.max_tokens,
        "messages": [{"role": "user", "content": body.content}],
    }
    if body.system is not None:
        request_body["system"] = body.system
    if body.tools is not None:
        request_body["tools"] = body.tools
    chat = await open_chat(service, who, session_id, request_body, request)

    async def committed(chat: Any, message: Any) -> None:
        record(service, who.tenant, chat, message, "session")

    return await run_turn(service, chat, body.content, stream=body.stream, tenant=who.tenant, committed=committed)


async def _chat(request: Request, who: Caller, session_id: str) -> Any:
    service = _service(request)
    info = await _info(service, who, session_id)
    body = {"model": info.model or service.config.model, "max_tokens": service.config.max_tokens,
            "messages": [{"role": "user", "content": "-"}]}  # fmt: skip
    return await open_chat(service, who, session_id, body, request)


@router.post("/sessions/{session_id}/undo")
async def undo(request: Request, session_id: str) -> dict[str, Any]:
    """Remove the last turn; returns the removed messages and the new version (409 if it changed meanwhile)."""
    who = await caller(request)
    chat = await _chat(request, who, session_id)
    removed = await chat.undo()
    return {"removed": removed, "version": chat.version}


async def _check_cut(service: Service, store_id: str, info: SessionInfo, at: int | None, field: str) -> None:
    """A rewind or a fork keeps messages ``[0, at)``: ``at`` must be a turn start (``history.is_turn_start``,
    the rule the CLI's fork follows) or the end. Cut inside a turn, the session would end with an unanswered
    user message (every later turn a 400) or start a turn with tool results whose tool_use is gone."""
    if at is None or at == 0 or at >= info.message_count:
        return  # the default (the last turn, or all), nothing kept, or past the end (the store checks the range)
    message = (await service.store.load_messages(store_id, start=at, stop=at + 1))[0].message
    if not is_turn_start(message):
        what = "a user message of tool results" if message.get("role") == "user" else "an assistant message"
        raise ApiError(400, f"{field}: {at} would cut a turn in two (message {at} is {what}, inside a turn); "
                            "give the index of a user message that starts a turn, or the message count")  # fmt: skip


@router.post("/sessions/{session_id}/rewind")
async def rewind(request: Request, session_id: str, body: RewindRequest) -> dict[str, Any]:
    """Drop messages from index ``to`` on, a turn start (compare-and-swap with ``expected_version``)."""
    service, who = _service(request), await caller(request)
    store_id = scoped(who.tenant, session_id)
    info = await service.store.get_session(store_id)
    await _check_cut(service, store_id, info, body.to, "to")
    # The cut was checked on this version: a writer in between makes it a 409, not a cut somewhere else.
    expected = body.expected_version if body.expected_version is not None or body.to is None else info.version
    version = await service.store.rewind(store_id, to=body.to, expected_version=expected)
    return {"version": version}


@router.post("/sessions/{session_id}/fork", status_code=201)
async def fork(request: Request, session_id: str, body: ForkRequest) -> dict[str, Any]:
    """A new session of the tenant with messages ``[0, at)`` (``at`` a turn start) and the same metadata."""
    service, who = _service(request), await caller(request)
    info = await _info(service, who, session_id)
    await _check_cut(service, scoped(who.tenant, session_id), info, body.at, "at")
    new_id = body.id or uuid.uuid4().hex
    try:
        store_id = await service.store.fork(scoped(who.tenant, session_id), at=body.at,
                                            new_id=scoped(who.tenant, new_id))  # fmt: skip
    except ConflictError as exc:
        raise ApiError(409, f"session {new_id!r} already exists") from exc
    return session_json(who, await service.store.get_session(store_id))


@router.post("/sessions/{session_id}/repair", status_code=201)
async def repair(request: Request, session_id: str, body: RepairRequest | None = None) -> JSONBody:
    """A copy of the session that turns can follow (the CLI's ``sessions repair``; the session itself is kept as
    it is): empty messages dropped, same-role runs merged, tool calls without results closed, and a last turn
    that got no reply left out (its text in ``left_out``, to send again). For an imported history the API
    would reject, or one that ends with an unanswered message. 200 with the session itself if it needs none."""
    service, who = _service(request), await caller(request)
    data = await service.store.load(scoped(who.tenant, session_id))
    messages = data.message_params()
    problem = _problem(messages, session_id)
    if problem is None:
        return JSONBody({**session_json(who, data.info), "repaired": False, "left_out": []})
    fixed = continuable_copy(messages)
    new_id = body.id if body is not None and body.id else uuid.uuid4().hex
    store_id = scoped(who.tenant, new_id)
    await _refuse_taken(service, store_id, new_id)
    if fixed:  # version 0 expected: the copy is created by this append, or it is a 409
        try:
            await service.store.append(store_id, [Entry(m) for m in fixed], expected_version=0)
        except ConflictError as exc:
            raise ApiError(409, f"session {new_id!r} already exists") from exc
    info = data.info
    copied = await service.store.update_session(
        store_id, create=not fixed, title=info.title, tags=info.tags, metadata=info.metadata, model=info.model,
        system=info.system, owner=who.tenant if who.tenant is not None else UNSET,
    )
    return JSONBody(
        {**session_json(who, copied), "repaired": True, "repaired_from": session_id, "problem": problem,
         "left_out": left_out(messages, fixed)},
        status_code=201,
    )  # fmt: skip


@router.get("/sessions/{session_id}/context")
async def context(
    request: Request,
    session_id: str,
    content: str | None = None,
    detail: bool = Query(False, description=_DETAIL),
) -> dict[str, Any]:
    """What the next request would hold (tokens by part, cache, budget, estimated cost); no API call."""
    who = await caller(request)
    chat = await _chat(request, who, session_id)
    plan = chat.next_request(content)
    assert plan.report is not None
    report: dict[str, Any] = plan.report.to_dict()
    if detail:
        report["layout"] = request_layout(plan, len(chat.messages))
    return report


def _usage(usage: TokenUsage, cost: float, complete: bool) -> dict[str, Any]:
    return {"usage": usage.to_dict(), "cost_usd": cost, "cost_complete": complete}


@router.get("/sessions/{session_id}/usage", responses=responses("session_usage"))
async def session_usage(request: Request, session_id: str) -> dict[str, Any]:
    """Tokens by kind and cost of every committed reply of the session."""
    who = await caller(request)
    chat = await _chat(request, who, session_id)
    return _usage(chat.usage, chat.cost, chat.cost_complete)


@router.get("/usage", responses=responses("tenant_usage", not_found=False))
async def tenant_usage(request: Request) -> dict[str, Any]:
    """Totals of the tenant: its sessions and its pass-through requests (those without ``x-session-id``),
    also given apart under ``passthrough``. Read session by session: for dashboards, not per request."""
    service, who = _service(request), await caller(request)
    total, cost, complete, count = TokenUsage(), 0.0, True, 0
    passthrough, requests = Ledger(service.prices), 0
    after: SessionCursor | None = None
    while True:
        page = await service.store.list_sessions(owner=who.tenant, limit=_PAGE, after=after)
        for info in page:
            if is_usage_record(who.tenant, info):
                records = await service.store.usage_log(info.id)
                passthrough.add((r.model, r.usage) for r in records)
                requests += len(records)
                continue
            session_id = unscoped(who.tenant, info.id)
            if session_id is None:
                continue
            chat = await _chat(request, who, session_id)
            total, cost, complete = total + chat.usage, cost + chat.cost, complete and chat.cost_complete
            count += 1
        if len(page) < _PAGE:
            break
        after = SessionCursor.after(page[-1])
    sent = {**_usage(passthrough.usage, passthrough.cost, passthrough.cost_complete), "requests": requests}
    total, cost = total + passthrough.usage, cost + passthrough.cost
    return {**_usage(total, cost, complete and passthrough.cost_complete), "sessions": count, "passthrough": sent}


@router.get("/search", responses=responses("search", not_found=False))
async def search(request: Request, q: str = Query(..., min_length=1), limit: int = Query(20, ge=1, le=500),
                 session_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Messages holding every word of ``q``, in the tenant's sessions."""
    service, who = _service(request), await caller(request)
    hits = await service.store.search(
        q, owner=who.tenant, limit=limit,
        session_id=scoped(who.tenant, session_id) if session_id is not None else None,
    )  # fmt: skip
    data = [{"session_id": unscoped(who.tenant, h.session_id), "seq": h.seq, "role": h.role, "snippet": h.snippet}
            for h in hits if unscoped(who.tenant, h.session_id) is not None]  # fmt: skip
    return {"data": data}


@router.get("/sessions/{session_id}/export")
async def export(
    request: Request,
    session_id: str,
    format: Literal["jsonl", "markdown"] = Query("jsonl", description=_FORMAT),
) -> Response:
    """The session as JSON Lines (a header line, then one line per message): what import takes back; or as a
    Markdown document with ``format=markdown``."""
    service, who = _service(request), await caller(request)
    if format == "markdown":
        from ..cli.markdown_export import session_markdown

        data = await service.store.load(scoped(who.tenant, session_id))
        shown = replace(data, info=replace(data.info, id=session_id))
        # For reading: a lone surrogate (no UTF-8 form) is shown as "?", where the JSON Lines keep it escaped.
        return Response(session_markdown(shown).encode("utf-8", "replace"), media_type="text/markdown; charset=utf-8")
    text = await service.store.export_jsonl(scoped(who.tenant, session_id))
    lines = text.splitlines()
    if lines:
        header = json.loads(lines[0])
        header["id"] = session_id
        header.pop("owner", None)
        lines[0] = dumps(header)  # as the store wrote it: UTF-8, a lone surrogate in the title escaped

    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            yield (line + "\n").encode()

    return StreamingResponse(body(), media_type="application/x-ndjson")


@router.post("/sessions/import", status_code=201)
async def import_session(request: Request, id: str | None = None) -> JSONBody:
    """Import JSON Lines from export (or a JSON list of messages) as a session of the tenant; the id is
    ``id``, else the one in the header, else a new one. 409 if it is taken."""
    service, who = _service(request), await caller(request)
    raw = await request.body()
    if len(raw) > service.config.max_body_bytes:
        raise ApiError(413, "the import is larger than this service's body limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the import is not UTF-8 text (byte {exc.start} is not): send JSON Lines from export, "
                            "or a JSON list of messages") from None  # fmt: skip
    session_id = id
    if session_id is None:
        try:
            first = json.loads(text.lstrip().splitlines()[0]) if text.strip() else None
        except ValueError:
            first = None
        if isinstance(first, dict) and first.get("type") == "session" and isinstance(first.get("id"), str):
            session_id = first["id"]
    session_id = session_id or uuid.uuid4().hex
    store_id = scoped(who.tenant, session_id)
    await _refuse_taken(service, store_id, session_id)
    await service.store.import_jsonl(text, session_id=store_id)
    info = await service.store.update_session(store_id, owner=who.tenant if who.tenant is not None else UNSET)
    # Imported as it is (an archive is never rewritten behind the client's back); whether turns can follow it
    # is said now, not at the first turn's 400.
    problem = _problem((await service.store.load(store_id)).message_params(), session_id)
    return JSONBody({**session_json(who, info), "continuable": problem is None, "problem": problem},
                    status_code=201)  # fmt: skip


def _problem(messages: list[dict[str, Any]], session_id: str) -> str | None:
    """Why no turn can follow the session, with its repair (None when one can)."""
    problem = continuation_problem(messages)
    return None if problem is None else continuation_advice(problem, session_id)


async def _refuse_taken(service: Service, store_id: str, session_id: str) -> None:
    """Creating and importing only ever make a new session: a taken id is a 409."""
    try:
        await service.store.get_session(store_id)
    except SessionNotFound:
        return
    raise ApiError(409, f"session {session_id!r} already exists")
