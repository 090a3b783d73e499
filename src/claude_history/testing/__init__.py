"""Test your Claude application offline: a local Messages API simulator and its pytest fixture.

>>> from claude_history.testing import Simulator
>>> with Simulator() as sim:                       # doctest: +SKIP
...     client = sim.client()
...     client.messages.create(
...         model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
...     )

See docs/simulator.md for what it models.
"""

from __future__ import annotations

from ._limits import RateLimits
from ._server import BilledPass, Billing, Simulator

__all__ = ["BilledPass", "Billing", "RateLimits", "Simulator"]
