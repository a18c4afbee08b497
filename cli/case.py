"""``yekuo case …``: issue any command, and show, trace and verify a case from the terminal."""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
import uuid
from collections import Counter
from datetime import date, datetime
from enum import Enum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from app.application import CaseApplication, CaseNotFoundError, CommandOutcome
from app.witness import check_all, check_case
from cli.common import department_label, fail, label, local_time, open_application, parse_instant
from domain.calendar import SHANGHAI
from domain.case import Case
from domain.case_values import ApplicationDetails
from domain.commands import COMMAND_TYPES, Command, SubmitApplication
from domain.vocabulary import Actor, CaseStatus, Category, Channel, CustomerStep, PlanPhase, Stage
from domain.witness import Integrity

COMMON_FIELDS = {f.name for f in dataclasses.fields(Command)}

case_app = typer.Typer(help="业扩工单 Cases: issue commands, show, history, verify.", no_args_is_help=True)
console = Console(width=max(Console().width, 160))  # wide enough for history tables off a terminal


# ---- labels ----------------------------------------------------------------------------------------


def event_label(event: Case.Event) -> str:
    """The Chinese name at the head of each event class's docstring, e.g. 已受理."""
    first = (type(event).__doc__ or type(event).__name__).strip().splitlines()[0]
    for separator in (":", ";", "(", "."):
        first = first.split(separator)[0]
    return first.strip()


def event_detail(event: Case.Event) -> str:
    """What to show beside the label: the event's own fields that matter to a reader."""
    fields = vars(event)
    if "stage" in fields:
        where = label(fields["stage"], Stage)
        if "department" in fields and "outcome" not in fields:
            return f"{where} → {department_label(fields['department'])}"
        if "outcome" in fields:
            return f"{where} {fields['outcome']}"
    if "handler" in fields:
        return f"{fields['handler'].name} ({department_label(fields['handler'].department)})"
    for name in ("step", "target_stage"):
        if name in fields:
            return label(fields[name], CustomerStep if name == "step" else Stage)
    shown = {
        name: fields[name]
        for name in (
            "missing_documents",
            "documents",
            "departments",
            "department",
            "issues",
            "rectifications",
            "contract_number",
            "meter_id",
            "dispatch_order",
            "score",
            "complaint_id",
            "reason_code",
            "level",
            "scheduled_for",
            "passed",
            "summary",
            "findings",
        )
        if name in fields and fields[name] not in (None, [], "")
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items())


# ---- rendering -------------------------------------------------------------------------------------


def history_table(app: CaseApplication, case_number: str) -> Table:
    """A case's history: when, who, department, what, why, through which channel."""
    table = Table(title=f"{case_number} 办理记录 history", show_lines=False)
    for column in (
        "#",
        "时间 when",
        "操作人 who",
        "部门 department",
        "事项 what",
        "原因 why",
        "渠道 channel",
    ):
        table.add_column(column)
    for event in app.history(case_number):
        table.add_row(
            str(event.originator_version),
            local_time(event.occurred_at),
            event.actor.name,
            department_label(event.actor.department),
            f"{event_label(event)} {event_detail(event)}".strip(),
            event.reason,
            label(event.channel, Channel),
        )
    return table


def print_case(case: Case) -> None:
    console.print(
        f"[bold]{case.case_number}[/bold] {label(case.category_code, Category)} · "
        f"{label(case.status_code, CaseStatus)} · version {case.version}"
    )
    console.print(f"客户 customer: {case.customer_name} ({case.customer_ref}) · {case.address}")
    manager = case.customer_manager
    console.print(f"客户经理 customer manager: {manager.name if manager else '—（未受理）'}")
    if case.awaiting_step:
        console.print(f"等待客户 awaiting customer: {label(case.awaiting_step, CustomerStep)}")
    if case.pause:
        console.print(f"时限暂停 paused since {local_time(case.pause.since)}: {case.pause.reason_code.label}")
    console.print(
        f"供电方案 plan: {label(case.plan_phase_code, PlanPhase)} · "
        f"督办 escalation level {case.escalation_level}"
    )
    table = Table("环节 open stage", "责任部门 accountable", "责任人 handler", "开始 since")
    for stage, item in sorted(case.accountable().items(), key=lambda pair: pair[0].position):
        handler = item.handler.name if item.handler else "（未派工）"
        table.add_row(stage.label, item.department.label, handler, local_time(item.opened_at))
    console.print(table)


def print_outcome(outcome: CommandOutcome) -> None:
    if outcome.accepted:
        again = " (repeat: nothing appended)" if outcome.repeated else ""
        console.print(
            f"✓ accepted{again}: {outcome.case_number} version {outcome.case_version} "
            f"[{', '.join(outcome.event_types)}]"
        )
    else:
        console.print(f"✗ rejected: {outcome.rule}: {outcome.message}")


