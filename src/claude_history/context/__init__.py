"""Context policies: turn the stored log into one request's view (pure), with cache breakpoints placed.

``plan_request`` is the one entry point (Chat calls it); ``context_report`` tells what the next request holds.
"""

from .engine import UsagePoint, usage_points
from .plan import RequestPlan, context_report, plan_request
from .planner import Planner
from .policies import (
    CacheAwareWindow,
    Combine,
    KeepAll,
    LastTurns,
    OldImages,
    Policy,
    ServerCompaction,
    Summarize,
    TokenBudget,
)
from .report import ContextReport
from .summary import SummaryRequest

__all__ = [
    "CacheAwareWindow",
    "Combine",
    "ContextReport",
    "KeepAll",
    "LastTurns",
    "OldImages",
    "Planner",
    "Policy",
    "RequestPlan",
    "ServerCompaction",
    "Summarize",
    "SummaryRequest",
    "TokenBudget",
    "UsagePoint",
    "context_report",
    "plan_request",
    "usage_points",
]
