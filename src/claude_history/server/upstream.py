"""The upstream client of the service's turns: ``messages.create`` as one plain HTTP POST.

A proxied turn that goes through the SDK's ``AsyncAnthropic.messages.create`` pays, on the service's one event
loop, for the SDK's request options, its request building and its response models, and then again to dump
those models back to JSON for the client; py-spy put the SDK's share above a tenth of the loop (bench/RESULTS.md
"Proxy"). ``RawUpstream`` posts the request's JSON over the service's aiohttp pool (``Http``) and keeps the reply as
it came: its bytes (sent on to the client unchanged when the turn took one call) and the parsed JSON, which the
turn core reads as it reads an SDK ``Message`` (content blocks and usage as dicts). Errors are the SDK's own
exception types, made by the SDK from the response, so the service answers them as before. Streams and token
counts still go through the SDK (``stream``, ``count_tokens``)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import anthropic
import httpx2

__all__ = ["Http", "RawReply", "RawUpstream"]

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

    def __init__(self, sdk: anthropic.AsyncAnthropic, http: Http) -> None:
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
        self._proxy = _env_proxy(self._url)
        self.messages = _Messages(self, sdk.messages, beta=False)
        self.beta = SimpleNamespace(messages=_Messages(self, sdk.beta.messages, beta=True))

    async def post(self, kwargs: dict[str, Any], beta: bool) -> RawReply:
        body = {k: v for k, v in kwargs.items() if k not in _OPTIONS}
        body.update(kwargs.get("extra_body") or {})
        headers = {**self._headers, **(kwargs.get("extra_headers") or {})}
        if kwargs.get("betas"):
            headers["anthropic-beta"] = ",".join(kwargs["betas"])
        params = {**({"beta": "true"} if beta else {}), **(kwargs.get("extra_query") or {})}
        url = self._url + ("?" + urlencode(params) if params else "")
        try:
            data = json.dumps(body).encode()
            async with self._http.session().post(url, data=data, headers=headers, proxy=self._proxy) as response:
                raw = await response.read()
                status, received = response.status, list(response.headers.items())
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise anthropic.APITimeoutError(request=httpx2.Request("POST", url)) from exc
        except aiohttp.ClientError as exc:
            raise anthropic.APIConnectionError(request=httpx2.Request("POST", url)) from exc
        if not 200 <= status < 300:
            # The SDK makes its own exception from the response, so the service answers it as any SDK error.
            failed = httpx2.Response(status, headers=received, content=raw, request=httpx2.Request("POST", url))
            raise self._sdk._make_status_error_from_response(failed)
        return RawReply(raw, json.loads(raw), dict(received).get("request-id"))


class Http:
    """The service's upstream connection pool (aiohttp), made in the event loop on first use.

    aiohttp rather than the SDK's ``httpx2`` for the turns' POSTs: its C parser and plain asyncio transport cost
    about a third of the CPU per request (0.33 vs 1.16 ms against the simulator, bench/RESULTS.md "Proxy"),
    on the loop every proxied turn shares. The SDK offers the same transport (``DefaultAioHttpClient``).
    ``timeout`` applies to connecting and to each read, as the SDK's timeout does (not to the whole reply)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # As the SDK's own pool: a service with many sessions in flight keeps its upstream connections.
            connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=30)
            # trust_env=False: aiohttp would read the proxy variables and ~/.netrc again on every request (7% of
            # the loop in a profile); the proxy the environment names is looked up once (``_env_proxy``).
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), as the
    SDK's client honours them; None for none."""
    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)
