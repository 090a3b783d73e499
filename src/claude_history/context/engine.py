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
  grew since; only what was added is estimated;
- a cut made by an exact count (``measured_input_tokens``) is not in the log, but the request it shaped was
  billed clearly less than the part of the uncut view already billed before: the replay then finds the window
  that count led to from that billed size (``_Replay.recut``), so the next turns keep it.

Nothing needs to be persisted beside the log and its usage records. A full replay costs O(points x log n); the
planner keeps per session, in memory, what it derived (message sizes, the replay's state after each point, the
usage history as parsed, the view of each window), matched by identity (the same content lists, the same usage
records: a chat passes them again each turn), so a request costs its new messages plus a few C-speed passes
over the log and the copy of the view it returns (under a millisecond at 1,000 messages). Anything that
changed (a rewind, a fork, an edited message, other usage or summaries) drops what depended on it, so the
result is the same as planning from scratch. Blocks and usage mappings are taken as never changed in place.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import BudgetExceeded, ConfigurationError, InvalidHistory
from ..history import content_blocks, is_turn_start, validate
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
from ..usage import TokenUsage
from .cache import (
    GAP_WINDOW,
    LOOKBACK,
    TTL_SECONDS,
    Candidate,
    apply_breakpoints,
    choose_ttl,
    count_markers,
    marker_ttl,
)
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
from .summary import SummaryRequest, build_summary_request, summary_block

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
        point = _usage_point(item)
        if point is not None:
            points[point.seq] = point
    return points


def _usage_point(item: Any) -> UsagePoint | None:
    if isinstance(item, Mapping):
        seq, usage = item.get("seq"), item.get("usage")
        created, model = item.get("created_at"), item.get("model")
    else:
        seq, usage = getattr(item, "seq", None), getattr(item, "usage", None)
        created, model = getattr(item, "created_at", None), getattr(item, "model", None)
    if not isinstance(seq, int) or not usage:
        return None
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created)
        except ValueError:
            created = None
    return UsagePoint(seq, usage, created if isinstance(created, datetime) else None, model)


