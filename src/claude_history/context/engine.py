"""The planner behind ``plan_request``: a deterministic replay of the session's requests (pure).

Why a replay: a cache-friendly window must cut at the *same* place turn after turn until the budget is
exceeded again, and the newest models need to know which thinking blocks are still bound to an unchanged
prefix. Both follow from the history of decisions, and that history is a pure function of the stored log: the
planner walks every request point of the log (each user message: a turn start or a tool-result message) in
order and re-makes, with the information available at that time, the decision that was made then:

- the calibration ratio at a point uses only usage observed before it, so past decisions never change when
  new usage arrives;
- the cut ``c`` (a turn start, see ``history.turn_starts``) only moves forward, when a policy asks;
- the *epoch* ``e`` is the turn start where the view last changed shape (cut moved, old images replaced).
  Thinking blocks of turns before ``e`` are dropped (they were bound to a different prefix), those from ``e``
  on are kept, since their prefix is byte-identical to the one they were produced with;
- the size of a view is known exactly up to the previous request (its ``usage``) when the view only
  grew since; only what was added is estimated.

Nothing needs to be persisted beside the log and its usage records. The replay costs O(points x log n), which
is a few milliseconds for thousands of turns.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import BudgetExceeded, ConfigurationError, InvalidHistory
from ..history import content_blocks, is_turn_start, turn_starts, validate
from ..models import model_info
from ..stores.base import Summary
from ..tokens import (
    ZERO,
    Calibration,
    TokenEstimate,
    estimate_message,
    estimate_system,
    estimate_tools,
    observed_prompt_tokens,
)
from .cache import LOOKBACK, Candidate, apply_breakpoints, choose_ttl, count_markers, marker_ttl
from .policies import (
    CacheAwareWindow,
    Combine,
    KeepAll,
    LastTurns,
    OldImages,
    ServerCompaction,
    Summarize,
)
from .report import ContextReport
from .summary import SummaryRequest, build_summary_request, summary_block, summary_for

__all__ = ["Decision", "UsagePoint", "plan", "usage_points"]

# Every request is also kept inside the model's context window, whatever the policy: above this share of the
# window the view is cut down (in one step) to the low share.
WINDOW_SAFETY = 0.95
WINDOW_LOW = 0.6
DEFAULT_WINDOW = 200_000
DEFAULT_MIN_CACHEABLE = 1_024
COMPACTION_BETA = "compact-2026-01-12"
_THINKING = ("thinking", "redacted_thinking")


# ------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class UsagePoint:
    """The usage of the API call that produced message ``seq`` (an index into ``log + pending``)."""

    seq: int
    usage: Mapping[str, Any] | None
    created_at: datetime | None = None
    model: str | None = None


def usage_points(items: Sequence[Any]) -> dict[int, UsagePoint]:
    """Accepts ``StoredMessage`` objects (``SessionData.messages``) or mappings with ``seq``, ``usage`` and
    optionally ``created_at`` (datetime or ISO string) and ``model``. Items without usage are skipped."""
    points: dict[int, UsagePoint] = {}
    for item in items:
        if isinstance(item, Mapping):
            seq, usage = item.get("seq"), item.get("usage")
            created, model = item.get("created_at"), item.get("model")
        else:
            seq, usage = getattr(item, "seq", None), getattr(item, "usage", None)
            created, model = getattr(item, "created_at", None), getattr(item, "model", None)
        if not isinstance(seq, int) or not usage:
            continue
        if isinstance(created, str):
            try:
                created = datetime.fromisoformat(created)
            except ValueError:
                created = None
        points[seq] = UsagePoint(seq, usage, created if isinstance(created, datetime) else None, model)
    return points


@dataclass(frozen=True)
class _Spec:
    windows: tuple[tuple[int, int], ...] = ()  # (max_input_tokens, low-water target)
    last_turns: int | None = None
    images: OldImages | None = None
    summarize: Summarize | None = None
    compaction: ServerCompaction | None = None
    name: str = "KeepAll()"


def _spec(policy: Any) -> _Spec:
    if policy is None:
        policy = KeepAll()
    parts = policy.parts if isinstance(policy, Combine) else (policy,)
    windows: list[tuple[int, int]] = []
    last: int | None = None
    images: OldImages | None = None
    summarize: Summarize | None = None
    compaction: ServerCompaction | None = None
    for part in parts:
        if isinstance(part, KeepAll):
            continue
        if isinstance(part, LastTurns):
            last = part.n if last is None else min(last, part.n)
        elif isinstance(part, CacheAwareWindow):  # TokenBudget included
            windows.append((part.max_input_tokens, part.target))
        elif isinstance(part, OldImages):
            images = part if images is None or part.after_turns < images.after_turns else images
        elif isinstance(part, Summarize):
            summarize = part
            windows.append((part.max_input_tokens, part.target))
        elif isinstance(part, ServerCompaction):
            compaction = part
        else:
            raise ConfigurationError(
                f"not a context policy: {part!r}; use KeepAll, LastTurns, TokenBudget, CacheAwareWindow, "
                "OldImages, Summarize or ServerCompaction (combine them with &)"
            )
    if compaction is not None and (windows or last is not None):
        raise ConfigurationError(
            "ServerCompaction leaves trimming to the API: do not combine it with a window"
        )
    return _Spec(tuple(windows), last, images, summarize, compaction, repr(policy))


# ------------------------------------------------------------------------------------------- message sizes


def _has(message: Mapping[str, Any], kinds: tuple[str, ...]) -> bool:
    return any(b.get("type") in kinds for b in content_blocks(message))


def _has_image(message: Mapping[str, Any]) -> bool:
    for block in content_blocks(message):
        if block.get("type") == "image":
            return True
        if (
            block.get("type") == "tool_result"
            and isinstance(block.get("content"), list)
            and any(isinstance(b, Mapping) and b.get("type") == "image" for b in block["content"])
        ):
            return True
    return False


def _replace_images(blocks: list[Any], placeholder: str) -> list[Any]:
    result: list[Any] = []
    for block in blocks:
        if isinstance(block, Mapping) and block.get("type") == "image":
            result.append({"type": "text", "text": placeholder})
        elif (
            isinstance(block, Mapping)
            and block.get("type") == "tool_result"
            and isinstance(block.get("content"), list)
        ):
            result.append({**block, "content": _replace_images(block["content"], placeholder)})
        else:
            result.append(block)
    return result


def _transform(
    message: Mapping[str, Any], *, drop_thinking: bool, replace_images: bool, placeholder: str
) -> dict[str, Any] | None:
    """``message`` as the view sends it; ``None`` when nothing is left (a thinking-only reply). Blocks are
    shared with the log, never modified (the planner copies a block before it marks it)."""
    content = message.get("content")
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    blocks = list(content or ())
    if drop_thinking and message.get("role") == "assistant":
        blocks = [b for b in blocks if not (isinstance(b, Mapping) and b.get("type") in _THINKING)]
    if replace_images:
        blocks = _replace_images(blocks, placeholder)
    if not blocks:
        return None
    return {"role": message["role"], "content": blocks}


class _Log:
    """Per-message facts of a log, kept as prefix sums so the size of any view is O(1): raw estimates in four
    variants (thinking kept/dropped x images kept/replaced), turn starts, thinking and compaction positions.

    Extended in place as the log grows (the planner caches one per session, keyed by the identity of the
    message dicts, which a chat keeps from turn to turn), so a turn costs only its new messages.
    """

    def __init__(self, model: str, placeholder: str) -> None:
        self.model = model
        self.placeholder = placeholder
        self.messages: list[Mapping[str, Any]] = []
        self.shapes: list[tuple[int, int]] = []
        self.text: list[list[float]] = [[0.0] for _ in range(4)]
        self.fixed: list[list[int]] = [[0] for _ in range(4)]
        self.starts: list[int] = []
        self.thinking_count = [0]
        self.compactions: list[int] = []
        self.validated = 0  # messages [0, validated) are known to form a valid log
        self.replays: dict[Any, list[_Checkpoint]] = {}

    def common_prefix(self, full: Sequence[Mapping[str, Any]]) -> int:
        """How many leading messages are the very ones indexed (same dicts, same content object and length:
        a message edited in place since is indexed again)."""
        n = min(len(self.messages), len(full))
        for i in range(n):
            message = full[i]
            if self.messages[i] is not message or self.shapes[i] != _shape(message):
                return i
        return n

    def truncate(self, n: int) -> None:
        if n >= len(self.messages):
            return
        del self.messages[n:]
        del self.shapes[n:]
        for v in range(4):
            del self.text[v][n + 1 :]
            del self.fixed[v][n + 1 :]
        del self.thinking_count[n + 1 :]
        self.starts = [i for i in self.starts if i < n]
        self.compactions = [i for i in self.compactions if i < n]
        self.validated = min(self.validated, n)
        for key, checkpoints in self.replays.items():
            self.replays[key] = [cp for cp in checkpoints if cp.point + 1 < n]

    def extend(self, full: Sequence[Mapping[str, Any]]) -> None:
        self.truncate(self.common_prefix(full))
        for i in range(len(self.messages), len(full)):
            self._append(i, full[i])

    def _append(self, i: int, message: Mapping[str, Any]) -> None:
        model = self.model
        base = estimate_message(message, model)
        variants = [base, base, base, base]
        think = message.get("role") == "assistant" and _has(message, _THINKING)
        if think:
            variants[1] = variants[3] = estimate_message(message, model, drop_thinking=True)
        if _has_image(message):
            replaced: dict[str, Any] = {
                **message,
                "content": _replace_images(list(content_blocks(message)), self.placeholder),
            }
            variants[2] = estimate_message(replaced, model)
            variants[3] = estimate_message(replaced, model, drop_thinking=True) if think else variants[2]
        for v in range(4):
            self.text[v].append(self.text[v][-1] + variants[v].text)
            self.fixed[v].append(self.fixed[v][-1] + variants[v].fixed)
        self.messages.append(message)
        self.shapes.append(_shape(message))
        self.thinking_count.append(self.thinking_count[-1] + int(think))
        if is_turn_start(message):
            self.starts.append(i)
        if message.get("role") == "assistant" and _has(message, ("compaction",)):
            self.compactions.append(i)

    def seg(self, a: int, b: int, variant: int) -> TokenEstimate:
        if b <= a:
            return ZERO
        return TokenEstimate(
            self.text[variant][b] - self.text[variant][a], self.fixed[variant][b] - self.fixed[variant][a]
        )

    def view(self, c: int, e: int, ib: int, end: int) -> TokenEstimate:
        """Messages ``[c, end)`` with thinking dropped before ``e`` and images replaced before ``ib``."""
        bounds = sorted({c, min(max(e, c), end), min(max(ib, c), end), end})
        total = ZERO
        for a, b in itertools.pairwise(bounds):
            total = total + self.seg(a, b, (1 if a < e else 0) + (2 if a < ib else 0))
        return total


def _shape(message: Mapping[str, Any]) -> tuple[int, int]:
    content = message.get("content")
    return id(content), len(content) if isinstance(content, (list, str)) else -1


_CACHE: OrderedDict[tuple[int, str, str], _Log] = OrderedDict()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def _log_for(full: Sequence[Mapping[str, Any]], model: str, placeholder: str) -> _Log:
    """The cached index of this session's log (matched by the identity of its first message), extended."""
    key = (id(full[0]), model, placeholder)
    log = _CACHE.get(key)
    if log is None or not log.messages or log.messages[0] is not full[0]:
        log = _Log(model, placeholder)
    _CACHE[key] = log
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    log.extend(full)
    return log


