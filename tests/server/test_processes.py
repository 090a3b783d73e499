"""`claude-history serve` as real processes: the CLI's keys, the simulator by default, and several servers (and
`--workers 2`) on one PostgreSQL or one Redis with clients racing on the same sessions."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest
from click.testing import CliRunner

from claude_history.cli.main import cli
from claude_history.stores import open_store
from claude_history.testing import Simulator
from waiting import wait_until

MODEL = "claude-sonnet-4-6"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, store_url: str, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stopped: str | None = None  # stderr, once stopped
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "claude_history.cli", "serve", "--store", store_url, "--port", str(self.port),
             *args],
            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        try:
            wait_until(self._ready, f"claude-history serve on port {self.port}")
        except BaseException:
            print(self.stop(), file=sys.stderr)
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("serve exited before it was ready")
        try:
            return httpx2.get(self.base_url + "/readyz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def stop(self) -> str:
        if self.stopped is not None:  # once: a server that failed to start is stopped again by its test
            return self.stopped
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        self.stopped = err
        return err


def _key(store_url: str, owner: str) -> str:
    result = CliRunner().invoke(cli, ["keys", "create", "--owner", owner, "--store", store_url])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_keys_are_created_listed_and_revoked_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    key = _key(url, "acme")
    listed = CliRunner().invoke(cli, ["keys", "list", "--store", url])
    assert "acme" in listed.stdout and key not in listed.stdout
    key_id = listed.stdout.split()[0]
    revoked = CliRunner().invoke(cli, ["keys", "revoke", key_id, "--store", url])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert "no keys" in CliRunner().invoke(cli, ["keys", "list", "--store", url]).stdout
    assert CliRunner().invoke(cli, ["keys", "revoke", key_id, "--store", url]).exit_code == 1
    bad = CliRunner().invoke(cli, ["keys", "create", "--owner", "no spaces", "--store", url])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_serve_without_a_key_uses_the_simulator_and_stops_gracefully(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    key = _key(url, "acme")
    served = Served(url)
    try:
        client = anthropic.Anthropic(api_key=key, base_url=served.base_url, max_retries=0,
                                     default_headers={"x-session-id": "cli"})  # fmt: skip
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
        assert httpx2.get(served.base_url + "/healthz").json() == {"status": "ok"}
    finally:
        err = served.stop()
    assert "SIMULATED REPLIES" in err
    assert '"request_id"' in err and key not in err
    # uvicorn re-raises the SIGTERM it handled once the shutdown is complete
    assert served.process.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in err
    assert open_store(url).get_session("acme/cli").message_count == 2


@pytest.fixture(params=["postgresql", "redis"])
def shared_url(request: pytest.FixtureRequest) -> Iterator[str]:
    tag = "srv" + uuid.uuid4().hex[:10]
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_url")
        yield f"{postgres}?schema={tag}"
        import psycopg

        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
    else:
        redis_url = request.getfixturevalue("redis_url")
        yield f"{redis_url}?prefix={tag}:"
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_two_servers_and_two_workers_on_one_store_lose_and_double_no_turn(shared_url: str, sim: Simulator) -> None:
    key = _key(shared_url, "acme")
    env = {"ANTHROPIC_API_KEY": "test"}
    # Both start at once (each takes seconds to import the service); neither is used before both are ready.
    servers = [Served(shared_url, "--upstream", sim.base_url, env=env, wait=False),
               Served(shared_url, "--upstream", sim.base_url, "--workers", "2", env=env, wait=False)]  # fmt: skip
    committed: list[str] = []
    conflicts: list[int] = []
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        for turn in range(4):
            text = f"client {n} turn {turn}"
            for _ in range(50):
                base = servers[(n + turn) % 2].base_url
                client = anthropic.Anthropic(api_key=key, base_url=base, max_retries=0,
                                             default_headers={"x-session-id": "shared"})  # fmt: skip
                try:
                    client.messages.create(model=MODEL, max_tokens=20,
                                           messages=[{"role": "user", "content": text}])  # fmt: skip
                except anthropic.ConflictError:
                    with lock:
                        conflicts.append(n)
                    continue
                finally:
                    client.close()
                with lock:
                    committed.append(text)
                break

    try:
        for server in servers:
            server.wait_ready()
        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for server in servers:
            server.stop()
    store = open_store(shared_url)
    data = store.load("acme/shared")
    store.close()
    users = [m.message["content"] for m in data.messages if m.role == "user"]
    assert sorted(users) == sorted(committed)  # every acknowledged turn once, nothing unacknowledged
    assert len(committed) == 16
    assert [m.role for m in data.messages] == ["user", "assistant"] * 16
