"""The working-day calendar (工作日历) and time-limit arithmetic in Asia/Shanghai.

Working days are Monday to Friday, minus the statutory holidays and plus the make-up working weekends
(调休) of the State Council's yearly notice. The data comes by year (``YearData``); this module only
computes. Years after the last notice count provisionally (``provisional_year``): Monday to Friday
minus the fixed-date statutory holidays every notice keeps (元旦, 劳动节, 国庆节), so no deadline is
ever missing; a deadline that lies in a provisional year is marked so, and the provisional years are part
of the calendar's ``version``. Only a date past the provisional horizon is an error
(``CalendarDataMissingError``).

How a clock counts (BRIEF §2.4, the Civil Code's rule for periods applied to working days): the day a
clock starts is not counted; each later working day contributes its 24 hours, a non-working day
nothing. ``working_seconds(start, t)`` is that elapsed time; ``instant_after(start, seconds)`` inverts
it, so a limit of N days ends at 24:00 of the N-th working day after the start day.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.errors import DomainError

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_SECONDS = 86_400
MICROS = 1_000_000
DAY_MICROS = DAY_SECONDS * MICROS


PROVISIONAL_HORIZON_YEARS = 10
"""How many years after the last notice count provisionally."""

FIXED_DATE_HOLIDAYS = (
    (1, 1, "元旦"),
    (5, 1, "劳动节"),
    (5, 2, "劳动节"),
    (10, 1, "国庆节"),
    (10, 2, "国庆节"),
    (10, 3, "国庆节"),
)
"""Statutory holidays on fixed solar dates (全国年节及纪念日放假办法, as amended 2024): every yearly notice
keeps them. The lunar holidays and the make-up days (调休) are known only from the notice."""


class CalendarDataMissingError(DomainError):
    """Raised when a date lies beyond even the provisional years of the working-day data."""


class CalendarDataError(DomainError):
    """Raised when a year's holiday data is not plausible as a State Council notice."""


@dataclass(frozen=True)
class YearData:
    """One year of the State Council's holiday notice: weekday holidays and make-up working weekend days."""

    year: int
    source: str
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]

    def is_working_day(self, day: date) -> bool:
        if day in self.makeup_workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def problems(self) -> list[str]:
        """Why this year's data cannot be a State Council notice (empty when it is plausible)."""
        found = []
        outside = sorted(d for d in self.holidays | self.makeup_workdays if d.year != self.year)
        if outside:
            found.append(f"dates outside {self.year}: {', '.join(map(str, outside))}")
        both = sorted(self.holidays & self.makeup_workdays)
        if both:
            found.append(f"both holiday and make-up working day: {', '.join(map(str, both))}")
        weekday_makeups = sorted(d for d in self.makeup_workdays if d.weekday() < 5)
        if weekday_makeups:
            found.append(f"make-up working days must be weekends: {', '.join(map(str, weekday_makeups))}")
        missing = [
            f"{self.year}-{month:02d}-{day:02d} {name}"
            for month, day, name in FIXED_DATE_HOLIDAYS
            if date(self.year, month, day).weekday() < 5 and date(self.year, month, day) not in self.holidays
        ]
        if missing:
            found.append(f"statutory holidays missing: {', '.join(missing)}")
        weekday_holidays = sum(1 for d in self.holidays if d.weekday() < 5)
        if not 8 <= weekday_holidays <= 25:
            found.append(f"{weekday_holidays} weekday holidays; a notice has between 8 and 25")
        if len(self.makeup_workdays) > 12:
            found.append(f"{len(self.makeup_workdays)} make-up working days; a notice has at most 12")
        return found


def provisional_year(year: int) -> YearData:
    """A year without its notice yet: Monday-Friday minus the fixed-date statutory holidays."""
    return YearData(
        year=year,
        source="provisional: Monday-Friday minus the fixed-date statutory holidays until the notice is added",
        holidays=frozenset(date(year, month, day) for month, day, _ in FIXED_DATE_HOLIDAYS),
        makeup_workdays=frozenset(),
    )


