"""What `claude-history logs -n 10` and `claude-history cost` cost on a store of many long sessions, against
reading every session whole (what both did before the stores had ``load_messages`` / ``usage_log``, and what a
script over ``store.load`` does).

A SQLite store of 100 sessions of 100 turns (20,000 messages of about 2 KB), written a turn at a time and
round robin, as people chat. Each figure is the median and the range of N timed runs of the command's own code
(the store opened fresh each run, the garbage collector on); the messages each read are counted. Writes the
``CLI history reads`` section of bench/RESULTS.md.

    python bench/cli_history_reads.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine, replace_section, table

from claude_history import open_store
from claude_history.cli.logs_command import _listed, _newest_turns
from claude_history.cli.report_commands import _totals
from claude_history.history import turns
from claude_history.stores.base import Entry

SESSIONS, TURNS = 100, 100


def _fill(url: str) -> None:
    store = open_store(url)
    try:
        versions = dict.fromkeys(range(SESSIONS), 0)
        for t in range(TURNS):
            for s in range(SESSIONS):
                entries = [
                    Entry({"role": "user", "content": f"question {t} of session {s} " + "lorem ipsum " * 150}),
                    Entry(
                        {"role": "assistant", "content": [{"type": "text", "text": "an answer " * 200}]},
                        model="claude-sonnet-4-6",
                        usage={"input_tokens": 1000 + t, "output_tokens": 120},
                    ),
                ]
                versions[s] = store.append(f"s{s:03d}", entries, expected_version=versions[s])
    finally:
        store.close()


class Counting:
    """The store, counting the messages its reads return."""

    def __init__(self, store: Any) -> None:
        self.store, self.read = store, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if name == "load":
                self.read += len(result.messages)
            elif name in ("load_messages", "usage_log"):
                self.read += len(result)
            return result

        return call if callable(attribute) else attribute


def logs_now(store: Any) -> Any:
    return _newest_turns(store, _listed(store), 10, lambda log: True, None, [])


def logs_whole(store: Any) -> Any:
    """The newest 10 turns from every session read whole."""
    found = []
    for info in store.list_sessions(limit=10_000):
        data = store.load(info.id)
        found += [(data.messages[span.start].created_at, info.id, span.start) for span in turns(data.message_params())]
    return sorted(found, reverse=True)[:10]


def cost_now(store: Any) -> Any:
    return _totals(store, "model")


def cost_whole(store: Any) -> Any:
    from claude_history.cli.spent import priced

    total = 0.0
    for info in store.list_sessions(limit=10_000):
        total += sum(priced(m.model, m.usage) or 0.0 for m in store.load(info.id).messages if m.usage)
    return total


def _time(url: str, work: Callable[[Any], Any], runs: int) -> tuple[list[float], int]:
    samples, read = [], 0
    for _ in range(runs + 1):  # the first run warms the page cache and is not kept
        store = Counting(open_store(url))
        try:
            start = time.perf_counter()
            work(store)
            elapsed = time.perf_counter() - start
        finally:
            store.close()
        samples.append(elapsed)
        read = store.read
    return samples[1:], read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'long.db'}"
        _fill(url)
        for name, work in (
            ("logs -n 10", logs_now),
            ("baseline: every session loaded, newest 10 turns", logs_whole),
            ("cost --by model", cost_now),
            ("baseline: every session loaded, replies priced", cost_whole),
        ):
            samples, read = _time(url, work, args.runs)
            median = statistics.median(samples) * 1000
            spread = f"{min(samples) * 1000:.1f} – {max(samples) * 1000:.1f}"
            rows.append([name, f"{median:.1f}", spread, f"{read:,}"])
            print(f"{name}: median {median:.1f} ms ({spread}), {read:,} messages or usage records read")
    info = machine()
    body = "\n".join(
        [
            f"Command: `python bench/cli_history_reads.py --runs {args.runs}` ({info['date']}).",
            "",
            f"- Machine: `{info['uname']}`",
            f"- CPU: {info['cpu']}; Python {info['python']}",
            f"- SQLite store of {SESSIONS} sessions of {TURNS} turns ({SESSIONS * TURNS * 2:,} messages), written a "
            "turn at a time, round robin; median and range (fastest – slowest) of the timed runs after one "
            "warm-up, the store opened fresh each run, GC on. Each command is compared with reading every session "
            "whole (`store.load`), what it did before.",
            "",
            table(["what", "median (ms)", "range (ms)", "messages (or usage records) read"], rows),
        ]
    )
    replace_section("CLI history reads", body)


if __name__ == "__main__":
    main()
