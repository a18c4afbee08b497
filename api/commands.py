"""Command routes: one POST per command type, its body that command's payload, idempotent by a header.

Every command goes through ``build_command`` (the one JSON validation path, shared with intake) and
``CaseApplication.execute`` (the one application service, shared with the CLI). The actor is the token's;
the channel is the integrator's (from ``infra/source_systems.py``) or the staff console.
"""

# No ``from __future__ import annotations``: the route bodies are models built at run time, and FastAPI
# reads the handlers' annotations as objects.

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from api.context import Services, allow, services
from api.security import Principal, Role
from app.application import CommandOutcome, ConcurrentUpdateError
from app.command_payloads import InvalidCommandError, build_command, payload_model
from domain.commands import COMMAND_TYPES
from domain.vocabulary import Channel
from projections import queries

SYSTEM_ONLY = frozenset({"RecordSlaCrossing", "ReviseSlaDeadline"})
"""Recorded by the SLA clock process, never over HTTP."""
MANAGER_COMMANDS = frozenset({"EscalateCase", "ReassignHandler", "EscalateNotification"})
"""督办 and 改派: a manager's, across departments."""
ACTING_ROLES = (Role.INTEGRATOR, Role.STAFF, Role.MANAGER)


class CommandAnswer(BaseModel):
    """The outcome of a command: accepted (with the case version it produced) or refused with the rule."""

    command_id: str
    command_type: str
    case_number: str
    accepted: bool
    rule: str | None = None
    message: str = ""
    case_version: int | None = None
    event_types: list[str] = Field(default_factory=list)
    repeated: bool = Field(False, description="True when this command id was executed before.")

    @classmethod
    def of(cls, outcome: CommandOutcome) -> "CommandAnswer":
        return cls(
            command_id=outcome.command_id,
            command_type=outcome.command_type,
            case_number=outcome.case_number,
            accepted=outcome.accepted,
            rule=outcome.rule,
            message=outcome.message,
            case_version=outcome.case_version,
            event_types=list(outcome.event_types),
            repeated=outcome.repeated,
        )


def _request_model(type_name: str) -> type[BaseModel]:
    base = payload_model(type_name)
    return create_model(
        f"{type_name}Request",
        __base__=base,
        reason=(str, Field("", max_length=2000, description="Why (原因/意见), recorded with the event.")),
        occurred_at=(
            datetime | None,
            Field(None, description="When it happened (with time zone); default: when received."),
        ),
    )


def channel_for(principal: Principal, type_name: str, svc: Services) -> str:
    """The channel the command is recorded under; 403 when the caller's role may not send it."""
    if type_name in SYSTEM_ONLY:
        raise HTTPException(403, f"{type_name} is recorded by the SLA clock, not sent over HTTP")
    if principal.role is Role.INTEGRATOR:
        system = svc.source_systems.get(principal.source_system or "")
        if system is None:
            raise HTTPException(403, f"unknown source system {principal.source_system!r}")
        if not system.may_send(type_name):
            raise HTTPException(403, f"source system {system.name} may not send {type_name}")
        return system.channel.value
    if principal.role is Role.MANAGER and type_name not in MANAGER_COMMANDS:
        raise HTTPException(403, f"a manager may escalate and reassign, not send {type_name}")
    if principal.role is Role.STAFF and type_name in MANAGER_COMMANDS:
        raise HTTPException(403, f"{type_name} is a manager's command")
    if principal.role not in (Role.STAFF, Role.MANAGER):
        raise HTTPException(403, f"role {principal.role} may not send commands")
    return Channel.STAFF_CONSOLE.value


@dataclass(frozen=True)
class Sender:
    """An authorised sender of one command type and the channel its command is recorded under."""

    principal: Principal
    channel: str


def may_send(type_name: str) -> Callable[..., Sender]:
    """A dependency admitting the callers who may send ``type_name`` (403 before the body is read)."""

    def dependency(
        principal: Principal = Depends(allow(*ACTING_ROLES)), svc: Services = Depends(services)
    ) -> Sender:
        return Sender(principal, channel_for(principal, type_name, svc))

    return dependency


def command_id_of(idempotency_key: str | None, command_id: str | None) -> str:
    chosen = (command_id or idempotency_key or "").strip()
    if not chosen:
        raise HTTPException(
            400, "an Idempotency-Key or Command-Id header is required (it makes the command idempotent)"
        )
    if idempotency_key and command_id and idempotency_key.strip() != command_id.strip():
        raise HTTPException(400, "Idempotency-Key and Command-Id differ; send one")
    if len(chosen) > 200:
        raise HTTPException(400, "the command id is longer than 200 characters")
    return chosen


