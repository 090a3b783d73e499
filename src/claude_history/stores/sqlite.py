"""SQLite store (``sqlite:///path``), the embedded default.

Layout: one row per message, so a turn costs the same at message 10 and at message 100,000 (the guides' JSON
blob is rewritten whole every turn). A message's rowid is ``(session_pk << 32) | seq``: a session is one
contiguous rowid range, loaded with a range scan and deleted with one, and its full-text index rows (FTS5) use
the same ids.

Concurrency: WAL (readers never block the writer), a busy timeout, and every write is one ``BEGIN IMMEDIATE``
transaction that compares the session's version before writing: safe across threads (a connection per thread)
and processes. The writers of one process queue on a lock per file (``_writer_lock``) before they ask SQLite,
so they wait for each other without SQLite's busy handler, whose sleeps of 1, 2, 5, 10... ms between tries
were the tail of commits that met (bench/RESULTS.md "SQLite writers"); other processes are still waited for by
the busy handler.

Deleting: a delete removes a session's rows at once (two range deletes: 10,000 messages in tens of
milliseconds); nothing of it can be read through the store from then on. What the file still holds until
``compact()`` (an explicit maintenance call, also ``claude-history sessions compact``): the deleted words in the
full-text index (entries pointing at rows that no longer exist, in a session number never used again, so no
search finds them) and the bytes of whole pages the delete freed (``secure_delete=FAST`` zeroes deleted content
only in pages it writes anyway; zeroing every freed page tripled the time of a delete). ``compact()`` rebuilds
the index and zeroes the free pages, after which the deleted session leaves no trace in the file.
``compact_on_delete=True`` does that work in every delete instead (a rewrite of the index each time)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, SessionNotFound, StoreUnavailable
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
from ._fts5 import structure_is_sound
from ._json import decode_json, dumps
from ._leases import check_lease, fence, ttl_us
from ._messages import check_append, decode_messages
from ._paging import check_cursor
from ._rewind_fork import check_fork_point, check_rewind_index, find_last_turn
from ._search_text import make_snippet, message_text, search_terms
from ._times import from_us, is_expired, now_us, to_us
from .base import (
    Entry,
    SearchHit,
    SessionCursor,
    SessionData,
    SessionInfo,
    StoredMessage,
    Summary,
    UsageRecord,
    WouldBlock,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

_log = logging.getLogger(__name__)
_SEQ_BITS = 32
_SEQ_MASK = (1 << _SEQ_BITS) - 1
# FTS5 keeps its index structure (levels and segments) in the row with this id of its ``_data`` table (on-disk
# format). After 'optimize' it describes one segment, a few dozen bytes plus two per level.
_FTS_STRUCTURE_ROWID = 10
_MAX_FTS_STRUCTURE = 1024

# Numbered migrations: MIGRATIONS[n] takes the schema from PRAGMA user_version n to n + 1. Append, never edit.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE sessions (
            pk INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            title TEXT,
            owner TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            model TEXT,
            system TEXT,
            expires_at INTEGER,
            metadata TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX sessions_by_update ON sessions (updated_at DESC, id)",
        "CREATE INDEX sessions_by_owner ON sessions (owner, updated_at DESC)",
        "CREATE INDEX sessions_by_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE session_tags (
            session_pk INTEGER NOT NULL,
            tag TEXT NOT NULL,
            PRIMARY KEY (tag, session_pk)
        ) WITHOUT ROWID""",
        "CREATE INDEX session_tags_by_session ON session_tags (session_pk)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            model TEXT,
            usage TEXT,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE summaries (
            id INTEGER PRIMARY KEY,
            session_pk INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            text TEXT NOT NULL,
            model TEXT,
            usage TEXT,
            created_at INTEGER NOT NULL
        )""",
        'CREATE INDEX summaries_by_session ON summaries (session_pk, "end")',
        """CREATE VIRTUAL TABLE messages_fts USING fts5(
            role UNINDEXED, text, tokenize = 'unicode61 remove_diacritics 0'
        )""",
    ],
    [  # incarnations and idempotent commits (stores/base.py); NULL for sessions written before
        "ALTER TABLE sessions ADD COLUMN incarnation TEXT",
        "ALTER TABLE sessions ADD COLUMN last_turn TEXT",
    ],
    [  # turn leases (stores/_leases.py): the newest fencing token per session id and when it expires (µs)
        """CREATE TABLE leases (
            session_id TEXT PRIMARY KEY,
            token INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ],
    [  # the search index reads its text from messages_text (external content), so deleting a session removes
        # its text with two range deletes and leaves the index entries to compact(): see SQLiteStore.delete
        "CREATE TABLE messages_text (id INTEGER PRIMARY KEY, role TEXT NOT NULL, text TEXT NOT NULL)",
        "INSERT INTO messages_text (id, role, text) SELECT id, c0, c1 FROM messages_fts_content",
        "DROP TABLE messages_fts",
        """CREATE VIRTUAL TABLE messages_fts USING fts5(
            role UNINDEXED, text, content = 'messages_text', content_rowid = 'id',
            tokenize = 'unicode61 remove_diacritics 0'
        )""",
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    ],
    [  # planner checkpoints (stores/_checkpoints.py): one per session, with the version it describes
        """CREATE TABLE checkpoints (
            session_pk INTEGER PRIMARY KEY,
            version INTEGER NOT NULL,
            data TEXT NOT NULL
        )""",
    ],
    [  # copy-on-write forks: a fork's messages [0, fork_at) are its parent's (read through parent_pk, see
        # SQLiteStore._segments); its own rows hold [fork_at, message_count). NULL / 0 for every other session.
        "ALTER TABLE sessions ADD COLUMN parent_pk INTEGER",
        "ALTER TABLE sessions ADD COLUMN fork_at INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX sessions_by_parent ON sessions (parent_pk) WHERE parent_pk IS NOT NULL",
    ],
]

