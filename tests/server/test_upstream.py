"""The service's upstream client honours the proxy the environment names, as the SDK's does."""

from __future__ import annotations

import pytest

from claude_history.server.upstream import _env_proxy


def test_the_environments_proxy_is_used_for_the_upstream_unless_no_proxy_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert _env_proxy("https://api.anthropic.com/v1/messages") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _env_proxy("https://api.anthropic.com/v1/messages") == "http://proxy.internal:3128"
    assert _env_proxy("http://127.0.0.1:9000/v1/messages") is None  # no proxy named for plain http
    monkeypatch.setenv("NO_PROXY", "anthropic.com")
    assert _env_proxy("https://api.anthropic.com/v1/messages") is None
