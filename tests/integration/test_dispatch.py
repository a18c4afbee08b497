"""Dispatch on a real PostgreSQL: queues ordered by special care and priority, 督办 reaching the supervisors
of the departments holding a case and its escalated-cases view, automatic handler assignment."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict

from api.main import create_app
from api.security import Role, issue_token
from app.application import CaseApplication
from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from consumers.auto_assign import AutoAssigner
from consumers.backoff import Health, read_health
from demo.samples import sample_walk
from domain.case import Case
from domain.commands import (
    AssignHandler,
    ChangePriority,
    EscalateCase,
    ReassignHandler,
    SubmitApplication,
)
from domain.hashchain import GENESIS_HASH, event_hash
from domain.vocabulary import Actor, Stage
from infra.settings import Settings
from projections import queries, registry
from projections.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
NOW = datetime(2025, 11, 3, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
MANAGER = Actor("mgr-01", "周主任", "MARKETING")
CLERK = Actor("cs-0101", "林晓燕", "CUSTOMER_SERVICE")
HANDLERS = [("op-a", "陈一"), ("op-b", "陈二"), ("op-c", "陈三")]
"""By name 陈一 < 陈三 < 陈二 (code points 一 4E00, 三 4E09, 二 4E8C): the tie-break order."""


@pytest.fixture
def app(fresh_database_url: str) -> Iterator[CaseApplication]:
    application = build_case_application(Settings(), fresh_database_url)
    yield application
    application.close()


def project(app: CaseApplication, database_url: str) -> None:
    log = CaseEventLog(app)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), log.read_all, log.head)


def walk_until(
    app: CaseApplication,
    number: str,
    stop: Callable[[Any], bool],
    *,
    category: str = "RESIDENTIAL",
    start: datetime = START,
    **application: Any,
) -> None:
    """Run a sample case's commands up to (not including) the first that ``stop`` matches."""
    for command in sample_walk(category, number, start):
        if stop(command):
            return
        if isinstance(command, SubmitApplication) and application:
            command = dataclasses.replace(
                command, application=dataclasses.replace(command.application, **application)
            )
        outcome = app.execute(command)
        assert outcome.accepted, (command.command_type, outcome.rule, outcome.message)


def awaiting_survey(app: CaseApplication, number: str, week: int, **application: Any) -> None:
    """A low-voltage case (normal priority unless overridden) accepted and waiting in OPERATIONS for its
    site survey, without a handler; received ``week`` weeks after START (the sample walk keeps to office
    hours, so cases started hours apart may be received at the same minute)."""
    walk_until(
        app,
        number,
        lambda c: isinstance(c, AssignHandler),
        category="LV_NON_RESIDENTIAL",
        start=START + timedelta(weeks=week),
        **application,
    )


def staff_command(cls: type[Any], number: str, actor: Actor, reason: str, **fields: Any) -> Any:
    return cls(
        command_id=f"{cls.__name__}:{number}:{reason}",
        case_number=number,
        actor=actor,
        occurred_at=NOW,
        channel="STAFF_CONSOLE",
        reason=reason,
        **fields,
    )


def dispatch_file(tmp_path: Path, **auto: bool) -> Path:
    path = tmp_path / "dispatch.json"
    departments = {
        code: {
            "auto_assign": on,
            "handlers": [{"person_id": f"{code.lower()[:2]}-{i}", "name": f"员工{i}"} for i in (1, 2)],
        }
        for code, on in auto.items()
    }
    if "OPERATIONS" in departments:
        departments["OPERATIONS"]["handlers"] = [{"person_id": p, "name": n} for p, n in HANDLERS]
    path.write_text(json.dumps({"version": "test", "departments": departments}, ensure_ascii=False))
    return path


def yekuo(database_url: str, *args: str, dispatch: Path | None = None) -> str:
    """What the ``yekuo`` command prints (it must exit 0)."""
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"}
    if dispatch is not None:
        env["YEKUO_DISPATCH_FILE"] = str(dispatch)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def handler_assignments(app: CaseApplication, number: str) -> list[Case.HandlerAssigned]:
    return [e for e in app.history(number) if isinstance(e, Case.HandlerAssigned)]


def test_queues_put_special_care_first_then_the_higher_priority_tier_then_the_older_item(
    app: CaseApplication, fresh_database_url: str
) -> None:
    awaiting_survey(app, "YK-Q-OLD", 0)
    awaiting_survey(app, "YK-Q-TIER2", 1, priority_tier=2)
    awaiting_survey(app, "YK-Q-CARE", 2, special_care=True)
    awaiting_survey(app, "YK-Q-RAISED", 3)
    awaiting_survey(app, "YK-Q-NEW", 4)
    raised = staff_command(ChangePriority, "YK-Q-RAISED", CLERK, "医院保障用电", priority_tier=3)
    assert app.execute(raised).accepted
    project(app, fresh_database_url)

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        rows = queries.department_queue(conn, "OPERATIONS", NOW)
    printed = yekuo(fresh_database_url, "queue", "OPERATIONS")

    expected = ["YK-Q-CARE", "YK-Q-RAISED", "YK-Q-TIER2", "YK-Q-OLD", "YK-Q-NEW"]
    assert [row["case_number"] for row in rows] == expected
    assert [(row["special_care"], row["priority_tier"]) for row in rows[:3]] == [
        (True, 0),
        (False, 3),
        (False, 2),
    ]
    assert sorted(expected, key=printed.index) == expected
    assert "特殊关怀" in printed and "未派工" in printed


def test_priority_and_special_care_are_given_at_submission_on_the_command_line(
    app: CaseApplication, fresh_database_url: str
) -> None:
    yekuo(
        fresh_database_url,
        *("case", "submit", "YK-Q-CLI", "--category", "RESIDENTIAL", "--customer-name", "王秀英"),
        *("--customer-ref", "C-9", "--phone", "13905990123", "--id-number", "350782196805120027"),
        *("--address", "武夷山市柳营路18号", "--capacity-kva", "8", "--supply-voltage", "220V"),
        *("--priority-tier", "2", "--special-care", "--actor", "cs-0101,林晓燕,CUSTOMER_SERVICE"),
    )

    case = app.get_case("YK-Q-CLI")

    assert (case.priority_tier, case.special_care) == (2, True)


def test_an_escalation_notifies_the_supervisor_of_each_department_holding_the_case_and_is_listed(
    app: CaseApplication, fresh_database_url: str, tmp_path: Path
) -> None:
    walk_until(app, "YK-E-1", lambda c: c.command_type == "RejectPlanReview", category="HV_SINGLE")
    walk_until(app, "YK-E-DONE", lambda c: False, category="HV_DUAL")  # escalated on its way, then closed
    escalate = staff_command(EscalateCase, "YK-E-1", MANAGER, "重要客户, 会签超时督办")
    assert app.execute(escalate).accepted
    project(app, fresh_database_url)

    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        supervised = conn.execute(
            "SELECT recipient, message FROM notifications WHERE kind = 'CASE_ESCALATED' "
            "AND case_number = 'YK-E-1' ORDER BY recipient"
        ).fetchall()
        done_notified = conn.execute(
            "SELECT count(*) FROM notifications WHERE kind = 'CASE_ESCALATED' AND case_number = 'YK-E-DONE'"
        ).fetchone()
        listed = queries.escalated_cases(conn)
        for_planning = queries.escalated_cases(conn, "PLANNING")
        for_metering = queries.escalated_cases(conn, "METERING")
        inbox = queries.department_inbox(conn, "DISPATCH", NOW)

    holding = ["DISPATCH", "MARKETING", "OPERATIONS", "PLANNING"]  # the plan stage and its three reviews
    assert [recipient for recipient, _ in supervised] == holding
    assert all("YK-E-1" in message and "会签超时督办" in message for _, message in supervised)
    assert [(r["case_number"], r["escalations"], r["escalated_departments"]) for r in listed] == [
        ("YK-E-1", 1, holding)
    ]
    assert listed[0]["escalated_by"] == "周主任"
    assert done_notified is not None and done_notified[0] >= 1  # notified then; closed, so no longer listed
    assert [r["case_number"] for r in for_planning] == ["YK-E-1"] and for_metering == []
    assert any(n["recipient_kind"] == "SUPERVISOR" and n["kind"] == "CASE_ESCALATED" for n in inbox)
    printed = yekuo(fresh_database_url, "case", "escalated", "--department", "DISPATCH")
    assert "YK-E-1" in printed and "会签超时督办" in printed and "调度" in printed

    key = "test-key-" + "k" * 40
    api = create_app(Settings(api_token_key=key, state_dir=tmp_path), fresh_database_url, None)

    def token(role: Role, department: str | None = None) -> dict[str, str]:
        signed = issue_token(key, role=role, person_id=f"{role}-1", name="测试", department=department)
        return {"Authorization": f"Bearer {signed}"}

    with TestClient(api) as client:
        as_manager = client.get("/escalated-cases", headers=token(Role.MANAGER))
        as_auditor = client.get("/escalated-cases?department=MARKETING", headers=token(Role.AUDITOR))
        as_staff = client.get("/escalated-cases", headers=token(Role.STAFF, "OPERATIONS"))
    assert as_manager.status_code == 200 and [r["case_number"] for r in as_manager.json()] == ["YK-E-1"]
    assert as_auditor.status_code == 200 and len(as_auditor.json()) == 1
    assert as_staff.status_code == 403


