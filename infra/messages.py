"""The wire contracts Yekuo publishes on Kafka: case events, notifications and dead letters.

Each is a pydantic model whose JSON Schema is published in ``docs/schemas/`` (``yekuo schemas`` writes
them; a test keeps them current). A schema changes its ``schema`` name (``…v2``) only in ways that old
consumers cannot read; adding optional fields keeps the version.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Final, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from domain.case import Case
from domain.hashchain import canonical
from domain.privacy import mask_personal_data

CASE_EVENT_SCHEMA: Final = "yekuo.case-event.v1"
NOTIFICATION_SCHEMA: Final = "yekuo.notification.v1"
DEAD_LETTER_SCHEMA: Final = "yekuo.dead-letter.v1"
CASE_EVENT_TOPIC_PREFIX = "domain.case:Case."
"""Stored-event topics of case events; other aggregates (command receipts) are not published."""

INCARNATION_HEADER = "yekuo-incarnation"
"""Header naming the relay incarnation (see ``consumers.relay``) that published a message."""

_EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://yekuo.example/case-events")
_ENVELOPE_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
        "actor",
        "occurred_at",
        "channel",
        "reason",
        "command_id",
        "previous_hash",
        "event_hash",
    }
)


class ActorModel(BaseModel):
    """Who did it: person (or system account) id, name and the department they acted for."""

    model_config = ConfigDict(frozen=True)

    person_id: str
    name: str
    department: str


class CaseEventMessage(BaseModel):
    """One case event as published on ``yekuo.case-events.v1`` (key: the case id).

    ``case_version`` numbers a case's events from 1 without gaps; consumers apply a case's events in
    this order and skip a version they have applied, because delivery is at least once. ``hash`` and
    ``previous_hash`` are the case's hash chain as stored; ``payload`` holds the event's own fields with
    personal data (phone, ID number) masked.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["yekuo.case-event.v1"] = Field(default=CASE_EVENT_SCHEMA, alias="schema")
    event_id: UUID
    case_id: UUID
    case_number: str
    case_version: int = Field(ge=1)
    type: str = Field(description="The event's class name, e.g. StageOpened.")
    type_version: int = Field(ge=1, description="Class version of the payload's shape.")
    occurred_at: datetime
    recorded_at: datetime
    actor: ActorModel
    channel: str
    reason: str
    command_id: str
    payload: dict[str, Any]
    hash: str
    previous_hash: str
    position: int = Field(ge=1, description="Position in the event store's notification log.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CaseEventMessage:
        return cls.model_validate_json(data)


def event_id_for(case_id: UUID, version: int) -> UUID:
    """A case event's stable id: the same event republished keeps its id."""
    return uuid5(_EVENT_ID_NAMESPACE, f"{case_id}:{version}")


def case_event_message(event: Case.Event, case_number: str, position: int) -> CaseEventMessage:
    """The published form of a stored case event at ``position`` of the notification log."""
    return case_event_message_from_fields(
        type(event),
        event.originator_id,
        event.originator_version,
        canonical(event.__dict__),
        case_number,
        position,
        occurred_at=event.occurred_at,
        recorded_at=event.timestamp,
    )


def case_event_message_from_fields(
    event_type: type[Case.Event],
    case_id: UUID,
    version: int,
    fields: dict[str, Any],
    case_number: str,
    position: int,
    *,
    occurred_at: datetime,
    recorded_at: datetime,
) -> CaseEventMessage:
    """The published form of a case event given its fields in canonical (JSON-ready) form, as
    ``domain.hashchain.canonical`` gives them; the replay path decodes stored events straight into it."""
    actor = fields["actor"]
    payload = mask_personal_data({k: v for k, v in fields.items() if k not in _ENVELOPE_FIELDS})
    # Built from the event store's own records, so validation is skipped (it costs more than the rest).
    return CaseEventMessage.model_construct(
        event_id=event_id_for(case_id, version),
        case_id=case_id,
        case_number=case_number,
        case_version=version,
        type=event_type.__name__,
        type_version=getattr(event_type, "class_version", 1),
        occurred_at=occurred_at,
        recorded_at=recorded_at,
        actor=ActorModel.model_construct(
            person_id=actor["person_id"], name=actor["name"], department=actor["department"]
        ),
        channel=fields["channel"],
        reason=fields["reason"],
        command_id=fields["command_id"],
        payload=payload,
        hash=fields["event_hash"],
        previous_hash=fields["previous_hash"],
        position=position,
    )


class NotificationMessage(BaseModel):
    """One notification on ``yekuo.notifications.v1`` for SMS/IM gateways (key: the recipient).

    ``notification_id`` is stable per fact and recipient: a gateway that sees an id again has already
    delivered it (see docs/messaging.md on the one window where that can happen).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["yekuo.notification.v1"] = Field(default=NOTIFICATION_SCHEMA, alias="schema")
    notification_id: UUID
    case_id: UUID
    case_number: str
    recipient_kind: Literal["DEPARTMENT", "SUPERVISOR", "CUSTOMER"]
    recipient: str = Field(description="Department code, or the customer reference for customers.")
    kind: str
    message: str
    due_at: datetime | None
    due_provisional: bool = Field(
        default=False,
        description="The due date counts a year whose holiday notice is not loaded yet (Mon-Fri estimate).",
    )
    created_at: datetime

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class DeadLetter(BaseModel):
    """A message a consumer could not decode or apply, on ``*.dlq.v1`` with the reason and the original."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["yekuo.dead-letter.v1"] = Field(default=DEAD_LETTER_SCHEMA, alias="schema")
    consumer: str
    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    original_base64: str
    failed_at: datetime

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @staticmethod
    def encode_original(data: bytes) -> str:
        return base64.b64encode(data).decode()


PUBLISHED_SCHEMAS: dict[str, type[BaseModel]] = {
    CASE_EVENT_SCHEMA: CaseEventMessage,
    NOTIFICATION_SCHEMA: NotificationMessage,
    DEAD_LETTER_SCHEMA: DeadLetter,
}


def json_schema_documents() -> dict[str, str]:
    """File name → JSON Schema text of every published contract."""
    return {
        f"{name}.schema.json": json.dumps(
            model.model_json_schema(by_alias=True), indent=2, ensure_ascii=False
        )
        + "\n"
        for name, model in PUBLISHED_SCHEMAS.items()
    }
