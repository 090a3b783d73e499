"""Faults on demand: an HTTP error instead of the answer, or a stream that breaks after its 200.

Sources:
* Errors, platform.claude.com/docs/en/api/errors: the error body ``{"type": "error", "error": {"type": ...,
  "message": ...}}`` per status (529 ``overloaded_error``: "The API is temporarily overloaded"); "When
  receiving a streaming response over SSE, it's possible that an error can occur after returning a 200
  response, in which case error handling wouldn't follow these standard mechanisms."
* Streaming messages, platform.claude.com/docs/en/build-with-claude/streaming, "Error events": "We may
  occasionally send errors in the event stream. For example, during periods of high usage, you may receive an
  ``overloaded_error``, which would normally correspond to an HTTP 529 in a non-streaming context", shown as
  ``event: error`` / ``data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}``.
  The SDK raises an ``APIStatusError`` carrying that body when it reads the event (anthropic/_streaming.py).
* ``x-should-retry``: the SDK obeys it before looking at the status (anthropic/_base_client.py,
  ``_should_retry``: "If the server explicitly says whether or not to retry, obey"); the API sends
  ``x-should-retry: true`` with its retryable errors (529 overloaded, 429, 5xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import ApiError, error_type_for

__all__ = ["Fault", "StreamFault", "broken_stream", "fault_error", "retryable"]

# The API's own words for the errors it is best known for; anything else gets a neutral text.
_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "rate_limit_error": "Rate limited. Please try again later.",
    "timeout_error": "Request timed out",
}


@dataclass(frozen=True)
class Fault:
    """``Simulator.fail_next``: answer a request with this HTTP error."""

    status: int
    error_type: str
    retry_after: float | None = None
    should_retry: bool | None = None  # x-should-retry; None: "true" for the statuses the API retries itself


@dataclass(frozen=True)
class StreamFault:
    """``cut_next_stream`` (``error_type`` None: drop the connection) or ``fail_mid_stream`` (send the
    documented ``event: error`` and end the stream) after ``after_events`` events of the next streamed reply."""

    after_events: int
    error_type: str | None = None


def retryable(status: int) -> bool:
    """The statuses the SDKs retry by themselves (408, 409, 429, 5xx)."""
    return status in (408, 409, 429) or status >= 500


def fault_message(error_type: str, status: int) -> str:
    return _MESSAGES.get(error_type, f"Simulated {error_type} (HTTP {status}).")


def fault_error(fault: Fault) -> ApiError:
    """The API error a fault answers with, with its ``retry-after`` and ``x-should-retry`` headers."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = f"{fault.retry_after:g}"
    should_retry = retryable(fault.status) if fault.should_retry is None else fault.should_retry
    if should_retry or fault.should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return ApiError(fault.status, fault_message(fault.error_type, fault.status), fault.error_type, headers=headers)


def broken_stream(events: list[dict[str, Any]], fault: StreamFault | None) -> tuple[list[dict[str, Any]], int | None]:
    """The events to send and where to drop the connection (``None``: end the stream normally)."""
    if fault is None:
        return events, None
    if fault.error_type is None:
        return events, fault.after_events
    status = next((s for s in (529, 500, 429, 408, 400) if error_type_for(s) == fault.error_type), 500)
    error = {"type": "error", "error": {"type": fault.error_type, "message": fault_message(fault.error_type, status)}}
    return [*events[: fault.after_events], error], None
