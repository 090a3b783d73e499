"""The latency the stateful proxy adds: 50 concurrent sessions against the simulator, directly and through
``claude-history serve``, in one run, on SQLite and on PostgreSQL.

``python bench/proxy.py [--seeds 3] [--sessions 50] [--turns 8] [--stores sqlite,postgres]`` starts the
simulator (``python -m claude_history.testing``) and, per store, the service (``claude-history serve
--no-auth --upstream SIM``) as processes of their own, as a user would run them. Each seed runs the same
conversation twice at 50 sessions in parallel, alternating which goes first: directly (each request carries the
whole history, as a client without the proxy must send it) and through the proxy (each request carries only
the new message and ``x-session-id``; the service loads the session, calls the simulator and commits the
turn). Added latency = proxy percentile - direct percentile over all the turns of that seed; turns/s is the
proxy phase's; memory is the service's RSS at the end. Medians and ranges over the seeds go to the "Proxy"
section of bench/RESULTS.md. gc stays on everywhere; the clients are raw keep-alive HTTP (``httpx2``), so
the client's own cost is the same in both phases. Target: added p99 under 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, percentile, reachable, replace_section, table, text

MODEL = "claude-sonnet-4-6"
HEADERS = {"x-api-key": "bench", "anthropic-version": "2026-10-21", "content-type": "application/json"}
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "claude_history.testing", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def start_service(store_url: str, upstream: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "ANTHROPIC_API_KEY": "bench"}
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.cli", "serve", "--store", store_url, "--upstream", upstream, "--no-auth",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx2.get(base + "/readyz", timeout=2).status_code == 200:
                return process, base
        except httpx2.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the service exited with {process.returncode} on {store_url}")
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("the service did not become ready in 120 s")


async def conversation(http: httpx2.AsyncClient, base: str, session: str | None, questions: list[str],
                       latencies: list[float]) -> int:  # fmt: skip
    """One session's turns; returns the errors. ``session`` None: direct, the whole history every time."""
    history: list[dict[str, object]] = []
    errors = 0
    for question in questions:
        new = {"role": "user", "content": question}
        if session is None:
            body = {"model": MODEL, "max_tokens": 200, "messages": [*history, new]}
            headers = HEADERS
        else:
            body = {"model": MODEL, "max_tokens": 200, "messages": [new]}
            headers = {**HEADERS, "x-session-id": session}
        began = time.perf_counter()
        response = await http.post(base + "/v1/messages", json=body, headers=headers)
        latencies.append(time.perf_counter() - began)
        if response.status_code != 200:
            errors += 1
            continue
        reply = response.json()
        history += [new, {"role": "assistant", "content": reply["content"]}]
    return errors


async def phase(base: str, proxied: bool, scripts: list[list[str]]) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    limits = httpx2.Limits(max_connections=len(scripts), max_keepalive_connections=len(scripts))
    async with httpx2.AsyncClient(timeout=120, limits=limits, trust_env=False) as http:
        run = uuid.uuid4().hex[:8]
        began = time.perf_counter()
        errors = await asyncio.gather(*(
            conversation(http, base, f"bench-{run}-{i}" if proxied else None, script, latencies)
            for i, script in enumerate(scripts)
        ))  # fmt: skip
        elapsed = time.perf_counter() - began
    return latencies, elapsed, sum(errors)


def one_seed(seed: int, sim_url: str, proxy_url: str, sessions: int, turns: int) -> dict[str, float]:
    rng = random.Random(seed)
    scripts = [[text(rng, 5, 40) for _ in range(turns)] for _ in range(sessions)]
    order = [False, True] if seed % 2 == 0 else [True, False]
    results: dict[bool, tuple[list[float], float, int]] = {}
    for proxied in order:
        results[proxied] = asyncio.run(phase(proxy_url if proxied else sim_url, proxied, scripts))
    direct, proxy = results[False][0], results[True][0]
    out = {"errors": float(results[False][2] + results[True][2]), "turns_per_s": len(proxy) / results[True][1]}
    for q in (50, 99):
        d, p = percentile(direct, q) * 1000, percentile(proxy, q) * 1000
        out[f"direct_p{q}"], out[f"proxy_p{q}"], out[f"added_p{q}"] = d, p, p - d
    return out


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()
    sim, sim_url = start_simulator()
    rows: list[list[str]] = []
    try:
        for store in args.stores.split(","):
            schema = "bench_proxy_" + uuid.uuid4().hex[:8]
            if store == "sqlite":
                path = Path(f"/tmp/bench-proxy-{uuid.uuid4().hex[:8]}.db")
                url = f"sqlite:///{path}"
            elif store == "postgres":
                if not reachable("127.0.0.1", 5432):
                    print("PostgreSQL is not reachable at 127.0.0.1:5432: skipped")
                    continue
                url = f"{POSTGRES}?schema={schema}"
            else:
                raise SystemExit(f"unknown store {store!r}: sqlite or postgres")
            service, proxy_url = start_service(url, sim_url)
            try:
                asyncio.run(phase(proxy_url, True, [["warm up"]] * 5))  # connections, schema, first imports
                # 1 session (10 times the turns): the proxy's own cost per turn, without queueing; then the target load.
                levels = [(1, args.turns * 10), (args.sessions, args.turns)]
                measured = [(n, [one_seed(seed, sim_url, proxy_url, n, t) for seed in range(args.seeds)])
                            for n, t in levels]  # fmt: skip
                memory = rss_mb(service.pid)
            finally:
                service.terminate()
                service.wait(30)
                if store == "sqlite":
                    for suffix in ("", "-wal", "-shm"):
                        Path(str(path) + suffix).unlink(missing_ok=True)
                else:
                    import psycopg

                    with psycopg.connect(POSTGRES, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            for n, runs in measured:
                row = [store, str(n)] + [summary([r[k] for r in runs]) for k in
                                         ("direct_p50", "proxy_p50", "added_p50", "direct_p99", "proxy_p99",
                                          "added_p99", "turns_per_s")]  # fmt: skip
                row += [f"{memory:.0f}", str(int(sum(r["errors"] for r in runs)))]
                rows.append(row)
                print(" | ".join(row), flush=True)
    finally:
        sim.terminate()
        sim.wait(30)
    header = ["store", "sessions", "direct p50", "proxy p50", "added p50", "direct p99", "proxy p99", "added p99",
              "proxy turns/s", "service RSS MB", "errors"]  # fmt: skip
    info = machine()
    body = (
        f"`python bench/proxy.py --seeds {args.seeds} --sessions {args.sessions} --turns {args.turns}` on "
        f"{info['date']}; {info['cpu']}; Python {info['python']}; `{info['uname']}`.\n\n"
        f"{args.sessions} sessions in parallel, {args.turns} turns each, per seed: directly against the simulator "
        "(whole history per request) and through `claude-history serve` (only the new message), in one run. "
        "Latencies in ms, median (range) over the seeds; added = proxy - direct at the same percentile. "
        "One session (ten times the turns) shows the proxy's own cost per turn; 50 sessions is the target load. "
        "Target: added p99 under 10 ms at 50 sessions.\n\n" + table(header, rows)
    )
    if args.no_write:
        print(body)
    else:
        replace_section("Proxy", body)


if __name__ == "__main__":
    main()
