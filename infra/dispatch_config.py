"""Dispatch configuration (派工配置): per department, whether handlers are assigned automatically and who.

Data, not code (``infra/data/dispatch.json``, or ``YEKUO_DISPATCH_FILE``): switching a department's
automatic assignment on or off, or changing its handlers, is an edit of the file; ``yekuo auto-assign``
reads it again at every tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.vocabulary import Actor, Department

DEFAULT_FILE = Path(__file__).resolve().parent / "data" / "dispatch.json"


class DispatchConfigError(ValueError):
    """Raised when the dispatch file is unreadable, names an unknown department or lists a bad handler."""


@dataclass(frozen=True)
class DepartmentDispatch:
    """One department: whether its stages are assigned automatically, and among which handlers."""

    department: Department
    auto_assign: bool
    handlers: tuple[Actor, ...]


@dataclass(frozen=True)
class DispatchConfig:
    version: str
    departments: dict[str, DepartmentDispatch]

    def auto_assigned(self) -> list[DepartmentDispatch]:
        """The departments whose stages are assigned automatically, by department code."""
        return [d for _, d in sorted(self.departments.items()) if d.auto_assign]


def load_dispatch_config(path: Path | None = None) -> DispatchConfig:
    """The dispatch file at ``path`` (default: the shipped one), checked against the domain's vocabulary."""
    source = path or DEFAULT_FILE
    try:
        return _parse(json.loads(source.read_text()))
    except DispatchConfigError as error:
        raise DispatchConfigError(f"{source}: {error}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DispatchConfigError(f"{source}: {type(error).__name__}: {error}") from None


def _parse(raw: dict[str, Any]) -> DispatchConfig:
    departments = {}
    for code, entry in raw["departments"].items():
        if code not in Department.__members__:
            raise DispatchConfigError(f"{code!r} is not a department of the utility")
        if not isinstance(entry["auto_assign"], bool):
            raise DispatchConfigError(f"{code}: auto_assign must be true or false")
        handlers = tuple(Actor(h["person_id"].strip(), h["name"].strip(), code) for h in entry["handlers"])
        ids = [h.person_id for h in handlers]
        if len(set(ids)) != len(ids):
            raise DispatchConfigError(f"{code}: a handler is listed twice")
        if entry["auto_assign"] and not handlers:
            raise DispatchConfigError(f"{code}: auto_assign is on but no handler is listed")
        departments[code] = DepartmentDispatch(Department(code), entry["auto_assign"], handlers)
    return DispatchConfig(str(raw["version"]), departments)
