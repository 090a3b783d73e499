"""A planner restored from a checkpoint (context/checkpoint.py) and given only the tail of the log must plan
exactly what a full replay plans, byte for byte; when it cannot (the plan needs an older part of the log) it
says so with ``NotLoaded`` and never plans anything else."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from claude_history import BudgetExceeded
from claude_history.context import (
    CacheAwareWindow,
    KeepAll,
    LastTurns,
    OldImages,
    Planner,
    TokenBudget,
    plan_request,
)
from claude_history.context.checkpoint import HISTORY, NotLoaded, Tail, restore, snapshot
from claude_history.context.plan import settle

from .test_incremental import BINDING_MODEL, LOOKUP_TOOL, MODEL, POLICIES, SYSTEM, Session, assert_same

CHECKPOINTED = {
    "cache-aware": POLICIES["cache-aware"],
    "token-budget": POLICIES["token-budget"],
    "mixed": POLICIES["mixed"],
    "last-turns": LastTurns(3),
    "tight": CacheAwareWindow(3_000, low_water=1_500) & OldImages(after_turns=1),
    "budget-images": TokenBudget(5_000) & OldImages(after_turns=3),
    "roomy": CacheAwareWindow(60_000),  # its window holds the whole log for a while ("window" checkpoints)
    # A window from the first message: the checkpoint is given the whole log (``whole``).
    "keep-all": KeepAll(),
}
WHOLE_FROM = 8  # the tests' sessions are short: whole checkpoints from 8 messages on


def restored_plan(
    session: Session,
    data: dict[str, Any],
    pending: list[dict[str, Any]],
    cache: bool | str = True,
    planner: Planner | None = None,
) -> Any:
    """The plan of a fresh planner seeded with ``data`` (through JSON, as a store keeps it) and given the log
    from the checkpoint's start on, with the usage records of that part: what a fresh Chat reads. A ``whole``
    checkpoint is given the whole log and all its usage records (copies: a fresh Chat decodes its own)."""
    planner = planner if planner is not None else Planner()
    start = restore(planner, json.loads(json.dumps(data)))
    assert start is not None
    if data["whole"]:
        return plan_request(
            [dict(m) for m in session.log],
            [dict(m) for m in pending],
            **tail_arguments(session, 0),
            cache=cache,
            planner=planner,
            lineage=object(),
        )
    return plan_request(
        Tail(start, session.log[start:]),
        [dict(m) for m in pending],
        **tail_arguments(session, start),
        cache=cache,
        planner=planner,
        lineage=object(),
    )


def tail_arguments(session: Session, start: int) -> dict[str, Any]:
    return {
        "model": session.model,
        "system": SYSTEM,
        "tools": [LOOKUP_TOOL],
        "policy": session.policy,
        "summaries": list(session.summaries),
        "usage_history": [u for u in session.usage if u["seq"] >= start],
    }


def cold_plan(session: Session, pending: list[dict[str, Any]], cache: bool | str = True) -> Any:
    return plan_request(
        [dict(m) for m in session.log],
        [dict(m) for m in pending],
        model=session.model,
        system=SYSTEM,
        tools=[LOOKUP_TOOL],
        policy=session.policy,
        summaries=list(session.summaries),
        usage_history=list(session.usage),
        cache=cache,
    )


def play(
    seed: int, model: str, policy: Any, turns: int, history: int, cache: bool | str = True, chain: bool = False
) -> tuple[int, int]:
    """Plays a conversation; after each committed turn, plans the next message from a checkpoint and from a
    full replay, with ``cache`` (True: the TTL is chosen from the gaps between turns and the 1-hour anchors,
    which look back ``HISTORY`` points). ``chain``: each checkpoint is made by the planner restored from the
    previous one, brought up to the end of the committed log (``settle``), as a web app's chats make them
    turn after turn; otherwise by the session's own planner. Returns (plans compared, plans that needed the
    whole log)."""
    session = Session(seed, model, policy, thinking=model == BINDING_MODEL)
    compared = needed_all = 0
    data: dict[str, Any] | None = None
    for t in range(turns):
        pending = [{"role": "user", "content": f"and then? ({t})"}]
        restored: Planner | None = None
        if data is not None:
            try:
                cold = cold_plan(session, pending, cache)
            except BudgetExceeded:
                cold = None
            if cold is not None:
                restored = Planner()
                try:
                    warm = restored_plan(session, data, pending, cache, planner=restored)
                except NotLoaded:
                    needed_all += 1
                    restored = None
                else:
                    assert_same(warm, cold)
                    compared += 1
        start = 0 if data is None or data["whole"] else data["start"]
        session.turn()
        keep = {"history": history, "whole_from": WHOLE_FROM}
        if chain and restored is not None:  # the chat that planned from the checkpoint commits and keeps one
            try:
                log = Tail(start, session.log[start:]) if start else session.log
                settle(log, **tail_arguments(session, start), planner=restored)
                data = snapshot(restored, len(session.log), **keep)
            except NotLoaded:
                data = snapshot(session.planner, len(session.log), **keep)
        else:
            data = snapshot(session.planner, len(session.log), **keep)
        if data is not None:  # (a checkpoint for the whole log may index it from its first message)
            assert (0 if data["whole"] else 1) <= data["start"] < data["length"] == len(session.log)
    return compared, needed_all


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    name=st.sampled_from(sorted(CHECKPOINTED)),
    model=st.sampled_from([MODEL, BINDING_MODEL]),
    history=st.integers(1, 12),
    cache=st.sampled_from(["5m", "1h", False]),
    chain=st.booleans(),
)
# A window that moved past what a one-request checkpoint kept: the drop's lower bound needs the requests before
# the checkpoint, which a fresh Chat did not read (it planned another window before it said NotLoaded).
@example(seed=572, name="token-budget", model=MODEL, history=1, cache="5m", chain=False)
def test_a_checkpoint_plans_what_a_full_replay_plans(
    seed: int, name: str, model: str, history: int, cache: str | bool, chain: bool
) -> None:
    """Random conversations and policies, checkpoints keeping a few requests back: with a fixed TTL (nothing
    looks further back than the window) the restored plan is the full replay's, request bytes included."""
    compared, needed_all = play(seed, model, CHECKPOINTED[name], 20, history, cache, chain)
    assert needed_all <= compared // 2 + 1


