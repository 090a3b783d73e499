"""The key ring: master keys (parsed from raw bytes, hex or base64), their short ids, and one AES-256-GCM cipher
per session, derived with HKDF-SHA256(master, info=session id) and cached."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ...errors import ConfigurationError

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:  # pragma: no cover - exercised only without the extra
    AESGCM = None  # type: ignore[assignment,misc]

ENV_VAR = "CLAUDE_HISTORY_ENCRYPTION_KEY"
OLD_KEYS_ENV_VAR = "CLAUDE_HISTORY_ENCRYPTION_OLD_KEYS"
KEY_BYTES = 32
KID_CHARS = 12
_HKDF_SALT = b"claude-history/session-key/v1"
_KID_LABEL = b"claude-history/key-id/v1"

KeyLike = bytes | bytearray | memoryview | str


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
