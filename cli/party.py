"""``yekuo party …``: the registry of design institutes and contractors (参建单位名录)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from app.application import CommandOutcome
from app.parties import PartyCommand, PartyRegistry, RegisterParty, RenewQualification, SuspendParty
from cli.case import parse_actor, print_outcome
from cli.common import open_application
from domain.calendar import SHANGHAI
from domain.parties import QUALIFICATION_LEVELS, PartyKind

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
