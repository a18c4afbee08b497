"""CLI of the SLA engine: ``yekuo sla-clock``, ``yekuo sla open``, ``yekuo kpi``, ``yekuo whatif`` and
``yekuo case responsibility``."""

from __future__ import annotations

import signal
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from domain.calendar import DAY_SECONDS, SHANGHAI, WorkingCalendar
from domain.sla import SlaTracker, holder_at, read_clock
from domain.vocabulary import Category, Department, Stage
from infra.settings import Settings
from infra.sla_config import SlaConfig, sla_config
from infra.stack import endpoints
from projections.sla import fact_of

console = Console(width=max(Console().width, 150))
sla_app = typer.Typer(help="时限 SLA: open clocks.", no_args_is_help=True)

NowOption = typer.Option(None, "--now", help="Evaluate at this instant (ISO-8601 with offset); default: now.")


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise typer.BadParameter("--now needs a time zone offset, e.g. 2025-10-09T12:00:00+08:00")
    return moment


def _days(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / DAY_SECONDS:.2f}"


def _label(value: str | None, enum: Any) -> str:
    if value is None:
        return ""
    return enum[value].label if value in enum.__members__ else value


def _levels(config: SlaConfig, clock: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The warning levels of the rule-set version the clock was started under."""
    started = datetime.fromisoformat(clock["started_at"]).date()
    return config.rules.in_force(clock["rule_set"], started).levels


def _database_url() -> str:
    return endpoints(Settings(), ("postgres",)).database_url


# ---- the clock process -----------------------------------------------------------------------------


def sla_clock(
    once: bool = typer.Option(False, help="One tick, then exit."),
    now: str | None = NowOption,
) -> None:
    """时限时钟 Record warnings and breaches as time passes (stops cleanly on SIGTERM)."""
    from consumers.sla_clock import SlaClock, describe

    settings = Settings()
    database_url = _database_url()
    app = build_case_application(settings, database_url, create_tables=False)
    fixed = _now(now) if now else None
    sla = SlaClock(app, database_url, clock=(lambda: fixed) if fixed else (lambda: datetime.now(UTC)))
    try:
        if once:
            console.print(describe(sla.tick()))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        sla.run(stop, settings.sla_tick_seconds)
    finally:
        app.close()


# ---- open clocks ------------------------------------------------------------------------------------


@sla_app.command("open")
def open_clocks(now: str | None = NowOption, limit: int = typer.Option(50)) -> None:
    """Open clocks with deadline and share of the limit used now, most urgent first."""
    moment = _now(now)
    config = sla_config()
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.state, c.clock_id FROM sla_clocks c JOIN sla_case_state s USING (case_id) "
            "WHERE c.stopped_at IS NULL ORDER BY c.deadline_at NULLS LAST LIMIT %s",
            (limit,),
        ).fetchall()
    table = Table(title=f"在途时限 open clocks at {moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M}")
    for column in ("时钟", "环节", "期限(工作日)", "截止", "已用", "责任部门", "责任人", "规则"):
        table.add_column(column)
    for state, clock_id in rows:
        clock = next(c for c in state["clocks"] if c["id"] == clock_id)
        reading = read_clock(clock, config.calendar, moment, _levels(config, clock))
        department, handler = holder_at(clock, moment)
        deadline = f"{reading.deadline.astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if reading.deadline else "暂停中"
        table.add_row(
            clock_id.split(":", 1)[1],
            _label(clock["stage"], Stage),
            str(clock["limit_days"]),
            deadline,
            f"{reading.share:.0%}",
            _label(department, Department),
            handler or "",
            f"{clock['rule_set']}@{clock['rule_version']}",
        )
    console.print(table)


# ---- KPIs -------------------------------------------------------------------------------------------

_CLOSED_CLOCKS = """
SELECT c.case_id, c.kind, c.stage, c.category, c.holder_department, c.holder_handler, c.on_time,
       c.elapsed_seconds, c.excluded_seconds, c.stopped_at
FROM sla_clocks c
WHERE c.stopped_at IS NOT NULL AND c.outcome NOT IN ('WITHDRAWN', 'CANCELLED')
  AND (%(from)s::date IS NULL OR (c.stopped_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s)
  AND (%(to)s::date IS NULL OR (c.stopped_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)
"""


@dataclass
class _Tally:
    clocks: int = 0
    on_time: int = 0
    elapsed: list[int] = field(default_factory=list)

    def add(self, on_time: bool, elapsed: int) -> None:
        self.clocks += 1
        self.on_time += on_time
        self.elapsed.append(elapsed)

    def cells(self) -> list[str]:
        average = sum(self.elapsed) / len(self.elapsed) if self.elapsed else None
        return [
            str(self.clocks),
            f"{self.on_time / self.clocks:.1%}" if self.clocks else "",
            _days(average),
            _days(max(self.elapsed) if self.elapsed else None),
        ]


def kpi(
    from_: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD) of clocks stopped."),
    to: str | None = typer.Option(None, "--to", help="Last day (YYYY-MM-DD)."),
) -> None:
    """指标 KPI report: on-time rates, handling times (customer time excluded), breaches, coordination."""
    period = {
        "from": date.fromisoformat(from_) if from_ else None,
        "to": date.fromisoformat(to) if to else None,
    }
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        clocks = conn.execute(_CLOSED_CLOCKS, period).fetchall()
        breaches = conn.execute(
            "SELECT department, handler, stage, category, "
            "to_char(crossed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), count(*) "
            "FROM sla_crossings WHERE level = 'BREACH' GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC"
        ).fetchall()
        energised = {
            row[0]
            for row in conn.execute(
                "SELECT case_id FROM case_progress WHERE energised_at IS NOT NULL "
                "AND (%(from)s::date IS NULL OR "
                "(energised_at AT TIME ZONE 'Asia/Shanghai')::date >= %(from)s) "
                "AND (%(to)s::date IS NULL OR (energised_at AT TIME ZONE 'Asia/Shanghai')::date <= %(to)s)",
                period,
            )
        }
    by: dict[str, dict[str, _Tally]] = defaultdict(lambda: defaultdict(_Tally))
    late_cases: set[UUID] = set()
    late_reviews: set[UUID] = set()
    cases_with_reviews: set[UUID] = set()
    for case_id, kind, stage, category, department, handler, on_time, elapsed, _, stopped in clocks:
        if not on_time:
            late_cases.add(case_id)
        if kind == "REVIEW":
            cases_with_reviews.add(case_id)
            late_reviews.update({case_id} if not on_time else set())
        if kind != "STAGE":
            continue
        by["环节 stage"][_label(stage, Stage)].add(on_time, elapsed)
        by["类别 category"][_label(category, Category)].add(on_time, elapsed)
        by["部门 department"][_label(department, Department)].add(on_time, elapsed)
        by["责任人 handler"][handler or "(未派工)"].add(on_time, elapsed)
        by["月份 period"][f"{stopped.astimezone(SHANGHAI):%Y-%m}"].add(on_time, elapsed)
    for dimension, groups in by.items():
        table = Table(title=f"按时办结率与办理时长 by {dimension} (工作日, 客户时间已扣除)")
        for column in ("", "已办环节", "按时率", "平均时长", "最长时长"):
            table.add_column(column)
        for name, tally in sorted(groups.items()):
            table.add_row(name, *tally.cells())
        console.print(table)
    on_time_cases = [c for c in energised if c not in late_cases]
    console.print(
        f"按时办结率 cases energised on time at every node: {len(on_time_cases)} of {len(energised)}"
        + (f" ({len(on_time_cases) / len(energised):.1%})" if energised else "")
    )
    compliant = len(cases_with_reviews - late_reviews)
    console.print(
        f"协同合规率 coordination compliance (no parallel review over its limit): {compliant} of "
        f"{len(cases_with_reviews)} cases with reviews"
    )
    table = Table(title="超期 breaches by department, handler, stage, category, month")
    for column in ("部门", "责任人", "环节", "类别", "月份", "次数"):
        table.add_column(column)
    for department, handler, stage, category, month, count in breaches:
        table.add_row(
            _label(department, Department),
            handler or "",
            _label(stage, Stage),
            _label(category, Category),
            month,
            str(count),
        )
    console.print(table)


# ---- responsibility ---------------------------------------------------------------------------------


def _track(config: SlaConfig, rule_set: str, messages: list[Any]) -> SlaTracker:
    tracker = SlaTracker(config.rules, rule_set, config.calendar)
    for message in messages:
        tracker.apply(str(message.case_id), fact_of(message))
    return tracker


def _held_seconds(
    calendar: WorkingCalendar, clock: dict[str, Any], since: str, until: str | None, now: datetime
) -> int:
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
    for a, b in clock["excluded"]:
        lo, hi = max(begin, datetime.fromisoformat(a)), min(end, datetime.fromisoformat(b) if b else end)
        if hi > lo:
            held -= calendar.working_seconds(start, hi) - calendar.working_seconds(start, lo)
    return max(held, 0)


def responsibility(case_number: str, now: str | None = NowOption) -> None:
    """责任分析 Time in hand per department and handler, customer time, and who held each clock when it
    crossed a level — computed from the event store (the audit trail), not from read models."""
    from domain.commands import case_id_for

    moment = _now(now)
    settings = Settings()
    config = sla_config(settings)
    app = build_case_application(settings, _database_url(), create_tables=False)
    try:
        history = CaseEventLog(app).history(case_id_for(case_number))
    finally:
        app.close()
    if not history:
        console.print(f"no case {case_number}")
        raise typer.Exit(1)
    tracker = _track(config, config.rule_set, history)
    recorded = {
        (m.payload["clock_id"], m.payload["level"]): m for m in history if m.type == "SlaThresholdCrossed"
    }
    in_hand: dict[tuple[str, str], int] = defaultdict(int)
    customer = 0
    table = Table(title=f"{case_number} 时限与责任 clocks ({config.rule_set})")
    for column in ("时钟", "期限", "用时", "客户时间", "结论", "过半", "预警80%", "超期", "记录"):
        table.add_column(column)
    for clock in tracker.state["clocks"]:
        reading = read_clock(clock, config.calendar, moment, _levels(config, clock))
        customer += reading.excluded_seconds if clock["kind"] == "CASE" else 0
        for department, handler, since, until in clock["holdings"]:
            if clock["kind"] == "STAGE":
                in_hand[(department, handler or "")] += _held_seconds(
                    config.calendar, clock, since, until, moment
                )
        cells = []
        for crossing in reading.crossings:
            if crossing.at is None:
                cells.append("—")
            else:
                who = f"{_label(crossing.department, Department)} {crossing.handler or ''}".strip()
                cells.append(f"{crossing.at.astimezone(SHANGHAI):%m-%d %H:%M} {who}")
        verdict = _verdict(reading)
        marks = [
            f"{level}@{m.occurred_at.astimezone(SHANGHAI):%m-%d %H:%M}"
            for (clock_id, level), m in recorded.items()
            if clock_id == clock["id"]
        ]
        table.add_row(
            f"{_label(clock['stage'], Stage)}{' ' + clock['department'] if clock['department'] else ''}"
            f" #{clock['id'].rsplit(':', 1)[1]} {clock['kind']}",
            f"{clock['limit_days']}d",
            _days(reading.elapsed_seconds),
            _days(reading.excluded_seconds),
            verdict,
            *cells,
            "; ".join(marks),
        )
    console.print(table)
    hands = Table(title="在手时间 time in hand per department and handler (stage clocks, working days)")
    for column in ("部门", "责任人", "工作日"):
        hands.add_column(column)
    for (department, handler), seconds in sorted(in_hand.items(), key=lambda item: -item[1]):
        hands.add_row(_label(department, Department), handler, _days(seconds))
    console.print(hands)
    console.print(
        f"客户时间 customer time (whole-case clock, excluded): {_days(customer) or '0'} working days"
    )


# ---- what-if ----------------------------------------------------------------------------------------


def whatif(
    rules: str = typer.Option(..., "--rules", help="The rule set to replay under, e.g. REG_2009."),
    from_: str | None = typer.Option(None, "--from", help="Clocks started on or after (YYYY-MM-DD)."),
    to: str | None = typer.Option(None, "--to", help="Clocks started on or before (YYYY-MM-DD)."),
    now: str | None = NowOption,
) -> None:
    """假设分析 Replay every history under another rule set (in memory; live read models untouched) and
    report which cases, stages and departments change verdict and by how much."""
    moment = _now(now)
    settings = Settings()
    config = sla_config(settings)
    config.rules.in_force(rules, moment.date())
    app = build_case_application(settings, _database_url(), create_tables=False)
    histories: dict[UUID, list[Any]] = defaultdict(list)
    try:
        log = CaseEventLog(app)
        for messages, _ in log.read_all():
            for message in messages:
                histories[message.case_id].append(message)
    finally:
        app.close()
    report = compare(config, rules, histories, moment, from_, to)
    _print_whatif(report, config.rule_set, rules)


@dataclass
class WhatIf:
    clocks: int = 0
    changed: list[tuple[str, str, str, str, str, float, float]] = field(default_factory=list)
    """(case number, stage, department, verdict under the active set, under the other, share, other share)
    for clocks that exist under both sets"""
    limit_only_in_one: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """clocks that exist under one set only (the other has no limit for that stage), by set and stage"""


def _verdict(reading: Any) -> str:
    if reading is None:
        return "无时限"
    if reading.on_time is not None:
        return "按时" if reading.on_time else "超期"
    return "在途超期" if reading.share > 1 else "在途"


def compare(
    config: SlaConfig,
    other: str,
    histories: dict[UUID, list[Any]],
    now: datetime,
    from_: str | None = None,
    to: str | None = None,
) -> WhatIf:
    """Verdicts of every clock under the active rule set and under ``other``, in memory."""
    first = date.fromisoformat(from_) if from_ else date.min
    last = date.fromisoformat(to) if to else date.max
    report = WhatIf()
    for history in histories.values():
        number = history[0].case_number
        active = {c["id"]: c for c in _track(config, config.rule_set, history).state["clocks"]}
        alternative = {c["id"]: c for c in _track(config, other, history).state["clocks"]}
        for clock_id in sorted(active.keys() | alternative.keys()):
            clock = active.get(clock_id) or alternative[clock_id]
            if not first <= datetime.fromisoformat(clock["started_at"]).astimezone(SHANGHAI).date() <= last:
                continue
            report.clocks += 1
            if (clock_id in active) != (clock_id in alternative):
                owner = config.rule_set if clock_id in active else other
                report.limit_only_in_one[f"{owner}: {clock['kind']} {clock['stage']}"] += 1
                continue
            mine = (
                read_clock(active[clock_id], config.calendar, now, _levels(config, active[clock_id]))
                if clock_id in active
                else None
            )
            theirs = (
                read_clock(
                    alternative[clock_id], config.calendar, now, _levels(config, alternative[clock_id])
                )
                if clock_id in alternative
                else None
            )
            if _verdict(mine) != _verdict(theirs):
                department = holder_at(clock, (mine or theirs).crossings[-1].at or now)[0] or ""  # type: ignore[union-attr]
                report.changed.append(
                    (
                        number,
                        clock["stage"],
                        department,
                        _verdict(mine),
                        _verdict(theirs),
                        mine.share if mine else 0.0,
                        theirs.share if theirs else 0.0,
                    )
                )
    return report


def _print_whatif(report: WhatIf, active: str, other: str) -> None:
    table = Table(
        title=f"假设分析 what-if: {active} → {other} "
        f"({len(report.changed)} of {report.clocks} clocks change verdict)"
    )
    for column in ("工单", "环节", "部门", active, other, "已用(现)", "已用(假设)"):
        table.add_column(column)
    for number, stage, department, mine, theirs, share, other_share in report.changed:
        table.add_row(
            number,
            _label(stage, Stage),
            _label(department, Department),
            mine,
            theirs,
            f"{share:.0%}",
            f"{other_share:.0%}",
        )
    console.print(table)
    per_department: dict[str, int] = defaultdict(int)
    per_stage: dict[str, int] = defaultdict(int)
    for _, stage, department, *_rest in report.changed:
        per_department[_label(department, Department) or "(无)"] += 1
        per_stage[_label(stage, Stage)] += 1
    console.print("by department: " + ", ".join(f"{k} {v}" for k, v in sorted(per_department.items())))
    console.print("by stage: " + ", ".join(f"{k} {v}" for k, v in sorted(per_stage.items())))
    console.print(f"cases affected: {len({c[0] for c in report.changed})}")
    for where, count in sorted(report.limit_only_in_one.items()):
        console.print(f"only one set has a limit — {where}: {count} clocks")