# --------------------------------------------------------------------------------------------------- replay


@dataclass
class _Prev:
    point: int
    key: tuple[int, int, int, int]
    raw: TokenEstimate
    predicted: int
    observed: int | None
    trusted: bool


@dataclass
class _State:
    c: int
    e: int
    ib: int
    calib: Calibration = field(default_factory=Calibration)
    prev: _Prev | None = None
    cut_moved: bool = False


@dataclass(frozen=True)
class _Checkpoint:
    """The replay's state after request point ``point``, and what it depended on beyond the messages."""

    point: int
    state: _State
    observed: int | None
    summary: TokenEstimate


@dataclass(frozen=True)
class Decision:
    """What the replay decided for the newest request point."""

    start: int  # first message of the view (a turn start)
    epoch: int  # thinking dropped before this index
    image_boundary: int  # images replaced before this index
    compaction_start: int  # tokens counted from here (latest compaction block), 0 without compaction
    raw: TokenEstimate  # whole request, uncalibrated
    predicted: int  # whole request, calibrated, exact up to the previous request when it only grew
    exact_prefix: int
    limit: int | None  # the tightest budget the request had to fit
    calibration: Calibration
    previous: _Prev | None
    cut_moved: bool


class _Replay:
    def __init__(
        self,
        full: Sequence[Mapping[str, Any]],
        spec: _Spec,
        model: str,
        const: TokenEstimate,
        summaries: Sequence[Summary],
        usage: Mapping[int, UsagePoint],
        measured: int | None,
    ) -> None:
        self.full = full
        self.spec = spec
        self.model = model
        self.const = const
        self.summaries = summaries
        self.usage = usage
        self.measured = measured
        placeholder = spec.images.placeholder if spec.images else ""
        self.log = _log_for(full, model, placeholder)
        self.sizes = self.log
        self.starts = self.log.starts
        self.thinking_count = self.log.thinking_count
        self.compactions = self.log.compactions
        info = model_info(model)
        self.window = info.context_window if info is not None else DEFAULT_WINDOW
        self.guard = (int(self.window * WINDOW_SAFETY), int(self.window * WINDOW_LOW))
        self.limits = list(spec.windows) if spec.compaction is None else []
        self.limits.append(self.guard)
        self.binds = info.binds_thinking if info is not None else True
        self.budget = min(m for m, _ in self.limits)
        self.summary_cache: dict[int, TokenEstimate] = {}

    # sizes -----------------------------------------------------------------------------------------
    def summary_raw(self, c: int) -> TokenEstimate:
        if self.spec.summarize is None or not self.starts or c <= self.starts[0]:
            return ZERO
        if c not in self.summary_cache:
            found = summary_for(self.summaries, c)
            self.summary_cache[c] = (
                estimate_system([summary_block(found)], self.model) if found is not None else ZERO
            )
        return self.summary_cache[c]

    def reserve_new(self) -> TokenEstimate:
        if self.spec.summarize is None:
            return ZERO
        # A new summary is at most max_summary_tokens long (the summariser's max_tokens), plus its header.
        header = estimate_system([{"type": "text", "text": "x" * 200}], self.model)
        return TokenEstimate(header.text, self.spec.summarize.max_summary_tokens)

    def compaction_start(self, p: int) -> int:
        k = bisect.bisect_right(self.compactions, p) - 1
        return self.compactions[k] if k >= 0 else 0

    def raw_view(self, c: int, e: int, ib: int, p: int) -> TokenEstimate:
        first = max(c, self.compaction_start(p)) if self.spec.compaction is not None else c
        return self.sizes.view(first, e, ib, p + 1) + self.const + self.summary_raw(c)

    def predict(self, state: _State, key: tuple[int, int, int, int], raw: TokenEstimate) -> tuple[int, int]:
        """(predicted tokens, exactly known part) of a view with ``raw`` estimate."""
        ratio = state.calib.ratio
        prev = state.prev
        if prev is not None and prev.key == key and prev.observed is not None and prev.trusted:
            return prev.observed + max(0, (raw - prev.raw).tokens(ratio)), prev.observed
        return raw.tokens(ratio), 0

    # decisions -------------------------------------------------------------------------------------
    def image_boundary(self, turn: int) -> int:
        images = self.spec.images
        if images is None:
            return 0
        n = images.after_turns
        batch = ((turn - n + 1) // n) * n if turn - n + 1 > 0 else 0
        return self.starts[batch] if batch > 0 else 0

    def size_fresh(self, t: int, e: int, ib: int, p: int, ratio: float) -> int:
        """Size of a view whose cut ``t`` is new at this point: a summary for it does not exist yet, so its
        maximum size is reserved (the same figure the replay sees later, when the summary does exist)."""
        raw = self.sizes.view(t, e, ib, p + 1) + self.const
        if self.spec.summarize is not None and self.starts and t > self.starts[0]:
            raw = raw + self.reserve_new()
        return raw.tokens(ratio)

    def decide(self, state: _State, p: int, final: bool) -> tuple[int, int, int, int | None]:
        """The view for request point ``p``: returns (cut, epoch, image boundary, violated limit or None)."""
        k = bisect.bisect_right(self.starts, p) - 1
        if k < 0:  # no turn started yet (cannot happen in a valid log)
            return state.c, state.e, state.ib, None
        s = self.starts[k]
        ib = self.image_boundary(k)
        c = max(state.c, self.starts[0])
        # Inside a tool-use turn whose replies carry thinking, on a model that binds thinking to its prefix,
        # moving the window would invalidate the turn's own signatures (and the API needs them back): the
        # window stays put until the next turn starts; only the context window itself is enforced.
        frozen = p != s and self.binds and self.thinking_count[p] > self.thinking_count[s]
        if self.spec.last_turns is not None and not frozen:
            c = max(c, self.starts[max(0, k - self.spec.last_turns + 1)])
        e = state.e if (c == state.c and ib == state.ib) else s
        if final and self.measured is not None:
            # An exact count of the view as it stands corrects the calibration for this decision only.
            raw = self.raw_view(c, e, ib, p)
            state = _State(state.c, state.e, state.ib, state.calib.observe(self.measured, raw), None)
        ratio = state.calib.ratio
        margin = _margin(state.calib)

        def fresh(t: int, epoch: int) -> int:
            return math.ceil(self.size_fresh(t, epoch, ib, p, ratio) * (1 + margin))

        violated = None
        for index, (limit, target) in enumerate(self.limits):
            if c == state.c:
                size, exact = self.predict(
                    state, (c, e, ib, self.compaction_start(p)), self.raw_view(c, e, ib, p)
                )
                size += math.ceil((size - exact) * margin)
            else:
                size = fresh(c, e)
            if size <= limit:
                continue
            if self.spec.compaction is not None or frozen:
                # Nothing may be cut: the soft budgets wait for the next turn; the context window cannot wait.
                if self.spec.compaction is not None or index == len(self.limits) - 1:
                    violated = limit if violated is None else min(violated, limit)
                continue
            # Cut in one step: the smallest later turn start whose view fits the target (monotone in t).
            a, b = bisect.bisect_right(self.starts, c), k
            if a > b or fresh(self.starts[b], s) > target:
                a = b
            while a < b:
                mid = (a + b) // 2
                if fresh(self.starts[mid], s) <= target:
                    b = mid
                else:
                    a = mid + 1
            c, e = self.starts[a], s
            if fresh(c, e) > limit:
                violated = limit if violated is None else min(violated, limit)
        return c, e, ib, violated

    def observed_at(self, p: int) -> int | None:
        point = self.usage.get(p + 1)
        return _first_request_prompt(point.usage) if point is not None and point.usage else None

    def run(self, settings_key: Any) -> Decision:
        full = self.full
        first = self.starts[0] if self.starts else 0
        state = _State(first, first, 0)
        last = len(full) - 1
        # Resume from the last checkpoint that still holds: same messages, same usage, same summary.
        replays = self.log.replays
        if settings_key not in replays and len(replays) >= 4:  # e.g. a system prompt that changes every turn
            replays.pop(next(iter(replays)))
        checkpoints = replays.setdefault(settings_key, [])
        kept = 0
        for cp in checkpoints:
            if cp.point >= last or self.observed_at(cp.point) != cp.observed:
                break
            if self.summary_raw(cp.state.c) != cp.summary:
                break
            state = cp.state
            kept += 1
        del checkpoints[kept:]
        begin = checkpoints[-1].point + 1 if checkpoints else 0
        points = [i for i in range(begin, len(full)) if full[i].get("role") == "user"]
        if not points or points[-1] != last:
            points.append(last)  # a paused assistant turn is continued as it is (pause_turn)
        violated: int | None = None
        for p in points:
            final = p == last
            c, e, ib, violated = self.decide(state, p, final)
            moved = c != state.c
            key = (c, e, ib, self.compaction_start(p))
            raw = self.raw_view(c, e, ib, p)
            predicted, exact = self.predict(state, key, raw)
            if final:
                return Decision(
                    start=c,
                    epoch=e,
                    image_boundary=ib,
                    compaction_start=self.compaction_start(p) if self.spec.compaction is not None else 0,
                    raw=raw,
                    predicted=predicted,
                    exact_prefix=exact,
                    limit=violated,
                    calibration=state.calib,
                    previous=state.prev if state.prev is not None and state.prev.key == key else None,
                    cut_moved=moved,
                )
            observed = self.observed_at(p)
            trusted = observed is not None and predicted > 0 and 0.75 <= observed / predicted <= 1.34
            calib = state.calib.observe(observed, raw) if observed is not None else state.calib
            state = _State(c, e, ib, calib, _Prev(p, key, raw, predicted, observed, trusted), moved)
            checkpoints.append(_Checkpoint(p, state, observed, self.summary_raw(c)))
        raise InvalidHistory(
            "messages: the list is empty; a request needs at least one user message", index=None
        )


def _margin(calibration: Calibration) -> float:
    """Safety margin on the estimated (not yet billed) part of a request when checking it against a limit:
    wider until the session's calibration has seen a few requests."""
    return 0.08 if calibration.observations >= 3 else 0.15


def _first_request_prompt(usage: Mapping[str, Any]) -> int:
    """Prompt tokens of the request made at a point. A reply that took several calls (pause_turn) stores the
    calls under ``requests``; the first one is the request the point made."""
    inner = usage.get("requests")
    if isinstance(inner, list) and inner and isinstance(inner[0], Mapping):
        return observed_prompt_tokens(inner[0])
    return observed_prompt_tokens(usage)


# ------------------------------------------------------------------------------------------- the request


def _system_blocks(system: str | Sequence[Mapping[str, Any]] | None) -> tuple[list[dict[str, Any]], bool]:
    """System as a list of block copies, and whether it was a plain string."""
    if system is None or system == "":
        return [], False
    if isinstance(system, str):
        return [{"type": "text", "text": system}], True
    return [dict(b) for b in system], False


def _markable(blocks: Sequence[Mapping[str, Any]]) -> int | None:
    for j in range(len(blocks) - 1, -1, -1):
        if blocks[j].get("type") not in _THINKING:
            return j
    return None


def _gaps(usage: Mapping[int, UsagePoint], full: Sequence[Mapping[str, Any]]) -> list[float]:
    """Seconds between turns: from the last reply of a turn to the first reply of the next."""
    starts = set(turn_starts(full))
    times = sorted((seq, point.created_at) for seq, point in usage.items() if point.created_at is not None)
    gaps = []
    for (_, before), (seq, after) in itertools.pairwise(times):
        if seq - 1 in starts and before is not None and after is not None:
            gaps.append((after - before).total_seconds())
    return gaps


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
        from ..pricing import cost_of
    except ImportError:  # pragma: no cover
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cost_of(usage, model)


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


def plan(
    full: Sequence[Mapping[str, Any]],
    *,
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    policy: Any,
    summaries: Sequence[Summary],
    usage_history: Sequence[Any],
    cache: bool | str,
    measured_input_tokens: int | None = None,
) -> Planned:
    spec = _spec(policy)
    if not full:
        raise InvalidHistory(
            "messages: nothing to send; a request needs at least one user message", index=None
        )
    usage = usage_points(usage_history)
    const = estimate_system(system, model) + estimate_tools(tools, model)
    with _CACHE_LOCK:
        replay = _Replay(full, spec, model, const, summaries, usage, measured_input_tokens)
        _validate(full, replay.log)
        decision = replay.run((spec.name, const.text, const.fixed))
        return _build(full, spec, replay, decision, model, system, tools, summaries, usage, cache)


def _validate(full: Sequence[Mapping[str, Any]], log: _Log) -> None:
    """The log as a whole must be valid (errors then name the real index, not one inside the view). What was
    validated before is not checked again: from the last turn start of the known-good part on is enough."""
    sending = full[-1].get("role") == "user"
    k = bisect.bisect_right(log.starts, log.validated) - 1
    j = log.starts[k] if k >= 0 and log.validated > 0 else 0
    try:
        validate(full[j:], for_sending=sending)
    except InvalidHistory:
        validate(full, for_sending=sending)  # raises with the index in the whole log
        raise
    log.validated = len(full)


def _build(
    full: Sequence[Mapping[str, Any]],
    spec: _Spec,
    replay: _Replay,
    decision: Decision,
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    summaries: Sequence[Summary],
    usage: Mapping[int, UsagePoint],
    cache: bool | str,
) -> Planned:
    const = replay.const
    starts = replay.starts
    k_newest = bisect.bisect_right(starts, len(full) - 1) - 1
    newest_turn = starts[k_newest] if k_newest >= 0 else 0

    if decision.limit is not None:
        alone = (replay.raw_view(newest_turn, newest_turn, decision.image_boundary, len(full) - 1)).tokens(
            decision.calibration.ratio
        )
        raise BudgetExceeded(
            f"the newest turn alone needs about {alone:,} input tokens (system and tools included), more "
            f"than the budget of {decision.limit:,}: shorten the message, the system prompt or the tools, "
            "or raise the budget",
            needed=max(alone, decision.predicted),
            budget=decision.limit,
        )

    # Build the view.
    placeholder = spec.images.placeholder if spec.images else ""
    view: list[dict[str, Any]] = []
    origins: list[int] = []  # index in full of the last message merged into each view message
    for i in range(decision.start, len(full)):
        message = _transform(
            full[i],
            drop_thinking=i < decision.epoch and spec.compaction is None,
            replace_images=i < decision.image_boundary,
            placeholder=placeholder,
        )
        if message is None:
            continue
        if view and view[-1]["role"] == message["role"]:  # a thinking-only reply was dropped: merge the users
            view[-1]["content"] = [*content_blocks(view[-1]), *content_blocks(message)]
            origins[-1] = i
            continue
        view.append(message)
        origins.append(i)

    sys_blocks, sys_was_str = _system_blocks(system)
    static_count = len(sys_blocks)
    summary_request: SummaryRequest | None = None
    summary = None
    if spec.summarize is not None and decision.start > (starts[0] if starts else 0):
        summary = summary_for(summaries, decision.start)
        if summary is None and decision.cut_moved:
            s = spec.summarize
            summary_request = build_summary_request(
                full,
                decision.start,
                summaries,
                model=s.model,
                prompt=s.prompt,
                max_tokens=s.max_summary_tokens,
                max_transcript_chars=s.max_transcript_chars,
            )
        if summary is not None:
            sys_blocks.append(summary_block(summary))

    tool_list = [dict(t) for t in tools] if tools else []
    ratio = decision.calibration.ratio
    system_tokens = estimate_system(sys_blocks[:static_count] or None, model).tokens(ratio)
    summary_tokens = estimate_system(sys_blocks[static_count:] or None, model).tokens(ratio)
    tools_tokens = estimate_tools(tool_list or None, model).tokens(ratio)

    # Flatten tools -> system -> messages for breakpoint positions (entries are the dicts that will be sent).
    flat: list[dict[str, Any]] = []
    flat.extend(tool_list)
    flat.extend(sys_blocks)
    message_blocks: list[list[dict[str, Any]]] = []
    string_messages: dict[int, dict[str, Any]] = {}
    for m_index, message in enumerate(view):
        if isinstance(message["content"], str):
            block = {"type": "text", "text": message["content"]}
            string_messages[m_index] = block
            blocks = [block]
        else:
            blocks = message["content"]
        message_blocks.append(blocks)
        flat.extend(blocks)

    # Blocks are shared with the log: copy a block (and its message's content list) before marking it.
    where: list[tuple[int, int]] = [(-1, i) for i in range(len(tool_list) + len(sys_blocks))]
    for m_index, blocks in enumerate(message_blocks):
        where.extend((m_index, j) for j in range(len(blocks)))
    owned_lists: set[int] = set()

    def own(position: int) -> dict[str, Any]:
        m_index, j = where[position]
        if m_index < 0:
            return flat[position]  # tools and system blocks are copies already
        if m_index not in owned_lists and m_index not in string_messages:
            message_blocks[m_index] = list(message_blocks[m_index])
            view[m_index]["content"] = message_blocks[m_index]
            owned_lists.add(m_index)
        block = dict(message_blocks[m_index][j])
        message_blocks[m_index][j] = block
        flat[position] = block
        if m_index in string_messages:
            string_messages[m_index] = block
        return block

    for position, block in enumerate(flat):
        if marker_ttl(block) is not None:
            own(position)

    # Too many markers of the caller's own: keep tools and system ones, then the newest message ones.
    user_markers = count_markers(flat)
    if user_markers > 4:
        fixed = count_markers(tool_list) + count_markers(sys_blocks)
        if fixed > 4:
            raise ConfigurationError(
                f"tools and system carry {fixed} cache_control markers; the API allows at most 4 per request"
            )
        excess = user_markers - 4
        first_message = len(tool_list) + len(sys_blocks)
        for position in range(first_message, len(flat)):
            if excess and marker_ttl(flat[position]) is not None:
                del flat[position]["cache_control"]
                excess -= 1

    info = model_info(model)
    min_tokens = info.min_cacheable_tokens if info is not None else DEFAULT_MIN_CACHEABLE
    ttl: str | None = None
    chosen: list[Candidate] = []
    prefix_before_messages = (const + estimate_system(sys_blocks[static_count:] or None, model)).tokens(ratio)
    if cache:
        # Prefix tokens at the end of each view message.
        cumulative: list[int] = []
        running = ZERO
        for i in range(len(view)):
            first = decision.start if i == 0 else origins[i - 1] + 1
            running = running + replay.sizes.view(
                first, decision.epoch, decision.image_boundary, origins[i] + 1
            )
            cumulative.append(prefix_before_messages + running.tokens(ratio))
        if cumulative:
            cumulative[-1] = max(cumulative[-1], decision.predicted)
        candidates: list[Candidate] = []
        position = len(tool_list) + len(sys_blocks)
        ends: list[int] = []
        for blocks in message_blocks:
            j = _markable(blocks)
            ends.append(position + j if j is not None else -1)
            position += len(blocks)
        newest_pos = ends[-1] if ends else -1
        if newest_pos >= 0:
            candidates.append(Candidate(newest_pos, cumulative[-1], 0, "newest message"))
        prev = decision.previous
        if prev is not None:
            m_prev = bisect.bisect_left(origins, prev.point)
            if m_prev < len(view) and ends[m_prev] >= 0 and newest_pos - ends[m_prev] >= LOOKBACK:
                candidates.append(Candidate(ends[m_prev], cumulative[m_prev], 1, "previous request"))
        if static_count:
            candidates.append(
                Candidate(len(tool_list) + static_count - 1, (const.tokens(ratio)), 2, "system prompt")
            )
        elif tool_list:
            candidates.append(Candidate(len(tool_list) - 1, tools_tokens, 2, "tools"))
        if len(sys_blocks) > static_count:
            candidates.append(
                Candidate(len(tool_list) + len(sys_blocks) - 1, prefix_before_messages, 3, "summary")
            )
        if len(view) > 1 and ends[0] >= 0 and decision.start > (starts[0] if starts else 0):
            candidates.append(Candidate(ends[0], cumulative[0], 4, "window start"))
        if isinstance(cache, str) and cache in ("5m", "1h"):
            ttl = cache
        else:
            prices = _prices(model)
            new_tokens = max(0, decision.predicted - decision.exact_prefix)
            if prices is not None:
                _, w5, w1, rd = prices
                ttl = choose_ttl(
                    _gaps(usage, full),
                    prefix_tokens=decision.predicted,
                    new_tokens=new_tokens,
                    write_5m=w5,
                    write_1h=w1,
                    read=rd,
                )
            else:
                ttl = choose_ttl(_gaps(usage, full), prefix_tokens=decision.predicted, new_tokens=new_tokens)
        for candidate in candidates:
            if 0 <= candidate.position < len(flat):
                own(candidate.position)
        chosen = apply_breakpoints(flat, candidates, min_tokens=min_tokens, ttl=ttl)

    for m_index, block in string_messages.items():
        if "cache_control" in block:
            view[m_index]["content"] = [block]

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
    kept_turns = sum(1 for t in starts if t >= decision.start)
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
        kept_messages=len(full) - decision.start,
        kept_turns=kept_turns,
        dropped_turns=len(starts) - kept_turns,
        window_start=decision.start,
        budget=replay.budget,
        context_window=replay.window,
        cache_ttl=ttl if chosen else None,
        breakpoints=len(chosen),
        estimated_cost=_cost(model, usage_estimate),
        calibration_ratio=decision.calibration.ratio,
        calibration_observations=decision.calibration.observations,
    )
    uncertainty = 0.25 if decision.calibration.observations == 0 else 0.1
    check_count = total > replay.budget * (1 - uncertainty) and total - decision.exact_prefix > 0
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
