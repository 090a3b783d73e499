"""Pieces every simulator module shares: the API error, canonical JSON, content normalisation."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = [
    "ERROR_TYPES",
    "ApiError",
    "canonical",
    "canonical_block",
    "digest",
    "error_type_for",
    "normalise_content",
]

# Error type per HTTP status, as the API words them (claude-api-facts.md, "Request shape").
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


class ApiError(Exception):
    """An error the simulator answers with ``{"type": "error", "error": {...}}`` and an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or error_type_for(status)
        self.headers = dict(headers or {})  # e.g. retry-after on a 429
        self.details = details  # ``error.details`` (``error_code``: the SDK picks its exception class by it)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"type": "error", "error": error}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def canonical(value: Any) -> str:
    """Canonical JSON: the identity of a prefix, independent of key order and whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


def normalise_content(content: Any) -> list[Any]:
    """A message's content as a list of blocks: a string is shorthand for one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def canonical_block(value: Any) -> Any:
    """``value`` as the API sees it: without ``cache_control`` (markers move between turns, the content they
    mark does not) and without null fields (the SDK's ``model_dump`` writes ``"citations": null``; absent
    means the same).
    """
    if isinstance(value, dict):
        return {k: canonical_block(v) for k, v in value.items() if k != "cache_control" and v is not None}
    if isinstance(value, list):
        return [canonical_block(v) for v in value]
    return value