_SESSION_COLUMNS = (
    "pk, id, version, message_count, created_at, updated_at, title, owner, tags, model, system, expires_at, metadata,"
    " incarnation, last_turn, parent_pk, fork_at"
)
_PARENT, _FORK_AT = 15, 16  # where a row of _SESSION_COLUMNS holds the fork's parent pk and fork point
_GHOST = -1  # the version of a deleted session kept only as its forks' data (SQLiteStore._ghost)
_MESSAGE_COLUMNS = "CAST(content AS BLOB), model, CAST(usage AS BLOB), created_at"  # what decode_messages reads


def _info(row: Sequence[Any]) -> SessionInfo:
    return SessionInfo(
        id=row[1],
        version=row[2],
        message_count=row[3],
        created_at=from_us(row[4]),
        updated_at=from_us(row[5]),
        title=row[6],
        owner=row[7],
        tags=tuple(decode_json(row[8])),
        model=row[9],
        system=decode_json(row[10]),
        expires_at=None if row[11] is None else from_us(row[11]),
        metadata=decode_json(row[12]),
        incarnation=row[13],
    )


# One lock per database file for the writers of this process (see the module's docstring). Dropped in a forked
# child, where a lock held by one of the parent's threads would never be released.
_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_GUARD = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _WRITERS_GUARD:
        lock = _WRITERS.get(key)
        if lock is None:
            lock = _WRITERS[key] = threading.RLock()
        return lock


def _forget_writer_locks() -> None:
    global _WRITERS_GUARD
    _WRITERS_GUARD = threading.Lock()
    _WRITERS.clear()


os.register_at_fork(after_in_child=_forget_writer_locks)


def _range(pk: int, start: int = 0) -> tuple[int, int]:
    return (pk << _SEQ_BITS) | start, (pk << _SEQ_BITS) | _SEQ_MASK


