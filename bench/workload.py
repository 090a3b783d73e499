"""The seeded synthetic workload of the cost benchmark (bench/cost.py).

A conversation is a script: every user message, every assistant reply (text and tool_use blocks), every tool
output and every gap between turns is fixed by the seed. Strategies only differ in how they shape requests, so
they all see the same conversation. The replies are queued in the simulator (``Simulator.reply_with``) just
before each call.

Sizes (characters; the simulator counts ``ceil(bytes / 4)`` tokens, x1.3 on Claude 4.7+ / 5.x):

- system prompt about 3,200 characters, three tool definitions;
- user messages: median about 300, 10% pasted text of 2,000 to 12,000, three turns with a PNG image;
- final replies: median about 1,400, 200 to 6,000;
- 12% of turns run a tool loop of 5 to 30 content blocks (assistant text, tool_use, tool_result), 1 to 3
  parallel calls a round; tool outputs median about 1,200, 100 to 12,000;
- gaps between turns: 55% 5 s to 1 min, 25% 1 to 5 min, 12% 5 to 15 min, 8% 15 to 30 min; a tool call takes
  1 to 20 s.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_GAP",
    "SYSTEM",
    "TOOLS",
    "Conversation",
    "Round",
    "ToolCall",
    "TurnSpec",
    "generate",
    "png",
]

MAX_GAP = 30 * 60.0
TOOL_LOOP_SHARE = 0.12
IMAGES_PER_CONVERSATION = 3

_VOCABULARY = (
    "the of and to in is that for it as with was on be by this are or from at an not which have has but "
    "model context window history message token cache prompt session store append load reply user "
    "assistant python database latency conversation tool result summary request response stream budget "
    "cost price error retry version commit turn thinking signature server client query index search "
    "export import question answer because however therefore example value function return list dict "
    "string number customer order invoice account schedule meeting report deploy config branch review "
    "test failure metric"
)
_WORDS = tuple(_VOCABULARY.split())


def _prose(rng: random.Random, size: int) -> str:
    """Prose-like text of exactly ``size`` characters (``size`` >= 1), never only whitespace."""
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        if not parts or rng.random() < 0.08:
            word = word.capitalize()
        parts.append(word + ("." if rng.random() < 0.07 else ""))
        length += len(parts[-1]) + 1
    return " ".join(parts)[:size].rstrip() or "x"


def _lognormal(rng: random.Random, median: float, low: int, high: int, sigma: float = 0.8) -> int:
    return int(min(high, max(low, rng.lognormvariate(math.log(median), sigma))))


def png(width: int, height: int, seed: int) -> bytes:
    """A deterministic RGB PNG of the given size: colour bands that compress to a few kilobytes."""
    rng = random.Random(seed)
    palette = [bytes(rng.randrange(256) for _ in range(3)) for _ in range(4)]
    band = max(1, height // 8)
    raw = bytearray()
    for y in range(height):
        colour = palette[(y // band) % len(palette)]
        raw += b"\x00" + colour * width  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


SYSTEM = (
    "You are the support and engineering assistant of an online shop. You answer questions from staff "
    "about orders, customers, deployments and reports. Be precise and brief; when you are not sure, say so "
    "and use a tool to check. Use the tools to look things up instead of guessing: search_docs for internal "
    "documents, run_query for read-only SQL against the reporting replica, read_file for files in the shop's "
    "repository. " + _prose(random.Random("system"), 2_800)
)

TOOLS: list[dict[str, Any]] = [
    {
        "name": "search_docs",
        "description": "Search the internal documentation and return the best matching passages.",
        "input_schema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "ref": {"type": "string", "description": "Request reference for the audit log."},
            },
            "required": ["query", "ref"],
        },
    },
    {
        "name": "run_query",
        "description": "Run a read-only SQL query on the reporting replica and return the rows as text.",
        "input_schema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "One SELECT statement."},
                "ref": {"type": "string", "description": "Request reference for the audit log."},
            },
            "required": ["query", "ref"],
        },
    },
    {
        "name": "read_file",
        "description": "Read a file of the shop's repository (text files only).",
        "input_schema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Path of the file."},
                "ref": {"type": "string", "description": "Request reference for the audit log."},
            },
            "required": ["query", "ref"],
        },
    },
]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    query: str
    output: str
    seconds: float  # how long the tool runs (the simulator clock moves on by this much)

    def tool_use(self) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": self.id,
            "name": self.name,
            "input": {"query": self.query, "ref": self.id},
        }


@dataclass(frozen=True)
class Round:
    """One assistant reply that asks for tools: an optional text, then parallel calls."""

    text: str | None
    calls: tuple[ToolCall, ...]

    def reply(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text}] if self.text else []
        return blocks + [c.tool_use() for c in self.calls]

    @property
    def blocks(self) -> int:
        return (1 if self.text else 0) + 2 * len(self.calls)


@dataclass(frozen=True)
class TurnSpec:
    index: int
    gap: float  # seconds since the previous turn ended
    user: str | tuple[dict[str, Any], ...]  # a string or content blocks (text + image)
    rounds: tuple[Round, ...]
    final: str

    def user_content(self) -> str | list[dict[str, Any]]:
        if isinstance(self.user, str):
            return self.user
        return [dict(b) for b in self.user]

    def reply(self, round_index: int) -> list[dict[str, Any]]:
        """The scripted reply to the request after ``round_index`` tool rounds of this turn."""
        if round_index < len(self.rounds):
            return self.rounds[round_index].reply()
        return [{"type": "text", "text": self.final}]

    @property
    def loop_blocks(self) -> int:
        """Content blocks of the tool loop, the final text included (0 without a loop)."""
        return sum(r.blocks for r in self.rounds) + 1 if self.rounds else 0

    @property
    def has_image(self) -> bool:
        return not isinstance(self.user, str)

    def call(self, tool_use_id: str) -> ToolCall:
        for r in self.rounds:
            for c in r.calls:
                if c.id == tool_use_id:
                    return c
        raise KeyError(tool_use_id)


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[TurnSpec, ...]


def _gap(rng: random.Random) -> float:
    u = rng.random()
    if u < 0.55:
        return round(rng.uniform(5, 60), 1)
    if u < 0.80:
        return round(rng.uniform(60, 300), 1)
    if u < 0.92:
        return round(rng.uniform(300, 900), 1)
    return round(rng.uniform(900, MAX_GAP), 1)


def _rounds(rng: random.Random, conv: int, turn: int) -> tuple[Round, ...]:
    """Rounds whose blocks plus the final text add up to a target drawn from 5..30."""
    target = rng.randint(5, 30)
    remaining = target - 1  # the final text reply
    rounds: list[Round] = []
    while remaining >= 2:
        parallel = min(rng.choice((1, 1, 1, 2, 2, 3)), remaining // 2)
        with_text = remaining - 2 * parallel >= 1 and rng.random() < 0.5
        if remaining - 2 * parallel - int(with_text) == 1:
            with_text = not with_text  # never leave a single block that no round can take
        calls = []
        for p in range(parallel):
            name = rng.choice(TOOLS)["name"]
            calls.append(
                ToolCall(
                    id=f"toolu_c{conv:02d}t{turn:03d}r{len(rounds):02d}p{p}",
                    name=name,
                    query=_prose(rng, rng.randint(20, 200)),
                    output=_prose(rng, _lognormal(rng, 1_200, 100, 12_000)),
                    seconds=round(rng.uniform(1, 20), 1),
                )
            )
        text = _prose(rng, rng.randint(40, 300)) if with_text else None
        rounds.append(Round(text, tuple(calls)))
        remaining -= rounds[-1].blocks
    return tuple(rounds)


def _user(rng: random.Random) -> str:
    if rng.random() < 0.10:
        return _prose(rng, rng.randint(2_000, 12_000))
    return _prose(rng, _lognormal(rng, 300, 40, 3_000))


def generate(seed: int = 5, conversations: int = 3, turns: int = 300) -> list[Conversation]:
    """The workload: ``conversations`` scripts of ``turns`` turns each, a pure function of the arguments."""
    out = []
    for c in range(conversations):
        rng = random.Random(f"cost-bench/{seed}/{c}")
        image_turns = set(rng.sample(range(min(3, turns), turns), min(IMAGES_PER_CONVERSATION, max(0, turns - 3))))
        specs = []
        for t in range(turns):
            gap = 0.0 if t == 0 else _gap(rng)
            user: str | tuple[dict[str, Any], ...] = _user(rng)
            if t in image_turns:
                data = png(rng.randint(300, 1_100), rng.randint(200, 900), rng.randrange(1 << 30))
                user = (
                    {"type": "text", "text": user},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(data).decode("ascii"),
                        },
                    },
                )
            rounds = _rounds(rng, c, t) if t > 0 and rng.random() < TOOL_LOOP_SHARE else ()
            final = _prose(rng, _lognormal(rng, 1_400, 200, 6_000, sigma=0.6))
            specs.append(TurnSpec(t, gap, user, rounds, final))
        out.append(Conversation(f"c{c:02d}", tuple(specs)))
    return out
