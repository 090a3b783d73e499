"""The replay: the planner's decision for a request, re-made from the stored log alone (pure).

Why a replay: a cache-friendly window must cut at the *same* place turn after turn until the budget is
exceeded again, and the newest models need to know which thinking blocks are still bound to an unchanged
prefix. Both follow from the history of decisions, and that history is a pure function of the stored log: the
replay walks every request point of the log (each user message: a turn start or a tool-result message) in
order and re-makes, with the information available at that time, the decision that was made then, a
``Window``:

- the calibration ratio at a point uses only usage observed before it, so past decisions never change when
  new usage arrives;
- the window's ``cut`` (a turn start, see ``history.turn_starts``) only moves forward, when a policy asks;
- its ``epoch`` is the turn start where the view last changed shape (cut moved, old images replaced).
  Thinking blocks of turns before the epoch are dropped (they were bound to a different prefix), those from
  it on are kept, since their prefix is byte-identical to the one they were produced with;
- the size of a view is known exactly up to the previous request (its ``usage``) when the view only
  grew since; only what was added is estimated;
- a cut made by an exact count (``measured_input_tokens``) is not in the log, but the request it shaped was
  billed clearly less than the part of the uncut view already billed before: the replay then finds the window
  that count led to from that billed size (``Replay.recut``), so the next turns keep it.

Nothing needs to be persisted beside the log and its usage records. The state after each point is kept as a
checkpoint (``Replays``, on the session's ``LogIndex``), so a call replays only the points that are new, or
those after the first point whose inputs changed (an edited message, other usage or summaries).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidHistory
from ..models import model_info
from ..stores.base import Summary
from ..tokens import (
    BOUND_BLOCK_OVERHEAD,
    BOUND_MESSAGE_OVERHEAD,
    UNBOUNDED,
    ZERO,
    Calibration,
    TokenEstimate,
    bound_system,
    estimate_system,
)
from .log_index import LogIndex, NotLoaded
from .policy_spec import PolicySpec
from .summary import summary_block
from .usage_index import UsageIndex, UsagePoint
from .window import Window

__all__ = ["Decision", "Previous", "Replay", "Replays", "State", "margin", "worth_counting"]

# Every request is also kept inside the model's context window, whatever the policy: above this share of the
# window the view is cut down (in one step) to the low share.
WINDOW_SAFETY = 0.95
WINDOW_LOW = 0.6
DEFAULT_WINDOW = 200_000

# How much smaller than the view's billed part a request must have been billed to tell a cut: prefixes bill
# the same, but some models leave earlier thinking out of the count, and a cut worth telling drops more.
_SHRUNK = 0.9
# A window may be cut further than the estimate asks, so that it provably fits (no count), down to this share
# of its budget.
_PROVABLE_FLOOR = 0.5
# A window without a low-water mark is cut early (see ``Replay._cut_early``) when its room is this many turns.
_EARLY_TURNS = 2
# Sums of the bound's gaps kept per replay (``Replay.chain``), one per image boundary and compaction start.
_CHAINS = 8


# Slotted: a warm session keeps one of each per request point of its log.
@dataclass(slots=True)
class Previous:
    """The request made at an earlier point of the same replay: its window, sizes and what it was billed."""

    point: int
    window: Window
    raw: TokenEstimate
    predicted: int
    observed: int | None
    trusted: bool  # observed close enough to predicted to extend it exactly


@dataclass(slots=True)
class State:
    """The replay's state after a request point: the window it sent, the calibration, that request."""

    window: Window
    calibration: Calibration = field(default_factory=Calibration)
    previous: Previous | None = None
    cut_moved: bool = False
    # The smallest request billed so far: the system prompt and tools weigh no more than that.
    smallest: int | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The replay's state after request point ``point``."""

    point: int
    state: State


def _point(checkpoint: Checkpoint) -> int:
    return checkpoint.point


def _cut(checkpoint: Checkpoint) -> int:
    return checkpoint.state.window.cut


@dataclass
class _Gaps:
    """``Replay.chain``'s sums for one pair of window fields (image boundary, compaction start): ``sums[i]`` is
    the sum of the gaps between the requests of checkpoints ``j - 1`` and ``j`` for ``j`` in ``1..i``, so the
    chain from any start ``k`` is a difference; ``broken``: the ``j`` whose pair lacks a request (ascending);
    ``epochs[i]``: the latest epoch an exact gap among the first ``i`` needs."""

    sums: list[int] = field(default_factory=lambda: [0])
    epochs: list[int] = field(default_factory=lambda: [0])
    broken: list[int] = field(default_factory=list)

    def keep(self, count: int) -> None:
        del self.sums[max(1, count) :], self.epochs[max(1, count) :]
        while self.broken and self.broken[-1] >= count:
            self.broken.pop()


