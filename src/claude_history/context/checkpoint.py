"""Planner checkpoints: what a ``Planner`` needs to go on planning a session without replaying it from its
first message, as a small JSON-able mapping that a store keeps beside the session (issue 14.1).

Why: the replay (replay.py) re-makes every earlier request's decision from the log, so a fresh ``Chat`` on a
long session would read and replay all of it. A checkpoint is the replay's state after one request point
``P`` (its window, calibration and the request made there), the log's prefix sums at the first message that
state still looks at (``start``: the window's cut), and a few facts about the part before it (how many turn
starts, the first one, the newest compaction block). With it a fresh planner reads only ``log[start:]`` and
replays the points after ``P``; ``P`` is chosen ``HISTORY`` points back from the newest, so the 1-hour cache
anchor and the TTL's gaps between turns, which look back that far, are found in what is read.

Exactness: a plan made from a checkpoint must equal the plan of a full replay (tests/context/
test_checkpoint.py checks it byte for byte). Everything before ``start`` is out of reach: the log is a
``Tail`` that raises ``NotLoaded`` for any message before it, and every planner step that would need more
than the tail (a replay that must start earlier, a look-back that runs off the tail, other settings, a
summary of older turns) raises ``NotLoaded`` too. The caller then loads the whole session and plans again,
so a checkpoint can make a plan cheaper, never different. Whether a stored checkpoint belongs to the log as
it is now (the session's version and incarnation, its length, its last message) is the caller's check
(turn_path.py); what it was computed for (model, settings, the token estimator) is checked here.
"""

from __future__ import annotations

import bisect
import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from ..tokens import Calibration, TokenEstimate, bound_message, estimate_message
from .cache import GAP_WINDOW
from .log_index import LogIndex, NotLoaded
from .planner import Planner
from .policy_spec import policy_spec
from .replay import Checkpoint, Previous, Replays, State, _point
from .sequences import Prefix
from .window import Window

__all__ = [
    "FORMAT",
    "HISTORY",
    "WHOLE_FROM",
    "NotLoaded",
    "Tail",
    "keeps_whole",
    "may_keep",
    "reads_whole",
    "restore",
    "snapshot",
]

FORMAT = 4  # 3: the earlier requests as one JSON text; 4: "whole" (a window from the first message)
# Request points kept between the checkpoint and the newest point: the 1-hour anchor search looks back 64
# (anchors.py), the TTL choice 20 gaps between turns (cache.py GAP_WINDOW).
HISTORY = 64
# A checkpoint for a window from the first message saves the replay and the sizing of every message, but a
# fresh chat then reads it and the commit writes it: below this many messages replaying costs less.
WHOLE_FROM = 200
# Estimated with the estimator of the writer and of the reader: a checkpoint made by another version of the
# token estimator holds prefix sums this one would not compute, so it is not used.
_PROBE = {"role": "user", "content": "Checkpoint probe: 12 words, ünïcode, <tags> and {json: [1, 2.5]}."}


class Tail(Sequence[Any]):
    """The log from ``start`` on, indexed as the whole log: ``len`` is the whole length; a message before
    ``start`` raises ``NotLoaded``."""

    __slots__ = ("items", "start")

    def __init__(self, start: int, items: Sequence[Any]) -> None:
        self.start = start
        self.items = items

    def __len__(self) -> int:
        return self.start + len(self.items)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            first, stop, step = index.indices(len(self))
            if first < self.start and first < stop:
                raise NotLoaded(f"message {first} is before the part of the log that was read ({self.start})")
            return list(self.items[max(0, first - self.start) : max(0, stop - self.start) : step])
        if index < 0:
            index += len(self)
        if index < self.start:
            raise NotLoaded(f"message {index} is before the part of the log that was read ({self.start})")
        return self.items[index - self.start]

    def __iter__(self) -> Iterator[Any]:
        if self.start:
            raise NotLoaded("the whole log was asked for; only its tail was read")
        return iter(self.items)

    def grown(self, more: Iterable[Any]) -> Tail:
        """This tail followed by ``more`` (``sequences.Prefix.grown``: O(new), the items shared)."""
        return Tail(self.start, Prefix.of(self.items).grown(more))

    def __repr__(self) -> str:
        return f"Tail(start={self.start}, {len(self.items)} messages)"


