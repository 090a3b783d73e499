"""The import rules of docs/architecture.md: each part of the package imports only from the layers below it.

A violation is easy to write and hard to see in review (a store that reaches for a policy, the simulator that
borrows the library's token estimate and stops being an independent oracle), so the rules are checked here from
the source, without importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "claude_history"

FACTS = {"errors", "models", "usage", "connection"}
RULES = {"history", "tools", "pricing", "tokens", "images"}
CORE = {"turn", "turn_path", "turn_requests", "warm"}

# The parts of the package (a top-level module or a subpackage) each part may import from.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "models": set(),
    "usage": set(),
    "connection": set(),
    "images": {"models"},
    "history": {"errors"},
    "tools": {"errors"},
    "pricing": {"errors", "models", "usage"},
    "tokens": {"images", "models", "usage"},
    "stores": {"errors", "history"},
    "context": FACTS | RULES | {"stores.base"},
    "turn_requests": {"stores", "tools"},
    "turn": FACTS | RULES | {"stores", "context", "turn_requests"},
    "turn_path": FACTS | RULES | {"stores", "context", "turn", "turn_requests", "warm"},
    "warm": {"errors", "context", "turn"},
    "chat": FACTS | RULES | CORE | {"stores", "context"},
    "__init__": FACTS | RULES | CORE | {"stores", "context", "chat"},
    "server": FACTS | RULES | CORE | {"stores", "context", "chat", "__init__", "cli.markdown_export"},
    "cli": FACTS | RULES | CORE | {"stores", "context", "chat", "__init__", "server", "testing"},
    "testing": {"models", "images"},
}


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_module(parts: list[str]) -> bool:
    where = PACKAGE.joinpath(*parts)
    return where.with_suffix(".py").exists() or (where / "__init__.py").exists()


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, target)`` of every import of ``claude_history`` in a file, the target as parts below the package."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                targets = [[*base, *(node.module.split(".") if node.module else [])]]
                if not node.module:  # from .. import x: x is a module of the package, or a name in its __init__
                    targets = [[*base, a.name] if _is_module([*base, a.name]) else base for a in node.names]
            elif node.module and node.module.split(".")[0] == "claude_history":
                targets = [node.module.split(".")[1:]]
            else:
                continue
            found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
            found += [(node.lineno, n[1:]) for n in names if n[0] == "claude_history"]
    return found


def _part(parts: list[str]) -> str:
    return parts[0] if parts else "__init__"


def _allowed(source: str, target: list[str]) -> bool:
    if _part(target) == source:
        return True
    allowed = ALLOWED[source]
    if not target:  # the package's own __init__ (its public names, __version__)
        return "__init__" in allowed
    return any(".".join(target[: n]) in allowed for n in range(1, len(target) + 1))


def test_every_part_of_the_package_has_a_rule() -> None:
    parts = {_part(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(ALLOWED), f"add these to ALLOWED and to docs/architecture.md: {sorted(parts - set(ALLOWED))}"


def test_nothing_imports_upward() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _part(_module_name(path))
        for line, target in _imports(path):
            if not _allowed(source, target):
                where = path.relative_to(PACKAGE.parent)
                violations.append(f"{where}:{line} imports claude_history.{'.'.join(target) or '__init__'}")
    assert not violations, "imports against docs/architecture.md's layers:\n" + "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # The rule check itself: a store reaching for the planner is refused, its own helpers are not.
    assert not _allowed("stores", ["context", "policies"])
    assert _allowed("stores", ["stores", "_cas"])
    assert _allowed("context", ["stores", "base"])
    assert not _allowed("context", ["stores", "sqlite"])
    assert not _allowed("server", ["cli", "repl"])
    assert _allowed("server", ["cli", "markdown_export"])
