"""The Redis store's operations, written once for the sync and the async store.

Each operation is a generator yielding ``Call`` (run a Lua script from ``_lua``) or ``Tx`` (commands in
one MULTI/EXEC transaction) and receiving the reply; ``RedisStore`` and ``AsyncRedisStore`` only differ in how
they send them. The key layout and the record format are defined here once.

Key layout (``P`` is the configurable prefix, ``claude_history:`` by default)::

    P session:<id>     hash: version, created, updated, expires (integer microseconds), title, owner, model,
                       tags / system / metadata (JSON); a fork's: parent (the storage key it reads) and at (its
                       fork point); f:<key> for each fork reading the session (``_lua``'s fork chain)
    P messages:<id>    list: one record per message, "<[created_us, model, usage] JSON>\\n<message JSON>"; a
                       fork's holds its own messages, seq ``at`` first
    P summaries:<id>   list: "<end>\\n<summary JSON>"
    P index            sorted set: every session, score -updated_us (most recent first, ties by id)
    P owner:<owner>    sorted set: the sessions of one owner, same scores
    P tag:<tag>        sorted set: the sessions with one tag, same scores
    P expiry           sorted set: sessions with an expiry, score expires_us (for purge_expired)
    P refs             hash: id -> the owner/tag sets of an expiring session, to clean them after Redis
                       expired the session itself
    P word:<term>      set: the sessions with a message holding the word (the word index: ``_lua``)
    P postings:<id>:<term>  set: the positions of the messages of one session holding the word
    P terms:<id>       list: each message's words, space-separated (parallel to messages:<id>)
    P vocab:<id>       set: every word of one session (no expiry: ``purge`` unindexes with it)
    P indexed          set: the sessions whose word index is complete

A deleted session that forks still read keeps its messages (and their index keys) under a ghost key in place of
the id: a NUL first, so no id is one (``_lua.ghost``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    check_page,
    check_session_changes,
    check_session_id,
    check_summary,
    new_session_id,
)
from .._json import decode_json, dumps, fast_decoder
from .._leases import check_lease, fence, ttl_us
from .._messages import check_append
from .._messages import stored_message as _stored_message
from .._paging import check_cursor
from .._rewind_fork import REWIND_RETRIES, rewind_target
from .._search_text import make_snippet, message_text, search_terms, text_matches
from .._times import from_us, is_expired, to_us
from ..base import Entry, SearchHit, SessionCursor, SessionData, SessionInfo, StoredMessage, Summary, UsageRecord

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Run the Lua script ``script`` (the layout header is prepended by the driver)."""

    script: str
    args: Sequence[str | int]


@dataclass(frozen=True)
class Tx:
    """Run ``commands`` in one MULTI/EXEC transaction: a consistent snapshot for reads."""

    commands: Sequence[tuple[str | int, ...]]


Op = Generator[Call | Tx, Any, T]

DEFAULT_PREFIX = "claude_history:"
SCAN_PAGE = 200  # sessions per step when searching all sessions
MESSAGE_PAGE = 256  # messages per step when scanning one session (one written before the word index)
INDEX_CHUNK = 2_000  # messages a write's script indexes itself; the rest go in index_more scripts (``_lua``)
INDEX_BATCH = 1  # sessions whose positions the first step of an indexed search reads (then 4x more each step)
INDEX_TERMS = 64  # at most this many query words are looked up in the index; every hit is checked on all
TAIL_CHUNK = 16  # messages read per step, growing 4x, when looking for the start of the last turn
PURGE_BATCH = 500


