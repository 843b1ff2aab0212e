"""Working time: office hours on working days, counted in the region's own time zone.

Days off come from maintained data, never from a hand-typed list (ADR 0005):

- **lokal-id** (the SKB 3 Menteri calendar) for the years it covers: libur nasional and
  cuti bersama. It is authoritative for those years; the `holidays` package is not asked.
- the **`holidays` package** (Indonesia) for every other year: its public holidays as
  libur nasional, and its "government" category (the cuti bersama it knows, for past
  years) as cuti bersama. Years not yet decreed have estimated Islamic dates and no
  cuti bersama.

A *working day* is a weekday of the office week that is not a day off. *Working time*
is the time inside office hours on working days. A *working day* as a duration is one
full office day of working time, so "5 working days" from Tuesday 10:00 ends the next
Tuesday 10:00 when no day off falls between.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache

import holidays as holidays_package
from lokal import HOLIDAY_YEARS, get_holidays

#: Longest stretch scanned for office hours; a duration that needs more is a policy error.
MAX_SCAN_DAYS = 366 * 5


class HolidayKind(StrEnum):
    NATIONAL = "libur_nasional"
    CUTI_BERSAMA = "cuti_bersama"


class HolidaySource(StrEnum):
    SKB_3_MENTERI = "lokal-id"  # the official decree, through lokal-id
    HOLIDAYS_PACKAGE = "holidays"  # the `holidays` package's Indonesian calendar


@dataclass(frozen=True)
class DayOff:
    day: date
    name: str
    kind: HolidayKind
    source: HolidaySource


def holiday_source(year: int) -> HolidaySource:
    """Which data a year's days off come from: the decree when lokal-id carries it."""
    return HolidaySource.SKB_3_MENTERI if year in HOLIDAY_YEARS else HolidaySource.HOLIDAYS_PACKAGE


@lru_cache(maxsize=64)
def holidays_in(year: int) -> Mapping[date, DayOff]:
    """Every day off in a year. A day that is both kinds counts as libur nasional, which
    every office observes."""
    days: dict[date, DayOff] = {}
    if holiday_source(year) is HolidaySource.SKB_3_MENTERI:
        for holiday in get_holidays(year).holidays:
            day = date.fromisoformat(holiday.date)
            kind = HolidayKind(holiday.type)
            if day not in days or kind is HolidayKind.NATIONAL:
                days[day] = DayOff(day, holiday.name, kind, HolidaySource.SKB_3_MENTERI)
        return types.MappingProxyType(days)
    # Public holidays go last, so a day in both categories counts as libur nasional.
    for category, kind in (
        ("government", HolidayKind.CUTI_BERSAMA),
        ("public", HolidayKind.NATIONAL),
    ):
        calendar = holidays_package.country_holidays(
            "ID", years=year, categories=(category,), language="id"
        )
        for day, name in calendar.items():
            days[day] = DayOff(day, name, kind, HolidaySource.HOLIDAYS_PACKAGE)
    return types.MappingProxyType(days)


class DurationUnit(StrEnum):
    HOURS = "hours"
    DAYS = "days"


