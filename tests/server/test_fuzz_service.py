"""No request makes the service fail: whatever the method, route, headers, query and body, the answer is a
success or a 4xx in the API's error shape, never a 500 (after which uvicorn drops the keep-alive connection).
Found by fuzzing: ``count_tokens`` on a session with a message that is not an object, an import that is not
UTF-8."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MODEL, Service

SESSION_IDS = ["s1", "s2", "%00", "..", "a" * 300, "\xe9t\xe9", "s1%2Fx", "-", "_"]
ROUTES = [
    ("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions"), ("GET", "/v1/sessions/{id}"), ("PATCH", "/v1/sessions/{id}"),
    ("DELETE", "/v1/sessions/{id}"), ("GET", "/v1/sessions/{id}/messages"), ("POST", "/v1/sessions/{id}/messages"),
    ("POST", "/v1/sessions/{id}/undo"), ("POST", "/v1/sessions/{id}/rewind"), ("POST", "/v1/sessions/{id}/fork"),
    ("GET", "/v1/sessions/{id}/context"), ("GET", "/v1/sessions/{id}/usage"), ("GET", "/v1/usage"),
    ("GET", "/v1/search"), ("GET", "/v1/sessions/{id}/export"), ("POST", "/v1/sessions/import"),
    ("GET", "/v1/sessions/{id}/costs"),
]  # fmt: skip
FIELDS = ["model", "messages", "max_tokens", "system", "stream", "tools", "title", "tags", "metadata", "message",
          "content", "at", "to", "id"]  # fmt: skip
MESSAGES = [
    {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}, {"role": "user"},
    {"role": "user", "content": [{"type": "text"}]}, {"role": "user", "content": [{"type": "image", "source": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r"}]},
]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False),
    st.text(max_size=30), st.sampled_from(["", "\x00", "claude-sonnet-4-6", "a" * 3000, "\ud83d", "a \udc00 b"]),
)  # fmt: skip
values = st.recursive(
    st.one_of(scalars, st.sampled_from(MESSAGES)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)),
    max_leaves=8,
)
bodies = st.one_of(
    st.sampled_from([b"{", b"", b"null", b"[]", b"\xff\xfe", b'{"a":' * 50]),
    values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"model": st.sampled_from([MODEL, "nope", 5]), "max_tokens": st.sampled_from([50, 0, -5, "x"]),
         "messages": st.one_of(st.lists(st.sampled_from(MESSAGES), max_size=3), values)},
        optional={"stream": st.sampled_from([False, True, "x"]), "content": values, "at": values, "to": values},
    ).map(lambda v: json.dumps(v).encode()),
)  # fmt: skip
requests = st.fixed_dictionaries({
    "route": st.sampled_from(ROUTES),
    "id": st.sampled_from(SESSION_IDS),
    "session": st.one_of(st.none(), st.sampled_from([*SESSION_IDS, ""])),
    "version": st.one_of(st.none(), st.sampled_from(["1", "-1", "x", "99999999999999999999", ""])),
    "params": st.dictionaries(
        st.sampled_from(["limit", "cursor", "q", "owner", "tag", "updated_since", "metadata", "start", "stop", "id"]),
        st.sampled_from(["", "0", "-1", "x", "99999999999", "a:b", "%", "2026-01-01", "\xe9"]), max_size=2),
    "body": bodies,
})  # fmt: skip


@pytest.fixture
def seeded(service: Service) -> Service:
    """The service with one session holding a turn, for the routes that read one."""
    headers = {"x-api-key": service.keys["acme"], "x-session-id": "s1"}
    answer = httpx2.post(service.base_url + "/v1/messages", headers=headers, timeout=60,
                         json={"model": MODEL, "max_tokens": 50, "messages": [MESSAGES[0]]})  # fmt: skip
    assert answer.status_code == 200
    return service


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests)
def test_no_request_gets_a_server_error(seeded: Service, request: dict[str, Any]) -> None:
    service = seeded
    method, path = request["route"]
    headers: dict[str, Any] = {"x-api-key": service.keys["acme"], "content-type": "application/json"}
    if request["session"] is not None:
        headers["x-session-id"] = request["session"].encode("latin-1")
    if request["version"] is not None:
        headers["x-session-version"] = request["version"]
    with httpx2.Client(base_url=service.base_url, timeout=60) as http:
        answer = http.request(method, path.format(id=request["id"]), headers=headers, params=request["params"],
                              content=request["body"] if method in ("POST", "PATCH") else None)  # fmt: skip
    assert answer.status_code < 500, (method, path, answer.text[:500])
    if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/json"):
        error = answer.json()
        assert error["type"] == "error" and error["error"]["message"], error
