"""The library's own cost of a turn as the session grows (issue 14, items 1 and 2).

Run: ``.venv/bin/python bench/planning.py`` (``--quick``: 100 and 1,000 messages, one seed, prints only).

For each length (100, 1,000, 10,000, 100,000 messages) and seed, a SQLite session of that many messages is
written straight into the store (seeded prose, 200-2,000 characters a message, the replies with the usage
their requests would have been billed, see ``prepare``), then:

- **first**: a new ``Chat`` on that session sends one turn: the first chat on a session written without one (an
  import) reads and replays all of it, and keeps the planner's checkpoint with the session;
- **fresh**: ``--fresh`` more new ``Chat`` objects send one turn each (what a web handler that builds a ``Chat``
  per request pays on a session its chats wrote: the checkpoint and the newest part of the log);
- **warm**: the last ``Chat`` sends ``--turns`` more turns, each timed.

Overhead is the wall time of ``Chat(...)`` + ``send`` less the time spent inside the HTTP transport (the request
on the wire, the simulator's work, the response read): planning, the SDK's request building and parsing,
the commit to SQLite, the bookkeeping. The warm turn is also given as the CPU time of the chat's own thread
(``time.thread_time``, less the same inside the transport): the simulator's thread and the time spent waiting
(SQLite's fsync, the scheduler of a shared machine) are not in it, so it moves much less with the machine's
load than the wall time does. The policy is ``CacheAwareWindow(20,000)``, so the request sent has about
the same size at every length and only the history behind it grows. The garbage collector stays on. Figures:
median over the seeds of each seed's median, with the range of those medians.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx  # the HTTP library the 2.x SDK is built on

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import _WORDS as WORDS
from _common import RESULTS, machine, replace_section, table

from claude_history import Chat, open_store
from claude_history.context import CacheAwareWindow, Planner, plan_request
from claude_history.stores.base import Entry
from claude_history.testing import Simulator
from claude_history.tokens import estimate_message, estimate_system

MODEL = "claude-sonnet-4-6"
BUDGET = 20_000
LENGTHS = (100, 1_000, 10_000, 100_000)
SEEDS = (1, 2, 3)
SECTION = "Planning overhead per turn"
SYSTEM = "You are a careful assistant. Answer briefly."
POLICY = CacheAwareWindow(BUDGET)


class TimedTransport(httpx.BaseTransport):
    """An ``httpx`` transport that adds the time spent inside it (response body included) to ``spent``."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.spent = 0.0
        self.cpu = 0.0  # the calling thread's CPU time inside it

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            self.spent += time.perf_counter() - started
            self.cpu += time.thread_time() - cpu

    def close(self) -> None:
        self.inner.close()


