"""Where the proxy's added latency goes, per phase: a profiling run of one ``bench/proxy.py`` matched phase.

``python bench/proxy_phases.py [--store sqlite|postgres] [--sessions 50] [--turns 8] [--pace 3]
[--reply-delay 0.6] [--seed 0]`` starts the delayed simulator and the service in a process of its own (one
worker), with the app wrapped to time each ``/v1/messages`` request, the store's ``load`` and ``append``
and the upstream call, a task measuring the event loop's lag every 5 ms, and ``gc.callbacks`` timing the
collections. It runs the same schedule directly and through the service (as ``bench/proxy.py`` part 1) and
prints, in ms, p50 / p90 / p99 / max of each phase: before the upstream call (body, auth, store load,
planning), the store load, the upstream call, after it (store append, the reply), the store append, the
whole request, the loop's lag; and the stalls over 20 ms with the collections over 5 ms. Prints only: the
figures quoted in bench/RESULTS.md ("Proxy") name this command and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, text
from proxy import drop, free_port, load_average, run_phase, start_simulator, store_url_for

PHASES = ("before", "load", "upstream", "after", "append", "total", "lag")


def serve(store_url: str, upstream: str, port: int, out: str) -> None:
    """The profiling service (``--serve``): writes its samples to ``out`` when it stops (SIGINT)."""
    import uvicorn

    from claude_history.server import ServerConfig, create_app
    from claude_history.stores import open_async_store

    samples: dict[str, list[float]] = {phase: [] for phase in PHASES}
    events: list[str] = []
    current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("current", default=None)
    began = time.perf_counter()
    collecting = [0.0]

    def collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        elif (spent := time.perf_counter() - collecting[0]) > 0.005:
            events.append(f"gc gen {info['generation']} at {collecting[0] - began:.3f} s: {spent * 1000:.1f} ms")

    gc.callbacks.append(collection)

    class Timed:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            attribute = getattr(self.inner, name)
            if name not in ("load", "append"):
                return attribute

            async def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await attribute(*args, **kwargs)
                finally:
                    samples[name].append(time.perf_counter() - start)

            return timed

    config = ServerConfig(store_url=store_url, upstream_url=upstream, upstream_key="bench", auth=False)
    inner = create_app(config, store=Timed(open_async_store(store_url)))  # type: ignore[arg-type]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != "/v1/messages":
            await inner(scope, receive, send)
            return
        marks: dict[str, float] = {}
        current.set(marks)
        start = time.perf_counter()
        try:
            await inner(scope, receive, send)
        finally:
            end = time.perf_counter()
            samples["total"].append(end - start)
            if "sent" in marks:
                samples["before"].append(marks["sent"] - start)
                samples["after"].append(end - marks["answered"])

    async def lag() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            late = time.perf_counter() - start - 0.005
            samples["lag"].append(late)
            if late > 0.02:
                events.append(f"loop stalled at {start - began:.3f} s: {late * 1000:.1f} ms")

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            service = inner.state.service
            post = service.raw.post

            async def timed_post(*args: Any, **kwargs: Any) -> Any:
                marks = current.get()
                start = time.perf_counter()
                try:
                    return await post(*args, **kwargs)
                finally:
                    end = time.perf_counter()
                    samples["upstream"].append(end - start)
                    if marks is not None:
                        marks["sent"], marks["answered"] = start, end

            service.raw.post = timed_post
            self.lag = asyncio.ensure_future(lag())

    def reset(*_: Any) -> None:
        for values in samples.values():
            values.clear()
        events.clear()

    signal.signal(signal.SIGUSR1, reset)
    try:
        Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)).run()
    except KeyboardInterrupt:  # uvicorn raises the SIGINT it handled again once it has shut down
        pass
    finally:
        Path(out).write_text(json.dumps({"samples": samples, "events": events}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--pace", type=float, default=3.0)
    parser.add_argument("--reply-delay", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serve", nargs=4, metavar=("STORE", "UPSTREAM", "PORT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        store, upstream, port, out = args.serve
        serve(store, upstream, int(port), out)
        return
    before = load_average()
    simulator, sim_url = start_simulator(args.reply_delay)
    url, handle = store_url_for(args.store)
    port = free_port()
    out = str(Path(tempfile.gettempdir()) / f"proxy-phases-{uuid.uuid4().hex[:8]}.json")
    service = subprocess.Popen([sys.executable, __file__, "--serve", url, sim_url, str(port), out])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx2.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.2)
        asyncio.run(run_phase(base, True, [["warm up"]] * 10, None, 0.0))
        service.send_signal(signal.SIGUSR1)  # the warm-up's samples (first imports, connections) are dropped
        time.sleep(0.2)
        rng = random.Random(args.seed)
        scripts = [[text(rng, 5, 40) for _ in range(args.turns)] for _ in range(args.sessions)]
        offsets = [rng.uniform(0, args.pace) for _ in range(args.sessions)]
        direct = asyncio.run(run_phase(sim_url, False, scripts, offsets, args.pace))
        proxied = asyncio.run(run_phase(base, True, scripts, offsets, args.pace))
    finally:
        service.send_signal(signal.SIGINT)
        service.wait(60)
        simulator.terminate()
        simulator.wait(30)
        drop(args.store, handle)
    report = json.loads(Path(out).read_text())
    Path(out).unlink()
    print(f"{args.store}, 1 worker, {args.sessions} sessions x {args.turns} turns every {args.pace:g} s, seed "
          f"{args.seed}; load average before / after: {before} / {load_average()}")  # fmt: skip
    for q in (50, 99):
        d, p = percentile(direct.latencies, q) * 1000, percentile(proxied.latencies, q) * 1000
        print(f"client p{q}: direct {d:.1f}, proxy {p:.1f}, added {p - d:.1f} ms")
    print(f"errors {direct.errors + proxied.errors}, late proxied turns {proxied.late}")
    for phase in PHASES:
        values = report["samples"][phase]
        if values:
            figures = " / ".join(f"{percentile(values, q) * 1000:.2f}" for q in (50, 90, 99))
            print(f"{phase:>9}: p50 / p90 / p99 {figures}, max {max(values) * 1000:.2f} ms (n={len(values)})")
    for event in report["events"]:
        print(event)


if __name__ == "__main__":
    main()
