"""Model aliases: `-m sonnet` picks the newest current Sonnet of the model table, as `llm` users expect."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anthropic
import pytest
from cli_helpers import Invoke

from claude_history.cli.options import resolve_model
from claude_history.models import DEPRECATED, MODELS, family_aliases


def test_each_family_alias_names_its_newest_current_model() -> None:
    aliases = family_aliases()
    assert aliases["sonnet"] == "claude-sonnet-5-5"
    assert aliases["opus"] == "claude-opus-5-5"
    assert aliases["haiku"] == "claude-haiku-5-5"
    for alias, model in aliases.items():
        assert model not in DEPRECATED and model.startswith(f"claude-{alias}-")
        assert model_version(model) == max(
            model_version(m) for m in MODELS if m.startswith(f"claude-{alias}-") and m not in DEPRECATED
            and model_version(m)
        )
    assert resolve_model("Sonnet") == aliases["sonnet"]
    assert resolve_model("claude-opus-4-6") == "claude-opus-4-6"  # a full id is taken as it is
    assert resolve_model("my-own-model") == "my-own-model"


def model_version(name: str) -> tuple[int, ...]:
    parts = name.split("-")[2:]
    return tuple(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else ()


def test_the_order_of_the_table_does_not_matter_and_deprecated_models_are_skipped() -> None:
    base = MODELS["claude-opus-4-6"]
    table = {
        name: dataclasses.replace(base, name=name)
        for name in ("claude-opus-4-1", "claude-opus-4-10", "claude-opus-4-9", "claude-opus-preview")
    }
    # 4-10 is newer than 4-9 (numbers, not strings), unless it is deprecated.
    assert family_aliases(table, frozenset())["opus"] == "claude-opus-4-10"
    assert family_aliases(table, frozenset({"claude-opus-4-10"}))["opus"] == "claude-opus-4-9"
    assert "opus" not in family_aliases(table, frozenset(table))


def test_the_deprecated_list_agrees_with_the_sdk() -> None:
    # Releases disagree: anthropic 2.0.0 still warns that claude-sonnet-4-5 retires on 2026-11-30, 2.17.0 (the
    # release models.DEPRECATED was checked against) no longer lists it. The newer release's list is the one to match.
    if _release(anthropic.__version__) < (2, 17):
        pytest.skip(f"anthropic {anthropic.__version__} predates the deprecation list models.DEPRECATED follows (2.17)")
    sdk = pytest.importorskip("anthropic._data.deprecated_models").DEPRECATED_MODELS
    known = {name for name in sdk if name in MODELS}
    assert known <= DEPRECATED, "the SDK deprecates models the table still offers as current"


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def test_models_shows_the_alias_map(invoke: Invoke) -> None:
    result = invoke(["models", "--json"])
    assert result.exit_code == 0, result.output
    rows: dict[str, dict[str, Any]] = {r["model"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert {r["alias"]: m for m, r in rows.items() if r["alias"]} == family_aliases()
    assert rows["claude-opus-4-5"]["deprecated"] and not rows["claude-opus-4-6"]["deprecated"]
    table = invoke(["models"]).stdout
    line = next(line for line in table.splitlines() if line.startswith("claude-sonnet-5-5 "))
    assert " sonnet " in line
    assert "claude-opus-4-5 (deprecated)" in table


def test_chat_takes_an_alias(invoke: Invoke, sim: Any, api_env: dict[str, str | None]) -> None:
    result = invoke(["chat", "-s", "aliased", "-m", "haiku"], input="Hello.\n", env=api_env)
    assert result.exit_code == 0, result.output
    assert sim.requests[-1]["body"]["model"] == family_aliases()["haiku"]