class _UsageIndex:
    """``usage_points`` of the usage history, kept in step with it call after call: items are matched by
    identity (a chat passes the same record objects every turn), so a call parses only the items that are new
    since the previous one. Usage mappings are taken as never changed in place, like the log's blocks."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        # Per item: (seq, the point that seq had before the item) to undo it, or None for a skipped item.
        self.undo: list[tuple[int, UsagePoint | None] | None] = []
        self.points: dict[int, UsagePoint] = {}
        self.timed: list[int] = []  # seqs of the points with a created_at, ascending
        self.prompts: dict[int, tuple[Mapping[str, Any], int | None]] = {}  # seq -> (usage, first request prompt)

    def update(self, items: Sequence[Any]) -> int:
        """Follow ``items``; returns the smallest seq whose usage changed (``_NEVER`` when none did)."""
        old = self.items
        k = next(itertools.compress(itertools.count(), map(operator.is_not, old, items)), min(len(old), len(items)))
        before: dict[int, UsagePoint | None] = {}
        for i in range(len(old) - 1, k - 1, -1):
            change = self.undo[i]
            if change is not None:
                seq, previous = change
                before.setdefault(seq, self.points.get(seq))
                self._set(seq, previous)
        del old[k:]
        del self.undo[k:]
        for i in range(k, len(items)):
            item = items[i]
            old.append(item)
            point = _usage_point(item)
            if point is None:
                self.undo.append(None)
                continue
            current = self.points.get(point.seq)
            before.setdefault(point.seq, current)
            self.undo.append((point.seq, current))
            self._set(point.seq, point)
        changed = [seq for seq, point in before.items() if not _same_usage(point, self.points.get(seq))]
        return min(changed, default=_NEVER)

    def _set(self, seq: int, point: UsagePoint | None) -> None:
        current = self.points.get(seq)
        if current is not None and current.created_at is not None:
            del self.timed[bisect.bisect_left(self.timed, seq)]
        if point is None:
            self.points.pop(seq, None)
            return
        self.points[seq] = point
        if point.created_at is not None:
            bisect.insort(self.timed, seq)

    def prompt(self, seq: int) -> int | None:
        """Prompt tokens of the request answered by message ``seq`` (parsed once per usage mapping)."""
        point = self.points.get(seq)
        if point is None or not point.usage:
            return None
        known = self.prompts.get(seq)
        if known is not None and known[0] is point.usage:
            return known[1]
        value = None if _compacted(point.usage) else _first_request_prompt(point.usage)
        self.prompts[seq] = (point.usage, value)
        return value

    def recent_gaps(self, starts: Sequence[int], limit: int) -> list[float]:
        """The newest ``limit`` non-negative gaps between turns, oldest first: from the last reply of a turn
        to the first reply of the next (what ``choose_ttl`` looks at), found from the newest reply back."""
        timed, points = self.timed, self.points
        gaps: list[float] = []
        for j in range(len(timed) - 1, 0, -1):
            seq = timed[j]
            k = bisect.bisect_left(starts, seq - 1)
            if k == len(starts) or starts[k] != seq - 1:
                continue
            after, before = points[seq].created_at, points[timed[j - 1]].created_at
            assert after is not None and before is not None
            gap = (after - before).total_seconds()
            if gap >= 0:
                gaps.append(gap)
                if len(gaps) == limit:
                    break
        gaps.reverse()
        return gaps


_NEVER = 1 << 62


def _same_usage(a: UsagePoint | None, b: UsagePoint | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.usage is b.usage or a.usage == b.usage


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
        raise ConfigurationError("ServerCompaction leaves trimming to the API: do not combine it with a window")
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
            isinstance(block, Mapping) and block.get("type") == "tool_result" and isinstance(block.get("content"), list)
        ):
            result.append({**block, "content": _replace_images(block["content"], placeholder)})
        else:
            result.append(block)
    return result


def _transform(
    message: Mapping[str, Any], *, drop_thinking: bool, replace_images: bool, placeholder: str
) -> dict[str, Any] | None:
    """``message`` as the view sends it; ``None`` when nothing is left (a thinking-only reply). Blocks are
    shared with the log, never modified (the planner copies a block before it marks it). The content list is
    the log's own when nothing changes: the caller copies it before handing it out."""
    content = message.get("content")
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    if not content:
        return None
    if not (drop_thinking and message.get("role") == "assistant") and not replace_images:
        return {"role": message["role"], "content": content if isinstance(content, list) else list(content)}
    blocks = list(content)
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
        self.contents: list[Any] = []  # each message's content object, as indexed
        self.lengths: list[int] = []  # and its length (-1: not a list or string)
        self.roles: list[Any] = []
        self.keys: list[int] = []  # how many keys the message has (validate refuses any but role and content)
        self.text: list[list[float]] = [[0.0] for _ in range(4)]
        self.fixed: list[list[int]] = [[0] for _ in range(4)]
        self.starts: list[int] = []
        self.thinking_count = [0]
        self.compactions: list[int] = []
        self.validated = 0  # messages [0, validated) are known to form a valid log
        self.replays: dict[Any, _Replays] = {}  # by settings: the replay's checkpoints
        self.views: OrderedDict[tuple[int, int, int, bool], _View] = OrderedDict()  # by window

    def common_prefix(self, full: Sequence[Mapping[str, Any]]) -> int:
        """How many leading messages are the ones indexed: the same content object, of the same length (a
        message edited in place since is indexed again). A shallow copy of an indexed message (Chat copies
        the messages of the turn in progress on every call) is the same message if its role and keys are."""
        messages, contents, lengths = self.messages, self.contents, self.lengths
        n = min(len(messages), len(full))
        # The usual case in C loops: the very dicts up to some point, their contents unchanged.
        k = next(itertools.compress(itertools.count(), map(operator.is_not, messages, full)), n)
        try:
            now = list(map(_CONTENT, itertools.islice(full, k)))
            same = all(map(operator.is_, contents, now)) and list(map(len, now)) == lengths[:k]
        except (KeyError, TypeError):  # a message without content, or content without a length
            same = False
        for i in range(k if same else 0, n):
            message = full[i]
            content = message.get("content")
            if content is not contents[i] or _length(content) != lengths[i]:
                return i
            if messages[i] is not message:
                if message.get("role") != self.roles[i] or len(message) != self.keys[i]:
                    return i
                messages[i] = message  # found by identity next time
        return n

    def truncate(self, n: int) -> None:
        if n >= len(self.messages):
            return
        del self.messages[n:]
        del self.contents[n:]
        del self.lengths[n:]
        del self.roles[n:]
        del self.keys[n:]
        for v in range(4):
            del self.text[v][n + 1 :]
            del self.fixed[v][n + 1 :]
        del self.thinking_count[n + 1 :]
        del self.starts[bisect.bisect_left(self.starts, n) :]
        del self.compactions[bisect.bisect_left(self.compactions, n) :]
        self.validated = min(self.validated, n)
        for replays in self.replays.values():
            replays.keep(bisect.bisect_left(replays.checkpoints, n - 1, key=_point))
        for key in list(self.views):
            if not self.views[key].truncate(n):
                del self.views[key]

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
        content = message.get("content")
        self.contents.append(content)
        self.lengths.append(_length(content))
        self.roles.append(message.get("role"))
        self.keys.append(len(message))
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


