"""Rebuild read models from the event store, not through Kafka, into shadow tables swapped in atomically.

1. Create ``<table>__shadow`` for each table of the projection and apply the whole log to per-case state
   in memory, bulk-loading it with COPY (no lock on the live tables: readers and live workers go on).
2. Lock the live tables (``ACCESS EXCLUSIVE``: live workers wait), apply what the log gained meanwhile,
   then drop the live tables and rename the shadows into place — one transaction, so readers see either
   the old or the new rows, never an empty or partial model.
   A projection that can replay whole histories more cheaply than event by event offers ``replaying()``:
   a stand-in with the same tables that defers work, and ``settle(case_id, rows)`` to finish a case's
   rows before they are written (the SLA projection evaluates each clock once instead of after every
   event of its case). It must give the rows ``apply`` gives; ``tests/integration/test_replay_path.py``
   compares both.
3. Parked events (``parked_events``) that the rebuilt rows already contain are discarded in the swap.
4. Live workers resume from their own Kafka positions: every event they apply after the swap is either
   newer than the rebuild (applied) or already in it (skipped by its case version).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import psycopg
import structlog

from infra.messages import CaseEventMessage
from projections.store import SHADOW, create_schema, discard_parked_behind, write_states
from projections.tables import CaseRows, CaseState, Outcome, Projection, all_tables

log = structlog.get_logger("yekuo.rebuild")

ReadLog = Callable[[int, int], Iterable[tuple[list[CaseEventMessage], int]]]
"""``read_log(after, until)``: batches of (messages, position) of the log in order."""


class Settling(Projection, Protocol):
    """A projection's stand-in for replays whose rows are complete once ``settle`` ran for the case."""

    def settle(self, case_id: UUID, rows: CaseRows) -> None: ...


def replaying(projection: Projection) -> Projection:
    """The projection's replay stand-in when it offers one, else the projection itself."""
    make: Callable[[], Projection] | None = getattr(projection, "replaying", None)
    return make() if make is not None else projection


def settle(
    projections: Sequence[Projection], states: dict[str, dict[UUID, CaseState]], cases: Iterable[UUID]
) -> None:
    """Finish the deferred work of ``cases`` in every projection that defers some."""
    case_ids = list(cases)
    for projection in projections:
        finish: Callable[[UUID, CaseRows], None] | None = getattr(projection, "settle", None)
        if finish is None:
            continue
        rows_of = states[projection.name]
        for case_id in case_ids:
            state = rows_of.get(case_id)
            if state is not None:
                finish(case_id, state.rows)


@dataclass(frozen=True)
class RebuildReport:
    projections: list[str]
    events: int
    cases: int
    position: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(
    conn: psycopg.Connection[Any],
    projections: Sequence[Projection],
    read_log: ReadLog,
    head: Callable[[], int],
) -> RebuildReport:
    """Rebuild ``projections`` from the log up to its head at the moment of the swap."""
    started = time.perf_counter()
    create_schema(conn, projections)
    projections = [replaying(p) for p in projections]
    states: dict[str, dict[UUID, CaseState]] = {p.name: {} for p in projections}
    with conn.transaction():
        for projection in projections:
            for table in all_tables(projection):
                conn.execute(f"DROP TABLE IF EXISTS {table.name}{SHADOW}")
                for statement in table.ddl(SHADOW):
                    conn.execute(statement)
    target = head()
    events = _apply(projections, states, read_log(0, target))
    settle(projections, states, {case_id for cases in states.values() for case_id in cases})
    with conn.transaction():
        _write(conn, projections, states)
    with conn.transaction():
        live = [t.name for p in projections for t in all_tables(p)]
        conn.execute(f"LOCK TABLE {', '.join(live)} IN ACCESS EXCLUSIVE MODE")
        final = head()
        touched: set[UUID] = set()
        events += _apply(projections, states, read_log(target, final), touched)
        settle(projections, states, touched)
        for projection in projections:
            cases = states[projection.name]
            write_states(conn, projection, {case_id: cases[case_id] for case_id in touched}, SHADOW)
        for projection in projections:
            for table in all_tables(projection):
                conn.execute(f"DROP TABLE {table.name} CASCADE")
                conn.execute(f"ALTER TABLE {table.name}{SHADOW} RENAME TO {table.name}")
                pkey = f"{table.name}_pkey"
                conn.execute(
                    f"ALTER TABLE {table.name} RENAME CONSTRAINT {table.name}{SHADOW}_pkey TO {pkey}"
                )
            for view in projection.views:
                conn.execute(view)
            discard_parked_behind(conn, projection)
    case_count = max((len(s) for s in states.values()), default=0)
    report = RebuildReport(
        [p.name for p in projections], events, case_count, final, time.perf_counter() - started
    )
    log.info("rebuilt", projections=report.projections, events=events, seconds=report.seconds)
    return report


def _apply(
    projections: Sequence[Projection],
    states: dict[str, dict[UUID, CaseState]],
    batches: Iterable[tuple[list[CaseEventMessage], int]],
    touched: set[UUID] | None = None,
) -> int:
    count = 0
    for messages, _ in batches:
        for message in messages:
            for projection in projections:
                cases = states[projection.name]
                state = cases.get(message.case_id)
                if state is None:
                    state = cases[message.case_id] = CaseState()
                verdict = state.apply(projection, message)
                if verdict.outcome in (Outcome.GAP, Outcome.REJECTED):  # live processing would not apply it
                    log.warning("event not applied", projection=projection.name, reason=verdict.reason)
            if touched is not None:
                touched.add(message.case_id)
        count += len(messages)
    return count


def _write(
    conn: psycopg.Connection[Any], projections: Sequence[Projection], states: dict[str, dict[UUID, CaseState]]
) -> None:
    for projection in projections:
        write_states(conn, projection, states[projection.name], SHADOW, replace=False)
