"""Usage fields beyond the token split: ``server_tool_use`` and ``service_tier``.

Sources: the SDK's ``Usage`` / ``MessageDeltaUsage`` (anthropic 2.17.0, types/usage.py): ``server_tool_use`` is
"The number of server tool requests" (``ServerToolUsage``: ``web_search_requests``, ``web_fetch_requests``),
``service_tier`` "If the request used the priority, standard, or batch tier"; "Web search tool",
platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool: the usage of a response that searched
carries ``"server_tool_use": {"web_search_requests": 1}``, billed per search; "Service tiers",
platform.claude.com/docs/en/api/service-tiers: without priority capacity a request is served at ``standard``
whether it asked for ``auto`` or ``standard_only``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SERVICE_TIER", "server_tool_usage"]

SERVICE_TIER = "standard"  # the simulator has no priority capacity; batches are billed as "batch"

# server tool name -> its counter in usage.server_tool_use (the SDK's ServerToolUsage fields)
_COUNTERS = {"web_search": "web_search_requests", "web_fetch": "web_fetch_requests"}


def server_tool_usage(blocks: list[dict[str, Any]]) -> dict[str, int] | None:
    """``usage.server_tool_use`` for a reply: one request per ``server_tool_use`` block of a counted tool, except
    a call whose result is an error (an errored search or fetch is not billed); ``None`` (left out) when the
    reply used no server tool."""
    used = [b for b in blocks if b.get("type") == "server_tool_use"]
    if not used:
        return None
    failed = {b.get("tool_use_id") for b in blocks if _is_error_result(b)}
    counts = dict.fromkeys(_COUNTERS.values(), 0)
    for block in used:
        if block.get("name") in _COUNTERS and block.get("id") not in failed:
            counts[_COUNTERS[block["name"]]] += 1
    return counts


def _is_error_result(block: dict[str, Any]) -> bool:
    if block.get("type") not in ("web_search_tool_result", "web_fetch_tool_result"):
        return False
    content = block.get("content")
    return isinstance(content, dict) and str(content.get("type", "")).endswith("_error")
