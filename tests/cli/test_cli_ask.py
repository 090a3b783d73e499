"""One-shot questions: `claude-history "question"` and `claude-history ask`, as `llm` users expect."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cli_helpers import Invoke, assert_clean_failure

from claude_history import open_store
from claude_history.cli.options import resolve_model


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


def test_attach_a_pdf_to_a_question(invoke: Invoke, sim: Any, api_env: dict[str, str | None], tmp_path: Path) -> None:
    pdf = tmp_path / "terms.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    result = invoke(["ask", "-a", str(pdf), "Summarise the terms."], env=api_env)
    assert result.exit_code == 0, result.output
    content = _bodies(sim)[-1]["messages"][-1]["content"]
    assert [b["type"] for b in content] == ["document", "text"]
    assert content[0]["source"]["media_type"] == "application/pdf" and content[0]["title"] == "terms.pdf"
    assert base64.b64decode(content[0]["source"]["data"]) == pdf.read_bytes()
    not_a_pdf = tmp_path / "terms.docx"
    not_a_pdf.write_bytes(b"PK\x03\x04 a zip")
    assert_clean_failure(invoke(["ask", "-a", str(not_a_pdf), "Summarise."], env=api_env), 1)
