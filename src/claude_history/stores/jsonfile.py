"""File store (``file:///dir``): one append-only JSON Lines file per session, readable with any text tool.

Layout of the directory::

    claude-history.json        marker: this is a store (no writing into any other non-empty directory)
    <sha256 of id>.jsonl       the log: one line per committed operation
    <sha256 of id>.meta.json   the sidecar: id, title, owner, tags, model, system, expiry, metadata
    <sha256 of id>.lease       the turn lease: "<newest token> <expiry in µs>" (kept after a delete, so tokens
                               keep growing; stores/_leases.py)
    <sha256 of id>.checkpoint.json   the planner checkpoint (stores/_checkpoints.py): id, version, data;
                               derived data, replaced by rename without fsync (a lost one costs a whole read)
    <sha256 of id>.<k>.base    a fork's hard link to the k-th log it shares (below)
    <sha256 of id>.offsets     where every 64th message and the last line start (``_file_offsets``): derived,
                               checked against the log before use, rebuilt by the next append when stale
    claude-history.index.sqlite  the search index (``_file_index``): derived, rebuilt from the logs when missing

File names are the SHA-256 of the session id, so any id (quotes, ``../``, 1,000 characters) maps to a
fixed-length safe name inside the directory and never anywhere else; the real id lives in the sidecar.

Every log line starts with ``{"v":version,"n":message_count,"u":updated_at,...``: the state after that line.
A turn is one line (``"op":"append"`` with all its entries), written with one ``write`` and fsync'd, so after
a crash the last line is either whole or torn; a torn last line (no newline) is ignored by readers and cut off
by the next writer. Writers hold an exclusive ``flock`` on the log file for the compare-and-swap; readers take
no lock.

Rewind and delete are documented non-append operations: a rewind writes the kept part to a new file and
renames it over the log (the dropped messages are gone from disk, not hidden); a delete removes both files.
Forks are copy-on-write. A fork's log starts with a ``"op":"base"`` line listing, per level, the bytes of
``<name>.<k>.base`` it reads and the message count they end with: hard links, owned by the fork, to the logs it
shares (its parent's as it was; through a fork of a fork, a chain). Bytes before a reader's end never change
(appends go after, a rewind renames, a delete unlinks), so the link keeps the prefix; the file system counts
the references, and a file that loses a reader is cut to what its remaining forks read unless it is still a
session's log (``_trim``), so a dropped message leaves the disk as without forks. A fork point inside a turn's
line ends the shared part before that line; the fork holds those first messages itself (``_prefix``).

Listing scans the directory (every sidecar): fine for thousands of sessions; for more, use SQLite or
PostgreSQL. Search reads a word index kept beside the logs (``_file_index``): the writers update it with the
log, and a search checks it against every log in its scope and rebuilds what is stale, so it finds what a scan
would.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import SessionNotFound, StoreUnavailable
from . import _file_offsets as sidecar
from ._base_classes import StoreBase
from ._cas import (
    append_allowed,
    conflict,
    created_incarnation,
    new_incarnation,
    pop_incarnation,
    same_incarnation,
)
from ._checkpoints import check_checkpoint
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
from ._file_index import FileIndex, Fingerprint, Span, fingerprint, line_spans, words_of
from ._json import decode_json, dumps
from ._leases import check_lease, fence, ttl_us
from ._messages import EncodedEntry, check_append, stored_message, usage_records
from ._paging import check_cursor, listing_key, sorted_page
from ._rewind_fork import check_fork_point, check_rewind_index, fork_info
from ._search_text import make_snippet, message_text, search_terms, text_matches
from ._times import from_us, is_expired, now_us, to_us
from ._validation import MAX_INTEGER
from .base import Entry, SearchHit, SessionCursor, SessionData, SessionInfo, StoredMessage, Summary, UsageRecord

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["JsonFileStore"]

_log = logging.getLogger(__name__)

MARKER = "claude-history.json"
FORMAT = "claude-history-files/1"
LOG_SUFFIX = ".jsonl"
META_SUFFIX = ".meta.json"
CHECKPOINT_SUFFIX = ".checkpoint.json"
LEASE_SUFFIX = ".lease"
OFFSETS_SUFFIX = ".offsets"
BASE_SUFFIX = ".base"
TMP_SUFFIX = ".tmp"
STALE_TMP_SECONDS = 3600
_CHUNK = 1 << 16
_STATE = re.compile(rb'^\{"v":(\d+),"n":(\d+),"u":(-?\d+),"op":"([a-z]+)"')
_TEXT_STATE = re.compile(r'\{"v":(\d+),"n":(\d+),"u":(-?\d+),"op":"([a-z]+)"(?:,"t":(-?\d+),"entries":\[)?')
_NAME = re.compile(r"^[0-9a-f]{64}$")
_LINK = re.compile(r"^([0-9a-f]{64})\.(\d+)\.base$")
_READ_RETRIES = 8  # an unlocked read of a fork whose base moved under it (a rewind, a delete) starts over


class _Moved(Exception):
    """A fork's base changed under an unlocked reader (the fork was rewound or deleted meanwhile)."""


@dataclass(frozen=True)
class _State:
    """The log's state after its last complete line, and where that line ends."""

    version: int = 0
    count: int = 0
    updated: int = 0
    end: int = 0  # bytes of complete lines; anything after is a torn write


@dataclass(frozen=True)
class _Source:
    """One file of the chain a session reads: its first ``end`` bytes hold its messages up to ``count``."""

    path: Path
    end: int
    count: int


