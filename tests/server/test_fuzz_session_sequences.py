"""Random sequences of what clients do to sessions (turns through the proxy, with tools or streamed, whole
histories resent, stale versions, undo, rewind, fork, delete, the sessions API's turns) keep every session
valid and continuable: no request gets a 5xx, every stored log is one the API accepts (a reply waiting for
tool results aside), and after any sequence each session takes its pending tool results and then a new turn.
Found by it: a rewind or fork cut inside a turn left a session every later turn of which was a 400."""

from __future__ import annotations

import uuid
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import SessionNotFound
from claude_history.history import validate
from claude_history.stores import open_store

from .conftest import MODEL, Service

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"name": "get_weather", "description": "The weather in a city", "input_schema": CITY}]
KINDS = ["turn", "tools", "results", "resend", "stale", "undo", "rewind", "fork", "api", "stream", "delete"]
steps = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2), st.integers(0, 40)), min_size=4, max_size=20)


def _pending(log: list[dict[str, Any]]) -> list[str]:
    """The ids of the tool calls the last reply waits for."""
    last = log[-1] if log else None
    if not last or last["role"] != "assistant" or not isinstance(last["content"], list):
        return []
    return [b["id"] for b in last["content"] if b.get("type") == "tool_use"]


def _results(ids: list[str]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": "sunny"} for i in ids]}


class Clients:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.http = httpx2.Client(base_url=service.base_url, timeout=60)
        self.headers = {"x-api-key": service.keys["acme"], "anthropic-version": "2023-06-01"}
        self.store = open_store(service.store_url)

    def log(self, sid: str) -> list[dict[str, Any]] | None:
        try:
            return self.store.load("acme/" + sid).message_params()
        except SessionNotFound:
            return None

    def proxy(self, sid: str, messages: list[dict[str, Any]], **extra: Any) -> httpx2.Response:
        headers = {**self.headers, "x-session-id": sid, **extra.pop("headers", {})}
        return self.http.post("/v1/messages", headers=headers,
                              json={"model": MODEL, "max_tokens": 100, "messages": messages, **extra})  # fmt: skip

    def step(self, kind: str, sid: str, other: str, n: int) -> httpx2.Response | None:
        log = self.log(sid) or []
        pending = _pending(log)
        new = _results(pending) if pending else {"role": "user", "content": f"weather in Paris? ({n})"}
        if kind in ("turn", "tools", "stream", "stale"):
            extra: dict[str, Any] = {"tools": TOOLS} if kind == "tools" or n % 3 == 0 else {}
            if kind == "stream":
                extra["stream"] = True
            if kind == "stale":
                extra["headers"] = {"x-session-version": str(len(log) + 1 + n)}
            return self.proxy(sid, [new], **extra)
        if kind == "results":
            return self.proxy(sid, [_results(pending or [f"toolu_{n}"])], tools=TOOLS)
        if kind == "resend":
            return self.proxy(sid, [*log, new], tools=TOOLS)
        if kind == "undo":
            return self.http.post(f"/v1/sessions/{sid}/undo", headers=self.headers)
        if kind == "rewind":
            return self.http.post(f"/v1/sessions/{sid}/rewind", headers=self.headers, json={"to": n % (len(log) + 2)})
        if kind == "fork":
            return self.http.post(f"/v1/sessions/{sid}/fork", headers=self.headers,
                                  json={"at": n % (len(log) + 2), "id": other})  # fmt: skip
        if kind == "api":
            return self.http.post(f"/v1/sessions/{sid}/messages", headers=self.headers,
                                  json={"content": new["content"], **({"tools": TOOLS} if n % 2 else {})})  # fmt: skip
        return self.http.delete(f"/v1/sessions/{sid}", headers=self.headers) if n % 4 == 0 else None

    def check_valid(self, sid: str) -> None:
        log = self.log(sid)
        if log:
            validate(log[:-1] if _pending(log) else log, for_sending=False)


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=steps)
def test_sessions_stay_valid_and_continuable(service: Service, sequence: list[tuple[str, int, int]]) -> None:
    clients = Clients(service)
    names = [f"f{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    try:
        for kind, which, n in sequence:
            sid, other = names[which], names[(which + 1 + n) % 3]
            answer = clients.step(kind, sid, other, n)
            if answer is not None:
                answer.read()
                assert answer.status_code < 500, (kind, answer.text[:300])
            for name in names:
                clients.check_valid(name)
        for sid in names:  # every session goes on: its pending tool results, then a new turn
            log = clients.log(sid)
            if log is None:
                continue
            if _pending(log):
                done = clients.proxy(sid, [_results(_pending(log))])
                assert done.status_code == 200, done.text[:300]
            done = clients.proxy(sid, [{"role": "user", "content": "and tomorrow?"}])
            if done.status_code == 200 and _pending(clients.log(sid) or []):
                continue  # a tool call again (no tools were offered, but the stored history has them)
            assert done.status_code == 200, (sid, [m["role"] for m in log], done.text[:300])
    finally:
        clients.http.close()
        clients.store.close()