class Replays:
    """The replay of one set of settings over a log: the state after each request point, valid for the usage
    history and the summaries it was computed with (kept here to tell what changed at the next call)."""

    def __init__(self) -> None:
        self.checkpoints: list[Checkpoint] = []
        self.usage = UsageIndex()
        self.summary_sizes: dict[int, TokenEstimate] = {}  # cut -> summary size the replay used
        self.summaries: dict[int, tuple[Summary, TokenEstimate]] = {}  # cut -> size, by record
        # Restored from a checkpoint: the points before the first checkpoint are unknown (unless it is the
        # first request), and those before ``floor`` hold only the request made there (for the 1-hour anchor
        # search and the bound), not a state to resume.
        self.partial = False
        self.floor = 0
        # (image boundary, compaction start) -> the bound's gaps between consecutive requests, summed
        self.chains: dict[tuple[int, int], _Gaps] = {}
        # point -> (its checkpoint, the JSON of its request): what checkpoint.snapshot wrote for it before
        self.encoded: dict[int, tuple[Checkpoint, str]] = {}
        # (index, first, last, text, where each request's part starts in it): the run of requests
        # checkpoint.snapshot joined last, for the next one
        self.joined: tuple[int, Checkpoint, Checkpoint, str, list[int]] | None = None

    def keep(self, count: int) -> None:
        """Keep the first ``count`` checkpoints."""
        if count >= len(self.checkpoints):
            return
        del self.checkpoints[count:]
        for gaps in self.chains.values():
            gaps.keep(count)
        last = self.checkpoints[-1].state.window.cut if self.checkpoints else -1
        for cut in [cut for cut in self.summary_sizes if cut > last]:
            del self.summary_sizes[cut]

    def forget_from(self, n: int) -> None:
        """Drop the checkpoints that depend on messages from ``n`` on (the reply to point ``n - 1`` is one)."""
        self.keep(bisect.bisect_left(self.checkpoints, n - 1, key=_point))

    def keep_before_point(self, point: int) -> None:
        self.keep(bisect.bisect_left(self.checkpoints, point, key=_point))

    def keep_before_cut(self, cut: int) -> None:
        self.keep(bisect.bisect_left(self.checkpoints, cut, key=_cut))


@dataclass(frozen=True)
class Decision:
    """What the replay decided for the newest request point."""

    window: Window
    raw: TokenEstimate  # whole request, uncalibrated
    predicted: int  # whole request, calibrated, exact up to the previous request when it only grew
    exact_prefix: int
    limit: int | None  # the tightest budget the request had to fit
    calibration: Calibration
    previous: Previous | None  # the previous request of the same window, if any
    cut_moved: bool
    upper: int = UNBOUNDED  # never below the request's real size (Replay.upper_bound)


