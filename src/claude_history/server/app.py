"""The app factory: routes, the service's lifespan, request ids, structured logs, health and metrics."""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..stores.base import AsyncStore
from .config import ServerConfig, config_from_env
from .errors import error_response, install_error_handlers
from .metrics import CONTENT_TYPE_LATEST
from .proxy import router as proxy_router
from .reports import router as reports_router
from .responses import JSONBody
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
        frozen = _freeze_heap()
        try:
            yield
        finally:
            await service.close()  # waits for turns in flight: a graceful shutdown loses none
            if frozen:
                gc.unfreeze()

    app = FastAPI(
        title="claude-history",
        version=__version__,
        summary="An Anthropic-compatible stateful proxy and a sessions API over claude-history stores.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    install_error_handlers(app)
    app.add_middleware(RequestLog)
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
        return JSONBody({"status": "ready"})

    @app.get("/metrics", tags=["operations"])
    async def metrics(request: Request) -> Response:
        """Prometheus metrics."""
        service: Service = request.app.state.service
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    mount_web(app)
    return app


def _freeze_heap() -> bool:
    """Move everything alive at startup (the modules, FastAPI's routes and models, the SDK's types: hundreds
    of thousands of objects that live as long as the process) out of the collector's reach. A full
    collection scans every tracked object, and it runs on the event loop: with the startup heap in it, one
    took 130 ms and stalled every turn in flight (the proxy's p99, bench/RESULTS.md "Proxy"). Only objects
    made after startup are scanned from then on. False when the heap was already frozen (another app in
    this process did it; it unfreezes)."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def app_from_env() -> FastAPI:
    """The app for uvicorn's ``factory=True`` (one per worker process), configured by ``serve``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The upstream client's own line per call ("HTTP Request: POST ...") is not JSON and repeats what the
    # service's request line says; only its warnings are kept.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    return create_app(config_from_env())


class RequestLog:
    """Each request gets an id (the caller's ``x-request-id``, else a new one), sent back and put on the
    one JSON log line it writes, with its route, status and time to the response's first byte; the same
    figures go to the metrics. Keys and bodies are never logged.

    A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs every request through a task group and a memory stream, a fixed cost per proxied turn that this
    avoids (bench/RESULTS.md "Proxy")."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        logged = False

        def log() -> None:
            nonlocal logged
            logged = True
            _record(scope, state, request_id, status, time.perf_counter() - started)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
                log()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not logged:  # the app raised before answering: the server answers 500
                log()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _record(scope: Scope, state: dict[str, Any], request_id: str, status: int, elapsed: float) -> None:
    route = str(getattr(scope.get("route"), "path", "unmatched"))
    app = scope.get("app")
    service: Service | None = getattr(getattr(app, "state", None), "service", None)
    if service is not None and route != "/metrics":
        service.metrics.requests.labels(route, str(status)).inc()
        service.metrics.latency.labels(route).observe(elapsed)
        if status >= 400:
            service.metrics.errors.labels(route, str(status)).inc()
    if log.isEnabledFor(logging.INFO):
        fields: dict[str, Any] = {
            "event": "request",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "ms": round(elapsed * 1000, 2),
            "tenant": state.get("tenant"),
        }
        log.info(json.dumps(fields))
