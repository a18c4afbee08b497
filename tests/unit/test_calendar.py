"""The working-day calendar: golden dates across Spring Festival and National Day, and properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import DAY_SECONDS, SHANGHAI, CalendarDataMissingError
from infra.settings import Settings
from infra.sla_config import load_calendar

CALENDAR = load_calendar(Settings())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("start", "days", "deadline"),
    [
        ("2025-09-26 15:00", 3, "2025-10-01 00:00"),  # BRIEF: Sun 9-28 is a make-up day → Tue 9-30 24:00
        ("2025-09-29 10:00", 3, "2025-10-11 00:00"),  # 9-30, National Day 10-1..10-8, 10-9, 10-10
        ("2025-09-30 10:00", 2, "2025-10-11 00:00"),  # 10-9 and 10-10
        ("2025-09-30 10:00", 3, "2025-10-12 00:00"),  # Sat 10-11 is a make-up working day
        ("2025-01-24 10:00", 3, "2025-02-06 00:00"),  # Sun 1-26 make-up, Mon 1-27, Spring Festival, Wed 2-5
        ("2025-02-07 09:00", 1, "2025-02-09 00:00"),  # Sat 2-8 make-up working day
        ("2024-12-31 18:00", 1, "2025-01-03 00:00"),  # New Year's Day is a holiday, the year changes
    ],
)
def test_deadlines_end_at_midnight_of_the_nth_working_day_after_the_start_day(
    start: str, days: int, deadline: str
) -> None:
    assert CALENDAR.deadline(at(start), days) == at(deadline)


def test_working_time_counts_whole_working_days_and_nothing_of_the_start_day() -> None:
    start = at("2025-09-26 15:00")

    assert CALENDAR.working_seconds(start, at("2025-09-26 23:00")) == 0  # the start day
    assert CALENDAR.working_seconds(start, at("2025-09-27 12:00")) == 0  # Saturday, not a make-up day
    assert CALENDAR.working_seconds(start, at("2025-09-28 06:00")) == 6 * 3600  # make-up Sunday
    assert CALENDAR.working_seconds(start, at("2025-10-05 12:00")) == 3 * DAY_SECONDS  # holiday week


def test_the_calendar_data_matches_the_state_council_notices_as_packaged() -> None:
    day = date(2020, 1, 1)
    while day <= date(2026, 12, 31):
        assert CALENDAR.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


def test_years_after_the_notices_count_provisionally_and_only_past_the_horizon_is_an_error() -> None:
    assert CALENDAR.provisional_years[0] == 2027
    assert not CALENDAR.is_working_day(date(2027, 1, 1))  # 元旦, kept by every notice
    assert CALENDAR.is_working_day(date(2027, 1, 4))
    assert CALENDAR.version.endswith(f"+provisional:2027-{CALENDAR.provisional_years[-1]}")
    with pytest.raises(CalendarDataMissingError, match=str(CALENDAR.provisional_years[-1] + 1)):
        CALENDAR.is_working_day(date(CALENDAR.provisional_years[-1] + 1, 1, 4))


moments = st.datetimes(min_value=datetime(2020, 1, 2), max_value=datetime(2026, 9, 30)).map(  # noqa: DTZ001
    lambda d: d.replace(tzinfo=SHANGHAI, microsecond=0)
)


@given(moments, st.integers(min_value=0, max_value=60))
def test_a_deadline_is_exactly_n_working_days_of_counted_time(start: datetime, days: int) -> None:
    deadline = CALENDAR.deadline(start, days)

    assert CALENDAR.working_seconds(start, deadline) == days * DAY_SECONDS
    assert deadline.astimezone(SHANGHAI).time().isoformat() == "00:00:00"
    if days:
        last_day = (deadline - timedelta(seconds=1)).date()
        assert CALENDAR.is_working_day(last_day)
        assert CALENDAR.add_working_days(start.date(), days) == last_day


@given(moments, st.integers(min_value=1, max_value=40 * DAY_SECONDS))
def test_instant_after_inverts_working_seconds(start: datetime, seconds: int) -> None:
    moment = CALENDAR.instant_after(start, seconds)

    assert CALENDAR.working_seconds(start, moment) == seconds
    assert CALENDAR.working_seconds(start, moment - timedelta(seconds=1)) == seconds - 1


@given(moments, moments, moments)
def test_working_time_is_monotonic_and_additive(start: datetime, a: datetime, b: datetime) -> None:
    early, late = sorted((a, b))

    assert CALENDAR.working_seconds(start, early) <= CALENDAR.working_seconds(start, late)
    if early >= start:
        assert CALENDAR.between(early, late) >= CALENDAR.working_seconds(
            start, late
        ) - CALENDAR.working_seconds(start, early)
