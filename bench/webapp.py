"""Web-app benchmark (issue 14, item 7): examples/webapp.py (FastAPI, a fresh AsyncChat per request) under uvicorn
on SQLite, PostgreSQL and Redis, and the guides' naive version (one JSON list per session in Redis, read, appended
and resent whole, written back) in the same run. Writes the "## Web app" section of bench/RESULTS.md.

    .venv/bin/python bench/webapp.py            # the full run (a few minutes)
    .venv/bin/python bench/webapp.py --quick    # a smoke run with tiny sizes, nothing written

Method. The Messages API simulator runs in its own process; each server is its own process (uvicorn, one
worker) and the clients (httpx, keep-alive) run in this one, all on the same cores. For each server, in order:
1. throughput: CLIENTS clients, each on its own session, send TURNS turns each as fast as answered; turns per
   second over the phase, the server's CPU time per request (from /proc), its RSS after a warm-up request and
   after the phase;
2. contention: 5 sessions with 10 clients each, 8 turns per client, no retry; a turn is acknowledged when the
   answer is 200; afterwards each session is read back: lost = acknowledged but not stored, doubled = stored
   more than once (the library's answer to a lost race is a 409, counted apart);
3. a long session: filled directly in the store to LONG_TURNS - 1 turns (untimed), then LONG_SAMPLES more turns
   through the endpoint one after another: the median latency at turn LONG_TURNS, and the RSS afterwards.
The garbage collector is on everywhere (the servers are ordinary processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _common import machine, percentile, reachable, replace_section, table  # noqa: E402

POSTGRES_URL = os.environ.get("CLAUDE_HISTORY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CLAUDE_HISTORY_TEST_REDIS", "redis://127.0.0.1:6379/0")
MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a helpful assistant. Answer briefly."  # the same as examples/webapp.py
SECTION = "Web app"


# ------------------------------------------------------------------------------------------------ the servers


class NaiveTurn(BaseModel):  # module level: FastAPI resolves the handler's annotations from the module
    message: str


def naive_app(redis_url: str, prefix: str, upstream: str) -> Any:
    """The guides' pattern as a web app: the session is one JSON list in Redis, read, appended, resent whole and
    written back. No lock: two requests for one session overwrite each other's turns."""
    from contextlib import asynccontextmanager

    import anthropic
    import redis.asyncio as aioredis
    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.redis = aioredis.Redis.from_url(redis_url)
        app.state.client = anthropic.AsyncAnthropic(api_key="test", base_url=upstream)
        yield
        await app.state.redis.aclose()
        await app.state.client.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/chat/{session_id}")
    async def send(session_id: str, turn: NaiveTurn) -> dict[str, Any]:
        raw = await app.state.redis.get(prefix + session_id)
        messages = json.loads(raw) if raw else []
        messages.append({"role": "user", "content": turn.message})
        reply = await app.state.client.messages.create(model=MODEL, max_tokens=1024, system=SYSTEM, messages=messages)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
        await app.state.redis.set(prefix + session_id, json.dumps(messages))
        return {"reply": reply.content[0].text if reply.content else ""}  # type: ignore[union-attr]

    @app.get("/chat/{session_id}")
    async def history(session_id: str) -> dict[str, Any]:
        raw = await app.state.redis.get(prefix + session_id)
        return {"messages": json.loads(raw) if raw else []}

    return app


