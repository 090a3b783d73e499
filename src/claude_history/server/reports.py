"""What the web page shows beside the conversation, as public API: each reply's tokens and cost, and where the
next request cuts the log and places its cache breakpoints. Pure functions plus one route."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request

from ..context.cache import marker_ttl
from ..context.plan import RequestPlan
from ..pricing import PriceTable, PricingWarning, exact_cost_of
from ..stores.base import UsageRecord
from ..usage import TokenUsage
from .auth import caller
from .service import Service
from .tenants import scoped

__all__ = ["costs_json", "request_layout", "router"]

router = APIRouter(prefix="/v1", tags=["sessions"])


def _priced(usage: Mapping[str, Any], model: str | None, prices: PriceTable) -> Decimal | None:
    with warnings.catch_warnings():  # an unpriced model is said in the answer (cost_usd null), not logged
        warnings.simplefilter("ignore", PricingWarning)
        return exact_cost_of(usage, model, prices)


def costs_json(records: Sequence[UsageRecord], prices: PriceTable) -> dict[str, Any]:
    """Each reply's usage and cost in log order, the totals and the share of prompt tokens read from the cache
    (the same figures as ``/usage``: the replies in the log)."""
    turns: list[dict[str, Any]] = []
    total, cost, complete = TokenUsage(), Decimal(0), True
    for record in records:
        usage = TokenUsage.from_api(record.usage)
        price = _priced(record.usage, record.model, prices)
        turns.append({"seq": record.seq, "model": record.model, "created_at": record.created_at.isoformat(),
                      "usage": usage.to_dict(), "cost_usd": None if price is None else float(price)})  # fmt: skip
        total = total + usage
        if price is None:
            complete = False
        else:
            cost += price
    share = total.cache_read_input_tokens / total.prompt_tokens if total.prompt_tokens else 0.0
    return {
        "turns": turns,
        "totals": {"usage": total.to_dict(), "cost_usd": float(cost), "cost_complete": complete},
        "cache_read_share": share,
    }


def _marked(blocks: Any) -> str | None:
    """The TTL of the last marked block of ``blocks`` (a string content carries no marker)."""
    if not isinstance(blocks, list):
        return None
    ttls = [marker_ttl(b) for b in blocks if isinstance(b, Mapping)]
    found = [t for t in ttls if t is not None]
    return found[-1] if found else None


def request_layout(plan: RequestPlan, stored: int) -> dict[str, Any]:
    """Where the next request stands against the stored log of ``stored`` messages: each message sent, cut or
    summarised (the summary rides in the system prompt), and each cache breakpoint, placed on the tools, the
    system prompt, a stored message (``index``) or the new message."""
    summarised = plan.report is not None and plan.report.summary_tokens > 0
    states = ["sent" if i >= plan.window_start else ("summarised" if summarised else "cut") for i in range(stored)]
    breakpoints: list[dict[str, Any]] = []
    tools_ttl = _marked(plan.tools)
    if tools_ttl:
        breakpoints.append({"place": "tools", "ttl": tools_ttl})
    system_ttl = _marked(plan.system)
    if system_ttl:
        breakpoints.append({"place": "system", "ttl": system_ttl})
    for offset, message in enumerate(plan.messages):
        ttl = _marked(message.get("content"))
        if ttl is None:
            continue
        index = plan.window_start + offset
        if index < stored:
            breakpoints.append({"place": "messages", "index": index, "role": message.get("role"), "ttl": ttl})
        else:
            breakpoints.append({"place": "new message", "ttl": ttl})
    return {"messages": [{"index": i, "state": s} for i, s in enumerate(states)], "breakpoints": breakpoints}


@router.get("/sessions/{session_id}/costs")
async def costs(request: Request, session_id: str) -> dict[str, Any]:
    """Each reply's tokens by kind (input, cache writes, cache reads, output) and cost, in log order, with the
    totals and the cache-read share of the prompt tokens; read from the usage records, not the conversation."""
    service: Service = request.app.state.service
    who = await caller(request)
    records = await service.store.usage_log(scoped(who.tenant, session_id))
    return costs_json(records, service.prices)
