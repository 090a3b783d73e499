"""The seam between the chat front ends and the context policies.

``plan_request`` is pure: given the stored log, the messages of the turn in progress and the session's settings,
it returns exactly what to send. Chat and AsyncChat both call it; neither shapes a request itself.
(Initial version: KeepAll without cache breakpoints. The context package grows policies and caching behind this
same signature.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeepAll:
    """Send the whole log every time (with prompt caching, this is already cheap)."""


@dataclass(frozen=True)
class RequestPlan:
    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None
    # Extra keyword arguments for messages.create (e.g. top-level cache_control, context_management, betas).
    extra: dict[str, Any] = field(default_factory=dict)


def plan_request(
    log: Sequence[Mapping[str, Any]],
    pending: Sequence[Mapping[str, Any]],
    *,
    model: str,
    system: str | list[dict[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    policy: Any = None,
    summaries: Sequence[Any] = (),
    usage_history: Sequence[Mapping[str, Any]] = (),
    cache: bool = True,
) -> RequestPlan:
    """What to send for the next call: ``log`` is the committed history, ``pending`` the uncommitted messages of
    the current turn (the new user message, then any tool exchanges)."""
    return RequestPlan(messages=[dict(m) for m in (*log, *pending)], system=system)
