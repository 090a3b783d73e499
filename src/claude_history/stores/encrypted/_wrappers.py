"""The front classes: ``EncryptedStore`` / ``AsyncEncryptedStore`` (and ``wrap`` / ``wrap_async``), which run the
operations of ``_ops`` / ``_rotation`` against the wrapped store, with or without ``await``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ...errors import ConfigurationError
from .._leases import supports_leases
from ..base import (
    UNSET,
    AsyncStore,
    Entry,
    SearchHit,
    SessionCursor,
    SessionData,
    SessionInfo,
    Store,
    StoredMessage,
    Summary,
    UsageRecord,
)
from ._codec import _Codec
from ._keyring import KeyLike, _Keyring, _keys_from_env
from ._ops import _Op
from ._rotation import RotationReport, _RotatingOps

T = TypeVar("T")


def _make_codec(
    key: KeyLike | None, old_keys: Iterable[KeyLike], encrypt_titles: bool, allow_plaintext: bool
) -> _Codec:
    if key is None:
        env_key, env_old = _keys_from_env()
        key = env_key
        old_keys = [*old_keys, *env_old]
    return _Codec(_Keyring(key, old_keys), encrypt_titles=encrypt_titles, allow_plaintext=allow_plaintext)


def _takes_incarnation(method: Any) -> bool:
    """Does the wrapped store's ``rewind`` (``update_session``) take ``incarnation``? Every store of ours does; a
    user's own store written before it may not, and is written without it."""
    import inspect

    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin or a mock without a signature
        return False
    return "incarnation" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


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
        self.leases_supported = supports_leases(inner)  # a lease holds no content: the inner store keeps it
        self._ops = _RotatingOps(
            _make_codec(key, old_keys, encrypt_titles, allow_plaintext),
            _takes_incarnation(inner.rewind),
            _takes_incarnation(inner.update_session),
        )

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

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        return self._run(self._ops.load_messages(session_id, start, stop))

    def usage_log(self, session_id: str) -> list[UsageRecord]:
        return self._run(self._ops.usage_log(session_id))

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
        del checkpoint  # none is kept: it would be plaintext beside the ciphertext (_checkpoints.py)
        return self._run(self._ops.append(session_id, entries, expected_version, incarnation, turn_id, lease))

    def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        return self._run(self._ops.acquire_lease(session_id, ttl))

    def release_lease(self, session_id: str, token: int) -> None:
        return self._run(self._ops.release_lease(session_id, token))

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
        incarnation: str | None = None,
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
        if incarnation is not None:
            changes["incarnation"] = incarnation
        return self._run(self._ops.update_session(session_id, changes, create))

    def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        return self._run(self._ops.list_sessions(owner, tag, limit, offset, after))

    def delete(self, session_id: str) -> bool:
        return self._run(self._ops.delete(session_id))

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return self._run(self._ops.fork(session_id, at, new_id))

    def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        return self._run(self._ops.rewind(session_id, to, expected_version, incarnation))

    def save_summary(self, session_id: str, summary: Summary) -> None:
        self._run(self._ops.save_summary(session_id, summary))

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return self._run(self._ops.search(query, session_id, owner, limit))

    def purge_expired(self, now: datetime | None = None) -> int:
        return self._run(self._ops.purge_expired(now))

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
        self.leases_supported = supports_leases(inner)  # a lease holds no content: the inner store keeps it
        self._ops = _RotatingOps(
            _make_codec(key, old_keys, encrypt_titles, allow_plaintext),
            _takes_incarnation(inner.rewind),
            _takes_incarnation(inner.update_session),
        )

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

    async def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        return await self._run(self._ops.load_messages(session_id, start, stop))

    async def usage_log(self, session_id: str) -> list[UsageRecord]:
        return await self._run(self._ops.usage_log(session_id))

    async def append(
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
        del checkpoint  # none is kept: it would be plaintext beside the ciphertext (_checkpoints.py)
        return await self._run(
            self._ops.append(session_id, entries, expected_version, incarnation, turn_id, lease)
        )

    async def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        return await self._run(self._ops.acquire_lease(session_id, ttl))

    async def release_lease(self, session_id: str, token: int) -> None:
        return await self._run(self._ops.release_lease(session_id, token))

    async def update_session(self, session_id: str, **changes: Any) -> SessionInfo:
        create = bool(changes.pop("create", False))
        return await self._run(self._ops.update_session(session_id, changes, create))

    async def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        return await self._run(self._ops.list_sessions(owner, tag, limit, offset, after))

    async def delete(self, session_id: str) -> bool:
        return await self._run(self._ops.delete(session_id))

    async def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return await self._run(self._ops.fork(session_id, at, new_id))

    async def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        return await self._run(self._ops.rewind(session_id, to, expected_version, incarnation))

    async def save_summary(self, session_id: str, summary: Summary) -> None:
        await self._run(self._ops.save_summary(session_id, summary))

    async def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return await self._run(self._ops.search(query, session_id, owner, limit))

    async def purge_expired(self, now: datetime | None = None) -> int:
        return await self._run(self._ops.purge_expired(now))

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
