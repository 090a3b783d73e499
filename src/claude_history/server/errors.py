"""Errors in the Messages API's own shape, ``{"type": "error", "error": {"type": ..., "message": ...}}``, so an
unmodified SDK raises its usual exception classes (404 ``NotFoundError``, 409 ``ConflictError``, ...)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BudgetExceeded,
    ConfigurationError,
    ConflictError,
    DecryptionError,
    HistoryError,
    InvalidHistory,
    SessionNotContinuable,
    SessionNotFound,
    StoreUnavailable,
    ToolResultsMissing,
    TurnInProgress,
)
from .responses import JSONBody

__all__ = [
    "ApiError", "continuation_advice", "error_body", "error_response", "http_advice", "install_error_handlers",
    "repair_endpoint", "sse_error",
]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}

# A 409 or 404 from this service is an answer, not a transient fault: the SDK would otherwise retry it.
_NO_RETRY = {"x-should-retry": "false"}


class ApiError(Exception):
    """Raised by a route: becomes an error response in the API's shape."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _TYPES.get(status, "api_error"), "message": message}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONBody:
    merged = {**(_NO_RETRY if status in (400, 404, 409, 413) else {}), **(headers or {})}
    return JSONBody(error_body(status, message), status_code=status, headers=merged)


def sse_error(status: int, message: str) -> bytes:
    """An ``error`` event, as the API sends one in a stream that fails after it started."""
    return f"event: error\ndata: {json.dumps(error_body(status, message))}\n\n".encode()


def repair_endpoint(session_id: str | None) -> str:
    return f"POST /v1/sessions/{session_id if session_id is not None else '{id}'}/repair"


def http_advice(text: str, session_id: str | None) -> str:
    """``text`` (a library error) with its advice to call ``claude_history.repair()``, a Python function an HTTP
    client cannot reach, turned into the endpoint that writes a repaired copy of the session."""
    endpoint = repair_endpoint(session_id)
    text = text.replace("call claude_history.repair()", f"repair the session ({endpoint} writes a copy that can go on)")
    return text.replace("claude_history.repair()", endpoint)


def continuation_advice(problem: str, session_id: str | None) -> str:
    """Why no turn can follow a session (``history.continuation_problem``), and the endpoint of the copy that can."""
    advice = http_advice(problem, session_id)
    if "/repair" not in advice:
        advice += f"; {repair_endpoint(session_id)} writes a copy that can go on (this session is kept as it is)"
    return advice


def status_of(exc: BaseException, session_id: str | None = None) -> tuple[int, str]:
    """The HTTP status and message for one of our own errors (or an upstream connection failure);
    ``session_id``, the client's, names the session in advice."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, SessionNotFound):
        return 404, f"no session {exc.session_id!r}"
    if isinstance(exc, TurnInProgress):
        return 409, (
            "another request is running a turn on this session; nothing of this request was sent or stored. "
            "Send again when it has finished."
        )
    if isinstance(exc, ConflictError):
        return 409, (
            "the session changed while this request ran (another request committed first); nothing of this "
            "request was stored. Reload the session and send again."
        )
    if isinstance(exc, ToolResultsMissing):  # the library's own advice names Python calls
        ids = ", ".join(exc.tool_use_ids)
        return 400, (
            f"the session is waiting for tool results for {ids}: send a user message whose content holds one "
            "tool_result block for each ({\"type\": \"tool_result\", \"tool_use_id\": ..., \"content\": ...}), "
            "or undo the last turn"
        )
    if isinstance(exc, SessionNotContinuable):  # the stored log is the cause, not the request
        name = repr(session_id) if session_id is not None else "this session"
        return 400, f"session {name} cannot be continued: {continuation_advice(exc.problem, session_id)}"
    if isinstance(exc, InvalidHistory):
        return 400, http_advice(str(exc), session_id)
    if isinstance(exc, (ConfigurationError, BudgetExceeded)):
        return 400, str(exc)
    if isinstance(exc, StoreUnavailable):
        return 503, f"the session store is unavailable: {exc}"
    if isinstance(exc, DecryptionError):
        return 500, "stored content could not be decrypted (wrong key on the server)"
    if isinstance(exc, anthropic.APIConnectionError):
        return 502, "the upstream Messages API could not be reached"
    return 500, "internal error"


def upstream_response(exc: anthropic.APIStatusError) -> Response:
    """The upstream's own error, status and body unchanged."""
    headers = {k: v for k, v in exc.response.headers.items() if k.lower() in ("retry-after", "request-id")}
    return Response(exc.response.content, status_code=exc.status_code, headers=headers,
                    media_type="application/json")  # fmt: skip


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        session_id = request.path_params.get("session_id") or request.headers.get("x-session-id")
        status, message = status_of(exc, session_id)
        return error_response(status, message, getattr(exc, "headers", None))

    async def upstream(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, anthropic.APIStatusError)
        return upstream_response(exc)

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(400, f"{where}: {first.get('msg', 'invalid request')}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HistoryError, api_error)
    app.add_exception_handler(anthropic.APIConnectionError, api_error)
    app.add_exception_handler(anthropic.APIStatusError, upstream)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(RequestValidationError, validation)