class Replay:
    """One call's replay: the settings, the sizes of the constant part and of summaries, and the decisions."""

    def __init__(
        self,
        full: Sequence[Mapping[str, Any]],
        log: LogIndex,
        spec: PolicySpec,
        model: str,
        const: TokenEstimate,
        summaries: Sequence[Summary],
        measured: int | None,
        const_bound: int = UNBOUNDED,
    ) -> None:
        self.full = full
        self.log = log
        self.spec = spec
        self.model = model
        self.const = const  # system and tools
        self.const_bound = const_bound  # their worst case (tokens.bound_system + bound_tools)
        self.summaries = summaries
        self.measured = measured
        self.starts = log.starts
        self.thinking_count = log.thinking_count
        self.compactions = log.compactions
        info = model_info(model)
        self.context_window = info.context_window if info is not None else DEFAULT_WINDOW
        self.guard = (int(self.context_window * WINDOW_SAFETY), int(self.context_window * WINDOW_LOW))
        self.limits = list(spec.windows) if spec.compaction is None else []
        self.limits.append(self.guard)
        self.binds = info.binds_thinking if info is not None else True
        self.budget = min(m for m, _ in self.limits)
        self.summary_cache: dict[int, TokenEstimate] = {}
        self._summary_ends: dict[int, Summary] | None = None
        # Set by run(): this settings' replay and the usage history as it stands.
        self.replays = Replays()
        self.usage: Mapping[int, UsagePoint] = {}

    # sizes -----------------------------------------------------------------------------------------
    def summary_for(self, cut: int) -> Summary | None:
        """``summary.summary_for(summaries, cut)``, from one pass over the summaries."""
        if self._summary_ends is None:
            self._summary_ends = {s.end: s for s in self.summaries if s.start == 0 and s.text.strip()}
        return self._summary_ends.get(cut)

    def summary_raw(self, cut: int) -> TokenEstimate:
        """Raw size of the summary sent with a window cut at ``cut`` (ZERO: none)."""
        if self.spec.summarize is None or not self.starts or cut <= self.starts[0]:
            return ZERO
        if cut not in self.summary_cache:
            found = self.summary_for(cut)
            known = self.replays.summaries.get(cut)
            if found is None:
                size = ZERO
            elif known is not None and known[0] is found:
                size = known[1]
            else:
                size = estimate_system([summary_block(found)], self.model)
                self.replays.summaries[cut] = (found, size)
            self.summary_cache[cut] = size
        return self.summary_cache[cut]

    def reserve_new(self) -> TokenEstimate:
        """Room kept for a summary that does not exist yet."""
        if self.spec.summarize is None:
            return ZERO
        # A new summary is at most max_summary_tokens long (the summariser's max_tokens), plus its header.
        header = estimate_system([{"type": "text", "text": "x" * 200}], self.model)
        return TokenEstimate(header.text, self.spec.summarize.max_summary_tokens)

    def compaction_start(self, point: int) -> int:
        k = bisect.bisect_right(self.compactions, point) - 1
        return self.compactions[k] if k >= 0 else 0

    def raw_view(self, window: Window, point: int) -> TokenEstimate:
        """Raw size of the request that sends ``window`` at ``point`` (system, tools and summary included)."""
        first = max(window.cut, window.compaction_start) if self.spec.compaction is not None else window.cut
        size = self.log.size(first, window.epoch, window.image_boundary, point + 1)
        return size + self.const + self.summary_raw(window.cut)

    def predict(self, state: State, window: Window, raw: TokenEstimate) -> tuple[int, int]:
        """(predicted tokens, exactly known part) of ``window`` with ``raw`` estimate."""
        ratio = state.calibration.ratio
        previous = state.previous
        if previous is not None and previous.window == window and previous.observed is not None and previous.trusted:
            return previous.observed + max(0, (raw - previous.raw).tokens(ratio)), previous.observed
        return raw.tokens(ratio), 0

    def summary_bound(self, cut: int) -> int:
        """Worst-case tokens of the summary sent with a window cut at ``cut`` (0: none). A summary that does not
        exist yet is asked for first and the request planned again with it, so what is bounded here is either
        the summary that is sent or none (a failed summary)."""
        if self.spec.summarize is None or not self.starts or cut <= self.starts[0]:
            return 0
        found = self.summary_for(cut)
        return bound_system([summary_block(found)], self.model) if found is not None else 0

    def upper_bound(self, state: State, window: Window, point: int) -> int:
        """A size the request sending ``window`` at ``point`` cannot exceed, from what usage measured exactly
        and the worst case (``tokens.bound_message``, ``new_bound``) of what it never measured:

        - the window of the previous request, grown: that request's billed size plus the new messages' bound;
        - a window whose cut only moved forward since the previous request: that request's billed size, less a
          lower bound of what the move dropped, plus the bound of what is new (``_slide_bound``);
        - a window cut at a turn start ``t`` (a request point): its messages are ``t`` and then the messages
          between consecutive requests since ``t``. Two consecutive requests sent in the same window (the same
          system, tools, summary and cut) were billed exactly those messages apart, and they can only be
          lighter in the new view (thinking dropped, where the images are replaced at the same place); other
          gaps, ``t`` itself, the system and tools and the summary count their bound;
        - otherwise the bound of the whole request.

        It assumes what every exact figure here assumes: the billed requests carried the same system prompt and
        tools (the replay is per settings), and a request's usage is its own (``trusted``: billed close to its
        prediction)."""
        previous = state.previous
        if previous is not None and previous.window == window and previous.observed is not None and previous.trusted:
            return previous.observed + self.new_bound(previous.point + 1, point + 1)
        whole = min(self._whole_bound(window, point), self._slide_bound(state, window, point))
        t = window.cut
        checkpoints = self.replays.checkpoints
        if self.replays.partial and (not checkpoints or t < checkpoints[0].point):
            raise NotLoaded("the requests of this window reach before the part of the log that was read")
        k = bisect.bisect_left(checkpoints, t, key=_point)
        if previous is None or k == len(checkpoints) or checkpoints[k].point != t or t > previous.point:
            return whole
        # The request points t = p_0 < p_1 < ... < p_m = previous.point, each with its window and billed size.
        const = self.const_bound if state.smallest is None else min(self.const_bound, state.smallest)
        total = const + self.summary_bound(t) + self.log.bound(t, t + 1)
        gaps = self.chain(k, window)
        if gaps is None:
            return whole
        # Every gap is >= 0, so the sum only grows: its minimum with ``whole`` is what stopping early gives.
        return min(whole, total + gaps + self.new_bound(previous.point + 1, point + 1))

    def chain(self, k: int, window: Window) -> int | None:
        """The sum over the consecutive requests of checkpoints ``k``, ``k + 1``, ... (to the newest) of what
        the messages between them weigh at most in ``window`` (``upper_bound``); None when one of them made no
        request. The gaps are kept as prefix sums per window fields ``_exact_gap`` reads (``Replays.chains``)
        and extended by the checkpoints added since, so the chain from any cut is O(1) and a replay of n points
        costs O(n), not O(n^2): every decision asks it, and a moving cut asks it for each candidate cut."""
        checkpoints = self.replays.checkpoints
        key = (window.image_boundary, window.compaction_start)
        found = self.replays.chains.get(key)
        if found is None:
            chains = self.replays.chains
            while len(chains) >= _CHAINS:
                del chains[next(iter(chains))]
            found = chains[key] = _Gaps()
        sums, epochs = found.sums, found.epochs
        for j in range(len(sums), len(checkpoints)):
            last, request = checkpoints[j - 1].state.previous, checkpoints[j].state.previous
            epoch = epochs[-1]
            if request is None or last is None:
                found.broken.append(j)
                gap = 0
            elif self._exact_in(last, request, window.image_boundary, window.compaction_start):
                assert request.observed is not None and last.observed is not None
                gap = request.observed - last.observed
                epoch = max(epoch, last.window.epoch)
            else:
                gap = self.new_bound(last.point + 1, request.point + 1)
            sums.append(sums[-1] + gap)
            epochs.append(epoch)
        if found.broken and found.broken[-1] > k:
            return None
        if window.epoch < epochs[-1]:
            # An exact gap summed above may not hold in a window of an earlier epoch (never met by the replay,
            # whose epochs only move forward): walk the chain for this window alone.
            return self._chain_walk(k, window)
        return sums[-1] - sums[k]

    def _chain_walk(self, k: int, window: Window) -> int | None:
        """``chain`` without the kept sums (the definition)."""
        checkpoints = self.replays.checkpoints
        total = 0
        last = checkpoints[k].state.previous
        for checkpoint in itertools.islice(checkpoints, k + 1, None):
            request = checkpoint.state.previous
            if request is None or last is None:
                return None
            if self._exact_gap(last, request, window):
                assert request.observed is not None and last.observed is not None
                total += request.observed - last.observed
            else:
                total += self.new_bound(last.point + 1, request.point + 1)
            last = request
        return total

    def _slide_bound(self, state: State, window: Window, point: int) -> int:
        """The bound of a window that only moved its cut forward since the previous request: that request's
        billed size, less a proven lower bound (``lower_span``) of what the move drops, plus the bound of the
        summary of the new cut and of the new messages. The kept messages weigh no more than they did (the
        same images; thinking may only be dropped), the old summary at least nothing."""
        previous = state.previous
        if previous is None or previous.observed is None or not previous.trusted or self.spec.compaction is not None:
            return UNBOUNDED
        before = previous.window
        if not (
            before.cut < window.cut <= previous.point
            and before.image_boundary == window.image_boundary
            and before.compaction_start == window.compaction_start
            and before.epoch <= window.epoch
        ):
            return UNBOUNDED
        dropped = self.lower_span(before.cut, window.cut, before.image_boundary)
        added = self.summary_bound(window.cut) + self.new_bound(previous.point + 1, point + 1)
        return min(UNBOUNDED, max(0, previous.observed - dropped) + added)

    def lower_span(self, s: int, e: int, image_boundary: int, depth: int = 2) -> int:
        """A size messages ``[s, e)`` (request points) cannot be below in any later view replacing images up to
        ``image_boundary``: the billed difference of consecutive requests where it is known (``_lower_gap``),
        each reply's output tokens elsewhere (``_lower_messages``), nothing for the rest. A replay restored from
        a checkpoint that did not read ``s`` or keep its request cannot give the full replay's figure: it says so
        (``NotLoaded``) rather than plan from a smaller one."""
        checkpoints = self.replays.checkpoints
        if s < self.log.horizon or (self.replays.partial and (not checkpoints or s < checkpoints[0].point)):
            raise NotLoaded("the requests of the part a window drops reach before the part of the log that was read")
        k = bisect.bisect_left(checkpoints, s, key=_point)
        if k == len(checkpoints) or checkpoints[k].point != s:
            return self._lower_messages(s, e)
        total = self._lower_messages(s, s + 1)
        last = checkpoints[k].state.previous
        at = s + 1
        for checkpoint in itertools.islice(checkpoints, k + 1, None):
            request = checkpoint.state.previous
            if checkpoint.point >= e or request is None:
                break
            gap = self._lower_messages(at, request.point + 1)
            if last is not None and depth > 0:
                gap = max(gap, self._lower_gap(last, request, image_boundary, depth))
            total += gap
            at, last = request.point + 1, request
        return total + self._lower_messages(at, e)

    def _lower_gap(self, a: Previous, b: Previous, image_boundary: int, depth: int) -> int:
        """A lower bound of messages ``(a.point, b.point]`` in a later view, from the sizes requests ``a`` and
        ``b`` were billed: exactly their difference in one window; across a move of the cut, that difference
        plus a lower bound of what the move dropped, less the bound of ``b``'s summary (``a``'s kept part
        weighs at least what it does in ``b``). Messages with thinking may weigh less later: none."""
        log = self.log
        if a.observed is None or b.observed is None or not (a.trusted and b.trusted) or a.point + 1 < log.horizon:
            return 0
        if log.thinking_count[b.point + 1] != log.thinking_count[a.point + 1]:
            return 0
        wa, wb = a.window, b.window
        same_images = wa.image_boundary == wb.image_boundary == image_boundary
        if not same_images or wa.compaction_start != wb.compaction_start:
            return 0
        gap = b.observed - a.observed
        if wa == wb:
            return max(0, gap)
        if wa.cut < wb.cut <= a.point and wa.epoch <= wb.epoch:
            dropped = self.lower_span(wa.cut, wb.cut, image_boundary, depth - 1)
            return max(0, gap + dropped - self.summary_bound(wb.cut))
        return 0

    def _lower_messages(self, a: int, b: int) -> int:
        """A lower bound of messages ``[a, b)`` from what was billed of them: a reply without thinking weighs,
        sent back, at least the output it was billed (the same tokens, plus framing); the rest nothing."""
        total = 0
        log = self.log
        for i in range(max(a, log.horizon), b):
            if log.roles[i] != "assistant" or log.thinking_count[i + 1] != log.thinking_count[i]:
                continue
            point = self.usage.get(i)
            output = point.usage.get("output_tokens") if point is not None and point.usage is not None else None
            if isinstance(output, int) and output > 0:
                total += output
        return total

    def _exact_gap(self, a: Previous, b: Previous, window: Window) -> bool:
        """Requests ``a`` then ``b`` were billed exactly the messages between them apart, and those messages
        weigh no more in ``window``."""
        return self._exact_in(a, b, window.image_boundary, window.compaction_start) and a.window.epoch <= window.epoch

    @staticmethod
    def _exact_in(a: Previous, b: Previous, image_boundary: int, compaction_start: int) -> bool:
        """``_exact_gap`` for any window with these fields whose epoch is not before ``a``'s."""
        return (
            a.window == b.window
            and a.observed is not None
            and b.observed is not None
            and a.trusted
            and b.trusted
            and b.observed >= a.observed
            and a.window.image_boundary == image_boundary
            and a.window.compaction_start == compaction_start
        )

    def new_bound(self, a: int, b: int) -> int:
        """Worst-case tokens of messages ``[a, b)``, the few that are new since the previous request. A reply
        of the model weighs, sent back, what it was billed as output (the same tokens; thinking may only be
        left out) plus its framing: the smaller of that and its content's bound."""
        total = 0
        log = self.log
        for i in range(a, b):
            size = log.bound(i, i + 1)
            point = self.usage.get(i) if log.roles[i] == "assistant" else None
            output = point.usage.get("output_tokens") if point is not None and point.usage is not None else None
            if isinstance(output, int) and output >= 0:
                blocks = log.lengths[i] if log.lengths[i] > 0 else 1
                size = min(size, output + BOUND_MESSAGE_OVERHEAD + BOUND_BLOCK_OVERHEAD * blocks)
            total += size
        return min(UNBOUNDED, total)

    def _whole_bound(self, window: Window, point: int) -> int:
        first = max(window.cut, window.compaction_start) if self.spec.compaction is not None else window.cut
        return min(UNBOUNDED, self.const_bound + self.summary_bound(window.cut) + self.log.bound(first, point + 1))

    # decisions -------------------------------------------------------------------------------------
    def image_boundary(self, turn_index: int) -> int:
        """Where images stop being replaced when turn ``turn_index`` (into ``starts``) is the newest."""
        images = self.spec.images
        if images is None:
            return 0
        n = images.after_turns
        batch = ((turn_index - n + 1) // n) * n if turn_index - n + 1 > 0 else 0
        if 0 < batch < self.log.unknown_starts:
            raise NotLoaded(f"turn start {batch} is before the part of the log that was read")
        return self.starts[batch] if batch > 0 else 0

    def size_fresh(self, cut: int, epoch: int, image_boundary: int, point: int, ratio: float) -> int:
        """Size of a view whose ``cut`` is new at this point: a summary for it does not exist yet, so its
        maximum size is reserved (the same figure the replay sees later, when the summary does exist)."""
        raw = self.log.size(cut, epoch, image_boundary, point + 1) + self.const
        if self.spec.summarize is not None and self.starts and cut > self.starts[0]:
            raw = raw + self.reserve_new()
        return raw.tokens(ratio)

    def decide(self, state: State, point: int, measured: int | None) -> tuple[Window, int | None]:
        """The window for request ``point`` and the limit it violates (None: it fits). ``measured``: an exact
        count of the view the point would send, which corrects the calibration."""
        starts = self.starts
        turn_index = bisect.bisect_right(starts, point) - 1
        if turn_index < 0:  # no turn started yet (cannot happen in a valid log)
            return state.window, None
        turn_start = starts[turn_index]
        boundary = self.image_boundary(turn_index)
        compaction = self.compaction_start(point)
        before = state.window
        cut = max(before.cut, starts[0])
        # Inside a tool-use turn whose replies carry thinking, on a model that binds thinking to its prefix,
        # moving the window would invalidate the turn's own signatures (and the API needs them back): the
        # window stays put until the next turn starts; only the context window itself is enforced.
        frozen = point != turn_start and self.binds and self.thinking_count[point] > self.thinking_count[turn_start]
        if self.spec.last_turns is not None and not frozen:
            cut = max(cut, starts[max(0, turn_index - self.spec.last_turns + 1)])
        epoch = before.epoch if (cut == before.cut and boundary == before.image_boundary) else turn_start
        turn_start_epoch = epoch  # the view as it stands, which ``measured`` counted
        if measured is not None:
            # An exact count of the view as it stands corrects the calibration for this decision only (and
            # that view weighs what was counted: the smoothed ratio alone could take it for one that fits).
            raw = self.raw_view(Window(cut, epoch, boundary, compaction), point)
            state = State(before, state.calibration.observe(measured, raw), None, smallest=state.smallest)
        ratio = state.calibration.ratio
        safety = margin(state.calibration)

        def fresh(start: int, start_epoch: int) -> int:
            return math.ceil(self.size_fresh(start, start_epoch, boundary, point, ratio) * (1 + safety))

        violated = None
        for index, (limit, target) in enumerate(self.limits):
            if cut == before.cut:
                window = Window(cut, epoch, boundary, compaction)
                size, exact = self.predict(state, window, self.raw_view(window, point))
                size += math.ceil((size - exact) * safety)
                if measured is not None and epoch == turn_start_epoch:
                    size = max(size, measured)
            else:
                size = fresh(cut, epoch)
            early = False
            if size <= limit:
                if cut != before.cut or not self._cut_early(
                    state, Window(cut, epoch, boundary, compaction), point, size, limit, target, index, frozen, measured
                ):
                    continue
                early = True
            if self.spec.compaction is not None or frozen:
                # Nothing may be cut: the soft budgets wait for the next turn; the context window cannot wait.
                if self.spec.compaction is not None or index == len(self.limits) - 1:
                    violated = limit if violated is None else min(violated, limit)
                continue
            # Cut in one step: the smallest later turn start whose view fits the target (monotone in it).
            a, b = bisect.bisect_right(starts, cut), turn_index
            if a > b or fresh(starts[b], turn_start) > target:
                a = b
            while a < b:
                mid = (a + b) // 2
                if fresh(starts[mid], turn_start) <= target:
                    b = mid
                else:
                    a = mid + 1
            a = self._provable_cut(state, a, turn_index, turn_start, boundary, compaction, point, limit, fresh)
            if early and self.upper_bound(state, Window(starts[a], turn_start, boundary, compaction), point) > limit:
                continue  # the cut view would need a count too: count the view as it stands instead
            cut, epoch = starts[a], turn_start
            if fresh(cut, epoch) > limit:
                violated = limit if violated is None else min(violated, limit)
        return Window(cut, epoch, boundary, compaction), violated

    def _cut_early(
        self,
        state: State,
        window: Window,
        point: int,
        size: int,
        limit: int,
        target: int,
        index: int,
        frozen: bool,
        measured: int | None,
    ) -> bool:
        """Cut a window now, though its estimate fits, rather than count it: its bound does not fit, so it
        would be counted, and it will be cut within a turn or so anyway. With a low-water mark, only when what is
        uncertain (bound less estimate) is small beside the room the low-water mark leaves (half of it),
        so an early cut costs little; a large new message of uncertain weight is counted instead. The caller
        also keeps the window when the cut view's own bound does not fit (it would be counted as well)."""
        if measured is not None or frozen or self.spec.compaction is not None:
            return False
        if index == len(self.limits) - 1 or window.cut != state.window.cut:
            return False  # the context window's guard is always counted near its limit
        upper = self.upper_bound(state, window, point)
        if not worth_counting(upper, size, limit, state.calibration, self.guard[0]):
            return False
        if target >= limit:
            # No low-water mark (TokenBudget): the window is cut by a turn or so whenever it is full. Cut it now,
            # to where it provably fits (``_provable_cut``), when it would be cut within about two turns anyway;
            # with more room a cut would rewrite a cached window that could still grow: count instead.
            turns = max(1, bisect.bisect_right(self.starts, point) - bisect.bisect_left(self.starts, window.cut))
            return limit - size <= _EARLY_TURNS * size / turns
        return upper - size <= (limit - target) // 2

    def _provable_cut(
        self,
        state: State,
        a: int,
        turn_index: int,
        turn_start: int,
        boundary: int,
        compaction: int,
        point: int,
        limit: int,
        fresh: Callable[[int, int], int],
    ) -> int:
        """The turn start (index into ``starts``) to cut at, from ``a``, the earliest whose estimate fits: a
        few turns later when that is where the request provably fits (``upper_bound``) and at ``a`` it would
        need a count (``worth_counting``); ``a`` itself when no cut within reach does."""
        starts = self.starts
        for j in range(a, turn_index + 1):
            size = fresh(starts[j], turn_start)
            if size < limit * _PROVABLE_FLOOR:
                break
            window = Window(starts[j], turn_start, boundary, compaction)
            upper = self.upper_bound(state, window, point)
            if not worth_counting(upper, size, limit, state.calibration, self.guard[0]):
                return j
        return a

    def recut(
        self, state: State, point: int, window: Window, predicted: int, exact: int, observed: int
    ) -> Window | None:
        """The window an exact count moved at ``point``, found again from what the request was billed.

        Only the usage records that count: the view sent at ``point`` started at a later turn start ``t``,
        and its billed size less the calibrated size of its older part is what the new messages really weigh;
        with the exactly known rest of the uncut ``window``, that is what the count must have been, ``M_t``.
        The window is the ``t`` that a count of ``M_t`` cuts to; None when no turn start is (or when the plan
        here would not have asked for a count).
        """
        previous = state.previous
        upper = self.upper_bound(state, window, point)
        if previous is None or not worth_counting(upper, predicted, self.budget, state.calibration, self.guard[0]):
            return None
        starts, size = self.starts, self.log.size
        boundary = window.image_boundary
        turn_index = bisect.bisect_right(starts, point) - 1
        turn_start = starts[turn_index]
        ratio = state.calibration.ratio
        new_from = previous.point + 1  # the first message new since the previous request
        reserve = self.reserve_new()  # what the live decision reserved for the summary of a new cut
        new_in_view = size(new_from, window.epoch, boundary, point + 1)
        for j in range(bisect.bisect_right(starts, window.cut), turn_index + 1):
            t = starts[j]
            first = max(new_from, t)
            new_t = size(first, turn_start, boundary, point + 1)
            old_t = size(t, turn_start, boundary, first) + self.const + (reserve if t > starts[0] else ZERO)
            real_new = observed - old_t.tokens(ratio)
            if real_new <= 0 or not 0.25 <= real_new / max(1, new_t.tokens(ratio)) <= 4:
                continue
            measured = exact + real_new + (new_in_view - new_t).tokens(ratio)
            found, _ = self.decide(state, point, measured)
            if found.cut == t:
                return found
        return None

    def observed_at(self, point: int) -> int | None:
        """Prompt tokens billed for the request made at ``point`` (its reply is ``point + 1``)."""
        return self.replays.usage.prompt(point + 1)

    def run(self, settings_key: Any, usage_history: Sequence[Any], trusted: int = 0) -> Decision:
        """Replay the points not covered by a checkpoint that still holds; the decision for the newest."""
        full = self.full
        first = self.starts[0] if self.starts else 0
        state = State(Window(first, first, 0))
        last = len(full) - 1
        all_replays = self.log.replays
        replays = all_replays.get(settings_key)
        if replays is None:
            if len(all_replays) >= 4:  # e.g. a system prompt that changes every turn
                all_replays.pop(next(iter(all_replays)))
            replays = all_replays[settings_key] = Replays()
        self.replays = replays
        # Resume from the last checkpoint that still holds: the log up to its reply is the same (see
        # LogIndex.truncate), so are the usage of every reply up to it and the summary of its window.
        checkpoints = replays.checkpoints
        try:
            changed = replays.usage.update(usage_history, trusted)
        except BaseException:  # the index may be half updated: start this replay afresh
            del all_replays[settings_key]
            raise
        replays.keep_before_point(min(last, changed - 1))
        self.usage = replays.usage.points
        if self.spec.summarize is not None:
            resummarised = [cut for cut, size in replays.summary_sizes.items() if self.summary_raw(cut) != size]
            if resummarised:
                replays.keep_before_cut(min(resummarised))
        if replays.floor and (not checkpoints or checkpoints[-1].point < replays.floor):
            raise NotLoaded("the replay must start before the part of the log that was read")
        if checkpoints:
            state = checkpoints[-1].state
        begin = checkpoints[-1].point + 1 if checkpoints else 0
        points = [i for i in range(begin, len(full)) if full[i].get("role") == "user"]
        if not points or points[-1] != last:
            points.append(last)  # a paused assistant turn is continued as it is (pause_turn)
        violated: int | None = None
        for point in points:
            final = point == last
            window, violated = self.decide(state, point, self.measured if final else None)
            raw = self.raw_view(window, point)
            predicted, exact = self.predict(state, window, raw)
            observed = None if final else self.observed_at(point)
            if observed is not None and observed < exact * _SHRUNK and self.spec.compaction is None:
                # The request made here billed clearly less than the part of this view already sent before:
                # it was not this view. An exact count found the view over the budget and the window was cut.
                recut = self.recut(state, point, window, predicted, exact, observed)
                if recut is not None:
                    window = recut
                    raw = self.raw_view(window, point)
                    predicted, exact = self.predict(state, window, raw)
            moved = window.cut != state.window.cut
            if final:
                previous = state.previous
                return Decision(
                    window=window,
                    raw=raw,
                    predicted=predicted,
                    exact_prefix=exact,
                    limit=violated,
                    calibration=state.calibration,
                    previous=previous if previous is not None and previous.window == window else None,
                    cut_moved=moved,
                    upper=self.upper_bound(state, window, point),
                )
            trusted = observed is not None and predicted > 0 and 0.75 <= observed / predicted <= 1.34
            calibration = state.calibration.observe(observed, raw) if observed is not None else state.calibration
            smallest = state.smallest
            if observed is not None and trusted and (smallest is None or observed < smallest):
                smallest = observed
            request = Previous(point, window, raw, predicted, observed, trusted)
            state = State(window, calibration, request, moved, smallest)
            checkpoints.append(Checkpoint(point, state))
            replays.summary_sizes[window.cut] = self.summary_raw(window.cut)
        raise InvalidHistory("messages: the list is empty; a request needs at least one user message", index=None)


def worth_counting(
    upper: int, predicted: int, budget: int, calibration: Calibration, context_guard: int | None = None
) -> bool:
    """``RequestPlan.check_count``: only an exact count can tell whether the request fits.

    ``upper`` is a proven bound of the request (``Replay.upper_bound``): when it fits ``budget`` (the tightest
    of the policy's budgets and the context window's guard) no count is needed, however close the estimate is.
    Past the context window the API refuses the request, so there the bound alone decides. A policy's own
    budget is a cost target: there a count is also asked only when the calibrated estimate is within its
    uncertainty of the budget (the replay re-finds a window such a count moved from the usage it leaves)."""
    if upper <= budget:
        return False
    if context_guard is not None and upper > context_guard:
        return True
    uncertainty = 0.25 if calibration.observations == 0 else 0.1
    return predicted > budget * (1 - uncertainty)


def margin(calibration: Calibration) -> float:
    """Safety margin on the estimated (not yet billed) part of a request when checking it against a limit:
    wider until the session's calibration has seen a few requests."""
    return 0.08 if calibration.observations >= 3 else 0.15
