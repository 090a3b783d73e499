"""Every Python block of README.md and docs/ runs against the simulator, as a reader would paste it.

Each page runs in a fresh interpreter, in an empty directory, with only the SDK's own variables pointing at the
simulator. Blocks that are files of the reader's own (a conftest.py, a test module) are written there and run
with pytest. Deliberately partial blocks are marked ``<!-- doc-test: skip: REASON -->`` and stay few.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from claude_history.testing import Simulator

from .conftest import PAGES, ROOT, reader_env
from .doc_blocks import python_blocks

RUNNER = Path(__file__).with_name("doc_blocks.py")
PYTHON_PAGES = [p for p in PAGES if python_blocks(p)]


@pytest.mark.services
@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(
    page: Path, sim: Simulator, tmp_path: Path, service_urls: dict[str, str]
) -> None:
    env = reader_env(sim, tmp_path)
    args = [arg for pair in service_urls.items() for arg in pair]
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(page), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runnable = [b for b in python_blocks(page) if not b.skip]
    ran = sum(1 for b in runnable if not b.file)
    wrote = len(runnable) - ran
    assert result.stdout.strip().splitlines()[-1] == f"ran {ran}, wrote {wrote}"
    if wrote:  # the reader's own test files, run the way the reader runs them
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        )
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert " passed" in tests.stdout


def test_partial_blocks_are_few_and_say_why() -> None:
    every = [b for page in PAGES for b in python_blocks(page)]
    skipped = [b for b in every if b.skip]
    assert all(b.skip and b.skip != "skip" for b in skipped), "a skipped block must give its reason"
    assert len(skipped) * 5 <= len(every), [f"{b.path.name}:{b.line}" for b in skipped]
