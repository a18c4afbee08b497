"""Where the consumers stand, from PostgreSQL alone: relay position, each group's lag, dead letters, clocks.

Shared by ``yekuo status``, the HTTP API's readiness and metrics, and the demo. No ListOffsets: it
under-reports on the local broker (../shared/STACK.md), and the positions we need are all in PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from infra.settings import CASE_EVENTS_TOPIC
from projections.store import table_exists


@dataclass(frozen=True)
class RelayPosition:
    name: str
    position: int
    incarnation: str
    updated_at: datetime


@dataclass(frozen=True)
class GroupLag:
    published: int
    consumed: int
    lag: int


@dataclass(frozen=True)
class DeadLetterCount:
    consumer_group: str
    open: int
    total: int


@dataclass
class PipelineStatus:
    """The relay against the log head, the projection groups against the relay, dead letters, SLA clocks."""

    log_head: int
    relays: list[RelayPosition] = field(default_factory=list)
    groups: dict[str, GroupLag] = field(default_factory=dict)
    dead_letters: list[DeadLetterCount] = field(default_factory=list)
    clocks_running: int = 0
    clock_levels_due: int = 0
    clocks_beyond_calendar: int = 0


def consumer_lag(conn: psycopg.Connection[Any]) -> dict[str, GroupLag]:
    """Per consumer group: events published and consumed and the lag.

    The relay records the next offset of each partition as the broker acknowledged it; consumers record
    theirs with their read-model rows. Offsets of an older relay incarnation (before broker data loss)
    count as nothing consumed.
    """
    totals: dict[str, list[int]] = {}
    rows = conn.execute(
        """
        SELECT groups.consumer_group, r.next_offset,
               CASE WHEN g.incarnation = s.incarnation THEN g.next_offset ELSE 0 END
        FROM relay_partition_offsets r
        JOIN relay_state s ON s.relay_name = r.relay_name
        CROSS JOIN (SELECT DISTINCT consumer_group FROM projection_offsets) groups
        LEFT JOIN projection_offsets g ON g.consumer_group = groups.consumer_group
             AND g.topic = r.topic AND g.partition = r.partition
        WHERE r.topic = %s
        """,
        (CASE_EVENTS_TOPIC,),
    ).fetchall()
    for group, published, consumed in rows:
        entry = totals.setdefault(group, [0, 0, 0])
        consumed = consumed or 0
        entry[0] += published
        entry[1] += min(consumed, published)
        entry[2] += max(published - consumed, 0)
    return {group: GroupLag(*figures) for group, figures in totals.items()}


def pipeline_status(conn: psycopg.Connection[Any], log_head: int) -> PipelineStatus:
    """Everything ``yekuo status`` shows; the projection tables must exist (``create_schema``)."""
    status = PipelineStatus(log_head)
    if table_exists(conn, "relay_state"):
        status.relays = [
            RelayPosition(*row)
            for row in conn.execute("SELECT relay_name, position, incarnation, updated_at FROM relay_state")
        ]
    if status.relays:
        status.groups = consumer_lag(conn)
    status.dead_letters = [
        DeadLetterCount(*row)
        for row in conn.execute(
            "SELECT consumer_group, count(*) FILTER (WHERE replayed_at IS NULL), count(*) FROM dead_letters "
            "GROUP BY consumer_group ORDER BY consumer_group"
        )
    ]
    clocks = conn.execute(
        "SELECT count(*) FILTER (WHERE stopped_at IS NULL), count(*) FILTER (WHERE next_due_at <= now()), "
        "count(*) FILTER (WHERE calendar_missing) FROM sla_clocks"
    ).fetchone()
    if clocks:
        status.clocks_running, status.clock_levels_due, status.clocks_beyond_calendar = clocks
    return status
