"""Context policies: turn the stored log into the messages of one request (pure), and place cache breakpoints."""

from .plan import KeepAll, RequestPlan, plan_request

__all__ = ["KeepAll", "RequestPlan", "plan_request"]