def _name(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _entries_line(head: str, rows: Iterable[str], tail: str) -> tuple[bytes, list[tuple[int, int]]]:
    """``head`` + the rows joined by commas + ``tail``, as bytes, and each row's (offset, length) in them."""
    start = head.encode("utf-8")
    encoded = [row.encode("utf-8") for row in rows]
    offsets = []
    position = len(start)
    for row in encoded:
        offsets.append((position, len(row)))
        position += len(row) + 1
    return start + b",".join(encoded) + tail.encode("utf-8"), offsets


def _parse_state(line: bytes, where: str) -> tuple[int, int, int]:
    """Version, message count and update time after a line, from its fixed prefix (no full JSON parse)."""
    match = _STATE.match(line)
    if match is None:
        raise StoreUnavailable(f"corrupt session log {where}: a line does not start with its state")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _tail_state(fd: int, where: str) -> _State:
    """The state from the last complete line, reading the file backwards: an append costs the same at any
    length of the log. The state is the line's fixed prefix, so only the line's start is read: a turn of
    100 MB on one line costs one backward scan for its start, not a copy of the line per chunk (which made
    listing a store with one such session take minutes)."""
    size = os.fstat(fd).st_size
    newline = _rfind_newline(fd, size)  # the end of the last complete line
    if newline < 0:
        return _State()
    start = _rfind_newline(fd, newline) + 1  # 0 when it is the first line
    line = os.pread(fd, min(_STATE_PREFIX_BYTES, newline - start), start)
    version, count, updated = _parse_state(line, where)
    return _State(version, count, updated, newline + 1)


_STATE_PREFIX_BYTES = 256  # more than '{"v":<20 digits>,"n":<20>,"u":<20>,"op":"summary"'


def _levels(fd: int, where: str) -> list[tuple[int, int]]:
    """The bases a log reads from, ``(end, count)`` each, from its first line ([] unless it is a fork's). Only
    the first line's fixed prefix is read for a log that is not a fork's, however long that line is."""
    match = _STATE.match(os.pread(fd, _STATE_PREFIX_BYTES, 0))
    if match is None or match.group(4) != b"base":
        return []
    head = b""
    while b"\n" not in head:
        chunk = os.pread(fd, _CHUNK, len(head))
        if not chunk:
            return []  # a torn first line: no committed base
        head += chunk
    try:
        return [(int(end), int(count)) for end, count in decode_json(head[: head.index(b"\n")])["levels"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreUnavailable(f"corrupt session log {where}: its base line: {exc}") from exc


def _read_prefix(path: Path, end: int) -> bytes:
    """The first ``end`` bytes of a base file; ``_Moved`` if it is gone or shorter (cut since the log naming
    it was read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _Moved from None
    try:
        data = os.pread(fd, end, 0)
    finally:
        os.close(fd)
    if len(data) < end:
        raise _Moved
    return data


def _summary_bytes(state: _State, record: Mapping[str, Any]) -> bytes:
    prefix = f'{{"v":{state.version},"n":{state.count},"u":{state.updated},"op":"summary","summary":'
    return (prefix + dumps(record) + "}\n").encode("utf-8")


def _base_line(version: int, updated: int, levels: Sequence[tuple[int, int]]) -> bytes:
    """A fork's first line: the bases it reads, ``(end, count)`` each, in ``<name>.<level>.base``."""
    count = levels[-1][1]
    return f'{{"v":{version},"n":{count},"u":{updated},"op":"base","levels":{dumps(levels)}}}\n'.encode()


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _last_line_start(log: bytes) -> int:
    """Where the last line of a whole log starts (0 for an empty one)."""
    return log.rfind(b"\n", 0, len(log) - 1) + 1 if log else 0


def _rfind_newline(fd: int, end: int) -> int:
    """The offset of the last newline before ``end``, or -1; reads backwards one chunk at a time."""
    pos = end
    while pos > 0:
        start = max(0, pos - _CHUNK)
        index = os.pread(fd, pos - start, start).rfind(b"\n")
        if index >= 0:
            return start + index
        pos = start
    return -1


def _parse_range(
    text: str, seq: int, line: tuple[int, int] | None, first: int, last: int | None
) -> list[StoredMessage]:
    """Messages ``[first, last)`` from ``text``: a run of a log's byte space starting at a line, or, when
    ``line`` (the message count after that line and its turn's time) is given, at message ``seq``'s entry inside
    it. Every line's message count is checked against the entries read (``sidecar.Stale`` if one differs: the
    offsets did not point where they said)."""
    decoder = _DECODER
    messages: list[StoredMessage] = []
    position = 0
    count, stamp = line if line is not None else (seq, 0)
    inside = line is not None
    size = len(text)
    while True:
        if inside:
            if text[position] == "]":
                if seq != count:
                    raise sidecar.Stale
                position = text.index("\n", position) + 1
                inside = False
                continue
            entry, end = decoder.raw_decode(text, position)
            if seq >= first:
                own = entry.get("t")
                created = from_us(stamp if own is None else own)
                messages.append(stored_message(seq, entry["message"], entry.get("model"), entry.get("usage"), created))
            seq += 1
            if last is not None and seq >= last:
                return messages
            position = end + 1 if text[end] == "," else end
            continue
        if position >= size:
            return messages
        match = _TEXT_STATE.match(text, position)
        if match is None:
            raise sidecar.Stale
        count = int(match.group(2))
        if match.group(4) == "append" and match.group(5) is not None:
            stamp = int(match.group(5))
            position = match.end()
            inside = True
        else:
            if count != seq:
                raise sidecar.Stale
            position = text.index("\n", position) + 1


_DECODER = json.JSONDecoder()


class JsonFileStore(StoreBase):
    """Sessions as JSON Lines files in one directory. ``fsync=False`` trades durability on power loss for
    speed (a process crash still loses nothing committed)."""

    checkpoints_supported = True

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise StoreUnavailable("the file store needs POSIX file locks (fcntl); use sqlite:// on this system")
        self.root = Path(root)
        self.fsync = fsync
        self._index = FileIndex(self.root)
        self._thread = threading.local()  # this thread's locked logs and the trims it put off (_trim)
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._check_marker()
        except OSError as exc:
            raise StoreUnavailable(f"cannot open file store {str(self.root)!r}: {exc}") from exc

    def _check_marker(self) -> None:
        marker = self.root / MARKER
        try:
            content = decode_json(marker.read_text("utf-8"))
        except FileNotFoundError:
            if any(not entry.name.startswith(f".{MARKER}.") for entry in os.scandir(self.root)):
                raise StoreUnavailable(
                    f"{str(self.root)!r} is not empty and is not a claude-history file store;"
                    " point file:// at an empty or new directory"
                ) from None
            # Publish the marker whole (write, then link): a concurrent opener never reads it half-written.
            tmp = self.root / f".{MARKER}.{uuid.uuid4().hex}{TMP_SUFFIX}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, dumps({"format": FORMAT}).encode("utf-8"))
            finally:
                os.close(fd)
            try:
                os.link(tmp, marker)
            except FileExistsError:
                return self._check_marker()
            finally:
                tmp.unlink()
            return None
        except ValueError:
            content = None
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            raise StoreUnavailable(f"{str(marker)!r} does not name a supported format ({FORMAT})")

    # -- paths and files ------------------------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.root / (name + LOG_SUFFIX)

    def _meta_path(self, name: str) -> Path:
        return self.root / (name + META_SUFFIX)

    def _checkpoint_path(self, name: str) -> Path:
        return self.root / (name + CHECKPOINT_SUFFIX)

    def _offsets_path(self, name: str) -> Path:
        return self.root / (name + OFFSETS_SUFFIX)

    def _link(self, name: str, level: int) -> Path:
        return self.root / f"{name}.{level}{BASE_SUFFIX}"

    def _held_locks(self) -> dict[tuple[int, int], int]:
        """(st_dev, st_ino) -> descriptor of each log this thread holds locked."""
        held: dict[tuple[int, int], int] | None = getattr(self._thread, "locks", None)
        if held is None:
            held = self._thread.locks = {}
            self._thread.pending = []
            self._thread.replaced = {}
        return held

    def _sync_dir(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _replace(self, path: Path, data: bytes) -> Fingerprint:
        """Write a whole file atomically: a temporary file, fsync'd, renamed over ``path``. Returns the file's
        fingerprint as written (a rename keeps it), which another writer's later change would not match."""
        return self._write_renamed(path, data, hold=False)

    def _replace_log(self, name: str, data: bytes) -> Fingerprint:
        """``_replace`` for the log of a session this thread holds locked. The new file is locked before it
        takes the name and stays locked until the session's lock is released (``_lock_loop``): otherwise
        another thread or process could lock the session through the new file while this one still writes its
        sidecars (a delete racing a fork left the fork's metadata without its log, and its index rows)."""
        return self._write_renamed(self._log(name), data, hold=True)

    def _write_renamed(self, path: Path, data: bytes, *, hold: bool) -> Fingerprint:
        tmp = self.root / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        flags = (os.O_RDWR if hold else os.O_WRONLY) | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(tmp, flags, 0o600)
        try:
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
            stat = os.fstat(fd)
            if hold:
                fcntl.flock(fd, fcntl.LOCK_EX)  # a new file: no one else has it
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        if hold:
            self._held_locks()[(stat.st_dev, stat.st_ino)] = fd
            self._thread.replaced.setdefault(path, []).append(fd)
        else:
            os.close(fd)
        self._sync_dir()
        return fingerprint(stat)

    def _read_meta(self, name: str, session_id: str | None = None) -> dict[str, Any] | None:
        try:
            meta = decode_json(self._meta_path(name).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StoreUnavailable(f"corrupt session metadata {str(self._meta_path(name))!r}: {exc}") from exc
        if not isinstance(meta, dict) or (session_id is not None and meta.get("id") != session_id):
            raise StoreUnavailable(f"session metadata {str(self._meta_path(name))!r} does not belong to this id")
        return meta

    def _write_meta(self, name: str, meta: dict[str, Any]) -> None:
        self._replace(self._meta_path(name), dumps(meta).encode("utf-8"))

    def _update_index(self, change: Any, *args: Any) -> None:
        """Apply one change to the search index. The log is the record and is already written: if the index
        cannot follow (locked past the timeout, disk full, corrupt), its stamp stays behind the log and the
        next search rebuilds that session."""
        try:
            change(*args)
        except sqlite3.Error as exc:
            _log.warning("the search index of %s missed a change (the next search rebuilds it): %s", self.root, exc)

    @contextmanager
    def _locked(self, name: str, *, create: bool) -> Iterator[int | None]:
        """The log file's descriptor under an exclusive lock (None when it does not exist and ``create`` is
        false). A rename or delete by the previous holder leaves us locking a dead inode: then start over."""
        locks = self._held_locks()
        try:
            yield from self._lock_loop(name, create, locks)
        finally:
            if not locks:
                self._trim_put_off()

    def _lock_loop(self, name: str, create: bool, locks: dict[tuple[int, int], int]) -> Iterator[int | None]:
        path = self._log(name)
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
        while True:
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                yield None
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    continue
                held = os.fstat(fd)
                key = (held.st_dev, held.st_ino)
                if (current.st_dev, current.st_ino) != key:
                    continue
                locks[key] = fd
                try:
                    yield fd
                finally:
                    del locks[key]
                    for newer in self._thread.replaced.pop(path, ()):  # the files that took its name meanwhile
                        newer_stat = os.fstat(newer)
                        locks.pop((newer_stat.st_dev, newer_stat.st_ino), None)
                        os.close(newer)
                return
            finally:
                os.close(fd)

    def _state(self, fd: int, name: str, *, repair: bool) -> _State:
        state = self._tail(name, fd)
        if repair and os.fstat(fd).st_size != state.end:
            os.ftruncate(fd, state.end)  # cut a torn last line left by a crashed writer
        return state

    def _remove(self, name: str, fd: int) -> None:
        """Delete a session's files (call with its lock held, ``fd`` its log): the sidecar first, so it vanishes
        at once; then its bases, and of its log what no fork reads."""
        self._meta_path(name).unlink(missing_ok=True)
        self._checkpoint_path(name).unlink(missing_ok=True)
        self._offsets_path(name).unlink(missing_ok=True)
        self._log(name).unlink(missing_ok=True)
        self._sync_dir()
        self._update_index(self._index.removed, name)
        self._drop_links(name)
        self._trim(fd)

    # -- copy-on-write forks ----------------------------------------------------------------------------------
    # A fork's log starts with a base line naming, per level, how much of ``<name>.<level>.base`` it reads:
    # hard links to the logs (inodes) it shares, each owned by this fork. A log's bytes before any reader's end
    # never change (appends go after them, a rewind renames a new file over the name, a delete unlinks it), so
    # the link keeps what the fork read. What no reader reads any more is cut off (_trim), so dropped messages
    # still leave the disk; the last link gone frees the file.

    def _drop_links(self, name: str, keep: int = 0) -> None:
        """Unlink a session's bases from level ``keep`` on, cutting each file to what its other readers read."""
        level = keep
        while self._link(name, level).exists():
            self._trim_path(self._link(name, level), unlink=True)
            level += 1

    def _trim_path(self, path: Path, *, unlink: bool = False) -> None:
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return
        try:
            if unlink:
                path.unlink(missing_ok=True)
            self._trim(fd)
        finally:
            os.close(fd)

    def _trim(self, fd: int) -> None:
        """A reader of the file ``fd`` went or reads less (its session deleted or rewound, a fork of it deleted
        or rewound): unless the file is still a session's log, cut it to the longest prefix a fork linking it
        reads. Under the file's lock, so trims of one file follow each other (a cut never grows a file): now if
        this thread holds it (a log it just renamed or unlinked), else once this thread holds no log's lock (so
        no thread waits for a file's lock while holding a session's: no deadlock)."""
        stat = os.fstat(fd)
        if stat.st_nlink == 0:
            return  # nothing links it: freed with the last descriptor
        held = self._held_locks().get((stat.st_dev, stat.st_ino))
        if held is not None:
            self._trim_locked(held)
        else:
            self._thread.pending.append(os.dup(fd))
            if not self._held_locks():
                self._trim_put_off()

    def _trim_put_off(self) -> None:
        pending: list[int] = self._thread.pending
        while pending:
            fd = pending.pop()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink:
                    self._trim_locked(fd)
            finally:
                os.close(fd)  # and its lock

    def _trim_locked(self, fd: int) -> None:
        stat = os.fstat(fd)
        readers = []
        for entry in os.scandir(self.root):
            match = _LINK.match(entry.name)
            if match is None:
                continue
            try:
                link = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if (link.st_dev, link.st_ino) == (stat.st_dev, stat.st_ino):
                readers.append((match.group(1), int(match.group(2))))
        if stat.st_nlink > len(readers):
            return  # still a session's log (or a link being made for a fork of one): every byte is read
        keep = 0
        for owner, level in readers:
            try:
                log = os.open(self._log(owner), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                continue  # a link left behind by a crash: it reads nothing
            try:
                levels = _levels(log, str(self._log(owner)))
            except StoreUnavailable:
                return  # leave a file a corrupt log may read whole
            finally:
                os.close(log)
            if level < len(levels):
                keep = max(keep, levels[level][0])
        if keep < stat.st_size:
            os.ftruncate(fd, keep)
            if self.fsync:
                os.fsync(fd)

    def _sources(self, name: str, fd: int, state: _State) -> list[_Source]:
        """The chain a session reads, in order: its bases, then its own log (``fd``, locked)."""
        levels = _levels(fd, str(self._log(name)))
        chain = [_Source(self._link(name, level), end, count) for level, (end, count) in enumerate(levels)]
        return [*chain, _Source(self._log(name), state.end, state.count)]

    def _prefix(
        self, sources: Sequence[_Source], at: int, version: int, now: int
    ) -> tuple[list[tuple[int, int]], list[Path], bytes, list[Span]]:
        """Messages ``[0, at)`` of the chain ``sources`` as a log that shares them: the levels it reads (``(end,
        count)``, ending at a line boundary) and the files to link for them, then the lines it holds itself
        (the entries up to ``at`` of a line that straddles it; the summaries inside ``[0, at)`` that lie
        beyond the shared bytes) and the spans of those entries in them. Only the source holding ``at`` is
        read (its line prefixes), and the sources after it for their summaries; nothing when ``at`` ends one."""
        if at == 0:
            return [], [], b"", []
        j = next(index for index, source in enumerate(sources) if source.count >= at)
        source = sources[j]
        cut, count = source.end, source.count
        rest: list[bytes] = []
        if source.count > at:
            lines = self._lines(source)
            cut, count = 0, sources[j - 1].count if j else 0
            for index, line in enumerate(lines):
                if _parse_state(line, str(source.path))[1] > at:
                    rest = lines[index:]
                    break
                cut += len(line) + 1
                count = _parse_state(line, str(source.path))[1]
        levels = [(s.end, s.count) for s in sources[:j]] + [(cut, count)]
        out: list[bytes] = []
        spans: list[Span] = []
        if count < at:  # the first line past the cut is the turn holding message ``at``: keep its first entries
            record = decode_json(rest.pop(0))
            entries = record["entries"][: at - count]
            head = f'{{"v":{version},"n":{at},"u":{now},"op":"append","t":{record["t"]},"entries":['
            line, offsets = _entries_line(head, map(dumps, entries), "]}\n")
            spans = [
                Span(count + i, offset, length, words_of(entry["message"]))
                for i, (entry, (offset, length)) in enumerate(zip(entries, offsets, strict=True))
            ]
            out.append(line)
        state = _State(version, at, now)
        for line in [*rest, *(line for later in sources[j + 1 :] for line in self._lines(later))]:
            match = _STATE.match(line)
            if match is not None and match.group(4) == b"summary":
                summary = decode_json(line)["summary"]
                if summary["end"] <= at:
                    out.append(_summary_bytes(state, summary))
        return levels, [s.path for s in sources[: j + 1]], b"".join(out), spans

    @staticmethod
    def _lines(source: _Source) -> list[bytes]:
        """The complete lines of a source's first ``end`` bytes (read under the lock of the session)."""
        try:
            data = _read_prefix(source.path, source.end)
        except _Moved:
            raise StoreUnavailable(f"the base {str(source.path)!r} is missing or shorter than its fork reads") from None
        lines = data.split(b"\n")
        lines.pop()
        return lines

    def _live_meta(self, name: str, session_id: str, now: int) -> dict[str, Any] | None:
        meta = self._read_meta(name, session_id)
        if meta is not None and is_expired(meta.get("expires_at"), now):
            return None
        return meta

    @contextmanager
    def _session_lock(
        self, session_id: str, *, create: bool
    ) -> Iterator[tuple[str, int | None, dict[str, Any] | None]]:
        """Lock a session for writing: its name, log descriptor and live metadata (an expired session is
        removed here, as purging it would). If the operation leaves no session behind, no file is left behind
        either."""
        name = _name(session_id)
        while True:
            with self._locked(name, create=create) as fd:
                if fd is None:
                    yield name, None, None
                    return
                meta = self._read_meta(name, session_id)
                if meta is not None and is_expired(meta.get("expires_at"), now_us()):
                    self._meta_path(name).unlink(missing_ok=True)
                    self._checkpoint_path(name).unlink(missing_ok=True)
                    meta = None
                if meta is None:  # an expired session, or a log orphaned by a crash before its sidecar
                    self._drop_links(name)
                    self._offsets_path(name).unlink(missing_ok=True)
                    if os.fstat(fd).st_nlink > 1:  # forks read this log: it stays theirs, the name starts anew
                        self._log(name).unlink(missing_ok=True)
                        self._update_index(self._index.removed, name)
                        self._trim(fd)
                        continue
                    os.ftruncate(fd, 0)
                try:
                    yield name, fd, meta
                finally:
                    if not self._meta_path(name).exists():
                        self._log(name).unlink(missing_ok=True)
                        self._offsets_path(name).unlink(missing_ok=True)
                        self._drop_links(name)
                return

    def _info(self, meta: dict[str, Any], state: _State) -> SessionInfo:
        return SessionInfo(
            id=meta["id"],
            version=state.version,
            created_at=from_us(meta["created_at"]),
            updated_at=from_us(max(meta["updated_at"], state.updated)),
            message_count=state.count,
            title=meta.get("title"),
            owner=meta.get("owner"),
            tags=tuple(meta.get("tags") or ()),
            model=meta.get("model"),
            system=meta.get("system"),
            expires_at=None if meta.get("expires_at") is None else from_us(meta["expires_at"]),
            metadata=meta.get("metadata") or {},
            incarnation=meta.get("incarnation"),
        )

    def _read_log(self, name: str, data: bytes) -> tuple[list[StoredMessage], list[Summary], _State]:
        """Messages, summaries and state of a log; a fork's first reads its bases (``_Moved`` if one changed
        under this unlocked read: read the log again)."""
        messages: list[StoredMessage] = []
        summaries: list[Summary] = []

        def bases(record: dict[str, Any]) -> None:
            for level, (end, count) in enumerate(record["levels"]):
                path = self._link(name, level)
                self._apply(str(path), _read_prefix(path, end), messages, summaries, None)
                if len(messages) != count:
                    raise StoreUnavailable(f"corrupt base {str(path)!r}: message count {len(messages)} != {count}")

        state = self._apply(str(self._log(name)), data, messages, summaries, bases)
        return messages, summaries, state

    @staticmethod
    def _apply(
        where: str,
        data: bytes,
        messages: list[StoredMessage],
        summaries: list[Summary],
        bases: Callable[[dict[str, Any]], None] | None,
    ) -> _State:
        """Add the messages and summaries of the complete lines of ``data`` (a log, or a base's prefix) to
        ``messages`` and ``summaries``; its first line may be a base line: ``bases`` reads what it names (None
        in a base, whose own base line is read through the fork's own links, every level of it named there)."""
        lines = data.split(b"\n")
        lines.pop()  # after the last newline: empty, or a torn write that never committed
        state = _State()
        end = 0
        for index, line in enumerate(lines):
            end += len(line) + 1
            version, count, updated = _parse_state(line, where)
            try:
                record = decode_json(line)
            except ValueError as exc:
                raise StoreUnavailable(f"corrupt session log {where}: {exc}") from exc
            op = record.get("op")
            if op == "base":
                if index:
                    raise StoreUnavailable(f"corrupt session log {where}: a base line after the first line")
                if bases is not None:
                    bases(record)
            elif op == "append":
                turn_stamp = from_us(record["t"])  # an entry has its own "t" only when imported
                for entry in record["entries"]:
                    own = entry.get("t")
                    messages.append(
                        stored_message(
                            len(messages),
                            entry["message"],
                            entry.get("model"),
                            entry.get("usage"),
                            turn_stamp if own is None else from_us(own),
                        )
                    )
            elif op == "summary":
                raw = record["summary"]
                summaries.append(
                    Summary(
                        start=raw["start"],
                        end=raw["end"],
                        text=raw["text"],
                        model=raw.get("model"),
                        usage=raw.get("usage"),
                        created_at=from_us(raw["created_at"]),
                    )
                )
            if len(messages) != count:
                raise StoreUnavailable(f"corrupt session log {where}: message count {count} != {len(messages)}")
            state = _State(version, count, updated, end)
        return state

    @staticmethod
    def _append_line(
        version: int, count: int, updated: int, rows: Iterable[str], turn_id: str | None = None
    ) -> tuple[bytes, list[tuple[int, int]]]:
        """The line, and where each row lies in it (offset, length in bytes: the search index's spans)."""
        head = f'{{"v":{version},"n":{count},"u":{updated},"op":"append","t":{updated},"entries":['
        tail = "]" + ("" if turn_id is None else ',"turn":' + dumps(turn_id)) + "}\n"
        return _entries_line(head, rows, tail)

    def _last_turn_id(self, fd: int, state: _State) -> str | None:
        """The ``turn_id`` the last append recorded: its line's ``"turn"``; None after a rewind (which ends
        the log with a "mark" line). Read only to recognise a retried commit, so it may read the whole log."""
        for line in reversed(os.pread(fd, state.end, 0).split(b"\n")[:-1]):
            match = _STATE.match(line)
            op = match.group(4) if match is not None else b""
            if op == b"append":
                turn = decode_json(line).get("turn")
                return turn if isinstance(turn, str) else None
            if op != b"summary":
                return None
        return None

    @staticmethod
    def _summary_line(state: _State, summary: Summary, created: int) -> bytes:
        record = {
            "start": summary.start,
            "end": summary.end,
            "text": summary.text,
            "model": summary.model,
            "usage": None if summary.usage is None else dict(summary.usage),
            "created_at": created,
        }
        return _summary_bytes(state, record)

    def _snapshot(
        self, version: int, updated: int, messages: Sequence[StoredMessage], summaries: Sequence[Summary]
    ) -> tuple[bytes, list[Span]]:
        """A whole log holding ``messages`` and ``summaries`` at ``version`` (what fork and import write), and
        its messages' spans."""
        parts = []
        spans: list[Span] = []
        if messages:
            rows = (
                '{"message":'
                + dumps(m.message)
                + ',"model":'
                + dumps(m.model)
                + ',"usage":'
                + dumps(m.usage)
                + ',"t":'
                + str(to_us(m.created_at))
                + "}"
                for m in messages
            )
            line, offsets = self._append_line(version, len(messages), updated, rows)
            parts.append(line)
            spans = [
                Span(m.seq, offset, length, words_of(m.message))
                for m, (offset, length) in zip(messages, offsets, strict=True)
            ]
        elif version:
            parts.append(f'{{"v":{version},"n":0,"u":{updated},"op":"mark"}}\n'.encode())
        state = _State(version, len(messages), updated)
        for summary in summaries:
            created = now_us() if summary.created_at is None else to_us(summary.created_at)
            parts.append(self._summary_line(state, summary, created))
        return b"".join(parts), spans

    def _new_meta(self, session_id: str, now: int, incarnation: str | None = None) -> dict[str, Any]:
        return {
            "id": session_id,
            "incarnation": created_incarnation(incarnation),
            "created_at": now,
            "updated_at": now,
            "title": None,
            "owner": None,
            "tags": [],
            "model": None,
            "system": None,
            "expires_at": None,
            "metadata": {},
        }

    def _names(self) -> list[str]:
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError as exc:
            raise StoreUnavailable(f"file store directory {str(self.root)!r} is gone") from exc
        return [
            e.name[: -len(META_SUFFIX)] for e in entries if e.name.endswith(META_SUFFIX) and not e.name.startswith(".")
        ]

    def _snapshot_info(self, name: str) -> SessionInfo | None:
        """Metadata and log state read without a lock; None if the session vanished meanwhile."""
        meta = self._read_meta(name)
        if meta is None:
            return None
        try:
            fd = os.open(self._log(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        try:
            state = self._tail(name, fd)
        finally:
            os.close(fd)
        return self._info(meta, state)

    # -- the offsets sidecar (``_file_offsets``) ---------------------------------------------------------------

    def _open_offsets(self, name: str) -> int | None:
        """A read descriptor of the log's offsets sidecar (the caller closes it), or None when there is none."""
        try:
            return os.open(self._offsets_path(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None

    def _tail(self, name: str, fd: int) -> _State:
        """The log's state: from its last line, found through the offsets sidecar when that describes this very
        file (inode, size, mtime), else by reading the log backwards for the line's start."""
        where = str(self._log(name))
        side = self._open_offsets(name)
        if side is None:
            return _tail_state(fd, where)
        try:
            header = sidecar.read_header(side)
        finally:
            os.close(side)
        if header is not None and (header.ino, header.size, header.mtime) == fingerprint(os.fstat(fd)):
            if header.size == 0:
                return _State()
            last = header.last
            ends = 0 <= last < header.size and os.pread(fd, 1, header.size - 1) == b"\n"
            if ends and (last == 0 or os.pread(fd, 1, last - 1) == b"\n"):  # a whole line, the last one
                head = os.pread(fd, min(_STATE_PREFIX_BYTES, header.size - last), last)
                if _STATE.match(head) is not None:
                    version, count, updated = _parse_state(head, where)
                    if count == header.count:
                        return _State(version, count, updated, header.size)
        return _tail_state(fd, where)

    def _read_space(self, name: str, fd: int, levels: Sequence[tuple[int, int]], begin: int, end: int) -> bytes:
        """Bytes ``[begin, end)`` of a session's byte space (its bases' prefixes, then its log ``fd``);
        ``_Moved`` if a base is gone or shorter."""
        parts = []
        position = 0
        for level, (size, _) in enumerate(levels):
            low, high = max(begin, position), min(end, position + size)
            if low < high:
                try:
                    base = os.open(self._link(name, level), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except FileNotFoundError:
                    raise _Moved from None
                try:
                    part = os.pread(base, high - low, low - position)
                finally:
                    os.close(base)
                if len(part) < high - low:
                    raise _Moved
                parts.append(part)
            position += size
        if end > position:
            low = max(begin, position)
            parts.append(os.pread(fd, end - low, low - position))
        return b"".join(parts)

    def _ranged(self, name: str, fd: int, first: int, last: int | None) -> list[StoredMessage] | None:
        """Messages ``[first, last)`` of the log ``fd`` read from the offsets sidecar's nearest point before
        ``first`` (and up to its point after ``last``): O(range + STEP) bytes. None when the sidecar cannot be
        used (missing, about another file, stale): the caller reads the log whole."""
        side = self._open_offsets(name)
        if side is None:
            return None
        try:
            header = sidecar.read_header(side)
            stat = fingerprint(os.fstat(fd))
            if header is None or header.ino != stat[0] or header.size > stat[1]:
                return None
            levels = _levels(fd, str(self._log(name)))
            shift = sum(end for end, _ in levels)
            covered = shift + header.size
            end = shift + stat[1]
            point = None
            if header.count:
                index = min(first, header.count - 1) // sidecar.STEP
                point = sidecar.read_point(side, index)
                if point is None or not 0 <= point[0] < point[1] < covered:
                    return None
                seq = index * sidecar.STEP
            if last is not None and -(-last // sidecar.STEP) * sidecar.STEP < header.count:
                after = sidecar.read_point(side, -(-last // sidecar.STEP))
                if after is None or not 0 < after[1] < covered:
                    return None
                end = after[1]
        finally:
            os.close(side)
        try:
            if point is None:
                data = self._read_space(name, fd, levels, 0, end)
                line = None
                seq = 0
            else:
                head = sidecar.APPEND_HEAD.match(self._read_space(name, fd, levels, point[0], point[0] + 256))
                data = self._read_space(name, fd, levels, point[1] - 1, end)
                if head is None or point[1] - point[0] < len(head.group(0)) or data[:1] not in (b"[", b","):
                    return None
                data = data[1:]
                line = (int(head.group(2)), int(head.group(4)))
            if end == shift + stat[1]:
                data = data[: data.rfind(b"\n") + 1]  # a torn last line holds nothing committed
            return _parse_range(data.decode("utf-8"), seq, line, first, last)
        except (sidecar.Stale, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None

    def _write_offsets(self, name: str, stamp: Fingerprint, count: int, last: int, records: bytes) -> None:
        """The whole sidecar, replaced by rename (no fsync: derived data, checked before use)."""
        path = self._offsets_path(name)
        tmp = self.root / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                _write_all(fd, sidecar.header_bytes(stamp, count, last) + records)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def _offsets_appended(
        self, name: str, before: Fingerprint, count: int, line: int, entries: Sequence[int], after: Fingerprint,
        last: int,
    ) -> None:
        """A line was appended (under the lock) to a log that was ``before`` and held ``count`` messages: its
        entries (``entries``, in the byte space; none for a summary) start where ``line`` does, and it starts
        at ``last`` in the log. Extends the sidecar if it describes ``before``, else rebuilds it."""
        total = count + len(entries)
        if before[1] == 0:
            self._write_offsets(name, after, total, last, sidecar.records_bytes(count, line, entries))
            return
        try:
            side = os.open(self._offsets_path(name), os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            self._rebuild_offsets(name)
            return
        try:
            header = sidecar.read_header(side)
            if (
                header is not None
                and (header.ino, header.size) == before[:2]
                and header.count == count
                and sidecar.complete(side, header)
            ):
                records = sidecar.records_bytes(count, line, entries)
                _pwrite_all(side, records, sidecar.HEADER_SIZE + header.records * sidecar.RECORD_SIZE)
                _pwrite_all(side, sidecar.header_bytes(after, total, last), 0)
                return
        except OSError:
            pass
        finally:
            os.close(side)
        self._rebuild_offsets(name)

    def _rebuild_offsets(self, name: str) -> None:
        """The sidecar from the log as it is (under the session's lock): reads and decodes it whole, once after
        a crash between a log write and the sidecar's, a rewind of a fork below its base, or a store written
        before sidecars existed."""
        try:
            fd = os.open(self._log(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return
        try:
            stamp = fingerprint(os.fstat(fd))
            data = os.pread(fd, stamp[1], 0)
            data = data[: data.rfind(b"\n") + 1]
            space = self._space(name, data)
        except (_Moved, KeyError, TypeError, ValueError, OSError):
            self._offsets_path(name).unlink(missing_ok=True)
            return
        finally:
            os.close(fd)
        shift = len(space) - len(data)
        records: list[tuple[int, int]] = []
        count = position = last = 0
        try:
            for line in space.split(b"\n")[:-1]:
                match = _STATE.match(line)
                if match is None:
                    raise sidecar.Stale
                if match.group(4) == b"append":
                    starts = list(sidecar.entry_offsets(line, position))
                    records += [(position, entry) for entry in starts[-count % sidecar.STEP :: sidecar.STEP]]
                count = int(match.group(2))
                if position >= shift:
                    last = position - shift
                position += len(line) + 1
        except (sidecar.Stale, ValueError, IndexError):
            self._offsets_path(name).unlink(missing_ok=True)  # a log this store cannot read: loads report it
            return
        self._write_offsets(name, stamp, count, last, sidecar.pack_records(records))

    def _kept_records(self, name: str, stamp: Fingerprint, count: int, below: int) -> bytes | None:
        """The sidecar's records of messages ``[0, below)`` if it describes the log ``stamp`` (inode, size)
        holding ``count`` messages; None if not."""
        side = self._open_offsets(name)
        if side is None:
            return None
        try:
            header = sidecar.read_header(side)
            if header is None or (header.ino, header.size) != stamp[:2] or header.count != count:
                return None
            if not sidecar.complete(side, header):
                return None
            return sidecar.pack_records(sidecar.read_records(side, header)[: -(-below // sidecar.STEP)])
        finally:
            os.close(side)

    # -- Store ----------------------------------------------------------------------------------------------

    def load(self, session_id: str) -> SessionData:
        check_session_id(session_id)
        name = _name(session_id)
        for _ in range(_READ_RETRIES):
            meta = self._live_meta(name, session_id, now_us())
            if meta is None:
                raise SessionNotFound(session_id)
            try:
                data = self._log(name).read_bytes()
            except FileNotFoundError:
                raise SessionNotFound(session_id) from None
            try:
                messages, summaries, state = self._read_log(name, data)
            except _Moved:
                continue  # a fork rewound or deleted while being read: read it as it is now
            return SessionData(info=self._info(meta, state), messages=messages, summaries=summaries)
        raise StoreUnavailable(f"the bases of session {session_id!r} kept changing while it was read")

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        """Read from the offsets sidecar's point before ``start`` (``_ranged``): O(range) at any length of the
        log. Without a sidecar that can be trusted, the log is read whole and the range cut from it."""
        first, last = check_message_range(start, stop)
        check_session_id(session_id)
        name = _name(session_id)
        for _ in range(_READ_RETRIES):
            if self._live_meta(name, session_id, now_us()) is None:
                raise SessionNotFound(session_id)
            try:
                fd = os.open(self._log(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise SessionNotFound(session_id) from None
            try:
                ranged = self._ranged(name, fd, first, last) if last is None or first < last else []
            except _Moved:
                continue  # a fork rewound or deleted while being read: read it as it is now
            finally:
                os.close(fd)
            if ranged is not None:
                return ranged
            break
        messages = self.load(session_id).messages
        first, last = clip_range(first, last, len(messages))
        return messages[first:last]

    def usage_log(self, session_id: str) -> list[UsageRecord]:
        return usage_records(self.load(session_id).messages)

    def get_session(self, session_id: str) -> SessionInfo:
        check_session_id(session_id)
        name = _name(session_id)
        info = self._snapshot_info(name)
        if (
            info is None
            or info.id != session_id
            or (info.expires_at is not None and is_expired(to_us(info.expires_at), now_us()))
        ):
            raise SessionNotFound(session_id)
        return info

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
        with contextlib.ExitStack() as stack:
            if lease is not None:  # held shared until the line is written: no lease is taken meanwhile
                newest, _ = self._read_lease(stack.enter_context(self._lease_file(_name(session_id), fcntl.LOCK_SH)))
                fence(session_id, lease, newest, expected_version, entries)
            return self._append(session_id, entries, encoded, expected_version, incarnation, turn_id, kept)

    def _append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        encoded: list[EncodedEntry],
        expected_version: int,
        incarnation: str | None,
        turn_id: str | None,
        checkpoint: str | None = None,
    ) -> int:
        with self._session_lock(session_id, create=True) as (name, fd, meta):
            assert fd is not None
            state = self._state(fd, name, repair=True) if meta is not None else _State()
            held = None if meta is None else meta.get("incarnation")
            if not append_allowed(
                session_id,
                entries,
                expected_version,
                incarnation,
                turn_id,
                state.version,
                held,
                lambda: self._last_turn_id(fd, state),
            ):
                return expected_version + 1
            now = max(now_us(), state.updated)
            if meta is None:
                self._write_meta(name, self._new_meta(session_id, now, incarnation))
            rows = (
                '{"message":'
                + e.message_json
                + ',"model":'
                + dumps(e.model)
                + ',"usage":'
                + (e.usage_json or "null")
                + "}"
                for e in encoded
            )
            line, offsets = self._append_line(expected_version + 1, state.count + len(encoded), now, rows, turn_id)
            before = fingerprint(os.fstat(fd))
            try:
                _write_all(fd, line)
                if self.fsync:
                    os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, state.end)  # a failed write (disk full) leaves the log as it was
                raise
            at = state.end + sum(end for end, _ in _levels(fd, str(self._log(name))))  # in its byte space
            spans = [
                Span(state.count + i, at + offset, length, search_terms(e.text))
                for i, (e, (offset, length)) in enumerate(zip(encoded, offsets, strict=True))
            ]
            after = fingerprint(os.fstat(fd))
            self._update_index(self._index.appended, name, before, after, spans, now)
            self._offsets_appended(name, before, state.count, at, [span.offset for span in spans], after, state.end)
            if checkpoint is not None:  # under the session's lock, as the line (best effort: the turn is stored)
                with contextlib.suppress(OSError):
                    self._keep_checkpoint(name, session_id, expected_version + 1, checkpoint)
        return expected_version + 1

    @contextmanager
    def _lease_file(self, name: str, mode: int) -> Iterator[int]:
        """The session's lease file (created empty if missing), under ``flock`` ``mode``."""
        fd = os.open(self.root / (name + LEASE_SUFFIX), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, mode)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _read_lease(fd: int) -> tuple[int | None, int]:
        """(newest token or None, its expiry in µs) from a lease file."""
        text = os.pread(fd, 64, 0).split()
        try:
            return int(text[0]), int(text[1])
        except (IndexError, ValueError):
            return None, 0  # a new file: no lease was ever taken

    def _write_lease(self, fd: int, token: int, until: int) -> None:
        os.pwrite(fd, f"{token:020d} {until:020d}\n".encode(), 0)  # fixed width: one small write in place
        if self.fsync:
            os.fsync(fd)

    def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        check_session_id(session_id)
        duration = ttl_us(ttl)
        with self._lease_file(_name(session_id), fcntl.LOCK_EX) as fd:
            token, until = self._read_lease(fd)
            now = now_us()
            if until > now:
                return None
            token = (token or 0) + 1
            self._write_lease(fd, token, now + duration)
            return token

    def release_lease(self, session_id: str, token: int) -> None:
        check_session_id(session_id)
        check_lease(token)
        with self._lease_file(_name(session_id), fcntl.LOCK_EX) as fd:
            if self._read_lease(fd)[0] == token:
                self._write_lease(fd, token, 0)

    def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        check_session_id(session_id)
        changes, incarnation = pop_incarnation(changes)
        changes = check_session_changes(changes)
        with self._session_lock(session_id, create=create and incarnation is None) as (name, fd, meta):
            if fd is None or (meta is None and (not create or incarnation is not None)):
                raise SessionNotFound(session_id)
            now = now_us()
            state = self._state(fd, name, repair=True) if meta is not None else _State()
            if meta is not None and not same_incarnation(incarnation, meta.get("incarnation")):
                raise conflict(session_id, state.version, state.version, replaced=True)
            meta = dict(meta) if meta is not None else self._new_meta(session_id, now)
            for key, value in changes.items():
                if key == "tags":
                    value = list(value)
                elif key == "expires_at":
                    value = None if value is None else to_us(value)
                meta[key] = value
            meta["updated_at"] = max(now, state.updated)
            info = self._info(meta, state)
            if is_expired(meta["expires_at"], now):
                self._remove(name, fd)  # expiring it in the past ends it now, as Redis would
            else:
                self._write_meta(name, meta)
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
        now = now_us()
        infos = []
        for name in self._names():
            info = self._snapshot_info(name)
            if info is None or (info.expires_at is not None and is_expired(to_us(info.expires_at), now)):
                continue
            if (owner is None or info.owner == owner) and (tag is None or tag in info.tags):
                infos.append(info)
        return sorted_page(infos, after, offset, limit)

    def delete(self, session_id: str) -> bool:
        check_session_id(session_id)
        name = _name(session_id)
        with self._locked(name, create=False) as fd:
            if fd is None:
                return False
            meta = self._read_meta(name, session_id)
            self._remove(name, fd)
        return meta is not None and not is_expired(meta.get("expires_at"), now_us())

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        check_session_id(session_id)
        name = _name(session_id)
        if self._live_meta(name, session_id, now_us()) is None:
            return None
        try:
            kept = decode_json(self._checkpoint_path(name).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(kept, dict) or kept.get("id") != session_id or not isinstance(kept.get("data"), dict):
            return None
        return int(kept["version"]), kept["data"]

    def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        text = check_checkpoint(session_id, version, data)
        with self._session_lock(session_id, create=False) as (name, fd, meta):
            if fd is None or meta is None:
                return
            self._keep_checkpoint(name, session_id, version, text)

    def _keep_checkpoint(self, name: str, session_id: str, version: int, text: str) -> None:
        """The checkpoint of the session at ``version``, unless a newer one is kept; under its lock."""
        path = self._checkpoint_path(name)
        with contextlib.suppress(FileNotFoundError, ValueError):
            kept = decode_json(path.read_bytes())
            if isinstance(kept, dict) and kept.get("id") == session_id and int(kept["version"]) > version:
                return
        body = '{"id":' + dumps(session_id) + ',"version":' + str(version) + ',"data":' + text + "}"
        tmp = self.root / f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        tmp.write_bytes(body.encode("utf-8"))
        os.replace(tmp, path)

    def save_summary(self, session_id: str, summary: Summary) -> None:
        check_session_id(session_id)
        with self._session_lock(session_id, create=False) as (name, fd, meta):
            if fd is None or meta is None:
                raise SessionNotFound(session_id)
            state = self._state(fd, name, repair=True)
            check_summary(summary, state.count)
            created = now_us() if summary.created_at is None else to_us(summary.created_at)
            before = fingerprint(os.fstat(fd))
            _write_all(fd, self._summary_line(state, summary, created))
            if self.fsync:
                os.fsync(fd)
            after = fingerprint(os.fstat(fd))
            self._update_index(self._index.touched, name, before, after)
            self._offsets_appended(name, before, state.count, 0, [], after, state.end)

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        """The index (``_file_index``) names the sessions holding every word, their positions and the bytes of
        each message: only those are read. Sessions most recently updated first (the listing's order), each
        one's hits in order; a session whose log changed under the search is scanned instead. If the index
        cannot be used at all (a read-only directory), every session is scanned, as before it existed."""
        terms = search_terms(query)
        check_page(limit, 0)
        check_filters(owner)
        if not terms or not limit:
            return []
        if session_id is not None:
            check_session_id(session_id)
        for attempt in range(2):
            try:
                return self._indexed_search(terms, session_id, owner, limit)
            except sqlite3.Error as exc:
                if type(exc) is sqlite3.DatabaseError and attempt == 0:  # not a database, malformed: start anew
                    _log.warning("the search index of %s is corrupt (%s): rebuilding it", self.root, exc)
                    self._index.reset()
                    continue
                _log.warning("the search index of %s cannot be used (%s): scanning", self.root, exc)
                break
        if session_id is not None:
            try:
                infos = [self.get_session(session_id)]
            except SessionNotFound:
                return []
        else:
            infos = self.list_sessions(owner=owner, limit=MAX_INTEGER)
        hits: list[SearchHit] = []
        for info in infos:
            self._scan(info.id, terms, owner, hits, limit)
            if len(hits) >= limit:
                break
        return hits

    def _indexed_search(
        self, terms: list[str], session_id: str | None, owner: str | None, limit: int
    ) -> list[SearchHit]:
        if session_id is None:
            logs = {}
            try:
                entries = list(os.scandir(self.root))
            except FileNotFoundError as exc:
                raise StoreUnavailable(f"file store directory {str(self.root)!r} is gone") from exc
            for entry in entries:
                if entry.name.endswith(LOG_SUFFIX) and _NAME.match(entry.name[: -len(LOG_SUFFIX)]):
                    with contextlib.suppress(FileNotFoundError):
                        logs[entry.name[: -len(LOG_SUFFIX)]] = fingerprint(entry.stat())
        else:
            name = _name(session_id)
            try:
                logs = {name: fingerprint(os.stat(self._log(name)))}
            except FileNotFoundError:
                return []
        unindexed, updated = self._index.refresh(logs, self._read_spans, whole=session_id is None)
        now = now_us()
        found: list[tuple[tuple[int, str], str]] = []  # (the listing's order, name)
        for name in (self._index.candidates(terms) & logs.keys()) | unindexed:
            # The sidecar and the index's time of the log's last line: what the listing orders by, without
            # reading the log's tail (a long last line is a long backward read).
            meta = self._read_meta(name)
            if meta is None or is_expired(meta.get("expires_at"), now):
                continue
            if (session_id is None or meta["id"] == session_id) and (owner is None or meta.get("owner") == owner):
                if name in unindexed:
                    info = self._snapshot_info(name)
                    if info is not None:
                        found.append((listing_key(info), name))
                else:
                    found.append(((-max(meta["updated_at"], updated[name]), meta["id"]), name))
        found.sort()
        hits: list[SearchHit] = []
        for (_, session), name in found:
            if name in unindexed or not self._read_hits(name, logs[name], session, terms, hits, limit):
                self._scan(session, terms, owner, hits, limit)
            if len(hits) >= limit:
                break
        return hits

    def _read_spans(self, name: str) -> tuple[Fingerprint, list[Span], int] | None:
        """A log's fingerprint, the spans of its messages and the time of its last line, read without a lock;
        None if it changed while being read (or vanished)."""
        try:
            fd = os.open(self._log(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        try:
            before = fingerprint(os.fstat(fd))
            data = os.pread(fd, before[1], 0)
            if fingerprint(os.fstat(fd)) != before:
                return None
        finally:
            os.close(fd)
        try:
            data = self._space(name, data)
        except (_Moved, KeyError, TypeError, ValueError):
            return None  # a base cut meanwhile, or a base line this store cannot read: scanning tells which
        spans: list[Span] = []
        offset = updated = 0
        lines = data.split(b"\n")
        lines.pop()  # a torn write after the last newline holds no committed message
        for line in lines:
            match = _STATE.match(line)
            if match is None:
                return None  # not a log this store can read: scanning it reports the corruption
            if match.group(4) == b"append":
                spans += line_spans(line, offset, len(spans))
            elif match.group(4) == b"base" and int(match.group(2)) != len(spans):
                return None  # a base that does not end where the next file goes on: scanning reports it
            offset += len(line) + 1
            updated = int(match.group(3))
        return before, spans, updated

    def _space(self, name: str, data: bytes) -> bytes:
        """A session's byte space, where its spans point: the prefixes of its bases one after the other (each
        ends with a whole line), then its own log ``data``. Only a fork's holds more than its log."""
        match = _STATE.match(data[:_STATE_PREFIX_BYTES])
        if match is None or match.group(4) != b"base":
            return data
        levels = decode_json(data[: data.index(b"\n")])["levels"]
        return b"".join(_read_prefix(self._link(name, level), end) for level, (end, _) in enumerate(levels)) + data

    def _reader(self, name: str, fd: int) -> Callable[[int, int], bytes]:
        """``read(offset, length)`` in a session's byte space (``_space``), its own log open as ``fd``."""
        starts: list[int] = []
        position = 0
        for end, _ in _levels(fd, str(self._log(name))):
            starts.append(position)
            position += end

        def read(offset: int, length: int) -> bytes:
            if offset >= position:
                return os.pread(fd, length, offset - position)
            level = bisect.bisect_right(starts, offset) - 1
            try:
                base = os.open(self._link(name, level), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise ValueError("a base is gone") from None
            try:
                return os.pread(base, length, offset - starts[level])
            finally:
                os.close(base)

        return read

    def _read_hits(
        self, name: str, indexed: Fingerprint, session_id: str, terms: list[str], hits: list[SearchHit], limit: int
    ) -> bool:
        """Add the hits of one session from the index and the bytes of its messages; False (adding nothing)
        if the log is no longer the one indexed, for the caller to scan it."""
        try:
            fd = os.open(self._log(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return True  # deleted meanwhile: no hits, as a scan would find
        found: list[SearchHit] = []
        try:
            if fingerprint(os.fstat(fd)) != indexed:
                return False
            read = self._reader(name, fd)
            seqs = self._index.positions(name, terms)
            position = 0
            while position < len(seqs) and len(hits) + len(found) < limit:
                chunk = seqs[position : position + limit - len(hits) - len(found)]
                position += len(chunk)
                spans = self._index.spans(name, chunk)
                for seq in chunk:
                    offset, length = spans[seq]
                    message = decode_json(read(offset, length))["message"]
                    text = message_text(message)
                    if text_matches(text, terms):
                        found.append(SearchHit(session_id, seq, message["role"], make_snippet(text, terms)))
        except (KeyError, TypeError, ValueError, StoreUnavailable):
            return False  # a span that does not hold its message: the index is wrong about this log
        finally:
            os.close(fd)
        hits += found
        return True

    def _scan(self, session_id: str, terms: list[str], owner: str | None, hits: list[SearchHit], limit: int) -> None:
        """Add the hits of one session by reading all of it (what search did before the index)."""
        try:
            data = self.load(session_id)
        except SessionNotFound:
            return
        if owner is not None and data.info.owner != owner:
            return  # another owner's, or given to another owner since the listing
        for stored in data.messages:
            text = message_text(stored.message)
            if text_matches(text, terms):
                hits.append(SearchHit(session_id, stored.seq, stored.role, make_snippet(text, terms)))
                if len(hits) >= limit:
                    return

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete expired sessions; also clears what crashed writers left: logs without a sidecar and stale
        temporary files."""
        moment = now_us() if now is None else to_us(now)
        purged = 0
        names = set(self._names())
        for entry in list(os.scandir(self.root)):
            link = _LINK.match(entry.name)
            suffix = next((end for end in (LOG_SUFFIX, OFFSETS_SUFFIX) if entry.name.endswith(end)), None)
            if suffix is not None or link is not None:
                orphan = link.group(1) if link is not None else entry.name[: -len(suffix or "")]
                if _NAME.match(orphan) and orphan not in names:
                    with self._locked(orphan, create=True) as fd:
                        if not self._meta_path(orphan).exists():
                            self._log(orphan).unlink(missing_ok=True)
                            self._offsets_path(orphan).unlink(missing_ok=True)
                            self._update_index(self._index.removed, orphan)
                            self._drop_links(orphan)
                            if fd is not None:
                                self._trim(fd)
            elif entry.name.endswith(TMP_SUFFIX) and entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - entry.stat().st_mtime > STALE_TMP_SECONDS:
                        self._trim_path(Path(entry.path), unlink=True)  # a fork's link that never was: trimmed
        for name in names:
            meta = self._read_meta(name)
            if meta is None or not is_expired(meta.get("expires_at"), moment):
                continue
            with self._locked(name, create=False) as fd:
                current = self._read_meta(name) if fd is not None else None
                if current is not None and is_expired(current.get("expires_at"), moment):
                    assert fd is not None
                    self._remove(name, fd)
                    purged += 1
        return purged

    def compact(self) -> None:
        """Erase from the search index every row a delete left there (its words, nameless and found by no
        search; writers erase them a few at a time anyway): afterwards nothing of a deleted session is left in
        the directory."""
        self._index.compact()

    def close(self) -> None:
        """Every operation opens and closes its own files; only the search index's connections stay open."""
        self._index.close()

    # -- primitives for the generic operations --------------------------------------------------------------

    def _create(self, data: SessionData) -> None:
        info = data.info
        session_id = check_session_id(info.id)
        with self._session_lock(session_id, create=True) as (name, fd, meta):
            assert fd is not None
            if meta is not None:
                raise conflict(session_id, 0, self._state(fd, name, repair=False).version)
            updated = to_us(info.updated_at)
            log, spans = self._snapshot(info.version, updated, data.messages, data.summaries)
            written = self._replace_log(name, log)
            self._update_index(self._index.replaced, name, written, spans, updated)
            records = sidecar.records_bytes(0, 0, [span.offset for span in spans])
            self._write_offsets(name, written, len(data.messages), _last_line_start(log), records)
            self._write_meta(name, self._meta_of(info))

    @staticmethod
    def _meta_of(info: SessionInfo) -> dict[str, Any]:
        return {
            "id": info.id,
            "incarnation": info.incarnation or new_incarnation(),
            "created_at": to_us(info.created_at),
            "updated_at": to_us(info.updated_at),
            "title": info.title,
            "owner": info.owner,
            "tags": list(info.tags),
            "model": info.model,
            "system": info.system,
            "expires_at": None if info.expires_at is None else to_us(info.expires_at),
            "metadata": info.metadata,
        }

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        """Copy-on-write: the fork links the files its parent reads (``_prefix``) instead of copying them; it
        writes a log of one line (plus a straddled turn's first messages and the summaries beyond the shared
        bytes), its sidecar and a link per level. Both sessions are locked (in name order): the parent's files
        stay as they are while they are linked. A crash at any point leaves no sidecar, so no fork (what it
        left is removed with the next use of the id or ``purge_expired``), or the whole fork."""
        check_session_id(session_id)
        target = check_session_id(new_id) if new_id is not None else new_session_id()
        with contextlib.ExitStack() as stack:
            locked = {
                sid: stack.enter_context(self._session_lock(sid, create=sid == target and sid != session_id))
                for sid in sorted({session_id, target}, key=_name)
            }
            name, fd, meta = locked[session_id]
            if fd is None or meta is None:
                raise SessionNotFound(session_id)
            state = self._state(fd, name, repair=True)
            target_name, target_fd, target_meta = locked[target]
            if target_meta is not None:
                assert target_fd is not None
                raise conflict(target, 0, self._state(target_fd, target_name, repair=False).version)
            now = max(now_us(), state.updated)
            info = fork_info(self._info(meta, state), at=check_fork_point(at, state.count), new_id=target, now=now)
            levels, paths, tail, spans = self._prefix(
                self._sources(name, fd, state), info.message_count, info.version, now
            )
            head = _base_line(info.version, now, levels) if levels else b""
            shared = levels[-1][1] if levels else 0  # messages in the shared bytes: the parent's records hold
            parent = fingerprint(os.fstat(fd))
            records = self._kept_records(name, parent, state.count, shared)
            made: list[Path] = []
            try:
                for level, path in enumerate(paths):
                    made.append(self.root / f".{target_name}.{level}{BASE_SUFFIX}.{uuid.uuid4().hex}{TMP_SUFFIX}")
                    os.link(path, made[-1])
                written = self._replace_log(target_name, head + tail)
                self._drop_links(target_name)  # left by a crash under this id: not this fork's
                for level, tmp in enumerate(made):
                    os.replace(tmp, self._link(target_name, level))
                made.clear()
                self._sync_dir()
            finally:
                for tmp in made:
                    tmp.unlink(missing_ok=True)
            # Its index rows are its parent's for the shared messages (``FileIndex.forked``: none is read here),
            # and those of the turn it holds itself; if the parent's rows are behind its log, the first search
            # that meets the fork builds them (``_read_spans``).
            at = sum(end for end, _ in levels) + len(head)  # where its own log starts in its byte space
            own = [span._replace(offset=at + span.offset) for span in spans]
            self._update_index(self._index.forked, name, parent, target_name, written, shared, own, now)
            self._offsets_path(target_name).unlink(missing_ok=True)  # left by a crash under this id
            if records is not None:  # the parent's records of the shared part, then those of its own turn
                records += sidecar.records_bytes(shared, at, [span.offset for span in own])
                self._write_offsets(target_name, written, info.message_count, _last_line_start(head + tail), records)
            self._write_meta(target_name, self._meta_of(info))
            for level, path in enumerate(paths):
                if path != self._log(name):  # a file only forks read: a trim that ran while this fork's link
                    self._trim_path(self._link(target_name, level))  # had no name left all of it: cut it now
        return target

    def _truncate(self, session_id: str, to: int, expected_version: int, incarnation: str | None = None) -> int:
        check_session_id(session_id)
        with self._session_lock(session_id, create=False) as (name, fd, meta):
            if fd is None or meta is None:
                raise SessionNotFound(session_id)
            state = self._state(fd, name, repair=True)
            if state.version != expected_version or not same_incarnation(incarnation, meta.get("incarnation")):
                raise conflict(
                    session_id, expected_version, state.version, replaced=state.version == expected_version
                )
            check_rewind_index(to, state.count)
            now = max(now_us(), state.updated)
            before = fingerprint(os.fstat(fd))
            sources = self._sources(name, fd, state)
            if to < (sources[-2].count if len(sources) > 1 else 0):  # below what it reads of its bases
                self._rebase(name, sources, to, expected_version, now)
            else:
                log, moved, line = self._cut(name, os.pread(fd, state.end, 0), to, expected_version + 1, now)
                shift = sum(source.end for source in sources[:-1])
                kept = moved[0].seq if moved else to  # the lines before the rewritten one are copied as they were
                records = self._kept_records(name, before, state.count, kept)
                written = self._replace_log(name, log)
                moved = [span._replace(offset=span.offset + shift) for span in moved]
                self._update_index(self._index.cut, name, before, written, to, moved, now)
                if records is None:
                    self._rebuild_offsets(name)
                else:
                    records += sidecar.records_bytes(kept, shift + line, [span.offset for span in moved])
                    self._write_offsets(name, written, to, _last_line_start(log), records)
            self._trim(fd)  # forks of the session may read the old log: it keeps only what they read
        return expected_version + 1

    def _rebase(self, name: str, sources: list[_Source], to: int, version: int, now: int) -> None:
        """Rewind a fork below what it reads of its bases: its new log reads less of them (the same links,
        the last one read less, the ones past it unlinked) and holds only what ``_prefix`` says it must."""
        levels, _, tail, spans = self._prefix(sources, to, version, now)
        head = _base_line(version, now, levels) if levels else b""
        mark = f'{{"v":{version + 1},"n":{to},"u":{now},"op":"mark"}}\n'.encode()
        before = fingerprint(os.stat(self._log(name)))
        written = self._replace_log(name, head + tail + mark)
        shift = sum(end for end, _ in levels) + len(head)  # where its own log starts in its byte space
        moved = [span._replace(offset=span.offset + shift) for span in spans]
        self._update_index(self._index.cut, name, before, written, to, moved, now)
        self._drop_links(name, len(levels))
        self._rebuild_offsets(name)
        if levels:
            self._trim_path(self._link(name, len(levels) - 1))

    def _cut(self, name: str, data: bytes, to: int, version: int, now: int) -> tuple[bytes, list[Span], int]:
        """The log without messages ``[to:]`` and the summaries that cover them, ending at ``version``. Lines
        wholly before the cut are copied as they are (the bytes of their messages stay where they were); only
        the line that straddles it is re-encoded: the new spans of its messages are returned, and where that
        line starts."""
        where = str(self._log(name))
        lines = data.split(b"\n")
        lines.pop()
        out: list[bytes] = []
        moved: list[Span] = []
        count = start = 0
        for line in lines:
            match = _STATE.match(line)
            if match is None:
                raise StoreUnavailable(f"corrupt session log {where}: a line does not start with its state")
            line_version, line_count, line_updated = map(int, match.groups()[:3])
            op = match.group(4).decode("ascii")
            if line_count <= to and (op != "summary" or count == line_count):
                out.append(line + b"\n")  # entirely inside the kept prefix
                count = line_count
                continue
            record = decode_json(line)
            if op == "append" and count < to:
                entries = record["entries"][: to - count]
                first = count
                count += len(entries)
                head = f'{{"v":{line_version},"n":{count},"u":{line_updated},"op":"append","t":{record["t"]},'
                rewritten, offsets = _entries_line(head + '"entries":[', map(dumps, entries), "]}\n")
                at = start = sum(map(len, out))
                moved += [Span(first + i, at + offset, length, ()) for i, (offset, length) in enumerate(offsets)]
                out.append(rewritten)
            elif op == "summary" and record["summary"]["end"] <= to:
                record["n"] = count
                out.append((dumps(record) + "\n").encode("utf-8"))
        out.append(f'{{"v":{version},"n":{count},"u":{now},"op":"mark"}}\n'.encode())
        return b"".join(out), moved, start

    def __repr__(self) -> str:
        return f"JsonFileStore({str(self.root)!r})"
