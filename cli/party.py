"""``yekuo party …``: the registry of design institutes and contractors (参建单位名录)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from app.application import CommandOutcome
from app.parties import PartyCommand, PartyRegistry, RegisterParty, RenewQualification, SuspendParty
from cli.case import parse_actor, print_outcome
from cli.common import database_url, open_application
from domain.calendar import SHANGHAI
from domain.parties import QUALIFICATION_LEVELS, PartyKind
from infra.party_grading import DEFAULT_PATH, GradingDataError, grading_rules
from projections.party_performance import STEPS, read_party_records
from projections.store import table_exists

party_app = typer.Typer(
    help="参建单位 Design institutes and contractors: register, renew, suspend, list, grades.",
    no_args_is_help=True,
)
console = Console(width=max(Console().width, 140))

ActorOption = typer.Option("registry-admin,名录管理员,MARKETING", "--actor", help="person_id,name,DEPARTMENT")
ReasonOption = typer.Option("", "--reason")
CommandIdOption = typer.Option(None, "--command-id", help="Idempotency key; default: a new uuid.")
OccurredOption = typer.Option(None, "--occurred-at", help="ISO-8601; default: now (Asia/Shanghai).")


def _moment(text: str | None) -> datetime:
    moment = datetime.fromisoformat(text) if text else datetime.now(SHANGHAI)
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def _expiry(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--expires: not a date (YYYY-MM-DD): {text!r}") from None


def _run(command: PartyCommand) -> None:
    app = open_application()
    try:
        outcome: CommandOutcome = PartyRegistry(app).execute(command)
    finally:
        app.close()
    print_outcome(outcome)
    if not outcome.accepted:
        raise typer.Exit(1)


def _common(
    party_id: str, actor: str, reason: str, command_id: str | None, occurred_at: str | None
) -> dict[str, Any]:
    return {
        "command_id": command_id or str(uuid.uuid4()),
        "party_id": party_id,
        "actor": parse_actor(actor),
        "occurred_at": _moment(occurred_at),
        "reason": reason,
    }


@party_app.command()
def register(
    party_id: str = typer.Argument(..., help="统一社会信用代码 unified social credit code"),
    kind: str = typer.Option(..., "--kind", help="DESIGN_INSTITUTE | CONTRACTOR"),
    name: str = typer.Option(..., "--name"),
    level: str = typer.Option(..., "--level", help="GRADE_A|B|C (设计) or CLASS_1..CLASS_5 (承装)"),
    expires: str = typer.Option(..., "--expires", help="qualification expiry date, YYYY-MM-DD"),
    actor: str = ActorOption,
    reason: str = ReasonOption,
    command_id: str | None = CommandIdOption,
    occurred_at: str | None = OccurredOption,
) -> None:
    """登记 Register a design institute or contractor with its qualification."""
    _run(
        RegisterParty(
            **_common(party_id, actor, reason, command_id, occurred_at),
            kind=kind,
            name=name,
            level=level,
            expires_on=_expiry(expires),
        )
    )


@party_app.command()
def renew(
    party_id: str,
    level: str = typer.Option(..., "--level"),
    expires: str = typer.Option(..., "--expires", help="new expiry date, YYYY-MM-DD"),
    actor: str = ActorOption,
    reason: str = ReasonOption,
    command_id: str | None = CommandIdOption,
    occurred_at: str | None = OccurredOption,
) -> None:
    """资质延续 Renew a party's qualification (a later expiry date)."""
    _run(
        RenewQualification(
            **_common(party_id, actor, reason, command_id, occurred_at),
            level=level,
            expires_on=_expiry(expires),
        )
    )


@party_app.command()
def suspend(
    party_id: str,
    reason: str = typer.Option(..., "--reason"),
    actor: str = ActorOption,
    command_id: str | None = CommandIdOption,
    occurred_at: str | None = OccurredOption,
) -> None:
    """暂停 Suspend a party: it takes no new design submissions or inspection requests."""
    _run(SuspendParty(**_common(party_id, actor, reason, command_id, occurred_at)))


@party_app.command("list")
def list_parties() -> None:
    """名录 Every registered party with its qualification and standing."""
    app = open_application()
    try:
        parties = PartyRegistry(app).all()
    finally:
        app.close()
    table = Table(
        "单位 party id", "名称 name", "类别 kind", "资质 qualification", "有效期至 expires", "状态 standing"
    )
    for party in parties:
        kind = PartyKind(party.kind_code)
        table.add_row(
            party.party_id,
            party.name,
            kind.label,
            QUALIFICATION_LEVELS[kind].get(party.level, party.level),
            party.expires_on.isoformat(),
            "暂停 suspended" if party.suspended else "正常 active",
        )
    console.print(table)


@party_app.command()
def grades(
    rules_file: Path = typer.Option(DEFAULT_PATH, "--rules", help="Grading thresholds (JSON data file)."),
) -> None:
    """供应商动态评级 Grade every party A-D: on-time rate, first-pass rate, rework, complaints."""
    try:
        rules = grading_rules(rules_file)
    except GradingDataError as error:
        console.print(str(error))
        raise typer.Exit(1) from None
    url = database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        if not table_exists(conn, STEPS.name):
            console.print(
                "party_performance read model missing: run `yekuo projections rebuild party_performance`"
            )
            raise typer.Exit(1)
        records = read_party_records(conn, rules)
    app = open_application()
    try:
        registry = PartyRegistry(app)
        names = {record.party_id: registry.get(record.party_id) for record in records}
    finally:
        app.close()
    table = Table(
        "评级 grade", "单位 party", "名称 name", "工单 cases", "步骤 steps", "按时率 on time",
        "一次通过率 first pass", "返工 reworks", "投诉 complaints",
        title=f"供应商动态评级 party grades ({rules.version})",
    )  # fmt: skip
    for record in records:
        party = names.get(record.party_id)
        table.add_row(
            record.grade,
            record.party_id,
            party.name if party else "（未登记）",
            str(record.cases),
            str(record.steps),
            _rate(record.on_time_rate),
            _rate(record.first_pass_rate),
            str(record.reworks),
            str(record.complaints),
        )
    console.print(table)


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"
