"""Due dates and expected completion dates for read models, from the active rule set and the working-day
calendar (``infra.sla_config``). Stages without a limit in the rule set count ``INTERNAL_STEP_DAYS``; the
customer's own design and construction get a typical allowance. A date beyond the calendar data gives
no estimate (None) rather than a guess.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from domain.calendar import SHANGHAI, CalendarDataMissingError
from infra.sla_config import SlaConfig

INTERNAL_STEP_DAYS = 2
"""Stages without a published limit (acceptance, survey, contract, archive…) when a rule set has none."""
CUSTOMER_WORKS_DAYS = {"RESIDENTIAL": 0, "LV_NON_RESIDENTIAL": 10, "HV_SINGLE": 30, "HV_DUAL": 45}
"""A typical allowance for the customer's own design and construction, for the expected date only."""


def stage_limit_days(config: SlaConfig, category: str, stage: str, on: date) -> int:
    limit = config.rules.in_force(config.rule_set, on).stage_limit(category, stage)
    return INTERNAL_STEP_DAYS if limit is None else limit


def review_limit_days(config: SlaConfig, on: date) -> int:
    limit = config.rules.in_force(config.rule_set, on).review_limit_days
    return INTERNAL_STEP_DAYS if limit is None else limit


def due_after(config: SlaConfig, start: datetime, days: int) -> datetime | None:
    """24:00 of the ``days``-th working day after ``start``'s day; None beyond the calendar data."""
    try:
        return config.calendar.deadline(start, days)
    except CalendarDataMissingError:
        return None


def expected_completion(
    config: SlaConfig, category: str, route: list[str], from_stage: str, since: datetime
) -> date | None:
    """Energising date if the remaining stages of ``route`` from ``from_stage`` take their limits."""
    on = since.astimezone(SHANGHAI).date()
    remaining = route[route.index(from_stage) :] if from_stage in route else route
    days = sum(
        stage_limit_days(config, category, stage, on)
        for stage in remaining
        if stage not in ("ARCHIVE", "FOLLOW_UP")
    )
    if "COMPLETION_INSPECTION" in remaining:
        days += CUSTOMER_WORKS_DAYS.get(category, 0)
    deadline = due_after(config, since, days)
    return (deadline - timedelta(seconds=1)).date() if deadline else None
