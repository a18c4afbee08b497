"""Value objects of a case: a command's provenance, the application, an open stage, a pause, an SLA crossing.

They travel inside the case's events and snapshots (stored by class name, see ``app.application``), so
they are frozen and hold only primitives, enums and other value objects.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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
        check_text("reason", self.reason)
        for part in ("person_id", "name", "department"):
            check_text(f"actor.{part}", getattr(self.actor, part))
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


# ---- input rules of an application's fields ---------------------------------------------------------

MAX_CAPACITY_KVA = 100_000.0
"""The largest capacity (kVA) a single application can plausibly ask for; more is a typing error."""

TEXT_LIMITS = {
    "case_number": 40,
    "customer_ref": 64,
    "customer_name": 100,
    "address": 200,
    "supply_voltage": 20,
    "document": 100,
    "reason": 1000,
    "actor.person_id": 64,
    "actor.name": 100,
    "actor.department": 40,
}
"""Longest text (characters) each field takes."""

MULTILINE_FIELDS = frozenset({"reason"})
"""Fields that may hold line breaks and tabs; no field takes any other control character."""

_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?[1-9]\d{6,7}(-\d{1,6})?")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


COMMAND_TEXT_LIMIT = 2000
"""Longest text (characters) of a command's own fields (findings, summaries, issues, ids, …)."""


def check_text(name: str, value: str, *, limit: int | None = None, multiline: bool | None = None) -> None:
    """A text field's length limit and its freedom from control characters (TEXT_TOO_LONG,
    TEXT_CONTROL_CHARACTER); ``limit`` and ``multiline`` default to ``TEXT_LIMITS`` and
    ``MULTILINE_FIELDS``."""
    limit = TEXT_LIMITS.get(name) if limit is None else limit
    if limit is not None and len(value) > limit:
        raise RuleViolationError("TEXT_TOO_LONG", f"{name} has {len(value)} characters; at most {limit}")
    allowed = "\n\t" if (name in MULTILINE_FIELDS if multiline is None else multiline) else ""
    for index, char in enumerate(value):
        if unicodedata.category(char) == "Cc" and char not in allowed:
            raise RuleViolationError(
                "TEXT_CONTROL_CHARACTER", f"{name} contains the control character {char!r} at {index}"
            )


def check_phone(phone: str) -> None:
    """PHONE_FORMAT: a mainland mobile number (1[3-9] and 9 digits) or a landline with its area code."""
    if not (_MOBILE.fullmatch(phone) or _LANDLINE.fullmatch(phone)):
        raise RuleViolationError(
            "PHONE_FORMAT",
            f"contact phone {phone!r} is neither a mobile number (e.g. 13905990123) nor a landline with "
            "area code (e.g. 0599-5301234)",
        )


def resident_id_valid(number: str) -> bool:
    """An 18-character resident ID number (居民身份证号码, GB 11643): 17 digits with a real birth date,
    and its ISO 7064 MOD 11-2 check character."""
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17]


def credit_code_valid(code: str) -> bool:
    """An organisation's 18-character unified social credit code (统一社会信用代码, GB 32100) with its
    check character."""
    if len(code) != 18 or any(char not in _USCC_CHARS for char in code):
        return False
    total = sum(
        _USCC_CHARS.index(char) * weight for char, weight in zip(code[:17], _USCC_WEIGHTS, strict=True)
    )
    return _USCC_CHARS[(31 - total % 31) % 31] == code[17]


def check_id_number(id_number: str, *, organisation_allowed: bool) -> None:
    """ID_NUMBER_FORMAT / ID_NUMBER_CHECK_DIGIT: a resident ID number with a correct check digit; a
    business may give its unified social credit code instead."""
    number = id_number.upper()
    if organisation_allowed and not number.isdigit() and credit_code_valid(number):
        return
    if not re.fullmatch(r"\d{17}[\dX]", number):
        what = (
            "a resident ID number or a unified social credit code"
            if organisation_allowed
            else ("a resident ID number")
        )
        raise RuleViolationError(
            "ID_NUMBER_FORMAT", f"{what} has 18 characters (17 digits and a check character)"
        )
    if not resident_id_valid(number):
        raise RuleViolationError(
            "ID_NUMBER_CHECK_DIGIT", "the ID number's birth date or check digit is wrong: a typing error"
        )


def check_capacity(capacity_kva: float) -> None:
    """CAPACITY_PLAUSIBLE: a finite number of kVA no larger than ``MAX_CAPACITY_KVA``."""
    if not math.isfinite(capacity_kva) or capacity_kva > MAX_CAPACITY_KVA:
        raise RuleViolationError(
            "CAPACITY_PLAUSIBLE",
            f"the applied capacity must be a finite number of kVA up to {MAX_CAPACITY_KVA:.0f}, "
            f"got {capacity_kva}",
        )


def check_command_text(name: str, value: object) -> None:
    """The text in a command's own field ``name`` (a string, strings in a tuple, or an actor): at most
    ``COMMAND_TEXT_LIMIT`` characters each, line breaks and tabs allowed, no other control character."""
    if isinstance(value, str):
        check_text(name, value, limit=COMMAND_TEXT_LIMIT, multiline=True)
    elif isinstance(value, tuple):
        for item in value:
            check_command_text(name, item)
    elif isinstance(value, Actor):
        for part in ("person_id", "name", "department"):
            check_text(f"actor.{part}", getattr(value, part))
