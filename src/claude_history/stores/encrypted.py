"""Encryption at rest, as a wrapper over any store: ``wrap(store, key)`` / ``wrap_async(async_store, key)``.

What is encrypted (AES-256-GCM, ``cryptography``): every message (role kept in clear), summary texts,
the session's system prompt and, with ``encrypt_titles=True``, titles. What stays in clear so that listing,
filters, expiry and cost work in the backend: ids, versions, timestamps, message count, roles, owner, tags,
model names, usage figures, ``expires_at``, free-form ``metadata`` and (by default) titles.
See docs/encryption.md.

Keys: a 32-byte master key; each session gets its own key, HKDF-SHA256(master, info=session id). Every
ciphertext carries the key id (a short fingerprint of the master key), so old data stays readable with
``old_keys=[...]`` and ``rotate()`` re-encrypts sessions under the current key through the store's ordinary
compare-and-swap path, with a backup copy that makes an interrupted rotation resumable without loss.

The associated data of each ciphertext binds it to its session id, its position (seq) and its role: a row
moved to another session or another position fails authentication. ``fork`` therefore decrypts and
re-encrypts the copied prefix under the new session's key (one atomic import in the backend).

The sync and async wrappers share one implementation: each operation is a generator that yields the backend
calls it needs (``_Call``) and a small driver runs them with or without ``await``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, TypeGuard, TypeVar

from ..errors import ConfigurationError, ConflictError, DecryptionError, HistoryError, SessionNotFound
from . import _common
from .base import UNSET, AsyncStore, Entry, SearchHit, SessionData, SessionInfo, Store, StoredMessage, Summary

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:  # pragma: no cover - exercised only without the extra
    AESGCM = None  # type: ignore[assignment,misc]

__all__ = [
    "BLOCK_TYPE",
    "ENV_VAR",
    "OLD_KEYS_ENV_VAR",
    "RESERVED_METADATA_KEY",
    "AsyncEncryptedStore",
    "EncryptedStore",
    "RotationReport",
    "generate_key",
    "key_id",
    "wrap",
    "wrap_async",
]

ENV_VAR = "CLAUDE_HISTORY_ENCRYPTION_KEY"
OLD_KEYS_ENV_VAR = "CLAUDE_HISTORY_ENCRYPTION_OLD_KEYS"
BLOCK_TYPE = "encrypted"  # a stored message is {"role": ..., "content": [{"type": "encrypted", ...}]}
STRING_PREFIX = "claude-history-encrypted:v1:"  # summary texts, system prompts and titles
RESERVED_METADATA_KEY = "_claude_history_encryption"
BACKUP_PREFIX = "_claude_history_rotation_backup:"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
KID_CHARS = 12
ROTATE_RETRIES = 8
# A backup younger than this may belong to a rotation running right now in another process.
STALE_BACKUP_AFTER = timedelta(minutes=2)
SEARCH_PAGE = 200

_HKDF_SALT = b"claude-history/session-key/v1"
_ROTATION_FIELDS = ("backup", "version", "count", "started_at", "token")
_KID_LABEL = b"claude-history/key-id/v1"

KeyLike = bytes | bytearray | memoryview | str
T = TypeVar("T")
_log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------
# Keys


def _require_crypto() -> None:
    if AESGCM is None:  # pragma: no cover
        raise ConfigurationError("encryption needs the 'cryptography' package: pip install 'claude-history[crypto]'")


def parse_key(key: KeyLike) -> bytes:
    """32 raw bytes, or that as a string in hex (64 characters) or base64 (standard or URL-safe, padding
    optional). Passphrases are refused: a master key must be random (see ``generate_key``)."""
    if isinstance(key, (bytearray, memoryview)):
        key = bytes(key)
    if isinstance(key, bytes):
        if len(key) == KEY_BYTES:
            return key
        try:
            key = key.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"encryption key must be {KEY_BYTES} raw bytes (or hex/base64 text), got {len(key)} bytes"
            ) from None
    if not isinstance(key, str):
        raise ConfigurationError(f"encryption key must be bytes or a string, got {type(key).__name__}")
    text = key.strip()
    decoded: bytes | None = None
    if len(text) == 2 * KEY_BYTES:
        try:
            decoded = bytes.fromhex(text)
        except ValueError:
            decoded = None
    if decoded is None:
        candidate = text.replace("-", "+").replace("_", "/")
        candidate += "=" * (-len(candidate) % 4)
        try:
            decoded = base64.b64decode(candidate, validate=True)
        except (binascii.Error, ValueError):
            decoded = None
    if decoded is None or len(decoded) != KEY_BYTES:
        raise ConfigurationError(
            f"encryption key must be {KEY_BYTES} bytes given raw, as 64 hex characters or as base64 "
            f"(create one with: python -c 'from claude_history.stores.encrypted import generate_key; "
            f"print(generate_key())'); the value given is neither"
        )
    return decoded


def generate_key() -> str:
    """A new random master key, base64-encoded (what ``CLAUDE_HISTORY_ENCRYPTION_KEY`` expects)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def key_id(key: KeyLike) -> str:
    """A short public fingerprint of a master key (HMAC, reveals nothing about the key); stored with each
    ciphertext so the right key can be picked and a wrong one named in the error."""
    raw = parse_key(key)
    return hmac.new(raw, _KID_LABEL, hashlib.sha256).hexdigest()[:KID_CHARS]


