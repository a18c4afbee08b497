"""``yekuo calendar add FILE`` and ``yekuo calendar show YEAR``: the working-day calendar (工作日历).

A new year's State Council holiday notice is data: an operator adds it without a release, and every
process counts with it within seconds (the SLA clock then records the deadlines it moves).
"""

from __future__ import annotations

import getpass
import json
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from domain.calendar import CalendarDataError, provisional_year
from infra.settings import Settings
from infra.sla_config import add_year, load_calendar

console = Console()
calendar_app = typer.Typer(help="工作日历 Working-day calendar: add a year's holiday notice, show a year.")

WEEKDAYS = "一二三四五六日"


@calendar_app.command("add")
def add(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The year as JSON (see docs/sla.md)."),
    by: str = typer.Option("", help="Who adds it (default: the OS user)."),
) -> None:
    """Add (or replace) a year from the State Council's notice: holidays and make-up working days."""
    try:
        raw = json.loads(file.read_text())
        added = add_year(Settings(), raw, added_by=by or getpass.getuser())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        console.print(f"拒绝 refused: {file} is not JSON: {error}")
        raise typer.Exit(2) from None
    except CalendarDataError as error:
        console.print(f"拒绝 refused: {error}")
        raise typer.Exit(2) from None
    verb = "replaced" if added.replaced else "added"
    console.print(
        f"{verb} {added.year.year}: {len(added.year.holidays)} holidays, "
        f"{len(added.year.makeup_workdays)} make-up working days (digest {added.digest}); "
        f"calendar now {added.calendar_version}"
    )


@calendar_app.command("show")
def show(year: int = typer.Argument(..., min=1900, max=2200)) -> None:
    """The year's holidays and make-up working days, where they come from, and whether it is provisional."""
    settings = Settings()
    calendar = load_calendar(settings)
    known = {data.year: data for data in calendar.years}
    data = known.get(year)
    if data is None and year in calendar.provisional_years:
        data = provisional_year(year)
    if data is None:
        console.print(f"{year}: outside the calendar {calendar.version}")
        raise typer.Exit(1)
    status = "暂定 provisional (no notice loaded)" if year not in known else "据通知 from the notice"
    console.print(f"{year} {status} — calendar {calendar.version}\nsource: {data.source}")
    table = Table(title=f"{year} 节假日与调休 holidays and make-up working days")
    for column in ("日期", "星期", "类别"):
        table.add_column(column)
    for day in sorted(data.holidays | data.makeup_workdays):
        kind = "调休上班 make-up working day" if day in data.makeup_workdays else "放假 holiday"
        table.add_row(day.isoformat(), f"周{WEEKDAYS[day.weekday()]}", kind)
    console.print(table)
    working = sum(
        data.is_working_day(date(year, 1, 1) + timedelta(days=i))
        for i in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)
    )
    console.print(f"{working} working days")
