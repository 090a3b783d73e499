"""Message threads (beta ``message-threads-2026-08-12``): conversation state the server holds between turns.

Sources: the SDK's request types and thread helper (anthropic 2.17.0: ``BetaThreadCreateParams``,
``BetaThreadContinueParams``, ``lib/threads/_thread_state.py``) and its error types
(``ThreadNotFoundError`` 404, ``ThreadAlreadyContinuedError`` 400, ``ThreadFingerprintMismatchError`` 400,
``ThreadUnsupportedRequestError`` 400 with ``unsupported``, each named by ``error.details.error_code``):

* ``thread: {"type": "create"}`` holds the conversation (the request's messages and the reply) under the
  response's ``id``; ``{"type": "continue", "previous_message_id": id}`` resumes from that response, and the
  request carries only the new messages (none after a ``pause_turn``).
* On a continue the server takes ``system`` and ``tools`` from the thread and refuses a request that repeats
  them (the SDK's ``CREATE_ONLY_FIELDS``); a field that must stay the same (here ``model``) and differs is a
  ``thread_fingerprint_mismatch``.
* Each response can be continued once (``thread_already_continued``); an unknown or expired id is a 404
  ``thread_not_found`` ("No usable Thread state was found for `previous_message_id`"), after which the SDK
  replays the whole conversation with a new ``create``.
* Top-level ``cache_control`` and ``context_management`` are among the ``unsupported`` features the SDK lists
  (``ThreadUnsupportedFeatureName``).

No public source states how long a thread is held: the simulator holds it for :data:`THREAD_TTL` seconds after
the response that holds it, on the simulator clock (``Simulator.advance``), and ``Simulator.thread_ttl`` changes it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._common import ApiError, bad_request

__all__ = ["THREADS_BETA", "THREAD_TTL", "ThreadStore", "ThreadTurn"]

THREADS_BETA = "message-threads-2026-08-12"
THREAD_TTL = 3600.0  # assumption (see the module docstring)
CREATE_ONLY = ("system", "tools")
FINGERPRINT = ("model",)
UNSUPPORTED = ("cache_control", "context_management")
MAX_HELD = 10_000  # bounded memory: the oldest threads go first (as if expired)


def thread_error(status: int, code: str, message: str, **details: Any) -> ApiError:
    return ApiError(status, message, details={"error_code": code, **details})


@dataclass
class ThreadTurn:
    """A threaded request: the full body the model sees and the response it continues (``None``: a create)."""

    body: dict[str, Any]
    previous: str | None


@dataclass
class _Held:
    body: dict[str, Any]  # the full request of the turn, its messages ending with the reply
    expires: float
    continued: bool = False


class ThreadStore:
    """The threads one simulator holds, by response id."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._held.clear()

    def open(self, body: Any, headers: Mapping[str, str], now: float) -> ThreadTurn | None:
        """The threaded turn ``body`` asks for (with its full history), or ``None`` when it is not threaded.
        Raises the API's errors for a thread that cannot be continued."""
        if not isinstance(body, dict) or body.get("thread") is None or not _beta_on(headers):
            return None
        spec = body["thread"]
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind not in ("create", "continue"):
            raise bad_request("thread.type: Input should be 'create' or 'continue'")
        unsupported = [name for name in UNSUPPORTED if body.get(name) is not None]
        if unsupported:
            raise thread_error(
                400,
                "thread_unsupported_request",
                f"thread: not supported together with {', '.join(unsupported)}",
                unsupported=unsupported,
            )
        rest = {k: v for k, v in body.items() if k != "thread"}
        if kind == "create":
            return ThreadTurn(rest, None)
        previous = spec.get("previous_message_id")
        if not isinstance(previous, str):
            raise bad_request("thread.continue.previous_message_id: Field required")
        for name in CREATE_ONLY:
            if name in rest:
                raise bad_request(
                    f"{name}: not permitted on a thread continuation: the thread keeps the `{name}` it was created with"
                )
        with self._lock:
            held = self._live(previous, now)
            if held.continued:
                raise thread_error(
                    400,
                    "thread_already_continued",
                    f"thread.continue.previous_message_id: {previous} has already been continued; continue "
                    "from the thread's most recent response",
                )
            full = copy.deepcopy(held.body)
        changed = [name for name in FINGERPRINT if name in rest and rest[name] != full.get(name)]
        if changed:
            raise thread_error(
                400,
                "thread_fingerprint_mismatch",
                f"{', '.join(changed)}: differs from the value the thread was created with",
            )
        messages = rest.pop("messages", [])
        if not isinstance(messages, list):
            raise bad_request("messages: Input should be a valid list")
        full.update(rest)
        full["messages"] = [*full.get("messages", []), *messages]
        return ThreadTurn(full, previous)

    def record(self, turn: ThreadTurn, message: dict[str, Any], now: float, ttl: float) -> None:
        """Hold the conversation up to ``message`` (a reply to ``turn``) under the reply's id."""
        if message.get("stop_reason") == "refusal":  # SDK: the server does not hold a refused turn
            return
        body = copy.deepcopy(turn.body)
        reply = {"role": "assistant", "content": copy.deepcopy(message["content"])}
        body["messages"] = [*body.get("messages", []), reply]
        with self._lock:
            if turn.previous is not None:
                held = self._live(turn.previous, now)
                if held.continued:
                    raise thread_error(400, "thread_already_continued", f"{turn.previous} has already been continued")
                held.continued = True
            self._held[message["id"]] = _Held(body, now + ttl)
            while len(self._held) > MAX_HELD:
                del self._held[next(iter(self._held))]

    def _live(self, message_id: str, now: float) -> _Held:
        held = self._held.get(message_id)
        if held is None or held.expires <= now:
            self._held.pop(message_id, None)
            raise thread_error(
                404,
                "thread_not_found",
                f"thread.continue.previous_message_id: no usable thread state was found for {message_id}; "
                'replay the full conversation with thread: {"type": "create"}',
            )
        return held


def _beta_on(headers: Mapping[str, str]) -> bool:
    betas = headers.get("anthropic-beta", "")
    return THREADS_BETA in {b.strip() for b in betas.split(",")}
