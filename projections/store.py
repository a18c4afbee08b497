"""Read models in PostgreSQL: schema, batch application with positions, dead letters, shadow swaps.

``apply_batch`` is the exactly-once effect: in one transaction it loads the rows of the batch's cases,
applies each event whose case version is newer than the one applied, writes the changed cases back,
records each partition's next offset and any dead letters. A redelivered event is skipped by its version;
a crash before the commit leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog

from infra.messages import CaseEventMessage
from projections.tables import CaseState, Projection, Table, all_tables, versions_table

log = structlog.get_logger("yekuo.read_models")

SHADOW = "__shadow"

OPERATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    incarnation text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id bigserial PRIMARY KEY,
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    key text,
    reason text NOT NULL,
    original bytea NOT NULL,
    failed_at timestamptz NOT NULL,
    replayed_at timestamptz,
    replay_result text,
    UNIQUE (consumer_group, topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS notification_deliveries (
    notification_id uuid PRIMARY KEY,
    published_at timestamptz NOT NULL
);
"""
"""Operational state that is not derived from events and therefore never rebuilt: consumer positions,
dead letters, and which notifications were handed to the gateways (so a rebuild never re-sends)."""


@dataclass(frozen=True)
class Delivered:
    """An event as a consumer received it: where from, and the relay incarnation that published it."""

    message: CaseEventMessage
    topic: str
    partition: int
    offset: int
    incarnation: str


@dataclass(frozen=True)
class Rejected:
    """A message that could not be decoded or applied."""

    topic: str
    partition: int
    offset: int
    key: str | None
    original: bytes
    reason: str
    incarnation: str
    failed_at: datetime


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def create_schema(conn: psycopg.Connection[Any], projections: Iterable[Projection]) -> None:
    """Create what is missing: operational tables, each projection's tables and views.

    A column added to a table in a later release is added to an existing table as nullable, and logged:
    its rows get the value as their cases change; ``yekuo projections rebuild NAME`` fills all of them.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('yekuo.read-model-schema'))")
        conn.execute(OPERATIONS_SCHEMA)
        for projection in projections:
            for table in all_tables(projection):
                if not table_exists(conn, table.name):
                    for statement in table.ddl(""):
                        conn.execute(statement)
                else:
                    _add_new_columns(conn, projection, table)
            for view in projection.views:
                conn.execute(view)


def _add_new_columns(conn: psycopg.Connection[Any], projection: Projection, table: Table) -> None:
    present = {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s",
            (table.name,),
        )
    }
    for column in table.columns:
        if column.name not in present:
            sql_type = column.sql_type.replace("NOT NULL", "").strip()
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {sql_type}")
            log.warning(
                "read model gained a column; rebuild to fill it",
                table=table.name,
                column=column.name,
                rebuild=f"yekuo projections rebuild {projection.name}",
            )


def load_states(
    conn: psycopg.Connection[Any], projection: Projection, case_ids: Sequence[UUID], suffix: str = ""
) -> dict[UUID, CaseState]:
    """The current rows of ``case_ids`` (locked until the transaction ends)."""
    states = {case_id: CaseState() for case_id in case_ids}
    versions = versions_table(projection).name + suffix
    for case_id, version in conn.execute(
        f"SELECT case_id, version FROM {versions} WHERE case_id = ANY(%s) FOR UPDATE", (list(case_ids),)
    ):
        states[case_id].version = version
    for table in projection.tables:
        names = table.column_names
        cursor = conn.execute(
            f"SELECT {', '.join(names)} FROM {table.name}{suffix} WHERE case_id = ANY(%s)", (list(case_ids),)
        )
        for values in cursor:
            row = dict(zip(names, values, strict=True))
            states[row["case_id"]].rows.setdefault(table.name, []).append(row)
    return states


def write_states(
    conn: psycopg.Connection[Any],
    projection: Projection,
    states: dict[UUID, CaseState],
    suffix: str = "",
    *,
    replace: bool = True,
) -> None:
    """Write the rows of ``states``; ``replace`` first deletes what those cases had."""
    case_ids = list(states)
    if not case_ids:
        return
    with conn.cursor() as cursor:
        for table in projection.tables:
            name = table.name + suffix
            if replace:
                cursor.execute(f"DELETE FROM {name} WHERE case_id = ANY(%s)", (case_ids,))
            _copy(cursor, name, table, (row for s in states.values() for row in s.rows.get(table.name, ())))
        versions = versions_table(projection)
        if replace:
            cursor.execute(f"DELETE FROM {versions.name}{suffix} WHERE case_id = ANY(%s)", (case_ids,))
        _copy(
            cursor,
            versions.name + suffix,
            versions,
            ({"case_id": case_id, "version": s.version} for case_id, s in states.items()),
        )


def _copy(cursor: psycopg.Cursor[Any], name: str, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    with cursor.copy(f"COPY {name} ({', '.join(table.column_names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(table.to_sql_row(row))


def apply_events(
    conn: psycopg.Connection[Any], projections: Sequence[Projection], messages: Sequence[CaseEventMessage]
) -> int:
    """Apply ``messages`` to every projection inside the caller's transaction; returns events applied."""
    case_ids = list(dict.fromkeys(m.case_id for m in messages))
    applied = 0
    for projection in projections:
        states = load_states(conn, projection, case_ids)
        changed = {}
        for message in messages:
            state = states[message.case_id]
            if state.apply(projection, message):
                changed[message.case_id] = state
                applied += 1
        write_states(conn, projection, changed)
    return applied


def apply_batch(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    consumer_group: str,
    delivered: Sequence[Delivered],
    rejected: Sequence[Rejected] = (),
) -> int:
    """One transaction: the events' effects, the consumed positions, the dead letters."""
    with conn.transaction():
        applied = apply_events(conn, projections, [d.message for d in delivered])
        positions: dict[tuple[str, int], tuple[int, str]] = {}
        consumed: list[Delivered | Rejected] = [*delivered, *rejected]
        for item in consumed:
            key = (item.topic, item.partition)
            if key not in positions or positions[key][0] < item.offset + 1:
                positions[key] = (item.offset + 1, item.incarnation)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO projection_offsets (consumer_group, topic, partition, next_offset, incarnation) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) DO UPDATE "
                "SET next_offset = EXCLUDED.next_offset, incarnation = EXCLUDED.incarnation, "
                "updated_at = now()",
                [(consumer_group, t, p, o, i) for (t, p), (o, i) in positions.items()],
            )
            cursor.executemany(
                'INSERT INTO dead_letters (consumer_group, topic, partition, "offset", key, reason, '
                "original, failed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (consumer_group, r.topic, r.partition, r.offset, r.key, r.reason, r.original, r.failed_at)
                    for r in rejected
                ],
            )
    return applied


def replace_cases(
    conn: psycopg.Connection[Any], projection: Projection, histories: dict[UUID, list[CaseEventMessage]]
) -> None:
    """Recompute the rows of whole cases from their complete histories (used to replay dead letters)."""
    with conn.transaction():
        load_states(conn, projection, list(histories))  # lock the cases' version rows
        states = {}
        for case_id, history in histories.items():
            state = CaseState()
            for message in history:
                state.apply(projection, message)
            states[case_id] = state
        write_states(conn, projection, states)
