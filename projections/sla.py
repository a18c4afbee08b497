"""SLA read model (时限监控): every clock with its deadline and level crossings, and the recorded warnings
and breaches by department, handler, stage, category and period.

The clocks come from ``domain.sla.SlaTracker`` (its state is kept per case in ``sla_case_state``). For
each clock the row holds what does not depend on the current time: start, stop, limit, deadline, and
the instant each level is (or was) reached with who held the clock then — so the SLA clock process only
selects ``next_due_at <= now``. Shares used "now" are computed by the reports with the calendar.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.calendar import CalendarDataMissingError
from domain.sla import RELEVANT_EVENTS, Fact, SlaTracker, read_clock
from infra.messages import CaseEventMessage
from infra.sla_config import SlaConfig
from projections.tables import CaseRows, Column, Row, Table

STATE = Table(
    "sla_case_state",
    (Column("case_id", "uuid NOT NULL"), Column("state", "jsonb NOT NULL", json=True)),
    ("case_id",),
)
CLOCKS = Table(
    "sla_clocks",
    (
        Column("clock_id", "text NOT NULL"),
        Column("case_id", "uuid NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("category", "text NOT NULL"),
        Column("kind", "text NOT NULL"),
        Column("stage", "text NOT NULL"),
        Column("review_department", "text"),
        Column("started_at", "timestamptz NOT NULL"),
        Column("stopped_at", "timestamptz"),
        Column("outcome", "text"),
        Column("limit_days", "int NOT NULL"),
        Column("deadline_at", "timestamptz"),
        Column("paused", "boolean NOT NULL"),
        Column("elapsed_seconds", "bigint"),
        Column("excluded_seconds", "bigint"),
        Column("on_time", "boolean"),
        Column("holder_department", "text"),
        Column("holder_handler", "text"),
        Column("crossings", "jsonb NOT NULL", json=True),
        Column("recorded_levels", "jsonb NOT NULL", json=True),
        Column("next_due_at", "timestamptz"),
        Column("next_level", "text"),
        Column("calendar_missing", "boolean NOT NULL"),
        Column("deadline_provisional", "boolean NOT NULL"),
        Column("rule_set", "text NOT NULL"),
        Column("rule_version", "text NOT NULL"),
        Column("calendar_version", "text NOT NULL"),
    ),
    ("clock_id",),
    indexes=(("next_due_at",), ("stopped_at",)),
)
CROSSINGS = Table(
    "sla_crossings",
    (
        Column("clock_id", "text NOT NULL"),
        Column("level", "text NOT NULL"),
        Column("case_id", "uuid NOT NULL"),
        Column("case_number", "text NOT NULL"),
        Column("category", "text NOT NULL"),
        Column("kind", "text NOT NULL"),
        Column("stage", "text NOT NULL"),
        Column("share", "double precision NOT NULL"),
        Column("crossed_at", "timestamptz NOT NULL"),
        Column("detected_at", "timestamptz NOT NULL"),
        Column("department", "text"),
        Column("handler", "text"),
        Column("rule_set", "text NOT NULL"),
        Column("rule_version", "text NOT NULL"),
        Column("calendar_version", "text NOT NULL"),
    ),
    ("clock_id", "level"),
    indexes=(("level", "crossed_at"),),
)

VIEWS = (
    """CREATE OR REPLACE VIEW sla_open_clocks AS
    SELECT clock_id, case_number, category, kind, stage, review_department, started_at, limit_days,
           deadline_at, paused, holder_department, holder_handler, next_level, next_due_at, rule_set,
           rule_version, deadline_provisional
    FROM sla_clocks WHERE stopped_at IS NULL""",
    """CREATE OR REPLACE VIEW sla_breaches_by_department AS
    SELECT department, stage, category, (crossed_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
           count(*) AS breaches
    FROM sla_crossings WHERE level = 'BREACH' GROUP BY department, stage, category, day""",
)


class _Fixed:
    """A configuration source that always gives the same configuration (picklable, unlike a closure: a
    parallel rebuild sends the projections to its worker processes)."""

    def __init__(self, config: SlaConfig) -> None:
        self.config = config

    def __call__(self, *, reload: bool = False) -> SlaConfig:
        return self.config


class SlaProjection:
    name = "sla"
    tables = (STATE, CLOCKS, CROSSINGS)
    views = VIEWS

    def __init__(self, config: SlaConfig | Callable[..., SlaConfig]) -> None:
        """``config``: fixed (rebuilds, what-if, tests), or a source such as ``infra.sla_config.sla_config``
        that follows the calendar store, so a live worker counts with a holiday notice once it is added."""
        self._source: Callable[..., SlaConfig] = _Fixed(config) if isinstance(config, SlaConfig) else config

    @property
    def config(self) -> SlaConfig:
        return self._source()

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        followed = self._follow(rows, event)
        if followed is None:
            return
        state, evaluate = followed
        config = self.config
        existing = {row["clock_id"]: row for row in rows.get(CLOCKS.name, [])}
        rows[CLOCKS.name] = [
            existing[clock["id"]]
            if clock["id"] in existing and clock["id"] not in evaluate
            else _clock_row(event.case_id, event.case_number, event.occurred_at, state, clock, config)
            for clock in state["clocks"]
        ]

    def _follow(self, rows: CaseRows, event: CaseEventMessage) -> tuple[dict[str, Any], set[str]] | None:
        """Follow ``event`` in the case's tracker state: None when it means nothing to the clocks, else
        the state and the ids of the clocks whose rows it can change (were or are running, or named by it)."""
        if (
            event.type == "SlaDeadlineRevised"
            and event.payload["calendar_version"] != self.config.calendar.version
        ):
            self._source(reload=True)  # the SLA clock saw the new year first; look now, not in seconds
        states = rows.setdefault(STATE.name, [])
        if not states:
            states.append({"case_id": event.case_id, "state": {"clocks": [], "holders": {}, "flags": {}}})
        state: dict[str, Any] = states[0]["state"]
        if event.type not in RELEVANT_EVENTS:
            return None  # what the tracker would say, without building it
        tracker = SlaTracker(self.config.rules, self.config.rule_set, self.config.calendar, state)
        running = {clock["id"] for clock in tracker.running()}
        if not tracker.apply(str(event.case_id), fact_of(event)):
            return None
        if event.type == "SlaThresholdCrossed":
            rows.setdefault(CROSSINGS.name, []).append(_crossing_row(event, state))
        if event.type in ("SlaThresholdCrossed", "SlaDeadlineRevised"):
            running.add(event.payload["clock_id"])
        # Only clocks that were or are running can change (a stopped clock's row is final), and the
        # evaluation is most of this projection's cost.
        running |= {clock["id"] for clock in tracker.running()}
        return state, running

    def replaying(self) -> DeferredSlaProjection:
        """This projection for a replay (a rebuild, a live worker's batch): the same rows, each clock
        evaluated once at ``settle`` instead of after every event of its case."""
        return DeferredSlaProjection(self)


class DeferredSlaProjection:
    """``SlaProjection`` with each clock's evaluation deferred until ``settle``: the rows it then gives are
    the rows ``SlaProjection.apply`` gives after the same events, because

    - a clock's row is a function of the case (id, number, category: fixed by its first event), the
      clock's tracker state, the configuration and the instant of the event that last evaluated it;
    - ``apply`` evaluates a clock at every event that can change its state (it was or is running, or
      the event names it: a recorded crossing, a revised deadline), so after the last such event its
      state no longer changes and its row stays as that event left it.

    So it is enough to remember, per clock, the instant (and the configuration) of the last event that
    would have evaluated it, and evaluate once. Used by rebuilds (once per case) and by live workers
    (``apply_delivered``: once per changed case at the end of each batch).
    """

    def __init__(self, projection: SlaProjection) -> None:
        self.projection = projection
        self.name = projection.name
        self.tables = projection.tables
        self.views = projection.views
        self._pending: dict[UUID, tuple[str, dict[str, tuple[datetime, SlaConfig]]]] = {}
        """case id → (case number, clock id → (instant, configuration) of its last evaluation due)"""

    def apply(self, rows: CaseRows, event: CaseEventMessage) -> None:
        followed = self.projection._follow(rows, event)
        if followed is None:
            return
        state, evaluate = followed
        mark = (event.occurred_at, self.projection.config)
        _, pending = self._pending.setdefault(event.case_id, (event.case_number, {}))
        existing = {row["clock_id"] for row in rows.get(CLOCKS.name, ())}
        for clock in state["clocks"]:
            clock_id = clock["id"]
            if clock_id in evaluate or (clock_id not in existing and clock_id not in pending):
                pending[clock_id] = mark

    def settle(self, case_id: UUID, rows: CaseRows) -> None:
        """Evaluate the case's clocks whose evaluation is due, so that ``rows`` are complete."""
        due = self._pending.pop(case_id, None)
        if due is None:
            return
        number, pending = due
        state = rows[STATE.name][0]["state"]
        existing = {row["clock_id"]: row for row in rows.get(CLOCKS.name, [])}
        rows[CLOCKS.name] = [
            _clock_row(case_id, number, pending[clock["id"]][0], state, clock, pending[clock["id"]][1])
            if clock["id"] in pending
            else existing[clock["id"]]
            for clock in state["clocks"]
        ]


def fact_of(event: CaseEventMessage) -> Fact:
    """What the SLA needs of a published case event."""
    return Fact(event.type, event.occurred_at, event.actor.department, event.payload)


def _crossing_row(event: CaseEventMessage, state: dict[str, Any]) -> Row:
    p = event.payload
    clock = next((c for c in state["clocks"] if c["id"] == p["clock_id"]), None)
    return {
        "clock_id": p["clock_id"],
        "level": p["level"],
        "case_id": event.case_id,
        "case_number": event.case_number,
        "category": state.get("category", ""),
        "kind": clock["kind"] if clock else "STAGE",
        "stage": p["stage"],
        "share": p["share"],
        "crossed_at": datetime.fromisoformat(p["crossed_at"]),
        "detected_at": event.occurred_at,
        "department": p["department"],
        "handler": p["handler"],
        "rule_set": p["rule_set"],
        "rule_version": p["rule_version"],
        "calendar_version": p["calendar_version"],
    }


def _clock_row_base(case_id: UUID, case_number: str, state: dict[str, Any], clock: dict[str, Any]) -> Row:
    return {
        "clock_id": clock["id"],
        "case_id": case_id,
        "case_number": case_number,
        "category": state["category"],
        "kind": clock["kind"],
        "stage": clock["stage"],
        "review_department": clock["department"],
        "started_at": datetime.fromisoformat(clock["started_at"]),
        "stopped_at": datetime.fromisoformat(clock["stopped_at"]) if clock["stopped_at"] else None,
        "outcome": clock["outcome"],
        "limit_days": clock["limit_days"],
        "paused": bool(clock["excluded"] and clock["excluded"][-1][1] is None),
        "recorded_levels": sorted(clock["recorded"]),
        "rule_set": clock["rule_set"],
        "rule_version": clock["rule_version"],
        "calendar_version": clock["calendar_version"],
    }


def _unknown(row: Row) -> Row:
    """A clock whose deadline lies beyond the calendar data: shown, never guessed."""
    row.update(dict.fromkeys(("deadline_at", "elapsed_seconds", "excluded_seconds", "on_time"), None))
    row.update(holder_department=None, holder_handler=None, crossings=[], next_due_at=None, next_level=None)
    row["calendar_missing"] = True
    row["deadline_provisional"] = True
    return row


def _clock_row(
    case_id: UUID,
    case_number: str,
    now: datetime,
    state: dict[str, Any],
    clock: dict[str, Any],
    config: SlaConfig,
) -> Row:
    """The clock's row as it stands at ``now`` (the instant of the event that evaluates it)."""
    row = _clock_row_base(case_id, case_number, state, clock)
    try:
        rules = config.rules.in_force(clock["rule_set"], datetime.fromisoformat(clock["started_at"]).date())
        reading = read_clock(clock, config.calendar, now, rules.levels)
    except CalendarDataMissingError:
        return _unknown(row)
    stopped = clock["stopped_at"] is not None
    pending = [c for c in reading.crossings if c.at is not None and c.level not in clock["recorded"]]
    last = clock["holdings"][-1] if clock["holdings"] else [None, None]
    row.update(
        deadline_at=reading.deadline,
        elapsed_seconds=reading.elapsed_seconds if stopped else None,
        excluded_seconds=reading.excluded_seconds if stopped else None,
        on_time=reading.on_time,
        holder_department=last[0],
        holder_handler=last[1],
        crossings=[
            {
                "level": c.level,
                "share": c.share,
                "at": c.at.isoformat() if c.at else None,
                "department": c.department,
                "handler": c.handler,
            }
            for c in reading.crossings
        ],
        next_due_at=pending[0].at if pending else None,
        next_level=pending[0].level if pending else None,
        calendar_missing=False,
        deadline_provisional=reading.provisional,
    )
    return row
