"""The HTTP API on a real PostgreSQL: roles, a whole case, idempotency, refusals, the customer's look-up,
audit reads and privacy. Read models are filled by a rebuild from the event store (no broker needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient

from api.context import Services
from api.main import create_app
from api.security import Role, issue_token
from app.command_payloads import ENVELOPE_FIELDS
from app.event_log import CaseEventLog
from demo.samples import sample_walk
from domain.commands import Command, SubmitApplication
from infra.settings import Settings
from infra.source_systems import load_source_systems
from projections import registry
from projections.rebuild import rebuild

KEY = "test-key-" + "k" * 40
START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SYSTEMS = load_source_systems()


@dataclass
class Api:
    client: TestClient
    services: Services
    database_url: str

    def token(self, role: Role, department: str | None = None, **claims: Any) -> dict[str, str]:
        token = issue_token(
            KEY,
            role=role,
            person_id=claims.get("person_id", f"{role}-1"),
            name=claims.get("name", f"{role} 测试"),
            department=department,
            source_system=claims.get("source_system"),
        )
        return {"Authorization": f"Bearer {token}"}

    def project(self) -> None:
        log = CaseEventLog(self.services.app)
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rebuild(conn, registry.select(), log.read_all, log.head)

    def send(self, command: Command, headers: dict[str, str] | None = None) -> Any:
        """POST a domain command as its route, with the token of the actor that would send it."""
        body = payload_of(command)
        path = (
            "/cases"
            if isinstance(command, SubmitApplication)
            else f"/cases/{command.case_number}/commands/{command.command_type}"
        )
        return self.client.post(
            path,
            json=body,
            headers={**(headers or self.token_for(command)), "Command-Id": command.command_id},
        )

    def token_for(self, command: Command) -> dict[str, str]:
        actor = command.actor
        if command.channel == "STAFF_CONSOLE":
            return self.token(Role.STAFF, actor.department, person_id=actor.person_id, name=actor.name)
        system = next(
            s.name
            for s in SYSTEMS.systems.values()
            if s.channel == command.channel and s.may_send(command.command_type)
        )
        return self.token(
            Role.INTEGRATOR,
            actor.department,
            source_system=system,
            person_id=actor.person_id,
            name=actor.name,
        )


def payload_of(command: Command) -> dict[str, Any]:
    fields = {
        f.name: getattr(command, f.name) for f in dataclasses.fields(command) if f.name not in ENVELOPE_FIELDS
    }
    return jsonable_encoder({**fields, "reason": command.reason, "occurred_at": command.occurred_at})


@pytest.fixture
def api(fresh_database_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(api_token_key=KEY, state_dir=tmp_path, api_customer_max_failures=3)
    app = create_app(settings, fresh_database_url, None)
    with TestClient(app) as client:
        yield Api(client, app.state.services, fresh_database_url)


def walk(api: Api, number: str, category: str = "HV_SINGLE", until: str | None = None) -> list[Command]:
    """Send a sample case's commands through the API up to (not including) ``until``."""
    sent = []
    for command in sample_walk(category, number, START):
        if command.command_type == until:
            break
        response = api.send(command)
        assert response.status_code == 200, (command.command_type, response.json())
        sent.append(command)
    return sent


def test_a_whole_case_goes_through_the_api_and_every_reader_sees_it(api: Api) -> None:
    commands = walk(api, "YK-API-1")
    api.project()
    staff = api.token(Role.STAFF, "CUSTOMER_SERVICE")
    auditor = api.token(Role.AUDITOR)

    progress = api.client.get("/cases/YK-API-1/progress", headers=staff).json()
    history = api.client.get("/cases/YK-API-1/history", headers=auditor).json()
    first_state = api.client.get("/cases/YK-API-1/state?version=1", headers=auditor).json()
    verdict = api.client.get("/cases/YK-API-1/verify", headers=auditor).json()

    assert progress["status"] == "COMPLETED" and progress["case_version"] == len(history)
    assert "*" in progress["contact_phone"]
    assert {e["type"] for e in history} >= {"ApplicationSubmitted", "Energised", "FollowUpRecorded"}
    assert all(e["actor"]["person_id"] for e in history)
    assert first_state["version"] == 1 and first_state["status_code"] == "APPLIED"
    assert verdict["intact"] is True and verdict["events_checked"] == len(history)
    assert len([c for c in commands if c.command_type == "Energise"]) == 1
    for path in (
        "/cases/YK-API-1/responsibility",
        "/whatif?rules=REG_2009",
        "/kpi",
        "/workload",
        "/sla/open-clocks",
        "/sla/crossings",
    ):
        assert api.client.get(path, headers=auditor).status_code == 200, path
    metrics = api.client.get("/metrics").text
    assert 'yekuo_api_commands_total{command_type="Energise",outcome="accepted"} 1.0' in metrics


