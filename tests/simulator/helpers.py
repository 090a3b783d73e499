"""Helpers for the simulator tests: raw HTTP calls and real images."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.connection import TRANSPORT_ERRORS, connection_failure
from claude_history.testing import Simulator
from waiting import read_line, wait_exit

HEADERS = {"x-api-key": "test", "anthropic-version": "2026-10-21", "content-type": "application/json"}
MODEL = "claude-sonnet-4-6"


_HTTP: httpx2.Client | None = None


def http() -> httpx2.Client:
    """One shared client: building a client (and its TLS context) per call costs tens of milliseconds."""
    global _HTTP
    if _HTTP is None:
        _HTTP = httpx2.Client(timeout=30, verify=False, trust_env=False)
    return _HTTP


@contextmanager
def raises_cut_connection() -> Iterator[None]:
    """The block must fail the way a connection cut after the request went out fails, in any SDK release: up to
    anthropic 2.16 the HTTP library's own error escapes a stream, 2.17 wraps it in ``APIConnectionError``."""
    with pytest.raises((anthropic.APIConnectionError, *TRANSPORT_ERRORS)) as info:
        yield
    assert connection_failure(info.value) == "cut", repr(info.value)


def post(base_url: str, body: Any, path: str = "/v1/messages", **kwargs: Any) -> httpx2.Response:
    """POST a JSON body (or raw bytes via ``content=``) the way the SDK would, without the SDK's own
    checks."""
    headers = {**HEADERS, **kwargs.pop("headers", {})}
    if "content" in kwargs:
        return http().post(base_url + path, headers=headers, **kwargs)
    return http().post(base_url + path, headers=headers, json=body, **kwargs)


def error_of(response: httpx2.Response) -> tuple[int, str, str]:
    """(status, error type, message) of an API error response; fails if it is not the API's error shape."""
    body = response.json()
    assert body["type"] == "error", body
    return response.status_code, body["error"]["type"], body["error"]["message"]


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "messages": list(messages)}
    out.update(fields)
    return out


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def image_block(width: int, height: int, fmt: str = "PNG", media_type: str | None = None) -> dict[str, Any]:
    data = base64.b64encode(image_bytes(width, height, fmt)).decode()
    media = media_type or f"image/{fmt.lower()}"
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


# One simulator and client per test module, for modules of many short stateless requests (validation rules):
# import both into the module (``from .helpers import shared_client, shared_sim``) to use them as ``sim`` and
# ``client`` there.
@pytest.fixture(scope="module", name="sim")
def shared_sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(scope="module", name="client")
def shared_client(sim: Simulator) -> anthropic.Anthropic:
    return sim.client(max_retries=0)


@contextmanager
def standalone_simulator(*args: str) -> Iterator[str]:
    """``python -m claude_history.testing --port 0 ARGS`` as a user starts it; yields its base URL. Start-up and
    shutdown wait under the tests' one readiness ceiling, so a busy machine is slower, never red."""
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield read_line(process.stdout, "the standalone simulator to print its URL").strip()
    finally:
        process.terminate()
        wait_exit(process, "the standalone simulator to stop")