_CONTENT = operator.itemgetter("content")


def _length(content: Any) -> int:
    return len(content) if isinstance(content, (list, str)) else -1


class _View:
    """The view ``full[start:covered]`` of one window (start, epoch, image boundary, thinking rule) as
    ``_transform`` makes it, before any breakpoint: per view message its role, content (shared with the log
    or the cache: copied before it is handed out), last merged origin, first block position, markable block
    and whether it holds a caller's marker, and the running raw size. Extended as the log grows, so a request
    costs its new messages (plus one shallow copy of the view it sends)."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.covered = start
        self.roles: list[str] = []
        self.contents: list[str | list[Any]] = []
        self.origins: list[int] = []
        self.offsets: list[int] = [0]  # block position of each view message; one more: the block count
        self.ends: list[int] = []  # the block a breakpoint for the message goes on (-1: none)
        self.marked: list[int] = []  # view messages holding a caller's cache_control, ascending
        self.running: list[TokenEstimate] = []  # raw size of the view up to each message

    def truncate(self, n: int) -> bool:
        """Forget what depends on messages from ``n`` on; False when nothing is left."""
        if n <= self.start:
            return False
        m = bisect.bisect_left(self.origins, n)
        if m < len(self.origins):
            del self.roles[m:], self.contents[m:], self.origins[m:], self.offsets[m + 1 :]
            del self.ends[m:], self.running[m:]
            del self.marked[bisect.bisect_left(self.marked, m) :]
            self.covered = self.origins[-1] + 1 if self.origins else self.start
        self.covered = min(self.covered, n)
        return True

    def extend(
        self, full: Sequence[Mapping[str, Any]], sizes: _Log, epoch: int, ib: int, drop: bool, placeholder: str
    ) -> None:
        for i in range(self.covered, len(full)):
            message = _transform(
                full[i], drop_thinking=i < epoch and drop, replace_images=i < ib, placeholder=placeholder
            )
            if message is None:
                continue
            if self.roles and self.roles[-1] == message["role"]:
                # A thinking-only reply was dropped: merge the users.
                merged = [*content_blocks({"content": self.contents[-1]}), *content_blocks(message)]
                self._pop()
                self._push(message["role"], merged, i, sizes, epoch, ib)
            else:
                self._push(message["role"], message["content"], i, sizes, epoch, ib)
        self.covered = len(full)

    def _pop(self) -> None:
        m = len(self.roles) - 1
        for column in (self.roles, self.contents, self.origins, self.offsets, self.ends, self.running):
            column.pop()
        if self.marked and self.marked[-1] == m:
            self.marked.pop()

    def _push(self, role: str, content: Any, origin: int, sizes: _Log, epoch: int, ib: int) -> None:
        m = len(self.roles)
        first = self.start if m == 0 else self.origins[-1] + 1
        self.running.append((self.running[-1] if m else ZERO) + sizes.view(first, epoch, ib, origin + 1))
        self.roles.append(role)
        self.contents.append(content)
        self.origins.append(origin)
        if isinstance(content, str):
            self.offsets.append(self.offsets[-1] + 1)
            self.ends.append(0)
            return
        self.offsets.append(self.offsets[-1] + len(content))
        j = _markable(content)
        self.ends.append(j if j is not None else -1)
        if any(marker_ttl(b) is not None for b in content):
            self.marked.append(m)


_VIEWS = 4  # windows kept per log (several policies planning the same session)


def _view_for(full: Sequence[Mapping[str, Any]], spec: _Spec, log: _Log, decision: Decision) -> _View:
    key = (decision.start, decision.epoch, decision.image_boundary, spec.compaction is None)
    view = log.views.get(key)
    if view is None:
        view = log.views[key] = _View(decision.start)
        while len(log.views) > _VIEWS:
            log.views.popitem(last=False)
    else:
        log.views.move_to_end(key)
    view.extend(full, log, decision.epoch, decision.image_boundary, key[3], log.placeholder)
    return view


class _Blocks:
    """The request's blocks by position in prefix order: tools and system blocks (copies already), then the
    view's message blocks. A message block is copied before it is changed (blocks are shared with the log); a
    string message stands as one text block, sent as a block only when it gets a marker."""

    def __init__(self, head: list[dict[str, Any]], view: list[dict[str, Any]], offsets: list[int]) -> None:
        self.head = head
        self.view = view
        self.offsets = offsets
        self.strings: dict[int, dict[str, Any]] = {}  # view message -> its text block, once looked at
        self.owned: set[int] = set()

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
        content = self.view[m_index]["content"]
        if isinstance(content, str):
            self.strings[m_index] = block
        else:
            content[j] = block
        return block


def _point(checkpoint: _Checkpoint) -> int:
    return checkpoint.point


def _cut(checkpoint: _Checkpoint) -> int:
    return checkpoint.state.c


_CACHE: OrderedDict[tuple[int, str, str], _Log] = OrderedDict()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def _log_for(full: Sequence[Mapping[str, Any]], model: str, placeholder: str) -> _Log:
    """The cached index of this session's log (found by the identity of its first message), extended."""
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
    """The replay's state after request point ``point``."""

    point: int
    state: _State


