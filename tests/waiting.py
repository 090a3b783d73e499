"""Start-up waits for tests: poll for readiness under one generous ceiling, so a busy machine makes a test slower,
never red. A ceiling is reached only when something is really broken (then the failure says what was awaited)."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, TypeVar

import pytest

T = TypeVar("T")

# Seconds; a loaded 2-core CI machine has been seen to take 20 s to start a Python process that imports the SDK.
STARTUP_CEILING = float(os.environ.get("CLAUDE_HISTORY_TEST_STARTUP_CEILING", "180"))


def wait_until(check: Callable[[], T | None], what: str, ceiling: float = STARTUP_CEILING) -> T:
    """Call ``check`` until it returns something other than None or False; fail naming ``what`` at the ceiling."""
    deadline = time.monotonic() + ceiling
    delay = 0.02
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {ceiling:g} s waiting for {what}", pytrace=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def read_line(stream: IO[str], what: str, ceiling: float = STARTUP_CEILING) -> str:
    """The next line of a child's output, waiting at most ``ceiling`` seconds (``readline`` alone waits forever)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=ceiling)
    except queue.Empty:
        pytest.fail(f"gave up after {ceiling:g} s waiting for {what}", pytrace=False)


def wait_exit(process: subprocess.Popen[str], what: str, ceiling: float = STARTUP_CEILING) -> int:
    try:
        return process.wait(timeout=ceiling)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gave up after {ceiling:g} s waiting for {what}", pytrace=False)
