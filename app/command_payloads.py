"""Commands from JSON: one validation path for every door that is not the CLI's argument parser.

Intake messages and HTTP requests carry a command type, a payload of that command's own fields, and the
envelope fields every command has (id, case number, actor, time, channel, reason). pydantic validates the
payload against the domain's command dataclass itself, so there is no second model of each command to
keep in step; the JSON Schema of a payload is derived from the same dataclass.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from app.application import ApplicationError
from domain.commands import COMMAND_TYPES, Command
from domain.vocabulary import Actor

ENVELOPE_FIELDS = frozenset(
    {"command_id", "case_number", "actor", "occurred_at", "channel", "reason", "occurred_at_defaulted"}
)
"""Fields every command has; they come from the envelope (or the token), never from the payload."""


class InvalidCommandError(ApplicationError):
    """Raised when a command type is unknown or its payload does not fit the command's fields."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def command_class(type_name: str) -> type[Command]:
    """The command class named ``type_name``; ``InvalidCommandError`` for an unknown name."""
    try:
        return COMMAND_TYPES[type_name]
    except KeyError:
        raise InvalidCommandError(
            f"unknown command type {type_name!r}",
            [{"loc": ["type"], "msg": f"one of: {', '.join(COMMAND_TYPES)}", "type": "unknown_type"}],
        ) from None


@cache
def payload_model(type_name: str) -> type[BaseModel]:
    """A pydantic model of the fields ``type_name`` adds to the envelope: what its payload must carry.

    Derived from the domain dataclass (names, types, defaults), so the two cannot drift apart.
    """
    command_type = command_class(type_name)
    hints = typing.get_type_hints(command_type)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(command_type):
        if field.name in ENVELOPE_FIELDS:
            continue
        default = field.default if field.default is not dataclasses.MISSING else ...
        fields[field.name] = (hints[field.name], default)
    return create_model(
        f"{type_name}Payload",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True, title=f"{type_name} payload"),
        __doc__=(command_type.__doc__ or "").strip(),
        **fields,
    )


def build_command(
    type_name: str,
    payload: Mapping[str, Any],
    *,
    command_id: str,
    case_number: str,
    actor: Actor,
    occurred_at: datetime,
    channel: str,
    reason: str = "",
) -> Command:
    """A validated command of type ``type_name``; ``InvalidCommandError`` lists every field at fault."""
    model = payload_model(type_name)
    try:
        fields = model.model_validate(dict(payload))
    except ValidationError as error:
        errors = [
            {"loc": ["payload", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        where = "; ".join(f"{'.'.join(e['loc'][1:]) or 'payload'}: {e['msg']}" for e in errors)
        raise InvalidCommandError(f"{type_name}: {where}", errors) from None
    try:
        return COMMAND_TYPES[type_name](
            command_id=command_id,
            case_number=case_number,
            actor=actor,
            occurred_at=occurred_at,
            channel=channel,
            reason=reason,
            **{name: getattr(fields, name) for name in type(fields).model_fields},
        )
    except (TypeError, ValueError) as error:  # a value object's own check (e.g. a blank actor field)
        raise InvalidCommandError(f"{type_name}: {error}") from None


def payload_schema(type_name: str) -> dict[str, Any]:
    """JSON Schema of ``type_name``'s payload."""
    return payload_model(type_name).model_json_schema()
