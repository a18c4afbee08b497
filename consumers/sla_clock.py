"""SLA clock (时限时钟): as time passes, records each level a clock reaches as a fact in the case history.

Each tick selects the clocks whose next unrecorded level is due (``sla_clocks.next_due_at <= now``, an
index lookup: the read model precomputes every level's instant and who holds the clock then) and issues
one ``RecordSlaCrossing`` command per level reached. The command id names the clock and level, so a
tick repeated after a crash, or run by two processes at once, records each crossing exactly once.
``crossed_at`` is the instant the level was reached; the event's ``occurred_at`` is when the tick noticed.

When a year's holiday notice is added (``yekuo calendar add``), deadlines computed with that year's
provisional data may move: each tick also recomputes, under the current calendar, the clocks whose row
was computed under another calendar version (running ones, and stopped ones whose figures were
provisional), and records a ``ReviseSlaDeadline`` where the deadline moved or stopped being provisional
(command id: clock and calendar version, so exactly once).
Time is injected (``clock``): tests pass it, they never sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from app.application import CaseApplication
from consumers.backoff import TRANSIENT_DATABASE_ERRORS, Health, Outage, pg_connect
from domain.calendar import CalendarDataMissingError
from domain.case_values import DeadlineRevision, SlaCrossing
from domain.commands import Command, RecordSlaCrossing, ReviseSlaDeadline
from domain.sla import read_clock
from domain.vocabulary import Actor
from infra.sla_config import SlaConfig, sla_config

log = structlog.get_logger("yekuo.sla_clock")

SLA_ACTOR = Actor("yekuo-sla-clock", "业扩时限监控", "SYSTEM")

_DUE = """
SELECT clock_id, case_number, stage, crossings, recorded_levels, rule_set, rule_version, calendar_version
FROM sla_clocks
WHERE next_due_at <= %s
ORDER BY next_due_at
LIMIT %s
"""

_COUNTED_UNDER_ANOTHER_CALENDAR = """
SELECT c.clock_id, c.case_number, c.stage, c.deadline_at, c.deadline_provisional, c.calendar_version, s.state
FROM sla_clocks c JOIN sla_case_state s USING (case_id)
WHERE c.calendar_version <> %s AND (c.stopped_at IS NULL OR c.deadline_provisional)
ORDER BY c.clock_id
"""


class SlaClock:
    def __init__(
        self,
        app: CaseApplication,
        database_url: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 500,
        config: Callable[..., SlaConfig] = sla_config,
    ) -> None:
        self.app = app
        self.database_url = database_url
        self.clock = clock
        self.batch = batch
        self.config = config
        self._checked: set[tuple[str, str]] = set()
        """(clock id, calendar version) already recomputed and found unchanged by this process"""

    def due_commands(self, now: datetime) -> list[RecordSlaCrossing]:
        with pg_connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(_DUE, (now, self.batch)).fetchall()
        commands = []
        for (
            clock_id,
            case_number,
            stage,
            crossings,
            recorded,
            rule_set,
            rule_version,
            calendar_version,
        ) in rows:
            for crossing in crossings:
                reached = datetime.fromisoformat(crossing["at"]) if crossing["at"] else None
                if reached is None or reached > now or crossing["level"] in recorded:
                    continue
                commands.append(
                    RecordSlaCrossing(
                        command_id=f"sla:{clock_id}:{crossing['level']}",
                        case_number=case_number,
                        actor=SLA_ACTOR,
                        occurred_at=now,
                        occurred_at_defaulted=True,  # detection time: a resend at a later tick is a repeat
                        channel="SYSTEM",
                        reason=f"{crossing['level']} {crossing['share']:.0%}",
                        crossing=SlaCrossing(
                            clock_id=clock_id,
                            stage=stage,
                            level=crossing["level"],
                            share=crossing["share"],
                            crossed_at=reached,
                            department=crossing["department"],
                            handler=crossing["handler"],
                            rule_set=rule_set,
                            rule_version=rule_version,
                            calendar_version=calendar_version,
                        ),
                    )
                )
        return commands

    def revision_commands(self, now: datetime) -> list[ReviseSlaDeadline]:
        """Deadlines that a calendar year added since they were computed moves (or makes final)."""
        config = self.config(reload=True)  # once a tick: an added year counts at once
        calendar = config.calendar
        with pg_connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(_COUNTED_UNDER_ANOTHER_CALENDAR, (calendar.version,)).fetchall()
        commands: list[ReviseSlaDeadline] = []
        for clock_id, case_number, stage, deadline, provisional, version, state in rows:
            if (clock_id, calendar.version) in self._checked or len(commands) >= self.batch:
                continue
            clock = next(c for c in state["clocks"] if c["id"] == clock_id)
            started = datetime.fromisoformat(clock["started_at"]).date()
            try:
                levels = config.rules.in_force(clock["rule_set"], started).levels
                reading = read_clock(clock, calendar, now, levels)
            except CalendarDataMissingError:
                continue
            if reading.deadline == deadline and reading.provisional == bool(provisional):
                self._checked.add((clock_id, calendar.version))
                continue
            commands.append(
                ReviseSlaDeadline(
                    command_id=f"sla-deadline:{clock_id}:{calendar.version}",
                    case_number=case_number,
                    actor=SLA_ACTOR,
                    occurred_at=now,
                    occurred_at_defaulted=True,
                    channel="SYSTEM",
                    reason=f"calendar {calendar.version}",
                    revision=DeadlineRevision(
                        clock_id=clock_id,
                        stage=stage,
                        previous_deadline=deadline,
                        deadline=reading.deadline,
                        provisional=reading.provisional,
                        previous_calendar_version=version,
                        calendar_version=calendar.version,
                    ),
                )
            )
        return commands

    def tick(self) -> dict[str, int]:
        """One look at the time: record every level reached and not yet recorded, and every deadline a
        newly added calendar year moved."""
        now = self.clock()
        commands: list[Command] = [*self.due_commands(now), *self.revision_commands(now)]
        outcomes = self.app.execute_batch(commands) if commands else []
        counts = {"due": len(commands), "recorded": 0, "repeated": 0, "refused": 0}
        for command, outcome in zip(commands, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.warning("sla fact not recorded", command_id=command.command_id, error=repr(outcome))
                counts["refused"] += 1
            elif not outcome.accepted:
                counts["refused"] += 1
                log.warning("sla fact refused", command_id=command.command_id, rule=outcome.rule)
            else:
                counts["repeated" if outcome.repeated else "recorded"] += 1
                if not outcome.repeated:
                    _log_recorded(command)
        return counts

    def run(self, stop: threading.Event, interval: float, *, health: Health | None = None) -> None:
        """Tick until ``stop`` is set; a database outage is waited out with backoff (one log line when it
        starts, one when it ends, the readiness file not-ready meanwhile); the tick after it catches up."""
        log.info("sla clock started", interval=interval)
        database = Outage("sla clock", "postgres", health)
        if health is not None:
            health.write()
        try:
            while not stop.is_set():
                try:
                    counts = self.tick()
                except TRANSIENT_DATABASE_ERRORS as error:
                    stop.wait(min(database.failed(error), interval))
                    continue
                database.recovered()
                if counts["due"] < self.batch:
                    stop.wait(interval)
        finally:
            if health is not None:
                health.remove()
        log.info("sla clock stopped")


def _log_recorded(command: Command) -> None:
    if isinstance(command, RecordSlaCrossing):
        log.info(
            "sla level recorded",
            case_number=command.case_number,
            clock_id=command.crossing.clock_id,
            level=command.crossing.level,
            crossed_at=command.crossing.crossed_at.isoformat(),
            department=command.crossing.department,
        )
    elif isinstance(command, ReviseSlaDeadline):
        revision = command.revision
        log.info(
            "sla deadline revised",
            case_number=command.case_number,
            clock_id=revision.clock_id,
            previous_deadline=revision.previous_deadline.isoformat() if revision.previous_deadline else None,
            deadline=revision.deadline.isoformat() if revision.deadline else None,
            provisional=revision.provisional,
            calendar_version=revision.calendar_version,
        )


def describe(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())
