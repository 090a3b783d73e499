"""The simulator: a local HTTP server that speaks the Messages API.

Standard library only (http.server): the package's one runtime dependency is ``anthropic``.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._batches import BATCH_SECONDS, BatchStore
from ._cache import CacheUsage, PromptCache
from ._common import ApiError, bad_request, error_type_for
from ._context_edits import apply_context_edits, clear_edits
from ._faults import Fault, StreamFault, broken_stream, fault_error
from ._http import WORKERS, Response, Server
from ._json_body import lone_surrogate
from ._limits import RateLimiter, RateLimits
from ._models_api import get_model, list_models
from ._replies import (
    Reply,
    ThinkingSigner,
    apply_limits,
    compaction_summary,
    default_reply,
    message_id,
    request_digest,
)
from ._sse import stream_events
from ._threads import THREAD_TTL, ThreadStore
from ._tokens import Counter, Layout, build_layout, chain, compacted_layout
from ._usage import server_tool_usage
from ._validation import Request, check_thinking, parse_request

if TYPE_CHECKING:
    import anthropic

__all__ = ["BilledPass", "Billing", "Simulator"]

MAX_BODY_BYTES = 32 * 1024 * 1024  # the API's request size limit for /v1/messages (413 request_too_large)
KEEP_REQUESTS = 100  # Simulator.requests: the newest this many by default (memory stays flat)
BILLINGS_KEPT = 64  # Simulator.billing(): the newest this many (fewer with keep_requests)
# RefusalStopDetails.category in the SDK (anthropic 2.17.0, types/refusal_stop_details.py); None: no named category
REFUSAL_CATEGORIES = frozenset({None, "cyber", "bio", "frontier_llm", "reasoning_extraction", "general_harms"})


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


class Simulator:
    """A local Messages API for tests: validation, usage, prompt caching, streaming and faults on demand.

    Use it as a context manager (or ``start()`` / ``stop()``) and point the SDK at :attr:`base_url`.
    All methods are thread-safe.
    """

    max_body_bytes = MAX_BODY_BYTES
    batch_seconds = BATCH_SECONDS  # simulated processing time of a message batch (advance() moves it)
    # Wall-clock seconds every Messages reply waits before it begins (the model's time to first token), so a
    # benchmark measures a proxy in front of an upstream that takes time, as the real one does. 0: at once.
    reply_delay = 0.0
    thread_ttl = THREAD_TTL  # seconds a message thread is held after its latest response (assumed: undocumented)

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: int | None = KEEP_REQUESTS,
        rate_limits: RateLimits | None = None,
        api_keys: Iterable[str] | None = None,
        workers: int = WORKERS,
    ) -> None:
        """``clock``: seconds (default ``time.monotonic``); ``port`` 0 picks a free port; ``keep_requests``
        bounds :attr:`requests` to the newest N so a long-running simulator keeps its memory flat (``None``
        keeps all); ``rate_limits``: per-minute limits on the simulator clock (429 with ``retry-after`` past
        them); ``api_keys``: the keys accepted (any non-empty key when ``None``); ``workers``: at most this
        many connections served at once."""
        if keep_requests is not None and keep_requests < 0:
            raise ValueError("keep_requests must be >= 0 or None")
        self._clock = clock or time.monotonic
        self._offset = 0.0
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=keep_requests)
        self._received = 0
        self._replies: deque[Reply] = deque()
        self._faults: deque[Fault] = deque()
        self._stream_faults: deque[StreamFault] = deque()
        self._stream_delays: deque[float] = deque()  # seconds between the SSE events of the next streams
        self._limits = RateLimiter(rate_limits, self.now())
        self._api_keys = None if api_keys is None else frozenset(api_keys)
        self._workers = workers
        self._billings: deque[Billing] = deque(maxlen=min(keep_requests or BILLINGS_KEPT, BILLINGS_KEPT))
        self._cache = PromptCache()
        self._signer = ThinkingSigner()
        self._threads = ThreadStore()
        self._batches = BatchStore(self.now())
        self._batched = 0  # batch requests answered (their request ids)
        self._serial = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Start serving in a background thread; returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = Server(
                (self._host, self._port), self._handle, max_body_bytes=self.max_body_bytes, workers=self._workers
            )
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

    def reply_with(
        self,
        content: str | list[dict[str, Any]],
        stop_reason: str = "end_turn",
        stop_details: dict[str, Any] | None = None,
    ) -> None:
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
        if stop_details is not None and not isinstance(stop_details, dict):
            raise TypeError("stop_details must be a dict such as {'type': 'refusal', 'category': 'cyber', ...}")
        with self._lock:
            self._replies.append(Reply(blocks, stop_reason, copy.deepcopy(stop_details)))

    def refuse_next(self, category: str | None = None, explanation: str | None = None, text: str = "") -> None:
        """Queue a refusal: the next reply stops with ``stop_reason: "refusal"`` and ``stop_details``
        ``{"type": "refusal", "category": ..., "explanation": ...}`` (categories in the SDK's
        ``RefusalStopDetails``: ``cyber``, ``bio``, ``frontier_llm``, ``reasoning_extraction``,
        ``general_harms``, or ``None``), after ``text`` (a streamed refusal can stop mid-reply)."""
        if category not in REFUSAL_CATEGORIES:
            raise ValueError(f"category must be one of {sorted(c for c in REFUSAL_CATEGORIES if c)} or None")
        details = {"type": "refusal", "category": category, "explanation": explanation}
        self.reply_with([{"type": "text", "text": text}] if text else [], "refusal", details)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        error_type: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` and the API's error body for it.

        ``retry_after`` sets the ``retry-after`` header (seconds); ``should_retry`` the ``x-should-retry``
        header, which the SDKs obey before the status (default: ``true`` for 408/409/429/5xx, absent
        otherwise)."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(status, error_type or error_type_for(status), retry_after, should_retry)
        with self._lock:
            self._faults.extend([fault] * times)

    def cut_next_stream(self, after_events: int) -> None:
        """Close the connection of the next streamed reply after ``after_events`` SSE events."""
        if after_events < 0:
            raise ValueError("after_events must be >= 0")
        with self._lock:
            self._stream_faults.append(StreamFault(after_events))

    def fail_mid_stream(self, error_type: str = "overloaded_error", after_events: int = 3) -> None:
        """Break the next streamed reply after its 200: ``after_events`` events, then the API's
        ``event: error`` (``{"type": "error", "error": {"type": error_type, ...}}``) and the end of the stream.
        The SDK raises ``anthropic.APIStatusError`` with that body while iterating."""
        if after_events < 0:
            raise ValueError("after_events must be >= 0")
        if not isinstance(error_type, str) or not error_type:
            raise ValueError("error_type must be a non-empty string such as 'overloaded_error'")
        with self._lock:
            self._stream_faults.append(StreamFault(after_events, error_type))

    def slow_next_stream(self, seconds_between_events: float, times: int = 1) -> None:
        """Pace the next ``times`` *streamed* replies like a slow model: their headers come at once, then each
        SSE event after the first waits ``seconds_between_events`` (wall time, not the simulator clock). Gives a
        test time to act mid-reply (Ctrl-C, a timeout, a second writer); combines with a cut or an error."""
        if not seconds_between_events >= 0:
            raise ValueError("seconds_between_events must be >= 0")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._stream_delays.extend([float(seconds_between_events)] * times)

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
        """Forget requests, billings, queued replies, faults, cuts, slow streams, the prompt cache, message
        threads and batches."""
        with self._lock:
            self._requests.clear()
            self._billings.clear()
            self._replies.clear()
            self._faults.clear()
            self._stream_faults.clear()
            self._stream_delays.clear()
            self._limits = RateLimiter(self._limits.limits, self.now())
            self._cache.clear()
            self._signer.clear()
            self._threads.clear()
            self._batches.clear()

    # ---- request handling ----------------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes | None, framing: str | None
    ) -> Response:
        """Answer one HTTP request (the transport-free core of the server). ``raw`` is ``None`` when the body
        was over :attr:`max_body_bytes`; ``framing`` says why the body could not be read at all.

        Every answer carries a ``request-id`` header and the ``anthropic-ratelimit-*`` headers; every error
        body carries ``request_id`` too (platform.claude.com/docs/en/api/errors: "Every API response includes
        a unique request-id header"; the SDK's ``ErrorResponse.request_id`` and bodies users quote, e.g.
        coder/aibridge#56: ``{"type":"error","error":{...},"request_id":"req_011CV5J4YZo4J3KLTDZgDN7S"}``)."""
        headers = {k.lower(): v for k, v in headers.items()}
        body: Any = None
        parse_error: str | None = None
        try:
            body = json.loads(raw, parse_constant=_reject_constant) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            parse_error = f"There was an error parsing the body of your request: {exc}"
        else:
            parse_error = lone_surrogate(raw) if raw else None
        with self._lock:
            self._requests.append({"method": method, "path": path, "headers": headers, "body": body})
            self._received += 1
            request_id = f"req_sim{self._received:010d}"
            fault = self._faults.popleft() if self._faults else None
        try:
            if fault is not None:
                raise fault_error(fault)
            if framing is not None:
                raise bad_request(f"Invalid request framing: {framing}")
            if raw is None:
                raise ApiError(413, "Request exceeds the maximum allowed number of bytes.", "request_too_large")
            self._authenticate(headers)
            response = self._route(method, path, headers, body, parse_error, request_id)
            if self.reply_delay > 0 and method == "POST" and urlsplit(path).path == "/v1/messages":
                time.sleep(self.reply_delay)  # outside the lock: replies in parallel wait in parallel
        except ApiError as error:
            response = Response(error.status, {**error.body(), "request_id": request_id}, dict(error.headers))
        except Exception as exc:  # never let a request kill the server: answer like the API's 500
            traceback.print_exc(file=sys.stderr)
            internal = ApiError(500, f"Internal simulator error: {type(exc).__name__}: {exc}")
            response = Response(500, {**internal.body(), "request_id": request_id})
        with self._lock:
            response.headers.update(self._limits.headers(self.now()))
        response.headers["request-id"] = request_id
        return response

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        """401 ``authentication_error`` without a key, or with one that is not among ``api_keys`` (every
        path, ``/v1/models`` included: the API authenticates before it routes). The texts are the API's:
        "x-api-key header is required" and "invalid x-api-key" (as users quote them, e.g.
        anthropics/anthropic-sdk-python#1090)."""
        key = headers.get("x-api-key") or ""
        bearer = headers.get("authorization") or ""
        if bearer.lower().startswith("bearer "):
            bearer = bearer[7:].strip()
        if not key and not bearer:
            raise ApiError(401, "x-api-key header is required", "authentication_error")
        if self._api_keys is not None and key not in self._api_keys and bearer not in self._api_keys:
            raise ApiError(401, "invalid x-api-key", "authentication_error")

    def _route(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        parse_error: str | None,
        request_id: str,
    ) -> Response:
        url = urlsplit(path)
        route = url.path.rstrip("/")
        if route == "/v1/models" and method == "GET":
            return Response(200, list_models(url.query))
        if route.startswith("/v1/models/") and method == "GET":
            return Response(200, get_model(route.rsplit("/", 1)[1]))
        batches = route == "/v1/messages/batches" or route.startswith("/v1/messages/batches/")
        if route not in ("/v1/messages", "/v1/messages/count_tokens") and not batches:
            raise ApiError(404, f"Not found: {method} {route}", "not_found_error")
        if method != "POST" and not batches:
            raise ApiError(405, f"Method {method} not allowed on {route}", "invalid_request_error")
        if not headers.get("anthropic-version"):
            raise bad_request("anthropic-version: header is required")
        if batches and parse_error is None:
            status, answer, content_type = self._batches.route(
                method, route, urlsplit(path).query, headers, body, self.now(), self.batch_seconds, self._run_batched
            )
            return Response(status, answer, content_type=content_type)
        if parse_error is not None or body is None:
            raise bad_request(parse_error or "There was an error parsing the body of your request: empty body")
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
            return Response(200, counted)
        if layout.total > req.info.context_window:  # facts, verbatim
            raise bad_request(
                f"prompt is too long: {layout.total} tokens > {req.info.context_window} maximum"
            )

        digest = request_digest(body)
        with self._lock:
            now = self.now()
            args = (layout.positions, layout.total, req.cache_control, req.info.min_cacheable_tokens, now)
            uncached = self._cache.account(*args, commit=False)
            input_tokens = uncached.input_tokens + uncached.cache_creation_input_tokens
            self._limits.admit(now, input_tokens, req.max_tokens or 0, req.model)
            read = self._cache.account(*args)
            queued = self._replies.popleft() if self._replies else None
            stream_fault = self._stream_faults.popleft() if req.stream and self._stream_faults else None
            event_delay = self._stream_delays.popleft() if req.stream and self._stream_delays else 0.0
            self._serial += 1
            serial = self._serial
            blocks, stop_reason = self._reply_blocks(req, counter, queued, digest)
            stop_details = queued.stop_details if queued is not None else None
            compaction = None
            if req.compaction is not None and layout.total > req.compaction.trigger:
                compaction = {"type": "compaction", "content": compaction_summary(req)}
            if compaction is not None and req.compaction is not None and req.compaction.pause_after:
                blocks, stop_reason, stop_sequence = [], "compaction", None
            else:  # max_tokens and stop_sequences bound the reply, not the compaction pass before it
                blocks, stop_reason, stop_sequence = _bound(blocks, stop_reason, req, counter, layout.total)
            if compaction is not None:
                blocks.insert(0, compaction)
            self._sign(blocks, req, layout.bind_start, layout.bind_end, digest)
            usage, passes = self._bill(req, counter, layout, read, blocks, compaction, now)
            if (server_tools := server_tool_usage(blocks)) is not None:
                usage["server_tool_use"] = server_tools
            self._limits.charge_output(now, usage["output_tokens"])
            self._billings.append(Billing(request_id, req.model, passes))
        message = {
            "id": message_id(digest, serial),
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "stop_details": stop_details,
            "usage": usage,
        }
        if managed is not None:
            message["context_management"] = managed
        if thread is not None:
            self._threads.record(thread, message, self.now(), self.thread_ttl)
        if not req.stream:
            return Response(200, message)
        events, cut = broken_stream(list(stream_events(message)), stream_fault)
        return Response(200, events=events, cut_after=cut, event_delay=event_delay)

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


def _bound(
    blocks: list[dict[str, Any]], stop_reason: str, req: Request, counter: Counter, input_tokens: int
) -> tuple[list[dict[str, Any]], str, str | None]:
    """Apply ``stop_sequences`` and ``max_tokens``; a reply that would run past the context window stops there
    with ``model_context_window_exceeded`` (SDK ``StopReason``; "Handling stop reasons",
    platform.claude.com/docs/en/build-with-claude/handling-stop-reasons: the response "reached the model's
    context window limit", so a request may ask for the most tokens without knowing its input size)."""
    room = req.info.context_window - input_tokens
    if req.max_tokens is None or room >= req.max_tokens:
        return apply_limits(blocks, stop_reason, req, counter)
    bounded, reason, sequence = apply_limits(blocks, stop_reason, replace(req, max_tokens=max(room, 0)), counter)
    return bounded, "model_context_window_exceeded" if reason == "max_tokens" else reason, sequence
