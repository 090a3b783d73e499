"""The HTTP service: an Anthropic-compatible stateful proxy and a sessions API (``claude-history serve``).

Imports FastAPI, so nothing outside this package imports it at module level: the library and
``claude-history --help`` stay light. The package itself loads the app lazily, so the CLI can use its light
modules (``tenants.is_internal``) without FastAPI. See docs/server.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    """``create_app`` and ``ServerConfig`` on first use (they import FastAPI)."""
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServerConfig":
        from .config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