@dataclass(frozen=True)
class WorkingCalendar:
    """Working-day arithmetic over contiguous years of notices, extended by provisional years."""

    years: tuple[YearData, ...]
    provisional_years: tuple[int, ...] = ()
    version: str = field(init=False)
    _first: date = field(init=False, repr=False)
    _cumulative: list[int] = field(init=False, repr=False)
    _working: list[bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_year = {y.year: y for y in self.years}
        covered = sorted({*by_year, *self.provisional_years})
        if not covered or covered != list(range(covered[0], covered[-1] + 1)):
            raise ValueError(f"calendar years must be contiguous, got {covered}")
        first = date(covered[0], 1, 1)
        working: list[bool] = []
        day = first
        while day.year <= covered[-1]:
            data = by_year.get(day.year) or provisional_year(day.year)
            working.append(data.is_working_day(day))
            day += timedelta(days=1)
        cumulative = [0]
        for flag in working:
            cumulative.append(cumulative[-1] + flag)
        digest = hashlib.sha256(
            json.dumps(
                [
                    [y.year, sorted(map(str, y.holidays)), sorted(map(str, y.makeup_workdays))]
                    for y in self.years
                ]
            ).encode()
        ).hexdigest()[:10]
        version = f"CN-{min(by_year)}-{max(by_year)}@{digest}"
        if self.provisional_years:
            version += f"+provisional:{self.provisional_years[0]}-{self.provisional_years[-1]}"
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "_first", first)
        object.__setattr__(self, "_cumulative", cumulative)
        object.__setattr__(self, "_working", working)

    @classmethod
    def build(
        cls, years: Iterable[YearData], *, provisional_years: int = PROVISIONAL_HORIZON_YEARS
    ) -> WorkingCalendar:
        """A calendar of ``years`` followed by ``provisional_years`` years without a notice yet."""
        data = tuple(sorted(years, key=lambda y: y.year))
        last = data[-1].year if data else 0
        return cls(data, tuple(range(last + 1, last + 1 + provisional_years)))

    @property
    def provisional_from(self) -> date | None:
        """The first day counted without a notice, if any."""
        return date(self.provisional_years[0], 1, 1) if self.provisional_years else None

    def is_provisional(self, moment: datetime) -> bool:
        """Whether working time up to ``moment`` depends on a year without its notice.

        24:00 of 31 December belongs to the day it ends, so it is not provisional.
        """
        first = self.provisional_from
        return first is not None and (moment.astimezone(SHANGHAI) - timedelta(microseconds=1)).date() >= first

    # ---- days ---------------------------------------------------------------------------------------

    def _index(self, day: date) -> int:
        index = (day - self._first).days
        if not 0 <= index < len(self._working):
            raise CalendarDataMissingError(
                f"no working-day data for {day.isoformat()} (calendar {self.version}): it lies beyond the "
                "provisional years; add the State Council holiday notices (yekuo calendar add)"
            )
        return index

    def is_working_day(self, day: date) -> bool:
        return self._working[self._index(day)]

    def add_working_days(self, day: date, days: int) -> date:
        """The ``days``-th working day after ``day`` (``day`` itself not counted)."""
        target = self._cumulative[self._index(day) + 1] + days
        index = bisect.bisect_left(self._cumulative, target)
        if index >= len(self._cumulative):
            raise CalendarDataMissingError(f"{days} working days after {day} lie beyond the calendar data")
        return self._first + timedelta(days=index - 1)

    # ---- instants -----------------------------------------------------------------------------------

    def position(self, moment: datetime) -> int:
        """Working microseconds from the start of the data to ``moment`` (sub-second parts kept)."""
        local = moment.astimezone(SHANGHAI)
        index = self._index(local.date())
        into_day = (local.hour * 3600 + local.minute * 60 + local.second) * MICROS + local.microsecond
        return self._cumulative[index] * DAY_MICROS + (into_day if self._working[index] else 0)

    def instant_at(self, position: int) -> datetime:
        """The earliest instant at ``position`` working microseconds (a day's end, not the next day's
        start)."""
        whole_days, rest = divmod(position, DAY_MICROS)
        if whole_days + (rest > 0) > self._cumulative[-1]:
            raise CalendarDataMissingError(
                f"the instant lies beyond the working-day data of calendar {self.version}"
            )
        if rest == 0:  # the end of the whole_days-th working day: 24:00 of that day
            index = bisect.bisect_left(self._cumulative, whole_days) - 1
            if index < 0:
                return datetime.combine(self._first, time(), SHANGHAI)
            return datetime.combine(self._first + timedelta(days=index + 1), time(), SHANGHAI)
        index = bisect.bisect_left(self._cumulative, whole_days + 1) - 1
        start = datetime.combine(self._first + timedelta(days=index), time(), SHANGHAI)
        return start + timedelta(microseconds=rest)

    def origin(self, start: datetime) -> int:
        """The position (microseconds) where a clock started at ``start`` begins counting: 24:00 of its
        start day."""
        local = start.astimezone(SHANGHAI)
        return self._cumulative[self._index(local.date()) + 1] * DAY_MICROS

    def _position(self, moment: datetime) -> int:
        """Working seconds from the start of the data to ``moment`` (whole seconds, rounded down)."""
        return self.position(moment) // MICROS

    def _instant(self, position: int) -> datetime:
        """The earliest instant at ``position`` working seconds."""
        return self.instant_at(position * MICROS)

    def clock_origin(self, start: datetime) -> int:
        """Where a clock started at ``start`` begins counting: 24:00 of its start day."""
        return self.origin(start) // MICROS

    def working_seconds(self, start: datetime, moment: datetime) -> int:
        """Working time of a clock started at ``start`` up to ``moment`` (0 on the start day)."""
        return max(0, self._position(moment) - self.clock_origin(start))

    def between(self, earlier: datetime, later: datetime) -> int:
        """Working seconds between two instants (for pauses inside a clock; not a clock's own start)."""
        return max(0, self._position(later) - self._position(earlier))

    def instant_after(self, start: datetime, seconds: int) -> datetime:
        """When a clock started at ``start`` has counted ``seconds`` of working time."""
        return self._instant(self.clock_origin(start) + seconds)

    def deadline(self, start: datetime, days: int) -> datetime:
        """24:00 (Shanghai) of the ``days``-th working day after ``start``'s day."""
        return self.instant_after(start, days * DAY_SECONDS)
