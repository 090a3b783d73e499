"""Headers and errors every reply carries: ``request-id`` (also as ``request_id`` in error bodies), JSON errors for
every method and path, ``x-should-retry``, accepted API keys."""

from __future__ import annotations

import socket

import anthropic
import pytest

from claude_history.testing import Simulator

from .helpers import HEADERS, body, error_of, http, post, user

MODEL = "claude-sonnet-4-6"
HELLO = [user("Hello")]


def raw_request(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (a method or request line no HTTP client would send); (status, headers, body)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        headers = {k.lower(): v for k, v in headers.items()}
        length = 0 if request.startswith(b"HEAD ") else int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(lines[0].split()[1]), headers, rest


def test_every_error_body_carries_the_request_id_of_its_header(sim: Simulator) -> None:
    responses = [
        post(sim.base_url, {"model": MODEL}),  # validation: 400
        post(sim.base_url, body(*HELLO), path="/v1/nothing"),  # route: 404
        post(sim.base_url, body(*HELLO), headers={"x-api-key": ""}),  # auth: 401
        http().get(sim.base_url + "/v1/models/claude-none", headers=HEADERS),  # 404 on GET
    ]
    for response in responses:
        assert response.status_code >= 400
        assert response.json()["request_id"] == response.headers["request-id"]
        assert response.headers["request-id"].startswith("req_")
    assert len({r.headers["request-id"] for r in responses}) == len(responses)


def test_the_sdk_reads_the_request_id_of_an_error(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=[])
    assert info.value.request_id == info.value.response.headers["request-id"]
    assert info.value.body["request_id"] == info.value.request_id  # type: ignore[index]


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "PUT", "DELETE", "FOO", "HEAD"])
def test_every_method_gets_a_json_error_never_an_html_page(sim: Simulator, method: str) -> None:
    status, headers, data = raw_request(
        sim.base_url,
        f"{method} /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: test\r\nContent-Length: 0\r\n\r\n".encode(),
    )
    assert status == 405
    assert headers["content-type"] == "application/json"
    assert "request-id" in headers
    if method != "HEAD":  # a HEAD answer has headers only
        assert b"<html" not in data.lower()
        assert b'"type": "error"' in data and b"invalid_request_error" in data


def test_an_unparsable_request_line_gets_a_json_error(sim: Simulator) -> None:
    status, headers, data = raw_request(sim.base_url, b"GARBAGE\r\n\r\n")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert b'"type": "error"' in data


@pytest.mark.parametrize(
    ("status", "should_retry", "header"),
    [(529, None, "true"), (500, None, "true"), (429, None, "true"), (400, None, None), (529, False, "false")],
)
def test_faults_say_whether_to_retry(
    sim: Simulator, status: int, should_retry: bool | None, header: str | None
) -> None:
    sim.fail_next(status, should_retry=should_retry)
    response = post(sim.base_url, body(*HELLO))
    assert response.status_code == status
    assert response.headers.get("x-should-retry") == header


def test_x_should_retry_false_stops_the_sdk_retrying_a_529(sim: Simulator) -> None:
    client = sim.client(max_retries=3)
    sim.fail_next(529, times=3, should_retry=False)
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]
    assert len(sim.requests) == 1


def test_api_keys_accept_only_those_keys_on_every_path() -> None:
    with Simulator(api_keys={"sk-good"}) as sim:
        good = sim.client(api_key="sk-good", max_retries=0)
        assert good.messages.create(model=MODEL, max_tokens=10, messages=HELLO).type == "message"
        assert good.models.list().data
        bad = sim.client(api_key="sk-bad", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as info:
            bad.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
        assert info.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}  # type: ignore[index]
        with pytest.raises(anthropic.AuthenticationError):
            bad.models.list()
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.count_tokens(model=MODEL, messages=HELLO)
        bearer = sim.client(api_key=None, auth_token="sk-good", max_retries=0)
        assert bearer.messages.create(model=MODEL, max_tokens=10, messages=HELLO).type == "message"


def test_models_need_a_key_too(sim: Simulator) -> None:
    response = http().get(sim.base_url + "/v1/models", headers={"anthropic-version": "2026-10-21"})
    assert error_of(response) == (401, "authentication_error", "x-api-key header is required")
