"""Commands as intake envelopes: what an integrating system publishes on ``yekuo.intake.v1`` for a command.

Simulators (``yekuo simulate``, the demo, the benchmarks) and tests build their messages here, so that the
CLI can make them without loading the intake consumer's stream processing.
"""

from __future__ import annotations

import dataclasses

from app.command_payloads import ENVELOPE_FIELDS, payload_model
from domain.commands import Command
from infra.intake_messages import IntakeEnvelope
from infra.messages import ActorModel
from infra.source_systems import SourceSystems


def envelope_for(command: Command, source_system: str, *, message_id: str | None = None) -> IntakeEnvelope:
    """The intake envelope that carries ``command`` from ``source_system`` (for simulators and tests)."""
    fields = {
        f.name: getattr(command, f.name) for f in dataclasses.fields(command) if f.name not in ENVELOPE_FIELDS
    }
    payload = payload_model(command.command_type).model_validate(fields).model_dump(mode="json")
    actor = command.actor
    return IntakeEnvelope(
        message_id=message_id or command.command_id,
        type=command.command_type,
        schema_version=1,
        occurred_at=command.occurred_at,
        source_system=source_system,
        actor=ActorModel(person_id=actor.person_id, name=actor.name, department=actor.department),
        case_number=command.case_number,
        payload=payload,
        reason=command.reason,
    )


SOURCE_BY_DEPARTMENT = {
    "CUSTOMER": "ONLINE_HALL",
    "DESIGN_INSTITUTE": "DESIGN_INSTITUTE",
    "CONTRACTOR": "CONTRACTOR",
    "METERING": "METERING_SYSTEM",
}
"""Which integrating system a simulator sends an actor's commands through, where that system may."""


def source_for(command: Command, source_systems: SourceSystems) -> str:
    """The source system a simulated ``command`` comes from: its actor's own system, else the first that
    may send it (the marketing system for staff steps); ``SOURCE_NOT_AUTHORISED`` names none."""
    own = source_systems.get(SOURCE_BY_DEPARTMENT.get(command.actor.department, "MARKETING_SYSTEM"))
    if own is not None and own.may_send(command.command_type):
        return own.name
    for system in source_systems.systems.values():
        if system.may_send(command.command_type):
            return system.name
    return "NO_SOURCE_MAY_SEND"
