"""Fenced code blocks of the docs, and a runner for their Python blocks (``python doc_blocks.py FILE``).

A doc page reads top to bottom, so its Python blocks run in order in one namespace, as a reader pasting them into
one session would. HTML comments just before a block steer the run; readers never see them:

- ``<!-- doc-test: skip: REASON -->``: a deliberately partial block (a signature, a sketch); it is not run.
- ``<!-- doc-test: file NAME -->``: the block is a file of the reader's own (``conftest.py``, a test module); it
  is written to the working directory instead of run (the test then runs pytest there).
- ``<!-- doc-test: setup`` ... ``-->``: hidden code run first, for names the page assumes (the reader's own
  ``MyBot``, ``current_user``); it prepends to a ``file`` block.
- ``<!-- doc-test: capture NAME -->``: the block is a real screen, ``docs/captures/NAME.txt``, which a terminal
  test writes; tests/docs/test_doc_captures.py checks the block is that file verbatim.

The runner prints ``ran N, wrote M`` on success; on a failure it names the page's line and exits 1.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")  # a block inside a list item is indented
_DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(skip|file|setup|capture)\b:?\s*(.*?)\s*(-->)?\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    source: str
    skip: str | None = None  # the reason, when the block is deliberately partial
    file: str | None = None
    setup: str = ""
    capture: str | None = None  # the name of the screen capture the block shows


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        if directive:
            kind, rest, closed = directive.groups()
            if kind == "setup" and not closed:
                end = i + 1
                while end < len(lines) and lines[end].strip() != "-->":
                    end += 1
                setup = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
                pending["setup"] = pending.get("setup", "") + setup
                i = end + 1
                continue
            pending[kind] = rest or kind
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].lstrip().startswith("```"):
                end += 1
            found.append(
                Block(
                    path,
                    i + 1,
                    fence.group(2),
                    textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n",
                    skip=pending.get("skip"),
                    file=pending.get("file"),
                    setup=pending.get("setup", ""),
                    capture=pending.get("capture"),
                )
            )
            pending = {}
            i = end + 1
            continue
        if line.strip():
            pending = {k: v for k, v in pending.items() if k == "setup"}  # a directive binds to the next block
        i += 1
    return found


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language == "python"]


def _run(source: str, namespace: dict[str, object], name: str) -> None:
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(code, namespace)  # exec, but a top-level await makes it a coroutine to drive
    if inspect.iscoroutine(result):
        asyncio.run(result)


def run_page(path: Path, substitutions: dict[str, str]) -> tuple[int, int]:
    namespace: dict[str, object] = {"__name__": "__main__"}
    ran = wrote = 0
    for block in python_blocks(path):
        if block.skip:
            continue
        source = block.source
        for placeholder, real in substitutions.items():
            source = source.replace(placeholder, real)
        if block.file:
            Path(block.file).write_text(block.setup + source, encoding="utf-8")
            wrote += 1
            continue
        where = f"{path.name}:{block.line}"
        try:
            if block.setup:
                _run(block.setup, namespace, f"{where} (hidden setup)")
            _run(source, namespace, where)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the Python block at {where}", file=sys.stderr)
            raise SystemExit(1) from None
        ran += 1
    return ran, wrote


if __name__ == "__main__":
    pairs = sys.argv[2:]
    subs = dict(zip(pairs[::2], pairs[1::2], strict=True))
    ran, wrote = run_page(Path(sys.argv[1]), subs)
    print(f"\nran {ran}, wrote {wrote}")