def _fingerprint(model: str) -> list[Any]:
    return list(_probe(model))


@functools.lru_cache(maxsize=64)
def _probe(model: str) -> tuple[Any, ...]:
    """The estimator's figures for ``_PROBE`` (fixed within a process: made once per model, not per commit)."""
    probe = estimate_message(_PROBE, model)
    return (probe.text, probe.fixed, bound_message(_PROBE, model, placeholder=""))


def may_keep(policy: Any) -> bool:
    """Can ``snapshot`` ever give a checkpoint for ``policy``? Not for a summarising one (its summaries are
    read with the whole session)."""
    return policy_spec(policy).summarize is None


def reads_whole(policy: Any) -> bool:
    """Is the window of ``policy`` the whole log, unless the context window itself forces a cut (``KeepAll``,
    with or without ``OldImages``)? A fresh chat under it reads the session at once (every request sends all
    of it)."""
    return policy_spec(policy).reads_whole


def keeps_whole(policy: Any) -> bool:
    """Is ``policy`` one that sends the whole session and gets ``whole`` checkpoints (``KeepAll`` alone)? A
    fresh chat then asks for one after it read the session, when the session is long (``WHOLE_FROM``). Not
    one whose images are replaced: its bound walks every request since the first message, which such a
    checkpoint does not keep (it would grow with the session), so a restored plan would replay it all."""
    return policy_spec(policy).whole_checkpoint == "newest"


def snapshot(
    planner: Planner, committed: int, *, history: int = HISTORY, whole_from: int = WHOLE_FROM
) -> dict[str, Any] | None:
    """The checkpoint of what ``planner`` last planned, for a log of ``committed`` messages (all of them
    committed, with the usage of every reply). None when there is nothing worth keeping: no earlier request
    point, a window that starts at the first turn (it sends the whole log anyway), or a summarising policy
    (its summaries are read with the whole session). ``history``: request points kept for the 1-hour anchor
    search (it never looks further back than ``HISTORY``); ``whole_from``: the shortest log a checkpoint of a
    window from the first message is made for (``WHOLE_FROM``)."""
    last = planner.last
    if last is None:
        return None
    (model, placeholder), key, summarizing, whole_mode = last
    log = planner.index(model, placeholder)
    if summarizing or log is None:
        return None
    replays = log.replays.get(key)
    if replays is None:
        return None
    # The checkpoints whose reply is committed (looked at from the newest back: O(the window), never the log).
    checkpoints = replays.checkpoints
    end = bisect.bisect_left(checkpoints, committed - 1, key=_point)
    if end == 0 or checkpoints[end - 1].point < replays.floor:
        return None
    done = _Upto(checkpoints, end)
    newest = done[-1]
    cut = newest.state.window.cut
    # The requests made earlier, as far back as a later plan reads them: the bound of a request walks those
    # of its window (from the cut on); the 1-hour anchor search walks back from the newest while they had its
    # window, up to ``history``, and stops at the first of another.
    seen = newest.state.previous.window if newest.state.previous is not None else None
    first = len(done) - 1
    # A window from the first message (``whole``) is read whole by a fresh chat (the request sends it all).
    # Under KeepAll ("newest") its messages' sizes come as one prefix sum and only the newest are indexed
    # (``LogIndex.attach``); a bound that walks all its requests is not kept (the checkpoint would grow with
    # the session): such a plan replays it all. Under a budget in its first turns ("window") the checkpoint
    # keeps every request of the window, as after a cut: the policy bounds them.
    whole = cut == 0 and bool(log.starts) and log.starts[0] == 0
    if whole and (whole_mode is None or committed < whole_from):
        return None
    if not (whole and whole_mode == "newest"):  # back to the first request of the window (points ascend)
        first = bisect.bisect_left(checkpoints, cut, 0, first, key=_point)
    # The walk lowers ``first`` to the lowest request it reads, never below ``len(done) - history``: skipped
    # when the window's first request is already there or lower (a window of many requests, the usual case).
    if first > len(done) - history:
        for k in range(len(done) - 2, max(-1, len(done) - history - 1), -1):
            first = min(first, k)
            previous = done[k].state.previous
            if previous is None or previous.window != seen:
                break
    # The TTL choice reads the newest gaps between turns: the read starts where they do.
    usage = replays.usage
    floor = usage.gap_floor(log.starts, GAP_WINDOW)
    if floor is None:  # it reads every timed record there is
        floor = usage.timed[0] if usage.timed else cut
    if whole and whole_mode == "newest":
        # The index starts where the newest requests, the gaps between turns and the newest turn are read.
        turn = log.starts[bisect.bisect_right(log.starts, newest.point) - 1]
        earliest = checkpoints[first].point if first < end - 1 else newest.point
        start = max(min(floor if usage.timed else turn, earliest, turn), log.horizon)
    elif whole:  # a budget's window from the first message: every message is indexed (a cut may go anywhere)
        start = log.horizon
        if start or (first < end - 1 and checkpoints[first].point != log.starts[0]):
            return None
    else:
        start = max(min(cut, floor), log.horizon)
        if not log.starts or start <= log.starts[0]:
            return None
    if cut >= len(log.text[0]):
        return None
    compactions = log.compactions[: bisect.bisect_left(log.compactions, start)]
    return {
        "format": FORMAT,
        "whole": whole,
        "model": model,
        "placeholder": placeholder,
        "settings": list(key),
        "estimator": _fingerprint(model),
        "length": committed,
        "start": start,
        "first": log.starts[0],
        "starts_before": bisect.bisect_left(log.starts, start),
        "compaction": compactions[-1] if compactions else None,
        "thinking": log.thinking_count[start],
        "bound": log.bounds[start],
        "text": [log.text[v][start] for v in range(4)],
        "fixed": [log.fixed[v][start] for v in range(4)],
        "timed_before": usage.earlier_timed or bisect.bisect_left(usage.timed, start) > 0,
        "point": newest.point,
        "state": _state_out(newest.state),
        "anchors": _anchors_out(replays, checkpoints, first, end - 1),
    }


