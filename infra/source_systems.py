"""Integrating systems (外部接入系统) and what each may send: one table for every door they use.

Intake (``yekuo.intake.v1``) and the HTTP API's integrator role both authorise a source system by this
table: the channel its commands are recorded under and the command types it may send. The table is data
(``infra/data/source_systems.json``, or ``YEKUO_SOURCE_SYSTEMS_FILE``), so adding a system is a change of
configuration, not a release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from domain.commands import COMMAND_TYPES
from domain.vocabulary import Channel

DEFAULT_FILE = Path(__file__).resolve().parent / "data" / "source_systems.json"


class SourceSystemConfigError(ValueError):
    """Raised when the source-system table names an unknown channel or command type."""


@dataclass(frozen=True)
class SourceSystem:
    """One integrating system: its name, label, the channel it records under, what it may send."""

    name: str
    label: str
    channel: Channel
    command_types: frozenset[str]

    def may_send(self, command_type: str) -> bool:
        return command_type in self.command_types


@dataclass(frozen=True)
class SourceSystems:
    version: str
    systems: dict[str, SourceSystem]

    def get(self, name: str) -> SourceSystem | None:
        return self.systems.get(name)


def load_source_systems(path: Path | None = None) -> SourceSystems:
    """The table at ``path`` (default: the shipped one), validated against the domain's vocabulary."""
    raw = json.loads((path or DEFAULT_FILE).read_text())
    systems = {}
    for name, entry in raw["source_systems"].items():
        if entry["channel"] not in Channel.__members__:
            raise SourceSystemConfigError(f"source system {name}: unknown channel {entry['channel']!r}")
        unknown = sorted(set(entry["command_types"]) - set(COMMAND_TYPES))
        if unknown:
            raise SourceSystemConfigError(f"source system {name}: unknown command types {unknown}")
        systems[name] = SourceSystem(
            name=name,
            label=entry["label"],
            channel=Channel(entry["channel"]),
            command_types=frozenset(entry["command_types"]),
        )
    return SourceSystems(version=str(raw["version"]), systems=systems)