def prose(rng: random.Random, low: int, high: int) -> str:
    """Prose-like text of about ``low`` to ``high`` characters (``_common.text``, one draw for all words)."""
    size = rng.randint(low, high)
    return " ".join(rng.choices(WORDS, k=size // 6 + 1))[:size]


def prepare(store: Any, session_id: str, length: int, seed: int) -> None:
    """``length`` messages (user/assistant alternating) appended in transactions of 1,000. Each reply's usage
    is what a tokenizer 10% under the local estimate bills for the request the planner sends at that point
    (planned with the benchmark's policy, as the session would have been)."""
    rng = random.Random(seed)
    log: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    sizes = [0]  # prefix sums of the messages' estimates
    system = estimate_system(SYSTEM, MODEL).tokens(1.0)
    planner, lineage = Planner(), object()
    version = 0
    chunk: list[Entry] = []
    for i in range(length):
        if i % 2 == 0:
            message = {"role": "user", "content": prose(rng, 200, 2_000)}
            chunk.append(Entry(message))
            usage.append({"seq": i, "usage": None})  # one item per message, as a chat passes its records
        else:
            sent = plan_request(log, [], model=MODEL, system=SYSTEM, policy=POLICY,
                                usage_history=usage, planner=planner, lineage=lineage)  # fmt: skip
            prompt = int((system + sizes[-1] - sizes[sent.window_start]) * 0.9)
            record = {"input_tokens": prompt, "output_tokens": 300}
            usage.append({"seq": i, "usage": record})
            message = {"role": "assistant", "content": prose(rng, 200, 2_000)}
            chunk.append(Entry(message, model=MODEL, usage=record))
        log.append(message)
        sizes.append(sizes[-1] + estimate_message(message, MODEL).tokens(1.0))
        if len(chunk) == 1_000 or i == length - 1:
            version = store.append(session_id, chunk, expected_version=version)
            chunk = []


@contextmanager
def client_for(sim: Simulator) -> Iterator[tuple[anthropic.Anthropic, TimedTransport]]:
    transport = TimedTransport()
    http = anthropic.DefaultHttpxClient(transport=transport)
    try:
        yield anthropic.Anthropic(api_key="test", base_url=sim.base_url, http_client=http, max_retries=0), transport
    finally:
        http.close()


def run_one(
    sim: Simulator, root: Path, length: int, seed: int, turns: int, fresh_turns: int
) -> tuple[float, list[float], list[float], list[float]]:
    """(first-Chat overhead, fresh-Chat overheads, warm overheads, warm overheads in CPU time of the chat's
    thread) in seconds for one session."""
    store = open_store(f"sqlite:///{root / f'planning-{length}-{seed}.db'}")
    session_id = f"planning-{length}-{seed}"
    try:
        prepare(store, session_id, length, seed)
        rng = random.Random(seed * 7919 + length)
        with client_for(sim) as (client, transport):
            opened: list[float] = []
            for _ in range(1 + fresh_turns):
                transport.spent = 0.0
                started = time.perf_counter()
                chat = Chat(client, model=MODEL, store=store, session_id=session_id, system=SYSTEM,
                            max_tokens=256, context=POLICY)  # fmt: skip
                chat.send(prose(rng, 200, 1_000))
                opened.append(time.perf_counter() - started - transport.spent)
            first, fresh = opened[0], opened[1:]
            warm: list[float] = []
            warm_cpu: list[float] = []
            for _ in range(turns):
                transport.spent = transport.cpu = 0.0
                started, cpu = time.perf_counter(), time.thread_time()
                chat.send(prose(rng, 200, 1_000))
                warm.append(time.perf_counter() - started - transport.spent)
                warm_cpu.append(time.thread_time() - cpu - transport.cpu)
        return first, fresh, warm, warm_cpu
    finally:
        store.close()


def spread(values: list[float]) -> str:
    """Median and range, in milliseconds."""
    ms = sorted(v * 1000 for v in values)
    if len(ms) == 1:
        return f"{ms[0]:.2f}"
    return f"{statistics.median(ms):.2f} ({ms[0]:.2f}-{ms[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 messages, one seed; prints only")
    parser.add_argument("--lengths", type=int, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--turns", type=int, default=20, help="warm turns timed per session (default 20)")
    parser.add_argument("--fresh", type=int, default=10, help="fresh Chats timed per session (default 10)")
    parser.add_argument("--results", type=Path, help="Markdown file to write the section into")
    args = parser.parse_args()
    lengths = args.lengths or ((100, 1_000) if args.quick else LENGTHS)
    seeds = args.seeds or ((1,) if args.quick else SEEDS)
    results_path = args.results if args.results is not None else (None if args.quick else RESULTS)
    rows: list[list[str]] = []
    warm_medians: dict[int, float] = {}
    fresh_medians: dict[int, float] = {}
    cpu_medians: dict[int, float] = {}
    began = time.perf_counter()
    with Simulator() as sim, tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            firsts: list[float] = []
            fresh: list[float] = []
            warm: list[float] = []
            warm_cpu: list[float] = []
            for seed in seeds:
                one_first, one_fresh, one_warm, one_cpu = run_one(sim, Path(tmp), length, seed, args.turns, args.fresh)
                firsts.append(one_first)
                fresh.append(statistics.median(one_fresh))
                warm.append(statistics.median(one_warm))
                warm_cpu.append(statistics.median(one_cpu))
                print(f"{length:>7,} messages, seed {seed}: first {one_first * 1000:.2f} ms, fresh median "
                      f"{statistics.median(one_fresh) * 1000:.2f} ms, warm median "
                      f"{statistics.median(one_warm) * 1000:.2f} ms (CPU {statistics.median(one_cpu) * 1000:.2f} ms)",
                      flush=True)  # fmt: skip
            warm_medians[length] = statistics.median(warm)
            fresh_medians[length] = statistics.median(fresh)
            cpu_medians[length] = statistics.median(warm_cpu)
            rows.append([f"{length:,}", spread(warm), spread(warm_cpu), spread(fresh), spread(firsts)])
    first, last = lengths[0], lengths[-1]
    ratio = warm_medians[last] / warm_medians[first]
    cpu_ratio = cpu_medians[last] / cpu_medians[first]
    fresh_ratios = {n: fresh_medians[n] / fresh_medians[first] for n in lengths[1:]}
    info = machine()
    command = "bench/planning.py" + (" --quick" if args.quick else "")
    body = "\n".join(
        [
            f"`{command}` on {info['date']}: {info['cpu']}, Python {info['python']}; `{info['uname']}`. "
            f"Wall time {time.perf_counter() - began:.0f} s.",
            "",
            f"SQLite, `CacheAwareWindow({BUDGET:,})`, {MODEL}, the simulator in the same process. The library's "
            "own time per turn (wall time less the time inside the HTTP transport); median over seeds "
            f"{', '.join(map(str, seeds))} of each seed's median over {args.turns} warm turns (fresh: over "
            f"{args.fresh} new Chats), range in brackets. Fresh: `Chat(...)` and its first `send` on a session "
            "its chats wrote (they keep the planner's checkpoint with it: the chat reads that and the newest "
            "part of the log). First: the same for the first Chat on a session written without one (an "
            "import: it reads and replays all of it). Warm CPU: the warm turns in CPU time of the chat's thread (no "
            "simulator, no waiting). Garbage collector on.",
            "",
            table(
                [
                    "messages",
                    "warm turn (ms)",
                    "warm turn, CPU (ms)",
                    "fresh Chat, first turn (ms)",
                    "first Chat on an import (ms)",
                ],
                rows,
            ),
            "",
            f"Warm turn at {last:,} messages / at {first:,}: {ratio:.2f}x (CPU time: {cpu_ratio:.2f}x). Fresh Chat at "
            + ", ".join(f"{n:,} / at {first:,}: {r:.2f}x" for n, r in fresh_ratios.items())
            + ".",
        ]
    )
    print(body)
    if results_path is not None:
        replace_section(SECTION, body, results_path)


if __name__ == "__main__":
    main()
