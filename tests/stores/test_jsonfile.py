"""What only the file store has to prove: crash recovery of its log, safe names, and real removal on disk."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import SessionNotFound, StoreUnavailable
from claude_history.stores import jsonfile, open_store
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
    # a log, a sidecar and an offsets file per session and per fork, and the fork's link to the log it shares
    assert len(names) == (3 + 4) * (len(NASTY_IDS) + 5)
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


# -- copy-on-write forks: what the links keep on disk ------------------------------------------------------------


def test_a_shared_log_keeps_only_what_its_forks_read(root: Path) -> None:
    """A parent rewound or deleted while forks link its old log: the messages no fork reads leave the disk at
    once (the shared file is cut), and the last fork gone takes the rest."""
    store = JsonFileStore(root)
    for version, label in enumerate(["a-kept", "b-forked", "c-dropped"]):
        store.append("p", turn(label), expected_version=version)
    store.fork("p", at=4, new_id="f")
    store.fork("p", at=2, new_id="g")
    store.rewind("p", to=2)
    assert b"c-dropped" not in all_bytes(root)  # no fork reads it: cut from the shared file and from the index
    assert b"question b-forked" in all_bytes(root)  # f reads it
    store.delete("f")
    assert b"b-forked" not in all_bytes(root)  # g reads only the first turn
    assert [m.message["content"] for m in store.load("g").messages[::2]] == ["question a-kept"]
    store.delete("p")
    store.delete("g")
    assert b"a-kept" not in all_bytes(root)
    assert sorted(p.name for p in root.iterdir()) == ["claude-history.index.sqlite", "claude-history.json"]


def test_a_fork_inside_a_turn_and_its_summaries(root: Path) -> None:
    """A fork point inside a turn's line: the fork holds that turn's first messages itself; summaries inside its
    prefix come along, also those saved after the messages it shares."""
    from claude_history.stores.base import Summary

    store = JsonFileStore(root)
    store.append("p", turn("one") + turn("two"), expected_version=0)  # one line of 4 messages
    store.append("p", turn("three"), expected_version=1)
    store.save_summary("p", Summary(0, 2, "first turn"))
    parent = store.load("p")
    for at in range(7):
        fork = store.load(store.fork("p", at=at, new_id=f"f{at}"))
        assert fork.messages == parent.messages[:at]
        assert [(s.start, s.end, s.text) for s in fork.summaries] == [(0, 2, "first turn")] * (at >= 2)
    store.rewind("f5", to=3)  # a fork rewound inside what it shares
    assert store.load("f5").messages == parent.messages[:3]
    store.delete("p")
    assert store.load("f6").messages == parent.messages
    assert [h.seq for h in store.search("two", session_id="f3")] == [2]


@pytest.mark.parametrize("crash_at", ["link", "log", "rename", "sidecar"])
def test_a_fork_interrupted_at_any_step_leaves_no_fork_and_nothing_behind(
    root: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    from claude_history.stores import jsonfile

    store = JsonFileStore(root)
    store.append("p", turn("parent words"), expected_version=0)
    before = {p.name: p.read_bytes() for p in root.iterdir() if not p.name.startswith("claude-history.index")}
    real_link, real_replace, real_write_meta = os.link, os.replace, store._write_meta

    def crash(*args: object) -> None:
        raise OSError("crashed")

    def replace(src: object, dst: object) -> None:  # the log is written by a rename; the links are renamed
        if (crash_at == "log" and str(dst).endswith(".jsonl")) or (crash_at == "rename" and str(dst).endswith(".base")):
            crash()
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(jsonfile.os, "link", crash if crash_at == "link" else real_link)
    monkeypatch.setattr(jsonfile.os, "replace", replace)
    monkeypatch.setattr(store, "_write_meta", crash if crash_at == "sidecar" else real_write_meta)
    with pytest.raises(OSError, match="crashed"):
        store.fork("p", new_id="f")
    monkeypatch.undo()
    with pytest.raises(SessionNotFound):
        store.load("f")
    for tmp in root.glob(".*.tmp"):  # what a crash leaves is cleared once stale, as after any crashed write
        os.utime(tmp, (time.time() - 7200, time.time() - 7200))
    store.purge_expired()
    after = {p.name: p.read_bytes() for p in root.iterdir() if not p.name.startswith("claude-history.index")}
    assert after == before
    store.fork("p", new_id="f")  # the id is free, and the fork whole
    assert store.load("f").messages == store.load("p").messages


def test_a_reader_of_a_fork_cut_under_it_reads_it_again(root: Path) -> None:
    """A fork rewound below its fork point cuts the file it shares (nobody else reads it): a load running
    meanwhile, which read the old log naming more of that file, reads again instead of failing."""
    store = JsonFileStore(root, fsync=False)
    current = ["f0"]
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(len(store.load(current[0]).messages))
            except SessionNotFound:
                continue
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            store.append(f"p{i}", turn("a") + turn("b") + turn("c"), expected_version=0)
            store.fork(f"p{i}", new_id=f"f{i}")
            store.delete(f"p{i}")  # the fork's link is now all that keeps the file
            current[0] = f"f{i}"
            time.sleep(0.001)
            store.rewind(f"f{i}", to=2)  # cuts the shared file to the first turn's line
            time.sleep(0.001)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen <= {2, 6} and 2 in seen
    assert all(b"question c" not in p.read_bytes() for p in root.glob("*.base"))


def test_a_parent_deleted_while_a_fork_of_its_fork_is_made_leaves_only_what_forks_read(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete cannot cut the shared file while a fork's link to it has no name yet (it cannot know what
    that fork reads): the fork cuts it once its link is named."""
    from claude_history.stores import jsonfile

    store = JsonFileStore(root)
    store.append("p", turn("shared"), expected_version=0)
    store.append("p", turn("beyond-secret"), expected_version=1)
    store.fork("p", at=2, new_id="f")
    real_link = os.link

    def link_then_delete(src: str, dst: str) -> None:
        real_link(src, dst)
        deleter = threading.Thread(target=store.delete, args=("p",))  # another thread: it needs only p's lock
        deleter.start()
        deleter.join()

    monkeypatch.setattr(jsonfile.os, "link", link_then_delete)
    store.fork("f", new_id="g")
    monkeypatch.undo()
    assert b"beyond-secret" not in all_bytes(root)
    assert store.load("g").messages == store.load("f").messages
    assert [m.message["content"] for m in store.load("g").messages[::2]] == ["question shared"]


