"""Read models in PostgreSQL: schema, batch application with positions, dead letters, shadow swaps.

``apply_batch`` is the exactly-once effect: in one transaction it loads the rows of the batch's cases,
applies each event that is its case's next version, writes the changed cases back, records each
partition's next offset and any dead letters. A redelivered event is skipped by its version; a crash
before the commit leaves nothing behind.

Only exactly the next version is applied (``CaseState.check``). An event after a gap is parked in
``parked_events`` and applied as soon as the versions before it arrive (a republish in flight); a gap that
outlasts ``GAP_LIMIT`` is dead-lettered, so a forged version 10^9 cannot wait forever unseen. An event that
contradicts its case (another case number, a second ApplicationSubmitted, a broken hash chain) is
dead-lettered at once. A rebuild reads the gap-free log, so it applies the same events as live processing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import psycopg
import structlog

from infra.messages import CaseEventMessage
from projections.tables import (
    CaseState,
    Outcome,
    Projection,
    Table,
    all_tables,
    replaying,
    settle,
    versions_table,
)

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
CREATE TABLE IF NOT EXISTS parked_events (
    projection text NOT NULL,
    case_id uuid NOT NULL,
    case_version bigint NOT NULL,
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    incarnation text NOT NULL,
    reason text NOT NULL,
    message bytea NOT NULL,
    parked_at timestamptz NOT NULL,
    PRIMARY KEY (projection, case_id, case_version)
);
CREATE INDEX IF NOT EXISTS parked_events_parked_at ON parked_events (consumer_group, parked_at);
CREATE TABLE IF NOT EXISTS notification_deliveries (
    notification_id uuid PRIMARY KEY,
    published_at timestamptz NOT NULL
);
"""
"""Operational state that is not derived from events and therefore never rebuilt: consumer positions,
dead letters, events parked behind a gap in their case's versions, and which notifications were handed
to the gateways (so a rebuild never re-sends)."""

GAP_LIMIT = timedelta(minutes=10)
"""How long an event may wait in ``parked_events`` for the versions before it. A gap is normally a
republish in flight (the relay lost a send and publishes again); one that outlasts this is dead-lettered
with its reason so that it is visible and ``yekuo deadletters replay`` can recompute the case."""


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
    for case_id, version, case_number, last_hash in conn.execute(
        f"SELECT case_id, version, case_number, last_hash FROM {versions} WHERE case_id = ANY(%s) FOR UPDATE",
        (list(case_ids),),
    ):
        state = states[case_id]
        state.version, state.case_number, state.last_hash = version, case_number, last_hash
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
            (
                {
                    "case_id": case_id,
                    "version": s.version,
                    "case_number": s.case_number,
                    "last_hash": s.last_hash,
                }
                for case_id, s in states.items()
            ),
        )


_JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _json_text(value: Any) -> str:
    """``Table.to_sql_row``'s JSON for a jsonb column (same value once PostgreSQL parsed it), by orjson."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def _copy(cursor: psycopg.Cursor[Any], name: str, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    columns = [(c.name, c.json) for c in table.columns]
    with cursor.copy(f"COPY {name} ({', '.join(table.column_names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_json_text(row.get(c)) if as_json else row.get(c) for c, as_json in columns])


@dataclass
class _Parked:
    """An event waiting for the versions before it; ``parked_at`` is None until it is stored."""

    item: Delivered
    reason: str
    parked_at: datetime | None = None


def _rejection(item: Delivered, reason: str, failed_at: datetime) -> Rejected:
    message = item.message
    return Rejected(
        item.topic,
        item.partition,
        item.offset,
        str(message.case_id),
        message.to_bytes(),
        f"cannot apply {message.type} v{message.case_version}: {reason}",
        item.incarnation,
        failed_at,
    )


def _load_parked(
    conn: psycopg.Connection[Any], projection: Projection, case_ids: Sequence[UUID]
) -> dict[UUID, dict[int, _Parked]]:
    parked: dict[UUID, dict[int, _Parked]] = {}
    for row in conn.execute(
        'SELECT case_id, case_version, topic, partition, "offset", incarnation, reason, message, parked_at '
        "FROM parked_events WHERE projection = %s AND case_id = ANY(%s) FOR UPDATE",
        (projection.name, list(case_ids)),
    ):
        case_id, version, topic, partition, offset, incarnation, reason, message, parked_at = row
        item = Delivered(CaseEventMessage.from_bytes(bytes(message)), topic, partition, offset, incarnation)
        parked.setdefault(case_id, {})[version] = _Parked(item, reason, parked_at)
    return parked


def apply_delivered(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    consumer_group: str,
    delivered: Sequence[Delivered],
) -> tuple[int, list[Rejected]]:
    """Apply ``delivered`` to every projection inside the caller's transaction, each event only as its
    case's next version: repeats are skipped, an event after a gap is parked (``parked_events``) and
    applied as soon as the missing versions arrive, an event contradicting its case is returned as a
    dead letter. Each projection applies the batch through its replay stand-in (``replaying``) and settles
    each changed case once before writing it (an SLA clock is evaluated once per batch, not per event).
    Returns (events applied, dead letters)."""
    case_ids = list(dict.fromkeys(d.message.case_id for d in delivered))
    applied = 0
    dead: dict[tuple[str, int, int], Rejected] = {}
    failed_at = _now(conn)
    for projection in projections:
        replay = replaying(projection)  # the batch's events applied, then each changed case settled once
        states = load_states(conn, projection, case_ids)
        parked = _load_parked(conn, projection, case_ids)
        had_parked = set(parked)
        changed: dict[UUID, CaseState] = {}

        def take(item: Delivered, state: CaseState, pending: dict[int, _Parked]) -> None:
            nonlocal applied
            verdict = state.apply(replay, item.message)  # noqa: B023 - used within the iteration
            if verdict.outcome is Outcome.APPLIED:
                changed[item.message.case_id] = state  # noqa: B023
                applied += 1
            elif verdict.outcome is Outcome.GAP:
                pending.setdefault(item.message.case_version, _Parked(item, verdict.reason))
            elif verdict.outcome is Outcome.REJECTED:
                dead.setdefault(
                    (item.topic, item.partition, item.offset), _rejection(item, verdict.reason, failed_at)
                )

        for item in delivered:
            case_id = item.message.case_id
            state = states[case_id]
            pending = parked.setdefault(case_id, {})
            take(item, state, pending)
            while pending:  # the event may have filled a gap: apply what waited for it, in order
                version = min(pending)
                if version > state.version + 1:
                    break
                waiting = pending.pop(version)
                take(waiting.item, state, pending)
        settle(replay, changed)
        write_states(conn, projection, changed)
        _write_parked(
            conn, projection, consumer_group, {c: p for c, p in parked.items() if p or c in had_parked}
        )
    return applied, list(dead.values())


def apply_events(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    messages: Sequence[CaseEventMessage],
    consumer_group: str = "event-store",
) -> int:
    """Apply events read straight from the event store (not from Kafka) inside the caller's transaction,
    with the same next-version rule as ``apply_delivered``; returns events applied. The store's own log
    cannot contradict itself, so an event it rejects is an error, not a dead letter."""
    delivered = [Delivered(m, "event-store", 0, index, "") for index, m in enumerate(messages)]
    applied, dead = apply_delivered(conn, projections, consumer_group, delivered)
    if dead:
        raise ValueError(f"events from the store contradict their cases: {[d.reason for d in dead]}")
    return applied


def _write_parked(
    conn: psycopg.Connection[Any],
    projection: Projection,
    consumer_group: str,
    parked: dict[UUID, dict[int, _Parked]],
) -> None:
    if not parked:
        return
    with conn.cursor() as cursor:
        cursor.execute(
            "DELETE FROM parked_events WHERE projection = %s AND case_id = ANY(%s)",
            (projection.name, list(parked)),
        )
        cursor.executemany(
            "INSERT INTO parked_events (projection, case_id, case_version, consumer_group, topic, partition, "
            '"offset", incarnation, reason, message, parked_at) '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, now()))",
            [
                (
                    projection.name,
                    case_id,
                    version,
                    consumer_group,
                    p.item.topic,
                    p.item.partition,
                    p.item.offset,
                    p.item.incarnation,
                    p.reason,
                    p.item.message.to_bytes(),
                    p.parked_at,
                )
                for case_id, pending in parked.items()
                for version, p in pending.items()
            ],
        )


def expire_parked(
    conn: psycopg.Connection[Any], consumer_group: str, limit: timedelta = GAP_LIMIT
) -> list[Rejected]:
    """Dead letters for the events of ``consumer_group`` that have waited longer than ``limit`` for the
    versions before them (removed from ``parked_events``); call inside the caller's transaction."""
    rows = conn.execute(
        "DELETE FROM parked_events WHERE consumer_group = %s AND parked_at < now() - %s RETURNING topic, "
        'partition, "offset", case_id, message, reason, incarnation, parked_at',
        (consumer_group, limit),
    ).fetchall()
    failed_at = _now(conn)
    dead: dict[tuple[str, int, int], Rejected] = {}
    for topic, partition, offset, case_id, message, reason, incarnation, parked_at in rows:
        event = CaseEventMessage.from_bytes(bytes(message))
        dead.setdefault(
            (topic, partition, offset),
            Rejected(
                topic,
                partition,
                offset,
                str(case_id),
                bytes(message),
                f"cannot apply {event.type} v{event.case_version}: {reason}; parked since "
                f"{parked_at.isoformat()}, the gap persisted over {limit}",
                incarnation,
                failed_at,
            ),
        )
    return list(dead.values())