def run_command(
    svc: Services,
    sender: Sender,
    type_name: str,
    case_number: str,
    body: BaseModel,
    command_id: str,
) -> JSONResponse:
    """Validate, execute and answer: 200 accepted, 404 no such case, 409 refused, 422 invalid."""
    fields = body.model_dump(exclude={"reason", "occurred_at"})
    try:
        command = build_command(
            type_name,
            fields,
            command_id=command_id,
            case_number=case_number,
            actor=sender.principal.actor,
            occurred_at=getattr(body, "occurred_at", None) or svc.clock(),
            channel=sender.channel,
            reason=getattr(body, "reason", ""),
        )
    except InvalidCommandError as error:
        svc.metrics.commands.labels(type_name, "invalid").inc()
        return JSONResponse(
            {"rule": "INVALID_PAYLOAD", "message": str(error), "errors": error.errors}, status_code=422
        )
    try:
        outcome = svc.app.execute(command)
    except ConcurrentUpdateError as error:
        return JSONResponse({"rule": "CONCURRENT_UPDATE", "message": str(error)}, 503, {"Retry-After": "1"})
    answer = CommandAnswer.of(outcome)
    if outcome.accepted:
        svc.metrics.commands.labels(type_name, "accepted").inc()
        return JSONResponse(answer.model_dump(mode="json"), status_code=200)
    svc.metrics.commands.labels(type_name, "refused").inc()
    svc.metrics.refusals.labels(outcome.rule or "UNKNOWN").inc()
    status = 404 if outcome.rule == "CASE_NOT_FOUND" else 409
    return JSONResponse(answer.model_dump(mode="json"), status_code=status)


REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "No command id header"},
    401: {"description": "No valid bearer token"},
    403: {"description": "The caller's role or source system may not send this command"},
    404: {"description": "No such case", "model": CommandAnswer},
    409: {"description": "Refused by a rule of the case (its code is in `rule`)", "model": CommandAnswer},
    422: {"description": "The payload does not fit the command"},
}


def _case_route(type_name: str, model: type[BaseModel]) -> Any:
    def handler(
        case_number: str,
        body: model,  # type: ignore[valid-type]
        sender: Sender = Depends(may_send(type_name)),
        svc: Services = Depends(services),
        idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
        command_id: str | None = Header(None, alias="Command-Id"),
    ) -> JSONResponse:
        return run_command(
            svc, sender, type_name, case_number, body, command_id_of(idempotency_key, command_id)
        )

    handler.__doc__ = (COMMAND_TYPES[type_name].__doc__ or type_name).strip()
    return handler


def _submit_route(model: type[BaseModel]) -> Any:
    def submit(
        body: model,  # type: ignore[valid-type]
        sender: Sender = Depends(may_send("SubmitApplication")),
        svc: Services = Depends(services),
        idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
        command_id: str | None = Header(None, alias="Command-Id"),
    ) -> JSONResponse:
        """提交用电申请: a new case; its number is the application's ``case_number``."""
        case_number = body.application.case_number  # type: ignore[attr-defined]
        return run_command(
            svc, sender, "SubmitApplication", case_number, body, command_id_of(idempotency_key, command_id)
        )

    return submit


def command_router() -> APIRouter:
    router = APIRouter(tags=["commands"])
    router.add_api_route(
        "/cases",
        _submit_route(_request_model("SubmitApplication")),
        methods=["POST"],
        response_model=CommandAnswer,
        responses=REFUSALS,
        summary="SubmitApplication",
        operation_id="SubmitApplication",
    )
    for type_name in COMMAND_TYPES:
        if type_name == "SubmitApplication" or type_name in SYSTEM_ONLY:
            continue
        router.add_api_route(
            f"/cases/{{case_number}}/commands/{type_name}",
            _case_route(type_name, _request_model(type_name)),
            methods=["POST"],
            response_model=CommandAnswer,
            responses=REFUSALS,
            summary=type_name,
            operation_id=type_name,
        )
    return router


class Acknowledgement(BaseModel):
    reason: str = Field("", max_length=2000)


def acknowledge_router() -> APIRouter:
    router = APIRouter(tags=["inbox"])

    @router.post(
        "/cases/{case_number}/notifications/{notification_id}/acknowledge",
        response_model=CommandAnswer,
        responses=REFUSALS,
    )
    def acknowledge(
        case_number: str,
        notification_id: str,
        sender: Sender = Depends(may_send("AcknowledgeNotification")),
        svc: Services = Depends(services),
        idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
        command_id: str | None = Header(None, alias="Command-Id"),
    ) -> JSONResponse:
        """确认通知 (AcknowledgeNotification): the caller's department has read a notification."""
        chosen = command_id_of(idempotency_key, command_id)
        with svc.connection() as conn:
            found = queries.notification(conn, notification_id)
        if found is not None and (
            found["case_number"] != case_number or found["recipient"] != sender.principal.department
        ):
            raise HTTPException(404, f"no notification {notification_id} for {sender.principal.department}")
        body = _request_model("AcknowledgeNotification")(notification_id=notification_id)
        return run_command(svc, sender, "AcknowledgeNotification", case_number, body, chosen)

    return router
