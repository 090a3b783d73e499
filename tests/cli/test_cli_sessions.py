"""`claude-history sessions ...`: list, show, search, delete, export, import, fork, on a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from cli_helpers import Invoke, assert_clean_failure

from claude_history import Chat, open_store
from claude_history.stores.base import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def populated(sim: Any, store: Store) -> dict[str, list[str]]:
    """Three sessions written through the library: session id -> the user messages sent."""
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
    conversations = {
        "sailing": ["I want to learn sailing.", "Which knots first?"],
        "cooking": ["How long do I boil an egg?"],
        "maths": ["What is a prime number?", "Is 91 prime?"],
    }
    metadata: dict[str, dict[str, Any]] = {
        "sailing": {"owner": "bob"},
        "maths": {"tags": ["school"], "owner": "alice", "title": "Primes"},
    }
    for session_id, questions in conversations.items():
        chat = Chat(client, model="claude-sonnet-4-6", store=store, session_id=session_id)
        for question in questions:
            chat.send(question)
        if session_id in metadata:
            store.update_session(session_id, **metadata[session_id])
    return conversations


def test_list_shows_sessions_most_recent_first(invoke: Invoke, populated: Any, store_url: str) -> None:
    result = invoke(["sessions", "list", "--store", store_url, "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["maths", "cooking", "sailing"]
    assert {r["id"]: r["message_count"] for r in rows} == {"maths": 4, "cooking": 2, "sailing": 4}
    assert rows[0]["tags"] == ["school"] and rows[0]["title"] == "Primes"

    table = invoke(["sessions", "list", "--store", store_url])
    assert table.exit_code == 0, table.output
    for session_id in populated:
        assert session_id in table.stdout
    assert "Primes" in table.stdout and "#school" in table.stdout


def test_list_filters_and_limits(invoke: Invoke, populated: Any, store_url: str) -> None:
    def ids(*args: str) -> list[str]:
        result = invoke(["sessions", "list", "--store", store_url, "--json", *args])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["id"] for line in result.stdout.splitlines()]

    assert ids("--tag", "school") == ["maths"]
    assert ids("--owner", "bob") == ["sailing"]
    assert ids("-n", "1") == ["maths"]
    assert ids("-n", "1", "--offset", "1") == ["cooking"]
    assert ids("--tag", "nothing-has-this") == []


def test_store_comes_from_the_environment(invoke: Invoke, populated: Any, store_url: str) -> None:
    result = invoke(["sessions", "list", "--json"], env={"CLAUDE_HISTORY_STORE": store_url})
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


def test_list_of_an_empty_store(invoke: Invoke, store: Store, store_url: str) -> None:
    result = invoke(["sessions", "list", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "No sessions" in result.stdout


def test_show_renders_every_turn_with_usage_and_cost(
    invoke: Invoke, populated: Any, store: Store, store_url: str
) -> None:
    result = invoke(["sessions", "show", "maths", "--store", store_url])
    assert result.exit_code == 0, result.output
    out = result.stdout
    data = store.load("maths")
    for message in data.messages:
        text = message.message["content"]
        first_text = text if isinstance(text, str) else text[0]["text"]
        assert first_text.splitlines()[0] in out
    # Each reply shows its model and usage; the footer totals them.
    replies = [m for m in data.messages if m.role == "assistant"]
    assert out.count("claude-sonnet-4-6 · input") == len(replies)
    total_output = sum(int(m.usage["output_tokens"]) for m in replies if m.usage)
    assert "4 messages · input" in out
    assert f"output {total_output:,}" in out.splitlines()[-1]
    assert "$" in out.splitlines()[-1]


def test_show_unknown_session_is_one_line(invoke: Invoke, store: Store, store_url: str) -> None:
    result = invoke(["sessions", "show", "nope", "--store", store_url])
    assert_clean_failure(result, 1)
    assert "no session 'nope'" in result.stderr


def test_show_does_not_interpret_markup_in_messages(
    invoke: Invoke, sim: Any, store: Store, store_url: str
) -> None:
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
    Chat(client, model="claude-sonnet-4-6", store=store, session_id="markup").send(
        "[bold]not bold[/bold] [link]"
    )
    result = invoke(["sessions", "show", "markup", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "[bold]not bold[/bold] [link]" in result.stdout


def test_search_finds_messages(invoke: Invoke, populated: Any, store_url: str) -> None:
    result = invoke(["sessions", "search", "knots", "--store", store_url, "--json"])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert hits and hits[0]["session_id"] == "sailing"
    assert any("knots" in h["snippet"].lower() for h in hits)

    table = invoke(["sessions", "search", "knots", "--store", store_url])
    assert "sailing" in table.stdout

    none = invoke(["sessions", "search", "xylophone", "--store", store_url])
    assert none.exit_code == 0 and "No matches" in none.stdout


def test_search_filters_by_owner(invoke: Invoke, populated: Any, store: Store, store_url: str) -> None:
    def hits(*args: str) -> list[tuple[str, int]]:
        result = invoke(["sessions", "search", "i", "--store", store_url, "--json", *args])
        assert result.exit_code == 0, result.output
        return [(h["session_id"], h["seq"]) for h in map(json.loads, result.stdout.splitlines())]

    everyone = hits("-n", "100")
    assert {sid for sid, _ in everyone} >= {"sailing", "cooking"}  # bob's and an unowned session's
    bobs = hits("--owner", "bob", "-n", "100")
    assert bobs and {sid for sid, _ in bobs} == {"sailing"}
    assert sorted(bobs) == sorted(h for h in everyone if h[0] == "sailing")
    assert bobs == [(h.session_id, h.seq) for h in store.search("i", owner="bob", limit=100)]
    assert hits("--owner", "bob", "-n", "1") == bobs[:1]  # the limit counts bob's hits only
    assert hits("--owner", "bob", "--session", "sailing") == hits("--session", "sailing")
    assert hits("--owner", "alice", "--session", "sailing") == []
    assert hits("--owner", "nobody-has-this") == []

    table = invoke(["sessions", "search", "i", "--owner", "bob", "--store", store_url])
    assert table.exit_code == 0, table.output
    assert "sailing" in table.stdout and "cooking" not in table.stdout
    none = invoke(["sessions", "search", "i", "--owner", "nobody-has-this", "--store", store_url])
    assert none.exit_code == 0 and "No matches" in none.stdout


def test_delete_asks_then_removes_everything(
    invoke: Invoke, populated: Any, store: Store, store_url: str
) -> None:
    declined = invoke(["sessions", "delete", "cooking", "--store", store_url], input="n\n")
    assert declined.exit_code == 1  # aborted
    assert store.get_session("cooking").message_count == 2

    accepted = invoke(["sessions", "delete", "cooking", "--store", store_url], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "Deleted session cooking" in accepted.stderr
    assert [s.id for s in store.list_sessions()] == ["maths", "sailing"]
    assert store.search("egg") == []

    again = invoke(["sessions", "delete", "cooking", "--yes", "--store", store_url])
    assert_clean_failure(again, 1)
    assert "no session 'cooking'" in again.stderr


def test_compact_removes_a_deleted_session_from_the_file(
    invoke: Invoke, populated: Any, store: Store, store_url: str
) -> None:
    path = Path(store_url.removeprefix("sqlite:///"))
    assert invoke(["sessions", "delete", "cooking", "--yes", "--store", store_url]).exit_code == 0
    compacted = invoke(["sessions", "compact", "--store", store_url])
    assert compacted.exit_code == 0, compacted.output
    assert "Compacted" in compacted.stderr
    store.close()  # the last connection copies the WAL into the database file
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    assert not any(b"boil an egg" in p.read_bytes() for p in files)
    with open_store(store_url) as reopened:  # the index was rebuilt from the sessions that are left
        assert {hit.session_id for hit in reopened.search("prime")} == {"maths"}
        assert reopened.search("egg") == []


def test_export_import_round_trip(
    invoke: Invoke, populated: Any, store: Store, store_url: str, tmp_path: Path
) -> None:
    exported = invoke(["sessions", "export", "sailing", "--store", store_url])
    assert exported.exit_code == 0, exported.output
    dump = tmp_path / "sailing.jsonl"
    dump.write_text(exported.stdout, encoding="utf-8")

    imported = invoke(["sessions", "import", str(dump), "--session", "sailing-copy", "--store", store_url])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.strip() == "sailing-copy"
    assert "Imported 4 messages" in imported.stderr

    original, copy = store.load("sailing"), store.load("sailing-copy")
    assert copy.message_params() == original.message_params()
    assert [m.usage for m in copy.messages] == [m.usage for m in original.messages]
    assert [m.model for m in copy.messages] == [m.model for m in original.messages]

    # -o writes a file; exporting the copy gives the same messages.
    out_file = tmp_path / "copy.jsonl"
    assert (
        invoke(["sessions", "export", "sailing-copy", "-o", str(out_file), "--store", store_url]).exit_code
        == 0
    )
    assert exported.stdout.splitlines()[1:] == out_file.read_text(encoding="utf-8").splitlines()[1:]


def test_import_reads_stdin_and_the_guides_plain_json_list(
    invoke: Invoke, store: Store, store_url: str
) -> None:
    guide_history = [
        {"role": "user", "content": "Hello, I'm Alice."},
        {"role": "assistant", "content": "Hi Alice!"},
    ]
    result = invoke(
        ["sessions", "import", "-", "--session", "from-guide", "--store", store_url],
        input=json.dumps(guide_history),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "from-guide"
    assert store.load("from-guide").message_params() == guide_history


def test_import_of_an_empty_or_broken_file_is_one_line(
    invoke: Invoke, store_url: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = invoke(["sessions", "import", str(empty), "--store", store_url])
    assert_clean_failure(result, 1)
    assert "empty" in result.stderr

    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    result = invoke(["sessions", "import", str(broken), "--store", store_url])
    assert_clean_failure(result, 1)
    assert f"cannot import {broken}" in result.stderr and "line 1" in result.stderr


def test_import_warns_about_a_history_the_api_would_reject(
    invoke: Invoke, store: Store, store_url: str
) -> None:
    two_users = [{"role": "user", "content": "one"}, {"role": "assistant", "content": ""}]
    result = invoke(
        ["sessions", "import", "-", "--session", "bad", "--store", store_url], input=json.dumps(two_users)
    )
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "reject" in result.stderr
    assert store.load("bad").message_params() == two_users  # kept exactly as given

    fine = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
    result = invoke(
        ["sessions", "import", "-", "--session", "good", "--store", store_url], input=json.dumps(fine)
    )
    assert result.exit_code == 0 and "Warning" not in result.stderr


def test_export_of_a_missing_session_is_one_line(invoke: Invoke, store: Store, store_url: str) -> None:
    result = invoke(["sessions", "export", "ghost", "--store", store_url])
    assert_clean_failure(result, 1)
    assert result.stdout == ""


def test_fork_copies_the_prefix(invoke: Invoke, populated: Any, store: Store, store_url: str) -> None:
    result = invoke(["sessions", "fork", "maths", "--at", "2", "--new-id", "maths-b", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "maths-b"
    assert store.load("maths-b").message_params() == store.load("maths").message_params()[:2]


def test_import_or_fork_onto_a_taken_id_says_it_exists(
    invoke: Invoke, populated: Any, store: Store, store_url: str, tmp_path: Path
) -> None:
    dump = tmp_path / "sailing.jsonl"
    dump.write_text(invoke(["sessions", "export", "sailing", "--store", store_url]).stdout, encoding="utf-8")
    before = store.load("sailing").message_params()

    imported = invoke(["sessions", "import", str(dump), "--store", store_url])  # the exported id: taken
    assert imported.exit_code == 1
    assert "session 'sailing' already exists" in imported.stderr and "--session ID" in imported.stderr
    assert "not saved" not in imported.stderr and "another writer" not in imported.stderr

    forked = invoke(["sessions", "fork", "sailing", "--new-id", "sailing", "--store", store_url])
    assert forked.exit_code == 1
    assert "session 'sailing' already exists" in forked.stderr and "--new-id ID" in forked.stderr
    assert store.load("sailing").message_params() == before


def test_show_renders_replies_as_markdown_on_a_terminal(store: Store) -> None:
    import io

    from rich.console import Console

    from claude_history.cli.render import render_session

    reply = "Use **bold** here:\n\n```python\nprint('hi')\n```"
    store.import_jsonl(
        json.dumps([{"role": "user", "content": "Show **me**"}, {"role": "assistant", "content": reply}]),
        session_id="md",
    )
    screen = io.StringIO()
    render_session(Console(file=screen, force_terminal=True, width=80, color_system=None), store.load("md"))
    shown = screen.getvalue()
    assert "Show **me**" in shown  # the user's text as typed
    assert "Use bold here:" in shown and "```" not in shown  # the reply rendered
    piped = io.StringIO()
    render_session(Console(file=piped, width=80), store.load("md"))
    assert reply in piped.getvalue()  # into a pipe: exactly as stored


def test_list_hides_the_services_internal_records(invoke: Invoke, populated: Any, store: Store, store_url: str) -> None:
    """Keys and pass-through usage records the HTTP service keeps in the same store are not conversations."""
    from claude_history.server.tenants import USAGE_PREFIX, create_key

    create_key(store, "acme")
    store.update_session(f"{USAGE_PREFIX}acme/srv", metadata={"x": 1}, create=True)
    result = invoke(["sessions", "list", "--store", store_url, "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["maths", "cooking", "sailing"]
    paged = invoke(["sessions", "list", "--store", store_url, "--json", "-n", "1", "--offset", "1"])
    assert [json.loads(line)["id"] for line in paged.stdout.splitlines()] == ["cooking"]


def test_compact_erases_a_long_deleted_session_from_a_file_store(invoke: Invoke, tmp_path: Path) -> None:
    from claude_history.stores._file_index import INDEX_NAME, SWEEP_MIN
    from claude_history.stores.base import Entry

    url = f"file://{tmp_path / 'files'}"
    with open_store(url) as files:
        long = [Entry({"role": "user", "content": f"okapi{i} grazes"}) for i in range(2 * SWEEP_MIN)]
        files.append("long", long, expected_version=0)
        files.append("kept", [Entry({"role": "user", "content": "zebra"})], expected_version=0)
        files.delete("long")  # erases only part of its words: the rest goes with later writes or compact
    assert b"okapi" in (tmp_path / "files" / INDEX_NAME).read_bytes()
    compacted = invoke(["sessions", "compact", "--store", url])
    assert compacted.exit_code == 0, compacted.output
    assert "Compacted" in compacted.stderr
    assert b"okapi" not in (tmp_path / "files" / INDEX_NAME).read_bytes()
    with open_store(url) as files:
        assert [hit.session_id for hit in files.search("zebra")] == ["kept"]


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_a_lone_surrogate_is_shown_escaped_and_repaired(tmp_path: Path, locale: str) -> None:
    """Half of a UTF-16 pair has no UTF-8 form: in a real process (stdout a pipe, strict or surrogateescape
    by locale) every command still prints (was a traceback), the import warns, and repair makes it U+FFFD."""
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'h.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8")}
    env.update(LC_ALL=locale, LANG=locale, CLAUDE_HISTORY_STORE=url)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([sys.executable, "-m", "claude_history.cli", *args], env=env, capture_output=True,
                              input=stdin.encode() if stdin is not None else None, timeout=60)  # fmt: skip
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
        return done

    history = '[{"role": "user", "content": "a \\ud83d b"}, {"role": "assistant", "content": "reply \\udc00"}]'
    imported = run("sessions", "import", "-", "--session", "sur", stdin=history)
    assert b"lone surrogate" in imported.stderr and b"sessions repair sur" in imported.stderr
    for args in (("sessions", "show", "sur"), ("logs",)):
        assert b"a \\ud83d b" in run(*args).stdout
    assert b"sur" in run("sessions", "list").stdout
    found = run("sessions", "search", "reply").stdout.decode()  # the index holds it as one U+FFFD
    assert "reply \ufffd" in found and "\ufffd\ufffd" not in found
    run("sessions", "repair", "sur", "--new-id", "fixed")
    assert "a \ufffd b".encode() in run("sessions", "show", "fixed").stdout
    stored = open_store(url)
    try:
        assert stored.load("sur").message_params()[0]["content"] == "a \ud83d b"  # the original is kept
    finally:
        stored.close()