# ---- parsing command fields -------------------------------------------------------------------------


def parse_actor(text: str, option: str = "--actor") -> Actor:
    """``person_id,name,DEPARTMENT``."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3:
        fail(option, f"an actor is 'person_id,name,DEPARTMENT', got {text!r}")
    try:
        return Actor(*parts)
    except (TypeError, ValueError) as error:
        fail(option, str(error))


def coerce(value: str, annotation: Any, option: str) -> Any:
    """Turn a command-line string into the command field's type; ``fail`` names ``option`` if it cannot."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value == "" else coerce(value, options[0], option)
    if origin is tuple:
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if annotation is bool:
        if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
            fail(option, f"expected true/false, got {value!r}")
        return value.lower() in ("true", "yes", "1")
    if annotation is Actor:
        return parse_actor(value, option)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        if value not in annotation.__members__:
            fail(option, f"{value!r} is not one of {', '.join(annotation.__members__)}")
        return annotation[value]
    if annotation is date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            fail(option, f"not a date (YYYY-MM-DD): {value!r}")
    if annotation is datetime:
        return parse_instant(option, value)
    if isinstance(annotation, type) and annotation is not str:
        try:
            return annotation(value)
        except (TypeError, ValueError):
            fail(option, f"not a valid {annotation.__name__}: {value!r}")
    return value


