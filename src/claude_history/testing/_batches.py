"""Message Batches: create, retrieve, list, cancel, delete and results as JSONL, on the simulator clock.

Sources: the SDK's batch resource and types (anthropic 2.17.0: ``resources/messages/batches.py``,
``MessageBatch``, ``MessageBatchRequestCounts``, ``MessageBatchIndividualResponse`` and the four result types,
``BatchCreateParams``) and "Batch processing" (platform.claude.com/docs/en/build-with-claude/batch-processing):

* a batch is ``in_progress`` from creation until every request has a result, then ``ended``; it expires 24
  hours after creation (``expires_at``), and requests without a result by then are ``expired``;
* ``request_counts`` other than ``processing`` stay 0 until the whole batch ends; ``results_url`` is set only
  once it ends; results are JSONL lines ``{"custom_id", "result"}`` with result type ``succeeded`` (the
  Message), ``errored`` (the error response: each request's params are validated when it is processed, not
  when the batch is created), ``canceled`` or ``expired``;
* cancel moves an ``in_progress`` batch to ``canceling`` (``cancel_initiated_at``); it ends with the requests
  not yet processed ``canceled``; only an ended batch can be deleted;
* at most 100,000 requests; ``custom_id`` matches ``^[a-zA-Z0-9_-]{1,64}$`` and is unique in the batch;
* list: newest first, paged by ``limit`` (1-1000, default 20), ``after_id`` / ``before_id``, with
  ``has_more``, ``first_id``, ``last_id``;
* each result is billed at the batch price (half the standard one): its usage says ``service_tier: "batch"``.

The simulator processes a batch all at once when its clock (``Simulator.advance``) reaches ``created +
Simulator.batch_seconds`` (default :data:`BATCH_SECONDS`), each request answered as ``POST /v1/messages``
would answer it with the headers of the create call.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from ._common import ApiError, bad_request

__all__ = ["BATCH_SECONDS", "BatchStore", "Runner"]

BATCH_SECONDS = 60.0  # simulated processing time of a batch (the API: "most batches finish within 1 hour")
EXPIRES_AFTER = 24 * 3600.0
MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_BATCHES = 1_000  # bounded memory: the oldest batches are forgotten first

# Answers one batch request as POST /v1/messages would: (HTTP status, JSON body).
Runner = Callable[[dict[str, Any], Mapping[str, str]], tuple[int, Any]]


@dataclass
class _Batch:
    id: str
    requests: list[dict[str, Any]]
    headers: dict[str, str]
    created: float
    ends: float
    canceled_at: float | None = None
    ended_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


class BatchStore:
    """The batches one simulator holds."""

    def __init__(self, now: float) -> None:
        self._batches: dict[str, _Batch] = {}
        self._serial = 0
        self._lock = threading.Lock()
        self._wall = time.time() - now  # timestamps: wall time at start, moved by the simulator clock

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()

    def route(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: Any,
        now: float,
        duration: float,
        run: Runner,
    ) -> tuple[int, Any, str | None]:
        """Answer a request under ``/v1/messages/batches``: (status, JSON body or JSONL text, content type
        of a non-JSON body)."""
        parts = path.split("/")[4:]  # after /v1/messages/batches
        base = f"http://{headers.get('host', '127.0.0.1')}"
        with self._lock:
            if not parts and method == "POST":
                return 200, self._create(body, headers, now, duration, base), None
            if not parts and method == "GET":
                return 200, self._list(query, now, run, base), None
            if not parts:
                raise ApiError(405, f"Method {method} not allowed on {path}")
            batch = self._batches.get(parts[0])
            if batch is None or len(parts) > 2:
                raise ApiError(404, f"message_batch: {parts[0]} not found", "not_found_error")
            self._advance(batch, now, run)
            if len(parts) == 1 and method == "GET":
                return 200, self._json(batch, base), None
            if len(parts) == 1 and method == "DELETE":
                if batch.ended_at is None:
                    raise bad_request(f"Batch {batch.id} cannot be deleted while processing; cancel it first.")
                del self._batches[batch.id]
                return 200, {"id": batch.id, "type": "message_batch_deleted"}, None
            if parts[1:] == ["cancel"] and method == "POST":
                if batch.ended_at is None and batch.canceled_at is None:
                    batch.canceled_at = now
                return 200, self._json(batch, base), None
            if parts[1:] == ["results"] and method == "GET":
                if batch.ended_at is None:
                    raise bad_request(f"Batch {batch.id} is still processing: results are available once it ends.")
                lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch.results)
                return 200, lines, "application/binary"
            raise ApiError(404, f"Not found: {method} {path}", "not_found_error")

    # ---- operations (under the lock) ------------------------------------------------------------------------

    def _create(self, body: Any, headers: Mapping[str, str], now: float, duration: float, base: str) -> Any:
        if not isinstance(body, dict) or "requests" not in body:
            raise bad_request("requests: Field required")
        requests = body["requests"]
        if not isinstance(requests, list) or not requests:
            raise bad_request("requests: Input should be a non-empty list")
        if len(requests) > MAX_REQUESTS:
            raise bad_request(f"requests: at most {MAX_REQUESTS} requests per batch, got {len(requests)}")
        seen: set[str] = set()
        for k, request in enumerate(requests):
            if not isinstance(request, dict):
                raise bad_request(f"requests.{k}: Input should be a valid dictionary")
            custom_id = request.get("custom_id")
            if not isinstance(custom_id, str):
                raise bad_request(f"requests.{k}.custom_id: Field required")
            if not CUSTOM_ID.match(custom_id):
                raise bad_request(f"requests.{k}.custom_id: String should match pattern '{CUSTOM_ID.pattern}'")
            if custom_id in seen:
                raise bad_request(f"requests.{k}.custom_id: `custom_id` must be unique within a batch: {custom_id}")
            seen.add(custom_id)
            if not isinstance(request.get("params"), dict):
                raise bad_request(f"requests.{k}.params: Field required")
        self._serial += 1
        batch_id = f"msgbatch_sim{self._serial:010d}"
        kept = {
            k: v
            for k, v in headers.items()
            if k in ("x-api-key", "authorization", "anthropic-version", "anthropic-beta")
        }
        batch = _Batch(batch_id, [dict(r) for r in requests], kept, now, now + duration)
        self._batches[batch_id] = batch
        while len(self._batches) > MAX_BATCHES:
            del self._batches[next(iter(self._batches))]
        return self._json(batch, base)

    def _list(self, query: str, now: float, run: Runner, base: str) -> dict[str, Any]:
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        limit = params.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise bad_request("limit: Input should be an integer between 1 and 1000")
        newest_first = list(reversed(self._batches.values()))
        ids = [b.id for b in newest_first]
        for name in ("after_id", "before_id"):
            if name in params and params[name] not in ids:
                raise ApiError(404, f"{name}: message_batch {params[name]} not found", "not_found_error")
        if "before_id" in params:
            end = ids.index(params["before_id"])
            page = newest_first[max(0, end - int(limit)) : end]
            more = end - int(limit) > 0
        else:
            start = ids.index(params["after_id"]) + 1 if "after_id" in params else 0
            page = newest_first[start : start + int(limit)]
            more = start + int(limit) < len(ids)
        for batch in page:
            self._advance(batch, now, run)
        data = [self._json(b, base) for b in page]
        return {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def _advance(self, batch: _Batch, now: float, run: Runner) -> None:
        """Process the batch once the clock reaches its end (or its expiry, or a cancel)."""
        if batch.ended_at is not None:
            return
        if batch.canceled_at is not None:
            batch.results = [{"custom_id": r["custom_id"], "result": {"type": "canceled"}} for r in batch.requests]
            batch.ended_at = batch.canceled_at
            return
        expiry = batch.created + EXPIRES_AFTER
        if batch.ends > expiry and now >= expiry:
            batch.results = [{"custom_id": r["custom_id"], "result": {"type": "expired"}} for r in batch.requests]
            batch.ended_at = expiry
            return
        if now < batch.ends:
            return
        batch.results = [
            {"custom_id": r["custom_id"], "result": _result(*run(r["params"], batch.headers))} for r in batch.requests
        ]
        batch.ended_at = batch.ends

    def _json(self, batch: _Batch, base: str) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended_at is None:
            counts["processing"] = len(batch.requests)
        for line in batch.results:
            counts[line["result"]["type"]] += 1
        status = (
            "ended" if batch.ended_at is not None else "canceling" if batch.canceled_at is not None else "in_progress"
        )
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": self._time(batch.created),
            "expires_at": self._time(batch.created + EXPIRES_AFTER),
            "ended_at": self._time(batch.ended_at) if batch.ended_at is not None else None,
            "cancel_initiated_at": self._time(batch.canceled_at) if batch.canceled_at is not None else None,
            "archived_at": None,
            "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if batch.ended_at is not None else None,
        }

    def _time(self, at: float) -> str:
        return datetime.fromtimestamp(self._wall + at, timezone.utc).isoformat().replace("+00:00", "Z")


def _result(status: int, body: Any) -> dict[str, Any]:
    if status == 200:
        usage = body.get("usage")
        if isinstance(usage, dict):
            usage["service_tier"] = "batch"
        return {"type": "succeeded", "message": body}
    return {"type": "errored", "error": body}
