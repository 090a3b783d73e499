"""Key rotation: re-encrypting sessions under the current key through the backend's ordinary compare-and-swap
path (backup copy, marker, rewind to 0, re-append, drop backup), so that an interrupted rotation is finished
by the next ``rotate`` or ``load`` without loss."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from ...errors import ConflictError, DecryptionError, HistoryError, SessionNotFound
from .. import _jsonl
from ..base import (
    SessionData,
    SessionInfo,
)
from ._codec import (
    FORMAT_VERSION,
    INTERNAL_TAG,
    RESERVED_METADATA_KEY,
    _is_envelope_string,
    _parse_time,
    _record,
    backup_id,
)
from ._ops import _call, _Op, _Ops

ROTATE_RETRIES = 8
# A backup younger than this may belong to a rotation running right now in another process.
STALE_BACKUP_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class RotationReport:
    """What ``rotate`` did: sessions re-encrypted, sessions already under the current key, and interrupted
    rotations that were finished."""

    rotated: tuple[str, ...] = ()
    unchanged: int = 0
    resumed: tuple[str, ...] = ()


class _RotatingOps(_Ops):
    """The operations with ``rotate``: what the wrappers run."""

    def rotate(self, session_id: str | None) -> _Op[RotationReport]:
        ids = [session_id] if session_id is not None else (yield from self._all_ids())
        rotated: list[str] = []
        resumed: list[str] = []
        unchanged = 0
        failed: dict[str, str] = {}
        errors: list[HistoryError] = []
        for sid in ids:
            try:
                outcome = yield from self.rotate_session(sid)
            except SessionNotFound:
                if session_id is not None:
                    raise
                continue
            except (DecryptionError, ConflictError) as exc:
                if session_id is not None:
                    raise
                failed[sid] = str(exc)
                errors.append(exc)
                continue
            if outcome == "unchanged":
                unchanged += 1
            else:
                (resumed if outcome == "resumed" else rotated).append(sid)
        if failed:
            first = next(iter(failed.items()))
            kind = DecryptionError if all(isinstance(e, DecryptionError) for e in errors) else HistoryError
            raise kind(
                f"rotation re-encrypted {len(rotated)} sessions but could not rotate {len(failed)} "
                f"({', '.join(map(repr, list(failed)[:5]))}{'...' if len(failed) > 5 else ''}); their data "
                f"is unchanged. First error: {first[0]!r}: {first[1]}"
            )
        return RotationReport(tuple(rotated), unchanged, tuple(resumed))

    def rotate_session(self, session_id: str) -> _Op[str]:
        """Re-encrypt one session under the current key through the CAS path:
        backup copy (atomic import) -> marker -> rewind to 0 (CAS) -> re-append (CAS) -> summaries and system
        prompt -> clear marker -> drop backup. A crash at any point leaves the data in the session or the
        backup, and the next ``rotate`` (or ``load``) finds it; other writers get ``ConflictError``
        meanwhile."""
        resumed = False
        for _attempt in range(ROTATE_RETRIES):
            raw: SessionData = yield _call("load", session_id)
            record = _record(raw.info)
            if self.codec.open_rotation(session_id, record) is not None:
                yield from self._resume(session_id, raw, record)
                resumed = True
                continue
            if not self.codec.needs_rotation(raw):
                return "resumed" if resumed else "unchanged"
            plain = yield from self._open(raw)  # a missing key fails here, before anything is written
            if any(s.end == 0 and self.codec.summary_kid(s) != self.codec.keys.current for s in raw.summaries):
                raise HistoryError(
                    f"session {session_id!r} has a summary of no messages (range [0, 0)) that rotation "
                    "cannot rewrite in place; export the session through the encrypted store, delete it, "
                    "drop that summary from the export and import it again"
                )
            if not raw.messages:
                yield from self._finish_metadata(session_id, plain, record)
                return "rotated"
            backup = backup_id(session_id)
            rotation = self.codec.seal_rotation(
                session_id,
                {
                    "backup": backup,
                    "version": raw.version,
                    "count": len(raw.messages),
                    "started_at": datetime.now(timezone.utc).isoformat(),
                    "token": uuid.uuid4().hex,
                },
            )
            if not (yield from self._write_backup(session_id, plain, rotation)):
                continue
            try:
                yield self._update_call(
                    raw.info, metadata={**raw.info.metadata, RESERVED_METADATA_KEY: {**record, "rotation": rotation}}
                )
            except (ConflictError, SessionNotFound):
                # Deleted (and perhaps imported again) since it was read: no marker lands on another session.
                yield from self._drop_backup(backup, rotation["token"])
                continue
            try:
                # Only the session read: one deleted and imported again meanwhile at this version is not cut.
                after_rewind: int = yield self._rewind_call(raw.info, 0, raw.version)
            except ConflictError:
                # Someone appended since we loaded: undo our marker and backup, then start over.
                fresh: SessionInfo = yield _call("get_session", session_id)
                fresh_record = _record(fresh)
                if fresh_record.get("rotation") == rotation:
                    fresh_record.pop("rotation")
                    yield self._update_call(fresh, metadata={**fresh.metadata, RESERVED_METADATA_KEY: fresh_record})
                yield from self._drop_backup(backup, rotation["token"])
                continue
            yield from self._finish(session_id, backup, after_rewind, plain, record)
            return "rotated"
        raise ConflictError(
            f"could not rotate session {session_id!r}: it kept changing ({ROTATE_RETRIES} attempts); retry "
            "when it is idle",
            session_id=session_id,
            expected_version=0,
            actual_version=None,
        )

    def _write_backup(self, session_id: str, plain: SessionData, rotation: Mapping[str, Any]) -> _Op[bool]:
        """Copy the session (atomically) to its backup id; False when a stale backup was cleared first."""
        backup = rotation["backup"]
        copy = SessionData(
            info=replace(
                plain.info, id=backup, title=None, owner=None, tags=(INTERNAL_TAG,), expires_at=None, metadata={}
            ),
            messages=plain.messages,
            summaries=plain.summaries,
        )
        mark = {"backup_of": session_id, **{k: rotation[k] for k in ("version", "token", "started_at")}}
        sealed = self.codec.seal_data(copy, record=self.codec.new_record(**mark))
        try:
            yield _call("import_jsonl", _jsonl.export_session(sealed), session_id=backup)
            return True
        except ConflictError:
            existing: SessionInfo = yield _call("get_session", backup)
        other = _record(existing)
        started = _parse_time(other.get("started_at"))
        now = datetime.now(timezone.utc)
        # A backup of an older version of the session, or one left long ago, belongs to a rotation that lost
        # its compare-and-swap or died before marking the session: the session itself is intact; drop it.
        if other.get("version") == rotation["version"] and started is not None and now - started < STALE_BACKUP_AFTER:
            raise ConflictError(
                f"another rotation of session {session_id!r} seems to be running (started at "
                f"{started.isoformat()}); rotate a session from one process at a time. If none is running "
                f"(it crashed), retry after {(started + STALE_BACKUP_AFTER).isoformat()}",
                session_id=session_id,
                expected_version=int(rotation["version"]),
                actual_version=int(rotation["version"]),
            )
        yield from self._drop_backup(backup, other.get("token"))
        return False

    def _drop_backup(self, backup: str, token: object) -> _Op[None]:
        """Delete a backup only if it is still the one ``token`` names (never another rotation's)."""
        try:
            existing: SessionInfo = yield _call("get_session", backup)
        except SessionNotFound:
            return None
        if _record(existing).get("token") == token:
            yield _call("delete", backup)
        return None

    def _finish(
        self, session_id: str, backup: str, version: int, plain: SessionData, record: Mapping[str, Any]
    ) -> _Op[None]:
        entries = self.codec.reseal_messages(
            session_id, plain.messages, incarnation=plain.info.incarnation or "", written=version + 1
        )
        pinned = {"incarnation": plain.info.incarnation} if plain.info.incarnation else {}
        try:
            yield _call("append", session_id, entries, expected_version=version, **pinned)
        except ConflictError as exc:
            raise HistoryError(
                f"rotation of session {session_id!r} was interrupted by a write that bypassed the encrypted "
                f"store; its messages are safe in the backup session {backup!r}. Restore them by hand "
                "(export the backup through the encrypted store and import it) and delete the backup."
            ) from exc
        yield from self._finish_summaries_and_metadata(session_id, backup, plain, record)

    def _finish_summaries_and_metadata(
        self, session_id: str, backup: str, plain: SessionData, record: Mapping[str, Any]
    ) -> _Op[None]:
        current: SessionData = yield _call("load", session_id)
        present = [(s.start, s.end, s.text) for s in self.codec.open_data(current).summaries]
        for summary in plain.summaries:
            key = (summary.start, summary.end, summary.text)
            if key in present:
                present.remove(key)
                continue
            yield _call("save_summary", session_id, self.codec.seal_summary(session_id, summary))
        # The backup goes before the marker: a marker without a backup is still resumable (every message and
        # summary is back in the session by now), a backup without a marker would be left behind.
        yield _call("delete", backup)
        yield from self._finish_metadata(session_id, plain, record)
        return None

    def _finish_metadata(self, session_id: str, plain: SessionData, record: Mapping[str, Any]) -> _Op[None]:
        clean = {k: v for k, v in record.items() if k != "rotation"}
        clean["kids"] = [self.codec.keys.current]
        clean.setdefault("v", FORMAT_VERSION)
        info: SessionInfo = yield _call("get_session", session_id)
        note = self.codec.open_rewind_note(session_id, info)
        if note is not None:  # sealed again under the current key, as everything else
            clean["rewind"] = self.codec.seal_rewind_note(
                session_id, info.incarnation, note["version"], note["count"], note["last"]
            )
        metadata = {k: v for k, v in info.metadata.items() if k != RESERVED_METADATA_KEY}
        changes: dict[str, Any] = {
            "system": self.codec.seal_system(session_id, plain.info.system),
            "metadata": {**metadata, RESERVED_METADATA_KEY: clean},
        }
        if plain.info.title is not None and (self.codec.encrypt_titles or _is_envelope_string(info.title)):
            changes["title"] = self.codec.seal_title(session_id, plain.info.title)
        yield self._update_call(info, **changes)
        return None

    def _resume(self, session_id: str, raw: SessionData, record: dict[str, Any]) -> _Op[None]:
        rotation = record["rotation"]  # sealed and naming this session's backup: checked by open_rotation
        version, backup, count = rotation.get("version"), backup_id(session_id), rotation.get("count")
        if raw.version == version:
            # Crashed before the rewind: the session is intact; drop the marker and the backup.
            record.pop("rotation")
            yield self._update_call(raw.info, metadata={**raw.info.metadata, RESERVED_METADATA_KEY: record})
            yield from self._drop_backup(backup, rotation.get("token"))
            return None
        try:
            saved: SessionData = yield _call("load", backup)
        except SessionNotFound:
            saved = None  # type: ignore[assignment]
        if raw.version == version + 1 and not raw.messages and saved is not None:
            plain = self.codec.open_data(saved, key_session=backup)
            yield from self._finish(session_id, backup, raw.version, self._as_source(plain, raw), record)
            return None
        if raw.version == version + 2 and len(raw.messages) == count:
            # Re-appended; summaries, system prompt or marker may be missing.
            source = self.codec.open_data(saved, key_session=backup) if saved is not None else None
            plain = self.codec.open_data(raw)
            if source is not None:
                plain = SessionData(plain.info, plain.messages, source.summaries)
            yield from self._finish_summaries_and_metadata(session_id, backup, plain, record)
            return None
        raise HistoryError(
            f"cannot finish the interrupted rotation of session {session_id!r}: it is at version "
            f"{raw.version} with {len(raw.messages)} messages, expected version {version}..{version + 2}. "
            f"Its pre-rotation messages are in the backup session {backup!r}; restore them by hand."
        )

    def _as_source(self, backup_plain: SessionData, raw: SessionData) -> SessionData:
        """The backup's messages and summaries with the live session's own metadata (title, system, ...)."""
        return SessionData(self.codec.open_info(raw.info), backup_plain.messages, backup_plain.summaries)
