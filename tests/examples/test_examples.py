"""Every script in examples/ runs unchanged against the simulator, as a user would run it against the API
(ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL from the environment), and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIRST_MESSAGE = "What was my first message?"


def _run(script: str, sim: Any, cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_HISTORY_"))}
    env.update(ANTHROPIC_API_KEY="test", ANTHROPIC_BASE_URL=sim.base_url)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def _answer_to(question: str, output: str) -> str:
    """The lines a script printed after echoing ``> question``, up to the next prompt or note."""
    lines = output.splitlines()
    start = lines.index(f"> {question}") + 1
    answer = []
    for line in lines[start:]:
        if line.startswith(("> ", "(")):
            break
        answer.append(line)
    return "\n".join(answer)


def _message_requests(sim: Any) -> list[dict[str, Any]]:
    return [r["body"] for r in sim.requests if r["path"].endswith("/v1/messages")]


def _first_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


@pytest.mark.parametrize("script", ["guide_history_list.py", "history_list.py", "history_list_async.py"])
def test_history_list(script: str, sim: Any, tmp_path: Path) -> None:
    out = _run(script, sim, tmp_path)
    assert "My name is Alice and I like sailing." in _answer_to(FIRST_MESSAGE, out)
    requests = _message_requests(sim)
    assert [len(b["messages"]) for b in requests] == [1, 3]
    assert "(4 messages in the" in out


@pytest.mark.parametrize("script", ["system_prompt.py", "system_prompt_async.py"])
def test_system_prompt(script: str, sim: Any, tmp_path: Path) -> None:
    out = _run(script, sim, tmp_path)
    requests = _message_requests(sim)
    assert len(requests) == 2
    for body in requests:  # set once, sent with every request of the session
        assert "patient maths tutor" in str(body["system"])
    assert "What is a prime number?" in _answer_to(FIRST_MESSAGE, out)


@pytest.mark.parametrize("script", ["windowed_chat.py", "windowed_chat_async.py"])
def test_windowed_chat(script: str, sim: Any, tmp_path: Path) -> None:
    out = _run(script, sim, tmp_path)
    last = _message_requests(sim)[-1]
    # The window starts at a user turn inside the history, not at the session's first message...
    assert last["messages"][0]["role"] == "user"
    assert _first_user_text(last) == "Remember the word: bicycle."
    assert len(last["messages"]) == 5
    # ...and the simulator, answering from what it received, says so.
    assert "bicycle" in _answer_to(FIRST_MESSAGE, out)
    assert "apple" not in _answer_to(FIRST_MESSAGE, out)
    assert "(8 messages stored" in out  # the log keeps everything


@pytest.mark.parametrize("script", ["saving_history.py", "saving_history_async.py"])
def test_saving_history_continues_in_a_new_process(script: str, sim: Any, tmp_path: Path) -> None:
    first = _run(script, sim, tmp_path, "My name is Alice.")
    assert "(session alice: 0 messages so far)" in first
    assert "(saved: 2 messages" in first
    assert (tmp_path / "chats.db").exists()

    second = _run(script, sim, tmp_path, FIRST_MESSAGE)
    assert "(session alice: 2 messages so far)" in second
    assert "My name is Alice." in _answer_to(FIRST_MESSAGE, second)
    assert "(saved: 4 messages" in second
    assert _first_user_text(_message_requests(sim)[-1]) == "My name is Alice."


@pytest.mark.parametrize("script", ["streaming.py", "streaming_async.py"])
def test_streaming(script: str, sim: Any, tmp_path: Path) -> None:
    sim.reply_with("Once upon a time, a lighthouse keeper counted ships.")
    out = _run(script, sim, tmp_path)
    assert "Once upon a time, a lighthouse keeper counted ships." in out
    assert all(body.get("stream") is True for body in _message_requests(sim))
    assert "Tell me a short story about a lighthouse." in _answer_to(FIRST_MESSAGE, out)
    assert "(4 messages in the history)" in out


def test_every_example_is_tested_and_indexed() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    tested = {
        "guide_history_list.py",
        "history_list.py",
        "history_list_async.py",
        "system_prompt.py",
        "system_prompt_async.py",
        "windowed_chat.py",
        "windowed_chat_async.py",
        "saving_history.py",
        "saving_history_async.py",
        "streaming.py",
        "streaming_async.py",
        "webapp.py",  # tests/examples/test_webapp.py
    }
    assert set(scripts) == tested
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for script in scripts:
        assert script in readme, f"{script} is not listed in examples/README.md"
