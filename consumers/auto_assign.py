"""Automatic handler assignment (自动派工): names a handler for every stage that opens without one.

For each department whose automatic assignment is on (``infra/data/dispatch.json``, read again at every
tick), each tick selects the open stage work items there that have no handler (the workload read model,
in dispatch order: special care, priority tier, then the oldest) and issues one ``AssignHandler`` per item
through the application service: the handler is the department's configured handler with the least open
work in that department (ties by name), the reason is ``auto``, the actor a system account acting for the
department. The command id names the case, stage and work item (``auto-assign:<case>:<stage>:<item>``),
so a tick repeated after a crash, or run by two processes at once, assigns each item once. A stage someone
assigned by hand is left alone (the command is refused ``HANDLER_ALREADY_ASSIGNED``), and reassignment
(``ReassignHandler``) stays a person's decision.

The read model lags behind the event store: an item this process assigned may still show no handler. Such
items are remembered (and counted as their handler's open work) until the read model shows them assigned.
Time is injected (``clock``): tests pass it, they never sleep.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from app.application import CaseApplication
from consumers.backoff import TRANSIENT_DATABASE_ERRORS, Health, Outage, pg_connect
from domain.commands import AssignHandler
from domain.vocabulary import Actor, Stage
from infra.dispatch_config import DispatchConfig, DispatchConfigError, load_dispatch_config

log = structlog.get_logger("yekuo.auto_assign")

AUTO_REASON = "auto"
AUTO_ACTOR_ID, AUTO_ACTOR_NAME = "yekuo-auto-assign", "自动派工"

_UNASSIGNED = """
SELECT w.case_number, w.stage, w.item_no, w.department, w.received_at
FROM work_items w LEFT JOIN case_dispatch d ON d.case_id = w.case_id
WHERE w.kind = 'STAGE' AND w.completed_at IS NULL AND w.handler_id IS NULL AND w.department = ANY(%s)
ORDER BY coalesce(d.special_care, false) DESC, coalesce(d.priority_tier, 0) DESC, w.received_at,
         w.case_number, w.item_no