@pytest.mark.parametrize(
    ("name", "model", "chain"),
    [("cache-aware", MODEL, True), ("tight", BINDING_MODEL, False), ("mixed", MODEL, True), ("tight", MODEL, True)],
)
def test_a_checkpoint_with_the_ttl_chosen_from_the_history(name: str, model: str, chain: bool) -> None:
    """The automatic TTL looks back at the gaps between turns and for 1-hour anchors: a default checkpoint
    keeps what they read, so a long session plans from it, exactly, nearly every turn."""
    compared, needed_all = play(zlib.crc32(name.encode()), model, CHECKPOINTED[name], 50, HISTORY, True, chain)
    assert compared >= 10
    assert needed_all <= compared // 4


def test_a_checkpoint_of_other_settings_or_another_estimator_is_not_used() -> None:
    session = Session(3, MODEL, CHECKPOINTED["tight"], thinking=False)
    for _ in range(20):
        session.turn()
    data = snapshot(session.planner, len(session.log), history=4)
    assert data is not None
    assert restore(Planner(), {**data, "estimator": [1.0, 0]}) is None
    assert restore(Planner(), {**data, "format": 0}) is None
    assert restore(Planner(), {k: v for k, v in data.items() if k != "state"}) is None
    session.policy = TokenBudget(4_000)  # other settings: the restored replay is not theirs
    with pytest.raises(NotLoaded):
        restored_plan(session, data, [{"role": "user", "content": "next"}])


def test_the_tail_refuses_what_was_not_read() -> None:
    tail = Tail(3, ["d", "e"])
    assert len(tail) == 5 and tail[3] == "d" and tail[-1] == "e" and tail[3:] == ["d", "e"]
    for reach in (lambda: tail[2], lambda: tail[1:4], lambda: list(tail), lambda: tail[-3]):
        with pytest.raises(NotLoaded):
            reach()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 12)), min_size=1, max_size=30))
def test_the_earlier_requests_text_is_what_a_fresh_join_makes(steps: list[tuple[int, int, int]]) -> None:
    """``snapshot`` extends, cuts and reuses the previous snapshot's text of the earlier requests (a commit
    costs its new requests): after any run of new requests, replays cut back (a rewind) and windows that start
    later or earlier, the text is byte for byte the one made from scratch, and reads back as those requests."""
    from claude_history.context.checkpoint import _anchors_out
    from claude_history.context.replay import Checkpoint, Previous, Replays, State
    from claude_history.context.window import Window
    from claude_history.tokens import Calibration, TokenEstimate

    def request(point: int) -> Checkpoint:
        window = Window(point // 3, point // 3, 0, 0)
        previous = Previous(point, window, TokenEstimate(point * 1.5, point), point * 2, None, point % 2 == 0)
        return Checkpoint(point, State(window, Calibration(1.0, 0, 0.0), previous))

    replays = Replays()
    checkpoints = replays.checkpoints
    for grow, shrink, back in steps:
        checkpoints.extend(request(len(checkpoints) * 2 + k * 2) for k in range(grow + 1))
        if shrink and shrink < len(checkpoints):  # cut off the newest (a rewind), then new ones again
            replays.keep(len(checkpoints) - shrink)
            checkpoints.append(request(checkpoints[-1].point + 1))
        stop = len(checkpoints) - 1
        first = max(0, stop - back)  # the window's first request kept: usually where it was, or later
        text = _anchors_out(replays, checkpoints, first, stop)
        assert text == _anchors_out(Replays(), checkpoints, first, stop)
        assert [row[0] for row in json.loads(text)] == [c.point for c in checkpoints[first:stop]]
