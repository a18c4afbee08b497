"""The external witness of each case's head (``case_heads``) and verification of cases against it.

The relay records, in the same transaction as its log position, the last version and hash it published
for each case (``record_heads``). The table lives beside the event table, not in it, and is only ever
moved forward; the same heads are on Kafka in ``yekuo.case-events.v1``. ``check_case`` and ``check_all``
recompute each case's chain from the store and compare its head with the witness (``domain.witness``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from app.application import CaseApplication, CaseNotFoundError
from domain.commands import case_id_for
from domain.hashchain import verify_chain
from domain.witness import Head, IntegrityVerdict, judge
from infra.messages import CASE_EVENT_TOPIC_PREFIX, CaseEventMessage

CASE_HEADS_SCHEMA = """
CREATE TABLE IF NOT EXISTS case_heads (
    case_id uuid PRIMARY KEY,
    case_number text NOT NULL,
    version bigint NOT NULL,
    event_hash text NOT NULL,
    position bigint NOT NULL,
    witnessed_at timestamptz NOT NULL DEFAULT now()
);
"""


def record_heads(conn: psycopg.Connection[Any], messages: Iterable[CaseEventMessage]) -> None:
    """Move each case's witnessed head forward to the newest of ``messages`` (never backwards)."""
    heads: dict[UUID, CaseEventMessage] = {}
    for message in messages:
        if message.case_id not in heads or message.case_version > heads[message.case_id].case_version:
            heads[message.case_id] = message
    if not heads:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO case_heads (case_id, case_number, version, event_hash, position) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (case_id) DO UPDATE SET "
            "version = EXCLUDED.version, event_hash = EXCLUDED.event_hash, position = EXCLUDED.position, "
            "witnessed_at = now() WHERE case_heads.version < EXCLUDED.version",
            [(m.case_id, m.case_number, m.case_version, m.hash, m.position) for m in heads.values()],
        )


@dataclass(frozen=True)
class CaseIntegrity:
    """One case verified: its number, what the store holds, what the witness saw, and the verdict."""

    case_id: UUID
    case_number: str
    stored: Head | None
    witness: Head | None
    verdict: IntegrityVerdict


def check_case(app: CaseApplication, case_number: str) -> CaseIntegrity:
    """Verify one case's chain and head; ``CaseNotFoundError`` when neither store nor witness knows it."""
    case_id = case_id_for(case_number)
    witnessed = _witnessed(app, case_id)
    if not app.recorder.select_events(case_id, limit=1) and case_id not in witnessed:
        raise CaseNotFoundError(f"no case {case_number}")
    return _check(app, case_id, case_number, witnessed.get(case_id, (case_number, None))[1])


def check_all(app: CaseApplication) -> list[CaseIntegrity]:
    """Verify every case the store or the witness knows of, ordered by case number."""
    witnessed = _witnessed(app)
    numbers = {case_id: number for case_id, (number, _) in witnessed.items()}
    recorder = app.recorder
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        table = recorder.events_table_name
        cursor.execute(
            f"SELECT originator_id, state FROM {table} "  # noqa: S608 — our table name
            "WHERE originator_version = 1 AND topic LIKE %s",
            (f"{CASE_EVENT_TOPIC_PREFIX}%",),
        )
        for row in cursor.fetchall():
            numbers[row["originator_id"]] = app.mapper.transcoder.decode(row["state"])["case_number"]
    checked = [
        _check(app, case_id, number, witnessed.get(case_id, (number, None))[1])
        for case_id, number in numbers.items()
    ]
    return sorted(checked, key=lambda item: item.case_number)


def _check(app: CaseApplication, case_id: UUID, case_number: str, witness: Head | None) -> CaseIntegrity:
    stored = app.recorder.select_events(case_id)
    links = [app._chain_link(record.topic, record.originator_version, record.state) for record in stored]
    chain = verify_chain(case_id, links) if links else None
    head = Head(links[-1].version, str(links[-1].fields.get("event_hash"))) if links else None
    at_witness = None
    if witness is not None:
        at_witness = next(
            (str(link.fields.get("event_hash")) for link in links if link.version == witness.version), None
        )
    return CaseIntegrity(case_id, case_number, head, witness, judge(chain, head, witness, at_witness))


def _witnessed(app: CaseApplication, case_id: UUID | None = None) -> dict[UUID, tuple[str, Head]]:
    """The witness's heads (of one case, or all); empty when no relay has run yet."""
    with app.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass('case_heads') IS NOT NULL AS present")
        row = cursor.fetchone()
        if not row or not row["present"]:
            return {}
        if case_id is None:
            cursor.execute("SELECT case_id, case_number, version, event_hash FROM case_heads")
        else:
            cursor.execute(
                "SELECT case_id, case_number, version, event_hash FROM case_heads WHERE case_id = %s",
                (case_id,),
            )
        return {
            r["case_id"]: (r["case_number"], Head(int(r["version"]), r["event_hash"]))
            for r in cursor.fetchall()
        }
