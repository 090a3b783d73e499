"""Building the request from the replay's decision: the window's view (its messages shared, the few marked
ones copied), the summary and system
blocks, the caller's own cache markers kept within the API's four, automatic breakpoints and their TTL, the
server-compaction settings, and the ``ContextReport`` of what is sent."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import BudgetExceeded, ConfigurationError
from ..models import model_info
from ..tokens import TokenEstimate, estimate_system
from .anchors import cache_state
from .cache import GAP_WINDOW, LOOKBACK, Candidate, apply_breakpoints, choose_ttl, count_markers, marker_ttl
from .policy_spec import PolicySpec
from .replay import Decision, Replay, worth_counting
from .report import ContextReport
from .summary import SummaryRequest, build_summary_request, summary_block
from .view import view_for
from .window import Window

__all__ = ["Planned", "build"]

DEFAULT_MIN_CACHEABLE = 1_024
COMPACTION_BETA = "compact-2026-01-12"


def _system_blocks(system: str | Sequence[Mapping[str, Any]] | None) -> tuple[list[dict[str, Any]], bool]:
    """System as a list of block copies, and whether it was a plain string."""
    if system is None or system == "":
        return [], False
    if isinstance(system, str):
        return [{"type": "text", "text": system}], True
    return [dict(b) for b in system], False


def _prices(model: str) -> tuple[float, float, float, float] | None:
    try:
        from ..pricing import load_prices
    except ImportError:  # pragma: no cover - pricing ships with the package
        return None
    price = load_prices().price_for(model)
    if price is None:
        return None
    return (
        float(price.input),
        float(price.cache_write_5m),
        float(price.cache_write_1h),
        float(price.cache_read),
    )


def _cost(model: str, usage: dict[str, Any]) -> float | None:
    try:
        from ..pricing import cost_of, load_prices
    except ImportError:  # pragma: no cover
        return None
    if load_prices().price_for(model) is None:  # unpriced: no estimate (and none of cost_of's warning)
        return None
    return cost_of(usage, model)


class _Blocks:
    """The request's blocks by position in prefix order: tools and system blocks (copies already), then the
    view's message blocks. A message block is copied before it is changed (blocks are shared with the log),
    and so is its message (the view's message dicts are shared by every request of the window); a string
    message stands as one text block, sent as a block only when it gets a marker."""

    def __init__(self, head: list[dict[str, Any]], view: list[dict[str, Any]], offsets: list[int]) -> None:
        self.head = head
        self.view = view
        self.offsets = offsets
        self.strings: dict[int, dict[str, Any]] = {}  # view message -> its text block, once looked at
        self.owned: set[int] = set()
        self.copied: set[int] = set()  # view messages this request holds a copy of

    def message(self, m_index: int) -> dict[str, Any]:
        """View message ``m_index`` as this request's own copy (its content list copied too), made once."""
        message = self.view[m_index]
        if m_index not in self.copied:
            self.copied.add(m_index)
            content = message["content"]
            message = self.view[m_index] = {
                "role": message["role"],
                "content": content if isinstance(content, str) else list(content),
            }
        return message

    def __len__(self) -> int:
        return len(self.head) + self.offsets[-1]

    def _locate(self, position: int) -> tuple[int, int]:
        rel = position - len(self.head)
        m_index = bisect.bisect_right(self.offsets, rel) - 1
        return m_index, rel - self.offsets[m_index]

    def __getitem__(self, position: int) -> dict[str, Any]:
        if position < len(self.head):
            return self.head[position]
        m_index, j = self._locate(position)
        content = self.view[m_index]["content"]
        if isinstance(content, str):
            block = self.strings.get(m_index)
            if block is None:
                block = self.strings[m_index] = {"type": "text", "text": content}
            return block
        block = content[j]
        assert isinstance(block, dict)
        return block

    def own(self, position: int) -> dict[str, Any]:
        """The block at ``position``, copied first if it is shared with the log."""
        if position < len(self.head) or position in self.owned:
            return self[position]
        self.owned.add(position)
        m_index, j = self._locate(position)
        block = dict(self[position])
        content = self.message(m_index)["content"]
        if isinstance(content, str):
            self.strings[m_index] = block
        else:
            content[j] = block
        return block


@dataclass
class Planned:
    """Everything plan_request turns into a RequestPlan."""

    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None
    tools: list[dict[str, Any]] | None
    extra: dict[str, Any]
    decision: Decision
    report: ContextReport
    summary_request: SummaryRequest | None
    breakpoints: tuple[int, ...]
    ttl: str | None
    check_count: bool


def build(
    full: Sequence[Mapping[str, Any]],
    spec: PolicySpec,
    replay: Replay,
    decision: Decision,
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    sizes: tuple[TokenEstimate, TokenEstimate],
    cache: bool | str,
    now: datetime | None,
) -> Planned:
    """The request for ``decision``. ``sizes``: the estimates of ``system`` and ``tools``, made once by
    ``plan``."""
    const = replay.const
    starts = replay.starts
    k_newest = bisect.bisect_right(starts, len(full) - 1) - 1
    newest_turn = starts[k_newest] if k_newest >= 0 else 0

    if decision.limit is not None:
        last = len(full) - 1
        newest_alone = Window(newest_turn, newest_turn, decision.window.image_boundary, replay.compaction_start(last))
        alone = replay.raw_view(newest_alone, last).tokens(decision.calibration.ratio)
        raise BudgetExceeded(
            f"the newest turn alone needs about {alone:,} input tokens (system and tools included), more "
            f"than the budget of {decision.limit:,}: shorten the message, the system prompt or the tools, "
            "or raise the budget",
            needed=max(alone, decision.predicted),
            budget=decision.limit,
        )

    # The view: the window's cached transform of the log, extended by the new messages. Its message dicts are
    # sent as they are (the list is this request's); the few a breakpoint changes are copied (``_Blocks``).
    shaped = view_for(full, replay.log, decision.window, spec.compaction is None)
    view = list(shaped.messages)

    sys_blocks, sys_was_str = _system_blocks(system)
    static_count = len(sys_blocks)
    summary_request: SummaryRequest | None = None
    summary = None
    if spec.summarize is not None and decision.window.cut > (starts[0] if starts else 0):
        summary = replay.summary_for(decision.window.cut)
        if summary is None and decision.cut_moved:
            s = spec.summarize
            summary_request = build_summary_request(
                full,
                decision.window.cut,
                replay.summaries,
                model=s.model,
                prompt=s.prompt,
                max_tokens=s.max_summary_tokens,
                max_transcript_chars=s.max_transcript_chars,
            )
        if summary is not None:
            sys_blocks.append(summary_block(summary))

    tool_list = [dict(t) for t in tools] if tools else []
    ratio = decision.calibration.ratio
    summary_size = estimate_system(sys_blocks[static_count:] or None, model)
    system_tokens = sizes[0].tokens(ratio)
    summary_tokens = summary_size.tokens(ratio)
    tools_tokens = sizes[1].tokens(ratio)

    # The request's blocks in prefix order (tools -> system -> messages), by position.
    flat = _Blocks([*tool_list, *sys_blocks], view, shaped.offsets)
    head = len(flat.head)

    # The caller's own markers: their blocks are copied (blocks are shared with the log).
    marked = [i for i in range(head) if marker_ttl(flat.head[i]) is not None]
    for m_index in shaped.marked:
        content = view[m_index]["content"]
        base = head + shaped.offsets[m_index]
        marked.extend(base + j for j, block in enumerate(content) if marker_ttl(block) is not None)
    for position in marked:
        flat.own(position)

    # Too many markers of the caller's own: keep tools and system ones, then the newest message ones.
    user_markers = len(marked)
    if user_markers > 4:
        fixed = count_markers(tool_list) + count_markers(sys_blocks)
        if fixed > 4:
            raise ConfigurationError(
                f"tools and system carry {fixed} cache_control markers; the API allows at most 4 per request"
            )
        excess = user_markers - 4
        for position in marked:
            if excess and position >= head:
                del flat[position]["cache_control"]
                excess -= 1

    info = model_info(model)
    min_tokens = info.min_cacheable_tokens if info is not None else DEFAULT_MIN_CACHEABLE
    ttl: str | None = None
    chosen: list[Candidate] = []
    prefix_before_messages = (const + summary_size).tokens(ratio)
    if cache:
        last = len(view) - 1

        def prefix_at(m_index: int) -> int:
            """Prefix tokens at the end of view message ``m_index``."""
            tokens = prefix_before_messages + shaped.running(m_index, replay.log).tokens(ratio)
            return max(tokens, decision.predicted) if m_index == last else tokens

        def end_of(m_index: int) -> int:
            j = shaped.ends[m_index]
            return head + shaped.offsets[m_index] + j if j >= 0 else -1

        candidates: list[Candidate] = []
        newest_pos = end_of(last) if view else -1
        if newest_pos >= 0:
            candidates.append(Candidate(newest_pos, prefix_at(last), 0, "newest message"))
        prev = decision.previous
        if prev is not None:
            m_prev = bisect.bisect_left(shaped.origins, prev.point)
            if m_prev < len(view) and end_of(m_prev) >= 0 and newest_pos - end_of(m_prev) >= LOOKBACK:
                candidates.append(Candidate(end_of(m_prev), prefix_at(m_prev), 1, "previous request"))
        if static_count:
            candidates.append(Candidate(len(tool_list) + static_count - 1, (const.tokens(ratio)), 2, "system prompt"))
        elif tool_list:
            candidates.append(Candidate(len(tool_list) - 1, tools_tokens, 2, "tools"))
        if len(sys_blocks) > static_count:
            candidates.append(Candidate(len(tool_list) + len(sys_blocks) - 1, prefix_before_messages, 3, "summary"))
        if len(view) > 1 and end_of(0) >= 0 and decision.window.cut > (starts[0] if starts else 0):
            candidates.append(Candidate(end_of(0), prefix_at(0), 4, "window start"))
        if isinstance(cache, str) and cache in ("5m", "1h"):
            ttl = cache
        else:
            prices = _prices(model)
            gaps = replay.replays.usage.recent_gaps(starts, GAP_WINDOW)
            state = cache_state(replay, decision, full, prefix_before_messages, gaps, now)
            _, w5, w1, rd = prices if prices is not None else (0.0, 1.25, 2.0, 0.1)
            ttl = choose_ttl(
                gaps,
                prefix_tokens=decision.predicted,
                new_tokens=state.writes,
                anchored=state.held_next,
                write_5m=w5,
                write_1h=w1,
                read=rd,
            )
            if state.anchor is not None and state.held_now:
                # A lookup walks back at most 20 blocks from a breakpoint: a 1-hour entry further back than
                # that from every other marker is found only if a marker sits on it.
                m_anchor = bisect.bisect_left(shaped.origins, state.anchor)
                near = [c.position for c in candidates if c.priority <= 1]
                pos = end_of(m_anchor) if m_anchor < len(view) else -1
                if pos >= 0 and all(p < pos or p - pos >= LOOKBACK for p in near):
                    candidates.append(Candidate(pos, prefix_at(m_anchor), 1, "1-hour entry"))
        for candidate in candidates:
            if 0 <= candidate.position < len(flat):
                flat.own(candidate.position)
        chosen = apply_breakpoints(flat, candidates, min_tokens=min_tokens, ttl=ttl, marked=marked)

    for m_index, block in flat.strings.items():
        if "cache_control" in block:
            flat.message(m_index)["content"] = [block]

    if sys_was_str and static_count == len(sys_blocks) and "cache_control" not in sys_blocks[0]:
        out_system: str | list[dict[str, Any]] | None = system if isinstance(system, str) else None
    else:
        out_system = sys_blocks or None

    extra: dict[str, Any] = {}
    if spec.compaction is not None:
        extra["context_management"] = {"edits": [spec.compaction.edit()]}
        extra["betas"] = [COMPACTION_BETA]

    # Report.
    total = decision.predicted
    messages_tokens = max(0, total - system_tokens - tools_tokens - summary_tokens)
    prev = decision.previous
    cached = 0
    written = 0
    newest_marked = any(c.priority == 0 for c in chosen)
    if cache:
        if prev is not None and prev.observed is not None and prev.observed >= min_tokens:
            cached = min(prev.observed, total)
        elif any(c.priority == 2 for c in chosen) and replay.usage:
            cached = const.tokens(ratio) if total > 0 else 0
        if newest_marked:
            written = total - cached
    uncached = total - cached
    usage_estimate: dict[str, Any] = {
        "input_tokens": uncached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written if ttl != "1h" else 0,
            "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
        },
    }
    kept_turns = len(starts) - bisect.bisect_left(starts, decision.window.cut)
    report = ContextReport(
        model=model,
        policy=spec.name,
        system_tokens=system_tokens,
        tools_tokens=tools_tokens,
        summary_tokens=summary_tokens,
        messages_tokens=messages_tokens,
        total_tokens=total,
        exact_prefix_tokens=decision.exact_prefix,
        cached_tokens=cached,
        uncached_tokens=uncached,
        kept_messages=len(full) - decision.window.cut,
        kept_turns=kept_turns,
        dropped_turns=len(starts) - kept_turns,
        window_start=decision.window.cut,
        budget=replay.budget,
        context_window=replay.context_window,
        cache_ttl=ttl if chosen else None,
        breakpoints=len(chosen),
        estimated_cost=_cost(model, usage_estimate),
        calibration_ratio=decision.calibration.ratio,
        calibration_observations=decision.calibration.observations,
    )
    check_count = worth_counting(
        decision.upper, total, replay.budget, decision.calibration, replay.guard[0]
    )
    return Planned(
        messages=view,
        system=out_system,
        tools=tool_list if tools else None,
        extra=extra,
        decision=decision,
        report=report,
        summary_request=summary_request,
        breakpoints=tuple(c.position for c in chosen),
        ttl=ttl if chosen else None,
        check_count=check_count,
    )