class _Replays:
    """The replay of one set of settings over a log: the state after each request point, valid for the usage
    history and the summaries it was computed with (kept here to tell what changed at the next call)."""

    def __init__(self) -> None:
        self.checkpoints: list[_Checkpoint] = []
        self.usage = _UsageIndex()
        self.summary_sizes: dict[int, TokenEstimate] = {}  # window start -> summary size the replay used
        self.summaries: dict[int, tuple[Summary, TokenEstimate]] = {}  # window start -> size, by record

    def keep(self, count: int) -> None:
        if count >= len(self.checkpoints):
            return
        del self.checkpoints[count:]
        last = self.checkpoints[-1].state.c if self.checkpoints else -1
        for c in [c for c in self.summary_sizes if c > last]:
            del self.summary_sizes[c]


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
        measured: int | None,
    ) -> None:
        self.full = full
        self.spec = spec
        self.model = model
        self.const = const
        self.summaries = summaries
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
        self._summary_ends: dict[int, Summary] | None = None
        # Set by run(): this settings' replay and the usage history as it stands.
        self.replays = _Replays()
        self.usage: Mapping[int, UsagePoint] = {}

    # sizes -----------------------------------------------------------------------------------------
    def summary_for(self, c: int) -> Summary | None:
        """``summary.summary_for(summaries, c)``, from one pass over the summaries."""
        if self._summary_ends is None:
            self._summary_ends = {s.end: s for s in self.summaries if s.start == 0 and s.text.strip()}
        return self._summary_ends.get(c)

    def summary_raw(self, c: int) -> TokenEstimate:
        if self.spec.summarize is None or not self.starts or c <= self.starts[0]:
            return ZERO
        if c not in self.summary_cache:
            found = self.summary_for(c)
            known = self.replays.summaries.get(c)
            if found is None:
                size = ZERO
            elif known is not None and known[0] is found:
                size = known[1]
            else:
                size = estimate_system([summary_block(found)], self.model)
                self.replays.summaries[c] = (found, size)
            self.summary_cache[c] = size
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

    def decide(self, state: _State, p: int, measured: int | None) -> tuple[int, int, int, int | None]:
        """The view for request point ``p``: returns (cut, epoch, image boundary, violated limit or None).
        ``measured``: an exact count of the view the point would send, which corrects the calibration."""
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
        if measured is not None:
            # An exact count of the view as it stands corrects the calibration for this decision only.
            raw = self.raw_view(c, e, ib, p)
            state = _State(state.c, state.e, state.ib, state.calib.observe(measured, raw), None)
        ratio = state.calib.ratio
        margin = _margin(state.calib)

        def fresh(t: int, epoch: int) -> int:
            return math.ceil(self.size_fresh(t, epoch, ib, p, ratio) * (1 + margin))

        violated = None
        for index, (limit, target) in enumerate(self.limits):
            if c == state.c:
                size, exact = self.predict(state, (c, e, ib, self.compaction_start(p)), self.raw_view(c, e, ib, p))
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

    def recut(
        self, state: _State, p: int, view: tuple[int, int, int], predicted: int, exact: int, observed: int
    ) -> tuple[int, int, int] | None:
        """The window an exact count moved at point ``p``, found again from what the request was billed.

        Only the usage records that count: the view sent at ``p`` started at a later turn start ``t``, and its
        billed size less the calibrated size of its older part is what the new messages really weigh; with
        the exactly known rest of the uncut ``view``, that is what the count must have been, ``M_t``. The
        window is the ``t`` that a count of ``M_t`` cuts to; None when no turn start is (or when the plan
        here would not have asked for a count).
        """
        prev = state.prev
        if prev is None or not _worth_counting(predicted, exact, self.budget, state.calib):
            return None
        c, e, ib = view
        k = bisect.bisect_right(self.starts, p) - 1
        s = self.starts[k]
        ratio = state.calib.ratio
        q = prev.point + 1  # the first message new since the previous request
        reserve = self.reserve_new()  # what the live decision reserved for the summary of a new cut
        new_in_view = self.sizes.view(q, e, ib, p + 1)
        for j in range(bisect.bisect_right(self.starts, c), k + 1):
            t = self.starts[j]
            first = max(q, t)
            new_t = self.sizes.view(first, s, ib, p + 1)
            old_t = self.sizes.view(t, s, ib, first) + self.const + (reserve if t > self.starts[0] else ZERO)
            real_new = observed - old_t.tokens(ratio)
            if real_new <= 0 or not 0.25 <= real_new / max(1, new_t.tokens(ratio)) <= 4:
                continue
            measured = exact + real_new + (new_in_view - new_t).tokens(ratio)
            cut, epoch, boundary, _ = self.decide(state, p, measured)
            if cut == t:
                return cut, epoch, boundary
        return None

    def observed_at(self, p: int) -> int | None:
        return self.replays.usage.prompt(p + 1)

    def run(self, settings_key: Any, usage_history: Sequence[Any]) -> Decision:
        full = self.full
        first = self.starts[0] if self.starts else 0
        state = _State(first, first, 0)
        last = len(full) - 1
        all_replays = self.log.replays
        replays = all_replays.get(settings_key)
        if replays is None:
            if len(all_replays) >= 4:  # e.g. a system prompt that changes every turn
                all_replays.pop(next(iter(all_replays)))
            replays = all_replays[settings_key] = _Replays()
        self.replays = replays
        # Resume from the last checkpoint that still holds: the log up to its reply is the same (see
        # _Log.truncate), so are the usage of every reply up to it and the summary of its window.
        checkpoints = replays.checkpoints
        try:
            changed = replays.usage.update(usage_history)
        except BaseException:  # the index may be half updated: start this replay afresh
            del all_replays[settings_key]
            raise
        replays.keep(bisect.bisect_left(checkpoints, min(last, changed - 1), key=_point))
        self.usage = replays.usage.points
        if self.spec.summarize is not None:
            resummarised = [c for c, size in replays.summary_sizes.items() if self.summary_raw(c) != size]
            if resummarised:
                replays.keep(bisect.bisect_left(checkpoints, min(resummarised), key=_cut))
        if checkpoints:
            state = checkpoints[-1].state
        begin = checkpoints[-1].point + 1 if checkpoints else 0
        points = [i for i in range(begin, len(full)) if full[i].get("role") == "user"]
        if not points or points[-1] != last:
            points.append(last)  # a paused assistant turn is continued as it is (pause_turn)
        violated: int | None = None
        for p in points:
            final = p == last
            c, e, ib, violated = self.decide(state, p, self.measured if final else None)
            key = (c, e, ib, self.compaction_start(p))
            raw = self.raw_view(c, e, ib, p)
            predicted, exact = self.predict(state, key, raw)
            observed = None if final else self.observed_at(p)
            if observed is not None and observed < exact * _SHRUNK and self.spec.compaction is None:
                # The request made here billed clearly less than the part of this view already sent before:
                # it was not this view. An exact count found the view over the budget and the window was cut.
                recut = self.recut(state, p, (c, e, ib), predicted, exact, observed)
                if recut is not None:
                    c, e, ib = recut
                    key = (c, e, ib, self.compaction_start(p))
                    raw = self.raw_view(c, e, ib, p)
                    predicted, exact = self.predict(state, key, raw)
            moved = c != state.c
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
            trusted = observed is not None and predicted > 0 and 0.75 <= observed / predicted <= 1.34
            calib = state.calib.observe(observed, raw) if observed is not None else state.calib
            state = _State(c, e, ib, calib, _Prev(p, key, raw, predicted, observed, trusted), moved)
            checkpoints.append(_Checkpoint(p, state))
            replays.summary_sizes[c] = self.summary_raw(c)
        raise InvalidHistory("messages: the list is empty; a request needs at least one user message", index=None)