def _anchors_out(replays: Replays, checkpoints: list[Checkpoint], first: int, stop: int) -> str:
    """The earlier requests ``checkpoints[first:stop]`` as one JSON text: each request's part is made once and
    kept (``Replays.encoded``), and a store encodes one string of digits and brackets at C speed, so a commit
    pays little for a window of thousands of requests (it paid ~5 ms to encode their lists at 10,000
    messages). The text of the previous snapshot is kept too (``Replays.joined``, with where each part starts):
    the next one cuts off the requests it no longer keeps and appends those made since, so a commit costs the
    new requests, not a walk over the window's. Checkpoints are only ever appended or cut off at the end, so
    the same objects at both ends of the run mean the same run between them."""
    text, starts = "", []
    joined = replays.joined
    if joined is not None:
        at, head, tail, old_text, old_starts = joined
        count = len(old_starts)
        if (
            at <= first < at + count <= stop
            and checkpoints[at] is head
            and checkpoints[at + count - 1] is tail
        ):
            skip = first - at
            if skip:
                cut = old_starts[skip]
                text, starts = old_text[cut:], [offset - cut for offset in old_starts[skip:]]
            else:
                text, starts = old_text, old_starts
    kept = replays.encoded
    if len(kept) > 2 * (stop - first) + HISTORY:  # the cut moved on: forget the requests before it
        points = {c.point for c in checkpoints[first:stop]}
        for point in [point for point in kept if point not in points]:
            del kept[point]
    parts = [_request_out(replays, c) for c in checkpoints[first + len(starts) : stop]]
    if parts:
        offset = len(text) + 1 if text else 0
        for part in parts:
            starts.append(offset)
            offset += len(part) + 1
        text = text + "," + ",".join(parts) if text else ",".join(parts)
    replays.joined = (first, checkpoints[first], checkpoints[stop - 1], text, starts) if stop > first else None
    return "[" + text + "]"


def _request_out(replays: Replays, c: Checkpoint) -> str:
    """The JSON of the request made at checkpoint ``c``, made once (``Replays.encoded``)."""
    kept = replays.encoded
    hit = kept.get(c.point)
    if hit is None or hit[0] is not c:
        hit = kept[c.point] = (c, json.dumps([c.point, *_previous_out(c.state.previous)], separators=(",", ":")))
    return hit[1]


class _Upto:
    """The first ``end`` checkpoints, read by index without a copy."""

    __slots__ = ("end", "items")

    def __init__(self, items: list[Checkpoint], end: int) -> None:
        self.items, self.end = items, end

    def __len__(self) -> int:
        return self.end

    def __getitem__(self, k: int) -> Checkpoint:
        return self.items[k + self.end if k < 0 else k]


