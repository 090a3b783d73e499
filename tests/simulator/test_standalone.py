"""``python -m claude_history.testing``: prints its base URL, serves the SDK, stops on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from typing import Any

import anthropic
import pytest

from waiting import STARTUP_CEILING, read_line, wait_exit


@pytest.mark.timeout(3 * STARTUP_CEILING)
def test_standalone_server_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = read_line(process.stdout, "the simulator to print its URL").strip()
        assert base_url.startswith("http://127.0.0.1:")
        client = anthropic.Anthropic(api_key="test", base_url=base_url, max_retries=0)
        reply = client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "Repeat after me: up"}],
        )
        assert reply.content[0].type == "text"
        assert reply.content[0].text == "up"
        client.close()
        process.send_signal(signal.SIGINT)
        assert wait_exit(process, "the simulator to stop on SIGINT") == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(2 * STARTUP_CEILING)
def test_standalone_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "claude_history.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=STARTUP_CEILING,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.timeout(3 * STARTUP_CEILING)
def test_reply_delay_holds_every_messages_reply() -> None:
    """``--reply-delay S``: a benchmark's upstream that takes time, as a model's time to first token does."""
    delay = 0.3
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.testing", "--port", "0", "--reply-delay", str(delay)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        base_url = read_line(process.stdout, "the simulator to print its URL").strip()
        client = anthropic.Anthropic(api_key="test", base_url=base_url, max_retries=0)
        arguments: dict[str, Any] = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
        began = time.monotonic()
        client.messages.create(max_tokens=10, **arguments)
        assert time.monotonic() - began >= delay  # a lower bound only: a busy machine is slower, never faster
        began = time.monotonic()
        with client.messages.stream(max_tokens=10, **arguments) as stream:
            stream.until_done()
        assert time.monotonic() - began >= delay
        client.close()
    finally:
        process.kill()
        process.wait()