# ------------------------------------------------------------------------------------------ 1-hour anchors


_ANCHOR_LOOKBACK = 64  # request points searched back for the newest 1-hour write
_TTL_MARGIN = 60.0  # seconds kept under the 1-hour TTL for request latency


@dataclass(frozen=True)
class _CacheState:
    writes: int  # tokens this request will write
    held_now: int  # prefix a live 1-hour entry holds for this request
    held_next: int  # ... and still at the next request
    anchor: int | None  # the log index of that entry's last message


def _cache_state(
    replay: _Replay,
    decision: Decision,
    full: Sequence[Mapping[str, Any]],
    before_messages: int,
    gaps: Sequence[float],
    now: datetime | None,
) -> _CacheState:
    """What ``choose_ttl`` weighs: the tokens this request will write, and the prefix a live 1-hour entry
    holds.

    The writes are what the previous request of this view did not leave in the cache: nothing more than the
    new messages while its entries live; after they expired (``now`` tells), everything past the newest
    live 1-hour entry; after an image was added, every message (adding an image anywhere invalidates the
    cached messages: claude-api-facts.md, "Prompt caching"). Without ``now`` the previous entries are taken
    as live.
    """
    new = max(0, decision.predicted - decision.exact_prefix)
    prev = decision.previous
    if prev is None:
        return _CacheState(new, 0, 0, None)
    if any(_has_image(m) for m in itertools.islice(full, prev.point + 1, None)):
        return _CacheState(max(new, decision.predicted - before_messages), 0, 0, None)
    points = replay.usage
    newest = points.get(prev.point + 1)
    if newest is None or newest.created_at is None or not newest.usage:
        return _CacheState(new, 0, 0, None)
    now = now or newest.created_at
    held_now = held_next = 0
    anchor = _newest_anchor(replay, prev.key)
    if anchor is not None:
        age = (now - anchor[1]).total_seconds()
        if age < TTL_SECONDS["1h"] - _TTL_MARGIN:
            held_now = anchor[0]
        if age + max(gaps, default=TTL_SECONDS["5m"]) < TTL_SECONDS["1h"] - _TTL_MARGIN:
            held_next = anchor[0]
    last = TokenUsage.from_api(_first_request_usage(newest.usage))
    one_hour = last.ephemeral_1h_input_tokens > 0 and last.ephemeral_5m_input_tokens == 0
    lifetime = TTL_SECONDS["1h" if one_hour else "5m"]
    writes = new
    if (now - newest.created_at).total_seconds() >= lifetime - _TTL_MARGIN / 4:
        writes = max(new, decision.predicted - held_now)
    return _CacheState(writes, held_now, held_next, anchor[2] if anchor is not None else None)