class _Keyring:
    """The current master key plus old ones by key id, and a cache of derived per-session ciphers."""

    def __init__(self, key: KeyLike, old_keys: Iterable[KeyLike]) -> None:
        _require_crypto()
        if isinstance(old_keys, (str, bytes)):
            raise ConfigurationError("old_keys must be a list of keys, not a single key")
        current = parse_key(key)
        self.current = key_id(current)
        self._keys: dict[str, bytes] = {self.current: current}
        for old in old_keys:
            raw = parse_key(old)
            self._keys.setdefault(key_id(raw), raw)
        self._ciphers: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def cipher(self, kid: str, session_id: str) -> Any:
        cache_key = (kid, session_id)
        with self._lock:
            cipher = self._ciphers.get(cache_key)
            if cipher is not None:
                self._ciphers.move_to_end(cache_key)
                return cipher
        derived = HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_HKDF_SALT, info=session_id.encode("utf-8")
        ).derive(self._keys[kid])
        cipher = AESGCM(derived)
        with self._lock:
            self._ciphers[cache_key] = cipher
            while len(self._ciphers) > 256:
                self._ciphers.popitem(last=False)
        return cipher

    def describe(self) -> str:
        old = [kid for kid in self._keys if kid != self.current]
        return f"current key id {self.current}" + (f", old key ids {', '.join(old)}" if old else ", no old keys")


def _keys_from_env() -> tuple[str, list[str]]:
    key = os.environ.get(ENV_VAR, "").strip()
    if not key:
        raise ConfigurationError(
            f"no encryption key given and {ENV_VAR} is not set; pass key=... or set {ENV_VAR} to a key from "
            "claude_history.stores.encrypted.generate_key()"
        )
    old = [part.strip() for part in os.environ.get(OLD_KEYS_ENV_VAR, "").split(",") if part.strip()]
    return key, old


# ------------------------------------------------------------------------------------------------------------
# The codec: pure functions from plaintext records to stored records and back


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.b64decode(text, validate=True)


def _aad(kind: str, session_id: str, *parts: object) -> bytes:
    return _common.dumps(["claude-history", FORMAT_VERSION, kind, session_id, *parts]).encode("utf-8")


_ROLES_JSON = {"user": '"user"', "assistant": '"assistant"'}  # what ``_aad`` writes for a role


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


