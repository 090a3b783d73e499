"""Startup stays cheap: commands that do not call the API never import the SDK (its import alone takes seconds on
a slow machine; the figures are in bench/RESULTS.md, measured by bench/cli_startup.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys
from claude_history.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("SDK LOADED" if "anthropic" in sys.modules else "SDK NOT LOADED")
"""


@pytest.mark.parametrize("argv", [["--help"], ["sessions", "list"], ["sessions", "--help"], ["chat", "--help"]])
def test_commands_that_do_not_call_the_api_do_not_import_the_sdk(tmp_path: Path, argv: list[str]) -> None:
    store = f"sqlite:///{tmp_path / 'empty.db'}"
    from claude_history import open_store

    open_store(store).close()
    if argv == ["sessions", "list"]:
        argv = [*argv, "--store", store]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip().endswith("SDK NOT LOADED"), (result.stdout, result.stderr)
