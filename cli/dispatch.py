"""CLI of dispatch (派工与督办): ``yekuo queue DEPARTMENT``, ``yekuo case escalated``, ``yekuo auto-assign``.

The queue and the escalated cases are read from the workload read model (``projections.queries``); the
assignment process is ``consumers.auto_assign``. This module only parses and shows.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from app.bootstrap import build_case_application
from cli.common import NowOption, database_url, days, department_label, fail, label, local_time, parse_now
from domain.vocabulary import Department, Stage
from infra.settings import Settings
from projections import queries

console = Console(width=max(Console().width, 150))

PRIORITY_LABELS = {0: "普通", 1: "优先", 2: "重点", 3: "特急"}
QUEUE_COLUMNS = (
    "工单",
    "环节",
    "类型",
    "特殊关怀",
    "优先级",
    "督办",
    "责任人",
    "接收时间",
    "已等(天)",
    "截止",
)
ESCALATED_COLUMNS = (
    "工单",
    "督办级别",
    "督办次数",
    "最近督办",
    "督办人",
    "原因",
    "督办部门",
    "特殊关怀",
    "优先级",
)


def _department(value: str, option: str) -> str:
    if value not in Department.__members__:
        fail(option, f"{value!r} is not one of {', '.join(Department.__members__)}")
    return value


def queue(
    department: str = typer.Argument(..., help=f"One of: {', '.join(Department.__members__)}."),
    now: str | None = NowOption,
    limit: int = typer.Option(200, min=1, max=1000),
) -> None:
    """待办队列 A department's open work in dispatch order: special care, priority tier, deadline, age."""
    code = _department(department, "DEPARTMENT")
    moment = parse_now(now)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = queries.department_queue(conn, code, moment, limit)
    table = Table(title=f"{department_label(code)} 待办 queue ({len(rows)})")
    for column in QUEUE_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["case_number"],
            label(row["stage"], Stage),
            "会签" if row["kind"] == "REVIEW" else "环节",
            "是" if row["special_care"] else "",
            f"{row['priority_tier']} {PRIORITY_LABELS.get(row['priority_tier'], '')}",
            str(row["escalation_level"] or ""),
            row["handler_name"] or "未派工",
            local_time(row["received_at"]),
            days(row["age_seconds"]),
            local_time(row["due_at"]) if row["due_at"] else "",
        )
    console.print(table)


def escalated(
    department: str | None = typer.Option(None, help="Only cases escalated to this department."),
    limit: int = typer.Option(200, min=1, max=1000),
) -> None:
    """督办案件 Open cases under escalation, latest first, and the departments whose supervisors were told."""
    code = _department(department, "--department") if department else None
    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = queries.escalated_cases(conn, code, limit)
    table = Table(title=f"督办案件 escalated cases ({len(rows)})")
    for column in ESCALATED_COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["case_number"],
            str(row["escalation_level"]),
            str(row["escalations"]),
            local_time(row["escalated_at"]),
            row["escalated_by"] or "",
            row["escalation_reason"] or "",
            "、".join(department_label(d) for d in row["escalated_departments"] or []),
            "是" if row["special_care"] else "",
            str(row["priority_tier"]),
        )
    console.print(table)


def auto_assign(
    once: bool = typer.Option(False, help="One tick, then exit."),
    now: str | None = NowOption,
) -> None:
    """自动派工 Assign the least-loaded handler to every stage opening in an auto-assigned department
    (infra/data/dispatch.json or YEKUO_DISPATCH_FILE; stops cleanly on SIGTERM)."""
    from consumers.auto_assign import AutoAssigner, describe
    from consumers.backoff import Health
    from infra.dispatch_config import DispatchConfigError

    settings = Settings()
    url = database_url()
    fixed = parse_now(now) if now else None
    app = build_case_application(settings, url, create_tables=False)
    try:
        try:
            assigner = AutoAssigner(
                app,
                url,
                dispatch_file=settings.dispatch_file,
                clock=(lambda: fixed) if fixed else (lambda: datetime.now(UTC)),
            )
        except DispatchConfigError as error:
            fail("YEKUO_DISPATCH_FILE", str(error))
        if once:
            console.print(describe(assigner.tick()))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        health = Health(settings.state_dir, "auto-assign")
        assigner.run(stop, settings.auto_assign_tick_seconds, health=health)
    finally:
        app.close()
