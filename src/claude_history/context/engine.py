"""The planner behind ``plan_request`` (pure): from the stored log, the turn in progress and the session's
settings to exactly what to send.

The steps, each in a module of its own:

- ``policy_spec``: the policy reduced to what is enforced (budgets, turn limit, images, summaries, compaction);
- ``log_index``: per-message sizes of the session's log as prefix sums, extended as the log grows;
- ``replay``: the decisions of every earlier request re-made from the log, and the ``Window`` of this one
  (see its docstring for why a replay, and ``window`` for what a window is);
- ``view``: the messages that window sends; ``anchors``: what the cache holds for the TTL choice;
- ``request``: the request itself, with its cache breakpoints, and the ``ContextReport``.

A full replay costs O(points x log n). A ``Planner`` (``planner``; a Chat owns one) keeps what was derived for
a session (message sizes, the replay's state after each point, the usage history as parsed, the view of each
window), matched by identity (the same messages, the same usage records: a chat passes them again each turn),
so a request costs its new messages (the view's message dicts are shared by its requests). Anything that
changed (a rewind, a fork, an edited message, other usage or summaries) drops what depended on it, so the
result is the same as planning from scratch. Blocks and usage mappings are taken as never changed in place.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..errors import InvalidHistory, SessionNotContinuable
from ..history import continuation_problem, validate_from
from ..stores.base import Summary
from ..tokens import TokenEstimate, bound_system, bound_tools, estimate_system, estimate_tools
from .log_index import LogIndex
from .planner import Planner
from .policy_spec import PolicySpec, policy_spec
from .replay import Decision, Replay
from .request import Planned, build
from .sequences import Joined
from .usage_index import UsagePoint, usage_points

__all__ = ["Decision", "Planned", "UsagePoint", "advance", "plan", "usage_points"]


def plan(
    committed_log: Sequence[Mapping[str, Any]],
    pending: Sequence[Mapping[str, Any]],
    *,
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    policy: Any,
    summaries: Sequence[Summary],
    usage_history: Sequence[Any],
    cache: bool | str,
    measured_input_tokens: int | None = None,
    now: datetime | None = None,
    planner: Planner | None = None,
    lineage: object | None = None,
    committed: int = 0,
) -> Planned:
    """The request for the newest point of ``committed_log + pending`` (``committed``: the length of
    ``committed_log``); see ``plan.plan_request``.

    The two are read as one (``Joined``) and never concatenated: the log index follows them (O(new) under a
    lineage) and from then on holds the very same messages as a list of its own, which the replay and the
    request builder read as ``full``. So a turn copies nothing of the length of the session."""
    spec, full, replay, decision, sizes = _decide(
        committed_log, pending, model, system, tools, policy, summaries, usage_history, measured_input_tokens,
        planner, lineage, committed,
    )  # fmt: skip
    return build(full, spec, replay, decision, model, system, tools, sizes, cache, now)


def advance(
    committed_log: Sequence[Mapping[str, Any]],
    *,
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    policy: Any,
    summaries: Sequence[Summary],
    usage_history: Sequence[Any],
    planner: Planner,
    lineage: object | None = None,
) -> None:
    """Bring ``planner``'s replay up to the end of ``committed_log``, whose replies all carry their usage,
    without building a request: its newest request point then has a checkpoint too (what
    ``checkpoint.snapshot`` keeps for the next fresh chat)."""
    _decide(
        committed_log, (), model, system, tools, policy, summaries, usage_history, None, planner, lineage,
        len(committed_log),
    )  # fmt: skip


def _decide(
    committed_log: Sequence[Mapping[str, Any]],
    pending: Sequence[Mapping[str, Any]],
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    policy: Any,
    summaries: Sequence[Summary],
    usage_history: Sequence[Any],
    measured_input_tokens: int | None,
    planner: Planner | None,
    lineage: object | None,
    committed: int,
) -> tuple[PolicySpec, Sequence[Mapping[str, Any]], Replay, Decision, tuple[TokenEstimate, TokenEstimate]]:
    """The replay's decision for the newest point, with what ``build`` needs besides."""
    spec = policy_spec(policy)
    if not committed_log and not pending:
        raise InvalidHistory("messages: nothing to send; a request needs at least one user message", index=None)
    sizes = (estimate_system(system, model), estimate_tools(tools, model))
    const = sizes[0] + sizes[1]
    placeholder = spec.images.placeholder if spec.images else ""
    planner = planner if planner is not None else Planner()
    with planner.lock:
        trusted = planner.follow(lineage, committed)
        log = planner.log_for(Joined(committed_log, pending), model, placeholder, trusted)
        full = log.messages  # the messages of committed_log + pending, the same objects (LogIndex.extend)
        const_bound = bound_system(system, model) + bound_tools(tools)
        replay = Replay(full, log, spec, model, const, summaries, measured_input_tokens, const_bound)
        try:
            _validate(full, log)
        except InvalidHistory as exc:
            # The stored part itself may be the cause (an import, an append of the caller's own): said so, as
            # the new message is not at fault and every turn on the session would fail the same way.
            problem = continuation_problem(committed_log) if pending else None
            if problem is None:
                raise
            raise SessionNotContinuable(
                f"the stored session cannot take a turn: {problem} (history.continuable_copy gives a copy that "
                "can; docs/chat.md, 'What is stored')",
                index=exc.index,
                problem=problem,
            ) from exc
        key = (spec.name, const.text, const.fixed)
        planner.last = ((model, placeholder), key, spec.summarize is not None, spec.whole_checkpoint)
        decision = replay.run(key, usage_history, trusted)
        return spec, full, replay, decision, sizes


def _validate(full: Sequence[Mapping[str, Any]], log: LogIndex) -> None:
    """The log as a whole must be valid; what was validated before is not checked again (``validate_from``
    from the last turn start of the known-good part; the index's turn starts find it without reading back)."""
    k = bisect.bisect_right(log.starts, log.validated) - 1
    start = log.starts[k] if k >= 0 and log.validated > 0 else 0
    validate_from(full, start, for_sending=full[-1].get("role") == "user", prepare=_unmarked)
    log.validated = len(full)


def _unmarked(messages: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """``messages`` without the caller's cache_control markers: a log may hold any number of them (each
    request keeps the newest that fit the API's 4), so ``validate``'s limit is for requests, not logs; and a
    whole-log rule would not hold for the part validated since the previous call."""
    out: list[Mapping[str, Any]] | None = None
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and "cache_control" in b for b in content):
            if out is None:
                out = list(messages)
            stripped = [
                {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b for b in content
            ]
            out[i] = {**message, "content": stripped}
    return messages if out is None else out
