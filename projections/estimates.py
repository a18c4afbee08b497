"""Simple due-date estimates for read models until the SLA engine supplies statutory deadlines.

Limits are the default rule set's working days (BRIEF §2.4, ``SGCC_INTERNAL``); a working day here is
Monday to Friday in Asia/Shanghai — holidays and make-up days are ignored, which is why these are called
estimates. The SLA issue replaces this module with the working-day calendar.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_HV = {"DESIGN_REVIEW": 10, "MID_INSPECTION": 5, "COMPLETION_INSPECTION": 5, "CONNECTION": 5}
STAGE_LIMIT_DAYS: dict[str, dict[str, int]] = {
    "RESIDENTIAL": {"SUPPLY_PLAN": 3, "CONNECTION": 3},
    "LV_NON_RESIDENTIAL": {"SUPPLY_PLAN": 7, "CONNECTION": 5},
    "HV_SINGLE": {"SUPPLY_PLAN": 15, **_HV},
    "HV_DUAL": {"SUPPLY_PLAN": 30, **_HV},
}
INTERNAL_STEP_DAYS = 2
"""Stages without a published limit (acceptance, survey, contract, archive…) and each parallel review."""
CUSTOMER_WORKS_DAYS = {"RESIDENTIAL": 0, "LV_NON_RESIDENTIAL": 10, "HV_SINGLE": 30, "HV_DUAL": 45}
"""A typical allowance for the customer's own design and construction, for the expected date only."""


def stage_limit_days(category: str, stage: str) -> int:
    return STAGE_LIMIT_DAYS.get(category, {}).get(stage, INTERNAL_STEP_DAYS)


def add_working_days(start: datetime, days: int) -> datetime:
    """24:00 (Shanghai) of the ``days``-th weekday after ``start``'s day (the start day not counted)."""
    day = start.astimezone(SHANGHAI).date()
    weeks, remaining = divmod(days, 5)
    day += timedelta(weeks=weeks)  # five weekdays are one calendar week from any day
    while remaining > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            remaining -= 1
    return datetime.combine(day + timedelta(days=1), time(), SHANGHAI)


def expected_completion(category: str, route: list[str], from_stage: str, since: datetime) -> date:
    """Energising date if the remaining stages of ``route`` from ``from_stage`` take their limits."""
    remaining = route[route.index(from_stage) :] if from_stage in route else route
    days = sum(
        stage_limit_days(category, stage) for stage in remaining if stage not in ("ARCHIVE", "FOLLOW_UP")
    )
    if "COMPLETION_INSPECTION" in remaining:
        days += CUSTOMER_WORKS_DAYS.get(category, 0)
    return (add_working_days(since, days) - timedelta(seconds=1)).date()
