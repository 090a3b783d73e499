"""Shared test configuration. Fixtures of each area live in that area's own conftest.py."""

from __future__ import annotations

import os
import socket

import pytest

pytest_plugins = ["claude_history.testing.pytest_plugin"]

REQUIRE_SERVICES = os.environ.get("CLAUDE_HISTORY_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("CLAUDE_HISTORY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CLAUDE_HISTORY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip when a service is down, unless CI demands the services (then fail loudly)."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and CLAUDE_HISTORY_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> str:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL
