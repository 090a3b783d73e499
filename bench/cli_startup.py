"""How long `claude-history` takes to start: `--help`, and `sessions list` on a small SQLite store.

Each command runs as a fresh process (what a user waits for), median and slowest of N runs after one warm-up;
target: under 0.5 s. Writes the ``CLI startup`` section of bench/RESULTS.md.

    python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, replace_section, table

TARGET_S = 0.5


def _store(directory: Path) -> str:
    """A store of 20 sessions of 10 messages each, written through the library."""
    from claude_history import open_store

    url = f"sqlite:///{directory / 'bench.db'}"
    store = open_store(url)
    try:
        for n in range(20):
            messages = []
            for turn in range(5):
                messages += [
                    {"role": "user", "content": f"question {turn} of session {n}"},
                    {"role": "assistant", "content": f"answer {turn} of session {n}"},
                ]
            store.import_jsonl(json.dumps(messages), session_id=f"s{n:02d}")
    finally:
        store.close()
    return url


def _time(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm-up: page cache, .pyc files
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "claude_history.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_HISTORY_"))}
    with tempfile.TemporaryDirectory() as tmp:
        url = _store(Path(tmp))
        commands = {
            "claude-history --help": [*cli, "--help"],
            "claude-history sessions list (20 sessions)": [*cli, "sessions", "list", "--store", url],
            "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
        }
        rows = []
        for name, argv in commands.items():
            samples = _time(argv, args.runs, env)
            median, slowest = statistics.median(samples), max(samples)
            verdict = "" if name.startswith("python") else ("PASS" if median < TARGET_S else "FAIL")
            rows.append([name, f"{median:.3f}", f"{slowest:.3f}", verdict])
            print(f"{name}: median {median:.3f} s, slowest {slowest:.3f} s {verdict}")
    info = machine()
    body = "\n".join(
        [
            f"Command: `python bench/cli_startup.py --runs {args.runs}` ({info['date']}).",
            "",
            f"- Machine: `{info['uname']}`",
            f"- CPU: {info['cpu']}; Python {info['python']}",
            f"- Each command is a fresh process; median and slowest of {args.runs} runs after one warm-up; "
            f"target {TARGET_S} s.",
            "",
            table(["command", "median (s)", "slowest (s)", "target"], rows),
        ]
    )
    replace_section("CLI startup", body)


if __name__ == "__main__":
    main()
