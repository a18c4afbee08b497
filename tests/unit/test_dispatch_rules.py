"""Priority after submission and 督办 that names the departments holding the case (pure domain)."""

from __future__ import annotations

import pytest

from domain.case import Case
from domain.commands import COMMAND_TYPES, AssignHandler, ChangePriority, CompleteSiteSurvey
from domain.errors import RuleViolationError
from domain.vocabulary import Stage
from tests.unit.case_builders import CLERK, PLANNER, STAFF, Clock, before, new_case


def test_a_priority_change_records_the_new_and_previous_tier_and_special_care() -> None:
    clock = Clock()
    case = new_case(clock=clock, priority_tier=1)

    case.change_priority(clock.ctx(CLERK, "客户为医院, 提级"), 3, True)

    changed = case.collect_events()[-1]
    assert isinstance(changed, Case.PriorityChanged)
    assert (changed.priority_tier, changed.special_care) == (3, True)
    assert (changed.previous_priority_tier, changed.previous_special_care) == (1, False)
    assert (case.priority_tier, case.special_care) == (3, True)


@pytest.mark.parametrize(
    ("tier", "reason", "rule"), [(4, "提级", "PRIORITY_TIER_RANGE"), (2, " ", "REASON_REQUIRED")]
)
def test_a_priority_change_needs_a_tier_in_range_and_a_reason(tier: int, reason: str, rule: str) -> None:
    clock = Clock()
    case = new_case(clock=clock)

    with pytest.raises(RuleViolationError) as refused:
        case.change_priority(clock.ctx(CLERK, reason), tier, False)

    assert refused.value.rule == rule


def test_change_priority_is_a_registered_command_and_executes_on_the_case() -> None:
    clock = Clock()
    case = new_case(clock=clock)
    command = ChangePriority(
        command_id="p-1",
        case_number=case.case_number,
        actor=CLERK,
        occurred_at=clock.now,
        channel="STAFF_CONSOLE",
        reason="行动不便老人",
        priority_tier=0,
        special_care=True,
    )

    command.execute(case, command.context(clock.now))

    assert COMMAND_TYPES["ChangePriority"] is type(command)
    assert case.special_care is True


def test_an_escalation_names_the_departments_holding_the_case() -> None:
    case, clock = before(CompleteSiteSurvey, "HV_SINGLE")

    case.escalate(clock.ctx(PLANNER, "客户催办"))

    escalated = case.collect_events()[-1]
    assert isinstance(escalated, Case.CaseEscalated)
    assert (escalated.level, escalated.departments) == (1, ["OPERATIONS"])


def test_an_escalation_while_the_case_waits_for_the_customer_names_the_customer_managers_department() -> None:
    case, clock = before(AssignHandler, "RESIDENTIAL")
    case.assign_handler(clock.ctx(STAFF["OPERATIONS"]), Stage.SITE_SURVEY, STAFF["OPERATIONS"])
    case.complete_site_survey(clock.ctx(STAFF["OPERATIONS"]), "表箱在东墙")
    case.draft_plan(clock.ctx(STAFF["MARKETING"]), "220V 单相接入")
    case.reply_plan(clock.ctx(STAFF["MARKETING"]))
    assert not case.open_stages

    case.escalate(clock.ctx(PLANNER, "客户未确认方案, 督办"))

    assert case.collect_events()[-1].departments == ["CUSTOMER_SERVICE"]  # type: ignore[attr-defined]


def test_a_version_1_escalation_is_upcast_with_no_departments() -> None:
    state = {"level": 1}

    Case.CaseEscalated.upcast_v1_v2(state)

    assert state == {"level": 1, "departments": []}
    assert Case.CaseEscalated.class_version == 2
