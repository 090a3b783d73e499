"""The official Node SDK (``@anthropic-ai/sdk``, installed by test_node_sdk's ``node`` fixture) against the
stateful proxy: a multi-turn conversation sending only new messages, streaming, a tool round trip, a 409 and
another tenant's 404; and examples/node/proxy_chat.mjs run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_history.server import ServerConfig, create_app
from claude_history.server.running import BackgroundServer
from claude_history.server.tenants import create_key
from claude_history.stores import open_store
from claude_history.testing import Simulator

from . import test_node_sdk

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent.parent / "examples" / "node" / "proxy_chat.mjs"
node = test_node_sdk.node  # the fixture: node, with the SDK installed in tests/node
pytestmark = test_node_sdk.pytestmark  # the same pytest-xdist worker


class Proxy:
    def __init__(self, base_url: str, store_url: str, keys: dict[str, str]) -> None:
        self.base_url, self.store_url, self.keys = base_url, store_url, keys

    def stored(self, session: str) -> list[dict[str, Any]]:
        return open_store(self.store_url).load(f"acme/{session}").message_params()


@pytest.fixture
def proxy(sim: Simulator, tmp_path: Path) -> Iterator[Proxy]:
    store_url = f"sqlite:///{tmp_path / 'node.db'}"
    store = open_store(store_url)
    keys = {tenant: create_key(store, tenant)[0] for tenant in ("acme", "globex")}
    store.close()
    config = ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test")
    with BackgroundServer(create_app(config)) as server:
        yield Proxy(server.base_url, store_url, keys)


def run(node: str, scenario: str, proxy: Proxy) -> dict[str, Any]:
    result = subprocess.run(
        [node, str(HERE / "proxy_scenarios.mjs"), scenario, proxy.base_url, proxy.keys["acme"], proxy.keys["globex"]],
        capture_output=True, text=True, timeout=120, cwd=HERE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_a_node_client_sending_only_new_messages_keeps_a_conversation(node: str, proxy: Proxy, sim: Simulator) -> None:
    replies = run(node, "multiTurn", proxy)["replies"]
    assert [r["stop_reason"] for r in replies] == ["end_turn"] * 3
    sent = sim.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[0]["content"] in ("Hello from Node", [{"type": "text", "text": "Hello from Node"}])
    stored = proxy.stored("node-chat")
    assert [m["role"] for m in stored] == ["user", "assistant"] * 3
    assert stored[-1]["content"] == replies[-1]["content"]


def test_a_node_stream_is_relayed_event_for_event_and_stored(node: str, proxy: Proxy) -> None:
    out = run(node, "stream", proxy)
    assert out["text"] and out["message"]["content"][0]["text"] == out["text"]
    assert out["events"][0] == "message_start" and out["events"][-1] == "message_stop"
    assert proxy.stored("node-stream")[1]["content"] == out["message"]["content"]


def test_a_node_tool_round_trip_sends_only_the_results(node: str, proxy: Proxy, sim: Simulator) -> None:
    out = run(node, "tools", proxy)
    assert out["first"]["stop_reason"] == "tool_use" and out["second"]["stop_reason"] == "end_turn"
    assert "Sunny, 21 C" in out["second"]["content"][0]["text"]
    sent = sim.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[2]["content"][0]["type"] == "tool_result"
    assert [m["role"] for m in proxy.stored("node-tools")] == ["user", "assistant"] * 2


def test_node_sees_a_409_and_another_tenants_404_as_its_own_errors(node: str, proxy: Proxy) -> None:
    conflict = run(node, "conflict", proxy)["error"]
    assert (conflict["name"], conflict["status"], conflict["type"]) == ("ConflictError", 409, "conflict_error")
    missing = run(node, "otherTenant", proxy)["error"]
    assert (missing["name"], missing["status"], missing["type"]) == ("NotFoundError", 404, "not_found_error")


def test_the_node_example_runs(node: str, proxy: Proxy, tmp_path: Path) -> None:
    # Run from a folder of its own that sees the test-only SDK install, as a user's project would have it.
    (tmp_path / "node_modules").symlink_to(HERE / "node_modules")
    script = tmp_path / EXAMPLE.name
    script.write_text(EXAMPLE.read_text())
    env = {**os.environ, "CLAUDE_HISTORY_URL": proxy.base_url, "CLAUDE_HISTORY_KEY": proxy.keys["acme"],
           "SESSION_ID": "example"}  # fmt: skip
    result = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "> What is the capital of France?" in result.stdout and "> And its population?" in result.stdout
    assert [m["role"] for m in proxy.stored("example")] == ["user", "assistant"] * 2
