"""Fixtures for driving the `claude-history` command in-process with click's CliRunner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke
from click.testing import CliRunner, Result

from claude_history.cli import cli

# Environment variables that would let the SDK find real credentials or another store: always cleared.
CLEARED_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "ANTHROPIC_ORGANIZATION_ID",
    "ANTHROPIC_CONFIG_DIR",
    "CLAUDE_HISTORY_STORE",
    "CLAUDE_HISTORY_MODEL",
)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chats.db'}"


@pytest.fixture
def base_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """No credentials, no store; an empty HOME, so no SDK profile or default store of this machine is used."""
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapping of ids in assertions
    return {}


@pytest.fixture
def invoke(base_env: dict[str, str | None]) -> Invoke:
    """Run the CLI in-process: ``invoke(["sessions", "list"], input="...", env={...})``."""

    def run(args: Sequence[str], *, input: Any = None, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli, list(args), input=input, env={**base_env, **(env or {})}, catch_exceptions=True
        )

    return run


@pytest.fixture
def api_env(sim: Any, store_url: str) -> dict[str, str | None]:
    """The environment of a user with a key, pointed at the simulator, with a private store."""
    return {
        "ANTHROPIC_API_KEY": "test",
        "ANTHROPIC_BASE_URL": sim.base_url,
        "CLAUDE_HISTORY_STORE": store_url,
    }
