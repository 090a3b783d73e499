"""Run the service in a background thread of this process (tests, benchmarks, notebooks)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """``with BackgroundServer(create_app(config)) as server: server.base_url`` - uvicorn on a free port of
    127.0.0.1; leaving the block shuts it down gracefully (turns in flight are finished first)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                                     lifespan="on", timeout_graceful_shutdown=30))  # fmt: skip
        self._thread = threading.Thread(target=self._server.run, name="claude-history-server", daemon=True)
        self._host = host

    @property
    def base_url(self) -> str:
        sockets = [s for server in self._server.servers for s in server.sockets]
        if not sockets:
            raise RuntimeError("the server is not running")
        return f"http://{self._host}:{sockets[0].getsockname()[1]}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
