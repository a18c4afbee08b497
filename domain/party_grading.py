"""供应商动态评级: grading design institutes and contractors A-D from their record on cases.

The 001 paper asks that contractors be graded dynamically by their performance (履约能力) so that good
ones get more work and poor ones are phased out; the brief names on-time rate and rework. A party's
record is its steps (``projections.party_performance``): how long each took (from the moment the case
awaited the customer's works to the party's request) against the limit for that kind of step, whether
the first attempt of each review or inspection passed, how many failed (each failure is a rework), and
the complaints linked to the party. Thresholds are data (``infra/data/party_grading.json``, documented in
``docs/parties.md``), never code: the first grade band whose every threshold the party meets is its
grade; a party meeting none is D; a party with fewer steps than ``min_steps`` is not graded yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

UNGRADED = "—"
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class GradeBand:
    """The thresholds a party must all meet for ``grade``."""

    grade: str
    min_on_time_rate: float
    min_first_pass_rate: float
    max_reworks_per_case: float
    max_complaints_per_case: float


@dataclass(frozen=True)
class GradingRules:
    """A versioned set of grading thresholds and step limits (calendar days of the party's own work)."""

    version: str
    step_limit_days: dict[str, float]
    rework_limit_days: float
    bands: tuple[GradeBand, ...]
    min_steps: int


@dataclass(frozen=True)
class StepFact:
    """One party step as the read model holds it."""

    case_number: str
    stage: str
    attempt: int
    awaited_at: datetime | None
    submitted_at: datetime
    outcome: str | None


@dataclass(frozen=True)
class PartyRecord:
    """A party's record and grade under a rule version."""

    party_id: str
    cases: int
    steps: int
    timed_steps: int
    on_time_steps: int
    first_attempts: int
    first_passes: int
    reworks: int
    complaints: int
    grade: str
    rules_version: str

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time_steps / self.timed_steps if self.timed_steps else None

    @property
    def first_pass_rate(self) -> float | None:
        return self.first_passes / self.first_attempts if self.first_attempts else None


def step_on_time(step: StepFact, rules: GradingRules) -> bool | None:
    """Whether the party made its request within the limit (None: the step has no start to time from)."""
    if step.awaited_at is None:
        return None
    limit = rules.rework_limit_days if step.attempt > 1 else rules.step_limit_days.get(step.stage)
    if limit is None:
        return None
    return (step.submitted_at - step.awaited_at).total_seconds() <= limit * DAY_SECONDS


def grade_party(
    party_id: str, steps: Iterable[StepFact], complaints: int, rules: GradingRules
) -> PartyRecord:
    """The party's record from its steps and linked complaints, graded by ``rules``."""
    listed = list(steps)
    timings = [step_on_time(step, rules) for step in listed]
    concluded_first = [s for s in listed if s.attempt == 1 and s.outcome in ("PASSED", "FAILED")]
    ungraded = PartyRecord(
        party_id=party_id,
        cases=len({s.case_number for s in listed}),
        steps=len(listed),
        timed_steps=sum(1 for t in timings if t is not None),
        on_time_steps=sum(1 for t in timings if t),
        first_attempts=len(concluded_first),
        first_passes=sum(1 for s in concluded_first if s.outcome == "PASSED"),
        reworks=sum(1 for s in listed if s.outcome == "FAILED"),
        complaints=complaints,
        grade=UNGRADED,
        rules_version=rules.version,
    )
    return dataclasses.replace(ungraded, grade=_grade(ungraded, rules))


def _grade(record: PartyRecord, rules: GradingRules) -> str:
    if record.steps < rules.min_steps:
        return UNGRADED
    on_time = record.on_time_rate if record.on_time_rate is not None else 1.0
    first_pass = record.first_pass_rate if record.first_pass_rate is not None else 1.0
    cases = max(record.cases, 1)
    for band in rules.bands:
        if (
            on_time >= band.min_on_time_rate
            and first_pass >= band.min_first_pass_rate
            and record.reworks / cases <= band.max_reworks_per_case
            and record.complaints / cases <= band.max_complaints_per_case
        ):
            return band.grade
    return "D"
