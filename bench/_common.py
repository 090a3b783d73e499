"""Helpers shared by the benchmarks: machine description, percentiles, seeded text, and writing one
``## Section`` of bench/RESULTS.md without touching the others."""

from __future__ import annotations

import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results\n\nWritten by `make bench`; a benchmark replaces its own section when run again.\n"

_WORDS = (  # noqa: SIM905
    "the of and to in is that for it as with was on be by this are or from at an not which have has but "
    "model context window history message token cache prompt session store append load reply user assistant "
    "python database latency conversation tool result summary request response stream budget cost price "
    "error retry version commit turn thinking signature server client query index search export import "
    "question answer because however therefore example value function return list dict string number"
).split()


def machine() -> dict[str, str]:
    """What a reader needs to compare figures: kernel, CPU, Python, date."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        uname = " ".join(platform.uname())
    try:
        cores = str(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = str(os.cpu_count())
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "uname": uname,
        "cpu": f"{cpu} ({cores} cores available)",
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
    }


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with few samples, p99 is the slowest but one, not an average."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Tails:
    """The p50 / p99 / max (ms) of each run of a variant (a hashable key), over seeds: each as its median
    (range), the way the latency benchmarks report them."""

    def __init__(self) -> None:
        self._runs: dict[object, dict[str, list[float]]] = {}

    def add(self, key: object, latencies: list[float]) -> None:
        """One run's latencies, in seconds."""
        runs = self._runs.setdefault(key, {"p50": [], "p99": [], "max": []})
        runs["p50"].append(percentile(latencies, 50) * 1000)
        runs["p99"].append(percentile(latencies, 99) * 1000)
        runs["max"].append(max(latencies) * 1000)

    def cells(self, key: object) -> list[str]:
        """p50, p99 and max of ``key``'s runs, each "median (min-max)"."""
        return [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in self._runs[key].values()]


def text(rng: random.Random, low: int, high: int) -> str:
    """Prose-like text of a length drawn uniformly from [low, high] characters."""
    size = rng.randint(low, high)
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size]


def replace_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Put ``## heading`` + body into RESULTS.md, replacing that section if present, keeping the others."""
    existing = path.read_text(encoding="utf-8") if path.exists() else TITLE
    section = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(lambda _match: section + "\n", existing, count=1)
    else:
        updated = existing.rstrip("\n") + "\n\n" + section
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def run_line(script: str, before: str, after: str) -> str:
    """The first line of a section: the command as run, when, on what, and the load around it."""
    info = machine()
    command = " ".join([f"python bench/{script}", *sys.argv[1:]])
    return (
        f"`{command}` ({info['date']}); {info['cpu']}; Python {info['python']}; load average (1 min) before /"
        f" after: {before} / {after}."
    )


def publish(section: str, body: str, *, write: bool) -> None:
    """Print the section; with ``write`` (not a quick run) also put it into RESULTS.md."""
    print(f"## {section}\n\n{body}")
    if write:
        replace_section(section, body)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
