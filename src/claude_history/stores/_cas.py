"""Compare-and-swap of writes, written once for every backend: the tokens that name a session's incarnation
and a turn, the one wording of a lost swap, and the rule that decides whether an append is written, is the
very turn already committed (an idempotent retry), or conflicts."""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigurationError, ConflictError
from ._validation import check_text

__all__ = [
    "CREATE_PREFIX",
    "append_allowed",
    "check_token",
    "conflict",
    "created_incarnation",
    "creating",
    "named_turn",
    "new_incarnation",
    "pinned_incarnation",
    "pop_incarnation",
    "same_incarnation",
    "takes_append_arguments",
    "takes_append_tokens",
]

# ``append(..., expected_version=0, incarnation=CREATE_PREFIX + token)`` creates the session under ``token``;
# a bare token always names a session the caller read, which an append never creates (see ``append_allowed``).
# Stored incarnations never start with it, so no token read from a session can pass for a create.
CREATE_PREFIX = "new:"


def conflict(
    session_id: str,
    expected: int,
    actual: int | None,
    unsaved: Sequence[Any] = (),
    *,
    replaced: bool = False,
    gone: bool = False,
) -> ConflictError:
    """The one wording of a lost compare-and-swap (``replaced``: same version, another incarnation; ``gone``:
    the session the writer read no longer exists)."""
    state = f"is at version {actual}" if actual else "does not exist (version 0)"
    if gone:
        state = "was deleted since it was read (it does not exist now)"
        hint = "the session you held is gone; reload the session and retry"
    elif replaced:
        state = f"was deleted and created again since it was read (now version {actual}, another incarnation)"
        hint = "the session you held is gone; reload the session and retry"
    elif expected == 0 and actual:
        hint = "it already exists; load it and append with its version, or choose another id"
    else:
        hint = "another writer committed first; reload the session and retry"
    return ConflictError(
        f"session {session_id!r} {state}, not {expected}: {hint}",
        session_id=session_id,
        expected_version=expected,
        actual_version=actual,
        unsaved=list(unsaved),
    )


def check_token(name: str, value: object) -> str | None:
    """An ``incarnation`` or ``turn_id``: None, or text of 1 to 200 bytes (uuid4 hex is what we make)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or value == CREATE_PREFIX:
        raise ConfigurationError(f"{name} must be a non-empty string or None, got {value!r}")
    return check_text(name, value, max_bytes=200)


def new_incarnation() -> str:
    return uuid.uuid4().hex


def creating(token: str | None = None) -> str:
    """The ``incarnation`` argument of an append that creates its session under ``token`` (a new one if
    None): the only way a caller names the incarnation of a session that does not exist yet."""
    return CREATE_PREFIX + (token or new_incarnation())


def pinned_incarnation(incarnation: str | None) -> str | None:
    """What the session's stored incarnation is compared with: the token itself, or the one a create names."""
    if incarnation is not None and incarnation.startswith(CREATE_PREFIX):
        return incarnation[len(CREATE_PREFIX) :]
    return incarnation


def same_incarnation(incarnation: str | None, held: str | None) -> bool:
    """Is the session (of incarnation ``held``) the one a writer holding ``incarnation`` read? Unknown on
    either side (None: not given, or written before incarnations) is not compared."""
    token = pinned_incarnation(incarnation)
    return token is None or held is None or held == token


def pop_incarnation(changes: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``update_session``'s ``incarnation`` (that of the session the write was built from: the write applies
    only to it, never to a session deleted and created again since), apart from the fields it sets."""
    rest = dict(changes)
    token = rest.pop("incarnation", None)
    return rest, pinned_incarnation(check_token("incarnation", token))


def created_incarnation(incarnation: str | None) -> str:
    """The incarnation a session created by an append takes: the one ``creating`` named, else a new one
    (``append_allowed`` lets no bare token create)."""
    if incarnation is not None and incarnation.startswith(CREATE_PREFIX):
        return incarnation[len(CREATE_PREFIX) :]
    return new_incarnation()


def takes_append_tokens(store: Any) -> bool:
    """Does ``store.append`` take ``incarnation`` and ``turn_id``? Every store of ours does; a user's own
    ``Store`` written before them may not, and keeps working without them."""
    return takes_append_arguments(store, "incarnation", "turn_id")


def takes_append_arguments(store: Any, *names: str) -> bool:
    """Does ``store.append`` take every one of ``names`` as a keyword? Read for each function that is
    ``append`` (a method replaced at run time is read anew); the answer is kept per function, because
    ``inspect.signature`` on every turn was a measurable share of a service's CPU (bench/RESULTS.md "Proxy")."""
    append = store.append
    function = getattr(append, "__func__", append)
    try:
        taken = _APPEND_KEYWORDS[function]
    except (KeyError, TypeError):
        taken = _keywords(append)
        with contextlib.suppress(TypeError):  # not weakly referenceable: read each time
            _APPEND_KEYWORDS[function] = taken
    return taken is None or all(name in taken for name in names)


_APPEND_KEYWORDS: weakref.WeakKeyDictionary[Any, frozenset[str] | None] = weakref.WeakKeyDictionary()


def _keywords(append: Any) -> frozenset[str] | None:
    """The keywords ``append`` takes; None when it takes any (``**kwargs``)."""
    import inspect

    try:
        parameters = inspect.signature(append).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin or a mock without a signature
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return frozenset(parameters)


def named_turn(turn_id: str | None) -> str:
    """``turn_id``, or a fresh id for an append whose caller gave none. A store that sends its commit with the
    write (PostgreSQL) runs an append again when the connection died before the reply: with an id the second
    run finds this very turn committed (``append_allowed`` returns False) instead of reporting a conflict
    for a turn that was stored. To other writers it is as if no id were given: only this call knows it."""
    return turn_id if turn_id is not None else "~" + uuid.uuid4().hex


def append_allowed(
    session_id: str,
    entries: Sequence[Any],
    expected: int,
    incarnation: str | None,
    turn_id: str | None,
    actual: int,
    actual_incarnation: str | None,
    last_turn: Callable[[], str | None],
) -> bool:
    """The compare-and-swap of ``append``, written once for every backend, against the session as it is
    (``actual`` 0 and no incarnation when it does not exist). True: write the turn. False: this very turn
    (``turn_id``) is what the last append committed, so the caller returns ``expected + 1`` and writes
    nothing. Otherwise ``ConflictError``. ``last_turn`` reads the id the last append recorded (only called
    when it can matter).

    A create is its own case: a bare ``incarnation`` names a session the caller read, so when no session is
    there (it was deleted since) nothing is created under it: a session made under a token read from an
    earlier session would pass, to a writer still holding that earlier one, for the session it held. Only
    ``creating(token)`` creates under a chosen token; ``None`` creates under a new one."""
    token = pinned_incarnation(incarnation)
    same = same_incarnation(incarnation, actual_incarnation)
    gone = token is not None and token == incarnation and actual == 0 and actual_incarnation is None
    if actual == expected and same and not gone:
        return True
    if turn_id is not None and same and actual == expected + 1 and last_turn() == turn_id:
        return False
    raise conflict(session_id, expected, actual, entries, replaced=actual == expected and not gone, gone=gone)
