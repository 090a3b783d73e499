"""Measured figures live in bench/RESULTS.md only: the docs link to it, so they cannot drift from it.

Code blocks are left out (they show APIs, not measurements); the patterns catch what a measurement looks like in
prose: a duration, a cost in dollars and cents, a ratio of one approach to another.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import PAGES, ROOT

MEASUREMENT = re.compile(
    r"\b\d[\d,.]*\s?(ms|µs|us)\b"  # a duration
    r"|\$\d[\d,]*\.\d\d\b"  # a cost
    r"|\b\d[\d.]*x (less|cheaper|faster|slower|longer|more)\b"  # a ratio
    r"|\b\d[\d.]*\s(times) (less|cheaper|faster|slower|longer|more|as long)\b"
)


def _prose(text: str) -> list[tuple[int, str]]:
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_measured_figure_outside_bench_results(page: Path) -> None:
    found = [f"{page.name}:{n}: {line.strip()}" for n, line in _prose(page.read_text()) if MEASUREMENT.search(line)]
    assert not found, "put measured figures in bench/RESULTS.md and link to it:\n" + "\n".join(found)


def test_the_pattern_catches_what_it_should() -> None:
    for text in ("loads in 35 ms", "about 15 µs per message", "$29.78 vs $246.00", "8.3x less", "4 times as long"):
        assert MEASUREMENT.search(text), text
    for text in ("max_tokens 1024", "a 5m or 1h TTL", "2x the input price", "Claude 4.7+"):
        assert not MEASUREMENT.search(text), text
