"""A chat endpoint in FastAPI: the guides' web-app pattern (a handler per request) with claude-history.

Each request builds a fresh ``AsyncChat`` on one shared store and sends one turn: the store holds the session, so
any worker of any server can answer any request, and a turn is committed whole or not at all. The library's
errors become HTTP statuses (docs/webapp.md): above all a ``ConflictError`` (another request for the same session
committed first) is a 409 the client can act on, not an unhandled 500 (after which uvicorn drops the keep-alive
connection).

Run (needs the server extra: pip install 'claude-history[server]'):
    CHAT_STORE=sqlite:///chats.db ANTHROPIC_API_KEY=... python examples/webapp.py --port 8000
    curl -s localhost:8000/chat/alice -H 'content-type: application/json' -d '{"message": "Hello"}'
    curl -s localhost:8000/chat/alice
"""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from claude_history import AsyncChat, WarmSessions, open_async_store
from claude_history.errors import (
    BudgetExceeded,
    ConflictError,
    HistoryError,
    InvalidHistory,
    SessionNotFound,
    StoreUnavailable,
)

MODEL = os.environ.get("CHAT_MODEL", "claude-sonnet-4-6")
SYSTEM = "You are a helpful assistant. Answer briefly."


class Turn(BaseModel):
    message: str = Field(min_length=1, max_length=100_000)


def create_app(store_url: str | None = None, client: anthropic.AsyncAnthropic | None = None) -> FastAPI:
    """The app, over the store at ``store_url`` (default ``$CHAT_STORE``, else ``sqlite:///chats.db``) and the
    Messages API ``client`` (default ``anthropic.AsyncAnthropic()``, configured from the environment)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One store (a connection pool) and one API client for the whole process, shared by every request.
        app.state.store = open_async_store(store_url or os.environ.get("CHAT_STORE", "sqlite:///chats.db"))
        app.state.client = client or anthropic.AsyncAnthropic()
        # What each request's chat knew about its session, for the next request on it (checked against the
        # session's version before use): that request reads one row instead of the messages, plans only the new.
        # CHAT_WARM_SESSIONS=0 turns it off.
        app.state.warm = WarmSessions(sessions=int(os.environ.get("CHAT_WARM_SESSIONS", "512")))
        # Everything alive now lives as long as the process (modules, FastAPI's routes, the SDK's types: some
        # 200,000 objects). Frozen, a full garbage collection (which runs on the event loop and holds up every
        # request in flight) no longer scans them, only what requests made since: on a long session most of
        # the collector's time per request (docs/webapp.md). Skipped when something else in the process froze
        # its heap already.
        if not gc.get_freeze_count():
            gc.collect()
            gc.freeze()
        yield
        await app.state.store.aclose()
        if client is None:
            await app.state.client.close()

    app = FastAPI(title="chat", lifespan=lifespan)

    @app.post("/chat/{session_id}")
    async def send(session_id: str, turn: Turn, request: Request) -> dict[str, Any]:
        chat = AsyncChat(
            request.app.state.client,
            model=MODEL,
            store=request.app.state.store,
            session_id=session_id,
            system=SYSTEM,
            max_tokens=1024,
            warm=request.app.state.warm,
        )
        reply = await chat.send(turn.message)
        text = "".join(block.text for block in reply.content if block.type == "text")
        return {"reply": text, "version": chat.version, "stop_reason": reply.stop_reason}

    @app.get("/chat/{session_id}")
    async def history(session_id: str, request: Request) -> dict[str, Any]:
        data = await request.app.state.store.load(session_id)  # SessionNotFound becomes a 404 below
        return {"version": data.version, "messages": data.message_params()}

    install_error_handlers(app)
    return app


def error_status(exc: Exception) -> tuple[int, str, dict[str, str]]:
    """The HTTP status, message and headers for an error a turn can raise. A conflict, a missing session and a
    bad request are answers, not failures of the server; an unavailable store or API is a 503 / 502 to retry."""
    if isinstance(exc, ConflictError):
        return (
            409,
            (
                "another request for this session was committed first; nothing of this one was stored. "
                "Load the session and send again."
            ),
            {},
        )
    if isinstance(exc, SessionNotFound):
        return 404, str(exc), {}
    if isinstance(exc, (InvalidHistory, BudgetExceeded)):
        return 400, str(exc), {}
    if isinstance(exc, StoreUnavailable):
        return 503, "the chat store is unavailable; try again shortly", {"retry-after": "1"}
    if isinstance(exc, anthropic.RateLimitError):
        retry = exc.response.headers.get("retry-after")
        return 429, "the Messages API is rate limiting; try again later", {"retry-after": retry} if retry else {}
    if isinstance(exc, anthropic.BadRequestError):
        return 400, exc.message, {}
    if isinstance(exc, (anthropic.APIStatusError, anthropic.APIConnectionError)):
        return 502, "the Messages API failed or could not be reached; nothing was stored", {}
    return 500, "internal error", {}  # a HistoryError not listed above (e.g. ConfigurationError): our own bug


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        status, message, headers = error_status(exc)
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    app.add_exception_handler(HistoryError, handle)
    app.add_exception_handler(anthropic.APIError, handle)


app = create_app()  # for `uvicorn examples.webapp:app`; the store opens when the server starts

if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description="A chat endpoint over claude-history.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
