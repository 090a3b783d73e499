"""Fork benchmark (issue 14.4): what ``store.fork`` of a whole session costs as the session grows, on every store.

    .venv/bin/python bench/fork.py                    # 100, 10,000 and 100,000 messages; writes RESULTS.md
    .venv/bin/python bench/fork.py --quick            # 100 and 1,000 messages, one run; prints only
    .venv/bin/python bench/fork.py --only sqlite      # some stores only

For each store and length N a session is filled to N messages in one append (untimed; 200-600 characters each),
then, median of --runs (GC on):
- fork: ``store.fork`` of the whole session, as the store does it now;
- copying fork: the fork each store had before, timed in the same run as the baseline: the generic load-and-copy
  (``load`` the session, create the fork with a copy of every message) for the memory, SQLite and file stores,
  for PostgreSQL the copy inside the server its fork made before (the same three statements, in one
  transaction), for Redis the copy inside Redis its fork script made before; stores that still copy do it in
  ``fork`` itself;
- parent delete: ``store.delete`` of the parent while its fork still reads all of it (the SQLite store keeps the
  rows as the fork's data rather than copying them then, so the copy is not merely moved to the delete).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import machine, publish, reachable, table
from scaling import POSTGRES_URL, REDIS_URL, cleanup, entries, stores

from claude_history.stores import open_store
from claude_history.stores._base_classes import StoreBase

try:
    from claude_history.stores.postgres import PostgresStore
except Exception:  # without the extra: no PostgreSQL rows
    PostgresStore = type(None)  # type: ignore[misc,assignment]
try:
    from claude_history.stores.redis import RedisStore
except Exception:
    RedisStore = type(None)  # type: ignore[misc,assignment]

LENGTHS = (100, 10_000, 100_000)
QUICK_LENGTHS = (100, 1_000)
SECTION = "Fork (copy-on-write)"
SHARING = {"memory", "sqlite", "postgres", "redis", "file"}  # the stores whose fork shares the parent's rows
ROWS = ("fork", "copying fork", "parent delete")


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def copying_fork(store: Any, sid: str) -> str:
    """The fork the store had before copy-on-write: the server-side copy for PostgreSQL (``_pg_copying_fork``),
    the generic load-and-copy for the local stores, the copy inside Redis its fork made before for Redis."""
    if isinstance(store, PostgresStore):
        return _pg_copying_fork(store, sid)
    if isinstance(store, RedisStore):
        return _redis_copying_fork(store, sid)
    if isinstance(store, StoreBase):
        return StoreBase.fork(store, sid)
    result: str = store.fork(sid)
    return result


# Redis's fork before copy-on-write (the script as it was, over today's prelude): the hash, every message and
# its words copied inside Redis, in one script. The parent here is no fork, so its LLEN is its message count.
_REDIS_COPYING_FORK = r"""
local id, new_id, at, now, new_inc = ARGV[A], ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], ARGV[A + 4]
if not live(id, now) then return {-1} end
local count = redis.call('LLEN', mkey(id))
if at == '' then at = count else at = tonumber(at) end
if at > count then return {-2, count} end
if live(new_id, now) then return {0, tonumber(redis.call('HGET', hkey(new_id), 'version'))} end
filter_keys(id)  -- the copy's tags, checked before the first write
redis.call('HSET', hkey(new_id), unpack(redis.call('HGETALL', hkey(id))))
redis.call('HSET', hkey(new_id), 'version', at > 0 and 1 or 0, 'created', now, 'updated', now, 'inc', new_inc)
redis.call('HDEL', hkey(new_id), 'turn', 'ix')
local i = 0
while i < at do
  local last = math.min(i + 999, at - 1)
  redis.call('RPUSH', mkey(new_id), unpack(redis.call('LRANGE', mkey(id), i, last)))
  i = last + 1
