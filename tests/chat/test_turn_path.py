"""The path of a turn (turn_path.py) driven without any I/O: the requests it makes, in order, and what the
chat's memory holds after each outcome (a reply, tools, a conflict, a store or API failure at any step)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import anthropic
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, ConflictError, StoreUnavailable, TurnInProgress
from claude_history.history import validate
from claude_history.pricing import load_prices
from claude_history.stores.base import SessionInfo
from claude_history.tools import ToolSet, tool_result
from claude_history.turn import Ledger, SessionState, Settings
from claude_history.turn_path import ChatMemory, TurnPath, turn_path
from claude_history.turn_requests import (
    CallApi,
    CheckVersion,
    Commit,
    Finished,
    LoadCheckpoint,
    LoadSession,
    ReleaseLease,
    Request,
    RunTools,
    SaveMetadata,
    TakeLease,
    Wait,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
TOOL = {"name": "run", "description": "Run.", "input_schema": {"type": "object", "properties": {}}}


def _settings(**changes: Any) -> Settings:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "system": "S",
        "max_tokens": 100,
        "context": None,
        "cache": False,
        "toolset": ToolSet.build([TOOL], {"run": lambda: "ran"}),
        "create_kwargs": {},
        "max_tool_rounds": 5,
        "tool_errors": "report",
        "commit_pending": False,
        "clock": lambda: NOW,
    }
    return Settings(**{**base, **changes})


def _message(content: list[dict[str, Any]], stop: str = "end_turn") -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 10, "output_tokens": 2},
        }
    )


ANSWER = _message([{"type": "text", "text": "Paris."}])
TOOL_USE = _message([{"type": "tool_use", "id": "toolu_1", "name": "run", "input": {}}], "tool_use")


def _info(version: int, incarnation: str | None = "inc-1") -> SessionInfo:
    return SessionInfo(id="s", version=version, created_at=NOW, updated_at=NOW, incarnation=incarnation)


def _memory(state: SessionState | None = None) -> ChatMemory:
    memory = ChatMemory("s", Ledger(load_prices(None)))
    if state is not None:
        memory.adopt(state)
    return memory


Answer = Callable[[Request], Any]


def _drive(path: TurnPath, answer: Answer) -> tuple[list[Request], Any]:
    """Run ``path`` like a front end's loop, with ``answer`` standing in for the I/O (it returns a result or
    raises); returns the requests made and the reply of ``Finished``."""
    made: list[Request] = []
    result: Any = None
    error: BaseException | None = None
    while True:
        request = path.throw(error) if error is not None else path.send(result)
        made.append(request)
        if isinstance(request, Finished):
            return made, request.message
        result, error = None, None
        try:
            result = answer(request)
        except Exception as exc:
            error = exc


def _store_like(replies: list[anthropic.types.Message], version: int = 0) -> Answer:
    """Answers as an empty store and an API with ``replies`` would; commits succeed."""
    queue = list(replies)

    def answer(request: Request) -> Any:
        if isinstance(request, LoadSession):
            return SessionState("s")
        if isinstance(request, CheckVersion):
            return None if version == 0 else _info(version)
        if isinstance(request, LoadCheckpoint):
            return None  # a store that keeps no planner checkpoint
        if isinstance(request, CallApi):
            return queue.pop(0)
        if isinstance(request, RunTools):
            return [tool_result(str(u["id"]), "ran") for u in request.uses]
        if isinstance(request, SaveMetadata):
            return _info(0)
        if isinstance(request, Commit):
            return request.expected_version + 1
        raise AssertionError(f"unexpected {request!r}")

    return answer


def test_a_turn_reads_the_session_calls_once_and_commits_the_whole_turn_with_one_append() -> None:
    memory = _memory()
    made, reply = _drive(turn_path(memory, _settings(), "Capital of France?", {}), _store_like([ANSWER]))
    # A session that does not exist yet is known from the one read (KeepAll keeps no checkpoint to look for,
    # so the session is read at once, without a version check first): nothing more is read.
    assert [type(r) for r in made] == [LoadSession, CallApi, SaveMetadata, Commit, Finished]
    call = made[1]
    assert isinstance(call, CallApi) and call.kwargs["messages"][-1]["content"] == "Capital of France?"
    commit = made[3]
    assert isinstance(commit, Commit) and commit.expected_version == 0
    assert [e.message["role"] for e in commit.entries] == ["user", "assistant"]
    assert set(commit.tokens) == {"incarnation", "turn_id"}
    assert reply is ANSWER
    assert memory.state is not None and memory.state.version == 1 and len(memory.state.log) == 2
    assert memory.pending is None and memory.ledger.usage.output_tokens == 2


def test_a_store_without_append_tokens_gets_none() -> None:
    path = turn_path(_memory(SessionState("s")), _settings(), "Hi", {}, append_tokens=False)
    made, _ = _drive(path, _store_like([ANSWER]))
    commit = next(r for r in made if isinstance(r, Commit))
    assert commit.tokens == {}


def test_a_session_moved_on_by_another_writer_is_read_again_before_the_call() -> None:
    memory = _memory(SessionState("s"))
    made, _ = _drive(turn_path(memory, _settings(), "Hi", {}), _store_like([ANSWER], version=4))
    assert [type(r) for r in made[:4]] == [CheckVersion, LoadCheckpoint, LoadSession, CallApi]


def test_a_session_deleted_and_created_again_is_refused_before_any_call() -> None:
    old = SessionState("s", version=3, incarnation="old")
    memory = _memory(old)
    made: list[Request] = []

    def answer(request: Request) -> Any:
        made.append(request)
        if isinstance(request, CheckVersion):
            return _info(3, incarnation="new")
        if isinstance(request, LoadCheckpoint):
            return None
        assert isinstance(request, LoadSession)
        return SessionState("s", version=3, incarnation="new")

    with pytest.raises(ConflictError, match="deleted and created again"):
        _drive(turn_path(memory, _settings(), "Hi", {}), answer)
    assert not any(isinstance(r, CallApi) for r in made)
    assert memory.state is not None and memory.state.incarnation == "new"


def test_local_tools_run_inside_the_turn_and_their_results_go_with_the_next_call() -> None:
    memory = _memory(SessionState("s"))
    made, reply = _drive(turn_path(memory, _settings(), "Run it", {}), _store_like([TOOL_USE, ANSWER]))
    kinds = [type(r) for r in made]
    assert kinds == [CheckVersion, CallApi, RunTools, CallApi, SaveMetadata, Commit, Finished]
    tools = made[2]
    assert isinstance(tools, RunTools) and [u["id"] for u in tools.uses] == ["toolu_1"]
    second = made[3]
    assert isinstance(second, CallApi)
    assert second.kwargs["messages"][-1]["content"][0]["tool_use_id"] == "toolu_1"
    commit = made[5]
    assert isinstance(commit, Commit) and len(commit.entries) == 4
    validate([dict(e.message) for e in commit.entries], for_sending=False)
    assert reply is ANSWER


def test_a_tool_use_without_a_local_function_parks_the_turn_without_writing() -> None:
    memory = _memory(SessionState("s"))
    cfg = _settings(toolset=ToolSet.build([TOOL], None))
    made, reply = _drive(turn_path(memory, cfg, "Run it", {}), _store_like([TOOL_USE]))
    assert [type(r) for r in made] == [CheckVersion, CallApi, Finished]
    assert reply is TOOL_USE and memory.pending is not None and memory.pending.awaiting
    # The caller answers: the same path, continued from the pending turn, without reading the session again.
    results = [tool_result("toolu_1", "done")]
    made, _ = _drive(turn_path(memory, cfg, results, {}), _store_like([ANSWER]))
    assert [type(r) for r in made] == [CallApi, SaveMetadata, Commit, Finished]
    assert memory.pending is None and memory.state is not None and len(memory.state.log) == 4


def test_commit_pending_stores_the_tool_use_turn_up_to_its_reply() -> None:
    memory = _memory(SessionState("s"))
    cfg = _settings(toolset=ToolSet.build([TOOL], None), commit_pending=True)
    made, _ = _drive(turn_path(memory, cfg, "Run it", {}), _store_like([TOOL_USE]))
    assert [type(r) for r in made] == [CheckVersion, CallApi, SaveMetadata, Commit, Finished]
    assert memory.state is not None and memory.state.version == 1
    assert memory.pending is not None and memory.pending.entries == [] and memory.pending.base is memory.state


def test_resume_runs_the_open_tools_first() -> None:
    memory = _memory(SessionState("s"))
    cfg = _settings(max_tool_rounds=0)
    made, _ = _drive(turn_path(memory, cfg, "Run it", {}), _store_like([TOOL_USE]))
    assert memory.pending is not None  # max_tool_rounds=0: the tool did not run
    made, reply = _drive(turn_path(memory, cfg, None, {}, resume=True), _store_like([ANSWER]))
    assert [type(r) for r in made] == [RunTools, CallApi, SaveMetadata, Commit, Finished]
    assert reply is ANSWER and memory.pending is None


def test_a_sync_front_end_refuses_async_tools_before_any_call() -> None:
    async def run() -> str:
        return "ran"

    cfg = _settings(toolset=ToolSet.build([TOOL], {"run": run}))
    path = turn_path(_memory(SessionState("s")), cfg, "Hi", {}, sync_tools=True)
    with pytest.raises(ConfigurationError, match="need AsyncChat"):
        _drive(path, _store_like([ANSWER]))


def test_a_conflict_at_commit_reads_the_session_and_hands_back_the_turn() -> None:
    memory = _memory(SessionState("s"))
    theirs = SessionState("s", version=7)

    def answer(request: Request) -> Any:
        if isinstance(request, Commit):
            raise ConflictError("moved", session_id="s", expected_version=0, actual_version=7)
        if isinstance(request, LoadSession):
            return theirs
        return _store_like([ANSWER])(request)

    with pytest.raises(ConflictError) as caught:
        _drive(turn_path(memory, _settings(), "Hi", {}), answer)
    assert caught.value.reply is ANSWER
    assert [e.message["role"] for e in caught.value.unsaved] == ["user", "assistant"]
    assert memory.state is theirs and memory.pending is None


def _api_error() -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://sim/v1/messages")
    response = httpx2.Response(529, request=request, json={"type": "error"})
    return anthropic.InternalServerError("overloaded", response=response, body=None)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=7), st.booleans(), st.booleans())
def test_a_failure_at_any_step_leaves_the_chat_as_it_was(fail_at: int, tools: bool, store_error: bool) -> None:
    """The n-th request fails (an API error, or the store unreachable): the error passes through (for a
    store error at commit, with the turn on it), and nothing of the turn is in the chat's memory."""
    before = SessionState("s", version=2, incarnation="inc-1")
    memory = _memory(before)
    made: list[Request] = []
    ok = _store_like([TOOL_USE, ANSWER] if tools else [ANSWER], version=2)

    def answer(request: Request) -> Any:
        made.append(request)
        if len(made) - 1 == fail_at:
            raise StoreUnavailable("down") if store_error else _api_error()
        if isinstance(request, CheckVersion):
            return _info(2)
        return ok(request)

    try:
        _, reply = _drive(turn_path(memory, _settings(), "Hi", {}), answer)
    except (StoreUnavailable, anthropic.APIStatusError) as exc:
        failed = made[-1]
        assert memory.state is before and memory.pending is None
        if isinstance(exc, StoreUnavailable) and isinstance(failed, (Commit, SaveMetadata)):
            assert exc.may_be_stored is isinstance(failed, Commit)
            assert exc.reply is ANSWER and len(exc.unsaved) == (4 if tools else 2)  # type: ignore[attr-defined]
            if isinstance(failed, Commit):
                assert exc.turn_id == failed.tokens["turn_id"]
    else:
        assert fail_at >= len(made)  # no request failed
        assert reply is ANSWER and memory.state is not None and memory.state.version == 3


