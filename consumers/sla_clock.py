"""SLA clock (时限时钟): as time passes, records each level a clock reaches as a fact in the case history.

Each tick selects the clocks whose next unrecorded level is due (``sla_clocks.next_due_at <= now``, an
index lookup: the read model precomputes every level's instant and who holds the clock then) and issues
one ``RecordSlaCrossing`` command per level reached. The command id names the clock and level, so a
tick repeated after a crash, or run by two processes at once, records each crossing exactly once.
``crossed_at`` is the instant the level was reached; the event's ``occurred_at`` is when the tick noticed.
Time is injected (``clock``): tests pass it, they never sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog

from app.application import CaseApplication
from domain.case_values import SlaCrossing
from domain.commands import RecordSlaCrossing
from domain.vocabulary import Actor

log = structlog.get_logger("yekuo.sla_clock")

SLA_ACTOR = Actor("yekuo-sla-clock", "业扩时限监控", "SYSTEM")

_DUE = """
SELECT clock_id, case_number, stage, crossings, recorded_levels, rule_set, rule_version, calendar_version
FROM sla_clocks
WHERE next_due_at <= %s
ORDER BY next_due_at
LIMIT %s
"""


class SlaClock:
    def __init__(
        self,
        app: CaseApplication,
        database_url: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 500,
    ) -> None:
        self.app = app
        self.database_url = database_url
        self.clock = clock
        self.batch = batch

    def due_commands(self, now: datetime) -> list[RecordSlaCrossing]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
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

    def tick(self) -> dict[str, int]:
        """One look at the time: record every level reached and not yet recorded."""
        now = self.clock()
        commands = self.due_commands(now)
        outcomes = self.app.execute_batch(commands) if commands else []
        counts = {"due": len(commands), "recorded": 0, "repeated": 0, "refused": 0}
        for command, outcome in zip(commands, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.warning("crossing not recorded", command_id=command.command_id, error=repr(outcome))
                counts["refused"] += 1
            elif not outcome.accepted:
                counts["refused"] += 1
                log.warning("crossing refused", command_id=command.command_id, rule=outcome.rule)
            else:
                counts["repeated" if outcome.repeated else "recorded"] += 1
                if not outcome.repeated:
                    log.info(
                        "sla level recorded",
                        case_number=command.case_number,
                        clock_id=command.crossing.clock_id,
                        level=command.crossing.level,
                        crossed_at=command.crossing.crossed_at.isoformat(),
                        department=command.crossing.department,
                    )
        return counts

    def run(self, stop: threading.Event, interval: float) -> None:
        log.info("sla clock started", interval=interval)
        while not stop.is_set():
            try:
                counts = self.tick()
            except psycopg.OperationalError as error:
                log.warning("database unavailable; retrying", error=repr(error))
                counts = {"due": 0}
            if counts["due"] < self.batch:
                stop.wait(interval)
        log.info("sla clock stopped")


def describe(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())
