"""Ten writers on one session: what contention costs with each ``on_concurrent`` mode (issue 14.8).

Each run: a fresh SQLite store and simulator; 10 threads (each its own ``Chat`` and store connection, as
separate requests of a web app have) send TURNS turns each to the same session at the same time. The API call
is given LATENCY seconds (a client-side wait before each request: a real reply takes that long or more, and
that is when turns overlap).

- ``conflict`` + retry: the default, with the docs' advice on ``ConflictError``: send the same message again.
- ``enqueue``: each turn waits for the session's lease, then runs on the history the previous one left.

Reported per mode, median and range over the runs: API calls per stored turn (1.00 = nothing wasted), turns
lost (sent but never stored) and doubled, and the p50 / p95 time from a writer's first attempt to its turn
being stored. Writes the ``Contention`` section of bench/RESULTS.md.

    python bench/contention.py [--runs 3] [--turns 5] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import anthropic
import httpx2
from _common import machine, percentile, replace_section, table

from claude_history import Chat, open_store
from claude_history.errors import ConflictError
from claude_history.testing import Simulator

WRITERS = 10
MODEL = "claude-sonnet-4-6"


def run(mode: str, turns: int, latency: float, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, Simulator(keep_requests=None) as sim:
        url = f"sqlite:///{Path(tmp) / 'chats.db'}"
        start = threading.Barrier(WRITERS)
        waits: list[float] = []
        errors: list[BaseException] = []

        def slow(request: httpx2.Request) -> None:
            if request.url.path.endswith("/v1/messages"):
                time.sleep(latency)

        def writer(number: int) -> None:
            store = open_store(url)
            http = anthropic.DefaultHttpxClient(event_hooks={"request": [slow]})
            try:
                client = sim.client(max_retries=0, http_client=http)
                chat = Chat(client, model=MODEL, store=store, session_id="busy", on_concurrent=mode)  # type: ignore[arg-type]
                start.wait()
                for k in range(turns):
                    began = time.perf_counter()
                    while True:
                        try:
                            chat.send(f"seed {seed} writer {number} turn {k}")
                            break
                        except ConflictError:
                            continue  # the docs' advice: the chat has reloaded; send again
                    waits.append(time.perf_counter() - began)
            except BaseException as exc:
                errors.append(exc)
            finally:
                http.close()
                store.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        store = open_store(url)
        try:
            users = [m["content"] for m in store.load("busy").message_params() if m["role"] == "user"]
        finally:
            store.close()
        calls = sum(1 for r in sim.requests if r["path"].split("?")[0].rstrip("/").endswith("/v1/messages"))
        sent = WRITERS * turns
        return {
            "calls per stored turn": calls / len(users),
            "lost": sent - len(set(users)),
            "doubled": len(users) - len(set(users)),
            "p50 (s)": percentile(waits, 50),
            "p95 (s)": percentile(waits, 95),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, float]]] = {"conflict": [], "enqueue": []}
    for seed in range(args.runs):
        for mode in results:  # interleaved, so both modes see the same machine load
            results[mode].append(run(mode, args.turns, args.latency, seed))
            print(mode, seed, results[mode][-1], flush=True)
    load_after = os.getloadavg()[0]
    keys = list(results["conflict"][0])
    rows = []
    for mode, label in (("conflict", '`"conflict"` + send again on ConflictError'), ("enqueue", '`"enqueue"`')):
        cells = [label]
        for key in keys:
            values = [r[key] for r in results[mode]]
            fmt = "{:.0f}" if key in ("lost", "doubled") else "{:.2f}"
            middle, low, high = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
            cells.append(f"{middle} ({low}-{high})")
        rows.append(cells)
    info = machine()
    body = f"""
Command: `python bench/contention.py --runs {args.runs} --turns {args.turns} --latency {args.latency}` ({info["date"]}).

- Machine: `{info["uname"]}`
- CPU: {info["cpu"]}; Python {info["python"]}
- Load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}
- Workload: {WRITERS} threads, each its own `Chat` and SQLite connection, send {args.turns} turns each to one
  session at once; every API call waits {args.latency} s first (a reply takes time; that is when turns overlap).
  Median (min-max) over {args.runs} runs; a fresh store and simulator per run; the two modes interleaved.
  The time is from a writer's first attempt at a turn to the turn being stored.

{table(["mode", *keys], rows)}

`"enqueue"` makes the writers take turns on the session's lease (stores/_leases.py): each turn reads the history
the previous one left, so no API call is wasted and none conflicts. With `"conflict"` (optimistic
compare-and-swap) nothing is lost either, but the turns that lose the race have paid for their API call.
The p50 is low and the p95 high in both modes because the waiting is not fair: a writer that has just stored
a turn asks again at once and often wins the next race (the lease is polled with backoff, not a FIFO queue),
so some writers finish early and others wait for most of the run.
"""
    replace_section("Contention", body)
    print(body)


if __name__ == "__main__":
    main()
