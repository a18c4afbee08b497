"""CLI of the message pipeline: ``yekuo relay``, ``yekuo worker``, ``yekuo status``, ``yekuo projections``,
``yekuo deadletters`` and ``yekuo schemas``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from app.bootstrap import build_case_application
from app.event_log import CaseEventLog, CaseRangeReader
from cli.common import application_once_database_up, events_progress
from consumers.status import pipeline_status
from infra.intake_messages import intake_schema_documents
from infra.messages import json_schema_documents
from infra.settings import CASE_EVENTS_TOPIC, Settings
from infra.stack import endpoints
from projections import registry
from projections.rebuild import Workers, rebuild
from projections.store import create_schema, replace_cases

console = Console(width=max(Console().width, 140))
projections_app = typer.Typer(help="读模型 Read models: rebuild from the event store.", no_args_is_help=True)
deadletters_app = typer.Typer(help="死信 Dead letters: list and replay.", no_args_is_help=True)

PROJECTION_GROUP = "yekuo-projections"


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def relay() -> None:
    """转发 Run the relay: event store → yekuo.case-events.v1 (stops cleanly on SIGTERM)."""
    from consumers.relay import Relay

    settings = Settings()
    ends = endpoints(settings)
    # The relay is often the first process up on a fresh stack: it creates the event store's tables.
    app = application_once_database_up("relay", settings, ends.database_url, create_tables=True)
    try:
        Relay(app, ends.database_url, ends.kafka_bootstrap_servers, settings).run(_stop_on_signals())
    finally:
        app.close()


def worker(
    group: str = typer.Option(
        PROJECTION_GROUP, help="Consumer group; workers of one group share partitions."
    ),
    timers: bool = typer.Option(True, help="Also dispatch and escalate notifications."),
) -> None:
    """投影 Run a projection worker (faust): case events → read models (stops cleanly on SIGTERM)."""
    from faust import Worker

    from consumers.projection_worker import build_worker

    settings = Settings()
    ends = endpoints(settings)
    built = build_worker(
        settings,
        ends.database_url,
        ends.kafka_bootstrap_servers,
        registry.select(),
        group=group,
        timers=timers,
    )
    try:
        Worker(built.app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()
    finally:
        built.close()


def status() -> None:
    """运行状态 Relay position and lag, each consumer group's position and lag, dead letters."""
    settings = Settings()
    ends = endpoints(settings, ("postgres",))
    app = build_case_application(settings, ends.database_url, create_tables=False)
    head = CaseEventLog(app).head()
    app.close()
    with psycopg.connect(ends.database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
        state = pipeline_status(conn, head)
    table = Table(title="消费者状态 Consumers")
    for column in ("consumer", "position", "lag (events)", "detail"):
        table.add_column(column)
    for relay_position in state.relays:
        table.add_row(
            f"relay {relay_position.name}",
            f"log {relay_position.position} / {head}",
            str(head - relay_position.position),
            f"incarnation {relay_position.incarnation[:8]} · {relay_position.updated_at:%Y-%m-%d %H:%M:%S}",
        )
    if not state.relays:
        table.add_row("relay", f"log 0 / {head}", str(head), "never ran")
    for group, lag in sorted(state.groups.items()):
        table.add_row(
            f"projections {group}",
            f"offsets {lag.consumed} / {lag.published}",
            str(lag.lag),
            CASE_EVENTS_TOPIC,
        )
    console.print(table)
    _print_readiness(settings)
    for dead in state.dead_letters:
        console.print(
            f"死信 dead letters of {dead.consumer_group}: {dead.open} to replay ({dead.total} in all)"
        )
    if not state.dead_letters:
        console.print("死信 dead letters: none")
    console.print(
        f"时限 SLA clocks: {state.clocks_running} running, {state.clock_levels_due} with a level due for the "
        "SLA clock to record"
        + (
            f", {state.clocks_beyond_calendar} beyond the calendar data"
            if state.clocks_beyond_calendar
            else ""
        )
    )


def _print_readiness(settings: Settings) -> None:
    """Each process's readiness file (consumers.backoff.Health): ready, or what it waits for."""
    from consumers.backoff import read_health

    for process in read_health(settings.state_dir):
        if process.stale:
            state = f"no sign of life since {process.updated_at:%H:%M:%S} (not running?)"
        elif process.ready:
            state = "ready 就绪"
        else:
            waits = ", ".join(
                f"{dependency} since {detail['since'][11:19]} ({detail['reason'][:80]})"
                for dependency, detail in process.waiting_for.items()
            )
            state = f"NOT READY 未就绪: waiting for {waits}"
        console.print(f"进程 {process.process} (pid {process.pid}): {state}")


@projections_app.command("rebuild")
def rebuild_command(
    names: list[str] = typer.Argument(None, help="Projections (default: all)."),
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        min=0,
        help="Worker processes over case ranges (0: one per core, at most 4; 1: serial in this process).",
    ),
) -> None:
    """重建 Rebuild read models from the event store into shadow tables, swapped in atomically."""
    settings = Settings()
    ends = endpoints(settings, ("postgres",))
    try:
        chosen = registry.select(names)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0])) from error
    app = build_case_application(settings, ends.database_url, create_tables=False)
    log = CaseEventLog(app)
    workers = Workers(ends.database_url, CaseRangeReader(settings, ends.database_url), jobs=jobs)
    try:
        with (
            psycopg.connect(ends.database_url, autocommit=True) as conn,
            events_progress(f"重建 rebuild ({workers.processes} jobs)") as progress,
        ):
            report = rebuild(conn, chosen, log.read_all, log.head, workers=workers, progress=progress)
    finally:
        app.close()
    console.print(
        f"rebuilt {', '.join(report.projections)}: {report.events} events, {report.cases} cases, "
        f"up to log position {report.position} in {report.seconds:.2f}s "
        f"({report.events_per_second:,.0f} events/s, {workers.processes} jobs)"
    )