LIMIT %s
"""

_OPEN_WORK = """
SELECT department, handler_id, count(*) FROM work_items
WHERE completed_at IS NULL AND handler_id IS NOT NULL AND department = ANY(%s)
GROUP BY department, handler_id
"""


def auto_actor(department: str) -> Actor:
    """The system account that assigns for ``department`` (assignments come from the department)."""
    return Actor(AUTO_ACTOR_ID, AUTO_ACTOR_NAME, department)


def command_id_for(case_number: str, stage: str, item_no: int) -> str:
    return f"auto-assign:{case_number}:{stage}:{item_no}"


@dataclass(frozen=True)
class Unassigned:
    """An open stage work item without a handler, as the read model shows it."""

    case_number: str
    stage: str
    item_no: int
    department: str
    received_at: datetime

    @property
    def command_id(self) -> str:
        return command_id_for(self.case_number, self.stage, self.item_no)


def least_loaded(handlers: tuple[Actor, ...], open_work: Counter[str]) -> Actor:
    """The handler with the least open work; ties go to the name, then the person id."""
    return min(handlers, key=lambda h: (open_work[h.person_id], h.name, h.person_id))


class AutoAssigner:
    def __init__(
        self,
        app: CaseApplication,
        database_url: str,
        *,
        dispatch_file: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = 500,
    ) -> None:
        self.app = app
        self.database_url = database_url
        self.dispatch_file = dispatch_file
        self.clock = clock
        self.batch = batch
        self.config = load_dispatch_config(dispatch_file)  # a bad file stops the start, loudly
        self._pending: dict[str, tuple[str, str]] = {}
        """command id → (department, handler id) assigned by this process, not yet in the read model"""
        self._refused: set[str] = set()
        """command ids refused (assigned by hand meanwhile, stage closed): never retried by this process"""

    def _reload(self) -> DispatchConfig:
        """The dispatch file as it is now; an edit that does not parse keeps the last good one (logged)."""
        try:
            config = load_dispatch_config(self.dispatch_file)
        except DispatchConfigError as error:
            log.error("dispatch file invalid; the last valid one stays in force", error=str(error))
            return self.config
        if config != self.config:
            log.info(
                "dispatch file reloaded",
                version=config.version,
                auto_assign=[d.department.value for d in config.auto_assigned()],
            )
        self.config = config
        return config

    def due_commands(self, now: datetime) -> list[AssignHandler]:
        """One ``AssignHandler`` for each unassigned stage item of a department assigned automatically."""
        config = self._reload()
        departments = {d.department.value: d for d in config.auto_assigned()}
        if not departments:
            self._pending.clear()
            return []
        with pg_connect(self.database_url, autocommit=True) as conn:
            items = [
                Unassigned(*row)
                for row in conn.execute(_UNASSIGNED, (list(departments), self.batch)).fetchall()
            ]
            counted = conn.execute(_OPEN_WORK, (list(departments),)).fetchall()
        open_work: dict[str, Counter[str]] = {code: Counter() for code in departments}
        for department, handler_id, count in counted:
            open_work[department][handler_id] = count
        if len(items) < self.batch:  # every unassigned item was seen: the others reached the read model
            shown = {item.command_id for item in items}
            self._pending = {cid: held for cid, held in self._pending.items() if cid in shown}
        for department, handler_id in self._pending.values():
            if department in open_work:
                open_work[department][handler_id] += 1
        commands = []
        for item in items:
            if item.command_id in self._pending or item.command_id in self._refused:
                continue
            handler = least_loaded(departments[item.department].handlers, open_work[item.department])
            open_work[item.department][handler.person_id] += 1
            commands.append(
                AssignHandler(
                    command_id=item.command_id,
                    case_number=item.case_number,
                    actor=auto_actor(item.department),
                    occurred_at=max(now, item.received_at),
                    channel="SYSTEM",
                    reason=AUTO_REASON,
                    stage=Stage(item.stage),
                    handler=handler,
                )
            )
        return commands

    def tick(self) -> dict[str, int]:
        """One look at the queues: assign every unassigned stage of the automatically assigned departments."""
        commands = self.due_commands(self.clock())
        outcomes = self.app.execute_batch(list(commands)) if commands else []
        counts = {"due": len(commands), "assigned": 0, "repeated": 0, "refused": 0, "failed": 0}
        transient: BaseException | None = None
        for command, outcome in zip(commands, outcomes, strict=True):
            if isinstance(outcome, Exception):
                counts["failed"] += 1
                log.warning(
                    "auto assignment not recorded", command_id=command.command_id, error=repr(outcome)
                )
                if isinstance(outcome, TRANSIENT_DATABASE_ERRORS):
                    transient = outcome
            elif not outcome.accepted:
                counts["refused"] += 1
                self._refused.add(command.command_id)
                log.info(
                    "auto assignment refused",
                    command_id=command.command_id,
                    case_number=command.case_number,
                    rule=outcome.rule,
                    message=outcome.message,
                )
            else:
                counts["repeated" if outcome.repeated else "assigned"] += 1
                self._pending[command.command_id] = (command.handler.department, command.handler.person_id)
                if not outcome.repeated:
                    log.info(
                        "handler assigned automatically",
                        case_number=command.case_number,
                        stage=command.stage.value,
                        department=command.handler.department,
                        handler=command.handler.person_id,
                    )
        if transient is not None:
            raise transient  # the database went away mid-tick: wait it out like a failed query
        return counts

    def run(self, stop: threading.Event, interval: float, *, health: Health | None = None) -> None:
        """Tick until ``stop`` is set; a database outage is waited out with backoff (one log line when it
        starts, one when it ends, the readiness file not-ready meanwhile); the tick after it catches up."""
        log.info("auto assignment started", interval=interval)
        database = Outage("auto-assign", "postgres", health)
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
        log.info("auto assignment stopped")


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())
