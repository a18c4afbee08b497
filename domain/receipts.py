"""Command receipts (受理回执): the recorded outcome of each command id, saved atomically with the case.

A receipt's id is derived from the command id, so a command id can only ever have one outcome: a
repeat returns the original outcome and appends nothing, also after a restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate


class CommandReceipt(Aggregate):
    """The outcome of one command id: accepted (with the case version it produced) or rejected (rule)."""

    class Recorded(Aggregate.Created):
        """回执已记录."""

        command_id: str
        command_type: str
        case_number: str
        fingerprint: str
        accepted: bool
        rule: str | None
        message: str
        case_version: int | None
        event_types: list[str]

        def apply(self, aggregate: Any) -> None:
            for name in (
                "command_id",
                "command_type",
                "case_number",
                "fingerprint",
                "accepted",
                "rule",
                "message",
                "case_version",
                "event_types",
            ):
                setattr(aggregate, name, getattr(self, name))

    if TYPE_CHECKING:
        command_id: str
        command_type: str
        case_number: str
        fingerprint: str
        accepted: bool
        rule: str | None
        message: str
        case_version: int | None
        event_types: list[str]

    @classmethod
    def record(
        cls,
        receipt_id: UUID,
        recorded_at: datetime,
        *,
        command_id: str,
        command_type: str,
        case_number: str,
        fingerprint: str,
        accepted: bool,
        rule: str | None,
        message: str,
        case_version: int | None,
        event_types: list[str],
    ) -> CommandReceipt:
        return cls._create(
            cls.Recorded,
            id=receipt_id,
            timestamp=recorded_at,
            command_id=command_id,
            command_type=command_type,
            case_number=case_number,
            fingerprint=fingerprint,
            accepted=accepted,
            rule=rule,
            message=message,
            case_version=case_version,
            event_types=event_types,
        )
