"""Default replies, thinking signatures and output limits (max_tokens, stop_sequences).

Default replies depend only on the request and show what context the model received; the rules are listed in
docs/simulator.md and in :func:`default_reply`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from ._common import canonical, digest
from ._server_tools import server_tool_reply
from ._structured import output_schema, structured_text
from ._tokens import BLOCK_OVERHEAD, Counter
from ._tool_pick import from_schema, pick_tool, tool_words
from ._validation import Request

__all__ = [
    "Reply",
    "ThinkingSigner",
    "apply_limits",
    "compaction_summary",
    "default_reply",
    "excerpt",
    "message_id",
    "request_digest",
    "user_text",
]

# A fixed key: signatures must verify in any simulator (a test may continue a stored session in a new
# process).
_SIGNING_KEY = b"claude-history simulator: thinking signatures v1"
_MAGIC = b"SIM1"
EXCERPT = 200


class ThinkingSigner:
    """Signs thinking blocks so that an edit is detected.

    A signature is base64(``SIM1`` + HMAC over the thinking text and, for models that bind thinking to its
    prefix, the identity of everything before the block). Signatures that tests queue with ``reply_with`` are
    foreign to this scheme; they are remembered with what they were issued for.
    """

    def __init__(self) -> None:
        self._issued: dict[str, tuple[str, str | None]] = {}

    def sign(self, thinking: str, prefix: str | None) -> str:
        mac = hmac.new(_SIGNING_KEY, canonical([thinking, prefix]).encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(_MAGIC + mac).decode("ascii")

    def remember(self, signature: str, thinking: str, prefix: str | None) -> None:
        self._issued[signature] = (thinking, prefix)

    def clear(self) -> None:
        self._issued.clear()

    def verify(self, signature: str, thinking: str, prefix: str | None) -> bool:
        if signature in self._issued:
            return self._issued[signature] == (thinking, prefix)
        return hmac.compare_digest(signature, self.sign(thinking, prefix))


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def excerpt(text: str, limit: int = EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def user_text(message: dict[str, Any]) -> str:
    """The text a user typed in a message (text blocks only, not tool results)."""
    return "\n".join(b["text"] for b in message["content"] if b.get("type") == "text")


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for inner in content:
        if inner.get("type") == "text":
            parts.append(inner["text"])
        else:
            parts.append(f"[{inner.get('type')}]")
    return " ".join(parts)


@dataclass
class Reply:
    content: list[dict[str, Any]]
    stop_reason: str
    stop_details: dict[str, Any] | None = None  # the API's stop_details (a refusal's category and explanation)


def default_reply(req: Request, counter: Counter, request_id: str) -> Reply:
    """The reply the simulator gives when no reply is queued. First match wins, on the last user message:

    1. it carries tool_result blocks -> a text naming each result and an excerpt of its content;
    2. a custom tool is forced by ``tool_choice`` (``tool``, or ``any``: the tool named in the text, else the
       first), or, with ``tool_choice`` auto or absent, its name appears in the text or it shares the most
       words with the text (:func:`pick_tool`) -> a ``tool_use`` with input built from its ``input_schema``
       (stop_reason ``tool_use``); answering tool results, only a tool that a ``tool_reference`` just loaded;
    3. a server tool offered fits the text (a URL and web fetch, code and code execution, a question and web
       search) -> its ``server_tool_use`` and result blocks, then a text naming the results
       (:func:`server_tool_reply`; ``pause_turn`` after 10 calls in one reply);
    4. "repeat after me: X" -> X;
    5. "N words" -> N words ("word1 word2 ...");
    6. "first message" -> the first user message of the context the model sees;
    7. "previous message" or "last message" -> the user message before this one;
    8. "how many messages" -> the number of messages (user / assistant) the model sees;
    9. "system prompt" -> the system prompt's text;
    10. "tools" with "which" or "what" -> the tool names;
    11. otherwise -> ``You said: "<excerpt>". This conversation has N messages.`` plus the images and
        documents of the message.
    With ``output_config.format`` (structured outputs) the text of rules 1 and 4-11 is instead JSON that fits
    the schema (:func:`structured_text`). When thinking is on, a thinking block comes first.
    """
    messages = _visible_messages(req)
    # The last user message: after a prefill or a paused turn the request ends with an assistant message.
    users = [m for m in messages if m["role"] == "user"]
    last: dict[str, Any] = users[-1] if users else {"role": "user", "content": []}
    text = user_text(last)
    low = text.lower()
    blocks: list[dict[str, Any]] = []
    stop = "end_turn"

    results = [b for b in last["content"] if b.get("type") == "tool_result"]
    call = _tool_call(req, messages, last, bool(results))
    served = None if call or results else _server_tools(req, messages, request_id)
    if served is not None:
        answer = ""
        blocks, stop = served
    elif call is not None:
        answer = ""
        tool, tool_input = call
        tool_id = "toolu_sim" + hashlib.sha256(request_id.encode()).hexdigest()[:20]
        blocks.append({"type": "tool_use", "id": tool_id, "name": tool["name"], "input": tool_input})
        stop = "tool_use"
    elif results:
        parts = []
        for b in results:
            flag = " (error)" if b.get("is_error") else ""
            parts.append(f'{b["tool_use_id"]}{flag}: "{excerpt(_result_text(b), 100)}"')
        answer = "Tool results received: " + "; ".join(parts) + "."
        if text.strip():
            answer += f' You also said: "{excerpt(text)}".'
    else:
        answer = _answer(req, messages, last, text, low)

    schema = output_schema(req.body)
    if schema is not None and answer:
        answer = structured_text(schema)
    if answer:
        blocks.append({"type": "text", "text": answer})
    if req.thinking is not None:
        said = excerpt(text) if text else "(tool results)"
        thought = f'The user wrote: "{said}". I can see {_n(len(messages), "message")}.'
        if req.thinking.get("display") == "omitted":
            thought = ""
        blocks.insert(0, {"type": "thinking", "thinking": thought, "signature": ""})
    return Reply(blocks, stop)


def _visible_messages(req: Request) -> list[dict[str, Any]]:
    """The messages the model sees (from the latest compaction block on)."""
    mi, bj = req.start
    out = [dict(m) for m in req.messages[mi:]]
    if out:
        out[0] = {"role": out[0]["role"], "content": out[0]["content"][bj:]}
    return out


def _answer(req: Request, messages: list[dict[str, Any]], current: dict[str, Any], text: str, low: str) -> str:
    users = [m for m in messages if m["role"] == "user" and user_text(m).strip()]
    match = re.search(r"repeat after me:\s*(.*)", text, re.IGNORECASE | re.DOTALL)
    if match and match.group(1).strip():
        return match.group(1).strip()
    match = re.search(r"\b(\d{1,6}) words\b", low)
    if match:
        n = max(1, int(match.group(1)))
        return " ".join(f"word{k}" for k in range(1, n + 1))
    if "first message" in low:
        return f'Your first message was: "{excerpt(user_text(users[0]))}"' if users else "I see no message from you."
    if "previous message" in low or "last message" in low:
        if len(users) >= 2:
            return f'Your previous message was: "{excerpt(user_text(users[-2]))}"'
        return "This is your first message."
    if "how many messages" in low:
        n_user = sum(1 for m in messages if m["role"] == "user")
        n_mine = len(messages) - n_user
        return f"This conversation has {_n(len(messages), 'message')}: {n_user} from you and {n_mine} from me."
    if "system prompt" in low:
        system = "\n".join(b["text"] for b in req.system)
        return f'The system prompt is: "{excerpt(system)}"' if system else "There is no system prompt."
    if "tools" in low and ("which" in low or "what" in low):
        names = [t["name"] for t in req.tools]
        return "Available tools: " + ", ".join(names) + "." if names else "No tools are available."
    answer = f'You said: "{excerpt(text)}". This conversation has {_n(len(messages), "message")}.'
    last = current["content"]
    images = [b for b in last if b.get("type") == "image"]
    if images:
        sizes = []
        for b in images:
            size = req.image_sizes.get(id(b["source"]))
            sizes.append(f"{size[0]}x{size[1]}" if size else b["source"].get("type", "?"))
        answer += f" I see {_n(len(images), 'image')}: {', '.join(sizes)}."
    documents = [b for b in last if b.get("type") == "document"]
    if documents:
        answer += f" I see {_n(len(documents), 'document')}."
    return answer


def _tool_call(
    req: Request, messages: list[dict[str, Any]], last: dict[str, Any], answering_results: bool
) -> tuple[dict[str, Any], Any] | None:
    """The custom tool a default reply calls and its input, or ``None`` (see :func:`default_reply`).

    Tools with ``defer_loading`` are callable once a ``tool_reference`` in a tool result named them (tool
    search); until then a text matching one of them calls a custom tool search tool (one whose name and
    description say "search" and "tool") with the matching words as its query. Answering tool results, the
    reply calls a tool only if a tool reference of this turn just made it callable.
    """
    custom = [t for t in req.tools if t.get("type", "custom") in ("custom", None) and "input_schema" in t]
    if not custom:
        return None
    turn = _turn_start(messages)
    referenced = _referenced_tools(messages[turn:] if answering_results else messages)
    loaded = [t for t in custom if not t.get("defer_loading") or t["name"] in referenced]
    question = user_text(messages[turn]) if turn < len(messages) else user_text(last)
    if answering_results:
        called = {
            b.get("name")
            for m in messages[turn:]
            if m["role"] == "assistant"
            for b in m["content"]
            if b.get("type") == "tool_use"
        }
        newly = [t for t in loaded if t["name"] in referenced and t["name"] not in called]
        pick = pick_tool(newly, None, question)
        return (pick.tool, from_schema(pick.tool["input_schema"])) if pick is not None else None
    pick = pick_tool(loaded, req.tool_choice, question)
    if pick is not None:
        return pick.tool, from_schema(pick.tool["input_schema"])
    deferred = [t for t in custom if t not in loaded]
    wanted = pick_tool(deferred, None, question) if deferred else None
    searcher = next((t for t in loaded if {"search", "tool"} <= tool_words(t)), None)
    if wanted is None or searcher is None or (req.tool_choice or {}).get("type") == "none":
        return None
    return searcher, from_schema(searcher["input_schema"], text=" ".join(sorted(wanted.matched)))


def _server_tools(req: Request, messages: list[dict[str, Any]], seed: str) -> tuple[list[dict[str, Any]], str] | None:
    """A reply that runs the server tools offered (:func:`server_tool_reply`), continuing a paused turn."""
    if (req.tool_choice or {}).get("type") == "none":
        return None
    turn = _turn_start(messages)
    done = [b for m in messages[turn:] if m["role"] == "assistant" for b in m["content"]]
    return server_tool_reply(req.tools, user_text(messages[turn]) if messages else "", done, seed)


def _turn_start(messages: list[dict[str, Any]]) -> int:
    """The index of the user message that opened the current turn: the last one that is not only tool
    results."""
    for k in range(len(messages) - 1, -1, -1):
        m = messages[k]
        if m["role"] == "user" and any(b.get("type") != "tool_result" for b in m["content"]):
            return k
    return 0


def _referenced_tools(messages: list[dict[str, Any]]) -> set[str]:
    """Tool names that ``tool_reference`` blocks inside tool results name (tool search loaded them)."""
    names = set()
    for m in messages:
        for b in m["content"]:
            if b.get("type") == "tool_result" and isinstance(b.get("content"), list):
                names |= {i.get("tool_name") for i in b["content"] if i.get("type") == "tool_reference"}
    return names


def apply_limits(
    blocks: list[dict[str, Any]], stop_reason: str, req: Request, counter: Counter
) -> tuple[list[dict[str, Any]], str, str | None]:
    """Honour ``stop_sequences`` (in text blocks) and ``max_tokens``; return (blocks, stop_reason,
    stop_sequence)."""
    stop_sequence = None
    if req.stop_sequences:
        for k, block in enumerate(blocks):
            if block.get("type") != "text":
                continue
            hits = [(block["text"].find(s), s) for s in req.stop_sequences if s in block["text"]]
            if hits:
                at, seq = min(hits)
                blocks = [*blocks[:k], {**block, "text": block["text"][:at]}]
                if not blocks[-1]["text"]:
                    blocks.pop()
                stop_reason, stop_sequence = "stop_sequence", seq
                break
    if req.max_tokens is None:
        return blocks, stop_reason, stop_sequence
    remaining = req.max_tokens
    out: list[dict[str, Any]] = []
    for block in blocks:
        cost = counter.block(block)
        if cost <= remaining:
            out.append(block)
            remaining -= cost
            continue
        field = {"text": "text", "thinking": "thinking"}.get(block.get("type", ""))
        budget = remaining - BLOCK_OVERHEAD
        if field is not None and budget > 0:
            text = block[field]
            lo, hi = 0, len(text)  # the longest prefix that fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if counter.text(text[:mid]) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            if lo > 0:
                out.append({**block, field: text[:lo]})
        return out, "max_tokens", None
    return out, stop_reason, stop_sequence


def compaction_summary(req: Request) -> str:
    """The summary text of a compaction block: what the compacted messages were."""
    messages = _visible_messages(req)
    users = [user_text(m) for m in messages if m["role"] == "user" and user_text(m).strip()]
    first = excerpt(users[0]) if users else ""
    last = excerpt(users[-1]) if users else ""
    return (
        f'Summary of {len(messages)} earlier messages. The first user message was: "{first}". '
        f'The latest user message was: "{last}".'
    )


def message_id(request_digest: str, serial: int) -> str:
    return f"msg_sim{serial:05d}{request_digest[:16]}"


def request_digest(body: Any) -> str:
    try:
        return digest(body)
    except (TypeError, ValueError):
        return hashlib.sha256(json.dumps(body, default=str).encode()).hexdigest()
