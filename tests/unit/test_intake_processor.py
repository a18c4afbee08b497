"""The intake processor's decisions that need no database: authorisation, validation, transient retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.persistence import OperationalError

from app.application import CommandOutcome
from consumers.backoff import Health, Outage, read_health
from consumers.intake import IntakeProcessor, Received
from domain.commands import Command
from infra.source_systems import load_source_systems

NOW = datetime(2025, 9, 2, 0, 0, tzinfo=UTC)


class FlakyApplication:
    """Stands in for the case application: fails ``failures`` times with a database error, then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[list[Command]] = []

    def execute_batch(self, commands: list[Command]) -> list[CommandOutcome | Exception]:
        self.batches.append(commands)
        if self.failures:
            self.failures -= 1
            return [OperationalError("server closed the connection")] * len(commands)
        return [
            CommandOutcome(
                c.command_id, c.command_type, c.case_number, True, None, "", 2, ("ComplaintFiled",)
            )
            for c in commands
        ]


def message(**overrides: Any) -> bytes:
    fields = {
        "message_id": "m-1",
        "type": "FileComplaint",
        "schema_version": 1,
        "occurred_at": "2025-09-01T09:00:00+08:00",
        "source_system": "ONLINE_HALL",
        "actor": {"person_id": "c-1", "name": "王秀英", "department": "CUSTOMER"},
        "case_number": "YK-1",
        "payload": {"complaint_id": "cp-1", "summary": "迟迟未装表"},
    }
    fields.update(overrides)
    return json.dumps(fields).encode()


def processor(app: FlakyApplication, delays: list[float]) -> IntakeProcessor:
    return IntakeProcessor(
        app,  # type: ignore[arg-type]
        load_source_systems(),
        max_message_bytes=4096,
        clock=lambda: NOW,
        sleep=delays.append,
        max_delay=1.0,
    )


def test_a_transient_database_error_is_retried_with_a_bounded_backoff_until_the_outcome_is_known() -> None:
    delays: list[float] = []
    app = FlakyApplication(failures=5)
    decided = processor(app, delays).process([Received(message(), b"YK-1", 0, 7)])
    assert decided[0].result is not None and decided[0].result.outcome == "ACCEPTED"
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert len(app.batches) == 6


def test_the_command_carries_the_message_id_and_the_source_systems_channel() -> None:
    app = FlakyApplication(failures=0)
    processor(app, []).process([Received(message(), b"YK-1", 0, 7)])
    (command,) = app.batches[0]
    assert (command.command_id, command.channel, command.case_number) == ("m-1", "ONLINE_APP", "YK-1")


def test_a_source_system_sending_a_command_it_may_not_send_is_refused_and_nothing_runs() -> None:
    app = FlakyApplication(failures=0)
    decided = processor(app, []).process(
        [
            Received(message(source_system="METERING_SYSTEM"), b"YK-1", 0, 1),
            Received(message(source_system="UNKNOWN"), b"YK-1", 0, 2),
        ]
    )
    assert [(d.result.outcome, d.result.rule) for d in decided if d.result] == [
        ("REFUSED", "COMMAND_NOT_AUTHORISED"),
        ("REFUSED", "SOURCE_NOT_AUTHORISED"),
    ]
    assert all(d.dead_letter is None for d in decided)
    assert app.batches == []  # nothing reached the application


def test_a_payload_that_does_not_fit_the_command_is_invalid_and_dead_lettered_with_the_fields() -> None:
    app = FlakyApplication(failures=0)
    decided = processor(app, []).process([Received(message(payload={"summary": 5}), b"YK-1", 0, 3)])
    (one,) = decided
    assert one.result is not None and (one.result.outcome, one.result.rule) == ("INVALID", "INVALID_PAYLOAD")
    assert one.dead_letter is not None and "complaint_id" in one.dead_letter.reason
    assert one.dead_letter.message_id == "m-1"


def test_a_database_outage_makes_the_intake_not_ready_until_a_batch_succeeds(tmp_path: Path) -> None:
    health = Health(tmp_path, "intake-test")
    delays: list[float] = []
    intake = IntakeProcessor(
        FlakyApplication(failures=3),  # type: ignore[arg-type]
        load_source_systems(),
        max_message_bytes=4096,
        clock=lambda: NOW,
        sleep=lambda delay: (delays.append(delay), seen.append(read_health(tmp_path)[0].ready)),
        max_delay=1.0,
        outage=Outage("intake test", "postgres", health),
    )
    seen: list[bool] = []

    decided = intake.process([Received(message(), b"YK-1", 0, 7)])

    assert decided[0].result is not None and decided[0].result.outcome == "ACCEPTED"
    assert seen == [False, False, False]
    assert read_health(tmp_path)[0].ready
    assert len(delays) == 3 and all(0 < d <= 1.0 for d in delays)
