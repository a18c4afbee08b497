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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass
class CaseState:
    """One case's rows in one projection, and the last case version applied to them."""

    version: int = 0
    rows: CaseRows = field(default_factory=dict)

    def apply(self, projection: Projection, event: CaseEventMessage) -> bool:
        """Apply ``event`` unless this version was applied already; True when it changed something."""
        if event.case_version <= self.version:
            return False
        projection.apply(self.rows, event)
        self.version = event.case_version
        return True


def versions_table(projection: Projection) -> Table:
    """Each projection's record of the last case version it applied, swapped with its tables."""
    return Table(
        f"{projection.name}_versions",
        (Column("case_id", "uuid NOT NULL"), Column("version", "bigint NOT NULL")),
        ("case_id",),
    )


def all_tables(projection: Projection) -> list[Table]:
    return [*projection.tables, versions_table(projection)]