def test_a_delete_of_a_fork_being_made_waits_for_it_and_leaves_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork's log takes its name before the fork writes its index rows and metadata. A delete started then
    (from another thread, as from another process) must wait for the whole fork: it used to lock the new log
    at once, delete it, and leave the fork's metadata and index rows behind, invisible to every listing, so
    the parent's text outlived every session that held it."""
    from claude_history.stores import jsonfile

    store = JsonFileStore(root)
    store.append("p", turn("secret"), expected_version=0)
    real_replace = jsonfile.os.replace
    deleted: list[bool] = []
    deleter: list[threading.Thread] = []

    def replace_then_delete(src: str, dst: str) -> None:
        real_replace(src, dst)
        if str(dst).endswith(_name("f") + ".jsonl") and not deleter:
            deleter.append(threading.Thread(target=lambda: deleted.append(store.delete("f"))))
            deleter[0].start()
            deleter[0].join(0.3)  # it must still be waiting for the fork's lock
            assert deleter[0].is_alive()

    monkeypatch.setattr(jsonfile.os, "replace", replace_then_delete)
    store.fork("p", new_id="f")
    monkeypatch.undo()
    deleter[0].join()
    assert deleted == [True]  # it deleted the whole fork, once the fork was made
    assert [info.id for info in store.list_sessions()] == ["p"]
    store.delete("p")
    store.compact()
    assert b"secret" not in all_bytes(root)


# -- the offsets sidecar: ranged reads and the state of a session without scanning the log ---------------------


def say(text: str, role: str = "user") -> Entry:
    """A message with non-ASCII text: byte and character offsets differ."""
    return Entry({"role": role, "content": text if role == "user" else [{"type": "text", "text": text + " é☃"}]})


def talk(first: int, count: int) -> list[Entry]:
    return [say(f"m{first + i}", "user" if (first + i) % 2 == 0 else "assistant") for i in range(count)]


