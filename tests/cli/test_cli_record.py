"""The record a user relies on: spent money stays counted, forks and imports are told apart and labelled, and a
session the chat cannot continue is said once with the command that repairs it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from cli_helpers import Invoke, assert_clean_failure

from claude_history import Chat, open_store
from claude_history.cli.reply_view import PlainView
from claude_history.cli.spent import spending
from claude_history.stores.base import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def demo(sim: Any, store: Store) -> str:
    """A session of two turns written through the library (no title, as applications write them)."""
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
    chat = Chat(client, model="claude-sonnet-4-6", store=store, session_id="demo")
    chat.send("hello")
    chat.send("second")
    return "demo"


def _cost(text: str) -> float:
    match = re.search(r"cost:\s+\$(\d+\.\d+)", text)
    assert match, text
    return float(match.group(1))


def test_an_undone_turn_keeps_its_cost_in_the_session_totals(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store
) -> None:
    before = invoke(["chat", "-s", "paid"], input="One.\nTwo.\n/usage\n", env=api_env)
    after = invoke(["chat", "-s", "paid"], input="/undo\n/usage\n", env=api_env)
    assert before.exit_code == 0 and after.exit_code == 0, after.output
    assert "cost stays" in after.stdout
    assert _cost(after.stdout) == pytest.approx(_cost(before.stdout))
    data = store.load("paid")
    assert len(data.messages) == 2
    spent = spending(data.info, data.messages)
    assert spent.off_log_replies == 1 and spent.replies == 2

    shown = invoke(["sessions", "show", "paid", "--store", api_env["CLAUDE_HISTORY_STORE"] or ""])
    assert "for 1 undone or interrupted reply" in shown.stdout


def test_a_reply_stopped_with_ctrl_c_is_counted(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.reply_with("A long answer " * 50)

    def press_ctrl_c(self: PlainView, chunk: str) -> None:
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the first words arrive

    monkeypatch.setattr(PlainView, "add", press_ctrl_c)
    result = invoke(["chat", "-s", "stopped"], input="Tell me everything.\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert "interrupted" in result.stderr and "stays on record" in result.stderr
    data = store.load("stopped")
    assert data.messages == []  # the log is unchanged...
    spent = spending(data.info, data.messages)
    assert spent.off_log_replies == 1 and spent.cost > 0  # ...and the bill is not
    assert spent.usage.input_tokens > 0


def test_a_one_shot_reply_stopped_with_ctrl_c_is_counted(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.reply_with("A long answer " * 50)

    def press_ctrl_c(self: PlainView, chunk: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PlainView, "add", press_ctrl_c)
    result = invoke(["ask", "--session", "asked", "Tell me everything."], env=api_env)
    assert result.exit_code == 1 and "interrupted" in result.stderr and "stays on record" in result.stderr
    data = store.load("asked")
    assert data.messages == []
    spent = spending(data.info, data.messages)
    assert spent.off_log_replies == 1 and spent.usage.input_tokens > 0 and spent.usage.output_tokens > 0


def test_a_fork_gets_the_chat_id_format_its_own_title_and_not_the_parents_spending(
    invoke: Invoke, demo: str, store: Store, store_url: str
) -> None:
    store.update_session(demo, title="Greetings", metadata={"claude_history_cli_off_log_usage": [
        {"model": "claude-sonnet-4-6", "usage": {"input_tokens": 10, "output_tokens": 5}, "reason": "undone"}
    ]})
    result = invoke(["sessions", "fork", demo, "--at", "2", "--store", store_url])
    assert result.exit_code == 0, result.output
    forked = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", forked)
    info = store.get_session(forked)
    assert info.title != "Greetings" and "fork of demo" in (info.title or "")
    assert spending(info).off_log_replies == 0


def test_fork_inside_a_turn_is_refused_with_the_turn_starts(
    invoke: Invoke, demo: str, store: Store, store_url: str
) -> None:
    result = invoke(["sessions", "fork", demo, "--at", "3", "--store", store_url])
    assert_clean_failure(result, 1)
    assert "--at 2 or --at 4" in result.stderr and "message 3 is an assistant message" in result.stderr
    assert [s.id for s in store.list_sessions()] == [demo]


def test_a_session_the_chat_cannot_continue_is_said_once_with_the_repair_command(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store: Store, store_url: str
) -> None:
    broken = [{"role": "user", "content": "one"}, {"role": "assistant", "content": ""}]
    store.import_jsonl(json.dumps(broken), session_id="bad")
    result = invoke(["chat", "-s", "bad"], input="hi\n", env=api_env)
    assert_clean_failure(result, 1)
    assert "sessions repair bad" in result.stderr and "claude_history.repair()" not in result.stderr
    assert not [r for r in sim.requests if r["path"].endswith("/v1/messages")]

    repaired = invoke(["sessions", "repair", "bad", "--new-id", "fixed", "--store", store_url])
    assert repaired.exit_code == 0, repaired.output
    assert store.load("bad").message_params() == broken  # the original is kept
    again = invoke(["chat", "-s", "fixed"], input="hi\n", env=api_env)
    assert again.exit_code == 0, again.output


def test_a_session_ending_with_an_unanswered_message_is_repaired_without_it(
    invoke: Invoke, store: Store, store_url: str, api_env: dict[str, str | None]
) -> None:
    log = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    store.import_jsonl(json.dumps(log), session_id="dangling")
    store.update_session("dangling", tags=["imported"], metadata={"source": "crm"})
    assert "has no reply" in invoke(["chat", "-s", "dangling"], input="hi\n", env=api_env).stderr
    result = invoke(["sessions", "repair", "dangling", "--new-id", "ok", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert store.load("ok").message_params() == log[:2]
    copied = store.get_session("ok")
    assert copied.tags == ("imported",) and copied.metadata == {"source": "crm"}  # as the service's /repair
    assert "Left out" in result.stderr and "> three" in result.stderr  # said, not silently lost


def test_a_repair_that_keeps_nothing_says_what_to_send_again(invoke: Invoke, store: Store, store_url: str) -> None:
    log = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
    ]
    store.import_jsonl(json.dumps(log), session_id="stuck")
    result = invoke(["sessions", "repair", "stuck", "--new-id", "unstuck", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "Wrote 0 messages (of 3)" in result.stderr
    assert "> one" in result.stderr and "two" in result.stderr and "chat --session unstuck" in result.stderr


def test_imported_and_library_sessions_show_a_title_and_model(
    invoke: Invoke, demo: str, store: Store, store_url: str, tmp_path: Any
) -> None:
    dump = tmp_path / "demo.jsonl"
    dump.write_text(store.export_jsonl(demo), encoding="utf-8")
    result = invoke(["sessions", "import", str(dump), "--session", "copy", "--store", store_url])
    assert result.exit_code == 0, result.output
    info = store.get_session("copy")
    assert info.title == "hello" and info.model == "claude-sonnet-4-6"

    listed = invoke(["sessions", "list", "--store", store_url, "--json"])
    rows = {r["id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert rows[demo]["title"] == "hello" and rows[demo]["model"] == "claude-sonnet-4-6"


def test_a_forks_copied_replies_are_paid_once_in_the_totals(
    invoke: Invoke, demo: str, store: Store, store_url: str
) -> None:
    before = json.loads(invoke(["cost", "--by", "model", "--json", "--store", store_url]).stdout)
    forked = invoke(["sessions", "fork", demo, "--store", store_url]).stdout.strip()
    after = json.loads(invoke(["cost", "--by", "model", "--json", "--store", store_url]).stdout)
    assert after == before
    assert spending(store.get_session(forked), store.load(forked).messages).replies == 0
    logs = invoke(["logs", "--json", "-n", "9", "--store", store_url]).stdout.splitlines()
    assert {json.loads(line)["session_id"] for line in logs} == {demo}
