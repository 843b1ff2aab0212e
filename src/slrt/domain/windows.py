"""Submission windows: proposals are accepted only on certain days of the month,
counted in the region's own time zone (WIB/WITA/WIT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from slrt.domain.common import DomainError
from slrt.domain.reference import Programme, region_timezone


class OutsideSubmissionWindow(DomainError):
    title = "Outside the submission window"


@dataclass(frozen=True)
class SubmissionWindow:
    name: str
    first_day: int
    last_day: int
    kinds: frozenset[str]
    #: For enrol/unenrol: the programmes this window is for; empty means any.
    programmes: frozenset[str] = field(default_factory=frozenset)

    def applies_to(self, kind: str, programme: str | None) -> bool:
        if kind not in self.kinds:
            return False
        return not self.programmes or (programme is not None and programme in self.programmes)

    def is_open_on(self, day: date) -> bool:
        return self.first_day <= day.day <= self.last_day

    def next_opening(self, day: date) -> tuple[date, date]:
        """The first and last day of the next window that starts after `day`."""
        year, month = day.year, day.month
        if day.day >= self.first_day:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return date(year, month, self.first_day), date(year, month, self.last_day)


@dataclass(frozen=True)
class SubmissionPolicy:
    windows: tuple[SubmissionWindow, ...]

    def check(self, *, kind: str, programme: str | None, region: str, at: datetime) -> None:
        """Refuses a proposal outside its window, naming the next window."""
        local_day: date | None = None  # worked out once a window applies
        for window in self.windows:
            if not window.applies_to(kind, programme):
                continue
            if local_day is None:
                local_day = at.astimezone(region_timezone(region)).date()
            if not window.is_open_on(local_day):
                first, last = window.next_opening(local_day)
                raise OutsideSubmissionWindow(
                    f"{window.name} proposals are accepted on days {window.first_day}–"
                    f"{window.last_day} of each month (local time); today is {local_day}. "
                    f"The next window is {first} to {last}.",
                    window=window.name,
                    next_window_opens=first.isoformat(),
                    next_window_closes=last.isoformat(),
                )


OPEN = SubmissionPolicy(windows=())

DEFAULT = SubmissionPolicy(
    windows=(
        # PBI (health insurance premium aid) on days 1–10.
        SubmissionWindow(
            name="PBI",
            first_day=1,
            last_day=10,
            kinds=frozenset({"enrol", "unenrol"}),
            programmes=frozenset({Programme.PBI_JK.value}),
        ),
        # DTKS data changes on days 15–25.
        SubmissionWindow(
            name="DTKS",
            first_day=15,
            last_day=25,
            kinds=frozenset({"register", "update", "remove"}),
        ),
    )
)
