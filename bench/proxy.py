"""The latency the stateful proxy adds, and its throughput ceiling, on SQLite and on PostgreSQL.

``python bench/proxy.py [--seeds 3] [--sessions 50] [--turns 8] [--reply-delay 0.6] [--paces 1,3]
[--workers 1,2] [--stores sqlite,postgres]`` starts two simulators (``python -m claude_history.testing``): one
whose every Messages reply waits ``--reply-delay`` seconds before it begins (0.6 s: a model's time to first
token for a short reply; the upstream a real proxy stands in front of), one that answers at once; and, per
store and worker count, ``claude-history serve --no-auth`` in front of each, as processes of their own.

1. Added latency, matched load. ``--sessions`` conversations in parallel; each starts a turn every ``pace``
   seconds (its first at a random offset within the first pace, the same for both phases of a seed), or as
   soon as its previous reply arrived if that came later (a "late" turn: the load was not met). The same
   schedule runs directly against the delayed simulator (each request carries the whole history, as a
   client without the proxy must send it) and through the proxy (only the new message and
   ``x-session-id``), alternating which phase goes first. Added = proxy percentile - direct percentile over
   all the turns of the seed (time to the whole JSON reply, measured by the client).
2. Throughput ceiling, separately: the same sessions closed-loop (each sends its next turn when its reply
   arrives, no pause) against the instant simulator, through the proxy: turns per second when the service
   is the bottleneck. Latency there is sessions / throughput (queueing), not the proxy's cost.

Medians and ranges over the seeds go to the "Proxy" section of bench/RESULTS.md, with the load average. gc
stays on everywhere; the clients are raw keep-alive HTTP (``httpx2``). Target (issue 16): added p99 under
10 ms at 50 concurrent sessions.
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


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and its children, in MB."""
    total = 0.0
    for current in tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children so far: what the service spent, whatever else runs
    on the machine (a shared machine slows the wall clock, much less the CPU time per turn)."""
    total = 0
    for current in tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(delay: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.testing", "--port", "0", "--reply-delay", str(delay)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def start_service(store_url: str, upstream: str, workers: int) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "ANTHROPIC_API_KEY": "bench"}
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_history.cli", "serve", "--store", store_url, "--upstream", upstream, "--no-auth",
         "--port", str(port), "--workers", str(workers)],
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


class Phase:
    """The turns of one phase: latencies, errors, turns that started late, elapsed time."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.late = 0
        self.elapsed = 0.0


async def conversation(http: httpx2.AsyncClient, base: str, session: str | None, questions: list[str],
                       schedule: list[float] | None, phase: Phase) -> None:  # fmt: skip
    """One session's turns. ``session`` None: direct, the whole history every time. ``schedule``: when each
    turn is due (perf_counter times); None: each turn as soon as the previous reply arrived."""
    history: list[dict[str, object]] = []
    for k, question in enumerate(questions):
        if schedule is not None:
            wait = schedule[k] - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif k and wait < -0.001:
                phase.late += 1
        new = {"role": "user", "content": question}
        if session is None:
            body = {"model": MODEL, "max_tokens": 200, "messages": [*history, new]}
            headers = HEADERS
        else:
            body = {"model": MODEL, "max_tokens": 200, "messages": [new]}
            headers = {**HEADERS, "x-session-id": session}
        began = time.perf_counter()
        response = await http.post(base + "/v1/messages", json=body, headers=headers)
        phase.latencies.append(time.perf_counter() - began)
        if response.status_code != 200:
            phase.errors += 1
            continue
        history += [new, {"role": "assistant", "content": response.json()["content"]}]


