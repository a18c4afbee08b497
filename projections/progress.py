"""Progress lookup (进度查询): one row per case for customers and staff.

Category, status, the open stage(s) with department and handler, the next step in the customer's words,
the timeline of stages with times and departments, and an expected completion date (an estimate from the
stage limits, ``projections.estimates``). Personal data is masked; look-ups go by case number or by
customer reference.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.calendar import SHANGHAI
from domain.privacy import mask_name
from domain.vocabulary import CaseStatus, Category, CustomerStep, Department, Stage
from infra.messages import CaseEventMessage
from infra.sla_config import SlaConfig
from projections.estimates import expected_completion
from projections.tables import CaseRows, Column, Row, Table

TABLE = Table(
    "case_progress",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("customer_ref", "text NOT NULL"),
        Column("customer_name_masked", "text NOT NULL"),
        Column("category", "text NOT NULL"),
        Column("category_label", "text NOT NULL"),
        Column("fast_track", "boolean NOT NULL"),
        Column("status", "text NOT NULL"),
        Column("status_label", "text NOT NULL"),
        Column("current_stages", "jsonb NOT NULL", json=True),
        Column("awaiting_customer", "text"),
        Column("next_step", "text NOT NULL"),
        Column("timeline", "jsonb NOT NULL", json=True),
        Column("route", "jsonb NOT NULL", json=True),
        Column("submitted_at", "timestamptz NOT NULL"),
        Column("accepted_at", "timestamptz"),
        Column("energised_at", "timestamptz"),
        Column("expected_completion", "date"),
        Column("expected_completion_provisional", "boolean"),
        Column("last_event", "text NOT NULL"),
        Column("updated_at", "timestamptz NOT NULL"),
    ),
    ("case_id",),
    indexes=(("case_number",), ("customer_ref",)),
)

CUSTOMER_WORDS: dict[str, str] = {
    CustomerStep.PROVIDE_DOCUMENTS: "请按一次性告知清单补充资料",
    CustomerStep.CONFIRM_PLAN: "请确认供电方案",
    CustomerStep.CUSTOMER_WORKS: "请完成受电工程设计与施工后报验",
}
STAGE_WORDS: dict[str, str] = {
    Stage.APPLICATION: "供电公司正在受理您的申请",
    Stage.SITE_SURVEY: "供电公司将上门现场勘查",
    Stage.SUPPLY_PLAN: "供电公司正在制定供电方案",
    Stage.DESIGN_REVIEW: "供电公司正在审查设计文件",
    Stage.MID_INSPECTION: "供电公司将进行中间检查",
    Stage.COMPLETION_INSPECTION: "供电公司将进行竣工检验",
    Stage.CONTRACT: "请与供电公司签订供用电合同",
    Stage.CONNECTION: "供电公司将为您装表接电",
    Stage.ARCHIVE: "已送电, 资料归档中",
    Stage.FOLLOW_UP: "已送电, 供电公司将进行回访",
}
CLOSED_WORDS = {
    CaseStatus.COMPLETED: "已办结, 感谢您的支持",
    CaseStatus.CANCELLED: "申请已撤销",
}


class ProgressProjection:
    """Progress lookup; expected completion dates from the active rule set (``config``)."""

    name = "progress"
    tables = (TABLE,)
    views = (
        "CREATE OR REPLACE VIEW progress_lookup AS SELECT case_number, customer_ref, customer_name_masked, "
        "category_label, status_label, current_stages, next_step, timeline, expected_completion, updated_at, "
        "expected_completion_provisional "
        "FROM case_progress",
    )

    def __init__(self, config: SlaConfig) -> None:
        self.config = config

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        if event.type == "ApplicationSubmitted":
            rows[TABLE.name] = [_new_row(event)]
            self._reestimate(rows[TABLE.name][0], event.occurred_at)
            return
        row = rows[TABLE.name][0]
        p = event.payload
        handler = _EVENTS.get(event.type)
        if handler is not None:
            handler(row, p, event)
        row["last_event"] = event.type
        row["updated_at"] = event.recorded_at
        row["next_step"] = _next_step(row)
        if event.type in _REESTIMATE:
            self._reestimate(row, event.occurred_at)

    def _reestimate(self, row: Row, now: datetime) -> None:
        _estimate(self.config, row, now)

    def replaying(self) -> DeferredProgressProjection:
        """This projection for a replay (a rebuild, a live worker's batch): the same rows, the expected
        completion estimated once per case at ``settle`` instead of after every event that can change it."""
        return DeferredProgressProjection(self.config)


_EstimateInputs = tuple[Any, Any, list[str], Any, Any, datetime]
"""What ``_estimate`` reads of a row (status, energised_at, the open stages, category, route) and its
instant."""


class DeferredProgressProjection(ProgressProjection):
    """``ProgressProjection`` with the estimate deferred until ``settle``. ``_estimate`` writes only the
    two expected-completion columns, which nothing else reads, from the row's status, energising time,
    open stages, category and route and the instant of the event: a later estimate overwrites an
    earlier one completely. So it is enough to keep, per case, those inputs as they stood at the last
    event that would have estimated, and estimate once from them (used by rebuilds, once per case,
    and by live workers, once per changed case at the end of each batch)."""

    def __init__(self, config: SlaConfig) -> None:
        super().__init__(config)
        self._due: dict[Any, _EstimateInputs] = {}
        """case id → the inputs of the last estimate due"""

    def _reestimate(self, row: Row, now: datetime) -> None:
        stages = [s["stage"] for s in row["current_stages"]]
        self._due[row["case_id"]] = (
            row["status"], row["energised_at"], stages, row["category"], row["route"], now
        )  # fmt: skip

    def settle(self, case_id: Any, rows: CaseRows) -> None:
        """Estimate the case's expected completion from the inputs of its last estimate due."""
        due = self._due.pop(case_id, None)
        if due is None:
            return
        status, energised_at, stages, category, route, now = due
        inputs: Row = {
            "status": status,
            "energised_at": energised_at,
            "current_stages": [{"stage": stage} for stage in stages],
            "category": category,
            "route": route,
        }
        _estimate(self.config, inputs, now)
        row = rows[TABLE.name][0]
        row["expected_completion"] = inputs["expected_completion"]
        row["expected_completion_provisional"] = inputs["expected_completion_provisional"]


_REESTIMATE = frozenset(
    {"StageOpened", "StageCompleted", "CaseReturned", "Energised", "CaseCompleted", "CaseCancelled"}
)
"""Events after which the expected completion date can change (the open stages or the status did)."""


def _new_row(event: CaseEventMessage) -> Row:
    p = event.payload
    row: Row = {
        "case_id": event.case_id,
        "case_number": p["case_number"],
        "customer_ref": p["customer_ref"],
        "customer_name_masked": mask_name(p["customer_name"]),
        "category": p["category"],
        "category_label": Category(p["category"]).label,
        "fast_track": p["fast_track"],
        "status": CaseStatus.APPLIED.value,
        "status_label": CaseStatus.APPLIED.label,
        "current_stages": [],
        "awaiting_customer": None,
        "timeline": [],
        "route": p["route"],
        "submitted_at": event.occurred_at,
        "accepted_at": None,
        "energised_at": None,
        "expected_completion": None,
        "expected_completion_provisional": False,
        "last_event": event.type,
        "updated_at": event.recorded_at,
    }
    row["next_step"] = _next_step(row)
    return row


def _set_status(row: Row, status: CaseStatus) -> None:
    row["status"], row["status_label"] = status.value, status.label


def _stage_opened(row: Row, p: dict[str, Any], event: CaseEventMessage) -> None:
    row["current_stages"] = [
        *row["current_stages"],
        {
            "stage": p["stage"],
            "stage_label": Stage(p["stage"]).label,
            "department": p["department"],
            "department_label": Department(p["department"]).label,
            "handler": None,
            "since": event.occurred_at.isoformat(),
        },
    ]
    if row["status"] == CaseStatus.APPLIED and p["stage"] != Stage.APPLICATION:
        _set_status(row, CaseStatus.IN_PROGRESS)


def _stage_completed(row: Row, p: dict[str, Any], event: CaseEventMessage) -> None:
    opened = next((s for s in row["current_stages"] if s["stage"] == p["stage"]), None)
    row["current_stages"] = [s for s in row["current_stages"] if s["stage"] != p["stage"]]
    row["timeline"] = [
        *row["timeline"],
        {
            "stage": p["stage"],
            "stage_label": Stage(p["stage"]).label,
            "department": p["department"],
            "department_label": Department(p["department"]).label,
            "opened_at": opened["since"] if opened else None,
            "completed_at": event.occurred_at.isoformat(),
            "outcome": p["outcome"],
        },
    ]


def _handler(row: Row, p: dict[str, Any], _: CaseEventMessage) -> None:
    for stage in row["current_stages"]:
        if stage["stage"] == p["stage"]:
            stage["handler"] = p["handler"]["name"]
            if "department" in p:
                stage["department"] = p["department"]
                stage["department_label"] = Department(p["department"]).label


def _withdraw(row: Row, _: dict[str, Any], __: CaseEventMessage) -> None:
    row["current_stages"] = []
    row["awaiting_customer"] = None


def _awaiting(row: Row, p: dict[str, Any], _: CaseEventMessage) -> None:
    row["awaiting_customer"] = p["step"]


def _customer_acted(row: Row, _: dict[str, Any], __: CaseEventMessage) -> None:
    row["awaiting_customer"] = None


def _accepted(row: Row, _: dict[str, Any], event: CaseEventMessage) -> None:
    row["accepted_at"] = event.occurred_at
    _set_status(row, CaseStatus.IN_PROGRESS)


def _energised(row: Row, _: dict[str, Any], event: CaseEventMessage) -> None:
    row["energised_at"] = event.occurred_at
    _set_status(row, CaseStatus.ENERGISED)


def _cancelled(row: Row, p: dict[str, Any], event: CaseEventMessage) -> None:
    _withdraw(row, p, event)
    _set_status(row, CaseStatus.CANCELLED)


_EVENTS = {
    "StageOpened": _stage_opened,
    "StageCompleted": _stage_completed,
    "HandlerAssigned": _handler,
    "HandlerReassigned": _handler,
    "CustomerStepAwaited": _awaiting,
    "SupplementProvided": lambda row, p, e: _customer_acted(row, p, e) if not p["still_missing"] else None,
    "SupplyPlanConfirmed": _customer_acted,
    "SupplyPlanObjected": _customer_acted,
    "DesignSubmitted": _customer_acted,
    "MidInspectionRequested": _customer_acted,
    "CompletionReported": _customer_acted,
    "ApplicationAccepted": _accepted,
    "Energised": _energised,
    "CaseCompleted": lambda row, p, e: _set_status(row, CaseStatus.COMPLETED),
    "CaseReturned": _withdraw,
    "CaseCancelled": _cancelled,
}


def _next_step(row: Row) -> str:
    status = CaseStatus(row["status"])
    if status in CLOSED_WORDS:
        return CLOSED_WORDS[status]
    if row["awaiting_customer"]:
        return CUSTOMER_WORDS[row["awaiting_customer"]]
    if row["current_stages"]:
        return STAGE_WORDS[min((s["stage"] for s in row["current_stages"]), key=lambda s: Stage(s).position)]
    return "供电公司正在处理"


def _estimate(config: SlaConfig, row: Row, now: datetime) -> None:
    if row["status"] in (CaseStatus.ENERGISED, CaseStatus.COMPLETED, CaseStatus.CANCELLED):
        row["expected_completion"] = (
            row["energised_at"].astimezone(SHANGHAI).date() if row["energised_at"] else None
        )
        row["expected_completion_provisional"] = False
        return
    stages = [s["stage"] for s in row["current_stages"]] or [Stage.APPLICATION.value]
    earliest = min(stages, key=lambda s: Stage(s).position)
    expected = expected_completion(config, row["category"], row["route"], earliest, now)
    provisional_from = config.calendar.provisional_from
    row["expected_completion"] = expected
    row["expected_completion_provisional"] = bool(
        expected and provisional_from and expected >= provisional_from
    )
