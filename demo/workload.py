"""A realistic mixed intake workload (模拟接入负载): many sample cases in flight at once, each case's
messages in route order, each sent by the integrating system that would send it.

Used by ``yekuo simulate``. Cases follow the demo's sample routes (``demo.samples.sample_walk``: every
category, some 三零 fast track), so their commands are accepted when they arrive in order. Applications
come in through the online hall (网上国网), the counter (营业厅) or 95598 in turn; counter staff accept,
archive and follow up; design institutes, contractors and the metering system send their own steps; the
remaining staff steps come from the marketing system. Every seventh case also gets a complaint through
95598, resolved a few steps later. Which case speaks next is drawn from a seeded generator, so a run
is reproducible; message ids are the command ids, unique per case number.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.intake_envelopes import source_for
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.commands import Command, FileComplaint, ResolveComplaint, SubmitApplication
from infra.source_systems import SourceSystems

SUBMIT_SOURCES = ("ONLINE_HALL", "COUNTER", "CALL_CENTRE_95598")
"""Where applications come in, in turn."""
COUNTER_DEPARTMENTS = frozenset({"CUSTOMER_SERVICE"})
"""Whose steps the counter system sends (受理, 归档, 回访)."""
COMPLAINT_SOURCE = "CALL_CENTRE_95598"
"""Where complaints are filed and answered."""
COMPLAINT_EVERY = 7
"""One case in this many gets a complaint through 95598."""
CASE_SPACING = timedelta(minutes=10)
"""How far apart in business time consecutive simulated cases start."""


@dataclass(frozen=True)
class Message:
    """One message of the workload: the command, who sends it, and its place in its case."""

    command: Command
    source_system: str
    step: int
    last: bool

    @property
    def message_id(self) -> str:
        return self.command.command_id

    @property
    def case_number(self) -> str:
        return self.command.case_number


def case_messages(index: int, case_number: str, start: datetime, systems: SourceSystems) -> list[Message]:
    """Every message of simulated case ``index``, in the order its systems send them."""
    category, fast_track = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
    commands = sample_walk(category, case_number, start + index * CASE_SPACING, fast_track=fast_track)
    if index % COMPLAINT_EVERY == COMPLAINT_EVERY - 1 and len(commands) > 5:
        commands = _with_complaint(commands)
    sources = [_source(index, command, systems) for command in commands]
    return [
        Message(command, source, step, step == len(commands) - 1)
        for step, (command, source) in enumerate(zip(commands, sources, strict=True))
    ]


def _source(index: int, command: Command, systems: SourceSystems) -> str:
    if isinstance(command, SubmitApplication):
        return SUBMIT_SOURCES[index % len(SUBMIT_SOURCES)]
    if isinstance(command, FileComplaint | ResolveComplaint):
        return COMPLAINT_SOURCE
    counter = systems.get("COUNTER")
    if (
        command.actor.department in COUNTER_DEPARTMENTS
        and counter is not None
        and counter.may_send(command.command_type)
    ):
        return counter.name
    return source_for(command, systems)


def _with_complaint(commands: list[Command]) -> list[Command]:
    """``commands`` with a 95598 complaint after the second step, resolved after the fifth."""
    customer = commands[0].actor
    complaint_id = f"TS-{commands[0].case_number}"
    filed = FileComplaint(
        command_id=f"{commands[0].case_number}-C01",
        case_number=commands[0].case_number,
        actor=customer,
        occurred_at=commands[1].occurred_at + timedelta(minutes=10),
        channel="CALL_CENTRE_95598",
        complaint_id=complaint_id,
        summary="客户来电催办：希望尽快安排现场勘查",
    )
    # A complaint filed without a department is accountable to customer service (首问负责制), so one of its
    # staff resolves it.
    staff = next(c.actor for c in commands if c.actor.department == "CUSTOMER_SERVICE")
    resolved = ResolveComplaint(
        command_id=f"{commands[0].case_number}-C02",
        case_number=commands[0].case_number,
        actor=staff,
        occurred_at=commands[4].occurred_at + timedelta(minutes=10),
        channel="CALL_CENTRE_95598",
        complaint_id=complaint_id,
        resolution="已电话回复客户办理进度，客户表示满意",
    )
    return [*commands[:2], filed, *commands[2:5], resolved, *commands[5:]]


def workload(
    prefix: str,
    start: datetime,
    systems: SourceSystems,
    *,
    cases: int | None,
    in_flight: int = 40,
    seed: int = 1,
) -> Iterator[Message]:
    """Messages of ``cases`` cases (endless when ``None``), up to ``in_flight`` cases open at once.

    The next message is drawn from a random open case, so cases at every stage interleave as they would
    in a busy office, while each case's own messages stay in route order.
    """
    draw = random.Random(seed)  # noqa: S311 -- a reproducible mix, not cryptography
    started = 0
    open_cases: list[Iterator[Message]] = []
    while True:
        while len(open_cases) < in_flight and (cases is None or started < cases):
            number = f"{prefix}-{started:05d}"
            open_cases.append(iter(case_messages(started, number, start, systems)))
            started += 1
        if not open_cases:
            return
        pick = draw.randrange(len(open_cases))
        message = next(open_cases[pick], None)
        if message is None:
            open_cases.pop(pick)
            continue
        yield message
