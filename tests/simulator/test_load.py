"""The standalone simulator under load: 100 concurrent clients see no connection error (a real listen backlog, a
bounded pool of workers that hands connections on), and the request log stays bounded."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx2
import pytest

from claude_history.testing import Simulator

from .helpers import HEADERS, body, post, standalone_simulator, user

CLIENTS = 100
# The URLs are plain http, but every httpx client builds a TLS context unless given one (about 30 ms of CPU each,
# 400 of them here): one shared context keeps the test about connections, not certificate loading.
TLS = ssl.create_default_context()


@pytest.fixture
def standalone() -> Iterator[str]:
    """``python -m claude_history.testing --port 0`` as a user starts it; its base URL."""
    with standalone_simulator() as base_url:
        yield base_url


def hammer(base_url: str, clients: int, requests: int, new_connections: bool) -> list[str]:
    """``clients`` threads, all connecting at once, each sending ``requests`` requests; the failures seen."""
    failures: list[str] = []
    start = threading.Barrier(clients)
    payload = body(user("Hello under load"), max_tokens=50)

    def one() -> None:
        http = httpx2.Client(timeout=60, trust_env=False, verify=TLS, limits=httpx2.Limits(max_keepalive_connections=1))
        try:
            start.wait()
            for _ in range(requests):
                try:
                    if new_connections:
                        response = httpx2.post(
                            base_url + "/v1/messages", json=payload, headers=HEADERS, timeout=60, verify=TLS
                        )
                    else:
                        response = http.post(base_url + "/v1/messages", json=payload, headers=HEADERS)
                    if response.status_code != 200:
                        failures.append(f"HTTP {response.status_code}")
                except httpx2.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            http.close()

    threads = [threading.Thread(target=one) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return failures


@pytest.mark.slow
def test_100_concurrent_clients_connecting_at_once_see_no_connection_error(standalone: str) -> None:
    assert hammer(standalone, CLIENTS, 3, new_connections=True) == []


@pytest.mark.slow
def test_more_keep_alive_clients_than_workers_are_all_served() -> None:
    """With 8 workers and 100 clients that keep their connections open, waiting connections get a worker in
    turn (a busy worker closes its idle keep-alive connection): nobody waits for an idle timeout."""
    with Simulator(workers=8) as sim:
        assert hammer(sim.base_url, CLIENTS, 3, new_connections=False) == []
        assert len(sim.requests) == 100  # keep_requests' default bounds the log


def test_the_request_log_keeps_only_the_newest(sim: Simulator) -> None:
    for n in range(130):
        post(sim.base_url, body(user(f"message {n}"), max_tokens=20))
    kept = sim.requests
    assert len(kept) == 100
    assert kept[-1]["body"]["messages"][0]["content"] == "message 129"
    assert kept[0]["body"]["messages"][0]["content"] == "message 30"


def test_keep_requests_none_keeps_all_and_zero_keeps_none() -> None:
    with Simulator(keep_requests=None) as everything, Simulator(keep_requests=0) as nothing:
        for n in range(105):
            post(everything.base_url, body(user(f"m{n}"), max_tokens=20))
            if n < 3:
                post(nothing.base_url, body(user(f"m{n}"), max_tokens=20))
        assert len(everything.requests) == 105
        assert nothing.requests == []
    with pytest.raises(ValueError, match="keep_requests"):
        Simulator(keep_requests=-1)


def test_the_command_line_takes_keep_requests() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "claude_history.testing", "--keep-requests", "-3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "--keep-requests: must be 0 or more, got -3" in bad.stderr
    assert "Traceback" not in bad.stderr
