"""The app factory: routes, the service's lifespan, request ids, structured logs, health and metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..stores.base import AsyncStore
from .config import ServerConfig, config_from_env
from .errors import error_response, install_error_handlers
from .metrics import CONTENT_TYPE_LATEST
from .proxy import router as proxy_router
from .reports import router as reports_router
from .service import Service
from .sessions import router as sessions_router
from .web import mount_web

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("claude_history.server")


def create_app(config: ServerConfig | None = None, *, store: AsyncStore | None = None) -> FastAPI:
    """The ASGI app. ``store``: an already open ``AsyncStore`` (default: ``config.store_url``); the app closes
    it on shutdown, after the turns in flight have been committed."""
    config = config or ServerConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(config, store)
        app.state.service = service
        try:
            yield
        finally:
            await service.close()  # waits for turns in flight: a graceful shutdown loses none

    app = FastAPI(
        title="claude-history",
        version=__version__,
        summary="An Anthropic-compatible stateful proxy and a sessions API over claude-history stores.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.middleware("http")(_request_log)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["request-id", "x-request-id", "x-session-version"],
        )
    app.include_router(proxy_router)
    app.include_router(sessions_router)
    app.include_router(reports_router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> Response:
        """Readiness: the store answers (a 503 while it does not)."""
        service: Service = request.app.state.service
        try:
            await service.store.list_sessions(limit=1)
        except Exception as exc:
            return error_response(503, f"the store is not reachable: {type(exc).__name__}")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"])
    async def metrics(request: Request) -> Response:
        """Prometheus metrics."""
        service: Service = request.app.state.service
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    mount_web(app)
    return app


def app_from_env() -> FastAPI:
    """The app for uvicorn's ``factory=True`` (one per worker process), configured by ``serve``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return create_app(config_from_env())


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


async def _request_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Each request gets an id (the caller's ``x-request-id``, else a new one), sent back and put on the
    one JSON log line it writes. Keys and bodies are never logged."""
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    request.state.request_id = request_id
    started = time.perf_counter()
    response = await call_next(request)
    elapsed = time.perf_counter() - started
    response.headers["x-request-id"] = request_id
    route = _route_of(request)
    service: Service | None = getattr(request.app.state, "service", None)
    if service is not None and route != "/metrics":
        service.metrics.requests.labels(route, str(response.status_code)).inc()
        service.metrics.latency.labels(route).observe(elapsed)
        if response.status_code >= 400:
            service.metrics.errors.labels(route, str(response.status_code)).inc()
    fields: dict[str, Any] = {
        "event": "request",
        "request_id": request_id,
        "method": request.method,
        "path": request.url.path,
        "status": response.status_code,
        "ms": round(elapsed * 1000, 2),
        "tenant": getattr(request.state, "tenant", None),
    }
    log.info(json.dumps(fields))
    return response