class Layout:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or "\x00" in prefix:
            raise ConfigurationError(f"prefix must be a string without NUL characters, got {prefix!r}")
        self.prefix = prefix
        self.session = prefix + "session:"
        self.messages = prefix + "messages:"
        self.summaries = prefix + "summaries:"
        self.owner = prefix + "owner:"
        self.tag = prefix + "tag:"
        self.index = prefix + "index"
        self.expiry = prefix + "expiry"
        self.refs = prefix + "refs"
        self.lease = prefix + "lease:"  # the holder of a session's turn lease (SET NX PX)
        self.fence = prefix + "fence:"  # the newest fencing token taken on a session (INCR)
        self.checkpoint = prefix + "checkpoint:"  # the planner checkpoint: version, incarnation, data
        self.word = prefix + "word:"
        self.postings = prefix + "postings:"
        self.vocab = prefix + "vocab:"
        self.terms = prefix + "terms:"
        self.indexed = prefix + "indexed"
        # The first arguments of every Lua script, in the order ``_lua.PRELUDE`` reads them.
        self.header = [
            self.session,
            self.messages,
            self.summaries,
            self.owner,
            self.tag,
            self.index,
            self.expiry,
            self.refs,
            self.lease,
            self.fence,
            self.word,
            self.postings,
            self.vocab,
            self.terms,
            self.indexed,
            self.checkpoint,
        ]


# ---------------------------------------------------------------------------------------------------------
# Records


def message_record(created_us: int, model: str | None, usage_json: str | None, message_json: str) -> str:
    """The message JSON is kept verbatim after the first newline (the metadata line has none: JSON escapes
    newlines), so what is loaded is exactly what was appended."""
    return f"[{created_us},{dumps(model)},{usage_json or 'null'}]\n{message_json}"


def stored_message(seq: int, record: str) -> StoredMessage:
    meta, _, body = record.partition("\n")
    created, model, usage = decode_json(meta)
    return _stored_message(seq, decode_json(body), model, usage, from_us(created))


def stored_messages(records: Sequence[str]) -> list[StoredMessage]:
    """A whole log (seq 0, 1, ...): ``stored_message`` for each, each distinct timestamp converted once.

    The records are decoded in one parse, as the JSON array ``[meta, body, meta, body, ...]`` (each record's
    first newline, between its metadata line and its body, becomes a comma): a load of 4,000 messages took
    about a third of the time of 8,000 separate decodes. The parse is jiter's, the one ``decode_json`` uses
    first, so each value is what ``decode_json`` gives; when jiter refuses the whole (a lone surrogate, a
    message nested 200 deep) or the array is not the expected shape, each record is decoded on its own."""
    values = _decoded_together(records)
    stamps: dict[int, datetime] = {}
    messages = []
    for seq, record in enumerate(records):
        if values is None:
            meta, _, body = record.partition("\n")
            (created, model, usage), message = decode_json(meta), decode_json(body)
        else:
            (created, model, usage), message = values[2 * seq], values[2 * seq + 1]
        created_at = stamps.get(created)
        if created_at is None:
            created_at = stamps[created] = from_us(created)
        messages.append(_stored_message(seq, message, model, usage, created_at))
    return messages


def _decoded_together(records: Sequence[str]) -> list[Any] | None:
    """``[meta, body, ...]`` of ``records`` from one jiter parse, or None (decode them one by one)."""
    fast = fast_decoder()
    if fast is None or not records:
        return None
    try:
        text = "[" + ",".join([record.replace("\n", ",", 1) for record in records]) + "]"
        values = fast(text.encode("utf-8"), allow_inf_nan=False, cache_mode="keys")
    except (ValueError, TypeError, AttributeError):  # refused by jiter, or a record not text: one by one
        return None
    if not isinstance(values, list) or len(values) != 2 * len(records):
        return None
    for meta, body in zip(values[::2], values[1::2], strict=True):
        if type(meta) is not list or len(meta) != 3 or type(body) is not dict:
            return None
    return values


def words_line(text: str) -> str:
    """A message's words for the word index, space-separated: the words ``text_matches`` compares (none holds
    a space)."""
    return " ".join(search_terms(text))


