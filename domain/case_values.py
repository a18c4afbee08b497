"""Value objects of a case: a command's provenance, the application, an open stage, a pause, an SLA crossing.

They travel inside the case's events and snapshots (stored by class name, see ``app.application``), so
they are frozen and hold only primitives, enums and other value objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.errors import RuleViolationError
from domain.vocabulary import Actor, Channel, Department, PauseReason, Stage

CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)
"""How far in the future (relative to recording) an ``occurred_at`` may lie before it is refused."""


@dataclass(frozen=True)
class CommandContext:
    """Provenance of one command: who, when it happened, when we recorded it, through what, and why."""

    actor: Actor
    occurred_at: datetime
    recorded_at: datetime
    channel: str
    command_id: str
    reason: str = ""

    def __post_init__(self) -> None:
        for name in ("occurred_at", "recorded_at"):
            moment = getattr(self, name)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise RuleViolationError("TIMEZONE_REQUIRED", f"{name} must carry a time zone")
        if self.channel not in Channel.__members__:
            raise RuleViolationError(
                "UNKNOWN_CHANNEL", f"channel {self.channel!r} is not one of {', '.join(Channel)}"
            )
        if not self.command_id.strip():
            raise RuleViolationError(
                "COMMAND_ID_REQUIRED", "every command needs a client-supplied command id"
            )
        if self.occurred_at > self.recorded_at + CLOCK_SKEW_TOLERANCE:
            raise RuleViolationError(
                "OCCURRED_IN_FUTURE", "occurred_at lies in the future of the time it is recorded"
            )

    def provenance(self) -> dict[str, Any]:
        """The fields every event carries."""
        return {
            "actor": self.actor,
            "occurred_at": self.occurred_at,
            "channel": self.channel,
            "reason": self.reason,
            "command_id": self.command_id,
        }


SLA_LEVELS = ("NOTICE", "WARNING", "BREACH")


@dataclass(frozen=True)
class SlaCrossing:
    """A clock's level crossing as the SLA clock process found it (see ``domain.sla``)."""

    clock_id: str
    stage: str
    level: str
    share: float
    crossed_at: datetime
    department: str | None
    handler: str | None
    rule_set: str
    rule_version: str
    calendar_version: str


@dataclass(frozen=True)
class DeadlineRevision:
    """A clock's deadline recomputed after a year's holiday notice was loaded (see ``domain.sla``)."""

    clock_id: str
    stage: str
    previous_deadline: datetime | None
    deadline: datetime | None
    provisional: bool
    previous_calendar_version: str
    calendar_version: str


@dataclass(frozen=True)
class ApplicationDetails:
    """What the customer applies with (用电申请)."""

    case_number: str
    category: str
    customer_ref: str
    customer_name: str
    contact_phone: str
    id_number: str
    address: str
    capacity_kva: float
    supply_voltage: str
    external_line_works: bool = False
    important_customer: bool = False
    priority_tier: int = 0
    special_care: bool = False
    fast_track: bool = False
    documents: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenStage:
    """An open stage: its accountable department and, once assigned, its handler (责任人)."""

    stage: Stage
    department: Department
    opened_at: datetime
    handler: Actor | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))
        object.__setattr__(self, "department", Department(self.department))


@dataclass(frozen=True)
class Pause:
    """A customer-caused pause of the running clocks."""

    reason_code: PauseReason
    since: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason_code", PauseReason(self.reason_code))
