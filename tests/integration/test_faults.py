"""Faults that must not corrupt read models, on the real PostgreSQL through ``projections.store``.

Events reach ``apply_batch`` as a consumer would deliver them: in order, repeated, with gaps, or forged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from domain.case import Case
from infra.messages import CaseEventMessage, case_event_message
from infra.settings import CASE_EVENTS_TOPIC
from projections import registry
from projections.rebuild import rebuild
from projections.store import Delivered, apply_batch, create_schema
from projections.tables import all_tables
from tests.unit.case_builders import walk

GROUP = "yekuo-projections"


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        create_schema(connection, registry.select())
        yield connection


def messages_of(case: Case) -> list[CaseEventMessage]:
    return [
        case_event_message(event, case.case_number, position)
        for position, event in enumerate(case.collect_events(), start=1)
    ]


class Feed:
    """Delivers messages with increasing offsets on one partition."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, *messages: CaseEventMessage) -> list[Delivered]:
        delivered = []
        for message in messages:
            delivered.append(Delivered(message, CASE_EVENTS_TOPIC, 0, self.offset, "test"))
            self.offset += 1
        return delivered


def version(conn: psycopg.Connection[Any], case: Case, table: str = "progress_versions") -> int | None:
    row = conn.execute(f"SELECT version FROM {table} WHERE case_id = %s", (case.id,)).fetchone()  # noqa: S608
    return None if row is None else int(row[0])


def parked(conn: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    return conn.execute("SELECT projection, case_version FROM parked_events ORDER BY 1, 2").fetchall()


def dead_reasons(conn: psycopg.Connection[Any]) -> list[str]:
    return [r for (r,) in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]


def read_models(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table.name: sorted(conn.execute(f"SELECT * FROM {table.name}").fetchall(), key=repr)  # noqa: S608
        for projection in registry.select()
        for table in all_tables(projection)
    }


def test_an_event_after_a_gap_is_parked_and_applied_when_the_missing_version_arrives(
    conn: psycopg.Connection[Any],
) -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    feed = Feed()
    apply_batch(conn, registry.select(), GROUP, feed(*messages[:3]))

    apply_batch(conn, registry.select(), GROUP, feed(messages[5], messages[4]))
    assert version(conn, case) == 3
    assert parked(conn) == sorted((p.name, v) for p in registry.select() for v in (5, 6))

    apply_batch(conn, registry.select(), GROUP, feed(messages[3], *messages[6:]))
    assert version(conn, case) == len(messages)
    assert parked(conn) == [] and dead_reasons(conn) == []


def test_live_rows_after_a_filled_gap_equal_a_rebuild_from_the_log(conn: psycopg.Connection[Any]) -> None:
    case, _ = walk("LV_NON_RESIDENTIAL")
    messages = messages_of(case)
    feed = Feed()
    apply_batch(conn, registry.select(), GROUP, feed(*messages[:4], *messages[6:10]))
    apply_batch(conn, registry.select(), GROUP, feed(*messages[2:6], *messages[10:]))
    live = read_models(conn)

    rebuild(
        conn, registry.select(), lambda after, until: [(messages[after:until], until)], lambda: len(messages)
    )

    assert read_models(conn) == live
    assert version(conn, case, "sla_versions") == len(messages)


def test_a_gap_that_persists_is_dead_lettered_with_its_reason(conn: psycopg.Connection[Any]) -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    feed = Feed()
    apply_batch(conn, registry.select(), GROUP, feed(*messages[:2]))
    huge = messages[2].model_copy(update={"case_version": 10**9})
    apply_batch(conn, registry.select(), GROUP, feed(huge))
    assert len(parked(conn)) == len(registry.select())

    apply_batch(conn, registry.select(), GROUP, [], gap_limit=timedelta(0))

    assert parked(conn) == [] and version(conn, case) == 2
    [reason] = dead_reasons(conn)
    assert reason.startswith(f"cannot apply {messages[2].type} v1000000000: gap: case {case.case_number}")
    assert "is at version 2" in reason and "gap persisted" in reason
    apply_batch(conn, registry.select(), GROUP, feed(*messages[2:]))
    assert version(conn, case) == len(messages)


def test_forged_and_phantom_events_are_dead_lettered_and_leave_the_rows_alone(
    conn: psycopg.Connection[Any],
) -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    feed = Feed()
    apply_batch(conn, registry.select(), GROUP, feed(*messages[:4]))
    before = read_models(conn)
    cancellation = messages[4].model_copy(
        update={"case_number": "YK-FORGED", "type": "CaseCancelled", "payload": {"reason": "forged"}}
    )
    phantom = messages[0].model_copy(update={"case_version": 5, "previous_hash": messages[3].hash})

    apply_batch(conn, registry.select(), GROUP, feed(cancellation, phantom))

    assert read_models(conn) == before
    assert parked(conn) == []
    reasons = dead_reasons(conn)
    assert len(reasons) == 2
    assert "cannot apply CaseCancelled v5: case number 'YK-FORGED' disagrees" in reasons[0]
    assert "cannot apply ApplicationSubmitted v5: ApplicationSubmitted v5" in reasons[1]
    assert "already has rows" in reasons[1]
    apply_batch(conn, registry.select(), GROUP, feed(*messages[4:]))
    assert version(conn, case) == len(messages)
    live = read_models(conn)
    rebuild(
        conn, registry.select(), lambda after, until: [(messages[after:until], until)], lambda: len(messages)
    )
    assert read_models(conn) == live


def test_a_rebuild_discards_parked_events_its_rows_already_contain(conn: psycopg.Connection[Any]) -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    feed = Feed()
    apply_batch(conn, registry.select(), GROUP, feed(*messages[:3], messages[4]))
    assert {v for _, v in parked(conn)} == {5}

    rebuild(
        conn, registry.select(), lambda after, until: [(messages[after:until], until)], lambda: len(messages)
    )

    assert parked(conn) == [] and version(conn, case) == len(messages)
    apply_batch(conn, registry.select(), GROUP, feed(*messages))
    assert version(conn, case) == len(messages) and dead_reasons(conn) == []