def _parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _is_backup(info: SessionInfo) -> bool:
    return info.id.startswith(BACKUP_PREFIX) and "backup_of" in _record(info)


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
        self, session_id: str, seq: int, role: str, message_json: str, created_at: datetime | None = None
    ) -> dict[str, Any]:
        payload = '{"message":' + message_json
        if created_at is not None:
            payload += ',"created_at":' + json.dumps(created_at.isoformat())
        payload += "}"
        kid, nonce, ct = self.seal(session_id, _aad("message", session_id, seq, role), payload.encode("utf-8"))
        block = {"type": BLOCK_TYPE, "v": FORMAT_VERSION, "kid": kid, "nonce": nonce, "ct": ct}
        return {"role": role, "content": [block]}

    def seal_entries(
        self,
        session_id: str,
        first_seq: int,
        encoded: Sequence[_common.EncodedEntry],
        entries: Sequence[Entry],
    ) -> list[Entry]:
        """``encoded`` is ``_common.encode_entries(entries)``: the backend's checks, run on the plaintext."""
        return [
            Entry(
                self.seal_message(session_id, first_seq + i, e.role, e.message_json),
                model=e.model,
                usage=entry.usage,
            )
            for i, (e, entry) in enumerate(zip(encoded, entries, strict=True))
        ]

    def open_message(self, session_id: str, stored: StoredMessage) -> StoredMessage:
        message = stored.message
        content = message.get("content")
        where = f"message {stored.seq}"
        if not _is_envelope_block(content):
            self._plaintext(session_id, where)
            return stored
        block: Mapping[str, Any] = content[0]  # type: ignore[index]
        if block.get("v") != FORMAT_VERSION:
            raise DecryptionError(
                f"cannot decrypt {where} of session {session_id!r}: unknown envelope version "
                f"{block.get('v')!r} (written by a newer claude-history?)"
            )
        role = message.get("role")
        plaintext = self.open(
            session_id,
            where,
            block.get("kid"),
            block.get("nonce"),
            block.get("ct"),
            _aad("message", session_id, stored.seq, role),
        )
        payload = _common.decode_json(plaintext)
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
        return self.seal_string(session_id, _aad("system", session_id), _common.dumps(system))

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

    def open_data(self, data: SessionData, *, key_session: str | None = None) -> SessionData:
        """Decrypt a loaded session; ``key_session`` is the id its rows were encrypted for (a rotation backup
        holds another session's messages under its own id)."""
        sid = key_session or data.info.id
        return SessionData(
            info=self.open_info(data.info),
            messages=self.open_messages(sid, data.messages),
            summaries=[self.open_summary(sid, s) for s in data.summaries],
        )

    def open_messages(self, session_id: str, messages: Sequence[StoredMessage]) -> list[StoredMessage]:
        """``open_message`` over a whole log, with the per-session work done once: loading a long encrypted
        session is dominated by this loop. Anything unusual takes the careful path, which names the error."""
        prefix = '["claude-history",' + str(FORMAT_VERSION) + ',"message",' + _common.dumps(session_id) + ","
        ciphers: dict[object, Any] = {}
        unb64 = binascii.a2b_base64
        opened: list[StoredMessage] = []
        for stored in messages:
            content: Any = stored.message.get("content")
            block: Any = content[0] if _is_envelope_block(content) else None
            cipher = None
            if block is not None and block.get("v") == FORMAT_VERSION:
                kid = block.get("kid")
                cipher = ciphers.get(kid)
                if cipher is None and isinstance(kid, str) and self.keys.knows(kid):
                    cipher = ciphers[kid] = self.keys.cipher(kid, session_id)
            if cipher is None:
                opened.append(self.open_message(session_id, stored))
                continue
            role: Any = stored.message.get("role")
            aad = (prefix + str(stored.seq) + "," + _ROLES_JSON.get(role, "null") + "]").encode("utf-8")
            try:
                payload = _common.decode_json(cipher.decrypt(unb64(block["nonce"]), unb64(block["ct"]), aad))
            except (InvalidTag, ValueError, TypeError, KeyError, binascii.Error):
                opened.append(self.open_message(session_id, stored))  # raises the precise DecryptionError
                continue
            created_at = stored.created_at
            if "created_at" in payload:
                created_at = datetime.fromisoformat(payload["created_at"])
            message = payload["message"]
            opened.append(StoredMessage(stored.seq, message, stored.model, stored.usage, created_at))
        return opened

    def seal_data(self, plain: SessionData, *, record: Mapping[str, Any]) -> SessionData:
        """Encrypt a plaintext session for its own id (fork, import, rotation backup), keeping timestamps."""
        sid = plain.info.id
        messages = []
        for stored in plain.messages:
            sealed = self.seal_message(sid, stored.seq, stored.role, _common.dumps(stored.message), None)
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
        rotation = record.get("rotation")
        if rotation is None:
            return None
        seal = rotation.get("seal") if isinstance(rotation, Mapping) else None
        if not isinstance(rotation, Mapping) or not _is_envelope_string(seal):
            raise DecryptionError(
                f"session {session_id!r} carries a rotation marker that is not sealed with an encryption key: "
                "it was not written by rotate() (tampering?). Nothing was read or changed."
            )
        self.open_string(session_id, "the rotation marker", self._rotation_aad(session_id, rotation), seal)
        if rotation.get("backup") != backup_id(session_id) or not isinstance(rotation.get("version"), int):
            raise DecryptionError(f"the rotation marker of session {session_id!r} is malformed")
        return rotation

    def new_record(self, **extra: Any) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "kids": [self.keys.current], **extra}

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

    def reseal_messages(self, session_id: str, messages: Sequence[StoredMessage]) -> list[Entry]:
        """Entries that re-create ``messages`` under the current key, their original timestamps inside."""
        return [
            Entry(
                self.seal_message(session_id, m.seq, m.role, _common.dumps(m.message), m.created_at),
                model=m.model,
                usage=m.usage,
            )
            for m in messages
        ]


