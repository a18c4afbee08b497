"""The working-day calendar (工作日历) and time-limit arithmetic in Asia/Shanghai.

Working days are Monday to Friday, minus the statutory holidays and plus the make-up working weekends
(调休) of the State Council's yearly notice. The data comes by year (``YearData``); this module only
computes. A date outside the data is an error (``CalendarDataMissingError``) unless the calendar was
built with the weekday fallback, which is then part of its ``version`` so every deadline records it.

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


class CalendarDataMissingError(DomainError):
    """A date lies outside the working-day data and no fallback was configured."""


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


@dataclass(frozen=True)
class WorkingCalendar:
    """Working-day arithmetic over contiguous years of data (optionally extended by weekday fallback)."""

    years: tuple[YearData, ...]
    fallback_years: tuple[int, ...] = ()
    version: str = field(init=False)
    _first: date = field(init=False, repr=False)
    _cumulative: list[int] = field(init=False, repr=False)
    _working: list[bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_year = {y.year: y for y in self.years}
        covered = sorted({*by_year, *self.fallback_years})
        if not covered or covered != list(range(covered[0], covered[-1] + 1)):
            raise ValueError(f"calendar years must be contiguous, got {covered}")
        first = date(covered[0], 1, 1)
        working: list[bool] = []
        day = first
        while day.year <= covered[-1]:
            data = by_year.get(day.year)
            working.append(data.is_working_day(day) if data else day.weekday() < 5)
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
        if self.fallback_years:
            version += f"+weekdays:{self.fallback_years[0]}-{self.fallback_years[-1]}"
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "_first", first)
        object.__setattr__(self, "_cumulative", cumulative)
        object.__setattr__(self, "_working", working)

    @classmethod
    def build(cls, years: Iterable[YearData], *, fallback_until: int | None = None) -> WorkingCalendar:
        """A calendar of ``years``; with ``fallback_until``, later years count Monday-Friday only."""
        data = tuple(sorted(years, key=lambda y: y.year))
        last = data[-1].year if data else 0
        fallback = tuple(range(last + 1, fallback_until + 1)) if fallback_until else ()
        return cls(data, fallback)

    # ---- days ---------------------------------------------------------------------------------------

    def _index(self, day: date) -> int:
        index = (day - self._first).days
        if not 0 <= index < len(self._working):
            raise CalendarDataMissingError(
                f"no working-day data for {day.isoformat()} (calendar {self.version}); add the year's "
                "State Council holiday notice to the calendar data or configure the weekday fallback"
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

    def _position(self, moment: datetime) -> int:
        """Working seconds from the start of the data to ``moment``."""
        local = moment.astimezone(SHANGHAI)
        index = self._index(local.date())
        into_day = local.hour * 3600 + local.minute * 60 + local.second
        return self._cumulative[index] * DAY_SECONDS + (into_day if self._working[index] else 0)

    def _instant(self, position: int) -> datetime:
        """The earliest instant at ``position`` working seconds (a day's end, not the next day's start)."""
        whole_days, rest = divmod(position, DAY_SECONDS)
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
        return start + timedelta(seconds=rest)

    def clock_origin(self, start: datetime) -> int:
        """Where a clock started at ``start`` begins counting: 24:00 of its start day."""
        local = start.astimezone(SHANGHAI)
        return self._cumulative[self._index(local.date()) + 1] * DAY_SECONDS

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
