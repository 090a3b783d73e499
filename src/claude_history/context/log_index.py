"""``LogIndex``: per-message facts of a session's log (raw token estimates as prefix sums, turn starts,
thinking and compaction positions), so that the size of any window is O(1) and a turn indexes only its new
messages. It also holds what the planner derived from the log (the replays' checkpoints, the views of recent
windows) and drops what depended on a message when that message changes."""

from __future__ import annotations

import bisect
import itertools
import operator
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import HistoryError
from ..history import content_blocks, is_turn_start
from ..tokens import UNBOUNDED, ZERO, TokenEstimate, bound_message, estimate_message
from .transforms import THINKING, has_blocks, has_image, without_images

if TYPE_CHECKING:
    from .replay import Replays
    from .view import View

__all__ = ["LogIndex", "NotLoaded"]


class NotLoaded(HistoryError):
    """The planner needs a part of the log that a checkpointed load did not read (checkpoint.py): load the
    whole session and plan again (``turn_path`` does). Never escapes a ``Chat``."""

# The four size variants of each message: thinking kept/dropped x images kept/replaced.
_DROP_THINKING = 1
_REPLACE_IMAGES = 2


class LogIndex:
    """Per-message facts of a log, kept as prefix sums so the size of any view is O(1): raw estimates in four
    variants (thinking kept/dropped x images kept/replaced), turn starts, thinking and compaction positions.

    Extended in place as the log grows (a ``Planner`` keeps one per session), so a turn costs only its new
    messages.
    """

    def __init__(self, model: str, placeholder: str) -> None:
        self.model = model
        self.placeholder = placeholder
        self.messages: list[Mapping[str, Any]] = []
        self.contents: list[Any] = []  # each message's content object, as indexed
        self.lengths: list[int] = []  # and its length (-1: not a list or string)
        self.roles: list[Any] = []
        self.keys: list[int] = []  # how many keys the message has (validate refuses any but role and content)
        # Floats as C doubles (8 bytes each, not a 32-byte float object and its pointer): a warm session keeps
        # this index for every message of its log.
        self.text: list[array[float]] = [array("d", [0.0]) for _ in range(4)]
        self.fixed: list[list[int]] = [[0] for _ in range(4)]
        self.starts: list[int] = []
        self.thinking_count = [0]
        self.bounds = [0]  # prefix sums of each message's worst-case tokens (tokens.bound_message)
        self.compactions: list[int] = []
        self.validated = 0  # messages [0, validated) are known to form a valid log
        # Messages before the horizon were never indexed (restored from a checkpoint: checkpoint.py); their
        # columns hold placeholders and anything that needs them raises NotLoaded. The prefix sums are known at
        # 0 (nothing) and from the horizon on, so the size of a window from the first message still is.
        self.horizon = 0
        # Restored to be given the whole log (a window from the first message): the messages before the
        # horizon are then taken as they are, without indexing them (``attach``).
        self.awaiting_head = False
        self.unknown_starts = 0  # turn starts [1, unknown_starts) are placeholders
        self.replays: dict[Any, Replays] = {}  # by settings: the replay's checkpoints
        self.views: OrderedDict[tuple[int, int, int, bool], View] = OrderedDict()  # see view.view_for

    @property
    def restored(self) -> bool:
        """Whether a replay of this index was restored from a checkpoint (it does not start at the first
        request)."""
        return any(replays.floor for replays in self.replays.values())

    def common_prefix(self, full: Sequence[Mapping[str, Any]], trusted: int = 0) -> int:
        """How many leading messages are the ones indexed: the same content object, of the same length (a
        message edited in place since is indexed again). A shallow copy of an indexed message (Chat copies
        the messages of the turn in progress on every call) is the same message if its role and keys are.

        ``trusted``: how many leading messages the caller vouches are the very objects it passed before,
        unchanged (``Planner.follow``): they are not looked at again, so a call costs what is new."""
        messages, contents, lengths = self.messages, self.contents, self.lengths
        n = min(len(messages), len(full))
        if n < self.horizon:
            return n
        if not (self.horizon < trusted <= n and full[trusted - 1] is messages[trusted - 1]):
            trusted = self.horizon
        # The usual case in C loops: the very dicts up to some point, their contents unchanged.
        k = next(
            itertools.compress(itertools.count(trusted), map(operator.is_not, messages[trusted:n], full[trusted:n])),
            n,
        )
        try:
            now = list(map(_CONTENT, full[trusted:k]))
            same = all(map(operator.is_, contents[trusted:k], now)) and list(map(len, now)) == lengths[trusted:k]
        except (KeyError, TypeError):  # a message without content, or content without a length
            same = False
        for i in range(k if same else trusted, n):
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
        """Forget messages from ``n`` on, and whatever was derived from them."""
        if n >= len(self.messages):
            return
        if n < self.horizon:
            raise NotLoaded(f"the log changed at message {n}, before the part that was read ({self.horizon})")
        del self.messages[n:]
        del self.contents[n:]
        del self.lengths[n:]
        del self.roles[n:]
        del self.keys[n:]
        for v in range(4):
            del self.text[v][n + 1 :]
            del self.fixed[v][n + 1 :]
        del self.thinking_count[n + 1 :]
        del self.bounds[n + 1 :]
        del self.starts[bisect.bisect_left(self.starts, n) :]
        del self.compactions[bisect.bisect_left(self.compactions, n) :]
        self.validated = min(self.validated, n)
        for replays in self.replays.values():
            replays.forget_from(n)
        for key in list(self.views):
            if not self.views[key].truncate(n):
                del self.views[key]

    def restore_horizon(
        self,
        start: int,
        *,
        validated: int,
        first: int,
        starts_before: int,
        compaction: int | None,
        thinking: int,
        bound: int,
        text: Sequence[float],
        fixed: Sequence[int],
    ) -> None:
        """An empty index made to go on from message ``start`` (a checkpoint): the prefix sums at ``start``,
        the first turn start and how many come before ``start``, the newest compaction block before it;
        ``validated``: messages before it are known to form a valid log (validated again from the turn start
        before it on)."""
        self.horizon, self.validated = start, validated
        self.messages = _Read(start) if start else []
        self.contents = [None] * start
        self.lengths = [-2] * start
        self.roles = [None] * start
        self.keys = [0] * start
        for v in range(4):
            self.text[v] = array("d", [0.0]) * start
            self.text[v].append(text[v])
            self.fixed[v] = [0] * start + [fixed[v]]
        self.thinking_count = [0] * start + [thinking]
        self.bounds = [0] * start + [bound]
        self.starts = [first] * starts_before
        self.unknown_starts = starts_before
        self.compactions = [] if compaction is None else [compaction]

    def attach(self, full: Sequence[Mapping[str, Any]]) -> None:
        """Take the messages before the horizon from ``full`` (the whole log a fresh chat read for a window
        that starts at its first message): the request sends them, the planner never sizes them one by one
        (their sum is the restored prefix sum), so they are not indexed; their other columns stay placeholders."""
        self.messages = list(full[: self.horizon])
        self.awaiting_head = False

    def holds_head(self, full: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the messages before the horizon were attached from this very log (the same objects)."""
        h = self.horizon
        return not isinstance(self.messages, _Read) and len(full) >= h and full[h - 1] is self.messages[h - 1]

    def extend(self, full: Sequence[Mapping[str, Any]], trusted: int = 0) -> None:
        """Follow ``full``: drop what changed, index what is new (``trusted``: see ``common_prefix``)."""
        self.truncate(self.common_prefix(full, trusted))
        start = len(self.messages)
        for i, message in enumerate(full[start:], start):  # (one slice: ``full`` may be a ``Joined`` view)
            self._append(i, message)

    def _append(self, i: int, message: Mapping[str, Any]) -> None:
        model = self.model
        base = estimate_message(message, model)
        variants = [base, base, base, base]
        think = message.get("role") == "assistant" and has_blocks(message, THINKING)
        if think:
            variants[1] = variants[3] = estimate_message(message, model, drop_thinking=True)
        if has_image(message):
            replaced: dict[str, Any] = {
                **message,
                "content": without_images(list(content_blocks(message)), self.placeholder),
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
        self.bounds.append(self.bounds[-1] + bound_message(message, model, placeholder=self.placeholder))
        if is_turn_start(message):
            self.starts.append(i)
        if message.get("role") == "assistant" and has_blocks(message, ("compaction",)):
            self.compactions.append(i)

    def _known(self, *positions: int) -> None:
        """The prefix sums at ``positions`` are known: at 0 and from the horizon on."""
        for p in positions:
            if 0 < p < self.horizon:
                raise NotLoaded(f"the size of messages up to {p}: only those from {self.horizon} were indexed")

    def segment(self, a: int, b: int, variant: int) -> TokenEstimate:
        """Raw size of messages ``[a, b)`` in one variant."""
        if b <= a:
            return ZERO
        if self.horizon:
            self._known(a, b)
        return TokenEstimate(
            self.text[variant][b] - self.text[variant][a], self.fixed[variant][b] - self.fixed[variant][a]
        )

    def bound(self, a: int, b: int) -> int:
        """Worst-case tokens of messages ``[a, b)`` in any view (thinking kept, the larger of each image and
        its placeholder): never below what the API counts for them (see ``tokens.bound_message``)."""
        if b <= a:
            return 0
        if self.horizon:
            self._known(a, b)
        return min(UNBOUNDED, self.bounds[b] - self.bounds[a])

    def size(self, start: int, epoch: int, image_boundary: int, end: int) -> TokenEstimate:
        """Raw size of messages ``[start, end)`` with thinking dropped before ``epoch`` and images replaced
        before ``image_boundary``."""
        if epoch <= start and image_boundary <= start:  # nothing dropped or replaced: one segment (the usual case)
            return self.segment(start, end, 0)
        bounds = sorted({start, min(max(epoch, start), end), min(max(image_boundary, start), end), end})
        total = ZERO
        for a, b in itertools.pairwise(bounds):
            variant = (_DROP_THINKING if a < epoch else 0) + (_REPLACE_IMAGES if a < image_boundary else 0)
            total = total + self.segment(a, b, variant)
        return total


_CONTENT = operator.itemgetter("content")


def _length(content: Any) -> int:
    return len(content) if isinstance(content, (list, str)) else -1


class _Read(list):  # type: ignore[type-arg]
    """The messages of an index restored from a checkpoint (``LogIndex.messages``, which the planner reads as
    the log): placeholders before ``horizon``, which raise ``NotLoaded`` when read, so a plan never uses them.
    Appends and truncation are the list's own."""

    def __init__(self, horizon: int) -> None:
        super().__init__([None] * horizon)
        self.horizon = horizon

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            first, stop, _ = index.indices(len(self))
            if first < self.horizon and first < stop:
                raise NotLoaded(f"messages from {first} on: only those from {self.horizon} were read")
        elif (index + len(self) if index < 0 else index) < self.horizon:
            raise NotLoaded(f"message {index}: only those from {self.horizon} were read")
        return super().__getitem__(index)

    def __iter__(self) -> Iterator[Any]:
        raise NotLoaded(f"the whole log: only the messages from {self.horizon} were read")
