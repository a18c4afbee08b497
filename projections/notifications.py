"""Cross-department notifications (跨部门协同通知): department inboxes, supervisor escalations, customers.

A notification is derived from one fact of the case history and gets an id from that fact (case, version,
recipient), so a redelivered or replayed event can never make a second one:
- a stage opens with a department other than the one that handed it over, a case is reassigned to another
  department, or a parallel review is requested → that department's inbox, with a due date;
- an unacknowledged notification is escalated (``NotificationEscalated``, a case event issued by
  ``consumers.escalator``) → the supervisor of that department;
- a case is escalated (督办, ``CaseEscalated``) → the supervisor of each department holding it then;
- milestones the customer cares about → the customer (by customer reference);
- a complaint (投诉) lodged, moved to another department or reopened by the customer → the accountable
  department, due at the rule set's complaint limit (``projections.quality.complaint_notice``).
Acknowledging is a case command too (``AcknowledgeNotification``), so the inbox is rebuildable.
Handing notifications to SMS/IM gateways is ``consumers.dispatcher``'s job; its ledger is not a read model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.vocabulary import Department, Stage
from infra.messages import CaseEventMessage
from infra.sla_config import SlaConfig
from projections.estimates import INTERNAL_STEP_DAYS, due_after, review_limit_days, stage_limit_days
from projections.quality import complaint_notice
from projections.tables import CaseRows, Column, Row, Table

_NAMESPACE = uuid5(NAMESPACE_URL, "https://yekuo.example/notifications")

NOTIFICATIONS = Table(
    "notifications",
    (
        Column("notification_id", "uuid NOT NULL"),
        Column("case_id", "uuid NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("case_version", "bigint NOT NULL"),
        Column("recipient_kind", "text NOT NULL"),
        Column("recipient", "text NOT NULL"),
        Column("kind", "text NOT NULL"),
        Column("message", "text NOT NULL"),
        Column("due_at", "timestamptz"),
        Column("created_at", "timestamptz NOT NULL"),
        Column("acknowledged_at", "timestamptz"),
        Column("acknowledged_by", "text"),
        Column("escalated_at", "timestamptz"),
    ),
    ("notification_id",),
    indexes=(("recipient_kind", "recipient", "acknowledged_at"),),
)
CASE_FACTS = Table(
    "notification_cases",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("customer_ref", "text NOT NULL"),
        Column("category", "text NOT NULL"),
    ),
    ("case_id",),
)

CUSTOMER_MILESTONES = {
    "ApplicationAccepted": "您的用电申请已受理",
    "SupplementRequested": "您的申请资料需补充, 请查看一次性告知清单",
    "SupplyPlanReplied": "供电方案已答复, 请确认",
    "DesignReviewed": "设计审查已出结论",
    "MidInspectionRecorded": "中间检查已出结论",
    "CompletionInspected": "竣工检验已出结论",
    "ConnectionScheduled": "装表接电已预约",
    "Energised": "已送电",
    "CaseCancelled": "您的申请已撤销",
    "ComplaintResolved": "您的投诉已处理, 请确认处理结果",
}


def notification_id_for(case_id: UUID, version: int, recipient_kind: str, recipient: str) -> UUID:
    return uuid5(_NAMESPACE, f"{case_id}:{version}:{recipient_kind}:{recipient}")


class NotificationsProjection:
    """Inboxes; due dates from the active rule set (``config``)."""

    name = "notifications"
    tables = (NOTIFICATIONS, CASE_FACTS)
    views = (
        """CREATE OR REPLACE VIEW department_inbox AS
        SELECT recipient AS department, recipient_kind, notification_id, case_number, kind, message, due_at,
               created_at, escalated_at
        FROM notifications
        WHERE recipient_kind IN ('DEPARTMENT', 'SUPERVISOR') AND acknowledged_at IS NULL""",
    )

    def __init__(self, config: SlaConfig) -> None:
        self.config = config

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        notes = rows.setdefault(NOTIFICATIONS.name, [])
        p = event.payload
        if event.type == "ApplicationSubmitted":
            rows[CASE_FACTS.name] = [
                {"case_id": event.case_id, "customer_ref": p["customer_ref"], "category": p["category"]}
            ]
            return
        facts = rows[CASE_FACTS.name][0]
        on = event.occurred_at.date()

        def due(days: int) -> datetime | None:
            return due_after(self.config, event.occurred_at, days)

        def notify(
            kind_of_recipient: str, recipient: str, kind: str, message: str, due_at: datetime | None
        ) -> None:
            notes.append(_notification(event, kind_of_recipient, recipient, kind, message, due_at))

        number = event.case_number
        if event.type == "StageOpened" and p["department"] != event.actor.department:
            stage = Stage(p["stage"])
            days = stage_limit_days(self.config, facts["category"], stage, on)
            notify(
                "DEPARTMENT",
                p["department"],
                "STAGE_ARRIVED",
                f"案件 {number} 已转至本部门: {stage.label}",
                due(days),
            )
        elif event.type == "HandlerReassigned" and p["department"] != event.actor.department:
            stage = Stage(p["stage"])
            notify(
                "DEPARTMENT",
                p["department"],
                "REASSIGNED",
                f"案件 {number} 已改派至本部门: {stage.label}",
                due(INTERNAL_STEP_DAYS),
            )
        elif event.type == "PlanReviewsRequested":
            for department in p["departments"]:
                notify(
                    "DEPARTMENT",
                    department,
                    "REVIEW_REQUESTED",
                    f"案件 {number} 供电方案请会签",
                    due(review_limit_days(self.config, on)),
                )
        elif event.type == "NotificationAcknowledged":
            for note in _find(notes, p["notification_id"]):
                note["acknowledged_at"], note["acknowledged_by"] = event.occurred_at, event.actor.name
        elif event.type == "NotificationEscalated":
            for note in _find(notes, p["notification_id"]):
                note["escalated_at"] = event.occurred_at
                label = Department(p["department"]).label
                notify(
                    "SUPERVISOR",
                    p["department"],
                    "ESCALATED",
                    f"督办: {label} 未及时确认 — {note['message']}",
                    None,
                )
        elif event.type == "CaseEscalated":
            for department in p.get("departments", []):  # v1 escalations named none
                notify(
                    "SUPERVISOR",
                    department,
                    "CASE_ESCALATED",
                    f"督办: 案件 {number} (第 {p['level']} 次) — {event.reason}",
                    None,
                )
        elif event.type == "SlaThresholdCrossed" and p["department"] in Department.__members__:
            self._sla(notify, p, number)
        elif (notice := complaint_notice(event)) is not None:
            limit = self.config.rules.in_force(self.config.rule_set, on).complaint_limit(facts["category"])
            notify("DEPARTMENT", *notice, due(limit or INTERNAL_STEP_DAYS))
        if event.type in CUSTOMER_MILESTONES:
            notify(
                "CUSTOMER",
                facts["customer_ref"],
                event.type,
                f"{CUSTOMER_MILESTONES[event.type]} (工单 {number})",
                None,
            )

    @staticmethod
    def _sla(notify: Any, p: dict[str, Any], number: str) -> None:
        """Notice → the holding department; warning (80 %) → also its supervisor; breach → both."""
        stage = "投诉处理" if p["stage"] == "COMPLAINT" else Stage(p["stage"]).label
        holder = f"{Department(p['department']).label}{' ' + p['handler'] if p['handler'] else ''}"
        words = {"NOTICE": "时限过半", "WARNING": "时限预警", "BREACH": "已超期"}[p["level"]]
        message = f"{words}: 案件 {number} {stage} (责任: {holder})"
        notify("DEPARTMENT", p["department"], f"SLA_{p['level']}", message, None)
        if p["level"] in ("WARNING", "BREACH"):
            notify("SUPERVISOR", p["department"], f"SLA_{p['level']}", message, None)


def _find(notes: list[Row], notification_id: str) -> list[Row]:
    return [note for note in notes if str(note["notification_id"]) == notification_id]


def _notification(
    event: CaseEventMessage,
    recipient_kind: str,
    recipient: str,
    kind: str,
    message: str,
    due_at: datetime | None,
) -> Row:
    return {
        "notification_id": notification_id_for(event.case_id, event.case_version, recipient_kind, recipient),
        "case_id": event.case_id,
        "case_number": event.case_number,
        "case_version": event.case_version,
        "recipient_kind": recipient_kind,
        "recipient": recipient,
        "kind": kind,
        "message": message,
        "due_at": due_at,
        "created_at": event.occurred_at,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "escalated_at": None,
    }
