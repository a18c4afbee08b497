"""Years without a notice count provisionally; an added notice is validated and moves deadlines (2026/2027)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from domain.calendar import FIXED_DATE_HOLIDAYS, SHANGHAI, WorkingCalendar, YearData, provisional_year
from domain.sla import read_clock
from infra.settings import Settings
from infra.sla_config import load_calendar

NOTICES = load_calendar(Settings()).years  # 2020-2026, as shipped


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def notice_2027(*holidays: str, makeups: tuple[str, ...] = ()) -> YearData:
    """A hypothetical 2027 notice (the real one is not out): the fixed-date holidays, Spring Festival week,
    and whatever a test adds."""
    days = {date(2027, m, d) for m, d, _ in FIXED_DATE_HOLIDAYS}
    days |= {date(2027, 2, 8) + timedelta(days=i) for i in range(5)} | {date(2027, 4, 5), date(2027, 6, 9)}
    days |= {date.fromisoformat(h) for h in holidays}
    return YearData(2027, "test", frozenset(days), frozenset(map(date.fromisoformat, makeups)))


def clock(started: str, days: int) -> dict[str, object]:
    return {
        "id": "c:STAGE:SUPPLY_PLAN:1", "kind": "STAGE", "stage": "SUPPLY_PLAN", "department": None,
        "started_at": at(started).isoformat(), "stopped_at": None, "outcome": None, "limit_days": days,
        "rule_set": "SGCC_INTERNAL", "rule_version": "x", "calendar_version": "x", "excluded": [],
        "holdings": [], "recorded": [],
    }  # fmt: skip


def test_a_provisional_year_keeps_the_fixed_date_statutory_holidays_and_works_monday_to_friday() -> None:
    year = provisional_year(2027)

    assert not year.is_working_day(date(2027, 1, 1))  # Friday, 元旦
    assert not year.is_working_day(date(2027, 10, 1))  # Friday, 国庆节
    assert year.is_working_day(date(2027, 2, 8))  # Spring Festival is lunar: only the notice knows it
    assert not year.is_working_day(date(2027, 1, 2))  # Saturday


def test_every_shipped_notice_keeps_the_fixed_date_holidays_the_provisional_years_assume() -> None:
    for year in NOTICES:
        for month, day, _ in FIXED_DATE_HOLIDAYS:
            moment = date(year.year, month, day)
            assert moment.weekday() >= 5 or moment in year.holidays, moment


def test_a_deadline_from_2026_into_2027_is_computed_and_marked_provisional() -> None:
    calendar = WorkingCalendar.build(NOTICES)

    reading = read_clock(clock("2026-11-24 10:00", 30), calendar, at("2026-11-25 10:00"))

    # 27 working days to 12-31, 元旦 2027-01-01 is a holiday, then 01-04, 01-05, 01-06
    assert reading.deadline == at("2027-01-07 00:00")
    assert reading.provisional


def test_a_deadline_at_24_00_of_31_december_needs_no_2027_data() -> None:
    calendar = WorkingCalendar.build(NOTICES)

    reading = read_clock(clock("2026-12-24 10:00", 5), calendar, at("2026-12-25 10:00"))

    assert reading.deadline == at("2027-01-01 00:00")
    assert not reading.provisional


def test_a_clock_started_in_2027_counts_back_to_its_start_with_the_notice_once_added() -> None:
    provisional = WorkingCalendar.build(NOTICES)
    noticed = WorkingCalendar.build([*NOTICES, notice_2027("2027-01-04")])
    started = clock("2027-01-01 10:00", 3)  # accepted on the holiday itself

    before = read_clock(started, provisional, at("2027-01-05 12:00"))
    after = read_clock(started, noticed, at("2027-01-05 12:00"))

    assert (before.deadline, before.provisional) == (at("2027-01-07 00:00"), True)
    assert (after.deadline, after.provisional) == (at("2027-01-08 00:00"), False)
    assert before.elapsed_seconds == 36 * 3600 and after.elapsed_seconds == 12 * 3600
    assert noticed.version != provisional.version


def test_a_plausible_notice_has_no_problems() -> None:
    assert notice_2027(makeups=("2027-02-20",)).problems() == []
    assert all(year.problems() == [] for year in NOTICES)


@pytest.mark.parametrize(
    ("notice", "problem"),
    [
        (YearData(2027, "t", frozenset({date(2026, 12, 31)}), frozenset()), "outside 2027"),
        (notice_2027("2027-02-20", makeups=("2027-02-20",)), "both holiday and make-up"),
        (notice_2027(makeups=("2027-02-22",)), "must be weekends"),
        (YearData(2027, "t", notice_2027().holidays - {date(2027, 10, 1)}, frozenset()), "2027-10-01 国庆节"),
        (
            YearData(2027, "t", frozenset({date(2027, 1, 1), date(2027, 5, 3)}), frozenset()),
            "weekday holidays",
        ),
    ],
)
def test_an_implausible_notice_is_refused_with_the_reason(notice: YearData, problem: str) -> None:
    assert any(problem in found for found in notice.problems())