def summary_record(summary: Summary, created_us: int) -> str:
    """``<end>`` first, so the scripts can drop summaries past a cut without parsing JSON."""
    body = {
        "start": summary.start,
        "end": summary.end,
        "text": summary.text,
        "model": summary.model,
        "usage": None if summary.usage is None else dict(summary.usage),
        "created_at": created_us,
    }
    return f"{summary.end}\n{dumps(body)}"


def stored_summary(record: str) -> Summary:
    body = json.loads(record.partition("\n")[2])
    return Summary(
        start=body["start"],
        end=body["end"],
        text=body["text"],
        model=body["model"],
        usage=body["usage"],
        created_at=from_us(body["created_at"]),
    )


def info_from_hash(session_id: str, fields: Mapping[str, str], count: int) -> SessionInfo:
    expires = fields.get("expires")
    return SessionInfo(
        id=session_id,
        version=int(fields["version"]),
        created_at=from_us(int(fields["created"])),
        updated_at=from_us(int(fields["updated"])),
        message_count=int(count),
        title=fields.get("title"),
        owner=fields.get("owner"),
        tags=tuple(json.loads(fields["tags"])) if "tags" in fields else (),
        model=fields.get("model"),
        system=decode_json(fields.get("system")),
        expires_at=None if expires is None else from_us(int(expires)),
        metadata=decode_json(fields.get("metadata")) or {},
        incarnation=fields.get("inc"),
    )


def _count(fields: Mapping[str, str], own: int) -> int:
    """A session's message count: what it reads of its fork parent (``at``, 0 without one) and its own ``own``."""
    return int(fields.get("at", 0)) + own


def _read(
    keys: Layout, sid: str, first: int, last: int | None, summaries: bool = False
) -> Op[tuple[dict[str, str], list[str], list[str]]]:
    """The session's hash, its records ``[first, last)`` (``None``: to the end) and, if asked, its summary
    records, in one consistent read: a transaction for a session of its own, the ``read`` script across the
    chain for a fork (``parent`` in its hash; a fork costs one more round trip)."""
    commands: list[tuple[str | int, ...]] = [
        ("HGETALL", keys.session + sid),
        ("LRANGE", keys.messages + sid, first, -1 if last is None else last - 1),
    ]
    if summaries:
        commands.append(("LRANGE", keys.summaries + sid, 0, -1))
    replies = yield Tx(commands)
    if "parent" not in replies[0]:
        return replies[0], replies[1], replies[2] if summaries else []
    flat, records, kept = yield Call("read", [sid, first, "" if last is None else last, 1 if summaries else 0])
    return _pairs(flat), records, kept


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _live(fields: Mapping[str, str], now: int) -> bool:
    """Present and not expired by this client's clock (Redis may not have dropped it yet)."""
    if not fields:
        return False
    expires = fields.get("expires")
    return not is_expired(None if expires is None else int(expires), now)


def _expires_ms(expires_us: int) -> int:
    return math.ceil(expires_us / 1000)


def _hash_fields(info: SessionInfo) -> list[str]:
    fields: list[str] = [
        "version",
        str(info.version),
        "created",
        str(to_us(info.created_at)),
        "updated",
        str(to_us(info.updated_at)),
        "tags",
        dumps(list(info.tags)),
        "metadata",
        dumps(info.metadata),
        "inc",
        info.incarnation or new_incarnation(),
    ]
    for name in ("title", "owner", "model"):
        value = getattr(info, name)
        if value is not None:
            fields += [name, value]
    if info.system is not None:
        fields += ["system", dumps(info.system)]
    if info.expires_at is not None:
        fields += ["expires", str(to_us(info.expires_at))]
    return fields


# ---------------------------------------------------------------------------------------------------------
# Reads


def load(keys: Layout, session_id: str, now: int) -> Op[SessionData]:
    sid = check_session_id(session_id)
    fields, records, summaries = yield from _read(keys, sid, 0, None, summaries=True)
    if not _live(fields, now):
        raise SessionNotFound(session_id)
    return SessionData(
        info=info_from_hash(sid, fields, len(records)),
        messages=stored_messages(records),
        summaries=[stored_summary(record) for record in summaries],
    )


