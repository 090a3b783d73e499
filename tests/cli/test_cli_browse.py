"""`sessions rename`, `sessions tag`, `cost`, `models`, and an example in every command's --help."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import click
import pytest
from cli_helpers import Invoke, assert_clean_failure

from claude_history import Chat, open_store
from claude_history.cli import cli
from claude_history.cli.spent import SPENT_KEY, priced
from claude_history.stores.base import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def two(sim: Any, store: Store) -> list[str]:
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url)
    for session_id, model in (("a", "claude-sonnet-4-6"), ("b", "claude-haiku-4-5")):
        Chat(client, model=model, store=store, session_id=session_id).send("hello")
    return ["a", "b"]


def test_rename_and_tag(invoke: Invoke, two: list[str], store: Store, store_url: str) -> None:
    assert invoke(["sessions", "rename", "a", "Greetings", "--store", store_url]).exit_code == 0
    assert store.get_session("a").title == "Greetings"
    result = invoke(["sessions", "tag", "a", "x", "y", "--store", store_url])
    assert result.exit_code == 0 and result.stdout.split() == ["x", "y"]
    result = invoke(["sessions", "tag", "--store", store_url, "a", "--", "-x"])
    assert result.exit_code == 0, result.output
    assert store.get_session("a").tags == ("y",)
    result = invoke(["sessions", "tag", "--store", store_url, "a", "--", "-nope"])  # not a tag of the session
    assert result.exit_code == 0 and result.stdout.split() == ["y"]
    assert "had no tag 'nope' to remove (the tags were: y)" in result.stderr
    result = invoke(["sessions", "rename", "a", "", "--store", store_url])  # an empty title takes it away
    assert result.exit_code == 0 and "has no title now" in result.stderr
    assert store.get_session("a").title is None
    assert_clean_failure(invoke(["sessions", "rename", "ghost", "T", "--store", store_url]), 1)
    assert [s.id for s in store.list_sessions() if s.id == "ghost"] == []


def test_cost_by_model_adds_up_the_replies_and_the_off_log_record(
    invoke: Invoke, two: list[str], store: Store, store_url: str
) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 100}
    store.update_session("a", metadata={SPENT_KEY: [{"model": "claude-sonnet-4-6", "usage": usage, "at": "2026"}]})
    result = invoke(["cost", "--by", "model", "--json", "--store", store_url])
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["claude-sonnet-4-6"]["replies"] == 2 and rows["claude-haiku-4-5"]["replies"] == 1
    reply = store.load("a").messages[1]
    expected = (priced(reply.model, reply.usage) or 0) + (priced("claude-sonnet-4-6", usage) or 0)
    assert rows["claude-sonnet-4-6"]["cost"] == pytest.approx(expected, abs=1e-6)


def test_models_lists_windows_and_prices(invoke: Invoke) -> None:
    result = invoke(["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["claude-sonnet-4-6"]["context_window"] > 0 and rows["claude-sonnet-4-6"]["input"] > 0


def _commands(group: click.Group, prefix: list[str]) -> Iterator[list[str]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, [*prefix, name])
        else:
            yield [*prefix, name]


@pytest.mark.parametrize("path", list(_commands(cli, [])), ids=" ".join)
def test_every_command_help_has_an_example(invoke: Invoke, path: list[str]) -> None:
    result = invoke([*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout and "claude-history " + path[0] in result.stdout
