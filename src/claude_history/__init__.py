"""claude-history: multi-turn conversations with Claude that stay correct, persistent, in the window and cheap."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it. Imported lazily so `import claude_history` stays cheap and optional
# extras (psycopg, redis, cryptography) are only needed by the parts that use them.
_EXPORTS: dict[str, str] = {
    "Chat": "claude_history.chat",
    "AsyncChat": "claude_history.chat",
    "open_store": "claude_history.stores",
    "open_async_store": "claude_history.stores",
    "KeepAll": "claude_history.context",
    "LastTurns": "claude_history.context",
    "TokenBudget": "claude_history.context",
    "CacheAwareWindow": "claude_history.context",
    "Summarize": "claude_history.context",
    "ServerCompaction": "claude_history.context",
    "OldImages": "claude_history.context",
    "Combine": "claude_history.context",
    "context_report": "claude_history.context",
    "ContextReport": "claude_history.context",
    "TokenUsage": "claude_history.usage",
    "HistoryError": "claude_history.errors",
    "InvalidHistory": "claude_history.errors",
    "ConflictError": "claude_history.errors",
    "StoreUnavailable": "claude_history.errors",
    "SessionNotFound": "claude_history.errors",
    "BudgetExceeded": "claude_history.errors",
    "DecryptionError": "claude_history.errors",
    "ConfigurationError": "claude_history.errors",
    "validate": "claude_history.history",
    "repair": "claude_history.history",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover
    from .errors import (
        BudgetExceeded,
        ConfigurationError,
        ConflictError,
        DecryptionError,
        HistoryError,
        InvalidHistory,
        SessionNotFound,
        StoreUnavailable,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'claude_history' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
