"""Working time in the region's own time zone: office hours, weekends and days off."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from slrt.domain.calendar import (
    Duration,
    HolidayKind,
    HolidaySource,
    WorkingCalendar,
    add_duration,
    holiday_source,
    holidays_in,
    working_time_between,
)
from slrt.domain.reference import region_timezone

BONTANG = "64.74.01.1001"  # Kota Bontang, Kalimantan Timur: WITA
WITA = region_timezone(BONTANG)
WIB = ZoneInfo("Asia/Jakarta")
WIT = ZoneInfo("Asia/Jayapura")


def wita(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=WITA)


def test_bontang_counts_in_wita() -> None:
    assert WITA.key == "Asia/Makassar"


def test_four_working_hours_from_friday_afternoon_cross_the_weekend() -> None:
    # Friday 20 Nov 2026, 15:00 WITA: one hour on Friday, three on Monday.
    deadline = add_duration(wita(2026, 11, 20, 15), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2026, 11, 23, 11)
    assert deadline.tzinfo is UTC
    assert deadline == datetime(2026, 11, 23, 3, tzinfo=UTC)


def test_four_working_hours_skip_christmas_and_its_cuti_bersama() -> None:
    # Wed 23 Dec 2026 14:00 WITA: two hours on Wednesday; Thursday 24 Dec is cuti bersama,
    # Friday 25 Dec is Christmas, then the weekend; two more hours on Monday 28 Dec.
    deadline = add_duration(wita(2026, 12, 23, 14), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2026, 12, 28, 10)


def test_the_2026_christmas_days_off_come_from_the_skb_3_menteri() -> None:
    days = holidays_in(2026)
    assert days[date(2026, 12, 24)].kind is HolidayKind.CUTI_BERSAMA
    assert days[date(2026, 12, 25)].kind is HolidayKind.NATIONAL
    assert days[date(2026, 12, 25)].source is HolidaySource.SKB_3_MENTERI


def test_an_office_that_works_on_cuti_bersama_counts_it() -> None:
    private_office = WorkingCalendar(cuti_bersama=False)
    deadline = private_office.add_duration(
        wita(2026, 12, 23, 14), Duration.hours(4), working=True, tz=WITA
    )
    assert deadline == wita(2026, 12, 24, 10)


def test_a_year_lokal_id_does_not_cover_falls_back_to_the_holidays_package() -> None:
    assert holiday_source(2028) is HolidaySource.HOLIDAYS_PACKAGE
    christmas = holidays_in(2028)[date(2028, 12, 25)]
    assert christmas.kind is HolidayKind.NATIONAL
    assert christmas.source is HolidaySource.HOLIDAYS_PACKAGE


def test_a_deadline_in_an_uncovered_year_skips_its_national_holiday() -> None:
    # Fri 22 Dec 2028 15:00 WITA: one hour on Friday; Monday 25 Dec is Christmas.
    deadline = add_duration(wita(2028, 12, 22, 15), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2028, 12, 26, 11)


def test_a_past_years_cuti_bersama_comes_from_the_holidays_government_calendar() -> None:
    # Wed 24 Dec 2025 15:00 WITA: Christmas on Thursday, cuti bersama on Friday 26 Dec.
    assert holidays_in(2025)[date(2025, 12, 26)].kind is HolidayKind.CUTI_BERSAMA
    deadline = add_duration(wita(2025, 12, 24, 15), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2025, 12, 29, 11)


def test_five_working_days_from_tuesday_end_the_next_tuesday_at_the_same_time() -> None:
    deadline = add_duration(wita(2026, 11, 10, 10), Duration.days(5), working=True, tz=WITA)
    assert deadline == wita(2026, 11, 17, 10)


def test_a_working_day_is_one_full_office_day() -> None:
    assert WorkingCalendar().working_length(Duration.days(5)) == timedelta(hours=40)


def test_counting_starts_at_the_next_opening_when_received_on_a_saturday() -> None:
    deadline = add_duration(wita(2026, 11, 21, 9), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2026, 11, 23, 12)


def test_counting_starts_at_opening_when_received_before_office_hours() -> None:
    deadline = add_duration(wita(2026, 11, 23, 6), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2026, 11, 23, 12)


def test_received_after_closing_counts_from_the_next_morning() -> None:
    deadline = add_duration(wita(2026, 11, 23, 20), Duration.hours(4), working=True, tz=WITA)
    assert deadline == wita(2026, 11, 24, 12)


def test_a_deadline_that_uses_up_the_day_ends_at_closing_time() -> None:
    deadline = add_duration(wita(2026, 11, 23, 8), Duration.hours(8), working=True, tz=WITA)
    assert deadline == wita(2026, 11, 23, 16)


def test_calendar_time_is_plain_addition_through_holidays() -> None:
    start = wita(2026, 12, 23, 14)
    deadline = add_duration(start, Duration.days(30), working=False, tz=WITA)
    assert deadline == start + timedelta(days=30)


def test_the_same_instant_gives_different_deadlines_in_wib_and_wit() -> None:
    # Friday 07:30 UTC is 14:30 in Jakarta (office open) but 16:30 in Jayapura (closed).
    received = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    in_jakarta = add_duration(received, Duration.hours(4), working=True, tz=WIB)
    in_jayapura = add_duration(received, Duration.hours(4), working=True, tz=WIT)
    assert in_jakarta == datetime(2026, 11, 23, 10, 30, tzinfo=WIB)
    assert in_jayapura == datetime(2026, 11, 23, 12, tzinfo=WIT)


def test_working_time_between_skips_the_weekend() -> None:
    elapsed = working_time_between(wita(2026, 11, 20, 15), wita(2026, 11, 23, 11), WITA)
    assert elapsed == timedelta(hours=4)


def test_working_time_between_skips_days_off() -> None:
    elapsed = working_time_between(wita(2026, 12, 23, 8), wita(2026, 12, 28, 16), WITA)
    assert elapsed == timedelta(hours=16)


def test_working_time_after_a_deadline_is_negative() -> None:
    overdue = working_time_between(wita(2026, 11, 23, 11), wita(2026, 11, 20, 15), WITA)
    assert overdue == -timedelta(hours=4)


def test_working_time_up_to_a_deadline_is_the_duration() -> None:
    start = wita(2026, 12, 22, 13, 45)
    deadline = add_duration(start, Duration.days(3), working=True, tz=WITA)
    assert working_time_between(start, deadline, WITA) == timedelta(hours=24)


def test_office_hours_are_configurable() -> None:
    long_day = WorkingCalendar(opens=time(7, 30), closes=time(16, 30))
    deadline = long_day.add_duration(
        wita(2026, 11, 20, 15), Duration.hours(4), working=True, tz=WITA
    )
    assert deadline == wita(2026, 11, 23, 10)
    assert long_day.working_length(Duration.days(1)) == timedelta(hours=9)


def test_a_six_day_office_week_counts_saturday() -> None:
    six_days = WorkingCalendar(weekdays=frozenset({0, 1, 2, 3, 4, 5}))
    deadline = six_days.add_duration(
        wita(2026, 11, 20, 15), Duration.hours(4), working=True, tz=WITA
    )
    assert deadline == wita(2026, 11, 21, 11)


def test_is_working_time_follows_local_office_hours() -> None:
    calendar = WorkingCalendar()
    assert calendar.is_working_time(wita(2026, 11, 20, 15), WITA)
    assert not calendar.is_working_time(wita(2026, 11, 20, 16), WITA)
    assert not calendar.is_working_time(wita(2026, 12, 25, 10), WITA)


def test_next_opening_after_closing_on_friday_is_monday_morning() -> None:
    opening = WorkingCalendar().next_opening(wita(2026, 11, 20, 17), WITA)
    assert opening == wita(2026, 11, 23, 8)


@pytest.mark.parametrize(
    "hours",
    [
        {"opens": time(16), "closes": time(8)},
        {"opens": time(8), "closes": time(8)},
        {"weekdays": frozenset()},
        {"weekdays": frozenset({7})},
    ],
)
def test_office_hours_must_make_sense(hours: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(**hours)  # type: ignore[arg-type]


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_duration(datetime(2026, 11, 20, 15), Duration.hours(4), working=True, tz=WITA)


def test_a_duration_is_a_whole_non_negative_number() -> None:
    with pytest.raises(ValueError):
        Duration.hours(-1)