def build_command(command_type: type[Command], common: dict[str, Any], pairs: list[str]) -> Command:
    hints = typing.get_type_hints(command_type)
    known = sorted(set(hints) - COMMON_FIELDS - {"creates_case", "application"})
    specific: dict[str, Any] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            fail("-f/--field", f"expected key=value, got {pair!r}")
        if name not in hints or name in COMMON_FIELDS:
            fail("-f/--field", f"{command_type.__name__} has no field {name!r}; fields: {', '.join(known)}")
        specific[name] = coerce(value, hints[name], f"-f {name}")
    missing = [
        f.name
        for f in dataclasses.fields(command_type)
        if f.name not in common
        and f.name not in specific
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        fail("-f/--field", f"{command_type.__name__} needs {', '.join(f'-f {name}=…' for name in missing)}")
    try:
        return command_type(**common, **specific)
    except (TypeError, ValueError) as error:
        fail("-f/--field", str(error))


def _common(
    case_number: str, actor: str, channel: str, reason: str, command_id: str | None, occurred_at: str | None
) -> dict[str, Any]:
    """The fields every command has. Without ``--occurred-at`` the command happened now; that default is
    marked (``occurred_at_defaulted``) so that a retry under the same ``--command-id`` is a repeat."""
    coerce(channel, Channel, "--channel")
    return {
        "command_id": command_id or str(uuid.uuid4()),
        "case_number": case_number,
        "actor": parse_actor(actor),
        "occurred_at": parse_instant("--occurred-at", occurred_at) if occurred_at else datetime.now(SHANGHAI),
        "occurred_at_defaulted": not occurred_at,
        "channel": channel,
        "reason": reason,
    }


ActorOption = typer.Option(..., "--actor", help="Who acts: 'person_id,name,DEPARTMENT'.")
ChannelOption = typer.Option("STAFF_CONSOLE", help=f"One of: {', '.join(Channel)}.")
ReasonOption = typer.Option("", help="Why (required by returns, cancellations, reassignments, …).")
CommandIdOption = typer.Option(None, help="Client command id (idempotency key); default: a new uuid.")
OccurredOption = typer.Option(
    None, help="When it happened (ISO 8601 with offset, e.g. 2025-09-01T09:00:00+08:00; default: now)."
)


def _execute(command: Command) -> None:
    outcome = open_application().execute(command)
    print_outcome(outcome)
    if not outcome.accepted:
        raise typer.Exit(2)


# ---- commands ----------------------------------------------------------------------------------------


@case_app.command("do")
def do(
    command_type: str = typer.Argument(..., help=f"One of: {', '.join(COMMAND_TYPES)}."),
    case_number: str = typer.Argument(...),
    field: list[str] = typer.Option([], "--field", "-f", help="A command field as key=value (lists: a,b)."),
    actor: str = ActorOption,
    channel: str = ChannelOption,
    reason: str = ReasonOption,
    command_id: str | None = CommandIdOption,
    occurred_at: str | None = OccurredOption,
) -> None:
    """Issue any command, e.g. `yekuo case do AcceptApplication YK-1 --actor cs-1,林晓燕,CUSTOMER_SERVICE`."""
    if command_type not in COMMAND_TYPES or command_type == "SubmitApplication":
        fail("COMMAND_TYPE", f"unknown command {command_type!r} (use `case submit` for applications)")
    common = _common(case_number, actor, channel, reason, command_id, occurred_at)
    _execute(build_command(COMMAND_TYPES[command_type], common, field))


@case_app.command()
def submit(
    case_number: str,
    category: str = typer.Option(..., help=f"One of: {', '.join(Category)}."),
    customer_name: str = typer.Option(...),
    customer_ref: str = typer.Option(...),
    phone: str = typer.Option(...),
    id_number: str = typer.Option(...),
    address: str = typer.Option(...),
    capacity_kva: float = typer.Option(...),
    supply_voltage: str = typer.Option(...),
    important: bool = typer.Option(False, help="重要客户 important customer."),
    external_line_works: bool = typer.Option(False, help="需外线工程 external line works needed."),
    fast_track: bool = typer.Option(False, help="三零 fast track."),
    priority_tier: int = typer.Option(0, help="优先级 priority tier: 0 普通 … 3 特急."),
    special_care: bool = typer.Option(False, help="特殊关怀 special care: elderly, disabled, hospital."),
    documents: str = typer.Option("", help="Documents handed in, comma-separated."),
    actor: str = ActorOption,
    channel: str = typer.Option("COUNTER", help=f"One of: {', '.join(Channel)}."),
    command_id: str | None = CommandIdOption,
    occurred_at: str | None = OccurredOption,
) -> None:
    """提交用电申请: open a case."""
    coerce(category, Category, "--category")
    application = ApplicationDetails(
        case_number=case_number,
        category=category,
        customer_ref=customer_ref,
        customer_name=customer_name,
        contact_phone=phone,
        id_number=id_number,
        address=address,
        capacity_kva=capacity_kva,
        supply_voltage=supply_voltage,
        external_line_works=external_line_works,
        important_customer=important,
        fast_track=fast_track,
        priority_tier=priority_tier,
        special_care=special_care,
        documents=tuple(d.strip() for d in documents.split(",") if d.strip()),
    )
    common = _common(case_number, actor, channel, "", command_id, occurred_at)
    _execute(SubmitApplication(**common, application=application))


@case_app.command()
def show(case_number: str) -> None:
    """State of a case: status, customer manager, open stages with accountable department and handler."""
    try:
        print_case(open_application().get_case(case_number))
    except CaseNotFoundError as error:
        console.print(str(error))
        raise typer.Exit(1) from None


@case_app.command()
def history(
    case_number: str, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")
) -> None:
    """Every event of a case: when, who, department, what, why, channel."""
    app = open_application()
    try:
        if as_json:
            rows = [
                {
                    "version": e.originator_version,
                    "type": type(e).__name__,
                    "occurred_at": e.occurred_at.isoformat(),
                    "actor": dataclasses.asdict(e.actor),
                    "reason": e.reason,
                    "channel": e.channel,
                }
                for e in app.history(case_number)
            ]
            sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        else:
            console.print(history_table(app, case_number))
    except CaseNotFoundError as error:
        console.print(str(error))
        raise typer.Exit(1) from None


@case_app.command()
def verify(
    case_number: str | None = typer.Argument(None, help="The case to verify (omit with --all)."),
    sweep: bool = typer.Option(False, "--all", help="Verify every case and print a summary."),
) -> None:
    """Recompute hash chains and compare each case's head with the relay's witness; exit 1 on any
    broken, truncated or rewritten history."""
    if sweep == (case_number is not None):
        raise typer.BadParameter("give either a case number or --all")
    app = open_application()
    try:
        checked = check_all(app) if sweep else [check_case(app, str(case_number))]
    except CaseNotFoundError as error:
        console.print(str(error))
        raise typer.Exit(1) from None
    finally:
        app.close()
    for item in checked if not sweep else [c for c in checked if not c.verdict.ok]:
        console.print(
            f"{INTEGRITY_LABELS[item.verdict.integrity]}: {item.case_number}: {item.verdict.detail}"
        )
    if sweep:
        counts = Counter(item.verdict.integrity for item in checked)
        summary = ", ".join(f"{INTEGRITY_LABELS[kind]} {counts[kind]}" for kind in Integrity if counts[kind])
        console.print(f"{len(checked)} cases verified: {summary or 'none'}")
    if any(not item.verdict.ok for item in checked):
        raise typer.Exit(1)


INTEGRITY_LABELS = {
    Integrity.INTACT: "哈希链完整 intact",
    Integrity.UNWITNESSED: "哈希链完整（尚无见证）intact, unwitnessed",
    Integrity.BROKEN: "哈希链断裂 BROKEN",
    Integrity.TRUNCATED: "历史被截断 TRUNCATED",
    Integrity.DIVERGED: "历史被改写 DIVERGED",
}
