"""Complaints on a real PostgreSQL: a complaint's clock warns and breaches and its department hears of
it; the quality KPIs of a small known history; a rebuild gives the rows of live processing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from cli.case import build_command
from consumers.sla_clock import SlaClock
from demo.samples import sample_walk
from domain.commands import (
    AcceptComplaintResolution,
    AssignComplaint,
    Command,
    LodgeComplaint,
    RecordFollowUp,
    RejectComplaintResolution,
    ResolveComplaint,
)
from domain.vocabulary import Actor, Stage
from infra.settings import Settings
from projections import registry
from projections.quality_reports import quality_report
from projections.rebuild import rebuild
from projections.store import apply_events, create_schema
from projections.tables import all_tables

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
DESK = Actor("cs-0101", "林晓燕", "CUSTOMER_SERVICE")
DISPATCHER = Actor("op-0201", "陈建国", "OPERATIONS")
SURVEYOR = Actor("op-0214", "李振华", "OPERATIONS")
CUSTOMER = Actor("C-2", "客户", "CUSTOMER")
CHECKED = ("quality", "sla", "notifications")


@pytest.fixture
def app(fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(Settings(), fresh_database_url)
    yield application
    application.close()


def _run(app: CaseApplication, commands: list[Command]) -> None:
    for command in commands:
        outcome = app.execute(command)
        assert outcome.accepted, (command.command_type, outcome.rule, outcome.message)


def _known_history(app: CaseApplication) -> datetime:
    """Two completed cases, a complaint on each; returns when the last complaint fact happened."""
    residential = sample_walk("RESIDENTIAL", "YK-CP-1", START)
    business = [
        dataclasses.replace(c, score=2) if isinstance(c, RecordFollowUp) else c
        for c in sample_walk("LV_NON_RESIDENTIAL", "YK-CP-2", START)
    ]
    _run(app, residential + business)
    at = max(c.occurred_at for c in residential + business) + timedelta(hours=1)

    def step(cls: type[Command], number: str, actor: Actor, hours: int, **fields: Any) -> Command:
        return cls(  # type: ignore[call-arg]
            command_id=f"{number}-{cls.__name__}-{hours}",
            case_number=number,
            actor=actor,
            occurred_at=at + timedelta(hours=hours),
            channel="CALL_CENTRE_95598",
            **fields,
        )

    _run(
        app,
        [
            step(
                LodgeComplaint,
                "YK-CP-1",
                DESK,
                0,
                complaint_id="TS-A",
                category="SERVICE_ATTITUDE",
                summary="勘查人员态度生硬",
                concerns_stage=Stage.SITE_SURVEY,
                concerns_handler=SURVEYOR,
            ),
            step(AssignComplaint, "YK-CP-1", DISPATCHER, 1, complaint_id="TS-A", handler=DISPATCHER),
            step(
                LodgeComplaint,
                "YK-CP-2",
                DESK,
                0,
                complaint_id="TS-B",
                category="HANDLING_DELAY",
                summary="慢",
            ),
            step(ResolveComplaint, "YK-CP-2", DESK, 2, complaint_id="TS-B", resolution="已说明原因"),
            dataclasses.replace(
                step(RejectComplaintResolution, "YK-CP-2", CUSTOMER, 3, complaint_id="TS-B"), reason="不认可"
            ),
            step(ResolveComplaint, "YK-CP-2", DESK, 4, complaint_id="TS-B", resolution="已致歉并补偿"),
            step(AcceptComplaintResolution, "YK-CP-2", CUSTOMER, 5, complaint_id="TS-B"),
        ],
    )
    return at + timedelta(hours=5)


def _project_live(conn: psycopg.Connection[Any], log: CaseEventLog, position: int) -> int:
    while position < log.head():
        messages, position = log.read(position, 7)
        with conn.transaction():
            apply_events(conn, registry.select(), messages)
    return position


def _rows(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table.name: sorted(conn.execute(f"SELECT * FROM {table.name}").fetchall(), key=repr)  # noqa: S608
        for table in (t for p in registry.select(list(CHECKED)) for t in all_tables(p))
    }


def test_a_complaint_clock_breaches_its_department_hears_of_it_and_the_kpis_count_the_history(
    app: CaseApplication, fresh_database_url: str
) -> None:
    last = _known_history(app)
    log = CaseEventLog(app)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
        position = _project_live(conn, log, 0)
        tick = SlaClock(app, fresh_database_url, clock=lambda: last + timedelta(days=30)).tick()
        _project_live(conn, log, position)
        crossings = conn.execute(
            "SELECT level, department, handler FROM sla_crossings WHERE kind = 'COMPLAINT' ORDER BY share"
        ).fetchall()
        notes = conn.execute(
            "SELECT recipient_kind, recipient, kind, message FROM notifications "
            "WHERE kind LIKE 'COMPLAINT%%' OR message LIKE '%%投诉处理%%' ORDER BY created_at, recipient_kind"
        ).fetchall()
        report = quality_report(conn)
        live = _rows(conn)
        rebuild(conn, registry.select(), log.read_all, log.head)
        rebuilt = _rows(conn)

    assert tick["refused"] == 0
    assert crossings == [
        ("NOTICE", "OPERATIONS", "陈建国"),
        ("WARNING", "OPERATIONS", "陈建国"),
        ("BREACH", "OPERATIONS", "陈建国"),
    ]
    kinds = [(kind_of, recipient, kind) for kind_of, recipient, kind, _ in notes]
    assert ("DEPARTMENT", "OPERATIONS", "COMPLAINT_LODGED") in kinds
    assert ("DEPARTMENT", "CUSTOMER_SERVICE", "COMPLAINT_LODGED") in kinds
    assert ("DEPARTMENT", "CUSTOMER_SERVICE", "COMPLAINT_REOPENED") in kinds
    assert ("DEPARTMENT", "OPERATIONS", "SLA_BREACH") in kinds
    assert ("SUPERVISOR", "OPERATIONS", "SLA_WARNING") in kinds
    assert any("已超期" in message and "投诉处理" in message for *_, message in notes)

    assert (report.complaints.events, report.complaints.cases, report.complaints.per_100) == (2, 2, 100.0)
    assert report.complaint_rate_by["department"]["OPERATIONS"].per_100 == 50.0
    assert report.complaint_rate_by["department"]["CUSTOMER_SERVICE"].per_100 == 50.0
    assert report.complaint_rate_by["stage"]["SITE_SURVEY"].per_100 == 50.0
    assert report.complaint_rate_by["handler"]["op-0214"].per_100 == 50.0
    assert report.complaints_by_status == {"OPEN": 1, "CLOSED": 1} and report.reopened == 1
    assert (report.complaint_clocks, report.complaint_clocks_on_time) == (2, 2)
    assert report.satisfaction.distribution == {1: 0, 2: 1, 3: 0, 4: 0, 5: 1}
    assert (report.satisfaction.average, report.satisfaction.low_share) == (3.5, 0.5)
    assert report.errors_by_kind == {"COMPLETION_INSPECTION_FAILED": 1}
    assert report.errors.per_case == 0.5

    assert live == rebuilt
    assert len(live["complaints"]) == 2


def test_the_cli_lodges_a_complaint_and_shows_the_quality_kpis_in_chinese(
    app: CaseApplication, fresh_database_url: str
) -> None:
    _known_history(app)
    lodge = build_command(
        LodgeComplaint,
        {
            "command_id": "cli-lodge",
            "case_number": "YK-CP-1",
            "actor": DESK,
            "occurred_at": datetime(2025, 12, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
            "channel": "COUNTER",
        },
        [
            "complaint_id=TS-C",
            "category=CHARGES",
            "summary=装表收取额外费用",
            "concerns_stage=CONNECTION",
            "concerns_handler=mt-0618,赵磊,METERING",
        ],
    )
    assert app.execute(lodge).accepted
    log = CaseEventLog(app)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
        _project_live(conn, log, 0)
    kpi = subprocess.run(
        [sys.executable, "-m", "cli.main", "kpi"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": fresh_database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert kpi.returncode == 0, kpi.stdout + kpi.stderr
    assert "投诉率 complaint rate: 3 件投诉 / 2 件办理案件 = 150.00" in kpi.stdout
    assert "回访满意度" in kpi.stdout and "服务差错率" in kpi.stdout and "竣工检验未通过 1" in kpi.stdout
    assert "收费问题 1" in kpi.stdout
    assert app.get_case("YK-CP-1").complaints["TS-C"]["department"] == "METERING"
