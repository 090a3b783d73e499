"""The real interactive mode (prompt_toolkit on a terminal), driven through tmux. Skipped without tmux."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_history import open_store
from claude_history.cli.spent import SPENT_KEY
from waiting import STARTUP_CEILING

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.timeout(3 * STARTUP_CEILING),
]


class Terminal:
    """One tmux server on a private socket, running one command in a 120x40 pane."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", os.devnull, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout

    def start(self, command: str) -> None:
        # The trailing shell keeps the pane alive after the command ends, so its exit status can be read.
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", f"{command}; echo EXITED=$?; sleep 600")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200")

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def type_line(self, text: str) -> None:
        self.tmux("send-keys", "-l", text)
        self.tmux("send-keys", "Enter")

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = STARTUP_CEILING) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; screen:\n{screen}")
            time.sleep(0.1)

    def settled(self, predicate: Callable[[str], bool], what: str) -> str:
        """The screen once ``predicate`` holds and it has stopped changing (for captures: no half-drawn line)."""
        screen = self.wait_for(predicate, what)
        while True:
            time.sleep(0.3)
            again = self.wait_for(predicate, what)
            if again == screen:
                return screen
            screen = again

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], env=self.env, capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    # Not COLUMNS / LINES either (pytest-xdist sets them to 80 / 24 in its workers): the pane sizes the chat.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE_HISTORY_", "TMUX")) and k not in ("COLUMNS", "LINES")
    }
    env.update(TERM="xterm-256color", HOME=str(tmp_path))
    term = Terminal(tmp_path / "tmux.sock", env)
    yield term
    term.kill()


@pytest.mark.parametrize("exit_keys", [("C-d",), ("C-c", "C-c")])
def test_interactive_chat_in_a_terminal(terminal: Terminal, tmp_path: Path, exit_keys: tuple[str, ...]) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    command = shlex.join(
        [sys.executable, "-m", "claude_history.cli", "chat", "--simulator", "--store", store_url, "-s", "tty"]
    )
    terminal.start(command)
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    assert "SIMULATED" in terminal.screen()

    terminal.type_line("My name is Alice.")
    terminal.wait_for(lambda s: s.count("you>") >= 2, "the second prompt")
    terminal.type_line("What was my first message?")
    # The simulator answers with the first message it received: the name shows up a second time.
    terminal.wait_for(lambda s: s.count("My name is Alice.") >= 2 and s.count("you>") >= 3, "the answer")

    terminal.send(*exit_keys)
    screen = terminal.wait_for(lambda s: "EXITED=" in s, "the chat to exit")
    assert "EXITED=0" in screen
    assert "Traceback" not in screen
    assert "Session tty saved" in screen

    store = open_store(store_url)
    try:
        assert len(store.load("tty").messages) == 4
    finally:
        store.close()


def _chat_command(store_url: str, *extra: str) -> str:
    return shlex.join([sys.executable, "-m", "claude_history.cli", "chat", "--simulator", "--store", store_url, *extra])


