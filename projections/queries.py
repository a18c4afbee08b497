"""Named read-model queries for the HTTP API (and anything else that reads the read models by question).

Each function answers one question from the tables and views the projections maintain; rows come back as
dicts of column name → value. Ageing is computed against ``now`` passed in, so answers are reproducible.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]


def _rows(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def case_progress(conn: psycopg.Connection[Any], case_number: str) -> Row | None:
    """The progress row of one case (进度查询), or None when the read model has not seen it."""
    rows = _rows(
        conn,
        "SELECT case_number, customer_ref, customer_name_masked, category, category_label, fast_track, "
        "status, status_label, current_stages, awaiting_customer, next_step, timeline, submitted_at, "
        "accepted_at, energised_at, expected_completion, expected_completion_provisional, last_event, "
        "updated_at FROM case_progress WHERE case_number = %(case_number)s",
        {"case_number": case_number},
    )
    return rows[0] if rows else None


def cases_of_customer(conn: psycopg.Connection[Any], customer_ref: str, limit: int = 100) -> list[Row]:
    """A customer's cases, newest first."""
    return _rows(
        conn,
        "SELECT case_number, category_label, status, status_label, next_step, expected_completion, "
        "submitted_at FROM case_progress WHERE customer_ref = %(ref)s ORDER BY submitted_at DESC "
        "LIMIT %(limit)s",
        {"ref": customer_ref, "limit": limit},
    )


def department_queue(
    conn: psycopg.Connection[Any], department: str, now: datetime, limit: int = 200
) -> list[Row]:
    """A department's open work items (待办) with age and the running clock's deadline, in dispatch order:
    special care (特殊关怀) first, then the higher priority tier, the nearer deadline, the older item."""
    return _rows(
        conn,
        """
        SELECT w.case_number, w.item_no, w.kind, w.stage, w.department, w.handler_id, w.handler_name,
               w.received_at, extract(epoch FROM %(now)s - w.received_at)::bigint AS age_seconds,
               c.deadline_at AS due_at, c.clock_id, coalesce(d.special_care, false) AS special_care,
               coalesce(d.priority_tier, 0) AS priority_tier,
               coalesce(d.escalation_level, 0) AS escalation_level
        FROM work_items w
        LEFT JOIN case_dispatch d ON d.case_id = w.case_id
        LEFT JOIN LATERAL (
            SELECT deadline_at, clock_id FROM sla_clocks c
            WHERE c.case_id = w.case_id AND c.stopped_at IS NULL AND c.stage = w.stage
              AND (w.kind <> 'REVIEW' OR c.review_department = w.department)
            ORDER BY (c.review_department IS NULL) = (w.kind <> 'REVIEW') DESC, c.deadline_at NULLS LAST
            LIMIT 1
        ) c ON true
        WHERE w.department = %(department)s AND w.completed_at IS NULL
        ORDER BY coalesce(d.special_care, false) DESC, coalesce(d.priority_tier, 0) DESC,
                 c.deadline_at NULLS LAST, w.received_at, w.case_number, w.item_no
        LIMIT %(limit)s
        """,
        {"department": department, "now": now, "limit": limit},
    )


def escalated_cases(
    conn: psycopg.Connection[Any], department: str | None = None, limit: int = 200
) -> list[Row]:
    """Open cases under 督办, latest escalation first; optionally those escalated to one department."""
    return _rows(
        conn,
        """
        SELECT case_number, escalation_level, escalations, escalated_at, escalated_by, escalation_reason,
               escalated_departments, priority_tier, special_care
        FROM escalated_cases
        WHERE %(department)s::text IS NULL OR escalated_departments ? %(department)s
        ORDER BY escalated_at DESC, case_number LIMIT %(limit)s
        """,
        {"department": department, "limit": limit},
    )


def department_inbox(
    conn: psycopg.Connection[Any], department: str, now: datetime, limit: int = 200
) -> list[Row]:
    """A department's unacknowledged notifications (收件箱), with age and due date, oldest first."""
    return _rows(
        conn,
        """
        SELECT notification_id, recipient_kind, case_number, kind, message, due_at, created_at,
               escalated_at, extract(epoch FROM %(now)s - created_at)::bigint AS age_seconds,
               (due_at IS NOT NULL AND due_at < %(now)s) AS overdue
        FROM department_inbox WHERE department = %(department)s
        ORDER BY created_at, notification_id LIMIT %(limit)s
        """,
        {"department": department, "now": now, "limit": limit},
    )


def notification(conn: psycopg.Connection[Any], notification_id: str) -> Row | None:
    """One notification: its case, recipient and whether it was acknowledged."""
    rows = _rows(
        conn,
        "SELECT notification_id, case_number, recipient_kind, recipient, acknowledged_at "
        "FROM notifications WHERE notification_id::text = %(id)s",
        {"id": notification_id},
    )
    return rows[0] if rows else None


def department_workload(conn: psycopg.Connection[Any]) -> list[Row]:
    """Open items per department with ageing buckets (部门工作量)."""
    return _rows(conn, "SELECT * FROM department_workload ORDER BY department", {})