def _newest_anchor(replay: _Replay, key: tuple[int, int, int, int]) -> tuple[int, datetime, int] | None:
    """``(prompt tokens, time, log index of the request's newest message)`` of the newest 1-hour cache entry
    written by an earlier request of the view ``key``, or ``None``.

    From the billed usage: the newest request that wrote at the 1-hour TTL holds its prefix up to its last
    1-hour write (longer TTLs come first, so that is cache read + 1-hour write). It does not count when a
    later request of the view read less than that (it was gone, or invalidated). An entry is refreshed only
    when it is the one read, so its age runs from its write.
    """
    points = replay.usage
    least_read = _NEVER
    for checkpoint in itertools.islice(reversed(replay.replays.checkpoints), _ANCHOR_LOOKBACK):
        state = checkpoint.state.prev
        if state is None or state.key != key:
            return None
        point = points.get(state.point + 1)
        if point is None or not point.usage:
            return None
        usage = TokenUsage.from_api(_first_request_usage(point.usage))
        if usage.ephemeral_1h_input_tokens > 0:
            held = usage.cache_read_input_tokens + usage.ephemeral_1h_input_tokens
            if held > least_read or point.created_at is None:
                return None
            return held, point.created_at, state.point
        least_read = min(least_read, usage.cache_read_input_tokens)
    return None


