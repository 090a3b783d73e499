"""The PostgreSQL store's operations, written once for the sync and the async store.

Each operation is a generator that yields ``Query`` objects and receives the rows of each (a "sans-I/O"
coroutine); ``PostgresStore`` and ``AsyncPostgresStore`` only differ in how they run a query. All the logic,
the SQL and the row conversion live here and in ``_sql``. An operation runs inside one transaction: raising
(a ``ConflictError`` for a lost compare-and-swap) rolls it back.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

from ...errors import ConfigurationError, SessionNotFound
from ...history import last_turn_start
from .._cas import (
    append_allowed,
    check_token,
    conflict,
    created_incarnation,
    new_incarnation,
    pinned_incarnation,
    pop_incarnation,
)
from .._checkpoints import check_checkpoint, decode_checkpoint
from .._checks import (
    check_expected_version,
    check_filters,
    check_message_range,
    check_optional_str,
    check_page,
    check_session_changes,
    check_session_id,
    check_summary,
    clip_range,
    new_session_id,
)
from .._json import decode_json, dumps
from .._leases import check_lease, fence, ttl_us
from .._messages import check_append, decode_messages
from .._paging import check_cursor
from .._rewind_fork import rewind_target
from .._search_text import make_snippet, message_text, search_terms
from .._times import from_us, to_us
from ..base import Entry, SearchHit, SessionCursor, SessionData, SessionInfo, StoredMessage, Summary, UsageRecord
from ._sql import COUNT_COLUMN, KEY_COLUMN, LATEST_VERSION, Statements, advisory_lock_key

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Query:
    """One statement. ``rows=False``: the operation ignores its result, so the runner does not wait for it: it
    goes to the server with the statements after it (the store runs an operation pipelined, and each wait is
    a round trip to the server: a wake-up of its backend and of the caller, milliseconds on a busy machine)."""

    sql: str
    params: Mapping[str, Any] | None = None
    rows: bool = True
    # The operation's last statement in its transaction: the commit is sent with it and both are waited for
    # once (later statements of the operation run on their own, outside it). ``replayable``: running the whole
    # operation again after its reply was lost cannot store it twice, so a dead connection may be retried.
    commit: bool = False
    replayable: bool = False


@dataclass(frozen=True)
class Batch:
    """Statements sent together, waited for once; the operation gets the rows of each, in order."""

    queries: tuple[Query, ...]


def _last_read(sql: str, params: Mapping[str, Any]) -> Query:
    """The last statement of a read: its commit goes with it (one wait less), and a read can always be run
    again."""
    return Query(sql, params, commit=True, replayable=True)


# Messages are read in pages of this many rows (by ``seq``, inside the operation's snapshot), each decoded as
# it comes: a long session's raw rows never all sit in memory (100,000 messages of 5 KB: 500 MB of text).
CHUNK_ROWS = 500

Op = Generator[Query | Batch, Any, T]  # a Query gets its Rows, a Batch a list of them

# A tsvector holds at most 1 MiB and a lexeme at most 2047 bytes; a message whose distinct words exceed this
# (a pasted data dump) is indexed up to the limit.
MAX_LEXEME_BYTES = 2047
MAX_INDEX_BYTES = 900_000


def index_words(text: str) -> list[str]:
    """The lexemes stored for a message: exactly the words ``_search_text.text_matches`` would compare, so search
    matches on PostgreSQL as on every other backend (PostgreSQL's own parser splits e-mail addresses, URLs and
    hyphenated words differently, so it is not used)."""
    words: list[str] = []
    total = 0
    for word in search_terms(text):
        size = len(word.encode("utf-8")) + 4
        if size - 4 > MAX_LEXEME_BYTES:
            continue
        total += size
        if total > MAX_INDEX_BYTES:
            break
        words.append(word)
    return words


def tsquery(terms: Sequence[str]) -> str:
    """The AND of ``terms`` as quoted lexemes: no PostgreSQL query parsing, no normalisation, no injection."""
    return " & ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in terms)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


def info_from_row(row: Sequence[Any]) -> SessionInfo:
    """A ``sessions`` row (``_sql.SESSION_COLUMNS``) as a ``SessionInfo``."""
    sid, version, count, created, updated, title, owner, tags, model, system, expires, metadata, incarnation = row[:13]
    return SessionInfo(
        id=sid,
        version=int(version),
        created_at=created.astimezone(timezone.utc),
        updated_at=updated.astimezone(timezone.utc),
        message_count=int(count),
        title=title,
        owner=owner,
        tags=tuple(tags or ()),
        model=model,
        system=decode_json(system),
        expires_at=_utc(expires),
        metadata=decode_json(metadata) or {},
        incarnation=incarnation,
    )


def _utc_stamp(created: datetime) -> datetime:
    return created.astimezone(timezone.utc)


def _summary_from_row(row: Sequence[Any]) -> Summary:
    start, end, text, model, usage, created = row
    return Summary(
        start=int(start),
        end=int(end),
        text=decode_json(text),
        model=model,
        usage=decode_json(usage),
        created_at=created.astimezone(timezone.utc),
    )


# ----------------------------------------------------------------------------------------------------
# Migrations (run on an autocommit connection; ``Query(sql="BEGIN"/"COMMIT")`` frame each migration)


def migrate(st: Statements) -> Op[int]:
    """Create the schema and apply pending migrations, each in its own transaction, under an advisory lock so
    that several processes starting at once do not race. Returns the number of migrations applied."""
    # The lock is a session lock: if anything fails, the driver closes the connection, which releases it and
    # rolls back the migration in progress.
    key = {"key": advisory_lock_key(st.schema)}
    yield Query(st.lock, key)
    yield Query(st.create_schema)
    yield Query(st.create_migrations)
    applied = {int(row[0]) for row in (yield Query(st.applied_versions))}
    newer = [v for v in applied if v > LATEST_VERSION]
    if newer:
        raise ConfigurationError(
            f"the database schema {st.schema} is at version {max(newer)}, newer than this claude-history "
            f"supports ({LATEST_VERSION}); upgrade claude-history"
        )
    count = 0
    for version, name, sql in st.migrations:
        if version in applied:
            continue
        yield Query("BEGIN")
        yield Query(sql)
        yield Query(st.record_migration, {"version": version, "name": name})
        yield Query("COMMIT")
        count += 1
    yield Query(st.unlock, key)
    return count


# ----------------------------------------------------------------------------------------------------
# Reads


def load(st: Statements, session_id: str, now: int) -> Op[SessionData]:
    args = {"id": check_session_id(session_id), "now": from_us(now), "start": 0, "end": _NO_END}
    yield Query(st.snapshot, rows=False)  # one consistent view of the session row, its messages and summaries
    rows, runs, page, summary_rows = yield Batch((Query(st.get_session, args), Query(st.runs, args),
                                                  Query(st.own_page, {**args, "limit": CHUNK_ROWS}),
                                                  Query(st.summaries, args)))  # fmt: skip
    if not rows:
        raise SessionNotFound(session_id)
    messages = yield from _read_runs(st, rows[0][KEY_COLUMN], runs, 0, _NO_END, page)
    summaries = [_summary_from_row(row) for row in summary_rows]
    return SessionData(info=info_from_row(rows[0]), messages=messages, summaries=summaries)


def load_messages(st: Statements, session_id: str, start: int, stop: int | None, now: int) -> Op[list[StoredMessage]]:
    first, last = check_message_range(start, stop)
    args = {"id": check_session_id(session_id), "now": from_us(now), "start": first, "end": _NO_END}
    if last is not None:
        args["end"] = min(last, _NO_END)
    yield Query(st.snapshot, rows=False)  # the count and the rows from one view
    rows, runs, page = yield Batch((Query(st.get_session, args), Query(st.runs, args),
                                    Query(st.own_page, {**args, "limit": CHUNK_ROWS})))  # fmt: skip
    if not rows:
        raise SessionNotFound(session_id)
    first, last = clip_range(first, last, info_from_row(rows[0]).message_count)
    if first == last:
        return []
    return (yield from _read_runs(st, rows[0][KEY_COLUMN], runs, first, last, page))


_NO_END = 2**31 - 1  # past the last ``seq`` of any session


def _read_runs(st: Statements, key: str, runs: Rows, first: int, last: int, own: Rows) -> Op[list[StoredMessage]]:
    """Messages ``[first, last)`` of the session stored under ``key`` from its ``runs`` (``segments``: the rows
    a fork reads from its parents, then its own), page by page, each decoded as it arrives. ``own``: the first
    page of the session's own rows from ``first``, read already (an unforked session has one run: nothing more
    to ask)."""
    messages: list[StoredMessage] = []
    for run_key, run_low, run_high in runs:
        low, high = max(int(run_low), first), min(int(run_high), last)
        if low >= high:
            continue
        args = {"key": run_key, "start": low, "end": high, "limit": CHUNK_ROWS}
        page = own if run_key == key else (yield Query(st.messages_page, args))
        done = 0
        while True:
            messages += decode_messages(page, stamp=_utc_stamp, first_seq=low + done)
            done += len(page)
            if len(page) < CHUNK_ROWS or low + done >= high:
                break
            page = yield Query(st.messages_page, {**args, "start": low + done})
    return messages


def usage_log(st: Statements, session_id: str, now: int) -> Op[list[UsageRecord]]:
    args = {"id": check_session_id(session_id), "now": from_us(now)}
    yield Query(st.snapshot, rows=False)
    rows = yield Query(st.get_session, args)
    if not rows:
        raise SessionNotFound(session_id)
    rows = yield _last_read(st.usage_log, {"key": rows[0][KEY_COLUMN], "start": 0, "end": int(rows[0][COUNT_COLUMN])})
    return [UsageRecord(seq, model, decode_json(usage), _utc_stamp(created)) for seq, model, usage, created in rows]


def get_session(st: Statements, session_id: str, now: int) -> Op[SessionInfo]:
    rows = yield _last_read(st.get_session, {"id": check_session_id(session_id), "now": from_us(now)})
    if not rows:
        raise SessionNotFound(session_id)
    return info_from_row(rows[0])


def list_sessions(
    st: Statements,
    owner: str | None,
    tag: str | None,
    limit: int,
    offset: int,
    after: SessionCursor | None,
    now: int,
) -> Op[list[SessionInfo]]:
    check_page(limit, offset)
    check_filters(owner, tag)
    cursor = check_cursor(after)
    args: dict[str, Any] = {"owner": owner, "tag": tag, "limit": limit, "offset": offset, "now": from_us(now)}
    if cursor is not None:
        args.update(after_at=from_us(cursor[0]), after_id=cursor[1])
    statement = st.list_sessions(owner=owner is not None, tag=tag is not None, after=cursor is not None)
    rows = yield _last_read(statement, args)
    return [info_from_row(row) for row in rows]


def search(
    st: Statements, query: str, session_id: str | None, owner: str | None, limit: int, now: int
) -> Op[list[SearchHit]]:
    terms = search_terms(query)
    check_page(limit, 0)
    check_filters(owner)
    if session_id is not None:
        check_session_id(session_id)
    if not terms or limit == 0 or any(len(t.encode("utf-8")) > MAX_LEXEME_BYTES for t in terms):
        return []
    args = {"query": tsquery(terms), "id": session_id, "owner": owner, "limit": limit, "now": from_us(now)}
    if owner is None:
        statement = st.search_all if session_id is None else st.search_session
    else:
        statement = st.search_owner if session_id is None else st.search_session_owner
    rows = yield _last_read(statement, args)
    hits = []
    for sid, seq, role, message in rows:
        hits.append(SearchHit(sid, int(seq), role, make_snippet(message_text(decode_json(message)), terms)))
    return hits


# ----------------------------------------------------------------------------------------------------
# Writes


def _message_rows(rows: Sequence[tuple[str, str, str | None, str | None, datetime, str]]) -> dict[str, Any]:
    """Columns of a multi-row insert (``unnest`` of arrays): one statement, one round trip, whole turn."""
    return {
        "role": [r[0] for r in rows],
        "message": [r[1] for r in rows],
        "model": [r[2] for r in rows],
        "usage": [r[3] for r in rows],
        "created_at": [r[4] for r in rows],
        "words": ["{" + ",".join(_array_item(w) for w in index_words(r[5])) + "}" for r in rows],
    }


def _array_item(word: str) -> str:
    # A PostgreSQL array literal element, quoted (words are letters and digits, but quote anyway).
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def append(
    st: Statements,
    session_id: str,
    entries: Sequence[Entry],
    expected_version: int,
    incarnation: str | None,
    turn_id: str | None,
    lease: int | None,
    now: int,
    checkpoint: Mapping[str, Any] | None = None,
) -> Op[int]:
    encoded = check_append(session_id, entries, expected_version, incarnation, turn_id)
    check_lease(lease)
    kept = None if checkpoint is None else check_checkpoint(session_id, expected_version + 1, checkpoint)
    stamp = from_us(now)
    if lease is not None:
        newest = yield Query(st.newest_lease, {"id": session_id})
        fence(session_id, lease, int(newest[0][0]) if newest else None, expected_version, entries)
    args = {
        "id": session_id,
        "n": len(encoded),
        "expected": expected_version,
        "now": stamp,
        "incarnation": pinned_incarnation(incarnation),
        "new_incarnation": created_incarnation(incarnation),
        "turn": turn_id,
    }
    yield Query(st.drop_expired, args, rows=False)
    # A bare incarnation names a session read, which an append never creates (_cas.append_allowed).
    creates = expected_version == 0 and (incarnation is None or pinned_incarnation(incarnation) != incarnation)
    rows_of_turn = _message_rows([(e.role, e.message_json, e.model, e.usage_json, stamp, e.text) for e in encoded])
    checkpoint_args = {} if kept is None else {"cp_version": expected_version + 1, "cp_data": kept}
    # One statement swaps the version and inserts the rows (and the checkpoint); the commit goes with it. A
    # retry after a lost reply is safe when the turn has an id: the swap then fails and ``append_allowed`` finds
    # this very turn committed. Without an id it could not tell, so the runner does not retry it.
    rows = yield Query(st.append[creates, kept is not None], {**args, **rows_of_turn, **checkpoint_args},
                       commit=True, replayable=turn_id is not None)  # fmt: skip
    if rows:
        return expected_version + 1
    # The swap did not match (nothing was written): read why, after the commit (a read of its own).
    state = yield Query(st.append_state, args)
    actual, held, last = (int(state[0][0]), state[0][1], state[0][2]) if state else (0, None, None)
    if append_allowed(session_id, entries, expected_version, incarnation, turn_id, actual, held, lambda: last):
        raise conflict(session_id, expected_version, actual, entries)  # it changed between the two reads
    return expected_version + 1


def acquire_lease(st: Statements, session_id: str, ttl: float, now: int) -> Op[int | None]:
    check_session_id(session_id)
    rows = yield Query(st.acquire_lease, {"id": session_id, "ttl": ttl_us(ttl) / 1_000_000})
    return int(rows[0][0]) if rows else None


def release_lease(st: Statements, session_id: str, token: int, now: int) -> Op[None]:
    check_session_id(session_id)
    check_lease(token)
    yield Query(st.release_lease, {"id": session_id, "token": token})


def update_session(
    st: Statements, session_id: str, changes: Mapping[str, Any], create: bool, now: int
) -> Op[SessionInfo]:
    check_session_id(session_id)
    rest, incarnation = pop_incarnation(dict(changes))
    fields = check_session_changes(rest)
    stamp = from_us(now)
    args: dict[str, Any] = {"id": session_id, "now": stamp, "pinned": incarnation}
    args.update(fields)
    if "tags" in fields:
        args["tags"] = list(fields["tags"])
    if "system" in fields:
        args["system"] = None if fields["system"] is None else dumps(fields["system"])
    if "metadata" in fields:
        args["metadata"] = dumps(fields["metadata"])
    yield Query(st.drop_expired, args)
    if create and incarnation is None:  # a write built from a session read never creates one
        yield Query(st.create_empty, {**args, "incarnation": new_incarnation()})
    rows = yield Query(st.update_session(fields), args)
    if not rows:
        actual = yield Query(st.live_version, args)
        if actual:  # there, but another incarnation than the one the write was built from
            raise conflict(session_id, int(actual[0][0]), int(actual[0][0]), replaced=True)
        raise SessionNotFound(session_id)
    info = info_from_row(rows[0])
    if info.expires_at is not None and to_us(info.expires_at) <= now:
        yield Query(st.drop_expired, args)  # set to a past time: it expires now, as it would anywhere
    return info


def delete(st: Statements, session_id: str) -> Op[bool]:
    rows = yield Query(st.delete_session, {"id": check_session_id(session_id)})
    return bool(rows)


def save_summary(st: Statements, session_id: str, summary: Summary, now: int) -> Op[None]:
    args: dict[str, Any] = {"id": check_session_id(session_id), "now": from_us(now)}
    rows = yield Query(st.lock_session, args)  # locked: a concurrent rewind cannot shrink the log under us
    if not rows:
        raise SessionNotFound(session_id)
    check_summary(summary, int(rows[0][COUNT_COLUMN]))
    args.update(
        start=summary.start,
        end=summary.end,
        text=dumps(summary.text),
        model=summary.model,
        usage=None if summary.usage is None else dumps(dict(summary.usage)),
        created_at=summary.created_at or from_us(now),
    )
    yield Query(st.insert_summary, args)


def load_checkpoint(st: Statements, session_id: str, now: int) -> Op[tuple[int, dict[str, Any]] | None]:
    rows = yield _last_read(st.load_checkpoint, {"id": check_session_id(session_id), "now": from_us(now)})
    return decode_checkpoint(rows[0][0], rows[0][1]) if rows else None


def save_checkpoint(
    st: Statements, session_id: str, version: int, data: Mapping[str, Any], now: int
) -> Op[None]:
    text = check_checkpoint(session_id, version, data)
    yield Query(st.save_checkpoint, {"id": session_id, "version": version, "data": text, "now": from_us(now)})


def purge_expired(st: Statements, now: int) -> Op[int]:
    rows = yield Query(st.purge_expired, {"now": from_us(now)})
    return len(rows)


def truncate(
    st: Statements, session_id: str, to: int, expected_version: int, now: int, incarnation: str | None = None
) -> Op[int]:
    """Keep messages ``[0, to)``: the compare-and-swap step of ``rewind`` (``StoreBase._truncate``), on the
    version and, when given, the incarnation."""
    args = {
        "id": session_id,
        "to": to,
        "expected": expected_version,
        "now": from_us(now),
        "incarnation": pinned_incarnation(check_token("incarnation", incarnation)),
    }
    rows = yield Query(st.truncate_session, args)
    if not rows:
        actual = yield Query(st.live_version, args)
        if not actual:
            raise SessionNotFound(session_id)
        version = int(actual[0][0])
        raise conflict(session_id, expected_version, version, replaced=version == expected_version)
    yield Query(st.truncate_messages, {**args, "key": rows[0][1]})  # forks reading the cut rows copy them first
    yield Query(st.truncate_summaries, args)
    return int(rows[0][0])


TAIL_CHUNK = 16  # messages read per step, growing 4x, when looking for the start of the last turn


def rewind(
    st: Statements,
    session_id: str,
    to: int | None,
    expected_version: int | None,
    now: int,
    incarnation: str | None = None,
) -> Op[int]:
    """Rewind in one transaction with the session row locked: no retry loop, and finding the last turn
    reads the tail of the log, not all of it (the cut of ``_rewind_fork.rewind_target``: the last turn start).
    """
    args: dict[str, Any] = {"id": check_session_id(session_id), "now": from_us(now)}
    if expected_version is not None:
        check_expected_version(expected_version)
    rows = yield Query(st.lock_session, args)
    if not rows:
        raise SessionNotFound(session_id)
    info = info_from_row(rows[0])
    if expected_version is not None and info.version != expected_version:
        raise conflict(session_id, expected_version, info.version)
    count = info.message_count
    if to is None:
        to = yield from _last_turn_start(st, rows[0][KEY_COLUMN], count)
    else:  # ``rewind_target`` only needs the length to check an explicit index
        to = rewind_target(cast(Sequence[Mapping[str, Any]], range(count)), to)
    return (yield from truncate(st, session_id, to, info.version, now, incarnation))


def _last_turn_start(st: Statements, key: str, count: int) -> Op[int]:
    end, size = count, TAIL_CHUNK
    while end > 0:
        start = max(0, end - size)
        rows = yield Query(st.message_range, {"key": key, "start": start, "end": end})
        found = last_turn_start([decode_json(row[0]) for row in rows])
        if found is not None:
            return start + found
        end, size = start, size * 4
    raise ConfigurationError("the session has no turn to rewind")


def fork(st: Statements, session_id: str, at: int | None, new_id: str | None, now: int) -> Op[str]:
    """Copy-on-write: the fork's row reads messages ``[0, at)`` from the session's rows (``_sql`` migration 5),
    whatever the length; only the metadata and the summaries inside the prefix are copied. Same result as
    ``_rewind_fork.fork_session``: version 1 if it has messages, else 0. The session stays locked (shared) until
    the commit, so a rewind or delete of it waits and then sees the fork."""
    args: dict[str, Any] = {"id": check_session_id(session_id), "now": from_us(now)}
    rows = yield Query(st.get_session + " FOR SHARE", args)
    if not rows:
        raise SessionNotFound(session_id)
    count = int(rows[0][COUNT_COLUMN])
    if at is None:
        at = count
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= count:
        raise ConfigurationError(f"fork point must be an index from 0 to {count}, got {at!r}")
    target = check_session_id(new_id) if new_id is not None else new_session_id()
    args.update(new_id=target, at=at, version=1 if at else 0, incarnation=new_incarnation())
    yield Query(st.drop_expired, {"id": target, "now": args["now"]})
    created = yield Query(st.fork_session, args)
    if not created:
        actual = yield Query(st.live_version, {"id": target, "now": args["now"]})
        raise conflict(target, 0, int(actual[0][0]) if actual else 0)
    yield Query(st.fork_summaries, args)
    return target


CREATE_CHUNK = 2000  # messages per insert statement when creating a whole session (imports)


def create(st: Statements, data: SessionData, now: int) -> Op[None]:
    """Insert a whole session (import): ``_base_classes.StoreBase._create``."""
    info = data.info
    session_id = check_session_id(info.id)
    for name in ("title", "owner", "model"):
        check_optional_str(name, getattr(info, name))
    stamp = from_us(now)
    yield Query(st.drop_expired, {"id": session_id, "now": stamp})
    created = yield Query(
        st.create_session,
        {
            "id": session_id,
            "version": info.version,
            "message_count": len(data.messages),
            "created_at": info.created_at,
            "updated_at": info.updated_at,
            "title": info.title,
            "owner": info.owner,
            "tags": list(info.tags),
            "model": info.model,
            "system": None if info.system is None else dumps(info.system),
            "expires_at": info.expires_at,
            "metadata": dumps(info.metadata),
            "incarnation": info.incarnation or new_incarnation(),
        },
    )
    if not created:
        actual = yield Query(st.live_version, {"id": session_id, "now": stamp})
        raise conflict(session_id, 0, int(actual[0][0]) if actual else 0)
    for start in range(0, len(data.messages), CREATE_CHUNK):
        chunk = data.messages[start : start + CREATE_CHUNK]
        rows = []
        for stored in chunk:
            check_optional_str("model", stored.model)
            rows.append(
                (
                    stored.role,
                    dumps(stored.message),
                    stored.model,
                    None if stored.usage is None else dumps(stored.usage),
                    stored.created_at,
                    message_text(stored.message),
                )
            )
        values = {"key": created[0][0], "seq": list(range(start, start + len(rows))), **_message_rows(rows)}
        yield Query(st.insert_messages, values)
    for summary in data.summaries:
        yield Query(
            st.insert_summary,
            {
                "id": session_id,
                "start": summary.start,
                "end": summary.end,
                "text": dumps(summary.text),
                "model": summary.model,
                "usage": None if summary.usage is None else dumps(dict(summary.usage)),
                "created_at": summary.created_at or stamp,
            },
        )
