"""Submission windows, in the region's local time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slrt.domain.windows import DEFAULT, OutsideSubmissionWindow

BONTANG = "64.74.01.1001"  # WITA, UTC+8
JAKARTA = "31.71.01.1001"  # WIB, UTC+7


def test_register_inside_the_dtks_window_is_accepted() -> None:
    DEFAULT.check(
        kind="register", programme=None, region=BONTANG, at=datetime(2026, 11, 15, 1, tzinfo=UTC)
    )


def test_the_window_is_counted_in_local_time() -> None:
    # 14 Nov 16:30 UTC is already 15 Nov 00:30 in Bontang but still 14 Nov 23:30 in Jakarta.
    at = datetime(2026, 11, 14, 16, 30, tzinfo=UTC)
    DEFAULT.check(kind="register", programme=None, region=BONTANG, at=at)
    with pytest.raises(OutsideSubmissionWindow):
        DEFAULT.check(kind="register", programme=None, region=JAKARTA, at=at)


def test_refusal_names_the_next_window_across_the_new_year() -> None:
    with pytest.raises(OutsideSubmissionWindow) as refused:
        DEFAULT.check(
            kind="update", programme=None, region=BONTANG, at=datetime(2026, 12, 28, tzinfo=UTC)
        )
    assert refused.value.context["next_window_opens"] == "2027-01-15"
    assert "2027-01-15 to 2027-01-25" in refused.value.detail


def test_pbi_enrolment_has_its_own_window() -> None:
    at = datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(OutsideSubmissionWindow, match="PBI"):
        DEFAULT.check(kind="enrol", programme="PBI_JK", region=BONTANG, at=at)
    DEFAULT.check(kind="enrol", programme="PKH", region=BONTANG, at=at)
