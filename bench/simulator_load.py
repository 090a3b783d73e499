"""The standalone simulator under load: requests per second and the server's memory over 10,000 requests.

``python bench/simulator_load.py [--runs 3] [--requests 10000] [--clients 50]`` starts
``python -m claude_history.testing --port 0`` (default ``--keep-requests``) as a user would, sends the requests
from ``--clients`` threads with keep-alive connections, samples the server's RSS every 1,000 requests, and writes
the medians and ranges over the runs to the "Simulator load" section of bench/RESULTS.md. A second phase sends
300 requests of about 550 KB each (the size that took an unbounded log from 24 to 560 MB) and reports the RSS
after them. Connection errors are counted, not retried.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, replace_section, table

HEADERS = {"x-api-key": "bench", "anthropic-version": "2026-10-21", "content-type": "application/json"}
MODEL = "claude-sonnet-4-6"
SAMPLE_EVERY = 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(*options: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.testing", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def send(base_url: str, total: int, clients: int, payload: dict[str, object], pid: int) -> dict[str, object]:
    """``total`` requests from ``clients`` threads; elapsed seconds, errors and RSS samples."""
    lock = threading.Lock()
    state = {"sent": 0, "errors": 0}
    samples: list[float] = []

    def worker() -> None:
        with httpx2.Client(timeout=120, trust_env=False) as http:
            while True:
                with lock:
                    if state["sent"] >= total:
                        return
                    state["sent"] += 1
                    if state["sent"] % SAMPLE_EVERY == 0:
                        samples.append(rss_mb(pid))
                try:
                    response = http.post(base_url + "/v1/messages", json=payload, headers=HEADERS)
                    ok = response.status_code == 200
                except httpx2.HTTPError:
                    ok = False
                if not ok:
                    with lock:
                        state["errors"] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"elapsed": elapsed, "errors": state["errors"], "samples": samples}


LARGE = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "x " * 275_000}]}


def unbounded_baseline() -> float:
    """RSS after the 300 large requests with a log that keeps everything (what the bound prevents)."""
    process, base_url = start("--keep-requests", "1000000")
    try:
        send(base_url, 300, 10, LARGE, process.pid)
        return rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def one_run(requests: int, clients: int) -> dict[str, float]:
    process, base_url = start()
    try:
        small = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Hello " * 200}]}
        before = rss_mb(process.pid)
        first = send(base_url, requests, clients, small, process.pid)
        after_small = rss_mb(process.pid)
        second = send(base_url, 300, min(clients, 10), LARGE, process.pid)
        after_large = rss_mb(process.pid)
        samples = first["samples"]
        assert isinstance(samples, list)
        return {
            "rps": requests / float(first["elapsed"]),  # type: ignore[arg-type]
            "errors": float(first["errors"]) + float(second["errors"]),  # type: ignore[arg-type]
            "rss_start": before,
            "rss_first_sample": samples[0] if samples else after_small,
            "rss_end": after_small,
            "rss_after_large": after_large,
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    runs = [one_run(args.requests, args.clients) for _ in range(args.runs)]
    baseline = unbounded_baseline()
    load_after = os.getloadavg()[0]
    info = machine()
    rows = [
        ["requests per second", spread([r["rps"] for r in runs])],
        ["connection errors and non-200 answers", spread([r["errors"] for r in runs])],
        ["server RSS at start (MB)", spread([r["rss_start"] for r in runs], "{:.1f}")],
        [f"server RSS after {SAMPLE_EVERY:,} requests (MB)", spread([r["rss_first_sample"] for r in runs], "{:.1f}")],
        [f"server RSS after {args.requests:,} requests (MB)", spread([r["rss_end"] for r in runs], "{:.1f}")],
        ["server RSS after 300 more requests of 550 KB (MB)", spread([r["rss_after_large"] for r in runs], "{:.1f}")],
        ["the same 300 requests, `--keep-requests 1000000` (MB, one run)", f"{baseline:.1f}"],
    ]
    body = "\n".join(
        [
            f"Command: `python bench/simulator_load.py --runs {args.runs} --requests {args.requests} "
            f"--clients {args.clients}` ({info['date']}).",
            "",
            f"- Machine: `{info['uname']}`",
            f"- CPU: {info['cpu']}",
            f"- Python {info['python']}",
            f"- Load average (1 min) before / after: {load_before:.2f} / {load_after:.2f} (the clients run on the "
            "same cores as the server: the figure is a floor for the server alone)",
            f"- Workload: `python -m claude_history.testing --port 0` (default `--keep-requests`, 100); "
            f"{args.requests:,} non-streamed `/v1/messages` requests of about 1.3 KB from {args.clients} threads "
            "with keep-alive connections, then 300 requests of about 550 KB from 10 threads. Median (min-max) "
            f"over {args.runs} runs, a fresh server per run.",
            "",
            table(["", "median (min-max)"], [[label, value] for label, value in rows]),
            "",
            "Memory stays flat: the request log keeps the newest 100 requests (`--keep-requests N`), billings the "
            "newest 64; the last row is the log without a bound (as before issue 12), which grows with every "
            "request.",
        ]
    )
    print(body)
    if not args.no_write:
        replace_section("Simulator load", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
