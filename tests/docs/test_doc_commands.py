"""Every shell command of README.md and docs/ runs, as a reader would type it, against the simulator.

Commands of one page run in order in one empty directory (a later command may use what an earlier one stored),
each in bash with ``pipefail``, with a line of stdin for the chat. ``make`` commands run in the project root;
``make test`` is narrowed to one test file, or it would run this suite inside itself.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from claude_history.testing import Simulator
from waiting import STARTUP_CEILING

from .conftest import PAGES, ROOT, reader_env
from .doc_blocks import Block, blocks

NARROWED = {"make test": "make test TEST_WORKERS=0 PYTEST_ARGS='-q -p no:cacheprovider tests/test_versions.py'"}


def _commands(block: Block) -> list[str]:
    return [line for line in block.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _shell_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in ("sh", "bash") and not b.skip]


SHELL_PAGES = [p for p in PAGES if _shell_blocks(p)]


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        input="Hello there, how are you?\n",
        capture_output=True,
        text=True,
        timeout=STARTUP_CEILING,
    )


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", SHELL_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_commands_run(page: Path, sim: Simulator, tmp_path: Path, service_urls: dict[str, str]) -> None:
    env = reader_env(sim, tmp_path)
    ran = 0
    for block in _shell_blocks(page):
        for command in [*_commands(Block(page, block.line, "sh", block.setup)), *_commands(block)]:
            for placeholder, real in {**service_urls, **NARROWED}.items():
                command = command.replace(placeholder, real)
            result = _run(command, ROOT if command.startswith("make ") else tmp_path, env)
            where = f"{page.name}:{block.line}: {command}"
            assert result.returncode == 0, f"{where}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stdout + result.stderr, where
            ran += 1
    assert ran >= sum(len(_commands(b)) for b in _shell_blocks(page))


def test_the_readme_quick_start_is_the_two_commands() -> None:
    first = blocks(ROOT / "README.md")[0]
    assert first.language == "sh" and _commands(first) == ["make run", "make test"]
