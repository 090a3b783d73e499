"""The HTTP service: an Anthropic-compatible stateful proxy and a sessions API (``claude-history serve``).

Imports FastAPI, so nothing outside this package imports it at module level: the library and
``claude-history --help`` stay light. See docs/server.md.
"""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
