"""CLI of the SLA engine: ``yekuo sla-clock``, ``yekuo sla open``, ``yekuo kpi``, ``yekuo whatif`` and
``yekuo case responsibility``.

The reports are computed by ``projections.sla_reports``; this module only shows them.
"""

from __future__ import annotations

import signal
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from uuid import UUID

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from app.bootstrap import build_case_application
from app.event_log import CaseEventLog
from cli.common import (
    NowOption,
    application_once_database_up,
    database_url,
    days,
    department_label,
    label,
    log_progress,
    parse_now,
)
from cli.quality import print_quality
from domain.calendar import SHANGHAI
from domain.sla import RELEVANT_EVENTS
from domain.vocabulary import Category, Stage
from infra.messages import CaseEventMessage
from infra.settings import Settings
from infra.sla_config import sla_config
from projections.quality_reports import quality_report
from projections.sla_reports import (
    KPI_DIMENSIONS,
    KpiReport,
    Tally,
    WhatIf,
    compare,
    kpi_report,
    open_clocks,
    responsibility_report,
)

console = Console(width=max(Console().width, 150))
sla_app = typer.Typer(help="时限 SLA: open clocks.", no_args_is_help=True)

VERDICT_LABELS = {
    "NO_LIMIT": "无时限",
    "ON_TIME": "按时",
    "LATE": "超期",
    "RUNNING": "在途",
    "RUNNING_LATE": "在途超期",
}
DIMENSION_LABELS = {
    "stage": "环节 stage",
    "category": "类别 category",
    "department": "部门 department",
    "handler": "责任人 handler",
    "period": "月份 period",
}