end
local summaries = {}
for _, record in ipairs(redis.call('LRANGE', skey(id), 0, -1)) do
  if tonumber(string.match(record, '^(%d+)\n')) <= at then summaries[#summaries + 1] = record end
end
push_all(skey(new_id), summaries, 1, #summaries)
reindex(new_id)
local ttl = redis.call('PTTL', hkey(id))
if ttl > 0 then redis.call('PEXPIRE', hkey(new_id), ttl) end
if in_step(id) then
  -- the copy's words are the source's first ``at`` lines: indexed without asking the client again
  start_index(new_id)
  i = 0
  while i < at do
    local last = math.min(i + 999, at - 1)
    index_messages(new_id, redis.call('LRANGE', tkey(id), i, last), 1, last - i + 1, i)
    i = last + 1
  end
  redis.call('HSET', hkey(new_id), 'ix', at)
end
sync_expiry(new_id, false)
return {1, at}
"""


def _redis_copying_fork(store: Any, sid: str) -> str:
    import redis

    from claude_history.stores.redis._lua import PRELUDE

    new_id = uuid.uuid4().hex
    # Its own client without a read timeout: at 100,000 messages the copy runs past redis-py's default 5 s.
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=None)
    try:
        script = client.register_script(PRELUDE + _REDIS_COPYING_FORK)
        reply = script(args=[*store._keys.header, sid, new_id, "", time.time_ns() // 1000, uuid.uuid4().hex])
    finally:
        client.close()
    assert reply[0] == 1, reply
    return new_id


def _pg_copying_fork(store: Any, sid: str) -> str:
    """PostgreSQL's fork before copy-on-write, in one transaction inside the server: the session row, every
    message row (under the new row's storage key, as the store now keys them) and the summaries."""
    import psycopg

    new_id = uuid.uuid4().hex
    fill = store._st.fill
    with psycopg.connect(POSTGRES_URL, autocommit=False) as conn:
        (key,) = conn.execute(
            fill(
                "INSERT INTO {s}.sessions (id, version, message_count, created_at, updated_at, title, owner, tags,"
                " model, system, expires_at, metadata) SELECT %(new)s, 1, message_count, now(), now(), title, owner,"
                " tags, model, system, expires_at, metadata FROM {s}.sessions WHERE id = %(id)s RETURNING key"
            ),
            {"new": new_id, "id": sid},
        ).fetchone()
        conn.execute(
            fill(
                "INSERT INTO {s}.messages (session_id, seq, role, message, model, usage, created_at, words)"
                " SELECT %(key)s, seq, role, message, model, usage, created_at, words FROM {s}.messages"
                " WHERE session_id = (SELECT key FROM {s}.sessions WHERE id = %(id)s)"
            ),
            {"key": key, "id": sid},
        )
        conn.execute(
            fill(
                "INSERT INTO {s}.summaries (session_id, start_seq, end_seq, text, model, usage, created_at)"
                " SELECT %(new)s, start_seq, end_seq, text, model, usage, created_at FROM {s}.summaries"
                " WHERE session_id = %(id)s ORDER BY id"
            ),
            {"new": new_id, "id": sid},
        )
    return new_id


def one_run(store: Any, history: list[Any], samples: dict[str, list[float]]) -> None:
    sid = f"fork-{uuid.uuid4().hex[:10]}"
    store.append(sid, history, expected_version=0)
    made: list[str] = []
    samples["copying fork"].append(timed(lambda: made.append(copying_fork(store, sid))))
    samples["fork"].append(timed(lambda: made.append(store.fork(sid))))
    samples["parent delete"].append(timed(lambda: store.delete(sid)))
    assert len(store.load(made[1]).messages) == len(history)
    for fork in made:
        store.delete(fork)


def measure(store: Any, n: int, runs: int) -> dict[str, float]:
    """Median of each row over ``runs``, with its range under ``<row> min`` / ``<row> max``."""
    samples: dict[str, list[float]] = {row: [] for row in ROWS}
    history = entries(n)
    for _ in range(runs):
        one_run(store, history, samples)
    figures = {row: statistics.median(values) for row, values in samples.items()}
    figures.update({f"{row} min": min(values) for row, values in samples.items()})
    figures.update({f"{row} max": max(values) for row, values in samples.items()})
    return figures


def render(results: dict[str, dict[int, dict[str, float]]], lengths: tuple[int, ...], command: str) -> str:
    info = machine()
    rows = []
    for name, by_length in results.items():
        for row in ROWS if name in SHARING else ("fork", "parent delete"):
            figures = [by_length[n][row] for n in lengths]
            cells = [
                f"{by_length[n][row]:,.1f} ms ({by_length[n][row + ' min']:,.1f}-{by_length[n][row + ' max']:,.1f})"
                for n in lengths
            ]
            label = row if name in SHARING or row != "fork" else "fork (copies, unchanged)"
            rows.append([f"{label}, {name}", *cells, f"{figures[-1] / max(figures[0], 1e-9):,.1f}x"])
        if name not in SHARING:
            continue
        ratios = [by_length[n]["copying fork"] / max(by_length[n]["fork"], 1e-9) for n in lengths]
        rows.append([f"copying / fork, {name}", *[f"{r:,.1f}x" for r in ratios], ""])
    return "\n".join(
        [
            f"Machine: {info['cpu']}, Python {info['python']}, {info['date']}. Load average at the end:"
            f" {' '.join(open('/proc/loadavg').read().split()[:3])} (2 cores shared with other jobs: absolute"
            " figures are inflated, the ratios are from the same run).",
            f"Command: `{command}`. Median of the runs (range in brackets); GC on. `fork` is each store's fork"
            " now; `copying fork` the fork the store had before (the baseline, same run: the generic load-and-copy"
            " for memory, SQLite and file, the copy inside the server for PostgreSQL and Redis); `parent delete`"
            " deletes the parent while its fork still reads every message (SQLite, PostgreSQL and Redis keep them"
            " as the fork's data, the file store's fork its log through a hard link: no copy).",
            "",
            table(["operation, store", *[f"{n:,} msgs" for n in lengths], "largest / smallest"], rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 messages, one run; prints only")
    parser.add_argument("--lengths", type=int, nargs="+")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--only", nargs="+", help="stores: memory sqlite file postgres redis")
    args = parser.parse_args(argv)
    lengths = tuple(args.lengths or (QUICK_LENGTHS if args.quick else LENGTHS))
    runs = args.runs or (1 if args.quick else 3)
    tag = "benchfork" + uuid.uuid4().hex[:8]
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, url in stores(Path(tmp), tag).items():
                if args.only and name not in args.only:
                    continue
                store = open_store(url)
                try:
                    for n in lengths:
                        print(f"{name} {n:,} ...", file=sys.stderr, flush=True)
                        results.setdefault(name, {})[n] = measure(store, n, runs)
                finally:
                    store.close()
        finally:
            if reachable("127.0.0.1", 5432) or reachable("127.0.0.1", 6379):
                cleanup(tag)
    command = "python bench/fork.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    body = render(results, lengths, command.strip())
    publish(SECTION, body, write=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
