"""open_store / open_async_store: URLs, defaults, and clear errors for what is missing or mistyped."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from claude_history.errors import ConfigurationError, StoreUnavailable
from claude_history.stores import DEFAULT_STORE_ENV, ENCRYPTION_KEY_ENV, open_async_store, open_store
from claude_history.stores.base import AsyncStore, Store
from claude_history.stores.jsonfile import JsonFileStore
from claude_history.stores.memory import MemoryStore
from claude_history.stores.sqlite import SQLiteStore
from claude_history.stores.threaded import ThreadedAsyncStore

from .samples import turn


def test_memory_is_a_fresh_store_each_time() -> None:
    first, second = open_store("memory://"), open_store("MEMORY://")
    assert isinstance(first, MemoryStore) and isinstance(first, Store)
    first.append("s", turn("1"), expected_version=0)
    assert second.list_sessions() == []
    with pytest.raises(ConfigurationError):
        open_store("memory://", busy_timeout=3)


def test_sqlite_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///chats.db")  # three slashes: relative to the working directory
    assert isinstance(relative, SQLiteStore)
    assert relative.path.resolve() == tmp_path / "chats.db"
    relative.close()
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")  # four slashes in total: absolute
    assert absolute.path == tmp_path / "abs.db"
    absolute.close()
    spaced = open_store(f"sqlite:///{tmp_path}/with%20space.db", busy_timeout=1)
    assert spaced.path == tmp_path / "with space.db"
    spaced.close()
    with pytest.raises(StoreUnavailable, match="four slashes"):
        open_store("sqlite:///missing-dir/x.db")
    with pytest.raises(ConfigurationError, match="memory://"):
        open_store("sqlite:///:memory:")


@pytest.mark.parametrize("url", [None, "", "sqlite://"])
def test_default_database_in_the_user_data_dir(
    url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import platformdirs

    monkeypatch.delenv(DEFAULT_STORE_ENV, raising=False)
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app, appauthor=None: str(tmp_path / "data" / app))
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "data" / "claude-history" / "history.db"
    store.append("s", turn("1"), expected_version=0)
    store.close()
    assert store.path.exists()


def test_environment_variable_names_the_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEFAULT_STORE_ENV, f"file://{tmp_path}/env-store")
    store = open_store()
    assert isinstance(store, JsonFileStore)
    assert store.root == tmp_path / "env-store"


def test_file_urls(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/a")
    assert isinstance(store, JsonFileStore) and store.root == tmp_path / "a"
    assert open_store(f"file://localhost{tmp_path}/b").root == tmp_path / "b"  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError):
        open_store("file://")


@pytest.mark.parametrize("url", ["mysql://localhost/db", "chats.db", "sqlite:/x.db", "https://example.com"])
def test_unknown_urls_list_the_schemes(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store(url)
    for scheme in ("memory://", "sqlite:///", "file:///", "postgresql://", "redis://"):
        assert scheme in str(raised.value)


def test_non_string_url() -> None:
    with pytest.raises(ConfigurationError):
        open_store(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "module", "dependency", "extra"),
    [
        ("postgresql://localhost/db", "claude_history.stores.postgres", "psycopg", "postgres"),
        ("postgres://localhost/db", "claude_history.stores.postgres", "psycopg", "postgres"),
        ("redis://localhost:6379/0", "claude_history.stores.redis", "redis", "redis"),
        ("rediss://localhost:6380/0", "claude_history.stores.redis", "redis", "redis"),
    ],
)
def test_a_missing_optional_dependency_names_the_extra(
    url: str, module: str, dependency: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    for name in list(sys.modules):
        if name in (module, dependency) or name.startswith((module + ".", dependency + ".")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, dependency, None)  # makes `import <dependency>` fail
    with pytest.raises(StoreUnavailable, match=rf"pip install 'claude-history\[{extra}\]'"):
        open_store(url)
    with pytest.raises(StoreUnavailable, match=rf"pip install 'claude-history\[{extra}\]'"):
        open_async_store(url)


def test_encryption_without_the_module_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "claude_history.stores.encrypted", raising=False)
    monkeypatch.setitem(sys.modules, "claude_history.stores.encrypted", None)
    with pytest.raises(ConfigurationError, match="encryption"):
        open_store("memory://", encryption_key="k" * 44)


@pytest.mark.skipif(importlib.util.find_spec("claude_history.stores.encrypted") is None, reason="no encryption")
def test_encryption_key_wraps_the_store(tmp_path: Path) -> None:
    from .conftest import TEST_KEY

    store = open_store(f"sqlite:///{tmp_path}/enc.db", encryption_key=TEST_KEY)
    store.append("s", turn("secret words"), expected_version=0)
    assert store.load("s").messages[0].message["content"] == "question secret words"
    store.close()
    plain = open_store(f"sqlite:///{tmp_path}/enc.db")
    assert "secret words" not in repr(plain.load("s").message_params())
    plain.close()


async def test_open_async_store_runs_local_stores_in_threads(tmp_path: Path) -> None:
    for url in ("memory://", f"sqlite:///{tmp_path}/a.db", f"file://{tmp_path}/files"):
        store = open_async_store(url)
        assert isinstance(store, ThreadedAsyncStore) and isinstance(store, AsyncStore)
        async with store:
            assert await store.append("s", turn("1"), expected_version=0) == 1
            assert (await store.load("s")).version == 1


needs_encryption = pytest.mark.skipif(
    importlib.util.find_spec("claude_history.stores.encrypted") is None, reason="no encryption"
)
ENCRYPTION_OLD_KEYS_ENV = "CLAUDE_HISTORY_ENCRYPTION_OLD_KEYS"
OTHER_KEY = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="  # another 32-byte key, base64


def _stored_content(path: Path, session_id: str = "s") -> list[Any]:
    """What the backend holds, read past any wrapper."""
    plain = open_store(f"sqlite:///{path}", encryption_key=False)
    try:
        return [m["content"] for m in plain.load(session_id).message_params()]
    finally:
        plain.close()


@needs_encryption
def test_the_key_in_the_environment_encrypts_without_an_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_history.stores.encrypted import ENV_VAR, EncryptedStore

    from .conftest import TEST_KEY

    assert ENV_VAR == ENCRYPTION_KEY_ENV
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, TEST_KEY)
    path = tmp_path / "env.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, EncryptedStore)
    store.append("s", turn("secret words"), expected_version=0)
    store.close()
    stored = _stored_content(path)
    assert "secret words" not in repr(stored)
    assert all(content[0]["type"] == "encrypted" for content in stored)
    # The explicit key and the environment's are the same key: either reads it.
    explicit = open_store(f"sqlite:///{path}", encryption_key=TEST_KEY)
    assert explicit.load("s").messages[0].message["content"] == "question secret words"
    explicit.close()
    monkeypatch.delenv(ENCRYPTION_KEY_ENV)
    assert isinstance(open_store("memory://"), MemoryStore)  # unset again: plain


@needs_encryption
def test_an_explicit_key_wins_over_the_environment_and_false_opts_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_history.stores.encrypted import key_id

    from .conftest import TEST_KEY

    monkeypatch.setenv(ENCRYPTION_KEY_ENV, TEST_KEY)
    store = open_store(f"sqlite:///{tmp_path}/k.db", encryption_key=OTHER_KEY)
    assert store.key_id == key_id(OTHER_KEY) != key_id(TEST_KEY)
    store.close()
    plain = open_store(f"sqlite:///{tmp_path}/plain.db", encryption_key=False)
    assert isinstance(plain, SQLiteStore)
    plain.append("s", turn("in clear"), expected_version=0)
    plain.close()
    assert _stored_content(tmp_path / "plain.db")[0] == "question in clear"


@needs_encryption
def test_the_environment_brings_its_old_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import TEST_KEY

    path = tmp_path / "rotated.db"
    old = open_store(f"sqlite:///{path}", encryption_key=TEST_KEY)
    old.append("s", turn("written under the old key"), expected_version=0)
    old.close()
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, OTHER_KEY)
    monkeypatch.setenv(ENCRYPTION_OLD_KEYS_ENV, TEST_KEY)
    store = open_store(f"sqlite:///{path}")
    assert store.load("s").messages[0].message["content"] == "question written under the old key"
    store.close()


@needs_encryption
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_variable_means_no_encryption(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, value)
    assert isinstance(open_store("memory://"), MemoryStore)


@needs_encryption
def test_a_bad_key_in_the_environment_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, "not a key")
    with pytest.raises(ConfigurationError, match="key"):
        open_store(f"sqlite:///{tmp_path}/bad.db")
    with pytest.raises(ConfigurationError, match="key"):
        open_async_store(f"sqlite:///{tmp_path}/bad.db")


@needs_encryption
async def test_open_async_store_encrypts_with_the_environment_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import TEST_KEY

    monkeypatch.setenv(ENCRYPTION_KEY_ENV, TEST_KEY)
    path = tmp_path / "async.db"
    async with open_async_store(f"sqlite:///{path}") as store:
        await store.append("s", turn("async secret"), expected_version=0)
        assert (await store.load("s")).messages[0].message["content"] == "question async secret"
    assert "async secret" not in repr(_stored_content(path))


@needs_encryption
async def test_wrapping_a_store_that_is_already_encrypted_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claude_history.stores.encrypted import wrap, wrap_async

    from .conftest import TEST_KEY

    monkeypatch.setenv(ENCRYPTION_KEY_ENV, TEST_KEY)
    url = f"sqlite:///{tmp_path}/twice.db"
    encrypted = open_store(url)
    with pytest.raises(ConfigurationError, match="already encrypted"):
        wrap(encrypted, OTHER_KEY)
    encrypted.close()
    async_encrypted = open_async_store(url)
    with pytest.raises(ConfigurationError, match="already encrypted"):
        wrap_async(async_encrypted, OTHER_KEY)
    await async_encrypted.aclose()
    # The documented way to wrap it yourself (e.g. with allow_plaintext=True to encrypt an existing store).
    own = wrap(open_store(url, encryption_key=False), TEST_KEY, allow_plaintext=True)
    own.append("s", turn("mine"), expected_version=0)
    assert own.load("s").messages[0].message["content"] == "question mine"
    own.close()
