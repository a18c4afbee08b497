"""A command's fingerprint tells a retry under the same command id from a different command reusing it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from app.command_payloads import payload_schema
from domain.commands import AcceptApplication, AssignHandler
from domain.vocabulary import Actor, Stage

CLERK = Actor("cs-0101", "林晓燕", "CUSTOMER_SERVICE")
FIRST_TRY = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)


def accept(**changes: object) -> AcceptApplication:
    values: dict[str, object] = {
        "command_id": "cmd-1",
        "case_number": "YK-1",
        "actor": CLERK,
        "occurred_at": FIRST_TRY,
        "channel": "COUNTER",
    }
    values.update(changes)
    return AcceptApplication(**values)  # type: ignore[arg-type]


def test_a_retry_whose_time_was_defaulted_on_receipt_has_the_same_fingerprint() -> None:
    first = accept(occurred_at_defaulted=True)
    retry = accept(occurred_at=FIRST_TRY + timedelta(seconds=40), occurred_at_defaulted=True)

    assert retry.fingerprint() == first.fingerprint()


def test_a_time_the_caller_gave_is_part_of_the_fingerprint() -> None:
    assert accept().fingerprint() != accept(occurred_at=FIRST_TRY + timedelta(seconds=40)).fingerprint()


def test_a_different_command_under_the_same_id_differs_even_when_both_times_were_defaulted() -> None:
    first = accept(occurred_at_defaulted=True)

    assert accept(occurred_at_defaulted=True, reason="another").fingerprint() != first.fingerprint()
    assert accept(occurred_at_defaulted=True, case_number="YK-2").fingerprint() != first.fingerprint()
    other_type = AssignHandler(
        **{f.name: getattr(first, f.name) for f in dataclasses.fields(first)},
        stage=Stage.SITE_SURVEY,
        handler=CLERK,
    )
    assert other_type.fingerprint() != first.fingerprint()


def test_a_fingerprint_without_the_new_flag_is_what_it_was_before_the_flag_existed() -> None:
    # sha256 of the command's canonical content before ``occurred_at_defaulted`` was added: receipts
    # recorded then still recognise their repeats.
    assert accept().fingerprint() == "ac4bf655e7307ce8fdb413297b6e71a3c88eef1dfdee85acbb3847a081380064"


def test_the_default_marker_is_no_field_of_any_json_payload() -> None:
    assert "occurred_at_defaulted" not in payload_schema("AssignHandler")["properties"]
