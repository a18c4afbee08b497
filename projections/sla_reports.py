"""SLA reports: open clocks, KPIs, responsibility and what-if — computed here, shown by the CLI and the API.

Open clocks and KPIs read the SLA and progress read models; responsibility and what-if replay case
histories (from the event store) through the same ``SlaTracker`` the SLA projection uses, so a report
and the read model cannot disagree. Everything returns plain data with codes, not labels: the caller
decides how to show it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg

from domain.calendar import SHANGHAI, WorkingCalendar
from domain.sla import ClockReading, SlaTracker, holder_at, read_clock
from infra.messages import CaseEventMessage
from infra.sla_config import SlaConfig
from projections.sla import fact_of

Clock = dict[str, Any]
"""One clock of an ``SlaTracker`` state (see ``domain.sla``)."""


def levels_of(config: SlaConfig, clock: Clock) -> tuple[tuple[str, float], ...]:
    """The warning levels of the rule-set version the clock was started under."""
    started = datetime.fromisoformat(clock["started_at"]).date()
    return config.rules.in_force(clock["rule_set"], started).levels


def read(config: SlaConfig, clock: Clock, now: datetime) -> ClockReading:
    """The clock as it stands at ``now`` under the levels it was started with."""
    return read_clock(clock, config.calendar, now, levels_of(config, clock))


def track(config: SlaConfig, rule_set: str, messages: Iterable[CaseEventMessage]) -> SlaTracker:
    """Replay one case's history through a tracker of ``rule_set``."""
    tracker = SlaTracker(config.rules, rule_set, config.calendar)
    for message in messages:
        tracker.apply(str(message.case_id), fact_of(message))
    return tracker


def verdict(reading: ClockReading | None) -> str:
    """NO_LIMIT, ON_TIME or LATE once stopped; RUNNING or RUNNING_LATE while it runs."""
    if reading is None:
        return "NO_LIMIT"
    if reading.on_time is not None:
        return "ON_TIME" if reading.on_time else "LATE"
    return "RUNNING_LATE" if reading.share > 1 else "RUNNING"


# ---- open clocks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenClock:
    """A running clock as it stands now: whose it is, its deadline and how much of its limit is used."""

    clock_id: str
    case_id: UUID
    case_number: str
    kind: str
    stage: str
    limit_days: int
    deadline: datetime | None
    """None while the clock is paused."""
    provisional: bool
    """The deadline counts a year whose holiday notice is not loaded yet."""
    share: float
    department: str | None
    handler: str | None
    rule_set: str
    rule_version: str


def open_clocks(
    conn: psycopg.Connection[Any], config: SlaConfig, now: datetime, limit: int = 50
) -> list[OpenClock]:
    """Running clocks, the nearest deadline first (paused ones last)."""
    rows = conn.execute(
        "SELECT s.state, c.clock_id, c.case_id, c.case_number FROM sla_clocks c "
        "JOIN sla_case_state s USING (case_id) "
        "WHERE c.stopped_at IS NULL ORDER BY c.deadline_at NULLS LAST, c.clock_id LIMIT %s",
        (limit,),
    ).fetchall()
    clocks = []
    for state, clock_id, case_id, case_number in rows:
        clock = next(c for c in state["clocks"] if c["id"] == clock_id)
        reading = read(config, clock, now)
        department, handler = holder_at(clock, now)
        clocks.append(
            OpenClock(
                clock_id=clock_id,
                case_id=case_id,
                case_number=case_number,
                kind=clock["kind"],
                stage=clock["stage"],
                limit_days=clock["limit_days"],
                deadline=reading.deadline,
                provisional=reading.provisional,
                share=reading.share,
                department=department,
                handler=handler,
                rule_set=clock["rule_set"],
                rule_version=clock["rule_version"],
            )
        )
    return clocks


# ---- KPIs -------------------------------------------------------------------------------------------

KPI_DIMENSIONS = ("stage", "category", "department", "handler", "period")

_CLOSED_CLOCKS = """
SELECT c.case_id, c.kind, c.stage, c.category, c.holder_department, c.holder_handler, c.on_time,
       c.elapsed_seconds, c.stopped_at
FROM sla_clocks c
WHERE c.stopped_at IS NOT NULL AND c.outcome NOT IN ('WITHDRAWN', 'CANCELLED') AND c.kind <> 'COMPLAINT'
  AND (%(from)s::date IS NULL OR (c.stopped_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (c.stopped_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""

_BREACHES = """
SELECT department, handler, stage, category,
       to_char(crossed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), count(*)