def load_messages(keys: Layout, session_id: str, start: int, stop: int | None, now: int) -> Op[list[StoredMessage]]:
    sid = check_session_id(session_id)
    first, last = check_message_range(start, stop)
    if last is not None and last <= first:  # LRANGE would read to the end: only check the session exists
        yield from get_session(keys, session_id, now)
        return []
    # LRANGE (and the read script) cut a range past the end to the list, as clip_range does.
    fields, records, _ = yield from _read(keys, sid, first, last)
    if not _live(fields, now):
        raise SessionNotFound(session_id)
    return [stored_message(first + i, record) for i, record in enumerate(records)]


def usage_log(keys: Layout, session_id: str, now: int) -> Op[list[UsageRecord]]:
    """Each record's first line holds its time, model and usage: the message bodies are not decoded."""
    sid = check_session_id(session_id)
    fields, records, _ = yield from _read(keys, sid, 0, None)
    if not _live(fields, now):
        raise SessionNotFound(session_id)
    found = []
    for seq, record in enumerate(records):
        created, model, usage = decode_json(record.partition("\n")[0])
        if usage is not None:
            found.append(UsageRecord(seq, model, usage, from_us(created)))
    return found


def get_session(keys: Layout, session_id: str, now: int) -> Op[SessionInfo]:
    sid = check_session_id(session_id)
    fields, own = yield Tx([("HGETALL", keys.session + sid), ("LLEN", keys.messages + sid)])
    if not _live(fields, now):
        raise SessionNotFound(session_id)
    return info_from_hash(sid, fields, _count(fields, own))


