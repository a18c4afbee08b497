"""An independent reference of BRIEF §2.4's counting rule, and random legal case histories to check the
SLA engine against it (used by tests/unit/test_sla_clock_laws.py and bench/sla_agreement.py).

Histories are built with the real aggregate (every category, the 三零 fast track, all three rule sets,
pauses, returns, parallel reviews, supplements, objections, failed inspections) over 2025-2026 holidays
including National Day 2025 and its make-up Sundays, at step lengths with sub-second parts and exact
midnights. The reference counts day by day with ``chinese_calendar`` (the package that transcribes the
State Council notices, not our calendar data), in exact ``timedelta`` arithmetic, and takes customer time
from the aggregate's own state after each event (``pause``, ``awaiting_step``), not from the tracker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import count
from typing import Any

import chinese_calendar

from demo.samples import sample_walk
from domain.calendar import SHANGHAI
from domain.case import Case
from domain.case_values import CommandContext
from domain.commands import SubmitApplication
from domain.errors import RuleViolationError
from domain.sla import ClockReading, SlaTracker, read_clock
from domain.vocabulary import Actor, Stage
from infra.messages import case_event_message
from infra.settings import Settings
from infra.sla_config import load_calendar, load_rules
from projections.sla import fact_of

CALENDAR = load_calendar(Settings())
RULES = load_rules(Settings())
US = timedelta(microseconds=1)
Action = Callable[[Case, CommandContext], object]

# ---- the reference: BRIEF §2.4 counted day by day -----------------------------------------------------


def _working(day: date) -> bool:
    return bool(chinese_calendar.is_workday(day))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), SHANGHAI)


Interval = tuple[datetime, datetime | None]


def _counted_pieces(start: datetime, exclusions: list[Interval], until: datetime) -> list[Interval]:
    """The counted stretches of a clock started at ``start``, day by day up to ``until``: each working
    day after the start day, minus the excluded intervals (an open one runs on for ever)."""
    pieces: list[Interval] = []
    day = start.astimezone(SHANGHAI).date() + timedelta(days=1)
    while _midnight(day) < until:
        if _working(day):
            free = [(_midnight(day), min(_midnight(day + timedelta(days=1)), until))]
            for a, b in exclusions:
                cut = []
                for lo, hi in free:
                    if a >= hi or (b is not None and b <= lo):  # no overlap
                        cut.append((lo, hi))
                        continue
                    if a > lo:
                        cut.append((lo, a))
                    if b is not None and b < hi:
                        cut.append((b, hi))
                free = cut
            pieces.extend((lo, hi) for lo, hi in free if hi > lo)
        day += timedelta(days=1)
    return pieces


def ref_elapsed(start: datetime, exclusions: list[Interval], moment: datetime) -> timedelta:
    return sum((b - a for a, b in _counted_pieces(start, exclusions, moment) if b is not None), timedelta())


def ref_reached(start: datetime, exclusions: list[Interval], target: timedelta) -> datetime | None:
    """The earliest instant at which elapsed working time reaches ``target`` (None: never, because an
    open exclusion holds the clock first)."""
    horizon = _midnight(date(2027, 1, 1))  # the last day chinese_calendar knows
    if any(b is None for _, b in exclusions):
        horizon = min(horizon, max(a for a, b in exclusions if b is None) + timedelta(days=1))
    total = timedelta()
    for a, b in _counted_pieces(start, exclusions, horizon):
        assert b is not None
        if total + (b - a) >= target:
            return a + (target - total)
        total += b - a
    return None


@dataclass
class Expected:
    deadline: datetime | None
    elapsed: timedelta
    on_time: bool | None
    crossings: list[datetime | None]


def reference_reading(
    clock: dict[str, Any], exclusions: list[Interval], now: datetime, levels: tuple[tuple[str, float], ...]
) -> Expected:
    start = datetime.fromisoformat(clock["started_at"])
    stopped = datetime.fromisoformat(clock["stopped_at"]) if clock["stopped_at"] else None
    end = stopped or now
    # Customer time after the stop does not concern the clock; customer time open at the stop ends there.
    closed = [
        (a, b if b is not None and (stopped is None or b <= stopped) else stopped)
        for a, b in exclusions
        if stopped is None or a < stopped
    ]
    limit = timedelta(days=clock["limit_days"])
    elapsed = ref_elapsed(start, closed, end)
    crossings = []
    for _, share in levels:
        target = timedelta(seconds=round(clock["limit_days"] * 86_400 * share))
        at = ref_reached(start, closed, target)
        if stopped is not None and elapsed <= target:
            at = None
        crossings.append(at)
    return Expected(
        ref_reached(start, closed, limit), elapsed, None if stopped is None else elapsed <= limit, crossings
    )


# ---- histories built with the real aggregate ---------------------------------------------------------

RANDOM_ACTIONS: list[Action] = [
    lambda case, ctx: case.pause_clock(ctx, "CUSTOMER_REQUESTED_DELAY"),
    lambda case, ctx: case.resume_clock(ctx),
    lambda case, ctx: case.return_to_stage(ctx, Stage.SITE_SURVEY),
    lambda case, ctx: case.return_to_stage(ctx, Stage.SUPPLY_PLAN),
    lambda case, ctx: case.request_plan_reviews(ctx, ["PLANNING", "OPERATIONS", "DISPATCH"]),
    lambda case, ctx: case.approve_plan_review(ctx),
    lambda case, ctx: case.reject_plan_review(ctx),
    lambda case, ctx: case.draft_plan(ctx, "方案"),
    lambda case, ctx: case.reply_plan(ctx),
    lambda case, ctx: case.object_to_plan(ctx),
    lambda case, ctx: case.submit_design(ctx),
    lambda case, ctx: case.review_design(ctx, passed=False, issues=["缺图"]),
    lambda case, ctx: case.report_completion(ctx),
    lambda case, ctx: case.inspect_completion(ctx, passed=False, rectifications=["整改"]),
    lambda case, ctx: case.request_supplement(ctx, ["营业执照"]),
    lambda case, ctx: case.provide_supplement(ctx, ["营业执照"]),
    lambda case, ctx: case.cancel(ctx),
]
DEPARTMENTS = ["CUSTOMER_SERVICE", "OPERATIONS", "MARKETING", "PLANNING", "DISPATCH", "METERING", "CUSTOMER"]
STARTS = [
    datetime(2025, 9, 26, 15, 0, tzinfo=SHANGHAI),  # before National Day and its make-up days
    datetime(2025, 9, 30, 23, 30, tzinfo=SHANGHAI),
    datetime(2025, 1, 24, 10, 0, tzinfo=SHANGHAI),  # before Spring Festival
    datetime(2025, 4, 30, 8, 0, tzinfo=SHANGHAI),
    datetime(2025, 6, 9, 9, 0, tzinfo=SHANGHAI),
    datetime(2025, 12, 31, 17, 0, tzinfo=SHANGHAI),
]
GAPS = [
    timedelta(minutes=30),
    timedelta(hours=3, microseconds=250_000),
    timedelta(hours=9),
    timedelta(hours=26),
    timedelta(days=3, hours=1),
    timedelta(days=9),
    "MIDNIGHT",  # the next 00:00 Shanghai: answers at 24:00 of a day
    "MIDNIGHT-",  # half a microsecond-free second before it
]


@dataclass
class History:
    case: Case
    events: list[Any]
    states: list[Case] = field(default_factory=list)
    """The aggregate after each event (replayed), for customer time seen by the aggregate itself."""
    now: datetime = field(default_factory=lambda: datetime(2025, 1, 1, tzinfo=SHANGHAI))


def _next_time(now: datetime, gap: Any) -> datetime:
    if isinstance(gap, timedelta):
        return now + gap
    local = now.astimezone(SHANGHAI)
    midnight = _midnight(local.date() + timedelta(days=1))
    return midnight if gap == "MIDNIGHT" else midnight - timedelta(milliseconds=500)


def build(category: str, fast_track: bool, start: datetime, plan: Plan) -> History:
    route = sample_walk(category, "YK-LAW", start, fast_track=fast_track)
    ids = count(1)
    now = start
    submit = route[0]
    assert isinstance(submit, SubmitApplication)
    case = submit.create(CommandContext(submit.actor, now, now, "COUNTER", "cmd-0", ""))
    next_step = 1
    for chance, action_index, department, gap in plan:
        now = _next_time(now, GAPS[gap])
        if chance < 65 and next_step < len(route):
            command = route[next_step]
            next_step += 1
            actor, reason = command.actor, command.reason or "客户原因"

            def action(c: Case, ctx: CommandContext, command: Any = command) -> object:
                return command.execute(c, ctx)
        else:
            actor, reason = Actor(f"{department.lower()}-x", "随机", department), "客户原因"
            action = RANDOM_ACTIONS[action_index]
        try:
            action(case, CommandContext(actor, now, now, "STAFF_CONSOLE", f"cmd-{next(ids)}", reason))
        except RuleViolationError:
            continue
    events = case.collect_events()
    states, replayed = [], None
    for event in events:
        replayed = event.mutate(replayed)
        states.append(copy.copy(replayed))
    return History(case, events, states, now + timedelta(days=2, hours=7))


def customer_time(history: History, kind: str) -> list[Interval]:
    """Paused time (every clock), and for the whole-case clock the waits for the customer, as the
    aggregate's state after each event shows them."""
    intervals: list[Interval] = []
    since: datetime | None = None
    for event, state in zip(history.events, history.states, strict=True):
        waiting = state.pause is not None or (kind == "CASE" and state.awaiting_step is not None)
        if waiting and since is None:
            since = event.occurred_at
        elif not waiting and since is not None:
            intervals.append((since, event.occurred_at))
            since = None
    if since is not None:
        intervals.append((since, None))
    return intervals


