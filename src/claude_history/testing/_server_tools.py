"""Default replies that run server tools (web search, web fetch, code execution) with deterministic results.

Block shapes follow the SDK's response types (anthropic 2.17.0: ``ServerToolUseBlock``,
``WebSearchToolResultBlock`` / ``WebSearchResultBlock``, ``WebFetchToolResultBlock`` / ``WebFetchBlock``,
``CodeExecutionToolResultBlock`` / ``CodeExecutionResultBlock``, ``BashCodeExecutionToolResultBlock``,
``ServerToolUsage``) and the docs: "Server tools" (platform.claude.com/docs/en/agents-and-tools/tool-use/
server-tools: ids start with ``srvtoolu_``, the result block follows its ``server_tool_use`` in the same turn,
``pause_turn`` when the server-side loop pauses a long turn), "Web search tool" (results carry ``url``,
``title``, ``encrypted_content``, ``page_age``; ``max_uses`` exceeded gives a ``web_search_tool_result_error``
with ``max_uses_exceeded``; ``usage.server_tool_use.web_search_requests``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from ._tool_pick import words

__all__ = ["MAX_SERVER_TOOL_CALLS", "server_tool_reply"]  # usage.server_tool_use: _usage.py

# The server-side sampling loop pauses a turn (stop_reason "pause_turn") after this many iterations ("Server
# tools", "The server-side loop and pause_turn": a default limit of 10 iterations); the caller sends the reply
# back as it is to continue.
MAX_SERVER_TOOL_CALLS = 10
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")  # RFC 2606: reserved for examples
_URL = re.compile(r"https?://[^\s\"'<>)]+")
_COUNT = re.compile(r"\b(\d{1,3}) (?:searches|search(?:es)? times|times)\b")
_SEARCH_WORDS = {"search", "find", "look", "latest", "news", "current", "today", "weather"}
_CODE_WORDS = {"run", "execute", "calculate", "compute", "code", "python", "script"}


def _kind(tool: dict[str, Any]) -> str | None:
    kind = str(tool.get("type") or "")
    for prefix in ("web_search_", "web_fetch_", "code_execution_"):
        if kind.startswith(prefix):
            return prefix[:-1]
    return None


def _id(seed: str, k: int) -> str:
    return "srvtoolu_sim" + hashlib.sha256(f"{seed}/{k}".encode()).hexdigest()[:20]


def server_tool_reply(
    tools: list[dict[str, Any]], question: str, done: list[dict[str, Any]], seed: str
) -> tuple[list[dict[str, Any]], str] | None:
    """(blocks, stop_reason) of a reply that uses a server tool, or ``None`` when none fits ``question``.

    A URL in the text and ``web_fetch`` offered -> fetch it; code (a fenced block) or a word such as "run" or
    "calculate" with code execution offered -> run it; a question ("?") or a word such as "search" or
    "latest" with ``web_search`` offered -> search ("N searches" / "N times" asks for N). ``done``: the
    server tool blocks already in this turn (a paused turn sent back); more than :data:`MAX_SERVER_TOOL_CALLS`
    calls in one reply -> the reply stops with ``pause_turn``.
    """
    offered = {kind: t for t in tools if (kind := _kind(t)) is not None and not t.get("defer_loading")}
    if not offered:
        return None
    said = words(question)
    url = _URL.search(question)
    if "web_fetch" in offered and url:
        plan = [("web_fetch", url.group(0).rstrip(".,;:!?"))]
    elif "code_execution" in offered and ("```" in question or said & _CODE_WORDS):
        plan = [("code_execution", _code(question))]
    elif "web_search" in offered and ("?" in question or said & _SEARCH_WORDS):
        count = _COUNT.search(question.lower())
        n = max(1, int(count.group(1))) if count else 1
        query = " ".join(w for w in re.findall(r"[\w'-]+", question) if w.lower() not in _STOP)[:200]
        plan = [("web_search", query if k == 0 else f"{query} ({k + 1})") for k in range(n)]
    else:
        return None
    already = sum(1 for b in done if b.get("type") == "server_tool_use")
    todo = plan[already:]
    if not todo:
        return None  # the turn's calls are done: answer in text
    blocks: list[dict[str, Any]] = []
    uses: dict[str, int] = {}  # max_uses counts per request (SDK: "in the API request")
    for k, (kind, arg) in enumerate(todo[:MAX_SERVER_TOOL_CALLS]):
        tool = offered[kind]
        tool_id = _id(seed, already + k)
        uses[kind] = uses.get(kind, 0) + 1
        max_uses = tool.get("max_uses")
        over = isinstance(max_uses, int) and uses[kind] > max_uses
        blocks += _call(kind, tool, arg, tool_id, over)
    if len(todo) > MAX_SERVER_TOOL_CALLS:
        return blocks, "pause_turn"
    blocks.append({"type": "text", "text": _summary(blocks)})
    return blocks, "end_turn"


_STOP = {"what", "what's", "whats", "is", "the", "a", "an", "in", "of", "please", "search", "for", "me", "tell"}


def _code(question: str) -> str:
    fenced = re.search(r"```(?:\w+)?\n?(.*?)```", question, re.DOTALL)
    if fenced and fenced.group(1).strip():
        return fenced.group(1).strip()
    return f"print({question.strip()[:200]!r})"


def _call(kind: str, tool: dict[str, Any], arg: str, tool_id: str, over: bool) -> list[dict[str, Any]]:
    if kind == "web_search":
        use = {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": arg}}
        content: Any = (
            {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
            if over
            else _search_results(tool, arg)
        )
        return [use, {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": content}]
    if kind == "web_fetch":
        use = {"type": "server_tool_use", "id": tool_id, "name": "web_fetch", "input": {"url": arg}}
        fetched: dict[str, Any] = (
            {"type": "web_fetch_tool_result_error", "error_code": "max_uses_exceeded"}
            if over
            else {
                "type": "web_fetch_result",
                "url": arg,
                "retrieved_at": "2026-01-01T00:00:00Z",
                "content": {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": f"Content of {arg}."},
                    "title": f"Page at {arg}",
                },
            }
        )
        return [use, {"type": "web_fetch_tool_result", "tool_use_id": tool_id, "content": fetched}]
    # Code execution: 2025-05-22 runs Python directly; later versions run it through bash.
    legacy = str(tool.get("type")) == "code_execution_20250522"
    if legacy:
        use = {"type": "server_tool_use", "id": tool_id, "name": "code_execution", "input": {"code": arg}}
    else:
        command = f"python3 -c {arg!r}"
        use = {"type": "server_tool_use", "id": tool_id, "name": "bash_code_execution", "input": {"command": command}}
    stdout = _stdout(arg)
    result = {"stdout": stdout, "stderr": "", "return_code": 0, "content": []}
    if legacy:
        block = {
            "type": "code_execution_tool_result",
            "tool_use_id": tool_id,
            "content": {"type": "code_execution_result", **result},
        }
    else:
        block = {
            "type": "bash_code_execution_tool_result",
            "tool_use_id": tool_id,
            "content": {"type": "bash_code_execution_result", **result},
        }
    return [use, block]


def _stdout(code: str) -> str:
    """What the code prints: the literal of a lone ``print('...')``, else a fixed line naming its size."""
    single = re.fullmatch(r"print\((['\"])(.*)\1\)", code.strip(), re.DOTALL)
    if single:
        return single.group(2) + "\n"
    return f"(simulated run of {len(code.splitlines())} lines)\n"


def _search_results(tool: dict[str, Any], query: str) -> list[dict[str, Any]]:
    """Three results on reserved example domains (or the tool's ``allowed_domains``, minus its
    ``blocked_domains``), the same for the same query."""
    allowed = tool.get("allowed_domains") or list(EXAMPLE_DOMAINS)
    blocked = set(tool.get("blocked_domains") or ())
    domains = [d for d in allowed if d not in blocked] or []
    slug = "-".join(re.findall(r"[a-z0-9]+", query.lower()))[:60] or "result"
    out = []
    for k, domain in enumerate(domains[:3]):
        url = f"https://{domain}/{slug}"
        secret = hashlib.sha256(f"{query}|{url}".encode()).digest()
        out.append(
            {
                "type": "web_search_result",
                "url": url,
                "title": f"{query} ({domain})",
                "encrypted_content": base64.b64encode(b"SIMSEARCH1" + secret).decode("ascii"),
                "page_age": f"January {k + 1}, 2026",
            }
        )
    return out


def _summary(blocks: list[dict[str, Any]]) -> str:
    """The closing text: what the server tools of the turn returned."""
    parts = []
    for b in blocks:
        content: Any = b.get("content")
        if b.get("type") == "web_search_tool_result":
            if isinstance(content, list):
                parts.append("Found " + ", ".join(r["url"] for r in content) + "." if content else "No results.")
            else:
                parts.append(f"The search failed: {content.get('error_code')}.")
        elif b.get("type") == "web_fetch_tool_result" and isinstance(content, dict):
            parts.append(f"Fetched {content.get('url')}." if "url" in content else "The fetch failed.")
        elif b.get("type") in ("code_execution_tool_result", "bash_code_execution_tool_result"):
            parts.append(f"The code printed: {content.get('stdout', '').strip()!r}.")
    return " ".join(parts) or "Done."


