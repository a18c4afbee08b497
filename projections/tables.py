"""How a read model is defined: per-case rows changed by a pure function of each case event.

A projection owns a few SQL tables whose rows all belong to one case (``case_id`` column). Its logic is
``apply(rows, event)``: given the case's current rows (table → list of row dicts) it changes them for one
event. Nothing else: no SQL, no clock. Live processing (``projections.store``) loads the rows of the cases
in a batch, applies the batch's events and writes the changed cases back; a rebuild applies the whole log
in memory and bulk-loads the result. Both run the same function, so a rebuild gives the same rows as live
processing by construction — and the tests check it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol
from uuid import UUID

from infra.messages import CaseEventMessage

Row = dict[str, Any]
CaseRows = dict[str, list[Row]]
"""One case's rows in a projection's tables: table name → rows."""


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    json: bool = False
    """Stored as jsonb; kept as Python lists/dicts in rows."""


@dataclass(frozen=True)
class Table:
    """A table of a projection. Every table has a ``case_id uuid`` column first."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self, suffix: str) -> list[str]:
        """Statements creating this table as ``name + suffix``. Index names are left to PostgreSQL so
        that a shadow table renamed into place never collides with the next rebuild's indexes."""
        name = self.name + suffix
        columns = ",\n    ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        indexes = self.indexes if self.primary_key[0] == "case_id" else (("case_id",), *self.indexes)
        return [
            f"CREATE TABLE {name} (\n    {columns},\n    PRIMARY KEY ({', '.join(self.primary_key)})\n)",
            *(f"CREATE INDEX ON {name} ({', '.join(cols)})" for cols in indexes),
        ]

    def to_sql_row(self, row: Row) -> tuple[Any, ...]:
        return tuple(
            json.dumps(row.get(c.name), ensure_ascii=False, sort_keys=True) if c.json else row.get(c.name)
            for c in self.columns
        )


class Projection(Protocol):
    """A read model: its tables, its views over them and its pure per-case logic."""

    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> Sequence[Table]: ...

    @property
    def views(self) -> Sequence[str]:
        """``CREATE OR REPLACE VIEW`` statements over the live tables (dashboards query these)."""

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        """Change ``rows`` (one case's rows, mutated in place) for ``event``."""


def replaying(projection: Projection) -> Projection:
    """The projection's replay stand-in when it offers one (``replaying()``: the same rows, some work
    deferred until ``settle``), else the projection itself."""
    make: Callable[[], Projection] | None = getattr(projection, "replaying", None)
    return make() if make is not None else projection


def settle(projection: Projection, states: Mapping[UUID, CaseState]) -> None:
    """Finish the deferred work of a replay stand-in (``replaying``) for the cases of ``states``, so that
    their rows are the rows ``apply`` event by event gives."""
    finish: Callable[[UUID, CaseRows], None] | None = getattr(projection, "settle", None)
    if finish is None:
        return
    for case_id, state in states.items():
        finish(case_id, state.rows)


class Outcome(Enum):
    """What ``CaseState.apply`` did with an event."""

    APPLIED = "applied"
    REPEAT = "repeat"
    """Its version was applied already (at-least-once delivery): skipped."""
    GAP = "gap"
    """An earlier version of the case has not arrived: the caller parks it until the gap is filled."""
    REJECTED = "rejected"
    """It contradicts the case (another case number, a second application, a broken hash chain):
    never applied; the caller dead-letters it with the reason."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""

    def __bool__(self) -> bool:
        """True when the event changed the rows."""
        return self.outcome is Outcome.APPLIED


APPLIED = Verdict(Outcome.APPLIED)
REPEAT = Verdict(Outcome.REPEAT)


@dataclass
class CaseState:
    """One case's rows in one projection, the last case version applied to them, and what identifies
    the case in its events (case number, the hash of the last applied event)."""

    version: int = 0
    rows: CaseRows = field(default_factory=dict)
    case_number: str | None = None
    last_hash: str | None = None

    def check(self, event: CaseEventMessage) -> Verdict:
        """Whether ``event`` is the next one of this case. Only exactly version + 1 is applied: a case's
        events are published in order without gaps, so anything else is a repeat, a gap, or forged."""
        if event.case_version <= self.version:
            return REPEAT
        if self.case_number is not None and event.case_number != self.case_number:
            return Verdict(
                Outcome.REJECTED,
                f"case number {event.case_number!r} disagrees with the case's {self.case_number!r}",
            )
        if event.type == "ApplicationSubmitted" and (self.version > 0 or any(self.rows.values())):
            return Verdict(
                Outcome.REJECTED,
                f"ApplicationSubmitted v{event.case_version} for case "
                f"{self.case_number or event.case_number} that already has rows (version {self.version})",
            )
        if event.case_version > self.version + 1:
            return Verdict(
                Outcome.GAP,
                f"gap: case {event.case_number} is at version {self.version}, got {event.type} "
                f"v{event.case_version}",
            )
        if self.last_hash is not None and event.previous_hash != self.last_hash:
            return Verdict(
                Outcome.REJECTED,
                f"{event.type} v{event.case_version} does not continue the case's hash chain "
                f"(previous_hash {event.previous_hash[:12]!r}, last applied {self.last_hash[:12]!r})",
            )
        return APPLIED

    def apply(self, projection: Projection, event: CaseEventMessage) -> Verdict:
        """Apply ``event`` if it is the case's next version (see ``check``); the verdict says what it did."""
        verdict = self.check(event)
        if verdict.outcome is Outcome.APPLIED:
            projection.apply(self.rows, event)
            self.advance(event)
        return verdict

    def advance(self, event: CaseEventMessage) -> None:
        """Record ``event`` as the last one applied to the rows (after ``check`` said APPLIED)."""
        self.version = event.case_version
        self.case_number = event.case_number
        self.last_hash = event.hash


def versions_table(projection: Projection) -> Table:
    """Each projection's record of the last case version it applied, swapped with its tables."""
    return Table(
        f"{projection.name}_versions",
        (
            Column("case_id", "uuid NOT NULL"),
            Column("version", "bigint NOT NULL"),
            Column("case_number", "text"),
            Column("last_hash", "text"),
        ),
        ("case_id",),
    )


def all_tables(projection: Projection) -> list[Table]:
    return [*projection.tables, versions_table(projection)]
