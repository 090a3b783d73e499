"""The encrypted store's operations as generators of backend calls (``_Call``), one implementation for the sync
and the async wrapper: each seals on the way in, opens on the way out, and does in plaintext what the
backend cannot see (finding the last turn, search)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from ...errors import ConfigurationError, ConflictError, DecryptionError, SessionNotFound
from .. import _cas, _checks, _json, _jsonl, _messages, _rewind_fork, _search_text, _times
from .._leases import check_lease
from ..base import (
    Entry,
    SearchHit,
    SessionCursor,
    SessionData,
    SessionInfo,
    StoredMessage,
    Summary,
    UsageRecord,
)
from . import _chain
from ._codec import (
    INTERNAL_TAG,
    RESERVED_METADATA_KEY,
    _Codec,
    _conflict_with_plaintext,
    _is_envelope_block,
    _is_internal,
    _record,
    backup_id,
    bindings,
    check_own_id,
    note_id,
    owner_of,
)

SEARCH_PAGE = 200
_KEEP_RETRIES = 16

T = TypeVar("T")
_log = logging.getLogger("claude_history.stores.encrypted")


@dataclass(frozen=True)
class _Call:
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def _call(method: str, *args: Any, **kwargs: Any) -> _Call:
    return _Call(method, args, kwargs)


_Op = Generator[_Call, Any, T]


class _Ops:
    def __init__(
        self, codec: _Codec, rewind_takes_incarnation: bool = True, update_takes_incarnation: bool = True
    ) -> None:
        self.codec = codec
        # The wrapped store's rewind and update_session compare the incarnation (every store of ours; a user's
        # may not).
        self.rewind_takes_incarnation = rewind_takes_incarnation
        self.update_takes_incarnation = update_takes_incarnation

    def _update_call(self, info: SessionInfo, **changes: Any) -> _Call:
        """A metadata write built from ``info``: metadata is last writer wins, so it is pinned to the very
        session read, never written over one deleted and created (imported) again since, whose record (its
        import epoch) it would replace."""
        pinned = {"incarnation": info.incarnation} if self.update_takes_incarnation and info.incarnation else {}
        return _call("update_session", info.id, **changes, **pinned)

    def _rewind_call(self, info: SessionInfo, to: int, expected_version: int) -> _Call:
        """The backend's rewind of the very session ``info`` describes: a session deleted and created again
        at that version since is not cut (a ``ConflictError``)."""
        pinned = {"incarnation": info.incarnation} if self.rewind_takes_incarnation and info.incarnation else {}
        return _call("rewind", info.id, to=to, expected_version=expected_version, **pinned)

    # -- reads

    def load(self, session_id: str) -> _Op[SessionData]:
        raw: SessionData = yield _call("load", session_id)
        rotation = self.codec.open_rotation(session_id, _record(raw.info))
        if rotation is None:
            opened: SessionData = yield from self._open(raw)
            return opened
        # Mid-rotation: after the rewind the messages, and until they are re-saved the summaries, are in the
        # backup; show the session as it was.
        rewound = raw.version == rotation["version"] + 1 and not raw.messages
        if not rewound and raw.version != rotation["version"] + 2:
            return self.codec.open_data(raw)
        try:
            backup: SessionData = yield _call("load", backup_id(session_id))
        except SessionNotFound:
            return self.codec.open_data(raw)
        saved = self.codec.open_data(backup, key_session=backup_id(session_id))
        messages = saved.messages
        if not rewound:
            messages = self.codec.open_messages(session_id, raw.messages, bindings(raw.info))
        info = replace(self.codec.open_info(raw.info), message_count=len(messages))
        return SessionData(info=info, messages=messages, summaries=saved.summaries)

    def _open(self, raw: SessionData) -> _Op[SessionData]:
        """``codec.open_data``, the rewind note read from its own record (``note_id``) when the one in the
        session's record does not explain the log's end (a metadata write built from an older read dropped it)."""
        try:
            return self.codec.open_data(raw)
        except _chain.LogEndError:
            for note in (yield from self._kept_notes(raw.info)):
                try:
                    return self.codec.open_data(raw, note=note)
                except _chain.LogEndError:
                    continue
            raise

    def _kept_notes(self, info: SessionInfo) -> _Op[list[Mapping[str, Any]]]:
        """The rewind notes kept in their own record (``note_id``) for ``info``'s session, incarnation,
        version and count (``_codec.kept_notes``): read only when the session's record does not explain the
        log's end."""
        sid = note_id(info.id)
        try:
            kept: SessionInfo = yield _call("get_session", sid)
            rows: list[StoredMessage] = (yield _call("load_messages", sid)) if kept.message_count else []
        except SessionNotFound:
            return []
        return self.codec.kept_notes(info, kept, rows)

    def _chain_head(self, info: SessionInfo, entries: Sequence[Entry]) -> _Op[int]:
        """What the first row of an append to ``info``'s session links to: the ``w`` of its last row, read and
        checked against where the wrapper left the log (so an append never chains onto turns dropped or put
        back beneath it: ``LogEndError``, nothing written). One more round trip for one row."""
        count = info.message_count
        rows: list[StoredMessage] = yield _call("load_messages", info.id, start=count - 1, stop=count)
        if [m.seq for m in rows] != [count - 1]:
            return info.version  # the session moved since it was read: the append's compare-and-swap refuses it
        try:
            self.codec.open_messages(info.id, rows, bindings(info))
        except DecryptionError:
            fresh: SessionInfo = yield _call("get_session", info.id)
            if (fresh.version, fresh.incarnation) != (info.version, info.incarnation):
                raise _cas.conflict(info.id, info.version, fresh.version, entries) from None
            raise
        link = self.codec.links(rows)[0]
        if link is None:
            return info.version  # format 1: not chained
        end = self.codec.log_end(info.id, info)
        try:
            _chain.check_links(info.id, [link], count - 1, end=end)
        except _chain.LogEndError:
            notes = yield from self._kept_notes(info)
            if not any(_chain.explains(note, info.version, count, link[0]) for note in notes):
                raise
        return link[0]

    def get_session(self, session_id: str) -> _Op[SessionInfo]:
        info: SessionInfo = yield _call("get_session", session_id)
        return self.codec.open_info(info)

    def load_messages(self, session_id: str, start: int, stop: int | None) -> _Op[list[StoredMessage]]:
        """The range from the backend, decrypted and checked at its edges (``_checked_rows``); mid-rotation
        (messages partly in the backup) the session is read whole, as ``load`` shows it."""
        first, last = _checks.check_message_range(start, stop)
        info: SessionInfo = yield _call("get_session", session_id)
        if self.codec.open_rotation(session_id, _record(info)) is not None:
            messages = (yield from self.load(session_id)).messages
            first, last = _checks.clip_range(first, last, len(messages))
            return messages[first:last]
        rows = yield from self._checked_rows(info, first, last)
        if rows is None:  # the session changed between the reads: one snapshot decides
            messages = (yield from self.load(session_id)).messages
            first, last = _checks.clip_range(first, last, len(messages))
            return messages[first:last]
        return [opened for _, opened in rows if opened.seq >= first]

    def _checked_rows(
        self, info: SessionInfo, first: int, last: int | None
    ) -> _Op[list[tuple[StoredMessage, StoredMessage]] | None]:
        """Rows ``[first - 1, last)`` of ``info``'s session (the one before the range too), each raw and opened,
        with the links that tie the range to the log checked (``_chain``): into the range (from the row before
        it), inside it, and at the log's end (its last row, read as well when the range stops short of it)
        against the version and the rewind note sealed with the key. So a ranged read, like a whole load, refuses
        a turn dropped or put back beneath the wrapper, at the cost of at most two more rows. None when the
        rows do not fit ``info`` (a writer came between the reads): the caller then reads one snapshot, which
        raises if the log really was changed."""
        sid, count = info.id, info.message_count
        low = first - 1 if first > 0 else 0
        raw: list[StoredMessage] = yield _call("load_messages", sid, start=low, stop=last)
        tail: list[StoredMessage] = []
        if count > 0 and (not raw or raw[-1].seq < count - 1):
            tail = yield _call("load_messages", sid, start=count - 1, stop=count)
            if [m.seq for m in tail] != [count - 1]:
                return None
        elif raw and raw[-1].seq != count - 1:
            return None  # rows past the end the session had when read
        if raw and [m.seq for m in raw] != list(range(raw[0].seq, raw[0].seq + len(raw))):
            return None
        try:
            bound = bindings(info)
            opened = self.codec.open_messages(sid, raw, bound)
            self.codec.open_messages(sid, tail, bound)
            end = self.codec.log_end(sid, info)
            if raw:
                _chain.check_links(sid, self.codec.links(raw), raw[0].seq, end=None)
            ending = self.codec.links(tail) if tail or not raw else self.codec.links(raw[-1:])
            first_seq = count - len(ending)
        except DecryptionError:
            return None
        try:
            _chain.check_links(sid, ending, first_seq, end=end)
        except _chain.LogEndError:
            notes = yield from self._kept_notes(info)
            if not any(self._ends(sid, ending, first_seq, (end[0], note, end[2])) for note in notes):
                return None
        except DecryptionError:
            return None
        return list(zip(raw, opened, strict=True))

    @staticmethod
    def _ends(
        sid: str, links: Sequence[_chain.Link | None], first_seq: int, end: tuple[int, Mapping[str, Any] | None, bool]
    ) -> bool:
        try:
            _chain.check_links(sid, links, first_seq, end=end)
        except DecryptionError:
            return False
        return True

    def usage_log(self, session_id: str) -> _Op[list[UsageRecord]]:
        """Decrypted whole: a message's time may be sealed with its content (forks, imports)."""
        data = yield from self.load(session_id)
        return _messages.usage_records(data.messages)

    def list_sessions(
        self, owner: str | None, tag: str | None, limit: int, offset: int, after: SessionCursor | None
    ) -> _Op[list[SessionInfo]]:
        """The backend's page without the rotation backups; when some were left out, the page is filled up
        from the backend's next page (by cursor), so a short page still means the end."""
        opened: list[SessionInfo] = []
        while True:
            want = limit - len(opened)
            infos: list[SessionInfo] = yield _call(
                "list_sessions", owner=owner, tag=tag, limit=want, offset=offset, after=after
            )
            opened.extend(self.codec.open_info(info) for info in infos if not _is_internal(info))
            if len(infos) < want or len(opened) >= limit:
                return opened
            after, offset = SessionCursor.after(infos[-1]), 0

    def search(self, query: str, session_id: str | None, owner: str | None, limit: int) -> _Op[list[SearchHit]]:
        """Decrypt and scan: the backend's index only ever sees ciphertext. Cost: reads every session (with
        ``owner``, which is stored in clear, the backend lists only that owner's and only those are read)."""
        terms = _search_text.search_terms(query)
        _checks.check_page(limit, 0)
        _checks.check_filters(owner)
        if not terms or limit == 0:
            return []
        if session_id is not None:
            ids = [session_id]
        else:
            ids = yield from self._all_ids(owner)
        hits: list[SearchHit] = []
        for sid in ids:
            try:
                data = yield from self.load(sid)
            except SessionNotFound:
                continue  # unknown, expired, or deleted while we searched: no hits, as in the backends
            except DecryptionError as exc:
                # One session another key wrote, or one tampered with, must not hide every other session's
                # hits (its own load still raises); it is named in the log.
                _log.warning("search skipped session %r: %s", sid, exc)
                continue
            if owner is not None and data.info.owner != owner:
                continue  # another owner's, or given to another owner since the listing
            for stored in data.messages:
                text = _search_text.message_text(stored.message)
                if _search_text.text_matches(text, terms):
                    hits.append(SearchHit(sid, stored.seq, stored.role, _search_text.make_snippet(text, terms)))
                    if len(hits) >= limit:
                        return hits
        return hits

    def _all_ids(self, owner: str | None = None) -> _Op[list[str]]:
        """Every live session id (of ``owner`` if given), most recently updated first, collected before
        anything is changed."""
        ids: list[str] = []
        offset = 0
        while True:
            page: list[SessionInfo] = yield _call("list_sessions", owner=owner, limit=SEARCH_PAGE, offset=offset)
            ids.extend(info.id for info in page if not _is_internal(info))
            if len(page) < SEARCH_PAGE:
                return list(dict.fromkeys(ids))
            offset += SEARCH_PAGE

    def export_jsonl(self, session_id: str) -> _Op[str]:
        data = yield from self.load(session_id)
        return _jsonl.export_session(data)

    def acquire_lease(self, session_id: str, ttl: float) -> _Op[int | None]:
        token: int | None = yield _call("acquire_lease", session_id, ttl=ttl)  # leases hold no content
        return token

    def release_lease(self, session_id: str, token: int) -> _Op[None]:
        yield _call("release_lease", session_id, token)

    # -- writes

    def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
        lease: int | None = None,
    ) -> _Op[int]:
        # Bad input fails before any I/O, in the backend's own words.
        encoded = _messages.check_append(session_id, entries, expected_version, incarnation, turn_id)
        check_own_id(session_id)
        fenced = {} if check_lease(lease) is None else {"lease": lease}
        try:
            info: SessionInfo | None = yield _call("get_session", session_id)
        except SessionNotFound:
            info = None
        count = prev = 0
        record: dict[str, Any] = {}
        if info is None:
            # A session this append creates takes this incarnation, which its rows are bound to (a bare one
            # from the caller names a session it read, now gone: the backend refuses to create under it).
            incarnation = incarnation or _cas.creating()
        token = (_cas.pinned_incarnation(incarnation) or "") if info is None else (info.incarnation or "")
        if info is None and expected_version != 0:
            # Nothing to append to, and no incarnation to pin: a session created again at this version before
            # the backend's append would take rows sealed for positions 0.. at its own positions.
            raise _cas.conflict(session_id, expected_version, 0, entries)
        if info is not None and info.version != expected_version:
            if expected_version == 0 and not (turn_id is not None and info.version == 1):
                # A create that finds another session: doomed. Refused here, because pinned to that session's
                # incarnation it would create a new session under it if that one were deleted before the
                # backend's append, and a writer still holding the old session's length could then land rows
                # sealed for other positions in it (every later load failing to decrypt).
                raise _cas.conflict(session_id, expected_version, info.version, entries)
            # Doomed unless it is this very turn, already committed (``turn_id``): pinned to the incarnation
            # read here, so that a session created again meanwhile at ``expected_version`` refuses it.
            incarnation = incarnation or info.incarnation
        if info is not None and info.version == expected_version:
            # The rows are sealed for positions count.. of the session as read here: the append must land
            # in that very incarnation (a delete and re-create at the same version would shift them).
            incarnation = incarnation or info.incarnation
            record = self.codec.check_writable(info)
            try:
                self._refuse_during_rotation(info, expected_version)
            except ConflictError as exc:
                raise _conflict_with_plaintext(exc, entries) from None
            count = info.message_count
            if count:
                prev = yield from self._chain_head(info, entries)
            current = self.codec.keys.current
            if record and current not in record.get("kids", []):
                # Record the new key before writing under it, so the record always covers every key in use.
                new_record = {**record, "kids": [*record.get("kids", []), current]}
                yield self._update_call(info, metadata={**info.metadata, RESERVED_METADATA_KEY: new_record})
                record = new_record
        sealed = self.codec.seal_entries(
            session_id, count, encoded, entries, incarnation=token, written=expected_version + 1, prev=prev
        )
        try:
            version: int = yield _call(
                "append",
                session_id,
                sealed,
                expected_version=expected_version,
                incarnation=incarnation,
                turn_id=turn_id,
                **fenced,
            )
        except ConflictError as exc:
            raise _conflict_with_plaintext(exc, entries) from exc
        if not record and (info is None or info.version == expected_version):
            # A session created by this append (or written before records existed): record the key. Best
            # effort: the data is already safe; the record only guards against writing with a wrong key later.
            fresh: SessionInfo = yield _call("get_session", session_id)
            if not _record(fresh):
                record = self.codec.new_record()
                yield self._update_call(fresh, metadata={**fresh.metadata, RESERVED_METADATA_KEY: record})
        return version

    def update_session(self, session_id: str, changes: Mapping[str, Any], create: bool) -> _Op[SessionInfo]:
        rest, held = _cas.pop_incarnation(dict(changes))
        checked = _checks.check_session_changes(rest)
        check_own_id(session_id)
        if RESERVED_METADATA_KEY in checked.get("metadata", {}):
            raise ConfigurationError(f"metadata key {RESERVED_METADATA_KEY!r} is reserved for encryption")
        try:
            info: SessionInfo | None = yield _call("get_session", session_id)
        except SessionNotFound:
            if not create or held is not None:  # a write built from a session read: it is gone
                raise
            info = None
        if info is None:
            # Created in one atomic create with its record, never by a write built from "no such session": an
            # import (or fork) creating it meanwhile bound its rows to the epoch in its own record, which such
            # a write would replace. If it exists by now, it is updated as found.
            try:
                created: SessionInfo = yield from self._create_empty(session_id, checked)
                return created
            except ConflictError:
                info = yield _call("get_session", session_id)
        assert info is not None
        if not _cas.same_incarnation(held, info.incarnation):
            raise _cas.conflict(session_id, info.version, info.version, replaced=True)
        record = self.codec.check_writable(info)
        sealing = "system" in checked or ("title" in checked and self.codec.encrypt_titles)
        out: dict[str, Any] = {}
        if "title" in checked:
            out["title"] = self.codec.seal_title(session_id, checked["title"])
        if "system" in checked:
            out["system"] = self.codec.seal_system(session_id, checked["system"])
        for name in ("owner", "tags", "model", "expires_at"):
            if name in checked:
                out[name] = checked[name]
        current = self.codec.keys.current
        needs_record = info is None or not _record(info) or (sealing and current not in record.get("kids", []))
        if needs_record:
            record = {**record, "kids": list(dict.fromkeys([*record.get("kids", []), current]))}
        if "metadata" in checked or needs_record:
            base = checked.get("metadata")
            if base is None:
                base = {} if info is None else {k: v for k, v in info.metadata.items() if k != RESERVED_METADATA_KEY}
            out["metadata"] = {**base, RESERVED_METADATA_KEY: record}
        result: SessionInfo = yield self._update_call(info, **out)
        if "expires_at" in checked:
            # The kept rewind notes live exactly as long as their session: one expiring first could leave a
            # session whose first copy of its note was dropped unreadable, one expiring later outlives it.
            with contextlib.suppress(SessionNotFound):  # thrown in at the yield
                yield _call("update_session", note_id(session_id), expires_at=checked["expires_at"])
        return self.codec.open_info(result)

    def _create_empty(self, session_id: str, checked: Mapping[str, Any]) -> _Op[SessionInfo]:
        """A new session of no messages with ``checked``'s fields, created in one atomic import;
        ``ConflictError`` if it exists."""
        now = _times.from_us(_times.now_us())
        names = ("title", "owner", "model", "system", "expires_at")
        fields = {name: checked[name] for name in names if name in checked}
        plain = SessionData(
            info=SessionInfo(
                id=session_id,
                version=0,
                created_at=now,
                updated_at=now,
                tags=tuple(checked.get("tags", ())),
                metadata=dict(checked.get("metadata", {})),
                **fields,
            ),
            messages=[],
        )
        sealed = self.codec.seal_data(plain, record=self.codec.new_record())
        yield _call("import_jsonl", _jsonl.export_session(sealed), session_id=session_id)
        info: SessionInfo = yield _call("get_session", session_id)
        return self.codec.open_info(info)

    def save_summary(self, session_id: str, summary: Summary) -> _Op[None]:
        if not isinstance(summary, Summary):
            raise ConfigurationError(f"expected a Summary, got {type(summary).__name__}")
        if not isinstance(summary.text, str):
            raise ConfigurationError("summary text must be a string")
        if summary.start == summary.end:
            # A summary of no messages could not be re-encrypted by rotate(): rewinding never drops [0, 0).
            raise ConfigurationError(
                f"summary range [{summary.start}, {summary.end}) is empty; a summary covers at least one message"
            )
        info: SessionInfo = yield _call("get_session", session_id)
        self.codec.check_writable(info)
        yield _call("save_summary", session_id, self.codec.seal_summary(session_id, summary))
        return None

    def rewind(
        self, session_id: str, to: int | None, expected_version: int | None, incarnation: str | None = None
    ) -> _Op[int]:
        if expected_version is not None:
            _checks.check_expected_version(expected_version)
        _cas.check_token("incarnation", incarnation)
        for attempt in range(_rewind_fork.REWIND_RETRIES):
            # The cut goes with a sealed note of what it leaves (``_chain``): the version it produces, the count
            # and the version the last kept row was written at; so it is recognised, unlike a cut beneath the
            # wrapper. Hence a compare-and-swap on the version read, looked at again if a writer slips in.
            last: int | None = None
            if to is not None:
                info: SessionInfo = yield _call("get_session", session_id)
                self._refuse_during_rotation(info, expected_version)
                current = info.version if expected_version is None else expected_version
                if info.version == current and _rewind_fork.check_rewind_index(to) <= info.message_count:
                    last = 0
                    if to > 0:
                        # The row kept last and all that is cut, checked up to the log's end: a note must
                        # never vouch for a row put back beneath the wrapper.
                        rows = yield from self._checked_rows(info, to, None)
                        if rows is None:
                            whole: SessionData = yield _call("load", session_id)
                            yield from self._open(whole)  # raises if the log was changed beneath the wrapper
                            if expected_version is not None or attempt == _rewind_fork.REWIND_RETRIES - 1:
                                raise _cas.conflict(session_id, current, whole.version)
                            continue  # else a writer came in between: read again
                        last = _chain.last_written(self.codec.links([raw for raw, _ in rows[:1]]))
                target = to
            else:
                # The backend cannot see inside the messages: the last turn's start is found here, in
                # plaintext, from a log whose links are checked (a cut must not hide one made beneath).
                raw: SessionData = yield _call("load", session_id)
                if expected_version is not None and raw.version != expected_version:
                    raise _cas.conflict(session_id, expected_version, raw.version)
                self._refuse_during_rotation(raw.info, expected_version)
                opened = yield from self._open(raw)
                target = _rewind_fork.rewind_target(opened.message_params(), None)
                info, current = raw.info, raw.version
                last = _chain.last_written(self.codec.links(raw.messages[:target]))
            if not _cas.same_incarnation(incarnation, info.incarnation):
                raise _cas.conflict(session_id, current, info.version, replaced=True)
            try:
                version: int = yield from self._cut(info, target, current, last)
                return version
            except ConflictError:
                if expected_version is not None or attempt == _rewind_fork.REWIND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _cut(self, info: SessionInfo, to: int, current: int, last: int | None) -> _Op[int]:
        """The backend's rewind of ``info``'s session at version ``current`` to ``to`` messages, with its note
        (none when the row kept last is of format 1: such a log is not checked at its end). The note is
        written first, in both places (a crash before the cut leaves a note no state will match); the note
        log (``_keep_note``) keeps it whatever happens to the session's record, which, as metadata is last
        writer wins, is put right after the cut too: a racing rewind that lost its compare-and-swap gives back
        the note it replaced, the winner restores its own (so loads rarely need the log)."""
        if last is None:
            version: int = yield self._rewind_call(info, to, current)
            return version
        note = self.codec.seal_rewind_note(info.id, info.incarnation, current + 1, to, last)
        before = _record(info).get("rewind")
        yield from self._put_note(info, note)
        yield from self._keep_note(info, note)
        try:
            version = yield self._rewind_call(info, to, current)
        except ConflictError:
            fresh: SessionInfo = yield _call("get_session", info.id)
            if _record(fresh).get("rewind") == note:
                yield from self._put_note(fresh, before)
            raise
        fresh = yield _call("get_session", info.id)
        if fresh.version == version and _record(fresh).get("rewind") != note:
            yield from self._put_note(fresh, note)
        return version

    def _put_note(self, info: SessionInfo, note: object) -> _Op[None]:
        record = {key: value for key, value in _record(info).items() if key != "rewind"}
        if note is not None:
            record["rewind"] = note
        yield self._update_call(info, metadata={**info.metadata, RESERVED_METADATA_KEY: record})
        return None

    @staticmethod
    def _keep_note(info: SessionInfo, note: Mapping[str, Any]) -> _Op[None]:
        """The note's second copy, appended to the log of a record of its own (``note_id``), before the cut.
        A metadata write of the session built from a read before the cut can drop the first copy, and any
        metadata write is last writer wins, so a rewind stalled between its read and its note's write could
        replace a note that explains the session; an append is a compare-and-swap, so no rewind, however it
        interleaves with others, ever removes another's note from this log (it goes with ``delete``, and with
        its session's expiry). A losing racer's note stays: it explains no state the wrapper leaves (another
        count or last row at that version). One small row per rewind."""
        sid = note_id(info.id)
        entry = Entry({"role": "user", "content": _json.dumps(dict(note))})
        for _attempt in range(_KEEP_RETRIES):
            try:
                kept: SessionInfo | None = yield _call("get_session", sid)
            except SessionNotFound:
                kept = None
            if kept is None or kept.expires_at != info.expires_at or INTERNAL_TAG not in kept.tags:
                record = {**({} if kept is None else _record(kept)), "note_of": info.id}
                kept = yield _call(
                    "update_session",
                    sid,
                    metadata={RESERVED_METADATA_KEY: record},
                    tags=[INTERNAL_TAG],
                    expires_at=info.expires_at,
                    create=True,
                )
            assert kept is not None
            try:
                # Pinned to the record read: never creates one (without its metadata) if it was deleted.
                yield _call("append", sid, [entry], expected_version=kept.version, incarnation=kept.incarnation)
                return None
            except ConflictError:
                continue  # another rewind kept its note first (or the record went): read it again
        raise ConflictError(
            f"session {info.id!r}: could not keep the rewind's note ({_KEEP_RETRIES} attempts); nothing was cut, "
            "retry the rewind",
            session_id=info.id,
            expected_version=info.version,
            actual_version=info.version,
        )

    @staticmethod
    def _refuse_during_rotation(info: SessionInfo, expected_version: int | None) -> None:
        rotation = _record(info).get("rotation")
        if isinstance(rotation, Mapping):
            raise ConflictError(
                f"session {info.id!r} is being re-encrypted (key rotation started at "
                f"{rotation.get('started_at')}); retry shortly, or run rotate({info.id!r}) to finish "
                "an interrupted rotation",
                session_id=info.id,
                expected_version=info.version if expected_version is None else expected_version,
                actual_version=info.version,
            )

    def fork(self, session_id: str, at: int | None, new_id: str | None) -> _Op[str]:
        data = yield from self.load(session_id)
        forked = _rewind_fork.fork_session(data, at=at, new_id=new_id, now=_times.now_us())
        check_own_id(forked.info.id)
        sealed = self.codec.seal_data(forked, record=self.codec.new_record())
        # One atomic create in the backend, with the rows re-encrypted under the new session's key.
        created: str = yield _call("import_jsonl", _jsonl.export_session(sealed), session_id=forked.info.id)
        return created

    def import_jsonl(self, data: str | Iterable[str], session_id: str | None) -> _Op[str]:
        plain = _jsonl.parse_import(data, session_id=session_id, now=_times.now_us())
        check_own_id(plain.info.id)
        for stored in plain.messages:
            if _is_envelope_block(stored.message.get("content")):
                raise ConfigurationError(
                    f"import message {stored.seq} is still encrypted: export through the encrypted store "
                    "(which writes plaintext JSON Lines), not from the backend underneath it"
                )
        sealed = self.codec.seal_data(plain, record=self.codec.new_record())
        created: str = yield _call("import_jsonl", _jsonl.export_session(sealed), session_id=plain.info.id)
        return created

    def purge_expired(self, now: datetime | None) -> _Op[int]:
        """The backend's purge, then the wrapper's own records (a kept rewind note, a rotation backup) of every
        session that is gone: no record of an expired session is left, as after ``delete``."""
        purged: int = yield _call("purge_expired", now)
        after: SessionCursor | None = None
        while True:
            page: list[SessionInfo] = yield _call("list_sessions", tag=INTERNAL_TAG, limit=SEARCH_PAGE, after=after)
            for info in page:
                owner = owner_of(info)
                if owner is None:
                    continue
                try:
                    yield _call("get_session", owner)
                except SessionNotFound:
                    yield _call("delete", info.id)
            if len(page) < SEARCH_PAGE:
                return purged
            after = SessionCursor.after(page[-1])

    def delete(self, session_id: str) -> _Op[bool]:
        deleted: bool = yield _call("delete", session_id)
        yield _call("delete", backup_id(session_id))  # a rotation backup must not outlive its session
        yield _call("delete", note_id(session_id))  # nor the rewind note kept for it
        return deleted
