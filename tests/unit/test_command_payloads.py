"""Commands from JSON payloads: the validation path shared by intake and the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.command_payloads import InvalidCommandError, build_command, payload_schema
from domain.commands import COMMAND_TYPES, AssignHandler, RequestSupplement
from domain.vocabulary import Actor, Stage

ENVELOPE: dict[str, Any] = {
    "command_id": "cmd-1",
    "case_number": "YK-2025-0001",
    "actor": Actor("op-0201", "陈建国", "OPERATIONS"),
    "occurred_at": datetime(2025, 10, 9, 2, 0, tzinfo=UTC),
    "channel": "STAFF_CONSOLE",
}


def test_builds_the_domain_command_with_envelope_and_payload_fields() -> None:
    handler = {"person_id": "op-0214", "name": "李振华", "department": "OPERATIONS"}

    command = build_command("AssignHandler", {"stage": "SITE_SURVEY", "handler": handler}, **ENVELOPE)

    assert command == AssignHandler(
        **ENVELOPE, stage=Stage.SITE_SURVEY, handler=Actor("op-0214", "李振华", "OPERATIONS")
    )


def test_lists_become_the_commands_tuples() -> None:
    command = build_command("RequestSupplement", {"missing_documents": ["身份证", "产权证明"]}, **ENVELOPE)

    assert isinstance(command, RequestSupplement)
    assert command.missing_documents == ("身份证", "产权证明")


@pytest.mark.parametrize(
    ("type_name", "payload", "where"),
    [
        ("NoSuchCommand", {}, "type"),
        (
            "AssignHandler",
            {"stage": "NOWHERE", "handler": {"person_id": "a", "name": "b", "department": "c"}},
            "stage",
        ),
        ("AssignHandler", {"stage": "SITE_SURVEY"}, "handler"),
        ("AcceptApplication", {"unexpected": 1}, "unexpected"),
        ("AcceptApplication", {"actor": {"person_id": "x", "name": "y", "department": "z"}}, "actor"),
        (
            "AssignHandler",
            {"stage": "SITE_SURVEY", "handler": {"person_id": " ", "name": "b", "department": "c"}},
            "handler",
        ),
    ],
)
def test_refuses_a_payload_that_does_not_fit_and_names_the_field(
    type_name: str, payload: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidCommandError) as raised:
        build_command(type_name, payload, **ENVELOPE)

    assert where in {part for error in raised.value.errors for part in error["loc"]}


def test_every_command_type_has_a_payload_schema_without_envelope_fields() -> None:
    for type_name in COMMAND_TYPES:
        schema = payload_schema(type_name)

        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert not {"command_id", "case_number", "actor", "occurred_at"} & set(schema["properties"])
