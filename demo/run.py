"""``yekuo demo``: the main job on embedded defaults — start the stack, the relay and a projection worker,
walk a sample case of each category through every stage (the first one as an integrating system would: through
the intake consumer), print each history with its hash-chain verdict, then show the cases arriving in each
read model and every consumer caught up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
import typer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from api.security import Role, TokenKeyMissingError, issue_token
from app.application import CaseApplication, CommandOutcome
from app.bootstrap import build_case_application
from app.intake_envelopes import envelope_for, source_for
from cli.api import token_key
from cli.case import history_table
from consumers.auto_assign import AutoAssigner
from consumers.relay import Relay
from consumers.sla_clock import SlaClock
from consumers.status import consumer_lag
from demo.api_tour import show_api, start_api, stop_api
from demo.dashboard_data import load, open_and_earlier_cases, register_parties
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.commands import Command
from domain.vocabulary import Department, Stage
from infra.dispatch_config import DispatchConfigError
from infra.intake_messages import IntakeResult
from infra.settings import INTAKE_RESULTS_TOPIC, INTAKE_TOPIC, Settings
from infra.source_systems import load_source_systems
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
    keep_running: bool = typer.Option(
        False,
        help="Leave the servers running afterwards; first serve the dashboard (with more cases, the SLA "
        "clock ticking) until Ctrl-C, printing its address and a manager token.",
    ),
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
    intake = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "intake"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(settings.state_dir / "demo-intake.log").open("ab"),
        stdin=subprocess.DEVNULL,
    )
    broken: list[str] = []
    try:
        finals: dict[UUID, int | None] = {}
        numbers: dict[UUID, str] = {}
        events = 0
        for index, (category, fast_track) in enumerate(CATEGORIES_FOR_DEMO):
            case_number = f"YK-DEMO-{category}{'-FAST' if fast_track else ''}"
            commands = sample_walk(category, case_number, DEMO_START, fast_track=fast_track)
            if index == 0:
                outcomes = _through_intake(console, endpoints.kafka_bootstrap_servers, commands, intake)
            else:
                outcomes = [app.execute(command) for command in commands]
            for outcome in outcomes:
                if not outcome.accepted:
                    console.print(f"sample command rejected: {outcome.rule}: {outcome.message}")
                    raise typer.Exit(1)
            command, outcome = commands[-1], outcomes[-1]
            finals[command.case_id] = app.get_case(case_number).version  # a rerun: facts added since
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
        if keep_running and not broken:
            _serve_dashboard(console, settings, env, app, endpoints.database_url, worker)
    finally:
        stop_relay.set()
        relay_thread.join(timeout=30)
        for process in (worker, intake):
            process.send_signal(signal.SIGTERM)
        for process in (worker, intake):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        app.close()
        if endpoints.started and not keep_running:
            stack.down()
    if broken:
        raise typer.Exit(1)


def _through_intake(
    console: Console, bootstrap: str, commands: list[Command], intake: subprocess.Popen[bytes]
) -> list[CommandOutcome]:
    """Publish ``commands`` on yekuo.intake.v1 as integrating systems would; their outcomes, from the
    results topic."""
    systems = load_source_systems(Settings().source_systems_file)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for command in commands:
        envelope = envelope_for(command, source_for(command, systems))
        producer.send(INTAKE_TOPIC, key=command.case_number.encode(), value=envelope.to_bytes())
    producer.flush()
    producer.close()
    wanted = {command.command_id for command in commands}
    results: dict[str, IntakeResult] = {}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(INTAKE_RESULTS_TOPIC, p)
            for p in consumer.partitions_for_topic(INTAKE_RESULTS_TOPIC) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 120
        while wanted - set(results) and time.monotonic() < deadline and intake.poll() is None:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    result = IntakeResult.model_validate_json(record.value)
                    if result.message_id in wanted:
                        results.setdefault(result.message_id, result)
    finally:
        consumer.close()
    if wanted - set(results):
        console.print(
            f"intake gave no result for {len(wanted - set(results))} messages (see demo-intake.log)"
        )
        raise typer.Exit(1)
    console.print(
        _table(
            f"接入 Intake: {commands[0].case_number} sent by integrating systems on {INTAKE_TOPIC}",
            ("message id", "source system", "command", "outcome", "version"),
            (
                (r.message_id, r.source_system, r.command_type, r.outcome, r.case_version)
                for r in (results[c.command_id] for c in commands)
            ),
        )
    )
    return [
        CommandOutcome(
            command_id=c.command_id,
            command_type=c.command_type,
            case_number=c.case_number,
            accepted=results[c.command_id].outcome == "ACCEPTED",
            rule=results[c.command_id].rule,
            message=results[c.command_id].message,
            case_version=results[c.command_id].case_version,
            event_types=tuple(results[c.command_id].event_types),
        )
        for c in commands
    ]


def _wait_for_read_models(
    console: Console, database_url: str, finals: Mapping[UUID, int | None], worker: subprocess.Popen[bytes]
) -> None:
    """Until the progress read model holds every case's last version (the worker creates the tables)."""
    deadline = time.monotonic() + 180
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                console.print(f"the projection worker exited with {worker.returncode}")
                raise typer.Exit(1)
            if table_exists(conn, "progress_versions"):
                applied: dict[UUID, int] = dict(
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


def _serve_dashboard(
    console: Console,
    settings: Settings,
    env: dict[str, str],
    app: CaseApplication,
    database_url: str,
    worker: subprocess.Popen[bytes],
) -> None:
    """``--keep-running``: add the dashboard's open and earlier cases, serve the API with the dashboard and
    let the SLA clock tick and the auto-assigner (自动派工, infra/data/dispatch.json) assign (the relay and
    worker keep running) until Ctrl-C or SIGTERM."""
    try:
        auto_assigner = AutoAssigner(app, database_url, dispatch_file=settings.dispatch_file)
    except DispatchConfigError as error:
        console.print(f"dashboard not served: {error}")
        raise typer.Exit(2) from None
    register_parties(app)
    cases = [commands for commands in open_and_earlier_cases(datetime.now(UTC)) if commands]
    for outcome in load(app, cases):
        console.print(f"dashboard case command refused: {outcome.case_number} {outcome.rule}")
    finals = {c[0].case_id: app.get_case(c[0].case_number).version for c in cases}
    _wait_for_read_models(console, database_url, finals, worker)
    try:
        key = token_key(settings)
    except TokenKeyMissingError as error:
        console.print(f"dashboard not served: {error}")
        raise typer.Exit(2) from None
    started = start_api(console, settings, env, key)
    if started is None:
        raise typer.Exit(1)
    process, base = started
    token = issue_token(key, role=Role.MANAGER, person_id="mgr-demo", name="演示经理", hours=24)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sla = threading.Thread(
        target=SlaClock(app, database_url).run, args=(stop, settings.sla_tick_seconds), name="sla-clock"
    )
    assigner = threading.Thread(
        target=auto_assigner.run,
        args=(stop, settings.auto_assign_tick_seconds),
        name="auto-assign",
    )
    sla.start()
    assigner.start()
    console.print(
        f"\n驾驶舱 Dashboard: {base}/dashboard/overview?token={token}\n"
        f"经理令牌 Manager token (24 h): {token}\n"
        f"{len(cases)} more cases loaded for it; the SLA clock ticks every {settings.sla_tick_seconds:g} s, "
        f"the auto-assigner every {settings.auto_assign_tick_seconds:g} s. Ctrl-C stops the API, relay, "
        "worker, SLA clock and auto-assigner; the servers stay up (`yekuo stack down`).",
        soft_wrap=True,
        highlight=False,
    )
    try:
        while not stop.wait(1.0):
            if process.poll() is not None:
                console.print(f"the API exited; see {settings.state_dir / 'demo-api.log'}")
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        sla.join(timeout=30)
        assigner.join(timeout=30)
        stop_api(process)
