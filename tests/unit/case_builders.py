"""Test helpers: actors, contexts on an advancing clock, and cases walked in memory to any point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count

from demo.samples import sample_walk
from domain.case import Case
from domain.case_values import ApplicationDetails, CommandContext
from domain.commands import Command, SubmitApplication
from domain.vocabulary import Actor

START = datetime(2025, 9, 1, 1, 0, tzinfo=UTC)
ROUTE_KINDS: tuple[tuple[str, bool], ...] = (
    ("RESIDENTIAL", False),
    ("RESIDENTIAL", True),
    ("LV_NON_RESIDENTIAL", False),
    ("LV_NON_RESIDENTIAL", True),
    ("HV_SINGLE", False),
    ("HV_DUAL", False),
)
"""Every (category, 三零 fast track) pair a case can be submitted with."""
_case_numbers = count(1)

CLERK = Actor("cs-1", "林晓燕", "CUSTOMER_SERVICE")
SURVEYOR = Actor("op-1", "陈建国", "OPERATIONS")
PLANNER = Actor("mk-1", "黄丽华", "MARKETING")
METER_FITTER = Actor("mt-1", "刘明", "METERING")
CUSTOMER = Actor("c-1", "王秀英", "CUSTOMER")
STAFF = {
    department: Actor(f"{department.lower()}-1", f"{department} 员工", department)
    for department in ("CUSTOMER_SERVICE", "OPERATIONS", "MARKETING", "PLANNING", "DISPATCH", "METERING")
}


@dataclass
class Clock:
    """Hands out contexts whose times move forward one hour per command."""

    now: datetime = START
    ids: count[int] = field(default_factory=lambda: count(1))

    def ctx(self, actor: Actor, reason: str = "", channel: str = "STAFF_CONSOLE") -> CommandContext:
        self.now += timedelta(hours=1)
        return CommandContext(actor, self.now, self.now, channel, f"cmd-{next(self.ids)}", reason)


def application(category: str = "RESIDENTIAL", **overrides: object) -> ApplicationDetails:
    values: dict[str, object] = {
        "case_number": f"YK-T{next(_case_numbers):05d}",
        "category": category,
        "customer_ref": "C-1",
        "customer_name": "王秀英",
        "contact_phone": "13905990123",
        "id_number": "350782196805120027",
        "address": "武夷山市柳营路18号",
        "capacity_kva": 8.0
        if category == "RESIDENTIAL"
        else 100.0
        if category == "LV_NON_RESIDENTIAL"
        else 800.0,
        "supply_voltage": "220V" if category == "RESIDENTIAL" else "10kV",
    }
    values.update(overrides)
    return ApplicationDetails(**values)  # type: ignore[arg-type]


def new_case(category: str = "RESIDENTIAL", clock: Clock | None = None, **overrides: object) -> Case:
    from uuid import uuid4

    return Case.submit(
        uuid4(), (clock or Clock()).ctx(CLERK, channel="COUNTER"), application(category, **overrides)
    )


def walk(
    category: str,
    until: Callable[[Command], bool] | None = None,
    *,
    fast_track: bool = False,
    skip: int = 0,
) -> tuple[Case, Clock]:
    """A case of ``category`` walked through the sample route, stopping before the ``skip``+1-th command
    that ``until`` matches (or at the end). Returns the case and a clock later than its last event."""
    commands = sample_walk(category, f"YK-W{next(_case_numbers):05d}", START, fast_track=fast_track)
    case: Case | None = None
    for command in commands:
        if until is not None and until(command):
            if skip == 0:
                break
            skip -= 1
        ctx = command.context(command.occurred_at)
        if isinstance(command, SubmitApplication):
            case = command.create(ctx)
        else:
            assert case is not None
            command.execute(case, ctx)
    assert case is not None
    return case, Clock(now=case.last_occurred_at)


def before(
    command_type: type[Command], category: str = "RESIDENTIAL", **kwargs: object
) -> tuple[Case, Clock]:
    """A case walked up to (not including) the first command of ``command_type``."""
    return walk(category, lambda c: isinstance(c, command_type), **kwargs)  # type: ignore[arg-type]
