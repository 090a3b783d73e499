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
    "SessionNotContinuable": "claude_history.errors",
    "BudgetExceeded": "claude_history.errors",
    "DecryptionError": "claude_history.errors",
    "ConfigurationError": "claude_history.errors",
    "TurnInProgress": "claude_history.errors",
    "LeaseLost": "claude_history.errors",
    "ToolResultsMissing": "claude_history.errors",
    "validate": "claude_history.history",
    "repair": "claude_history.history",
    "WarmSessions": "claude_history.warm",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover - gives type checkers and IDEs the real names
    from .chat import (
        AsyncChat as AsyncChat,
    )
    from .chat import (
        Chat as Chat,
    )
    from .context import (
        CacheAwareWindow as CacheAwareWindow,
    )
    from .context import (
        Combine as Combine,
    )
    from .context import (
        ContextReport as ContextReport,
    )
    from .context import (
        KeepAll as KeepAll,
    )
    from .context import (
        LastTurns as LastTurns,
    )
    from .context import (
        OldImages as OldImages,
    )
    from .context import (
        ServerCompaction as ServerCompaction,
    )
    from .context import (
        Summarize as Summarize,
    )
    from .context import (
        TokenBudget as TokenBudget,
    )
    from .context import (
        context_report as context_report,
    )
    from .errors import (
        BudgetExceeded as BudgetExceeded,
    )
    from .errors import (
        ConfigurationError as ConfigurationError,
    )
    from .errors import (
        ConflictError as ConflictError,
    )
    from .errors import (
        DecryptionError as DecryptionError,
    )
    from .errors import (
        HistoryError as HistoryError,
    )
    from .errors import (
        InvalidHistory as InvalidHistory,
    )
    from .errors import (
        LeaseLost as LeaseLost,
    )
    from .errors import (
        SessionNotContinuable as SessionNotContinuable,
    )
    from .errors import (
        SessionNotFound as SessionNotFound,
    )
    from .errors import (
        StoreUnavailable as StoreUnavailable,
    )
    from .errors import (
        ToolResultsMissing as ToolResultsMissing,
    )
    from .errors import (
        TurnInProgress as TurnInProgress,
    )
    from .history import (
        repair as repair,
    )
    from .history import (
        validate as validate,
    )
    from .stores import (
        open_async_store as open_async_store,
    )
    from .stores import (
        open_store as open_store,
    )
    from .usage import (
        TokenUsage as TokenUsage,
    )
    from .warm import (
        WarmSessions as WarmSessions,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'claude_history' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
