"""The limit on failed customer look-ups (查询失败次数限制), shared by every API process through PostgreSQL.

One row per (case number, client): when its window started and how many attempts failed in it. An attempt
is counted *before* it is answered (one atomic upsert), and taken back when it succeeds; so concurrent
guesses, in one process or many, can never get more than the limit of wrong answers in a window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_lookup_failures (
    case_number text NOT NULL,
    client text NOT NULL,
    window_started_at timestamptz NOT NULL,
    failures integer NOT NULL,
    PRIMARY KEY (case_number, client)
);
CREATE INDEX IF NOT EXISTS api_lookup_failures_window ON api_lookup_failures (window_started_at);
"""

COUNT_ATTEMPT = """
INSERT INTO api_lookup_failures AS f (case_number, client, window_started_at, failures)
VALUES (%(case_number)s, %(client)s, now(), 1)
ON CONFLICT (case_number, client) DO UPDATE SET
    window_started_at = CASE WHEN f.window_started_at <= now() - %(window)s
                             THEN now() ELSE f.window_started_at END,
    failures = CASE WHEN f.window_started_at <= now() - %(window)s THEN 1 ELSE f.failures + 1 END
RETURNING f.failures, extract(epoch FROM f.window_started_at + %(window)s - now())::float8
"""

TAKE_BACK = """
UPDATE api_lookup_failures SET failures = failures - 1
WHERE case_number = %s AND client = %s AND failures > 0
"""


def create_lookup_limit(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('yekuo.api-lookup-failures'))")
        conn.execute(SCHEMA)


class FailedLookups:
    """At most ``max_failures`` failed look-ups per (case number, client) per window, across processes."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        connect: Callable[[], AbstractContextManager[psycopg.Connection[Any]]],
    ) -> None:
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)
        self._connect = connect
        self._purged_at = 0.0

    def attempt(self, case_number: str, client: str) -> float | None:
        """Count one attempt as failed; None when it may be answered, else seconds until it may retry."""
        with self._connect() as conn:
            row = conn.execute(
                COUNT_ATTEMPT, {"case_number": case_number, "client": client, "window": self.window}
            ).fetchone()
            self._purge_expired(conn)
        failures, remaining = row if row is not None else (0, 0.0)
        if failures <= self.max_failures:
            return None
        return max(float(remaining), 1.0)

    def succeeded(self, case_number: str, client: str) -> None:
        """The attempt was right: it does not count."""
        with self._connect() as conn:
            conn.execute(TAKE_BACK, (case_number, client))

    def _purge_expired(self, conn: psycopg.Connection[Any]) -> None:
        """Forget windows that ended, at most once per window length per process."""
        if time.monotonic() - self._purged_at < self.window.total_seconds():
            return
        self._purged_at = time.monotonic()
        conn.execute("DELETE FROM api_lookup_failures WHERE window_started_at < now() - %s", (self.window,))
