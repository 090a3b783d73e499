"""`claude-history logs`: the newest turns across sessions, filtered, as text or JSON; `logs path`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest
from cli_helpers import Invoke

from claude_history import Chat, open_store


@pytest.fixture
def filled(sim: Any, store_url: str) -> None:
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
    store = open_store(store_url)
    try:
        for session_id, model, questions in (
            ("trip", "claude-sonnet-4-6", ["Hotels in Lisbon?", "And in Porto?"]),
            ("code", "claude-haiku-4-5", ["What is a monad?"]),
        ):
            chat = Chat(client, model=model, store=store, session_id=session_id)
            for question in questions:
                chat.send(question)
    finally:
        store.close()


def _logs(invoke: Invoke, store_url: str, *args: str) -> list[dict[str, Any]]:
    result = invoke(["logs", "--json", "--store", store_url, *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_newest_turns_first_with_filters(invoke: Invoke, filled: None, store_url: str) -> None:
    assert [r["prompt"] for r in _logs(invoke, store_url, "-n", "2")] == ["What is a monad?", "And in Porto?"]
    assert [r["prompt"] for r in _logs(invoke, store_url, "-q", "lisbon")] == ["Hotels in Lisbon?"]
    assert {r["session_id"] for r in _logs(invoke, store_url, "-m", "claude-haiku-4-5")} == {"code"}
    assert len(_logs(invoke, store_url, "--session", "trip", "-n", "9")) == 2
    assert _logs(invoke, store_url, "--since", "2999-01-01") == []
    assert len(_logs(invoke, store_url, "--since", "1h", "-n", "9")) == 3
    row = _logs(invoke, store_url, "-n", "1")[0]
    assert row["usage"]["output_tokens"] > 0 and row["cost"] > 0 and row["reply"]


def test_text_output_and_cost(invoke: Invoke, filled: None, store_url: str) -> None:
    result = invoke(["logs", "--cost", "--store", store_url], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    assert "> What is a monad?" in result.stdout and "$" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) < 300  # no line drawn across a pipe's width


def test_a_bad_since_is_a_usage_error(invoke: Invoke, filled: None, store_url: str) -> None:
    result = invoke(["logs", "--since", "yesterday", "--store", store_url])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_logs_path(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(["logs", "path", "--store", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0 and result.stdout.strip() == str(tmp_path / "x.db")
    default = invoke(["logs", "path"])
    assert default.stdout.strip().endswith("history.db")