def _conflict_with_plaintext(exc: ConflictError, entries: Sequence[Entry]) -> ConflictError:
    """The backend's ConflictError carrying the caller's plaintext entries (not ciphertext) as ``unsaved``."""
    error = ConflictError(
        str(exc),
        session_id=exc.session_id,
        expected_version=exc.expected_version,
        actual_version=exc.actual_version,
        unsaved=list(entries),
        reply=exc.reply,
    )
    error.__cause__ = exc.__cause__
    return error


# ------------------------------------------------------------------------------------------------------------
# Operations as generators of backend calls (one implementation for sync and async)


@dataclass(frozen=True)
class _Call:
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def _call(method: str, *args: Any, **kwargs: Any) -> _Call:
    return _Call(method, args, kwargs)


_Op = Generator[_Call, Any, T]


@dataclass(frozen=True)
class RotationReport:
    """What ``rotate`` did: sessions re-encrypted, sessions already under the current key, and interrupted
    rotations that were finished."""

    rotated: tuple[str, ...] = ()
    unchanged: int = 0
    resumed: tuple[str, ...] = ()


class _Ops:
    def __init__(self, codec: _Codec) -> None:
        self.codec = codec

    # -- reads

    def load(self, session_id: str) -> _Op[SessionData]:
        raw: SessionData = yield _call("load", session_id)
        rotation = self.codec.open_rotation(session_id, _record(raw.info))
        if rotation is None:
            return self.codec.open_data(raw)
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
            messages = self.codec.open_messages(session_id, raw.messages)
        info = replace(self.codec.open_info(raw.info), message_count=len(messages))
        return SessionData(info=info, messages=messages, summaries=saved.summaries)

    def get_session(self, session_id: str) -> _Op[SessionInfo]:
        info: SessionInfo = yield _call("get_session", session_id)
        return self.codec.open_info(info)

    def list_sessions(self, owner: str | None, tag: str | None, limit: int, offset: int) -> _Op[list[SessionInfo]]:
        infos: list[SessionInfo] = yield _call("list_sessions", owner=owner, tag=tag, limit=limit, offset=offset)
        return [self.codec.open_info(info) for info in infos if not _is_backup(info)]

    def search(self, query: str, session_id: str | None, owner: str | None, limit: int) -> _Op[list[SearchHit]]:
        """Decrypt and scan: the backend's index only ever sees ciphertext. Cost: reads every session (with
        ``owner``, which is stored in clear, the backend lists only that owner's and only those are read)."""
        terms = _common.search_terms(query)
        _common.check_page(limit, 0)
        _common.check_filters(owner)
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
                text = _common.message_text(stored.message)
                if _common.text_matches(text, terms):
                    hits.append(SearchHit(sid, stored.seq, stored.role, _common.make_snippet(text, terms)))
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
            ids.extend(info.id for info in page if not _is_backup(info))
            if len(page) < SEARCH_PAGE:
                return list(dict.fromkeys(ids))
            offset += SEARCH_PAGE

    def export_jsonl(self, session_id: str) -> _Op[str]:
        data = yield from self.load(session_id)
        return _common.export_session(data)

    # -- writes

    def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
    ) -> _Op[int]:
        _common.check_expected_version(expected_version)
        _common.check_token("incarnation", incarnation)
        _common.check_token("turn_id", turn_id)
        # Bad input fails before any I/O, in the backend's own words.
        encoded = _common.encode_entries(entries)
        try:
            info: SessionInfo | None = yield _call("get_session", session_id)
        except SessionNotFound:
            info = None
        count = 0
        record: dict[str, Any] = {}
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
            current = self.codec.keys.current
            if record and current not in record.get("kids", []):
                # Record the new key before writing under it, so the record always covers every key in use.
                new_record = {**record, "kids": [*record.get("kids", []), current]}
                yield _call(
                    "update_session",
                    session_id,
                    metadata={**info.metadata, RESERVED_METADATA_KEY: new_record},
                )
                record = new_record
        sealed = self.codec.seal_entries(session_id, count, encoded, entries)
        try:
            version: int = yield _call(
                "append",
                session_id,
                sealed,
                expected_version=expected_version,
                incarnation=incarnation,
                turn_id=turn_id,
            )
        except ConflictError as exc:
            raise _conflict_with_plaintext(exc, entries) from exc
        if not record and (info is None or info.version == expected_version):
            # A session created by this append (or written before records existed): record the key. Best
            # effort: the data is already safe; the record only guards against writing with a wrong key later.
            fresh: SessionInfo = yield _call("get_session", session_id)
            if not _record(fresh):
                yield _call(
                    "update_session",
                    session_id,
                    metadata={**fresh.metadata, RESERVED_METADATA_KEY: self.codec.new_record()},
                )
        return version

    def update_session(self, session_id: str, changes: Mapping[str, Any], create: bool) -> _Op[SessionInfo]:
        checked = _common.check_session_changes(changes)
        if RESERVED_METADATA_KEY in checked.get("metadata", {}):
            raise ConfigurationError(f"metadata key {RESERVED_METADATA_KEY!r} is reserved for encryption")
        try:
            info: SessionInfo | None = yield _call("get_session", session_id)
        except SessionNotFound:
            if not create:
                raise
            info = None
        record = self.codec.new_record() if info is None else self.codec.check_writable(info)
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
        result: SessionInfo = yield _call("update_session", session_id, create=create, **out)
        return self.codec.open_info(result)

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

    def rewind(self, session_id: str, to: int | None, expected_version: int | None) -> _Op[int]:
        if expected_version is not None:
            _common.check_expected_version(expected_version)
        for attempt in range(_common.REWIND_RETRIES):
            if to is not None:
                info: SessionInfo = yield _call("get_session", session_id)
                self._refuse_during_rotation(info, expected_version)
                version: int = yield _call("rewind", session_id, to=to, expected_version=expected_version)
                return version
            # The backend cannot see inside the messages: the last turn's start is found here, in plaintext.
            raw: SessionData = yield _call("load", session_id)
            if expected_version is not None and raw.version != expected_version:
                raise _common.conflict(session_id, expected_version, raw.version)
            self._refuse_during_rotation(raw.info, expected_version)
            messages = [self.codec.open_message(session_id, m).message for m in raw.messages]
            target = _common.rewind_target(messages, None)
            try:
                version = yield _call("rewind", session_id, to=target, expected_version=raw.version)
                return version
            except ConflictError:
                if expected_version is not None or attempt == _common.REWIND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

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
        forked = _common.fork_session(data, at=at, new_id=new_id, now=_common.now_us())
        sealed = self.codec.seal_data(forked, record=self.codec.new_record())
        # One atomic create in the backend, with the rows re-encrypted under the new session's key.
        created: str = yield _call("import_jsonl", _common.export_session(sealed), session_id=forked.info.id)
        return created

    def import_jsonl(self, data: str | Iterable[str], session_id: str | None) -> _Op[str]:
        plain = _common.parse_import(data, session_id=session_id, now=_common.now_us())
        for stored in plain.messages:
            if _is_envelope_block(stored.message.get("content")):
                raise ConfigurationError(
                    f"import message {stored.seq} is still encrypted: export through the encrypted store "
                    "(which writes plaintext JSON Lines), not from the backend underneath it"
                )
        sealed = self.codec.seal_data(plain, record=self.codec.new_record())
        created: str = yield _call("import_jsonl", _common.export_session(sealed), session_id=plain.info.id)
        return created

    def delete(self, session_id: str) -> _Op[bool]:
        deleted: bool = yield _call("delete", session_id)
        yield _call("delete", backup_id(session_id))  # a rotation backup must not outlive its session
        return deleted

    # -- rotation

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
            plain = self.codec.open_data(raw)  # a missing key fails here, before anything is written
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
            yield _call(
                "update_session",
                session_id,
                metadata={**raw.info.metadata, RESERVED_METADATA_KEY: {**record, "rotation": rotation}},
            )
            try:
                after_rewind: int = yield _call("rewind", session_id, to=0, expected_version=raw.version)
            except ConflictError:
                # Someone appended since we loaded: undo our marker and backup, then start over.
                fresh: SessionInfo = yield _call("get_session", session_id)
                fresh_record = _record(fresh)
                if fresh_record.get("rotation") == rotation:
                    fresh_record.pop("rotation")
                    yield _call(
                        "update_session",
                        session_id,
                        metadata={**fresh.metadata, RESERVED_METADATA_KEY: fresh_record},
                    )
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
            info=replace(plain.info, id=backup, title=None, owner=None, tags=(), expires_at=None, metadata={}),
            messages=plain.messages,
            summaries=plain.summaries,
        )
        mark = {"backup_of": session_id, **{k: rotation[k] for k in ("version", "token", "started_at")}}
        sealed = self.codec.seal_data(copy, record=self.codec.new_record(**mark))
        try:
            yield _call("import_jsonl", _common.export_session(sealed), session_id=backup)
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
        entries = self.codec.reseal_messages(session_id, plain.messages)
        try:
            yield _call("append", session_id, entries, expected_version=version)
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
        metadata = {k: v for k, v in info.metadata.items() if k != RESERVED_METADATA_KEY}
        changes: dict[str, Any] = {
            "system": self.codec.seal_system(session_id, plain.info.system),
            "metadata": {**metadata, RESERVED_METADATA_KEY: clean},
        }
        if plain.info.title is not None and (self.codec.encrypt_titles or _is_envelope_string(info.title)):
            changes["title"] = self.codec.seal_title(session_id, plain.info.title)
        yield _call("update_session", session_id, **changes)
        return None

    def _resume(self, session_id: str, raw: SessionData, record: dict[str, Any]) -> _Op[None]:
        rotation = record["rotation"]  # sealed and naming this session's backup: checked by open_rotation
        version, backup, count = rotation.get("version"), backup_id(session_id), rotation.get("count")
        if raw.version == version:
            # Crashed before the rewind: the session is intact; drop the marker and the backup.
            record.pop("rotation")
            yield _call("update_session", session_id, metadata={**raw.info.metadata, RESERVED_METADATA_KEY: record})
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