def test_auto_assign_picks_the_least_loaded_handler_records_reason_auto_and_is_idempotent(
    app: CaseApplication, fresh_database_url: str, tmp_path: Path
) -> None:
    awaiting_survey(app, "YK-A-HELD", 0)
    held_by_a = staff_command(
        AssignHandler,
        "YK-A-HELD",
        Actor("op-0201", "陈建国", "OPERATIONS"),
        "派工",
        stage=Stage.SITE_SURVEY,
        handler=Actor("op-a", "陈一", "OPERATIONS"),
    )
    assert app.execute(held_by_a).accepted
    for index in (1, 2, 3):
        awaiting_survey(app, f"YK-A-{index}", index)
    project(app, fresh_database_url)
    config = dispatch_file(tmp_path, OPERATIONS=True, MARKETING=False)

    first = AutoAssigner(app, fresh_database_url, dispatch_file=config, clock=lambda: NOW).tick()
    again_before_projection = AutoAssigner(app, fresh_database_url, dispatch_file=config, clock=lambda: NOW)
    repeated = again_before_projection.tick()
    project(app, fresh_database_url)
    after_projection = again_before_projection.tick()

    assigned = {n: handler_assignments(app, n) for n in ("YK-A-1", "YK-A-2", "YK-A-3")}
    assert first == {"due": 3, "assigned": 3, "repeated": 0, "refused": 0, "failed": 0}
    assert (repeated["due"], repeated["repeated"], repeated["assigned"]) == (3, 3, 0)
    assert after_projection["due"] == 0
    assert {n: [e.handler.person_id for e in events] for n, events in assigned.items()} == {
        "YK-A-1": ["op-c"],  # a holds one case already; b and c hold none: 陈三 before 陈二
        "YK-A-2": ["op-b"],
        "YK-A-3": ["op-a"],  # all hold one: 陈一 first by name
    }
    event = assigned["YK-A-1"][0]
    assert (event.reason, event.actor.person_id, event.channel) == ("auto", "yekuo-auto-assign", "SYSTEM")
    assert event.command_id == "auto-assign:YK-A-1:SITE_SURVEY:2"  # item 1 was APPLICATION

    by_hand = staff_command(
        ReassignHandler,
        "YK-A-1",
        Actor("op-0201", "陈建国", "OPERATIONS"),
        "熟悉该片区",
        stage=Stage.SITE_SURVEY,
        handler=Actor("op-0214", "李振华", "OPERATIONS"),
    )
    assert app.execute(by_hand).accepted
    project(app, fresh_database_url)
    assert again_before_projection.tick()["due"] == 0