async def run_phase(base: str, proxied: bool, scripts: list[list[str]], offsets: list[float] | None,
                    pace: float) -> Phase:  # fmt: skip
    phase = Phase()
    limits = httpx2.Limits(max_connections=len(scripts), max_keepalive_connections=len(scripts))
    async with httpx2.AsyncClient(timeout=120, limits=limits, trust_env=False) as http:
        run = uuid.uuid4().hex[:8]
        began = time.perf_counter() + 0.05
        schedules: list[list[float] | None] = [None] * len(scripts)
        if offsets is not None:
            schedules = [[began + offset + k * pace for k in range(len(script))]
                         for offset, script in zip(offsets, scripts, strict=True)]  # fmt: skip
        await asyncio.gather(*(
            conversation(http, base, f"bench-{run}-{i}" if proxied else None, script, schedules[i], phase)
            for i, script in enumerate(scripts)
        ))  # fmt: skip
        phase.elapsed = time.perf_counter() - began
    return phase


def matched(seed: int, sim_url: str, proxy_url: str, sessions: int, turns: int, pace: float) -> dict[str, float]:
    """One seed of part 1: the same schedule directly and through the proxy."""
    rng = random.Random(seed)
    scripts = [[text(rng, 5, 40) for _ in range(turns)] for _ in range(sessions)]
    offsets = [rng.uniform(0, pace) for _ in range(sessions)]
    order = [False, True] if seed % 2 == 0 else [True, False]
    results = {proxied: asyncio.run(run_phase(proxy_url if proxied else sim_url, proxied, scripts, offsets, pace))
               for proxied in order}  # fmt: skip
    direct, proxy = results[False], results[True]
    out = {"errors": float(direct.errors + proxy.errors), "late": float(proxy.late), "late_direct": float(direct.late),
           "offered": sessions / pace}  # fmt: skip
    for q in (50, 99):
        d, p = percentile(direct.latencies, q) * 1000, percentile(proxy.latencies, q) * 1000
        out[f"direct_p{q}"], out[f"proxy_p{q}"], out[f"added_p{q}"] = d, p, p - d
    return out


def ceiling(seed: int, proxy_url: str, pid: int, sessions: int, turns: int) -> dict[str, float]:
    """One seed of part 2: closed-loop through the proxy in front of the instant simulator."""
    rng = random.Random(1000 + seed)
    scripts = [[text(rng, 5, 40) for _ in range(turns)] for _ in range(sessions)]
    spent = cpu_seconds(pid)
    phase = asyncio.run(run_phase(proxy_url, True, scripts, None, 0.0))
    spent = cpu_seconds(pid) - spent
    return {"turns_per_s": len(phase.latencies) / phase.elapsed, "p50": percentile(phase.latencies, 50) * 1000,
            "cpu_ms": spent * 1000 / len(phase.latencies), "errors": float(phase.errors)}  # fmt: skip


