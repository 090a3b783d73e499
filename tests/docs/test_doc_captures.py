"""The screens the docs show are real: each ``<!-- doc-test: capture NAME -->`` block is, verbatim, the file
``docs/captures/NAME.txt`` that a terminal test (tests/cli/test_cli_tty.py) took of the running chat and checks
against the chat as it runs now. So a change to what the chat prints fails until the capture and the doc are
refreshed (``CLAUDE_HISTORY_WRITE_CAPTURES=1`` rewrites the files; then paste them into the doc)."""

from __future__ import annotations

from .conftest import PAGES, ROOT
from .doc_blocks import blocks

CAPTURES = ROOT / "docs" / "captures"


def test_every_embedded_capture_is_its_file_verbatim() -> None:
    shown = [b for page in PAGES for b in blocks(page) if b.capture]
    assert shown, "docs/cli.md shows the chat's screens"
    for block in shown:
        where = f"{block.path.relative_to(ROOT)}:{block.line}"
        file = CAPTURES / f"{block.capture}.txt"
        assert file.is_file(), f"{where} shows capture {block.capture!r}, but {file} does not exist"
        assert block.source == file.read_text(encoding="utf-8"), (
            f"{where} differs from {file.relative_to(ROOT)}: paste the file into the block"
        )


def test_every_capture_file_is_shown_somewhere() -> None:
    shown = {b.capture for page in PAGES for b in blocks(page) if b.capture}
    files = {f.stem for f in CAPTURES.glob("*.txt")}
    assert files <= shown, f"captures no page shows: {sorted(files - shown)}"
