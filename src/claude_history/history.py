"""Valid histories: validate, repair and cut message lists (pure functions over ``MessageParam`` dicts).

The rules come from ../shared/claude-api-facts.md ("Request shape", "Tool use pairing", "Thinking blocks"):

- roles are ``user`` and ``assistant``; the first message is a user message; a history that is *sent* ends
  with a user message (prefill is rejected on Claude 4.6 and later);
- no empty content, no empty or whitespace-only text block;
- every ``tool_use`` has a ``tool_result`` with its id in the very next (user) message, tool_result blocks
  come first in that message, and a tool_result answers a tool_use of the previous message;
- documents are not allowed in assistant messages; each role carries its own block types.

Consecutive messages of the same role: the API merges them into one turn, so a list containing them can be
sent. ``validate`` still rejects them by default, because the library keeps histories in strict alternation
(the stored log, turn boundaries and tool pairing are then unambiguous);
``validate(..., allow_consecutive=True)`` checks what the API would see after merging. ``repair`` merges them.

Where a history may be cut is decided by one function, :func:`turn_starts`; every context policy and the
stores' ``rewind`` use it.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .errors import InvalidHistory

__all__ = [
    "ASSISTANT_BLOCK_TYPES",
    "INTERRUPTED_TOOL_RESULT",
    "USER_BLOCK_TYPES",
    "as_blocks",
    "content_blocks",
    "continuable_copy",
    "continuation_problem",
    "is_turn_start",
    "last_turn_start",
    "left_out",
    "merge_consecutive",
    "repair",
    "sendable",
    "strip_thinking",
    "text_of",
    "tool_result_ids",
    "tool_use_ids",
    "turn_starts",
    "turns",
    "validate",
    "validate_from",
    "well_formed",
]

Message = Mapping[str, Any]

# Block types each role may carry (claude-api-facts.md "Request shape"; anthropic.types.ContentBlockParam).
USER_BLOCK_TYPES = frozenset(
    {"text", "image", "document", "search_result", "tool_result", "container_upload"}
)
ASSISTANT_BLOCK_TYPES = frozenset(
    {
        "text",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "advisor_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "compaction",
    }
)
THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})
# Blocks allowed inside a tool_result's content (anthropic.types.tool_result_block_param.Content).
TOOL_RESULT_CONTENT_TYPES = frozenset(
    {"text", "image", "search_result", "document", "tool_reference", "browser_state"}
)
# Fields the API requires on the common block types (missing ones are 400s).
_REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("source",),
    "document": ("source",),
    "tool_use": ("id", "name", "input"),
    "server_tool_use": ("id", "name", "input"),
    "tool_result": ("tool_use_id",),
    "thinking": ("thinking", "signature"),
    "redacted_thinking": ("data",),
}

INTERRUPTED_TOOL_RESULT = (
    "The tool call was interrupted before it returned a result (added by claude_history.repair)."
)


# --------------------------------------------------------------------------------------------------- helpers


def content_blocks(message: Message) -> list[dict[str, Any]]:
    """The message's content as a list of block dicts (a string becomes one text block); no copy is made of
    the blocks themselves."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, (list, tuple)):
        return [b for b in content if isinstance(b, dict)]
    return []


def as_blocks(message: Message) -> dict[str, Any]:
    """A deep copy of ``message`` whose content is always a list of blocks (string content becomes a text
    block); what callers need before adding ``cache_control`` to a block."""
    result = copy.deepcopy(dict(message))
    if isinstance(result.get("content"), str):
        result["content"] = [{"type": "text", "text": result["content"]}]
    return result