def test_ctrl_c_clears_the_typed_line_and_input_history_survives_a_restart(terminal: Terminal, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(_chat_command(store_url, "-s", "keys"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.tmux("send-keys", "-l", "half a thought")
    terminal.wait_for(lambda s: "half a thought" in s, "the typed text")
    terminal.send("C-c")  # clears the line; the chat stays
    terminal.wait_for(lambda s: "Ctrl-C again" in s, "the hint")
    terminal.type_line("Remember the lighthouse.")
    terminal.wait_for(lambda s: s.count("you>") >= 3, "the reply")
    terminal.type_line("exit")
    screen = terminal.wait_for(lambda s: "EXITED=" in s, "the chat to exit")
    assert "EXITED=0" in screen and "Traceback" not in screen
    store = open_store(store_url)
    try:  # the cleared line was never sent, `exit` was not sent either
        texts = [m.message["content"] for m in store.load("keys").messages if m.role == "user"]
    finally:
        store.close()
    assert [t if isinstance(t, str) else t[0]["text"] for t in texts] == ["Remember the lighthouse."]

    again = Terminal(tmp_path / "second.sock", terminal.env)  # a fresh tmux server: no race with the first
    try:
        again.start(_chat_command(store_url, "-s", "keys"))
        again.wait_for(lambda s: "continuing, 2 messages" in s and "you>" in s, "the prompt of the second run")
        again.send("Up", "Up")  # the previous run's lines: `exit`, then the message
        again.wait_for(lambda s: "you> Remember the lighthouse." in s, "the remembered line")
    finally:
        again.kill()


CAPTURES = Path(__file__).resolve().parents[2] / "docs" / "captures"


def _check_capture(name: str, screen: str) -> None:
    """The screen docs/cli.md shows (docs/captures/NAME.txt; tests/docs checks the doc embeds it verbatim) must
    be what the chat prints now. CLAUDE_HISTORY_WRITE_CAPTURES=1 rewrites the file instead."""
    lines = [line.rstrip() for line in screen.rstrip().splitlines()]
    text = "\n".join(lines) + "\n"
    file = CAPTURES / f"{name}.txt"
    if os.environ.get("CLAUDE_HISTORY_WRITE_CAPTURES") == "1":
        CAPTURES.mkdir(exist_ok=True)
        file.write_text(text, encoding="utf-8")
        return
    kept = file.read_text(encoding="utf-8") if file.is_file() else ""
    assert text == kept, (
        f"the chat's screen is no longer docs/captures/{name}.txt: rerun with CLAUDE_HISTORY_WRITE_CAPTURES=1 and "
        f"paste the file into docs/cli.md. Now:\n{text}"
    )


def test_markdown_status_line_and_a_slash_command_in_a_terminal(terminal: Terminal, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(_chat_command(store_url, "-s", "demo"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.type_line("Plan a **short** trip to Lisbon.")
    # The simulator echoes the message: rendered as Markdown, the asterisks are gone.
    screen = terminal.wait_for(lambda s: "session $" in s and s.count("you>") >= 2, "the status and prompt")
    assert 'You said: "Plan a short trip to Lisbon."' in screen
    assert "**short**" not in screen.split("you> Plan a **short** trip to Lisbon.")[1]
    assert "in " in screen and "context " in screen
    terminal.tmux("send-keys", "-l", "/co")
    terminal.send("Tab")  # completes the slash command
    terminal.wait_for(lambda s: "you> /co" in s, "the completion")
    terminal.send("C-u")
    terminal.type_line("/cost")
    screen = terminal.settled(lambda s: "cost:" in s and s.rstrip().endswith("you>"), "the /cost output")
    _check_capture("chat", screen)
    terminal.type_line("/quit")
    screen = terminal.wait_for(lambda s: "EXITED=" in s, "the chat to exit")
    assert "EXITED=0" in screen and "Traceback" not in screen


def test_multi_line_input_has_a_continuation_prompt(terminal: Terminal, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(_chat_command(store_url, "-s", "lines"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.tmux("send-keys", "-l", "first line")
    terminal.send("Escape", "Enter")  # a new line, not sending
    terminal.tmux("send-keys", "-l", "second line")
    screen = terminal.wait_for(lambda s: "second line" in s, "the second line")
    assert "you> first line\n.... second line" in screen
    terminal.send("Enter")
    terminal.wait_for(lambda s: s.count("you>") >= 2, "the reply")
    terminal.type_line("exit")
    terminal.wait_for(lambda s: "EXITED=0" in s, "the chat to exit")
    store = open_store(store_url)
    try:
        assert store.load("lines").messages[0].message["content"] == "first line\nsecond line"
    finally:
        store.close()


def _api_chat_command(sim: Any, store_url: str, *extra: str, env: dict[str, str] | None = None) -> str:
    """The chat of a user with a key, pointed at this test's simulator (which the test can steer)."""
    assignments = [f"{k}={v}" for k, v in {"ANTHROPIC_API_KEY": "test", "ANTHROPIC_BASE_URL": sim.base_url}.items()]
    assignments += [f"{k}={v}" for k, v in (env or {}).items()]
    return shlex.join(
        ["env", *assignments, sys.executable, "-m", "claude_history.cli", "chat", "--store", store_url, *extra]
    )


def test_ctrl_c_during_a_reply_discards_it_keeps_its_cost_and_gives_the_prompt_back(
    terminal: Terminal, tmp_path: Path, sim: Any
) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(_api_chat_command(sim, store_url, "-s", "stopped"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.type_line("Keep this turn.")
    terminal.wait_for(lambda s: "session $" in s and s.count("you>") >= 2, "the first reply")

    sim.slow_next_stream(0.5)  # a slow model: a few words every half second
    terminal.type_line("Tell me a very long story about the sea, the ships and the lighthouse keepers.")
    # The first words of the reply are on the screen, the rest is still coming.
    terminal.wait_for(lambda s: s.count("You said") >= 2, "the start of the second reply")
    terminal.send("C-c")
    screen = terminal.wait_for(lambda s: "interrupted" in s and s.count("you>") >= 3, "the prompt after Ctrl-C")
    assert "the reply was discarded" in screen and "Traceback" not in screen
    assert 'lighthouse keepers.". This conversation has 3 messages.' not in screen  # the reply never finished

    store = open_store(store_url)
    try:  # the history is unchanged; what the discarded reply cost is on record
        data = store.load("stopped")
        assert [m.role for m in data.messages] == ["user", "assistant"]
        records = data.info.metadata[SPENT_KEY]
        assert [r["reason"] for r in records] == ["interrupted"]
        assert records[0]["usage"]["input_tokens"] > 0 and records[0]["usage"]["output_tokens"] > 0
    finally:
        store.close()

    terminal.type_line("/cost")  # the chat goes on, and its totals count the discarded reply
    screen = terminal.wait_for(lambda s: "cost:" in s, "the /cost output")
    assert "for 1 undone or interrupted reply" in screen
    terminal.type_line("exit")
    screen = terminal.wait_for(lambda s: "EXITED=" in s, "the chat to exit")
    assert "EXITED=0" in screen and "Traceback" not in screen


def test_ctrl_x_ctrl_e_writes_the_message_in_editor(terminal: Terminal, tmp_path: Path, sim: Any) -> None:
    editor = tmp_path / "editor.sh"  # an editor that writes a known text into the file it is given
    editor.write_text("#!/bin/sh\nprintf 'Written in the editor.\\nOn two lines.\\n' > \"$1\"\n")
    editor.chmod(0o755)
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start("unset VISUAL; " + _api_chat_command(sim, store_url, "-s", "edited", env={"EDITOR": str(editor)}))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.send("C-x", "C-e")  # the message comes back from the editor and is sent
    terminal.wait_for(lambda s: "session $" in s and s.count("you>") >= 2, "the reply")
    terminal.type_line("exit")
    terminal.wait_for(lambda s: "EXITED=0" in s, "the chat to exit")
    assert _user_texts(store_url, "edited") == ["Written in the editor.\nOn two lines."]
    assert sim.requests[-1]["body"]["messages"][-1]["content"] == "Written in the editor.\nOn two lines."


def _user_texts(store_url: str, session_id: str) -> list[str]:
    store = open_store(store_url)
    try:
        contents = [m.message["content"] for m in store.load(session_id).messages if m.role == "user"]
    finally:
        store.close()
    return [c if isinstance(c, str) else "\n".join(b.get("text", "") for b in c) for c in contents]


def test_a_reply_cut_at_max_tokens_and_a_refusal_say_so(terminal: Terminal, tmp_path: Path, sim: Any) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(_api_chat_command(sim, store_url, "-s", "stops", "--max-tokens", "5"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.type_line("Tell me about the tides of the Atlantic, in detail please.")
    screen = terminal.wait_for(lambda s: s.count("you>") >= 2, "the cut reply")
    assert "cut at the max_tokens limit (5 tokens)" in screen and "--max-tokens" in screen
    sim.refuse_next(category="cyber", text="I can't")
    terminal.type_line("Something Claude will not answer.")
    screen = terminal.settled(lambda s: s.count("you>") >= 3 and s.rstrip().endswith("you>"), "the refused reply")
    assert "declined to answer" in screen and "refusal" in screen
    _check_capture("notices", screen)
    terminal.type_line("exit")
    screen = terminal.wait_for(lambda s: "EXITED=" in s, "the chat to exit")
    assert "EXITED=0" in screen and "Traceback" not in screen


MINIMAL_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_attach_a_pdf_and_an_image_in_a_terminal(terminal: Terminal, tmp_path: Path, sim: Any) -> None:
    (tmp_path / "my report.pdf").write_bytes(MINIMAL_PDF)
    (tmp_path / "dot.png").write_bytes(PNG_1X1)
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(f"cd {shlex.quote(str(tmp_path))} && " + _api_chat_command(sim, store_url, "-s", "files"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.type_line('/attach "my report.pdf"')
    terminal.wait_for(lambda s: "Attached my report.pdf" in s, "the PDF attached")
    terminal.type_line("/attach dot.png")
    terminal.wait_for(lambda s: "Attached dot.png" in s and "2 attachment" in s, "the image attached")
    terminal.type_line("What are these?")
    terminal.wait_for(lambda s: "session $" in s, "the reply")
    content = sim.requests[-1]["body"]["messages"][-1]["content"]
    assert [b["type"] for b in content] == ["document", "image", "text"]
    assert content[0]["source"] == {
        "type": "base64",
        "media_type": "application/pdf",
        "data": base64.b64encode(MINIMAL_PDF).decode(),
    }
    assert content[0]["title"] == "my report.pdf"
    assert content[1]["source"]["media_type"] == "image/png" and content[2]["text"] == "What are these?"
    terminal.type_line("exit")
    terminal.wait_for(lambda s: "EXITED=0" in s, "the chat to exit")
    store = open_store(store_url)
    try:  # kept in the session as sent, so the next turns carry the files too
        stored = store.load("files").messages[0].message["content"]
        assert [b.get("source") for b in stored] == [b.get("source") for b in content]
    finally:
        store.close()
