"""The one table of beta gates: which ``anthropic-beta`` value a beta-only request field or block type needs.

What is beta-only is derived (``_schema``: a path the SDK's beta types know and its generally available types do
not); this table says which header value opens each one. Without it the API answers as if the field did not
exist: ``context_management: Extra inputs are not permitted`` (Wei-Shaw/claude-relay-service issue 660, a
request with ``context_management`` and no context-management beta), and an unknown block tag is refused with
the tags the request may use. A beta-only path with no row here is accepted (listed as not modelled in
docs/simulator.md).

Keys are normalised paths: list indices are ``*``, a tagged union's member is its tag
(``messages.*.content.*.compaction``, ``tools.*.mcp_toolset``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import get_args

from ._common import bad_request

__all__ = ["GATES", "Gate", "allowed", "known_betas", "request_betas"]


@dataclass(frozen=True)
class Gate:
    betas: frozenset[str]
    source: str


def _g(source: str, *betas: str) -> Gate:
    return Gate(frozenset(betas), source)


_FACTS = "claude-api-facts.md, Server-side features"
_CONTEXT_EDITING = "platform.claude.com/docs/en/build-with-claude/context-editing; " + _FACTS
_COMPACTION = "platform.claude.com/docs/en/build-with-claude/compaction; " + _FACTS
_MCP = "platform.claude.com/docs/en/agents-and-tools/mcp-connector"
_COMPUTER = "platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool (tool version -> beta)"
_FALLBACK = "SDK docstrings of BetaFallbacksParam: 'These rules apply with the server-side-fallback-* beta header'"

GATES: dict[str, Gate] = {
    "context_management": _g(_CONTEXT_EDITING, "context-management-2025-06-27", "compact-2026-01-12"),
    "context_management.edits.*.clear_tool_uses_20250919": _g(_CONTEXT_EDITING, "context-management-2025-06-27"),
    "context_management.edits.*.clear_thinking_20251015": _g(_CONTEXT_EDITING, "context-management-2025-06-27"),
    "context_management.edits.*.compact_20260112": _g(_COMPACTION, "compact-2026-01-12"),
    "compaction": _g("SDK: BetaCompactionConfigParam (compaction request)", "compact-2026-09-04"),
    "messages.*.content.*.compaction": _g(_COMPACTION, "compact-2026-01-12", "compact-2026-09-04"),
    "thread": _g(
        "platform.claude.com/docs/en/build-with-claude/message-threads; " + _FACTS, "message-threads-2026-08-12"
    ),
    "mcp_servers": _g(_MCP, "mcp-client-2025-04-04", "mcp-client-2025-11-20", "mcp-client-2026-09-15"),
    "messages.*.content.*.mcp_tool_use": _g(
        _MCP, "mcp-client-2025-04-04", "mcp-client-2025-11-20", "mcp-client-2026-09-15"
    ),
    "messages.*.content.*.mcp_tool_result": _g(
        _MCP, "mcp-client-2025-04-04", "mcp-client-2025-11-20", "mcp-client-2026-09-15"
    ),
    "messages.*.content.*.mcp_tool_listing": _g(_MCP, "mcp-client-2025-11-20", "mcp-client-2026-09-15"),
    "tools.*.mcp_toolset": _g(_MCP, "mcp-client-2025-11-20", "mcp-client-2026-09-15"),
    "tools.*.computer_20241022": _g(_COMPUTER, "computer-use-2024-10-22"),
    "tools.*.bash_20241022": _g(_COMPUTER, "computer-use-2024-10-22"),
    "tools.*.text_editor_20241022": _g(_COMPUTER, "computer-use-2024-10-22"),
    "tools.*.computer_20250124": _g(_COMPUTER, "computer-use-2025-01-24"),
    "tools.*.computer_20251124": _g(_COMPUTER, "computer-use-2025-11-24"),
    "tools.*.advisor_20260301": _g(
        "platform.claude.com/docs/en/agents-and-tools/tool-use/advisor-tool", "advisor-tool-2026-03-01"
    ),
    "messages.*.content.*.advisor_tool_result": _g(
        "platform.claude.com/docs/en/agents-and-tools/tool-use/advisor-tool", "advisor-tool-2026-03-01"
    ),
    "fallbacks": _g(_FALLBACK, "server-side-fallback-2026-06-01", "server-side-fallback-2026-07-01"),
    "messages.*.content.*.fallback": _g(
        _FALLBACK, "server-side-fallback-2026-06-01", "server-side-fallback-2026-07-01"
    ),
    "fallback_credit_token": _g(
        "platform.claude.com/docs/en/build-with-claude/fallback-credit",
        "fallback-credit-2026-06-01",
        "fallback-credit-2026-07-01",
    ),
    "output_config.task_budget": _g(
        "platform.claude.com/docs/en/build-with-claude/task-budgets", "task-budgets-2026-03-13"
    ),
    "thinking.enabled.block_binding": _g(
        "SDK beta list: thinking-binding-controls", "thinking-binding-controls-2026-08-01"
    ),
    "thinking.adaptive.block_binding": _g(
        "SDK beta list: thinking-binding-controls", "thinking-binding-controls-2026-08-01"
    ),
    "messages.*.clear_at": _g(
        "platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages",
        "mid-conversation-system-clear-at-2026-08-21",
    ),
    "messages.*.output_config": _g(
        "platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages",
        "mid-conversation-output-config-2026-07-01",
    ),
    "messages.*.content.*.tool_addition": _g(
        "SDK beta list: mid-conversation-tool-changes", "mid-conversation-tool-changes-2026-07-01"
    ),
    "messages.*.content.*.tool_removal": _g(
        "SDK beta list: mid-conversation-tool-changes", "mid-conversation-tool-changes-2026-07-01"
    ),
    "billing_policy": _g("SDK beta list: user-profiles-billing", "user-profiles-billing-2026-10-01"),
}

# Interleaved thinking: with this beta a manual thinking budget may exceed max_tokens (the budget spans the whole
# turn). Source: platform.claude.com/docs/en/build-with-claude/extended-thinking#interleaved-thinking.
INTERLEAVED_THINKING = "interleaved-thinking-2025-05-14"


def allowed(norm: str, betas: Collection[str]) -> bool:
    """Whether a field or block at normalised path ``norm`` may be sent with these beta values."""
    gate = GATES.get(norm)
    return gate is None or not gate.betas.isdisjoint(betas)


@cache
def known_betas() -> frozenset[str]:
    """Every beta value the SDK knows (``anthropic.types.AnthropicBetaParam``: it moves with the SDK), and every
    beta the simulator itself models (``GATES``), so an older SDK (``make test-lowest``) can still open them."""
    from anthropic.types import AnthropicBetaParam

    names: set[str] = set(_USED_BY_THE_SDK_EXAMPLES)
    for gate in GATES.values():
        names.update(gate.betas)
    for arm in get_args(AnthropicBetaParam):
        names.update(v for v in get_args(arm) if isinstance(v, str))
    return frozenset(names)


# Values the SDK's own examples send that its AnthropicBetaParam does not list (the API accepts them):
# anthropic-sdk-python examples/tools_runner_search_tool.py.
_USED_BY_THE_SDK_EXAMPLES = ("tool-search-tool-2025-10-19",)


def request_betas(headers: Mapping[str, str]) -> frozenset[str]:
    """The request's ``anthropic-beta`` values (comma-separated); an unknown one is the API's 400.

    The text is the API's (zed-industries/zed issue 42715, pacifio/cersei issue 20, QuantumNous/new-api issue
    2975 for several values at once; aaronrussell/anthropix issue 15 for an empty header)."""
    if "anthropic-beta" not in headers:
        return frozenset()
    values = [v.strip() for v in headers["anthropic-beta"].split(",")]
    unknown = [v for v in values if v not in known_betas()]
    if unknown:
        shown = ", ".join(f"`{v}`" for v in dict.fromkeys(unknown))
        raise bad_request(
            f"Unexpected value(s) {shown} for the `anthropic-beta` header. Please consult our documentation at "
            "docs.claude.com or try again without the header."
        )
    return frozenset(values)