@dataclass(frozen=True)
class Duration:
    """An amount of time in whole hours or days; whether it is working or calendar time
    is decided by whoever adds it."""

    amount: int
    unit: DurationUnit

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ValueError(f"a duration is a whole number of hours or days, not {self.amount!r}")
        object.__setattr__(self, "unit", DurationUnit(self.unit))

    @classmethod
    def hours(cls, amount: int) -> Duration:
        return cls(amount, DurationUnit.HOURS)

    @classmethod
    def days(cls, amount: int) -> Duration:
        return cls(amount, DurationUnit.DAYS)

    def __str__(self) -> str:
        unit = self.unit.value[:-1] if self.amount == 1 else self.unit.value
        return f"{self.amount} {unit}"


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class WorkingCalendar:
    """Office hours and the office week. The default is a government office:
    08:00–16:00 local time, Monday to Friday, closed on libur nasional and cuti bersama."""

    opens: time = time(8, 0)
    closes: time = time(16, 0)
    #: Working weekdays, Monday = 0 … Sunday = 6.
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    #: Government offices observe cuti bersama; a private partner may not.
    cuti_bersama: bool = True
    holidays: Callable[[int], Mapping[date, DayOff]] = field(default=holidays_in, repr=False)

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("office hours are local wall-clock times, without a time zone")
        if not self.opens < self.closes:
            raise ValueError(f"offices must open before they close ({self.opens}–{self.closes})")
        if not self.weekdays or not set(self.weekdays) <= set(range(7)):
            raise ValueError("weekdays must be a non-empty set of 0 (Monday) … 6 (Sunday)")

    @property
    def office_day(self) -> timedelta:
        """The working time in one full office day: the length of one working day."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def day_off(self, day: date) -> DayOff | None:
        """The holiday that closes offices on this date, if any (weekends aside)."""
        off = self.holidays(day.year).get(day)
        if off is None or (off.kind is HolidayKind.CUTI_BERSAMA and not self.cuti_bersama):
            return None
        return off

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and self.day_off(day) is None

    def working_length(self, duration: Duration | timedelta) -> timedelta:
        """How much working time a duration is: a working day is one office day."""
        if isinstance(duration, timedelta):
            return duration
        if duration.unit is DurationUnit.DAYS:
            return duration.amount * self.office_day
        return timedelta(hours=duration.amount)

    def _office_hours(self, start: datetime, tz: tzinfo) -> Iterator[tuple[datetime, datetime]]:
        """Opening and closing (UTC) of each working day, from `start`'s local date on."""
        day = start.astimezone(tz).date()
        for _ in range(MAX_SCAN_DAYS):
            if self.is_working_day(day):
                yield (
                    datetime.combine(day, self.opens, tzinfo=tz).astimezone(UTC),
                    datetime.combine(day, self.closes, tzinfo=tz).astimezone(UTC),
                )
            day += timedelta(days=1)
        raise ValueError(f"no end found within {MAX_SCAN_DAYS} days of {start.isoformat()}")

    def is_working_time(self, at: datetime, tz: tzinfo) -> bool:
        at = _aware(at, "at")
        opening, closing = next(self._office_hours(at, tz))
        return opening <= at < closing

    def next_opening(self, at: datetime, tz: tzinfo) -> datetime:
        """`at` itself during office hours, else when the office next opens (UTC)."""
        at = _aware(at, "at")
        for opening, closing in self._office_hours(at, tz):
            if at < closing:
                return max(opening, at)
        raise AssertionError("unreachable: _office_hours raises when it runs out")

    def add_duration(
        self, start: datetime, duration: Duration | timedelta, *, working: bool, tz: tzinfo
    ) -> datetime:
        """The deadline `duration` after `start`, in UTC.

        Calendar time is plain addition. Working time counts only office hours on working
        days in local time; a start outside office hours begins counting at the next
        opening. The deadline is the first instant by which that much working time has
        passed, so a deadline that uses up a day ends at its closing time, not at the
        next opening.
        """
        start = _aware(start, "start")
        if not working:
            if isinstance(duration, timedelta):
                return start + duration
            unit = "days" if duration.unit is DurationUnit.DAYS else "hours"
            return start + timedelta(**{unit: duration.amount})
        remaining = self.working_length(duration)
        if remaining <= timedelta(0):
            return start
        for opening, closing in self._office_hours(start, tz):
            begin = max(opening, start)
            if begin >= closing:
                continue
            if remaining <= closing - begin:
                return begin + remaining
            remaining -= closing - begin
        raise AssertionError("unreachable: _office_hours raises when it runs out")

    def working_time_between(self, a: datetime, b: datetime, tz: tzinfo) -> timedelta:
        """Working time from `a` to `b`; negative when `b` is before `a` (overdue by)."""
        a, b = _aware(a, "a"), _aware(b, "b")
        if b < a:
            return -self.working_time_between(b, a, tz)
        total = timedelta(0)
        for opening, closing in self._office_hours(a, tz):
            if opening >= b:
                break
            total += max(timedelta(0), min(closing, b) - max(opening, a))
        return total


GOVERNMENT_OFFICE = WorkingCalendar()


def add_duration(
    start: datetime,
    duration: Duration | timedelta,
    *,
    working: bool,
    tz: tzinfo,
    calendar: WorkingCalendar = GOVERNMENT_OFFICE,
) -> datetime:
    """The deadline `duration` after `start` (UTC); see `WorkingCalendar.add_duration`."""
    return calendar.add_duration(start, duration, working=working, tz=tz)


def working_time_between(
    a: datetime, b: datetime, tz: tzinfo, *, calendar: WorkingCalendar = GOVERNMENT_OFFICE
) -> timedelta:
    """Working time elapsed from `a` to `b`, for time remaining and compliance figures."""
    return calendar.working_time_between(a, b, tz)
