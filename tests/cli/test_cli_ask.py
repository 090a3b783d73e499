"""One-shot questions: `claude-history "question"` and `claude-history ask`, as `llm` users expect."""

from __future__ import annotations

import json
from typing import Any

from cli_helpers import Invoke, assert_clean_failure

from claude_history import open_store
from claude_history.cli.ask_command import resolve_model


def _bodies(sim: Any) -> list[dict[str, Any]]:
    return [r["body"] for r in sim.requests if r["path"].endswith("/v1/messages")]


def test_a_bare_question_is_asked_and_saved(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    sim.reply_with("Paris.")
    result = invoke(["Capital of France?"], env=api_env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Paris."
    store = open_store(store_url)
    try:
        [info] = store.list_sessions()
        assert info.title == "Capital of France?" and info.message_count == 2
    finally:
        store.close()


def test_continue_system_model_alias_stdin_and_json(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None]
) -> None:
    assert invoke(["ask", "First."], env=api_env).exit_code == 0
    result = invoke(
        ["ask", "-c", "-s", "Be brief.", "-m", "haiku", "--max-tokens", "99", "--json", "Summarise:"],
        input="piped text\n",
        env=api_env,
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["model"] == resolve_model("haiku") and "haiku" in record["model"]
    assert record["usage"]["output_tokens"] > 0 and record["cost"] is not None
    body = _bodies(sim)[-1]
    assert body["max_tokens"] == 99 and "Be brief." in json.dumps(body["system"])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    last = body["messages"][-1]["content"]
    text = last if isinstance(last, str) else last[-1]["text"]
    assert text == "Summarise:\n\npiped text"


def test_thinking_and_no_stream(invoke: Invoke, sim: Any, api_env: dict[str, str | None]) -> None:
    result = invoke(["ask", "--thinking", "2048", "--no-stream", "Think."], env=api_env)
    assert result.exit_code == 0, result.output
    body = _bodies(sim)[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] > 2048 and not body.get("stream")


def test_a_failed_question_exits_1_and_saves_nothing(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    sim.fail_next(403)
    result = invoke(["ask", "Doomed."], env=api_env)
    assert_clean_failure(result, 1)
    assert "nothing was saved" in result.stderr
    assert_clean_failure(invoke(["ask"], input="", env=api_env), 2)  # no question at all