def list_sessions(
    keys: Layout,
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
    if limit == 0:
        return []
    zset = keys.tag + tag if tag is not None else keys.owner + owner if owner is not None else keys.index
    want_owner = tag is not None and owner is not None
    bound = ["", ""] if cursor is None else [str(-cursor[0]), cursor[1]]  # scores are -updated
    rows = yield Call("list", [zset, now, offset, limit, "1" if want_owner else "0", owner or "", *bound])
    return [info_from_hash(sid, _pairs(flat), count) for sid, flat, count in rows]


def search(
    keys: Layout, query: str, session_id: str | None, owner: str | None, limit: int, now: int
) -> Op[list[SearchHit]]:
    """The word index (``_lua``) names the sessions holding every word and, in each, the messages; sessions
    are read most recently updated first (the listing's order), each one's hits in order, until ``limit``.
    Only the hits are read and decoded, and each is checked with ``text_matches`` (so the hits are exactly
    a scan's). Sessions written before the index existed are scanned, as before."""
    terms = search_terms(query)
    check_page(limit, 0)
    check_filters(owner)
    if session_id is not None:
        check_session_id(session_id)
    hits: list[SearchHit] = []
    if not terms or limit == 0:
        return hits
    looked_up = terms[:INDEX_TERMS]
    zset = keys.index if owner is None else keys.owner + owner
    rows = yield Call("search", [zset, session_id or "", *looked_up])
    # The listing's order: score (-updated), ties by id in byte order (code-point order of the str).
    candidates = sorted(rows, key=lambda row: (float(row[1]) if row[1] else 0.0, row[0]))
    first, size = 0, INDEX_BATCH
    while first < len(candidates):
        # A few sessions first (a common word's positions are many), more at each step, up to SCAN_PAGE.
        batch = candidates[first : first + size]
        first, size = first + size, min(size * 4, SCAN_PAGE)
        commands: list[tuple[str | int, ...]] = []
        for sid, _, indexed, sources in batch:
            commands.append(("HGETALL", keys.session + sid))
            # The positions in each storage key holding messages of the session (``_lua.SEARCH``).
            for key in sources[::2] if indexed else ():
                commands.append(("SINTER", *(f"{keys.postings}{key}:{term}" for term in looked_up)))
            if not indexed:
                commands.append(("LRANGE", keys.messages + sid, 0, MESSAGE_PAGE - 1))
        replies = iter((yield Tx(commands)))
        for sid, _, indexed, sources in batch:
            fields = next(replies)
            if indexed:
                seqs = {int(seq) for bound in sources[1::2] for seq in next(replies) if bound < 0 or int(seq) < bound}
            else:
                page = next(replies)
            # The hash decides, not the sorted set: it may list a session whose owner just changed.
            if not _live(fields, now) or (owner is not None and fields.get("owner") != owner):
                continue
            if indexed:
                done = yield from _read_hits(keys, sid, fields, sorted(seqs), terms, hits, limit)
            else:
                done = yield from _scan(keys, sid, fields, page, terms, owner, hits, limit, now)
            if done:
                return hits
    return hits


def _read_hits(
    keys: Layout,
    sid: str,
    fields: Mapping[str, str],
    seqs: list[int],
    terms: list[str],
    hits: list[SearchHit],
    limit: int,
) -> Op[bool]:
    """Read the messages at ``seqs`` (a few at a time: only as many as ``limit`` can still take) and keep
    those that match; True once ``limit`` is reached. A fork's are read across its chain (``read_at``)."""
    position = 0
    while position < len(seqs):
        chunk = seqs[position : position + limit - len(hits)]
        position += len(chunk)
        if "parent" in fields:
            records = yield Call("read_at", [sid, *chunk])
        else:
            records = yield Tx([("LINDEX", keys.messages + sid, seq) for seq in chunk])
        for seq, record in zip(chunk, records, strict=True):
            if record is None:
                continue  # rewound meanwhile
            message = stored_message(seq, record).message
            text = message_text(message)
            if text_matches(text, terms):
                hits.append(SearchHit(sid, seq, message["role"], make_snippet(text, terms)))
                if len(hits) >= limit:
                    return True
    return False


def _scan(
    keys: Layout,
    sid: str,
    fields: Mapping[str, str],
    records: Sequence[str],
    terms: list[str],
    owner: str | None,
    hits: list[SearchHit],
    limit: int,
    now: int,
) -> Op[bool]:
    """Scan a session that is not in the word index, a page at a time from ``records`` (its first page, read
    again across the chain for a fork)."""
    start = 0
    if "parent" in fields:
        fields, records, _ = yield from _read(keys, sid, 0, MESSAGE_PAGE)
    while _live(fields, now) and (owner is None or fields.get("owner") == owner):
        for offset, record in enumerate(records):
            message = stored_message(start + offset, record).message
            text = message_text(message)
            if text_matches(text, terms):
                hits.append(SearchHit(sid, start + offset, message["role"], make_snippet(text, terms)))
                if len(hits) >= limit:
                    return True
        if len(records) < MESSAGE_PAGE:
            break
        start += MESSAGE_PAGE
        fields, records, _ = yield from _read(keys, sid, start, start + MESSAGE_PAGE)
    return False


def rebuild_search_index(keys: Layout, now: int) -> Op[int]:
    """Index the sessions whose word index is not in step: written before the index existed, or changed by an
    app server of a version without it (the hash's ``ix`` differs from the message count). Each is read, split
    into words here, and indexed by ``index_session`` if it has not changed meanwhile (else read again).
    Returns how many sessions were indexed."""
    (sids,) = yield Tx([("ZRANGE", keys.index, 0, -1)])
    done = 0
    for first in range(0, len(sids), SCAN_PAGE):
        page = sids[first : first + SCAN_PAGE]
        replies = yield Tx(
            [
                command
                for sid in page
                for command in (
                    ("SISMEMBER", keys.indexed, sid),
                    ("HMGET", keys.session + sid, "ix", "at"),
                    ("LLEN", keys.messages + sid),
                )
            ]
        )
        for sid, member, (ix, at), own in zip(page, replies[::3], replies[1::3], replies[2::3], strict=True):
            if member and ix is not None and int(ix) == int(at or 0) + own:
                continue
            for _ in range(REWIND_RETRIES):
                fields, records = yield Tx([("HGETALL", keys.session + sid), ("LRANGE", keys.messages + sid, 0, -1)])
                if not _live(fields, now):
                    break
                # A fork's own messages only (its list): what it reads is indexed where it is stored.
                words = [words_line(message_text(message.message)) for message in stored_messages(records)]
                head = words[:INDEX_CHUNK]
                reply = yield Call("index_session", [sid, now, fields["version"], len(words), *head])
                if reply != -1:
                    yield from _index_rest(sid, fields["version"], fields.get("inc", ""), len(head), words)
                    done += reply
                    break
    return done


# ---------------------------------------------------------------------------------------------------------
# Writes


def append(
    keys: Layout,
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
    records = [message_record(now, e.model, e.usage_json, e.message_json) for e in encoded]
    check_lease(lease)
    kept = "" if checkpoint is None else check_checkpoint(session_id, expected_version + 1, checkpoint)
    # A bare incarnation names a session read, which an append never creates (_cas.append_allowed): no
    # incarnation to create under ('') tells the script so.
    pinned = pinned_incarnation(incarnation)
    new = "" if pinned is not None and pinned == incarnation else created_incarnation(incarnation)
    tokens = [pinned or "", new, turn_id or "", "" if lease is None else str(lease)]
    words = [words_line(e.text) for e in encoded]
    head = words[:INDEX_CHUNK]
    reply = yield Call(
        "append", [session_id, expected_version, now, *tokens, len(records), *records, len(head), *head, kept]
    )
    if reply[0] == 2:
        fence(session_id, lease, int(reply[1]) if reply[1] else None, expected_version, entries)
    if reply[0] != 1:
        actual, held, last = int(reply[1]), reply[2] or None, reply[3] or None
        if append_allowed(session_id, entries, expected_version, incarnation, turn_id, actual, held, lambda: last):
            raise conflict(session_id, expected_version, actual, entries)  # not reached: the script decided
        return expected_version + 1
    yield from _index_rest(session_id, reply[1], reply[3], int(reply[2]) + len(head), words[len(head) :])
    return int(reply[1])


def _index_rest(sid: str, version: str | int, incarnation: str, first: int, words: Sequence[str]) -> Op[None]:
    """Index the messages from seq ``first`` on of a long write, whose script indexed only its first
    ``INDEX_CHUNK``: a script per chunk (``_lua.INDEX_MORE``), each a fraction of a second. Until the last, the
    session's index is behind and search scans it; a write in between drops it (rebuild_search_index)."""
    for offset in range(0, len(words), INDEX_CHUNK):
        chunk = words[offset : offset + INDEX_CHUNK]
        if not (yield Call("index_more", [sid, version, incarnation, first + offset, *chunk])):
            return


def acquire_lease(keys: Layout, session_id: str, ttl: float, now: int) -> Op[int | None]:
    check_session_id(session_id)
    reply = yield Call("acquire_lease", [session_id, -(-ttl_us(ttl) // 1000)])
    return None if reply is None else int(reply)


def release_lease(keys: Layout, session_id: str, token: int, now: int) -> Op[None]:
    check_session_id(session_id)
    check_lease(token)
    yield Call("release_lease", [session_id, token])


def update_session(
    keys: Layout, session_id: str, changes: Mapping[str, Any], create: bool, now: int
) -> Op[SessionInfo]:
    check_session_id(session_id)
    rest, pinned = pop_incarnation(dict(changes))
    fields = check_session_changes(rest)
    to_set: list[str] = []
    to_delete: list[str] = []
    expires_ms = ""
    for name, value in fields.items():
        field = "expires" if name == "expires_at" else name
        if value is None:
            to_delete.append(field)
            if name == "expires_at":
                expires_ms = "0"
        elif name in ("tags", "system", "metadata"):
            to_set += [field, dumps(list(value) if name == "tags" else value)]
        elif name == "expires_at":
            expires_us = to_us(value)
            to_set += [field, str(expires_us)]
            expires_ms = str(_expires_ms(expires_us))
        else:
            to_set += [field, value]
    # '2': a write built from the session of incarnation ``pinned`` (passed where a created one's would be).
    mode, inc = ("2", pinned) if pinned is not None else ("1" if create else "0", new_incarnation())
    reply = yield Call("update", [session_id, now, mode, expires_ms, inc, len(to_set) // 2, *to_set, *to_delete])
    if reply[0] == 2:
        raise conflict(session_id, int(reply[1]), int(reply[1]), replaced=True)
    if reply[0] != 1:
        raise SessionNotFound(session_id)
    return info_from_hash(session_id, _pairs(reply[1]), reply[2])


def delete(keys: Layout, session_id: str) -> Op[bool]:
    reply = yield Call("delete", [check_session_id(session_id)])
    return bool(reply)


def load_checkpoint(keys: Layout, session_id: str, now: int) -> Op[tuple[int, dict[str, Any]] | None]:
    sid = check_session_id(session_id)
    session, kept = yield Tx(
        [
            ("HMGET", keys.session + sid, "version", "expires", "inc"),
            ("HMGET", keys.checkpoint + sid, "version", "inc", "data"),
        ]
    )
    fields = {name: value for name, value in zip(("version", "expires"), session, strict=False) if value is not None}
    version, inc, data = kept
    if not _live(fields, now) or version is None or data is None or inc != (session[2] or ""):
        return None
    return decode_checkpoint(int(version), data)


def save_checkpoint(keys: Layout, session_id: str, version: int, data: Mapping[str, Any], now: int) -> Op[None]:
    text = check_checkpoint(session_id, version, data)
    yield Call("checkpoint", [session_id, now, version, text])


def save_summary(keys: Layout, session_id: str, summary: Summary, now: int) -> Op[None]:
    info = yield from get_session(keys, session_id, now)
    check_summary(summary, info.message_count)
    record = summary_record(summary, now if summary.created_at is None else to_us(summary.created_at))
    reply = yield Call("summary", [session_id, summary.end, now, record])
    if reply[0] == -1:
        raise SessionNotFound(session_id)
    if reply[0] == -2:  # a rewind shortened the log meanwhile
        check_summary(summary, int(reply[1]))


def purge_expired(keys: Layout, now: int) -> Op[int]:
    total = 0
    while True:
        purged = int((yield Call("purge", [now, PURGE_BATCH])))
        total += purged
        if purged < PURGE_BATCH:
            return total


def truncate(
    keys: Layout, session_id: str, to: int, expected_version: int, now: int, incarnation: str | None = None
) -> Op[int]:
    """Keep messages ``[0, to)`` with compare-and-swap on the version and, when given, the incarnation
    (``StoreBase._truncate``)."""
    token = pinned_incarnation(check_token("incarnation", incarnation)) or ""
    reply = yield Call("truncate", [session_id, to, expected_version, now, token])
    if reply[0] == -1:
        raise SessionNotFound(session_id)
    if reply[0] == 0:
        actual = int(reply[1])
        raise conflict(session_id, expected_version, actual, replaced=actual == expected_version)
    return int(reply[1])


def rewind(
    keys: Layout,
    session_id: str,
    to: int | None,
    expected_version: int | None,
    now: int,
    incarnation: str | None = None,
) -> Op[int]:
    """Find the cut from the tail of the log (not all of it), then truncate with compare-and-swap; without
    ``expected_version``, a writer slipping in between makes it look again, as ``StoreBase.rewind`` does."""
    sid = check_session_id(session_id)
    if expected_version is not None:
        check_expected_version(expected_version)
    token = pinned_incarnation(check_token("incarnation", incarnation)) or ""
    for attempt in range(REWIND_RETRIES):
        fields, own = yield Tx([("HGETALL", keys.session + sid), ("LLEN", keys.messages + sid)])
        if not _live(fields, now):
            raise SessionNotFound(session_id)
        count = _count(fields, own)
        version = int(fields["version"])
        if expected_version is not None and version != expected_version:
            raise conflict(session_id, expected_version, version)
        if to is None:
            target = yield from _last_turn_start(keys, sid, count)
        else:
            # ``rewind_target`` only needs the length to check an explicit index.
            target = rewind_target(cast(Sequence[Mapping[str, Any]], range(count)), to)
        reply = yield Call("truncate", [sid, target, version, now, token])
        if reply[0] == 1:
            return int(reply[1])
        if reply[0] == -1:
            raise SessionNotFound(session_id)
        actual = int(reply[1])
        if expected_version is not None or attempt == REWIND_RETRIES - 1 or actual == version:
            raise conflict(session_id, version, actual, replaced=actual == version)
    raise AssertionError("unreachable")  # pragma: no cover


def _last_turn_start(keys: Layout, session_id: str, count: int) -> Op[int]:
    end, size = count, TAIL_CHUNK
    while end > 0:
        start = max(0, end - size)
        _, records, _ = yield from _read(keys, session_id, start, end)
        found = last_turn_start([stored_message(start + i, r).message for i, r in enumerate(records)])
        if found is not None:
            return start + found
        end, size = start, size * 4
    raise ConfigurationError("the session has no turn to rewind")


def fork(keys: Layout, session_id: str, at: int | None, new_id: str | None, now: int) -> Op[str]:
    """Copy-on-write, atomically (``_lua.FORK``): the fork's hash points at the messages it reads. Same result as
    ``_rewind_fork.fork_session``: messages ``[0, at)`` with their timestamps, the metadata, the summaries inside
    the prefix; version 1 if it has messages, else 0."""
    check_session_id(session_id)
    if at is not None and (isinstance(at, bool) or not isinstance(at, int) or at < 0):
        raise ConfigurationError(f"fork point must be an index from 0 to the message count, got {at!r}")
    target = check_session_id(new_id) if new_id is not None else new_session_id()
    reply = yield Call("fork", [session_id, target, "" if at is None else at, now, new_incarnation()])
    if reply[0] == -1:
        raise SessionNotFound(session_id)
    if reply[0] == -2:
        raise ConfigurationError(f"fork point must be an index from 0 to {reply[1]}, got {at!r}")
    if reply[0] == 0:
        raise conflict(target, 0, int(reply[1]))
    return target


def create(keys: Layout, data: SessionData, now: int) -> Op[None]:
    """Insert a whole session atomically (import): ``StoreBase._create``."""
    info = data.info
    sid = check_session_id(info.id)
    fields = _hash_fields(info)
    records = [
        message_record(to_us(m.created_at), m.model, None if m.usage is None else dumps(m.usage), dumps(m.message))
        for m in data.messages
    ]
    words = [words_line(message_text(m.message)) for m in data.messages]
    head = words[:INDEX_CHUNK]
    summaries = [summary_record(s, now if s.created_at is None else to_us(s.created_at)) for s in data.summaries]
    expires_ms = "" if info.expires_at is None else str(_expires_ms(to_us(info.expires_at)))
    reply = yield Call(
        "create",
        [sid, now, expires_ms, len(fields) // 2, *fields, len(records), *records, len(head), *head, *summaries],
    )
    if reply[0] != 1:
        raise conflict(sid, 0, int(reply[1]))
    created = _pairs(fields)
    yield from _index_rest(sid, created["version"], created["inc"], len(head), words[len(head) :])
