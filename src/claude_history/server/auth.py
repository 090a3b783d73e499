"""Who is calling: the tenant of the request's key, checked against the store (hashed), and its rate limit.

The key is read from ``x-api-key`` or ``Authorization: Bearer``. With ``forward_client_key`` the client's
``x-api-key`` is its own Anthropic key (forwarded upstream) and the tenant key comes in ``Authorization``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi import Request

from .errors import ApiError
from .service import Service

__all__ = ["Caller", "caller"]

_MISSING = (
    "no API key: send this service's key in x-api-key or Authorization: Bearer (create one with "
    "`claude-history keys create --owner NAME`)"
)


@dataclass(frozen=True)
class Caller:
    tenant: str | None  # None: a service started without authentication
    key: str | None  # the key to forward upstream (forward_client_key), else None


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def caller(request: Request) -> Caller:
    """The caller of this request; raises a 401 for a missing or unknown key and a 429 over the rate limit."""
    service: Service = request.app.state.service
    config = service.config
    api_key = request.headers.get("x-api-key")
    forwarded = api_key if config.forward_client_key else None
    if not config.auth:
        return Caller(None, forwarded)
    key = _bearer(request) if config.forward_client_key else (api_key or _bearer(request))
    if not key:
        raise ApiError(401, _MISSING)
    tenant = await service.tenant_of(key)
    if tenant is None:
        raise ApiError(401, "invalid x-api-key: unknown or revoked key for this service")
    request.state.tenant = tenant
    wait = service.allow(tenant)
    if wait is not None:
        raise ApiError(429, "rate limit exceeded for this tenant; retry later",
                       headers={"retry-after": str(max(1, math.ceil(wait)))})  # fmt: skip
    return Caller(tenant, forwarded)