@projections_app.command("list")
def list_projections() -> None:
    """The read models and their tables."""
    for projection in registry.select():
        tables = ", ".join(t.name for t in projection.tables)
        console.print(f"{projection.name}: {tables}")


@deadletters_app.command("list")
def list_dead_letters(all_: bool = typer.Option(False, "--all", help="Include replayed ones.")) -> None:
    """Dead letters with their reasons."""
    settings = Settings()
    with psycopg.connect(endpoints(settings, ("postgres",)).database_url, autocommit=True) as conn:
        create_schema(conn, registry.select())
        rows = conn.execute(
            'SELECT id, consumer_group, topic, partition, "offset", key, reason, failed_at, replay_result '
            "FROM dead_letters WHERE %s OR replayed_at IS NULL ORDER BY id",
            (all_,),
        ).fetchall()
    table = Table(title="死信 Dead letters")
    for column in ("id", "group", "where", "case", "reason", "failed at", "replay"):
        table.add_column(column)
    for id_, group, topic, partition, offset, key, reason, failed_at, result in rows:
        table.add_row(
            str(id_),
            group,
            f"{topic}[{partition}]@{offset}",
            key or "",
            reason,
            f"{failed_at:%Y-%m-%d %H:%M:%S}",
            result or "",
        )
    console.print(table)


@deadletters_app.command("replay")
def replay_dead_letters(
    ids: list[int] = typer.Argument(None, help="Dead letter ids (default: all open)."),
) -> None:
    """Replay dead letters after a fix: each affected case is recomputed from its full history."""
    from uuid import UUID

    settings = Settings()
    ends = endpoints(settings, ("postgres",))
    app = build_case_application(settings, ends.database_url, create_tables=False)
    log = CaseEventLog(app)
    replayed = failed = 0
    try:
        with psycopg.connect(ends.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT id, key FROM dead_letters "
                "WHERE replayed_at IS NULL AND (%s OR id = ANY(%s)) ORDER BY id",
                (not ids, ids or []),
            ).fetchall()
            for id_, key in rows:
                try:
                    case_id = UUID(key or "")
                    history = log.history(case_id)
                    if not history:
                        raise ValueError(f"no case {key} in the event store")
                    for projection in registry.select():
                        replace_cases(conn, projection, {case_id: history})
                    result, replayed = f"replayed {len(history)} events of the case", replayed + 1
                except (ValueError, KeyError, TypeError) as error:
                    result, failed = f"still failing: {error!r}", failed + 1
                conn.execute(
                    "UPDATE dead_letters SET replayed_at = CASE WHEN %s THEN now() END, replay_result = %s "
                    "WHERE id = %s",
                    (result.startswith("replayed"), result, id_),
                )
    finally:
        app.close()
    console.print(f"replayed {replayed}, still failing {failed}")
    if failed:
        raise typer.Exit(1)


def schemas(
    directory: Path = typer.Option(Path("docs/schemas"), help="Where to write the JSON Schemas."),
) -> None:
    """Write the JSON Schemas of the published messages."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in {**json_schema_documents(), **intake_schema_documents()}.items():
        (directory / name).write_text(text)
        console.print(f"wrote {directory / name}")