# ------------------------------------------------------------------------------------------------------------
# The wrappers


def _make_codec(
    key: KeyLike | None, old_keys: Iterable[KeyLike], encrypt_titles: bool, allow_plaintext: bool
) -> _Codec:
    if key is None:
        env_key, env_old = _keys_from_env()
        key = env_key
        old_keys = [*old_keys, *env_old]
    return _Codec(_Keyring(key, old_keys), encrypt_titles=encrypt_titles, allow_plaintext=allow_plaintext)


def _refuse_encrypted(inner: object) -> None:
    # Encrypting ciphertext again would work, and make every row need two keys: surely not what was meant
    # (open_store already encrypts when CLAUDE_HISTORY_ENCRYPTION_KEY is set).
    if isinstance(inner, (EncryptedStore, AsyncEncryptedStore)) or isinstance(
        getattr(inner, "store", None), EncryptedStore
    ):
        raise ConfigurationError(
            "this store is already encrypted (open_store encrypts when CLAUDE_HISTORY_ENCRYPTION_KEY is set); "
            "use it as it is, or open it with open_store(url, encryption_key=False) to wrap it yourself"
        )


class EncryptedStore:
    """A ``Store`` that encrypts content before it reaches ``inner`` and decrypts it on the way back."""

    def __init__(
        self,
        inner: Store,
        key: KeyLike | None = None,
        *,
        old_keys: Iterable[KeyLike] = (),
        encrypt_titles: bool = False,
        allow_plaintext: bool = False,
    ) -> None:
        _refuse_encrypted(inner)
        self.inner = inner
        self._ops = _Ops(_make_codec(key, old_keys, encrypt_titles, allow_plaintext))

    @property
    def key_id(self) -> str:
        """The fingerprint of the current master key (what new ciphertexts are tagged with)."""
        return self._ops.codec.keys.current

    @property
    def encrypt_titles(self) -> bool:
        """Whether titles are encrypted; if not they are stored in clear, so never make one of content."""
        return self._ops.codec.encrypt_titles

    def _run(self, op: _Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    result = getattr(self.inner, call.method)(*call.args, **call.kwargs)
                except Exception as exc:
                    call = op.throw(exc)
                else:
                    call = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def load(self, session_id: str) -> SessionData:
        return self._run(self._ops.load(session_id))

    def get_session(self, session_id: str) -> SessionInfo:
        return self._run(self._ops.get_session(session_id))

    def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        return self._run(self._ops.append(session_id, entries, expected_version, incarnation, turn_id))

    def update_session(
        self,
        session_id: str,
        *,
        title: str | None = UNSET,
        owner: str | None = UNSET,
        tags: Iterable[str] = UNSET,
        model: str | None = UNSET,
        system: str | list[dict[str, Any]] | None = UNSET,
        expires_at: datetime | None = UNSET,
        metadata: dict[str, Any] = UNSET,
        create: bool = False,
    ) -> SessionInfo:
        changes = {
            "title": title,
            "owner": owner,
            "tags": tags,
            "model": model,
            "system": system,
            "expires_at": expires_at,
            "metadata": metadata,
        }
        return self._run(self._ops.update_session(session_id, changes, create))

    def list_sessions(
        self, *, owner: str | None = None, tag: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[SessionInfo]:
        return self._run(self._ops.list_sessions(owner, tag, limit, offset))

    def delete(self, session_id: str) -> bool:
        return self._run(self._ops.delete(session_id))

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return self._run(self._ops.fork(session_id, at, new_id))

    def rewind(self, session_id: str, *, to: int | None = None, expected_version: int | None = None) -> int:
        return self._run(self._ops.rewind(session_id, to, expected_version))

    def save_summary(self, session_id: str, summary: Summary) -> None:
        self._run(self._ops.save_summary(session_id, summary))

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return self._run(self._ops.search(query, session_id, owner, limit))

    def purge_expired(self, now: datetime | None = None) -> int:
        return self.inner.purge_expired(now)

    def export_jsonl(self, session_id: str) -> str:
        return self._run(self._ops.export_jsonl(session_id))

    def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str:
        return self._run(self._ops.import_jsonl(data, session_id))

    def rotate(self, session_id: str | None = None) -> RotationReport:
        """Re-encrypt one session (or every session) under the current key; see docs/encryption.md."""
        return self._run(self._ops.rotate(session_id))

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> EncryptedStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r}, key_id={self.key_id!r})"


