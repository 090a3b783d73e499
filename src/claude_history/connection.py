"""How a connection to the API failed, told from the exception's type and its causes, never from its text.

Releases of the ``anthropic`` SDK differ in what a failed connection raises: up to 2.16 a stream cut mid-body
surfaced as the HTTP library's own ``RemoteProtocolError``; 2.17 wraps it in ``anthropic.APIConnectionError`` with
the text ``Connection to HOST failed: REASON (URL)``. Both keep the transport error in the exception chain
(``raise ... from err``), so walking ``__cause__`` / ``__context__`` classifies every release the same way.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Literal

import anthropic

__all__ = ["TRANSPORT_ERRORS", "ConnectionFailure", "IncompleteStream", "connection_failure"]

ConnectionFailure = Literal["unreachable", "timeout", "cut"]


def _http_modules() -> list[ModuleType]:
    """The HTTP libraries the SDK may use: anthropic 2.x uses httpx2, older releases httpx."""
    found: list[ModuleType] = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
    return found


def _classes(attribute: str) -> tuple[type[BaseException], ...]:
    return tuple(getattr(module, attribute) for module in _http_modules() if hasattr(module, attribute))


# Every error of the HTTP library below the SDK; older SDK releases let these escape from a stream.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = _classes("TransportError")
_TIMEOUTS: tuple[type[BaseException], ...] = (anthropic.APITimeoutError, TimeoutError, *_classes("TimeoutException"))
# Nothing answered: refused, no route, unknown host, or the proxy in between refused.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    socket.gaierror,
    *_classes("ConnectError"),
    *_classes("ProxyError"),
)


class IncompleteStream(anthropic.APIConnectionError):
    """A stream that ended cleanly at the transport level but before ``message_stop``: the reply is incomplete.

    A subclass of the SDK's ``APIConnectionError``, so code that handles the SDK's connection errors handles it.
    """


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def connection_failure(exc: BaseException) -> ConnectionFailure | None:
    """``"unreachable"`` (nothing answered), ``"timeout"`` or ``"cut"`` (the connection broke after the request
    went out, e.g. a stream cut mid-reply); ``None`` when ``exc`` is not a connection failure at all.

    An ``APIConnectionError`` whose cause is unknown counts as ``"cut"``: the request may have reached the API, so
    it is never reported as "cannot reach".
    """
    if not isinstance(exc, (anthropic.APIConnectionError, *TRANSPORT_ERRORS, ConnectionError)):
        return None
    if isinstance(exc, IncompleteStream):
        return "cut"
    chain = list(_chain(exc))
    if any(isinstance(e, _TIMEOUTS) for e in chain):
        return "timeout"
    if any(isinstance(e, _UNREACHABLE) for e in chain):
        return "unreachable"
    if len(chain) == 1 and isinstance(exc, anthropic.APIConnectionError):
        return "unreachable"  # the SDK's bare "Connection error.": no response was ever read
    return "cut"
