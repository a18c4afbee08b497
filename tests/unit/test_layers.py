"""Imports point one way: entry points → consumers → command side / projections → adapters → domain.

A lower layer never imports a higher one, and the command side and the read side never import each
other, so the tree reads as the flow of data (README "Layout", docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MAY_IMPORT: dict[str, set[str]] = {
    "domain": set(),
    "infra": {"domain"},
    "app": {"infra", "domain"},
    "projections": {"infra", "domain"},
    "consumers": {"app", "projections", "infra", "domain"},
    "cli": {"api", "demo", "consumers", "app", "projections", "infra", "domain"},
    "demo": {"cli", "api", "consumers", "app", "projections", "infra", "domain"},
    "api": {"dashboard", "consumers", "app", "projections", "infra", "domain"},
    "dashboard": set(),
}
"""Each package (a floor of the building) and the packages below it that it may use."""


def _project_imports(path: Path) -> set[tuple[int, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return {(line, top) for line, top in found if top in MAY_IMPORT}


def layer_violations(root: Path) -> list[str]:
    violations = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, top in sorted(_project_imports(path)):
                if top != package and top not in allowed:
                    violations.append(f"{path.relative_to(root)}:{line} imports {top}")
    return violations


def test_no_layer_imports_a_higher_one() -> None:
    assert layer_violations(ROOT) == []


def test_the_check_catches_an_adapter_importing_an_entry_point(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "bad.py").write_text("from cli.main import app\nimport domain.case\n")

    assert layer_violations(tmp_path) == ["infra/bad.py:1 imports cli"]


@pytest.mark.parametrize(
    "package", ["domain", "infra", "app", "projections", "consumers", "cli", "demo", "api", "dashboard"]
)
def test_every_layer_exists(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
