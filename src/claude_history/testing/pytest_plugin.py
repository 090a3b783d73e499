"""pytest plugin: the ``sim`` fixture, a running :class:`~claude_history.testing.Simulator` per test.

Enable it with ``pytest_plugins = ["claude_history.testing.pytest_plugin"]`` in your conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A started simulator (fresh cache, queues and request log), stopped after the test."""
    with Simulator() as simulator:
        yield simulator
