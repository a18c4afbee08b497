"""The Case aggregate: every route, every rule (each named rule is provoked), and who is accountable when."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest

from domain.case import Case
from domain.case_values import CommandContext, DeadlineRevision, SlaCrossing
from domain.commands import (
    ArchiveCase,
    AssignHandler,
    Command,
    CompleteSiteSurvey,
    ConfirmSupplyPlan,
    DraftSupplyPlan,
    Energise,
    InspectCompletion,
    InstallMeter,
    RecordFollowUp,
    ReplySupplyPlan,
    ReportCompletion,
    RequestPlanReviews,
    RequestSupplement,
    ReviewDesign,
    SignContract,
    SubmitDesign,
)
from domain.errors import RuleViolationError
from domain.routes import route_for
from domain.vocabulary import Actor, CaseStatus, Category, CustomerStep, Department, PlanPhase, Stage
from tests.unit.case_builders import (
    CLERK,
    CUSTOMER,
    PLANNER,
    ROUTE_KINDS,
    STAFF,
    START,
    SURVEYOR,
    Clock,
    before,
    new_case,
    walk,
)

CASE_SOURCES = [
    Path(__file__).resolve().parents[2] / "domain" / name for name in ("case.py", "case_values.py")
]


def rule_codes_in_source() -> set[str]:
    text = "".join(source.read_text() for source in CASE_SOURCES)
    codes = set(re.findall(r'_reject\(\s*"([A-Z_]+)"', text))
    codes |= set(re.findall(r'RuleViolationError\(\s*"([A-Z_]+)"', text))
    codes |= set(re.findall(r'_check_items\([^)]*?"([A-Z_]+)"', text))
    return codes


# ---- routes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "fast_track"), ROUTE_KINDS)
def test_a_sample_case_of_each_category_passes_its_required_stages_in_order(
    category: str, fast_track: bool
) -> None:
    case, _ = walk(category, fast_track=fast_track)

    assert case.status is CaseStatus.COMPLETED
    assert not case.open_stages
    passed = [Stage(s) for s in case.passed_stages]
    assert passed == sorted(passed, key=lambda s: s.position)
    assert {s for s in case.route.stages if case.route.is_required(s)} <= set(passed)


def test_the_fast_track_goes_from_acceptance_straight_to_connection_with_the_contract_signed() -> None:
    case, _clock = before(ArchiveCase, "RESIDENTIAL", fast_track=True)

    assert [Stage(s) for s in case.route_stages][:2] == [Stage.APPLICATION, Stage.CONNECTION]
    assert case.contract_number is not None
    assert Stage.SITE_SURVEY not in case.passed_stages


def test_important_high_voltage_customers_must_pass_design_review_and_mid_inspection() -> None:
    important = route_for(Category.HV_DUAL, important_customer=True, fast_track=False)
    ordinary = route_for(Category.HV_SINGLE, important_customer=False, fast_track=False)
    low_voltage = route_for(Category.LV_NON_RESIDENTIAL, important_customer=True, fast_track=False)

    assert important.is_required(Stage.DESIGN_REVIEW) and important.is_required(Stage.MID_INSPECTION)
    assert not ordinary.is_required(Stage.DESIGN_REVIEW) and ordinary.includes(Stage.DESIGN_REVIEW)
    assert not low_voltage.is_required(Stage.MID_INSPECTION)


def test_residential_cases_have_no_design_review_or_inspections() -> None:
    route = route_for(Category.RESIDENTIAL, important_customer=False, fast_track=False)

    assert not route.includes(Stage.DESIGN_REVIEW)
    assert not route.includes(Stage.COMPLETION_INSPECTION)


# ---- responsibility -----------------------------------------------------------------------------------


def test_the_accepting_agent_becomes_and_stays_the_customer_manager() -> None:
    case, clock = before(CompleteSiteSurvey, "RESIDENTIAL")
    manager = case.customer_manager

    case.reassign_handler(clock.ctx(SURVEYOR, "人员调整"), Stage.SITE_SURVEY, STAFF["OPERATIONS"])

    assert manager is not None and manager.department == "CUSTOMER_SERVICE"
    assert case.customer_manager == manager


def test_each_open_stage_has_its_accountable_department_and_then_a_named_handler() -> None:
    clock = Clock()
    case = new_case(clock=clock)
    case.accept(clock.ctx(CLERK))
    assert case.accountable()[Stage.SITE_SURVEY].department is Department.OPERATIONS
    assert case.accountable()[Stage.SITE_SURVEY].handler is None

    handler = Actor("op-9", "李振华", "OPERATIONS")
    case.assign_handler(clock.ctx(SURVEYOR), Stage.SITE_SURVEY, handler)

    assert case.accountable()[Stage.SITE_SURVEY].handler == handler


def test_reassigning_to_another_department_moves_accountability_with_the_reason_recorded() -> None:
    case, clock = before(CompleteSiteSurvey, "RESIDENTIAL")
    dispatcher = Actor("dd-7", "郑海涛", "DISPATCH")

    case.reassign_handler(clock.ctx(SURVEYOR, "需调度现场配合"), Stage.SITE_SURVEY, dispatcher)

    assert case.accountable()[Stage.SITE_SURVEY].department is Department.DISPATCH
    event = case.pending_events[-1]
    assert isinstance(event, Case.HandlerReassigned) and event.reason == "需调度现场配合"
    with pytest.raises(RuleViolationError) as refused:
        case.complete_site_survey(clock.ctx(SURVEYOR), "ok")
    assert refused.value.rule == "ACTOR_NOT_ACCOUNTABLE"


def test_every_event_records_who_when_through_what_why_and_its_command() -> None:
    case, _ = walk("HV_DUAL")

    for event in case.collect_events():
        assert isinstance(event, Case.Event)
        assert event.actor.person_id and event.actor.department
        assert event.occurred_at.tzinfo is not None and event.timestamp >= event.occurred_at - timedelta(
            minutes=5
        )
        assert event.channel and event.command_id
        assert len(event.event_hash) == 64 and len(event.previous_hash) == 64


# ---- flows ------------------------------------------------------------------------------------------


def test_a_supplement_request_lists_every_missing_document_at_once_and_blocks_acceptance() -> None:
    clock = Clock()
    case = new_case("LV_NON_RESIDENTIAL", clock=clock)
    case.request_supplement(clock.ctx(CLERK), ["营业执照", "授权委托书"])
    case.provide_supplement(clock.ctx(CUSTOMER, channel="ONLINE_APP"), ["营业执照"])

    with pytest.raises(RuleViolationError, match="授权委托书") as refused:
        case.accept(clock.ctx(CLERK))

    assert refused.value.rule == "DOCUMENTS_OUTSTANDING"
    assert case.awaiting_customer is CustomerStep.PROVIDE_DOCUMENTS
    case.provide_supplement(clock.ctx(CUSTOMER), ["授权委托书"])
    case.accept(clock.ctx(CLERK))
    assert case.status is CaseStatus.IN_PROGRESS


def test_a_rejected_plan_review_returns_the_plan_to_drafting_with_the_comments() -> None:
    case, clock = before(ReplySupplyPlan, "HV_SINGLE")  # reviews approved
    assert case.plan_phase is PlanPhase.APPROVED
    fresh, clock = before(RequestPlanReviews, "HV_SINGLE")
    fresh.request_plan_reviews(clock.ctx(PLANNER), ["PLANNING", "OPERATIONS", "DISPATCH"])
    fresh.approve_plan_review(clock.ctx(STAFF["PLANNING"]))

    fresh.reject_plan_review(clock.ctx(STAFF["DISPATCH"], "接入点负载率偏高"))

    assert fresh.plan_phase is PlanPhase.DRAFTING
    assert fresh.plan_reviews == {}
    assert fresh.pending_events[-1].reason == "接入点负载率偏高"
    with pytest.raises(RuleViolationError) as refused:
        fresh.approve_plan_review(clock.ctx(STAFF["OPERATIONS"]))
    assert refused.value.rule == "REVIEW_NOT_PENDING"


def test_the_last_parallel_approval_approves_the_plan() -> None:
    case, clock = before(RequestPlanReviews, "HV_DUAL")
    case.request_plan_reviews(clock.ctx(PLANNER), ["PLANNING", "OPERATIONS", "DISPATCH"])

    for department in ("DISPATCH", "PLANNING"):
        case.approve_plan_review(clock.ctx(STAFF[department]))
        assert case.plan_phase is PlanPhase.IN_REVIEW
    case.approve_plan_review(clock.ctx(STAFF["OPERATIONS"]))

    assert case.plan_phase is PlanPhase.APPROVED
    assert type(case.pending_events[-1]).__name__ == "SupplyPlanApproved"


def test_a_customer_objection_reopens_the_supply_plan_with_marketing() -> None:
    case, clock = before(ConfirmSupplyPlan, "RESIDENTIAL")

    case.object_to_plan(clock.ctx(CUSTOMER, "希望改为三相供电"))

    assert case.accountable()[Stage.SUPPLY_PLAN].department is Department.MARKETING
    assert case.plan_phase is PlanPhase.DRAFTING
    assert case.awaiting_customer is None


def test_a_failed_completion_inspection_hands_the_rectification_list_back_and_a_new_report_reopens_it() -> (
    None
):
    case, clock = before(InspectCompletion, "HV_SINGLE")

    case.inspect_completion(clock.ctx(SURVEYOR), passed=False, rectifications=["接地电阻超标"])

    assert Stage.COMPLETION_INSPECTION not in case.accountable()
    assert case.awaiting_customer is CustomerStep.CUSTOMER_WORKS
    case.report_completion(clock.ctx(CUSTOMER))
    assert Stage.COMPLETION_INSPECTION in case.accountable()


def test_a_failed_design_review_can_be_resubmitted() -> None:
    case, clock = before(ReviewDesign, "HV_DUAL")

    case.review_design(clock.ctx(SURVEYOR), passed=False, issues=["缺少继电保护图"])
    case.submit_design(clock.ctx(CUSTOMER, channel="DESIGN_INSTITUTE"))
    case.review_design(clock.ctx(SURVEYOR), passed=True, issues=[])

    assert case.stage_log[-2:] == [["DESIGN_REVIEW", "FAILED"], ["DESIGN_REVIEW", "PASSED"]]


def test_connection_before_the_completion_inspection_names_the_missing_stage() -> None:
    case, clock = before(InspectCompletion, "LV_NON_RESIDENTIAL", skip=1)

    with pytest.raises(RuleViolationError, match="CONNECTION requires COMPLETION_INSPECTION passed"):
        case.install_meter(clock.ctx(STAFF["METERING"]), "M-1")


def test_a_pause_blocks_utility_work_until_resumed() -> None:
    case, clock = before(CompleteSiteSurvey, "RESIDENTIAL")
    case.pause_clock(clock.ctx(SURVEYOR, "客户不在家"), "CUSTOMER_UNREACHABLE")

    with pytest.raises(RuleViolationError) as refused:
        case.complete_site_survey(clock.ctx(SURVEYOR), "ok")
    case.resume_clock(clock.ctx(SURVEYOR))
    case.complete_site_survey(clock.ctx(SURVEYOR), "ok")

    assert refused.value.rule == "CASE_PAUSED"
    resumed = next(e for e in case.pending_events if isinstance(e, Case.ClockResumed))
    assert resumed.reason_code == "CUSTOMER_UNREACHABLE"


def test_escalations_raise_the_level_each_time() -> None:
    case, clock = before(CompleteSiteSurvey, "RESIDENTIAL")

    case.escalate(clock.ctx(PLANNER, "客户催办"))
    case.escalate(clock.ctx(PLANNER, "再次催办"))

    assert case.escalation_level == 2


def test_returning_to_the_site_survey_undoes_the_plan_and_reopens_the_survey() -> None:
    case, clock = before(SignContract, "RESIDENTIAL")

    case.return_to_stage(clock.ctx(PLANNER, "勘查数据有误"), Stage.SITE_SURVEY)

    assert list(case.accountable()) == [Stage.SITE_SURVEY]
    assert case.passed_stages == ["APPLICATION"]
    assert case.plan_phase is PlanPhase.AWAITING_SURVEY


def test_a_cancelled_case_takes_no_more_work_but_keeps_its_history() -> None:
    case, clock = before(CompleteSiteSurvey, "RESIDENTIAL")

    case.cancel(clock.ctx(CLERK, "客户撤回申请"))

    assert case.status is CaseStatus.CANCELLED and not case.open_stages
    with pytest.raises(RuleViolationError) as refused:
        case.escalate(clock.ctx(PLANNER, "催办"))
    assert refused.value.rule == "CASE_CLOSED"


def test_complaints_can_be_filed_and_resolved_even_after_completion() -> None:
    case, clock = walk("RESIDENTIAL")

    case.file_complaint(clock.ctx(CLERK), "TS-1", "送电后电压偏低")
    case.resolve_complaint(clock.ctx(CLERK), "TS-1", "已调整变压器分接头")

    assert case.complaints_filed == 1 and case.open_complaints == {}


def test_a_rejected_command_leaves_the_case_exactly_as_it_was() -> None:
    case, clock = before(CompleteSiteSurvey, "HV_SINGLE")
    state = copy.deepcopy(case.__dict__)

    with pytest.raises(RuleViolationError):
        case.sign_contract(clock.ctx(PLANNER), "HT-1")

    assert case.__dict__ == state


# ---- every named rule -------------------------------------------------------------------------------


def _ctx(**changes: object) -> CommandContext:
    values: dict[str, object] = {
        "actor": CLERK,
        "occurred_at": START,
        "recorded_at": START,
        "channel": "COUNTER",
        "command_id": "c-1",
    }
    values.update(changes)
    return CommandContext(**values)  # type: ignore[arg-type]


def _at(command_type: type, category: str = "RESIDENTIAL", **kwargs: object) -> tuple[Case, Clock]:
    return before(command_type, category, **kwargs)


def _supplement_requested() -> tuple[Case, Clock]:
    clock = Clock()
    case = new_case("LV_NON_RESIDENTIAL", clock=clock)
    case.request_supplement(clock.ctx(CLERK), ["营业执照"])
    return case, clock


def _energised(category: str = "RESIDENTIAL") -> tuple[Case, Clock]:
    return _at(ArchiveCase, category)


def _provoke(
    scenario: Callable[[], tuple[Case, Clock]], action: Callable[[Case, Clock], object]
) -> Callable[[], None]:
    def run() -> None:
        case, clock = scenario()
        action(case, clock)

    return run


def _crossing(clock: Clock, level: str, hours: int = -1) -> SlaCrossing:
    return SlaCrossing(
        "c:STAGE:SUPPLY_PLAN:1", "SUPPLY_PLAN", level, 1.0, clock.now + timedelta(hours=hours), "MARKETING",
        None, "SGCC_INTERNAL", "2020.1", "CN-test",
    )  # fmt: skip


def _revision(clock: Clock, previous: str, current: str) -> DeadlineRevision:
    return DeadlineRevision(
        "c:STAGE:SUPPLY_PLAN:1", "SUPPLY_PLAN", clock.now + timedelta(days=40), clock.now + timedelta(days=41),
        False, previous, current,
    )  # fmt: skip


def test_a_deadline_moved_by_a_new_calendar_is_recorded_on_the_case() -> None:
    case, clock = _fresh()

    case.revise_sla_deadline(clock.ctx(CLERK), _revision(clock, "CN-2020-2026+provisional", "CN-2020-2027"))

    revised = case.collect_events()[-1]
    assert isinstance(revised, Case.SlaDeadlineRevised)
    assert (revised.clock_id, revised.provisional, revised.calendar_version) == (
        "c:STAGE:SUPPLY_PLAN:1",
        False,
        "CN-2020-2027",
    )


def _fresh() -> tuple[Case, Clock]:
    clock = Clock()
    return new_case(clock=clock), clock


RULES: dict[str, Callable[[], object]] = {
    "TIMEZONE_REQUIRED": lambda: _ctx(occurred_at=START.replace(tzinfo=None)),
    "UNKNOWN_CHANNEL": lambda: _ctx(channel="FAX"),
    "COMMAND_ID_REQUIRED": lambda: _ctx(command_id=" "),
    "OCCURRED_IN_FUTURE": lambda: _ctx(occurred_at=START + timedelta(days=1)),
    "UNKNOWN_CATEGORY": lambda: new_case("INDUSTRIAL"),
    "APPLICATION_INCOMPLETE": lambda: new_case(address=" "),
    "CAPACITY_POSITIVE": lambda: new_case(capacity_kva=0.0),
    "PRIORITY_TIER_RANGE": lambda: new_case(priority_tier=7),
    "PRIORITY_UNCHANGED": lambda: new_case(priority_tier=2).change_priority(
        Clock(now=START + timedelta(days=1)).ctx(CLERK, "复核"), 2, False
    ),
    "FAST_TRACK_NOT_ELIGIBLE": lambda: new_case("HV_SINGLE", fast_track=True),
    "PHONE_FORMAT": lambda: new_case(contact_phone="1390599012"),
    "ID_NUMBER_FORMAT": lambda: new_case(id_number="35078219680512002"),
    "ID_NUMBER_CHECK_DIGIT": lambda: new_case(id_number="350782196805120026"),
    "TEXT_TOO_LONG": lambda: new_case(address="柳营路" * 100),
    "TEXT_CONTROL_CHARACTER": lambda: new_case(customer_name="王秀英\x1b[2J"),
    "CAPACITY_PLAUSIBLE": lambda: new_case(capacity_kva=float("inf")),
    "OCCURRED_BEFORE_LAST_EVENT": _provoke(
        _fresh, lambda case, _: case.accept(_ctx(occurred_at=START - timedelta(days=1)))
    ),
    "CASE_CLOSED": _provoke(
        lambda: walk("RESIDENTIAL"), lambda case, c: case.escalate(c.ctx(PLANNER, "催办"))
    ),
    "CASE_PAUSED": _provoke(
        lambda: _at(CompleteSiteSurvey),
        lambda case, c: (
            case.pause_clock(c.ctx(SURVEYOR), "CUSTOMER_REQUESTED_DELAY"),
            case.complete_site_survey(c.ctx(SURVEYOR), "ok"),
        ),
    ),
    "STAGE_NOT_IN_ROUTE": _provoke(
        lambda: _at(SignContract), lambda case, c: case.review_design(c.ctx(SURVEYOR), passed=True, issues=[])
    ),
    "STAGE_PREREQUISITE": _provoke(
        lambda: _at(SubmitDesign, "HV_DUAL"), lambda case, c: case.report_completion(c.ctx(CUSTOMER))
    ),
    "STAGE_NOT_OPEN": _provoke(
        lambda: _at(DraftSupplyPlan), lambda case, c: case.complete_site_survey(c.ctx(SURVEYOR), "again")
    ),
    "ACTOR_NOT_ACCOUNTABLE": _provoke(_fresh, lambda case, c: case.accept(c.ctx(PLANNER))),
    "NOT_AWAITING_CUSTOMER": _provoke(
        lambda: _at(ReplySupplyPlan), lambda case, c: case.confirm_plan(c.ctx(CUSTOMER))
    ),
    "REASON_REQUIRED": _provoke(_fresh, lambda case, c: case.cancel(c.ctx(CLERK))),
    "SLA_LEVEL_UNKNOWN": _provoke(
        _fresh, lambda case, c: case.record_sla_crossing(c.ctx(CLERK), _crossing(c, "RED"))
    ),
    "SLA_ALREADY_RECORDED": _provoke(
        _fresh,
        lambda case, c: [case.record_sla_crossing(c.ctx(CLERK), _crossing(c, "BREACH")) for _ in range(2)],
    ),
    "SLA_REVISION_SAME_CALENDAR": _provoke(
        _fresh, lambda case, c: case.revise_sla_deadline(c.ctx(CLERK), _revision(c, "CN-test", "CN-test"))
    ),
    "SLA_NOT_YET_CROSSED": _provoke(
        _fresh, lambda case, c: case.record_sla_crossing(c.ctx(CLERK), _crossing(c, "BREACH", hours=1))
    ),
    "NOTIFICATION_ID_REQUIRED": _provoke(
        _fresh, lambda case, c: case.acknowledge_notification(c.ctx(SURVEYOR), " ")
    ),
    "NOTIFICATION_ALREADY_HANDLED": _provoke(
        _fresh,
        lambda case, c: (
            case.acknowledge_notification(c.ctx(SURVEYOR), "n-1"),
            case.escalate_notification(c.ctx(CLERK, "超时未确认"), "n-1", Department.OPERATIONS),
        ),
    ),
    "MISSING_DOCUMENTS_REQUIRED": _provoke(_fresh, lambda case, c: case.request_supplement(c.ctx(CLERK), [])),
    "ONE_TIME_NOTICE": _provoke(
        _supplement_requested, lambda case, c: case.request_supplement(c.ctx(CLERK), ["授权委托书"])
    ),
    "DOCUMENTS_REQUIRED": _provoke(
        _supplement_requested, lambda case, c: case.provide_supplement(c.ctx(CUSTOMER), [])
    ),
    "SUPPLEMENT_NOT_REQUESTED": _provoke(
        _supplement_requested, lambda case, c: case.provide_supplement(c.ctx(CUSTOMER), ["户口本"])
    ),
    "DOCUMENTS_OUTSTANDING": _provoke(_supplement_requested, lambda case, c: case.accept(c.ctx(CLERK))),
    "HANDLER_ALREADY_ASSIGNED": _provoke(
        lambda: _at(CompleteSiteSurvey),
        lambda case, c: case.assign_handler(c.ctx(SURVEYOR), Stage.SITE_SURVEY, STAFF["OPERATIONS"]),
    ),
    "HANDLER_OUTSIDE_DEPARTMENT": _provoke(
        _fresh, lambda case, c: case.assign_handler(c.ctx(CLERK), Stage.APPLICATION, PLANNER)
    ),
    "UNKNOWN_DEPARTMENT": _provoke(
        lambda: _at(CompleteSiteSurvey),
        lambda case, c: case.reassign_handler(
            c.ctx(SURVEYOR, "调整"), Stage.SITE_SURVEY, Actor("f", "财务", "FINANCE")
        ),
    ),
    "HANDLER_UNCHANGED": _provoke(
        lambda: _at(CompleteSiteSurvey),
        lambda case, c: case.reassign_handler(
            c.ctx(SURVEYOR, "调整"), Stage.SITE_SURVEY, case.open_stages["SITE_SURVEY"].handler
        ),
    ),
    "SURVEY_FINDINGS_REQUIRED": _provoke(
        lambda: _at(CompleteSiteSurvey), lambda case, c: case.complete_site_survey(c.ctx(SURVEYOR), " ")
    ),
    "PLAN_NOT_IN_DRAFTING": _provoke(
        lambda: _at(ReplySupplyPlan, "HV_SINGLE"), lambda case, c: case.draft_plan(c.ctx(PLANNER), "改")
    ),
    "PLAN_SUMMARY_REQUIRED": _provoke(
        lambda: _at(DraftSupplyPlan), lambda case, c: case.draft_plan(c.ctx(PLANNER), "")
    ),
    "PLAN_NOT_DRAFTED": _provoke(
        lambda: _at(DraftSupplyPlan, "LV_NON_RESIDENTIAL"),
        lambda case, c: case.request_plan_reviews(c.ctx(PLANNER), ["OPERATIONS"]),
    ),
    "PLAN_REVIEW_NOT_APPLICABLE": _provoke(
        lambda: _at(ReplySupplyPlan),
        lambda case, c: case.request_plan_reviews(c.ctx(PLANNER), ["OPERATIONS"]),
    ),
    "REVIEWERS_REQUIRED": _provoke(
        lambda: _at(RequestPlanReviews, "LV_NON_RESIDENTIAL"),
        lambda case, c: case.request_plan_reviews(c.ctx(PLANNER), []),
    ),
    "HV_JOINT_REVIEW": _provoke(
        lambda: _at(RequestPlanReviews, "HV_SINGLE"), lambda case, c: case.reply_plan(c.ctx(PLANNER))
    ),
    "REVIEW_NOT_PENDING": _provoke(
        lambda: _at(RequestPlanReviews, "HV_SINGLE"),
        lambda case, c: case.approve_plan_review(c.ctx(STAFF["METERING"])),
    ),
    "PLAN_NOT_READY": _provoke(lambda: _at(DraftSupplyPlan), lambda case, c: case.reply_plan(c.ctx(PLANNER))),
    "STAGE_ALREADY_PASSED": _provoke(
        lambda: _at(ReportCompletion, "LV_NON_RESIDENTIAL"),
        lambda case, c: case.submit_design(c.ctx(CUSTOMER)),
    ),
    "FAILURE_NEEDS_FINDINGS": _provoke(
        lambda: _at(InspectCompletion, "HV_SINGLE"),
        lambda case, c: case.inspect_completion(c.ctx(SURVEYOR), passed=False, rectifications=[]),
    ),
    "CONTRACT_NUMBER_REQUIRED": _provoke(
        lambda: _at(SignContract), lambda case, c: case.sign_contract(c.ctx(PLANNER), " ")
    ),
    "SCHEDULE_IN_PAST": _provoke(
        lambda: _at(InstallMeter),
        lambda case, c: case.schedule_connection(c.ctx(STAFF["METERING"]), date(2020, 1, 1)),
    ),
    "METER_ID_REQUIRED": _provoke(
        lambda: _at(InstallMeter), lambda case, c: case.install_meter(c.ctx(STAFF["METERING"]), "")
    ),
    "METER_ALREADY_INSTALLED": _provoke(
        lambda: _at(Energise), lambda case, c: case.install_meter(c.ctx(STAFF["METERING"]), "M-2")
    ),
    "METER_REQUIRED": _provoke(
        lambda: _at(InstallMeter), lambda case, c: case.energise(c.ctx(STAFF["METERING"]))
    ),
    "DISPATCH_ORDER_REQUIRED": _provoke(
        lambda: _at(Energise, "HV_SINGLE"), lambda case, c: case.energise(c.ctx(STAFF["METERING"]), " ")
    ),
    "SATISFACTION_SCORE_RANGE": _provoke(
        lambda: _at(RecordFollowUp), lambda case, c: case.record_follow_up(c.ctx(CLERK), 6)
    ),
    "COMPLAINT_INCOMPLETE": _provoke(_fresh, lambda case, c: case.file_complaint(c.ctx(CLERK), "TS-1", " ")),
    "COMPLAINT_DUPLICATE": _provoke(
        _fresh,
        lambda case, c: [case.file_complaint(c.ctx(CLERK), "TS-1", "慢") for _ in range(2)],
    ),
    "COMPLAINT_NOT_OPEN": _provoke(
        _fresh, lambda case, c: case.resolve_complaint(c.ctx(CLERK), "TS-9", "已处理")
    ),
    "RESOLUTION_REQUIRED": _provoke(
        _fresh,
        lambda case, c: (
            case.file_complaint(c.ctx(CLERK), "TS-1", "慢"),
            case.resolve_complaint(c.ctx(CLERK), "TS-1", ""),
        ),
    ),
    "PAUSE_NOT_CUSTOMER_CAUSED": _provoke(
        lambda: _at(CompleteSiteSurvey), lambda case, c: case.pause_clock(c.ctx(SURVEYOR), "STAFF_ON_LEAVE")
    ),
    "NO_RUNNING_CLOCK": _provoke(
        lambda: _at(ConfirmSupplyPlan),
        lambda case, c: case.pause_clock(c.ctx(CLERK), "CUSTOMER_REQUESTED_DELAY"),
    ),
    "NOT_PAUSED": _provoke(_fresh, lambda case, c: case.resume_clock(c.ctx(CLERK))),
    "RETURN_AFTER_ENERGISING": _provoke(
        _energised, lambda case, c: case.return_to_stage(c.ctx(CLERK, "重办"), Stage.SITE_SURVEY)
    ),
    "RETURN_TARGET_INVALID": _provoke(
        lambda: _at(DraftSupplyPlan),
        lambda case, c: case.return_to_stage(c.ctx(PLANNER, "重办"), Stage.CONTRACT),
    ),
    "CANCEL_AFTER_ENERGISING": _provoke(_energised, lambda case, c: case.cancel(c.ctx(CLERK, "撤销"))),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_command_breaking_a_rule_is_refused_with_that_rule_named(rule: str) -> None:
    with pytest.raises(RuleViolationError) as refused:
        RULES[rule]()

    assert refused.value.rule == rule
    assert refused.value.message


def test_every_rule_in_the_case_source_is_provoked_by_a_test() -> None:
    assert rule_codes_in_source() == set(RULES)


@pytest.mark.parametrize(
    "phone", ["13905990123", "19912345678", "0599-5301234", "05995301234", "010-88886666"]
)
def test_mobile_numbers_and_landlines_with_area_code_are_accepted(phone: str) -> None:
    assert new_case(contact_phone=phone).contact_phone == phone


@pytest.mark.parametrize(
    "phone", ["12905990123", "139059901234", "5301234", "0599-530123", "139-0599-0123", ""]
)
def test_a_phone_that_is_neither_mobile_nor_landline_is_refused(phone: str) -> None:
    with pytest.raises(RuleViolationError) as refused:
        new_case(contact_phone=phone)
    assert refused.value.rule == "PHONE_FORMAT"


@pytest.mark.parametrize(
    ("id_number", "rule"),
    [
        ("350782196813120020", "ID_NUMBER_CHECK_DIGIT"),  # no 13th month
        ("35078219680512002Y", "ID_NUMBER_FORMAT"),
        ("3507821968051200270", "ID_NUMBER_FORMAT"),
        ("91350782MA2XY0123W", "ID_NUMBER_FORMAT"),  # a business's credit code is not a resident's ID
    ],
)
def test_a_residents_id_number_needs_its_shape_birth_date_and_check_digit(id_number: str, rule: str) -> None:
    with pytest.raises(RuleViolationError) as refused:
        new_case(id_number=id_number)
    assert refused.value.rule == rule


def test_an_id_number_ending_in_x_is_accepted_in_either_case() -> None:
    assert new_case(id_number="11010519491231002X").id_number == "11010519491231002X"
    assert new_case(id_number="11010519491231002x").id_number == "11010519491231002x"


def test_a_business_may_apply_with_its_unified_social_credit_code() -> None:
    assert new_case("LV_NON_RESIDENTIAL", id_number="91350782MA2XY0123W").id_number == "91350782MA2XY0123W"
    with pytest.raises(RuleViolationError) as refused:
        new_case("LV_NON_RESIDENTIAL", id_number="91350782MA2XY0123X")
    assert refused.value.rule == "ID_NUMBER_FORMAT"


@pytest.mark.parametrize("capacity", [float("nan"), float("inf"), float("-inf"), 100_000.5])
def test_a_capacity_that_is_not_finite_or_beyond_100000_kva_is_refused(capacity: float) -> None:
    with pytest.raises(RuleViolationError) as refused:
        new_case("HV_SINGLE", capacity_kva=capacity)
    assert refused.value.rule == "CAPACITY_PLAUSIBLE"


def test_a_capacity_of_100000_kva_is_still_plausible() -> None:
    assert new_case("HV_DUAL", capacity_kva=100_000.0).capacity_kva == 100_000.0


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"reason": "x" * 1001}, "TEXT_TOO_LONG"),
        ({"reason": "退回\x00"}, "TEXT_CONTROL_CHARACTER"),
        ({"actor": Actor("cs-1", "林" * 101, "CUSTOMER_SERVICE")}, "TEXT_TOO_LONG"),
        ({"actor": Actor("cs-1\r", "林晓燕", "CUSTOMER_SERVICE")}, "TEXT_CONTROL_CHARACTER"),
    ],
)
def test_every_commands_reason_and_actor_are_checked_for_length_and_control_characters(
    changes: dict[str, object], rule: str
) -> None:
    with pytest.raises(RuleViolationError) as refused:
        _ctx(**changes)
    assert refused.value.rule == rule


def test_a_reason_may_span_lines() -> None:
    assert _ctx(reason="资料不全:\n\t身份证").reason == "资料不全:\n\t身份证"


@pytest.mark.parametrize(
    "field", ["customer_name", "address", "customer_ref", "supply_voltage", "case_number"]
)
def test_no_application_text_field_takes_a_line_break(field: str) -> None:
    with pytest.raises(RuleViolationError) as refused:
        new_case(**{field: "A\nB"})
    assert refused.value.rule == "TEXT_CONTROL_CHARACTER"


def test_a_document_name_is_checked_like_any_text() -> None:
    with pytest.raises(RuleViolationError) as refused:
        new_case(documents=("身份证", "x" * 101))
    assert refused.value.rule == "TEXT_TOO_LONG"


def test_an_unacknowledged_notification_escalates_once_and_is_recorded_on_the_case() -> None:
    case, clock = _fresh()

    case.escalate_notification(clock.ctx(CLERK, "4 小时未确认"), "n-7", Department.OPERATIONS)
    escalated = case.collect_events()[-1]

    assert isinstance(escalated, Case.NotificationEscalated)
    assert (escalated.notification_id, escalated.department, escalated.level) == ("n-7", "OPERATIONS", 1)
    assert case.escalation_level == 1
    with pytest.raises(RuleViolationError, match="already escalated"):
        case.acknowledge_notification(clock.ctx(SURVEYOR), "n-7")


def test_a_notification_can_be_acknowledged_after_the_case_closed() -> None:
    case, clock = walk("RESIDENTIAL")

    case.acknowledge_notification(clock.ctx(SURVEYOR), "n-late")

    acknowledged = case.collect_events()[-1]
    assert isinstance(acknowledged, Case.NotificationAcknowledged)
    assert acknowledged.department == "OPERATIONS"


def _command_fields() -> dict[str, object]:
    return {
        "command_id": "c-1",
        "case_number": "YK-1",
        "actor": CLERK,
        "occurred_at": START,
        "channel": "COUNTER",
    }


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (lambda: CompleteSiteSurvey(**_command_fields(), findings="x" * 2001), "TEXT_TOO_LONG"),
        (lambda: CompleteSiteSurvey(**_command_fields(), findings="现场\x07"), "TEXT_CONTROL_CHARACTER"),
        (
            lambda: RequestSupplement(**_command_fields(), missing_documents=("身份证\x1b",)),
            "TEXT_CONTROL_CHARACTER",
        ),
        (
            lambda: AssignHandler(
                **_command_fields(), stage=Stage.SITE_SURVEY, handler=Actor("op", "李" * 101, "OPERATIONS")
            ),
            "TEXT_TOO_LONG",
        ),
    ],
)
def test_a_commands_own_text_fields_are_checked_before_it_is_decided(
    command: Callable[[], Command], rule: str
) -> None:
    with pytest.raises(RuleViolationError) as refused:
        command().context(START)
    assert refused.value.rule == rule


def test_a_commands_free_text_may_span_lines() -> None:
    command = CompleteSiteSurvey(**_command_fields(), findings="表箱位置:\n\t东墙")  # type: ignore[arg-type]

    assert command.context(START).command_id == "c-1"