def test_a_repeated_command_id_answers_the_first_outcome_and_appends_nothing(api: Api) -> None:
    submit = sample_walk("RESIDENTIAL", "YK-API-2", START)[0]

    first = api.send(submit)
    again = api.send(submit)

    assert first.status_code == again.status_code == 200
    assert first.json()["repeated"] is False and again.json()["repeated"] is True
    assert again.json()["case_version"] == first.json()["case_version"]
    assert len(api.services.app.history("YK-API-2")) == first.json()["case_version"]


def test_a_refused_command_answers_409_with_the_rule_code_and_a_bad_payload_422(api: Api) -> None:
    walk(api, "YK-API-3", "RESIDENTIAL", until="AcceptApplication")
    staff = {**api.token(Role.STAFF, "METERING"), "Command-Id": "energise-too-early"}

    refused = api.client.post("/cases/YK-API-3/commands/Energise", json={}, headers=staff)
    invalid = api.client.post(
        "/cases/YK-API-3/commands/RequestPlanReviews",
        json={"departments": 5},
        headers={**staff, "Command-Id": "bad-payload"},
    )
    no_id = api.client.post(
        "/cases/YK-API-3/commands/Energise", json={}, headers=api.token(Role.STAFF, "METERING")
    )
    no_case = api.client.post(
        "/cases/YK-NONE/commands/Energise", json={}, headers={**staff, "Command-Id": "x-1"}
    )

    assert refused.status_code == 409
    assert refused.json()["rule"] and refused.json()["accepted"] is False
    assert invalid.status_code == 422
    assert no_id.status_code == 400
    assert no_case.status_code == 404 and no_case.json()["rule"] == "CASE_NOT_FOUND"


def test_the_actor_of_a_command_is_the_token_s_and_never_the_body_s(api: Api) -> None:
    submit = sample_walk("RESIDENTIAL", "YK-API-4", START)[0]
    body = {**payload_of(submit), "actor": {"person_id": "evil", "name": "冒充", "department": "MARKETING"}}
    headers = {**api.token(Role.INTEGRATOR, source_system="COUNTER", person_id="c-7"), "Command-Id": "a-1"}

    smuggled = api.client.post("/cases", json=body, headers=headers)
    accepted = api.client.post("/cases", json=payload_of(submit), headers=headers)

    assert smuggled.status_code == 422
    assert accepted.status_code == 200
    event = api.services.app.history("YK-API-4")[0]
    assert (
        event.actor.person_id == "c-7" and event.actor.department == "COUNTER" and event.channel == "COUNTER"
    )


def test_a_customer_looks_up_with_the_phone_s_last_four_and_is_stopped_after_failures(api: Api) -> None:
    submit = sample_walk("RESIDENTIAL", "YK-API-5", START)[0]
    api.send(submit)
    assert isinstance(submit, SubmitApplication)
    right = submit.application.contact_phone[-4:]
    wrong = "0000" if right != "0000" else "1111"

    found = api.client.post("/customer/progress", json={"case_number": "YK-API-5", "phone_last4": right})
    misses = [
        api.client.post(
            "/customer/progress", json={"case_number": "YK-API-5", "phone_last4": wrong}
        ).status_code
        for _ in range(3)
    ]
    blocked = api.client.post("/customer/progress", json={"case_number": "YK-API-5", "phone_last4": right})

    assert found.status_code == 200
    assert found.json()["contact_phone"] == submit.application.contact_phone
    assert found.json()["missing_documents"] == []
    assert misses == [404, 404, 404]
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers


def test_two_api_processes_on_one_database_enforce_one_failure_limit(api: Api, tmp_path: Path) -> None:
    submit = sample_walk("RESIDENTIAL", "YK-API-5B", START)[0]
    api.send(submit)
    assert isinstance(submit, SubmitApplication)
    right = submit.application.contact_phone[-4:]
    wrong = {"case_number": "YK-API-5B", "phone_last4": "0000" if right != "0000" else "1111"}
    settings = Settings(api_token_key=KEY, state_dir=tmp_path, api_customer_max_failures=3)
    with TestClient(create_app(settings, api.database_url, None)) as other:
        first = api.client.post("/customer/progress", json={**wrong, "phone_last4": right})
        misses = [
            client.post("/customer/progress", json=wrong).status_code
            for client in (api.client, other, api.client)
        ]
        blocked = [
            client.post("/customer/progress", json={**wrong, "phone_last4": right}).status_code
            for client in (other, api.client)
        ]

    assert first.status_code == 200  # a right answer does not count against the limit
    assert misses == [404, 404, 404]
    assert blocked == [429, 429]