def _now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None  # noqa: S101 - SELECT now() always returns a row
    return row[0]  # type: ignore[no-any-return]


def batch_positions(
    consumed: Iterable[Delivered | Rejected], passed: Mapping[tuple[str, int], tuple[int, str]] | None = None
) -> dict[tuple[str, int], tuple[int, str]]:
    """Per partition, the position after the furthest of ``consumed`` and ``passed``."""
    positions = dict(passed or {})
    for item in consumed:
        key = (item.topic, item.partition)
        if key not in positions or positions[key][0] < item.offset + 1:
            positions[key] = (item.offset + 1, item.incarnation)
    return positions


def apply_batch(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    consumer_group: str,
    delivered: Sequence[Delivered],
    rejected: Sequence[Rejected] = (),
    *,
    gap_limit: timedelta = GAP_LIMIT,
    passed: Mapping[tuple[str, int], tuple[int, str]] | None = None,
) -> int:
    """One transaction: the events' effects, the consumed positions (and positions ``passed`` without
    applying anything), the dead letters (``rejected``, events contradicting their case, and parked
    events whose gap outlasted ``gap_limit``)."""
    with conn.transaction():
        applied, inconsistent = apply_delivered(conn, projections, consumer_group, delivered)
        expired = expire_parked(conn, consumer_group, gap_limit)
        for dead in (*inconsistent, *expired):
            log.warning(
                "dead letter",
                topic=dead.topic,
                partition=dead.partition,
                offset=dead.offset,
                case_id=dead.key,
                reason=dead.reason,
            )
        positions = batch_positions([*delivered, *rejected], passed)
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
                    for r in (*rejected, *inconsistent, *expired)
                ],
            )
    return applied


def discard_parked_behind(conn: psycopg.Connection[Any], projection: Projection, suffix: str = "") -> None:
    """Forget parked events of ``projection`` that its rows already contain (after a rebuild or replay)."""
    versions = versions_table(projection).name + suffix
    conn.execute(
        f"DELETE FROM parked_events p USING {versions} v WHERE p.projection = %s AND p.case_id = v.case_id "
        "AND p.case_version <= v.version",
        (projection.name,),
    )


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
        discard_parked_behind(conn, projection)
