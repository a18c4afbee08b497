"""What every ``yekuo`` command shares: labels, local time, the time a report is taken at, servers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from typing import NoReturn

import typer
from eventsourcing import persistence
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from app.application import CaseApplication
from app.bootstrap import build_case_application
from consumers.backoff import TRANSIENT_DATABASE_ERRORS, Health, Outage, pg_connect
from domain.calendar import DAY_SECONDS, SHANGHAI
from domain.vocabulary import Department
from infra.messages import CaseEventMessage
from infra.settings import Settings
from infra.stack import endpoints

OUTSIDE_PARTIES = {
    "CUSTOMER": "客户",
    "DESIGN_INSTITUTE": "设计单位",
    "CONTRACTOR": "施工单位",
    "SYSTEM": "系统",
}

NowOption = typer.Option(None, "--now", help="Evaluate at this instant (ISO-8601 with offset); default: now.")


def label(value: str | None, enum: type[Enum]) -> str:
    """The Chinese label of an enum value, or the value itself ("" for none)."""
    if value is None:
        return ""
    if value == "COMPLAINT":  # the stage of a complaint's SLA clock (domain.sla.COMPLAINT)
        return "投诉处理"
    member = getattr(enum, "__members__", {}).get(value)
    return str(getattr(member, "label", value))


def department_label(value: str | None) -> str:
    """A department's Chinese name, or an outside party's."""
    return OUTSIDE_PARTIES.get(value or "") or label(value, Department)


def local_time(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def days(seconds: float | None) -> str:
    """Working seconds as working days with two decimals ("" for none)."""
    return "" if seconds is None else f"{seconds / DAY_SECONDS:.2f}"


def parse_now(text: str | None) -> datetime:
    """``--now``: an ISO-8601 instant with offset, or the current time."""
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--now: not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("--now needs a time zone offset, e.g. 2025-10-09T12:00:00+08:00")
    return moment


def fail(option: str, message: str) -> NoReturn:
    """Refuse bad input on the command line: one line naming the option at fault, exit status 2."""
    typer.echo(f"Error: {option}: {message}", err=True)
    raise typer.Exit(2)


def parse_instant(option: str, text: str) -> datetime:
    """An ISO-8601 instant with its offset; anything else is refused (``fail``), never guessed."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(option, f"not an ISO-8601 time: {text!r} (e.g. 2025-09-01T09:00:00+08:00)")
    if moment.tzinfo is None or moment.utcoffset() is None:
        fail(option, f"{text!r} has no time zone offset; give one, e.g. {text}+08:00")
    return moment


def database_url() -> str:
    """The configured PostgreSQL, or the local stack's."""
    return endpoints(Settings(), ("postgres",)).database_url


def open_application() -> CaseApplication:
    """The case application on the configured (or local-stack) PostgreSQL.

    One plain connection first: a refused connection fails at once (exit 3, ``cli.main``), where the
    application's pool would retry for its whole 5 s connect timeout before giving up."""
    url = database_url()
    pg_connect(url).close()
    return build_case_application(Settings(), url)


def application_once_database_up(
    process: str,
    settings: Settings,
    url: str,
    *,
    create_tables: bool = False,
    pool_timeout: int = 5,
    health: Health | None = None,
) -> CaseApplication:
    """The case application for a long-running process, which may start while PostgreSQL is down: it waits
    (one log line, not ready on ``health``) instead of exiting. With ``create_tables``, a concurrent
    creation by another process ("tuple concurrently updated") is retried too."""
    retried: tuple[type[BaseException], ...] = TRANSIENT_DATABASE_ERRORS
    if create_tables:
        retried += (persistence.ProgrammingError, persistence.InternalError)
    database = Outage(process, "postgres", health)
    while True:
        try:
            app = build_case_application(
                settings, url, create_tables=create_tables, pool_timeout=pool_timeout
            )
        except retried as error:
            time.sleep(database.failed(error))
            continue
        database.recovered()
        return app


LogBatches = Iterable[tuple[list[CaseEventMessage], int]]


_PROGRESS_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    TextColumn("{task.percentage:>3.0f}%"),
    TextColumn("{task.fields[events]:,} events · {task.fields[rate]:,.0f} events/s"),
    TimeElapsedColumn(),
    TextColumn("ETA 剩余"),
    TimeRemainingColumn(),
)


def log_progress(
    description: str, head: int, batches: LogBatches
) -> Iterator[tuple[list[CaseEventMessage], int]]:
    """Pass ``(messages, position)`` batches of the log through, with a progress bar on stderr: log
    positions read of ``head``, events so far, events/s and the time left."""
    with Progress(*_PROGRESS_COLUMNS, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=max(head, 1), events=0, rate=0.0)
        events = 0
        for batch in batches:
            messages, position = batch
            events += len(messages)
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=position, events=events, rate=events / elapsed if elapsed else 0.0)
            yield batch


@contextmanager
def events_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr fed by ``update(events, of)`` (``projections.rebuild.Progress``, from
    any number of rebuild workers): events so far of ``of``, events/s and the time left."""
    with Progress(*_PROGRESS_COLUMNS, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=1, events=0, rate=0.0)

        def update(events: int, of: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(
                task,
                total=max(of, 1),
                completed=min(events, of),
                events=events,
                rate=events / elapsed if elapsed else 0.0,
            )

        yield update
