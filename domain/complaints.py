"""Complaints (投诉) about a case as a loop: lodged, assigned, resolved, and accepted or reopened.

A complaint belongs to its case (its facts are case events, so the audit trail, the read models and a
rebuild see it like any other fact). It has a category, may name the stage and the handler it concerns,
and is accountable to one department (given when lodged; else the department that holds or held the
concerned stage; else customer service, which took it: 首问负责制). That department resolves it within
the rule set's complaint time limit (an SLA clock of kind ``COMPLAINT``, see ``domain.sla``); the
customer then accepts the resolution, which closes the complaint, or does not, which reopens it and
starts a new clock. The rules here are pure checks; ``domain.case.Case`` records the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from domain.errors import RuleViolationError
from domain.vocabulary import Actor, Department, Stage

OPEN, RESOLVED, CLOSED = "OPEN", "RESOLVED", "CLOSED"
"""A complaint's status: with the utility, waiting for the customer's acceptance, or closed."""
LEGACY_CATEGORY = "OTHER"
"""The category of complaints filed with ``FileComplaint``, the short form without one."""


class ComplaintCategory(StrEnum):
    """What a complaint is about (投诉分类)."""

    SERVICE_ATTITUDE = "SERVICE_ATTITUDE"
    HANDLING_DELAY = "HANDLING_DELAY"
    BUSINESS_ERROR = "BUSINESS_ERROR"
    CHARGES = "CHARGES"
    MISCONDUCT = "MISCONDUCT"
    POWER_QUALITY = "POWER_QUALITY"
    OTHER = "OTHER"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]


CATEGORY_LABELS = {
    ComplaintCategory.SERVICE_ATTITUDE: "服务态度",
    ComplaintCategory.HANDLING_DELAY: "办理时限",
    ComplaintCategory.BUSINESS_ERROR: "业务差错",
    ComplaintCategory.CHARGES: "收费问题",
    ComplaintCategory.MISCONDUCT: "违规行为",
    ComplaintCategory.POWER_QUALITY: "供电质量",
    ComplaintCategory.OTHER: "其他",
}
STATUS_LABELS = {OPEN: "处理中", RESOLVED: "待客户确认", CLOSED: "已办结"}


def _reject(rule: str, message: str) -> RuleViolationError:
    return RuleViolationError(rule, message)


Record = Mapping[str, Any]
"""A complaint as the case keeps it: ``status``, ``category``, ``department``, ``handler`` (person id)."""


def check_lodging(
    complaints: Mapping[str, Record],
    complaint_id: str,
    category: str,
    summary: str,
    concerns_stage: str | None,
    route: tuple[Stage, ...],
    department: str | None,
) -> None:
    """A new complaint names an unused id, a known category, its text, and a stage of the case's route."""
    if not complaint_id.strip() or not summary.strip():
        raise _reject("COMPLAINT_INCOMPLETE", "a complaint needs an id and its text")
    if complaint_id in complaints:
        raise _reject("COMPLAINT_DUPLICATE", f"complaint {complaint_id} is already lodged on this case")
    if category not in ComplaintCategory.__members__:
        raise _reject(
            "COMPLAINT_CATEGORY_UNKNOWN",
            f"{category!r} is not a complaint category; one of {', '.join(ComplaintCategory)}",
        )
    if concerns_stage is not None and (
        concerns_stage not in Stage.__members__ or Stage(concerns_stage) not in route
    ):
        raise _reject("COMPLAINT_STAGE_NOT_IN_ROUTE", f"{concerns_stage} is not a stage of this case's route")
    if department is not None and department not in Department.__members__:
        raise _reject("COMPLAINT_DEPARTMENT_UNKNOWN", f"{department!r} is not a department of the utility")


def accountable_department(
    given: str | None, concerns_stage: str | None, stage_departments: Mapping[str, str]
) -> str:
    """The department a complaint is accountable to: the one given, else the one holding (or last
    holding) the concerned stage, else customer service (首问负责制: the desk that took it)."""
    if given:
        return given
    if concerns_stage and concerns_stage in stage_departments:
        return stage_departments[concerns_stage]
    return Department.CUSTOMER_SERVICE.value


def known(complaints: Mapping[str, Record], complaint_id: str) -> Record:
    if complaint_id not in complaints:
        raise _reject("COMPLAINT_UNKNOWN", f"no complaint {complaint_id!r} on this case")
    return complaints[complaint_id]


def check_assignment(
    complaints: Mapping[str, Record], complaint_id: str, actor: Actor, handler: Actor, reason: str
) -> None:
    """The accountable department (or customer service, which dispatches complaints) names a handler;
    handing the complaint to another department needs a reason."""
    record = known(complaints, complaint_id)
    if record["status"] == CLOSED:
        raise _reject("COMPLAINT_CLOSED", f"complaint {complaint_id} is closed")
    if handler.department not in Department.__members__:
        raise _reject(
            "COMPLAINT_DEPARTMENT_UNKNOWN", f"{handler.department!r} is not a department of the utility"
        )
    if actor.department not in (record["department"], Department.CUSTOMER_SERVICE.value):
        raise _reject(
            "COMPLAINT_ACTOR_NOT_ACCOUNTABLE",
            f"complaint {complaint_id} is accountable to {record['department']}; "
            f"{actor.name} acts for {actor.department}",
        )
    if record.get("handler") == handler.person_id and handler.department == record["department"]:
        raise _reject("COMPLAINT_HANDLER_UNCHANGED", f"{handler.name} already holds complaint {complaint_id}")
    if handler.department != record["department"] and not reason.strip():
        raise _reject(
            "COMPLAINT_TRANSFER_NEEDS_REASON",
            f"moving complaint {complaint_id} to {handler.department} must state a reason",
        )


def check_resolver(complaints: Mapping[str, Record], complaint_id: str, actor: Actor) -> None:
    """An open complaint (``Case.resolve_complaint`` checks that) is resolved by its accountable
    department."""
    record = known(complaints, complaint_id)
    if actor.department != record["department"]:
        raise _reject(
            "COMPLAINT_ACTOR_NOT_ACCOUNTABLE",
            f"complaint {complaint_id} is accountable to {record['department']}; "
            f"{actor.name} acts for {actor.department}",
        )


def check_customer_answer(complaints: Mapping[str, Record], complaint_id: str) -> None:
    """The customer accepts or refuses a resolution only after one was given."""
    record = known(complaints, complaint_id)
    if record["status"] != RESOLVED:
        raise _reject(
            "COMPLAINT_NOT_RESOLVED",
            f"complaint {complaint_id} is {record['status'].lower()}; the customer answers a resolution",
        )
