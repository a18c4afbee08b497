"""Department workload (部门工作量): open work items per department and handler, ageing, flow, time in hand.

A work item is a stage held by a department (and, once assigned, a handler) or one department's parallel
review of a supply plan. It is received when the stage opens or the review is requested and completed
when the stage completes, the review is answered, the holder changes (改派: a new item starts), or the
case is returned or cancelled (withdrawn). The views compute ageing against the current time.

Beside the items, one ``case_dispatch`` row per case keeps what orders the queues (special care, priority
tier; set at submission, changed by ``PriorityChanged``) and the case's 督办 (``escalated_cases`` view).
"""

from __future__ import annotations

from typing import Any

from infra.messages import CaseEventMessage
from projections.tables import CaseRows, Column, Row, Table

TABLE = Table(
    "work_items",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("item_no", "int NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("kind", "text NOT NULL"),
        Column("stage", "text NOT NULL"),
        Column("department", "text NOT NULL"),
        Column("handler_id", "text"),
        Column("handler_name", "text"),
        Column("received_at", "timestamptz NOT NULL"),
        Column("completed_at", "timestamptz"),
        Column("outcome", "text"),
    ),
    ("case_id", "item_no"),
    indexes=(("department", "completed_at"),),
)
DISPATCH = Table(
    "case_dispatch",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("priority_tier", "int NOT NULL"),
        Column("special_care", "boolean NOT NULL"),
        Column("closed_at", "timestamptz"),
        Column("escalation_level", "int NOT NULL"),
        Column("escalations", "int NOT NULL"),
        Column("escalated_at", "timestamptz"),
        Column("escalated_by", "text"),
        Column("escalation_reason", "text"),
        Column("escalated_departments", "jsonb", json=True),
    ),
    ("case_id",),
    indexes=(("escalated_at",),),
)
"""One row per case: what orders every queue (特殊关怀 first, then the priority tier) and its 督办 state."""

VIEWS = (
    """CREATE OR REPLACE VIEW department_workload AS
    SELECT department,
           count(*) AS open_items,
           count(*) FILTER (WHERE kind = 'REVIEW') AS pending_reviews,
           count(*) FILTER (WHERE now() - received_at < interval '1 day') AS aged_under_1d,
           count(*) FILTER (WHERE now() - received_at >= interval '1 day'
                              AND now() - received_at < interval '3 days') AS aged_1_3d,
           count(*) FILTER (WHERE now() - received_at >= interval '3 days'
                              AND now() - received_at < interval '7 days') AS aged_3_7d,
           count(*) FILTER (WHERE now() - received_at >= interval '7 days') AS aged_over_7d
    FROM work_items WHERE completed_at IS NULL GROUP BY department""",
    """CREATE OR REPLACE VIEW handler_workload AS
    SELECT department, handler_id, handler_name, count(*) AS open_items,
           max(now() - received_at) AS oldest_item_age
    FROM work_items WHERE completed_at IS NULL AND handler_id IS NOT NULL
    GROUP BY department, handler_id, handler_name""",
    """CREATE OR REPLACE VIEW department_daily_flow AS
    SELECT department, day, sum(received) AS received, sum(completed) AS completed FROM (
        SELECT department, (received_at AT TIME ZONE 'Asia/Shanghai')::date AS day, 1 AS received,
               0 AS completed FROM work_items
        UNION ALL
        SELECT department, (completed_at AT TIME ZONE 'Asia/Shanghai')::date, 0, 1
        FROM work_items WHERE completed_at IS NOT NULL
    ) flow GROUP BY department, day""",
    """CREATE OR REPLACE VIEW escalated_cases AS
    SELECT case_number, escalation_level, escalations, escalated_at, escalated_by, escalation_reason,
           escalated_departments, priority_tier, special_care
    FROM case_dispatch WHERE escalations > 0 AND closed_at IS NULL""",
    """CREATE OR REPLACE VIEW department_time_in_hand AS
    SELECT department, kind, count(*) AS completed_items,
           avg(completed_at - received_at) AS average_time_in_hand,
           max(completed_at - received_at) AS longest_time_in_hand
    FROM work_items WHERE completed_at IS NOT NULL GROUP BY department, kind""",
)


