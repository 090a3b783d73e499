"""``Prefix`` and ``Joined`` (context/sequences.py): the shared, append-only log of a session's states and the
log read together with the turn in progress. Each must read exactly as the list it stands for, whatever order
states are grown in (the states of one lineage share one list: growing an older state must never change what a
newer one holds, nor the reverse)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history.context.sequences import Joined, Prefix

INDEXES = st.integers(min_value=-12, max_value=12)
SLICES = st.builds(slice, st.none() | INDEXES, st.none() | INDEXES, st.none() | st.sampled_from([1, 2, -1, -3]))


def reads_as(view: Prefix[int] | Joined[int], expected: list[int], data: st.DataObject) -> None:
    assert len(view) == len(expected)
    assert list(view) == expected
    assert list(reversed(view)) == expected[::-1]
    if isinstance(view, Prefix):  # compares as the sequence it holds
        assert view == expected and view == tuple(expected) and view != [*expected, 0]
    for _ in range(5):
        index = data.draw(INDEXES)
        if -len(expected) <= index < len(expected):
            assert view[index] == expected[index]
        else:
            with pytest.raises(IndexError):
                view[index]
        cut = data.draw(SLICES)
        assert view[cut] == expected[cut]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_states_grown_in_any_order_each_keep_their_own_items(data: st.DataObject) -> None:
    """A tree of states, each grown from a random earlier one (the newest of its lineage, or an older one
    committed on again): every state still reads as the list it was made from."""
    states: list[tuple[Prefix[int], list[int]]] = [(Prefix([]), [])]
    counter = 0
    for _ in range(data.draw(st.integers(min_value=1, max_value=12))):
        view, expected = states[data.draw(st.integers(min_value=0, max_value=len(states) - 1))]
        new = list(range(counter, counter + data.draw(st.integers(min_value=0, max_value=3))))
        counter += len(new)
        states.append((view.grown(new), [*expected, *new]))
    for view, expected in states:
        reads_as(view, expected, data)


@settings(max_examples=100, deadline=None)
@given(st.data(), st.lists(st.integers(), max_size=8), st.lists(st.integers(), max_size=4))
def test_joined_reads_as_the_concatenation(data: st.DataObject, first: list[int], second: list[int]) -> None:
    base = Prefix([*first, 99, 98])  # a longer shared list: only its prefix is part of the log
    reads_as(Joined(Prefix(base._items, len(first)), second), [*first, *second], data)
    reads_as(Joined(first, second), [*first, *second], data)


def test_growing_the_newest_state_appends_in_place_and_an_older_one_copies() -> None:
    old = Prefix([1, 2])
    newest = old.grown([3])
    assert newest._items is old._items  # the usual commit: no copy of the log
    branch = old.grown([4])
    assert branch._items is not old._items and list(branch) == [1, 2, 4]
    assert list(newest) == [1, 2, 3] and list(old) == [1, 2]


def test_a_prefix_is_a_value_not_a_window_on_the_shared_list() -> None:
    shared = Prefix([{"a": 1}])
    grown = shared.grown([{"b": 2}])
    assert copy.deepcopy(list(shared)) == [{"a": 1}]
    assert Prefix.of(grown) is grown and Prefix.of((1, 2)) == [1, 2]
    assert shared != grown and shared != "a" and grown == [{"a": 1}, {"b": 2}]
    with pytest.raises(TypeError):
        hash(shared)
