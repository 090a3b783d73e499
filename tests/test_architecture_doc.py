"""docs/architecture.md names every module of the package, so a newcomer finds the file for any change there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "claude_history"


def test_every_module_is_on_the_architecture_page() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"[\w]+\.py", page))
    missing = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" and p.name not in named
    )
    assert not missing, f"docs/architecture.md does not name these modules (add a line for each): {missing}"
