"""The declared dependency range is the tested one: constraints/lowest.txt pins exactly the lower bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {(r := Requirement(line)).name.lower().replace("_", "-"): r for line in project["dependencies"]}


def _pinned() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = Version(version.strip())
    return pins


def test_every_core_dependency_is_pinned_at_its_lower_bound() -> None:
    declared, pinned = _declared(), _pinned()
    assert set(pinned) == set(declared), "constraints/lowest.txt must pin every core dependency, and only those"
    for name, requirement in declared.items():
        lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lower == [pinned[name]], f"{name}: pyproject says {requirement.specifier}, lowest.txt {pinned[name]}"


def test_the_sdk_has_an_upper_bound_below_its_next_major() -> None:
    spec = _declared()["anthropic"].specifier
    upper = [Version(s.version) for s in spec if s.operator == "<"]
    lower = [Version(s.version) for s in spec if s.operator == ">="]
    assert upper and lower and upper[0] == Version(f"{lower[0].major + 1}")
