"""What a service is started with (the ``serve`` command's options, as data)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from ..context import CacheAwareWindow, KeepAll, LastTurns
from ..errors import ConfigurationError

__all__ = ["CONFIG_ENV", "DEFAULT_MODEL", "ServerConfig", "config_from_env", "parse_policy"]

DEFAULT_MODEL = "claude-sonnet-4-6"

# How `serve` hands its options to uvicorn's worker processes (JSON; never holds a key but the upstream's).
CONFIG_ENV = "CLAUDE_HISTORY_SERVER_CONFIG"

_POLICY = re.compile(r"^(keep-all|last-turns:(\d+)|cache-aware:(\d+))$")


def parse_policy(text: str) -> Any:
    """``keep-all``, ``last-turns:N`` or ``cache-aware:TOKENS`` as a context policy object."""
    match = _POLICY.match(text.strip())
    if match is None:
        raise ConfigurationError(
            f"unknown context policy {text!r}; use keep-all, last-turns:N or cache-aware:MAX_INPUT_TOKENS"
        )
    if match.group(2):
        return LastTurns(int(match.group(2)))
    if match.group(3):
        return CacheAwareWindow(int(match.group(3)))
    return KeepAll()


@dataclass(frozen=True)
class ServerConfig:
    """``upstream_url`` None: the SDK's default (the real API, or ``ANTHROPIC_BASE_URL``). ``upstream_key``
    None: ``ANTHROPIC_API_KEY``. ``forward_client_key``: call the upstream with the client's own key instead
    (then the client's key is not a tenant key). ``auth`` False: no keys, one anonymous tenant whose session
    ids are the store's own (a local service over the CLI's sessions)."""

    store_url: str | None = None
    upstream_url: str | None = None
    upstream_key: str | None = None
    forward_client_key: bool = False
    model: str = DEFAULT_MODEL
    system: str | None = None
    context: Any = field(default_factory=KeepAll)
    cache: bool | str = True
    max_tokens: int = 1024
    auth: bool = True
    max_body_bytes: int = 32 * 1024 * 1024
    rate_limit: float | None = None  # requests per second per tenant (token bucket); None: unlimited
    rate_burst: int = 20
    cors_origins: tuple[str, ...] = ()
    upstream_timeout: float = 600.0
    max_continuations: int = 10  # pause_turn continuations of one turn (server tools) the service makes
    # Warm sessions (server/warm.py): the sessions, and the messages in all, whose last turn's state and planner
    # a service process keeps for the next request on them. 0 sessions: every request loads and plans afresh.
    warm_sessions: int = 512
    warm_messages: int = 50_000


def config_from_env() -> ServerConfig:
    """The config ``serve`` put in ``CONFIG_ENV`` (``context`` as its text form, e.g. ``cache-aware:50000``)."""
    raw = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    known = {f.name for f in fields(ServerConfig)}
    options = {k: v for k, v in raw.items() if k in known}
    if "context" in options:
        options["context"] = parse_policy(str(options["context"]))
    if "cors_origins" in options:
        options["cors_origins"] = tuple(options["cors_origins"])
    return ServerConfig(**options)