def _day(text: str | None, option: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise typer.BadParameter(f"{option}: not a date (YYYY-MM-DD): {text!r}") from None


def _deadline(deadline: datetime | None, provisional: bool) -> str:
    """A deadline in local time, marked 暂定 (provisional) when it counts a year without its notice."""
    if deadline is None:
        return "暂停中"
    return f"{deadline.astimezone(SHANGHAI):%Y-%m-%d %H:%M}" + (" 暂定 provisional" if provisional else "")


def _table(title: str, columns: Iterable[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    return table


# ---- the clock process -----------------------------------------------------------------------------


def sla_clock(
    once: bool = typer.Option(False, help="One tick, then exit."),
    now: str | None = NowOption,
) -> None:
    """时限时钟 Record warnings and breaches as time passes (stops cleanly on SIGTERM)."""
    from consumers.backoff import Health
    from consumers.sla_clock import SlaClock, describe

    settings = Settings()
    url = database_url()
    health = Health(settings.state_dir, "sla-clock")
    app = application_once_database_up("sla clock", settings, url, health=health)
    fixed = parse_now(now) if now else None
    sla = SlaClock(app, url, clock=(lambda: fixed) if fixed else (lambda: datetime.now(UTC)))
    try:
        if once:
            console.print(describe(sla.tick()))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        sla.run(stop, settings.sla_tick_seconds, health=health)
    finally:
        app.close()


# ---- open clocks ------------------------------------------------------------------------------------


@sla_app.command("open")
def open_clocks_command(now: str | None = NowOption, limit: int = typer.Option(50)) -> None:
    """Open clocks with deadline and share of the limit used now, most urgent first."""
    moment = parse_now(now)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        clocks = open_clocks(conn, sla_config(), moment, limit)
    table = _table(
        f"在途时限 open clocks at {moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M}",
        ("时钟", "环节", "期限(工作日)", "截止", "已用", "责任部门", "责任人", "规则"),
    )
    for clock in clocks:
        table.add_row(
            clock.clock_id.split(":", 1)[1],
            label(clock.stage, Stage),
            str(clock.limit_days),
            _deadline(clock.deadline, clock.provisional),
            f"{clock.share:.0%}",
            department_label(clock.department),
            clock.handler or "",
            f"{clock.rule_set}@{clock.rule_version}",
        )
    console.print(table)


# ---- KPIs -------------------------------------------------------------------------------------------


def _group_label(dimension: str, group: str) -> str:
    if dimension == "stage":
        return label(group, Stage)
    if dimension == "category":
        return label(group, Category)
    if dimension == "department":
        return department_label(group)
    if dimension == "handler":
        return group or "(未派工)"
    return group


def _tally_cells(tally: Tally) -> list[str]:
    rate = tally.on_time_rate
    return [
        str(tally.clocks),
        "" if rate is None else f"{rate:.1%}",
        days(tally.average_seconds),
        days(tally.longest_seconds),
    ]


def _print_kpis(report: KpiReport) -> None:
    for dimension in KPI_DIMENSIONS:
        table = _table(
            f"按时办结率与办理时长 by {DIMENSION_LABELS[dimension]} (工作日, 客户时间已扣除)",
            ("", "已办环节", "按时率", "平均时长", "最长时长"),
        )
        for group, tally in sorted(report.by[dimension].items()):
            table.add_row(_group_label(dimension, group), *_tally_cells(tally))
        console.print(table)
    console.print(
        f"按时办结率 cases energised on time at every node: {report.energised_on_time} of {report.energised}"
        + (f" ({report.energised_on_time / report.energised:.1%})" if report.energised else "")
    )
    console.print(
        f"协同合规率 coordination compliance (no parallel review over its limit): "
        f"{report.coordination_compliant} of {report.cases_with_reviews} cases with reviews"
    )
    table = _table(
        "超期 breaches by department, handler, stage, category, month",
        ("部门", "责任人", "环节", "类别", "月份", "次数"),
    )
    for breach in report.breaches:
        table.add_row(
            department_label(breach.department),
            breach.handler or "",
            label(breach.stage, Stage),
            label(breach.category, Category),
            breach.month,
            str(breach.count),
        )
    console.print(table)


def kpi(
    from_: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD) of clocks stopped."),
    to: str | None = typer.Option(None, "--to", help="Last day (YYYY-MM-DD)."),
) -> None:
    """指标 KPI report: on-time rates, handling times (customer time excluded), breaches, coordination;
    service quality: complaint rate, follow-up satisfaction, service error rate."""
    first, last = _day(from_, "--from"), _day(to, "--to")
    with psycopg.connect(database_url(), autocommit=True) as conn:
        report = kpi_report(conn, first, last)
        quality = quality_report(conn, first, last)
    _print_kpis(report)
    print_quality(console, quality)


# ---- responsibility ---------------------------------------------------------------------------------


def _case_history(case_number: str) -> list[CaseEventMessage]:
    from domain.commands import case_id_for

    app = build_case_application(Settings(), database_url(), create_tables=False)
    try:
        return CaseEventLog(app).history(case_id_for(case_number))
    finally:
        app.close()


def responsibility(case_number: str, now: str | None = NowOption) -> None:
    """责任分析 Time in hand per department and handler, customer time, and who held each clock when it
    crossed a level — computed from the event store (the audit trail), not from read models."""
    moment = parse_now(now)
    history = _case_history(case_number)
    if not history:
        console.print(f"no case {case_number}")
        raise typer.Exit(1)
    report = responsibility_report(sla_config(), history, moment)
    table = _table(
        f"{case_number} 时限与责任 clocks ({report.rule_set})",
        ("时钟", "期限", "截止", "用时", "客户时间", "结论", "过半", "预警80%", "超期", "记录"),
    )
    for line in report.clocks:
        clock = line.clock
        cells = [
            "—"
            if crossing.at is None
            else f"{crossing.at.astimezone(SHANGHAI):%m-%d %H:%M} "
            f"{department_label(crossing.department)} {crossing.handler or ''}".strip()
            for crossing in line.reading.crossings
        ]
        marks = [f"{level}@{at.astimezone(SHANGHAI):%m-%d %H:%M}" for level, at in line.recorded]
        table.add_row(
            f"{label(clock['stage'], Stage)}{' ' + clock['department'] if clock['department'] else ''}"
            f" #{clock['id'].rsplit(':', 1)[1]} {clock['kind']}",
            f"{clock['limit_days']}d",
            _deadline(line.reading.deadline, line.reading.provisional),
            days(line.reading.elapsed_seconds),
            days(line.reading.excluded_seconds),
            VERDICT_LABELS[line.verdict],
            *cells,
            "; ".join(marks),
        )
    console.print(table)
    hands = _table(
        "在手时间 time in hand per department and handler (stage clocks, working days)",
        ("部门", "责任人", "工作日"),
    )
    for (department, handler), seconds in sorted(report.in_hand.items(), key=lambda item: -item[1]):
        hands.add_row(department_label(department), handler, days(seconds))
    console.print(hands)
    console.print(
        "客户时间 customer time (whole-case clock, excluded): "
        f"{days(report.customer_seconds) or '0'} working days"
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
    moment = parse_now(now)
    first, last = _day(from_, "--from"), _day(to, "--to")
    config = sla_config()
    config.rules.in_force(rules, moment.date())
    app = build_case_application(Settings(), database_url(), create_tables=False)
    histories: dict[UUID, list[CaseEventMessage]] = defaultdict(list)
    try:
        log = CaseEventLog(app)
        for messages, _ in log_progress(
            "假设分析 what-if: reading", log.head(), log.read_all(types=RELEVANT_EVENTS)
        ):
            for message in messages:
                histories[message.case_id].append(message)
    finally:
        app.close()
    _print_whatif(compare(config, rules, histories, moment, first, last), config.rule_set, rules)


def _print_whatif(report: WhatIf, active: str, other: str) -> None:
    table = _table(
        f"假设分析 what-if: {active} → {other} "
        f"({len(report.changed)} of {report.clocks} clocks change verdict)",
        ("工单", "环节", "部门", active, other, "已用(现)", "已用(假设)"),
    )
    for change in report.changed:
        table.add_row(
            change.case_number,
            label(change.stage, Stage),
            department_label(change.department),
            VERDICT_LABELS[change.active],
            VERDICT_LABELS[change.other],
            f"{change.active_share:.0%}",
            f"{change.other_share:.0%}",
        )
    console.print(table)
    per_department: dict[str, int] = defaultdict(int)
    per_stage: dict[str, int] = defaultdict(int)
    for change in report.changed:
        per_department[department_label(change.department) or "(无)"] += 1
        per_stage[label(change.stage, Stage)] += 1
    console.print("by department: " + ", ".join(f"{k} {v}" for k, v in sorted(per_department.items())))
    console.print("by stage: " + ", ".join(f"{k} {v}" for k, v in sorted(per_stage.items())))
    console.print(f"cases affected: {len({c.case_number for c in report.changed})}")
    for where, count in sorted(report.limit_only_in_one.items()):
        console.print(f"only one set has a limit — {where}: {count} clocks")
