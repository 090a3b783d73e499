"""`claude-history chat` over the simulator, driven by piped stdin (one message per line)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cli_helpers import Invoke, assert_clean_failure

from claude_history import Chat, open_store


def _user_texts(body: dict[str, Any]) -> list[str]:
    """The text of every user message of a request body, in order."""
    texts = []
    for message in body["messages"]:
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.append("".join(b.get("text", "") for b in content if b.get("type") == "text"))
    return texts


def _message_requests(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.requests if r["path"].endswith("/v1/messages")]


def _stored(store_url: str, session_id: str) -> list[dict[str, Any]]:
    store = open_store(store_url)
    try:
        return store.load(session_id).message_params()
    finally:
        store.close()


def test_missing_key_says_so_offers_simulator_and_exits_2(invoke: Invoke, store_url: str) -> None:
    result = invoke(["chat", "--store", store_url], input="hello\n")
    assert_clean_failure(result, 2)
    assert "ANTHROPIC_API_KEY" in result.stderr
    assert "--simulator" in result.stderr
    assert result.stdout == ""


def test_two_turns_then_a_second_run_continues_the_session(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    first = invoke(["chat", "--session", "trip"], input="My name is Alice.\nI like sailing.\n", env=api_env)
    assert first.exit_code == 0, first.output
    assert "Traceback" not in first.output
    assert len(_message_requests(sim)) == 2
    assert "chat --session trip" in first.stderr  # how to come back

    second = invoke(["chat", "--session", "trip"], input="What was my first message?\n", env=api_env)
    assert second.exit_code == 0, second.output
    assert "continuing, 4 messages" in second.stderr

    # The third request carried the whole history, first message first...
    third_request = _message_requests(sim)[-1]["body"]
    assert _user_texts(third_request) == [
        "My name is Alice.",
        "I like sailing.",
        "What was my first message?",
    ]
    assert [m["role"] for m in third_request["messages"]] == ["user", "assistant"] * 2 + ["user"]
    # ...and the simulator's answer, built from what it received, names it.
    assert "My name is Alice." in second.stdout
    assert len(_stored(store_url, "trip")) == 6


def test_streamed_reply_is_printed_and_stored(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    sim.reply_with("Paris is the capital of France.")
    result = invoke(["chat", "-s", "geo"], input="Capital of France?\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Paris is the capital of France."
    assert _message_requests(sim)[-1]["body"].get("stream") is True
    stored = _stored(store_url, "geo")
    assert stored[0] == {"role": "user", "content": "Capital of France?"} or _user_texts(
        {"messages": stored[:1]}
    ) == ["Capital of France?"]
    assert stored[1]["role"] == "assistant"


def test_without_session_a_new_id_is_printed_and_continue_picks_it_up(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None]
) -> None:
    first = invoke(["chat"], input="Remember the number 42.\n", env=api_env)
    assert first.exit_code == 0, first.output
    match = re.search(r"session (\S+) \(new session\)", first.stderr)
    assert match, first.stderr
    session_id = match.group(1)
    assert f"--session {session_id}" in first.stderr

    again = invoke(["chat", "--continue"], input="What was my first message?\n", env=api_env)
    assert again.exit_code == 0, again.output
    assert f"session {session_id} (continuing, 2 messages)" in again.stderr
    assert "Remember the number 42." in again.stdout


def test_continue_without_any_session_is_a_clear_error(
    invoke: Invoke, api_env: dict[str, str | None]
) -> None:
    result = invoke(["chat", "-c"], input="hi\n", env=api_env)
    assert_clean_failure(result, 1)
    assert "no session to continue" in result.stderr


def test_session_and_continue_together_is_a_usage_error(
    invoke: Invoke, api_env: dict[str, str | None]
) -> None:
    result = invoke(["chat", "-c", "--session", "x"], input="hi\n", env=api_env)
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_simulator_flag_needs_no_key_and_shows_a_banner(invoke: Invoke, store_url: str) -> None:
    result = invoke(["chat", "--simulator", "--store", store_url, "-s", "offline"], input="Hello there\n")
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.stderr
    assert result.stdout.strip()  # some reply was streamed
    assert "--simulator" in result.stderr  # the continue hint keeps the flag
    assert len(_stored(store_url, "offline")) == 2
    store = open_store(store_url)
    try:
        assert "simulated" in store.get_session("offline").tags  # not to be mistaken for a real conversation
    finally:
        store.close()


def test_a_session_gets_its_first_message_as_title(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    long_first = (
        "Plan a   three-day sailing trip along the coast of Brittany with stops in small harbours please"
    )
    assert (
        invoke(
            ["chat", "-s", "titled"], input=f"{long_first}\nAnd the packing list?\n", env=api_env
        ).exit_code
        == 0
    )
    store = open_store(store_url)
    try:
        info = store.get_session("titled")
        assert info.title == "Plan a three-day sailing trip along the coast of Brittany w…"
        assert info.tags == ()  # real (non-simulated) session
        store.update_session("titled", title="Brittany")
    finally:
        store.close()
    # A title the user set is kept.
    assert invoke(["chat", "-s", "titled"], input="One more thing\n", env=api_env).exit_code == 0
    store = open_store(store_url)
    try:
        assert store.get_session("titled").title == "Brittany"
    finally:
        store.close()


def test_model_system_and_max_tokens_reach_the_request_and_the_model_is_kept(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None]
) -> None:
    args = ["chat", "-s", "cfg", "--model", "claude-haiku-4-5", "--system", "Be brief.", "--max-tokens", "77"]
    assert invoke(args, input="hi\n", env=api_env).exit_code == 0
    body = _message_requests(sim)[-1]["body"]
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 77
    assert "Be brief." in str(body["system"])

    # A later run without --model / --system continues with the session's model and system prompt.
    assert invoke(["chat", "-s", "cfg"], input="again\n", env=api_env).exit_code == 0
    body = _message_requests(sim)[-1]["body"]
    assert body["model"] == "claude-haiku-4-5"
    assert "Be brief." in str(body["system"])


def test_usage_command_reports_tokens_and_cost_of_the_session(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    result = invoke(["chat", "-s", "u"], input="First question\nSecond question\n/usage\n", env=api_env)
    assert result.exit_code == 0, result.output
    store = open_store(store_url)
    try:
        replies = [m for m in store.load("u").messages if m.role == "assistant"]
    finally:
        store.close()
    input_tokens = sum(int(m.usage["input_tokens"]) for m in replies if m.usage)
    output_tokens = sum(int(m.usage["output_tokens"]) for m in replies if m.usage)
    assert input_tokens > 0 and output_tokens > 0
    assert f"input {input_tokens:,}" in result.stdout
    assert f"output {output_tokens:,}" in result.stdout
    assert re.search(r"cost:\s+\$\d+\.\d+", result.stdout)


def test_undo_removes_the_last_turn_from_the_store_and_from_later_requests(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    result = invoke(["chat", "-s", "undo"], input="Keep this.\nDrop this.\n/undo\nAfter undo.\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert "Removed the last turn" in result.stdout
    assert _user_texts(_message_requests(sim)[-1]["body"]) == ["Keep this.", "After undo."]
    assert _user_texts({"messages": _stored(store_url, "undo")}) == ["Keep this.", "After undo."]


def test_undo_on_an_empty_session_says_there_is_nothing(
    invoke: Invoke, api_env: dict[str, str | None]
) -> None:
    result = invoke(["chat", "-s", "empty"], input="/undo\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert "Nothing to undo" in result.stdout


def test_help_exit_unknown_command_and_slash_escape(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None]
) -> None:
    lines = "/help\n/frobnicate\n//etc/hosts is a file\n/exit\nnever sent\n"
    result = invoke(["chat", "-s", "cmds"], input=lines, env=api_env)
    assert result.exit_code == 0, result.output
    assert "/usage" in result.stdout and "/undo" in result.stdout
    assert "unknown command /frobnicate" in result.stderr
    sent = [_user_texts(r["body"])[-1] for r in _message_requests(sim)]
    assert sent == ["/etc/hosts is a file"]  # "never sent" came after /exit


def test_api_error_is_one_line_and_the_session_goes_on_intact(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    sim.fail_next(403)  # not retried by the SDK
    result = invoke(["chat", "-s", "err"], input="This one fails.\nThis one works.\n", env=api_env)
    assert result.exit_code == 1, result.output  # a script sees that a message got no reply...
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "403" in error_lines[0]
    # The failed turn left nothing behind: no dangling user message.
    assert _user_texts(_message_requests(sim)[-1]["body"]) == ["This one works."]
    assert _user_texts({"messages": _stored(store_url, "err")}) == ["This one works."]  # ...which went on


def test_a_piped_chat_whose_turns_all_failed_exits_1(invoke: Invoke, sim: Any, api_env: dict[str, str | None]) -> None:
    sim.fail_next(403)
    result = invoke(["chat", "-s", "doomed"], input="This one fails.\n", env=api_env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""


def test_a_mistyped_session_id_is_said_with_the_ids_it_may_mean(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None]
) -> None:
    assert invoke(["chat", "-s", "holiday-plans"], input="hi\n", env=api_env).exit_code == 0
    result = invoke(["chat", "-s", "holiday-plan"], input="hi again\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert "No session 'holiday-plan' in this store (did you mean holiday-plans?)" in result.stderr


@pytest.mark.parametrize("word", ["exit", "quit", "  Exit "])
def test_exit_and_quit_leave_instead_of_being_sent(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], word: str
) -> None:
    result = invoke(["chat", "-s", "bye"], input=f"hello\n{word}\nnever sent\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert [_user_texts(r["body"])[-1] for r in _message_requests(sim)] == ["hello"]


def test_unknown_store_scheme_is_a_clear_error(invoke: Invoke, api_env: dict[str, str | None]) -> None:
    result = invoke(["chat", "--store", "mongodb://x"], input="hi\n", env=api_env)
    assert_clean_failure(result, 2)
    assert "unknown store URL" in result.stderr


def test_unreachable_store_is_one_line(invoke: Invoke, api_env: dict[str, str | None]) -> None:
    # Port 9 (discard) on localhost: nothing listens there.
    result = invoke(["chat", "--store", "redis://127.0.0.1:9/0"], input="hi\n", env=api_env)
    assert_clean_failure(result, 1)
    assert "store unavailable" in result.stderr


def test_a_conflicting_writer_is_reported_and_the_chat_goes_on(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    from claude_history.stores.sqlite import SQLiteStore

    def other_writer() -> None:
        store = open_store(store_url)
        try:
            client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
            Chat(client, model="claude-sonnet-4-6", store=store, session_id="race").send("Other writer.")
        finally:
            store.close()

    # Another process commits a turn while our second request is in flight (after our chat read version 1).
    original_append = SQLiteStore.append
    armed = [True]

    def racing_append(self: SQLiteStore, session_id: str, entries: Any, *, expected_version: int) -> int:
        if armed[0] and session_id == "race" and expected_version == 1:
            armed[0] = False
            other_writer()
        return original_append(self, session_id, entries, expected_version=expected_version)

    monkeypatch.setattr(SQLiteStore, "append", racing_append)
    result = invoke(["chat", "-s", "race"], input="Mine first.\nMine second.\nMine third.\n", env=api_env)
    assert result.exit_code == 1, result.output  # one message was not saved
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "changed by another writer" in errors[0]
    # Nothing of the other writer was lost, and the chat went on from the stored history.
    assert _user_texts({"messages": _stored(store_url, "race")}) == [
        "Mine first.",
        "Other writer.",
        "Mine third.",
    ]
    assert _user_texts(_message_requests(sim)[-1]["body"]) == ["Mine first.", "Other writer.", "Mine third."]


def test_a_cut_stream_is_one_line_and_nothing_is_saved(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str
) -> None:
    sim.reply_with("A long answer that will never arrive in full.")
    sim.cut_next_stream(after_events=4)
    result = invoke(["chat", "-s", "cut"], input="First try.\nSecond try.\n", env=api_env)
    assert result.exit_code == 1, result.output  # the first message got no reply
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "connection to the API broke" in errors[0] and "not saved" in errors[0]
    assert _user_texts({"messages": _stored(store_url, "cut")}) == ["Second try."]


def test_a_rejected_key_is_reported_as_such(invoke: Invoke, sim: Any, api_env: dict[str, str | None]) -> None:
    sim.fail_next(401)
    result = invoke(["chat", "-s", "auth"], input="hello\n", env=api_env)
    assert result.exit_code == 1, result.output
    assert "rejected the credentials (401)" in result.stderr
    assert "ANTHROPIC_API_KEY" in result.stderr


def test_an_unreachable_api_is_one_line(invoke: Invoke, api_env: dict[str, str | None]) -> None:
    env = {**api_env, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}  # nothing listens on the discard port
    result = invoke(["chat", "-s", "offline", "--max-tokens", "10"], input="hello\n", env=env)
    assert result.exit_code == 1, result.output  # the message got no reply
    assert "Traceback" not in result.output
    assert "cannot reach http://127.0.0.1:9" in result.stderr


def test_an_encrypted_store_gets_no_title_in_clear_from_the_first_message(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], store_url: str, tmp_path: Any
) -> None:
    from claude_history.stores.encrypted import generate_key

    env = {**api_env, "CLAUDE_HISTORY_ENCRYPTION_KEY": generate_key()}
    assert invoke(["chat", "-s", "secret"], input="my zebracorn diagnosis\n", env=env).exit_code == 0
    plain = open_store(store_url, encryption_key=False)  # the backend as its operator sees it
    try:
        info = plain.get_session("secret")
        assert info.title is None
        assert "zebracorn" not in plain.export_jsonl("secret")
    finally:
        plain.close()
    content = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("chats.db"))
    assert b"zebracorn" not in content


def test_a_status_line_follows_each_reply(invoke: Invoke, sim: Any, api_env: dict[str, str | None]) -> None:
    result = invoke(["chat", "-s", "status"], input="One.\nTwo.\n", env=api_env)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("in ")]
    assert len(lines) == 2, result.stderr
    shape = r"in [\d,]+.* · out [\d,]+ · turn \$[\d.]+ · session \$[\d.]+ · context \d+% of [\d,]+"
    assert all(re.search(shape, line) for line in lines), lines
    second_turn, second_session = re.findall(r"\$([\d.]+)", lines[1])
    first_session = re.findall(r"\$([\d.]+)", lines[0])[1]
    assert float(second_session) == pytest.approx(float(first_session) + float(second_turn), abs=2e-6)
    assert "in " not in result.stdout  # stdout holds the replies only


@pytest.mark.parametrize(
    ("stop_reason", "said"), [("max_tokens", "cut at the max_tokens limit (50 tokens)"), ("refusal", "declined")]
)
def test_a_reply_that_did_not_end_normally_is_said(
    invoke: Invoke, sim: Any, api_env: dict[str, str | None], stop_reason: str, said: str
) -> None:
    sim.reply_with("Partial answer", stop_reason=stop_reason)
    result = invoke(["chat", "-s", "stop", "--max-tokens", "50"], input="Tell me.\n", env=api_env)
    assert "Traceback" not in result.output
    assert said in result.stderr