# How much smaller than the view's billed part a request must have been billed to tell a cut: prefixes bill
# the same, but some models leave earlier thinking out of the count, and a cut worth telling drops more.
_SHRUNK = 0.9


def _worth_counting(predicted: int, exact: int, budget: int, calibration: Calibration) -> bool:
    """``RequestPlan.check_count``: the estimate is close enough to the budget for an exact count to matter."""
    uncertainty = 0.25 if calibration.observations == 0 else 0.1
    return predicted > budget * (1 - uncertainty) and predicted - exact > 0


def _margin(calibration: Calibration) -> float:
    """Safety margin on the estimated (not yet billed) part of a request when checking it against a limit:
    wider until the session's calibration has seen a few requests."""
    return 0.08 if calibration.observations >= 3 else 0.15


def _first_request_usage(usage: Mapping[str, Any]) -> Mapping[str, Any]:
    """The usage of the request made at a point. A reply that took several calls (pause_turn) stores the
    calls under ``requests``; the first one is the request the point made."""
    inner = usage.get("requests")
    if isinstance(inner, list) and inner and isinstance(inner[0], Mapping):
        return inner[0]
    return usage


def _compacted(usage: Mapping[str, Any]) -> bool:
    """Whether the request made at a point ran a server compaction pass. Its size is then not observed: the
    top-level usage is the reply's pass over the compacted context, and the compaction iteration may bill less
    than the context it closed (SDK ``BetaUsage.iterations`` docs); so it neither calibrates the estimate nor
    pins the size of the next request."""
    iterations = _first_request_usage(usage).get("iterations")
    return isinstance(iterations, list) and any(
        isinstance(item, Mapping) and item.get("type") == "compaction" for item in iterations
    )


def _first_request_prompt(usage: Mapping[str, Any]) -> int:
    """Prompt tokens of the request made at a point."""
    return observed_prompt_tokens(_first_request_usage(usage))


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
    now: datetime | None = None,
) -> Planned:
    spec = _spec(policy)
    if not full:
        raise InvalidHistory("messages: nothing to send; a request needs at least one user message", index=None)
    sizes = (estimate_system(system, model), estimate_tools(tools, model))
    const = sizes[0] + sizes[1]
    with _CACHE_LOCK:
        replay = _Replay(full, spec, model, const, summaries, measured_input_tokens)
        _validate(full, replay.log)
        decision = replay.run((spec.name, const.text, const.fixed), usage_history)
        return _build(full, spec, replay, decision, model, system, tools, sizes, cache, now)


