"""The codec: pure functions from plaintext records to stored records and back. Each ciphertext's associated
data binds it to its session id, its position (seq) and its role, so a row moved elsewhere fails
authentication; strings (summaries, system prompts, titles) are sealed the same way with their own labels.
Message rows of format 2 are also bound to the session's incarnation (rows an append wrote) or to the epoch in
its encryption record (rows an import or fork wrote), and linked by version (``_chain``); format 1 rows, written
before, stay readable."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeGuard

from ...errors import ConfigurationError, ConflictError, DecryptionError
from .. import _json, _messages
from ..base import (
    Entry,
    SessionData,
    SessionInfo,
    StoredMessage,
    Summary,
)
from . import _chain
from ._keyring import _Keyring

try:
    from cryptography.exceptions import InvalidTag
except ImportError:  # pragma: no cover - exercised only without the extra
    InvalidTag = ValueError  # type: ignore[assignment,misc]

BLOCK_TYPE = "encrypted"  # a stored message is {"role": ..., "content": [{"type": "encrypted", ...}]}
STRING_PREFIX = "claude-history-encrypted:v1:"  # summary texts, system prompts and titles
RESERVED_METADATA_KEY = "_claude_history_encryption"
BACKUP_PREFIX = "_claude_history_rotation_backup:"
NOTE_PREFIX = "_claude_history_rewind_note:"
# The tag of the wrapper's own records (a rotation backup, a kept rewind note): ``purge_expired`` finds those of
# sessions that are gone by it, without listing every session.
INTERNAL_TAG = "_claude_history_internal"
FORMAT_VERSION = 1  # records, strings, and the message rows written before format 2
MESSAGE_FORMAT = 2  # message rows bound to the incarnation (or import epoch) and linked by version
NONCE_BYTES = 12
_ROTATION_FIELDS = ("backup", "version", "count", "started_at", "token")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.b64decode(text, validate=True)


def _aad(kind: str, session_id: str, *parts: object) -> bytes:
    return _json.dumps(["claude-history", FORMAT_VERSION, kind, session_id, *parts]).encode("utf-8")


_ROLES_JSON = {"user": '"user"', "assistant": '"assistant"'}  # what ``_aad`` writes for a role


def _message_aad(session_id: str, seq: int, role: object, kind: str, token: str, written: int, prev: int) -> bytes:
    """A format 2 row's associated data: ``open_messages`` builds the very same bytes by hand."""
    parts = ["claude-history", MESSAGE_FORMAT, "message", session_id, seq, role, kind, token, written, prev]
    return _json.dumps(parts).encode("utf-8")


def bindings(info: SessionInfo) -> dict[str, str]:
    """What a session's format 2 rows are bound to besides its id, their position and role, by kind: "i", its
    incarnation (rows an append wrote: the backend sets it when the session is created, so a session deleted
    and created again under the same id has another), and "e", the epoch in its encryption record (rows an
    import or a fork wrote, in one atomic create with that record)."""
    found = {"i": info.incarnation or ""}
    epoch = _record(info).get("epoch")
    if isinstance(epoch, str):
        found["e"] = epoch
    return found


def _int(value: object) -> bool:
    return type(value) is int


def _is_envelope_block(content: object) -> bool:
    return (
        isinstance(content, list)
        and len(content) == 1
        and isinstance(content[0], Mapping)
        and content[0].get("type") == BLOCK_TYPE
    )


