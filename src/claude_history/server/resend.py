"""Which of the messages a client sent are new: the client may send only its new message (or tool results), or
still resend the whole conversation. Pure functions; the proxy decides what to store with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..history import as_blocks

__all__ = ["Diverged", "new_part", "normal_form", "sends_back_last_reply"]


class Diverged(ValueError):
    """What the client sent is neither only new messages nor the stored log followed by new ones."""

    def __init__(self, index: int) -> None:
        super().__init__(
            f"messages.{index} differs from the stored session's message {index}: the client's history and the "
            "session diverged (another request changed the session, or this is not the session's history). "
            "Send only the new message, or the session's current history followed by it."
        )
        self.index = index


def _strip(value: Any) -> Any:
    """Drop what does not change a message's meaning: ``None`` fields (an SDK dump may carry them or not)
    and ``cache_control`` markers (the service places its own)."""
    if isinstance(value, Mapping):
        return {k: _strip(v) for k, v in value.items() if v is not None and k != "cache_control"}
    if isinstance(value, (list, tuple)):
        return [_strip(v) for v in value]
    return value


def normal_form(message: Mapping[str, Any]) -> Any:
    """A message as compared here: string content as one text block, no ``None`` fields, no cache markers."""
    return _strip(as_blocks(message))


def new_part(log: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The messages of ``sent`` that are not stored yet.

    ``sent`` extends ``log`` (a client that resends everything): the messages after it. Otherwise, a client
    that sends only what is new: ``sent`` itself, which must then start a turn (a user message) and is at
    most one message unless the log is empty. Raises ``Diverged`` when neither reading holds."""
    if len(sent) > len(log) and all(normal_form(a) == normal_form(b) for a, b in zip(log, sent, strict=False)):
        return [dict(m) for m in sent[len(log) :]]
    if not log or len(sent) == 1:
        return [dict(m) for m in sent]
    pairs = enumerate(zip(log, sent, strict=False))
    first = next((i for i, (a, b) in pairs if normal_form(a) != normal_form(b)), len(log))
    raise Diverged(min(first, len(sent) - 1))


def sends_back_last_reply(log: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]]) -> bool:
    """``sent`` adds nothing to a log that ends with a reply: it is the stored log itself, or only its last
    (assistant) message. That is how the API asks a client to continue a ``pause_turn`` reply; here the
    reply is already stored, as it stood."""
    if not log or log[-1].get("role") != "assistant" or not sent:
        return False
    if len(sent) == 1:
        return bool(normal_form(sent[0]) == normal_form(log[-1]))
    return len(sent) == len(log) and all(normal_form(a) == normal_form(b) for a, b in zip(log, sent, strict=True))
