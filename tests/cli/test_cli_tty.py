"""The real interactive mode (prompt_toolkit on a terminal), driven through tmux. Skipped without tmux."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from claude_history import open_store
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

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], env=self.env, capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_HISTORY_", "TMUX"))}
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


def _keep_capture(name: str, screen: str) -> None:
    """With CLAUDE_HISTORY_WRITE_CAPTURES=1, keep the screen for docs/cli.md (docs/captures/NAME.txt)."""
    if os.environ.get("CLAUDE_HISTORY_WRITE_CAPTURES") == "1":
        CAPTURES.mkdir(exist_ok=True)
        lines = [line.rstrip() for line in screen.rstrip().splitlines()]
        (CAPTURES / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_markdown_status_line_and_a_slash_command_in_a_terminal(terminal: Terminal, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'tty.db'}"
    terminal.start(_chat_command(store_url, "-s", "demo"))
    terminal.wait_for(lambda s: "you>" in s, "the prompt")
    terminal.type_line("Plan a **short** trip to Lisbon.")
    # The simulator echoes the message: rendered as Markdown, the asterisks are gone.
    screen = terminal.wait_for(lambda s: "session $" in s, "the status line")
    assert 'You said: "Plan a short trip to Lisbon."' in screen
    assert "**short**" not in screen.split("you> Plan a **short** trip to Lisbon.")[1]
    assert "in " in screen and "context " in screen
    terminal.tmux("send-keys", "-l", "/co")
    terminal.send("Tab")  # completes the slash command
    terminal.wait_for(lambda s: "you> /co" in s, "the completion")
    terminal.send("C-u")
    terminal.type_line("/cost")
    screen = terminal.wait_for(lambda s: "cost:" in s, "the /cost output")
    _keep_capture("chat", screen)
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
