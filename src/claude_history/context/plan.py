"""The seam between the chat front ends and the context policies.

``plan_request`` is pure: given the stored log, the messages of the turn in progress and the session's
settings, it returns exactly what to send. Chat and AsyncChat both call it; neither shapes a request itself.

What Chat does with a plan (sync and async alike)::

    plan = plan_request(log, pending, model=..., system=..., tools=..., policy=..., summaries=...,
                        usage_history=session.messages + pending_usage)
    if plan.summary_request is not None:           # Summarize: the window just moved
        try:
            reply = client.messages.create(**plan.summary_request.params)
            summary = plan.summary_request.to_summary(reply)
            store.save_summary(session_id, summary)
            plan = plan_request(..., summaries=[*summaries, summary])
        except Exception:                          # API error, empty reply: trim without a summary
            plan = plan.fallback
    kwargs = plan.request_kwargs()                 # messages, system, tools, context_management, ...
    create = client.beta.messages.create if plan.betas else client.messages.create
    reply = create(model=model, max_tokens=max_tokens, **kwargs, **user_kwargs)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..stores.base import Summary
from .engine import advance as _advance
from .engine import plan as _plan
from .planner import Planner
from .policies import KeepAll
from .report import ContextReport
from .summary import SummaryRequest

__all__ = ["KeepAll", "Planner", "RequestPlan", "context_report", "plan_request"]


@dataclass(frozen=True)
class RequestPlan:
    # The messages to send. The list is the plan's own; its message dicts and blocks are shared with the
    # planner (the same dicts in every request of the window, the blocks with the log): read them or send
    # them, and copy one before changing it.
    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None
    # Extra keyword arguments for messages.create (e.g. context_management and betas for ServerCompaction).
    extra: dict[str, Any] = field(default_factory=dict)
    # The tools to send (copies; the last one may carry a cache breakpoint). None when no tools were given.
    tools: list[dict[str, Any]] | None = None
    # Index in ``log + pending`` of the first message sent (a turn start).
    window_start: int = 0
    estimated_input_tokens: int = 0
    # Summarize only: ask for an updated summary first (see the module docstring); ``fallback`` is the plan to
    # use when that call fails (the same window without a new summary).
    summary_request: SummaryRequest | None = None
    fallback: RequestPlan | None = None
    # True when the estimate is close enough to the budget that an exact ``count_tokens`` is worth it; plan
    # again with ``measured_input_tokens=`` if the count exceeds ``report.budget``. The window that count
    # leads to is kept on the next turns (read back from the usage recorded for the request sent).
    check_count: bool = False
    cache_ttl: str | None = None
    breakpoints: tuple[int, ...] = ()
    report: ContextReport | None = None

    @property
    def betas(self) -> list[str]:
        return list(self.extra.get("betas", ()))

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``messages.create`` / ``messages.stream`` (``model`` and ``max_tokens``
        aside); with ``betas`` present they are for ``client.beta.messages``."""
        kwargs: dict[str, Any] = {"messages": self.messages}
        if self.system is not None:
            kwargs["system"] = self.system
        if self.tools is not None:
            kwargs["tools"] = self.tools
        kwargs.update(self.extra)
        return kwargs


def plan_request(
    log: Sequence[Mapping[str, Any]],
    pending: Sequence[Mapping[str, Any]],
    *,
    model: str,
    system: str | list[dict[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    policy: Any = None,
    summaries: Sequence[Summary] = (),
    usage_history: Sequence[Any] = (),
    cache: bool | str = True,
    measured_input_tokens: int | None = None,
    now: datetime | None = None,
    planner: Planner | None = None,
    lineage: object | None = None,
) -> RequestPlan:
    """What to send for the next call: ``log`` is the committed history, ``pending`` the uncommitted messages
    of the current turn (the new user message, then any tool exchanges).

    ``usage_history``: the ``StoredMessage`` objects of the session (``SessionData.messages``), or mappings
    ``{"seq", "usage", "created_at", "model"}``, where ``seq`` indexes ``log + pending``; they calibrate the
    token estimate, give the exact size of what was already sent, and the gaps between turns for the cache
    TTL. ``cache``: ``True`` (automatic breakpoints, TTL from the observed gaps), ``"5m"`` / ``"1h"`` (fixed
    TTL) or ``False`` (no automatic breakpoints; the caller's own markers are still sent). ``now`` (aware)
    tells whether the previous request's cache entries still live, for the TTL choice; without it they are
    taken as live. ``planner``: what was derived for this session at earlier calls (pass the same ``Planner``
    call after call for one session, as ``Chat`` does, and a request costs its new messages; without one the
    whole log is replayed). ``lineage``: with a planner, an object that stays the same while ``log`` only grows
    by appends, its messages and the usage records of the same positions never changed or replaced (``Chat``:
    the session state it loaded); what was passed under it before is then not looked at again.
    Raises ``InvalidHistory`` for a broken log and ``BudgetExceeded`` when the newest turn alone cannot fit.
    """
    common: dict[str, Any] = {
        "model": model,
        "system": system,
        "tools": tools,
        "policy": policy if policy is not None else KeepAll(),
        "summaries": summaries,
        "usage_history": usage_history,
        "cache": cache,
        "measured_input_tokens": measured_input_tokens,
        "now": now,
        "planner": planner,
        "lineage": lineage,
        "committed": len(log),
    }
    planned = _plan(log, pending, **common)  # (log + pending, read without a copy of the log)
    result = _as_plan(planned)
    if planned.summary_request is not None:
        # The view already holds no summary for the new window: it is the trimming fallback as it stands.
        result = replace(result, summary_request=planned.summary_request, fallback=result)
    return result


def settle(
    log: Sequence[Mapping[str, Any]],
    *,
    model: str,
    system: str | list[dict[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    policy: Any = None,
    summaries: Sequence[Summary] = (),
    usage_history: Sequence[Any] = (),
    planner: Planner,
    lineage: object | None = None,
    **_: Any,
) -> None:
    """After a commit: bring ``planner`` up to the end of ``log`` (the committed log, every reply with its
    usage) without planning a request, so that ``checkpoint.snapshot`` holds the newest request point. Takes
    ``plan_request``'s keywords (the ones that only shape the request are ignored)."""
    _advance(
        log,
        model=model,
        system=system,
        tools=tools,
        policy=policy if policy is not None else KeepAll(),
        summaries=summaries,
        usage_history=usage_history,
        planner=planner,
        lineage=lineage,
    )


def _as_plan(planned: Any) -> RequestPlan:
    return RequestPlan(
        messages=planned.messages,  # trimmed as a request carries them (history.sendable) by the view
        system=planned.system,
        extra=planned.extra,
        tools=planned.tools,
        window_start=planned.decision.window.cut,
        estimated_input_tokens=planned.decision.predicted,
        check_count=planned.check_count,
        cache_ttl=planned.ttl,
        breakpoints=planned.breakpoints,
        report=planned.report,
    )


def context_report(
    log: Sequence[Mapping[str, Any]],
    pending: Sequence[Mapping[str, Any]] = (),
    **settings: Any,
) -> ContextReport:
    """What the next request would hold (tokens of system, summary, kept turns; cached vs uncached; estimated
    input cost), for the same arguments as ``plan_request``. ``pending`` is usually the next user message."""
    plan = plan_request(log, pending, **settings)
    assert plan.report is not None
    return plan.report
