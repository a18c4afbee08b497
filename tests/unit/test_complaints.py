"""The complaint loop (投诉): lifecycle rules on the case, its SLA clock, its notifications and rows."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from domain.case import Case
from domain.commands import COMMAND_TYPES, CompleteSiteSurvey, DraftSupplyPlan
from domain.complaints import CLOSED, OPEN, RESOLVED
from domain.errors import RuleViolationError
from domain.vocabulary import Actor
from infra.messages import CaseEventMessage, case_event_message
from infra.settings import Settings
from infra.sla_config import sla_config
from projections.notifications import NotificationsProjection
from projections.quality import QualityProjection
from projections.sla import SlaProjection
from projections.tables import CaseState
from tests.unit.case_builders import CLERK, PLANNER, STAFF, SURVEYOR, Clock, before, walk

CONFIG = sla_config(Settings())
SURVEY_HANDLER = Actor("op-7", "赵工", "OPERATIONS")
CUSTOMER = Actor("c-1", "王秀英", "CUSTOMER")


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


def surveyed() -> tuple[Case, Clock]:
    """A residential case whose site survey is open with operations."""
    return before(CompleteSiteSurvey)


def lodged(**options: object) -> tuple[Case, Clock]:
    case, clock = surveyed()
    values: dict[str, object] = {"concerns_stage": "SITE_SURVEY", "concerns_handler": SURVEY_HANDLER}
    values.update(options)
    case.lodge_complaint(clock.ctx(CLERK), "TS-1", "SERVICE_ATTITUDE", "勘查人员态度生硬", **values)  # type: ignore[arg-type]
    return case, clock


# ---- lifecycle ---------------------------------------------------------------------------------------


def test_a_complaint_about_a_stage_is_accountable_to_the_department_holding_it() -> None:
    case, _ = lodged()

    assert case.complaints["TS-1"] == {
        "status": OPEN,
        "category": "SERVICE_ATTITUDE",
        "department": "OPERATIONS",
        "handler": None,
    }
    assert case.open_complaints == {"TS-1": "勘查人员态度生硬"}


def test_a_complaint_naming_no_stage_goes_to_customer_service_and_a_named_department_wins() -> None:
    plain, _ = lodged(concerns_stage=None, concerns_handler=None)
    named, _ = lodged(department="METERING")

    assert plain.complaints["TS-1"]["department"] == "CUSTOMER_SERVICE"
    assert named.complaints["TS-1"]["department"] == "METERING"


def test_a_complaint_about_a_stage_already_passed_goes_to_that_stages_default_department() -> None:
    case, clock = before(DraftSupplyPlan)  # the survey has passed; the plan is with marketing

    case.lodge_complaint(clock.ctx(CLERK), "TS-1", "HANDLING_DELAY", "勘查拖延", "SITE_SURVEY")

    assert case.complaints["TS-1"]["department"] == "OPERATIONS"


def test_a_refused_resolution_reopens_the_complaint_and_an_accepted_one_closes_it() -> None:
    case, clock = lodged()

    case.assign_complaint(clock.ctx(SURVEYOR), "TS-1", SURVEY_HANDLER)
    case.resolve_complaint(clock.ctx(SURVEY_HANDLER), "TS-1", "已致歉并重新约定勘查")
    assert case.complaints["TS-1"]["status"] == RESOLVED and case.open_complaints == {}
    case.reject_complaint_resolution(clock.ctx(CUSTOMER, "仍未上门"), "TS-1")
    assert case.complaints["TS-1"]["status"] == OPEN and "TS-1" in case.open_complaints
    case.resolve_complaint(clock.ctx(SURVEY_HANDLER), "TS-1", "已上门勘查")
    case.accept_complaint_resolution(clock.ctx(CUSTOMER), "TS-1")

    assert case.complaints["TS-1"] == {
        "status": CLOSED,
        "category": "SERVICE_ATTITUDE",
        "department": "OPERATIONS",
        "handler": "op-7",
    }


def test_assigning_a_handler_of_another_department_moves_the_complaint_there() -> None:
    case, clock = lodged()

    case.assign_complaint(clock.ctx(CLERK, "属计量问题"), "TS-1", STAFF["METERING"])

    assert case.complaints["TS-1"]["department"] == "METERING"
    with pytest.raises(RuleViolationError) as refused:
        case.resolve_complaint(clock.ctx(SURVEYOR), "TS-1", "已处理")
    assert refused.value.rule == "COMPLAINT_ACTOR_NOT_ACCOUNTABLE"


def test_a_complaint_can_be_lodged_and_closed_after_the_case_is_completed() -> None:
    case, clock = walk("RESIDENTIAL")

    case.lodge_complaint(clock.ctx(CLERK), "TS-9", "POWER_QUALITY", "送电后电压偏低")
    case.resolve_complaint(clock.ctx(CLERK), "TS-9", "已调整分接头")
    case.accept_complaint_resolution(clock.ctx(CUSTOMER), "TS-9")

    assert case.complaints["TS-9"]["status"] == CLOSED


def test_the_short_form_file_complaint_joins_the_loop_with_customer_service() -> None:
    case, clock = surveyed()

    case.file_complaint(clock.ctx(CLERK), "TS-1", "太慢")
    case.resolve_complaint(clock.ctx(CLERK), "TS-1", "已加急")
    case.accept_complaint_resolution(clock.ctx(CUSTOMER), "TS-1")

    assert case.complaints["TS-1"]["category"] == "OTHER"
    assert case.complaints["TS-1"]["status"] == CLOSED


def test_a_complaint_filed_before_the_loop_existed_is_resolved_from_an_old_snapshot() -> None:
    case, clock = surveyed()
    case.file_complaint(clock.ctx(CLERK), "TS-1", "太慢")
    del case.complaints  # what a snapshot taken before the complaint loop holds

    case.resolve_complaint(clock.ctx(CLERK), "TS-1", "已加急")

    assert case.complaints["TS-1"]["status"] == RESOLVED
    assert case.complaints["TS-1"]["department"] == "CUSTOMER_SERVICE"


def test_the_complaint_commands_are_registered_for_every_door() -> None:
    for name in (
        "LodgeComplaint",
        "AssignComplaint",
        "AcceptComplaintResolution",
        "RejectComplaintResolution",
    ):
        assert name in COMMAND_TYPES


# ---- rules -------------------------------------------------------------------------------------------

Provocation = Callable[[], object]


def _lodge(case: Case, clock: Clock, **options: object) -> None:
    values: dict[str, object] = {"complaint_id": "TS-2", "category": "OTHER", "summary": "慢"}
    values.update(options)
    case.lodge_complaint(clock.ctx(CLERK), **values)  # type: ignore[arg-type]


def _after_lodging(act: Callable[[Case, Clock], object]) -> Provocation:
    def provoke() -> object:
        case, clock = lodged()
        return act(case, clock)

    return provoke


RULES: dict[str, Provocation] = {
    "COMPLAINT_INCOMPLETE": _after_lodging(lambda case, c: _lodge(case, c, summary=" ")),
    "COMPLAINT_DUPLICATE": _after_lodging(lambda case, c: _lodge(case, c, complaint_id="TS-1")),
    "COMPLAINT_CATEGORY_UNKNOWN": _after_lodging(lambda case, c: _lodge(case, c, category="NOISE")),
    "COMPLAINT_STAGE_NOT_IN_ROUTE": _after_lodging(
        lambda case, c: _lodge(case, c, concerns_stage="DESIGN_REVIEW")  # residential: no design review
    ),
    "COMPLAINT_DEPARTMENT_UNKNOWN": _after_lodging(lambda case, c: _lodge(case, c, department="LEGAL")),
    "COMPLAINT_UNKNOWN": _after_lodging(
        lambda case, c: case.assign_complaint(c.ctx(SURVEYOR), "TS-404", SURVEY_HANDLER)
    ),
    "COMPLAINT_CLOSED": _after_lodging(
        lambda case, c: (
            case.resolve_complaint(c.ctx(SURVEYOR), "TS-1", "已处理"),
            case.accept_complaint_resolution(c.ctx(CUSTOMER), "TS-1"),
            case.assign_complaint(c.ctx(SURVEYOR), "TS-1", SURVEY_HANDLER),
        )
    ),
    "COMPLAINT_ACTOR_NOT_ACCOUNTABLE": _after_lodging(
        lambda case, c: case.assign_complaint(c.ctx(PLANNER), "TS-1", SURVEY_HANDLER)
    ),
    "COMPLAINT_HANDLER_UNCHANGED": _after_lodging(
        lambda case, c: [case.assign_complaint(c.ctx(SURVEYOR), "TS-1", SURVEY_HANDLER) for _ in range(2)]
    ),
    "COMPLAINT_TRANSFER_NEEDS_REASON": _after_lodging(
        lambda case, c: case.assign_complaint(c.ctx(CLERK), "TS-1", STAFF["METERING"])
    ),
    "COMPLAINT_NOT_RESOLVED": _after_lodging(
        lambda case, c: case.accept_complaint_resolution(c.ctx(CUSTOMER), "TS-1")
    ),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_complaint_command_breaking_a_rule_is_refused_with_that_rule_named(rule: str) -> None:
    with pytest.raises(RuleViolationError) as refused:
        RULES[rule]()

    assert refused.value.rule == rule
    assert refused.value.message


def test_every_rule_of_the_complaint_module_is_provoked_by_a_test() -> None:
    source = (Path(__file__).resolve().parents[2] / "domain" / "complaints.py").read_text()

    assert set(re.findall(r'_reject\(\s*"([A-Z_]+)"', source)) == set(RULES)


def test_resolving_an_unknown_complaint_and_refusing_without_a_reason_are_refused() -> None:
    case, clock = lodged()
    with pytest.raises(RuleViolationError) as unknown:
        case.resolve_complaint(clock.ctx(SURVEYOR), "TS-404", "已处理")
    case.resolve_complaint(clock.ctx(SURVEYOR), "TS-1", "已处理")
    with pytest.raises(RuleViolationError) as no_reason:
        case.reject_complaint_resolution(clock.ctx(CUSTOMER), "TS-1")
    with pytest.raises(RuleViolationError) as twice:
        case.resolve_complaint(clock.ctx(SURVEYOR), "TS-1", "再处理")

    assert (unknown.value.rule, no_reason.value.rule, twice.value.rule) == (
        "COMPLAINT_NOT_OPEN",
        "REASON_REQUIRED",
        "COMPLAINT_NOT_OPEN",
    )


# ---- the SLA clock, notifications and rows ----------------------------------------------------------


def _complaint_clocks(case: Case) -> list[dict[str, object]]:
    rows = project(SlaProjection(CONFIG), messages_of(case)).rows["sla_clocks"]
    return [row for row in rows if row["kind"] == "COMPLAINT"]


def test_a_complaint_clock_is_held_by_its_department_and_stops_at_the_resolution() -> None:
    case, clock = lodged()
    case.assign_complaint(clock.ctx(SURVEYOR), "TS-1", SURVEY_HANDLER)
    case.pause_clock(clock.ctx(SURVEYOR), "CUSTOMER_REQUESTED_DELAY")  # the case's pause, not the complaint's
    case.resolve_complaint(clock.ctx(SURVEY_HANDLER), "TS-1", "已致歉")

    (row,) = _complaint_clocks(case)

    assert row["stage"] == "COMPLAINT" and row["limit_days"] == 5
    assert (row["holder_department"], row["holder_handler"]) == ("OPERATIONS", "赵工")
    assert row["outcome"] == "RESOLVED" and row["on_time"] is True
    assert row["excluded_seconds"] == 0


def test_a_refused_resolution_starts_a_new_clock_and_a_cancellation_does_not_stop_it() -> None:
    case, clock = lodged()
    case.resolve_complaint(clock.ctx(SURVEYOR), "TS-1", "已致歉")
    case.reject_complaint_resolution(clock.ctx(CUSTOMER, "不满意"), "TS-1")
    case.cancel(clock.ctx(CLERK, "客户撤回申请"))

    first, second = _complaint_clocks(case)

    assert first["clock_id"].endswith(":COMPLAINT:COMPLAINT:TS-1:1") and first["outcome"] == "RESOLVED"
    assert second["clock_id"].endswith(":COMPLAINT:COMPLAINT:TS-1:2") and second["stopped_at"] is None


def test_the_accountable_department_is_notified_of_a_complaint_and_of_its_reopening() -> None:
    case, clock = lodged()
    case.resolve_complaint(clock.ctx(SURVEYOR), "TS-1", "已致歉")
    case.reject_complaint_resolution(clock.ctx(CUSTOMER, "不满意"), "TS-1")

    notes = project(NotificationsProjection(CONFIG), messages_of(case)).rows["notifications"]
    complaint_notes = [(n["recipient"], n["kind"]) for n in notes if "COMPLAINT" in n["kind"]]
    customer_notes = [n["kind"] for n in notes if n["recipient_kind"] == "CUSTOMER"]

    assert complaint_notes == [("OPERATIONS", "COMPLAINT_LODGED"), ("OPERATIONS", "COMPLAINT_REOPENED")]
    lodged_note = next(n for n in notes if n["kind"] == "COMPLAINT_LODGED")
    assert "服务态度" in lodged_note["message"] and "现场勘查" in lodged_note["message"]
    assert lodged_note["due_at"] is not None
    assert "ComplaintResolved" in customer_notes


def test_the_quality_rows_hold_the_complaint_the_follow_up_and_the_service_errors() -> None:
    case, clock = walk("RESIDENTIAL")
    case.lodge_complaint(
        clock.ctx(CLERK), "TS-1", "HANDLING_DELAY", "装表慢", "CONNECTION", department="METERING"
    )
    case.assign_complaint(clock.ctx(STAFF["METERING"]), "TS-1", STAFF["METERING"])
    case.resolve_complaint(clock.ctx(STAFF["METERING"]), "TS-1", "已说明")
    case.reject_complaint_resolution(clock.ctx(CUSTOMER, "不认可"), "TS-1")

    rows = project(QualityProjection(), messages_of(case)).rows

    (complaint,) = rows["complaints"]
    assert (complaint["category"], complaint["department"], complaint["status"]) == (
        "HANDLING_DELAY",
        "METERING",
        "OPEN",
    )
    assert complaint["handler_id"] == "metering-1" and complaint["reopened"] == 1
    assert complaint["concerns_stage"] == "CONNECTION" and complaint["resolved_at"] is None
    assert [f["score"] for f in rows["follow_ups"]] == [case.follow_up_score]
    assert rows.get("service_errors", []) == []  # the sample residential walk has no return or failure