def restore(planner: Planner, data: Mapping[str, Any]) -> int | None:
    """Seed ``planner`` with the checkpoint ``data``; returns the first message the caller must read (the
    log from there is what ``plan_request`` is then given, as a ``Tail``), or None when ``data`` is not a
    checkpoint this version can use. A ``whole`` checkpoint (a window from the first message) is given the
    whole log instead, the usage records in seq order; the returned message is where its index starts."""
    try:
        if data.get("format") != FORMAT or data["estimator"] != _fingerprint(str(data["model"])):
            return None
        start, point = int(data["start"]), int(data["point"])
        state = _state_in(data["state"])
        model, placeholder = str(data["model"]), str(data["placeholder"])
        log = LogIndex(model, placeholder)
        log.restore_horizon(
            start,
            # The planner that made it validated the log to its end (the chat's commit checks the log did
            # not change since): only the newest turn is validated again, as on a warm chat.
            validated=int(data["length"]),
            first=int(data["first"]),
            starts_before=int(data["starts_before"]),
            compaction=None if data["compaction"] is None else int(data["compaction"]),
            thinking=int(data["thinking"]),
            bound=int(data["bound"]),
            text=[float(x) for x in data["text"]],
            fixed=[int(x) for x in data["fixed"]],
        )
        replays = Replays()
        # The earlier requests (the bound of a request and the anchor search read them): never resumed from.
        for at, *previous in json.loads(data["anchors"]):
            request = _previous_in(previous)
            window = request.window if request is not None else state.window
            replays.checkpoints.append(Checkpoint(int(at), State(window, previous=request)))
        replays.checkpoints.append(Checkpoint(point, state))
        # Only the requests before the first one kept are unknown: none when it is the log's first.
        replays.partial = replays.checkpoints[0].point != int(data["first"])
        replays.floor = point
        replays.usage.settled = point + 2  # the records up to the reply to ``point`` are in ``state``
        replays.usage.earlier_timed = bool(data["timed_before"])
        settings = data["settings"]
        key = (str(settings[0]), float(settings[1]), int(settings[2]))
        whole = data["whole"] is True
        if not (0 == state.window.cut <= start <= point if whole else 0 < start <= state.window.cut <= point):
            return None
        if whole and start:  # given the whole log, the planner reads no usage record before the index's horizon
            log.awaiting_head = True
            replays.usage.floor = start
    except (KeyError, TypeError, ValueError, IndexError):  # json.JSONDecodeError is a ValueError
        return None
    log.replays[key] = replays
    planner.adopt(log)
    return start


def _window_out(window: Window) -> list[int]:
    return [window.cut, window.epoch, window.image_boundary, window.compaction_start]


def _window_in(data: Sequence[Any]) -> Window:
    cut, epoch, boundary, compaction = (int(x) for x in data)
    return Window(cut, epoch, boundary, compaction)


def _previous_out(previous: Previous | None) -> list[Any]:
    if previous is None:
        return []
    return [
        previous.point,
        _window_out(previous.window),
        previous.raw.text,
        previous.raw.fixed,
        previous.predicted,
        previous.observed,
        previous.trusted,
    ]


def _previous_in(data: Sequence[Any]) -> Previous | None:
    if not data:
        return None
    point, window, text, fixed, predicted, observed, trusted = data
    return Previous(
        int(point),
        _window_in(window),
        TokenEstimate(float(text), int(fixed)),
        int(predicted),
        None if observed is None else int(observed),
        bool(trusted),
    )


def _state_out(state: State) -> dict[str, Any]:
    calibration = state.calibration
    return {
        "window": _window_out(state.window),
        "calibration": [calibration.ratio, calibration.observations, calibration.weight],
        "previous": _previous_out(state.previous),
        "cut_moved": state.cut_moved,
        "smallest": state.smallest,
    }


def _state_in(data: Mapping[str, Any]) -> State:
    ratio, observations, weight = data["calibration"]
    return State(
        _window_in(data["window"]),
        Calibration(float(ratio), int(observations), float(weight)),
        _previous_in(data["previous"]),
        bool(data["cut_moved"]),
        None if data["smallest"] is None else int(data["smallest"]),
    )