def _validate(full: Sequence[Mapping[str, Any]], log: _Log) -> None:
    """The log as a whole must be valid (errors then name the real index, not one inside the view). What was
    validated before is not checked again: from the last turn start of the known-good part on is enough."""
    sending = full[-1].get("role") == "user"
    k = bisect.bisect_right(log.starts, log.validated) - 1
    j = log.starts[k] if k >= 0 and log.validated > 0 else 0
    try:
        validate(_unmarked(full[j:]), for_sending=sending)
    except InvalidHistory:
        validate(_unmarked(full), for_sending=sending)  # raises with the index in the whole log
        raise
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


def _build(
    full: Sequence[Mapping[str, Any]],
    spec: _Spec,
    replay: _Replay,
    decision: Decision,
    model: str,
    system: str | Sequence[Mapping[str, Any]] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    sizes: tuple[TokenEstimate, TokenEstimate],
    cache: bool | str,
    now: datetime | None,
) -> Planned:
    """``sizes``: the estimates of ``system`` and ``tools``, made once by ``plan``."""
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

    # The view: the window's cached transform of the log, extended by the new messages, copied out.
    window = _view_for(full, spec, replay.log, decision)
    view = [
        {"role": role, "content": content if isinstance(content, str) else list(content)}
        for role, content in zip(window.roles, window.contents, strict=True)
    ]

    sys_blocks, sys_was_str = _system_blocks(system)
    static_count = len(sys_blocks)
    summary_request: SummaryRequest | None = None
    summary = None
    if spec.summarize is not None and decision.start > (starts[0] if starts else 0):
        summary = replay.summary_for(decision.start)
        if summary is None and decision.cut_moved:
            s = spec.summarize
            summary_request = build_summary_request(
                full,
                decision.start,
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
    flat = _Blocks([*tool_list, *sys_blocks], view, window.offsets)
    head = len(flat.head)

    # The caller's own markers: their blocks are copied (blocks are shared with the log).
    marked = [i for i in range(head) if marker_ttl(flat.head[i]) is not None]
    for m_index in window.marked:
        content = view[m_index]["content"]
        base = head + window.offsets[m_index]
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
            tokens = prefix_before_messages + window.running[m_index].tokens(ratio)
            return max(tokens, decision.predicted) if m_index == last else tokens

        def end_of(m_index: int) -> int:
            j = window.ends[m_index]
            return head + window.offsets[m_index] + j if j >= 0 else -1

        candidates: list[Candidate] = []
        newest_pos = end_of(last) if view else -1
        if newest_pos >= 0:
            candidates.append(Candidate(newest_pos, prefix_at(last), 0, "newest message"))
        prev = decision.previous
        if prev is not None:
            m_prev = bisect.bisect_left(window.origins, prev.point)
            if m_prev < len(view) and end_of(m_prev) >= 0 and newest_pos - end_of(m_prev) >= LOOKBACK:
                candidates.append(Candidate(end_of(m_prev), prefix_at(m_prev), 1, "previous request"))
        if static_count:
            candidates.append(Candidate(len(tool_list) + static_count - 1, (const.tokens(ratio)), 2, "system prompt"))
        elif tool_list:
            candidates.append(Candidate(len(tool_list) - 1, tools_tokens, 2, "tools"))
        if len(sys_blocks) > static_count:
            candidates.append(Candidate(len(tool_list) + len(sys_blocks) - 1, prefix_before_messages, 3, "summary"))
        if len(view) > 1 and end_of(0) >= 0 and decision.start > (starts[0] if starts else 0):
            candidates.append(Candidate(end_of(0), prefix_at(0), 4, "window start"))
        if isinstance(cache, str) and cache in ("5m", "1h"):
            ttl = cache
        else:
            prices = _prices(model)
            gaps = replay.replays.usage.recent_gaps(starts, GAP_WINDOW)
            state = _cache_state(replay, decision, full, prefix_before_messages, gaps, now)
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
                m_anchor = bisect.bisect_left(window.origins, state.anchor)
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
    kept_turns = len(starts) - bisect.bisect_left(starts, decision.start)
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
    check_count = _worth_counting(total, decision.exact_prefix, replay.budget, decision.calibration)
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