def test_an_auditor_s_unmasked_read_is_recorded_with_its_reason(api: Api) -> None:
    submit = sample_walk("RESIDENTIAL", "YK-API-6", START)[0]
    api.send(submit)
    auditor = api.token(Role.AUDITOR, person_id="aud-1")
    assert isinstance(submit, SubmitApplication)

    masked = api.client.get("/cases/YK-API-6/history", headers=auditor).json()
    unmasked = api.client.get("/cases/YK-API-6/history?reason=投诉核查 complaint 42", headers=auditor).json()
    manager = api.client.get("/cases/YK-API-6/history?reason=curious", headers=api.token(Role.MANAGER)).json()

    phone = submit.application.contact_phone
    assert masked[0]["contact_phone"] != phone and "*" in masked[0]["contact_phone"]
    assert unmasked[0]["contact_phone"] == phone and unmasked[0]["id_number"] == submit.application.id_number
    assert manager[0]["contact_phone"] != phone
    with psycopg.connect(api.database_url) as conn:
        rows = conn.execute(
            "SELECT person_id, case_number, resource, reason FROM audit_access_log"
        ).fetchall()
    assert rows == [("aud-1", "YK-API-6", "history", "投诉核查 complaint 42")]


def test_a_department_acknowledges_a_notification_of_its_inbox(api: Api) -> None:
    walk(api, "YK-API-7", "HV_SINGLE", until="CompleteSiteSurvey")
    api.project()
    operations = api.token(Role.STAFF, "OPERATIONS")

    inbox = api.client.get("/departments/OPERATIONS/inbox", headers=operations).json()
    queue = api.client.get("/departments/OPERATIONS/queue", headers=operations).json()
    note = next(n for n in inbox if n["case_number"] == "YK-API-7")
    other = api.client.post(
        f"/cases/YK-API-7/notifications/{note['notification_id']}/acknowledge",
        headers={**api.token(Role.STAFF, "MARKETING"), "Command-Id": "ack-0"},
    )
    ack = api.client.post(
        f"/cases/YK-API-7/notifications/{note['notification_id']}/acknowledge",
        headers={**operations, "Command-Id": "ack-1"},
    )
    api.project()
    after = api.client.get("/departments/OPERATIONS/inbox", headers=operations).json()

    assert any(item["case_number"] == "YK-API-7" and item["age_seconds"] >= 0 for item in queue)
    assert other.status_code == 404
    assert ack.status_code == 200 and ack.json()["event_types"] == ["NotificationAcknowledged"]
    assert note["notification_id"] not in {n["notification_id"] for n in after}


ROLES = ("integrator", "staff", "manager", "auditor", "customer")
READ = {"staff", "manager", "auditor"}
OVERSEE = {"manager", "auditor"}