def text_of(message: Message) -> str:
    """The plain text of a message: its text blocks joined by newlines (tool results and other blocks are left
    out)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(
        b["text"]
        for b in content_blocks(message)
        if b.get("type") == "text" and isinstance(b.get("text"), str)
    )


def tool_use_ids(message: Message) -> list[str]:
    """Ids of the client ``tool_use`` blocks of an assistant message, in order (server tools are paired inside
    the assistant message itself and need no tool_result)."""
    if message.get("role") != "assistant":
        return []
    return [str(b.get("id")) for b in content_blocks(message) if b.get("type") == "tool_use"]


def tool_result_ids(message: Message) -> list[str]:
    """``tool_use_id`` of every tool_result block of a user message, in order."""
    if message.get("role") != "user":
        return []
    return [str(b.get("tool_use_id")) for b in content_blocks(message) if b.get("type") == "tool_result"]


def is_turn_start(message: Message) -> bool:
    """A user message that holds no tool_result: something the user said, where a turn begins.

    A user message that carries tool results (even next to text) continues the tool loop of the message before
    it, so a history cut there would start with tool_results whose tool_use is gone (a 400)."""
    if message.get("role") != "user":
        return False
    return not any(b.get("type") == "tool_result" for b in content_blocks(message))


def turn_starts(messages: Sequence[Message]) -> list[int]:
    """THE cut points of a history: indices where a kept part may begin.

    ``messages[k:]`` for any ``k`` returned here starts with a real user message and never separates a
    tool_use from its tool_result. Every context policy and every store's ``rewind`` cut only here.
    """
    return [i for i, m in enumerate(messages) if is_turn_start(m)]


def last_turn_start(messages: Sequence[Message]) -> int | None:
    """Index where the newest turn begins (``None`` if no user ever spoke): ``rewind`` drops from here."""
    for i in range(len(messages) - 1, -1, -1):
        if is_turn_start(messages[i]):
            return i
    return None


def turns(messages: Sequence[Message]) -> list[range]:
    """The history split into turns at :func:`turn_starts` (messages before the first turn start, if any,
    are not part of a turn and are left out)."""
    starts = turn_starts(messages)
    ends = [*starts[1:], len(messages)]
    return [range(s, e) for s, e in zip(starts, ends, strict=False)]


def merge_consecutive(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Merge runs of same-role messages into one message, as the API does (content blocks concatenated).

    Messages that need no merge are copied unchanged (string content stays a string)."""
    result: list[dict[str, Any]] = []
    for message in messages:
        if result and result[-1].get("role") == message.get("role"):
            previous = result[-1]
            previous["content"] = [*content_blocks(previous), *copy.deepcopy(content_blocks(message))]
        else:
            result.append(copy.deepcopy(dict(message)))
    return result


def strip_thinking(messages: Sequence[Message], *, keep_from: int | None = None) -> list[dict[str, Any]]:
    """Drop thinking and redacted_thinking blocks from assistant messages before index ``keep_from``.

    Needed after a history is cut or summarised: the newest models bind each thinking block to the exact
    prefix before it (claude-api-facts.md "Thinking blocks"), so blocks of kept earlier turns must go, while
    the current tool-use turn (from ``keep_from`` on) keeps its blocks unmodified. An assistant message left
    with no content is dropped and the user messages around it are merged (strict alternation is kept).
    """
    limit = len(messages) if keep_from is None else keep_from
    result: list[dict[str, Any]] = []
    dropped_any = False
    for i, message in enumerate(messages):
        if i < limit and message.get("role") == "assistant" and isinstance(message.get("content"), list):
            blocks = [
                b for b in message["content"] if not (isinstance(b, dict) and b.get("type") in THINKING_TYPES)
            ]
            if len(blocks) != len(message["content"]):
                if not blocks:
                    dropped_any = True
                    continue
                new = copy.deepcopy(dict(message))
                new["content"] = copy.deepcopy(blocks)
                result.append(new)
                continue
        result.append(copy.deepcopy(dict(message)))
    return merge_consecutive(result) if dropped_any else result


