"""``yekuo demo``: the main job on embedded defaults — start the stack, the relay and a projection worker,
walk a sample case of each category through every stage, print each history with its hash-chain verdict,
then show the cases arriving in each read model and every consumer caught up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from app.bootstrap import build_case_application
from cli.case import history_table
from consumers.relay import Relay
from consumers.sla_clock import SlaClock
from consumers.status import consumer_lag
from demo.api_tour import show_api
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.vocabulary import Department, Stage
from infra.settings import Settings
from infra.stack import LocalStack
from projections.store import table_exists

PROGRESS_SQL = """
SELECT case_number, category_label, status_label, next_step, jsonb_array_length(timeline),
expected_completion FROM case_progress ORDER BY case_number
"""
WORKLOAD_SQL = """
SELECT department, kind, completed_items, date_trunc('minute', average_time_in_hand),
longest_time_in_hand FROM department_time_in_hand ORDER BY department, kind
"""
NOTIFICATIONS_SQL = """
SELECT recipient_kind, count(*), count(d.notification_id), min(message) FROM notifications n
LEFT JOIN notification_deliveries d USING (notification_id) GROUP BY recipient_kind ORDER BY 1
"""
CLOCKS_SQL = """
SELECT case_number, kind, stage, review_department, limit_days, elapsed_seconds, on_time,
rule_set || '@' || rule_version FROM sla_clocks ORDER BY case_number, started_at
"""

DEMO_START = datetime(2025, 9, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def demo(
    keep_running: bool = typer.Option(False, help="Leave the servers running afterwards."),
) -> None:
    """Start the whole pipeline and walk a sample case of every category through every stage."""
    console = Console(width=max(Console().width, 160))
    settings = Settings()
    stack = LocalStack(settings)
    endpoints = stack.up()
    console.print(
        f"stack: PostgreSQL {endpoints.database_url} · Kafka {endpoints.kafka_bootstrap_servers} "
        f"(started: {', '.join(endpoints.started) or 'none'})"
    )
    env = {
        **os.environ,
        "DATABASE_URL": endpoints.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap_servers,
    }
    app = build_case_application(settings, endpoints.database_url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(settings.state_dir / "demo-worker.log").open("ab"),
        stdin=subprocess.DEVNULL,
    )
    stop_relay = threading.Event()
    relay = Relay(app, endpoints.database_url, endpoints.kafka_bootstrap_servers, settings)
    relay_thread = threading.Thread(target=relay.run, args=(stop_relay,), name="relay")
    relay_thread.start()
    broken: list[str] = []
    try:
        finals: dict[UUID, int | None] = {}
        numbers: dict[UUID, str] = {}
        events = 0
        for category, fast_track in CATEGORIES_FOR_DEMO:
            case_number = f"YK-DEMO-{category}{'-FAST' if fast_track else ''}"
            for command in sample_walk(category, case_number, DEMO_START, fast_track=fast_track):
                outcome = app.execute(command)
                if not outcome.accepted:
                    console.print(f"sample command rejected: {outcome.rule}: {outcome.message}")
                    raise typer.Exit(1)
            finals[command.case_id] = outcome.case_version
            numbers[command.case_id] = case_number
            console.print(history_table(app, case_number))
            verdict = app.verify(case_number)
            events += verdict.events_checked
            console.print(
                f"{case_number}: {app.get_case(case_number).status.label}; hash chain "
                f"{'intact' if verdict.intact else 'BROKEN: ' + str(verdict.problem)}\n"
            )
            if not verdict.intact:
                broken.append(case_number)
        console.print(
            f"summary: {len(CATEGORIES_FOR_DEMO)} cases, {events} events, "
            f"{'all hash chains intact' if not broken else 'broken chains: ' + ', '.join(broken)}\n"
        )
        _wait_for_read_models(console, endpoints.database_url, finals, worker)
        ticked = SlaClock(app, endpoints.database_url).tick()
        console.print(f"SLA clock tick: {ticked['recorded']} level crossings recorded as case facts")
        finals = {case_id: app.get_case(number).version for case_id, number in numbers.items()}
        _wait_for_read_models(console, endpoints.database_url, finals, worker)
        _show_read_models(console, endpoints.database_url)
        if not show_api(console, settings, env, case_number, app.get_case(case_number).contact_phone):
            broken.append("HTTP API")
    finally:
        stop_relay.set()
        relay_thread.join(timeout=30)
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        app.close()
        if endpoints.started and not keep_running:
            stack.down()
    if broken:
        raise typer.Exit(1)


def _wait_for_read_models(
    console: Console, database_url: str, finals: dict[UUID, int | None], worker: subprocess.Popen[bytes]
) -> None:
    """Until the progress read model holds every case's last version (the worker creates the tables)."""
    deadline = time.monotonic() + 180
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                console.print(f"the projection worker exited with {worker.returncode}")
                raise typer.Exit(1)
            if table_exists(conn, "progress_versions"):
                applied = dict(
                    conn.execute(
                        "SELECT case_id, version FROM progress_versions WHERE case_id = ANY(%s)",
                        (list(finals),),
                    ).fetchall()
                )
                undelivered = conn.execute(
                    "SELECT count(*) FROM notifications n WHERE NOT EXISTS "
                    "(SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.notification_id)"
                ).fetchone()
                if undelivered == (0,) and all(applied.get(c) == v for c, v in finals.items()):
                    return
            time.sleep(0.3)
    console.print("the read models did not catch up within 180 s")
    raise typer.Exit(1)


def _table(title: str, columns: tuple[str, ...], rows: Iterable[Iterable[object]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row))
    return table


def _clock_cells(row: tuple[Any, ...]) -> tuple[object, ...]:
    number, kind, stage, review, limit, elapsed, on_time, rule = row
    name = f"{Stage(stage).label}{' 会签 ' + Department(review).label if review else ''}"
    verdict = "在途" if on_time is None else "按时" if on_time else "超期"
    return (
        number,
        f"{name} ({kind})",
        limit,
        "" if elapsed is None else f"{elapsed / 86400:.2f}",
        verdict,
        rule,
    )


def _show_read_models(console: Console, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        console.print(
            _table(
                "进度查询 progress (case_progress)",
                ("工单", "类别", "状态", "下一步", "环节数", "预计完成"),
                conn.execute(PROGRESS_SQL),
            )
        )
        console.print(
            _table(
                "部门工作量 workload (department_time_in_hand)",
                ("部门", "类型", "已办", "平均在手", "最长在手"),
                ((Department(row[0]).label, *row[1:]) for row in conn.execute(WORKLOAD_SQL)),
            )
        )
        console.print(
            _table(
                "协同通知 notifications (per recipient kind)",
                ("收件方", "条数", "已推送网关", "示例"),
                conn.execute(NOTIFICATIONS_SQL),
            )
        )
        console.print(
            _table(
                "时限 SLA (sla_clocks)",
                ("工单", "时钟", "期限(工作日)", "用时(工作日)", "结论", "规则"),
                map(
                    _clock_cells,
                    conn.execute(CLOCKS_SQL),
                ),
            )
        )
        for group, lag in consumer_lag(conn).items():
            console.print(
                f"consumer {group}: {lag.consumed} of {lag.published} events applied, lag {lag.lag}"
            )
