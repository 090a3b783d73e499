"""Store URLs a user mistypes, stores a user cannot read: one line that says what and where, nothing created."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_helpers import Invoke, assert_clean_failure

from claude_history import open_store


def test_a_mistyped_sqlite_path_is_not_created_by_a_read_only_command(invoke: Invoke, tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    result = invoke(["sessions", "list", "--store", f"sqlite:///{typo}"])
    assert_clean_failure(result, 1)
    assert "does not exist" in result.stderr and "--store" in result.stderr
    assert not typo.exists()


def test_a_missing_file_store_directory_is_not_created_by_a_read_only_command(invoke: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    result = invoke(["sessions", "list", "--store", f"file://{missing}"])
    assert_clean_failure(result, 1)
    assert not missing.exists() and not missing.parent.exists()


def test_an_error_for_a_url_from_the_environment_says_so(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(["sessions", "list"], env={"CLAUDE_HISTORY_STORE": f"sqlite:///{tmp_path / 'gone.db'}"})
    assert_clean_failure(result, 1)
    assert "$CLAUDE_HISTORY_STORE" in result.stderr


@pytest.mark.parametrize(
    ("url", "said"),
    [("file://relative", "names a host"), ("redis://localhost:6379/abc", "must be a number")],
)
def test_urls_the_library_would_read_surprisingly_are_refused(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, said: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = invoke(["sessions", "list", "--store", url])
    assert_clean_failure(result, 2)
    assert said in result.stderr and url in result.stderr
    assert os.listdir(workdir) == []


@pytest.mark.services
def test_a_redis_database_out_of_range_is_one_line(invoke: Invoke) -> None:
    result = invoke(["sessions", "list", "--store", "redis://127.0.0.1:6379/99"])
    assert_clean_failure(result, 1)
    assert "DB index is out of range" in result.stderr and "redis://127.0.0.1:6379/99" in result.stderr


def test_a_chat_creates_its_store(invoke: Invoke, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    result = invoke(["chat", "--simulator", "--store", f"sqlite:///{fresh}", "-s", "new"], input="hi\n")
    assert result.exit_code == 0, result.output
    assert fresh.exists()


def test_importing_a_file_that_is_not_utf8_is_one_line(invoke: Invoke, store_url: str, tmp_path: Path) -> None:
    latin = tmp_path / "latin1.json"
    latin.write_bytes(json.dumps([{"role": "user", "content": "café"}], ensure_ascii=False).encode("latin-1"))
    result = invoke(["sessions", "import", str(latin), "--store", store_url])
    assert_clean_failure(result, 1)
    assert "not UTF-8" in result.stderr and str(latin) in result.stderr


def test_an_encrypted_session_read_without_the_key_says_the_key_is_missing(
    invoke: Invoke, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    from claude_history.stores.encrypted import generate_key

    store = open_store(store_url, encryption_key=generate_key())
    try:
        store.import_jsonl(json.dumps([{"role": "user", "content": "secret"}]), session_id="locked")
    finally:
        store.close()
    for command in (["sessions", "show", "locked"], ["sessions", "export", "locked"]):
        result = invoke([*command, "--store", store_url])
        assert_clean_failure(result, 1)
        assert "encrypted" in result.stderr and "CLAUDE_HISTORY_ENCRYPTION_KEY" in result.stderr
        assert "[encrypted]" not in result.output and "invalid history" not in result.stderr


def test_logs_and_cost_without_the_key_say_what_they_leave_out(invoke: Invoke, store_url: str) -> None:
    pytest.importorskip("cryptography")
    from claude_history.stores.base import Entry
    from claude_history.stores.encrypted import generate_key

    store = open_store(store_url, encryption_key=generate_key())
    reply = Entry(
        {"role": "assistant", "content": "secret answer"},
        model="claude-sonnet-4-6",
        usage={"input_tokens": 1000, "output_tokens": 100},
    )
    try:
        store.append("locked", [Entry({"role": "user", "content": "secret"}), reply], expected_version=0)
    finally:
        store.close()
    logs = invoke(["logs", "--store", store_url])
    assert logs.exit_code == 0 and "No turns." in logs.stdout
    assert "1 encrypted session(s) left out" in logs.stderr and "CLAUDE_HISTORY_ENCRYPTION_KEY" in logs.stderr
    assert_clean_failure(invoke(["logs", "--session", "locked", "--store", store_url]), 1)
    # Models and usage are kept in clear: what the session cost is counted without the key.
    cost = invoke(["cost", "--json", "--store", store_url])
    assert cost.exit_code == 0, cost.output
    [row] = [json.loads(line) for line in cost.stdout.splitlines()]
    assert row["session"] == "locked" and row["replies"] == 1 and row["cost"] == pytest.approx(0.0045)


def test_piped_sessions_list_is_one_line_per_session(invoke: Invoke, store_url: str) -> None:
    store = open_store(store_url)
    try:
        long_id = "a-session-with-a-rather-long-identifier-" + "x" * 30
        store.update_session(long_id, create=True, title="A title that is long enough to wrap at eighty columns")
    finally:
        store.close()
    result = invoke(["sessions", "list", "--store", store_url], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    row = [line for line in result.stdout.splitlines() if long_id in line]
    assert len(row) == 1 and "wrap at eighty columns" in row[0]
