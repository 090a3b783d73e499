"""The web page at ``/`` (docs/web.md): static files built from ``web/`` by ``make install`` into ``static/``
beside this module, served by the service itself (no CDN) under a strict Content-Security-Policy, so that
Markdown a user or a model wrote can never run script even if the sanitiser missed something."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "mount_web"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Scripts and styles only from this origin (no inline code, no eval); images also as data: URLs (attachments
# stored in the session) and blob: (exports); requests only to this service; no plugins, frames or <base>.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
])  # fmt: skip

_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

_NOT_BUILT = (
    "The web page of claude-history is not built in this installation.\n"
    "From a checkout of the repository run `make install` (it needs Node.js and npm: it runs `npm ci` and\n"
    "`node build.mjs` in web/), then restart the service. The HTTP API under /v1 works without it.\n"
)


class _Static(StaticFiles):
    """Static files with the page's security headers; the bundle names carry a content hash in index.html,
    so they may be cached."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers.update(_HEADERS)
        response.headers["cache-control"] = "public, max-age=86400"
        return response


def mount_web(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """``GET /``: the page (or a plain message saying how to build it); ``/static/...``: its files."""

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = static_dir / "index.html"
        if not page.is_file():
            return PlainTextResponse(_NOT_BUILT, status_code=503, headers=_HEADERS)
        return FileResponse(page, media_type="text/html", headers={**_HEADERS, "cache-control": "no-cache"})

    app.mount("/static", _Static(directory=static_dir, check_dir=False), name="static")