def _is_envelope_string(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(STRING_PREFIX)


def _record(info: SessionInfo) -> dict[str, Any]:
    raw = info.metadata.get(RESERVED_METADATA_KEY) if isinstance(info.metadata, Mapping) else None
    return dict(raw) if isinstance(raw, Mapping) else {}


def backup_id(session_id: str) -> str:
    """Where ``rotate`` keeps its copy of a session while re-encrypting it (deterministic, so a crashed
    rotation is found again and ``delete`` can remove it)."""
    return BACKUP_PREFIX + hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def note_id(session_id: str) -> str:
    """Where the wrapper's rewinds keep the second copy of their note (``_chain``): a record of its own, which
    no other write touches, hidden like a rotation backup."""
    return NOTE_PREFIX + hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def check_own_id(session_id: object) -> None:
    """Refuse a caller's write to an id of the form the wrapper's own records take (a rotation backup, a kept
    rewind note): such a session would be hidden from listings, overwritten by the wrapper and deleted with
    the session it seems to belong to."""
    if isinstance(session_id, str) and session_id.startswith((BACKUP_PREFIX, NOTE_PREFIX)):
        raise ConfigurationError(
            f"session id {session_id[:40]!r}...: ids starting with {BACKUP_PREFIX!r} or {NOTE_PREFIX!r} are "
            "reserved for the encrypted store's own records"
        )


def _parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _is_backup(info: SessionInfo) -> bool:
    return info.id.startswith(BACKUP_PREFIX) and "backup_of" in _record(info)


def _is_internal(info: SessionInfo) -> bool:
    """A record of the wrapper's own (a rotation backup, a rewind note), hidden from listings and search."""
    return _is_backup(info) or (info.id.startswith(NOTE_PREFIX) and "note_of" in _record(info))


def owner_of(info: SessionInfo) -> str | None:
    """The session a record of the wrapper's own belongs to (None: not such a record): its id is where that
    session's backup or note is kept, so a record that names another session is not trusted with it."""
    record = _record(info)
    owner = record.get("backup_of", record.get("note_of"))
    if isinstance(owner, str) and _is_internal(info) and info.id in (backup_id(owner), note_id(owner)):
        return owner
    return None


class _Codec:
    def __init__(self, keyring: _Keyring, *, encrypt_titles: bool, allow_plaintext: bool) -> None:
        self.keys = keyring
        self.encrypt_titles = encrypt_titles
        self.allow_plaintext = allow_plaintext

    # -- low level

    def seal(self, session_id: str, aad: bytes, plaintext: bytes) -> tuple[str, str, str]:
        nonce = os.urandom(NONCE_BYTES)
        ct = self.keys.cipher(self.keys.current, session_id).encrypt(nonce, plaintext, aad)
        return self.keys.current, _b64(nonce), _b64(ct)

    def open(self, session_id: str, where: str, kid: object, nonce: object, ct: object, aad: bytes) -> bytes:
        if not isinstance(kid, str) or not self.keys.knows(kid):
            raise DecryptionError(
                f"cannot decrypt {where} of session {session_id!r}: it was encrypted with key id {kid}, "
                f"which this store does not have ({self.keys.describe()}). Pass that key as the key, or in "
                "old_keys=[...] while rotating. Nothing was changed."
            )
        try:
            nonce_bytes, ct_bytes = _unb64(nonce), _unb64(ct)
        except (ValueError, binascii.Error):
            raise DecryptionError(
                f"cannot decrypt {where} of session {session_id!r}: the stored ciphertext is malformed "
                "(not base64). Nothing was changed."
            ) from None
        try:
            return bytes(self.keys.cipher(kid, session_id).decrypt(nonce_bytes, ct_bytes, aad))
        except (InvalidTag, ValueError):
            raise DecryptionError(
                f"cannot decrypt {where} of session {session_id!r} with key id {kid}: authentication failed, "
                "so the stored data was modified, or moved from another session or position. "
                "Nothing was changed."
            ) from None

    def seal_string(self, session_id: str, aad: bytes, value: str) -> str:
        kid, nonce, ct = self.seal(session_id, aad, value.encode("utf-8"))
        return f"{STRING_PREFIX}{kid}:{nonce}:{ct}"

    def open_string(self, session_id: str, where: str, aad: bytes, value: str) -> str:
        parts = value[len(STRING_PREFIX) :].split(":")
        if len(parts) != 3:
            raise DecryptionError(f"cannot decrypt {where} of session {session_id!r}: malformed envelope")
        return self.open(session_id, where, parts[0], parts[1], parts[2], aad).decode("utf-8")

    def _plaintext(self, session_id: str, where: str) -> None:
        if not self.allow_plaintext:
            raise DecryptionError(
                f"{where} of session {session_id!r} is not encrypted. Refusing to read unencrypted data from "
                "an encrypted store (it may have been planted); to read data written before encryption was "
                "enabled, wrap the store with allow_plaintext=True and run rotate() to encrypt it."
            )

    # -- messages

    def seal_message(
        self,
        session_id: str,
        seq: int,
        role: str,
        message_json: str,
        created_at: datetime | None = None,
        *,
        kind: str,
        token: str,
        written: int,
        prev: int,
    ) -> dict[str, Any]:
        """A format 2 row, bound to ``token`` of ``kind`` (``bindings``); ``written`` is the version its append
        produces, ``prev`` the ``written`` of the row before it (``_chain``)."""
        payload = '{"message":' + message_json
        if created_at is not None:
            payload += ',"created_at":' + json.dumps(created_at.isoformat())
        payload += "}"
        aad = _message_aad(session_id, seq, role, kind, token, written, prev)
        kid, nonce, ct = self.seal(session_id, aad, payload.encode("utf-8"))
        block = {
            "type": BLOCK_TYPE,
            "v": MESSAGE_FORMAT,
            "kid": kid,
            "nonce": nonce,
            "ct": ct,
            "b": kind,
            "w": written,
            "p": prev,
        }
        return {"role": role, "content": [block]}

    def seal_entries(
        self,
        session_id: str,
        first_seq: int,
        encoded: Sequence[_messages.EncodedEntry],
        entries: Sequence[Entry],
        *,
        incarnation: str,
        written: int,
        prev: int,
    ) -> list[Entry]:
        """``encoded`` is ``_messages.encode_entries(entries)``: the backend's checks, run on the plaintext.
        The rows of an append producing version ``written``, after a row written at ``prev``."""
        return [
            Entry(
                self.seal_message(
                    session_id,
                    first_seq + i,
                    e.role,
                    e.message_json,
                    kind="i",
                    token=incarnation,
                    written=written,
                    prev=prev if i == 0 else written,
                ),
                model=e.model,
                usage=entry.usage,
            )
            for i, (e, entry) in enumerate(zip(encoded, entries, strict=True))
        ]

    def open_message(self, session_id: str, stored: StoredMessage, bound: Mapping[str, str]) -> StoredMessage:
        message = stored.message
        content = message.get("content")
        where = f"message {stored.seq}"
        if not _is_envelope_block(content):
            self._plaintext(session_id, where)
            return stored
        block: Mapping[str, Any] = content[0]  # type: ignore[index]
        role = message.get("role")
        if block.get("v") == FORMAT_VERSION:
            aad = _aad("message", session_id, stored.seq, role)
        elif block.get("v") == MESSAGE_FORMAT:
            kind, written, prev = block.get("b"), block.get("w"), block.get("p")
            if not (isinstance(kind, str) and _int(written) and _int(prev)):
                raise DecryptionError(f"cannot decrypt {where} of session {session_id!r}: malformed envelope")
            token = bound.get(kind)
            if token is None:
                raise DecryptionError(
                    f"cannot decrypt {where} of session {session_id!r}: it was imported with an epoch the "
                    "session's encryption record does not hold (the record was changed beneath the wrapper?). "
                    "Nothing was changed."
                )
            aad = _message_aad(session_id, stored.seq, role, kind, token, written, prev)  # type: ignore[arg-type]
        else:
            raise DecryptionError(
                f"cannot decrypt {where} of session {session_id!r}: unknown envelope version "
                f"{block.get('v')!r} (written by a newer claude-history?)"
            )
        plaintext = self.open(session_id, where, block.get("kid"), block.get("nonce"), block.get("ct"), aad)
        payload = _json.decode_json(plaintext)
        created_at = stored.created_at
        if "created_at" in payload:
            created_at = datetime.fromisoformat(payload["created_at"])
        return replace(stored, message=payload["message"], created_at=created_at)

    def summary_kid(self, summary: Summary) -> str | None:
        if not _is_envelope_string(summary.text):
            return None
        return summary.text[len(STRING_PREFIX) :].split(":", 1)[0]

    def message_kid(self, stored: StoredMessage) -> str | None:
        content = stored.message.get("content")
        return str(content[0].get("kid")) if _is_envelope_block(content) else None  # type: ignore[index]

    # -- summaries, system prompt, title

    def seal_summary(self, session_id: str, summary: Summary) -> Summary:
        aad = _aad("summary", session_id, summary.start, summary.end)
        return replace(summary, text=self.seal_string(session_id, aad, summary.text))

    def open_summary(self, session_id: str, summary: Summary) -> Summary:
        if not _is_envelope_string(summary.text):
            self._plaintext(session_id, f"summary [{summary.start}, {summary.end})")
            return summary
        aad = _aad("summary", session_id, summary.start, summary.end)
        where = f"summary [{summary.start}, {summary.end})"
        return replace(summary, text=self.open_string(session_id, where, aad, summary.text))

    def seal_system(self, session_id: str, system: str | list[dict[str, Any]] | None) -> str | None:
        if system is None:
            return None
        return self.seal_string(session_id, _aad("system", session_id), _json.dumps(system))

    def open_system(self, session_id: str, system: object) -> Any:
        if system is None:
            return None
        if not _is_envelope_string(system):
            self._plaintext(session_id, "the system prompt")
            return system
        return json.loads(self.open_string(session_id, "the system prompt", _aad("system", session_id), system))

    def seal_title(self, session_id: str, title: str | None) -> str | None:
        if title is None or not self.encrypt_titles:
            return title
        return self.seal_string(session_id, _aad("title", session_id), title)

    def open_title(self, session_id: str, title: str | None) -> str | None:
        if not _is_envelope_string(title):
            return title
        return self.open_string(session_id, "the title", _aad("title", session_id), title)

    # -- whole records

    def open_info(self, info: SessionInfo) -> SessionInfo:
        metadata = {k: v for k, v in info.metadata.items() if k != RESERVED_METADATA_KEY}
        return replace(
            info,
            title=self.open_title(info.id, info.title),
            system=self.open_system(info.id, info.system),
            metadata=metadata,
        )

    def open_data(
        self, data: SessionData, *, key_session: str | None = None, note: Mapping[str, Any] | None = None
    ) -> SessionData:
        """Decrypt a loaded session; ``key_session`` is the id its rows were encrypted for (a rotation backup
        holds another session's messages under its own id); ``note``: a rewind note opened from its own record,
        tried besides the one in the session's (``_chain.LogEndError`` if neither explains the log's end)."""
        sid = key_session or data.info.id
        links: list[_chain.Link | None] = []
        messages = self.open_messages(sid, data.messages, bindings(data.info), links)
        summaries = [self.open_summary(sid, s) for s in data.summaries]
        info = self.open_info(data.info)
        self.check_log(sid, data.info, links, note)  # after every authentication: a change is named as such
        return SessionData(info=info, messages=messages, summaries=summaries)

    @staticmethod
    def links(messages: Sequence[StoredMessage]) -> list[_chain.Link | None]:
        """Each row's ``(w, p)`` (format 2), else None. Authentic once the rows have been opened."""
        links: list[_chain.Link | None] = []
        for stored in messages:
            content: Any = stored.message.get("content")
            block: Any = content[0] if _is_envelope_block(content) else None
            if block is not None and block.get("v") == MESSAGE_FORMAT:
                links.append((block["w"], block["p"]))
            else:
                links.append(None)
        return links

    def log_end(
        self, session_id: str, info: SessionInfo, note: Mapping[str, Any] | None = None
    ) -> tuple[int, Mapping[str, Any] | None, bool]:
        """Where the wrapper left the session's log, for ``_chain.check_links``: its version, its rewind note
        (sealed with the key: ``note`` if given, else the one in the session's record) and whether it is
        chained."""
        record = _record(info)
        if note is None:
            note = self.open_rewind_note(session_id, info)
        return info.version, note, "chain" in record or "epoch" in record

    def check_log(
        self,
        session_id: str,
        info: SessionInfo,
        links: Sequence[_chain.Link | None],
        note: Mapping[str, Any] | None = None,
    ) -> None:
        """The links of a session's whole log, as ``info`` describes it, checked by ``_chain``."""
        _chain.check_links(session_id, links, 0, end=self.log_end(session_id, info, note))

    # -- the rewind note: in clear metadata, so sealed like the rotation marker

    @staticmethod
    def _rewind_aad(session_id: str, incarnation: str, note: Mapping[str, Any]) -> bytes:
        return _aad("rewind", session_id, incarnation, note.get("version"), note.get("count"), note.get("last"))

    def seal_rewind_note(
        self, session_id: str, incarnation: str | None, version: int, count: int, last: int
    ) -> dict[str, Any]:
        """What the wrapper's rewind leaves in the record before it cuts: the version and count it produces
        and the ``w`` of the row it keeps last (``_chain``)."""
        note = {"version": version, "count": count, "last": last}
        return {**note, "seal": self.seal_string(session_id, self._rewind_aad(session_id, incarnation or "", note), "")}

    def open_rewind_note(self, session_id: str, info: SessionInfo) -> Mapping[str, Any] | None:
        """The session's rewind note if there is one; ``DecryptionError`` if it is not this key's."""
        incarnation = info.incarnation or ""
        return self._open_marker(
            session_id,
            _record(info).get("rewind"),
            "rewind note",
            "the encrypted store",
            lambda note: self._rewind_aad(session_id, incarnation, note),
        )

    def kept_notes(
        self, info: SessionInfo, kept: SessionInfo, rows: Sequence[StoredMessage]
    ) -> list[Mapping[str, Any]]:
        """The notes kept in ``kept``, the session's note record (``note_id``: its log, one row per rewind, and
        the one note an older release kept in its metadata), that rewinds of this very session and incarnation
        sealed with this key and that are for the version and count ``info`` shows, newest first. Any other
        (left by an earlier incarnation, by a rewind that lost its race, or not authentic) explains nothing."""
        record = _record(kept)
        if kept.id != note_id(info.id) or record.get("note_of") != info.id:
            return []
        found: list[object] = [record.get("rewind")]
        for row in reversed(rows):
            content = row.message.get("content")
            try:
                found.append(json.loads(content) if isinstance(content, str) else None)
            except ValueError:
                continue
        incarnation = info.incarnation or ""
        notes: list[Mapping[str, Any]] = []
        for marker in found:
            if not isinstance(marker, Mapping) or (marker.get("version"), marker.get("count")) != (
                info.version,
                info.message_count,
            ):
                continue
            try:
                note = self._open_marker(
                    info.id,
                    marker,
                    "rewind note",
                    "the encrypted store",
                    lambda note: self._rewind_aad(info.id, incarnation, note),
                )
            except DecryptionError:
                continue
            if note is not None:
                notes.append(note)
        return notes

    def _open_marker(
        self, session_id: str, marker: object, what: str, writer: str, aad: Callable[[Mapping[str, Any]], bytes]
    ) -> Mapping[str, Any] | None:
        """A marker the wrapper keeps in clear metadata (the rotation marker, the rewind note), None if there is
        none; ``DecryptionError`` unless it is sealed with this store's key over these very fields and this
        session (forged, borrowed from another session, or edited beneath the wrapper)."""
        if marker is None:
            return None
        seal = marker.get("seal") if isinstance(marker, Mapping) else None
        if not isinstance(marker, Mapping) or not _is_envelope_string(seal):
            raise DecryptionError(
                f"session {session_id!r} carries a {what} that is not sealed with an encryption key: it was not "
                f"written by {writer} (tampering?). Nothing was read or changed."
            )
        self.open_string(session_id, f"the {what}", aad(marker), seal)
        return marker

    def open_messages(
        self,
        session_id: str,
        messages: Sequence[StoredMessage],
        bound: Mapping[str, str],
        links: list[_chain.Link | None] | None = None,
    ) -> list[StoredMessage]:
        """``open_message`` over a whole log, with the per-session work done once: loading a long encrypted
        session is dominated by this loop. Anything unusual takes the careful path, which names the error.
        Only decrypts; each row's link (``_chain``), authentic once it is open, goes to ``links``."""
        link = None if links is None else links.append
        sid_json = _json.dumps(session_id)
        prefix = '["claude-history",' + str(FORMAT_VERSION) + ',"message",' + sid_json + ","
        prefix2 = '["claude-history",' + str(MESSAGE_FORMAT) + ',"message",' + sid_json + ","
        tokens = {kind: f',"{kind}",{_json.dumps(token)},' for kind, token in bound.items()}
        ciphers: dict[object, Any] = {}
        unb64 = binascii.a2b_base64
        opened: list[StoredMessage] = []
        for stored in messages:
            content: Any = stored.message.get("content")
            block: Any = content[0] if _is_envelope_block(content) else None
            cipher = None
            version = block.get("v") if block is not None else None
            if version in (MESSAGE_FORMAT, FORMAT_VERSION):
                kid = block.get("kid")
                cipher = ciphers.get(kid)
                if cipher is None and isinstance(kid, str) and self.keys.knows(kid):
                    cipher = ciphers[kid] = self.keys.cipher(kid, session_id)
            role: Any = stored.message.get("role")
            if cipher is not None and version == MESSAGE_FORMAT:
                written, prev, tail = block.get("w"), block.get("p"), tokens.get(block.get("b"))
                if type(written) is not int or type(prev) is not int or tail is None:
                    cipher = None
                else:
                    aad_text = prefix2 + str(stored.seq) + "," + _ROLES_JSON.get(role, "null") + tail
                    aad_text += str(written) + "," + str(prev) + "]"
            elif cipher is not None:
                aad_text = prefix + str(stored.seq) + "," + _ROLES_JSON.get(role, "null") + "]"
            if cipher is None:
                opened.append(self.open_message(session_id, stored, bound))
                if link is not None:
                    link(self.links([stored])[0])
                continue
            try:
                aad = aad_text.encode("utf-8")
                payload = _json.decode_json(cipher.decrypt(unb64(block["nonce"]), unb64(block["ct"]), aad))
            except (InvalidTag, ValueError, TypeError, KeyError, binascii.Error):
                opened.append(self.open_message(session_id, stored, bound))  # raises the precise error
                continue
            if link is not None:
                link((written, prev) if version == MESSAGE_FORMAT else None)
            created_at = stored.created_at
            if "created_at" in payload:
                created_at = datetime.fromisoformat(payload["created_at"])
            message = payload["message"]
            opened.append(StoredMessage(stored.seq, message, stored.model, stored.usage, created_at))
        return opened

    def seal_data(self, plain: SessionData, *, record: Mapping[str, Any]) -> SessionData:
        """Encrypt a plaintext session for its own id (fork, import, rotation backup), keeping timestamps."""
        sid = plain.info.id
        epoch = record.get("epoch") or uuid.uuid4().hex  # created with the rows, in one operation
        record = {**record, "epoch": epoch}
        messages = []
        for stored in plain.messages:
            prev = 0 if stored.seq == 0 else 1
            message_json = _json.dumps(stored.message)
            sealed = self.seal_message(
                sid, stored.seq, stored.role, message_json, kind="e", token=epoch, written=1, prev=prev
            )
            messages.append(replace(stored, message=sealed))
        info = replace(
            plain.info,
            title=self.seal_title(sid, plain.info.title),
            system=self.seal_system(sid, plain.info.system),
            metadata={**plain.info.metadata, RESERVED_METADATA_KEY: dict(record)},
        )
        return SessionData(info=info, messages=messages, summaries=[self.seal_summary(sid, s) for s in plain.summaries])

    def needs_rotation(self, raw: SessionData) -> bool:
        current = self.keys.current
        if _record(raw.info).get("kids") != [current]:
            return True
        if any(self.message_kid(m) != current for m in raw.messages):
            return True
        strings = [s.text for s in raw.summaries]
        note = _record(raw.info).get("rewind")
        if isinstance(note, Mapping) and isinstance(note.get("seal"), str):
            strings.append(note["seal"])
        if raw.info.system is not None:
            strings.append(raw.info.system)  # type: ignore[arg-type]
        if raw.info.title is not None and (self.encrypt_titles or _is_envelope_string(raw.info.title)):
            strings.append(raw.info.title)
        return any(not _is_envelope_string(s) or not s[len(STRING_PREFIX) :].startswith(current + ":") for s in strings)

    # -- the rotation marker: in clear metadata, so it is sealed (a GCM tag over its fields) against forgery

    @staticmethod
    def _rotation_aad(session_id: str, rotation: Mapping[str, Any]) -> bytes:
        fields = [rotation.get(name) for name in _ROTATION_FIELDS]
        return _aad("rotation", session_id, *fields)

    def seal_rotation(self, session_id: str, rotation: Mapping[str, Any]) -> dict[str, Any]:
        """The marker with its seal: the key's tag over the session id and every field, so someone who can
        write the backend's metadata but has no key cannot point a session at another one's data."""
        seal = self.seal_string(session_id, self._rotation_aad(session_id, rotation), "")
        return {**rotation, "seal": seal}

    def open_rotation(self, session_id: str, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The session's rotation marker if there is one; ``DecryptionError`` if it is not this key's (forged,
        or edited beneath the wrapper), or does not name this session's own backup."""
        rotation = self._open_marker(
            session_id,
            record.get("rotation"),
            "rotation marker",
            "rotate()",
            lambda marker: self._rotation_aad(session_id, marker),
        )
        if rotation is None:
            return None
        if rotation.get("backup") != backup_id(session_id) or not isinstance(rotation.get("version"), int):
            raise DecryptionError(f"the rotation marker of session {session_id!r} is malformed")
        return rotation

    def new_record(self, **extra: Any) -> dict[str, Any]:
        """A new session's encryption record: its keys, and that its log is chained (``_chain``)."""
        return {"v": FORMAT_VERSION, "kids": [self.keys.current], "chain": 1, **extra}

    def check_writable(self, info: SessionInfo) -> dict[str, Any]:
        """Refuse to write with a key that cannot read the session (a misconfigured key would otherwise mix
        keys in one session); returns the session's encryption record."""
        record = _record(info)
        unknown = [kid for kid in record.get("kids", []) if not self.keys.knows(kid)]
        if unknown:
            raise DecryptionError(
                f"session {info.id!r} holds data encrypted with key id {', '.join(unknown)}, which this "
                f"store does not have ({self.keys.describe()}). Nothing was written: configure the right key "
                "(or pass "
                "the old one in old_keys=[...])."
            )
        return record

    def plain_entries(self, data: SessionData) -> list[Entry]:
        return [Entry(m.message, model=m.model, usage=m.usage) for m in data.messages]

    def reseal_messages(
        self, session_id: str, messages: Sequence[StoredMessage], *, incarnation: str, written: int
    ) -> list[Entry]:
        """Entries that re-create a whole log ``messages`` under the current key, their original timestamps
        inside, as one append producing version ``written``."""
        return [
            Entry(
                self.seal_message(
                    session_id,
                    m.seq,
                    m.role,
                    _json.dumps(m.message),
                    m.created_at,
                    kind="i",
                    token=incarnation,
                    written=written,
                    prev=0 if m.seq == 0 else written,
                ),
                model=m.model,
                usage=m.usage,
            )
            for m in messages
        ]


def _conflict_with_plaintext(exc: ConflictError, entries: Sequence[Entry]) -> ConflictError:
    """The backend's ConflictError carrying the caller's plaintext entries (not ciphertext) as ``unsaved``."""
    error = type(exc)(  # a LeaseLost stays one
        str(exc),
        session_id=exc.session_id,
        expected_version=exc.expected_version,
        actual_version=exc.actual_version,
        unsaved=list(entries),
        reply=exc.reply,
    )
    error.__cause__ = exc.__cause__
    return error
