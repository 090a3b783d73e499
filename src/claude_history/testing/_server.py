"""The simulator: a local HTTP server that speaks the Messages API.

Standard library only (http.server): the package's one runtime dependency is ``anthropic``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from claude_history.models import MODELS

from ._batches import BATCH_SECONDS, BatchStore
from ._cache import CacheUsage, PromptCache
from ._common import ApiError, bad_request, error_type_for
from ._context_edits import apply_context_edits, clear_edits
from ._replies import (
    Reply,
    ThinkingSigner,
    apply_limits,
    compaction_summary,
    default_reply,
    message_id,
    request_digest,
)
from ._server_tools import server_tool_usage
from ._threads import THREAD_TTL, ThreadStore
from ._tokens import Counter, Layout, build_layout, chain, compacted_layout
from ._validation import Request, check_thinking, parse_request

if TYPE_CHECKING:
    import anthropic

__all__ = ["BilledPass", "Billing", "Simulator"]

MAX_BODY_BYTES = 32 * 1024 * 1024  # the API's request size limit for /v1/messages (413 request_too_large)
BILLINGS_KEPT = 64  # Simulator.billing(): the newest this many (fewer with keep_requests)


@dataclass(frozen=True)
class BilledPass:
    """One sampling pass the simulator billed: what it read and what it was billed.

    ``kind``: ``"message"`` (the reply) or ``"compaction"`` (the server compaction pass that wrote the summary).
    ``prefix_ids[k]``: the identity of the prefix up to and including block ``k`` of the context the pass read,
    in the order tools -> system -> messages (the prompt cache's key: equal ids mean byte-equal prefixes, also
    across requests); ``ends[k]``: its tokens up to and including block ``k``. ``usage``: the pass's figures in
    the API's JSON form (the top-level ``usage`` for a request without compaction, else its entry of
    ``usage.iterations``)."""

    kind: str
    prefix_ids: tuple[str, ...]
    ends: tuple[int, ...]
    usage: dict[str, Any]

    @property
    def total(self) -> int:
        """Input tokens of the pass: uncached + written to the cache + read from it."""
        return self.ends[-1] if self.ends else 0


@dataclass(frozen=True)
class Billing:
    """What one successful ``/v1/messages`` request was billed for: its passes, in the order they ran (a
    compaction pass first)."""

    request_id: str
    model: str
    passes: tuple[BilledPass, ...]


@dataclass
class _Fault:
    status: int
    error_type: str
    retry_after: float | None


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None  # a streamed reply
    cut_after: int | None = None  # close the connection after this many events
    content_type: str | None = None  # a body that is not JSON (``body`` is then its text)


class Simulator:
    """A local Messages API for tests: validation, usage, prompt caching, streaming and faults on demand.

    Use it as a context manager (or ``start()`` / ``stop()``) and point the SDK at :attr:`base_url`.
    All methods are thread-safe.
    """

    max_body_bytes = MAX_BODY_BYTES
    batch_seconds = BATCH_SECONDS  # simulated processing time of a message batch (advance() moves it)
    thread_ttl = THREAD_TTL  # seconds a message thread is held after its latest response (assumed: undocumented)

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: int | None = None,
    ) -> None:
        """``clock``: seconds (default ``time.monotonic``); ``port`` 0 picks a free port; ``keep_requests``
        bounds :attr:`requests` to the newest N (long benchmarks), ``None`` keeps all."""
        self._clock = clock or time.monotonic
        self._offset = 0.0
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=keep_requests)
        self._received = 0
        self._replies: deque[Reply] = deque()
        self._faults: deque[_Fault] = deque()
        self._cuts: deque[int] = deque()
        self._billings: deque[Billing] = deque(maxlen=min(keep_requests or BILLINGS_KEPT, BILLINGS_KEPT))
        self._cache = PromptCache()
        self._signer = ThinkingSigner()
        self._threads = ThreadStore()
        self._batches = BatchStore(self.now())
        self._batched = 0  # batch requests answered (their request ids)
        self._serial = 0
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Start serving in a background thread; returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = _HTTPServer((self._host, self._port), _Handler)
            server.simulator = self
            self._server = server
            self._port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="claude-history-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<Simulator {where}>"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, for ``anthropic.Anthropic(base_url=...)``."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: use `with Simulator() as sim:` or call start()")
        return f"http://{self._host}:{self._port}"

    def client(self, **kwargs: Any) -> anthropic.Anthropic:
        """An ``anthropic.Anthropic`` client for this simulator (extra keyword arguments pass through).

        Its HTTP client skips TLS setup and proxy variables: the simulator is plain HTTP on this machine, and
        loading the CA bundle costs tens of milliseconds per client.
        """
        import anthropic

        kwargs.setdefault("api_key", "test")
        if "http_client" not in kwargs:
            kwargs["http_client"] = anthropic.DefaultHttpxClient(verify=False, trust_env=False)
        return anthropic.Anthropic(base_url=self.base_url, **kwargs)

    def async_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """An ``anthropic.AsyncAnthropic`` client for this simulator (see :meth:`client`)."""
        import anthropic

        kwargs.setdefault("api_key", "test")
        if "http_client" not in kwargs:
            kwargs["http_client"] = anthropic.DefaultAsyncHttpxClient(verify=False, trust_env=False)
        return anthropic.AsyncAnthropic(base_url=self.base_url, **kwargs)

    # ---- test controls -------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request received, in order: dicts with ``method``, ``path``, ``headers`` and ``body``."""
        with self._lock:
            return list(self._requests)

    def reply_with(self, content: str | list[dict[str, Any]], stop_reason: str = "end_turn") -> None:
        """Queue the content of a later reply (consumed by the next valid /v1/messages request).

        ``content`` is a string or a list of content blocks in the API's JSON form. Thinking blocks without a
        ``signature`` get a valid one; tool_use blocks without an ``id`` get one.
        """
        if isinstance(content, str):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": content}]
        elif isinstance(content, list) and all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in content
        ):
            blocks = copy.deepcopy(content)
        else:
            raise TypeError(
                "reply_with() takes a string or a list of content block dicts, each with a 'type'"
            )
        if not isinstance(stop_reason, str):
            raise TypeError("stop_reason must be a string")
        with self._lock:
            self._replies.append(Reply(blocks, stop_reason))

    def fail_next(
        self, status: int, times: int = 1, error_type: str | None = None, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` and the API's error body for it."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = _Fault(status, error_type or error_type_for(status), retry_after)
        with self._lock:
            self._faults.extend([fault] * times)

    def cut_next_stream(self, after_events: int) -> None:
        """Close the connection of the next streamed reply after ``after_events`` SSE events."""
        if after_events < 0:
            raise ValueError("after_events must be >= 0")
        with self._lock:
            self._cuts.append(after_events)

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (prompt-cache TTLs)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    def now(self) -> float:
        """The simulator's clock: the given clock plus every ``advance``."""
        with self._lock:
            return self._clock() + self._offset

    def billing(self, request_id: str | None = None) -> Billing | None:
        """What a ``/v1/messages`` request was billed for (see :class:`Billing`): the one with that
        ``request-id`` (the SDK's ``message._request_id``), or the newest one; ``None`` when it is not among the
        newest 64 successful requests (fewer with ``keep_requests``)."""
        with self._lock:
            if request_id is None:
                return self._billings[-1] if self._billings else None
            return next((b for b in reversed(self._billings) if b.request_id == request_id), None)

    def reset(self) -> None:
        """Forget requests, billings, queued replies, faults, cuts, the prompt cache, message threads and
        batches."""
        with self._lock:
            self._requests.clear()
            self._billings.clear()
            self._replies.clear()
            self._faults.clear()
            self._cuts.clear()
            self._cache.clear()
            self._signer.clear()
            self._threads.clear()
            self._batches.clear()

    # ---- request handling ----------------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes, *, oversize: bool = False
    ) -> _Response:
        """Answer one HTTP request (the transport-free core of the server)."""
        headers = {k.lower(): v for k, v in headers.items()}
        body: Any = None
        parse_error: str | None = None
        try:
            body = json.loads(raw, parse_constant=_reject_constant) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            parse_error = str(exc)
        with self._lock:
            self._requests.append({"method": method, "path": path, "headers": headers, "body": body})
            self._received += 1
            request_id = f"req_sim{self._received:010d}"
            fault = self._faults.popleft() if self._faults else None
        response = self._answer(method, path, headers, body, parse_error, fault, oversize, request_id)
        response.headers["request-id"] = request_id
        return response

    def _answer(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        parse_error: str | None,
        fault: _Fault | None,
        oversize: bool,
        request_id: str,
    ) -> _Response:
        if fault is not None:
            error = ApiError(
                fault.status, f"Simulated {fault.error_type} (HTTP {fault.status}).", fault.error_type
            )
            response = _error(error)
            if fault.retry_after is not None:
                response.headers["retry-after"] = f"{fault.retry_after:g}"
            return response
        try:
            if oversize:
                raise ApiError(
                    413, "Request exceeds the maximum allowed number of bytes.", "request_too_large"
                )
            return self._route(method, path, headers, body, parse_error, request_id)
        except ApiError as error:
            return _error(error)
        except Exception as exc:  # never let a request kill the server: answer like the API's 500
            traceback.print_exc(file=sys.stderr)
            return _error(ApiError(500, f"Internal simulator error: {type(exc).__name__}: {exc}"))

    def _route(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        parse_error: str | None,
        request_id: str,
    ) -> _Response:
        route = urlsplit(path).path.rstrip("/")
        if route == "/v1/models" and method == "GET":
            data = [_model_json(name) for name in MODELS]
            return _Response(
                200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
            )
        if route.startswith("/v1/models/") and method == "GET":
            name = route.rsplit("/", 1)[1]
            if name not in MODELS:
                raise ApiError(404, f"model: {name}", "not_found_error")
            return _Response(200, _model_json(name))
        batches = route == "/v1/messages/batches" or route.startswith("/v1/messages/batches/")
        if route not in ("/v1/messages", "/v1/messages/count_tokens") and not batches:
            raise ApiError(404, f"Not found: {method} {route}", "not_found_error")
        if method != "POST" and not batches:
            raise ApiError(405, f"Method {method} not allowed on {route}", "invalid_request_error")
        if not headers.get("x-api-key") and not headers.get("authorization"):
            raise ApiError(401, "x-api-key header is required", "authentication_error")
        if not headers.get("anthropic-version"):
            raise bad_request("anthropic-version: header is required")
        if batches and parse_error is None:
            status, answer, content_type = self._batches.route(
                method, route, urlsplit(path).query, headers, body, self.now(), self.batch_seconds, self._run_batched
            )
            return _Response(status, answer, content_type=content_type)
        if parse_error is not None or body is None:
            raise bad_request(
                f"There was an error parsing the body of your request: {parse_error or 'empty body'}"
            )
        count_only = route.endswith("/count_tokens")
        thread = None if count_only else self._threads.open(body, headers, self.now())
        if thread is not None:
            body = thread.body  # the full conversation the thread holds, plus this turn's messages
        req = parse_request(body, count_only=count_only, headers=headers)
        counter = Counter(req.model, req.info.tokenizer_factor, req.image_sizes)
        layout = build_layout(req, counter)
        with self._lock:
            check_thinking(req, layout.bound_prefix, self._signer.verify)
        managed: dict[str, Any] | None = None  # the response's context_management (clearing edits)
        if clear_edits(req):
            original = layout.total
            applied = apply_context_edits(req, counter, original)
            layout = build_layout(req, counter)  # the model sees (and is billed for) the edited prompt
            managed = {"original_input_tokens": original} if count_only else {"applied_edits": applied}
        if count_only:
            counted: dict[str, Any] = {"input_tokens": layout.total}
            if managed is not None:
                counted["context_management"] = managed
            return _Response(200, counted)
        if layout.total > req.info.context_window:  # facts, verbatim
            raise bad_request(
                f"prompt is too long: {layout.total} tokens > {req.info.context_window} maximum"
            )

        digest = request_digest(body)
        with self._lock:
            now = self.now()
            read = self._cache.account(
                layout.positions, layout.total, req.cache_control, req.info.min_cacheable_tokens, now
            )
            queued = self._replies.popleft() if self._replies else None
            cut = self._cuts.popleft() if req.stream and self._cuts else None
            self._serial += 1
            serial = self._serial
            blocks, stop_reason = self._reply_blocks(req, counter, queued, digest)
            compaction = None
            if req.compaction is not None and layout.total > req.compaction.trigger:
                compaction = {"type": "compaction", "content": compaction_summary(req)}
            if compaction is not None and req.compaction is not None and req.compaction.pause_after:
                blocks, stop_reason, stop_sequence = [], "compaction", None
            else:  # max_tokens and stop_sequences bound the reply, not the compaction pass before it
                blocks, stop_reason, stop_sequence = apply_limits(blocks, stop_reason, req, counter)
            if compaction is not None:
                blocks.insert(0, compaction)
            self._sign(blocks, req, layout.bind_start, layout.bind_end, digest)
            usage, passes = self._bill(req, counter, layout, read, blocks, compaction, now)
            if (tools_used := server_tool_usage(blocks)) is not None:
                usage["server_tool_use"] = tools_used
            self._billings.append(Billing(request_id, req.model, passes))
        message = {
            "id": message_id(digest, serial),
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }
        if managed is not None:
            message["context_management"] = managed
        if thread is not None:
            self._threads.record(thread, message, self.now(), self.thread_ttl)
        if not req.stream:
            return _Response(200, message)
        return _Response(200, events=list(_stream_events(message)), cut_after=cut)

    def _run_batched(self, params: dict[str, Any], headers: Mapping[str, str]) -> tuple[int, Any]:
        """One request of a message batch, answered as ``POST /v1/messages`` answers it: (status, body)."""
        with self._lock:
            self._batched += 1
            request_id = f"req_simbatch{self._batched:08d}"
        if params.get("stream"):
            return 400, bad_request("stream: batch requests cannot be streamed").body()
        try:
            response = self._route("POST", "/v1/messages", headers, params, None, request_id)
        except ApiError as error:
            return error.status, error.body()
        return response.status, response.body

    def _bill(
        self,
        req: Request,
        counter: Counter,
        layout: Layout,
        read: CacheUsage,
        blocks: list[dict[str, Any]],
        compaction: dict[str, Any] | None,
        now: float,
    ) -> tuple[dict[str, Any], tuple[BilledPass, ...]]:
        """The response's ``usage`` and the passes behind it; ``read``: how the request's context split
        (cache reads, writes, the rest). Called under the lock: the compacted context reads the cache after the
        compaction pass.

        Server compaction is billed as the API bills it: the summary is written by a sampling pass of its own
        over the request's context, itemised in ``usage.iterations`` as a ``compaction`` entry whose tokens the
        top-level figures leave out; the reply is a ``message`` entry written from the compacted context, and
        the top-level figures are its figures ("Calculate the context window size from the last message
        entry"). Sources: the SDK's ``BetaUsage.iterations`` docs (anthropic 2.10.0, types/beta/beta_usage.py);
        "Compaction at a token threshold" (platform.claude.com/docs/en/build-with-claude/compaction-threshold):
        the flow detect -> summarise -> compaction block -> respond from the compacted context, and (as
        summarised at velog.io/@jungseonw00/claude-compaction-usage-iterations) the summary as an extra
        sampling step, billed, with a usage example whose top level (23,000 input) is the reply's pass and whose
        compaction iteration (180,000) is the whole conversation. With ``pause_after_compaction`` no reply is
        written: no message entry, top-level zeros.
        """

        def billed(kind: str, of: Layout, usage: dict[str, Any]) -> BilledPass:
            ids = tuple(p.key for p in of.positions)
            return BilledPass(kind, ids, tuple(p.end for p in of.positions), usage)

        if compaction is None:
            usage = read.as_usage(max(1, sum(counter.block(b) for b in blocks)))
            return usage, (billed("message", layout, usage),)
        iterations = [read.as_iteration("compaction", counter.block(compaction))]
        passes = [billed("compaction", layout, iterations[0])]
        if req.compaction is not None and req.compaction.pause_after:
            usage = CacheUsage(0, 0, 0, 0).as_usage(0)
        else:
            compacted = compacted_layout(req, layout, compaction, counter)
            # The request's markers on tools and system still mark the compacted context; automatic caching
            # and the markers in the summarised messages do not (the simulator does not cache a summary).
            split = self._cache.account(
                compacted.positions, compacted.total, None, req.info.min_cacheable_tokens, now
            )
            output = max(1, sum(counter.block(b) for b in blocks[1:]))
            usage = split.as_usage(output)
            iterations.append(split.as_iteration("message", output))
            passes.append(billed("message", compacted, iterations[-1]))
        usage["iterations"] = iterations
        return usage, tuple(passes)

    def _reply_blocks(
        self, req: Request, counter: Counter, queued: Reply | None, digest: str
    ) -> tuple[list[dict[str, Any]], str]:
        if queued is not None:
            blocks, stop_reason = copy.deepcopy(queued.content), queued.stop_reason
        else:
            reply = default_reply(req, counter, digest)
            blocks, stop_reason = reply.content, reply.stop_reason
        for k, block in enumerate(blocks):
            if block["type"] in ("tool_use", "server_tool_use") and not block.get("id"):
                block["id"] = f"toolu_sim{digest[:16]}{k:02d}"
            if block["type"] in ("tool_use", "server_tool_use"):
                block.setdefault("input", {})
        return blocks, stop_reason

    def _sign(
        self, blocks: list[dict[str, Any]], req: Request, bind_start: str, bind_end: str, digest: str
    ) -> None:
        """Give default thinking blocks their signature; remember the ones a test queued."""
        state = bind_end
        binds = req.info.binds_thinking
        first = True
        for block in blocks:
            if block["type"] == "compaction":
                state, first = bind_start, True  # the model's view restarts at the compaction block
            if block["type"] == "thinking":
                prefix = state if binds else None
                if not block.get("signature"):
                    block["signature"] = self._signer.sign(block.get("thinking", ""), prefix)
                else:
                    self._signer.remember(block["signature"], block.get("thinking", ""), prefix)
            state = chain(state, "assistant", first, block)
            first = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _model_json(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}


def _error(error: ApiError) -> _Response:
    return _Response(error.status, error.body())


# ---- SSE ---------------------------------------------------------------------------------------------------


def _stream_events(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The API's event sequence for ``message``; the SDK's accumulator rebuilds exactly ``message``.

    text, thinking and tool_use blocks stream as deltas; every other block (redacted thinking, server tool
    blocks, compaction) comes whole in its content_block_start.
    """
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**{k: v for k, v in usage.items() if k != "iterations"}, "output_tokens": 1},
    }
    yield {"type": "message_start", "message": start}
    pinged = False
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            head = {k: v for k, v in block.items() if k not in ("text", "citations")}
            head["text"] = ""
            if block.get("citations"):
                head["citations"] = []
            deltas = [{"type": "citations_delta", "citation": c} for c in block.get("citations") or []]
            deltas += [{"type": "text_delta", "text": piece} for piece in _text_pieces(block["text"])]
        elif kind == "thinking":
            head = {**block, "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": piece} for piece in _text_pieces(block["thinking"])
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            head = {**block, "input": {}}
            text = json.dumps(block["input"], ensure_ascii=False)
            deltas = [
                {"type": "input_json_delta", "partial_json": text[k : k + 24]}
                for k in range(0, len(text), 24)
            ]
        else:
            head, deltas = block, []
        yield {"type": "content_block_start", "index": index, "content_block": head}
        if not pinged:
            yield {"type": "ping"}
            pinged = True
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    if not pinged:
        yield {"type": "ping"}
    final = {
        "output_tokens": usage["output_tokens"],
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
    }
    if "server_tool_use" in usage:
        final["server_tool_use"] = usage["server_tool_use"]
    extra = {"context_management": message["context_management"]} if "context_management" in message else {}
    if "iterations" in usage:  # known once the passes ran; the SDK's beta accumulator takes it from here
        final["iterations"] = usage["iterations"]
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": final,
        **extra,
    }
    yield {"type": "message_stop"}


def _text_pieces(text: str) -> list[str]:
    """Split text into deltas of about three words; joined they are exactly ``text``."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[k : k + 3]) for k in range(0, len(words), 3)]


# ---- HTTP --------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    simulator: Simulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, conn: socket.socket, opened: bool) -> None:
        with self._open_lock:
            if opened:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-response (an abandoned stream) is normal; report anything else."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests instead
        pass

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        sim = self.server.simulator
        try:
            raw = self._read_body(sim.max_body_bytes)
        except ValueError as exc:
            self.close_connection = True
            self._send_json(_error(bad_request(f"Invalid request framing: {exc}")), "req_sim_invalid")
            return
        response = sim._handle(
            self.command, self.path, dict(self.headers.items()), raw or b"", oversize=raw is None
        )
        request_id = response.headers.pop("request-id", "req_sim")
        if response.events is None:
            self._send_json(response, request_id)
        else:
            self._send_stream(response, request_id)

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

    def _send_json(self, response: _Response, request_id: str) -> None:
        if response.content_type is not None:
            data = str(response.body).encode("utf-8")
        else:
            data = json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", request_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, response: _Response, request_id: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", request_id)
        self.end_headers()
        assert response.events is not None
        for n, event in enumerate(response.events):
            if response.cut_after is not None and n >= response.cut_after:
                self._cut()
                return
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
