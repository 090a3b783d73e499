"""Synthetic conversations for context tests: random turns (text, tool loops, thinking, images), and a driver
that plays them against the simulator the way Chat does (plan, optional summary call, send, record usage)."""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass, field
from typing import Any

from claude_history.context import plan_request
from claude_history.context.plan import RequestPlan
from claude_history.models import model_info
from claude_history.stores.base import Summary

_VOCABULARY = """
the of and to in is it you that he was for on are with as his they be at one have this from or had by word but
what some we can out other were all there when up use your how said an each she which do their time if will
way about many then them write would like so these her long make thing see him two has look cache window token
budget summary prompt model request reply tool result image turn session history
"""
WORDS = _VOCABULARY.split()


def png(width: int, height: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


_PNGS: dict[tuple[int, int], str] = {}


def image_block(width: int, height: int) -> dict[str, Any]:
    if (width, height) not in _PNGS:
        _PNGS[(width, height)] = png(width, height)
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _PNGS[(width, height)]},
    }


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n)))


@dataclass
class TurnPlan:
    """What one synthetic turn holds: the user's content and the replies the simulator will give."""

    user: Any
    replies: list[list[dict[str, Any]]]
    tool_results: list[list[dict[str, Any]]] = field(default_factory=list)


def random_turn(rng: random.Random, counter: list[int], *, thinking: bool, images: bool) -> TurnPlan:
    size = rng.choice([5, 20, 60, 150, 400])
    user: Any = words(rng, size)
    if images and rng.random() < 0.15:
        user = [
            image_block(rng.choice([200, 600, 1200]), rng.choice([150, 500, 900])),
            {"type": "text", "text": user},
        ]
    replies: list[list[dict[str, Any]]] = []
    results: list[list[dict[str, Any]]] = []
    rounds = rng.choice([0, 0, 0, 1, 2, 4]) if rng.random() < 0.5 else 0
    for _ in range(rounds):
        calls = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            counter[0] += 1
            calls.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{counter[0]:05d}",
                    "name": "lookup",
                    "input": {"query": words(rng, 4)},
                }
            )
        head = [{"type": "thinking", "thinking": words(rng, 30)}] if thinking else []
        replies.append(head + calls)
        results.append(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": c["id"],
                    "content": words(rng, rng.choice([10, 80, 300])),
                }
                for c in calls
            ]
        )
    head = [{"type": "thinking", "thinking": words(rng, 40)}] if thinking else []
    replies.append([*head, {"type": "text", "text": words(rng, rng.choice([10, 60, 200]))}])
    return TurnPlan(user, replies, results)


LOOKUP_TOOL = {
    "name": "lookup",
    "description": "Look something up.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


class Driver:
    """Plays turns against the simulator through plan_request, as Chat does; keeps the log and usage."""

    def __init__(
        self,
        sim: Any,
        client: Any,
        *,
        model: str,
        policy: Any,
        system: Any = None,
        tools: list[dict[str, Any]] | None = None,
        thinking: bool = False,
        cache: bool | str = True,
    ):
        self.sim, self.client, self.model, self.policy = sim, client, model, policy
        self.system, self.tools, self.thinking, self.cache = system, tools, thinking, cache
        self.log: list[dict[str, Any]] = []
        self.usage: list[dict[str, Any]] = []  # {"seq", "usage"} like StoredMessage
        self.summaries: list[Summary] = []
        self.plans: list[RequestPlan] = []
        self.responses: list[Any] = []
        self.summary_calls = 0
        self.summary_failures = 0

    def plan(self, pending: list[dict[str, Any]]) -> RequestPlan:
        return plan_request(
            self.log,
            pending,
            model=self.model,
            system=self.system,
            tools=self.tools,
            policy=self.policy,
            summaries=self.summaries,
            usage_history=self.usage,
            cache=self.cache,
        )

    def _summarise(self, plan: RequestPlan, pending: list[dict[str, Any]], fail: bool) -> RequestPlan:
        assert plan.summary_request is not None
        self.summary_calls += 1
        if fail:
            self.sim.fail_next(500)
        try:
            reply = self.client.messages.create(**plan.summary_request.params)
        except Exception:
            self.summary_failures += 1
            assert plan.fallback is not None
            return plan.fallback
        self.summaries.append(plan.summary_request.to_summary(reply))
        again = self.plan(pending)
        assert again.summary_request is None
        return again

    def turn(self, turn: TurnPlan, *, fail_summary: bool = False) -> list[Any]:
        pending: list[dict[str, Any]] = [{"role": "user", "content": turn.user}]
        responses = []
        for k, reply in enumerate(turn.replies):
            plan = self.plan(pending)
            if plan.summary_request is not None:
                plan = self._summarise(plan, pending, fail_summary)
            self.plans.append(plan)
            self.sim.reply_with(
                reply, stop_reason="tool_use" if any(b["type"] == "tool_use" for b in reply) else "end_turn"
            )
            kwargs = plan.request_kwargs()
            if self.thinking:
                modes = model_info(self.model).thinking_modes  # type: ignore[union-attr]
                kind = "adaptive" if "adaptive" in modes else "enabled"
                kwargs["thinking"] = {"type": kind, "budget_tokens": 1024} if kind == "enabled" else {"type": kind}
            api = self.client.beta.messages if plan.betas else self.client.messages
            response = api.create(model=self.model, max_tokens=2048, **kwargs)
            responses.append(response)
            self.responses.append(response)
            content = [b.model_dump(mode="json", exclude_none=True) for b in response.content]
            pending.append({"role": "assistant", "content": content})
            self.usage.append(
                {
                    "seq": len(self.log) + len(pending) - 1,
                    "usage": response.usage.model_dump(mode="json", exclude_none=True),
                }
            )
            if k < len(turn.tool_results):
                pending.append({"role": "user", "content": turn.tool_results[k]})
        self.log.extend(pending)
        return responses


def signed(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reply blocks as the API returns them (thinking signed), for histories built without the simulator."""
    return [
        {**b, "signature": "sig-" + str(abs(hash(b["thinking"])))} if b["type"] == "thinking" else b
        for b in blocks
    ]


def build_history(
    seed: int, turns: int, *, thinking: bool = False, images: bool = True, open_tool_loop: bool = False
) -> list[dict[str, Any]]:
    """A finished conversation of ``turns`` turns, then the newest user message (or, with ``open_tool_loop``,
    a newest turn still inside its tool loop, ending with tool results)."""
    rng = random.Random(seed)
    counter = [0]
    messages: list[dict[str, Any]] = []
    for _ in range(turns):
        turn = random_turn(rng, counter, thinking=thinking, images=images)
        messages.append({"role": "user", "content": turn.user})
        for k, reply in enumerate(turn.replies):
            messages.append({"role": "assistant", "content": signed(reply)})
            if k < len(turn.tool_results):
                messages.append({"role": "user", "content": turn.tool_results[k]})
    last = random_turn(rng, counter, thinking=thinking, images=images)
    messages.append({"role": "user", "content": last.user})
    if open_tool_loop and last.tool_results:
        messages.append({"role": "assistant", "content": signed(last.replies[0])})
        messages.append({"role": "user", "content": last.tool_results[0]})
    return messages