class AsyncEncryptedStore:
    """The async twin of ``EncryptedStore`` over an ``AsyncStore``."""

    def __init__(
        self,
        inner: AsyncStore,
        key: KeyLike | None = None,
        *,
        old_keys: Iterable[KeyLike] = (),
        encrypt_titles: bool = False,
        allow_plaintext: bool = False,
    ) -> None:
        _refuse_encrypted(inner)
        self.inner = inner
        self._ops = _Ops(_make_codec(key, old_keys, encrypt_titles, allow_plaintext))

    @property
    def key_id(self) -> str:
        return self._ops.codec.keys.current

    @property
    def encrypt_titles(self) -> bool:
        return self._ops.codec.encrypt_titles

    async def _run(self, op: _Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    result = await getattr(self.inner, call.method)(*call.args, **call.kwargs)
                except Exception as exc:
                    call = op.throw(exc)
                else:
                    call = op.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def load(self, session_id: str) -> SessionData:
        return await self._run(self._ops.load(session_id))

    async def get_session(self, session_id: str) -> SessionInfo:
        return await self._run(self._ops.get_session(session_id))

    async def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        return await self._run(self._ops.append(session_id, entries, expected_version, incarnation, turn_id))

    async def update_session(self, session_id: str, **changes: Any) -> SessionInfo:
        create = bool(changes.pop("create", False))
        return await self._run(self._ops.update_session(session_id, changes, create))

    async def list_sessions(
        self, *, owner: str | None = None, tag: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[SessionInfo]:
        return await self._run(self._ops.list_sessions(owner, tag, limit, offset))

    async def delete(self, session_id: str) -> bool:
        return await self._run(self._ops.delete(session_id))

    async def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return await self._run(self._ops.fork(session_id, at, new_id))

    async def rewind(self, session_id: str, *, to: int | None = None, expected_version: int | None = None) -> int:
        return await self._run(self._ops.rewind(session_id, to, expected_version))

    async def save_summary(self, session_id: str, summary: Summary) -> None:
        await self._run(self._ops.save_summary(session_id, summary))

    async def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return await self._run(self._ops.search(query, session_id, owner, limit))

    async def purge_expired(self, now: datetime | None = None) -> int:
        return await self.inner.purge_expired(now)

    async def export_jsonl(self, session_id: str) -> str:
        return await self._run(self._ops.export_jsonl(session_id))

    async def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str:
        return await self._run(self._ops.import_jsonl(data, session_id))

    async def rotate(self, session_id: str | None = None) -> RotationReport:
        return await self._run(self._ops.rotate(session_id))

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> AsyncEncryptedStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncEncryptedStore({self.inner!r}, key_id={self.key_id!r})"


def wrap(
    store: Store,
    key: KeyLike | None = None,
    *,
    old_keys: Iterable[KeyLike] = (),
    encrypt_titles: bool = False,
    allow_plaintext: bool = False,
) -> EncryptedStore:
    """Encrypt ``store`` at rest. ``key`` defaults to ``$CLAUDE_HISTORY_ENCRYPTION_KEY`` (and ``old_keys``
    then include the comma-separated ``$CLAUDE_HISTORY_ENCRYPTION_OLD_KEYS``)."""
    return EncryptedStore(store, key, old_keys=old_keys, encrypt_titles=encrypt_titles, allow_plaintext=allow_plaintext)


def wrap_async(
    store: AsyncStore,
    key: KeyLike | None = None,
    *,
    old_keys: Iterable[KeyLike] = (),
    encrypt_titles: bool = False,
    allow_plaintext: bool = False,
) -> AsyncEncryptedStore:
    """The async twin of ``wrap``."""
    return AsyncEncryptedStore(
        store, key, old_keys=old_keys, encrypt_titles=encrypt_titles, allow_plaintext=allow_plaintext
    )
