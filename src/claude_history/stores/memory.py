"""In-process store (``memory://``): for tests, scripts and notebooks. Nothing survives the process.

Messages are kept serialised, exactly as a database would keep them, so a loaded history is a fresh copy that
callers may mutate, and anything a real backend would refuse (non-JSON values) is refused here too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..errors import SessionNotFound
from ._base_classes import StoreBase
from ._cas import (
    append_allowed,
    conflict,
    created_incarnation,
    new_incarnation,
    pop_incarnation,
    same_incarnation,
)
from ._checkpoints import check_checkpoint, decode_checkpoint
from ._checks import (
    check_filters,
    check_message_range,
    check_page,
    check_session_changes,
    check_session_id,
    check_summary,
    clip_range,
    new_session_id,
)
from ._json import decode_json, dumps
from ._leases import check_lease, fence, ttl_us
from ._messages import check_append, decode_messages
from ._paging import check_cursor, sorted_page
from ._rewind_fork import check_fork_point, check_rewind_index, find_last_turn, fork_info
from ._search_text import make_snippet, message_text, search_terms, text_matches
from ._times import from_us, is_expired, now_us, to_us
from .base import Entry, SearchHit, SessionCursor, SessionData, SessionInfo, StoredMessage, Summary, UsageRecord

__all__ = ["MemoryStore"]


@dataclass(frozen=True, slots=True)
class _Row:  # never changed once written: a fork shares its parent's rows (MemoryStore.fork)
    role: str
    message_json: str
    model: str | None
    usage_json: str | None
    created_us: int
    text: str


@dataclass
class _Session:
    info: SessionInfo
    rows: list[_Row] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)
    last_turn: str | None = None  # the turn_id of the last append (None after a rewind)
    checkpoint: tuple[int, str] | None = None  # (version, JSON): the planner checkpoint (_checkpoints.py)

    def expires_us(self) -> int | None:
        return None if self.info.expires_at is None else to_us(self.info.expires_at)


class MemoryStore(StoreBase):
    """A thread-safe dict of sessions behind one lock."""

    checkpoints_supported = True

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        # Turn leases by session id: (newest token, its expiry in µs; 0 once released). Kept apart from the
        # sessions so that tokens keep growing across a delete (stores/_leases.py).
        self._leases: dict[str, tuple[int, int]] = {}

    # -- helpers (call with the lock held) ------------------------------------------------------------------

    def _live(self, session_id: str, now: int) -> _Session | None:
        session = self._sessions.get(session_id)
        if session is not None and is_expired(session.expires_us(), now):
            del self._sessions[session_id]  # expired is the same as absent; purge it on sight
            return None
        return session

    def _new(self, session_id: str, now: int, incarnation: str | None) -> _Session:
        stamp = from_us(now)
        info = SessionInfo(
            id=session_id, version=0, created_at=stamp, updated_at=stamp, incarnation=created_incarnation(incarnation)
        )
        session = self._sessions[session_id] = _Session(info)
        return session

    def _get(self, session_id: str) -> _Session:
        session = self._live(check_session_id(session_id), now_us())
        if session is None:
            raise SessionNotFound(session_id)
        return session

    # -- Store ----------------------------------------------------------------------------------------------

    def load(self, session_id: str) -> SessionData:
        with self._lock:
            session = self._get(session_id)
            info, rows, summaries = session.info, list(session.rows), list(session.summaries)
        messages = decode_messages((row.message_json, row.model, row.usage_json, row.created_us) for row in rows)
        return SessionData(info=info, messages=messages, summaries=summaries)

    def get_session(self, session_id: str) -> SessionInfo:
        with self._lock:
            return self._get(session_id).info

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        first, last = check_message_range(start, stop)
        with self._lock:
            rows = self._get(session_id).rows
            first, last = clip_range(first, last, len(rows))
            rows = rows[first:last]
        return decode_messages(
            ((row.message_json, row.model, row.usage_json, row.created_us) for row in rows), first_seq=first
        )

    def usage_log(self, session_id: str) -> list[UsageRecord]:
        with self._lock:
            rows = list(self._get(session_id).rows)
        return [
            UsageRecord(seq, row.model, decode_json(row.usage_json), from_us(row.created_us))
            for seq, row in enumerate(rows)
            if row.usage_json is not None
        ]

    def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
        lease: int | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> int:
        encoded = check_append(session_id, entries, expected_version, incarnation, turn_id)
        check_lease(lease)
        kept = None if checkpoint is None else check_checkpoint(session_id, expected_version + 1, checkpoint)
        with self._lock:
            now = now_us()
            fence(session_id, lease, self._leases.get(session_id, (None, 0))[0], expected_version, entries)
            session = self._live(session_id, now)
            actual = session.info.version if session is not None else 0
            held = session.info.incarnation if session is not None else None
            found = session
            if not append_allowed(
                session_id,
                entries,
                expected_version,
                incarnation,
                turn_id,
                actual,
                held,
                lambda: None if found is None else found.last_turn,
            ):
                return expected_version + 1
            if session is None:
                session = self._new(session_id, now, incarnation)
            session.last_turn = turn_id
            session.rows.extend(_Row(e.role, e.message_json, e.model, e.usage_json, now, e.text) for e in encoded)
            session.info = replace(
                session.info,
                version=actual + 1,
                message_count=len(session.rows),
                updated_at=from_us(max(now, to_us(session.info.updated_at))),
            )
            if kept is not None:
                session.checkpoint = (actual + 1, kept)
            return actual + 1

    def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        check_session_id(session_id)
        duration = ttl_us(ttl)
        with self._lock:
            now = now_us()
            token, until = self._leases.get(session_id, (0, 0))
            if until > now:
                return None
            self._leases[session_id] = (token + 1, now + duration)
            return token + 1

    def release_lease(self, session_id: str, token: int) -> None:
        check_session_id(session_id)
        check_lease(token)
        with self._lock:
            if self._leases.get(session_id, (None, 0))[0] == token:
                self._leases[session_id] = (token, 0)

    def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        check_session_id(session_id)
        changes, incarnation = pop_incarnation(changes)
        changes = check_session_changes(changes)
        with self._lock:
            now = now_us()
            session = self._live(session_id, now)
            if session is None:
                if not create or incarnation is not None:  # a write built from a session read: it is gone
                    raise SessionNotFound(session_id)
                session = self._new(session_id, now, None)
            elif not same_incarnation(incarnation, session.info.incarnation):
                raise conflict(session_id, session.info.version, session.info.version, replaced=True)
            session.info = replace(session.info, updated_at=from_us(now), **changes)
            info = session.info
            if is_expired(session.expires_us(), now):
                del self._sessions[session_id]
            return info

    def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        check_page(limit, offset)
        check_filters(owner, tag)
        check_cursor(after)
        with self._lock:
            now = now_us()
            infos = [
                s.info
                for s in self._sessions.values()
                if not is_expired(s.expires_us(), now)
                and (owner is None or s.info.owner == owner)
                and (tag is None or tag in s.info.tags)
            ]
        return sorted_page(infos, after, offset, limit)

    def delete(self, session_id: str) -> bool:
        check_session_id(session_id)
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        check_session_id(session_id)
        with self._lock:
            session = self._live(session_id, now_us())
            kept = session.checkpoint if session is not None else None
        return None if kept is None else decode_checkpoint(*kept)

    def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        text = check_checkpoint(session_id, version, data)  # a JSON copy, as a database would keep
        with self._lock:
            session = self._live(session_id, now_us())
            if session is not None and (session.checkpoint is None or session.checkpoint[0] <= version):
                session.checkpoint = (version, text)

    def save_summary(self, session_id: str, summary: Summary) -> None:
        with self._lock:
            session = self._get(session_id)
            check_summary(summary, len(session.rows))
            stamp = summary.created_at or from_us(now_us())
            # A JSON copy, as a database would keep: later changes to the caller's dict do not leak in.
            usage = None if summary.usage is None else decode_json(dumps(dict(summary.usage)))
            session.summaries.append(replace(summary, created_at=stamp, usage=usage))

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        terms = search_terms(query)
        check_page(limit, 0)
        check_filters(owner)
        if session_id is not None:
            check_session_id(session_id)
        with self._lock:
            now = now_us()
            sessions = [
                s
                for s in self._sessions.values()
                if not is_expired(s.expires_us(), now)
                and (session_id is None or s.info.id == session_id)
                and (owner is None or s.info.owner == owner)
            ]
            sessions.sort(key=lambda s: s.info.updated_at, reverse=True)
            hits: list[SearchHit] = []
            for session in sessions:
                for seq, row in enumerate(session.rows):
                    if len(hits) >= limit:
                        return hits
                    if text_matches(row.text, terms):
                        hits.append(SearchHit(session.info.id, seq, row.role, make_snippet(row.text, terms)))
            return hits

    def purge_expired(self, now: datetime | None = None) -> int:
        moment = now_us() if now is None else to_us(now)
        with self._lock:
            expired = [sid for sid, s in self._sessions.items() if is_expired(s.expires_us(), moment)]
            for sid in expired:
                del self._sessions[sid]
            return len(expired)

    def close(self) -> None:
        """Nothing to release; the data lives as long as the object."""

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        """Copy-on-write: the fork's log holds the parent's row objects (immutable), so no message is copied or
        encoded again; the two lists then change apart (a rewind or append of one leaves the other alone)."""
        target = check_session_id(new_id) if new_id is not None else new_session_id()
        with self._lock:
            now = now_us()
            session = self._get(session_id)
            at = check_fork_point(at, len(session.rows))
            existing = self._live(target, now)
            if existing is not None:
                raise conflict(target, 0, existing.info.version)
            self._sessions[target] = _Session(
                fork_info(session.info, at=at, new_id=target, now=now),
                session.rows[:at],
                [summary for summary in session.summaries if summary.end <= at],
            )
        return target

    # -- primitives for the generic operations --------------------------------------------------------------

    def _create(self, data: SessionData) -> None:
        session_id = check_session_id(data.info.id)
        rows = []
        for stored in data.messages:
            message_json = dumps(stored.message)
            usage_json = None if stored.usage is None else dumps(stored.usage)
            rows.append(
                _Row(
                    stored.role,
                    message_json,
                    stored.model,
                    usage_json,
                    to_us(stored.created_at),
                    message_text(stored.message),
                )
            )
        with self._lock:
            existing = self._live(session_id, now_us())
            if existing is not None:
                raise conflict(session_id, 0, existing.info.version)
            info = replace(data.info, message_count=len(rows), incarnation=data.info.incarnation or new_incarnation())
            self._sessions[session_id] = _Session(info, rows, list(data.summaries))

    def _last_turn(self, session_id: str) -> tuple[int, int]:
        with self._lock:
            session = self._get(session_id)
            version, rows = session.info.version, session.rows
            return version, find_last_turn(
                lambda start, end: [decode_json(row.message_json) for row in rows[start:end]], len(rows)
            )

    def _truncate(self, session_id: str, to: int, expected_version: int, incarnation: str | None = None) -> int:
        with self._lock:
            session = self._get(session_id)
            actual = session.info.version
            if actual != expected_version or not same_incarnation(incarnation, session.info.incarnation):
                raise conflict(session_id, expected_version, actual, replaced=actual == expected_version)
            check_rewind_index(to, len(session.rows))
            del session.rows[to:]
            session.last_turn = None
            session.summaries = [s for s in session.summaries if s.end <= to]
            session.info = replace(
                session.info,
                version=expected_version + 1,
                message_count=len(session.rows),
                updated_at=from_us(now_us()),
            )
            return expected_version + 1

    def __repr__(self) -> str:
        return f"MemoryStore(sessions={len(self._sessions)})"
