"""Benchmarks measure what a user's process does: none of them switches the garbage collector off (issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
TAMPERING = {"disable", "freeze", "set_threshold"}  # each changes when (or whether) the collector runs


def _gc_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in TAMPERING
            and isinstance(node.value, ast.Name)
            and node.value.id == "gc"
        ):
            found.append(f"gc.{node.attr} (line {node.lineno})")
        if isinstance(node, ast.ImportFrom) and node.module == "gc":
            found += [f"from gc import {a.name} (line {node.lineno})" for a in node.names if a.name in TAMPERING]
    return found


def test_no_benchmark_switches_the_collector_off() -> None:
    scripts = sorted(BENCH.glob("*.py"))
    assert len(scripts) >= 5, "the benchmarks are where this test looks for them"
    offenders = {p.name: calls for p in scripts if (calls := _gc_calls(p.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_check_finds_the_usual_ways_to_do_it() -> None:
    assert _gc_calls("import gc\ngc.disable()\n") == ["gc.disable (line 2)"]
    assert _gc_calls("import gc\ngc.freeze()\ngc.set_threshold(0)\n") == [
        "gc.freeze (line 2)",
        "gc.set_threshold (line 3)",
    ]
    assert _gc_calls("from gc import disable\n") == ["from gc import disable (line 1)"]
    assert _gc_calls("import gc\ngc.collect()\n") == []