def _leasing(answer: Answer, tokens: list[int | None]) -> Answer:
    """``answer`` with a store whose lease requests get ``tokens`` in turn (None: held by another turn)."""

    def leased(request: Request) -> Any:
        if isinstance(request, TakeLease):
            return tokens.pop(0)
        if isinstance(request, (Wait, ReleaseLease)):
            return None
        return answer(request)

    return leased


def test_reject_takes_the_lease_first_and_fails_before_reading_anything() -> None:
    memory = _memory(SessionState("s"))
    made: list[Request] = []

    def answer(request: Request) -> Any:
        made.append(request)
        return _leasing(_store_like([ANSWER]), [None])(request)

    with pytest.raises(TurnInProgress):
        _drive(turn_path(memory, _settings(on_concurrent="reject"), "Hi", {}), answer)
    assert [type(r) for r in made] == [TakeLease] and memory.lease is None


def test_enqueue_waits_for_the_lease_commits_under_it_and_releases_it() -> None:
    memory = _memory(SessionState("s"))
    cfg = _settings(on_concurrent="enqueue", lease_ttl=5.0)
    made, _ = _drive(turn_path(memory, cfg, "Hi", {}), _leasing(_store_like([ANSWER]), [None, None, 7]))
    kinds = [type(r) for r in made]
    assert kinds[:6] == [TakeLease, Wait, TakeLease, Wait, TakeLease, CheckVersion]
    assert kinds[-3:] == [Commit, ReleaseLease, Finished]
    assert all(r.ttl == 5.0 for r in made if isinstance(r, TakeLease))
    commit, release = made[-3], made[-2]
    assert isinstance(commit, Commit) and commit.tokens["lease"] == 7
    assert isinstance(release, ReleaseLease) and release.token == 7 and memory.lease is None


def test_a_failed_turn_releases_its_lease_and_the_error_passes_through() -> None:
    memory = _memory(SessionState("s"))
    made: list[Request] = []

    def answer(request: Request) -> Any:
        made.append(request)
        if isinstance(request, CallApi):
            raise _api_error()
        return _leasing(_store_like([]), [3])(request)

    with pytest.raises(anthropic.InternalServerError):
        _drive(turn_path(memory, _settings(on_concurrent="reject"), "Hi", {}), answer)
    assert isinstance(made[-1], ReleaseLease) and made[-1].token == 3 and memory.lease is None