@functools.cache
def _citation_keys() -> dict[str, frozenset[str]]:
    """The keys a citation may carry in a request, per citation type, from the SDK's param types
    (``anthropic.types.TextCitationParam``). A reply's citations have more (``file_id``) that the request types
    lack; sent back they are refused (``...citations.0.char_location.file_id: Extra inputs are not
    permitted``)."""
    from anthropic.types import TextCitationParam
    from anthropic.types.beta import BetaTextCitationParam

    keys: dict[str, frozenset[str]] = {}
    for member in (*typing.get_args(BetaTextCitationParam), *typing.get_args(TextCitationParam)):
        hints = typing.get_type_hints(member)
        for tag in typing.get_args(hints["type"]):
            keys[tag] = frozenset(hints)
    return keys


def _sendable_block(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    citations = block.get("citations") if block.get("type") == "text" else None
    if isinstance(citations, list) and citations:
        allowed = _citation_keys()
        trimmed = [
            {k: v for k, v in c.items() if k in allowed[c["type"]]}
            if isinstance(c, dict) and c.get("type") in allowed
            else c
            for c in citations
        ]
        if trimmed != citations:
            return {**block, "citations": trimmed}
    if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
        inner = [_sendable_block(b) for b in block["content"]]
        if any(a is not b for a, b in zip(inner, block["content"], strict=True)):
            return {**block, "content": inner}
    return block


def sendable(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """``messages`` as a request may carry them: reply-only fields the API refuses on input are dropped
    (today: citation fields such as ``file_id``). The stored log keeps what the API returned; only the
    request view is trimmed. Messages that need nothing are passed through as they are."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        blocks = sendable_content(content)
        if blocks is not content:
            out.append({**message, "content": blocks})
            continue
        out.append(message if isinstance(message, dict) else dict(message))
    return out


def sendable_content(content: Any) -> Any:
    """One message's ``content`` as ``sendable`` trims it: the very object when nothing needs trimming."""
    if isinstance(content, list):
        blocks = [_sendable_block(b) for b in content]
        if any(a is not b for a, b in zip(blocks, content, strict=True)):
            return blocks
    return content


# -------------------------------------------------------------------------------------------------- validate


def _fail(index: int | None, what: str, fix: str) -> InvalidHistory:
    where = f"messages[{index}]: " if index is not None else "messages: "
    return InvalidHistory(f"{where}{what}. {fix}", index=index)


def _check_text(text: Any, index: int, where: str) -> None:
    if not isinstance(text, str):
        raise _fail(index, f"{where} has a non-string 'text'", "Give every text block a string 'text'.")
    if not text:
        raise _fail(
            index,
            f"{where} is empty (the API rejects it: text content blocks must be non-empty)",
            "Remove the empty block or give it text, or call claude_history.repair().",
        )
    if not text.strip():
        raise _fail(
            index,
            f"{where} holds only whitespace (the API rejects it: text content blocks must contain "
            "non-whitespace text)",
            "Remove the block or give it text, or call claude_history.repair().",
        )


def _check_block(block: Any, role: str, index: int, position: int) -> None:
    where = f"content[{position}]"
    if not isinstance(block, dict):
        raise _fail(
            index,
            f"{where} is a {type(block).__name__}, not a block dict",
            "Use dicts like {'type': 'text', 'text': '...'}.",
        )
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _fail(index, f"{where} has no 'type'", "Every content block needs a 'type'.")
    if role == "user":
        if kind not in USER_BLOCK_TYPES:
            fix = (
                "Blocks the model produced (tool_use, thinking, server tool blocks) belong in assistant "
                "messages."
                if kind in ASSISTANT_BLOCK_TYPES
                else f"A user message may carry: {', '.join(sorted(USER_BLOCK_TYPES))}."
            )
            raise _fail(index, f"{where} has type {kind!r}, which a user message may not carry", fix)
    elif kind not in ASSISTANT_BLOCK_TYPES and not _is_server_block(kind):
        if kind == "document":
            fix = (
                "Documents are not allowed in assistant messages (API 2026-10-21): send them in a user "
                "message."
            )
        elif kind in USER_BLOCK_TYPES:
            fix = f"A {kind} block belongs in a user message."
        else:
            fix = f"An assistant message may carry: {', '.join(sorted(ASSISTANT_BLOCK_TYPES))}."
        raise _fail(index, f"{where} has type {kind!r}, which an assistant message may not carry", fix)
    for name in _REQUIRED_FIELDS.get(kind, ()):
        if name not in block:
            raise _fail(
                index,
                f"{where} ({kind}) lacks the required field {name!r}",
                "Send blocks back exactly as the API returned them"
                + (" (thinking needs its signature)." if kind == "thinking" else "."),
            )
    if kind == "text":
        _check_text(block["text"], index, f"{where} (text)")
    elif kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, list):
            for j, sub in enumerate(inner):
                sub_where = f"{where}.content[{j}]"
                if not isinstance(sub, dict) or sub.get("type") not in TOOL_RESULT_CONTENT_TYPES:
                    raise _fail(
                        index,
                        f"{sub_where} is not a block a tool_result may hold",
                        f"Use one of: {', '.join(sorted(TOOL_RESULT_CONTENT_TYPES))}.",
                    )
                if sub.get("type") == "text":
                    _check_text(sub.get("text"), index, f"{sub_where} (text)")
        elif inner is not None and not isinstance(inner, str):
            raise _fail(
                index,
                f"{where} (tool_result) has content of type {type(inner).__name__}",
                "Use a string or a list of blocks.",
            )


def _is_server_block(kind: str) -> bool:
    # Server tools grow over time (web search, code execution, ...): their result blocks all end in
    # "_tool_result" and are paired inside the assistant message, so unknown ones are accepted there.
    return kind != "tool_result" and (kind.endswith("_tool_result") or kind.endswith("_tool_use"))


_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, any of these is unpaired (JSON decodes a pair as one)
_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def _lone_surrogate(message: Any) -> bool:
    """Whether ``message`` holds a lone surrogate anywhere (text, tool input, keys). Plain text (a string, or a
    text block of type and text only: most messages) is searched as it is; anything else is encoded first."""
    content = message.get("content")
    parts = [content] if isinstance(content, str) else content
    for part in parts:
        if isinstance(part, dict) and len(part) == 2 and part.get("type") == "text":
            part = part.get("text")
        if isinstance(part, str):
            if not part.isascii() and _SURROGATE.search(part) is not None:
                return True
            continue
        try:
            text = _ENCODE(part)
        except (TypeError, ValueError, RecursionError):  # not JSON: not this check's to say
            continue
        if not text.isascii() and _SURROGATE.search(text) is not None:
            return True
    return False


def well_formed(value: Any) -> Any:
    """``value`` (text, or JSON data) with each lone surrogate in its strings (keys too) replaced by U+FFFD,
    as JavaScript's ``toWellFormed`` does; containers are rebuilt, key order kept."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [well_formed(v) for v in value]
    return value


def _check_message(message: Any, index: int) -> None:
    if not isinstance(message, Mapping):
        raise _fail(
            index,
            f"is a {type(message).__name__}, not a message dict",
            "Use {'role': 'user' | 'assistant', 'content': ...}.",
        )
    role = message.get("role")
    if role not in ("user", "assistant"):
        fix = (
            "Put system instructions in the system= argument, not in the message list."
            if role == "system"
            else "Use role 'user' or 'assistant'."
        )
        raise _fail(index, f"has role {role!r}", fix)
    extra = set(message) - {"role", "content"}
    if extra:
        raise _fail(
            index,
            f"has unexpected keys {sorted(extra)}",
            "A message holds only 'role' and 'content' (keep other data outside the list).",
        )
    if "content" not in message:
        raise _fail(index, "has no 'content'", "Give it a string or a list of content blocks.")
    content = message["content"]
    if isinstance(content, str):
        if not content.strip():
            raise _fail(
                index,
                "has empty content (all messages must have non-empty content)",
                "Remove the message or give it text, or call claude_history.repair().",
            )
        return
    if not isinstance(content, (list, tuple)):
        raise _fail(
            index,
            f"has content of type {type(content).__name__}",
            "Content is a string or a list of content blocks.",
        )
    if not content:
        raise _fail(
            index,
            "has an empty content list (all messages must have non-empty content)",
            "Remove the message or give it content, or call claude_history.repair().",
        )
    for position, block in enumerate(content):
        _check_block(block, role, index, position)


def validate(
    messages: Sequence[Message],
    *,
    for_sending: bool = True,
    allow_consecutive: bool = False,
) -> None:
    """Raise :class:`~claude_history.errors.InvalidHistory` for anything the Messages API would reject.

    ``for_sending=True``: the list is a request's ``messages`` and must end with a user message (no prefill).
    ``for_sending=False``: a stored log, which may end with the assistant's reply.
    ``allow_consecutive=True``: accept runs of same-role messages and check what the API sees after merging
    them (indices in errors then point at the first message of the run). By default they are rejected: the
    library keeps strict alternation.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidHistory("messages must be a list of message dicts", index=None)
    if not messages:
        raise InvalidHistory(
            "messages: the list is empty; a request needs at least one user message", index=None
        )
    for i, message in enumerate(messages):
        _check_message(message, i)
        if _lone_surrogate(message):
            raise _fail(
                i,
                "holds a lone surrogate (half of a UTF-16 pair, such as \\ud800 with no partner): not valid text, "
                "so the API refuses the whole request as invalid JSON",
                "Replace it with U+FFFD (claude_history.repair() does).",
            )
    origin = list(range(len(messages)))
    if allow_consecutive:
        merged: list[dict[str, Any]] = []
        origin = []
        for i, message in enumerate(messages):
            if merged and merged[-1]["role"] == message["role"]:
                merged[-1]["content"] = [*content_blocks(merged[-1]), *content_blocks(message)]
            else:
                merged.append(dict(message))
                origin.append(i)
        view: Sequence[Message] = merged
    else:
        view = messages
        for i in range(1, len(messages)):
            if messages[i]["role"] == messages[i - 1]["role"]:
                raise _fail(
                    i,
                    f"is a second {messages[i]['role']} message in a row",
                    "Alternate user and assistant messages: merge the two (the API would), or call "
                    "claude_history.repair().",
                )

    if view[0]["role"] != "user":
        raise _fail(
            0,
            "is an assistant message; the first message must be a user message",
            "Start the history with the user's message (or call claude_history.repair()).",
        )

    cache_markers = 0
    for k, message in enumerate(view):
        index = origin[k]
        blocks = content_blocks(message)
        cache_markers += sum(1 for b in blocks if b.get("cache_control"))
        if message["role"] == "assistant":
            ids = tool_use_ids(message)
            if len(set(ids)) != len(ids):
                raise _fail(
                    index, "has two tool_use blocks with the same id", "Every tool_use id must be unique."
                )
            if ids:
                following = view[k + 1] if k + 1 < len(view) else None
                answered = set(tool_result_ids(following)) if following is not None else set()
                missing = [x for x in ids if x not in answered]
                if missing:
                    raise _fail(
                        index,
                        f"`tool_use` ids were found without `tool_result` blocks immediately after: "
                        f"{', '.join(missing)}",
                        "Each tool_use needs a tool_result with the same tool_use_id in the next (user) "
                        "message; "
                        "send the results, or call claude_history.repair() to mark the calls as interrupted.",
                    )
            continue
        previous_ids = set(tool_use_ids(view[k - 1])) if k > 0 else set()
        seen: set[str] = set()
        seen_other = False
        for position, block in enumerate(blocks):
            if block.get("type") != "tool_result":
                seen_other = True
                continue
            tool_id = str(block.get("tool_use_id"))
            if tool_id not in previous_ids:
                raise _fail(
                    index,
                    f"content[{position}]: unexpected `tool_use_id` found in `tool_result` blocks: {tool_id}",
                    "Each tool_result must answer a tool_use of the previous (assistant) message; drop it or "
                    "call claude_history.repair().",
                )
            if tool_id in seen:
                raise _fail(
                    index,
                    f"content[{position}]: a second tool_result for {tool_id}",
                    "Send one tool_result per tool_use.",
                )
            seen.add(tool_id)
            if seen_other:
                raise _fail(
                    index,
                    f"content[{position}]: a tool_result comes after other content",
                    "tool_result blocks must come first in the user message; put the text after them "
                    "(claude_history.repair() reorders them).",
                )
    if cache_markers > 4:
        raise InvalidHistory(
            f"messages: {cache_markers} blocks carry cache_control; a request allows at most 4 breakpoints "
            "(system and tools included). Remove some markers.",
            index=None,
        )
    if for_sending and view[-1]["role"] != "user":
        raise _fail(
            origin[-1],
            "is an assistant message at the end of a history to send; the conversation must end with a user "
            "message (assistant prefill is rejected on Claude 4.6 and later)",
            "Append the user's next message, or validate a stored log with for_sending=False.",
        )


# ---------------------------------------------------------------------------------------------------- repair


def validate_from(
    messages: Sequence[Message],
    start: int,
    *,
    for_sending: bool = True,
    prepare: Callable[[Sequence[Message]], Sequence[Message]] | None = None,
) -> None:
    """:func:`validate` for a log whose part before ``start`` (a turn start) was validated when it was written.

    Checking ``messages[start:]`` is then enough, so a turn costs O(turn), not O(session). A failure is
    checked again on the whole log, so the error names the message's index in it, not in the part.
    ``prepare`` maps a list to what is validated (the planner strips its cache markers)."""
    ready = prepare or (lambda part: part)
    try:
        validate(ready(messages[start:] if start else messages), for_sending=for_sending)
    except InvalidHistory:
        if start:
            validate(ready(messages), for_sending=for_sending)  # raises with the index in the whole log
        raise


def _clean_blocks(blocks: Iterable[Any], role: str) -> list[dict[str, Any]]:
    """Keep the blocks the API accepts for ``role``: drop empty text, unsigned thinking, misplaced blocks."""
    allowed = USER_BLOCK_TYPES if role == "user" else ASSISTANT_BLOCK_TYPES
    kept: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if not isinstance(kind, str):
            continue
        if kind not in allowed and not (role == "assistant" and _is_server_block(kind)):
            continue
        if any(name not in block for name in _REQUIRED_FIELDS.get(kind, ())):
            continue
        if kind == "text" and not (isinstance(block["text"], str) and block["text"].strip()):
            continue
        if kind == "tool_result" and isinstance(block.get("content"), list):
            inner = [
                b
                for b in block["content"]
                if isinstance(b, dict)
                and b.get("type") in TOOL_RESULT_CONTENT_TYPES
                and not (
                    b.get("type") == "text" and not (isinstance(b.get("text"), str) and b["text"].strip())
                )
            ]
            if len(inner) != len(block["content"]):
                block = {**block, "content": inner}
        kept.append(block)
    return kept


def _clean(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A cleaned copy of one message, or None when nothing sendable is left."""
    role = message["role"]
    content = message["content"]
    if isinstance(content, str):
        return {"role": role, "content": content} if content.strip() else None
    blocks = _clean_blocks(content, role)
    if not blocks:
        return None
    if len(blocks) == len(content) and all(a is b for a, b in zip(blocks, content, strict=False)):
        return {"role": role, "content": list(content)}
    return {"role": role, "content": blocks}


def _orphan_as_text(block: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what an unanswerable tool_result said, as text, when dropping it would lose the newest message."""
    inner = block.get("content")
    if isinstance(inner, list):
        inner = "\n".join(b["text"] for b in inner if isinstance(b, dict) and b.get("type") == "text")
    body = inner if isinstance(inner, str) and inner.strip() else "(no content)"
    return {"type": "text", "text": f"[result of tool call {block.get('tool_use_id')}]\n{body}"}


def _repair_pass(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # 1. Drop empty content and blocks the API would reject for the role; drop messages left empty.
    cleaned = [c for c in (_clean(m) for m in messages) if c is not None]
    # 2. Drop assistant messages before the first user message (nothing to answer yet).
    first_user = next((i for i, m in enumerate(cleaned) if m["role"] == "user"), len(cleaned))
    cleaned = cleaned[first_user:]
    # 3. Merge runs of the same role, as the API would.
    merged = merge_consecutive(cleaned)
    # 4. Pair tool_use with tool_result.
    result: list[dict[str, Any]] = []
    last_user = max((i for i, m in enumerate(merged) if m["role"] == "user"), default=-1)
    for k, message in enumerate(merged):
        if message["role"] == "assistant":
            blocks = content_blocks(message)
            ids: set[str] = set()
            unique: list[dict[str, Any]] = []
            for b in blocks:
                if b.get("type") == "tool_use":
                    if str(b.get("id")) in ids:
                        continue  # a duplicated tool_use id is a 400; keep the first
                    ids.add(str(b.get("id")))
                unique.append(b)
            if len(unique) != len(blocks):
                message = {"role": "assistant", "content": unique}
            result.append(message)
            if ids and (k + 1 >= len(merged) or merged[k + 1]["role"] != "user"):
                # The tool loop stopped after the call (crash, failed request): mark every call interrupted.
                result.append({"role": "user", "content": []})
                result[-1]["content"] = _paired_results(result[-2], [], last_newest=False)
            continue
        previous = result[-1] if result and result[-1]["role"] == "assistant" else None
        blocks = content_blocks(message)
        paired = _paired_results(previous, blocks, last_newest=(k == last_user))
        if not paired:
            continue
        if isinstance(message["content"], str) and paired == blocks:
            result.append(message)
        else:
            result.append({"role": "user", "content": paired})
    return result


def _paired_results(
    previous: Mapping[str, Any] | None, blocks: list[dict[str, Any]], *, last_newest: bool
) -> list[dict[str, Any]]:
    """A user message's blocks with its tool_results fixed: orphans dropped, duplicates dropped, interrupted
    results added for unanswered calls, every tool_result first (in the order of the tool_use blocks)."""
    calls = tool_use_ids(previous) if previous is not None else []
    results: dict[str, dict[str, Any]] = {}
    others: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") != "tool_result":
            others.append(block)
            continue
        tool_id = str(block.get("tool_use_id"))
        if tool_id in calls:
            results.setdefault(tool_id, block)
        else:
            orphans.append(block)
    ordered_existing = [
        b for b in blocks if b.get("type") == "tool_result" and results.get(str(b.get("tool_use_id"))) is b
    ]
    added = [
        {"type": "tool_result", "tool_use_id": tool_id, "is_error": True, "content": INTERRUPTED_TOOL_RESULT}
        for tool_id in calls
        if tool_id not in results
    ]
    paired = [*ordered_existing, *added, *others]
    if not paired and orphans and last_newest:
        # Never drop the newest user message: keep what its unanswerable tool results said, as text.
        paired = [_orphan_as_text(b) for b in orphans]
    return paired


def repair(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """A copy of ``messages`` the API accepts: deterministic, idempotent, never mutates its input.

    - empty messages, empty or whitespace text blocks, unsigned thinking and blocks the role may not carry
      (e.g. a document in an assistant message) are dropped;
    - assistant messages before the first user message are dropped (they answer nothing that is kept);
    - consecutive same-role messages are merged, as the API would merge them;
    - a tool_use without a result gets an ``is_error`` tool_result saying the call was interrupted (in the
      next user message, or a new one when the history ends with the call);
    - tool_results with no tool_use in the previous message are dropped, duplicates too, and tool_results are
      moved first in their message;
    - a lone surrogate (half of a UTF-16 pair, which the API refuses as invalid JSON) becomes U+FFFD;
    - the newest user message is never dropped: if it held only unanswerable tool results, their content is
      kept as text. If it holds nothing sendable at all, ``InvalidHistory`` is raised (nothing to send).

    A history that ends with a plain assistant reply keeps it (a stored log); the caller appends the next user
    message before sending. A history that passes ``validate(..., for_sending=False)`` comes back equal.
    A list with no user message at all comes back empty.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidHistory("messages must be a list of message dicts", index=None)
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise _fail(
                i,
                "is not a user or assistant message dict",
                "repair() fixes the order and content of messages, not their shape; pass "
                "{'role': 'user' | 'assistant', 'content': ...} dicts.",
            )
        content = message.get("content")
        if not isinstance(content, (str, list, tuple)):
            raise _fail(
                i,
                f"has content of type {type(content).__name__}",
                "Content is a string or a list of content blocks.",
            )
    newest_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if newest_user is not None and _clean(messages[newest_user]) is None:
        raise _fail(
            newest_user,
            "is the newest user message and holds nothing that can be sent",
            "Give it non-empty text (or drop it yourself).",
        )
    current = [
        {
            "role": m["role"],
            "content": well_formed(m["content"]) if _lone_surrogate(m) else copy.deepcopy(
                list(m["content"]) if not isinstance(m["content"], str) else m["content"]
            ),
        }
        for m in messages
    ]
    for _ in range(len(current) + 3):
        following = _repair_pass(current)
        if following == current:
            return following
        current = following
    return current  # pragma: no cover - each pass only removes or completes; a fixpoint is reached above


def continuation_problem(messages: Sequence[Message]) -> str | None:
    """Why a stored log cannot take a next user message (None when it can, or when it is empty).

    A chat appends the user's next message to the stored log, so the log must pass the API's rules and end
    with a reply. An imported history or a log cut after a user message may not: said before a turn fails on
    it. A rejected log's reason is its ``InvalidHistory`` message, which may advise ``repair()`` (for Python
    callers: a command line or a web service says how its own users reach ``continuable_copy``).
    """
    if not messages:
        return None
    try:
        validate(messages, for_sending=False)
    except InvalidHistory as exc:
        return f"the API would reject its history: {exc}"
    if messages[-1].get("role") == "user":
        return f"it ends with a user message (#{len(messages) - 1}) that has no reply"
    return None


def continuable_copy(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """A copy a chat can continue (``continuation_problem`` is None for it): ``repair`` (dropped empties, merged
    runs, closed tool calls), without a last turn that never got a reply. Never raises for content; never
    changes ``messages``."""
    current = list(messages)
    for _ in range(len(messages) + 2):  # each round drops at least one message
        while current and current[-1].get("role") == "user":
            current.pop()
        if not current:
            return []
        try:
            fixed = repair(current)
        except InvalidHistory:  # the newest user message holds nothing sendable: its turn goes
            current = current[: max(i for i, m in enumerate(current) if m.get("role") == "user")]
            continue
        if not fixed or fixed[-1].get("role") != "user":
            return fixed
        # repair closed a tool call with an "interrupted" result: that turn has no reply, so it goes too.
        starts = turn_starts(fixed)
        current = list(fixed[: starts[-1]]) if starts else []
    return []


def left_out(original: Sequence[Message], copy: Sequence[Message]) -> list[str]:
    """The text of each turn the user started in ``original`` that ``copy`` (its ``continuable_copy``) no longer
    holds, such as a last message that never got a reply: to be shown, so the user can send it again."""
    kept = "\n".join(text_of(m) for m in copy if m.get("role") == "user")
    said = [text_of(original[i]) for i in turn_starts(original)]
    return [text for text in said if text.strip() and text not in kept]
