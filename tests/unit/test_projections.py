"""Read-model logic without I/O: events of walked sample cases in, rows out."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from domain.case import Case
from domain.commands import CompleteSiteSurvey, ConfirmSupplyPlan
from domain.privacy import mask_id_number, mask_name, mask_personal_data, mask_phone
from domain.vocabulary import Actor
from infra.messages import CaseEventMessage, case_event_message, json_schema_documents
from infra.settings import Settings
from infra.sla_config import sla_config
from projections.estimates import due_after
from projections.notifications import NotificationsProjection
from projections.progress import ProgressProjection
from projections.registry import NAMES, select
from projections.tables import CaseState
from projections.workload import WorkloadProjection
from tests.unit.case_builders import before, walk

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONFIG = sla_config(Settings())


def messages_of(case: Case) -> list[CaseEventMessage]:
    return [
        case_event_message(event, case.case_number, position)
        for position, event in enumerate(case.collect_events(), start=1)
    ]


def project(projection: object, messages: list[CaseEventMessage]) -> CaseState:
    state = CaseState()
    for message in messages:
        state.apply(projection, message)  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize("category", ["RESIDENTIAL", "LV_NON_RESIDENTIAL", "HV_SINGLE", "HV_DUAL"])
def test_a_completed_case_shows_its_whole_timeline_and_no_open_work(category: str) -> None:
    case, _ = walk(category)
    messages = messages_of(case)

    progress = project(ProgressProjection(CONFIG), messages).rows["case_progress"][0]
    workload = project(WorkloadProjection(), messages).rows["work_items"]

    assert progress["status"] == "COMPLETED" and progress["current_stages"] == []
    assert [step["stage"] for step in progress["timeline"]][-1] == "FOLLOW_UP"
    assert all(item["completed_at"] is not None for item in workload)
    if category.startswith("HV"):
        reviews = {item["department"] for item in workload if item["kind"] == "REVIEW"}
        assert reviews == {"PLANNING", "OPERATIONS", "DISPATCH"}


def test_progress_speaks_to_the_customer_while_the_case_waits_for_them() -> None:
    case, _ = before(ConfirmSupplyPlan, "LV_NON_RESIDENTIAL")
    row = project(ProgressProjection(CONFIG), messages_of(case)).rows["case_progress"][0]

    assert row["awaiting_customer"] == "CONFIRM_PLAN"
    assert row["next_step"] == "请确认供电方案"
    assert row["customer_name_masked"].count("*") >= 1
    assert row["expected_completion"] > case.last_occurred_at.astimezone(SHANGHAI).date()


def test_a_redelivered_event_changes_nothing() -> None:
    case, _ = walk("RESIDENTIAL")
    messages = messages_of(case)
    once = project(NotificationsProjection(CONFIG), messages)
    twice = project(NotificationsProjection(CONFIG), messages + messages[3:9])

    assert twice.rows == once.rows and twice.version == once.version == len(messages)


def test_a_reassignment_closes_one_work_item_and_opens_another_for_the_new_holder() -> None:
    case, clock = before(CompleteSiteSurvey)
    survey = case.open_stages["SITE_SURVEY"]
    newcomer = Actor("op-0299", "赵磊", "OPERATIONS")
    case.reassign_handler(
        clock.ctx(Actor("op-0201", "陈建国", "OPERATIONS"), "原责任人休假"), survey.stage, newcomer
    )

    items = [
        i
        for i in project(WorkloadProjection(), messages_of(case)).rows["work_items"]
        if i["stage"] == "SITE_SURVEY"
    ]

    assert [(i["handler_name"], i["outcome"]) for i in items] == [
        (survey.handler.name, "REASSIGNED"),
        ("赵磊", None),
    ]


def test_notifications_reach_other_departments_and_the_customer_once_per_fact() -> None:
    case, _ = walk("HV_SINGLE")
    notes = project(NotificationsProjection(CONFIG), messages_of(case)).rows["notifications"]

    ids = [n["notification_id"] for n in notes]
    assert len(ids) == len(set(ids))
    reviews = [n for n in notes if n["kind"] == "REVIEW_REQUESTED"]
    assert {n["recipient"] for n in reviews} == {"PLANNING", "OPERATIONS", "DISPATCH"}
    assert all(n["due_at"] > n["created_at"] for n in reviews)
    assert {n["kind"] for n in notes if n["recipient_kind"] == "CUSTOMER"} >= {
        "ApplicationAccepted",
        "Energised",
    }
    arrivals = [n for n in notes if n["kind"] == "STAGE_ARRIVED"]
    assert arrivals and all(n["recipient_kind"] == "DEPARTMENT" for n in arrivals)


def test_an_escalated_notification_is_marked_and_goes_to_the_supervisor() -> None:
    case, clock = before(CompleteSiteSurvey)
    messages = messages_of(case)
    first = project(NotificationsProjection(CONFIG), messages)
    note = next(n for n in first.rows["notifications"] if n["recipient"] == "OPERATIONS")
    case.escalate_notification(
        clock.ctx(Actor("sys", "督办", "SYSTEM"), "超时"), str(note["notification_id"]), "OPERATIONS"
    )
    notes = project(NotificationsProjection(CONFIG), messages + messages_of(case)).rows["notifications"]

    escalated = next(n for n in notes if n["notification_id"] == note["notification_id"])
    supervisor = [n for n in notes if n["recipient_kind"] == "SUPERVISOR"]
    assert escalated["escalated_at"] is not None
    assert [(n["recipient"], n["kind"]) for n in supervisor] == [("OPERATIONS", "ESCALATED")]


def test_published_events_mask_personal_data() -> None:
    case, _ = walk("RESIDENTIAL")
    submitted = messages_of(case)[0]

    assert submitted.payload["contact_phone"] == mask_phone(case.contact_phone) != case.contact_phone
    assert submitted.payload["id_number"] == mask_id_number(case.id_number) != case.id_number
    assert CaseEventMessage.from_bytes(submitted.to_bytes()) == submitted


def test_masks_keep_only_what_a_customer_needs_to_recognise() -> None:
    assert mask_phone("13905990123") == "139****0123"
    assert mask_id_number("350782196805120026") == "3507**********0026"
    assert mask_name("王秀英") == "王*英" and mask_name("王五") == "王*"
    assert mask_personal_data({"contact_phone": "13905990123", "x": 1}) == {
        "contact_phone": "139****0123",
        "x": 1,
    }


def test_due_dates_follow_the_working_day_calendar_into_the_provisional_years() -> None:
    friday = datetime(2025, 9, 26, 15, 0, tzinfo=SHANGHAI)

    assert due_after(CONFIG, friday, 3) == datetime(2025, 10, 1, 0, 0, tzinfo=SHANGHAI)  # Sun 9-28 is worked
    # 12-31, then 元旦 2027 (kept by every notice), Mon 01-04 … Thu 01-07
    assert due_after(CONFIG, datetime(2026, 12, 30, tzinfo=SHANGHAI), 5) == datetime(
        2027, 1, 8, 0, 0, tzinfo=SHANGHAI
    )


def test_the_published_json_schemas_in_docs_are_current() -> None:
    directory = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    for name, text in json_schema_documents().items():
        assert (directory / name).read_text() == text, f"run `yekuo schemas` to update docs/schemas/{name}"
        assert json.loads(text)["title"]


def test_projections_are_selected_by_name() -> None:
    assert [p.name for p in select()] == list(NAMES)
    assert [p.name for p in select(["workload"])] == ["workload"]
    with pytest.raises(KeyError, match="unknown projection"):
        select(["nope"])
