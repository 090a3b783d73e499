"""Turn leases over every backend, sync and async (stores/_leases.py): one holder at a time, expiry when the
holder never lets go (as when it dies), fencing tokens that keep growing, and a commit refused once its lease
was taken over, so two turns never commit out of order."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from claude_history.errors import ConfigurationError, ConflictError, LeaseLost

from .conftest import Backend
from .samples import turn

SHORT = 0.2  # seconds: a lease whose holder "died" (never releases it)


def count(store: Any, session_id: str) -> int:
    return len(store.load(session_id).messages)


def test_a_lease_is_held_by_one_turn_until_released(store: Any) -> None:
    first = store.acquire_lease("s", ttl=30)
    assert isinstance(first, int) and first >= 1
    assert store.acquire_lease("s", ttl=30) is None
    assert isinstance(store.acquire_lease("other", ttl=30), int)  # sessions are leased apart
    store.release_lease("s", first)
    second = store.acquire_lease("s", ttl=30)
    assert isinstance(second, int) and second > first


def test_a_lease_expires_when_its_holder_never_lets_go(store: Any) -> None:
    first = store.acquire_lease("s", ttl=SHORT)
    assert store.acquire_lease("s", ttl=30) is None
    time.sleep(SHORT + 0.1)
    second = store.acquire_lease("s", ttl=30)
    assert second == first + 1


def test_a_commit_under_a_lease_taken_over_is_refused_and_the_new_holder_commits(store: Any) -> None:
    store.append("s", turn("before"), expected_version=0)
    old = store.acquire_lease("s", ttl=SHORT)
    time.sleep(SHORT + 0.1)
    new = store.acquire_lease("s", ttl=30)
    assert new is not None
    # The old holder comes back first, at the right version: refused all the same, and nothing is written.
    with pytest.raises(LeaseLost) as caught:
        store.append("s", turn("late"), expected_version=1, lease=old)
    assert isinstance(caught.value, ConflictError) and len(caught.value.unsaved) == 2
    assert count(store, "s") == 2 and store.get_session("s").version == 1
    assert store.append("s", turn("mine"), expected_version=1, lease=new) == 2
    store.release_lease("s", new)


def test_an_expired_lease_nobody_took_still_commits(store: Any) -> None:
    token = store.acquire_lease("s", ttl=SHORT)
    time.sleep(SHORT + 0.1)
    assert store.append("s", turn("slow"), expected_version=0, lease=token) == 1


def test_the_fence_is_checked_before_the_version_and_a_conflict_stays_a_conflict(store: Any) -> None:
    token = store.acquire_lease("s", ttl=30)
    store.append("s", turn("unleased writer"), expected_version=0)  # a chat in "conflict" mode
    with pytest.raises(ConflictError) as caught:
        store.append("s", turn("leased"), expected_version=0, lease=token)
    assert not isinstance(caught.value, LeaseLost) and caught.value.actual_version == 1
    with pytest.raises(LeaseLost):  # a token never taken on this session
        store.append("s", turn("forged"), expected_version=1, lease=token + 1)
    with pytest.raises(LeaseLost):
        store.append("never-leased", turn("x"), expected_version=0, lease=1)


def test_releasing_a_lease_no_longer_held_leaves_the_holder_alone(store: Any) -> None:
    old = store.acquire_lease("s", ttl=SHORT)
    time.sleep(SHORT + 0.1)
    new = store.acquire_lease("s", ttl=30)
    store.release_lease("s", old)
    assert store.acquire_lease("s", ttl=30) is None
    store.release_lease("s", new)
    store.release_lease("s", new)  # twice: nothing happens
    assert store.acquire_lease("s", ttl=30) == new + 1


def test_tokens_keep_growing_across_a_delete(store: Any) -> None:
    first = store.acquire_lease("s", ttl=30)
    store.append("s", turn("a"), expected_version=0, lease=first)
    store.release_lease("s", first)
    assert store.delete("s")
    second = store.acquire_lease("s", ttl=30)
    assert second > first
    with pytest.raises(LeaseLost):  # a holder of the old session's lease cannot write into the new one
        store.append("s", turn("stale"), expected_version=0, lease=first)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "30", True, 86_401])
def test_a_bad_ttl_is_a_clear_error(store: Any, ttl: Any) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        store.acquire_lease("s", ttl=ttl)


@pytest.mark.parametrize("lease", [0, -3, "1", 1.0, True])
def test_a_bad_lease_token_is_a_clear_error_and_writes_nothing(store: Any, lease: Any) -> None:
    with pytest.raises(ConfigurationError, match="lease"):
        store.append("s", turn("a"), expected_version=0, lease=lease)
    with pytest.raises(ConfigurationError, match="lease"):
        store.release_lease("s", lease)
    assert store.acquire_lease("s", ttl=30) == 1  # nothing was taken or written by the bad calls


def test_writers_racing_for_a_lease_from_separate_connections_get_one_each_time(backend: Backend) -> None:
    """Eight writers (each with its own store object, as separate app servers have) race for the lease of one
    session, five rounds: each round exactly one wins, and the tokens grow by one per round."""
    stores = [backend.open() for _ in range(8)]
    try:
        tokens: list[int] = []
        for _ in range(5):
            start = threading.Barrier(len(stores))
            won: list[int] = []

            def race(store: Any, start: threading.Barrier = start, won: list[int] = won) -> None:
                start.wait()
                token = store.acquire_lease("race", ttl=30)
                if token is not None:
                    won.append(token)

            threads = [threading.Thread(target=race, args=(s,)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(won) == 1
            tokens.append(won[0])
            stores[0].release_lease("race", won[0])
        assert tokens == list(range(tokens[0], tokens[0] + 5))
    finally:
        for store in stores:
            store.close()