def test_every_route_admits_exactly_its_roles(api: Api) -> None:
    commands = walk(api, "YK-M-1", "HV_SINGLE", until="CompleteSiteSurvey")
    api.project()
    submit = commands[0]
    assert isinstance(submit, SubmitApplication)
    customer_ref = submit.application.customer_ref
    tokens = {
        "integrator": api.token(Role.INTEGRATOR, source_system="ONLINE_HALL"),
        "staff": api.token(Role.STAFF, "OPERATIONS"),
        "manager": api.token(Role.MANAGER),
        "auditor": api.token(Role.AUDITOR),
        "customer": api.token(Role.CUSTOMER, person_id=customer_ref),
    }
    note = api.client.get("/departments/OPERATIONS/inbox", headers=tokens["staff"]).json()[0]
    assign = payload_of(next(c for c in commands if c.command_type == "AssignHandler"))
    case = "/cases/YK-M-1"

    def new_case(role: str) -> dict[str, Any]:
        other = sample_walk("RESIDENTIAL", f"YK-M-{role}", START)[0]
        return payload_of(other)

    # (method, path, body or a function of the role giving it, roles allowed)
    routes: list[tuple[str, str, Any, set[str]]] = [
        ("POST", "/cases", new_case, {"integrator", "staff"}),
        ("POST", f"{case}/commands/AssignHandler", assign, {"staff"}),
        (
            "POST",
            f"{case}/commands/FileComplaint",
            {"complaint_id": "C-1", "summary": "太慢"},
            {"integrator", "staff"},
        ),
        ("POST", f"{case}/commands/Energise", {"bogus": 1}, {"staff"}),  # 403 comes before 422
        ("POST", f"{case}/commands/EscalateCase", {"reason": "督办"}, {"manager"}),
        ("POST", f"{case}/notifications/{note['notification_id']}/acknowledge", None, {"staff"}),
        ("GET", f"{case}/progress", None, READ | {"customer"}),
        ("GET", "/customers/me/cases", None, {"customer"}),
        ("GET", "/departments/OPERATIONS/queue", None, READ),
        ("GET", "/departments/OPERATIONS/inbox", None, READ),
        ("GET", "/workload", None, OVERSEE),
        ("GET", "/sla/open-clocks", None, READ),
        ("GET", "/sla/crossings?level=BREACH", None, READ),
        ("GET", "/kpi?from=2025-01-01&to=2025-12-31", None, OVERSEE),
        ("GET", f"{case}/history", None, OVERSEE),
        ("GET", f"{case}/state?version=2", None, OVERSEE),
        ("GET", f"{case}/verify", None, OVERSEE),
        ("GET", f"{case}/responsibility", None, OVERSEE),
        ("GET", "/whatif?rules=REG_2009", None, OVERSEE),
    ]
    failures = []
    for number, (method, path, body, allowed) in enumerate(routes):
        anonymous = api.client.request(method, path, json=None if body is None or callable(body) else body)
        if anonymous.status_code != 401:
            failures.append((path, "anonymous", anonymous.status_code))
        for role in ROLES:
            content = body(role) if callable(body) else body
            headers = {**tokens[role], "Command-Id": f"matrix-{number}-{role}"}
            status = api.client.request(method, path, json=content, headers=headers).status_code
            expected_ok = role in allowed
            if (expected_ok and (status in (401, 403) or status >= 500)) or (
                not expected_ok and status != 403
            ):
                failures.append((path, role, status))
    assert failures == []


def test_each_role_gets_404_for_what_is_not_theirs_to_see(api: Api) -> None:
    walk(api, "YK-M-2", "HV_SINGLE", until="CompleteSiteSurvey")
    api.project()
    staff = api.token(Role.STAFF, "OPERATIONS")
    note = api.client.get("/departments/OPERATIONS/inbox", headers=staff).json()[0]
    stranger = api.token(Role.CUSTOMER, person_id="someone-else")

    answers = {
        "customer, another's case": api.client.get("/cases/YK-M-2/progress", headers=stranger).status_code,
        "staff, unknown case": api.client.get("/cases/YK-NONE/progress", headers=staff).status_code,
        "auditor, unknown case": api.client.get(
            "/cases/YK-NONE/history", headers=api.token(Role.AUDITOR)
        ).status_code,
        "manager, unknown department": api.client.get(
            "/departments/NOPE/queue", headers=api.token(Role.MANAGER)
        ).status_code,
        "staff, other department's notification": api.client.post(
            f"/cases/YK-M-2/notifications/{note['notification_id']}/acknowledge",
            headers={**api.token(Role.STAFF, "MARKETING"), "Command-Id": "ack-x"},
        ).status_code,
        "staff, another department's queue": api.client.get(
            "/departments/MARKETING/queue", headers=staff
        ).status_code,
    }

    assert answers == {
        "customer, another's case": 404,
        "staff, unknown case": 404,
        "auditor, unknown case": 404,
        "manager, unknown department": 404,
        "staff, other department's notification": 404,
        "staff, another department's queue": 403,
    }


def test_an_unexpected_error_answers_an_error_id_and_no_internals(api: Api, fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute("DROP VIEW department_workload")
    client = TestClient(api.client.app, raise_server_exceptions=False)

    answer = client.get("/workload", headers=api.token(Role.MANAGER))

    assert answer.status_code == 500
    assert set(answer.json()) == {"error", "error_id"}
    assert "department_workload" not in answer.text and "Traceback" not in answer.text


def test_health_answers_live_and_ready_with_the_database(api: Api) -> None:
    assert api.client.get("/health/live").json() == {"status": "ok"}
    assert api.client.get("/health/ready").json() == {"status": "ok", "database": "ok"}
    assert api.client.get("/openapi.json").json()["paths"]["/cases/{case_number}/commands/Energise"]
