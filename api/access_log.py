"""The record of unmasked reads (敏感信息访问留痕): who read which case's personal data, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from api.security import Principal

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_access_log (
    access_id bigserial PRIMARY KEY,
    accessed_at timestamptz NOT NULL,
    person_id text NOT NULL,
    person_name text NOT NULL,
    department text NOT NULL,
    role text NOT NULL,
    case_number text NOT NULL,
    resource text NOT NULL,
    reason text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_access_log_case ON audit_access_log (case_number, accessed_at);
"""


def create_access_log(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('yekuo.audit-access-log'))")
        conn.execute(SCHEMA)


def record_access(
    conn: psycopg.Connection[Any],
    principal: Principal,
    case_number: str,
    resource: str,
    reason: str,
    at: datetime,
) -> None:
    """Write one unmasked read; the read is answered only after this row is committed."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO audit_access_log (accessed_at, person_id, person_name, department, role, "
            "case_number, resource, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                at,
                principal.person_id,
                principal.name,
                principal.department,
                principal.role.value,
                case_number,
                resource,
                reason,
            ),
        )
