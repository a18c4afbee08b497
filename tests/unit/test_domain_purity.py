"""domain/ is pure: standard library and eventsourcing.domain only, and no wall clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_THIRD_PARTY = ("eventsourcing.domain",)
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
}


def _modules() -> list[Path]:
    return sorted(DOMAIN.rglob("*.py"))


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_domain_imports_only_the_standard_library_and_eventsourcing_domain() -> None:
    offenders = {}
    for path in _modules():
        for name in _imported(ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "domain" or name in ALLOWED_THIRD_PARTY:
                continue
            offenders.setdefault(path.name, []).append(name)

    assert offenders == {}
    assert len(_modules()) >= 7


def test_domain_never_reads_the_clock() -> None:
    calls = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            is_clock = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in CLOCK_CALLS
            )
            if is_clock:
                calls.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")

    assert calls == []
