"""Request validation as the Messages API does it: status codes and error texts from claude-api-facts.md.

``parse_request`` checks the structure and returns a normalised :class:`Request`; the checks that need token
counts or thinking signatures (``check_thinking`` and the window check in the server) run after the layout is
built. Texts marked "facts" are quoted from claude-api-facts.md; the others follow the API's
``path: problem`` style.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from claude_history.images import decode_base64, image_media_type, image_size
from claude_history.models import ModelInfo, model_info

from ._betas import INTERLEAVED_THINKING, allowed, request_betas
from ._common import ApiError, bad_request, normalise_content
from ._schema import message_schema

__all__ = [
    "MAX_CACHE_BREAKPOINTS",
    "MAX_MESSAGES",
    "CompactionConfig",
    "Request",
    "check_thinking",
    "parse_request",
]

MAX_MESSAGES = 100_000  # facts: "At most 100,000 messages per request."
MAX_CACHE_BREAKPOINTS = 4  # facts: "on up to 4 blocks"; the top-level automatic one uses a slot.
DEFAULT_COMPACTION_TRIGGER = 150_000  # SDK: BetaCompact20260112EditParam.trigger "Defaults to 150000 input tokens".
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024  # per image, on the base64 text (see _image)
MAX_IMAGE_PIXELS = 8000  # per side (see _image)
REJECTED_SAMPLING = ("temperature", "top_p", "top_k")  # facts: rejected by anthropic-version 2026-10-21.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")

USER_BLOCKS = {"text", "image", "document", "search_result", "tool_result", "container_upload"}
ASSISTANT_BLOCKS = {
    "text",
    "tool_use",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "mcp_tool_use",
    "mcp_tool_result",
    "compaction",
    "container_upload",
}
TOOL_RESULT_INNER = {"text", "image", "document", "search_result", "tool_reference"}

PREFILL_REJECTED = (  # facts, verbatim
    "This model does not support assistant message prefill. The conversation must end with a user message."
)
EMPTY_TEXT = "messages: text content blocks must be non-empty"  # facts
BLANK_TEXT = "messages: text content blocks must contain non-whitespace text"  # facts


@dataclass(frozen=True)
class CompactionConfig:
    trigger: int
    pause_after: bool
    instructions: str | None


@dataclass
class Request:
    """A validated request, content normalised to block lists (the blocks are the body's own dicts)."""

    body: dict[str, Any]
    model: str
    info: ModelInfo
    max_tokens: int | None
    messages: list[dict[str, Any]]
    system: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: dict[str, Any] | None
    thinking: dict[str, Any] | None  # None when thinking is off
    stop_sequences: list[str]
    stream: bool
    cache_control: dict[str, Any] | None  # top-level automatic caching
    compaction: CompactionConfig | None
    # Where the model's view starts: the latest compaction block (facts: "the API ignores everything before
    # the
    # latest one"), as (message index, block index); (0, 0) without compaction.
    start: tuple[int, int] = (0, 0)
    # Real (width, height) of each base64 image, keyed by id() of its source dict.
    image_sizes: dict[int, tuple[int, int]] = field(default_factory=dict)

    _effective: list[tuple[int, int, dict[str, Any]]] | None = None

    def effective_blocks(self) -> list[tuple[int, int, dict[str, Any]]]:
        """(message index, block index, block) of every block the model sees, in order."""
        if self._effective is not None:
            return self._effective
        mi, bj = self.start
        out = []
        for i in range(mi, len(self.messages)):
            for j, block in enumerate(self.messages[i]["content"]):
                if i == mi and j < bj:
                    continue
                out.append((i, j, block))
        self._effective = out
        return out


def parse_request(body: Any, *, count_only: bool, headers: Mapping[str, str]) -> Request:
    """Validate a /v1/messages (or /count_tokens when ``count_only``) body; raise :class:`ApiError` like the
    API."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    betas = request_betas(headers)
    _check_schema(body, count_only=count_only, betas=betas, version=headers.get("anthropic-version", ""))

    model: str = body["model"]  # the schema checked every field's presence and type
    info = model_info(model)
    if info is None:
        raise ApiError(404, f"model: {model}", "not_found_error")

    max_tokens: int | None = None
    if not count_only:
        max_tokens = _int(body["max_tokens"], "max_tokens", minimum=1)
        if max_tokens > info.max_output_tokens:
            raise bad_request(
                f"max_tokens: {max_tokens} > {info.max_output_tokens}, which is the maximum allowed "
                f"number of output tokens for {model}"
            )

    stream = bool(body.get("stream", False)) and not count_only

    system = _system(body.get("system"))
    tools = _tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"), tools)
    thinking = _thinking(body.get("thinking"), max_tokens, model, info, betas)
    _effort(body.get("output_config"), model, info)
    if thinking is not None and tool_choice is not None and tool_choice["type"] in ("any", "tool"):
        raise bad_request("Thinking may not be enabled when tool_choice forces tool use.")
    stop_sequences = _stop_sequences(body.get("stop_sequences", []))
    cache_control = body.get("cache_control")
    compaction = _context_management(body.get("context_management"))

    req = Request(
        body=body,
        model=model,
        info=info,
        max_tokens=max_tokens,
        messages=[],
        system=system,
        tools=tools,
        tool_choice=tool_choice,
        thinking=thinking,
        stop_sequences=stop_sequences,
        stream=stream,
        cache_control=cache_control,
        compaction=compaction,
    )
    req.messages = _messages(body, req)
    req.start = _latest_compaction(req.messages)
    _check_first_and_last(req)
    _check_tool_pairing(req.messages)
    _check_breakpoints(req)
    return req


# ------------------------------------------------------------------------------------------------------------
# top-level fields


def _check_schema(body: dict[str, Any], *, count_only: bool, betas: frozenset[str], version: str) -> None:
    """Field-by-field check against the SDK's request types (``_schema``), beta-only parts gated by the
    ``anthropic-beta`` values (``_betas``).

    Looser than the types on purpose: versions before 2026-10-21 still take ``temperature``, ``top_p`` and
    ``top_k`` (facts: "rejected by that version"), which the SDK's current types no longer have."""
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > MAX_MESSAGES:  # before a walk over 100,000 messages
        raise bad_request(
            f"messages: too many messages ({len(messages)}); at most {MAX_MESSAGES} are allowed per request"
        )
    checked = body
    if version < "2026-10-21" and any(name in body for name in REJECTED_SAMPLING):
        checked = {k: v for k, v in body.items() if k not in REJECTED_SAMPLING}
        for name in REJECTED_SAMPLING:
            value = body.get(name)
            if name in body and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise bad_request(f"{name}: Input should be a valid number")
    message_schema(count_only).check(checked, betas, allowed)


def _int(value: Any, path: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{path}: Input should be a valid integer")
    if value < minimum:
        raise bad_request(f"{path}: Input should be greater than or equal to {minimum}")
    return value


def _system(system: Any) -> list[dict[str, Any]]:
    """The system prompt as text blocks; text must not be empty or blank (facts)."""
    if system is None:
        return []
    if isinstance(system, str):
        if system and not system.strip():
            raise bad_request("system: text content blocks must contain non-whitespace text")
        return [{"type": "text", "text": system}] if system else []
    for block in system:
        if not block["text"]:
            raise bad_request("system: text content blocks must be non-empty")
        if not block["text"].strip():
            raise bad_request("system: text content blocks must contain non-whitespace text")
    return list(system)


def _tools(tools: Any) -> list[dict[str, Any]]:
    """What the API checks beyond the types: tool name pattern, unique names, and a custom tool's input schema
    is a JSON Schema of type ``object`` (the SDK's ``InputSchemaTyped.type: Literal["object"]``, unioned there
    with a free dict: the API is stricter than that union)."""
    if tools is None:
        return []
    names: set[str] = set()
    for k, tool in enumerate(tools):
        name = tool["name"]
        if tool.get("type") in (None, "custom"):
            if not TOOL_NAME.match(name):
                raise bad_request(f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            if tool["input_schema"].get("type") != "object":
                raise bad_request(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
        if name in names:
            raise bad_request("tools: Tool names must be unique.")
        names.add(name)
    return list(tools)


def _tool_choice(choice: dict[str, Any] | None, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice["type"] == "tool":
        name = choice["name"]
        if name not in {t.get("name") for t in tools}:
            raise bad_request(f"tool_choice.tool.name: tool '{name}' is not in `tools`")
    if choice["type"] in ("any", "tool") and not tools:
        raise bad_request("tool_choice: a forced tool choice needs `tools`")
    return choice


def _thinking(
    thinking: Any, max_tokens: int | None, req_model: str, info: ModelInfo, betas: frozenset[str]
) -> dict[str, Any] | None:
    """Thinking modes per model (``models.MODELS[...].thinking_modes``); the shape was checked by the schema.

    With ``enabled`` the budget stays below ``max_tokens``, except with the interleaved-thinking beta on a model
    that supports it, where the budget spans every thinking block of the turn and may exceed it (extended-thinking
    page, "Interleaved thinking")."""
    if thinking is None:
        return None
    kind = thinking["type"]
    if kind in ("enabled", "adaptive", "disabled") and kind not in info.thinking_modes:
        accepted = " or ".join(f"'{m}'" for m in sorted(info.thinking_modes))
        raise bad_request(f"thinking.type: '{kind}' is not supported on {req_model}; use {accepted}.")
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = _int(thinking["budget_tokens"], "thinking.enabled.budget_tokens", minimum=1024)
        interleaved = info.interleaved_beta and INTERLEAVED_THINKING in betas
        if max_tokens is not None and budget >= max_tokens and not interleaved:
            raise bad_request("`max_tokens` must be greater than `thinking.budget_tokens`.")
    config: dict[str, Any] = thinking
    return config


def _effort(output_config: Any, req_model: str, info: ModelInfo) -> None:
    """``output_config.effort`` levels per model (``models.MODELS[...].effort_levels``; "Effort" page)."""
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if effort is None or effort in info.effort_levels:
        return
    if not info.effort_levels:
        raise bad_request(f"output_config.effort: {req_model} does not support the effort parameter.")
    accepted = ", ".join(f"'{e}'" for e in info.effort_levels)
    raise bad_request(f"output_config.effort: '{effort}' is not supported on {req_model}; use one of {accepted}.")


def _stop_sequences(stop_sequences: list[str]) -> list[str]:
    """Each stop sequence must contain non-whitespace (the API refuses ``[" "]``)."""
    for k, seq in enumerate(stop_sequences):
        if not seq.strip():
            raise bad_request(f"stop_sequences.{k}: each stop sequence must contain non-whitespace")
    return list(stop_sequences)


def _context_management(cm: Any) -> CompactionConfig | None:
    if cm is None:
        return None
    found: CompactionConfig | None = None
    for k, edit in enumerate(cm.get("edits") or []):
        if edit["type"] != "compact_20260112":
            continue  # other edits (clear_tool_uses, clear_thinking) are accepted and not modelled
        trigger = edit.get("trigger")
        value = DEFAULT_COMPACTION_TRIGGER
        if trigger is not None:
            value = _int(trigger["value"], f"context_management.edits.{k}.compact_20260112.trigger.value", minimum=1)
        found = CompactionConfig(value, bool(edit.get("pause_after_compaction")), edit.get("instructions"))
    return found


# ------------------------------------------------------------------------------------------------------------
# messages and content blocks


def _messages(body: dict[str, Any], req: Request) -> list[dict[str, Any]]:
    raw = body["messages"]
    if not raw:
        raise bad_request("messages: at least one message is required")
    out = []
    last = len(raw) - 1
    for i, msg in enumerate(raw):
        role, content = msg["role"], msg["content"]
        if role not in ("user", "assistant"):  # mid-conversation system messages are not modelled
            raise bad_request(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        final_assistant = i == last and role == "assistant"
        if not content:
            if final_assistant:
                out.append({"role": role, "content": []})
                continue
            raise bad_request(  # facts, verbatim
                f"messages.{i}: all messages must have non-empty content except for the optional final "
                "assistant message"
            )
        if isinstance(content, str):  # the common case in long histories: skip the per-block walk
            if not content.strip():
                raise bad_request(BLANK_TEXT)
            out.append({"role": role, "content": [{"type": "text", "text": content}]})
            continue
        blocks = normalise_content(content)
        allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
        for j, block in enumerate(blocks):
            _block(block, f"messages.{i}.content.{j}", role, allowed, req)
        out.append({"role": role, "content": blocks})
    return out


def _block(block: dict[str, Any], path: str, role: str, allowed: set[str], req: Request) -> None:
    """What the API checks beyond the types (the schema checked fields and their types): which blocks each role
    may carry, non-blank text, image and PDF contents."""
    kind = block["type"]
    server_result = role == "assistant" and kind.endswith("_tool_result") and kind != "tool_result"
    if kind not in allowed and not server_result:
        if kind == "document" and role == "assistant":  # facts: not allowed directly in an assistant message
            raise bad_request(f"{path}: document blocks are not allowed in assistant messages")
        raise bad_request(f"{path}.type: '{kind}' blocks are not allowed in {role} messages")
    if kind == "text":
        _text(block, path)
    elif kind == "image":
        _image(block, f"{path}.image", req)
    elif kind == "document":
        _document(block, f"{path}.document")
    elif kind == "search_result":
        for k, inner in enumerate(block["content"]):
            _text(inner, f"{path}.search_result.content.{k}")
    elif kind == "tool_result" and isinstance(block.get("content"), list):
        for k, inner in enumerate(block["content"]):
            _block(inner, f"{path}.content.{k}", "user", TOOL_RESULT_INNER, req)


def _text(block: dict[str, Any], path: str) -> None:
    """Text must not be empty or blank (facts, verbatim texts)."""
    if not block["text"]:
        raise bad_request(EMPTY_TEXT)
    if not block["text"].strip():
        raise bad_request(BLANK_TEXT)


def _image(block: dict[str, Any], path: str, req: Request) -> None:
    """A base64 image must decode, be what its media type says, fit 5 MB of base64 and 8000 px a side.

    ``path`` names the block with its tag (``messages.2.content.0.image``), as the API's texts do:
    ``...image.source.base64: image exceeds 5 MB maximum: 8259148 bytes > 5242880 bytes``
    (github.com/anthropics/claude-code issue 19631; the limit is on the base64 text, lobehub/lobehub PR 14711) and
    ``...image.source.base64.data: At least one of the image dimensions exceed max allowed size: 8000 pixels``
    (can1357/oh-my-pi PR 10633). The shape (media type, source type) was checked by the schema."""
    source = block["source"]
    if source["type"] != "base64":
        return
    where = f"{path}.source.base64"
    data, media = source["data"], source["media_type"]
    if len(data) > MAX_IMAGE_BASE64_BYTES:
        raise bad_request(
            f"{where}: image exceeds 5 MB maximum: {len(data)} bytes > {MAX_IMAGE_BASE64_BYTES} bytes"
        )
    try:
        raw = decode_base64(data)
    except ValueError:
        raise bad_request(f"{where}.data: Invalid base64 data") from None
    actual = image_media_type(raw)
    if actual is None:
        raise bad_request(f"{where}: Could not process image")
    if actual != media:
        raise bad_request(
            f"{where}.data: The image was specified using the {media} media type, but "
            f"the image appears to be a {actual} image"
        )
    try:
        width, height = image_size(raw)
    except ValueError:
        raise bad_request(f"{where}: Could not process image") from None
    if max(width, height) > MAX_IMAGE_PIXELS:
        raise bad_request(
            f"{where}.data: At least one of the image dimensions exceed max allowed size: {MAX_IMAGE_PIXELS} pixels"
        )
    req.image_sizes[id(source)] = (width, height)


def _document(block: dict[str, Any], path: str) -> None:
    """A base64 PDF must be a PDF (``...source.base64.data: The PDF specified was not valid.``,
    github.com/anthropics/claude-code issue 5174); text must not be blank. The shape was checked by the schema."""
    source = block["source"]
    kind = source["type"]
    if kind == "base64":
        try:
            raw = decode_base64(source["data"])
        except ValueError:
            raise bad_request(f"{path}.source.base64.data: Invalid base64 data") from None
        if not raw.lstrip()[:5] == b"%PDF-":
            raise bad_request(f"{path}.source.base64.data: The PDF specified was not valid.")
    elif kind == "content" and isinstance(source["content"], str) and not source["content"].strip():
        raise bad_request(BLANK_TEXT)
    elif kind == "content" and isinstance(source["content"], list):
        for k, inner in enumerate(source["content"]):
            if inner.get("type") == "text":
                _text(inner, f"{path}.source.content.content.{k}")


def _latest_compaction(messages: list[dict[str, Any]]) -> tuple[int, int]:
    for i in range(len(messages) - 1, -1, -1):
        content = messages[i]["content"]
        for j in range(len(content) - 1, -1, -1):
            if content[j].get("type") == "compaction":
                return (i, j)
    return (0, 0)


def _check_first_and_last(req: Request) -> None:
    messages = req.messages
    first = messages[0]
    if first["role"] != "user" and req.start == (0, 0) and not _starts_with_compaction(first):
        raise bad_request('messages: first message must use the "user" role')
    last = messages[-1]
    if last["role"] == "assistant" and not _paused_turn(last):
        if not req.info.supports_prefill:
            raise bad_request(PREFILL_REJECTED)
        blocks = last["content"]
        if blocks and blocks[-1].get("type") == "text" and blocks[-1]["text"] != blocks[-1]["text"].rstrip():
            raise bad_request("messages: final assistant content cannot end with trailing whitespace")


def _paused_turn(message: dict[str, Any]) -> bool:
    """A final assistant message that ends with a server tool block is a ``pause_turn`` response sent back to
    let the model continue (facts: "send the response back as it is"), not a prefill. The same holds for a
    response that stopped after a compaction block (``pause_after_compaction``): it is sent back to continue."""
    if not message["content"]:
        return False
    kind = message["content"][-1].get("type", "")
    return kind in ("server_tool_use", "mcp_tool_use", "mcp_tool_result", "compaction") or (
        kind.endswith("_tool_result") and kind != "tool_result"
    )


def _starts_with_compaction(message: dict[str, Any]) -> bool:
    return bool(message["content"]) and message["content"][0].get("type") == "compaction"


def _check_tool_pairing(messages: list[dict[str, Any]]) -> None:
    """tool_use / tool_result pairing and order (facts, "Tool use pairing"). Consecutive same-role messages
    form one turn, as the API merges them."""
    turns: list[tuple[str, list[int]]] = []  # (role, message indices)
    for i, msg in enumerate(messages):
        if turns and turns[-1][0] == msg["role"]:
            turns[-1][1].append(i)
        else:
            turns.append((msg["role"], [i]))
    seen: set[str] = set()
    uses_before: set[str] = set()  # tool_use ids of the assistant turn before the current user turn
    for t, (role, indices) in enumerate(turns):
        if role == "user":
            for i in indices:
                for j, b in enumerate(messages[i]["content"]):
                    if b.get("type") == "tool_result" and b["tool_use_id"] not in uses_before:
                        raise bad_request(  # facts, verbatim
                            f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                            f"blocks: {b['tool_use_id']}. Each `tool_result` block must have a corresponding "
                            "`tool_use` block in the previous message."
                        )
            uses_before = set()
            continue
        uses = [
            (i, j, b["id"])
            for i in indices
            for j, b in enumerate(messages[i]["content"])
            if b.get("type") == "tool_use"
        ]
        uses_before = {use_id for _i, _j, use_id in uses}
        for i, j, use_id in uses:
            if use_id in seen:
                raise bad_request(f"messages.{i}.content.{j}: `tool_use` ids must be unique: {use_id}")
            seen.add(use_id)
        if not uses:
            continue
        leading: set[str] = set()  # the results at the start of the next turn: later ones do not count
        if t + 1 < len(turns):
            for blocks in (messages[i]["content"] for i in turns[t + 1][1]):
                kinds = [b.get("type") for b in blocks]
                n = next((k for k, kind in enumerate(kinds) if kind != "tool_result"), len(kinds))
                leading.update(b["tool_use_id"] for b in blocks[:n])
                if n < len(kinds):
                    break
        missing = [(i, use_id) for i, _j, use_id in uses if use_id not in leading]
        if missing:
            ids = ", ".join(use_id for _i, use_id in missing)
            raise bad_request(  # facts, verbatim
                f"messages.{missing[0][0]}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {ids}. Each `tool_use` block must have a corresponding `tool_result` "
                "block in the next message."
            )


def breakpoints_in_order(req: Request) -> list[tuple[str, dict[str, Any]]]:
    """Every explicit cache_control in prefix order (tools, system, messages), as (path, cache_control)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for k, tool in enumerate(req.tools):
        if "cache_control" in tool and tool["cache_control"] is not None:
            found.append((f"tools.{k}", tool["cache_control"]))
    for k, block in enumerate(req.system):
        if block.get("cache_control") is not None:
            found.append((f"system.{k}", block["cache_control"]))
    for i, msg in enumerate(req.messages):
        for j, block in enumerate(msg["content"]):
            if block.get("cache_control") is not None:
                found.append((f"messages.{i}.content.{j}", block["cache_control"]))
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for k, inner in enumerate(block["content"]):
                    if isinstance(inner, dict) and inner.get("cache_control") is not None:
                        found.append((f"messages.{i}.content.{j}.content.{k}", inner["cache_control"]))
    return found


def _check_breakpoints(req: Request) -> None:
    marks = [cc for _path, cc in breakpoints_in_order(req)]
    if req.cache_control is not None:
        marks.append(req.cache_control)  # automatic caching takes one of the 4 slots (facts)
    if len(marks) > MAX_CACHE_BREAKPOINTS:
        raise bad_request(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}."
        )
    seen_5m = False
    for cc in marks:
        ttl = cc.get("ttl", "5m")
        if ttl == "1h" and seen_5m:  # facts: in one request longer TTLs come before shorter ones
            raise bad_request(
                "A cache_control entry with ttl='1h' must not come after one with ttl='5m': longer TTLs "
                "must come first in the prompt (tools, system, messages)."
            )
        seen_5m = seen_5m or ttl == "5m"


def check_thinking(
    req: Request,
    bound_prefix: Mapping[tuple[int, int], str],
    verify: Callable[[str, str, str | None], bool],
) -> None:
    """Thinking blocks must come back unmodified (facts, "Thinking blocks").

    Every model checks the blocks of the current tool-use turn (the assistant messages after the last user
    message that is not only tool results, when the request ends with tool results). Models that bind thinking
    to its prefix check every thinking block the model sees, against the prefix before it (``bound_prefix``).
    ``verify(signature, thinking, prefix_or_None)`` is the signer's check.
    """
    binds = req.info.binds_thinking
    checked: list[tuple[int, int, dict[str, Any]]] = []
    if binds:
        checked = [(i, j, b) for i, j, b in req.effective_blocks() if b.get("type") == "thinking"]
    else:
        current = _current_tool_turn(req.messages)
        checked = [(i, j, b) for i, j, b in req.effective_blocks() if i in current and b.get("type") == "thinking"]
    for i, j, block in checked:
        prefix = bound_prefix.get((i, j)) if binds else None
        if verify(block["signature"], block["thinking"], prefix):
            continue
        if binds:
            raise bad_request(
                f"messages.{i}.content.{j}: Invalid signature in thinking block. The block is bound to a "
                "different conversation prefix: system, tools or an earlier message changed since it was "
                "generated. Send histories append-only, or drop the thinking blocks of earlier turns."
            )
        raise bad_request(
            f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block: thinking blocks of the "
            "current tool-use turn must be passed back unmodified."
        )


def _current_tool_turn(messages: list[dict[str, Any]]) -> set[int]:
    """Indices of the assistant messages of the tool-use turn in progress (empty when none is in progress)."""
    last = messages[-1]
    if last["role"] != "user" or not any(b.get("type") == "tool_result" for b in last["content"]):
        return set()
    out: set[int] = set()
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if msg["role"] == "assistant":
            out.add(i)
        elif not all(b.get("type") == "tool_result" for b in msg["content"]):
            break
    return out
