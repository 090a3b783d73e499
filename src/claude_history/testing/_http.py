"""The simulator's HTTP transport: a listening socket with a real backlog, a bounded pool of worker threads,
keep-alive connections, JSON bodies and chunked Server-Sent Events.

It knows nothing of the Messages API: every request, whatever its method or path, goes to one ``answer``
function that returns a :class:`Response`. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

__all__ = ["Answer", "Response", "Server"]

# socketserver's default backlog is 5: 50 concurrent clients connecting at once overflowed it and saw
# connection resets (issue 12). The kernel caps it at net.core.somaxconn.
BACKLOG = 1024
WORKERS = 128  # at most this many connections are served at once; more wait in the backlog / the queue
IDLE_SECONDS = 120.0  # a keep-alive connection idle this long is closed (longer than clients keep theirs)
POLL_SECONDS = 0.25  # how often an idle connection checks whether its worker is wanted elsewhere


@dataclass
class Response:
    """What to send: a JSON ``body``, or ``events`` streamed as SSE (``cut_after``: drop the connection after
    that many events, mid-body; ``event_delay``: seconds to wait before each event after the first)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None
    cut_after: int | None = None
    event_delay: float = 0.0
    content_type: str | None = None  # a body that is not JSON (``body`` is then its text), e.g. batch results


# (method, path with query, headers, body bytes or None when over the size limit, framing error or None)
Answer = Callable[[str, str, Mapping[str, str], "bytes | None", "str | None"], Response]


class Server(HTTPServer):
    """An HTTP/1.1 server whose connections are served by at most ``workers`` daemon threads.

    ``ThreadingHTTPServer`` starts a thread per connection without bound and listens with a backlog of 5.
    Here connections wait in a queue for a worker; while some wait, a worker closes its keep-alive
    connection after the current response (``Connection: close``) or as soon as it is idle, so every client
    is served in turn and none holds a worker while doing nothing.
    """

    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(
        self, address: tuple[str, int], answer: Answer, *, max_body_bytes: int, workers: int = WORKERS
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.answer = answer
        self.max_body_bytes = max_body_bytes
        self.closing = False
        self._max_workers = workers
        self._jobs: queue.SimpleQueue[tuple[socket.socket, Any] | None] = queue.SimpleQueue()
        self._state = threading.Lock()
        self._workers = 0
        self._idle = 0
        self._pending = 0
        self._open: set[socket.socket] = set()
        super().__init__(address, _Handler)

    # ---- the pool ------------------------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the accepted connection for a worker; start one if none is free and the pool has room."""
        with self._state:
            self._pending += 1
            grow = self._pending > self._idle and self._workers < self._max_workers
            if grow:
                self._workers += 1
        self._jobs.put((request, client_address))
        if grow:
            threading.Thread(target=self._work, name="claude-history-simulator-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._state:
                self._idle += 1
            job = self._jobs.get()
            with self._state:
                self._idle -= 1
                if job is not None:
                    self._pending -= 1
            if job is None:
                return
            request, client_address = job
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def saturated(self) -> bool:
        """Connections are waiting for a worker and the pool cannot grow (below its size, a new worker is on its
        way to them)."""
        with self._state:
            return self._pending > self._idle and self._workers >= self._max_workers

    # ---- connections ---------------------------------------------------------------------------------------

    def track(self, conn: socket.socket, opened: bool) -> None:
        with self._state:
            if opened:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-response (an abandoned stream) is normal; report anything else."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        """Stop accepting, close open connections and let the workers go."""
        self.closing = True
        super().server_close()
        with self._state:
            conns, self._open = list(self._open), set()
            workers = self._workers
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        while True:  # connections still queued are closed unanswered
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                with contextlib.suppress(OSError):
                    job[0].close()
        for _ in range(workers):
            self._jobs.put(None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def handle(self) -> None:
        """Serve requests on this connection until the client closes it, it idles out, or the worker is
        wanted by a waiting connection."""
        self.close_connection = True
        self.handle_one_request()
        if self.close_connection:
            return
        with selectors.DefaultSelector() as selector:  # not select.select: it fails on descriptors >= 1024
            selector.register(self.connection, selectors.EVENT_READ)
            while not self.close_connection and self._next_request_arrives(selector):
                self.handle_one_request()

    def _next_request_arrives(self, selector: selectors.BaseSelector) -> bool:
        """Wait for the next request on a keep-alive connection (or its end, which the next read sees)."""
        self.connection.settimeout(0.0)
        try:
            if self.rfile.peek(1):  # type: ignore[attr-defined]  # a BufferedReader: buffered or just arrived
                return True
        except OSError:
            return False
        finally:
            self.connection.settimeout(None)
        deadline = time.monotonic() + IDLE_SECONDS
        while time.monotonic() < deadline:
            try:
                if selector.select(POLL_SECONDS):
                    return True
            except (OSError, ValueError):
                return False
            if self.server.closing or self.server.saturated():
                return False
        return False

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read Simulator.requests instead
        pass

    def __getattr__(self, name: str) -> Any:
        """Every method (``do_GET``, ``do_PATCH``, ``do_OPTIONS``, ...) goes to the one answer function, which
        answers unknown ones with a JSON error, as the API does: never http.server's HTML 501."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request line or header that http.server cannot parse: a JSON error too."""
        self.close_connection = True
        self.request_version = self.protocol_version  # an unreadable request line still gets status and headers
        kind = "invalid_request_error" if code < 500 else "api_error"
        body = {"type": "error", "error": {"type": kind, "message": message or explain or "Bad request"}}
        self._send_json(Response(code, body))

    def _serve(self) -> None:
        framing: str | None = None
        raw: bytes | None = b""
        try:
            raw = self._read_body(self.server.max_body_bytes)
        except ValueError as exc:
            self.close_connection = True
            framing = str(exc)
        response = self.server.answer(self.command, self.path, dict(self.headers.items()), raw, framing)
        if self.server.saturated():
            response.headers["Connection"] = "close"  # hand this worker to a waiting connection
        if response.events is None:
            self._send_json(response)
        else:
            self._send_stream(response)

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or ``None`` when it is larger than ``limit`` (it is read and dropped)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit:
            # Read and drop the body in pieces so the answer reaches the client; remember only its size.
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length)

    def _send_json(self, response: Response) -> None:
        if response.content_type is not None:
            data = str(response.body).encode("utf-8")
        else:
            data = json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type or "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        assert response.events is not None
        for n, event in enumerate(response.events):
            if response.cut_after is not None and n >= response.cut_after:
                self._cut()
                return
            if n and response.event_delay:
                time.sleep(response.event_delay)
            data = f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if response.cut_after is not None and response.cut_after >= len(response.events):
            self._cut()
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        """Drop the connection mid-body: the client sees an incomplete chunked response."""
        self.close_connection = True
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
