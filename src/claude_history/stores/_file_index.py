"""The file store's search index: one SQLite file beside the logs (``claude-history.index.sqlite``) mapping
each word to the messages holding it, so ``search`` reads the rows of the query's words and the hits' bytes
instead of parsing every log.

SQLite because it is in the standard library, its transactions are safe between the processes that share a
store directory, and a lookup reads only the rows of one word. The index is derived data: the logs stay the
record, readable with any text tool, and the index may be deleted at any time (the next search rebuilds it).

Why a search can trust it: each session's rows are stamped with the fingerprint (inode, size, modification
time) of the log they describe. Writers update the rows in the same step as the log, and only when the stamp
matches the log they started from; a search compares every stamp in its scope with the log on disk and
rebuilds the sessions that differ (a crash between a log write and its index update, an index deleted or
older than the logs, a log edited by hand). A hit is read back from the log by its byte span and checked with
``_search_text.text_matches``; if the log changed since the check, that session is scanned instead. So the
results are those of a scan, whatever happened in between.

Words are ``_search_text.search_terms`` of ``message_text`` (the one matching rule). A message's words are
also kept with its span, to remove exactly its postings when a rewind drops it. A delete (or a log read again
whole) costs one row whatever the session's length: the session's key loses its name at once, and its rows are
erased by the following writes (each erases at least as many postings as it adds) or ``compact``. A fork reads
its parent's rows for the messages it shares (``bases``), so making it indexes nothing it did not write itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from ._search_text import message_text, search_terms

__all__ = ["INDEX_NAME", "FileIndex", "Fingerprint", "Span", "fingerprint", "line_spans"]

INDEX_NAME = "claude-history.index.sqlite"
INDEX_TERMS = 64  # at most this many query words are looked up; every hit is checked on all of them

Fingerprint = tuple[int, int, int]  # (inode, size, mtime in ns) of a log file
SCHEMA_VERSION = 3  # PRAGMA user_version: an index of another layout is deleted and rebuilt
MAX_SEQ = 1 << 62
SWEEP_MIN = 256  # a write erases at least this many postings of dropped sessions (and as many as it adds)

# A session's rows are keyed by an integer ``key`` that only ``logs`` maps to its name: dropping a session (a
# delete, a log read again whole) removes that one row, so no search finds its rows and nothing in the file
# names it any more, at once and whatever its length; its key goes to ``dropped``, whose rows the writers then
# erase a few at a time (``_sweep``) and ``compact`` all at once.
#
# A fork shares its parent's rows as its log shares the parent's bytes: ``bases`` says that the session ``owner``
# reads the rows of ``key`` for its messages below ``count`` (level by level, as its log's base line), and its
# own key holds the rest. Its byte space starts with its parent's, so the spans hold as they are. A key whose
# session is gone keeps the rows its forks read; ``dropped.first`` says from which message on its rows go.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
  key INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, ino INTEGER NOT NULL, size INTEGER NOT NULL,
  mtime INTEGER NOT NULL, updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spans (
  key INTEGER NOT NULL, seq INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, words TEXT NOT NULL,
  PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postings (
  term TEXT NOT NULL, key INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (term, key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dropped (key INTEGER PRIMARY KEY, first INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bases (
  owner INTEGER NOT NULL, level INTEGER NOT NULL, key INTEGER NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (owner, level)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bases_by_key ON bases (key, count);
"""


class Span(NamedTuple):
    """Where one message's entry (``{"message": ..., ...}``) lies in its log, and its words. A fork's offsets
    are in its byte space: the prefixes of the logs it shares one after the other, then its own log."""

    seq: int
    offset: int
    length: int
    words: Sequence[str]


def fingerprint(stat: os.stat_result) -> Fingerprint:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def words_of(message: object) -> list[str]:
    return search_terms(message_text(message)) if isinstance(message, Mapping) else []


_DECODER = json.JSONDecoder()
_ENTRIES = '"entries":['


