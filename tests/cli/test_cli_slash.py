"""The chat's slash commands, driven through piped stdin over the simulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke

from claude_history import open_store
from claude_history.stores.base import Store

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _requests(sim: Any) -> list[dict[str, Any]]:
    return [r["body"] for r in sim.requests if r["path"].endswith("/v1/messages")]


def _texts(messages: list[dict[str, Any]], role: str = "user") -> list[str]:
    out = []
    for m in messages:
        if m["role"] == role:
            c = m["content"]
            out.append(c if isinstance(c, str) else " ".join(b.get("text", "") for b in c if b["type"] == "text"))
    return out


def chat(invoke: Invoke, env: dict[str, str | None], lines: list[str], session: str = "s") -> Any:
    result = invoke(["chat", "-s", session], input="\n".join(lines) + "\n", env=env)
    assert "Traceback" not in result.output, result.output
    return result


def test_retry_asks_again_and_keeps_the_old_replys_cost(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store
) -> None:
    result = chat(invoke, api_env, ["First.", "Second.", "/retry"])
    assert result.exit_code == 0, result.output
    assert _texts(_requests(sim)[-1]["messages"]) == ["First.", "Second."]
    data = store.load("s")
    assert _texts(data.message_params()) == ["First.", "Second."]
    assert len(data.info.metadata["claude_history_cli_off_log_usage"]) == 1


def test_edit_replaces_the_last_message(invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store) -> None:
    result = chat(invoke, api_env, ["First.", "Secnod.", "/edit Second, spelled right."])
    assert result.exit_code == 0, result.output
    assert _texts(store.load("s").message_params()) == ["First.", "Second, spelled right."]
    assert "give the new text" in chat(invoke, api_env, ["/edit"]).stderr  # piped: no prompt to edit in


def test_fork_continues_in_the_new_session(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store
) -> None:
    result = chat(invoke, api_env, ["One.", "Two.", "/fork 2", "Three."])
    assert result.exit_code == 0, result.output
    assert "you are now in" in result.stdout
    assert _texts(store.load("s").message_params()) == ["One.", "Two."]
    forked = next(i.id for i in store.list_sessions() if i.id != "s")
    assert _texts(store.load(forked).message_params()) == ["One.", "Three."]
    assert "Continue with: claude-history chat --session " + forked in result.stderr


def test_model_and_system_change_the_next_request(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store
) -> None:
    result = chat(invoke, api_env, ["Hi.", "/model claude-haiku-4-5", "/system Answer in French.", "Again."])
    assert result.exit_code == 0, result.output
    last = _requests(sim)[-1]
    assert last["model"] == "claude-haiku-4-5"
    assert "Answer in French." in json.dumps(last["system"])
    assert store.get_session("s").system == "Answer in French."


def test_context_cost_title_tag_sessions(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store
) -> None:
    lines = ["Hello.", "/context", "/cost", "/title Greetings", "/tag demo work", "/tag -work", "/tag -wrok",
             "/sessions"]  # fmt: skip
    result = chat(invoke, api_env, lines)
    assert result.exit_code == 0, result.output
    assert "There was no tag 'wrok' to remove (the tags were: demo)." in result.stdout  # a typo is said
    assert "There was no tag 'work'" not in result.stdout
    assert "model claude-sonnet-4-6" in result.stdout  # the context report
    assert "cost:" in result.stdout
    info = store.get_session("s")
    assert info.title == "Greetings" and info.tags == ("demo",)
    assert "Greetings" in result.stdout  # the /sessions table


def test_attach_sends_an_image_with_the_next_message(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], tmp_path: Path
) -> None:
    image = tmp_path / "dot.png"
    image.write_bytes(PNG_1X1)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    result = chat(invoke, api_env, [f"/attach {text}", f"/attach {image}", "What is this?"])
    assert result.exit_code == 0, result.output
    assert "only images" in result.stderr
    content = _requests(sim)[-1]["messages"][-1]["content"]
    assert [b["type"] for b in content] == ["image", "text"]
    assert content[0]["source"]["media_type"] == "image/png"


def test_export_writes_markdown_or_jsonl(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], tmp_path: Path
) -> None:
    md, jsonl = tmp_path / "s.md", tmp_path / "s.jsonl"
    result = chat(invoke, api_env, ["Hello there.", f"/export {md}", f"/export {jsonl}"])
    assert result.exit_code == 0, result.output
    assert "## You" in md.read_text() and "Hello there." in md.read_text()
    assert json.loads(jsonl.read_text().splitlines()[1])["message"]["role"] == "user"


def test_clear_starts_a_new_session(invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store) -> None:
    result = chat(invoke, api_env, ["Before.", "/clear", "After."])
    assert result.exit_code == 0, result.output
    assert _texts(_requests(sim)[-1]["messages"]) == ["After."]
    assert len(store.list_sessions()) == 2
