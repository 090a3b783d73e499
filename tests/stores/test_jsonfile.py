"""What only the file store has to prove: crash recovery of its log, safe names, and real removal on disk."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from claude_history.errors import SessionNotFound, StoreUnavailable
from claude_history.stores import open_store
from claude_history.stores.base import Entry
from claude_history.stores.jsonfile import JsonFileStore, _name

from .samples import turn
from .test_conformance import NASTY_IDS


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def log_files(root: Path) -> list[Path]:
    return sorted(root.glob("*.jsonl"))


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_torn_last_line_is_ignored_then_cut_by_the_next_writer(root: Path) -> None:
    store = JsonFileStore(root)
    store.append("s", turn("1"), expected_version=0)
    store.append("s", turn("2"), expected_version=1)
    [log] = log_files(root)
    torn = b'{"v":3,"n":6,"u":1,"op":"append","t":1,"entries":[{"message":{"role":"user","content":"half-writ'
    with log.open("ab") as handle:  # what a writer killed in the middle of its write leaves
        handle.write(torn)
    data = store.load("s")
    assert data.version == 2
    assert [m.message["content"] for m in data.messages[::2]] == ["question 1", "question 2"]
    assert store.get_session("s").version == 2
    assert store.append("s", turn("3"), expected_version=2) == 3
    content = log.read_bytes()
    assert b"half-writ" not in content
    assert content.endswith(b"\n")
    assert len(content.splitlines()) == 3
    assert [m.message["content"] for m in store.load("s").messages[::2]] == [
        "question 1",
        "question 2",
        "question 3",
    ]


def test_a_torn_only_line_means_an_empty_log(root: Path) -> None:
    store = JsonFileStore(root)
    store.update_session("s", title="new", create=True)
    [log] = log_files(root) or [None]
    assert log is not None
    log.write_bytes(b'{"v":1,"n":2,"u":1,"op":"app')
    assert store.load("s").messages == []
    assert store.append("s", turn("1"), expected_version=0) == 1


def test_a_corrupt_committed_line_is_reported(root: Path) -> None:
    store = JsonFileStore(root)
    store.append("s", turn("1"), expected_version=0)
    store.append("s", turn("2"), expected_version=1)
    [log] = log_files(root)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0][:20] + b"garbage\n" + lines[1])
    with pytest.raises(StoreUnavailable, match="corrupt"):
        store.load("s")


def test_a_log_orphaned_before_its_sidecar_is_not_a_session(root: Path) -> None:
    store = JsonFileStore(root)
    store.append("s", turn("orphan text"), expected_version=0)
    next(root.glob("*.meta.json")).unlink()  # a crash after writing the log of a fork/import, before the sidecar
    with pytest.raises(SessionNotFound):
        store.load("s")
    assert store.list_sessions() == []
    assert store.purge_expired() == 0
    assert log_files(root) == []
    assert b"orphan text" not in all_bytes(root)


def test_an_orphan_log_is_replaced_when_the_id_is_used_again(root: Path) -> None:
    store = JsonFileStore(root)
    store.append("s", turn("old"), expected_version=0)
    next(root.glob("*.meta.json")).unlink()
    assert store.append("s", turn("new"), expected_version=0) == 1
    assert [m.message["content"] for m in store.load("s").messages[::2]] == ["question new"]


def test_files_stay_inside_the_directory_whatever_the_id(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "store"
    store = JsonFileStore(root)
    for session_id in [*NASTY_IDS, "/etc/passwd", "C:\\Windows", "~", "con", ".meta.json"]:
        store.append(session_id, turn("x"), expected_version=0)
        store.update_session(session_id, title=session_id)
        store.fork(session_id, new_id=session_id[:990] + "/fork")
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents]
    assert outside == []
    names = {p.name for p in root.iterdir()} - {"claude-history.json", "claude-history.index.sqlite"}
    assert len(names) == 2 * 2 * (len(NASTY_IDS) + 5)  # a log and a sidecar per session and per fork
    for name in names:
        stem = name.split(".")[0]
        assert len(stem) == 64 and all(c in "0123456789abcdef" for c in stem), name
    assert {s.id for s in store.list_sessions(limit=100)} >= set(NASTY_IDS)


def test_rewind_and_delete_remove_the_content_from_disk(root: Path) -> None:
    store = JsonFileStore(root)
    store.append("s", turn("keep"), expected_version=0)
    store.append("s", turn("dropped-secret"), expected_version=1)
    assert [h.seq for h in store.search("secret")] == [2, 3]  # its words are in the search index too
    assert store.rewind("s") == 3
    assert b"dropped-secret" not in all_bytes(root)
    assert b"secret" not in all_bytes(root)  # nor any word of it, in the index or its journal
    assert b"question keep" in all_bytes(root)
    store.update_session("s", title="title-secret")
    assert store.search("keep") != []
    assert store.delete("s") is True
    remaining = sorted(p.name for p in root.iterdir())
    assert remaining == ["claude-history.index.sqlite", "claude-history.json"]
    assert b"keep" not in all_bytes(root)


def test_files_are_private_and_lines_are_json(root: Path) -> None:
    store = JsonFileStore(root)
    store.append("s", turn("1"), expected_version=0)
    store.append("s", turn("2"), expected_version=1)
    for path in root.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0
    [log] = log_files(root)
    records = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
    assert [(r["v"], r["n"], r["op"]) for r in records] == [(1, 2, "append"), (2, 4, "append")]
    assert records[1]["entries"][0]["message"] == {"role": "user", "content": "question 2"}


def test_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("my files")
    with pytest.raises(StoreUnavailable, match="not empty"):
        JsonFileStore(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "claude-history.json").write_text('{"format": "something-else/9"}')
    with pytest.raises(StoreUnavailable, match="format"):
        JsonFileStore(other)


def test_reopening_and_sharing_a_directory(root: Path) -> None:
    first = JsonFileStore(root)
    first.append("s", turn("1"), expected_version=0)
    second = open_store(f"file://{root}")
    assert isinstance(second, JsonFileStore)
    assert second.load("s").version == 1


def test_a_writer_waiting_while_the_log_is_replaced_locks_the_new_file(root: Path) -> None:
    """A rewind renames a new log over the old one while writers may be queued on the old file's lock: they
    must notice and lock the new file, or their turn would land in a file nobody reads."""
    store = JsonFileStore(root)
    store.append("s", turn("1"), expected_version=0)
    store.append("s", turn("2"), expected_version=1)
    name = _name("s")
    [log] = log_files(root)
    old_inode = os.stat(log).st_ino
    outcome: dict[str, object] = {}

    def writer() -> None:
        try:
            outcome["version"] = store.append("s", turn("3"), expected_version=2)
        except Exception as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    with store._locked(name, create=False) as fd:
        assert fd is not None
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.2)  # let the writer queue on the old file's lock (the test holds either way)
        store._replace(log, log.read_bytes())  # what a rewind does: same path, new inode
    thread.join(timeout=30)
    assert outcome == {"version": 3}
    assert os.stat(log).st_ino != old_inode
    assert [m.message["content"] for m in store.load("s").messages[::2]] == [
        "question 1",
        "question 2",
        "question 3",
    ]


def test_listing_reads_only_the_start_of_a_huge_last_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A session imported as one 80 MB line made list_sessions() of the whole store take 24 s: the state was
    # found by copying the line chunk by chunk. Only the line's fixed prefix is needed (timing is in bench/).
    from claude_history.stores import jsonfile

    store = JsonFileStore(tmp_path / "files", fsync=False)
    huge = [Entry({"role": "user", "content": "x" * 4_000_000}), Entry({"role": "assistant", "content": "ok"})]
    store.append("huge", huge, expected_version=0)
    store.append("small", turn("a"), expected_version=0)
    seen: list[int] = []
    parse = jsonfile._parse_state

    def recording(line: bytes, where: str) -> tuple[int, int, int]:
        seen.append(len(line))
        return parse(line, where)

    monkeypatch.setattr(jsonfile, "_parse_state", recording)
    assert {info.id: info.message_count for info in store.list_sessions()} == {"huge": 2, "small": 2}
    assert store.get_session("huge").version == 1
    assert seen and max(seen) <= 256
