"""Cases for the managers' dashboard: the demo's five walks plus cases left open at every stage and cases
completed in earlier months, so that each chart (open cases by stage, ageing, bottlenecks, monthly trend,
warnings and breaches) has something to show. Used by ``yekuo demo``, the screenshot command and the
browser tests. Command ids derive from the case numbers, so loading twice changes nothing. The design
institutes and contractors of ``PARTIES`` do the customer's works of these cases (the party view)."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date, datetime, timedelta

import psycopg

from app.application import CaseApplication, CommandOutcome
from app.event_log import CaseEventLog
from app.parties import PartyRegistry, RegisterParty
from consumers.sla_clock import SlaClock
from demo.samples import CATEGORIES_FOR_DEMO, sample_walk
from domain.calendar import SHANGHAI
from domain.commands import Command, PartyCommand
from domain.vocabulary import Actor
from projections import registry
from projections.rebuild import rebuild

OPEN_CASES = 14
"""cases left open, received over the last two weeks and cut at different points of their walk"""
EARLIER_MONTHS = 5
"""months before now with two completed cases each (the monthly trend)"""
LATE_BY = timedelta(days=12)
PARTIES: tuple[tuple[str, str, str, str], ...] = (
    ("91350100DEMODI0001", "DESIGN_INSTITUTE", "GRADE_A", "福州电力设计院"),
    ("91350100DEMODI0002", "DESIGN_INSTITUTE", "GRADE_A", "闽江勘测设计有限公司"),
    ("91350100DEMOCT0001", "CONTRACTOR", "CLASS_1", "闽北电力安装公司"),
    ("91350100DEMOCT0002", "CONTRACTOR", "CLASS_1", "榕城输变电工程有限公司"),
)
"""(party id, kind, qualification level, name) of the registered parties the dashboard's cases name"""
REGISTRAR = Actor("adm-demo", "名录管理员", "MARKETING")


def open_and_earlier_cases(now: datetime) -> list[list[Command]]:
    """Command lists of the cases left open (every command before ``now``) and completed earlier."""
    cases: list[list[Command]] = []
    for index in range(OPEN_CASES):
        category, fast = CATEGORIES_FOR_DEMO[index % len(CATEGORIES_FOR_DEMO)]
        start = (
            (now - timedelta(days=1 + index))
            .astimezone(SHANGHAI)
            .replace(hour=9, minute=15, second=0, microsecond=0)
        )
        walk = sample_walk(category, f"YK-DASH-OPEN-{index + 1:02d}", start, fast_track=fast)
        cut = max(2, round(len(walk) * (0.15 + 0.6 * index / OPEN_CASES)))
        cases.append(_named([c for c in walk[:cut] if c.occurred_at <= now], index % 2))
    for months in range(1, EARLIER_MONTHS + 1):
        for offset in range(2):
            category, fast = CATEGORIES_FOR_DEMO[(months + offset) % len(CATEGORIES_FOR_DEMO)]
            start = (
                (now - timedelta(days=30 * months + 20))
                .astimezone(SHANGHAI)
                .replace(hour=9, minute=0, second=0, microsecond=0)
            )
            walk = sample_walk(category, f"YK-DASH-{start:%Y%m}-{offset + 1}", start, fast_track=fast)
            if offset:  # every second one stalls for LATE_BY mid-walk: a late clock in the trend
                middle = len(walk) // 2
                walk = walk[:middle] + [_delayed(c) for c in walk[middle:]]
            cases.append(_named([c for c in walk if c.occurred_at <= now], offset))
    return cases


def _named(commands: list[Command], which: int) -> list[Command]:
    """The walk with its design made by the ``which``-th design institute of ``PARTIES`` and its works by
    the ``which``-th contractor."""
    designer = [p[0] for p in PARTIES if p[1] == "DESIGN_INSTITUTE"][which]
    builder = [p[0] for p in PARTIES if p[1] == "CONTRACTOR"][which]
    return [
        replace(c, party_id=designer if c.command_type == "SubmitDesign" else builder)
        if isinstance(c, PartyCommand)
        else c
        for c in commands
    ]


def register_parties(app: CaseApplication) -> None:
    """Register ``PARTIES`` (registered 2025-01-01, qualified to 2035); registering again changes nothing."""
    registry = PartyRegistry(app)
    for party_id, kind, level, name in PARTIES:
        outcome = registry.execute(
            RegisterParty(
                command_id=f"demo-register-{party_id}",
                party_id=party_id,
                actor=REGISTRAR,
                occurred_at=datetime(2025, 1, 1, tzinfo=SHANGHAI),
                kind=kind,
                name=name,
                level=level,
                expires_on=date(2035, 12, 31),
            )
        )
        if not outcome.accepted:
            raise RuntimeError(f"demo party {party_id} refused: {outcome.rule} {outcome.message}")


def _delayed(command: Command) -> Command:
    """The command ``LATE_BY`` later: its time and every date or time it carries (a scheduled date)."""
    moved = {
        f.name: getattr(command, f.name) + LATE_BY
        for f in fields(command)
        if isinstance(getattr(command, f.name), date | datetime)
    }
    return replace(command, **moved)


def demo_walks(start: datetime) -> list[list[Command]]:
    """The five cases ``yekuo demo`` walks through every stage (same numbers as the demo)."""
    return [
        sample_walk(category, f"YK-DEMO-{category}{'-FAST' if fast else ''}", start, fast_track=fast)
        for category, fast in CATEGORIES_FOR_DEMO
    ]


def load(app: CaseApplication, cases: list[list[Command]]) -> list[CommandOutcome]:
    """Execute every case's commands in order; the refused ones are returned (none for these walks)."""
    refused = []
    for commands in cases:
        for command in commands:
            outcome = app.execute(command)
            if not outcome.accepted:
                refused.append(outcome)
    return refused


def project(app: CaseApplication, database_url: str) -> None:
    """Bring every read model up to the event store's head (a rebuild: no broker needed)."""
    log = CaseEventLog(app)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rebuild(conn, registry.select(), log.read_all, log.head)


def prepare(
    app: CaseApplication, database_url: str, start: datetime, now: datetime, *, tick: bool = True
) -> None:
    """Load the demo's walks (from ``start``) and the dashboard's cases (up to ``now``) and project them;
    with ``tick``, let the SLA clock record the warnings and breaches due by then and project those too."""
    register_parties(app)
    refused = load(app, [*demo_walks(start), *open_and_earlier_cases(now)])
    if refused:
        raise RuntimeError(f"sample commands refused: {[(o.command_type, o.rule) for o in refused]}")
    project(app, database_url)
    if tick:
        SlaClock(app, database_url, clock=lambda: now).tick()
        project(app, database_url)