def _would_wait(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused for a lock it would have waited for (SQLITE_BUSY or SQLITE_LOCKED, 5 and 6, in
    the primary code; ``sqlite_errorcode`` is Python 3.11+, its message says "locked" on 3.10 too)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (5, 6)
    return "locked" in str(exc)


class SQLiteStore(StoreBase):
    """A store in one SQLite file. ``busy_timeout`` (seconds) is how long a writer waits for another one;
    ``synchronous="FULL"`` makes every committed turn survive a power loss ("NORMAL": survives a process
    crash). A delete leaves the deleted messages' words in the full-text index until ``compact()`` (run it from
    a maintenance job, or ``claude-history sessions compact``); ``compact_on_delete=True`` removes them in every
    delete, which then costs a rewrite of the index (about a second per 10,000 messages in the store)."""

    checkpoints_supported = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
        compact_on_delete: bool = False,
    ) -> None:
        self.path = Path(path)
        self.compact_on_delete = compact_on_delete
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        if busy_timeout < 0:
            raise ConfigurationError("busy_timeout must be >= 0 seconds")
        self._busy_timeout = float(busy_timeout)
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._writer = _writer_lock(self.path)
        self._closed = False
        if not self.path.parent.is_dir():
            raise StoreUnavailable(
                f"cannot open SQLite store {str(self.path)!r}:"
                f" directory {str(self.path.parent)!r} does not exist"
                + (
                    " (sqlite:///name is relative to the working directory; use four slashes,"
                    " sqlite:////abs/path, for an absolute path)"
                    if not self.path.is_absolute()
                    else ""
                )
            )
        self._open_schema(self._conn())

    # -- connections ----------------------------------------------------------------------------------------

    def _conn(self, *, nowait: bool = False) -> sqlite3.Connection:
        """This thread's connection; ``nowait``: its second one, which never waits for a lock (busy timeout 0,
        for ``get_session_nowait``)."""
        if self._closed:
            raise StoreUnavailable("this SQLite store is closed")
        if os.getpid() != self._pid:
            # A forked child must not use the parent's connections (SQLite forbids it): start afresh, and
            # leave the inherited ones alone rather than closing them under the parent's feet.
            self._pid = os.getpid()
            self._local = threading.local()
            self._connections = []
            self._writer = _writer_lock(self.path)
        name = "nowait_conn" if nowait else "conn"
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            opened: sqlite3.Connection | None = None
            try:
                opened = sqlite3.connect(
                    self.path,
                    timeout=0.0 if nowait else self._busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                opened.execute(f"PRAGMA synchronous={self._synchronous}")
                opened.execute("PRAGMA secure_delete=ON")
                opened.execute("PRAGMA foreign_keys=OFF")
            except sqlite3.Error as exc:
                if opened is not None:
                    opened.close()
                if nowait and isinstance(exc, sqlite3.OperationalError) and _would_wait(exc):
                    raise WouldBlock(str(exc)) from exc
                raise StoreUnavailable(f"cannot open SQLite store {str(self.path)!r}: {exc}") from exc
            conn = opened
            setattr(self._local, name, conn)
            with self._lock:
                self._connections.append(conn)
        return conn

    def _open_schema(self, conn: sqlite3.Connection) -> None:
        """Migrate, waiting out other processes that open the same new file at the same moment: switching to WAL
        and upgrading a read lock to a write lock fail at once with "database is locked" (SQLite skips the busy
        handler where waiting could deadlock), so the whole step is retried until the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                self._migrate(conn)
                return
            except StoreUnavailable as exc:
                locked = isinstance(exc.__cause__, sqlite3.OperationalError) and _would_wait(exc.__cause__)
                if not locked or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"SQLite store {str(self.path)!r} cannot use WAL (journal mode {mode})")
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if 1 <= current <= len(MIGRATIONS):  # the index exists (migration 3 copies its text: sound first)
                self._check_index(conn)
            if current == len(MIGRATIONS):
                return
            with self._write(conn):
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current > len(MIGRATIONS):
                    raise StoreUnavailable(
                        f"SQLite store {str(self.path)!r} has schema version {current}, newer than this"
                        f" claude-history understands ({len(MIGRATIONS)}); upgrade claude-history"
                    )
                for number in range(current, len(MIGRATIONS)):
                    for statement in MIGRATIONS[number]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"cannot open SQLite store {str(self.path)!r}: {exc}") from exc

    def _check_index(self, conn: sqlite3.Connection) -> None:
        """Repair, on open, a full-text index that an older release let grow corrupt (see ``_optimize_index``:
        then every append, search and delete failed with "vtable constructor failed: messages_fts"), or that
        is close to it, or whose structure record parses but does not describe the index on disk (``_fts5``: then
        searches silently miss messages and the next write fails). The index is derived data: it is rebuilt from
        the stored text (``messages_text``; before schema 4, the text FTS5 kept beside it), and no message is
        touched. A few indexed lookups per index segment when the index is sound (bench/RESULTS.md).

        The reads share one snapshot: another process's commit between the structure record and the pages
        (a new segment, a merge) would otherwise look like damage, and every open beside a writer rebuilt the
        whole index."""
        try:
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'probe' LIMIT 1").fetchall()
                row = conn.execute(
                    "SELECT length(block) FROM messages_fts_data WHERE id = ?", (_FTS_STRUCTURE_ROWID,)
                ).fetchone()
                if row is None:
                    reason = "its structure record is missing"
                elif row[0] > _MAX_FTS_STRUCTURE:
                    reason = f"its structure record is {row[0]:,} bytes, near the size an older release broke at"
                elif not structure_is_sound(conn, "messages_fts"):
                    reason = "its structure record does not describe the index on disk"
                else:
                    return
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if _would_wait(exc):  # another connection's lock, not damage: checked again at the next open
                _log.info("SQLite store %s: the check of its full-text index waited for a lock: %s", self.path, exc)
                return
            reason = f"reading it failed: {exc}"
        except sqlite3.DatabaseError as exc:
            reason = f"reading it failed: {exc}"
        _log.warning("SQLite store %s: rebuilding its full-text search index (%s)", self.path, reason)
        try:
            with self._write(conn):
                self._reset_index(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(
                f"SQLite store {str(self.path)!r}: its full-text search index is damaged and could not be rebuilt"
                f" ({exc}); the messages are intact: export the sessions with an older copy of the file or"
                " run `sqlite3 file .recover`"
            ) from exc

    @staticmethod
    def _reset_index(conn: sqlite3.Connection) -> None:
        """Put the index's own tables back to those of an empty index (as this SQLite writes one, from a
        scratch copy of the table), then rebuild it from the stored text. Works when the index structure is
        too damaged for FTS5's own 'rebuild' to start."""
        (create,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'").fetchone()
        scratch = sqlite3.connect(":memory:")
        try:
            scratch.execute(create)
            empty = scratch.execute("SELECT id, block FROM messages_fts_data").fetchall()
        finally:
            scratch.close()
        conn.execute("DELETE FROM messages_fts_data")
        conn.execute("DELETE FROM messages_fts_idx")
        conn.executemany("INSERT INTO messages_fts_data (id, block) VALUES (?, ?)", empty)
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One write transaction; taking the write lock up front means the version read inside it is the one
        the commit is based on (compare-and-swap). The process's other writers of this file are waited for on
        its writer lock first, then other processes by SQLite's busy handler: up to ``busy_timeout`` each."""
        if not self._writer.acquire(timeout=min(self._busy_timeout, threading.TIMEOUT_MAX)):
            raise StoreUnavailable(
                f"SQLite store {str(self.path)!r} is busy (waited {self._busy_timeout:g}s for the write lock held"
                " by another writer of this process)"
            )
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(
                    f"SQLite store {str(self.path)!r} is busy (waited {self._busy_timeout:g}s for the write lock):"
                    f" {exc}"
                ) from exc
            try:
                yield
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error, ...
                    raise StoreUnavailable(f"SQLite store {str(self.path)!r}: {exc}") from exc
                raise
        finally:
            self._writer.release()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across the queries inside."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _row(self, conn: sqlite3.Connection, session_id: str) -> Any:
        return conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()

    def _live_row(self, conn: sqlite3.Connection, session_id: str, now: int, *, purge: bool) -> Any:
        """The session's row, or None when absent or expired (an expired session is purged when writing)."""
        row = self._row(conn, session_id)
        if row is not None and is_expired(row[11], now):
            if purge:
                self._delete_pk(conn, row[0])
            return None
        return row

    def _delete_pk(self, conn: sqlite3.Connection, pk: int) -> None:
        """Remove a session. Its index entries are left to ``compact()`` unless ``compact_on_delete``: taking
        them out means tokenizing all its text again (120 ms for 10,000 messages). Left, they point at rows that
        no longer exist in a session pk that is never used again (AUTOINCREMENT), so no search finds them.

        A session that forks still read becomes their data instead (_ghost), and goes with the last of them."""
        if conn.execute("SELECT 1 FROM sessions WHERE parent_pk = ? LIMIT 1", (pk,)).fetchone() is not None:
            self._ghost(conn, pk)
            return
        parent = conn.execute("SELECT parent_pk FROM sessions WHERE pk = ?", (pk,)).fetchone()[0]
        low, high = _range(pk)
        if self.compact_on_delete:
            self._unindex(conn, pk, 0)
        else:
            conn.execute("PRAGMA secure_delete=FAST")  # freed pages are zeroed by compact()
        try:
            conn.execute("DELETE FROM messages WHERE id BETWEEN ? AND ?", (low, high))
            conn.execute("DELETE FROM messages_text WHERE id BETWEEN ? AND ?", (low, high))
        finally:
            conn.execute("PRAGMA secure_delete=ON")
        conn.execute("DELETE FROM summaries WHERE session_pk = ?", (pk,))
        conn.execute("DELETE FROM session_tags WHERE session_pk = ?", (pk,))
        conn.execute("DELETE FROM checkpoints WHERE session_pk = ?", (pk,))
        conn.execute("DELETE FROM sessions WHERE pk = ?", (pk,))
        if parent is not None:
            self._collect(conn, parent)

    # -- copy-on-write forks ----------------------------------------------------------------------------------
    # A fork's row points at its parent (parent_pk) and says up to where it reads the parent (fork_at): its
    # messages [0, fork_at) are the parent's, read through the parent's own pointer in turn, and its own rows hold
    # [fork_at, message_count). A fork costs a few rows whatever the length. Before a rewind cuts rows a fork
    # reads, the fork copies them (_release). A deleted session that forks read stays as their data under no id
    # (_ghost) until the last of them is gone (_collect).

    @staticmethod
    def _segments(
        conn: sqlite3.Connection, pk: int, parent: int | None, at: int, first: int, last: int
    ) -> list[tuple[int, int, int]]:
        """Where messages ``[first, last)`` of session ``pk`` are stored: ``(pk, start, end)`` runs, in order."""
        runs = []
        while first < last:
            low = max(first, at) if parent is not None else first
            if low < last:
                runs.append((pk, low, last))
            if parent is None or first >= at:
                break
            last = min(last, at)
            pk = parent
            parent, at = conn.execute("SELECT parent_pk, fork_at FROM sessions WHERE pk = ?", (pk,)).fetchone()
        runs.reverse()
        return runs

    def _rows(self, conn: sqlite3.Connection, row: Sequence[Any], first: int, last: int, columns: str) -> Iterator[Any]:
        """``columns`` of messages ``[first, last)`` of the session of ``row``, in order, across its forks' runs."""
        for pk, low, high in self._segments(conn, row[0], row[_PARENT], row[_FORK_AT], first, last):
            base = pk << _SEQ_BITS
            yield from conn.execute(
                f"SELECT {columns} FROM messages WHERE id BETWEEN ? AND ? ORDER BY id", (base | low, base | (high - 1))
            )

    def _release(self, conn: sqlite3.Connection, pk: int, keep: int) -> None:
        """Messages from ``keep`` on of session ``pk`` are about to change or go: every fork reading them copies
        them into its own rows (inside SQLite, no decoding) and reads only ``[0, keep)`` of ``pk`` from now on."""
        forks = conn.execute(
            "SELECT pk, fork_at FROM sessions WHERE parent_pk = ? AND fork_at > ?", (pk, keep)
        ).fetchall()
        if not forks:
            return
        parent, at = conn.execute("SELECT parent_pk, fork_at FROM sessions WHERE pk = ?", (pk,)).fetchone()
        for fork_pk, fork_at in forks:
            for source, low, high in self._segments(conn, pk, parent, at, keep, fork_at):
                shift = (fork_pk - source) << _SEQ_BITS
                span = ((source << _SEQ_BITS) | low, (source << _SEQ_BITS) | (high - 1))
                conn.execute(
                    "INSERT INTO messages (id, role, content, model, usage, created_at)"
                    " SELECT id + ?, role, content, model, usage, created_at FROM messages WHERE id BETWEEN ? AND ?",
                    (shift, *span),
                )
                conn.execute(
                    "INSERT INTO messages_text (id, role, text)"
                    " SELECT id + ?, role, text FROM messages_text WHERE id BETWEEN ? AND ?",
                    (shift, *span),
                )
                conn.execute(
                    "INSERT INTO messages_fts (rowid, role, text)"
                    " SELECT id, role, text FROM messages_text WHERE id BETWEEN ? AND ?",
                    (span[0] + shift, span[1] + shift),
                )
            conn.execute(
                "UPDATE sessions SET fork_at = ?, parent_pk = CASE WHEN ? = 0 THEN NULL ELSE parent_pk END"
                " WHERE pk = ?",
                (keep, keep, fork_pk),
            )

    def _ghost(self, conn: sqlite3.Connection, pk: int) -> None:
        """Delete a session that forks still read: what makes it a session (its id, metadata, tags, summaries,
        checkpoint) goes now; the rows its forks read stay under an id no caller can give (a NUL, refused by
        ``check_session_id``) and version -1, which no listing or search reports, until the last fork that
        reads them is gone (_collect). A delete so costs what it did before forks shared rows."""
        conn.execute("DELETE FROM summaries WHERE session_pk = ?", (pk,))
        conn.execute("DELETE FROM session_tags WHERE session_pk = ?", (pk,))
        conn.execute("DELETE FROM checkpoints WHERE session_pk = ?", (pk,))
        conn.execute(
            "UPDATE sessions SET id = ?, version = ?, title = NULL, owner = NULL, tags = '[]', model = NULL,"
            " system = NULL, expires_at = NULL, metadata = '{}', incarnation = NULL, last_turn = NULL WHERE pk = ?",
            (f"\x00{pk}", _GHOST, pk),
        )
        self._collect(conn, pk)

    def _collect(self, conn: sqlite3.Connection, pk: int) -> None:
        """After a fork of ``pk`` went or reads less of it: if ``pk`` is a deleted session kept for its forks,
        drop the rows none of them reads any more, and the whole session when none is left."""
        row = conn.execute(
            "SELECT version, message_count, parent_pk, fork_at FROM sessions WHERE pk = ?", (pk,)
        ).fetchone()
        if row is None or row[0] != _GHOST:
            return
        keep = conn.execute("SELECT MAX(fork_at) FROM sessions WHERE parent_pk = ?", (pk,)).fetchone()[0] or 0
        if keep == 0:
            self._delete_pk(conn, pk)  # no fork left: gone, and its own parent collected in turn
            return
        if keep < row[1]:
            self._unindex(conn, pk, keep)
            conn.execute("DELETE FROM messages WHERE id BETWEEN ? AND ?", _range(pk, keep))
            conn.execute("DELETE FROM messages_text WHERE id BETWEEN ? AND ?", _range(pk, keep))
            conn.execute(
                "UPDATE sessions SET message_count = ?, fork_at = MIN(fork_at, ?) WHERE pk = ?", (keep, keep, pk)
            )
            if row[2] is not None and keep < row[3]:
                self._collect(conn, row[2])

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        """Copy-on-write: the fork's row points at the session (or, when ``at`` lies in what the session itself
        reads from its parent, at that parent); only metadata, tags and summaries are copied."""
        check_session_id(session_id)
        target = check_session_id(new_id) if new_id is not None else new_session_id()
        conn = self._conn()
        with self._write(conn):
            now = now_us()
            row = self._live_row(conn, session_id, now, purge=False)
            if row is None:
                raise SessionNotFound(session_id)
            at = check_fork_point(at, row[3])
            existing = self._live_row(conn, target, now, purge=True)
            if existing is not None:
                raise conflict(target, 0, existing[2])
            source, parent, parent_at = row[0], row[_PARENT], row[_FORK_AT]
            while parent is not None and at <= parent_at:  # read straight from the session that holds the rows
                source = parent
                parent, parent_at = conn.execute(
                    "SELECT parent_pk, fork_at FROM sessions WHERE pk = ?", (parent,)
                ).fetchone()
            pk = conn.execute(
                "INSERT INTO sessions (id, version, message_count, created_at, updated_at, title, owner, tags, model,"
                " system, expires_at, metadata, incarnation, parent_pk, fork_at)"
                " SELECT ?, ?, ?, ?, ?, title, owner, tags, model, system, expires_at, metadata, ?, ?, ?"
                " FROM sessions WHERE pk = ? RETURNING pk",
                (target, 1 if at else 0, at, now, now, new_incarnation(), source if at else None, at, row[0]),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO session_tags (session_pk, tag) SELECT ?, tag FROM session_tags WHERE session_pk = ?",
                (pk, row[0]),
            )
            conn.execute(
                'INSERT INTO summaries (session_pk, start, "end", text, model, usage, created_at)'
                ' SELECT ?, start, "end", text, model, usage, created_at FROM summaries'
                ' WHERE session_pk = ? AND "end" <= ? ORDER BY id',
                (pk, row[0], at),
            )
        return target

    def _unindex(self, conn: sqlite3.Connection, pk: int, start: int) -> None:
        """Take messages ``start..`` of a session out of the full-text index; before their text is deleted, which
        FTS5 reads to find the entries (external content)."""
        conn.execute("DELETE FROM messages_fts WHERE rowid BETWEEN ? AND ?", _range(pk, start))

    def _compact_index(self, conn: sqlite3.Connection) -> None:
        if self.compact_on_delete:
            self._optimize_index(conn)

    def _optimize_index(self, conn: sqlite3.Connection) -> None:
        """Merge the full-text index into one segment, dropping what deletes left in it.

        FTS5 records a delete as a tombstone and keeps the words in older index segments until they merge;
        'optimize' merges them now, so a deleted session's words are really gone from the file. In SQLite 3.40
        (Debian 12's) every 'optimize' also adds two empty levels to the index's structure record, and at 2,000 levels
        FTS5 declares the index corrupt ("database disk image is malformed" about 1,000 deletes in, and
        "vtable constructor failed" ever after). Once the record grows past ``_MAX_FTS_STRUCTURE`` bytes the
        index is rebuilt from the stored text instead, which starts it afresh at one level: every few hundred
        deletes, one rebuild costs about what a few 'optimize' runs (each a rewrite of the whole index) do."""
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
        row = conn.execute(
            "SELECT length(block) FROM messages_fts_data WHERE id = ?", (_FTS_STRUCTURE_ROWID,)
        ).fetchone()
        if row is not None and row[0] > _MAX_FTS_STRUCTURE:
            conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")

    def _insert_messages(
        self,
        conn: sqlite3.Connection,
        pk: int,
        start: int,
        rows: Iterable[tuple[str, str, str | None, str | None, int, str]],
    ) -> None:
        base = pk << _SEQ_BITS
        messages = []
        index = []
        for offset, (role, message_json, model, usage_json, created, text) in enumerate(rows):
            rowid = base | (start + offset)
            messages.append((rowid, role, message_json, model, usage_json, created))
            if text:
                index.append((rowid, role, text))
        conn.executemany(
            "INSERT INTO messages (id, role, content, model, usage, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            messages,
        )
        conn.executemany("INSERT INTO messages_text (id, role, text) VALUES (?, ?, ?)", index)
        conn.executemany("INSERT INTO messages_fts (rowid, role, text) VALUES (?, ?, ?)", index)

    # -- Store ----------------------------------------------------------------------------------------------

    def load(self, session_id: str) -> SessionData:
        check_session_id(session_id)
        with self._read() as conn:
            row = self._live_row(conn, session_id, now_us(), purge=False)
            if row is None:
                raise SessionNotFound(session_id)
            summary_rows = conn.execute(
                'SELECT start, "end", text, model, usage, created_at FROM summaries WHERE session_pk = ? ORDER BY id',
                (row[0],),
            ).fetchall()
            # A session's rows are seq 0, 1, ... with no gap (appends add at the end, rewinds cut the tail; a
            # fork's runs follow each other), so the seq is the position and the rowid need not be read. Rows are
            # decoded as the cursor yields them: each row's text is used while it is still in the CPU cache, and
            # freed at once. The JSON is read as its stored UTF-8 bytes (CAST AS BLOB): jiter parses them as they
            # are, where a str would cost a UTF-8 decode in sqlite3 and an encode back.
            messages = decode_messages(self._rows(conn, row, 0, row[3], _MESSAGE_COLUMNS))
        summaries = [
            Summary(start=s, end=e, text=t, model=m, usage=decode_json(u), created_at=from_us(c))
            for s, e, t, m, u, c in summary_rows
        ]
        return SessionData(info=_info(row), messages=messages, summaries=summaries)

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        check_session_id(session_id)
        first, last = check_message_range(start, stop)
        with self._read() as conn:
            row = self._live_row(conn, session_id, now_us(), purge=False)
            if row is None:
                raise SessionNotFound(session_id)
            first, last = clip_range(first, last, row[3])
            if first == last:
                return []
            return decode_messages(self._rows(conn, row, first, last, _MESSAGE_COLUMNS), first_seq=first)

    def usage_log(self, session_id: str) -> list[UsageRecord]:
        check_session_id(session_id)
        with self._read() as conn:
            row = self._live_row(conn, session_id, now_us(), purge=False)
            if row is None:
                raise SessionNotFound(session_id)
            rows = [r for r in self._rows(conn, row, 0, row[3], "id, model, usage, created_at") if r[2] is not None]
        return [
            UsageRecord(rowid & _SEQ_MASK, model, decode_json(usage), from_us(created))
            for rowid, model, usage, created in rows
        ]

    def get_session(self, session_id: str) -> SessionInfo:
        return self._session_info(session_id, nowait=False)

    def get_session_nowait(self, session_id: str) -> SessionInfo:
        """``get_session`` without ever waiting: raises ``WouldBlock`` where it would wait for a lock. A read in
        WAL mode waits for no writer, only for what is rare (another process holding the file in exclusive
        mode, a recovery after a crash, a checkpoint resetting the log), so an event loop can make this point
        read of one row itself (tens of microseconds) instead of handing it to a thread and back, and hand
        it over only when told it would block (``ThreadedAsyncStore.get_session``)."""
        try:
            return self._session_info(session_id, nowait=True)
        except sqlite3.OperationalError as exc:
            if _would_wait(exc):
                raise WouldBlock(str(exc)) from exc
            raise

    def _session_info(self, session_id: str, *, nowait: bool) -> SessionInfo:
        check_session_id(session_id)
        row = self._live_row(self._conn(nowait=nowait), session_id, now_us(), purge=False)
        if row is None:
            raise SessionNotFound(session_id)
        return _info(row)

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
        conn = self._conn()
        with self._write(conn):
            now = now_us()
            if lease is not None:
                newest = conn.execute("SELECT token FROM leases WHERE session_id = ?", (session_id,)).fetchone()
                fence(session_id, lease, None if newest is None else newest[0], expected_version, entries)
            row = self._live_row(conn, session_id, now, purge=True)
            actual = 0 if row is None else row[2]
            held = None if row is None else row[13]
            last = None if row is None else row[14]
            if not append_allowed(
                session_id, entries, expected_version, incarnation, turn_id, actual, held, lambda: last
            ):
                return expected_version + 1
            if row is None:
                pk = conn.execute(
                    "INSERT INTO sessions (id, version, message_count, created_at, updated_at, incarnation,"
                    " last_turn) VALUES (?, 1, ?, ?, ?, ?, ?) RETURNING pk",
                    (session_id, len(encoded), now, now, created_incarnation(incarnation), turn_id),
                ).fetchone()[0]
                start = 0
            else:
                pk, start = row[0], row[3]
                conn.execute(
                    "UPDATE sessions SET version = version + 1, message_count = ?, updated_at = ?, last_turn = ?"
                    " WHERE pk = ?",
                    (start + len(encoded), now, turn_id, pk),
                )
            self._insert_messages(
                conn,
                pk,
                start,
                ((e.role, e.message_json, e.model, e.usage_json, now, e.text) for e in encoded),
            )
            if kept is not None:
                self._keep_checkpoint(conn, pk, expected_version + 1, kept)
        return expected_version + 1

    def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        check_session_id(session_id)
        duration = ttl_us(ttl)
        conn = self._conn()
        with self._write(conn):  # the write lock makes the read and the take one step across processes
            now = now_us()
            row = conn.execute(
                "INSERT INTO leases (session_id, token, expires_at) VALUES (?, 1, ?)"
                " ON CONFLICT (session_id) DO UPDATE SET token = token + 1, expires_at = excluded.expires_at"
                " WHERE leases.expires_at <= ? RETURNING token",
                (session_id, now + duration, now),
            ).fetchone()
        return None if row is None else int(row[0])

    def release_lease(self, session_id: str, token: int) -> None:
        check_session_id(session_id)
        check_lease(token)
        conn = self._conn()
        with self._write(conn):
            conn.execute("UPDATE leases SET expires_at = 0 WHERE session_id = ? AND token = ?", (session_id, token))

    def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        check_session_id(session_id)
        changes, incarnation = pop_incarnation(changes)
        changes = check_session_changes(changes)
        conn = self._conn()
        with self._write(conn):
            now = now_us()
            row = self._live_row(conn, session_id, now, purge=True)
            if row is not None and not same_incarnation(incarnation, row[13]):
                raise conflict(session_id, row[2], row[2], replaced=True)
            if row is None:
                if not create or incarnation is not None:  # a write built from a session read: it is gone
                    raise SessionNotFound(session_id)
                pk = conn.execute(
                    "INSERT INTO sessions (id, version, created_at, updated_at, incarnation) VALUES (?, 0, ?, ?, ?)"
                    " RETURNING pk",
                    (session_id, now, now, new_incarnation()),
                ).fetchone()[0]
            else:
                pk = row[0]
            assignments = ["updated_at = ?"]
            values: list[Any] = [now]
            for name, value in changes.items():
                assignments.append(f"{name} = ?")
                if name in ("system", "metadata", "tags"):
                    values.append(None if value is None else dumps(list(value) if name == "tags" else value))
                elif name == "expires_at":
                    values.append(None if value is None else to_us(value))
                else:
                    values.append(value)
            conn.execute(f"UPDATE sessions SET {', '.join(assignments)} WHERE pk = ?", (*values, pk))
            if "tags" in changes:
                conn.execute("DELETE FROM session_tags WHERE session_pk = ?", (pk,))
                conn.executemany(
                    "INSERT INTO session_tags (session_pk, tag) VALUES (?, ?)",
                    ((pk, t) for t in changes["tags"]),
                )
            info = _info(conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE pk = ?", (pk,)).fetchone())
            if is_expired(None if info.expires_at is None else to_us(info.expires_at), now):
                self._delete_pk(conn, pk)  # expiring it in the past ends it now, as Redis would
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
        cursor = check_cursor(after)
        clauses = ["(expires_at IS NULL OR expires_at > ?)", f"version <> {_GHOST}"]
        values: list[Any] = [now_us()]
        if cursor is not None:  # keyset: the index on (updated_at DESC, id) starts right after the cursor
            clauses.append("(updated_at < ? OR (updated_at = ? AND id > ?))")
            values.extend((cursor[0], cursor[0], cursor[1]))
        if owner is not None:
            clauses.append("owner = ?")
            values.append(owner)
        if tag is not None:
            clauses.append("pk IN (SELECT session_pk FROM session_tags WHERE tag = ?)")
            values.append(tag)
        rows = self._conn().execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {' AND '.join(clauses)}"
            " ORDER BY updated_at DESC, id LIMIT ? OFFSET ?",
            (*values, limit, offset),
        )
        return [_info(row) for row in rows]

    def delete(self, session_id: str) -> bool:
        check_session_id(session_id)
        conn = self._conn()
        with self._write(conn):
            row = self._row(conn, session_id)
            if row is None:
                return False
            self._delete_pk(conn, row[0])
            self._compact_index(conn)
        return not is_expired(row[11], now_us())

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        check_session_id(session_id)
        row = (
            self._conn()
            .execute(
                "SELECT c.version, c.data FROM checkpoints c JOIN sessions s ON s.pk = c.session_pk"
                " WHERE s.id = ? AND (s.expires_at IS NULL OR s.expires_at > ?)",
                (session_id, now_us()),
            )
            .fetchone()
        )
        return None if row is None else decode_checkpoint(row[0], row[1])

    def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        text = check_checkpoint(session_id, version, data)
        conn = self._conn()
        with self._write(conn):
            row = self._live_row(conn, session_id, now_us(), purge=False)
            if row is not None:
                self._keep_checkpoint(conn, row[0], version, text)

    @staticmethod
    def _keep_checkpoint(conn: sqlite3.Connection, pk: int, version: int, text: str) -> None:
        """The checkpoint of session ``pk`` at ``version``, unless a newer one is kept (_checkpoints.py)."""
        conn.execute(
            "INSERT INTO checkpoints (session_pk, version, data) VALUES (?, ?, ?)"
            " ON CONFLICT (session_pk) DO UPDATE SET version = excluded.version, data = excluded.data"
            " WHERE excluded.version >= checkpoints.version",
            (pk, version, text),
        )

    def save_summary(self, session_id: str, summary: Summary) -> None:
        check_session_id(session_id)
        conn = self._conn()
        with self._write(conn):
            now = now_us()
            row = self._live_row(conn, session_id, now, purge=True)
            if row is None:
                raise SessionNotFound(session_id)
            check_summary(summary, row[3])
            conn.execute(
                'INSERT INTO summaries (session_pk, start, "end", text, model, usage, created_at)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row[0],
                    summary.start,
                    summary.end,
                    summary.text,
                    summary.model,
                    None if summary.usage is None else dumps(dict(summary.usage)),
                    now if summary.created_at is None else to_us(summary.created_at),
                ),
            )

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        terms = search_terms(query)
        check_page(limit, 0)
        check_filters(owner)
        if not terms or not limit:
            return []
        match = " ".join('"' + term.replace('"', '""') + '"' for term in terms)
        # A hit in a session's row is also a hit of every fork that reads that row (fork_at above its seq), and of
        # their forks in turn: the recursive part walks down from the row's session.
        where = ""
        values: list[Any] = [match]
        with self._read() as conn:
            if session_id is not None:
                row = self._row(conn, check_session_id(session_id))
                if row is None:
                    return []
                runs = self._segments(conn, row[0], row[_PARENT], row[_FORK_AT], 0, row[3])
                if not runs:
                    return []
                where = " AND (" + " OR ".join(["rowid BETWEEN ? AND ?"] * len(runs)) + ")"
                for pk, low, high in runs:
                    values += [(pk << _SEQ_BITS) | low, (pk << _SEQ_BITS) | (high - 1)]
            sql = (
                "WITH RECURSIVE hit (rowid, rank) AS"
                f" (SELECT rowid, rank FROM messages_fts WHERE messages_fts MATCH ?{where}),"
                " holder (pk, rowid, rank) AS (SELECT rowid >> 32, rowid, rank FROM hit"
                " UNION ALL SELECT s.pk, h.rowid, h.rank FROM holder h"
                f" JOIN sessions s ON s.parent_pk = h.pk AND s.fork_at > (h.rowid & {_SEQ_MASK}))"
                " SELECT s.id, h.rowid, t.role, t.text FROM holder h JOIN sessions s ON s.pk = h.pk"
                " JOIN messages_text t ON t.id = h.rowid"
                f" WHERE (s.expires_at IS NULL OR s.expires_at > ?) AND s.version <> {_GHOST}"
            )
            values.append(now_us())
            if owner is not None:  # in the join, so that LIMIT counts this owner's hits only
                sql += " AND s.owner = ?"
                values.append(owner)
            if session_id is not None:
                sql += " AND s.pk = ?"
                values.append(row[0])
            rows = conn.execute(sql + " ORDER BY h.rank, h.rowid, s.id LIMIT ?", (*values, limit)).fetchall()
        return [SearchHit(sid, rowid & _SEQ_MASK, role, make_snippet(text, terms)) for sid, rowid, role, text in rows]

    def purge_expired(self, now: datetime | None = None) -> int:
        moment = now_us() if now is None else to_us(now)
        conn = self._conn()
        with self._write(conn):
            pks = [
                pk
                for (pk,) in conn.execute(
                    "SELECT pk FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ?", (moment,)
                ).fetchall()
            ]
            for pk in pks:
                self._delete_pk(conn, pk)
            if pks:
                self._compact_index(conn)
        return len(pks)

    def compact(self) -> None:
        """Maintenance: rebuild the full-text index from the text of the live messages (dropping the entries
        deletes left in it) into one segment, zero the database's free pages, copy the WAL into the database
        and truncate it. Deleted content is then gone from every file of the store. Writers wait while it
        runs (seconds per 100,000 messages in the store); readers do not."""
        conn = self._conn()
        with self._write(conn):
            conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
            conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            self._zero_free_pages(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @staticmethod
    def _zero_free_pages(conn: sqlite3.Connection) -> None:
        """Overwrite every page on the free list with zeros: blobs of zeros take the free pages (SQLite writes a
        page it hands out whole, without reading it), then are dropped, with ``secure_delete`` on."""
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("CREATE TABLE IF NOT EXISTS compact_scratch (blob BLOB)")
        while (free := conn.execute("PRAGMA freelist_count").fetchone()[0]) > 0:
            conn.execute("INSERT INTO compact_scratch VALUES (zeroblob(?))", (min(free, 4096) * page_size,))
        conn.execute("DROP TABLE compact_scratch")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                conn.close()

    # -- primitives for the generic operations --------------------------------------------------------------

    def _create(self, data: SessionData) -> None:
        info = data.info
        session_id = check_session_id(info.id)
        rows = [
            (
                m.role,
                dumps(m.message),
                m.model,
                None if m.usage is None else dumps(m.usage),
                to_us(m.created_at),
                message_text(m.message),
            )
            for m in data.messages
        ]
        conn = self._conn()
        with self._write(conn):
            now = now_us()
            existing = self._live_row(conn, session_id, now, purge=True)
            if existing is not None:
                raise conflict(session_id, 0, existing[2])
            pk = conn.execute(
                "INSERT INTO sessions (id, version, message_count, created_at, updated_at, title, owner,"
                " tags, model, system, expires_at, metadata, incarnation)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING pk",
                (
                    session_id,
                    info.version,
                    len(rows),
                    to_us(info.created_at),
                    to_us(info.updated_at),
                    info.title,
                    info.owner,
                    dumps(list(info.tags)),
                    info.model,
                    None if info.system is None else dumps(info.system),
                    None if info.expires_at is None else to_us(info.expires_at),
                    dumps(info.metadata),
                    info.incarnation or new_incarnation(),
                ),
            ).fetchone()[0]
            conn.executemany("INSERT INTO session_tags (session_pk, tag) VALUES (?, ?)", ((pk, t) for t in info.tags))
            self._insert_messages(conn, pk, 0, rows)
            conn.executemany(
                'INSERT INTO summaries (session_pk, start, "end", text, model, usage, created_at)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        pk,
                        s.start,
                        s.end,
                        s.text,
                        s.model,
                        None if s.usage is None else dumps(dict(s.usage)),
                        now if s.created_at is None else to_us(s.created_at),
                    )
                    for s in data.summaries
                ),
            )

    def _last_turn(self, session_id: str) -> tuple[int, int]:
        """Read backwards from the end of the log until a turn starts: a rewind reads one turn, not the
        session."""
        with self._read() as conn:
            row = self._live_row(conn, session_id, now_us(), purge=False)
            if row is None:
                raise SessionNotFound(session_id)

            def read(start: int, end: int) -> list[Any]:
                return [decode_json(content) for (content,) in self._rows(conn, row, start, end, "content")]

            return row[2], find_last_turn(read, row[3])

    def _truncate(self, session_id: str, to: int, expected_version: int, incarnation: str | None = None) -> int:
        check_session_id(session_id)
        conn = self._conn()
        with self._write(conn):
            now = now_us()
            row = self._live_row(conn, session_id, now, purge=True)
            if row is None:
                raise SessionNotFound(session_id)
            if row[2] != expected_version or not same_incarnation(incarnation, row[13]):
                raise conflict(session_id, expected_version, row[2], replaced=row[2] == expected_version)
            check_rewind_index(to, row[3])
            pk = row[0]
            low, high = _range(pk, to)
            self._release(conn, pk, to)
            if to < row[_FORK_AT]:  # the session now reads less of its parent (nothing: no parent)
                conn.execute(
                    "UPDATE sessions SET fork_at = ?, parent_pk = CASE WHEN ? = 0 THEN NULL ELSE parent_pk END"
                    " WHERE pk = ?",
                    (to, to, pk),
                )
                self._collect(conn, row[_PARENT])
            # The cut rows' ids come back with the next append: their index entries go now, not at compact().
            self._unindex(conn, pk, to)
            conn.execute("DELETE FROM messages WHERE id BETWEEN ? AND ?", (low, high))
            conn.execute("DELETE FROM messages_text WHERE id BETWEEN ? AND ?", (low, high))
            conn.execute('DELETE FROM summaries WHERE session_pk = ? AND "end" > ?', (pk, to))
            conn.execute(
                "UPDATE sessions SET version = version + 1, message_count = ?, updated_at = ?, last_turn = NULL"
                " WHERE pk = ?",
                (to, now, pk),
            )
        return expected_version + 1

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