def sla_open_clocks(
    conn: psycopg.Connection[Any], department: str | None = None, limit: int = 200
) -> list[Row]:
    """Running clocks (在途时限), nearest deadline first; optionally one holding department's."""
    return _rows(
        conn,
        "SELECT * FROM sla_open_clocks WHERE (%(department)s::text IS NULL OR holder_department = "
        "%(department)s) ORDER BY deadline_at NULLS LAST, clock_id LIMIT %(limit)s",
        {"department": department, "limit": limit},
    )


def sla_crossings(
    conn: psycopg.Connection[Any],
    *,
    level: str | None = None,
    department: str | None = None,
    first: date | None = None,
    last: date | None = None,
    limit: int = 200,
) -> list[Row]:
    """Warnings and breaches (预警/超期) recorded, newest first, filtered by level, department and day."""
    return _rows(
        conn,
        """
        SELECT clock_id, level, case_number, category, kind, stage, share, crossed_at, detected_at,
               department, handler, rule_set, rule_version, calendar_version
        FROM sla_crossings
        WHERE (%(level)s::text IS NULL OR level = %(level)s)
          AND (%(department)s::text IS NULL OR department = %(department)s)
          AND (%(first)s::date IS NULL OR (crossed_at AT TIME ZONE 'Asia/Shanghai')::date >= %(first)s)
          AND (%(last)s::date IS NULL OR (crossed_at AT TIME ZONE 'Asia/Shanghai')::date <= %(last)s)
        ORDER BY crossed_at DESC, clock_id, level LIMIT %(limit)s
        """,
        {"level": level, "department": department, "first": first, "last": last, "limit": limit},
    )


# ---- the managers' dashboard (api/dashboard.py) ------------------------------------------------------


def open_cases_by_stage(conn: psycopg.Connection[Any]) -> list[Row]:
    """在办工单 open cases per open utility stage and category (a case in parallel stages counts in each),
    plus cases waiting for the customer (stage ``None``, ``awaiting_customer`` set)."""
    return _rows(
        conn,
        """
        SELECT s.stage, p.category, NULL::text AS awaiting_customer, count(*) AS cases
        FROM case_progress p CROSS JOIN LATERAL jsonb_to_recordset(p.current_stages) AS s(stage text)
        WHERE p.status NOT IN ('COMPLETED', 'CANCELLED')
        GROUP BY s.stage, p.category
        UNION ALL
        SELECT NULL, category, awaiting_customer, count(*) FROM case_progress
        WHERE status NOT IN ('COMPLETED', 'CANCELLED') AND awaiting_customer IS NOT NULL
        GROUP BY category, awaiting_customer
        ORDER BY 1 NULLS LAST, 2, 3
        """,
        {},
    )


def sla_crossing_counts(conn: psycopg.Connection[Any], department: str | None = None) -> list[Row]:
    """Warnings and breaches recorded per level, department and handler (预警/超期统计), most first."""
    return _rows(
        conn,
        """
        SELECT level, department, handler, count(*) AS crossings FROM sla_crossings
        WHERE (%(department)s::text IS NULL OR department = %(department)s)
        GROUP BY level, department, handler ORDER BY crossings DESC, level, department, handler
        """,
        {"department": department},
    )


def stage_bottlenecks(conn: psycopg.Connection[Any], now: datetime) -> list[Row]:
    """瓶颈环节 where cases wait: open work items per stage with their average and longest wait, and the
    running clocks of that stage already past their deadline; the longest average wait first."""
    return _rows(
        conn,
        """
        SELECT w.stage, count(*) AS open_items,
               extract(epoch FROM avg(%(now)s - w.received_at))::bigint AS average_wait_seconds,
               extract(epoch FROM max(%(now)s - w.received_at))::bigint AS longest_wait_seconds,
               (SELECT count(*) FROM sla_clocks c WHERE c.stopped_at IS NULL AND c.stage = w.stage
                  AND c.deadline_at < %(now)s) AS clocks_overdue
        FROM work_items w WHERE w.completed_at IS NULL
        GROUP BY w.stage ORDER BY average_wait_seconds DESC, w.stage
        """,
        {"now": now},
    )


def department_time_in_hand(conn: psycopg.Connection[Any], department: str) -> list[Row]:
    """在手时长 of a department's completed items per kind: how many, average and longest, in seconds."""
    return _rows(
        conn,
        """
        SELECT kind, completed_items, extract(epoch FROM average_time_in_hand)::bigint AS average_seconds,
               extract(epoch FROM longest_time_in_hand)::bigint AS longest_seconds
        FROM department_time_in_hand WHERE department = %(department)s ORDER BY kind
        """,
        {"department": department},
    )


def handler_workload(conn: psycopg.Connection[Any], department: str) -> list[Row]:
    """A department's handlers with their open items and the age of the oldest, busiest first."""
    return _rows(
        conn,
        """
        SELECT handler_id, handler_name, open_items,
               extract(epoch FROM oldest_item_age)::bigint AS oldest_item_seconds
        FROM handler_workload WHERE department = %(department)s
        ORDER BY open_items DESC, handler_id
        """,
        {"department": department},
    )


def case_work_items(conn: psycopg.Connection[Any], case_number: str) -> list[Row]:
    """Who held each stage and review of a case (责任人), in the order they received it."""
    return _rows(
        conn,
        """
        SELECT item_no, kind, stage, department, handler_id, handler_name, received_at, completed_at,
               outcome
        FROM work_items WHERE case_number = %(case_number)s ORDER BY received_at, item_no
        """,
        {"case_number": case_number},
    )