class WorkloadProjection:
    name = "workload"
    tables = (TABLE, DISPATCH)
    views = VIEWS

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        _dispatch(rows, event)
        items = rows.setdefault(TABLE.name, [])
        p = event.payload
        kind = event.type
        if kind == "StageOpened":
            _receive(items, event, "STAGE", p["stage"], p["department"])
        elif kind == "StageCompleted":
            _complete(items, event, p["outcome"], kind="STAGE", stage=p["stage"])
        elif kind == "HandlerAssigned":
            for item in _open(items, kind="STAGE", stage=p["stage"]):
                item["handler_id"], item["handler_name"] = p["handler"]["person_id"], p["handler"]["name"]
        elif kind == "HandlerReassigned":
            _complete(items, event, "REASSIGNED", kind="STAGE", stage=p["stage"])
            _receive(items, event, "STAGE", p["stage"], p["department"], p["handler"])
        elif kind == "PlanReviewsRequested":
            for department in p["departments"]:
                _receive(items, event, "REVIEW", "SUPPLY_PLAN", department)
        elif kind == "PlanReviewApproved":
            _complete(items, event, "APPROVED", kind="REVIEW", department=p["department"])
        elif kind == "PlanReviewRejected":
            _complete(items, event, "REJECTED", kind="REVIEW", department=p["department"])
            _complete(items, event, "WITHDRAWN", kind="REVIEW")
        elif kind in ("CaseReturned", "CaseCancelled"):
            _complete(items, event, "WITHDRAWN")


def _dispatch(rows: CaseRows, event: CaseEventMessage) -> None:
    """The case's priority and escalation row. A case whose history began before this table existed gets
    its row at its next event (priority normal until ``yekuo projections rebuild workload``)."""
    p = event.payload
    dispatch = rows.setdefault(DISPATCH.name, [])
    if not dispatch:
        dispatch.append(
            {
                "case_id": event.case_id,
                "case_number": event.case_number,
                "priority_tier": p.get("priority_tier", 0),
                "special_care": p.get("special_care", False),
                "closed_at": None,
                "escalation_level": 0,
                "escalations": 0,
                "escalated_at": None,
                "escalated_by": None,
                "escalation_reason": None,
                "escalated_departments": [],
            }
        )
    row = dispatch[0]
    if event.type == "PriorityChanged":
        row["priority_tier"], row["special_care"] = p["priority_tier"], p["special_care"]
    elif event.type == "CaseEscalated":
        row["escalation_level"], row["escalations"] = p["level"], row["escalations"] + 1
        row["escalated_at"], row["escalated_by"] = event.occurred_at, event.actor.name
        row["escalation_reason"] = event.reason
        row["escalated_departments"] = p.get("departments", [])  # absent from v1 messages
    elif event.type == "NotificationEscalated":
        row["escalation_level"] = p["level"]
    elif event.type in ("CaseCompleted", "CaseCancelled"):
        row["closed_at"] = event.occurred_at


def _open(items: list[Row], **match: Any) -> list[Row]:
    return [
        item
        for item in items
        if item["completed_at"] is None and all(item[key] == value for key, value in match.items())
    ]


def _receive(
    items: list[Row],
    event: CaseEventMessage,
    kind: str,
    stage: str,
    department: str,
    handler: dict[str, Any] | None = None,
) -> None:
    items.append(
        {
            "case_id": event.case_id,
            "item_no": len(items) + 1,
            "case_number": event.case_number,
            "kind": kind,
            "stage": stage,
            "department": department,
            "handler_id": handler["person_id"] if handler else None,
            "handler_name": handler["name"] if handler else None,
            "received_at": event.occurred_at,
            "completed_at": None,
            "outcome": None,
        }
    )


def _complete(items: list[Row], event: CaseEventMessage, outcome: str, **match: Any) -> None:
    for item in _open(items, **match):
        item["completed_at"], item["outcome"] = event.occurred_at, outcome
