"""The intake contract (接入报文): what integrating systems send on ``yekuo.intake.v1``, what comes back.

An ``IntakeEnvelope`` carries one command: its type, the payload of that command's own fields, and the
fields every command has (message id = command id, case number, actor, time, source system, reason).
Each message gets exactly one ``IntakeResult`` on ``yekuo.intake-results.v1`` (key: the case number),
and a message that cannot be decoded or validated also goes to ``yekuo.intake.dlq.v1`` as an
``IntakeDeadLetter`` with the reason and the original bytes. Personal data (phone, ID number) is masked
in both, as in published case events.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from domain.privacy import mask_id_number, mask_phone
from infra.messages import ActorModel

INTAKE_SCHEMA: Final = "yekuo.intake.v1"
INTAKE_RESULT_SCHEMA: Final = "yekuo.intake-result.v1"
INTAKE_DEAD_LETTER_SCHEMA: Final = "yekuo.intake-dead-letter.v1"
SUPPORTED_SCHEMA_VERSIONS: Final = (1,)
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far in the future an ``occurred_at`` may lie (clock skew between systems); later is refused."""

_PHONE = re.compile(r"(?<!\d)1\d{10}(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


class IntakeEnvelope(BaseModel):
    """One command from an integrating system on ``yekuo.intake.v1`` (key: the case number).

    ``message_id`` is the command id: sending it again (a retry, a redelivery) changes nothing and
    yields the same result; sending it with a different command is refused (``COMMAND_ID_REUSED``).
    ``occurred_at`` is ISO-8601 with a UTC offset; a time without an offset, or more than five minutes in
    the future (judged when the message is received), is invalid.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    message_id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, description="The command type, e.g. SubmitApplication.")
    schema_version: int = Field(description="Version of this envelope; 1 is supported.")
    occurred_at: datetime = Field(description="When it happened at the source, ISO-8601 with offset.")
    source_system: str = Field(min_length=1, description="A name from infra/data/source_systems.json.")
    actor: ActorModel
    case_number: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any] = Field(description="The command's own fields (see its payload schema).")
    reason: str = Field(default="", description="Why, when the command needs a reason.")

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"schema_version {value} is not supported (supported: 1)")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware_and_not_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("occurred_at has no UTC offset (write e.g. 2025-09-01T09:00:00+08:00)")
        now = (info.context or {}).get("now")
        if isinstance(now, datetime) and value > now + MAX_CLOCK_SKEW:
            raise ValueError(
                f"occurred_at {value.isoformat()} lies in the future (received {now.isoformat()})"
            )
        return value

    @classmethod
    def from_bytes(cls, data: bytes, now: datetime) -> IntakeEnvelope:
        """Decode and validate; ``now`` is the receiving time against which the future is judged."""
        return cls.model_validate_json(data, context={"now": now})

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


Outcome = Literal["ACCEPTED", "REFUSED", "INVALID"]


class IntakeResult(BaseModel):
    """The one outcome of an intake message on ``yekuo.intake-results.v1`` (key: the case number).

    ``ACCEPTED``: the command was applied (``case_version`` and ``event_types`` say what it appended).
    ``REFUSED``: a rule refused it (``rule`` and ``message``, as the CLI prints them). ``INVALID``: the
    message could not be decoded or its payload does not fit the command; the dead-letter topic has it.
    ``repeated`` is true when the message id had been processed before: nothing new was appended.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["yekuo.intake-result.v1"] = Field(default=INTAKE_RESULT_SCHEMA, alias="schema")
    message_id: str | None = Field(description="The message's id; null when it could not be read.")
    outcome: Outcome
    case_number: str | None
    command_type: str | None
    source_system: str | None
    rule: str | None = Field(default=None, description="Rule code of a refusal or an invalid message.")
    message: str = ""
    case_version: int | None = None
    event_types: list[str] = Field(default_factory=list)
    repeated: bool = False
    partition: int
    offset: int
    decided_at: datetime

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class IntakeDeadLetter(BaseModel):
    """An intake message that could not be decoded or validated, on ``yekuo.intake.dlq.v1``.

    ``original_text`` is the message as received when it is UTF-8 (personal data masked), otherwise
    ``original_base64`` holds its bytes. Messages over the size limit keep only their first bytes.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["yekuo.intake-dead-letter.v1"] = Field(default=INTAKE_DEAD_LETTER_SCHEMA, alias="schema")
    consumer: str
    reason: str
    rule: str
    message_id: str | None
    topic: str
    partition: int
    offset: int
    key: str | None
    size: int = Field(description="Size of the original message in bytes.")
    original_text: str | None
    original_base64: str | None
    truncated: bool = False
    failed_at: datetime

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def mask_text(text: str) -> str:
    """``text`` with mainland mobile numbers and 18-character ID numbers masked."""
    text = _ID_NUMBER.sub(lambda m: mask_id_number(m.group()), text)
    return _PHONE.sub(lambda m: mask_phone(m.group()), text)


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if key == "contact_phone" and isinstance(item, str):
                masked[key] = mask_phone(item)
            elif key == "id_number" and isinstance(item, str):
                masked[key] = mask_id_number(item)
            else:
                masked[key] = _mask_json(item)
        return masked
    if isinstance(value, list):
        return [_mask_json(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def masked_original(data: bytes) -> tuple[str | None, str | None]:
    """(text, base64) of an original message for the dead-letter topic, personal data masked.

    JSON is masked field by field (``contact_phone``, ``id_number``) and by pattern elsewhere; other UTF-8
    text by pattern; bytes that are not UTF-8 are kept as base64 (they cannot be searched for patterns
    reliably, and they hold no readable personal data).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, base64.b64encode(data).decode()
    try:
        parsed = json.loads(text)
    except ValueError:
        return mask_text(text), None
    return json.dumps(_mask_json(parsed), ensure_ascii=False), None


def now_utc() -> datetime:
    return datetime.now(UTC)


INTAKE_SCHEMAS: dict[str, type[BaseModel]] = {
    INTAKE_SCHEMA: IntakeEnvelope,
    INTAKE_RESULT_SCHEMA: IntakeResult,
    INTAKE_DEAD_LETTER_SCHEMA: IntakeDeadLetter,
}


def intake_schema_documents() -> dict[str, str]:
    """File name → JSON Schema text of the intake contracts."""
    return {
        f"{name}.schema.json": json.dumps(
            model.model_json_schema(by_alias=True), indent=2, ensure_ascii=False
        )
        + "\n"
        for name, model in INTAKE_SCHEMAS.items()
    }