def line_spans(line: bytes, offset: int, first: int) -> list[Span]:
    """The spans of the entries of one append line of a log (at byte ``offset``, its first message ``first``),
    found by decoding the entries one by one: what a rebuild reads from disk."""
    text = line.decode("utf-8")
    position = text.index(_ENTRIES) + len(_ENTRIES)
    ascii_only = text.isascii()
    char_at, byte_at = 0, offset  # text[char_at] is at byte byte_at (moved forward as entries are found)

    def byte_offset(char: int) -> int:
        nonlocal char_at, byte_at
        if ascii_only:
            return offset + char
        byte_at += len(text[char_at:char].encode("utf-8"))
        char_at = char
        return byte_at

    spans: list[Span] = []
    while text[position] != "]":
        entry, end = _DECODER.raw_decode(text, position)
        start = byte_offset(position)
        message = entry.get("message") if isinstance(entry, dict) else None
        spans.append(Span(first + len(spans), start, byte_offset(end) - start, words_of(message)))
        position = end + 1 if text[end] == "," else end
    return spans


class FileIndex:
    """The index of one store directory. Thread-safe (a connection per thread); processes share it through
    SQLite's locking. Every method raises ``sqlite3.Error`` on failure; the store decides what that means
    (writers leave the index stale for the next search to rebuild, searches fall back to a scan)."""

    def __init__(self, root: Path) -> None:
        self.path = root / INDEX_NAME
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and self._local.pid != os.getpid():
            db = None  # a connection inherited through fork() is not this process's to use
        if db is None:
            with contextlib.suppress(FileExistsError):  # private like the logs, before SQLite creates it
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            # A rollback journal, not WAL: a WAL file would keep a deleted session's words until a checkpoint,
            # and secure_delete zeroes the freed pages, so nothing of a deleted session stays in the directory.
            # No fsync: the index is derived data; if a power loss leaves it corrupt, ``reset`` starts it anew.
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA secure_delete=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    db.close()  # written by another version of this module: start anew
                    for suffix in ("", "-journal", "-wal", "-shm"):
                        Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                    return self._db()
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._local.db, self._local.pid = db, os.getpid()
            with self._lock:
                self._all.append(db)
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def reset(self) -> None:
        """Delete the index (it is corrupt): the next search rebuilds it from the logs."""
        self.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # -- writers (called with the session's log lock held) --------------------------------------------------

    @staticmethod
    def _row(db: sqlite3.Connection, name: str) -> tuple[int, Fingerprint] | None:
        row = db.execute("SELECT key, ino, size, mtime FROM logs WHERE name = ?", (name,)).fetchone()
        return None if row is None else (row[0], (row[1], row[2], row[3]))

    @classmethod
    def _stamp(cls, db: sqlite3.Connection, name: str) -> Fingerprint | None:
        row = cls._row(db, name)
        return None if row is None else row[1]

    @staticmethod
    def _set_stamp(db: sqlite3.Connection, name: str, stamp: Fingerprint) -> None:
        db.execute("UPDATE logs SET ino = ?, size = ?, mtime = ? WHERE name = ?", (*stamp, name))

    @staticmethod
    def _restamp(db: sqlite3.Connection, key: int, stamp: Fingerprint, updated: int) -> None:
        """Stamp a session's rows with its log's fingerprint and the time of its last line, which a search
        orders by without reading the log's tail."""
        db.execute("UPDATE logs SET ino = ?, size = ?, mtime = ?, updated = ? WHERE key = ?", (*stamp, updated, key))

    @classmethod
    def _forget(cls, db: sqlite3.Connection, name: str) -> None:
        """Drop a session's rows in O(1): its ``logs`` row goes (so nothing finds or names them), and the keys it
        read are released for ``_sweep`` to erase what no fork reads."""
        row = cls._row(db, name)
        if row is None:
            return
        key = row[0]
        db.execute("DELETE FROM logs WHERE key = ?", (key,))
        read = [base for (base,) in db.execute("SELECT key FROM bases WHERE owner = ?", (key,))]
        db.execute("DELETE FROM bases WHERE owner = ?", (key,))
        for base in [*read, key]:
            cls._release(db, base)

    @staticmethod
    def _release(db: sqlite3.Connection, key: int) -> None:
        """A reader of ``key``'s rows went: unless they are still a session's own, what no fork reads of them
        (all, when none does) goes to ``dropped``."""
        if db.execute("SELECT 1 FROM logs WHERE key = ?", (key,)).fetchone() is not None:
            return
        kept = db.execute("SELECT max(count) FROM bases WHERE key = ?", (key,)).fetchone()[0] or 0
        db.execute("INSERT OR REPLACE INTO dropped (key, first) VALUES (?, ?)", (key, kept))

    @staticmethod
    def _view(db: sqlite3.Connection, name: str) -> list[tuple[int, int, int]] | None:
        """The rows a session reads: ``(key, first, end)`` per level, its own key last (to no end); None if it
        has no rows."""
        row = db.execute("SELECT key FROM logs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        view = []
        first = 0
        for key, count in db.execute("SELECT key, count FROM bases WHERE owner = ? ORDER BY level", (row[0],)):
            view.append((key, first, count))
            first = count
        return [*view, (row[0], first, MAX_SEQ)]

    @classmethod
    def _start(cls, db: sqlite3.Connection, name: str, stamp: Fingerprint, updated: int) -> int:
        """A session's rows afresh (the old ones dropped): its new key."""
        cls._forget(db, name)
        cursor = db.execute(
            "INSERT INTO logs (name, ino, size, mtime, updated) VALUES (?, ?, ?, ?, ?)", (name, *stamp, updated)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def _insert(db: sqlite3.Connection, key: int, spans: Iterable[Span]) -> int:
        """Add the rows of ``spans``; the number of postings added."""
        rows = [(key, s.seq, s.offset, s.length, " ".join(s.words)) for s in spans]
        db.executemany("INSERT OR REPLACE INTO spans (key, seq, offset, length, words) VALUES (?, ?, ?, ?, ?)", rows)
        postings = [(term, key, seq) for key, seq, _, _, words in rows for term in words.split()]
        db.executemany("INSERT OR IGNORE INTO postings (term, key, seq) VALUES (?, ?, ?)", postings)
        return len(postings)

    @staticmethod
    def _drop(db: sqlite3.Connection, key: int, first: int = 0, budget: int | None = None) -> int:
        """Erase messages ``[first, ...)`` of a session (all, or the first ones up to about ``budget`` postings:
        at least one message); the number of postings erased."""
        if budget is None:
            dropped = db.execute("SELECT seq, words FROM spans WHERE key = ? AND seq >= ?", (key, first)).fetchall()
        else:
            dropped = []
            query = "SELECT seq, words FROM spans WHERE key = ? AND seq >= ? ORDER BY seq LIMIT 32"
            rows = db.execute(query, (key, first))
            for seq, words in rows:
                dropped.append((seq, words))
                budget -= words.count(" ") + 1 if words else 0
                if budget <= 0:
                    break
        postings = [(term, key, seq) for seq, words in dropped for term in words.split()]
        db.executemany("DELETE FROM postings WHERE term = ? AND key = ? AND seq = ?", postings)
        if dropped:
            db.execute("DELETE FROM spans WHERE key = ? AND seq >= ? AND seq <= ?", (key, first, max(dropped)[0]))
        return len(postings)

    @classmethod
    def _sweep(cls, db: sqlite3.Connection, budget: int | None) -> None:
        """Erase the rows of dropped sessions: about ``budget`` postings (all when None). Secure delete zeroes
        them, so their words leave the file."""
        erased = 0
        while budget is None or erased < budget:
            row = db.execute("SELECT key, first FROM dropped LIMIT 1").fetchone()
            if row is None:
                return
            key, first = row
            batch = cls._drop(db, key, first, SWEEP_MIN if budget is None else budget - erased)
            left = db.execute("SELECT 1 FROM spans WHERE key = ? AND seq >= ? LIMIT 1", (key, first)).fetchone()
            if left is None:
                db.execute("DELETE FROM dropped WHERE key = ?", (key,))
            erased += max(batch, 1)

    def appended(
        self, name: str, before: Fingerprint, after: Fingerprint, spans: Sequence[Span], updated: int
    ) -> None:
        """A line was appended to a log that was ``before`` and is now ``after``. A new (empty) log starts the
        session's rows afresh; a log the index was not up to date with is left for a search to rebuild."""
        with self._write() as db:
            row = self._row(db, name)
            if before[1] == 0:
                key = self._start(db, name, after, updated)
            elif row is None or row[1] != before:
                return
            else:
                key = row[0]
                self._restamp(db, key, after, updated)
            self._sweep(db, max(SWEEP_MIN, self._insert(db, key, spans)))

    def touched(self, name: str, before: Fingerprint, after: Fingerprint) -> None:
        """A line without messages (a summary) was appended: only the stamp moves."""
        with self._write() as db:
            if self._stamp(db, name) == before:
                self._set_stamp(db, name, after)

    def cut(
        self, name: str, before: Fingerprint, after: Fingerprint, to: int, moved: Sequence[Span], updated: int
    ) -> None:
        """A rewind kept messages ``[0, to)``; ``moved`` are the kept ones whose line was rewritten (their
        bytes moved; the lines before it are copied as they were, so their spans hold)."""
        with self._write() as db:
            row = self._row(db, name)
            if row is None or row[1] != before:
                return
            key = row[0]
            kept = moved[0].seq if moved else to  # rows below are unchanged
            readers = db.execute(
                "SELECT name FROM bases JOIN logs ON logs.key = bases.owner WHERE bases.key = ? AND count > ?",
                (key, kept),
            ).fetchall()
            for (reader,) in readers:  # a fork reading rows that move or go: its rows are rebuilt by a search
                self._forget(db, reader)
            if db.execute("SELECT 1 FROM bases WHERE owner = ? AND count > ?", (key, to)).fetchone() is not None:
                self._forget(db, name)  # rewound below what it reads of its bases: rebuilt by a search
                self._sweep(db, SWEEP_MIN)
                return
            erased = self._drop(db, key, to)
            db.executemany(
                "UPDATE spans SET offset = ?, length = ? WHERE key = ? AND seq = ?",
                ((s.offset, s.length, key, s.seq) for s in moved),
            )
            self._restamp(db, key, after, updated)
            self._sweep(db, max(SWEEP_MIN, erased))

    def replaced(self, name: str, after: Fingerprint, spans: Sequence[Span], updated: int) -> None:
        """The log was written whole (an import) or read whole (a rebuild)."""
        with self._write() as db:
            added = self._insert(db, self._start(db, name, after, updated), spans)
            self._sweep(db, max(SWEEP_MIN, added))

    def forked(
        self,
        parent: str,
        parent_stamp: Fingerprint,
        name: str,
        stamp: Fingerprint,
        shared: int,
        spans: Sequence[Span],
        updated: int,
    ) -> None:
        """A fork ``name`` of ``parent`` (whose log is ``parent_stamp``) shares its first ``shared`` messages'
        bytes: it reads their rows from the parent's (``bases``), so no message is read or indexed; ``spans``
        are those its own log holds. If the parent's rows are not up to date, the fork gets none: the first
        search that meets it builds them."""
        with self._write() as db:
            row = self._row(db, parent)
            view = self._view(db, parent) if row is not None and row[1] == parent_stamp else None
            if view is None:
                self._forget(db, name)
                self._sweep(db, SWEEP_MIN)
                return
            key = self._start(db, name, stamp, updated)
            levels = [(base, min(end, shared)) for base, first, end in view if first < shared]
            db.executemany(
                "INSERT INTO bases (owner, level, key, count) VALUES (?, ?, ?, ?)",
                [(key, level, base, count) for level, (base, count) in enumerate(levels)],
            )
            self._sweep(db, max(SWEEP_MIN, self._insert(db, key, spans)))

    def removed(self, name: str) -> None:
        """The session is gone: at once nothing finds or names its rows, whatever its length; this write erases
        up to ``SWEEP_MIN`` postings of them (a short session's all), the next writes the rest."""
        with self._write() as db:
            self._forget(db, name)
            self._sweep(db, SWEEP_MIN)

    def compact(self) -> None:
        """Erase every row the dropped sessions left (``claude-history sessions compact``)."""
        with self._write() as db:
            self._sweep(db, None)

    # -- search ---------------------------------------------------------------------------------------------

    def refresh(
        self,
        logs: Mapping[str, Fingerprint],
        read: Callable[[str], tuple[Fingerprint, list[Span], int] | None],
        *,
        whole: bool,
    ) -> tuple[set[str], dict[str, int]]:
        """Bring the sessions of ``logs`` (name -> the log's fingerprint now) up to date: each one whose stamp
        differs is read again (``read``: its fingerprint, spans and last line's time, or None if it changed
        while being read). With ``whole`` (``logs`` is every log of the directory) rows of logs that are gone
        are dropped. Returns the names that could not be indexed (the caller scans those) and, for the others,
        the time of their log's last line."""
        db = self._db()
        query = "SELECT name, ino, size, mtime, updated FROM logs"
        if whole:
            rows = db.execute(query).fetchall()
        else:
            rows = [row for name in logs for row in db.execute(query + " WHERE name = ?", (name,))]
        stamps = {row[0]: ((row[1], row[2], row[3]), row[4]) for row in rows}
        unindexed: set[str] = set()
        updated: dict[str, int] = {}
        for name, now in logs.items():
            stamp = stamps.get(name)
            if stamp is not None and stamp[0] == now:
                updated[name] = stamp[1]
                continue
            found = read(name)
            if found is None:
                unindexed.add(name)
                continue
            self.replaced(name, *found)
            updated[name] = found[2]
        for name in stamps.keys() - logs.keys() if whole else ():
            self.removed(name)
        return unindexed, updated

    def candidates(self, terms: Sequence[str]) -> set[str]:
        """The sessions holding every one of ``terms`` (the first ``INDEX_TERMS``) somewhere, in their own rows
        or the rows they read of their bases: the ones worth reading positions of. Dropped sessions' rows not
        yet erased have no name: they are not found."""
        db = self._db()
        names: set[str] | None = None
        for term in terms[:INDEX_TERMS]:
            # DISTINCT: a common word has a row per message; only the keys come back, then their sessions.
            keys = [row[0] for row in db.execute("SELECT DISTINCT key FROM postings WHERE term = ?", (term,))]
            found: set[str] = set()
            for at in range(0, len(keys), 500):
                chunk = keys[at : at + 500]
                marks = ",".join("?" * len(chunk))
                found.update(row[0] for row in db.execute(f"SELECT name FROM logs WHERE key IN ({marks})", chunk))
                owners = f"SELECT name FROM bases JOIN logs ON logs.key = bases.owner WHERE bases.key IN ({marks})"
                found.update(row[0] for row in db.execute(owners, chunk))
            names = found if names is None else names & found
            if not names:
                return set()
        return names or set()

    def positions(self, name: str, terms: Sequence[str]) -> list[int]:
        """The messages of one session holding every term (the first ``INDEX_TERMS``), in order."""
        db = self._db()
        view = self._view(db, name)
        if view is None:
            return []
        looked_up = list(terms[:INDEX_TERMS])
        where = " OR ".join("(key = ? AND seq >= ? AND seq < ?)" for _ in view)
        query = " INTERSECT ".join(f"SELECT seq FROM postings WHERE term = ? AND ({where})" for _ in looked_up)
        args = [value for term in looked_up for value in (term, *(v for part in view for v in part))]
        return [row[0] for row in db.execute(query + " ORDER BY 1", args)]

    def spans(self, name: str, seqs: Sequence[int]) -> dict[int, tuple[int, int]]:
        db = self._db()
        view = self._view(db, name)
        found: dict[int, tuple[int, int]] = {}
        for key, first, end in view or ():
            part = [seq for seq in seqs if first <= seq < end]
            if part:
                marks = ",".join("?" * len(part))
                rows = db.execute(
                    f"SELECT seq, offset, length FROM spans WHERE key = ? AND seq IN ({marks})", (key, *part)
                )
                found.update((seq, (offset, length)) for seq, offset, length in rows)
        return found