def summary(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def store_url_for(store: str) -> tuple[str, object]:
    if store == "sqlite":
        path = Path(f"/tmp/bench-proxy-{uuid.uuid4().hex[:8]}.db")
        return f"sqlite:///{path}", path
    if store == "postgres":
        schema = "bench_proxy_" + uuid.uuid4().hex[:8]
        return f"{POSTGRES}?schema={schema}", schema
    raise SystemExit(f"unknown store {store!r}: sqlite or postgres")


def drop(store: str, handle: object) -> None:
    if store == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(handle) + suffix).unlink(missing_ok=True)
    else:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{handle}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--reply-delay", type=float, default=0.6)
    parser.add_argument("--paces", default="1,3", help="seconds between a session's turns, comma-separated")
    parser.add_argument("--workers", default="1,2", help="service worker processes, comma-separated")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    args = parser.parse_args()
    paces = [float(p) for p in args.paces.split(",")]
    loads = [load_average()]
    delayed, delayed_url = start_simulator(args.reply_delay)
    instant, instant_url = start_simulator(0.0)
    added_rows: list[list[str]] = []
    ceiling_rows: list[list[str]] = []
    try:
        for store in args.stores.split(","):
            if store == "postgres" and not reachable("127.0.0.1", 5432):
                print("PostgreSQL is not reachable at 127.0.0.1:5432: skipped")
                continue
            for workers in (int(w) for w in args.workers.split(",")):
                url, handle = store_url_for(store)
                services = [start_service(url, upstream, workers) for upstream in (delayed_url, instant_url)]
                (service, proxy_url), (saturated, ceiling_url) = services
                try:
                    for base in (proxy_url, ceiling_url):  # connections, schema, first imports
                        asyncio.run(run_phase(base, True, [["warm up"]] * 10, None, 0.0))
                    for pace in paces:
                        runs = [matched(seed, delayed_url, proxy_url, args.sessions, args.turns, pace)
                                for seed in range(args.seeds)]  # fmt: skip
                        row = [store, str(workers), f"{args.sessions / pace:.0f}"]
                        row += [summary([r[k] for r in runs]) for k in ("direct_p50", "proxy_p50", "added_p50",
                                                                         "direct_p99", "proxy_p99", "added_p99")]
                        row += [str(int(sum(r["late"] for r in runs))), str(int(sum(r["errors"] for r in runs)))]
                        added_rows.append(row)
                        print(" | ".join(row), flush=True)
                    tops = [ceiling(seed, ceiling_url, saturated.pid, args.sessions, args.turns)
                            for seed in range(args.seeds)]  # fmt: skip
                    memory = rss_mb(service.pid)
                    row = [store, str(workers), summary([t["turns_per_s"] for t in tops]),
                           summary([t["cpu_ms"] for t in tops], 2), summary([t["p50"] for t in tops], 0),
                           f"{memory:.0f}",
                           str(int(sum(t["errors"] for t in tops)))]  # fmt: skip
                    ceiling_rows.append(row)
                    print(" | ".join(row), flush=True)
                finally:
                    for process, _ in services:
                        process.terminate()
                        process.wait(30)
                    drop(store, handle)
                loads.append(load_average())
    finally:
        for sim in (delayed, instant):
            sim.terminate()
            sim.wait(30)
    info = machine()
    command = (f"python bench/proxy.py --seeds {args.seeds} --sessions {args.sessions} --turns {args.turns} "
               f"--reply-delay {args.reply_delay} --paces {args.paces} --workers {args.workers} "
               f"--stores {args.stores}")  # fmt: skip
    added_header = ["store", "workers", "offered turns/s", "direct p50", "proxy p50", "added p50", "direct p99",
                    "proxy p99", "added p99", "late turns", "errors"]  # fmt: skip
    ceiling_header = ["store", "workers", "proxy turns/s", "service CPU ms/turn", "p50 ms (queueing)",
                      "service RSS MB", "errors"]  # fmt: skip
    body = (
        f"`{command}` on {info['date']}; {info['cpu']}; Python {info['python']}; `{info['uname']}`; load average "
        f"(1, 5, 15 min) at the start and after each configuration: {' / '.join(loads)}.\n\n"
        f"**Added latency at matched load.** The upstream (simulator) takes {args.reply_delay * 1000:.0f} ms before "
        f"each reply begins (a model's time to first token for a short reply). {args.sessions} sessions in "
        f"parallel, {args.turns} turns each, each session starting a turn every pace seconds (offered turns/s = "
        "sessions / pace), the same schedule directly (whole history per request) and through `claude-history "
        "serve` (only the new message). Latencies in ms to the whole reply, median (range) over the seeds; "
        "added = proxy - direct at the same percentile; late turns: proxied turns that started after their due "
        "time because the previous reply was still coming (load not met). Target: added p99 under 10 ms at 50 "
        "sessions.\n\n" + table(added_header, added_rows) + "\n\n"
        "**Throughput ceiling**, separately: the same sessions closed-loop (each sends its next turn as soon as "
        "its reply arrives) through the proxy in front of a simulator that answers at once: turns per second "
        "with the service saturated (its p50 is then sessions / throughput: queueing, not the proxy's cost), and "
        "the CPU time the service's processes spent per turn (user + system, from /proc). "
        "Service RSS: the service of part 1 after its runs, all its processes.\n\n"
        + table(ceiling_header, ceiling_rows)
    )
    if args.no_write:
        print(body)
    else:
        replace_section("Proxy", body)


if __name__ == "__main__":
    main()
