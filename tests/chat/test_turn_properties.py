"""Property tests of the pure turn core (turn.py): whatever the API answers, in whatever order, every
request is one the API accepts and the committed log stays valid, with every reply block and usage kept."""

from __future__ import annotations

from typing import Any

import anthropic
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history.history import validate
from claude_history.tools import ToolSet, tool_result
from claude_history.turn import SessionState, Settings, Step, Turn, begin_turn
from claude_history.usage import TokenUsage

TOOL = {"name": "run", "description": "Run.", "input_schema": {"type": "object", "properties": {}}}
EXTERNAL = {"name": "ask_user", "description": "Ask.", "input_schema": {"type": "object", "properties": {}}}


def _settings(max_rounds: int) -> Settings:
    return Settings(
        model="claude-sonnet-4-6",
        system="S",
        max_tokens=100,
        context=None,
        cache=False,
        toolset=ToolSet.build([TOOL, EXTERNAL], {"run": lambda: "ok"}),
        create_kwargs={},
        max_tool_rounds=max_rounds,
        tool_errors="report",
        commit_pending=False,
    )


class Replies:
    """Fake API replies of the kinds a conversation meets, each with its own usage figures."""

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.n = 0
        self.usage_sent: list[dict[str, int]] = []

    def next(self) -> anthropic.types.Message:
        kind = self.kinds[self.n] if self.n < len(self.kinds) else "text"
        self.n += 1
        k = self.n
        content: list[dict[str, Any]]
        stop = "end_turn"
        if kind == "text":
            content = [{"type": "text", "text": f"answer {k}"}]
        elif kind == "thinking":
            content = [
                {"type": "thinking", "thinking": f"hmm {k}", "signature": f"sig{k}"},
                {"type": "text", "text": f"answer {k}"},
            ]
        elif kind in ("tool", "external"):
            name = "run" if kind == "tool" else "ask_user"
            content = [{"type": "tool_use", "id": f"toolu_{k}", "name": name, "input": {}}]
            stop = "tool_use"
        elif kind == "pause":
            content = [
                {"type": "server_tool_use", "id": f"srvtoolu_{k}", "name": "web_search", "input": {"q": "x"}},
                {"type": "web_search_tool_result", "tool_use_id": f"srvtoolu_{k}", "content": []},
            ]
            stop = "pause_turn"
        else:  # empty
            content = []
        usage = {"input_tokens": 10 * k, "output_tokens": k}
        self.usage_sent.append(usage)
        return anthropic.types.Message.model_validate(
            {
                "id": f"msg_{k}",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": content,
                "stop_reason": stop,
                "usage": usage,
            }
        )


def _request(turn: Turn, cfg: Settings) -> list[dict[str, Any]]:
    steps = turn.prepare(cfg)
    try:
        next(steps)
    except StopIteration as done:
        kwargs, beta = done.value
    else:  # pragma: no cover - KeepAll without a budget asks for no I/O
        raise AssertionError("unexpected I/O step")
    assert not beta
    return kwargs["messages"]  # type: ignore[no-any-return]


kinds = st.sampled_from(["text", "thinking", "tool", "external", "pause", "empty"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(kinds, max_size=6), min_size=1, max_size=6), st.integers(min_value=0, max_value=3))
def test_any_reply_sequence_keeps_requests_and_log_valid(script: list[list[str]], max_rounds: int) -> None:
    cfg = _settings(max_rounds)
    state = SessionState("s")
    api = Replies([k for turn in script for k in turn])
    committed_usage = TokenUsage()
    committed_blocks: list[dict[str, Any]] = []
    for number in range(len(script)):
        turn = begin_turn(state, None, f"question {number}", cfg, {})
        turn_blocks: list[dict[str, Any]] = []
        turn_usage = TokenUsage()
        for _ in range(40):  # the caller keeps answering until the turn ends
            messages = _request(turn, cfg)
            # A request ends with a user message, or with the paused assistant message it continues.
            validate(messages, for_sending=messages[-1]["role"] == "user")
            reply = api.next()
            turn_blocks += [b.model_dump(mode="json", exclude_unset=True) for b in reply.content]
            turn_usage += TokenUsage.from_api(reply.usage)
            step = turn.accept(reply, cfg)
            if step is Step.RUN_TOOLS:
                turn.add_tool_results([tool_result(str(u["id"]), "ok") for u in turn.awaiting])
            elif step is Step.WAIT:
                if turn.awaiting:  # caller-driven: the caller sends the results
                    turn.add_user(
                        {
                            "role": "user",
                            "content": [tool_result(str(u["id"]), "done") for u in turn.awaiting],
                        }
                    )
                elif not turn.paused:  # an empty reply: the caller says more
                    turn.add_user({"role": "user", "content": "go on"})
                # a pause past the round limit: resume, as chat.resume() does
                turn.auto_rounds = 0
            elif step is Step.DONE:
                break
        else:  # pragma: no cover
            raise AssertionError("the turn never ended")
        state = turn.base.committed(turn.entries, state.version + 1)
        validate(state.log, for_sending=False)
        committed_usage += turn_usage
        committed_blocks += turn_blocks
        # Every reply block is in the log, in order, exactly as the API sent it.
        stored = [b for m in state.log if m["role"] == "assistant" for b in m["content"]]
        assert stored == committed_blocks
        # Every call's usage is kept with the stored replies (empty replies and pauses included).
        stored_usage = sum((TokenUsage.from_api(r.usage) for r in state.records if r.usage), TokenUsage())
        assert stored_usage == committed_usage