def test_a_department_with_auto_assign_off_is_left_alone(
    app: CaseApplication, fresh_database_url: str, tmp_path: Path
) -> None:
    awaiting_survey(app, "YK-OFF-1", 0)
    walk_until(app, "YK-OFF-2", lambda c: isinstance(c, AssignHandler) and c.stage == Stage.SUPPLY_PLAN)
    project(app, fresh_database_url)
    config = dispatch_file(tmp_path, OPERATIONS=False, MARKETING=True)

    printed = yekuo(fresh_database_url, "auto-assign", "--once", "--now", NOW.isoformat(), dispatch=config)

    assert "due 1, assigned 1" in printed
    assert handler_assignments(app, "YK-OFF-1") == []
    plan = [e for e in handler_assignments(app, "YK-OFF-2") if e.stage == "SUPPLY_PLAN"]
    assert [(e.handler.department, e.reason) for e in plan] == [("MARKETING", "auto")]


def test_auto_assign_waits_out_a_database_that_refuses_connections_and_then_assigns(
    app: CaseApplication, database_url: str, fresh_database_url: str, tmp_path: Path
) -> None:
    awaiting_survey(app, "YK-OUT-1", 0)
    project(app, fresh_database_url)
    name = conninfo_to_dict(fresh_database_url)["dbname"]
    assigner = AutoAssigner(app, fresh_database_url, dispatch_file=dispatch_file(tmp_path, OPERATIONS=True))
    health = Health(tmp_path, "auto-assign")
    stop = threading.Event()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        worker = threading.Thread(target=assigner.run, args=(stop, 0.2), kwargs={"health": health})
        worker.start()
        try:
            waiting = poll(lambda: [h for h in read_health(tmp_path) if not h.ready])
            assert waiting[0].waiting_for.keys() == {"postgres"}
            assert worker.is_alive() and handler_assignments(app, "YK-OUT-1") == []
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            assigned = poll(lambda: handler_assignments(app, "YK-OUT-1"))
            poll(lambda: [h for h in read_health(tmp_path) if h.ready])
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            stop.set()
            worker.join(timeout=30)
    assert not worker.is_alive()
    assert [e.reason for e in assigned] == ["auto"]


def poll(found: Callable[[], Any], timeout: float = 20.0) -> Any:
    """``found()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"nothing found within {timeout} s")


def test_an_escalation_stored_at_version_1_loads_with_no_departments_and_verifies(
    app: CaseApplication, fresh_database_url: str
) -> None:
    _store_case_escalated_at_version_1(app, "YK-E-V1")

    escalated = app.history("YK-E-V1")[-1]
    project(app, fresh_database_url)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        supervised = conn.execute(
            "SELECT count(*) FROM notifications WHERE kind = 'CASE_ESCALATED'"
        ).fetchone()
        listed = queries.escalated_cases(conn)

    assert isinstance(escalated, Case.CaseEscalated) and escalated.departments == []
    assert app.get_case("YK-E-V1").escalation_level == 1
    assert app.verify("YK-E-V1").intact
    assert supervised == (0,)
    assert [(r["case_number"], r["escalated_departments"]) for r in listed] == [("YK-E-V1", [])]


def _store_case_escalated_at_version_1(app: CaseApplication, number: str) -> None:
    """A case accepted and then escalated, stored as the version before ``departments`` stored it: its
    CaseEscalated at class version 1, with the hash chain it had then."""
    case: Case | None = None
    for command in sample_walk("RESIDENTIAL", number, START):
        if isinstance(command, AssignHandler):
            break
        ctx = command.context(command.occurred_at)
        if isinstance(command, SubmitApplication):
            case = command.create(ctx)
        else:
            assert case is not None
            command.execute(case, ctx)
    assert case is not None
    escalate = staff_command(EscalateCase, number, MANAGER, "催办")
    escalate.execute(case, escalate.context(NOW))
    transcoder = app.mapper.transcoder
    previous = GENESIS_HASH
    stored = []
    for event in case.collect_events():
        record = app.mapper.to_stored_event(event)
        state = transcoder.decode(record.state)
        if isinstance(event, Case.CaseEscalated):
            state.pop("departments")
            state.pop("class_version")
        state["previous_hash"] = previous
        state["event_hash"] = previous = event_hash(
            type(event).__qualname__, case.id, record.originator_version, state["timestamp"], state
        )
        stored.append(dataclasses.replace(record, state=transcoder.encode(state)))
    app.recorder.insert_events(stored)