def serve(args: argparse.Namespace) -> None:
    import anthropic
    import uvicorn

    if args.kind == "naive":
        app = naive_app(args.store, args.prefix, args.upstream)
    else:
        import importlib.util

        spec = importlib.util.spec_from_file_location("webapp_example", ROOT / "examples" / "webapp.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        app = module.create_app(args.store, anthropic.AsyncAnthropic(api_key="test", base_url=args.upstream))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------------------ measuring


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def message(client: int, turn: int) -> str:
    return f"c{client}-t{turn}: tell me one short fact about the number {client * 1000 + turn}."


async def phase(http: Any, jobs: list[tuple[str, int, int]], clients: int) -> tuple[list[float], dict[int, int], list]:
    """Run (session, client, turn) jobs: each client runs its own in order; returns latencies, status counts and
    the acknowledged (session, text) pairs."""
    per_client: dict[int, list[tuple[str, int, int]]] = {}
    for job in jobs:
        per_client.setdefault(job[1], []).append(job)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acked: list[tuple[str, str]] = []

    async def run(mine: list[tuple[str, int, int]]) -> None:
        for session, client, turn in mine:
            text = message(client, turn)
            started = time.perf_counter()
            try:
                answer = await http.post(f"/chat/{session}", json={"message": text})
                status = answer.status_code
            except Exception:  # a dropped connection: counted as status 0
                status = 0
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                acked.append((session, text))

    await asyncio.gather(*(run(m) for m in per_client.values()))
    return latencies, statuses, acked


async def stored_user_texts(http: Any, session: str) -> list[str]:
    answer = await http.get(f"/chat/{session}")
    if answer.status_code != 200:
        return []
    return [m["content"] for m in answer.json()["messages"] if m["role"] == "user" and isinstance(m["content"], str)]


def prefill(kind: str, store_url: str, prefix: str, session: str, turns: int) -> None:
    """The long session, written straight into the store (untimed)."""
    history: list[dict[str, Any]] = []
    for t in range(turns):
        history.append({"role": "user", "content": message(999, t)})
        history.append({"role": "assistant", "content": [{"type": "text", "text": f"A fact about {t}: " + "x " * 60}]})
    if kind == "naive":
        import redis

        r = redis.Redis.from_url(store_url)
        r.set(prefix + session, json.dumps(history))
        r.close()
        return
    from claude_history.stores import open_store
    from claude_history.stores.base import Entry

    store = open_store(store_url)
    usage = {"input_tokens": 10, "output_tokens": 20}
    entries = [Entry(m, MODEL, usage) if m["role"] == "assistant" else Entry(m) for m in history]
    store.append(session, entries, expected_version=0)
    store.close()


async def measure(kind: str, store_url: str, prefix: str, upstream: str, sizes: dict[str, int]) -> dict[str, Any]:
    import httpx2

    port = free_port()
    cmd = [sys.executable, __file__, "--serve", kind, "--store", store_url, "--prefix", prefix]
    cmd += ["--upstream", upstream, "--port", str(port)]
    server = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    out: dict[str, Any] = {"kind": kind}
    try:
        deadline = time.monotonic() + 30
        while not reachable("127.0.0.1", port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the {kind} server did not start")
            await asyncio.sleep(0.1)
        limits = httpx2.Limits(max_connections=sizes["clients"] + 10, max_keepalive_connections=sizes["clients"] + 10)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120) as http:
            tag = uuid.uuid4().hex[:8]
            await http.post(f"/chat/warm-{tag}", json={"message": "warm up"})
            out["rss_start"] = rss_mb(server.pid)
            # 1. throughput, one session per client
            jobs = [(f"own-{tag}-{c}", c, t) for t in range(sizes["turns"]) for c in range(sizes["clients"])]
            cpu0, started = cpu_seconds(server.pid), time.perf_counter()
            latencies, statuses, _ = await phase(http, jobs, sizes["clients"])
            elapsed = time.perf_counter() - started
            out["throughput"] = statuses.get(200, 0) / elapsed
            out["cpu_ms"] = (cpu_seconds(server.pid) - cpu0) / len(jobs) * 1000
            out["p50"] = percentile(latencies, 50) * 1000
            out["errors"] = len(jobs) - statuses.get(200, 0)
            out["rss_after"] = rss_mb(server.pid)
            out["turns"] = len(jobs)
            # 2. contention: 10 clients per session
            writers, sessions, each = 10, max(1, sizes["clients"] // 10), sizes["contended"]
            jobs = [(f"shared-{tag}-{c % sessions}", c, t) for t in range(each) for c in range(writers * sessions)]
            _, statuses, acked = await phase(http, jobs, writers * sessions)
            stored: dict[str, list[str]] = {}
            for s in range(sessions):
                stored[f"shared-{tag}-{s}"] = await stored_user_texts(http, f"shared-{tag}-{s}")
            out["attempts"] = len(jobs)
            out["acked"] = len(acked)
            out["conflicts"] = statuses.get(409, 0)
            out["lost"] = sum(1 for session, text in acked if text not in stored[session])
            out["doubled"] = sum(1 for texts in stored.values() for t in set(texts) if texts.count(t) > 1)
            # 3. the long session
            long_id = f"long-{tag}"
            prefill(kind, store_url, prefix, long_id, sizes["long"] - 1)
            samples = []
            for k in range(sizes["samples"]):
                started = time.perf_counter()
                answer = await http.post(f"/chat/{long_id}", json={"message": message(998, k)})
                samples.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise RuntimeError(f"{kind}: turn {k} of the long session answered {answer.status_code}")
            out["long_p50"] = statistics.median(samples) * 1000
            out["long_range"] = (min(samples) * 1000, max(samples) * 1000)
            out["rss_end"] = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


def cleanup(schema: str, prefix: str) -> None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except Exception as exc:  # the figures are already taken; say what is left behind
        print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def render(results: list[dict[str, Any]], sizes: dict[str, int], command: str, info: dict[str, str]) -> str:
    labels = {
        "sqlite": "examples/webapp.py, SQLite",
        "postgres": "examples/webapp.py, PostgreSQL",
        "redis": "examples/webapp.py, Redis",
        "naive": "*guides' naive version, Redis JSON list*",
    }
    naive = next((r for r in results if r["kind"] == "naive"), None)
    rows = []
    for r in results:
        vs = ""
        if naive and r is not naive:
            vs = f"{r['throughput'] / naive['throughput']:.2f}x / {r['long_p50'] / naive['long_p50']:.2f}x"
        rows.append(
            [
                labels[r["kind"]],
                f"{r['throughput']:.0f}",
                f"{r['cpu_ms']:.1f}",
                f"{r['p50']:.0f}",
                f"{r['long_p50']:.0f} ({r['long_range'][0]:.0f}-{r['long_range'][1]:.0f})",
                f"{r['rss_start']:.0f} / {r['rss_after']:.0f} / {r['rss_end']:.0f}",
                f"{r['acked']} / {r['conflicts']} / {r['lost']} / {r['doubled']}",
                vs,
            ]
        )
    lines = [
        f"Command: `{command}` ({info['date']}).",
        "",
        f"- Machine: `{info['uname']}`; CPU: {info['cpu']}; Python {info['python']}",
        f"- Each server: uvicorn, one worker, its own process; the simulator in another; {sizes['clients']} "
        f"clients (httpx, keep-alive) in a third. Throughput phase: {sizes['clients']} clients x "
        f"{sizes['turns']} turns, each client on its own session. Contention: "
        f"{max(1, sizes['clients'] // 10)} sessions x 10 clients x {sizes['contended']} turns, no retry. Long "
        f"session: filled to {sizes['long'] - 1:,} turns in the store, then {sizes['samples']} turns through the "
        "endpoint one at a time (median and range). Model claude-sonnet-4-6, the library's default context "
        "(KeepAll): both versions send the whole history. GC on.",
        "",
        table(
            [
                "server",
                "turns / s",
                "server CPU ms / request",
                "p50 ms (throughput phase)",
                f"p50 ms at turn {sizes['long']:,}",
                "RSS MB: start / after throughput / end",
                "contention: acked / 409 / lost / doubled",
                "vs naive: throughput / p50 at long turn",
            ],
            rows,
        ),
        "",
        f"Targets (issue 14): throughput at least the naive version's; p50 at turn {sizes['long']:,} within 1.2x "
        "of the naive version's; RSS after the run within 1.2x of the start; 0 lost or doubled turns.",
        "",
    ]
    for r in results:
        if r is naive or naive is None:
            continue
        checks = [
            ("throughput >= naive", r["throughput"] >= naive["throughput"]),
            (f"p50 at turn {sizes['long']:,} <= 1.2x naive", r["long_p50"] <= 1.2 * naive["long_p50"]),
            ("RSS end <= 1.2x start", r["rss_end"] <= 1.2 * r["rss_start"]),
            ("0 lost, 0 doubled", r["lost"] == 0 and r["doubled"] == 0),
        ]
        lines.append(
            f"- {labels[r['kind']]}: " + "; ".join(f"{'PASS' if ok else 'FAIL'} {what}" for what, ok in checks)
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    sizes = (
        {"clients": 10, "turns": 2, "contended": 2, "long": 50, "samples": 3}
        if args.quick
        else {"clients": 50, "turns": 40, "contended": 8, "long": 2_000, "samples": 15}
    )
    sim = subprocess.Popen(
        [sys.executable, "-m", "claude_history.testing", "--port", "0", "--keep-requests", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the "export ..." hint for a person
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert sim.stdout is not None
    upstream = sim.stdout.readline().strip()
    tag = "benchweb" + uuid.uuid4().hex[:8]
    stores = {
        "sqlite": f"sqlite:///{Path('/tmp') / (tag + '.db')}",
        "postgres": f"{POSTGRES_URL}?schema={tag}",
        "redis": f"{REDIS_URL}?prefix={tag}:",
        "naive": REDIS_URL,
    }
    results = []
    try:
        for kind in args.only or list(stores):
            if kind in ("postgres",) and not reachable("127.0.0.1", 5432):
                print("PostgreSQL is not running: skipped", file=sys.stderr)
                continue
            print(f"{kind} ...", file=sys.stderr, flush=True)
            results.append(await measure(kind, stores[kind], f"{tag}:naive:", upstream, sizes))
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        cleanup(tag, tag)
        for suffix in ("", "-wal", "-shm"):
            Path(f"/tmp/{tag}.db{suffix}").unlink(missing_ok=True)
    command = " ".join(["python bench/webapp.py", *sys.argv[1:]])
    text = render(results, sizes, command, machine())
    print(f"## {SECTION}\n\n{text}")
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "results": results}, indent=1))
    if not args.quick:
        replace_section(SECTION, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints only")
    parser.add_argument("--only", nargs="+", choices=("sqlite", "postgres", "redis", "naive"))
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    parser.add_argument("--serve", dest="kind", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kind:
        serve(args)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
