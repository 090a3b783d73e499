"""The upstream client of the service's turns: ``messages.create`` as one plain HTTP POST.

A proxied turn that goes through the SDK's ``AsyncAnthropic.messages.create`` pays, on the service's one event
loop, for the SDK's request options, its request building and its response models, and then again to dump
those models back to JSON for the client; py-spy put the SDK's share above a tenth of the loop (bench/RESULTS.md
"Proxy"). ``RawUpstream`` posts the request's JSON over the service's ``httpx2`` client and keeps the reply as
it came: its bytes (sent on to the client unchanged when the turn took one call) and the parsed JSON, which the
turn core reads as it reads an SDK ``Message`` (content blocks and usage as dicts). Errors are the SDK's own
exception types, made by the SDK from the response, so the service answers them as before. Streams and token
counts still go through the SDK (``stream``, ``count_tokens``)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx2

__all__ = ["RawReply", "RawUpstream"]

# What the SDK sends for these keywords instead of putting them in the body.
_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "betas"})


class RawReply:
    """A Messages API reply: ``raw`` (its bytes, unchanged) and ``data`` (its JSON), with the attributes of the
    SDK's ``Message`` the library reads."""

    __slots__ = ("_request_id", "data", "raw")

    def __init__(self, raw: bytes, data: dict[str, Any], request_id: str | None) -> None:
        self.raw = raw
        self.data = data
        self._request_id = request_id

    @property
    def content(self) -> list[dict[str, Any]]:
        return list(self.data.get("content") or [])

    @property
    def usage(self) -> dict[str, Any]:
        return dict(self.data.get("usage") or {})

    @property
    def stop_reason(self) -> str | None:
        return self.data.get("stop_reason")

    @property
    def model(self) -> str | None:
        return self.data.get("model")

    def model_dump(self, **_: Any) -> dict[str, Any]:
        """The reply's JSON as it came (the same object: do not change it)."""
        return self.data


class _Messages:
    """``messages`` (or ``beta.messages``): ``create`` by plain HTTP; ``stream`` and ``count_tokens`` the SDK's."""

    def __init__(self, upstream: RawUpstream, sdk: Any, beta: bool) -> None:
        self._upstream = upstream
        self._sdk = sdk
        self._beta = beta
        self.stream = sdk.stream
        self.count_tokens = sdk.count_tokens

    async def create(self, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return await self._sdk.create(**kwargs)
        return await self._upstream.post(kwargs, self._beta)


class RawUpstream:
    """Quacks like ``AsyncAnthropic`` for ``AsyncChat``: ``messages`` and ``beta.messages``."""

    def __init__(self, sdk: anthropic.AsyncAnthropic, http: httpx2.AsyncClient) -> None:
        self._sdk = sdk
        self._http = http
        self._url = str(sdk.base_url).rstrip("/") + "/v1/messages"
        version = sdk.default_headers.get("anthropic-version")
        self._headers = {
            "anthropic-version": version if isinstance(version, str) else "2023-06-01",
            "content-type": "application/json",
            "accept": "application/json",
        }
        if sdk.api_key:
            self._headers["x-api-key"] = sdk.api_key
        self.messages = _Messages(self, sdk.messages, beta=False)
        self.beta = SimpleNamespace(messages=_Messages(self, sdk.beta.messages, beta=True))

    async def post(self, kwargs: dict[str, Any], beta: bool) -> RawReply:
        body = {k: v for k, v in kwargs.items() if k not in _OPTIONS}
        body.update(kwargs.get("extra_body") or {})
        headers = {**self._headers, **(kwargs.get("extra_headers") or {})}
        if kwargs.get("betas"):
            headers["anthropic-beta"] = ",".join(kwargs["betas"])
        params = {**({"beta": "true"} if beta else {}), **(kwargs.get("extra_query") or {})}
        request = self._http.build_request(
            "POST", self._url, content=json.dumps(body).encode(), headers=headers, params=params or None
        )
        try:
            response = await self._http.send(request)
        except httpx2.TimeoutException as exc:
            raise anthropic.APITimeoutError(request=request) from exc
        except httpx2.HTTPError as exc:
            raise anthropic.APIConnectionError(request=request) from exc
        if not response.is_success:
            raise self._sdk._make_status_error_from_response(response)
        raw = response.content
        return RawReply(raw, json.loads(raw), response.headers.get("request-id"))