def whole_reads_fail(store: JsonFileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(session_id: str) -> None:
        raise AssertionError("the log was read whole")

    monkeypatch.setattr(store, "load", refuse)


def test_a_ranged_read_reads_its_window_not_the_log(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonFileStore(root, fsync=False)
    store.append("s", talk(0, 3000), expected_version=0)  # one line of 3,000 messages
    store.append("s", talk(3000, 2), expected_version=1, turn_id="t")
    expected = store.load("s").messages
    whole_reads_fail(store, monkeypatch)
    real_pread = os.pread
    read: list[int] = []

    def counting(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting)
    assert store.load_messages("s", start=2990) == expected[2990:]
    assert store.load_messages("s", start=1000, stop=1010) == expected[1000:1010]
    assert store.load_messages("s", start=5000) == []
    assert store.get_session("s").message_count == 3002
    log_size = (root / f"{_name('s')}.jsonl").stat().st_size
    assert sum(read) < log_size / 10  # a window and the points around it, not the log


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage", "torn", "other-session", "older"])
def test_a_missing_stale_or_corrupt_offsets_file_never_changes_what_is_read(
    root: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileStore(root, fsync=False)
    store.append("other", talk(0, 300), expected_version=0)
    store.append("s", talk(0, 200), expected_version=0)
    older = (root / f"{_name('s')}.offsets").read_bytes()
    store.append("s", talk(200, 70), expected_version=1)
    store.rewind("s", to=230)
    store.append("s", talk(230, 90), expected_version=3)
    expected = store.load("s")
    path = root / f"{_name('s')}.offsets"
    if damage == "missing":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(os.urandom(200) + path.read_bytes()[200:])
    elif damage == "torn":  # the header kept, records cut short (a power loss: the sidecar is not fsync'd)
        path.write_bytes(path.read_bytes()[:60])
    elif damage == "other-session":
        path.write_bytes((root / f"{_name('other')}.offsets").read_bytes())
    else:  # the sidecar of an earlier state of the log, before a rewind renamed a new file over it
        path.write_bytes(older)
    for start, stop in [(0, None), (63, 65), (64, 200), (199, 260), (250, None), (319, None), (400, None)]:
        assert store.load_messages("s", start=start, stop=stop) == expected.messages[start:stop], (start, stop)
    assert store.get_session("s") == expected.info
    store.append("s", talk(320, 1), expected_version=4)  # the next writer rebuilds it
    expected = store.load("s")
    whole_reads_fail(store, monkeypatch)
    assert store.load_messages("s", start=100) == expected.messages[100:]


def test_a_crash_between_the_log_write_and_the_offsets_write(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonFileStore(root, fsync=False)
    store.append("s", talk(0, 100), expected_version=0)
    with monkeypatch.context() as patched:  # the line is committed, its offsets never written
        patched.setattr(JsonFileStore, "_offsets_appended", lambda *args: None)
        store.append("s", talk(100, 100), expected_version=1)
    expected = store.load("s").messages
    assert len(expected) == 200
    assert store.load_messages("s", start=150) == expected[150:]
    assert store.get_session("s").message_count == 200
    store.append("s", talk(200, 2), expected_version=2)
    expected = store.load("s").messages
    whole_reads_fail(store, monkeypatch)
    assert store.load_messages("s", start=150) == expected[150:]  # rebuilt: ranged again


def test_forks_read_their_window_through_the_shared_logs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonFileStore(root, fsync=False)
    store.append("p", talk(0, 500), expected_version=0)
    store.append("p", talk(500, 100), expected_version=1)
    store.fork("p", at=550, new_id="f")  # inside the second line: the fork holds messages 500-549 itself
    store.append("f", talk(550, 80), expected_version=1)
    store.fork("f", at=600, new_id="ff")  # a fork of a fork, past its fork point
    store.delete("p")
    store.rewind("f", to=520)
    store.rewind("ff", to=300)  # below what it reads of its bases: it reads less of them
    store.append("ff", talk(300, 70), expected_version=2)
    expected = {sid: store.load(sid).messages for sid in ("f", "ff")}
    whole_reads_fail(store, monkeypatch)
    for sid, messages in expected.items():
        for start in (0, 63, 64, 499, 500, 530, 590, len(messages)):
            assert store.load_messages(sid, start=start) == messages[start:], (sid, start)
        assert store.load_messages(sid, start=100, stop=140) == messages[100:140]
        assert store.get_session(sid).message_count == len(messages)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 150)),
        st.tuples(st.just("rewind"), st.integers(0, 400)),
        st.tuples(st.just("fork"), st.integers(0, 400)),
        st.tuples(st.just("summary"), st.integers(1, 400)),
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, ranges=st.lists(st.tuples(st.integers(0, 500), st.none() | st.integers(0, 500)), max_size=4))
def test_ranged_reads_equal_slices_of_a_load_after_any_history(
    tmp_path: Path, ops: list[tuple[str, int]], ranges: list[tuple[int, int | None]]
) -> None:
    from claude_history.stores.base import Summary

    store = JsonFileStore(tmp_path / f"h{len(list(tmp_path.iterdir()))}", fsync=False)
    sid, forks = "s", 0
    store.append(sid, talk(0, 2), expected_version=0)
    for op, arg in ops:
        info = store.get_session(sid)
        if op == "append":
            store.append(sid, talk(info.message_count, arg), expected_version=info.version)
        elif op == "rewind" and arg <= info.message_count:
            store.rewind(sid, to=arg)
        elif op == "fork" and arg <= info.message_count:
            forks += 1
            sid = store.fork(sid, at=arg, new_id=f"fork{forks}")
        elif op == "summary" and arg <= info.message_count:
            store.save_summary(sid, Summary(0, arg, "so far"))
    data = store.load(sid)
    with pytest.MonkeyPatch.context() as patched:  # the writers kept the offsets: no read falls back to a load
        whole_reads_fail(store, patched)
        patched.setattr(jsonfile, "_tail_state", None)  # nor is the log read backwards for its last line
        assert store.get_session(sid) == data.info
        for start, stop in [*ranges, (0, None), (max(0, len(data.messages) - 5), None)]:
            assert store.load_messages(sid, start=start, stop=stop) == data.messages[start:stop], (start, stop)
