"""The tooling in pyproject.toml holds on the whole tree (STYLE.md §10): ruff's lint rules and format, and
mypy strict on every backend package but the benchmarks (``bench/``; the tests are not type-checked).

They run here so that the README test command (and CI) enforce them, not only an editor.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "--no-cache", "."],
        ["ruff", "format", "--check", "--no-cache", "."],
        ["mypy", "domain", "projections", "api", "app", "cli", "consumers", "infra", "demo"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_the_tree_passes(command: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
