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

Rows are also bound to the session's incarnation and linked by version, so that an older copy of a turn put
back, or turns dropped beneath the wrapper, are detected at load (``_chain``).

Layout: ``_keyring`` (master keys, key ids, per-session ciphers), ``_codec`` (sealing and opening records),
``_chain`` (the links between rows and the end of the log),
``_ops`` (the operations as generators of backend calls), ``_rotation`` (``rotate`` and its recovery),
``_wrappers`` (``EncryptedStore``, ``AsyncEncryptedStore``, ``wrap``, ``wrap_async``).
"""

from ._codec import BACKUP_PREFIX as BACKUP_PREFIX
from ._codec import BLOCK_TYPE, RESERVED_METADATA_KEY
from ._codec import backup_id as backup_id
from ._keyring import ENV_VAR, OLD_KEYS_ENV_VAR, generate_key, key_id
from ._keyring import KeyLike as KeyLike
from ._keyring import parse_key as parse_key
from ._rotation import RotationReport
from ._wrappers import AsyncEncryptedStore, EncryptedStore, wrap, wrap_async

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