FROM sla_crossings WHERE level = 'BREACH' GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC, 1, 2, 3, 4, 5
"""

_ENERGISED = """
SELECT case_id FROM case_progress WHERE energised_at IS NOT NULL
  AND (%(from)s::date IS NULL OR (energised_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (energised_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""


@dataclass
class Tally:
    """Stopped clocks of one group: how many, how many on time, and their handling times."""

    clocks: int = 0
    on_time: int = 0
    elapsed: list[int] = field(default_factory=list)

    def add(self, on_time: bool, elapsed: int) -> None:
        self.clocks += 1
        self.on_time += on_time
        self.elapsed.append(elapsed)

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.clocks if self.clocks else None

    @property
    def average_seconds(self) -> float | None:
        return sum(self.elapsed) / len(self.elapsed) if self.elapsed else None

    @property
    def longest_seconds(self) -> int | None:
        return max(self.elapsed) if self.elapsed else None


@dataclass(frozen=True)
class BreachCount:
    department: str | None
    handler: str | None
    stage: str
    category: str
    month: str
    count: int


@dataclass
class KpiReport:
    """On-time rates and handling times (customer time excluded) of stopped stage clocks by dimension,
    cases energised on time at every node, coordination compliance and breaches."""

    by: dict[str, dict[str, Tally]]
    """dimension (``KPI_DIMENSIONS``) → group (a code, a handler id or a YYYY-MM month) → tally"""
    energised: int
    energised_on_time: int
    cases_with_reviews: int
    coordination_compliant: int
    """cases with parallel reviews none of which went over its limit"""
    breaches: list[BreachCount]


def tally_kpis(
    closed_clocks: Iterable[Sequence[Any]], energised: set[UUID], breaches: Iterable[Sequence[Any]]
) -> KpiReport:
    """The KPI report from rows of stopped clocks, energised case ids and breach counts."""
    by: dict[str, dict[str, Tally]] = {dimension: defaultdict(Tally) for dimension in KPI_DIMENSIONS}
    late_cases: set[UUID] = set()
    late_reviews: set[UUID] = set()
    cases_with_reviews: set[UUID] = set()
    for case_id, kind, stage, category, department, handler, on_time, elapsed, stopped in closed_clocks:
        if not on_time:
            late_cases.add(case_id)
        if kind == "REVIEW":
            cases_with_reviews.add(case_id)
            if not on_time:
                late_reviews.add(case_id)
        if kind != "STAGE":
            continue
        by["stage"][stage].add(on_time, elapsed)
        by["category"][category].add(on_time, elapsed)
        by["department"][department or ""].add(on_time, elapsed)
        by["handler"][handler or ""].add(on_time, elapsed)
        by["period"][f"{stopped.astimezone(SHANGHAI):%Y-%m}"].add(on_time, elapsed)
    return KpiReport(
        by={dimension: dict(groups) for dimension, groups in by.items()},
        energised=len(energised),
        energised_on_time=len(energised - late_cases),
        cases_with_reviews=len(cases_with_reviews),
        coordination_compliant=len(cases_with_reviews - late_reviews),
        breaches=[BreachCount(*row) for row in breaches],
    )


def kpi_report(
    conn: psycopg.Connection[Any], first: date | None = None, last: date | None = None
) -> KpiReport:
    """KPIs of clocks stopped (and cases energised) between ``first`` and ``last``, both included."""
    period = {"from": first, "to": last}
    return tally_kpis(
        conn.execute(_CLOSED_CLOCKS, period).fetchall(),
        {row[0] for row in conn.execute(_ENERGISED, period)},
        conn.execute(_BREACHES).fetchall(),
    )


def tally_trend(closed_clocks: Iterable[Sequence[Any]]) -> dict[str, dict[str, dict[str, Tally]]]:
    """Stopped stage clocks by month (YYYY-MM, Asia/Shanghai) and by category or stage:
    ``{"category": {month: {category: tally}}, "stage": {month: {stage: tally}}}``."""
    trend: dict[str, dict[str, dict[str, Tally]]] = {"category": {}, "stage": {}}
    for _case, kind, stage, category, _department, _handler, on_time, elapsed, stopped in closed_clocks:
        if kind != "STAGE":
            continue
        month = f"{stopped.astimezone(SHANGHAI):%Y-%m}"
        for dimension, group in (("category", category), ("stage", stage)):
            trend[dimension].setdefault(month, defaultdict(Tally))[group].add(on_time, elapsed)
    return {d: {m: dict(groups) for m, groups in sorted(months.items())} for d, months in trend.items()}


def kpi_trend(
    conn: psycopg.Connection[Any], first: date | None = None, last: date | None = None
) -> dict[str, dict[str, dict[str, Tally]]]:
    """The KPI report's stage clocks (same selection as ``kpi_report``) as a trend by month."""
    return tally_trend(conn.execute(_CLOSED_CLOCKS, {"from": first, "to": last}).fetchall())


# ---- responsibility ---------------------------------------------------------------------------------


def held_seconds(
    calendar: WorkingCalendar, clock: Clock, since: str, until: str | None, now: datetime
) -> int:
    """Working time a holder held ``clock`` from ``since`` to ``until`` (or the clock's end, or now),
    less the clock's excluded (customer) time."""
    start = datetime.fromisoformat(clock["started_at"])
    end = (
        datetime.fromisoformat(until)
        if until
        else datetime.fromisoformat(clock["stopped_at"])
        if clock["stopped_at"]
        else now
    )
    begin = datetime.fromisoformat(since)
    held = calendar.working_seconds(start, end) - calendar.working_seconds(start, begin)
    for window in clock["excluded"]:  # [from, to, reason]; histories before reasons have two fields
        a, b = window[0], window[1]
        lo, hi = max(begin, datetime.fromisoformat(a)), min(end, datetime.fromisoformat(b) if b else end)
        if hi > lo:
            held -= calendar.working_seconds(start, hi) - calendar.working_seconds(start, lo)
    return max(held, 0)


@dataclass(frozen=True)
class ClockResponsibility:
    """One clock of a case: its reading now, and the levels recorded on the case for it."""

    clock: Clock
    reading: ClockReading
    verdict: str
    recorded: list[tuple[str, datetime]]
    """(level, when the SLA clock recorded it) from the case's SlaThresholdCrossed facts"""


@dataclass
class ResponsibilityReport:
    """Who held a case's clocks and for how long, and who held each clock when it crossed a level."""

    rule_set: str
    clocks: list[ClockResponsibility]
    in_hand: dict[tuple[str, str], int]
    """(department, handler or "") → working seconds holding the case's stage clocks"""
    customer_seconds: int
    """customer time the whole-case clock excluded"""


def responsibility_report(
    config: SlaConfig, history: Sequence[CaseEventMessage], now: datetime
) -> ResponsibilityReport:
    """Responsibility from a case's history (the audit trail), under the active rule set."""
    tracker = track(config, config.rule_set, history)
    recorded: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for message in history:
        if message.type == "SlaThresholdCrossed":
            recorded[message.payload["clock_id"]].append((message.payload["level"], message.occurred_at))
    in_hand: dict[tuple[str, str], int] = defaultdict(int)
    customer = 0
    clocks = []
    for clock in tracker.state["clocks"]:
        reading = read(config, clock, now)
        if clock["kind"] == "CASE":
            customer += reading.excluded_seconds
        if clock["kind"] == "STAGE":
            for department, handler, since, until in clock["holdings"]:
                in_hand[(department, handler or "")] += held_seconds(
                    config.calendar, clock, since, until, now
                )
        clocks.append(ClockResponsibility(clock, reading, verdict(reading), recorded.get(clock["id"], [])))
    return ResponsibilityReport(config.rule_set, clocks, dict(in_hand), customer)


# ---- what-if ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedVerdict:
    case_number: str
    stage: str
    department: str
    active: str
    other: str
    active_share: float
    other_share: float


@dataclass
class WhatIf:
    """Verdicts that change when every history is replayed under another rule set."""

    clocks: int = 0
    changed: list[ChangedVerdict] = field(default_factory=list)
    """clocks that exist under both sets and change verdict"""
    limit_only_in_one: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """clocks that exist under one set only (the other has no limit for that stage), by set and stage"""


def compare(
    config: SlaConfig,
    other: str,
    histories: Mapping[UUID, Sequence[CaseEventMessage]],
    now: datetime,
    first: date | None = None,
    last: date | None = None,
) -> WhatIf:
    """Verdicts of every clock started between ``first`` and ``last`` under the active rule set and
    under ``other``, in memory (live read models untouched)."""
    first, last = first or date.min, last or date.max
    report = WhatIf()
    for history in histories.values():
        number = history[0].case_number
        active = {c["id"]: c for c in track(config, config.rule_set, history).state["clocks"]}
        alternative = {c["id"]: c for c in track(config, other, history).state["clocks"]}
        for clock_id in sorted(active.keys() | alternative.keys()):
            clock = active.get(clock_id) or alternative[clock_id]
            if not first <= datetime.fromisoformat(clock["started_at"]).astimezone(SHANGHAI).date() <= last:
                continue
            report.clocks += 1
            if (clock_id in active) != (clock_id in alternative):
                owner = config.rule_set if clock_id in active else other
                report.limit_only_in_one[f"{owner}: {clock['kind']} {clock['stage']}"] += 1
                continue
            mine, theirs = read(config, active[clock_id], now), read(config, alternative[clock_id], now)
            if verdict(mine) != verdict(theirs):
                department = holder_at(clock, mine.crossings[-1].at or now)[0] or ""
                report.changed.append(
                    ChangedVerdict(
                        number,
                        clock["stage"],
                        department,
                        verdict(mine),
                        verdict(theirs),
                        mine.share,
                        theirs.share,
                    )
                )
    return report
