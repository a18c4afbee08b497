"""Party performance (参建单位履约): each registered party's steps on cases, their results, and complaints.

A *step* is one request a party made for a customer: a design submitted (design institute), a
mid-inspection requested or a completion reported (contractor). It starts when the case began awaiting
the customer's works (the plan confirmed, or the previous review or inspection answered — a failure
makes the next step a rework), ends at the request, and is concluded by the utility's review or
inspection (passed or failed), or withdrawn by a return or cancellation. A complaint is linked to a party
when its payload names one (``party_id``) or, failing that, when it is filed while a party's work is under
way on the case (from its first step until the completion inspection passes).

The grading (``domain.party_grading``) is computed from these rows with thresholds from a data file;
the rows themselves hold only facts, so a change of thresholds needs no rebuild.
"""

from __future__ import annotations

from typing import Any

import psycopg

from domain.party_grading import GradingRules, PartyRecord, StepFact, grade_party
from infra.messages import CaseEventMessage
from projections.tables import CaseRows, Column, Row, Table

STEP_EVENTS = {
    "DesignSubmitted": "DESIGN_REVIEW",
    "MidInspectionRequested": "MID_INSPECTION",
    "CompletionReported": "COMPLETION_INSPECTION",
}
RESULT_EVENTS = {
    "DesignReviewed": ("DESIGN_REVIEW", "issues"),
    "MidInspectionRecorded": ("MID_INSPECTION", "issues"),
    "CompletionInspected": ("COMPLETION_INSPECTION", "rectifications"),
}

STEPS = Table(
    "party_steps",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("step_no", "int NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("party_id", "text NOT NULL"),
        Column("stage", "text NOT NULL"),
        Column("attempt", "int NOT NULL"),
        Column("awaited_at", "timestamptz"),
        Column("submitted_at", "timestamptz NOT NULL"),
        Column("concluded_at", "timestamptz"),
        Column("outcome", "text"),
        Column("findings", "int NOT NULL"),
    ),
    ("case_id", "step_no"),
    indexes=(("party_id",),),
)
COMPLAINTS = Table(
    "party_complaints",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("complaint_id", "text NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("party_id", "text NOT NULL"),
        Column("filed_at", "timestamptz NOT NULL"),
    ),
    ("case_id", "complaint_id"),
    indexes=(("party_id",),),
)
CASE_STATE = Table(
    "party_case_state",
    (
        Column("case_id", "uuid NOT NULL"),
        Column("awaited_at", "timestamptz"),
        Column("working_party", "text"),
    ),
    ("case_id",),
)

VIEWS = (
    """CREATE OR REPLACE VIEW party_performance AS
    SELECT s.party_id,
           count(*) AS steps,
           count(DISTINCT s.case_id) AS cases,
           count(*) FILTER (WHERE s.attempt = 1 AND s.outcome IN ('PASSED', 'FAILED')) AS first_attempts,
           count(*) FILTER (WHERE s.attempt = 1 AND s.outcome = 'PASSED') AS first_passes,
           count(*) FILTER (WHERE s.outcome = 'FAILED') AS reworks,
           coalesce(max(c.complaints), 0) AS complaints
    FROM party_steps s
    LEFT JOIN (SELECT party_id, count(*) AS complaints FROM party_complaints GROUP BY party_id) c
           ON c.party_id = s.party_id
    GROUP BY s.party_id""",
)


class PartyPerformanceProjection:
    name = "party_performance"
    tables = (STEPS, COMPLAINTS, CASE_STATE)
    views = VIEWS

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        steps = rows.setdefault(STEPS.name, [])
        complaints = rows.setdefault(COMPLAINTS.name, [])
        state = _case_state(rows, event)
        p = event.payload
        if event.type == "CustomerStepAwaited" and p.get("step") == "CUSTOMER_WORKS":
            state["awaited_at"] = event.occurred_at
        elif event.type in STEP_EVENTS and p.get("party_id"):
            stage = STEP_EVENTS[event.type]
            earlier = [s for s in steps if s["stage"] == stage and s["party_id"] == p["party_id"]]
            steps.append(
                {
                    "case_id": event.case_id,
                    "step_no": len(steps) + 1,
                    "case_number": event.case_number,
                    "party_id": p["party_id"],
                    "stage": stage,
                    "attempt": len(earlier) + 1,
                    "awaited_at": state["awaited_at"],
                    "submitted_at": event.occurred_at,
                    "concluded_at": None,
                    "outcome": None,
                    "findings": 0,
                }
            )
            state["working_party"] = p["party_id"]
        elif event.type in RESULT_EVENTS:
            stage, findings = RESULT_EVENTS[event.type]
            for step in _open(steps, stage):
                step["concluded_at"] = event.occurred_at
                step["outcome"] = "PASSED" if p.get("passed") else "FAILED"
                step["findings"] = len(p.get(findings) or [])
            if stage == "COMPLETION_INSPECTION" and p.get("passed"):
                state["working_party"] = None
        elif event.type in ("CaseReturned", "CaseCancelled"):
            for step in _open(steps):
                step["concluded_at"], step["outcome"] = event.occurred_at, "WITHDRAWN"
        elif event.type in ("ComplaintFiled", "ComplaintLodged"):
            party = p.get("party_id") or state["working_party"]
            complaint_id = str(p.get("complaint_id") or f"v{event.case_version}")
            if party and all(c["complaint_id"] != complaint_id for c in complaints):
                complaints.append(
                    {
                        "case_id": event.case_id,
                        "complaint_id": complaint_id,
                        "case_number": event.case_number,
                        "party_id": party,
                        "filed_at": event.occurred_at,
                    }
                )


def _case_state(rows: CaseRows, event: CaseEventMessage) -> Row:
    states = rows.setdefault(CASE_STATE.name, [])
    if not states:
        states.append({"case_id": event.case_id, "awaited_at": None, "working_party": None})
    return states[0]


def _open(steps: list[Row], stage: str | None = None) -> list[Row]:
    return [s for s in steps if s["outcome"] is None and (stage is None or s["stage"] == stage)]


def read_party_records(conn: psycopg.Connection[Any], rules: GradingRules) -> list[PartyRecord]:
    """Every party's graded record from the read model, best grade first, then by party id."""
    steps: dict[str, list[StepFact]] = {}
    for party_id, case_number, stage, attempt, awaited_at, submitted_at, outcome in conn.execute(
        "SELECT party_id, case_number, stage, attempt, awaited_at, submitted_at, outcome FROM party_steps"
    ).fetchall():
        steps.setdefault(party_id, []).append(
            StepFact(case_number, stage, attempt, awaited_at, submitted_at, outcome)
        )
    complaints = dict(
        conn.execute("SELECT party_id, count(*) FROM party_complaints GROUP BY party_id").fetchall()
    )
    records = [
        grade_party(party_id, facts, int(complaints.get(party_id, 0)), rules)
        for party_id, facts in {**{p: [] for p in complaints}, **steps}.items()
    ]
    return sorted(records, key=lambda r: (r.grade, r.party_id))