RULE_SETS = ["SGCC_INTERNAL", "REG_2009", "POLICY_2025"]
Plan = list[tuple[int, int, str, int]]
"""Per step: chance (0-99, below 65 the next step of the sample route), random action, department, gap."""


def track(
    history: History, rule_set: str, check: Callable[[SlaTracker, Case], None] | None = None
) -> SlaTracker:
    tracker = SlaTracker(RULES, rule_set, CALENDAR)
    for position, (event, state) in enumerate(zip(history.events, history.states, strict=True), 1):
        tracker.apply(str(history.case.id), fact_of(case_event_message(event, "YK-LAW", position)))
        if check is not None:
            check(tracker, state)
    return tracker


def agreement(history: History, rule_set: str) -> list[tuple[dict[str, Any], ClockReading, Expected]]:
    """Every clock of the history read by the engine and by the reference."""
    tracker = track(history, rule_set)
    readings = []
    for clock in tracker.state["clocks"]:
        levels = RULES.in_force(rule_set, datetime.fromisoformat(clock["started_at"]).date()).levels
        exclusions = customer_time(history, clock["kind"])
        readings.append(
            (
                clock,
                read_clock(clock, CALENDAR, history.now, levels),
                reference_reading(clock, exclusions, history.now, levels),
            )
        )
    return readings


def disagreements(reading: ClockReading, expected: Expected) -> list[str]:
    """The fields on which the engine's reading and the reference differ (none: they agree)."""
    same = {
        "deadline": reading.deadline == expected.deadline,
        "elapsed": reading.elapsed_microseconds == expected.elapsed // US,
        "verdict": reading.on_time == expected.on_time,
        "crossings": [c.at for c in reading.crossings] == expected.crossings,
    }
    return [name for name, equal in same.items() if not equal]
