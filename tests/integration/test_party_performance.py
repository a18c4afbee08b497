"""The party_performance read model on a real PostgreSQL: live processing equals a rebuild; grades."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from app.parties import PartyRegistry, RegisterParty
from demo.samples import sample_walk
from domain.commands import Command, FileComplaint, PartyCommand
from domain.vocabulary import Actor
from infra.party_grading import grading_rules
from infra.settings import Settings
from projections.party_performance import PartyPerformanceProjection, read_party_records
from projections.rebuild import rebuild
from projections.store import apply_events, create_schema
from projections.tables import all_tables

ADMIN = Actor("adm-1", "名录管理员", "MARKETING")
START = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)
PROJECTION = PartyPerformanceProjection()


@pytest.fixture
def app(fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(Settings(), fresh_database_url)
    yield application
    application.close()


def _register(app: CaseApplication) -> None:
    registry = PartyRegistry(app)
    for party_id, kind, level in (("DI-1", "DESIGN_INSTITUTE", "GRADE_A"), ("CT-1", "CONTRACTOR", "CLASS_3")):
        outcome = registry.execute(
            RegisterParty(
                command_id=f"reg-{party_id}",
                party_id=party_id,
                actor=ADMIN,
                occurred_at=START - timedelta(days=30),
                kind=kind,
                name=f"{kind} {party_id}",
                level=level,
                expires_on=date(2030, 1, 1),
            )
        )
        assert outcome.accepted, outcome


def _named(commands: list[Command]) -> list[Command]:
    return [
        dataclasses.replace(c, party_id="DI-1" if c.command_type == "SubmitDesign" else "CT-1")
        if isinstance(c, PartyCommand)
        else c
        for c in commands
    ]


def _walk(app: CaseApplication, category: str, number: str, *, complaint: bool = False) -> None:
    commands = _named(sample_walk(category, number, START))
    if complaint:
        at = next(i for i, c in enumerate(commands) if c.command_type == "ReportCompletion") + 1
        commands.insert(
            at,
            FileComplaint(
                command_id=f"{number}-complaint",
                case_number=number,
                actor=commands[at - 1].actor,
                occurred_at=commands[at - 1].occurred_at + timedelta(minutes=5),
                channel="CALL_CENTRE_95598",
                complaint_id=f"TS-{number}",
                summary="施工噪声扰民",
            ),
        )
    for command in commands:
        outcome = app.execute(command)
        assert outcome.accepted, (command.command_type, outcome.rule, outcome.message)


def _rows(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table.name: sorted(conn.execute(f"SELECT * FROM {table.name}").fetchall(), key=repr)  # noqa: S608
        for table in all_tables(PROJECTION)
    }


def test_live_processing_in_small_batches_gives_the_rows_of_a_rebuild_and_grades_the_parties(
    app: CaseApplication, fresh_database_url: str
) -> None:
    _register(app)
    _walk(app, "HV_DUAL", "YK-PP-1")
    _walk(app, "LV_NON_RESIDENTIAL", "YK-PP-2", complaint=True)
    _walk(app, "HV_SINGLE", "YK-PP-3")
    log = CaseEventLog(app)

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        create_schema(conn, [PROJECTION])
        position = 0
        while position < log.head():
            messages, position = log.read(position, 7)
            with conn.transaction():
                apply_events(conn, [PROJECTION], messages)
        messages, _ = log.read(0, 20)
        with conn.transaction():
            assert apply_events(conn, [PROJECTION], messages) == 0  # redelivered: skipped by version
        live = _rows(conn)
        rebuild(conn, [PROJECTION], log.read_all, log.head)
        rebuilt = _rows(conn)
        records = {r.party_id: r for r in read_party_records(conn, grading_rules())}

    assert live == rebuilt
    assert len(live["party_steps"]) == 7
    contractor, designer = records["CT-1"], records["DI-1"]
    assert (contractor.steps, contractor.reworks, contractor.complaints) == (5, 1, 1)
    assert contractor.first_pass_rate == 0.75
    assert (designer.steps, designer.grade) == (2, "—")  # fewer steps than the minimum: not graded yet
    assert contractor.on_time_rate == 1.0
    assert contractor.grade == "D"  # one complaint in three cases: above C's 0.30 complaints per case
